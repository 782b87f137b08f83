/*
 * workq: a few threads for blocking work that must not stall the event
 * loop (the fsyncs of a spool commit).  work() runs in a worker thread
 * and must touch nothing but its own job; done() runs afterwards in the
 * loop's thread, from the loop, in no particular order.
 */
#ifndef MXRELAY_WORKQ_H
#define MXRELAY_WORKQ_H

#include "event.h"

struct workq;
typedef void (*workq_fn)(void *arg);

/* NULL with errno when the threads or the wake-up descriptor fail. */
struct workq	*workq_new(struct ev_loop *, unsigned nthreads);
void		 workq_push(struct workq *, workq_fn work, workq_fn done,
		    void *arg);
/*
 * Wait for every job pushed so far, run their done() callbacks, stop the
 * threads and free.
 */
void		 workq_free(struct workq *);

#endif
