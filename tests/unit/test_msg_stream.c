/*
 * Unit tests for src/msg_stream.c (the header section of a message
 * streaming in through the listener: the missing Date and Message-ID
 * added at its end, UTF-8 header fields noticed) and src/utf8.c (RFC
 * 3629 well-formedness).  Table-driven, no mocks: every message is fed
 * whole, then cut at every octet and fed in two pieces, and octet by
 * octet; the output must not depend on where the pieces end.
 */
#include "config.h"

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

#include "msg_stream.h"
#include "utf8.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* What the writer got. */
struct out {
	char	 buf[8192];
	size_t	 n;
};

static void
out_write(void *arg, const char *p, size_t n)
{
	struct out *o = arg;

	assert_true(n > 0);
	assert_true(o->n + n < sizeof(o->buf));
	memcpy(o->buf + o->n, p, n);
	o->n += n;
	o->buf[o->n] = '\0';
}

#define DATE	"Date: Thu, 1 Jan 1970 00:00:00 +0000\r\n"
#define MSGID	"Message-ID: <ID1@relay.test>\r\n"

static const struct {
	const char	*in;
	const char	*out;		/* with add */
	bool		 eightbit;
} rows[] = {
	/* Both missing: at the end of the header section. */
	{ "Subject: x\r\n\r\nbody\r\n",
	    "Subject: x\r\n" DATE MSGID "\r\nbody\r\n", false },
	/* Present, in any case: not added again. */
	{ "date: Mon, 2 Feb 2026 00:00:00 +0000\r\nMESSAGE-ID: <a@b>\r\n\r\nb\r\n",
	    "date: Mon, 2 Feb 2026 00:00:00 +0000\r\nMESSAGE-ID: <a@b>\r\n\r\nb\r\n",
	    false },
	{ "Message-ID: <a@b>\r\n\r\nb\r\n",
	    "Message-ID: <a@b>\r\n" DATE "\r\nb\r\n", false },
	{ "Date: x\r\n\r\n", "Date: x\r\n" MSGID "\r\n", false },
	/* Continuation lines belong to their field. */
	{ "Subject: a\r\n b\r\n\tc\r\n\r\nbody\r\n",
	    "Subject: a\r\n b\r\n\tc\r\n" DATE MSGID "\r\nbody\r\n", false },
	/* "Date" in a continuation or the body is not a Date field. */
	{ "Subject: a\r\n Date: no\r\n\r\nDate: body\r\n",
	    "Subject: a\r\n Date: no\r\n" DATE MSGID "\r\nDate: body\r\n",
	    false },
	/* No header at all (smtplib's sendmail("hello")): an empty line
	   after the fields makes the text the body. */
	{ "hello\r\n", DATE MSGID "\r\nhello\r\n", false },
	{ "hello world: x\r\n", DATE MSGID "\r\nhello world: x\r\n", false },
	/* The header ends at a line that is not a field. */
	{ "Subject: x\r\nnot a field\r\n",
	    "Subject: x\r\n" DATE MSGID "\r\nnot a field\r\n", false },
	{ " starts with a space\r\n",
	    DATE MSGID "\r\n starts with a space\r\n", false },
	{ ": no name\r\n", DATE MSGID "\r\n: no name\r\n", false },
	/* Only a header section, or nothing. */
	{ "Subject: x\r\n", "Subject: x\r\n" DATE MSGID, false },
	{ "", DATE MSGID, false },
	{ "\r\nbody\r\n", DATE MSGID "\r\nbody\r\n", false },
	/* UTF-8 in a field (RFC 6532), not in the body. */
	{ "Subject: gr\xc3\xbc\xc3\x9f" "e\r\n\r\nb\r\n",
	    "Subject: gr\xc3\xbc\xc3\x9f" "e\r\n" DATE MSGID "\r\nb\r\n", true },
	{ "Subject: x\r\n\r\ngr\xc3\xbc\xc3\x9f" "e\r\n",
	    "Subject: x\r\n" DATE MSGID "\r\ngr\xc3\xbc\xc3\x9f" "e\r\n", false },
	/* A non-ASCII octet where a name is: not a field. */
	{ "\xc3\xa9: x\r\n", DATE MSGID "\r\n\xc3\xa9: x\r\n", false },
};

/* Feed in[0..len) cut at cut (and octet by octet when cut is 0). */
static void
run(size_t row, bool add, size_t cut, bool bytes, struct out *o,
    struct msg_stream *m)
{
	const char *in = rows[row].in;
	size_t len = strlen(in);

	o->n = 0;
	o->buf[0] = '\0';
	msg_stream_init(m, add, "relay.test", "ID1", 0, out_write, o);
	if (bytes)
		for (size_t i = 0; i < len; i++)
			msg_stream_feed(m, in + i, 1);
	else {
		msg_stream_feed(m, in, cut);
		msg_stream_feed(m, in + cut, len - cut);
	}
	msg_stream_end(m);
}

static void
test_rows(void **state)
{
	struct msg_stream m;
	struct out o;

	(void)state;
	/* The Date in the test is at the epoch, in UTC. */
	setenv("TZ", "UTC", 1);
	tzset();
	for (size_t i = 0; i < NELEM(rows); i++) {
		size_t len = strlen(rows[i].in);

		for (size_t cut = 0; cut <= len + 1; cut++) {
			run(i, true, cut > len ? 0 : cut, cut > len, &o, &m);
			if (strcmp(o.buf, rows[i].out) != 0)
				fail_msg("row %zu cut %zu: \"%s\"", i, cut,
				    o.buf);
			if (m.eightbit != rows[i].eightbit)
				fail_msg("row %zu cut %zu: eightbit %d", i,
				    cut, m.eightbit);
			assert_true(m.done);
			/* Without add: the message as it came. */
			run(i, false, cut > len ? 0 : cut, cut > len, &o, &m);
			if (strcmp(o.buf, rows[i].in) != 0)
				fail_msg("row %zu cut %zu, no add: \"%s\"", i,
				    cut, o.buf);
			assert_false(m.added);
		}
	}
}

/* A field name longer than the hold: passed on, still a field. */
static void
test_long_name(void **state)
{
	static char in[MSG_STREAM_HOLD * 2 + 64];
	struct msg_stream m;
	struct out o = { .n = 0 };
	size_t n = MSG_STREAM_HOLD + 10;

	(void)state;
	memset(in, 'X', n);
	strcpy(in + n, ": v\r\n\r\nb\r\n");
	msg_stream_init(&m, true, "relay.test", "ID1", 0, out_write, &o);
	msg_stream_feed(&m, in, strlen(in));
	msg_stream_end(&m);
	assert_int_equal(o.n, strlen(in) + strlen(DATE) + strlen(MSGID));
	assert_memory_equal(o.buf, in, n + 5);
	assert_memory_equal(o.buf + n + 5, DATE MSGID "\r\nb\r\n",
	    strlen(DATE MSGID "\r\nb\r\n"));
}

/* RFC 3629 §4, and its examples of what is not UTF-8. */
static void
test_utf8(void **state)
{
	static const struct {
		const char	*s;
		bool		 ok;
	} cases[] = {
		{ "", true },
		{ "ascii", true },
		{ "\xc2\x80", true },			/* U+0080 */
		{ "\xdf\xbf", true },			/* U+07FF */
		{ "\xe0\xa0\x80", true },		/* U+0800 */
		{ "\xed\x9f\xbf", true },		/* U+D7FF */
		{ "\xee\x80\x80", true },		/* U+E000 */
		{ "\xef\xbf\xbf", true },		/* U+FFFF */
		{ "\xf0\x90\x80\x80", true },		/* U+10000 */
		{ "\xf4\x8f\xbf\xbf", true },		/* U+10FFFF */
		{ "j\xc3\xb6s\xc3\xa9", true },
		{ "\x80", false },			/* lone continuation */
		{ "\xbf", false },
		{ "\xc0\x80", false },			/* overlong NUL */
		{ "\xc1\xbf", false },			/* overlong */
		{ "\xe0\x9f\xbf", false },		/* overlong */
		{ "\xf0\x8f\xbf\xbf", false },		/* overlong */
		{ "\xed\xa0\x80", false },		/* U+D800 */
		{ "\xed\xbf\xbf", false },		/* U+DFFF */
		{ "\xf4\x90\x80\x80", false },		/* U+110000 */
		{ "\xf5\x80\x80\x80", false },
		{ "\xfe", false },
		{ "\xff", false },
		{ "\xc3", false },			/* cut short */
		{ "\xe2\x82", false },
		{ "\xf0\x9f\x93", false },
		{ "\xc3(", false },			/* bad continuation */
		{ "\xe2\x28\xa1", false },
		{ "\xe2\x82\x28", false },
		{ "\xf0\x28\x8c\xbc", false },
		{ "a\xc3\xa9z\xff", false },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++)
		if (utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fail_msg("row %zu: utf8_valid %d", i, !cases[i].ok);
	/* The length counts, not a NUL. */
	assert_false(utf8_valid("\xc3\xa9", 1));
	assert_true(utf8_valid("a\0b", 3));
	assert_true(utf8_has_8bit("a\xc3\xa9"));
	assert_false(utf8_has_8bit("plain@example.com"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rows),
		cmocka_unit_test(test_long_name),
		cmocka_unit_test(test_utf8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
