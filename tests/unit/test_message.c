/*
 * Unit tests for the message module (src/message.c, src/msg_addr.c):
 * address-list parsing (RFC 5322 §3.4 and the obsolete forms of §4.4),
 * envelope address checks (RFC 5321), the header fix-ups of the sendmail
 * interface, and the SMTP listener's Received: field and hop count.
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
#include <time.h>
#include <cmocka.h>

#include "message.h"

#define NOW	((time_t)1795459453)	/* Mon, 23 Nov 2026 18:44:13 UTC */
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static char	*repeat(char, size_t);
static void	 set_tz(const char *);
static int	 fix(const char *, size_t, const struct msg_header_opts *,
		    char **, size_t *, size_t *, struct strlist *, char *);

/* A fresh string of n copies of ch. */
static char *
repeat(char ch, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, ch, n);
	s[n] = '\0';
	return s;
}

static void
set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

static int
fix(const char *in, size_t len, const struct msg_header_opts *o, char **out,
    size_t *outlen, size_t *body, struct strlist *rcpts, char *err)
{
	err[0] = '\0';
	return msg_headers_fix(in, len, o, out, outlen, body, rcpts, err, 256);
}

static const struct {
	const char	*in;
	int		 n;
	const char	*out[4];
} addr_ok[] = {
	{ "john@example.com", 1, { "john@example.com" } },
	{ "John Doe <john@example.com>", 1, { "john@example.com" } },
	{ "\"Doe, John\" <john@example.com>, jane@example.org", 2,
	    { "john@example.com", "jane@example.org" } },
	{ "=?UTF-8?B?SsO2cmc=?= <j@example.de>", 1, { "j@example.de" } },
	{ "\"=?UTF-8?Q?J=C3=B6rg?=\" <j@example.de>", 1, { "j@example.de" } },
	{ "J\xc3\xb6rg M\xc3\xbcller <j@example.de>", 1, { "j@example.de" } },
	{ "\"john doe\"@example.com", 1, { "\"john doe\"@example.com" } },
	{ "\"john\"@example.com", 1, { "john@example.com" } },
	{ "\"john\".\"doe\"@example.com", 1, { "john.doe@example.com" } },
	{ "\"john.\".doe@example.com", 1, { "\"john..doe\"@example.com" } },
	{ "\"a\\\"b\"@example.com", 1, { "\"a\\\"b\"@example.com" } },
	{ "\"a\\bc\"@example.com", 1, { "abc@example.com" } },
	{ "\"a,b\" <\"a,b\"@example.com>", 1, { "\"a,b\"@example.com" } },
	{ "user@[192.0.2.1]", 1, { "user@[192.0.2.1]" } },
	{ "user@[ 192.0.2.1 ]", 1, { "user@[192.0.2.1]" } },
	{ "<user@[IPv6:2001:db8::1]>", 1, { "user@[IPv6:2001:db8::1]" } },
	{ "undisclosed-recipients:;", 0, { NULL } },
	{ "Undisclosed recipients: ;", 0, { NULL } },
	{ "undisclosed-recipients:", 0, { NULL } },
	{ "team: a@x.example, b@y.example;", 2,
	    { "a@x.example", "b@y.example" } },
	{ "team: a@x.example, b@y.example;, c@z.example", 3,
	    { "a@x.example", "b@y.example", "c@z.example" } },
	{ "team: a@x.example", 1, { "a@x.example" } },
	{ "A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	    3, { "c@a.test", "joe@where.test", "jdoe@one.test" } },
	{ "A Group(Some people)\r\n     :Chris Jones <c@(Chris's host.)"
	    "public.example>,\r\n         joe@example.org,\r\n  John "
	    "<jdoe@one.test> (my dear friend); (the end of the group)", 3,
	    { "c@public.example", "joe@example.org", "jdoe@one.test" } },
	{ "(Empty list)(start)Hidden recipients  :(nobody(that I know))  ;",
	    0, { NULL } },
	{ "<@relay1.example,@relay2.example:u@d.example>", 1,
	    { "u@d.example" } },
	{ "Name <@a.example:u@d.example>", 1, { "u@d.example" } },
	{ "<,@a.example,,@b.example:u@d.example>", 1, { "u@d.example" } },
	{ "a@x.example, , ,b@y.example", 2, { "a@x.example", "b@y.example" } },
	{ ", a@x.example,", 1, { "a@x.example" } },
	{ "", 0, { NULL } },
	{ "   \t ", 0, { NULL } },
	{ "(only a comment)", 0, { NULL } },
	{ "root", 1, { "root" } },
	{ "root (Cron Daemon)", 1, { "root" } },
	{ "<root>", 1, { "root" } },
	{ "Cron Daemon <root>, postmaster", 2, { "root", "postmaster" } },
	{ "john (c1) @ (c2) example (c3) . com", 1, { "john@example.com" } },
	{ "john . doe @ example . com", 1, { "john.doe@example.com" } },
	{ "a@b.example (nested (comment \\) here) ok)", 1, { "a@b.example" } },
	{ "Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>", 1,
	    { "pete@silly.test" } },
	{ "John\r\n Doe <j@example.com>,\r\n\tk@example.com", 2,
	    { "j@example.com", "k@example.com" } },
	{ "John\n Doe <j@example.com>,\n\tk@example.com", 2,
	    { "j@example.com", "k@example.com" } },
	{ "\"folded\r\n quoted\"@example.com", 1,
	    { "\"folded quoted\"@example.com" } },
	{ "a@example.com\r\n", 1, { "a@example.com" } },
	{ "a@example.com\n", 1, { "a@example.com" } },
	{ "John Q. Public <jqp@example.com>", 1, { "jqp@example.com" } },
	{ "a@b.example <a@b.example>", 1, { "a@b.example" } },
	{ "<john@example.com> (John)", 1, { "john@example.com" } },
	{ "Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>", 3,
	    { "mary@x.test", "jdoe@example.org", "one@y.test" } },
	{ "\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>", 1,
	    { "sysservices@example.net" } },
	{ "first.last+tag@sub.example.co.uk", 1,
	    { "first.last+tag@sub.example.co.uk" } },
	{ "Group: \"q\"@x.example, (c) <r@y.example> ;", 2,
	    { "q@x.example", "r@y.example" } },
	{ "Smith, John <j@example.com>", 2, { "Smith", "j@example.com" } },
	{ "x@xn--bcher-kva.example", 1, { "x@xn--bcher-kva.example" } },
};

static const struct {
	const char	*in;
	size_t		 len;	/* 0: strlen(in) */
	const char	*why;	/* a substring of the error */
} addr_bad[] = {
	{ "\"unterminated@example.com", 0, "quoted string not closed" },
	{ "John <a@b.example>, \"x", 0, "quoted string not closed" },
	{ "(unclosed comment a@b.example", 0, "comment not closed" },
	{ "a@b.example (x (y)", 0, "comment not closed" },
	{ "a@b.example)", 0, "')'" },
	{ ") a@b.example", 0, "unbalanced ')'" },
	{ "user@[192.0.2.1", 0, "domain literal not closed" },
	{ "a@b]", 0, "']'" },
	{ "] a@b", 0, "unbalanced ']'" },
	{ "[192.0.2.1]", 0, "domain literal without '@'" },
	{ "John <john@example.com", 0, "missing '>'" },
	{ "John <john@example.com, b@c.example", 0, "missing '>'" },
	{ "<@a.example:u@d.example", 0, "missing '>'" },
	{ "<@a.example", 0, "missing '>'" },
	{ "x@y.example>", 0, "'>'" },
	{ "> x@y.example", 0, "'>' without '<'" },
	{ "<>", 0, "empty address <>" },
	{ "John <>", 0, "empty address <>" },
	{ "john@", 0, "'@' with empty domain" },
	{ "john@ , b@c.example", 0, "'@' with empty domain" },
	{ "<john@>", 0, "'@' with empty domain" },
	{ "john@(comment)", 0, "'@' with empty domain" },
	{ "@example.com", 0, "empty local part" },
	{ "a@b.example, @c.example", 0, "empty local part" },
	{ "\"\"@example.com", 0, "empty local part" },
	{ "a\x01" "b@example.com", 0, "control character 0x01" },
	{ "a@b\0c.example", 13, "control character 0x00" },
	{ "\"a\0b\"@c.example", 15, "control character 0x00" },
	{ "(a\0b) x@c.example", 17, "control character 0x00" },
	{ "a\x7f@b.example", 0, "control character 0x7f" },
	{ "a\rb@c.example", 0, "bare CR" },
	{ "a@b.example,\r\nc@d.example", 0, "not followed by white space" },
	{ "a@b.example,\nc@d.example", 0, "not followed by white space" },
	{ "a@b.example c@d.example", 0, "after address" },
	{ "John Smith", 0, "'S' after address" },
	{ "a@b.example; c@d.example", 0, "';' outside a group" },
	{ "g1: g2: a@b.example;;", 0, "nested group" },
	{ ":;", 0, "group without a name" },
	{ "a@b: c@d.example;", 0, "'@' in a group name" },
	{ "a@b..example", 0, "empty label" },
	{ "a@b.example.", 0, "empty label" },
	{ ".a@b.example", 0, "empty word before '.'" },
	{ "a..b@example.com", 0, "empty word before '.'" },
	{ "a.@example.com", 0, "local part" },
	{ ".", 0, "'.'" },
	{ "j\xc3\xb6rg@example.de", 0, "non-ASCII" },
	{ "a@b\xc3\xa4.example", 0, "non-ASCII" },
	{ "a@exa_mple.com", 0, "'_' in domain" },
	{ "a@-b.example", 0, "starts with '-'" },
	{ "a@b-.example", 0, "ends with '-'" },
	{ "a@[300.1.1.1]", 0, "invalid address literal" },
	{ "a@[1.2.3]", 0, "invalid address literal" },
	{ "a@[IPv6:zz::1]", 0, "invalid address literal" },
	{ "a@[x\\y]", 0, "in domain literal" },
	{ "<@a.example u@d.example>", 0, "source route" },
	{ "<@a.example@b.example:u@d.example>", 0, "source route" },
	{ "a@b.example, \\x", 0, "unexpected '\\' in address" },
};

static void
test_addrlist_ok(void **state)
{
	char err[256];

	(void)state;
	for (size_t i = 0; i < NELEM(addr_ok); i++) {
		struct strlist l = { NULL, 0, 0 };
		int n;

		err[0] = '\0';
		n = msg_addrlist_parse(addr_ok[i].in, strlen(addr_ok[i].in),
		    &l, err, sizeof(err));
		if (n != addr_ok[i].n)
			fail_msg("case %zu \"%s\": got %d (%s), want %d", i,
			    addr_ok[i].in, n, err, addr_ok[i].n);
		assert_int_equal(l.n, (size_t)n);
		for (size_t j = 0; j < l.n; j++)
			assert_string_equal(l.v[j], addr_ok[i].out[j]);
		strlist_free(&l);
	}
}

static void
test_addrlist_bad(void **state)
{
	char err[256];

	(void)state;
	for (size_t i = 0; i < NELEM(addr_bad); i++) {
		struct strlist l = { NULL, 0, 0 };
		size_t len = addr_bad[i].len ? addr_bad[i].len :
		    strlen(addr_bad[i].in);
		int n;

		strlist_add(&l, "kept");
		err[0] = '\0';
		n = msg_addrlist_parse(addr_bad[i].in, len, &l, err,
		    sizeof(err));
		if (n != -1 || strstr(err, addr_bad[i].why) == NULL)
			fail_msg("case %zu \"%s\": got %d \"%s\", want -1 \"%s\"",
			    i, addr_bad[i].in, n, err, addr_bad[i].why);
		assert_true(err[0] != '\0');
		/* Nothing new on error. */
		assert_int_equal(l.n, 1);
		assert_string_equal(l.v[0], "kept");
		strlist_free(&l);
	}
}

/* Length limits of RFC 5321 §4.5.3.1, and deep comments. */
static void
test_addrlist_limits(void **state)
{
	struct strlist l = { NULL, 0, 0 };
	char err[256], buf[1024], *local64, *local65, *label63, *label64;
	char *deep;

	(void)state;
	local64 = repeat('a', 64);
	local65 = repeat('a', 65);
	label63 = repeat('b', 63);
	label64 = repeat('b', 64);

	snprintf(buf, sizeof(buf), "%s@example.com", local64);
	assert_int_equal(msg_addrlist_parse(buf, strlen(buf), &l, err,
	    sizeof(err)), 1);
	snprintf(buf, sizeof(buf), "%s@example.com", local65);
	assert_int_equal(msg_addrlist_parse(buf, strlen(buf), &l, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "local part longer than 64"));
	/* The quotes count: 62 characters quoted are 64. */
	snprintf(buf, sizeof(buf), "\"%.61s \"@example.com", local64);
	assert_int_equal(msg_addrlist_parse(buf, strlen(buf), &l, err,
	    sizeof(err)), 1);
	snprintf(buf, sizeof(buf), "\"%.62s \"@example.com", local64);
	assert_int_equal(msg_addrlist_parse(buf, strlen(buf), &l, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "local part longer than 64"));

	snprintf(buf, sizeof(buf), "a@%s.example", label63);
	assert_int_equal(msg_addrlist_parse(buf, strlen(buf), &l, err,
	    sizeof(err)), 1);
	snprintf(buf, sizeof(buf), "a@%s.example", label64);
	assert_int_equal(msg_addrlist_parse(buf, strlen(buf), &l, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "label longer than 63"));

	/* a@ + 4 labels of 63 = 2 + 255: over the path limit. */
	snprintf(buf, sizeof(buf), "a@%s.%s.%s.%s", label63, label63, label63,
	    label63);
	assert_int_equal(msg_addrlist_parse(buf, strlen(buf), &l, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 254"));
	/* 254 octets: at the path limit. */
	snprintf(buf, sizeof(buf), "%.58s@%s.%s.%s.%.3s", local64, label63,
	    label63, label63, label63);
	assert_int_equal(strlen(buf), 254);
	assert_int_equal(msg_addrlist_parse(buf, strlen(buf), &l, err,
	    sizeof(err)), 1);

	/* Very long input: an error, never an overflow. */
	free(local65);
	local65 = repeat('x', 5000);
	assert_int_equal(msg_addrlist_parse(local65, 5000, &l, err,
	    sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than"));

	/* 32 nested comments are fine, 33 are not; 100000 do not recurse. */
	deep = malloc(200100);
	assert_non_null(deep);
	for (size_t k = 0; k < 3; k++) {
		size_t depth = k == 0 ? 32 : k == 1 ? 33 : 100000, n = 0;

		n += (size_t)snprintf(deep, 200100, "a@b.example ");
		memset(deep + n, '(', depth);
		n += depth;
		memset(deep + n, ')', depth);
		n += depth;
		deep[n] = '\0';
		assert_int_equal(msg_addrlist_parse(deep, n, &l, err,
		    sizeof(err)), depth == 32 ? 1 : -1);
		if (depth > 32)
			assert_non_null(strstr(err, "nested deeper than 32"));
	}
	free(deep);

	assert_int_equal(l.n, 5);
	strlist_free(&l);
	free(local64);
	free(local65);
	free(label63);
	free(label64);
}

static const struct {
	const char	*addr;
	bool		 unqualified;
	const char	*why;		/* NULL: valid */
} check_cases[] = {
	{ "a@b.example", false, NULL },
	{ "a@b.example", true, NULL },
	{ "first.last+tag@sub.example.co.uk", false, NULL },
	{ "\"john doe\"@example.com", false, NULL },
	{ "\"a\\\"b\"@example.com", false, NULL },
	{ "user@[192.0.2.1]", false, NULL },
	{ "user@[IPv6:::1]", false, NULL },
	{ "user@[ipv6:2001:db8::1]", false, NULL },
	{ "user@[IPv6:::ffff:192.0.2.1]", false, NULL },
	{ "root", true, NULL },
	{ "\"john doe\"", true, NULL },
	{ "a@b-c.example", false, NULL },
	{ "a@0.example", false, NULL },
	{ "", true, "empty address" },
	{ "root", false, "without '@domain'" },
	{ "a@", false, "'@' with empty domain" },
	{ "@b.example", false, "empty local part" },
	{ "\"\"@b.example", false, "empty local part" },
	{ "a b@c.example", false, "' ' in local part must be quoted" },
	{ "a(b)@c.example", false, "'(' in local part" },
	{ "a@b c", false, "in domain" },
	{ "a@b..example", false, "empty label" },
	{ "a@.example", false, "empty label" },
	{ "a@example.", false, "empty label" },
	{ "a@-b.example", false, "starts with '-'" },
	{ "a@b-.example", false, "ends with '-'" },
	{ "a@b_c.example", false, "'_' in domain" },
	{ "\"a\"b@c.example", false, "after the quoted local part" },
	{ "\"ab@c.example", false, "unbalanced '\"'" },
	{ "\"a\tb\"@c.example", false, "control character 0x09" },
	{ ".a@b.example", false, "starts with '.'" },
	{ "a.@b.example", false, "ends with '.'" },
	{ "a..b@b.example", false, "'..'" },
	{ "a\n@b.example", false, "control character 0x0a" },
	{ "a@b.example\r\n", false, "control character" },
	{ "a@[1.2.3]", false, "invalid address literal" },
	{ "a@[1.2.3.4.5]", false, "invalid address literal" },
	{ "a@[1.2.3.256]", false, "invalid address literal" },
	{ "a@[1.2.3.0001]", false, "invalid address literal" },
	{ "a@[IPv6:1::2::3]", false, "invalid address literal" },
	{ "a@[tag:stuff]", false, "invalid address literal" },
	{ "a@[1.2.3.4", false, "unbalanced '['" },
	{ "a@b@c.example", false, "'@' in domain" },
	{ "j\xc3\xb6rg@example.de", false, "non-ASCII" },
	{ "\"j\xc3\xb6rg\"@example.de", false, "non-ASCII" },
	{ "a@\xc3\xa4.example", false, "xn--" },
};

static void
test_addr_check(void **state)
{
	char err[256], buf[512], *s;

	(void)state;
	for (size_t i = 0; i < NELEM(check_cases); i++) {
		int rc;

		err[0] = '\0';
		rc = msg_addr_check(check_cases[i].addr,
		    check_cases[i].unqualified, err, sizeof(err));
		if (check_cases[i].why == NULL) {
			if (rc != 0)
				fail_msg("case %zu \"%s\": %s", i,
				    check_cases[i].addr, err);
		} else if (rc != -1 || strstr(err, check_cases[i].why) == NULL)
			fail_msg("case %zu \"%s\": got %d \"%s\", want \"%s\"",
			    i, check_cases[i].addr, rc, err,
			    check_cases[i].why);
	}
	assert_int_equal(msg_addr_check(NULL, true, err, sizeof(err)), -1);
	/* A NULL or empty err buffer is allowed. */
	assert_int_equal(msg_addr_check("a b", true, NULL, 0), -1);
	assert_int_equal(msg_addr_check("a b", true, err, 0), -1);

	s = repeat('a', 64);
	snprintf(buf, sizeof(buf), "%s@b.example", s);
	assert_int_equal(msg_addr_check(buf, false, err, sizeof(err)), 0);
	snprintf(buf, sizeof(buf), "a%s@b.example", s);
	assert_int_equal(msg_addr_check(buf, false, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "local part longer than 64"));
	free(s);
	s = repeat('b', 63);
	snprintf(buf, sizeof(buf), "a@%s.%s.%s.%.60s", s, s, s, s);
	assert_int_equal(strlen(buf), 254);
	assert_int_equal(msg_addr_check(buf, false, err, sizeof(err)), 0);
	snprintf(buf, sizeof(buf), "a@%s.%s.%s.%.61s", s, s, s, s);
	assert_int_equal(msg_addr_check(buf, false, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 254"));
	free(s);
}

static const struct msg_header_opts opts_default = {
	.extract_rcpts = false,
	.sender = "alice@example.org",
	.full_name = NULL,
	.hostname = "mx.example.org",
	.queue_id = "0123456789AB",
	.now = NOW,
};

#define ADDED	"Date: Mon, 23 Nov 2026 18:44:13 +0000\r\n" \
		"Message-ID: <0123456789AB@mx.example.org>\r\n" \
		"From: alice@example.org\r\n"
#define PRESENT	"Date: Mon, 23 Nov 2026 18:44:13 +0000\r\n" \
		"Message-ID: <x@y.example>\r\n" \
		"From: Alice <alice@example.org>\r\n"

/* Header fix-ups without -t: output and body offset for a given input. */
static const struct {
	const char	*name;
	const char	*in;
	const char	*out;
	size_t		 body;	/* offset in in */
} hdr_cases[] = {
	{ "all present", PRESENT "Subject: x\r\n\r\nbody\r\n",
	    PRESENT "Subject: x\r\n", sizeof(PRESENT "Subject: x\r\n\r\n") - 1 },
	{ "all missing", "Subject: x\r\n\r\nbody\r\n",
	    "Subject: x\r\n" ADDED, 14 },
	{ "any case", "DATE: a\r\nmessage-id: <b>\r\nfRoM: c\r\n\r\n",
	    "DATE: a\r\nmessage-id: <b>\r\nfRoM: c\r\n", 37 },
	{ "date only", "date: whenever\r\n\r\n",
	    "date: whenever\r\n"
	    "Message-ID: <0123456789AB@mx.example.org>\r\n"
	    "From: alice@example.org\r\n", 18 },
	{ "Bcc with continuation", PRESENT "To: a@b.example\r\n"
	    "Bcc: secret@example.net,\r\n\tother@example.net\r\n"
	    " (third line)\r\nSubject: s\r\n\r\nbody",
	    PRESENT "To: a@b.example\r\nSubject: s\r\n",
	    sizeof(PRESENT "To: a@b.example\r\nBcc: secret@example.net,\r\n"
	    "\tother@example.net\r\n (third line)\r\nSubject: s\r\n\r\n") - 1 },
	{ "bcc lower case, last", PRESENT "bcc: x@y.example\r\n\r\n",
	    PRESENT, sizeof(PRESENT "bcc: x@y.example\r\n\r\n") - 1 },
	{ "X-Bcc is kept", PRESENT "X-Bcc: x\r\nBcc-Info: y\r\n\r\n",
	    PRESENT "X-Bcc: x\r\nBcc-Info: y\r\n",
	    sizeof(PRESENT "X-Bcc: x\r\nBcc-Info: y\r\n\r\n") - 1 },
	{ "Resent-Bcc removed", PRESENT "Resent-Bcc: a@b.example\r\n\r\n",
	    PRESENT, sizeof(PRESENT "Resent-Bcc: a@b.example\r\n\r\n") - 1 },
	{ "mbox From_ line", "From alice@example.org Mon Nov 23 18:44:13 "
	    "2026\r\nSubject: x\r\n\r\n", "Subject: x\r\n" ADDED, 63 },
	{ "From_ line only", "From alice Mon Nov 23", ADDED, 21 },
	{ "no separator", "Subject: x\r\nbody line\r\n",
	    "Subject: x\r\n" ADDED, 12 },
	{ "no header", "Hello,\r\nbody\r\n", ADDED, 0 },
	{ "continuation first", " folded\r\nSubject: x\r\n\r\n", ADDED, 0 },
	{ "space before colon", "Subject : x\r\n\r\n", ADDED, 0 },
	{ "empty header", "\r\nbody\r\n", ADDED, 2 },
	{ "empty input", "", ADDED, 0 },
	{ "incomplete header", "Subject: x\r\nX-A: y\r\n z",
	    "Subject: x\r\nX-A: y\r\n z\r\n" ADDED, 22 },
	{ "incomplete CRLF", "Subject: x\r", "Subject: x\r\n" ADDED, 11 },
	{ "LF line ends", "Subject: x\nX-A: y\n\tz\n\nbody\n",
	    "Subject: x\r\nX-A: y\r\n\tz\r\n" ADDED, 22 },
	{ "separator at the end", "Subject: x\r\n\r\n",
	    "Subject: x\r\n" ADDED, 14 },
	{ "field name chars", "X-!#$%&'*+-.^_`|~: v\r\n\r\n",
	    "X-!#$%&'*+-.^_`|~: v\r\n" ADDED, 24 },
	{ "empty field body", "Subject:\r\n\r\n", "Subject:\r\n" ADDED, 12 },
	{ "mbox From_ only first", "Subject: x\r\nFrom a b\r\n\r\n",
	    "Subject: x\r\n" ADDED, 12 },
};

static void
test_headers_table(void **state)
{
	char err[256], *out;
	size_t outlen, body;

	(void)state;
	set_tz("UTC");
	for (size_t i = 0; i < NELEM(hdr_cases); i++) {
		struct strlist rcpts = { NULL, 0, 0 };
		size_t len = strlen(hdr_cases[i].in);

		if (fix(hdr_cases[i].in, len, &opts_default, &out, &outlen,
		    &body, &rcpts, err) != 0)
			fail_msg("%s: %s", hdr_cases[i].name, err);
		if (outlen != strlen(hdr_cases[i].out) ||
		    memcmp(out, hdr_cases[i].out, outlen) != 0)
			fail_msg("%s: got\n%.*s\nwant\n%s", hdr_cases[i].name,
			    (int)outlen, out, hdr_cases[i].out);
		if (body != hdr_cases[i].body)
			fail_msg("%s: body at %zu, want %zu", hdr_cases[i].name,
			    body, hdr_cases[i].body);
		assert_int_equal(out[outlen], '\0');
		assert_int_equal(rcpts.n, 0);
		free(out);
	}
}

/* -t: several To fields, Cc, Bcc; folded; duplicates once. */
static void
test_headers_extract(void **state)
{
	static const char in[] =
	    "From: Alice <alice@example.org>\r\n"
	    "To: a@x.example,\r\n \"B B\" <b@y.example>\r\n"
	    "to: c@z.example\n"
	    "Cc: undisclosed-recipients:;\r\n"
	    "CC: team: d@x.example, A@X.example;\r\n"
	    "Bcc: e@x.example,\r\n\troot\r\n"
	    "X-To: not@me.example\r\n"
	    "\r\n"
	    "To: body@me.example\r\n";
	static const char *want[] = {
		"pre@x.example", "a@x.example", "b@y.example", "c@z.example",
		"d@x.example", "e@x.example", "root"
	};
	struct msg_header_opts o = opts_default;
	struct strlist rcpts = { NULL, 0, 0 };
	char err[256], *out;
	size_t outlen, body;

	(void)state;
	set_tz("UTC");
	o.extract_rcpts = true;
	strlist_add(&rcpts, "pre@x.example");
	assert_int_equal(fix(in, sizeof(in) - 1, &o, &out, &outlen, &body,
	    &rcpts, err), 0);
	assert_int_equal(rcpts.n, NELEM(want));
	for (size_t i = 0; i < NELEM(want); i++)
		assert_string_equal(rcpts.v[i], want[i]);
	assert_null(strstr(out, "Bcc"));
	assert_null(strstr(out, "root"));
	assert_non_null(strstr(out, "X-To: not@me.example\r\n"));
	assert_non_null(strstr(out, "to: c@z.example\r\n"));
	assert_string_equal(in + body, "To: body@me.example\r\n");
	free(out);
	strlist_free(&rcpts);
}

/* Resent- fields replace To/Cc/Bcc for -t; Resent-Bcc goes away. */
static void
test_headers_resent(void **state)
{
	static const char in[] =
	    PRESENT
	    "To: t@example.com\r\n"
	    "Resent-To: r1@example.com\r\n"
	    "Resent-cc: r2@example.com\r\n"
	    "Resent-Bcc: r3@example.com,\r\n r4@example.com\r\n"
	    "Bcc: b@example.com\r\n"
	    "\r\n";
	struct msg_header_opts o = opts_default;
	struct strlist rcpts = { NULL, 0, 0 };
	char err[256], *out;
	size_t outlen, body;

	(void)state;
	set_tz("UTC");
	o.extract_rcpts = true;
	assert_int_equal(fix(in, sizeof(in) - 1, &o, &out, &outlen, &body,
	    &rcpts, err), 0);
	assert_int_equal(rcpts.n, 4);
	assert_string_equal(rcpts.v[0], "r1@example.com");
	assert_string_equal(rcpts.v[3], "r4@example.com");
	assert_string_equal(out, PRESENT "To: t@example.com\r\n"
	    "Resent-To: r1@example.com\r\nResent-cc: r2@example.com\r\n");
	assert_int_equal(body, sizeof(in) - 1);
	free(out);
	strlist_free(&rcpts);
}

/* A malformed recipient field is an error naming the field, with -t only. */
static void
test_headers_bad_rcpt(void **state)
{
	static const struct {
		const char	*in;
		const char	*why;
	} bad[] = {
		{ "To: <broken@example.com\r\n\r\n", "To: missing '>'" },
		{ "To: a@b.example\r\ncc: \"x@y.example\r\n\r\n",
		    "cc: unbalanced '\"'" },
		{ "BCC: a@\r\n\r\n", "BCC: '@' with empty domain" },
		{ "To: a@b.example\r\nResent-To: a b@c\r\n\r\n",
		    "Resent-To: " },
		{ "To: a@b.example\r\n  c@d.example\r\n\r\n", "To: " },
		{ "To: x\r@y.example\r\n\r\n", "To: bare CR" },
	};
	struct msg_header_opts o = opts_default;
	char err[256], *out;
	size_t outlen, body;

	(void)state;
	for (size_t i = 0; i < NELEM(bad); i++) {
		struct strlist rcpts = { NULL, 0, 0 };

		o.extract_rcpts = true;
		strlist_add(&rcpts, "kept");
		assert_int_equal(fix(bad[i].in, strlen(bad[i].in), &o, &out,
		    &outlen, &body, &rcpts, err), -1);
		if (strncmp(err, bad[i].why, strlen(bad[i].why)) != 0)
			fail_msg("case %zu: \"%s\", want \"%s\"", i, err,
			    bad[i].why);
		assert_null(out);
		assert_int_equal(rcpts.n, 1);

		o.extract_rcpts = false;
		assert_int_equal(fix(bad[i].in, strlen(bad[i].in), &o, &out,
		    &outlen, &body, &rcpts, err), 0);
		assert_int_equal(rcpts.n, 1);
		free(out);
		strlist_free(&rcpts);
	}
}

/* From for -F NAME and the null sender. */
static void
test_headers_from(void **state)
{
	static const struct {
		const char	*sender;
		const char	*name;
		const char	*from;
	} cases[] = {
		{ "alice@example.org", NULL, "From: alice@example.org\r\n" },
		{ "alice@example.org", "", "From: alice@example.org\r\n" },
		{ "alice@example.org", "Alice Smith",
		    "From: Alice Smith <alice@example.org>\r\n" },
		{ "alice@example.org", "Cron Daemon",
		    "From: Cron Daemon <alice@example.org>\r\n" },
		{ "alice@example.org", "John Q. Public",
		    "From: \"John Q. Public\" <alice@example.org>\r\n" },
		{ "alice@example.org", "Smith, Alice",
		    "From: \"Smith, Alice\" <alice@example.org>\r\n" },
		{ "alice@example.org", "A \"B\" \\C",
		    "From: \"A \\\"B\\\" \\\\C\" <alice@example.org>\r\n" },
		{ "alice@example.org", "Evil\r\nBcc: x@y",
		    "From: \"Evil  Bcc: x@y\" <alice@example.org>\r\n" },
		{ "alice@example.org", " lead",
		    "From: \" lead\" <alice@example.org>\r\n" },
		{ "alice@example.org", "J\xc3\xb6rg",
		    "From: \"J\xc3\xb6rg\" <alice@example.org>\r\n" },
		{ "", NULL, "From: MAILER-DAEMON@mx.example.org\r\n" },
		{ NULL, NULL, "From: MAILER-DAEMON@mx.example.org\r\n" },
		{ "", "Mail System",
		    "From: Mail System <MAILER-DAEMON@mx.example.org>\r\n" },
	};
	struct msg_header_opts o = opts_default;
	char err[256], *out, *name;
	size_t outlen, body;

	(void)state;
	set_tz("UTC");
	for (size_t i = 0; i < NELEM(cases); i++) {
		const char *p;

		o.sender = cases[i].sender;
		o.full_name = cases[i].name;
		assert_int_equal(fix("Subject: s\r\n\r\n", 14, &o, &out,
		    &outlen, &body, NULL, err), 0);
		p = strstr(out, "From: ");
		assert_non_null(p);
		if (strcmp(p, cases[i].from) != 0)
			fail_msg("case %zu: got %s want %s", i, p,
			    cases[i].from);
		free(out);
	}
	/* An existing From wins over -F. */
	o.full_name = "Ignored";
	assert_int_equal(fix("from: x@y\r\n\r\n", 13, &o, &out, &outlen,
	    &body, NULL, err), 0);
	assert_null(strstr(out, "Ignored"));
	free(out);

	name = repeat('n', 257);
	o.full_name = name;
	assert_int_equal(fix("Subject: s\r\n\r\n", 14, &o, &out, &outlen,
	    &body, NULL, err), -1);
	assert_non_null(strstr(err, "full name longer than 256"));
	assert_null(out);
	name[256] = '\0';
	assert_int_equal(fix("Subject: s\r\n\r\n", 14, &o, &out, &outlen,
	    &body, NULL, err), 0);
	free(out);
	free(name);

	o.full_name = NULL;
	o.sender = "a@b\r\nBcc: x";
	assert_int_equal(fix("", 0, &o, &out, &outlen, &body, NULL, err), -1);
	assert_non_null(strstr(err, "control characters"));
	o.sender = "a@b";
	o.hostname = NULL;
	assert_int_equal(fix("", 0, &o, &out, &outlen, &body, NULL, err), -1);
	assert_null(out);
}

/* Date in the local zone, names independent of the locale. */
static void
test_headers_date(void **state)
{
	struct msg_header_opts o = opts_default;
	char err[256], *out;
	size_t outlen, body;

	(void)state;
	set_tz("ABC-05:30");
	assert_int_equal(fix("", 0, &o, &out, &outlen, &body, NULL, err), 0);
	assert_non_null(strstr(out,
	    "Date: Tue, 24 Nov 2026 00:14:13 +0530\r\n"));
	free(out);
	set_tz("XYZ8");
	o.now = 0;
	assert_int_equal(fix("", 0, &o, &out, &outlen, &body, NULL, err), 0);
	assert_non_null(strstr(out,
	    "Date: Wed, 31 Dec 1969 16:00:00 -0800\r\n"));
	free(out);
	set_tz("UTC");
	o.now = 951782400;	/* 2000-02-29: day without a leading zero? */
	assert_int_equal(fix("", 0, &o, &out, &outlen, &body, NULL, err), 0);
	assert_non_null(strstr(out,
	    "Date: Tue, 29 Feb 2000 00:00:00 +0000\r\n"));
	free(out);
	o.now = 946857600;	/* 2000-01-03 */
	assert_int_equal(fix("", 0, &o, &out, &outlen, &body, NULL, err), 0);
	assert_non_null(strstr(out,
	    "Date: Mon, 3 Jan 2000 00:00:00 +0000\r\n"));
	free(out);
}

/* NUL bytes and other odd bytes in a header: kept, no crash. */
static void
test_headers_binary(void **state)
{
	static const char in[] = "X-A: a\0b\r\nX-B: \xff\r\n\r\nbody\0";
	char err[256], *out;
	size_t outlen, body;

	(void)state;
	set_tz("UTC");
	assert_int_equal(fix(in, sizeof(in) - 1, &opts_default, &out, &outlen,
	    &body, NULL, err), 0);
	assert_int_equal(body, 20);
	assert_memory_equal(out, "X-A: a\0b\r\nX-B: \xff\r\n", 18);
	assert_int_equal(outlen, 18 + strlen(ADDED));
	free(out);
}

/* ------------------------------------------------------------------ */
/* The SMTP listener's Received: field and hop count. */

#define RDATE	"Mon, 23 Nov 2026 18:44:13 +0000"
#define U64	"0123456789012345678901234567890123456789" \
	"012345678901234567890123"

static void
test_received(void **state)
{
	static const struct {
		bool		 local;
		const char	*user;
		const char	*rcpt;
		const char	*want;
	} rows[] = {
		{ false, NULL, "u@d.example",
		    "Received: from mx.example ([192.0.2.1])\r\n"
		    "\tby relay.example (mxrelay) with ESMTP id 0123ABC\r\n"
		    "\tfor <u@d.example>; " RDATE "\r\n" },
		{ false, NULL, NULL,
		    "Received: from mx.example ([192.0.2.1])\r\n"
		    "\tby relay.example (mxrelay) with ESMTP id 0123ABC;\r\n"
		    "\t" RDATE "\r\n" },
		{ true, "alice", "u@d.example",
		    "Received: from user alice (uid 1000)\r\n"
		    "\tby relay.example (mxrelay) with ESMTP id 0123ABC\r\n"
		    "\tfor <u@d.example>; " RDATE "\r\n" },
		{ true, "alice", NULL,
		    "Received: from user alice (uid 1000)\r\n"
		    "\tby relay.example (mxrelay) with ESMTP id 0123ABC;\r\n"
		    "\t" RDATE "\r\n" },
		{ true, "a.b_c-d$e+f@g", NULL,
		    "Received: from user a.b_c-d$e+f@g (uid 1000)\r\n"
		    "\tby relay.example (mxrelay) with ESMTP id 0123ABC;\r\n"
		    "\t" RDATE "\r\n" },
		/* No name, or one unsafe in a header field: the uid only. */
		{ true, NULL, NULL,
		    "Received: from uid 1000\r\n"
		    "\tby relay.example (mxrelay) with ESMTP id 0123ABC;\r\n"
		    "\t" RDATE "\r\n" },
		{ true, "", "u@d.example",
		    "Received: from uid 1000\r\n"
		    "\tby relay.example (mxrelay) with ESMTP id 0123ABC\r\n"
		    "\tfor <u@d.example>; " RDATE "\r\n" },
		{ true, "al ice", NULL, "Received: from uid 1000\r\n" },
		{ true, "alice\r\nX-Injected: 1", NULL,
		    "Received: from uid 1000\r\n" },
		{ true, "(alice)", NULL, "Received: from uid 1000\r\n" },
		{ true, "\xc3\xa9lise", NULL, "Received: from uid 1000\r\n" },
		/* At most 64 octets. */
		{ true, U64, NULL,
		    "Received: from user " U64 " (uid 1000)\r\n" },
		{ true, U64 "5", NULL, "Received: from uid 1000\r\n" },
	};

	(void)state;
	set_tz("UTC");
	for (size_t i = 0; i < NELEM(rows); i++) {
		struct msg_received r = {
			.local = rows[i].local,
			.helo = "mx.example",
			.addr = "192.0.2.1",
			.user = rows[i].user,
			.uid = 1000,
			.by = "relay.example",
			.proto = "ESMTP",
			.id = "0123ABC",
			.rcpt = rows[i].rcpt,
			.now = NOW,
		};
		char *h = msg_received(&r);

		assert_non_null(h);
		if (strncmp(h, rows[i].want, strlen(rows[i].want)) != 0)
			fail_msg("row %zu: got \"%s\"", i, h);
		free(h);
	}
}

/* The date follows the local time zone; the protocol is the caller's. */
static void
test_received_zone(void **state)
{
	struct msg_received r = {
		.helo = "[IPv6:2001:db8::1]", .addr = "2001:db8::1",
		.by = "relay.example", .proto = "ESMTPSA", .id = "X",
		.now = NOW,
	};
	char *h;

	(void)state;
	set_tz("ABC-05:30");
	h = msg_received(&r);
	assert_string_equal(h,
	    "Received: from [IPv6:2001:db8::1] ([2001:db8::1])\r\n"
	    "\tby relay.example (mxrelay) with ESMTPSA id X;\r\n"
	    "\tTue, 24 Nov 2026 00:14:13 +0530\r\n");
	free(h);
	set_tz("UTC");
}

/* RFC 3848 protocol names. */
static void
test_received_proto(void **state)
{
	static const struct {
		bool		 esmtp, tls, auth;
		const char	*want;
	} rows[] = {
		{ false, false, false, "SMTP" },
		{ false, true, false, "SMTPS" },
		{ false, false, true, "SMTP" },
		{ false, true, true, "SMTPS" },
		{ true, false, false, "ESMTP" },
		{ true, true, false, "ESMTPS" },
		{ true, false, true, "ESMTPA" },
		{ true, true, true, "ESMTPSA" },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		assert_string_equal(msg_received_proto(rows[i].esmtp,
		    rows[i].tls, rows[i].auth), rows[i].want);
}

/* Feed in pieces of step octets (0: all at once). */
static struct msg_hops
hops_feed(const char *in, size_t len, size_t step)
{
	struct msg_hops h;

	msg_hops_init(&h);
	if (step == 0)
		step = len > 0 ? len : 1;
	for (size_t off = 0; off < len; off += step)
		msg_hops_scan(&h, in + off, len - off < step ? len - off :
		    step);
	return h;
}

static void
test_hops(void **state)
{
#define H(s)	s, sizeof(s) - 1
	static const struct {
		const char	*in;
		size_t		 len;
		unsigned	 count;
		bool		 done;
	} rows[] = {
		{ H(""), 0, false },
		{ H("Received: a\r\nReceived: b\r\n\r\nReceived: c\r\n"), 2,
		    true },
		{ H("received: a\r\nRECEIVED: b\r\nReCeIvEd:c\r\n"), 3,
		    false },
		{ H("Received:"), 1, false },
		{ H("Received"), 0, false },
		{ H("X-Received: a\r\nReceived-SPF: pass\r\n"), 0, false },
		{ H("Received : a\r\n Received: b\r\n\tReceived: c\r\n"), 0,
		    false },
		{ H("Subject: x\r\n Received: folded\r\nReceived: y\r\n"
		    "\r\nbody\r\n"), 1, true },
		{ H("\r\nReceived: in the body\r\n"), 0, true },
		{ H("Subject: x\r\n\r\n\r\nReceived: z\r\n"), 0, true },
		{ H("Rec\0eived: a\r\nReceived:\0\r\n"), 1, false },
		{ H("Received:\xff\r\n\xffReceived: b\r\n"), 1, false },
	};
#undef H
	static const size_t steps[] = { 0, 1, 2, 3, 7 };
	struct msg_hops h;
	char *many;
	size_t n = 0;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		for (size_t j = 0; j < NELEM(steps); j++) {
			h = hops_feed(rows[i].in, rows[i].len, steps[j]);
			if (h.count != rows[i].count || h.done != rows[i].done)
				fail_msg("row %zu step %zu: count %u done %d",
				    i, steps[j], h.count, h.done);
		}
	/* Many hops: each one counts, and nothing after the header. */
	many = malloc(200 * 16 + 64);
	assert_non_null(many);
	for (int i = 0; i < 200; i++)
		n += (size_t)sprintf(many + n, "Received: %d\r\n", i);
	n += (size_t)sprintf(many + n, "\r\nReceived: body\r\n");
	h = hops_feed(many, n, 5);
	assert_int_equal(h.count, 200);
	assert_true(h.done);
	free(many);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addrlist_ok),
		cmocka_unit_test(test_addrlist_bad),
		cmocka_unit_test(test_addrlist_limits),
		cmocka_unit_test(test_addr_check),
		cmocka_unit_test(test_headers_table),
		cmocka_unit_test(test_headers_extract),
		cmocka_unit_test(test_headers_resent),
		cmocka_unit_test(test_headers_bad_rcpt),
		cmocka_unit_test(test_headers_from),
		cmocka_unit_test(test_headers_date),
		cmocka_unit_test(test_headers_binary),
		cmocka_unit_test(test_received),
		cmocka_unit_test(test_received_zone),
		cmocka_unit_test(test_received_proto),
		cmocka_unit_test(test_hops),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
