/*
 * pickup: the spool owner takes the messages that local users dropped
 * into SPOOL/drop (queue/spool.c, "Drop folder") into the queue, after
 * checking them again with the same parsers as every other input.
 */
#ifndef MXRELAY_PICKUP_H
#define MXRELAY_PICKUP_H

#include <stdint.h>

#include "envelope.h"

struct queue;

/* Called for each message taken into the queue (env->id is its id). */
typedef void (*pickup_cb)(void *arg, const struct envelope *env);

/*
 * Take one drop file (name) or, with name NULL, every one.  Returns how
 * many messages were queued; files that fail the checks are moved to
 * corrupt/ with a log line, unfinished ones are left for later.
 * max_size is max_message_size (0: none).
 */
size_t	 pickup_run(struct queue *, uint64_t max_size, const char *name,
	    pickup_cb, void *arg);
/*
 * The same, signing each message with keys (dkim_keys.h; NULL: none) as
 * it is copied in: the owner of the spool can read the keys, the user
 * who dropped the message could not.  A signing error leaves the drop
 * file for later, logged.
 */
struct dkim_keys;
size_t	 pickup_run_signing(struct queue *, uint64_t max_size,
	    struct dkim_keys *keys, const char *name, pickup_cb, void *arg);

#endif
