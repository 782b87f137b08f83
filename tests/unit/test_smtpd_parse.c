/*
 * Unit tests for src/smtpd_parse.c, the pure parsers of the SMTP
 * listener: command lines and the verb table, HELO arguments, MAIL/RCPT
 * paths (quoting, source routes, missing brackets), mailboxes and the
 * MAIL/RCPT parameters (SIZE overflow, BODY, duplicates, unknown ones).
 * Table-driven, no mocks; each row is one input, valid or hostile.
 */
#include "config.h"

#include <sys/socket.h>
#include <arpa/inet.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "smtpd_parse.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* A writable copy of len bytes with a NUL after them. */
static char *
dup_n(const char *s, size_t len)
{
	char *d = malloc(len + 1);

	assert_non_null(d);
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

/* A fresh string of n copies of ch, with prefix and suffix around it. */
static char *
repeat(const char *prefix, char ch, size_t n, const char *suffix)
{
	size_t pl = strlen(prefix), sl = strlen(suffix);
	char *s = malloc(pl + n + sl + 1);

	assert_non_null(s);
	memcpy(s, prefix, pl);
	memset(s + pl, ch, n);
	memcpy(s + pl + n, suffix, sl + 1);
	return s;
}

/* ------------------------------------------------------------------ */
/* Command lines. */

#define L(s)	s, sizeof(s) - 1
static const struct {
	const char		*line;
	size_t			 len;
	enum smtpd_cmd_status	 st;
	enum smtpd_verb		 verb;
	const char		*arg;	/* NULL: not checked */
} cmd_rows[] = {
	{ L("HELO mx.example"), SMTPD_CMD_OK, SMTPD_VERB_HELO, "mx.example" },
	{ L("helo mx.example"), SMTPD_CMD_OK, SMTPD_VERB_HELO, "mx.example" },
	{ L("eHlO   mx.example"), SMTPD_CMD_OK, SMTPD_VERB_EHLO, "mx.example" },
	/* Trailing spaces and tabs are not part of the argument. */
	{ L("EHLO mx.example \t \t"), SMTPD_CMD_OK, SMTPD_VERB_EHLO,
	    "mx.example" },
	{ L("MAIL FROM:<a@b.example> SIZE=10"), SMTPD_CMD_OK, SMTPD_VERB_MAIL,
	    "FROM:<a@b.example> SIZE=10" },
	{ L("RCPT TO:<a@b.example>"), SMTPD_CMD_OK, SMTPD_VERB_RCPT,
	    "TO:<a@b.example>" },
	{ L("DATA"), SMTPD_CMD_OK, SMTPD_VERB_DATA, "" },
	{ L("DATA  \t"), SMTPD_CMD_OK, SMTPD_VERB_DATA, "" },
	{ L("RSET"), SMTPD_CMD_OK, SMTPD_VERB_RSET, "" },
	{ L("QUIT"), SMTPD_CMD_OK, SMTPD_VERB_QUIT, "" },
	{ L("STARTTLS"), SMTPD_CMD_OK, SMTPD_VERB_STARTTLS, "" },
	{ L("AUTH PLAIN"), SMTPD_CMD_OK, SMTPD_VERB_AUTH, "PLAIN" },
	{ L("VRFY postmaster"), SMTPD_CMD_OK, SMTPD_VERB_VRFY, "postmaster" },
	/* NOOP and HELP: with or without an argument. */
	{ L("NOOP"), SMTPD_CMD_OK, SMTPD_VERB_NOOP, "" },
	{ L("noop anything at all"), SMTPD_CMD_OK, SMTPD_VERB_NOOP,
	    "anything at all" },
	{ L("HELP"), SMTPD_CMD_OK, SMTPD_VERB_HELP, "" },
	{ L("HELP MAIL"), SMTPD_CMD_OK, SMTPD_VERB_HELP, "MAIL" },
	/* Arguments where none are taken, none where one is needed. */
	{ L("DATA now"), SMTPD_CMD_EXTRA_ARG, SMTPD_VERB_DATA, NULL },
	{ L("RSET x"), SMTPD_CMD_EXTRA_ARG, SMTPD_VERB_RSET, NULL },
	{ L("QUIT please"), SMTPD_CMD_EXTRA_ARG, SMTPD_VERB_QUIT, NULL },
	{ L("STARTTLS x"), SMTPD_CMD_EXTRA_ARG, SMTPD_VERB_STARTTLS, NULL },
	{ L("HELO"), SMTPD_CMD_NEED_ARG, SMTPD_VERB_HELO, NULL },
	{ L("EHLO   "), SMTPD_CMD_NEED_ARG, SMTPD_VERB_EHLO, NULL },
	{ L("MAIL"), SMTPD_CMD_NEED_ARG, SMTPD_VERB_MAIL, NULL },
	{ L("RCPT \t"), SMTPD_CMD_NEED_ARG, SMTPD_VERB_RCPT, NULL },
	{ L("VRFY"), SMTPD_CMD_NEED_ARG, SMTPD_VERB_VRFY, NULL },
	{ L("AUTH"), SMTPD_CMD_NEED_ARG, SMTPD_VERB_AUTH, NULL },
	/* Unknown: only a space ends the verb, no prefix matches. */
	{ L(""), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("   "), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L(" HELO x"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("HELO\tx"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("MAIL:FROM:<a@b>"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("MAILFROM:<a@b>"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("HEL x"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("HELOO x"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("XYZZY"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("GET / HTTP/1.0"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("H\xc3\x89LO x"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	{ L("\xff\xfe"), SMTPD_CMD_UNKNOWN, SMTPD_NVERBS, NULL },
	/* A NUL anywhere, even after a valid command. */
	{ L("HELO a\0b"), SMTPD_CMD_NUL, SMTPD_NVERBS, NULL },
	{ L("\0HELO a"), SMTPD_CMD_NUL, SMTPD_NVERBS, NULL },
	{ L("QUIT\0"), SMTPD_CMD_NUL, SMTPD_NVERBS, NULL },
};
#undef L

static void
test_cmd_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(cmd_rows); i++) {
		char *line = dup_n(cmd_rows[i].line, cmd_rows[i].len);
		struct smtpd_cmd cmd;
		enum smtpd_cmd_status st;

		st = smtpd_cmd_parse(line, cmd_rows[i].len, &cmd);
		if (st != cmd_rows[i].st || cmd.verb != cmd_rows[i].verb)
			fail_msg("row %zu: status %d verb %d, want %d %d", i,
			    st, cmd.verb, cmd_rows[i].st, cmd_rows[i].verb);
		if (cmd_rows[i].arg != NULL &&
		    strcmp(cmd.arg, cmd_rows[i].arg) != 0)
			fail_msg("row %zu: arg \"%s\", want \"%s\"", i,
			    cmd.arg, cmd_rows[i].arg);
		if ((cmd.name == NULL) != (cmd.verb == SMTPD_NVERBS))
			fail_msg("row %zu: name and verb disagree", i);
		free(line);
	}
}

/* Every verb of the table, by its name, in any case, gives its enum. */
static void
test_cmd_verbs(void **state)
{
	static const char *names[SMTPD_NVERBS] = {
		[SMTPD_VERB_HELO] = "HELO",	[SMTPD_VERB_EHLO] = "EHLO",
		[SMTPD_VERB_MAIL] = "MAIL",	[SMTPD_VERB_RCPT] = "RCPT",
		[SMTPD_VERB_DATA] = "DATA",	[SMTPD_VERB_RSET] = "RSET",
		[SMTPD_VERB_NOOP] = "NOOP",	[SMTPD_VERB_QUIT] = "QUIT",
		[SMTPD_VERB_HELP] = "HELP",	[SMTPD_VERB_VRFY] = "VRFY",
		[SMTPD_VERB_STARTTLS] = "STARTTLS",
		[SMTPD_VERB_AUTH] = "AUTH",
	};

	(void)state;
	for (size_t v = 0; v < SMTPD_NVERBS; v++) {
		char line[32];
		struct smtpd_cmd cmd;
		enum smtpd_cmd_status st;

		assert_non_null(names[v]);
		snprintf(line, sizeof(line), "%s", names[v]);
		for (char *p = line; *p != '\0'; p += 2)	/* mIxEd */
			if (p[1] == '\0')
				break;
			else
				p[1] = (char)(p[1] - 'A' + 'a');
		st = smtpd_cmd_parse(line, strlen(line), &cmd);
		assert_int_equal(cmd.verb, v);
		assert_string_equal(cmd.name, names[v]);
		assert_true(st == SMTPD_CMD_OK || st == SMTPD_CMD_NEED_ARG);
	}
}

/* A line of 100 KB: no verb, no crash. */
static void
test_cmd_long(void **state)
{
	char *line = repeat("MAIL FROM:<", 'a', 100000, ">");
	struct smtpd_cmd cmd;

	(void)state;
	assert_int_equal(smtpd_cmd_parse(line, strlen(line), &cmd),
	    SMTPD_CMD_OK);
	assert_int_equal(cmd.verb, SMTPD_VERB_MAIL);
	free(line);
	line = repeat("", 'X', 100000, "");
	assert_int_equal(smtpd_cmd_parse(line, strlen(line), &cmd),
	    SMTPD_CMD_UNKNOWN);
	free(line);
}

/* ------------------------------------------------------------------ */
/* HELO. */

static void
test_helo(void **state)
{
	static const struct {
		const char	*arg;
		bool		 ok;
	} rows[] = {
		{ "mx.example", true },
		{ "[192.0.2.1]", true },
		{ "[IPv6:2001:db8::1]", true },
		{ "localhost", true },
		{ "x", true },
		{ "a_b-c.d", true },
		{ "", false },
		{ "a b", false },
		{ "a\tb", false },
		{ "mx(comment)", false },
		{ "mx)", false },
		{ "back\\slash", false },
		{ "del\x7f", false },
		{ "utf8-\xc3\xa9", false },
		{ "\x80", false },
		{ "ctl\x01", false },
		{ "cr\r", false },
	};
	char *s;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++)
		if (smtpd_helo_ok(rows[i].arg) != rows[i].ok)
			fail_msg("row %zu: \"%s\"", i, rows[i].arg);
	s = repeat("", 'h', SMTPD_HELO_MAX, "");
	assert_true(smtpd_helo_ok(s));
	free(s);
	s = repeat("", 'h', SMTPD_HELO_MAX + 1, "");
	assert_false(smtpd_helo_ok(s));
	free(s);
}

/* ------------------------------------------------------------------ */
/* Paths. */

static const struct {
	const char	*arg;
	const char	*kw;
	int		 rc;
	const char	*path;
	const char	*params;
} path_rows[] = {
	{ "FROM:<a@b.example>", "FROM:", 0, "a@b.example", "" },
	{ "from:<a@b.example>", "FROM:", 0, "a@b.example", "" },
	{ "FROM: <a@b.example>", "FROM:", 0, "a@b.example", "" },
	{ "FROM:   <a@b.example>", "FROM:", 0, "a@b.example", "" },
	{ "FROM:<>", "FROM:", 0, "", "" },
	{ "TO:<postmaster>", "TO:", 0, "postmaster", "" },
	{ "To:<a@b.example>", "TO:", 0, "a@b.example", "" },
	{ "FROM:<a@b.example> SIZE=10", "FROM:", 0, "a@b.example",
	    "SIZE=10" },
	{ "FROM:<a@b.example>    SIZE=10 BODY=8BITMIME", "FROM:", 0,
	    "a@b.example", "SIZE=10 BODY=8BITMIME" },
	{ "FROM:<a@b.example> ", "FROM:", 0, "a@b.example", "" },
	/* Quoted local parts may hold '>', spaces and escapes. */
	{ "FROM:<\"a>b\"@c.example>", "FROM:", 0, "\"a>b\"@c.example", "" },
	{ "FROM:<\"a b\"@c.example> X=1", "FROM:", 0, "\"a b\"@c.example",
	    "X=1" },
	{ "FROM:<\"a\\\">\"@c.example>", "FROM:", 0, "\"a\\\">\"@c.example",
	    "" },
	{ "FROM:<\"a\\\\\"@c.example>", "FROM:", 0, "\"a\\\\\"@c.example",
	    "" },
	/* Source routes are left to smtpd_route_strip(). */
	{ "TO:<@a.example,@b.example:u@d.example>", "TO:", 0,
	    "@a.example,@b.example:u@d.example", "" },
	/* Missing brackets, missing keyword, junk after '>'. */
	{ "FROM:a@b.example", "FROM:", -1, NULL, NULL },
	{ "FROM:<a@b.example", "FROM:", -1, NULL, NULL },
	{ "FROM:a@b.example>", "FROM:", -1, NULL, NULL },
	{ "FROM:", "FROM:", -1, NULL, NULL },
	{ "FROM:<", "FROM:", -1, NULL, NULL },
	{ "", "FROM:", -1, NULL, NULL },
	{ "FROM :<a@b.example>", "FROM:", -1, NULL, NULL },
	{ "FROM<a@b.example>", "FROM:", -1, NULL, NULL },
	{ "TO:<a@b.example>", "FROM:", -1, NULL, NULL },
	{ "FROM:<a@b.example>SIZE=10", "FROM:", -1, NULL, NULL },
	{ "FROM:<<a@b.example>>", "FROM:", -1, NULL, NULL },
	{ "FROM:<a@b.example>>", "FROM:", -1, NULL, NULL },
	{ "FROM:<a@b.example>\tSIZE=1", "FROM:", -1, NULL, NULL },
	/* An open quote swallows the '>'. */
	{ "FROM:<\"a@b.example>", "FROM:", -1, NULL, NULL },
	{ "FROM:<\"a\\\"@b.example>", "FROM:", -1, NULL, NULL },
	{ "FROM:<\"a\\", "FROM:", -1, NULL, NULL },
};

static void
test_path_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(path_rows); i++) {
		char *arg = strdup(path_rows[i].arg);
		struct smtpd_path pp = { NULL, NULL };
		int rc;

		assert_non_null(arg);
		rc = smtpd_path_parse(arg, path_rows[i].kw, &pp);
		if (rc != path_rows[i].rc)
			fail_msg("row %zu: rc %d", i, rc);
		if (rc == 0 && (strcmp(pp.path, path_rows[i].path) != 0 ||
		    strcmp(pp.params, path_rows[i].params) != 0))
			fail_msg("row %zu: path \"%s\" params \"%s\"", i,
			    pp.path, pp.params);
		free(arg);
	}
}

/* RFC 5321 §4.1.2 and Appendix C. */
static void
test_route_strip(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;	/* NULL: malformed */
	} rows[] = {
		{ "u@d.example", "u@d.example" },
		{ "", "" },
		{ "postmaster", "postmaster" },
		{ "@a.example:u@d.example", "u@d.example" },
		{ "@a.example,@b.example:u@d.example", "u@d.example" },
		{ "@a-1.example,@[192.0.2.1]:u@d.example", "u@d.example" },
		{ "@[IPv6:2001:db8::1]:u@d.example", "u@d.example" },
		{ "@a.example:", "" },
		{ "@a.example:@b.example:u@d", "@b.example:u@d" },
		{ "@", NULL },
		{ "@:u@d.example", NULL },
		{ "@a.example", NULL },
		{ "@a.example,b.example:u@d.example", NULL },
		{ "@a.example,:u@d.example", NULL },
		{ "@a.example u@d.example", NULL },
		{ "@a_b.example:u@d.example", NULL },
		{ "@a;b:u@d.example", NULL },
		{ "@a\xc3\xa9:u@d.example", NULL },
		{ "@a\x01:u@d.example", NULL },
		{ "@[192.0.2.1:u@d.example", NULL },
		{ "@a]:u@d.example", NULL },
	};
	const char *r;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		r = smtpd_route_strip(rows[i].in);
		if (rows[i].out == NULL ? r != NULL :
		    r == NULL || strcmp(r, rows[i].out) != 0)
			fail_msg("row %zu: \"%s\" -> \"%s\"", i, rows[i].in,
			    r != NULL ? r : "(null)");
	}
}

/* Checked and qualified mailboxes of MAIL and RCPT. */
static void
test_mailbox(void **state)
{
	static const struct {
		const char	*path;
		const char	*out;	/* NULL: refused */
		const char	*err;	/* in the reason; "" = any */
	} rows[] = {
		{ "u@d.example", "u@d.example", NULL },
		{ "U.Ser+tag@D.Example", "U.Ser+tag@D.Example", NULL },
		{ "u@[192.0.2.1]", "u@[192.0.2.1]", NULL },
		{ "u", "u@q.example", NULL },
		{ "\"john doe\"@d.example", "\"john doe\"@d.example", NULL },
		{ "\"a@b\"", "\"a@b\"@q.example", NULL },
		{ "@a.example,@b.example:u@d.example", "u@d.example", NULL },
		{ "@a.example:u", "u@q.example", NULL },
		{ "@a.example,b:u@d.example", NULL, "malformed source route" },
		{ "@:u@d.example", NULL, "malformed source route" },
		{ "@a.example:", NULL, "" },
		{ "u@", NULL, "" },
		{ "@d.example", NULL, "" },
		{ "u@d..example", NULL, "" },
		{ "u..v@d.example", NULL, "" },
		{ "u v@d.example", NULL, "" },
		{ "u@d.example@e.example", NULL, "" },
		{ "\"unterminated@d.example", NULL, "" },
		{ "u\x01@d.example", NULL, "bad characters or too long" },
		{ "u\x7f@d.example", NULL, "bad characters or too long" },
		{ "u\xc3\xa9@d.example", NULL, "" },
	};
	char err[128], *r, *s;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		strcpy(err, "stale");
		r = smtpd_mailbox(rows[i].path, "q.example", err, sizeof(err));
		if (rows[i].out != NULL) {
			if (r == NULL || strcmp(r, rows[i].out) != 0)
				fail_msg("row %zu: \"%s\" (%s)", i,
				    r != NULL ? r : "(null)", err);
		} else if (r != NULL || err[0] == '\0' ||
		    strcmp(err, "stale") == 0 ||
		    strstr(err, rows[i].err) == NULL)
			fail_msg("row %zu: \"%s\", err \"%s\"", i,
			    r != NULL ? r : "(null)", err);
		free(r);
	}
	/* RFC 5321 §4.5.3.1: 64-octet local part, 256-octet path. */
	s = repeat("", 'l', 64, "@d.example");
	r = smtpd_mailbox(s, "q.example", err, sizeof(err));
	assert_non_null(r);
	free(r);
	free(s);
	s = repeat("", 'l', 65, "@d.example");
	assert_null(smtpd_mailbox(s, "q.example", err, sizeof(err)));
	free(s);
	s = repeat("u@", 'd', 300, ".example");
	assert_null(smtpd_mailbox(s, "q.example", err, sizeof(err)));
	assert_string_equal(err, "bad characters or too long");
	free(s);
	/* Qualifying may make it too long. */
	s = repeat("", 'q', 250, ".example");
	assert_null(smtpd_mailbox("u", s, err, sizeof(err)));
	assert_true(err[0] != '\0');
	free(s);
	/* No room for a reason is fine. */
	assert_null(smtpd_mailbox("@:u", "q.example", NULL, 0));
}

/*
 * In an SMTPUTF8 transaction: UTF-8 local parts (RFC 6531 §3.3), well
 * formed only (RFC 3629); domains stay ASCII.  Without SMTPUTF8 the same
 * addresses are refused.
 */
static void
test_mailbox_utf8(void **state)
{
	static const struct {
		const char	*path;
		const char	*out;	/* NULL: refused */
	} rows[] = {
		{ "u@d.example", "u@d.example" },
		{ "j\xc3\xb6s\xc3\xa9@d.example", "j\xc3\xb6s\xc3\xa9@d.example" },
		{ "\xe7\x94\xa8\xe6\x88\xb7@xn--fsqu00a.example",
		    "\xe7\x94\xa8\xe6\x88\xb7@xn--fsqu00a.example" },
		{ "\xf0\x9f\x93\xa7.me@d.example", "\xf0\x9f\x93\xa7.me@d.example" },
		{ "\"j\xc3\xb6 s\"@d.example", "\"j\xc3\xb6 s\"@d.example" },
		{ "\xc3\xa9", "\xc3\xa9@q.example" },
		/* Domains stay ASCII: an A-label. */
		{ "u@b\xc3\xbc" "cher.example", NULL },
		/* Malformed UTF-8. */
		{ "j\xc3@d.example", NULL },		/* cut short */
		{ "\xc3\xc3@d.example", NULL },
		{ "\xc0\xaf@d.example", NULL },		/* overlong '/' */
		{ "\xe0\x80\xaf@d.example", NULL },	/* overlong */
		{ "\xed\xa0\x80@d.example", NULL },	/* surrogate */
		{ "\xf4\x90\x80\x80@d.example", NULL },	/* above U+10FFFF */
		{ "\xff@d.example", NULL },
		{ "\x80@d.example", NULL },
		{ "\"\xc3\"@d.example", NULL },
		/* Still no controls, no unquoted specials. */
		{ "\xc3\xa9\x01@d.example", NULL },
		{ "\xc3\xa9 x@d.example", NULL },
	};
	char err[128], *r;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		err[0] = '\0';
		r = smtpd_mailbox_utf8(rows[i].path, "q.example", err,
		    sizeof(err));
		if (rows[i].out == NULL ? r != NULL || err[0] == '\0' :
		    r == NULL || strcmp(r, rows[i].out) != 0)
			fail_msg("row %zu: \"%s\" (%s)", i,
			    r != NULL ? r : "(null)", err);
		free(r);
		/* Without SMTPUTF8, only ASCII. */
		r = smtpd_mailbox(rows[i].path, "q.example", err, sizeof(err));
		if (r != NULL && i > 0)
			fail_msg("row %zu: \"%s\" without SMTPUTF8", i, r);
		free(r);
	}
}

/* ------------------------------------------------------------------ */
/* MAIL and RCPT parameters. */

#define P_OK	SMTPD_PARAM_OK
#define P_SIZE	SMTPD_PARAM_BAD_SIZE
#define P_BIG	SMTPD_PARAM_TOO_BIG
#define P_BODY	SMTPD_PARAM_BAD_BODY
#define P_UNK	SMTPD_PARAM_UNKNOWN
static const struct {
	const char		*params;
	uint64_t		 max;
	enum smtpd_param_status	 st;
	bool			 has_size;
	uint64_t		 size;
	enum smtpd_body		 body;
	bool			 auth;
	const char		*bad;	/* the word refused */
} param_rows[] = {
	{ "", 0, P_OK, false, 0, SMTPD_BODY_NONE, false, NULL },
	{ "SIZE=1000", 0, P_OK, true, 1000, SMTPD_BODY_NONE, false, NULL },
	{ "size=0", 0, P_OK, true, 0, SMTPD_BODY_NONE, false, NULL },
	{ "SIZE=007", 0, P_OK, true, 7, SMTPD_BODY_NONE, false, NULL },
	{ "BODY=8BITMIME", 0, P_OK, false, 0, SMTPD_BODY_8BITMIME, false,
	    NULL },
	{ "body=7bit", 0, P_OK, false, 0, SMTPD_BODY_7BIT, false, NULL },
	{ "AUTH=<>", 0, P_OK, false, 0, SMTPD_BODY_NONE, true, NULL },
	{ "AUTH=user@example", 0, P_OK, false, 0, SMTPD_BODY_NONE, true,
	    NULL },
	{ "SIZE=10   BODY=7BIT  AUTH=<>", 0, P_OK, true, 10, SMTPD_BODY_7BIT,
	    true, NULL },
	/* SIZE: digits only, no overflow (RFC 1870). */
	{ "SIZE=", 0, P_SIZE, true, 0, SMTPD_BODY_NONE, false, "SIZE=" },
	{ "SIZE=abc", 0, P_SIZE, true, 0, SMTPD_BODY_NONE, false,
	    "SIZE=abc" },
	{ "SIZE=-1", 0, P_SIZE, true, 0, SMTPD_BODY_NONE, false, "SIZE=-1" },
	{ "SIZE=+1", 0, P_SIZE, true, 0, SMTPD_BODY_NONE, false, "SIZE=+1" },
	{ "SIZE=1.5", 0, P_SIZE, true, 0, SMTPD_BODY_NONE, false,
	    "SIZE=1.5" },
	{ "SIZE=0x10", 0, P_SIZE, true, 0, SMTPD_BODY_NONE, false,
	    "SIZE=0x10" },
	{ "SIZE= 10", 0, P_SIZE, true, 0, SMTPD_BODY_NONE, false, "SIZE=" },
	{ "SIZE=10\tBODY=7BIT", 0, P_SIZE, true, 0, SMTPD_BODY_NONE, false,
	    "SIZE=10\tBODY=7BIT" },
	{ "SIZE=18446744073709551609", 0, P_OK, true,
	    UINT64_C(18446744073709551609), SMTPD_BODY_NONE, false, NULL },
	{ "SIZE=18446744073709551610", 0, P_SIZE, true, 0, SMTPD_BODY_NONE,
	    false, "SIZE=18446744073709551610" },
	{ "SIZE=18446744073709551615", 0, P_SIZE, true, 0, SMTPD_BODY_NONE,
	    false, "SIZE=18446744073709551615" },
	{ "SIZE=18446744073709551616", 0, P_SIZE, true, 0, SMTPD_BODY_NONE,
	    false, "SIZE=18446744073709551616" },
	{ "SIZE=99999999999999999999999999999", 0, P_SIZE, true, 0,
	    SMTPD_BODY_NONE, false, "SIZE=99999999999999999999999999999" },
	/* SIZE against max_size; the first word refused wins. */
	{ "SIZE=1000", 1000, P_OK, true, 1000, SMTPD_BODY_NONE, false, NULL },
	{ "SIZE=1001", 1000, P_BIG, true, 1001, SMTPD_BODY_NONE, false,
	    "SIZE=1001" },
	{ "SIZE=1001 FOO=1", 1000, P_BIG, true, 1001, SMTPD_BODY_NONE, false,
	    "SIZE=1001" },
	{ "FOO=1 SIZE=1001", 1000, P_UNK, false, 0, SMTPD_BODY_NONE, false,
	    "FOO=1" },
	{ "BODY=BINARYMIME SIZE=x", 0, P_BODY, false, 0, SMTPD_BODY_NONE,
	    false, "BODY=BINARYMIME" },
	/* BODY. */
	{ "BODY=", 0, P_BODY, false, 0, SMTPD_BODY_NONE, false, "BODY=" },
	{ "BODY=BINARYMIME", 0, P_BODY, false, 0, SMTPD_BODY_NONE, false,
	    "BODY=BINARYMIME" },
	{ "BODY=8BITMIMEX", 0, P_BODY, false, 0, SMTPD_BODY_NONE, false,
	    "BODY=8BITMIMEX" },
	/* Duplicates: each one is checked, the last one counts. */
	{ "SIZE=10 SIZE=20", 0, P_OK, true, 20, SMTPD_BODY_NONE, false,
	    NULL },
	{ "SIZE=10 SIZE=x", 0, P_SIZE, true, 10, SMTPD_BODY_NONE, false,
	    "SIZE=x" },
	{ "SIZE=10 SIZE=2000", 1000, P_BIG, true, 2000, SMTPD_BODY_NONE,
	    false, "SIZE=2000" },
	{ "BODY=7BIT BODY=8BITMIME", 0, P_OK, false, 0, SMTPD_BODY_8BITMIME,
	    false, NULL },
	{ "BODY=8BITMIME body=binary", 0, P_BODY, false, 0,
	    SMTPD_BODY_8BITMIME, false, "body=binary" },
	/* SMTPUTF8 (RFC 6531), without a value; test_mail_params_utf8. */
	{ "SMTPUTF8", 0, P_OK, false, 0, SMTPD_BODY_NONE, false, NULL },
	{ "BODY=8BITMIME SMTPUTF8", 0, P_OK, false, 0, SMTPD_BODY_8BITMIME,
	    false, NULL },
	{ "SMTPUTF8=yes", 0, P_UNK, false, 0, SMTPD_BODY_NONE, false,
	    "SMTPUTF8=yes" },
	/* Not offered: DSN, anything else. */
	{ "RET=FULL", 0, P_UNK, false, 0, SMTPD_BODY_NONE, false,
	    "RET=FULL" },
	{ "ENVID=x", 0, P_UNK, false, 0, SMTPD_BODY_NONE, false, "ENVID=x" },
	{ "SIZE", 0, P_UNK, false, 0, SMTPD_BODY_NONE, false, "SIZE" },
	{ "SIZE:10", 0, P_UNK, false, 0, SMTPD_BODY_NONE, false, "SIZE:10" },
	{ "=", 0, P_UNK, false, 0, SMTPD_BODY_NONE, false, "=" },
	{ "X\xff=1", 0, P_UNK, false, 0, SMTPD_BODY_NONE, false, "X\xff=1" },
};

static void
test_mail_params(void **state)
{
	(void)state;
	for (size_t i = 0; i < NELEM(param_rows); i++) {
		char *p = strdup(param_rows[i].params);
		struct smtpd_mail_params mp;
		enum smtpd_param_status st;

		assert_non_null(p);
		st = smtpd_mail_params_parse(p, param_rows[i].max, &mp);
		if (st != param_rows[i].st ||
		    mp.has_size != param_rows[i].has_size ||
		    mp.body != param_rows[i].body ||
		    mp.auth != param_rows[i].auth)
			fail_msg("row %zu: status %d size %d body %d auth %d",
			    i, st, mp.has_size, mp.body, mp.auth);
		if ((st == P_OK || st == P_BIG) &&
		    mp.size != param_rows[i].size)
			fail_msg("row %zu: size %ju", i, (uintmax_t)mp.size);
		if (param_rows[i].bad == NULL ? mp.bad != NULL :
		    mp.bad == NULL || strcmp(mp.bad, param_rows[i].bad) != 0)
			fail_msg("row %zu: bad \"%s\"", i,
			    mp.bad != NULL ? mp.bad : "(null)");
		free(p);
	}
}

/* SMTPUTF8 in any case, alone or with others; never with a value. */
static void
test_mail_params_utf8(void **state)
{
	static const struct {
		const char	*params;
		bool		 utf8;
	} rows[] = {
		{ "", false },
		{ "SMTPUTF8", true },
		{ "smtputf8", true },
		{ "SIZE=10 SmtpUtf8 BODY=8BITMIME", true },
		{ "BODY=7BIT", false },
		{ "SMTPUTF8X", false },
	};
	struct smtpd_mail_params mp;
	char p[64];

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		strcpy(p, rows[i].params);
		(void)smtpd_mail_params_parse(p, 0, &mp);
		if (mp.smtputf8 != rows[i].utf8)
			fail_msg("row %zu: smtputf8 %d", i, mp.smtputf8);
	}
}

/* Many words: all are looked at, in order. */
static void
test_mail_params_many(void **state)
{
	struct smtpd_mail_params mp;
	char *p;

	(void)state;
	p = malloc(2000 * 10 + 16);
	assert_non_null(p);
	for (int i = 0; i < 2000; i++)
		memcpy(p + i * 10, "AUTH=<>   ", 10);
	memcpy(p + 2000 * 10, "BODY=7BIT", sizeof("BODY=7BIT"));
	assert_int_equal(smtpd_mail_params_parse(p, 0, &mp), P_OK);
	assert_int_equal(mp.body, SMTPD_BODY_7BIT);
	assert_true(mp.auth);
	free(p);
	p = repeat("SIZE=", '9', 5000, "");
	assert_int_equal(smtpd_mail_params_parse(p, 0, &mp), P_SIZE);
	free(p);
}

static void
test_rcpt_params(void **state)
{
	(void)state;
	assert_int_equal(smtpd_rcpt_params_parse(""), P_OK);
	assert_int_equal(smtpd_rcpt_params_parse("NOTIFY=NEVER"), P_UNK);
	assert_int_equal(smtpd_rcpt_params_parse("ORCPT=rfc822;a@b"), P_UNK);
	assert_int_equal(smtpd_rcpt_params_parse(" "), P_UNK);
}

/* One /64 for an IPv6 client, an IPv4-mapped address as IPv4. */
static void
test_client_key(void **state)
{
	static const struct {
		int	 family;
		const char *addr;
		const char *key;
	} t[] = {
		{ AF_INET, "192.0.2.7", "192.0.2.7" },
		{ AF_INET, "0.0.0.0", "0.0.0.0" },
		{ AF_INET6, "2001:db8:1:2::1", "2001:db8:1:2::/64" },
		{ AF_INET6, "2001:db8:1:2:ffff:ffff:ffff:ffff",
		    "2001:db8:1:2::/64" },
		{ AF_INET6, "2001:db8:1:3::1", "2001:db8:1:3::/64" },
		{ AF_INET6, "::1", "0:0:0:0::/64" },
		{ AF_INET6, "ffff:ffff:ffff:ffff::", "ffff:ffff:ffff:ffff::/64" },
		{ AF_INET6, "::ffff:198.51.100.9", "198.51.100.9" },
	};
	unsigned char raw[16], net[16];
	char key[SMTPD_CLIENT_KEY_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(raw, 0, sizeof(raw));
		assert_int_equal(inet_pton(t[i].family, t[i].addr, raw), 1);
		smtpd_client_key(t[i].family, raw, t[i].addr, key);
		assert_string_equal(key, t[i].key);
	}
	smtpd_client_key(AF_UNIX, raw, "unknown", key);
	assert_string_equal(key, "unknown");
	/* The same networks as bytes. */
	assert_int_equal(inet_pton(AF_INET6, "2001:db8:1:2:3:4:5:6", raw), 1);
	assert_int_equal(smtpd_client_net(AF_INET6, raw, net), AF_INET6);
	assert_memory_equal(net, "\x20\x01\x0d\xb8\x00\x01\x00\x02"
	    "\0\0\0\0\0\0\0\0", 16);
	assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.9", raw), 1);
	assert_int_equal(smtpd_client_net(AF_INET6, raw, net), AF_INET);
	assert_memory_equal(net, "\xc6\x33\x64\x09\0\0\0\0\0\0\0\0\0\0\0\0",
	    16);
	assert_int_equal(smtpd_client_net(AF_UNIX, raw, net), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd_parse),
		cmocka_unit_test(test_cmd_verbs),
		cmocka_unit_test(test_cmd_long),
		cmocka_unit_test(test_helo),
		cmocka_unit_test(test_path_parse),
		cmocka_unit_test(test_route_strip),
		cmocka_unit_test(test_mailbox),
		cmocka_unit_test(test_mailbox_utf8),
		cmocka_unit_test(test_mail_params_utf8),
		cmocka_unit_test(test_mail_params),
		cmocka_unit_test(test_mail_params_many),
		cmocka_unit_test(test_rcpt_params),
		cmocka_unit_test(test_client_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
