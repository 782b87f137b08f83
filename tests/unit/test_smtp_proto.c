/*
 * Unit tests for src/smtp_proto.c: reply parsing, enhanced status codes
 * (with src/status.c, the one RFC 3463 parser),
 * EHLO keywords, the dot-stuffing encoder and the DATA decoder (also
 * across every buffer split), escaping, path checks and base64.
 * Table-driven, no mocks.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtp_proto.h"
#include "status.h"

/* Lines separated by '\n' in one string; returns the last feed result. */
static int
feed_all(struct smtp_reply *r, const char *lines, char *err, size_t errlen)
{
	const char *p = lines;
	int rv = -1;

	smtp_reply_init(r);
	for (;;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);

		rv = smtp_reply_feed(r, p, len, err, errlen);
		if (rv != 0 || nl == NULL)
			return rv;
		p = nl + 1;
	}
}

static void
test_reply_ok(void **state)
{
	static const struct {
		const char *in;
		int code;
		size_t nlines;
		const char *status;
		const char *text;
	} t[] = {
		{ "220 mx.example.com ESMTP", 220, 1, "", "220 mx.example.com ESMTP" },
		{ "250", 250, 1, "", "250" },
		{ "250-", 250, 0, "", NULL },	/* incomplete */
		{ "250-mx\n250-PIPELINING\n250 SIZE 100", 250, 3, "",
		  "250 mx PIPELINING SIZE 100" },
		{ "550 5.1.1 <bad@x>: no such user", 550, 1, "5.1.1",
		  "550 5.1.1 <bad@x>: no such user" },
		{ "550-5.1.1 first\n550 5.1.1 second", 550, 2, "5.1.1",
		  "550 5.1.1 first second" },
		/* the code opens the first line with text */
		{ "550-\n550 5.1.1 no such user", 550, 2, "5.1.1",
		  "550 5.1.1 no such user" },
		{ "550-\n550-5.1.1 a\n550 5.1.1 b", 550, 3, "5.1.1",
		  "550 5.1.1 a b" },
		{ "550-first\n550 5.1.1 second", 550, 2, "",
		  "550 first 5.1.1 second" },
		{ "451 4.3.0 try later", 451, 1, "4.3.0", "451 4.3.0 try later" },
		{ "451 5.3.0 class mismatch", 451, 1, "", "451 5.3.0 class mismatch" },
		{ "250 2.100.999 big", 250, 1, "2.100.999", "250 2.100.999 big" },
		{ "250 2.1000.1 no", 250, 1, "", "250 2.1000.1 no" },
		{ "250 2.1.5", 250, 1, "2.1.5", "250 2.1.5" },
		{ "250 2.1.5x", 250, 1, "", "250 2.1.5x" },
		{ "250 2.1 short", 250, 1, "", "250 2.1 short" },
		{ "354 go ahead\x01", 354, 1, "", "354 go ahead\\x01" },
		{ "250 caf\xc3\xa9 \\", 250, 1, "", "250 caf\\xc3\\xa9 \\x5c" },
		{ "559 x", 559, 1, "", "559 x" },
		{ "554 5.7.1\tx", 554, 1, "5.7.1", "554 5.7.1\\x09x" },
		{ "200 x", 200, 1, "", "200 x" },
	};
	struct smtp_reply *r = malloc(sizeof(*r));
	char err[128], text[1024];

	(void)state;
	assert_non_null(r);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rv = feed_all(r, t[i].in, err, sizeof(err));

		if (t[i].text == NULL) {
			assert_int_equal(rv, 0);
			continue;
		}
		assert_int_equal(rv, 1);
		assert_true(r->complete);
		assert_int_equal(r->code, t[i].code);
		assert_int_equal(r->nlines, t[i].nlines);
		assert_string_equal(r->status, t[i].status);
		assert_string_equal(smtp_reply_to_text(r, text, sizeof(text)),
		    t[i].text);
	}
	feed_all(r, "250-mx\n250-PIPELINING\n250 SIZE 100", err, sizeof(err));
	assert_string_equal(smtp_reply_line(r, 0), "mx");
	assert_string_equal(smtp_reply_line(r, 2), "SIZE 100");
	assert_null(smtp_reply_line(r, 3));
	free(r);
}

/*
 * RFC 3463 section 2: class "." subject "." detail, class 2/4/5, 1-3
 * digits each, ending at the end, a space or a tab.  One table for the
 * parser on its own (len bytes of in), for a whole-string check, and for
 * the reply flavour whose class must match the reply code (RFC 2034 §3).
 */
static void
test_status_parse(void **state)
{
	static const struct {
		const char *in;
		size_t len;		/* 0: strlen(in) */
		const char *want;	/* "" when there is no code */
		bool whole;		/* status_valid(in) */
	} t[] = {
		{ "5.1.1", 0, "5.1.1", true },
		{ "4.4.1", 0, "4.4.1", true },
		{ "2.0.0", 0, "2.0.0", true },
		{ "5.1.10", 0, "5.1.10", true },
		{ "2.100.999", 0, "2.100.999", true },
		{ "5.01.001", 0, "5.01.001", true },
		{ "5.1.1 user unknown", 0, "5.1.1", false },
		{ "5.1.1\tuser unknown", 0, "5.1.1", false },
		{ "5.7.1 ", 0, "5.7.1", false },
		/* hostile: too many digits, missing parts, stray bytes */
		{ "5.1.1000", 0, "", false },
		{ "5.1000.1", 0, "", false },
		{ "5.0001.1", 0, "", false },
		{ "5..1", 0, "", false },
		{ "5.1.", 0, "", false },
		{ "5.1", 0, "", false },
		{ "5.", 0, "", false },
		{ "5", 0, "", false },
		{ "", 0, "", false },
		{ "05.1.1", 0, "", false },
		{ "55.1.1", 0, "", false },
		{ ".5.1.1", 0, "", false },
		{ " 5.1.1", 0, "", false },
		{ "5.1.1x", 0, "", false },
		{ "5.1.1.", 0, "", false },
		{ "5.1.1.1", 0, "", false },
		{ "5-1-1", 0, "", false },
		{ "5.a.1", 0, "", false },
		{ "5.1.-1", 0, "", false },
		{ "5.1.1\r\n", 0, "", false },
		{ "3.1.1", 0, "", false },
		{ "1.0.0", 0, "", false },
		{ "6.0.0", 0, "", false },
		{ "x.1.1", 0, "", false },
		/* the length bounds the read: no look past len (whole:
		 * the string itself) */
		{ "5.1.1", 4, "", true },
		{ "5.1.1", 3, "", true },
		{ "5.1.12", 5, "5.1.1", true },
		{ "5.1.1junk", 5, "5.1.1", false },
	};
	char st[STATUS_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len = t[i].len ? t[i].len : strlen(t[i].in);
		size_t n = status_parse(t[i].in, len, st, sizeof(st));

		if (strcmp(st, t[i].want) != 0 || n != strlen(t[i].want) ||
		    status_valid(t[i].in) != t[i].whole)
			fail_msg("row %zu \"%s\": got \"%s\" (%zu)", i, t[i].in,
			    st, n);
	}
	/* an embedded NUL ends the code like the end of the string */
	assert_int_equal(status_parse("5.1.1\0x", 7, st, sizeof(st)), 5);
	/* too small a buffer: no code, never a cut one */
	memset(st, 'x', sizeof(st));
	assert_int_equal(status_parse("5.100.100", 9, st, 9), 0);
	assert_string_equal(st, "");
	assert_int_equal(status_parse("5.100.100", 9, st, 10), 9);
	assert_false(status_valid(NULL));
}

static void
test_status_reply(void **state)
{
	static const struct {
		int code;
		const char *text;
		const char *want;
	} t[] = {
		{ 550, "5.1.1 no such user", "5.1.1" },
		{ 250, "2.0.0 ok", "2.0.0" },
		{ 451, "4.3.0 try later", "4.3.0" },
		/* RFC 2034 §3: the class is the code's first digit */
		{ 450, "5.1.1 mismatch", "" },
		{ 550, "4.1.1 mismatch", "" },
		{ 250, "5.0.0 mismatch", "" },
		{ 354, "3.0.0 go ahead", "" },
		{ 550, "5.1.1000 too long", "" },
		{ 550, "05.1.1 leading zero class", "" },
		{ 550, "5..1 empty subject", "" },
		{ 550, "5.1.1x glued", "" },
		{ 550, "", "" },
		{ 550, "no code at all", "" },
	};
	static const struct {
		int code;
		const char *want;
	} d[] = {
		{ 250, "2.0.0" }, { 221, "2.0.0" }, { 421, "4.0.0" },
		{ 452, "4.0.0" }, { 550, "5.0.0" }, { 554, "5.0.0" },
		/* not a final reply, or none at all: temporary */
		{ 354, "4.0.0" }, { 334, "4.0.0" }, { 0, "4.0.0" },
		{ -1, "4.0.0" }, { 600, "4.0.0" },
	};
	char st[STATUS_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = smtp_status_parse(t[i].code, t[i].text, st,
		    sizeof(st));

		if (strcmp(st, t[i].want) != 0 || n != strlen(t[i].want))
			fail_msg("row %zu %d \"%s\": got \"%s\"", i, t[i].code,
			    t[i].text, st);
	}
	for (size_t i = 0; i < sizeof(d) / sizeof(d[0]); i++) {
		status_class_default(d[i].code, st, sizeof(st));
		if (strcmp(st, d[i].want) != 0)
			fail_msg("default for %d: got \"%s\"", d[i].code, st);
	}
}

static void
test_reply_bad(void **state)
{
	static const struct { const char *in; const char *err; } t[] = {
		{ "", "malformed" },
		{ "25", "malformed" },
		{ "2500 x", "malformed" },
		{ "250x", "malformed" },
		{ "abc def", "malformed" },
		{ "150 x", "malformed" },
		{ "650 x", "malformed" },
		{ "260 x", "malformed" },
		{ "599 x", "malformed" },
		{ " 250 x", "malformed" },
		{ "HTTP/1.1 400 Bad", "malformed" },
		{ "250-a\n251 b", "changed" },
		{ "250-a\n550 b", "changed" },
		{ "250-a\nxyz", "malformed" },
		{ "250 a\rb", "control" },
	};
	struct smtp_reply *r = malloc(sizeof(*r));
	char err[128], line[600];

	(void)state;
	assert_non_null(r);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err[0] = '\0';
		assert_int_equal(feed_all(r, t[i].in, err, sizeof(err)), -1);
		assert_non_null(strstr(err, t[i].err));
	}
	/* an embedded NUL */
	smtp_reply_init(r);
	assert_int_equal(smtp_reply_feed(r, "250 a\0b", 7, err, sizeof(err)), -1);

	/* line limit: 510 is fine, 511 is not (RFC 5321 §4.5.3.1.5) */
	memset(line, 'a', sizeof(line));
	memcpy(line, "250 ", 4);
	smtp_reply_init(r);
	assert_int_equal(smtp_reply_feed(r, line, 510, err, sizeof(err)), 1);
	smtp_reply_init(r);
	assert_int_equal(smtp_reply_feed(r, line, 511, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too long"));

	/* line count: 100 lines fine, the 101st refused */
	smtp_reply_init(r);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		assert_int_equal(smtp_reply_feed(r, "250-x", 5, err,
		    sizeof(err)), 0);
	assert_int_equal(smtp_reply_feed(r, "250 x", 5, err, sizeof(err)), 1);
	smtp_reply_init(r);
	for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		assert_int_equal(smtp_reply_feed(r, "250-x", 5, err,
		    sizeof(err)), 0);
	assert_int_equal(smtp_reply_feed(r, "250 x", 5, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "too many"));

	/* total size */
	memcpy(line, "250-", 4);
	smtp_reply_init(r);
	{
		int rv = 0;

		for (int i = 0; i < 40 && rv == 0; i++)
			rv = smtp_reply_feed(r, line, 510, err, sizeof(err));
		assert_int_equal(rv, -1);
		assert_non_null(strstr(err, "reply too long"));
	}

	/* feeding a complete reply again is an error */
	smtp_reply_init(r);
	assert_int_equal(smtp_reply_feed(r, "250 x", 5, err, sizeof(err)), 1);
	assert_int_equal(smtp_reply_feed(r, "250 x", 5, err, sizeof(err)), -1);
	free(r);
}

static void
test_ehlo(void **state)
{
	static const struct {
		const char *in;
		unsigned ext, auth;
		uint64_t size;
	} t[] = {
		{ "250 mx", 0, 0, 0 },
		{ "250-mx\n250-PIPELINING\n250-SIZE 10240000\n250-8BITMIME\n"
		  "250-STARTTLS\n250-ENHANCEDSTATUSCODES\n250 AUTH PLAIN LOGIN",
		  SMTP_EXT_PIPELINING | SMTP_EXT_SIZE | SMTP_EXT_8BITMIME |
		  SMTP_EXT_STARTTLS | SMTP_EXT_ENHANCEDSTATUSCODES | SMTP_EXT_AUTH,
		  SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN, 10240000 },
		{ "250-mx\n250-pipelining\n250 size", SMTP_EXT_PIPELINING |
		  SMTP_EXT_SIZE, 0, 0 },
		{ "250-mx\n250-SIZE abc\n250 AUTH=LOGIN", SMTP_EXT_SIZE |
		  SMTP_EXT_AUTH, SMTP_AUTH_LOGIN, 0 },
		{ "250-mx\n250-SIZE 99999999999999999999\n250 AUTH CRAM-MD5",
		  SMTP_EXT_SIZE | SMTP_EXT_AUTH, 0, 0 },
		{ "250-mx\n250-PIPELININGX\n250-XSTARTTLS\n250 X-FOO=1", 0, 0, 0 },
		{ "250-mx\n250-STARTTLS \n250 AUTH  plain", SMTP_EXT_STARTTLS |
		  SMTP_EXT_AUTH, SMTP_AUTH_PLAIN, 0 },
		/* the first line is the server's name, not a keyword */
		{ "250-PIPELINING\n250 8BITMIME", SMTP_EXT_8BITMIME, 0, 0 },
		{ "550-mx\n550 PIPELINING", 0, 0, 0 },
		/* RFC 6531 */
		{ "250-mx\n250-SMTPUTF8\n250 8BITMIME", SMTP_EXT_SMTPUTF8 |
		  SMTP_EXT_8BITMIME, 0, 0 },
		{ "250-mx\n250 smtputf8", SMTP_EXT_SMTPUTF8, 0, 0 },
		{ "250-mx\n250 SMTPUTF8X", 0, 0, 0 },
	};
	struct smtp_reply *r = malloc(sizeof(*r));
	struct smtp_ehlo e;
	char err[128];

	(void)state;
	assert_non_null(r);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(feed_all(r, t[i].in, err, sizeof(err)), 1);
		smtp_ehlo_parse(r, &e);
		assert_int_equal(e.ext, t[i].ext);
		assert_int_equal(e.auth, t[i].auth);
		assert_true(e.size_max == t[i].size);
	}
	free(r);
}

/* Stuff in with pieces of at most chunk bytes and a small output buffer. */
static char *
stuff(const char *in, size_t len, size_t chunk, size_t outmax, size_t *olen)
{
	struct smtp_stuff st;
	char *out = malloc(2 * len + 16), tmp[64];
	size_t o = 0, i = 0;

	assert_non_null(out);
	assert_true(outmax <= sizeof(tmp));
	smtp_stuff_init(&st);
	while (i < len) {
		size_t n = len - i < chunk ? len - i : chunk, used, w;

		w = smtp_stuff_encode(&st, in + i, n, tmp, outmax, &used);
		assert_true(w <= outmax);
		assert_true(used > 0);
		memcpy(out + o, tmp, w);
		o += w;
		i += used;
	}
	o += smtp_stuff_finish(&st, out + o, SMTP_STUFF_FINISH_MAX);
	*olen = o;
	return out;
}

static void
test_stuff(void **state)
{
	static const struct { const char *in, *out; } t[] = {
		{ "", ".\r\n" },
		{ "a\r\n", "a\r\n.\r\n" },
		{ "a", "a\r\n.\r\n" },
		{ ".\r\n", "..\r\n.\r\n" },
		{ ".", "..\r\n.\r\n" },
		{ "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n" },
		{ "..x\r\n.y", "...x\r\n..y\r\n.\r\n" },
		{ "a.b\r\n", "a.b\r\n.\r\n" },
		{ "\r\n\r\n", "\r\n\r\n.\r\n" },
		{ "\r\n.", "\r\n..\r\n.\r\n" },
		/* bare LF and CR become CRLF: no smuggled end of data */
		{ "a\n.\nb", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\r.\rb", "a\r\n..\r\nb\r\n.\r\n" },
		{ "a\r", "a\r\n.\r\n" },
		{ "a\r\r\n", "a\r\n\r\n.\r\n" },
		{ "\n.\r\n", "\r\n..\r\n.\r\n" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len = strlen(t[i].in), olen;

		/* every split of the input, and tiny output buffers */
		for (size_t chunk = 1; chunk <= len + 1; chunk++) {
			for (size_t outmax = 4; outmax <= 12; outmax += 4) {
				char *o = stuff(t[i].in, len, chunk, outmax, &olen);

				assert_int_equal(olen, strlen(t[i].out));
				assert_memory_equal(o, t[i].out, olen);
				free(o);
			}
		}
	}
}

/* Lines over 998 octets are broken with CRLF SPACE; none goes out longer. */
static void
test_stuff_long_lines(void **state)
{
	size_t len = 5000, olen, run = 0, chars = 0;
	char *in = malloc(len + 3), *out;

	(void)state;
	assert_non_null(in);
	in[0] = '.';	/* the stuffed dot counts too */
	memset(in + 1, 'x', len - 1);
	memcpy(in + len, "\r\n", 3);
	out = stuff(in, len + 2, 777, 64, &olen);
	for (size_t i = 0; i < olen; i++) {
		if (out[i] == '\r') {
			assert_true(out[i + 1] == '\n');
			assert_true(run <= SMTP_TEXT_LINE_MAX);
			run = 0;
			i++;
			continue;
		}
		if (!(run == 0 && out[i] == ' ' && i > 0))
			chars++;
		run++;
	}
	/* content kept: "..", then the x's, then the final "." line */
	assert_int_equal(chars, len + 1 + 1);
	assert_memory_equal(out, "..x", 3);
	assert_memory_equal(out + SMTP_TEXT_LINE_MAX, "\r\n x", 4);
	free(in);
	free(out);
}

/* A receiver's view: the stuffed stream un-stuffed gives the body back. */
static void
test_stuff_roundtrip(void **state)
{
	size_t len = 200000, olen, i, o;
	char *in = malloc(len), *out, *back;
	unsigned seed = 12345;

	(void)state;
	assert_non_null(in);
	/* CRLF lines made of '.', 'a' and CRLF pairs, no bare CR/LF */
	for (i = 0; i < len; ) {
		seed = seed * 1103515245 + 12345;
		switch ((seed >> 16) % 4) {
		case 0:
			if (i + 2 <= len) {
				in[i++] = '\r';
				in[i++] = '\n';
				break;
			}
			/* FALLTHROUGH */
		case 1:
			in[i++] = '.';
			break;
		default:
			in[i++] = 'a';
			break;
		}
	}
	out = stuff(in, len, 4093, 64, &olen);
	back = malloc(olen);
	assert_non_null(back);
	/* un-stuff: drop the dot at each line start; stop at CRLF.CRLF */
	o = 0;
	for (i = 0; i < olen; ) {
		bool bol = i == 0 || (out[i - 1] == '\n');

		if (bol && out[i] == '.') {
			if (out[i + 1] == '\r') {
				assert_int_equal(i + 3, olen);
				break;
			}
			i++;
		}
		back[o++] = out[i++];
	}
	/* the body did not necessarily end in CRLF: one may have been added */
	assert_true(o == len || (o == len + 2 && memcmp(back + len, "\r\n", 2) == 0));
	assert_memory_equal(back, in, len);
	free(in);
	free(out);
	free(back);
}

static void
test_escape(void **state)
{
	char buf[16];

	(void)state;
	assert_string_equal(smtp_escape(buf, sizeof(buf), "ab", 2), "ab");
	assert_string_equal(smtp_escape(buf, sizeof(buf), "a\0b", 3), "a\\x00b");
	assert_string_equal(smtp_escape(buf, sizeof(buf), "a\r\nb", 4),
	    "a\\x0d\\x0ab");
	assert_string_equal(smtp_escape(buf, sizeof(buf), "0123456789abcdef",
	    16), "0123456789ab...");
	assert_string_equal(smtp_escape(buf, sizeof(buf), "0123456789ab\x01",
	    13), "0123456789ab...");
	assert_string_equal(smtp_escape(buf, sizeof(buf), "01234567890\x01\x02",
	    13), "01234567890...");
	assert_string_equal(smtp_escape(buf, sizeof(buf), "0123456\x01\x02\x03",
	    10), "0123456\\x01...");
	assert_string_equal(smtp_escape(buf, 1, "abc", 3), "");
	assert_string_equal(smtp_escape(buf, 3, "abc", 3), "ab");
	assert_true(strlen(smtp_escape(buf, sizeof(buf), "\x01\x02\x03\x04\x05",
	    5)) < sizeof(buf));
}

static void
test_path(void **state)
{
	char big[300];

	(void)state;
	assert_true(smtp_path_ok(""));
	assert_true(smtp_path_ok("a@b.example"));
	assert_true(smtp_path_ok("\"john doe\"@b.example"));
	assert_false(smtp_path_ok("a@b\r\nRCPT TO:<c@d>"));
	assert_false(smtp_path_ok("a>@b"));
	assert_false(smtp_path_ok("<a@b"));
	memset(big, 'a', sizeof(big));
	big[254] = '\0';
	assert_true(smtp_path_ok(big));
	big[254] = 'a';
	big[255] = '\0';
	assert_false(smtp_path_ok(big));
}

static void
test_base64(void **state)
{
	static const struct { const char *in, *out; } t[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	char buf[64], dec[64];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(smtp_base64_encode(t[i].in, strlen(t[i].in),
		    buf, sizeof(buf)), 0);
		assert_string_equal(buf, t[i].out);
		assert_int_equal(smtp_base64_decode(t[i].out, strlen(t[i].out),
		    dec, sizeof(dec), &n), 0);
		assert_int_equal(n, strlen(t[i].in));
		assert_memory_equal(dec, t[i].in, n);
	}
	/* AUTH PLAIN's NULs */
	assert_int_equal(smtp_base64_encode("\0u\0p", 4, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "AHUAcA==");
	assert_int_equal(smtp_base64_encode("foo", 3, buf, 4), -1);
	assert_int_equal(smtp_base64_encode("foo", 3, buf, 5), 0);
	assert_int_equal(smtp_base64_decode("Zm9", 3, dec, sizeof(dec), &n), -1);
	assert_int_equal(smtp_base64_decode("Z=9v", 4, dec, sizeof(dec), &n), -1);
	assert_int_equal(smtp_base64_decode("Zm9v", 4, dec, 2, &n), -1);
	assert_int_equal(smtp_base64_decode("Zm!v", 4, dec, sizeof(dec), &n), -1);
	assert_int_equal(smtp_base64_decode("Zg=a", 4, dec, sizeof(dec), &n), -1);
}

/*
 * Run the DATA decoder over in[0..len) in chunks of `chunk` bytes with at
 * most `outcap` bytes of output room per call.  Returns the final status;
 * *used gets the input bytes taken in all, out and *outlen the output.
 */
static enum smtp_unstuff_status
unstuff_run(unsigned flags, size_t line_max, const char *in, size_t len,
    size_t chunk, size_t outcap, char *out, size_t outsize, size_t *used,
    size_t *outlen)
{
	struct smtp_unstuff u;
	enum smtp_unstuff_status st = SMTP_UNSTUFF_MORE;
	size_t pos = 0, o = 0, n, k, w;

	smtp_unstuff_init(&u, line_max, flags);
	while (pos < len) {
		size_t end = pos + chunk < len ? pos + chunk : len;

		while (pos < end) {
			size_t room = outsize - o;

			if (room > outcap)
				room = outcap;

			k = end - pos;
			st = smtp_unstuff_feed(&u, in + pos, k, &n, out + o,
			    room, &w);
			assert_true(n <= k);
			assert_true(w <= room);
			pos += n;
			o += w;
			if (st != SMTP_UNSTUFF_MORE)
				goto done;
			/* MORE: all taken, or the output room was too small */
			assert_true(n == k || room - w < 2);
			assert_true(n > 0);
		}
	}
done:
	*used = pos;
	*outlen = o;
	if (st != SMTP_UNSTUFF_MORE) {
		/* after the end: the same status, nothing taken */
		assert_int_equal(smtp_unstuff_feed(&u, "x\r\n.\r\n", 6, &n,
		    out + o, outsize - o, &w), st);
		assert_int_equal(n, 0);
		assert_int_equal(w, 0);
	}
	return st;
}

/* Feed in[0..len) as two pieces split at cut. */
static enum smtp_unstuff_status
unstuff_cut(unsigned flags, size_t line_max, const char *in, size_t len,
    size_t cut, char *out, size_t outsize, size_t *used, size_t *outlen)
{
	struct smtp_unstuff u;
	enum smtp_unstuff_status st;
	size_t n, w;

	smtp_unstuff_init(&u, line_max, flags);
	st = smtp_unstuff_feed(&u, in, cut, &n, out, outsize, &w);
	*outlen = w;
	*used = n;
	if (st != SMTP_UNSTUFF_MORE)
		return st;
	assert_int_equal(n, cut);
	st = smtp_unstuff_feed(&u, in + cut, len - cut, &n, out + w,
	    outsize - w, outlen);
	*outlen += w;
	*used += n;
	return st;
}

#define UNSTUFF_ALL	((size_t)-1)	/* used: the whole input */

struct unstuff_case {
	const char *in;
	size_t len;		/* 0: strlen(in) */
	size_t line_max;	/* 0: 1000 */
	enum smtp_unstuff_status st;
	size_t used;		/* UNSTUFF_ALL: len */
	const char *out;
};

static void	unstuff_check(unsigned, const struct unstuff_case *, size_t);

static void
test_unstuff(void **state)
{
	static const struct unstuff_case t[] = {
		/* plain end; what follows is the next command */
		{ "a\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, 6, "a\r\n" },
		{ "a\r\n.\r\nMAIL FROM:<x>\r\n", 0, 0, SMTP_UNSTUFF_END, 6,
		  "a\r\n" },
		{ "a\r\nb\r\n.\r\nQUIT\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, 9,
		  "a\r\nb\r\n" },
		/* empty message, and one empty line */
		{ ".\r\n", 0, 0, SMTP_UNSTUFF_END, 3, "" },
		{ ".\r\nRSET\r\n", 0, 0, SMTP_UNSTUFF_END, 3, "" },
		{ "\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, 5, "\r\n" },
		/* dot-unstuffing */
		{ "..a\r\n..\r\n.x\r\n...\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END,
		  UNSTUFF_ALL, ".a\r\n.\r\nx\r\n..\r\n" },
		{ "a.\r\nb..\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "a.\r\nb..\r\n" },
		{ "..\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL, ".\r\n" },
		/* SMTP smuggling: bare LF before the dot */
		{ "a\n.\r\nMAIL FROM:<x>\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_LF,
		  UNSTUFF_ALL, "a" },
		{ "a\n.\r\nMAIL FROM:<x>\r\n.\r\nQUIT\r\n", 0, 0,
		  SMTP_UNSTUFF_BARE_LF, 23, "a" },
		{ "a\r\n.\nRCPT TO:<y>\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_LF,
		  UNSTUFF_ALL, "a\r\n" },
		{ "a\n.\nDATA\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_LF,
		  UNSTUFF_ALL, "a" },
		{ "\n.\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_LF, UNSTUFF_ALL,
		  "" },
		{ "\n.\r\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_LF, UNSTUFF_ALL,
		  "" },
		/* ... and bare CR */
		{ "\r.\r\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL,
		  "" },
		{ "a\r\n\r.\r\nMAIL FROM:<x>\r\n.\r\n", 0, 0,
		  SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL, "a\r\n" },
		{ "a\r.\r\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL,
		  "a" },
		{ "a\r\n.\r.\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL,
		  "a\r\n" },
		{ "a\r\n.\r\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL,
		  "a\r\n" },
		{ "a\r\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL, "a" },
		/* the first violation is the one reported */
		{ "a\nb\rc\0\r\n.\r\n", 11, 0, SMTP_UNSTUFF_BARE_LF,
		  UNSTUFF_ALL, "a" },
		{ "a\rb\n\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL,
		  "a" },
		/* NUL */
		{ "a\0b\r\n.\r\n", 8, 0, SMTP_UNSTUFF_NUL, 8, "a" },
		{ "\0\r\n.\r\nX", 7, 0, SMTP_UNSTUFF_NUL, 6, "" },
		/* line length: wire octets with CRLF, stuffing dot included */
		{ "abcd\r\n.\r\n", 0, 6, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "abcd\r\n" },
		{ "abcde\r\n.\r\n", 0, 6, SMTP_UNSTUFF_LONG_LINE, UNSTUFF_ALL,
		  "abcd" },
		{ "..bc\r\n.\r\n", 0, 6, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  ".bc\r\n" },
		{ "..bcd\r\n.\r\n", 0, 6, SMTP_UNSTUFF_LONG_LINE, UNSTUFF_ALL,
		  ".bc" },
		{ "abcd\r\nabcd\r\nabcdefgh\r\n.\r\nX", 0, 6,
		  SMTP_UNSTUFF_LONG_LINE, 25, "abcd\r\nabcd\r\nabcd" },
		/* no end yet: more input wanted */
		{ "a\r\n.\r", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL, "a\r\n" },
		{ "a\n.\n", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL, "a" },
		{ "a\r\n.\n", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL, "a\r\n" },
		{ "a\n.\r\n", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL, "a" },
		{ "", 0, 0, SMTP_UNSTUFF_MORE, 0, "" },
	};

	(void)state;
	unstuff_check(0, t, sizeof(t) / sizeof(t[0]));
}

/*
 * SMTP_UNSTUFF_LF (bare_lf = normalize): a bare LF is a line end stored
 * as CRLF, and still only CRLF "." CRLF ends the data.
 */
static void
test_unstuff_lf(void **state)
{
	static const struct unstuff_case t[] = {
		/* an LF-only body, as curl --upload-file sends a file */
		{ "a\nb\n\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "a\r\nb\r\n\r\n" },
		{ "a\nb\r\n.\r\nQUIT\r\n", 0, 0, SMTP_UNSTUFF_END, 8,
		  "a\r\nb\r\n" },
		{ "\n\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "\r\n\r\n" },
		/* CRLF as before */
		{ "a\r\n.\r\nMAIL FROM:<x>\r\n", 0, 0, SMTP_UNSTUFF_END, 6,
		  "a\r\n" },
		{ ".\r\nRSET\r\n", 0, 0, SMTP_UNSTUFF_END, 3, "" },
		/*
		 * SMTP smuggling: a "." line next to a bare LF is an empty
		 * line, and what follows it is message text.
		 */
		{ "a\n.\r\nMAIL FROM:<x>\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END,
		  UNSTUFF_ALL, "a\r\n\r\nMAIL FROM:<x>\r\n" },
		{ "a\r\n.\nRCPT TO:<y>\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END,
		  UNSTUFF_ALL, "a\r\n\r\nRCPT TO:<y>\r\n" },
		{ "a\n.\nDATA\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END,
		  UNSTUFF_ALL, "a\r\n\r\nDATA\r\n" },
		{ "\n.\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "\r\n\r\nX\r\n" },
		{ "\n.\r\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "\r\n\r\nX\r\n" },
		{ ".\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "\r\nX\r\n" },
		{ "a\n.\n.\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "a\r\n\r\n\r\n" },
		{ "a\r\n.\n\r\n.\r\nX", 0, 0, SMTP_UNSTUFF_END, 10,
		  "a\r\n\r\n\r\n" },
		/* found by fuzz_smtpd_data: LF "." CRLF CRLF is no end */
		{ "a\n.\r\n\r\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END,
		  UNSTUFF_ALL, "a\r\n\r\n\r\nX\r\n" },
		{ "a\n.\r\n\r\n", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL,
		  "a\r\n\r\n\r\n" },
		/* dot-unstuffing: a line after a bare LF loses its first '.' */
		{ "..a\n..\n.x\n...\n\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END,
		  UNSTUFF_ALL, ".a\r\n.\r\nx\r\n..\r\n\r\n" },
		{ "a\n..\r\n.\r\n", 0, 0, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "a\r\n.\r\n" },
		/* bare CR, NUL and long lines are still violations */
		{ "\r.\r\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR,
		  UNSTUFF_ALL, "" },
		{ "a\n\r.\r\nX\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR,
		  UNSTUFF_ALL, "a\r\n" },
		{ "a\n.\r.\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL,
		  "a\r\n" },
		{ "a\r\r\n.\r\n", 0, 0, SMTP_UNSTUFF_BARE_CR, UNSTUFF_ALL,
		  "a" },
		{ "a\nb\rc\0\r\n.\r\n", 11, 0, SMTP_UNSTUFF_BARE_CR,
		  UNSTUFF_ALL, "a\r\nb" },
		{ "a\n\0\r\n.\r\n", 8, 0, SMTP_UNSTUFF_NUL, UNSTUFF_ALL,
		  "a\r\n" },
		{ "abcd\nabcd\r\n.\r\n", 0, 6, SMTP_UNSTUFF_END, UNSTUFF_ALL,
		  "abcd\r\nabcd\r\n" },
		{ "abcd\nabcde\r\n.\r\n", 0, 6, SMTP_UNSTUFF_LONG_LINE,
		  UNSTUFF_ALL, "abcd\r\nabcd" },
		{ "abcd\n..bcd\n.\r\n.\r\n", 0, 6, SMTP_UNSTUFF_LONG_LINE,
		  UNSTUFF_ALL, "abcd\r\n.bc" },
		/* no end yet */
		{ "a\n.\n", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL,
		  "a\r\n\r\n" },
		{ "a\r\n.\n", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL,
		  "a\r\n\r\n" },
		{ "a\n.\r\n", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL,
		  "a\r\n\r\n" },
		{ "a\r\n.\r", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL, "a\r\n" },
		{ "\n\n\n\n", 0, 0, SMTP_UNSTUFF_MORE, UNSTUFF_ALL,
		  "\r\n\r\n\r\n\r\n" },
	};

	(void)state;
	unstuff_check(SMTP_UNSTUFF_LF, t, sizeof(t) / sizeof(t[0]));
}

/*
 * Each case through the decoder in every chunk size (with room enough
 * and with 2-byte room), and split in two at every point.
 */
static void
unstuff_check(unsigned flags, const struct unstuff_case *t, size_t nt)
{
	char out[256];
	size_t used, olen;

	for (size_t i = 0; i < nt; i++) {
		size_t len = t[i].len != 0 ? t[i].len : strlen(t[i].in);
		size_t lm = t[i].line_max != 0 ? t[i].line_max : 1000;
		size_t wused = t[i].used == UNSTUFF_ALL ? len : t[i].used;
		size_t wout = strlen(t[i].out);

		/* every chunk size, with room enough and with 2-byte room */
		for (size_t chunk = 1; chunk <= len + 1; chunk++) {
			for (size_t cap = 2; cap <= sizeof(out);
			    cap = cap == 2 ? sizeof(out) : cap + 1) {
				enum smtp_unstuff_status st;

				st = unstuff_run(flags, lm, t[i].in, len,
				    chunk, cap, out, sizeof(out), &used,
				    &olen);
				if (st != t[i].st || used != wused ||
				    olen != wout)
					print_message("case %zu chunk %zu "
					    "cap %zu: st %d used %zu olen %zu\n",
					    i, chunk, cap, (int)st, used, olen);
				assert_int_equal(st, t[i].st);
				assert_int_equal(used, wused);
				assert_int_equal(olen, wout);
				assert_memory_equal(out, t[i].out, wout);
			}
		}
		/* every two-piece split */
		for (size_t cut = 0; cut <= len; cut++) {
			enum smtp_unstuff_status st;

			st = unstuff_cut(flags, lm, t[i].in, len, cut, out,
			    sizeof(out), &used, &olen);
			if (st != t[i].st || used != wused || olen != wout)
				print_message("case %zu cut %zu: st %d "
				    "used %zu olen %zu\n", i, cut, (int)st,
				    used, olen);
			assert_int_equal(st, t[i].st);
			assert_int_equal(used, wused);
			assert_int_equal(olen, wout);
			assert_memory_equal(out, t[i].out, wout);
		}
	}
}

/* The 1000-octet limit (RFC 5321 §4.5.3.1.6) and its default. */
static void
test_unstuff_line_max(void **state)
{
	static char in[2100], out[2100];
	size_t n, used, olen;

	(void)state;
	for (n = 997; n <= 1001; n++) {
		enum smtp_unstuff_status st;

		memset(in, 'x', n);
		memcpy(in + n, "\r\n.\r\n", 5);
		st = unstuff_run(0, SMTP_TEXT_LINE_MAX + 2, in, n + 5, 7, 4096,
		    out, sizeof(out), &used, &olen);
		assert_int_equal(used, n + 5);
		if (n <= 998) {
			assert_int_equal(st, SMTP_UNSTUFF_END);
			assert_int_equal(olen, n + 2);
		} else
			assert_int_equal(st, SMTP_UNSTUFF_LONG_LINE);
	}
	/* a stuffed line of 998 wire octets is fine, 999 is not */
	in[0] = '.';
	memset(in + 1, '.', 997);
	memcpy(in + 998, "\r\n.\r\n", 5);
	assert_int_equal(unstuff_run(0, 1000, in, 1003, 1003, 4096, out,
	    sizeof(out), &used, &olen), SMTP_UNSTUFF_END);
	assert_int_equal(olen, 997 + 2);
	memset(in, '.', 999);
	memcpy(in + 999, "\r\n.\r\n", 5);
	assert_int_equal(unstuff_run(0, 1000, in, 1004, 1004, 4096, out,
	    sizeof(out), &used, &olen), SMTP_UNSTUFF_LONG_LINE);
	assert_int_equal(used, 1004);
}

/* Whatever smtp_stuff_encode() sends, the decoder gives back. */
static void
test_unstuff_roundtrip(void **state)
{
	static const char *bodies[] = {
		"", "a", "a\r\n", ".", ".\r\n", "..\r\n.\r\n", "\r\n.\r\n.",
		"x\r\n.\r\nMAIL FROM:<e@vil>\r\n", ".a\r\n..b\r\n\r\n.",
	};
	char wire[256], out[256];
	size_t w, n, used, olen;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct smtp_stuff st;
		size_t len = strlen(bodies[i]);

		smtp_stuff_init(&st);
		w = smtp_stuff_encode(&st, bodies[i], len, wire,
		    sizeof(wire), &n);
		assert_int_equal(n, len);
		w += smtp_stuff_finish(&st, wire + w, sizeof(wire) - w);
		for (size_t chunk = 1; chunk <= w; chunk++) {
			assert_int_equal(unstuff_run(0, 1000, wire, w, chunk,
			    sizeof(out), out, sizeof(out), &used, &olen),
			    SMTP_UNSTUFF_END);
			assert_int_equal(used, w);
			/* a CRLF may have been added at the end */
			assert_true(olen == len || (olen == len + 2 &&
			    memcmp(out + len, "\r\n", 2) == 0));
			assert_memory_equal(out, bodies[i], len);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_ok),
		cmocka_unit_test(test_reply_bad),
		cmocka_unit_test(test_status_parse),
		cmocka_unit_test(test_status_reply),
		cmocka_unit_test(test_ehlo),
		cmocka_unit_test(test_stuff),
		cmocka_unit_test(test_stuff_long_lines),
		cmocka_unit_test(test_stuff_roundtrip),
		cmocka_unit_test(test_unstuff),
		cmocka_unit_test(test_unstuff_lf),
		cmocka_unit_test(test_unstuff_line_max),
		cmocka_unit_test(test_unstuff_roundtrip),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_path),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
