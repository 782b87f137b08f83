/*
 * qmgr_int: what the three files of the queue manager share, and nothing
 * for other modules (they use qmgr.h).  qmgr.c: the pump and the
 * interface; qmgr_msg.c: one attempt of a message (open, parts,
 * outcomes, close, envelope writes); qmgr_index.c: filling the index
 * (the start-up scan, reading unread envelopes), stranded messages and
 * the holds file.
 *
 * Everything here runs on the loop's thread, except the work functions
 * that qmgr_msg.c and qmgr_index.c hand to the work queue.
 */
#ifndef MXRELAY_QMGR_INT_H
#define MXRELAY_QMGR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bounce_batch.h"
#include "delivery.h"
#include "envelope.h"
#include "event.h"
#include "qmgr.h"
#include "scheduler.h"
#include "spool.h"
#include "workq.h"

/* Messages open at once: bounds memory and file descriptors. */
#define QMGR_WINDOW		1000
/* Descriptors kept for sessions, DNS and the spool itself. */
#define QMGR_FD_RESERVE		64
/* Threads for envelope writes and message opens (they fsync and read). */
#define QMGR_THREADS		4
/* A group due while its message is being closed waits this long (ms). */
#define QMGR_CLOSING_WAIT_MS	100
/* Removals are made durable in groups, at most this often (ms). */
#define QMGR_FLUSH_MS		50
/* The longest sleep between two looks at the index (a clock may step). */
#define QMGR_MAX_SLEEP_MS	60000
/*
 * The daemon's start-up scan reads this many envelopes per turn of the
 * loop, so that what is indexed is delivered while the scan goes on.
 */
#define QMGR_SCAN_SLICE		1000
/*
 * Old envelopes (versions 1 and 2) do not record whether the body has
 * 8-bit bytes: a body up to QMGR_SCAN_INLINE_MAX is scanned on the loop
 * when the message opens, as long as the bodies scanned so in this turn
 * of the loop stay within QMGR_SCAN_INLINE_TURN (so that a cold spool of
 * old messages cannot stall the listener); the others on the work queue.
 * The answer goes into the envelope at its next write (version 3).
 */
#define QMGR_SCAN_INLINE_MAX	(64 * 1024)
#define QMGR_SCAN_INLINE_TURN	(1024 * 1024)

struct qmsg;

/* The glue's notes on a message (sched_msg.udata), made when needed. */
struct qnote {
	unsigned	 strand_fails;	/* failures in a row (open, lock, read) */
	time_t		 strand_since;	/* age of an unreadable one's files */
	char		*strand_why;	/* the last such failure */
	struct qmsg	*open;
};

/* One group in flight: a part for the engine. */
struct qpart {
	struct delivery_msg	 dm;
	struct qmsg		*m;
	struct sched_group	*g;
	size_t			*idx;	/* envelope index of each dm.rcpt */
};

enum open_step { OPEN_OK, OPEN_LOCK, OPEN_ENV, OPEN_BODY, OPEN_READ };

/* An open message: locked, envelope in memory, body open. */
struct qmsg {
	struct qmgr		*qm;
	struct sched_msg	*sm;
	char			 id[QUEUE_ID_LEN + 1];
	struct envelope		 env;
	int			 lockfd;
	int			 body_fd;
	bool			 eightbit;
	bool			 ready;		/* open (or failed to) */
	bool			 closing;	/* the last group is back */
	bool			 writing;	/* an envelope write is out */
	bool			 dirty;		/* changed since the last write */
	enum open_step		 failed;	/* opening: where it failed */
	int			 err;		/* ... and errno */
	bool			*busy;		/* per recipient: in a part */
	bool			*report;	/* per recipient: for the DSN */
	struct sched_pick	*waiting;	/* groups handed out before ready */
	size_t			 nwaiting;
	struct qmsg		*prev, *next;	/* the open list */
};

struct qmgr {
	struct ev_loop		*loop;
	struct queue		*q;
	struct qmgr_conf	 c;		/* hostname: the caller's */
	struct delivery_engine	*engine;
	struct qmgr_opts	 opts;
	struct qmgr_stats	*stats;
	bool			 stopped;
	bool			 freeing;

	struct sched		*sched;
	struct workq		*wq;
	struct qmsg		*open;		/* open messages */
	size_t			 nopen;
	unsigned		 window;
	struct ev_timer		 tick;
	struct ev_timer		 flush;
	struct queue_scan	*scan;		/* the start-up scan, in slices */
	struct ev_timer		 scan_next;
	bool			 holds_writing;
	bool			 holds_dirty;
	uint64_t		 scan_left;	/* QMGR_SCAN_INLINE_TURN's rest */
	struct bounce_batch	*bounces;	/* qmgr_dsn.c */
	struct ev_timer		 bounce_timer;
};

/* qmgr.c */
int64_t		 qmgr_wall_ms(void);	/* envelope times are wall clock */
void		 qmgr_set_text(char **, const char *);
void		 qmgr_kick(struct qmgr *, uint64_t ms);
void		 qmgr_kick_flush(struct qmgr *);

/*
 * qmgr_msg.c: a group the scheduler handed out (SCHED_RUN).  False when
 * it would open one message too many (messages still writing their last
 * state count too): it goes back for a moment, and the pump should wait.
 */
bool		 qmgr_group_start(struct qmgr *, const struct sched_pick *,
		    int64_t now);
/* qmgr_msg.c: m's envelope was changed in memory: write it (qmgr_admin.c). */
void		 qmgr_msg_changed(struct qmsg *);

/* qmgr_index.c */
struct qnote	*qmgr_note(struct sched_msg *);		/* made when missing */
void		 qmgr_note_free(struct sched_msg *);
void		 qmgr_note_submitter(struct sched_msg *, const struct envelope *);
void		 qmgr_index_set(struct qmgr *, struct sched_msg *,
		    const struct envelope *, int64_t now);
void		 qmgr_index_forget(struct qmgr *, struct sched_msg *);
/* SCHED_LOAD: read the envelope (unlocked) and index its groups. */
void		 qmgr_index_load(struct qmgr *, struct sched_msg *, bool force,
		    int64_t now);
/* The next slice of the start-up scan (a timer callback). */
void		 qmgr_on_scan(void *);
void		 qmgr_strand(struct qmgr *, struct sched_msg *,
		    struct envelope *, const char *why, bool force);
char		*qmgr_why_errno(const char *what, int err);
void		 qmgr_holds_save(struct qmgr *);

/*
 * qmgr_dsn.c: the notifications to senders.  qmgr_dsn_init/_conf/_free
 * with qmgr_new, qmgr_set_conf and qmgr_free; qmgr_dsn_flush(qm) sends
 * what bounce_interval collected (at qmgr_stop and qmgr_free).
 * qmgr_dsn_failed: the recipients with report[i] set failed: 0 when they
 * may be marked bounced (notice queued, collected, or not to be sent),
 * -1 when they must be kept.  qmgr_dsn_delay: after an attempt, the
 * delay warning when it is due (true: env changed, to be written).
 */
void		 qmgr_dsn_init(struct qmgr *);
void		 qmgr_dsn_conf(struct qmgr *);
void		 qmgr_dsn_flush(struct qmgr *);
void		 qmgr_dsn_free(struct qmgr *);
int		 qmgr_dsn_failed(struct qmgr *, const struct envelope *,
		    const bool *report, int body_fd);
bool		 qmgr_dsn_delay(struct qmgr *, struct envelope *, int body_fd);

#endif
