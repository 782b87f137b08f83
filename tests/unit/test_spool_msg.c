/*
 * test_spool_msg: the group commit of msg/ (queue/spool_msg.c,
 * spool_msg_dir_sync) with threads and a scripted fsync.
 *
 * A commit whose rename was covered by a round whose fsync failed must
 * get -1, whatever later rounds did: its rename may not be durable, and
 * the writer would otherwise acknowledge it.  The waiter is kept from
 * looking at the result of its round (held in a signal handler while it
 * sits in pthread_cond_wait) until a later round succeeded.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "envelope.h"
#include "mock_log.h"
#include "spool.h"
#include "spool_int.h"
#include "spool_test.h"
#include "util.h"
#include "testutil.h"

static struct queue *q;
static sem_t in_first, go_first, in_handler, go_handler;
static volatile int nfsync;

/* Round 1 blocks until told, round 2 fails with EIO, later rounds pass. */
static int
s_fsync(int fd)
{
	int n;

	if (fd != q->msgfd)
		return fsync(fd);
	n = __atomic_add_fetch(&nfsync, 1, __ATOMIC_SEQ_CST);
	if (n == 1) {
		sem_post(&in_first);
		while (sem_wait(&go_first) == -1 && errno == EINTR)
			;
	}
	if (n == 2) {
		errno = EIO;
		return -1;
	}
	return fsync(fd);
}

static int
s_openat(int d, const char *p, int f, mode_t m)
{
	return openat(d, p, f, m);
}

static ssize_t
s_write(int fd, const void *p, size_t n)
{
	return write(fd, p, n);
}

static int
s_renameat(int a, const char *b, int c, const char *d)
{
	return renameat(a, b, c, d);
}

static int
s_unlinkat(int d, const char *p, int f)
{
	return unlinkat(d, p, f);
}

static int
s_mkdirat(int d, const char *p, mode_t m)
{
	return mkdirat(d, p, m);
}

static const struct queue_sysops scripted = {
	s_openat, s_write, s_fsync, close, s_renameat, s_unlinkat, s_mkdirat,
};

static void
on_usr1(int sig)
{
	(void)sig;
	sem_post(&in_handler);
	while (sem_wait(&go_handler) == -1 && errno == EINTR)
		;
}

struct res {
	int	rc;
	int	err;
};

static void *
committer(void *arg)
{
	struct res *r = arg;

	r->rc = spool_msg_dir_sync(q, spool_msg_fails(q));
	r->err = errno;
	return NULL;
}

static uint64_t
renamed(void)
{
	uint64_t n;

	pthread_mutex_lock(&q->msync.mu);
	n = q->msync.renamed;
	pthread_mutex_unlock(&q->msync.mu);
	return n;
}

static void
wait_renamed(uint64_t n)
{
	while (renamed() < n)
		usleep(1000);
	/*
	 * Tickets are taken under the mutex and the taker waits on the
	 * condition variable at once: seeing the count under the mutex
	 * means the takers are in pthread_cond_wait (or leading a round).
	 */
	usleep(20000);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(path);
}

static void
test_failed_round_not_hidden(void **state)
{
	char top[64], spool[128];
	pthread_t t0, t1, t2, t3;
	struct res r0, r1, r2, r3;
	struct sigaction sa;

	(void)state;
	assert_non_null(test_mkdtemp(top, sizeof(top), "tspmsg"));
	snprintf(spool, sizeof(spool), "%s/spool", top);
	assert_int_equal(queue_open(spool, true, &q), 0);
	sem_init(&in_first, 0, 0);
	sem_init(&go_first, 0, 0);
	sem_init(&in_handler, 0, 0);
	sem_init(&go_handler, 0, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
	queue_test_set_sysops(&scripted);

	/* t0: ticket 1, leads round 1, which blocks in its fsync. */
	pthread_create(&t0, NULL, committer, &r0);
	sem_wait(&in_first);
	/* t1 (ticket 2) and t2 (ticket 3) renamed meanwhile and wait. */
	pthread_create(&t1, NULL, committer, &r1);
	wait_renamed(2);
	pthread_create(&t2, NULL, committer, &r2);
	wait_renamed(3);
	/* t2 is kept busy elsewhere while the rounds go on. */
	pthread_kill(t2, SIGUSR1);
	sem_wait(&in_handler);
	/* Round 1 succeeds; t1 leads round 2 (tickets 2-3), which fails. */
	sem_post(&go_first);
	pthread_join(t0, NULL);
	pthread_join(t1, NULL);
	assert_int_equal(r0.rc, 0);
	assert_int_equal(r1.rc, -1);
	assert_int_equal(r1.err, EIO);
	/* t3 (ticket 4) leads round 3, which succeeds. */
	pthread_create(&t3, NULL, committer, &r3);
	pthread_join(t3, NULL);
	assert_int_equal(r3.rc, 0);
	/* t2's rename was covered by round 2 only: it failed. */
	sem_post(&go_handler);
	pthread_join(t2, NULL);
	assert_int_equal(nfsync, 3);
	assert_int_equal(r2.rc, -1);
	assert_int_equal(r2.err, EIO);

	queue_test_set_sysops(NULL);
	queue_close(q);
	q = NULL;
	nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * A version 1 spool (no msg/) opened without create, as mxrelay's queue
 * administration opens it (-d with a bounce queues a DSN): a new message
 * must still be committable, as it was before msg/ existed.
 */
static void
test_commit_v1_spool_no_create(void **state)
{
	char top[64], spool[128], path[192];
	struct queue *vq;
	struct queue_new *qn;
	struct envelope env;
	int fd;

	(void)state;
	assert_non_null(test_mkdtemp(top, sizeof(top), "tspmsg"));
	snprintf(spool, sizeof(spool), "%s/spool", top);
	assert_int_equal(queue_open(spool, true, &vq), 0);
	queue_close(vq);
	snprintf(path, sizeof(path), "%s/msg", spool);
	assert_int_equal(rmdir(path), 0);

	assert_int_equal(queue_open(spool, false, &vq), 0);
	assert_int_equal(queue_new_begin(vq, &qn), 0);
	assert_int_equal(queue_new_write(qn, "Subject: x\r\n\r\nhi\r\n", 19), 0);
	envelope_init(&env);
	env.sender = xstrdup("");
	envelope_add_rcpt(&env, "a@example.org", NULL);
	assert_int_equal(queue_new_commit(qn, &env), 0);
	snprintf(path, sizeof(path), "%s/msg/%s", spool, env.id);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	envelope_free(&env);
	queue_close(vq);
	nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * msg/ID.env left by a crash inside a removal (unlinked after msg/ID; the
 * scan removes it only after an hour, and only when a scan runs).  A new
 * message given that id (the pickup takes the drop file's id) must not
 * get the old message's envelope: new_begin() must treat the id as in
 * use, as it does for data/ID, env/ID and msg/ID.
 */
static void
test_stale_update_not_inherited(void **state)
{
	char top[64], spool[128], path[192], id[QUEUE_ID_LEN + 1];
	struct queue *vq;
	struct queue_new *qn;
	struct envelope env, got;
	const char *body = "Subject: x\r\n\r\nhi\r\n";
	char *ebuf;
	size_t elen;
	FILE *f;
	int rc;

	(void)state;
	assert_non_null(test_mkdtemp(top, sizeof(top), "tspmsg"));
	snprintf(spool, sizeof(spool), "%s/spool", top);
	assert_int_equal(queue_open(spool, true, &vq), 0);
	spool_id_generate(id);

	/* The leftover: an envelope of another message under that id. */
	envelope_init(&env);
	util_strlcpy(env.id, id, sizeof(env.id));
	env.sender = xstrdup("old@example.org");
	env.arrival = 1700000000;
	env.size = strlen(body);
	envelope_add_rcpt(&env, "delivered-long-ago@example.org", NULL);
	assert_int_equal(envelope_encode(&env, &ebuf, &elen), 0);
	envelope_free(&env);
	snprintf(path, sizeof(path), "%s/msg/%s.env", spool, id);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(ebuf, 1, elen, f), elen);
	assert_int_equal(fclose(f), 0);
	free(ebuf);

	rc = queue_new_begin_id(vq, id, &qn);
	if (rc == -1) {
		/* Refused as in use: right. */
		assert_int_equal(errno, EEXIST);
	} else {
		assert_int_equal(queue_new_write(qn, body, strlen(body)), 0);
		envelope_init(&env);
		env.sender = xstrdup("new@example.org");
		envelope_add_rcpt(&env, "new@example.org", NULL);
		assert_int_equal(queue_new_commit(qn, &env), 0);
		assert_int_equal(queue_env_load(vq, id, &got), 0);
		/* The committed envelope, not the leftover. */
		assert_string_equal(got.sender, "new@example.org");
		envelope_free(&got);
		envelope_free(&env);
	}
	queue_close(vq);
	nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failed_round_not_hidden),
		cmocka_unit_test(test_commit_v1_spool_no_create),
		cmocka_unit_test(test_stale_update_not_inherited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
