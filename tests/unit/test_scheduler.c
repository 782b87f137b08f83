/*
 * test_scheduler: src/scheduler.c as tables.  Backoff doubling, the cap,
 * overflow at huge attempt counts and bounds, expiry at exactly
 * arrival + lifetime, the last attempt pulled in to the expiry time, and
 * which recipients are due.
 */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "envelope.h"
#include "mock_log.h"
#include "scheduler.h"

#define TMAX	(sizeof(time_t) >= 8 ? (time_t)INT64_MAX : (time_t)INT32_MAX)
#define MIN5	300
#define HOUR	3600
#define DAY	86400
/* Durations are ms (sched_backoff, sched_next_try); dates are seconds. */
#define MS(s)	((int64_t)(s) * 1000)
#define T0	1700000000

static void
test_backoff(void **state)
{
	static const struct {
		unsigned	 attempts;
		int64_t		 min, max, want;	/* any unit: ms in the program */
	} t[] = {
		{ 0, MIN5, HOUR, 0 },
		{ 1, MIN5, HOUR, MIN5 },
		{ 2, MIN5, HOUR, 600 },
		{ 3, MIN5, HOUR, 1200 },
		{ 4, MIN5, HOUR, 2400 },
		{ 5, MIN5, HOUR, HOUR },	/* 4800 capped */
		{ 6, MIN5, HOUR, HOUR },
		{ 64, MIN5, HOUR, HOUR },
		{ 65, MIN5, HOUR, HOUR },
		{ UINT_MAX, MIN5, HOUR, HOUR },
		{ 1, 1, 1, 1 },
		{ 2, 1, 1024, 2 },
		{ 11, 1, 1024, 1024 },
		{ 12, 1, 1024, 1024 },
		{ 3, 7, 27, 27 },		/* 28 capped */
		{ 3, 7, 28, 28 },
		{ 3, 7, 29, 28 },
		{ 1, MIN5, MIN5, MIN5 },
		{ 9, MIN5, MIN5, MIN5 },
		{ 1, 0, HOUR, 0 },		/* retry_min 0: at once */
		{ 7, 0, HOUR, 0 },
		{ 3, -5, HOUR, 0 },		/* negative min counts as 0 */
		{ 1, HOUR, MIN5, HOUR },	/* max below min: min */
		{ 4, HOUR, MIN5, HOUR },
		{ 2, MIN5, -1, MIN5 },
		/* The cap is the type's end: doubling must not wrap. */
		{ 2, INT64_MAX / 2, INT64_MAX, INT64_MAX / 2 * 2 },
		{ 3, INT64_MAX / 2, INT64_MAX, INT64_MAX },
		{ 2, INT64_MAX / 2 + 1, INT64_MAX, INT64_MAX },
		{ UINT_MAX, 1, INT64_MAX, INT64_MAX },
		{ 1, INT64_MAX, INT64_MAX, INT64_MAX },
		{ 30, 3, INT64_MAX, (int64_t)3 << 29 },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int64_t got = sched_backoff(t[i].attempts, t[i].min, t[i].max);

		if (got != t[i].want)
			fail_msg("row %zu: backoff(%u, %lld, %lld) = %lld, want %lld",
			    i, t[i].attempts, (long long)t[i].min,
			    (long long)t[i].max, (long long)got,
			    (long long)t[i].want);
	}
}

/* The delays grow monotonically up to the cap and never exceed it. */
static void
test_backoff_monotonic(void **state)
{
	int64_t prev = 0;

	for (unsigned a = 1; a < 200; a++) {
		int64_t v = sched_backoff(a, 7, 100000);

		assert_true(v >= prev);
		assert_true(v <= 100000);
		assert_true(v >= 7);
		prev = v;
	}
	assert_true(prev == 100000);
}

static void
test_next_try(void **state)
{
	static const struct {
		const char	*name;
		time_t		 now;
		unsigned	 attempts;
		time_t		 arrival;
		int64_t		 lifetime;	/* ms */
		time_t		 want;
		bool		 expired;
	} t[] = {
		{ "first failure", T0, 1, T0, MS(5 * DAY), T0 + MIN5, false },
		{ "second failure", T0 + MIN5, 2, T0, MS(5 * DAY),
		    T0 + MIN5 + 600, false },
		{ "capped", T0 + DAY, 30, T0, MS(5 * DAY), T0 + DAY + HOUR,
		    false },
		{ "not tried yet", T0, 0, T0, MS(5 * DAY), T0, false },
		{ "pulled in to expiry", T0 + 5 * DAY - 100, 30, T0, MS(5 * DAY),
		    T0 + 5 * DAY, false },
		{ "one second before expiry", T0 + 5 * DAY - 1, 30, T0,
		    MS(5 * DAY), T0 + 5 * DAY, false },
		{ "exactly at expiry", T0 + 5 * DAY, 31, T0, MS(5 * DAY),
		    T0 + 5 * DAY, true },
		{ "past expiry", T0 + 9 * DAY, 40, T0, MS(5 * DAY), T0 + 9 * DAY,
		    true },
		{ "lifetime 0", T0, 1, T0, 0, T0, true },
		{ "lifetime 1.5 s, rounded up", T0 + 1, 1, T0, 1500, T0 + 2,
		    false },
		{ "lifetime 1 ms, rounded up", T0, 1, T0, 1, T0 + 1, false },
		{ "lifetime negative", T0 + 5, 1, T0, -7, T0 + 5, true },
		{ "arrival in the future", T0, 1, T0 + DAY, MS(MIN5), T0 + MIN5,
		    false },
		{ "arrival in the future, short life", T0, 1, T0 + DAY, MS(10),
		    T0 + 10, false },
		{ "huge lifetime", T0, 1, T0, INT64_MAX, T0 + MIN5, false },
		{ "end of time", TMAX - 10, 3, TMAX - 20, INT64_MAX, TMAX, false },
		{ "arrival 0", T0, 1, 0, MS(5 * DAY), T0, true },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		bool expired = !t[i].expired;
		time_t got;

		got = sched_next_try(t[i].now, t[i].attempts, MS(MIN5), MS(HOUR),
		    t[i].arrival, t[i].lifetime, &expired);
		if (got != t[i].want || expired != t[i].expired)
			fail_msg("%s: got %lld%s, want %lld%s", t[i].name,
			    (long long)got, expired ? " expired" : "",
			    (long long)t[i].want,
			    t[i].expired ? " expired" : "");
	}
}

/*
 * A recipient that always fails temporarily, driven the way the
 * delivery engine will: it is retried at the times the scheduler gives
 * and bounces exactly once, at the end of its lifetime.
 */
static void
test_next_try_lifecycle(void **state)
{
	time_t now = T0, lifetime = 2 * DAY;
	unsigned attempts = 0, tries = 0;
	bool expired = false;

	while (!expired) {
		time_t next;

		attempts++;
		tries++;
		assert_true(tries < 1000);
		next = sched_next_try(now, attempts, MS(MIN5), MS(HOUR), T0,
		    MS(lifetime), &expired);
		if (expired) {
			assert_true(now == T0 + lifetime);
			break;
		}
		assert_true(next > now);
		assert_true(next - now <= HOUR);
		assert_true(next <= T0 + lifetime);
		now = next;
	}
	/* 5+10+20+40 minutes, then hourly until two days are up. */
	assert_int_equal(tries, 4 + (2 * DAY - 75 * 60 + HOUR - 1) / HOUR + 1);
}

static void
test_rcpt_due(void **state)
{
	static const struct {
		enum rcpt_state	 st;
		time_t		 next_try, now;
		bool		 force, want;
	} t[] = {
		{ RCPT_PENDING, 0, T0, false, true },
		{ RCPT_PENDING, T0, T0, false, true },
		{ RCPT_PENDING, T0 + 1, T0, false, false },
		{ RCPT_PENDING, T0 + 1, T0, true, true },
		{ RCPT_PENDING, TMAX, T0, false, false },
		{ RCPT_PENDING, T0 - 1, T0, false, true },
		{ RCPT_DELIVERED, 0, T0, false, false },
		{ RCPT_DELIVERED, 0, T0, true, false },
		{ RCPT_BOUNCED, 0, T0, false, false },
		{ RCPT_BOUNCED, 0, T0, true, false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct envelope_rcpt r;

		memset(&r, 0, sizeof(r));
		r.state = t[i].st;
		r.next_try = t[i].next_try;
		if (sched_rcpt_due(&r, t[i].now, t[i].force) != t[i].want)
			fail_msg("row %zu: want %d", i, t[i].want);
	}
}

static void
test_env_next_due(void **state)
{
	struct envelope env;
	time_t due = 42;

	envelope_init(&env);
	assert_false(sched_env_next_due(&env, &due));
	assert_true(due == 42);
	envelope_add_rcpt(&env, "a@x", NULL);
	envelope_add_rcpt(&env, "b@x", NULL);
	envelope_add_rcpt(&env, "c@x", NULL);
	env.rcpt[0].state = RCPT_DELIVERED;
	env.rcpt[0].next_try = 1;
	env.rcpt[1].next_try = T0 + 600;
	env.rcpt[2].next_try = T0 + 300;
	assert_true(sched_env_next_due(&env, &due));
	assert_true(due == T0 + 300);
	env.rcpt[2].state = RCPT_BOUNCED;
	assert_true(sched_env_next_due(&env, &due));
	assert_true(due == T0 + 600);
	env.rcpt[1].state = RCPT_DELIVERED;
	due = 42;
	assert_false(sched_env_next_due(&env, &due));
	assert_true(due == 42);
	envelope_free(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_backoff_monotonic),
		cmocka_unit_test(test_next_try),
		cmocka_unit_test(test_next_try_lifecycle),
		cmocka_unit_test(test_rcpt_due),
		cmocka_unit_test(test_env_next_due),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
