/*
 * test_qadmin: queue administration of one message (src/qadmin.c).
 * Tables for the pure part (what each action does to an envelope, which
 * messages a domain selects, which domains -d takes), then qadmin_apply
 * on a real spool: hold and release written under the lock, a message
 * locked by a queue runner left alone, delete with and without a DSN.
 */
#include "config.h"

#include <sys/stat.h>

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

#include "envelope.h"
#include "mock_log.h"
#include "qadmin.h"
#include "spool.h"
#include "testutil.h"
#include "util.h"

/* a@x.org pending (next_try 100), b@y.org delivered, c@Y.org pending (200). */
static void
env_make(struct envelope *env, unsigned flags)
{
	envelope_init(env);
	env->sender = xstrdup("s@sender.org");
	env->arrival = 1700000000;
	env->flags = flags;
	envelope_add_rcpt(env, "a@x.org", NULL);
	env->rcpt[0].next_try = 100;
	envelope_add_rcpt(env, "b@y.org", NULL);
	env->rcpt[1].state = RCPT_DELIVERED;
	env->rcpt[1].next_try = 50;
	envelope_add_rcpt(env, "c@Y.org", NULL);
	env->rcpt[2].next_try = 200;
}

static const struct change_row {
	const char		*rule;
	enum qadmin_action	 action;
	unsigned		 flags;		/* before */
	bool			 changed;
	unsigned		 flags_after;
	bool			 due_now;	/* pending next_try 0 after */
} change_rows[] = {
	{ "hold sets the flag, times kept", QADMIN_HOLD, 0, true,
	    ENVELOPE_F_HOLD, false },
	{ "hold of a held message: nothing", QADMIN_HOLD, ENVELOPE_F_HOLD,
	    false, ENVELOPE_F_HOLD, false },
	{ "hold keeps the other flags", QADMIN_HOLD, ENVELOPE_F_WARNED, true,
	    ENVELOPE_F_HOLD | ENVELOPE_F_WARNED, false },
	{ "release clears it and makes it due now", QADMIN_RELEASE,
	    ENVELOPE_F_HOLD, true, 0, true },
	{ "release of one not held: nothing", QADMIN_RELEASE, 0, false, 0,
	    false },
	{ "requeue makes it due now", QADMIN_REQUEUE, 0, true, 0, true },
	{ "requeue leaves a held one alone", QADMIN_REQUEUE, ENVELOPE_F_HOLD,
	    false, ENVELOPE_F_HOLD, false },
	{ "delete is not a change of the envelope", QADMIN_DELETE, 0, false,
	    0, false },
};

static void
test_change(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(change_rows) / sizeof(change_rows[0]);
	    i++) {
		const struct change_row *r = &change_rows[i];
		struct envelope env;

		env_make(&env, r->flags);
		if (qadmin_change(&env, r->action) != r->changed)
			fail_msg("%s: changed", r->rule);
		if (env.flags != r->flags_after)
			fail_msg("%s: flags %#x", r->rule, env.flags);
		if ((env.rcpt[0].next_try == 0) != r->due_now ||
		    (env.rcpt[2].next_try == 0) != r->due_now)
			fail_msg("%s: next_try", r->rule);
		if (env.rcpt[1].next_try != 50)
			fail_msg("%s: a delivered recipient changed", r->rule);
		envelope_free(&env);
	}
	/* Requeue of a message already due is still done. */
	{
		struct envelope env;

		env_make(&env, 0);
		env.rcpt[0].next_try = env.rcpt[2].next_try = 0;
		assert_true(qadmin_change(&env, QADMIN_REQUEUE));
		envelope_free(&env);
	}
}

static const struct select_row {
	const char	*rule;
	const char	*domain;
	bool		 selected;
} select_rows[] = {
	{ "all: a pending recipient", NULL, true },
	{ "the domain of a pending recipient", "x.org", true },
	{ "compared without case", "X.ORG", true },
	{ "y.org: c@Y.org is pending", "y.org", true },
	{ "not a suffix match", "org", false },
	{ "another domain", "z.org", false },
};

static void
test_selects(void **state)
{
	struct envelope env;

	(void)state;
	env_make(&env, 0);
	for (size_t i = 0; i < sizeof(select_rows) / sizeof(select_rows[0]);
	    i++) {
		const struct select_row *r = &select_rows[i];

		if (qadmin_selects(&env, r->domain) != r->selected)
			fail_msg("%s", r->rule);
	}
	/* Only delivered recipients there: not selected. */
	env.rcpt[2].state = RCPT_BOUNCED;
	assert_false(qadmin_selects(&env, "y.org"));
	env.rcpt[0].state = RCPT_DELIVERED;
	assert_false(qadmin_selects(&env, NULL));
	envelope_free(&env);
}

static void
test_wanted(void **state)
{
	struct qadmin_req req = { QADMIN_HOLD, false, NULL, "relay.test" };
	struct envelope env;

	(void)state;
	env_make(&env, 0);
	assert_true(qadmin_wanted(&env, &req));
	req.action = QADMIN_RELEASE;
	assert_false(qadmin_wanted(&env, &req));	/* not held */
	req.action = QADMIN_REQUEUE;
	assert_true(qadmin_wanted(&env, &req));
	env.flags = ENVELOPE_F_HOLD;
	assert_false(qadmin_wanted(&env, &req));	/* held: release first */
	req.action = QADMIN_RELEASE;
	assert_true(qadmin_wanted(&env, &req));
	req.action = QADMIN_DELETE;
	req.domain = "z.org";
	assert_false(qadmin_wanted(&env, &req));	/* not selected */
	req.domain = "x.org";
	assert_true(qadmin_wanted(&env, &req));
	envelope_free(&env);
}

static void
test_words(void **state)
{
	static const char *const good[] = { "example.org", "a", "xn--bcher-kva.de",
	    "b\xc3\xbc" "cher.de", "under_score.org" };
	static const char *const bad[] = { "", "a b.org", "u@x.org", "x.org\n",
	    "a;b" };
	enum qadmin_action a;
	bool bounce;
	char longname[QADMIN_DOMAIN_MAX + 2];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!qadmin_domain_valid(good[i]))
			fail_msg("refused: %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (qadmin_domain_valid(bad[i]))
			fail_msg("taken: %s", bad[i]);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_false(qadmin_domain_valid(longname));
	longname[QADMIN_DOMAIN_MAX] = '\0';
	assert_true(qadmin_domain_valid(longname));

	assert_int_equal(qadmin_action_from_text("bounce", &a, &bounce), 0);
	assert_int_equal(a, QADMIN_DELETE);
	assert_true(bounce);
	for (int i = QADMIN_HOLD; i <= QADMIN_DELETE; i++) {
		assert_int_equal(qadmin_action_from_text(
		    qadmin_action_to_text((enum qadmin_action)i), &a, &bounce), 0);
		assert_int_equal(a, i);
		assert_false(bounce);
	}
	assert_int_equal(qadmin_action_from_text("flush", &a, &bounce), -1);
}

/*
 * On a spool.
 */

struct fx {
	char		 top[256];
	struct queue	*q;
};

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int
setup_spool(void **state)
{
	struct fx *fx = xcalloc(1, sizeof(*fx));

	assert_non_null(test_mkdtemp(fx->top, sizeof(fx->top), "test_qadmin"));
	assert_int_equal(queue_open(fx->top, true, &fx->q), 0);
	mock_log_clear();
	*state = fx;
	return 0;
}

static int
teardown_spool(void **state)
{
	struct fx *fx = *state;

	queue_close(fx->q);
	nftw(fx->top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* Queue the message of env_make(); its id in id. */
static void
queue_one(struct fx *fx, char *id)
{
	static const char body[] = "Subject: hi\r\n\r\nhello\r\n";
	struct queue_new *qn;
	struct envelope env;

	env_make(&env, 0);
	assert_int_equal(queue_new_begin(fx->q, &qn), 0);
	assert_int_equal(queue_new_write(qn, body, sizeof(body) - 1), 0);
	assert_int_equal(queue_new_commit(qn, &env), 0);
	util_strlcpy(id, env.id, QUEUE_ID_LEN + 1);
	envelope_free(&env);
}

static int
count_cb(struct queue *q, const struct envelope *env, void *arg)
{
	(void)q;
	(void)env;
	(*(size_t *)arg)++;
	return 0;
}

static size_t
queued(struct fx *fx)
{
	size_t n = 0;

	assert_int_equal(queue_scan(fx->q, count_cb, &n), 0);
	return n;
}

static void
test_apply_hold(void **state)
{
	struct fx *fx = *state;
	struct qadmin_req req = { QADMIN_HOLD, false, NULL, "relay.test" };
	struct envelope env;
	char id[QUEUE_ID_LEN + 1], newid[QUEUE_ID_LEN + 1];
	int lockfd;

	queue_one(fx, id);
	assert_int_equal(qadmin_apply(fx->q, id, &req, NULL, newid),
	    QADMIN_DONE);
	assert_true(mock_log_contains(": held by the administrator"));
	assert_int_equal(queue_env_load(fx->q, id, &env), 0);
	assert_int_equal(env.flags, ENVELOPE_F_HOLD);
	assert_int_equal(env.rcpt[0].next_try, 100);
	envelope_free(&env);
	assert_int_equal(qadmin_apply(fx->q, id, &req, NULL, newid),
	    QADMIN_NOOP);
	/* Another domain: not selected. */
	req.action = QADMIN_RELEASE;
	req.domain = "z.org";
	assert_int_equal(qadmin_apply(fx->q, id, &req, NULL, newid),
	    QADMIN_NOOP);
	/* A queue runner holds the lock: left alone. */
	req.domain = "X.org";
	assert_int_equal(queue_msg_lock(fx->q, id, &lockfd), 0);
	assert_int_equal(qadmin_apply(fx->q, id, &req, NULL, newid),
	    QADMIN_BUSY);
	queue_msg_unlock(lockfd);
	assert_int_equal(qadmin_apply(fx->q, id, &req, &env, newid),
	    QADMIN_DONE);
	assert_int_equal(env.flags, 0);
	assert_int_equal(env.rcpt[0].next_try, 0);
	envelope_free(&env);
	assert_int_equal(queue_env_load(fx->q, id, &env), 0);
	assert_int_equal(env.flags, 0);
	assert_int_equal(env.rcpt[2].next_try, 0);
	envelope_free(&env);
	assert_int_equal(qadmin_apply(fx->q, "0123456789abcdef0123", &req,
	    NULL, newid), QADMIN_GONE);
}

static void
test_apply_delete(void **state)
{
	struct fx *fx = *state;
	struct qadmin_req req = { QADMIN_DELETE, false, NULL, "relay.test" };
	struct envelope env;
	char id[QUEUE_ID_LEN + 1], newid[QUEUE_ID_LEN + 1];
	char *buf = NULL;
	size_t len;

	queue_one(fx, id);
	assert_int_equal(qadmin_apply(fx->q, id, &req, NULL, newid),
	    QADMIN_DONE);
	assert_string_equal(newid, "");
	assert_int_equal(queued(fx), 0);
	assert_true(mock_log_contains(": deleted by the administrator"));

	queue_one(fx, id);
	req.bounce = true;
	assert_int_equal(qadmin_apply(fx->q, id, &req, NULL, newid),
	    QADMIN_DONE);
	assert_int_not_equal(newid[0], '\0');
	assert_int_equal(queued(fx), 1);
	assert_int_equal(queue_env_load(fx->q, newid, &env), 0);
	assert_string_equal(env.sender, "");
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpt[0].addr, "s@sender.org");
	envelope_free(&env);
	/* The DSN names both pending recipients, not the delivered one. */
	{
		int fd = queue_body_open(fx->q, newid);
		struct stat st;

		assert_true(fd != -1);
		assert_int_equal(fstat(fd, &st), 0);
		len = (size_t)st.st_size;
		buf = xcalloc(len + 1, 1);
		assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
		close(fd);
	}
	assert_non_null(strstr(buf, "Final-Recipient: rfc822; a@x.org"));
	assert_non_null(strstr(buf, "Final-Recipient: rfc822; c@Y.org"));
	assert_null(strstr(buf, "b@y.org"));
	assert_non_null(strstr(buf, "Action: failed"));
	assert_non_null(strstr(buf, "Status: 5.0.0"));
	assert_non_null(strstr(buf, "deleted by the administrator"));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_change),
		cmocka_unit_test(test_selects),
		cmocka_unit_test(test_wanted),
		cmocka_unit_test(test_words),
		cmocka_unit_test_setup_teardown(test_apply_hold, setup_spool,
		    teardown_spool),
		cmocka_unit_test_setup_teardown(test_apply_delete, setup_spool,
		    teardown_spool),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
