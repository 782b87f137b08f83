/*
 * bounce_batch: bounce-storm protection between the queue manager and
 * bounce.c.  The recipients of a message that failed are notified to its
 * sender at once (bounce_interval 0), or collected per envelope sender
 * for bounce_interval and sent as one notice that names every recipient
 * with the queue id of its message; and a sender gets at most `limit`
 * non-delivery notices an hour (a combined one counts once), past which
 * the failures are only logged.  The null sender is never notified.
 *
 * What is collected lives in memory only (mxrelay(8), "Retries and
 * bounces", says what a crash within the interval loses); the caller
 * flushes everything before it stops.  Times are wall-clock ms.
 */
#ifndef MXRELAY_BOUNCE_BATCH_H
#define MXRELAY_BOUNCE_BATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "envelope.h"
#include "spool.h"

/* A sender's collected notice goes out at once past this many recipients. */
#define BOUNCE_BATCH_RCPT_MAX	1000
/* A combined notice that could not be queued is tried again after (ms). */
#define BOUNCE_BATCH_RETRY_MS	60000

struct bounce_batch;

struct bounce_batch_conf {
	int64_t		 interval_ms;	/* 0: each message's notice at once */
	unsigned	 limit;		/* notices per sender an hour; 0: none */
};

enum bounce_batch_result {
	BOUNCE_BATCH_SENT,	/* queued now, as newid */
	BOUNCE_BATCH_HELD,	/* collected: bounce_batch_flush() sends it */
	BOUNCE_BATCH_DROPPED,	/* over the sender's limit: logged only */
	BOUNCE_BATCH_NONE,	/* the null sender, or nothing to report */
};

struct bounce_batch *bounce_batch_new(const struct bounce_batch_conf *);
void	 bounce_batch_set_conf(struct bounce_batch *,
	    const struct bounce_batch_conf *);
/* Frees everything; what is still collected is lost (flush first). */
void	 bounce_batch_free(struct bounce_batch *);

/*
 * The recipients env->rcpt[i] with report[i] failed: notify env->sender
 * (body_fd: the message, for its header section).  Returns an enum
 * bounce_batch_result (newid is set for SENT, "" otherwise; for HELD,
 * *due is when the notice goes out), or -1 with errno when the notice
 * could not be queued at once: nothing is kept then, the caller keeps
 * the recipients and tries again.  The recipients may be marked bounced
 * for any result but -1.  Logs what it did.
 */
int	 bounce_batch_add(struct bounce_batch *, struct queue *,
	    const struct envelope *env, const bool *report, int body_fd,
	    const char *hostname, int64_t now, char *newid, int64_t *due);

/*
 * Queue the collected notices due at now (all of them when all is set),
 * calling added(arg, id) for each one queued.  Returns when the next
 * collected notice is due, or -1 when none is left.
 */
int64_t	 bounce_batch_flush(struct bounce_batch *, struct queue *,
	    const char *hostname, int64_t now, bool all,
	    void (*added)(void *, const char *), void *arg);

#endif
