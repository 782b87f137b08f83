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
 */
#include "config.h"

#include <sys/resource.h>

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

#define MAXPARTS	16

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
 * Queue a message for rcpts (NULL-terminated), each due at next_try (0:
 * at once); its id into id.
 */
static void
queue_msg_at(struct fx *fx, const char *const *rcpts, time_t next_try,
    char *id)
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	struct queue_new *qn;
	struct envelope env;

	envelope_init(&env);
	env.sender = xstrdup("s@sender.test");
	for (; *rcpts != NULL; rcpts++) {
		envelope_add_rcpt(&env, *rcpts, NULL);
		env.rcpt[env.nrcpt - 1].next_try = next_try;
	}
	assert_int_equal(queue_new_begin(fx->q, &qn), 0);
	assert_int_equal(queue_new_write(qn, body, sizeof(body) - 1), 0);
	assert_int_equal(queue_new_commit(qn, &env), 0);
	util_strlcpy(id, env.id, QUEUE_ID_LEN + 1);
	envelope_free(&env);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
