/*
 * test_smtpd_authfail: src/smtpd_authfail.c, the listener's AUTH
 * failures per client address.  A table of steps (begin, end, count on
 * one of a few addresses at a given time) with the answers expected,
 * then the bound on the table's size and which entry gives way.
 */
#include "config.h"

#include <sys/socket.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "mock_log.h"
#include "smtpd_authfail.h"
#include "util.h"

#define WINDOW	60000		/* ms */
#define LIMIT	3

static void
addr4(struct authfail_addr *a, unsigned char last)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	a->addr[0] = 192;
	a->addr[1] = 0;
	a->addr[2] = 2;
	a->addr[3] = last;
}

static void
addr6(struct authfail_addr *a, unsigned char last)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET6;
	a->addr[0] = 0x20;
	a->addr[1] = 0x01;
	a->addr[2] = 0x0d;
	a->addr[3] = 0xb8;
	a->addr[15] = last;
}

static void
test_steps(void **state)
{
	/*
	 * op: 'b' begin (want: 1 admitted, 0 refused; count: the count
	 * before), 'f' end with a failure, 'o' end with a success (count:
	 * the failures after), 'c' count.  who: 4 = 192.0.2.4, 5 =
	 * 192.0.2.5, 6 = 2001:db8::4 (same last octet as 4).
	 */
	static const struct {
		const char	*rule;
		char		 op;
		int		 who;
		uint64_t	 now;
		int		 want;
		unsigned	 count;
	} t[] = {
		{ "an unknown address has no failures", 'c', 4, 1000, 0, 0 },
		{ "the first check is admitted", 'b', 4, 1000, 1, 0 },
		{ "a check under way counts", 'c', 4, 1000, 0, 1 },
		{ "its failure is the first", 'f', 4, 1000, 0, 1 },
		{ "counted once the check is over", 'c', 4, 1000, 0, 1 },
		{ "a second check", 'b', 4, 2000, 1, 1 },
		{ "a third, in parallel", 'b', 4, 2000, 1, 2 },
		{ "a fourth is refused: failures plus checks", 'b', 4, 2000, 0,
		    3 },
		{ "the second fails", 'f', 4, 3000, 0, 2 },
		{ "the third fails", 'f', 4, 4000, 0, 3 },
		{ "at the limit: refused", 'b', 4, 5000, 0, 3 },
		{ "another IPv4 address is apart", 'b', 5, 5000, 1, 0 },
		{ "the IPv6 address is apart", 'c', 6, 5000, 0, 0 },
		{ "still refused just inside the window", 'b', 4,
		    4000 + WINDOW - 1, 0, 3 },
		{ "forgotten a window after the last failure", 'b', 4,
		    4000 + WINDOW, 1, 0 },
		{ "counting starts again", 'f', 4, 4000 + WINDOW, 0, 1 },
		{ "a success of the other address", 'o', 5, 6000, 0, 0 },
		{ "which has no failures then", 'c', 5, 6000, 0, 0 },
		{ "IPv6: a failure", 'b', 6, 7000, 1, 0 },
		{ "IPv6: counted", 'f', 6, 7000, 0, 1 },
		{ "IPv6: a success after it", 'b', 6, 7000, 1, 1 },
		{ "IPv6: a success forgets nothing", 'o', 6, 7000, 0, 1 },
		{ "IPv6: still counted", 'c', 6, 7000, 0, 1 },
		{ "an end without a check under way still counts", 'f', 5, 8000,
		    0, 1 },
	};
	struct authfail *tab = authfail_new(16);
	struct authfail_addr a;
	unsigned n;
	bool ok;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (t[i].who == 6)
			addr6(&a, 4);
		else
			addr4(&a, (unsigned char)t[i].who);
		switch (t[i].op) {
		case 'b':
			ok = authfail_begin(tab, &a, LIMIT, WINDOW, t[i].now,
			    &n);
			if (ok != (t[i].want == 1))
				fail_msg("%s: admitted %d", t[i].rule, ok);
			break;
		case 'f':
		case 'o':
			n = authfail_end(tab, &a, t[i].op == 'o', WINDOW,
			    t[i].now);
			break;
		default:
			n = authfail_count(tab, &a, WINDOW, t[i].now);
			break;
		}
		if (n != t[i].count)
			fail_msg("%s: count %u, want %u", t[i].rule, n,
			    t[i].count);
	}
	authfail_free(tab);
}

/* No limit: every check is admitted, the count still grows. */
static void
test_no_limit(void **state)
{
	struct authfail *tab = authfail_new(4);
	struct authfail_addr a;
	unsigned n;

	(void)state;
	addr4(&a, 9);
	for (unsigned i = 0; i < 50; i++) {
		assert_true(authfail_begin(tab, &a, 0, WINDOW, 100, &n));
		assert_int_equal(n, i);
		assert_int_equal(authfail_end(tab, &a, false, WINDOW, 100),
		    i + 1);
	}
	authfail_free(tab);
}

/*
 * Bounded: 1,000 addresses in a table of 8 keep it at 8, and the
 * address whose last failure is the oldest gives way, unless it has a
 * check under way or more failures.
 */
static void
test_bound(void **state)
{
	struct authfail *tab = authfail_new(8);
	struct authfail_addr a, busy;
	unsigned n;

	(void)state;
	addr4(&busy, 250);
	assert_true(authfail_begin(tab, &busy, LIMIT, WINDOW, 1, &n));
	for (unsigned i = 0; i < 1000; i++) {
		addr4(&a, (unsigned char)(i % 200));
		a.addr[2] = (unsigned char)(i / 200);
		assert_true(authfail_begin(tab, &a, LIMIT, WINDOW, 10 + i, &n));
		assert_int_equal(authfail_end(tab, &a, false, WINDOW, 10 + i),
		    1);
		assert_true(authfail_size(tab) <= 8);
	}
	assert_int_equal(authfail_size(tab), 8);
	/* The seven newest are there, the busy one too; older ones gone. */
	for (unsigned i = 993; i < 1000; i++) {
		addr4(&a, (unsigned char)(i % 200));
		a.addr[2] = (unsigned char)(i / 200);
		assert_int_equal(authfail_count(tab, &a, WINDOW, 2000), 1);
	}
	addr4(&a, (unsigned char)(992 % 200));
	a.addr[2] = (unsigned char)(992 / 200);
	assert_int_equal(authfail_count(tab, &a, WINDOW, 2000), 0);
	assert_int_equal(authfail_count(tab, &busy, WINDOW, 2000), 1);
	assert_int_equal(authfail_end(tab, &busy, false, WINDOW, 2000), 1);
	authfail_free(tab);
}

/*
 * An address at the limit stays refused while fresh addresses that fail
 * once each pass through a full table; once its window is over it is the
 * first to go.
 */
static void
test_bound_keeps_locked(void **state)
{
	struct authfail *tab = authfail_new(8);
	struct authfail_addr a, locked;
	unsigned n;

	(void)state;
	addr4(&locked, 77);
	for (unsigned i = 0; i < LIMIT; i++) {
		assert_true(authfail_begin(tab, &locked, LIMIT, WINDOW, 1, &n));
		(void)authfail_end(tab, &locked, false, WINDOW, 1);
	}
	for (unsigned i = 0; i < 100; i++) {
		addr4(&a, (unsigned char)(100 + i));
		assert_true(authfail_begin(tab, &a, LIMIT, WINDOW, 10 + i, &n));
		(void)authfail_end(tab, &a, false, WINDOW, 10 + i);
	}
	assert_false(authfail_begin(tab, &locked, LIMIT, WINDOW, 200, &n));
	assert_int_equal(n, LIMIT);
	/* Past its window, the next new address takes its place. */
	addr4(&a, 250);
	assert_true(authfail_begin(tab, &a, LIMIT, WINDOW, 1 + WINDOW + 200,
	    &n));
	assert_int_equal(authfail_count(tab, &locked, WINDOW,
	    1 + WINDOW + 200), 0);
	authfail_free(tab);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_steps),
		cmocka_unit_test(test_no_limit),
		cmocka_unit_test(test_bound),
		cmocka_unit_test(test_bound_keeps_locked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
