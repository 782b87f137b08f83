/*
 * qadmin: queue administration of one message in the spool, under its
 * lock: hold, release, requeue, delete (with a DSN when asked).  mxrelay
 * hold|release|requeue|delete uses it when no mxrelayd runs on the spool
 * (sendmail_admin.c), and mxrelayd's queue manager for a message that it
 * does not have open (qmgr_admin.c), so that both change an envelope the
 * same way and log the same line.  See mxrelay(8), QUEUE ADMINISTRATION.
 */
#ifndef MXRELAY_QADMIN_H
#define MXRELAY_QADMIN_H

#include <stdbool.h>
#include <time.h>

#include "envelope.h"
#include "spool.h"

enum qadmin_action {
	QADMIN_HOLD,		/* flag ENVELOPE_F_HOLD: never attempted */
	QADMIN_RELEASE,		/* clear it; the pending recipients due now */
	QADMIN_REQUEUE,		/* the pending recipients due now (not held) */
	QADMIN_DELETE,		/* remove, with a DSN when bounce is set */
};

struct qadmin_req {
	enum qadmin_action	 action;
	bool			 bounce;	/* delete: DSN "failed" per pending rcpt */
	const char		*domain;	/* only messages with a pending
						   recipient there; NULL: any */
	const char		*hostname;	/* the DSN's Reporting-MTA */
};

/* What happened to one message. */
enum qadmin_result {
	QADMIN_DONE,		/* changed (and logged) */
	QADMIN_NOOP,		/* already so, held (requeue), or not selected */
	QADMIN_GONE,		/* no such message, or nothing pending */
	QADMIN_BUSY,		/* locked by someone else: try again */
	QADMIN_ERROR,		/* the spool failed (errno, logged) */
};

/* Results over several messages. */
struct qadmin_count {
	size_t		 done, noop, gone, busy, failed;
};
void	 qadmin_count_add(struct qadmin_count *, enum qadmin_result);

/* "hold", "release", "requeue", "delete": the request's word too. */
const char *qadmin_action_to_text(enum qadmin_action);
/* The word back; -1 when it is none of them ("bounce" is delete+bounce). */
int	 qadmin_action_from_text(const char *, enum qadmin_action *,
	    bool *bounce);
/* "held", "released", "requeued", "deleted". */
const char *qadmin_done_text(enum qadmin_action);

/*
 * A domain that -d may name: 1 to QADMIN_DOMAIN_MAX octets of letters,
 * digits, '-', '_', '.' and UTF-8 (octets over 0x7f); no '@', no space.
 */
#define QADMIN_DOMAIN_MAX	253
bool	 qadmin_domain_valid(const char *);

/*
 * Whether env is selected: it has a pending recipient, and (domain not
 * NULL) one whose domain is domain, compared without case.
 */
bool	 qadmin_selects(const struct envelope *, const char *domain);

/*
 * Whether a scan of the spool should pick env for req: selected, and not
 * already as the action makes it (held for hold, not held for release,
 * held for requeue).  Read without the lock: qadmin_apply() looks again.
 */
bool	 qadmin_wanted(const struct envelope *, const struct qadmin_req *);

/*
 * The change to an envelope alone (no I/O): hold sets the flag, release
 * clears it, and release and requeue set next_try of every pending
 * recipient to 0 (at once).  Requeue leaves a held message alone.  Not
 * for delete.  Returns true when env changed.
 */
bool	 qadmin_change(struct envelope *, enum qadmin_action);

/*
 * The change on message id in the spool, under its lock: the envelope
 * is read, checked against req->domain, changed and written back, or
 * the message removed (delete; with bounce, a DSN is queued first, and
 * when that fails the message is kept: QADMIN_ERROR).  out (may be NULL)
 * gets the envelope as written; newid (QUEUE_ID_LEN + 1) the DSN's id,
 * or "".  One log line per change.
 */
enum qadmin_result qadmin_apply(struct queue *, const char *id,
	    const struct qadmin_req *, struct envelope *out, char *newid);

/* The log line of a change: "ID: held by the administrator". */
void	 qadmin_log(const char *id, enum qadmin_action, const char *newid,
	    bool bounce);

#endif
