/*
 * scheduler: when to try what, as pure data.  Two layers:
 *
 *  - retry arithmetic on the envelope's time_t seconds, with durations
 *    (retry_min, retry_max, queue_lifetime) in ms like everywhere else
 *    in the program (sched_backoff, sched_next_try, sched_rcpt_due,
 *    sched_env_next_due, sched_rcpt_outcome); results saturate instead
 *    of overflowing;
 *  - struct sched, the queue's in-memory index: messages by queue id,
 *    each message's pending recipients in groups by destination (the
 *    recipient's domain in lower case, or "" for the relayhost), each
 *    group with its due time in one heap, and per destination its hold
 *    (backoff after it failed as a whole), its probe and its groups in
 *    flight.  Times here are int64 milliseconds of the wall clock.
 *
 * No I/O, no clock, no logging: callers pass `now`, read the events the
 * calls return and log or write what they say, so that the tests can
 * drive it through any sequence of dates.  ARCHITECTURE.md shows where
 * it sits between the spool, the queue manager (qmgr.c) and delivery.
 */
#ifndef MXRELAY_SCHEDULER_H
#define MXRELAY_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "envelope.h"
#include "hash.h"
#include "heap.h"
#include "outcome.h"
#include "util.h"

/*
 * Delay after the attempts-th failed attempt: retry_min * 2^(attempts-1),
 * in the unit of the bounds (ms in the program),
 * capped at retry_max.  0 attempts give 0 (never tried: at once).
 * Negative bounds count as 0; a retry_max below retry_min is raised to
 * retry_min.  Never overflows, whatever attempts is.
 */
int64_t	 sched_backoff(unsigned attempts, int64_t retry_min, int64_t retry_max);

/* A duration in ms as whole seconds, rounded up; 0 or less gives 0. */
time_t	 sched_ms_to_s(int64_t ms);

/*
 * After a temporary failure at `now` (attempts counts it), when to try
 * next (seconds; the durations are ms, rounded up to seconds).  A
 * recipient of a message that arrived at `arrival` expires at
 * arrival + lifetime (queue_lifetime; 0 or less: at the first temporary
 * failure).  *expired is set when now has reached that point: the caller
 * must bounce the recipient, and the return value is now.  Otherwise
 * the return value is now + sched_backoff(), but never later than the
 * expiry time, so that one last attempt is made when the lifetime ends
 * rather than up to retry_max after it.  An arrival in the future (a
 * clock that stepped back) counts as now.
 */
time_t	 sched_next_try(time_t now, unsigned attempts, int64_t retry_min_ms,
	    int64_t retry_max_ms, time_t arrival, int64_t lifetime_ms,
	    bool *expired);

/*
 * True when the recipient should be attempted now: it is pending and its
 * next_try has come, or it is pending and force is set (-qf).  Delivered
 * and bounced recipients are never due.
 */
bool	 sched_rcpt_due(const struct envelope_rcpt *, time_t now, bool force);

/*
 * The earliest next_try over the pending recipients of env, in *due.
 * Returns false (and leaves *due alone) when none is pending: the
 * message is finished.
 */
bool	 sched_env_next_due(const struct envelope *, time_t *due);

/*
 * What one attempt's outcome does to a recipient (attempts and last_try
 * counted, at now; texts are the caller's):
 *  - SCHED_RCPT_DELIVERED: state delivered, never tried again;
 *  - SCHED_RCPT_DEFERRED: next_try by sched_next_try();
 *  - SCHED_RCPT_BOUNCE: a permanent failure, or SCHED_RCPT_EXPIRED: a
 *    temporary one past arrival + lifetime.  The recipient stays pending
 *    (next_try unchanged, or now when expired) until the caller has
 *    queued the notification and marks it bounced, so that a crash in
 *    between tries it again rather than losing the notification.
 */
enum sched_rcpt_next {
	SCHED_RCPT_DELIVERED,
	SCHED_RCPT_DEFERRED,
	SCHED_RCPT_BOUNCE,
	SCHED_RCPT_EXPIRED,
};
enum sched_rcpt_next sched_rcpt_outcome(struct envelope_rcpt *, enum outcome,
	    time_t now, int64_t retry_min_ms, int64_t retry_max_ms,
	    time_t arrival, int64_t lifetime_ms);

/*
 * The index.
 */

/* A destination may not try again before its probe is out this long. */
#define SCHED_PROBE_WAIT_MS	5000

struct sched_conf {
	int64_t		 retry_min_ms;
	int64_t		 retry_max_ms;
	int64_t		 lifetime_ms;	/* queue_lifetime */
	bool		 relayhost;	/* one destination, "", for every domain */
	/*
	 * Groups in flight per destination.  A destination can work on
	 * domain_concurrency connections; twice that keeps one part queued
	 * behind each connection so that a finished part is followed at
	 * once, while the rest waits parked on the destination instead of
	 * taking the window from the others (no head-of-line blocking).
	 */
	unsigned	 dest_limit;
	unsigned	 window;	/* messages open at once */
	/*
	 * Daemon mode: destination holds and probes, and a group still
	 * pending after an attempt goes back into the index.  One-shot mode
	 * (mxrelay -q): no holds, each group is tried once, and only the
	 * groups due when a message is indexed (or forced) are kept.
	 */
	bool		 daemon;
};

struct sched_dest;
struct sched_msg;

/* One message's pending recipients in one destination. */
struct sched_group {
	struct sched_msg	*msg;
	struct sched_dest	*dest;		/* NULL: the envelope is to be read */
	int64_t			 due;		/* ms */
	size_t			 slot;		/* private: heap slot */
	bool			 force;		/* flushed: due or not, held or not */
	bool			 running;	/* handed out, not back yet */
	bool			 parked;	/* private: waits for a slot */
	struct sched_group	*next;		/* private: the message's list */
};

struct sched_msg {
	char			 id[QUEUE_ID_LEN + 1];
	time_t			 arrival;	/* 0 until the envelope is read */
	/* The caller's: the local user who queued it (see qmgr.h). */
	bool			 has_submitter;
	uint32_t		 submit_uid;
	unsigned char		 lock_tries;	/* the caller's */
	void			*udata;		/* the caller's */
	/* The caller's: pending recipients tried before (metrics). */
	unsigned		 deferred;
	/* private */
	struct hash_node	 node;
	struct sched_group	*groups;
	unsigned		 running;	/* groups in flight */
	bool			 force;		/* groups made from it are forced */
	struct strlist		 tried;		/* one-shot: destinations done */
};

struct sched;

struct sched	*sched_new(const struct sched_conf *);
/* Frees every message and destination; udata is the caller's to free first. */
void		 sched_free(struct sched *);
/* New limits (reload); what is in flight stays. */
void		 sched_set_conf(struct sched *, const struct sched_conf *);

struct sched_msg *sched_msg_find(const struct sched *, const char *id);
/* Walk the messages: NULL first, then the one after m; NULL at the end. */
struct sched_msg *sched_msg_next(const struct sched *, const struct sched_msg *m);
size_t		 sched_count(const struct sched *);	/* messages */
size_t		 sched_open(const struct sched *);	/* with groups in flight */
/* Nothing open and nothing waiting: a one-shot run is over. */
bool		 sched_idle(const struct sched *);

/*
 * A message whose envelope is not read yet (new, or unreadable at the
 * scan): one job, SCHED_LOAD, due at due.  force: flushed.  The id must
 * not be indexed already.
 */
struct sched_msg *sched_msg_add(struct sched *, const char *id, int64_t due,
		    bool force);
/*
 * The groups of m from its envelope: one per destination with pending
 * recipients, due at the earliest next_try among them (forced groups at
 * once).  Groups in flight are kept as they are, and their destination's
 * recipients are theirs.  One-shot mode keeps only the groups due by now
 * or forced.  A message on hold (ENVELOPE_F_HOLD) gets none.  Returns
 * the number of groups waiting.
 */
size_t		 sched_msg_set(struct sched *, struct sched_msg *,
		    const struct envelope *, int64_t now);
/* Every waiting group of m (or its SCHED_LOAD job) due at due, unforced. */
void		 sched_msg_delay(struct sched *, struct sched_msg *, int64_t due);
/* Forget m (none of its groups may be in flight). */
void		 sched_msg_remove(struct sched *, struct sched_msg *);
/*
 * Flush: the waiting groups of m (NULL: of every message) due at once,
 * bypassing holds and retry times.  Returns how many messages it named
 * that have groups (a message on hold has none).
 */
size_t		 sched_flush(struct sched *, struct sched_msg *);

/* True when addr's recipient belongs to destination dest. */
bool		 sched_rcpt_in(const struct sched *, const char *addr,
		    const char *dest);
const char	*sched_dest_name(const struct sched_dest *);

enum sched_job {
	SCHED_NONE,	/* nothing now: *wake says when to look again */
	SCHED_LOAD,	/* read msg's envelope, then sched_msg_set() */
	SCHED_RUN,	/* deliver group */
};

struct sched_pick {
	struct sched_msg	*msg;
	struct sched_group	*group;		/* SCHED_RUN */
	const char		*dest;		/* SCHED_RUN: destination name */
	bool			 open;		/* SCHED_RUN: msg's first group in flight */
	bool			 force;		/* due or not (flushed) */
	bool			 probe;		/* SCHED_RUN: first try after a hold */
};

/*
 * The next job at now, in order: forced first, then the earliest due,
 * ties by queue id and destination.  A group of a held destination (not
 * forced, message not past its lifetime) waits until the hold or probe
 * ends; a group whose destination already has dest_limit groups in
 * flight is parked on it until one comes back.  Only groups that can run
 * take the window: when it is full, SCHED_NONE with *wake = -1.
 * Otherwise SCHED_NONE gives the next due time in *wake (-1: none).
 * SCHED_RUN counts the group in flight until sched_group_done() or
 * sched_group_abort().
 */
enum sched_job	 sched_next(struct sched *, int64_t now, struct sched_pick *,
		    int64_t *wake);

/* How a group's attempt went, from the caller's envelope. */
struct sched_result {
	bool		 dest_down;	/* the destination failed as a whole */
	bool		 reached;	/* an exchanger answered a recipient */
	bool		 pending;	/* recipients of it still to try later */
	time_t		 next_try;	/* the earliest of them (seconds) */
};

#define SCHED_EV_HOLD_START	0x01	/* the destination is held back */
#define SCHED_EV_HOLD_END	0x02	/* reachable again after a hold */
#define SCHED_EV_CLOSED		0x04	/* the message's last group is back */

struct sched_event {
	const char	*dest;		/* HOLD_*: its name */
	int64_t		 delay;		/* HOLD_START: ms */
	unsigned	 failures;	/* HOLD_START: episodes in a row */
};

/*
 * A group is back.  Daemon mode: dest_down starts a hold (once per
 * episode: a hold still running is left alone), reached ends one, and a
 * group still pending waits for its next_try.  Returns SCHED_EV_* flags,
 * with details in *ev.  The group may be freed: do not use it after.
 */
unsigned	 sched_group_done(struct sched *, struct sched_group *,
		    const struct sched_result *, int64_t now,
		    struct sched_event *ev);
/*
 * A group could not start (its message could not be locked or read):
 * back to waiting, due at due.  Returns SCHED_EV_CLOSED when it was the
 * message's only group in flight.
 */
unsigned	 sched_group_abort(struct sched *, struct sched_group *,
		    int64_t due);

/*
 * Destination holds, to save and restore them (the spool keeps them
 * across restarts).  sched_hold_next: NULL first, then after *it; the
 * destinations held now or with failures counted.  sched_hold_set makes
 * dest held until `until` after `failures` episodes.
 */
const struct sched_dest *sched_hold_next(const struct sched *,
		    const struct sched_dest *it, const char **name,
		    int64_t *until, unsigned *failures);
void		 sched_hold_set(struct sched *, const char *dest, int64_t until,
		    unsigned failures);
/* The hold of dest: until (0 when none) and the failures in a row. */
int64_t		 sched_hold_until(const struct sched *, const char *dest,
		    unsigned *failures);

#endif
