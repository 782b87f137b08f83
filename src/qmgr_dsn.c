/*
 * qmgr_dsn: the queue manager's notifications to senders (see
 * qmgr_int.h): non-delivery notices through bounce_batch (at once, or
 * collected per sender for bounce_interval in the daemon; at most
 * bounce_limit_per_sender an hour), and the one delay warning per
 * message (delay_warning_time), recorded in the envelope with
 * ENVELOPE_F_WARNED so that neither a later attempt nor a restart sends
 * it again.  A notice sent at once is queued before the envelope that
 * records it is written: a crash in between may send it twice, never
 * lose it.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "bounce.h"
#include "bounce_batch.h"
#include "envelope.h"
#include "log.h"
#include "qmgr_int.h"
#include "scheduler.h"
#include "util.h"

static void	 batch_conf(const struct qmgr *, struct bounce_batch_conf *);
static void	 on_bounce_timer(void *);
static void	 on_added(void *, const char *);
static void	 arm(struct qmgr *, int64_t, int64_t);

/* One-shot runs send at once: there is no later in them. */
static void
batch_conf(const struct qmgr *qm, struct bounce_batch_conf *bc)
{
	bc->interval_ms = qm->opts.daemon ? qm->c.bounce_interval_ms : 0;
	bc->limit = qm->c.bounce_limit;
}

void
qmgr_dsn_init(struct qmgr *qm)
{
	struct bounce_batch_conf bc;

	batch_conf(qm, &bc);
	qm->bounces = bounce_batch_new(&bc);
	ev_timer_init(&qm->bounce_timer, on_bounce_timer, qm);
}

void
qmgr_dsn_conf(struct qmgr *qm)
{
	struct bounce_batch_conf bc;

	batch_conf(qm, &bc);
	bounce_batch_set_conf(qm->bounces, &bc);
}

void
qmgr_dsn_flush(struct qmgr *qm)
{
	ev_timer_del(qm->loop, &qm->bounce_timer);
	(void)bounce_batch_flush(qm->bounces, qm->q, qm->c.hostname,
	    qmgr_wall_ms(), true, on_added, qm);
}

void
qmgr_dsn_free(struct qmgr *qm)
{
	ev_timer_del(qm->loop, &qm->bounce_timer);
	bounce_batch_free(qm->bounces);
	qm->bounces = NULL;
}

static void
on_added(void *arg, const char *id)
{
	qmgr_add(arg, id);
}

static void
arm(struct qmgr *qm, int64_t due, int64_t now)
{
	if (due < 0)
		return;
	ev_timer_add_earlier(qm->loop, &qm->bounce_timer,
	    due > now ? (uint64_t)(due - now) : 0);
}

static void
on_bounce_timer(void *arg)
{
	struct qmgr *qm = arg;
	int64_t now = qmgr_wall_ms();

	arm(qm, bounce_batch_flush(qm->bounces, qm->q, qm->c.hostname, now,
	    false, on_added, qm), now);
}

int
qmgr_dsn_failed(struct qmgr *qm, const struct envelope *env,
    const bool *report, int body_fd)
{
	char newid[QUEUE_ID_LEN + 1];
	int64_t now = qmgr_wall_ms(), due;

	switch (bounce_batch_add(qm->bounces, qm->q, env, report, body_fd,
	    qm->c.hostname, now, newid, &due)) {
	case BOUNCE_BATCH_SENT:
		qmgr_add(qm, newid);
		return 0;
	case BOUNCE_BATCH_HELD:
		arm(qm, due, now);
		return 0;
	case BOUNCE_BATCH_DROPPED:
		return 0;
	case BOUNCE_BATCH_NONE:
		log_info("%s: no notification: null sender", env->id);
		return 0;
	default:
		return -1;
	}
}

/*
 * The recipients a delay warning names: pending ones that were tried and
 * deferred.  Returns how many.
 */
static size_t
delayed_rcpts(const struct envelope *env, bool *report)
{
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		report[i] = r->state == RCPT_PENDING && r->attempts > 0;
		n += report[i];
	}
	return n;
}

bool
qmgr_dsn_delay(struct qmgr *qm, struct envelope *env, int body_fd)
{
	const struct qmgr_conf *c = &qm->c;
	struct bounce_notice notice = { BOUNCE_DELAYED, 0, NULL, NULL, 0,
	    false };
	char newid[QUEUE_ID_LEN + 1];
	time_t now = time(NULL);
	bool *report;
	size_t n;
	bool sent = false;

	if (c->delay_warning_ms <= 0 || (env->flags & ENVELOPE_F_WARNED) ||
	    env->sender == NULL || env->sender[0] == '\0' ||
	    now < env->arrival + sched_ms_to_s(c->delay_warning_ms))
		return false;
	report = xcalloc(env->nrcpt > 0 ? env->nrcpt : 1, sizeof(*report));
	if ((n = delayed_rcpts(env, report)) == 0)
		goto done;
	if (c->lifetime_ms > 0)
		notice.until = env->arrival + sched_ms_to_s(c->lifetime_ms);
	if (bounce_queue_notice(qm->q, env, report, body_fd, &notice,
	    c->hostname, now, newid) == -1) {
		/* The next attempt tries again. */
		log_warn("%s: cannot queue the delay notification", env->id);
		goto done;
	}
	env->flags |= ENVELOPE_F_WARNED;
	sent = true;
	bounce_log(env->id, BOUNCE_DELAYED, newid, n, 0);
	qmgr_add(qm, newid);
done:
	free(report);
	return sent;
}
