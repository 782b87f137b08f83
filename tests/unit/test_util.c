/*
 * Unit tests for src/util.c: duration and size parsing, bounded copies,
 * escaping for log lines, string lists.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "util.h"

static void
test_duration(void **state)
{
	static const struct { const char *in; time_t out; } ok[] = {
		{ "0", 0 }, { "90", 90 }, { "90s", 90 }, { "5m", 300 },
		{ "1h", 3600 }, { "5d", 432000 }, { "2w", 1209600 }, { " 7m ", 420 },
	};
	static const char *bad[] = { "", "m", "5x", "5 m s", "-5m", "1.5h", "5mm" };
	time_t t;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(util_parse_duration(ok[i].in, &t), 0);
		assert_int_equal(t, ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(util_parse_duration(bad[i], &t), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(util_parse_duration("99999999999999999999999d", &t), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(util_parse_duration("9999999999d", &t), -1);
	assert_int_equal(errno, ERANGE);
}

static void
test_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(util_parse_size("1000", &v), 0);
	assert_true(v == 1000);
	assert_int_equal(util_parse_size("512K", &v), 0);
	assert_true(v == 512 * 1024);
	assert_int_equal(util_parse_size("35M", &v), 0);
	assert_true(v == 35ULL * 1024 * 1024);
	assert_int_equal(util_parse_size("2g", &v), 0);
	assert_true(v == 2ULL * 1024 * 1024 * 1024);
	assert_int_equal(util_parse_size("35Q", &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(util_parse_size("M", &v), -1);
	assert_int_equal(util_parse_size("18446744073709551615G", &v), -1);
	assert_int_equal(errno, ERANGE);
}

static void
test_strlcpy(void **state)
{
	char buf[4];

	(void)state;
	assert_int_equal(util_strlcpy(buf, "abcdef", sizeof(buf)), 6);
	assert_string_equal(buf, "abc");
	assert_int_equal(util_strlcpy(buf, "ab", sizeof(buf)), 2);
	assert_string_equal(buf, "ab");
}

static void
test_escape(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(util_escape(buf, sizeof(buf), "ok 250"), "ok 250");
	assert_string_equal(util_escape(buf, sizeof(buf), "a\r\nb\\"), "a\\x0d\\x0ab\\x5c");
	/* Truncation never splits an escape. */
	assert_string_equal(util_escape(buf, 6, "ab\x01"), "ab");
}

/* util_now_ms: monotonic milliseconds, moving with a sleep. */
static void
test_now_ms(void **state)
{
	struct timespec ts = { 0, 30 * 1000000L };
	uint64_t t0, t1;

	(void)state;
	t0 = util_now_ms();
	assert_true(t0 > 0);
	while (nanosleep(&ts, &ts) == -1)
		;
	t1 = util_now_ms();
	assert_true(t1 >= t0 + 30);
	assert_true(t1 < t0 + 30000);
}

static void
test_date(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(util_date_rfc5322(0, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Thu, 1 Jan 1970 00:00:00 +0000");
	assert_int_equal(util_date_rfc5322(1795468901, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Mon, 23 Nov 2026 21:21:41 +0000");
	/* Local time: east and west of UTC, and the offset's minutes. */
	setenv("TZ", "UTC-5:30", 1);
	tzset();
	assert_int_equal(util_date_rfc5322(0, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Thu, 1 Jan 1970 05:30:00 +0530");
	setenv("TZ", "UTC+3", 1);
	tzset();
	assert_int_equal(util_date_rfc5322(0, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Wed, 31 Dec 1969 21:00:00 -0300");
	/* utc ignores TZ. */
	assert_int_equal(util_date_rfc5322(0, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Thu, 1 Jan 1970 00:00:00 +0000");
	unsetenv("TZ");
	tzset();
	/* Too small a buffer, a year of five digits: refused. */
	assert_int_equal(util_date_rfc5322(0, true, buf, 10), -1);
	assert_int_equal(util_date_rfc5322((time_t)400000000000LL, true, buf,
	    sizeof(buf)), -1);
}

static void
test_strlist(void **state)
{
	struct strlist l = { 0 };

	(void)state;
	for (int i = 0; i < 20; i++)
		strlist_add(&l, i % 2 ? "Root@Example.COM" : "x");
	assert_int_equal(l.n, 20);
	assert_true(strlist_contains_nocase(&l, "root@example.com"));
	assert_false(strlist_contains_nocase(&l, "y"));
	strlist_free(&l);
	assert_int_equal(l.n, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_strlcpy),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_now_ms),
		cmocka_unit_test(test_strlist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
