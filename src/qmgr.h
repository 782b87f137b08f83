/*
 * qmgr: the queue manager, glue between the spool, the scheduler
 * (scheduler.h: the in-memory index, due times, destination holds) and
 * the delivery engine.  Each message's pending recipients are split by
 * destination into groups; each group is handed to the engine when due,
 * and its outcomes are written to the envelope as soon as it is back
 * (retry time with backoff; delivered recipients are never tried again),
 * on the work queue.  When a message's last group is back, permanent
 * failures and expired recipients get one DSN, and a message with
 * nothing pending is removed.  At most a window of messages is open at a
 * time, sized to the descriptors available, and one destination never
 * holds more of it than it can work on.
 *
 * Two modes:
 *  - one-shot (mxrelay -q, -qf, -qI): the groups due at load time, and
 *    the notifications they cause, are tried once; qmgr_done() tells
 *    when the run is over.
 *  - daemon (mxrelayd): a group that stays pending goes back into the
 *    index at its next due time; a destination that failed as a whole
 *    (no exchanger reachable, DNS failing) is held back for a backoff
 *    delay of its own, so its other messages wait in the index instead of
 *    each trying the dead exchangers again.  Holds are kept in the
 *    spool's holds file, so that a restart keeps them (mxrelayd(8)).
 *    Idle destinations are forgotten by the engine so that DNS answers
 *    and failed routes are looked at anew.
 *
 * In both modes a message that cannot be opened, locked or read (but is
 * not merely locked by another runner) is retried with the backoff of a
 * deferred delivery, each failure logged with the reason, which is also
 * written into its envelope for mailq when that can be read and written;
 * past queue_lifetime it is moved into corrupt/.  Envelopes that the
 * start-up scan could not read are indexed too.
 */
#ifndef MXRELAY_QMGR_H
#define MXRELAY_QMGR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery.h"
#include "event.h"

struct envelope;
struct queue;
struct qmgr;

/* What a run did, for its summary line. */
struct qmgr_stats {
	unsigned	 messages;	/* messages attempted */
	unsigned	 sent;		/* recipients delivered */
	unsigned	 deferred;
	unsigned	 bounced;
};

/* What the queue manager takes from the configuration (mxrelay.conf(5)). */
struct qmgr_conf {
	const char	*hostname;	/* Reporting-MTA of notifications */
	int64_t		 retry_min_ms;
	int64_t		 retry_max_ms;
	int64_t		 lifetime_ms;	/* queue_lifetime */
	bool		 relayhost;	/* one destination for every domain */
	unsigned	 concurrency;
	unsigned	 domain_concurrency;
	/* Notifications (mxrelay(8), "Retries and bounces"). */
	int64_t		 delay_warning_ms;	/* 0: no delay warning */
	int64_t		 bounce_interval_ms;	/* 0: at once (one-shot: always) */
	unsigned	 bounce_limit;		/* per sender an hour; 0: none */
};

struct qmgr_opts {
	bool		 daemon;
	bool		 force;		/* one-shot -qf: due or not */
	const char	*only_id;	/* one-shot -qI: this message only */
	unsigned	 fd_reserve;	/* descriptors to leave for others */
};

struct qmgr	*qmgr_new(struct ev_loop *, struct queue *,
		    const struct qmgr_conf *, struct delivery_engine *,
		    const struct qmgr_opts *, struct qmgr_stats *);
/*
 * Abandon what is in flight and free (envelope writes already started
 * are finished first).
 */
void		 qmgr_free(struct qmgr *);
/* Scan the spool into the index.  0, or -1 with errno set. */
int		 qmgr_load(struct qmgr *);
/*
 * A new message in the spool (from the listener, a notification, or a
 * message dropped by mxrelay): due at once.  Known ids are left alone.
 */
void		 qmgr_add(struct qmgr *, const char *id);
/*
 * The same for a message just committed by this process, whose envelope
 * the caller holds: indexed from it at once, without reading it back.
 */
void		 qmgr_add_env(struct qmgr *, const struct envelope *);
/*
 * The local user who queued message id (the pickup knows it at once; the
 * index learns it otherwise when it reads the envelope).
 */
void		 qmgr_set_submitter(struct qmgr *, const char *id, uint32_t uid);
/* Append the ids of the messages that uid queued; returns how many. */
struct strlist;
size_t		 qmgr_submitted_by(const struct qmgr *, uint32_t uid,
		    struct strlist *ids);
/*
 * Try now, whatever the retry times and destination backoffs: every
 * message (id NULL) or one.  Returns how many were scheduled.
 */
size_t		 qmgr_flush(struct qmgr *, const char *id);
/*
 * Queue administration (qadmin.h, mxrelay hold|release|requeue|delete):
 * message id, or (id NULL) every message in the spool that req selects.
 * A message being delivered now is changed when its attempt is over
 * (hold, release, requeue) or left alone as busy (delete); see
 * qmgr_admin.c.  Counts in *c.  0, or -1 (errno) when the spool cannot
 * be scanned.
 */
struct qadmin_req;
struct qadmin_count;
int		 qmgr_admin(struct qmgr *, const char *id,
		    const struct qadmin_req *, struct qadmin_count *);
/* New configuration and engine for the next messages (reload). */
void		 qmgr_set_conf(struct qmgr *, const struct qmgr_conf *,
		    struct delivery_engine *);
/* Start no more deliveries (shutting down). */
void		 qmgr_stop(struct qmgr *);
/* Nothing loaded; in one-shot mode also nothing left due. */
bool		 qmgr_done(const struct qmgr *);
size_t		 qmgr_count(const struct qmgr *);	/* messages indexed */
size_t		 qmgr_in_flight(const struct qmgr *);
/*
 * For the metrics: the age in seconds of the oldest message indexed (0
 * without one whose envelope was read) and the pending recipients that
 * were tried before, as of the last time each envelope was read.
 */
void		 qmgr_queue_ages(const struct qmgr *, time_t now,
		    time_t *oldest_age, size_t *deferred);

#endif
