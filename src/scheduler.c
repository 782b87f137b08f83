/*
 * scheduler: retry arithmetic (exponential backoff between retry_min and
 * retry_max, expiry after queue_lifetime) and due-ness of recipients.
 *
 * Invariants: no I/O and no clock here; every time is an argument.  All
 * additions saturate at the largest time_t, so a huge retry_max or a
 * lifetime near the end of time never wraps into the past.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "envelope.h"
#include "scheduler.h"

static time_t	 time_max(void);
static time_t	 add_sat(time_t, time_t);

static time_t
time_max(void)
{
	/* time_t is a signed integer type of 32 or 64 bits on POSIX systems. */
	return sizeof(time_t) >= 8 ? (time_t)INT64_MAX : (time_t)INT32_MAX;
}

/* a + b for b >= 0, saturating at time_max(). */
static time_t
add_sat(time_t a, time_t b)
{
	if (b <= 0)
		return a;
	if (a > time_max() - b)
		return time_max();
	return a + b;
}

time_t
sched_backoff(unsigned attempts, time_t retry_min, time_t retry_max)
{
	time_t v;

	if (retry_min < 0)
		retry_min = 0;
	if (retry_max < retry_min)
		retry_max = retry_min;
	if (attempts == 0 || retry_min == 0)
		return 0;
	/*
	 * Double until the cap: at most about 63 rounds, since v >= 1 and
	 * the loop stops once v reaches retry_max.
	 */
	v = retry_min;
	for (unsigned i = 1; i < attempts && v < retry_max; i++) {
		if (v > retry_max / 2)
			v = retry_max;
		else
			v *= 2;
	}
	return v < retry_max ? v : retry_max;
}

time_t
sched_next_try(time_t now, unsigned attempts, time_t retry_min,
    time_t retry_max, time_t arrival, time_t lifetime, bool *expired)
{
	time_t deadline, next;

	if (arrival > now)
		arrival = now;
	deadline = add_sat(arrival, lifetime);
	if (now >= deadline) {
		*expired = true;
		return now;
	}
	*expired = false;
	next = add_sat(now, sched_backoff(attempts, retry_min, retry_max));
	return next < deadline ? next : deadline;
}

bool
sched_rcpt_due(const struct envelope_rcpt *r, time_t now, bool force)
{
	if (r->state != RCPT_PENDING)
		return false;
	return force || r->next_try <= now;
}

bool
sched_env_next_due(const struct envelope *env, time_t *due)
{
	bool any = false;
	time_t min = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		if (r->state != RCPT_PENDING)
			continue;
		if (!any || r->next_try < min)
			min = r->next_try;
		any = true;
	}
	if (any)
		*due = min;
	return any;
}
