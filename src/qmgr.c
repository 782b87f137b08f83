/*
 * qmgr: the queue manager, glue between the spool (queue/spool.h), the
 * scheduler (scheduler.h, which decides what goes when) and the delivery
 * engine (delivery.h).  See qmgr.h and ARCHITECTURE.md.  This file: the
 * pump (hand out what the scheduler says is due, while the window has
 * room) and the interface; qmgr_msg.c makes one attempt of a message,
 * qmgr_index.c fills the index.
 *
 * The window: each open message holds two descriptors (its lock and its
 * body), so at most fd_window() messages are open at once; the scheduler
 * keeps one destination from taking more of it than it can work on.
 */
#include "config.h"

#include <sys/resource.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "log.h"
#include "qmgr.h"
#include "qmgr_int.h"
#include "scheduler.h"
#include "spool.h"
#include "util.h"
#include "workq.h"

static void	 on_tick(void *);
static void	 on_flush(void *);

/* The wall clock in ms (envelope times are wall-clock seconds). */
int64_t
qmgr_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
qmgr_set_text(char **field, const char *text)
{
	free(*field);
	*field = text != NULL && *text != '\0' ? xstrdup(text) : NULL;
}

/*
 * Pumping: hand out what is due while the window has room.
 */

void
qmgr_kick(struct qmgr *qm, uint64_t ms)
{
	if (qm->stopped || qm->freeing)
		return;
	ev_timer_add_earlier(qm->loop, &qm->tick, ms);
}

void
qmgr_kick_flush(struct qmgr *qm)
{
	if (!ev_timer_pending(&qm->flush))
		ev_timer_add(qm->loop, &qm->flush, QMGR_FLUSH_MS);
}

static void
on_flush(void *arg)
{
	struct qmgr *qm = arg;

	if (queue_flush(qm->q) == -1)
		log_warn("%s: finishing removals", queue_dir(qm->q));
}

static void
on_tick(void *arg)
{
	struct qmgr *qm = arg;
	int64_t now = qmgr_wall_ms(), wake = -1;
	struct sched_pick p;
	size_t loads = 0;

	if (qm->opts.daemon)
		delivery_gc(qm->engine);
	qm->scan_left = QMGR_SCAN_INLINE_TURN;
	while (!qm->stopped) {
		switch (sched_next(qm->sched, now, &p, &wake)) {
		case SCHED_LOAD:
			qmgr_index_load(qm, p.msg, p.force, now);
			/* Envelopes are read here: a slice per turn of the loop. */
			if (++loads < QMGR_SCAN_SLICE)
				continue;
			wake = now;
			break;
		case SCHED_RUN:
			if (qmgr_group_start(qm, &p, now))
				continue;
			wake = now + QMGR_CLOSING_WAIT_MS;
			break;
		case SCHED_NONE:
			break;
		}
		break;
	}
	if (!qm->stopped && wake >= 0)
		qmgr_kick(qm, wake - now > QMGR_MAX_SLEEP_MS ? QMGR_MAX_SLEEP_MS :
		    (uint64_t)(wake > now ? wake - now : 0));
}

/*
 * Each open message holds two descriptors (lock and body).  Raise the
 * soft limit as far as allowed and size the window to fit beside the
 * connections and whatever the caller keeps for itself.
 */
static unsigned
fd_window(unsigned concurrency, unsigned reserve)
{
	struct rlimit rl;
	rlim_t keep = (rlim_t)concurrency + QMGR_FD_RESERVE + reserve;
	rlim_t want = 2 * QMGR_WINDOW + keep;
	rlim_t have;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 100;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ?
		    want : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	have = rl.rlim_cur;
	if (have <= keep + 2)
		return 1;
	have = (have - keep) / 2;
	return have < QMGR_WINDOW ? (unsigned)have : QMGR_WINDOW;
}

static void
sched_conf_of(const struct qmgr *qm, const struct qmgr_conf *c,
    struct sched_conf *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->retry_min_ms = c->retry_min_ms;
	sc->retry_max_ms = c->retry_max_ms;
	sc->lifetime_ms = c->lifetime_ms;
	sc->relayhost = c->relayhost;
	/* See struct sched_conf: one part queued behind each connection. */
	sc->dest_limit = 2 * (c->domain_concurrency > 0 ?
	    c->domain_concurrency : 1);
	sc->window = qm->window;
	sc->daemon = qm->opts.daemon;
}

/*
 * The interface.
 */

struct qmgr *
qmgr_new(struct ev_loop *loop, struct queue *q, const struct qmgr_conf *c,
    struct delivery_engine *engine, const struct qmgr_opts *o,
    struct qmgr_stats *stats)
{
	struct qmgr *qm = xcalloc(1, sizeof(*qm));
	struct sched_conf sc;

	qm->loop = loop;
	qm->q = q;
	qm->c = *c;
	qm->engine = engine;
	qm->opts = *o;
	qm->stats = stats;
	qm->window = fd_window(c->concurrency, o->fd_reserve);
	sched_conf_of(qm, c, &sc);
	qm->sched = sched_new(&sc);
	if ((qm->wq = workq_new(loop, QMGR_THREADS)) == NULL)
		fatal("queue manager: work queue");
	ev_timer_init(&qm->tick, on_tick, qm);
	ev_timer_init(&qm->flush, on_flush, qm);
	ev_timer_init(&qm->scan_next, qmgr_on_scan, qm);
	qmgr_dsn_init(qm);
	return qm;
}

void
qmgr_free(struct qmgr *qm)
{
	struct sched_msg *sm, *next;

	if (qm == NULL)
		return;
	/* Writes already out finish; what is in flight is abandoned. */
	qm->freeing = true;
	workq_free(qm->wq);
	ev_timer_del(qm->loop, &qm->tick);
	ev_timer_del(qm->loop, &qm->flush);
	ev_timer_del(qm->loop, &qm->scan_next);
	queue_scan_end(qm->scan);
	qmgr_dsn_flush(qm);
	qmgr_dsn_free(qm);
	on_flush(qm);
	for (sm = sched_msg_next(qm->sched, NULL); sm != NULL; sm = next) {
		next = sched_msg_next(qm->sched, sm);
		if (sm->udata != NULL && ((struct qnote *)sm->udata)->open == NULL)
			qmgr_note_free(sm);
	}
	sched_free(qm->sched);
	free(qm);
}

void
qmgr_add(struct qmgr *qm, const char *id)
{
	if (!queue_id_valid(id) || sched_msg_find(qm->sched, id) != NULL)
		return;
	sched_msg_add(qm->sched, id, qmgr_wall_ms(), false);
	qmgr_kick(qm, 0);
}

void
qmgr_add_env(struct qmgr *qm, const struct envelope *env)
{
	struct sched_msg *sm;
	int64_t now;
	time_t due;

	/* Nothing pending (or odd): the usual way, from the spool. */
	if (!queue_id_valid(env->id) || !sched_env_next_due(env, &due)) {
		qmgr_add(qm, env->id);
		return;
	}
	now = qmgr_wall_ms();
	/*
	 * The spool watch may have named it first: then its envelope is
	 * still to be read (arrival 0, its SCHED_LOAD job waiting), unless
	 * that was done already.
	 */
	if ((sm = sched_msg_find(qm->sched, env->id)) == NULL)
		sm = sched_msg_add(qm->sched, env->id, now, false);
	else if (sm->arrival != 0 || sm->running != 0)
		return;
	/* What qmgr_index_load() does with the envelope it reads. */
	qmgr_index_set(qm, sm, env, now);
	qmgr_kick(qm, 0);
}

void
qmgr_set_submitter(struct qmgr *qm, const char *id, uint32_t uid)
{
	struct sched_msg *sm = sched_msg_find(qm->sched, id);

	if (sm != NULL) {
		sm->has_submitter = true;
		sm->submit_uid = uid;
	}
}

size_t
qmgr_submitted_by(const struct qmgr *qm, uint32_t uid, struct strlist *ids)
{
	size_t n = 0;

	for (const struct sched_msg *sm = sched_msg_next(qm->sched, NULL);
	    sm != NULL; sm = sched_msg_next(qm->sched, sm))
		if (sm->has_submitter && sm->submit_uid == uid) {
			strlist_add(ids, sm->id);
			n++;
		}
	return n;
}

size_t
qmgr_flush(struct qmgr *qm, const char *id)
{
	struct sched_msg *sm = NULL;
	size_t n;

	if (id != NULL && (sm = sched_msg_find(qm->sched, id)) == NULL)
		return 0;
	if ((n = sched_flush(qm->sched, sm)) > 0)
		qmgr_kick(qm, 0);
	return n;
}

void
qmgr_set_conf(struct qmgr *qm, const struct qmgr_conf *c,
    struct delivery_engine *engine)
{
	struct sched_conf sc;

	qm->c = *c;
	qm->engine = engine;
	sched_conf_of(qm, c, &sc);
	sched_set_conf(qm->sched, &sc);
	qmgr_dsn_conf(qm);
	qmgr_kick(qm, 0);
}

void
qmgr_stop(struct qmgr *qm)
{
	qm->stopped = true;
	ev_timer_del(qm->loop, &qm->tick);
	ev_timer_del(qm->loop, &qm->scan_next);
	/* What bounce_interval collected is queued now, not lost. */
	qmgr_dsn_flush(qm);
}

bool
qmgr_done(const struct qmgr *qm)
{
	if (qm->nopen > 0 || qm->holds_writing)
		return false;
	return qm->opts.daemon || qm->stopped || sched_idle(qm->sched);
}

size_t
qmgr_count(const struct qmgr *qm)
{
	return sched_count(qm->sched);
}

size_t
qmgr_in_flight(const struct qmgr *qm)
{
	return qm->nopen;
}

void
qmgr_queue_ages(const struct qmgr *qm, time_t now, time_t *oldest_age,
    size_t *deferred)
{
	const struct sched_msg *sm = NULL;

	*oldest_age = 0;
	*deferred = 0;
	while ((sm = sched_msg_next(qm->sched, sm)) != NULL) {
		if (sm->arrival != 0 && now - sm->arrival > *oldest_age)
			*oldest_age = now - sm->arrival;
		*deferred += sm->deferred;
	}
}
