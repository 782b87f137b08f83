/*
 * test_pickup: src/pickup.c takes drop files (queue/spool.c, "Drop
 * folder") into a real spool under $TMPDIR, and refuses what the parsers
 * refuse.  The drop files are made with queue_open_drop() as the test's
 * own user (the spool's owner here, so no set-group-ID is needed).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <pwd.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dkim.h"
#include "dkim_keys.h"
#include "envelope.h"
#include "mock_log.h"
#include "pickup.h"
#include "spool.h"
#include "testutil.h"
#include "util.h"

struct fx {
	char		 top[64];
	char		 spool[128];
	struct queue	*q;
	uint64_t	 max_size;	/* max_message_size */
	struct strlist	 queued;	/* ids the callback saw */
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof(*fx));

	assert_non_null(test_mkdtemp(fx->top, sizeof(fx->top), "tpickup"));
	snprintf(fx->spool, sizeof(fx->spool), "%s/spool", fx->top);
	assert_int_equal(queue_open(fx->spool, true, &fx->q), 0);
	fx->max_size = 1000;
	mock_log_clear();
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	queue_close(fx->q);
	nftw(fx->top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	strlist_free(&fx->queued);
	free(fx);
	return 0;
}

static void
on_queued(void *arg, const struct envelope *env)
{
	struct fx *fx = arg;

	strlist_add(&fx->queued, env->id);
}

/* A drop file with this body and envelope; its id in id. */
static void
drop(struct fx *fx, const char *body, struct envelope *env, char *id)
{
	struct queue *dq;
	struct queue_new *qn;

	assert_int_equal(queue_open_drop(fx->spool, (gid_t)-1, &dq), 0);
	assert_int_equal(queue_new_begin(dq, &qn), 0);
	assert_int_equal(queue_new_write(qn, body, strlen(body)), 0);
	assert_int_equal(queue_new_commit(qn, env), 0);
	queue_close(dq);
	memcpy(id, env->id, QUEUE_ID_LEN + 1);
}

static void
make_env(struct envelope *env, const char *sender, const char *rcpt)
{
	envelope_init(env);
	env->sender = xstrdup(sender);
	envelope_add_rcpt(env, rcpt, NULL);
	env->submit_uid = 0;		/* what the file says is ignored */
	env->submit_user = xstrdup("root");
}

static size_t
count(struct fx *fx, const char *sub)
{
	char path[256];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", fx->spool, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
test_take_in(void **state)
{
	struct fx *fx = *state;
	struct envelope env, got;
	char id[QUEUE_ID_LEN + 1];
	struct passwd *pw;

	make_env(&env, "a@example.org", "b@example.net");
	drop(fx, "Subject: x\r\n\r\nhello\r\n", &env, id);
	envelope_free(&env);
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx), 1);
	assert_int_equal(fx->queued.n, 1);
	assert_string_equal(fx->queued.v[0], id);	/* the same id */
	assert_int_equal(count(fx, "drop"), 0);
	assert_int_equal(queue_env_load(fx->q, id, &got), 0);
	assert_string_equal(got.sender, "a@example.org");
	assert_int_equal(got.nrcpt, 1);
	assert_string_equal(got.rcpt[0].addr, "b@example.net");
	/* The submitter is the file's owner, not what the file said. */
	assert_int_equal(got.submit_uid, getuid());
	assert_non_null(got.submit_user);
	if ((pw = getpwuid(getuid())) != NULL)
		assert_string_equal(got.submit_user, pw->pw_name);
	assert_int_equal(got.size, strlen("Subject: x\r\n\r\nhello\r\n"));
	envelope_free(&got);
	assert_true(mock_log_contains("(queued from drop/)"));
	/* Nothing left: a second run takes nothing. */
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx), 0);
}

/* A set of one new Ed25519 key for example.com (dkim_keys.h). */
static struct dkim_keys *
test_keys(struct fx *fx)
{
	struct dkim_key **keys = xcalloc(1, sizeof(*keys));
	char path[256], err[256];
	EVP_PKEY *pkey;
	FILE *f;
	bool weak;
	int fd;

	snprintf(path, sizeof(path), "%s/dkim.key", fx->top);
	assert_non_null(pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519"));
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL,
	    NULL), 1);
	fclose(f);
	EVP_PKEY_free(pkey);
	assert_true((fd = open(path, O_RDONLY)) >= 0);
	keys[0] = dkim_key_read_fd(fd, path, "example.com", "sel1", &weak, err,
	    sizeof(err));
	close(fd);
	if (keys[0] == NULL)
		fail_msg("%s", err);
	return dkim_keys_new(keys, 1, 0);
}

/*
 * DKIM: the spool's owner signs a dropped message as it copies it in (the
 * user could not read the key); a signature in the drop file's envelope
 * is never taken, signing or not.
 */
static void
test_dkim(void **state)
{
	static const char forged[] = "DKIM-Signature: v=1; d=example.com; "
	    "s=forged; b=x\r\n";
	struct fx *fx = *state;
	struct dkim_keys *keys = test_keys(fx);
	struct envelope env, got;
	char id[3][QUEUE_ID_LEN + 1];

	make_env(&env, "a@example.com", "b@example.net");
	env.dkim = xstrdup(forged);
	drop(fx, "From: a@mail.example.com\r\nSubject: x\r\n\r\nhi\r\n",
	    &env, id[0]);
	drop(fx, "From: a@example.org\r\nSubject: x\r\n\r\nhi\r\n", &env,
	    id[1]);
	envelope_free(&env);
	assert_int_equal(pickup_run_signing(fx->q, fx->max_size, keys, NULL,
	    on_queued, fx), 2);
	assert_int_equal(queue_env_load(fx->q, id[0], &got), 0);
	assert_non_null(got.dkim);
	assert_memory_equal(got.dkim, "DKIM-Signature:", 15);
	assert_non_null(strstr(got.dkim, "d=example.com"));
	assert_null(strstr(got.dkim, "forged"));
	envelope_free(&got);
	assert_int_equal(queue_env_load(fx->q, id[1], &got), 0);
	assert_null(got.dkim);
	envelope_free(&got);

	/* Without keys: the drop file's signature is not kept either. */
	make_env(&env, "a@example.com", "b@example.net");
	env.dkim = xstrdup(forged);
	drop(fx, "From: a@example.com\r\n\r\nhi\r\n", &env, id[2]);
	envelope_free(&env);
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx),
	    1);
	assert_int_equal(queue_env_load(fx->q, id[2], &got), 0);
	assert_null(got.dkim);
	envelope_free(&got);
	dkim_keys_unref(keys);
}

/*
 * RFC 6531: UTF-8 local parts (mxrelay -bs in an SMTPUTF8 transaction)
 * come with the smtputf8 flag and are taken in; without the flag, or
 * malformed, they are refused.
 */
static void
test_smtputf8(void **state)
{
	struct fx *fx = *state;
	struct envelope env, got;
	char id[QUEUE_ID_LEN + 1];

	make_env(&env, "s\xc3\xa9@example.org", "j\xc3\xb6@example.net");
	env.flags |= ENVELOPE_F_SMTPUTF8;
	drop(fx, "Subject: x\r\n\r\nhello\r\n", &env, id);
	envelope_free(&env);
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx), 1);
	assert_int_equal(queue_env_load(fx->q, id, &got), 0);
	assert_string_equal(got.rcpt[0].addr, "j\xc3\xb6@example.net");
	assert_true(got.flags & ENVELOPE_F_SMTPUTF8);
	envelope_free(&got);

	make_env(&env, "a@example.org", "j\xc3\xb6@example.net");
	drop(fx, "x\r\n", &env, id);
	envelope_free(&env);
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx), 0);
	assert_true(mock_log_contains("bad recipient address"));

	make_env(&env, "a@example.org", "j\xc3@example.net");
	env.flags |= ENVELOPE_F_SMTPUTF8;
	drop(fx, "x\r\n", &env, id);
	envelope_free(&env);
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx), 0);
	assert_int_equal(count(fx, "corrupt"), 2);
}

/* A pickup that stopped after its commit: the drop file comes back. */
static void
test_taken_in_before(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	char id[QUEUE_ID_LEN + 1], path[256], copy[256], cmd[600];

	make_env(&env, "a@example.org", "b@example.net");
	drop(fx, "x\r\n", &env, id);
	envelope_free(&env);
	snprintf(path, sizeof(path), "%s/drop/%s", fx->spool, id);
	snprintf(copy, sizeof(copy), "%s/saved", fx->top);
	snprintf(cmd, sizeof(cmd), "cp -p '%s' '%s'", path, copy);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx), 1);
	assert_int_equal(rename(copy, path), 0);
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx), 0);
	assert_int_equal(count(fx, "drop"), 0);
	assert_int_equal(count(fx, "msg"), 1);	/* not twice */
	assert_int_equal(count(fx, "env"), 0);
	assert_int_equal(fx->queued.n, 1);
}

/* A pickup killed while it copied: its unlocked tmp/ID must not block. */
static void
test_killed_pickup(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	char id[QUEUE_ID_LEN + 1], path[256];
	FILE *f;

	make_env(&env, "a@example.org", "b@example.net");
	drop(fx, "x\r\n", &env, id);
	envelope_free(&env);
	snprintf(path, sizeof(path), "%s/tmp/%s", fx->spool, id);
	assert_non_null(f = fopen(path, "w"));
	fputs("half a cop", f);
	fclose(f);
	assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued, fx), 1);
	assert_int_equal(fx->queued.n, 1);
	assert_string_equal(fx->queued.v[0], id);
	assert_int_equal(count(fx, "drop"), 0);
	assert_int_equal(count(fx, "tmp"), 0);
}

/* What pickup must refuse although the file is a well-formed drop file. */
static void
test_refused(void **state)
{
	struct fx *fx = *state;
	struct envelope env;
	char id[QUEUE_ID_LEN + 1];
	static const struct {
		const char	*body;
		const char	*sender;
		const char	*rcpt;
		int		 state;	/* 1: a delivered recipient */
		const char	*why;
	} bad[] = {
		{ "bare\nLF\r\n", "a@b.c", "d@e.f", 0, "body is not CRLF text" },
		{ "bare\rCR\r\n", "a@b.c", "d@e.f", 0, "body is not CRLF text" },
		{ "x\r\n", "a b@c", "d@e.f", 0, "bad sender address" },
		{ "x\r\n", "a@b.c", "d@", 0, "bad recipient address" },
		{ "x\r\n", "a@b.c", "d@e.f", 1,
		    "recipient state set by the submitter" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mock_log_clear();
		make_env(&env, bad[i].sender, bad[i].rcpt);
		if (bad[i].state)
			env.rcpt[0].state = RCPT_DELIVERED;
		drop(fx, bad[i].body, &env, id);
		envelope_free(&env);
		assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, on_queued,
		    fx), 0);
		assert_true(mock_log_contains(bad[i].why));
		assert_int_equal(count(fx, "drop"), 0);
		assert_int_equal(count(fx, "msg"), 0);
		assert_int_equal(count(fx, "env"), 0);
		assert_int_equal(count(fx, "corrupt"), i + 1);
	}
	/*
	 * Over max_message_size by what a submitter may add (a -bs session's
	 * Received: field): taken in.  Beyond that: refused.
	 */
	for (int over = 0; over < 2; over++) {
		size_t n = over ? 1000 + 1024 * 1024 + 2 : 1198;
		char *big = xmalloc(n + 1);

		for (size_t i = 0; i < n; i += 2)
			memcpy(big + i, "\r\n", 2);
		big[n] = '\0';
		mock_log_clear();
		make_env(&env, "a@b.c", "d@e.f");
		drop(fx, big, &env, id);
		envelope_free(&env);
		free(big);
		assert_int_equal(pickup_run(fx->q, fx->max_size, NULL, NULL, NULL),
		    over ? 0 : 1);
		assert_int_equal(mock_log_contains("larger than max_message_size"),
		    over);
	}
	assert_int_equal(fx->queued.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dkim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_take_in, setup, teardown),
		cmocka_unit_test_setup_teardown(test_taken_in_before, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_killed_pickup, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_smtputf8, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
