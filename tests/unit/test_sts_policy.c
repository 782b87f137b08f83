/*
 * Unit tests for src/sts_policy.c: the MTA-STS TXT record (RFC 8461
 * §3.1), the policy body (§3.2), mx pattern matching (§4.1), and the HTTP
 * response pieces the fetch uses (status line, header fields, chunked
 * decoding).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "sts_policy.h"

#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

static void
test_txt(void **state)
{
	static const struct { const char *in; const char *id; } ok[] = {
		{ "v=STSv1; id=20160831085700Z;", "20160831085700Z" },
		{ "v=STSv1;id=abc", "abc" },
		{ "v=STSv1 ;  id=1 ; ", "1" },
		{ "v=STSv1; ext=va:lue; id=A1", "A1" },
		{ "v=STSv1;\tid=12345678901234567890123456789012",
		    "12345678901234567890123456789012" },
	};
	static const char *bad[] = {
		"", "v=STSv1", "v=STSv1;", "v=STSv1; id=", "v=stsv1; id=1",
		"v=STSv2; id=1", " v=STSv1; id=1", "v=STSv1 id=1",
		"v=STSv1; id=1; id=2", "v=STSv1; id=a-b",
		"v=STSv1; id=123456789012345678901234567890123",
		"v=STSv1; id=1; =x", "v=STSv1; id=1; x=", "v=STSv1; id=1; x",
		"v=STSv1; id=1;; ", "v=STSv1x; id=1", "v=STSv1; ID=1",
		"v=STSv1; id=1; _x=1", "v=STSv1; id=1; x=a=b",
		"v=spf1 -all", "v=STSv1; id=1 x",
	};
	char id[STS_ID_MAX + 1];

	(void)state;
	for (size_t i = 0; i < NITEMS(ok); i++) {
		memset(id, 0, sizeof(id));
		assert_int_equal(sts_txt_parse(ok[i].in, id), 0);
		assert_string_equal(id, ok[i].id);
	}
	for (size_t i = 0; i < NITEMS(bad); i++) {
		if (sts_txt_parse(bad[i], id) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
	}
}

static void
parse_ok(const char *body, struct sts_policy *p)
{
	char err[128] = "";

	memset(p, 0, sizeof(*p));
	if (sts_policy_parse(body, strlen(body), p, err, sizeof(err)) != 0)
		fail_msg("refused (%s): \"%s\"", err, body);
}

static void
test_policy_ok(void **state)
{
	struct sts_policy p;

	(void)state;
	parse_ok("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
	    "mx: *.example.net\r\nmx: backupmx.example.com\r\n"
	    "max_age: 604800\r\n", &p);
	assert_int_equal(p.mode, STS_MODE_ENFORCE);
	assert_int_equal(p.max_age, 604800);
	assert_int_equal(p.nmx, 3);
	assert_string_equal(p.mx[0], "mail.example.com");
	assert_string_equal(p.mx[1], "*.example.net");
	sts_policy_clear(&p);
	assert_null(p.mx);

	/* LF ends, any order, trailing white space, case folded, no final LF */
	parse_ok("mode:testing\nmx:  MX.Example.ORG.  \nmax_age: 86400\n"
	    "version: STSv1", &p);
	assert_int_equal(p.mode, STS_MODE_TESTING);
	assert_string_equal(p.mx[0], "mx.example.org");
	sts_policy_clear(&p);

	/* mode none needs no mx; unknown keys ignored; max_age capped */
	parse_ok("version: STSv1\nmode: none\nmax_age: 9999999999\n"
	    "future_key: some value\n", &p);
	assert_int_equal(p.mode, STS_MODE_NONE);
	assert_int_equal(p.nmx, 0);
	assert_int_equal(p.max_age, STS_MAX_AGE_MAX);
	sts_policy_clear(&p);

	parse_ok("version: STSv1\nmode: enforce\nmax_age: 0\nmx: a\n", &p);
	assert_int_equal(p.max_age, 0);
	sts_policy_clear(&p);
}

static void
test_policy_bad(void **state)
{
	static const char *bad[] = {
		"",
		"mode: enforce\nmx: a.b\nmax_age: 1\n",		/* no version */
		"version: STSv1\nmx: a.b\nmax_age: 1\n",	/* no mode */
		"version: STSv1\nmode: enforce\nmx: a.b\n",	/* no max_age */
		"version: STSv1\nmode: enforce\nmax_age: 1\n",	/* no mx */
		"version: STSv1\nmode: testing\nmax_age: 1\n",
		"version: STSv2\nmode: none\nmax_age: 1\n",
		"version: stsv1\nmode: none\nmax_age: 1\n",
		"version: STSv1\nmode: Enforce\nmx: a\nmax_age: 1\n",
		"version: STSv1\nmode: none\nmode: none\nmax_age: 1\n",
		"version: STSv1\nversion: STSv1\nmode: none\nmax_age: 1\n",
		"version: STSv1\nmode: none\nmax_age: 1\nmax_age: 2\n",
		"version: STSv1\nmode: none\nmax_age: -1\n",
		"version: STSv1\nmode: none\nmax_age: 12345678901\n",
		"version: STSv1\nmode: none\nmax_age: 1h\n",
		"version: STSv1\nmode: none\nmax_age:\n",
		"version: STSv1\nmode: none\nmax_age: 1\nno colon\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: *.*.a.b\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: a.*.b\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: *a.b\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: *\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: *.\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: a..b\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: -a.b\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: a_b.c\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx: a b\n",
		"version: STSv1\nmode: enforce\nmax_age: 1\nmx:\n",
		"version: STSv1\nmode: none\nmax_age: 1\n_x: y\n",
		"version: STSv1\nmode: none\nmax_age: 1\nx y: z\n",
		"Version: STSv1\nmode: none\nmax_age: 1\n",
	};
	struct sts_policy p;
	char err[128];

	(void)state;
	for (size_t i = 0; i < NITEMS(bad); i++) {
		memset(&p, 0, sizeof(p));
		err[0] = '\0';
		if (sts_policy_parse(bad[i], strlen(bad[i]), &p, err,
		    sizeof(err)) != -1)
			fail_msg("accepted: \"%s\"", bad[i]);
		assert_true(err[0] != '\0');
		assert_null(p.mx);
	}
	/* A NUL byte inside */
	memset(&p, 0, sizeof(p));
	assert_int_equal(sts_policy_parse("version: STSv1\nmode: none\0\n"
	    "max_age: 1\n", 38, &p, err, sizeof(err)), -1);
}

static void
test_policy_size(void **state)
{
	static const char head[] = "version: STSv1\nmode: none\nmax_age: 1\n";
	size_t n = STS_BODY_MAX + 1;
	char *big = malloc(n), err[128];
	struct sts_policy p;

	(void)state;
	memset(big, '\n', n);
	memcpy(big, head, sizeof(head) - 1);
	memset(&p, 0, sizeof(p));
	assert_int_equal(sts_policy_parse(big, n - 1, &p, err, sizeof(err)), 0);
	sts_policy_clear(&p);
	assert_int_equal(sts_policy_parse(big, n, &p, err, sizeof(err)), -1);
	assert_string_equal(err, "over 64 KiB");
	free(big);
}

static void
test_policy_copy(void **state)
{
	struct sts_policy p, q;

	(void)state;
	parse_ok("version: STSv1\nmode: enforce\nmax_age: 5\nmx: a.b\n"
	    "mx: *.c.d\n", &p);
	memcpy(p.id, "xyz", 4);
	p.fetched = 77;
	sts_policy_copy(&q, &p);
	sts_policy_clear(&p);
	assert_int_equal(q.nmx, 2);
	assert_string_equal(q.mx[1], "*.c.d");
	assert_string_equal(q.id, "xyz");
	assert_int_equal(q.fetched, 77);
	assert_int_equal(q.max_age, 5);
	sts_policy_clear(&q);
}

static void
test_mx_match(void **state)
{
	static const struct { const char *host; bool match; } cases[] = {
		{ "mail.example.com", true },
		{ "MAIL.Example.COM.", true },
		{ "mail.example.com.x", false },
		{ "xmail.example.com", false },
		{ "a.example.net", true },
		{ "A.EXAMPLE.NET.", true },
		{ "a.b.example.net", false },
		{ "example.net", false },
		{ ".example.net", false },
		{ "xexample.net", false },
		{ "", false },
		{ ".", false },
	};
	struct sts_policy p;

	(void)state;
	parse_ok("version: STSv1\nmode: enforce\nmax_age: 5\n"
	    "mx: mail.example.com\nmx: *.example.net\n", &p);
	for (size_t i = 0; i < NITEMS(cases); i++)
		if (sts_mx_match(&p, cases[i].host) != cases[i].match)
			fail_msg("%s: expected %d", cases[i].host,
			    cases[i].match);
	sts_policy_clear(&p);
}

static void
test_http_head(void **state)
{
	static const char *bad_status[] = {
		"", "HTTP/1.1", "HTTP/1.1 20", "HTTP/2 200 OK", "HTTP/1.1 2000",
		"HTTP/1.1 abc OK", "http/1.1 200 OK", "HTTP/1.1  200 OK",
		"HTTP/1.1 099 x",
	};
	static const char *bad_header[] = {
		"no colon", ": empty name", "Bad Name: x", "Content-Type : x",
		"Content-Length: -1", "Content-Length: 1 2",
		"Content-Length: 1234567890123456789", "Content-Length:",
		"Transfer-Encoding: gzip", "Transfer-Encoding: gzip, chunked",
		" folded: x",
	};
	struct sts_http h;
	char err[128];

	(void)state;
	sts_http_init(&h);
	assert_int_equal(sts_http_status(&h, "HTTP/1.1 200 OK", 15), 0);
	assert_int_equal(h.status, 200);
	assert_int_equal(sts_http_status(&h, "HTTP/1.0 301", 12), 0);
	assert_int_equal(h.status, 301);
	for (size_t i = 0; i < NITEMS(bad_status); i++)
		if (sts_http_status(&h, bad_status[i],
		    strlen(bad_status[i])) != -1)
			fail_msg("accepted: \"%s\"", bad_status[i]);

	sts_http_init(&h);
#define HDR(s)	sts_http_header(&h, s, strlen(s), err, sizeof(err))
	assert_int_equal(HDR("Server: test"), 0);
	assert_false(h.have_type);
	assert_int_equal(HDR("content-type: Text/Plain; charset=utf-8"), 0);
	assert_true(h.have_type);
	assert_true(h.type_ok);
	assert_int_equal(HDR("Content-Length:  123 "), 0);
	assert_int_equal(h.length, 123);
	assert_int_equal(HDR("Content-Length: 123"), 0);
	assert_int_equal(HDR("Content-Length: 124"), -1);
	assert_int_equal(HDR("Transfer-Encoding: Chunked"), 0);
	assert_true(h.chunked);

	sts_http_init(&h);
	assert_int_equal(HDR("Content-Type: text/html"), 0);
	assert_true(h.have_type);
	assert_false(h.type_ok);
	assert_int_equal(HDR("Content-Type: text/plain"), 0);
	assert_false(h.type_ok);	/* one wrong type spoils it */
	sts_http_init(&h);
	assert_int_equal(HDR("Content-Type: text/plainx"), 0);
	assert_false(h.type_ok);

	for (size_t i = 0; i < NITEMS(bad_header); i++) {
		sts_http_init(&h);
		if (HDR(bad_header[i]) != -1)
			fail_msg("accepted: \"%s\"", bad_header[i]);
	}
	sts_http_init(&h);
	for (size_t i = 0; i < STS_HTTP_HEADERS_MAX; i++)
		assert_int_equal(HDR("X: y"), 0);
	assert_int_equal(HDR("X: y"), -1);
#undef HDR
}

/* Decode s fed in pieces of step bytes; the result code of the end. */
static enum sts_chunked_result
chunked(const char *s, size_t step, char *out, size_t *outlen, size_t outmax)
{
	struct sts_chunked c;
	size_t len = strlen(s), off = 0;
	enum sts_chunked_result r = STS_CHUNKED_MORE;

	sts_chunked_init(&c);
	*outlen = 0;
	while (off < len) {
		size_t n = len - off < step ? len - off : step, used;

		r = sts_chunked_decode(&c, s + off, n, &used, out, outlen,
		    outmax);
		assert_true(used <= n);
		off += used;
		if (r != STS_CHUNKED_MORE)
			break;
		assert_int_equal(used, n);
	}
	return r;
}

static void
test_chunked(void **state)
{
	static const char *bad[] = {
		"x\r\n", "\r\n", "5\r\nabcdeX\r\n0\r\n\r\n",
		"5\rX", "1234567890abcdef0\r\n", "5\r\nabcde\r\n0\r\n\rX",
	};
	char out[64];
	size_t outlen;

	(void)state;
	for (size_t step = 1; step <= 64; step *= 4) {
		assert_int_equal(chunked("5\r\nhello\r\n7;ext=1\r\n, world"
		    "\r\n0\r\nTrailer: x\r\n\r\n", step, out, &outlen,
		    sizeof(out)), STS_CHUNKED_DONE);
		assert_int_equal(outlen, 12);
		assert_memory_equal(out, "hello, world", 12);
	}
	assert_int_equal(chunked("A\nabcdefghij\n0\n\n", 3, out, &outlen,
	    sizeof(out)), STS_CHUNKED_DONE);
	assert_int_equal(outlen, 10);
	assert_int_equal(chunked("5\r\nhel", 2, out, &outlen, sizeof(out)),
	    STS_CHUNKED_MORE);
	/* The size line already says it will not fit */
	assert_int_equal(chunked("41\r\n", 64, out, &outlen, sizeof(out)),
	    STS_CHUNKED_FULL);
	assert_int_equal(chunked("20\r\n12345678901234567890123456789012\r\n"
	    "20\r\n1234567890123456789012345678901\r\n"
	    "2\r\n", 7, out, &outlen, sizeof(out)), STS_CHUNKED_FULL);
	for (size_t i = 0; i < NITEMS(bad); i++)
		if (chunked(bad[i], 1, out, &outlen, sizeof(out)) !=
		    STS_CHUNKED_ERROR)
			fail_msg("accepted: \"%s\"", bad[i]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_txt),
		cmocka_unit_test(test_policy_ok),
		cmocka_unit_test(test_policy_bad),
		cmocka_unit_test(test_policy_size),
		cmocka_unit_test(test_policy_copy),
		cmocka_unit_test(test_mx_match),
		cmocka_unit_test(test_http_head),
		cmocka_unit_test(test_chunked),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
