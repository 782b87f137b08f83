/*
 * scheduler: when to try a recipient again, and when to give up on it.
 * Pure arithmetic on times: no I/O, no clock (callers pass `now`), so
 * the tests can drive it through any sequence of dates.
 *
 * Times are time_t seconds; results saturate instead of overflowing.
 */
#ifndef MXRELAY_SCHEDULER_H
#define MXRELAY_SCHEDULER_H

#include <stdbool.h>
#include <time.h>

#include "envelope.h"

/*
 * Delay after the attempts-th failed attempt: retry_min * 2^(attempts-1),
 * capped at retry_max.  0 attempts give 0 (never tried: at once).
 * Negative bounds count as 0; a retry_max below retry_min is raised to
 * retry_min.  Never overflows, whatever attempts is.
 */
time_t	 sched_backoff(unsigned attempts, time_t retry_min, time_t retry_max);

/*
 * After a temporary failure at `now` (attempts counts it), when to try
 * next.  A recipient of a message that arrived at `arrival` expires at
 * arrival + lifetime (queue_lifetime; 0 or less: at the first temporary
 * failure).  *expired is set when now has reached that point: the caller
 * must bounce the recipient, and the return value is now.  Otherwise
 * the return value is now + sched_backoff(), but never later than the
 * expiry time, so that one last attempt is made when the lifetime ends
 * rather than up to retry_max after it.  An arrival in the future (a
 * clock that stepped back) counts as now.
 */
time_t	 sched_next_try(time_t now, unsigned attempts, time_t retry_min,
	    time_t retry_max, time_t arrival, time_t lifetime, bool *expired);

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

#endif
