/*
 * test_qmgr: src/qmgr.c against a real spool in a temporary folder and
 * the real event loop and work queue, with the delivery engine replaced
 * at link time (-Wl,--wrap=delivery_submit,--wrap=delivery_gc): the test
 * sees every part qmgr hands out and answers it when it likes.  The
 * envelope writes are wrapped too (--wrap=queue_env_update), so that the
 * test can hold them and keep a message closing.  Checked: a group's
 * outcomes reach the envelope while another group of the message is
 * still out; a destination that fails as a whole is held, the hold is
 * written to the spool's holds file and kept by the next start; one-shot
 * runs end; messages still writing their last state count in the window;
 * the pump reads at most QMGR_SCAN_SLICE envelopes per turn of the loop.
 * Old envelopes (versions 1 and 2, which do not say whether the body has
 * 8-bit bytes) are planted by rewriting a queued message's envelope as
 * those versions wrote it; pread is wrapped too (--wrap=pread), so that
 * the test sees on which thread each body is read, and can make the
 * reads of a body fail.  Checked: the scan's answer at both sides of
 * QMGR_SCAN_INLINE_MAX, on the loop or the work queue; the per-turn
 * budget QMGR_SCAN_INLINE_TURN; the answer written back (version 3) at
 * the next write and not read again; a read error strands the message.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "delivery.h"
#include "event.h"
#include "mock_log.h"
#include "qmgr.h"
#include "qmgr_int.h"
#include "scheduler.h"
#include "spool.h"
#include "spool_test.h"
#include "testutil.h"
#include "util.h"

#define MAXPARTS	32

/* The parts qmgr handed to the (wrapped) engine, in order. */
static struct {
	struct delivery_msg	*dm[MAXPARTS];
	char			 domain[MAXPARTS][64];
	size_t			 n;
} parts;

void	__wrap_delivery_submit(struct delivery_engine *, const char *,
	    struct delivery_msg *);
void	__wrap_delivery_gc(struct delivery_engine *);

void
__wrap_delivery_submit(struct delivery_engine *e, const char *domain,
    struct delivery_msg *dm)
{
	(void)e;
	assert_true(parts.n < MAXPARTS);
	util_strlcpy(parts.domain[parts.n], domain,
	    sizeof(parts.domain[parts.n]));
	parts.dm[parts.n++] = dm;
}

void
__wrap_delivery_gc(struct delivery_engine *e)
{
	(void)e;
}

/*
 * The spool's envelope updates (qmgr's writes, on the work queue) wait
 * here while the gate is shut: a message whose last group is back then
 * stays closing, its last state not yet written, until the test opens it.
 */
static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	bool		 shut;
} gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false };

int	__real_queue_env_update(struct queue *, const struct envelope *);
int	__wrap_queue_env_update(struct queue *, const struct envelope *);

int
__wrap_queue_env_update(struct queue *q, const struct envelope *env)
{
	pthread_mutex_lock(&gate.mu);
	while (gate.shut)
		pthread_cond_wait(&gate.cv, &gate.mu);
	pthread_mutex_unlock(&gate.mu);
	return __real_queue_env_update(q, env);
}

static void
gate_set(bool shut)
{
	pthread_mutex_lock(&gate.mu);
	gate.shut = shut;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

/*
 * Reads of the bodies the test watches (pread, which the old-envelope
 * scan uses, is wrapped): how many ran on the loop's thread (the test's)
 * and how many on a worker, and whether they fail (EIO).  Other reads go
 * through untouched.  A read counts for every watch of its file (after a
 * removal, a new body may have an old one's inode).
 */
#define MAXBODIES	32

struct body_watch {
	dev_t		 dev;
	ino_t		 ino;
	bool		 fail;
	unsigned	 on_loop;
	unsigned	 off_loop;
};

static struct {
	pthread_mutex_t		 mu;
	pthread_t		 loop;
	struct body_watch	 w[MAXBODIES];
	size_t			 n;
} bodies = { .mu = PTHREAD_MUTEX_INITIALIZER };

ssize_t	__real_pread(int, void *, size_t, off_t);
ssize_t	__wrap_pread(int, void *, size_t, off_t);

ssize_t
__wrap_pread(int fd, void *buf, size_t len, off_t off)
{
	struct stat st;
	bool fail = false;

	if (fstat(fd, &st) == 0) {
		pthread_mutex_lock(&bodies.mu);
		for (size_t i = 0; i < bodies.n; i++) {
			struct body_watch *w = &bodies.w[i];

			if (w->dev != st.st_dev || w->ino != st.st_ino)
				continue;
			if (pthread_equal(pthread_self(), bodies.loop))
				w->on_loop++;
			else
				w->off_loop++;
			fail = w->fail;
		}
		pthread_mutex_unlock(&bodies.mu);
	}
	if (fail) {
		errno = EIO;
		return -1;
	}
	return __real_pread(fd, buf, len, off);
}

/* A copy of body k's counts (taken under the lock: workers write them). */
static struct body_watch
body_reads(size_t k)
{
	struct body_watch w;

	pthread_mutex_lock(&bodies.mu);
	w = bodies.w[k];
	pthread_mutex_unlock(&bodies.mu);
	return w;
}

/* Body k was read, only on the loop's thread. */
static bool
read_on_loop(size_t k)
{
	struct body_watch w = body_reads(k);

	return w.on_loop > 0 && w.off_loop == 0;
}

/* Body k was read, only on the work queue. */
static bool
read_off_loop(size_t k)
{
	struct body_watch w = body_reads(k);

	return w.on_loop == 0 && w.off_loop > 0;
}

struct fx {
	char		 dir[256];
	struct queue	*q;
	struct qmgr_conf conf;
	struct ev_loop	*loop;
	struct qmgr	*qm;
	struct qmgr_stats stats;
};

static int
setup(void **state)
{
	struct fx *fx = xcalloc(1, sizeof(*fx));
	char spool[300];

	assert_non_null(test_mkdtemp(fx->dir, sizeof(fx->dir), "test_qmgr"));
	snprintf(spool, sizeof(spool), "%s/spool", fx->dir);
	assert_int_equal(queue_open(spool, true, &fx->q), 0);
	fx->conf.hostname = "relay.test";
	fx->conf.retry_min_ms = 60 * 1000;
	fx->conf.retry_max_ms = 3600 * 1000;
	fx->conf.lifetime_ms = 5 * 86400 * 1000LL;
	fx->conf.concurrency = 100;
	fx->conf.domain_concurrency = 20;
	assert_non_null(fx->loop = ev_loop_new());
	memset(&parts, 0, sizeof(parts));
	pthread_mutex_lock(&bodies.mu);
	bodies.loop = pthread_self();
	bodies.n = 0;
	pthread_mutex_unlock(&bodies.mu);
	mock_log_clear();
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[300];

	gate_set(false);	/* qmgr_free() waits for the writes out */
	queue_test_set_sysops(NULL);
	qmgr_free(fx->qm);
	ev_loop_free(fx->loop);
	queue_close(fx->q);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static void
start_opts(struct fx *fx, const struct qmgr_opts *o)
{
	fx->qm = qmgr_new(fx->loop, fx->q, &fx->conf, NULL, o, &fx->stats);
	assert_int_equal(qmgr_load(fx->qm), 0);
}

static void
start(struct fx *fx, bool daemon)
{
	struct qmgr_opts o;

	memset(&o, 0, sizeof(o));
	o.daemon = daemon;
	start_opts(fx, &o);
}

/*
 * Queue a message with body (len bytes) for rcpts (NULL-terminated),
 * each due at next_try (0: at once); its id into id.
 */
static void
queue_msg_body(struct fx *fx, const char *const *rcpts, time_t next_try,
    const void *body, size_t len, char *id)
{
	struct queue_new *qn;
	struct envelope env;

	envelope_init(&env);
	env.sender = xstrdup("s@sender.test");
	for (; *rcpts != NULL; rcpts++) {
		envelope_add_rcpt(&env, *rcpts, NULL);
		env.rcpt[env.nrcpt - 1].next_try = next_try;
	}
	assert_int_equal(queue_new_begin(fx->q, &qn), 0);
	assert_int_equal(queue_new_write(qn, body, len), 0);
	assert_int_equal(queue_new_commit(qn, &env), 0);
	util_strlcpy(id, env.id, QUEUE_ID_LEN + 1);
	envelope_free(&env);
}

static void
queue_msg_at(struct fx *fx, const char *const *rcpts, time_t next_try,
    char *id)
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";

	queue_msg_body(fx, rcpts, next_try, body, sizeof(body) - 1, id);
}

static void
queue_msg(struct fx *fx, const char *const *rcpts, char *id)
{
	queue_msg_at(fx, rcpts, 0, id);
}

/* Run the loop until cond(fx, arg) or about 5 s have gone by. */
static bool
run_until(struct fx *fx, bool (*cond)(struct fx *, const void *),
    const void *arg)
{
	for (int i = 0; i < 500; i++) {
		if (cond(fx, arg))
			return true;
		ev_run_once(fx->loop, 10);
	}
	return cond(fx, arg);
}

static bool
nparts_is(struct fx *fx, const void *arg)
{
	(void)fx;
	return parts.n == *(const size_t *)arg;
}

struct rcpt_want {
	const char	*id;
	const char	*addr;
	enum rcpt_state	 state;
	unsigned	 attempts;
};

/* The envelope on disk shows the recipient as wanted. */
static bool
env_shows(struct fx *fx, const void *arg)
{
	const struct rcpt_want *w = arg;
	struct envelope env;
	bool ok = false;

	if (queue_env_load(fx->q, w->id, &env) == -1)
		return false;
	for (size_t i = 0; i < env.nrcpt; i++)
		if (strcmp(env.rcpt[i].addr, w->addr) == 0)
			ok = env.rcpt[i].state == w->state &&
			    env.rcpt[i].attempts == w->attempts;
	envelope_free(&env);
	return ok;
}

/* Nothing open and no write out. */
static bool
settled(struct fx *fx, const void *arg)
{
	(void)arg;
	return qmgr_done(fx->qm);
}

/* Answer part k: every recipient with outcome o. */
static void
answer(size_t k, enum outcome o, bool dest_down)
{
	struct delivery_msg *dm = parts.dm[k];

	for (size_t i = 0; i < dm->nrcpt; i++) {
		struct delivery_rcpt *r = &dm->rcpt[i];

		r->outcome = o;
		util_strlcpy(r->reply, o == OUTCOME_OK ? "250 ok" :
		    "451 later", sizeof(r->reply));
		util_strlcpy(r->status, o == OUTCOME_OK ? "2.0.0" : "4.0.0",
		    sizeof(r->status));
		util_strlcpy(r->remote_mta, dest_down ? "" : "mx.test",
		    sizeof(r->remote_mta));
	}
	dm->dest_down = dest_down;
	dm->done(dm->arg, dm);
}

static size_t
part_for(const char *domain)
{
	for (size_t k = 0; k < parts.n; k++)
		if (strcmp(parts.domain[k], domain) == 0)
			return k;
	fail_msg("no part for %s", domain);
	return 0;
}

/*
 * Rule: a group's outcomes are written to the envelope as soon as that
 * group is back, while the message's other group is still out (a crash
 * then does not send the delivered recipients again).
 */
static void
test_group_recorded_at_once(void **state)
{
	struct fx *fx = *state;
	static const char *const rcpts[] = { "a@one.test", "b@two.test", NULL };
	char id[QUEUE_ID_LEN + 1];
	size_t two = 2;
	struct rcpt_want a_done, b_waiting, b_deferred;

	queue_msg(fx, rcpts, id);
	start(fx, true);
	assert_true(run_until(fx, nparts_is, &two));
	a_done = (struct rcpt_want){ id, "a@one.test", RCPT_DELIVERED, 1 };
	b_waiting = (struct rcpt_want){ id, "b@two.test", RCPT_PENDING, 0 };
	b_deferred = (struct rcpt_want){ id, "b@two.test", RCPT_PENDING, 1 };
	assert_int_equal(qmgr_in_flight(fx->qm), 1);

	answer(part_for("one.test"), OUTCOME_OK, false);
	assert_true(run_until(fx, env_shows, &a_done));
	assert_true(env_shows(fx, &b_waiting));
	assert_int_equal(qmgr_in_flight(fx->qm), 1);	/* still locked */

	answer(part_for("two.test"), OUTCOME_TEMPFAIL, false);
	assert_true(run_until(fx, env_shows, &b_deferred));
	assert_true(env_shows(fx, &a_done));
	assert_int_equal(fx->stats.sent, 1);
	assert_int_equal(fx->stats.deferred, 1);
	assert_true(run_until(fx, settled, NULL));
}

static bool
holds_has(struct fx *fx, const void *arg)
{
	struct queue_hold *v;
	size_t n;
	bool found = false;

	if (queue_holds_load(fx->q, &v, &n) == -1)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(v[i].dest, (const char *)arg) == 0 &&
		    v[i].failures == 1)
			found = true;
		free(v[i].dest);
	}
	free(v);
	return found;
}

/*
 * Rule: a destination that failed as a whole is held; the hold goes to
 * the spool's holds file, and the next start keeps it (a new message for
 * it waits, another destination's goes at once).
 */
static void
test_hold_persists(void **state)
{
	struct fx *fx = *state;
	static const char *const dead[] = { "x@dead.test", NULL };
	static const char *const dead2[] = { "y@dead.test", NULL };
	static const char *const live[] = { "z@live.test", NULL };
	char id[QUEUE_ID_LEN + 1];
	size_t one = 1, two = 2;

	queue_msg(fx, dead, id);
	start(fx, true);
	assert_true(run_until(fx, nparts_is, &one));
	answer(0, OUTCOME_TEMPFAIL, true);
	assert_true(run_until(fx, holds_has, "dead.test"));
	assert_true(mock_log_contains("dead.test: destination unreachable, "
	    "held back for 60s (failure 1 in a row)"));

	/* A restart: the holds file is read back. */
	assert_true(run_until(fx, settled, NULL));
	qmgr_free(fx->qm);
	fx->qm = NULL;
	memset(&parts, 0, sizeof(parts));
	queue_msg(fx, dead2, id);
	queue_msg(fx, live, id);
	start(fx, true);
	assert_true(mock_log_contains("1 destination held back"));
	assert_true(run_until(fx, nparts_is, &one));
	assert_string_equal(parts.domain[0], "live.test");
	/* Half a second more: dead.test still waits for its hold. */
	for (int i = 0; i < 50; i++)
		ev_run_once(fx->loop, 10);
	assert_false(nparts_is(fx, &two));
	answer(0, OUTCOME_OK, false);
	assert_true(run_until(fx, settled, NULL));
}

/*
 * The fd_reserve (struct qmgr_opts) that makes fd_window() in qmgr.c give
 * a window of w messages: the hard limit on descriptors, less the
 * connections, QMGR_FD_RESERVE and two descriptors per open message.
 */
static unsigned
reserve_for_window(unsigned concurrency, unsigned w)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	/* A finite hard limit: fd_window() raises the soft one up to it. */
	if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536) {
		rl.rlim_max = 65536;
		if (rl.rlim_cur > rl.rlim_max)
			rl.rlim_cur = rl.rlim_max;
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	assert_true(rl.rlim_max > concurrency + QMGR_FD_RESERVE + 2 * w + 64);
	return (unsigned)rl.rlim_max - concurrency - QMGR_FD_RESERVE - 2 * w;
}

/* nparts_is(), checking on the way that the open messages fit the window. */
static bool
nparts_is_in_window(struct fx *fx, const void *arg)
{
	assert_true(qmgr_in_flight(fx->qm) <= fx->qm->window);
	return nparts_is(fx, arg);
}

/*
 * Rule: a message whose last group is back holds its descriptors until
 * its last state is written (closing); a new message due meanwhile waits
 * for it to close instead of opening one message past the window (the
 * scheduler counts only the messages with groups in flight).
 */
static void
test_window_counts_closing(void **state)
{
	struct fx *fx = *state;
	static const char *const first[] = { "r@d0.test", NULL };
	char id[QUEUE_ID_LEN + 1], addr[32];
	const char *rcpts[] = { addr, NULL };
	struct qmgr_opts o;
	size_t want = 1;

	memset(&o, 0, sizeof(o));
	o.daemon = true;
	o.fd_reserve = reserve_for_window(fx->conf.concurrency, 1);
	queue_msg(fx, first, id);
	start_opts(fx, &o);
	assert_int_equal(fx->qm->window, 1);
	assert_true(run_until(fx, nparts_is_in_window, &want));
	for (size_t k = 1; k <= 3; k++) {
		/* Part k-1 comes back deferred: its message closes, write held. */
		gate_set(true);
		answer(k - 1, OUTCOME_TEMPFAIL, false);
		assert_int_equal(qmgr_in_flight(fx->qm), 1);
		/* A message arrives: the pump runs on the next turn. */
		snprintf(addr, sizeof(addr), "r@d%zu.test", k);
		queue_msg(fx, rcpts, id);
		qmgr_add(fx->qm, id);
		ev_run_once(fx->loop, 0);
		assert_true(qmgr_in_flight(fx->qm) <= fx->qm->window);
		assert_int_equal(parts.n, k);
		/* Written: the message closes, and the new one opens. */
		gate_set(false);
		want = k + 1;
		assert_true(run_until(fx, nparts_is_in_window, &want));
		assert_string_equal(parts.domain[k], addr + 2);
	}
	answer(3, OUTCOME_OK, false);
	assert_true(run_until(fx, settled, NULL));
	assert_int_equal(fx->stats.deferred, 3);
	assert_int_equal(fx->stats.sent, 1);
}

/* Messages in the index whose envelope has been read. */
static size_t
nread(const struct fx *fx)
{
	const struct sched *s = fx->qm->sched;
	size_t n = 0;

	for (const struct sched_msg *sm = sched_msg_next(s, NULL); sm != NULL;
	    sm = sched_msg_next(s, sm))
		if (sm->arrival != 0)
			n++;
	return n;
}

static int
no_fsync(int fd)
{
	(void)fd;
	return 0;
}

/*
 * Rule: the pump reads at most QMGR_SCAN_SLICE envelopes of new messages
 * per turn of the loop and goes on at the next turns until all are read,
 * so that a burst of arrivals does not hold the loop for one long turn.
 */
static void
test_load_slice(void **state)
{
	struct fx *fx = *state;
	static const char *const rcpts[] = { "r@later.test", NULL };
	const size_t total = QMGR_SCAN_SLICE + QMGR_SCAN_SLICE / 2;
	const size_t max_turns = (total + QMGR_SCAN_SLICE - 1) / QMGR_SCAN_SLICE;
	struct queue_sysops ops = queue_sysops_default;
	char id[QUEUE_ID_LEN + 1];
	size_t turns;

	start(fx, true);
	/* Queued without fsync (speed), due in an hour: nothing goes out. */
	ops.fsync = no_fsync;
	queue_test_set_sysops(&ops);
	for (size_t i = 0; i < total; i++) {
		queue_msg_at(fx, rcpts, time(NULL) + 3600, id);
		qmgr_add(fx->qm, id);
	}
	queue_test_set_sysops(NULL);
	assert_int_equal(qmgr_count(fx->qm), total);
	assert_int_equal(nread(fx), 0);
	for (turns = 0; turns < max_turns && nread(fx) < total; turns++) {
		size_t before = nread(fx);

		ev_run_once(fx->loop, 0);
		assert_in_range(nread(fx) - before, 1, QMGR_SCAN_SLICE);
	}
	assert_int_equal(nread(fx), total);
	assert_int_equal(parts.n, 0);
}

/*
 * Old envelopes (versions 1 and 2): see the top of this file.
 */

/*
 * A body of len bytes: a header, then 72-byte lines of ASCII; when
 * eightbit, its last byte is 0xE9, so the scan must read to the end.
 */
static char *
make_body(size_t len, bool eightbit)
{
	static const char head[] = "Subject: t\r\n\r\n";
	char *b = xmalloc(len);

	assert_true(len > sizeof(head));
	memset(b, 'a', len);
	memcpy(b, head, sizeof(head) - 1);
	for (size_t i = sizeof(head) - 1 + 70; i + 1 < len; i += 72) {
		b[i] = '\r';
		b[i + 1] = '\n';
	}
	b[len - 1] = eightbit ? (char)0xe9 : 'a';
	return b;
}

/*
 * Turn the queued message id into one of the version 1 spool layout
 * (data/ID + env/ID, as spools written before msg/ came hold them), its
 * envelope as version 1 or 2 of the envelope wrote it (queue/envelope.c;
 * version 2 with a submitter, www-data, uid 33): there is no body line,
 * so qmgr must read the body to know.  Its recipients are fresh, due at
 * once.  The files are written by hand, the body first, as the old
 * commit did.
 */
static void
env_make_old(struct fx *fx, const char *id, int version)
{
	struct envelope env;
	char path[400], *body;
	struct stat st;
	ssize_t n;
	FILE *f;
	int fd;

	assert_int_equal(queue_env_load(fx->q, id, &env), 0);
	/* The body: the first size bytes of msg/ID. */
	body = xmalloc(env.size + 1);
	assert_true((fd = queue_body_open(fx->q, id)) != -1);
	n = pread(fd, body, env.size, 0);
	assert_int_equal(n, (ssize_t)env.size);
	close(fd);
	assert_int_equal(queue_msg_remove(fx->q, id), 0);
	snprintf(path, sizeof(path), "%s/msg/%s", queue_dir(fx->q), id);
	assert_int_equal(stat(path, &st), -1);

	snprintf(path, sizeof(path), "%s/data/%s", queue_dir(fx->q), id);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(body, 1, env.size, f), env.size);
	assert_int_equal(fclose(f), 0);
	free(body);
	snprintf(path, sizeof(path), "%s/env/%s", queue_dir(fx->q), id);
	assert_non_null(f = fopen(path, "w"));
	fprintf(f, "mxrelay-envelope %d\nid %s\nsender =%s\narrival %lld\n"
	    "size %llu\n", version, id, env.sender, (long long)env.arrival,
	    (unsigned long long)env.size);
	if (version == 2)
		fprintf(f, "submitter 33 =www-data\n");
	fprintf(f, "rcpts %zu\n", env.nrcpt);
	for (size_t i = 0; i < env.nrcpt; i++)
		fprintf(f, "rcpt =%s - pending 0 0 0 - - -\n", env.rcpt[i].addr);
	fprintf(f, "end\n");
	assert_int_equal(fclose(f), 0);
	envelope_free(&env);
	/* Read back: an old envelope, with its version's fields. */
	assert_int_equal(queue_env_load(fx->q, id, &env), 0);
	assert_int_equal(env.eightbit, ENVELOPE_8BIT_UNKNOWN);
	assert_int_equal(env.submit_user != NULL, version == 2);
	envelope_free(&env);
}

/* Watch the reads of message id's body; the number of its body_watch. */
static size_t
watch_body(struct fx *fx, const char *id)
{
	char path[400];
	struct stat st;
	size_t k;

	snprintf(path, sizeof(path), "%s/data/%s", queue_dir(fx->q), id);
	assert_int_equal(stat(path, &st), 0);
	pthread_mutex_lock(&bodies.mu);
	assert_true(bodies.n < MAXBODIES);
	k = bodies.n++;
	memset(&bodies.w[k], 0, sizeof(bodies.w[k]));
	bodies.w[k].dev = st.st_dev;
	bodies.w[k].ino = st.st_ino;
	pthread_mutex_unlock(&bodies.mu);
	return k;
}

/* From now on, the reads of body k fail with EIO. */
static void
body_fail(size_t k)
{
	pthread_mutex_lock(&bodies.mu);
	bodies.w[k].fail = true;
	pthread_mutex_unlock(&bodies.mu);
}

/*
 * Queue a message for rcpt with a body of len bytes (see make_body), its
 * envelope then made of version 1 or 2, and watch its body's reads.  Its
 * id into id; returns its body_watch.
 */
static size_t
queue_old(struct fx *fx, int version, const char *rcpt, size_t len,
    bool eightbit, char *id)
{
	const char *rcpts[] = { rcpt, NULL };
	char *body = make_body(len, eightbit);

	queue_msg_body(fx, rcpts, 0, body, len, id);
	free(body);
	env_make_old(fx, id, version);
	return watch_body(fx, id);
}

/* The envelope file of id, as text (in a static buffer). */
static const char *
env_text(struct fx *fx, const char *id)
{
	static char buf[4096];
	char path[400];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/env/%s", queue_dir(fx->q), id);
	assert_non_null(f = fopen(path, "r"));
	n = fread(buf, 1, sizeof(buf) - 1, f);
	assert_int_equal(ferror(f), 0);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

/*
 * Rule: an old envelope's body is read to know whether it has 8-bit
 * bytes (one byte over 0x7f anywhere: here the last, past the scan's
 * first 64 KiB read in the larger bodies), and the parts carry the
 * answer.  A body of at most QMGR_SCAN_INLINE_MAX bytes is read on the
 * loop in the turn that opens it (its part goes out before the loop
 * turns again); a larger one on the work queue.
 */
static void
test_oldenv_scan_bounds(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char	*rcpt;
		size_t		 len;
		bool		 eightbit;
	} msgs[] = {
		{ "a@in8.test", QMGR_SCAN_INLINE_MAX, true },
		{ "b@in7.test", QMGR_SCAN_INLINE_MAX, false },
		{ "c@out8.test", QMGR_SCAN_INLINE_MAX + 1, true },
		{ "d@out7.test", QMGR_SCAN_INLINE_MAX + 1, false },
	};
	const size_t nmsgs = sizeof(msgs) / sizeof(msgs[0]);
	char id[QUEUE_ID_LEN + 1];
	size_t k[sizeof(msgs) / sizeof(msgs[0])];

	for (size_t i = 0; i < nmsgs; i++)
		k[i] = queue_old(fx, 2, msgs[i].rcpt, msgs[i].len,
		    msgs[i].eightbit, id);
	start(fx, true);

	/* The first turn: the two small ones are read and handed out. */
	ev_run_once(fx->loop, 0);
	assert_int_equal(parts.n, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_true(read_on_loop(k[i]));
		(void)part_for(strchr(msgs[i].rcpt, '@') + 1);
	}
	/* Then the large ones, from the work queue. */
	assert_true(run_until(fx, nparts_is, &nmsgs));
	for (size_t i = 2; i < nmsgs; i++)
		assert_true(read_off_loop(k[i]));
	for (size_t i = 0; i < nmsgs; i++) {
		const char *dom = strchr(msgs[i].rcpt, '@') + 1;

		if (parts.dm[part_for(dom)]->eightbit != msgs[i].eightbit)
			fail_msg("%s, %zu bytes: eightbit %d, want %d", dom,
			    msgs[i].len, parts.dm[part_for(dom)]->eightbit,
			    msgs[i].eightbit);
	}
	for (size_t i = 0; i < nmsgs; i++)
		answer(i, OUTCOME_OK, false);
	assert_true(run_until(fx, settled, NULL));
	assert_int_equal(fx->stats.sent, nmsgs);
}

/*
 * Rule: the bodies read on the loop in one turn add up to at most
 * QMGR_SCAN_INLINE_TURN.  Of 20 old messages of 60 KiB due together
 * (each small enough for the loop), the first turn reads and hands out
 * 17 (17 x 60 KiB fit in 1 MiB, 18 do not); the other 3 are read on the
 * work queue.  The next turn has its whole budget again.
 */
static void
test_oldenv_scan_turn(void **state)
{
	struct fx *fx = *state;
	enum { NMSGS = 20 };
	const size_t len = 60 * 1024, fit = QMGR_SCAN_INLINE_TURN / len;
	const size_t all = NMSGS, more = NMSGS + 1;
	struct queue_sysops ops = queue_sysops_default;
	char id[QUEUE_ID_LEN + 1], addr[32];
	size_t k[NMSGS], on = 0, off = 0, last;

	assert_int_equal(fit, 17);
	assert_true(len <= QMGR_SCAN_INLINE_MAX);
	ops.fsync = no_fsync;		/* speed */
	queue_test_set_sysops(&ops);
	for (size_t i = 0; i < NMSGS; i++) {
		snprintf(addr, sizeof(addr), "r@t%zu.test", i);
		k[i] = queue_old(fx, 2, addr, len, false, id);
	}
	queue_test_set_sysops(NULL);
	start(fx, true);

	/* The first turn: as many as fit. */
	ev_run_once(fx->loop, 0);
	assert_int_equal(parts.n, fit);
	assert_true(run_until(fx, nparts_is, &all));
	for (size_t i = 0; i < NMSGS; i++) {
		if (read_on_loop(k[i]))
			on++;
		else if (read_off_loop(k[i]))
			off++;
		assert_false(parts.dm[i]->eightbit);
	}
	assert_int_equal(on, fit);
	assert_int_equal(off, NMSGS - fit);
	for (size_t i = 0; i < NMSGS; i++)
		answer(i, OUTCOME_OK, false);
	assert_true(run_until(fx, settled, NULL));

	/* A later turn: one more is read on the loop again. */
	last = queue_old(fx, 2, "r@later.test", len, false, id);
	qmgr_add(fx->qm, id);
	ev_run_once(fx->loop, 0);
	assert_int_equal(parts.n, more);
	assert_true(read_on_loop(last));
	answer(NMSGS, OUTCOME_OK, false);
	assert_true(run_until(fx, settled, NULL));
	assert_int_equal(fx->stats.sent, more);
}

/*
 * Rule: the scan's answer goes into the envelope at its next write: a
 * deferred old message (version 1 or 2) is written back as version 3
 * with its body line (its submitter kept), and its next attempt carries
 * the same answer without reading the body again.
 */
static void
test_oldenv_written_back(void **state)
{
	struct fx *fx = *state;
	char id8[QUEUE_ID_LEN + 1], id7[QUEUE_ID_LEN + 1];
	struct rcpt_want w8, w7;
	struct body_watch r8, r7;
	size_t k8, k7, two = 2, four = 4;
	const char *t;

	k8 = queue_old(fx, 1, "a@v1.test", 1000, true, id8);
	k7 = queue_old(fx, 2, "b@v2.test", 1000, false, id7);
	start(fx, true);
	assert_true(run_until(fx, nparts_is, &two));
	assert_true(parts.dm[part_for("v1.test")]->eightbit);
	assert_false(parts.dm[part_for("v2.test")]->eightbit);
	answer(0, OUTCOME_TEMPFAIL, false);
	answer(1, OUTCOME_TEMPFAIL, false);
	w8 = (struct rcpt_want){ id8, "a@v1.test", RCPT_PENDING, 1 };
	w7 = (struct rcpt_want){ id7, "b@v2.test", RCPT_PENDING, 1 };
	assert_true(run_until(fx, env_shows, &w8));
	assert_true(run_until(fx, env_shows, &w7));
	assert_true(run_until(fx, settled, NULL));

	t = env_text(fx, id8);
	if (strncmp(t, "mxrelay-envelope 3\n", 19) != 0 ||
	    strstr(t, "\nbody 8bit\n") == NULL ||
	    strstr(t, "\nsubmitter ") != NULL)
		fail_msg("version 1, 8-bit, deferred:\n%s", t);
	t = env_text(fx, id7);
	if (strncmp(t, "mxrelay-envelope 3\n", 19) != 0 ||
	    strstr(t, "\nbody 7bit\n") == NULL ||
	    strstr(t, "\nsubmitter 33 =www-data\n") == NULL)
		fail_msg("version 2, 7-bit, deferred:\n%s", t);

	/* The next attempt: the same answer, the bodies not read again. */
	r8 = body_reads(k8);
	r7 = body_reads(k7);
	assert_int_equal(qmgr_flush(fx->qm, NULL), 2);
	assert_true(run_until(fx, nparts_is, &four));
	for (size_t i = 2; i < 4; i++)
		assert_int_equal(parts.dm[i]->eightbit,
		    strcmp(parts.domain[i], "v1.test") == 0);
	assert_int_equal(body_reads(k8).on_loop + body_reads(k8).off_loop,
	    r8.on_loop + r8.off_loop);
	assert_int_equal(body_reads(k7).on_loop + body_reads(k7).off_loop,
	    r7.on_loop + r7.off_loop);
	answer(2, OUTCOME_OK, false);
	answer(3, OUTCOME_OK, false);
	assert_true(run_until(fx, settled, NULL));
	assert_int_equal(fx->stats.sent, 2);
}

/*
 * The message id, stranded once for the reason why (see qmgr_strand in
 * qmgr_index.c): still in the spool, not locked, its envelope still of
 * version 2 (nothing learnt), its recipient pending with one attempt,
 * the reason and a retry after retry_min recorded, and all that logged.
 */
static void
assert_stranded(struct fx *fx, const char *id, const char *why)
{
	struct envelope env;
	char path[400], *line;
	struct stat st;
	int lockfd;

	snprintf(path, sizeof(path), "%s/data/%s", queue_dir(fx->q), id);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(queue_msg_lock(fx->q, id, &lockfd), 0);
	queue_msg_unlock(lockfd);
	assert_int_equal(strncmp(env_text(fx, id), "mxrelay-envelope 2\n", 19),
	    0);
	assert_int_equal(queue_env_load(fx->q, id, &env), 0);
	assert_int_equal(env.eightbit, ENVELOPE_8BIT_UNKNOWN);
	assert_int_equal(env.nrcpt, 1);
	assert_int_equal(env.rcpt[0].state, RCPT_PENDING);
	assert_int_equal(env.rcpt[0].attempts, 1);
	assert_string_equal(env.rcpt[0].last_reply, why);
	assert_string_equal(env.rcpt[0].status, "4.3.0");
	assert_int_equal(env.rcpt[0].next_try - env.rcpt[0].last_try, 60);
	envelope_free(&env);
	line = xasprintf("%s: %s; next try in 60s (failure 1 in a row)", id,
	    why);
	assert_true(mock_log_contains(line));
	free(line);
}

/*
 * Rule: a body that cannot be read (EIO; on the loop for a small body,
 * on the work queue for a large one) fails the open: the message goes to
 * no delivery, nothing of it stays open (lock and body closed), and it
 * is not lost but stranded: kept in the spool and in the index, the
 * reason and the retry written into its envelope and logged.
 */
static void
test_oldenv_read_error(void **state)
{
	struct fx *fx = *state;
	char ids[QUEUE_ID_LEN + 1], idb[QUEUE_ID_LEN + 1];
	struct rcpt_want ws, wb;
	char *why;
	size_t ks, kb;

	ks = queue_old(fx, 2, "a@small.test", 1000, true, ids);
	kb = queue_old(fx, 2, "b@big.test", QMGR_SCAN_INLINE_MAX + 1, true, idb);
	body_fail(ks);
	body_fail(kb);
	start(fx, true);
	ws = (struct rcpt_want){ ids, "a@small.test", RCPT_PENDING, 1 };
	wb = (struct rcpt_want){ idb, "b@big.test", RCPT_PENDING, 1 };
	assert_true(run_until(fx, env_shows, &ws));
	assert_true(run_until(fx, env_shows, &wb));
	assert_true(run_until(fx, settled, NULL));
	assert_int_equal(qmgr_in_flight(fx->qm), 0);
	assert_true(read_on_loop(ks));
	assert_true(read_off_loop(kb));

	why = qmgr_why_errno("cannot read the message", EIO);
	assert_stranded(fx, ids, why);
	assert_stranded(fx, idb, why);
	free(why);
	assert_int_equal(qmgr_count(fx->qm), 2);
	/* Half a second more: no part, the retry is a minute away. */
	for (int i = 0; i < 50; i++)
		ev_run_once(fx->loop, 10);
	assert_int_equal(parts.n, 0);
	assert_int_equal(qmgr_in_flight(fx->qm), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group_recorded_at_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_persists, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_window_counts_closing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_load_slice, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oldenv_scan_bounds, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oldenv_scan_turn, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oldenv_written_back, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_oldenv_read_error, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
