/*
 * test_bounce: src/bounce.c.  The DSN is parsed back here (header
 * unfolding, the multipart/report boundary lines, each part's headers,
 * the delivery-status field blocks) and every field RFC 3464 asks for is
 * checked, with the Original-Recipient rules, the copied header section,
 * folding of long and hostile replies, and queueing through a real spool
 * under $TMPDIR: nothing for the null sender, the DSN from <> to the
 * sender otherwise, nothing left behind when the disk is full.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "bounce.h"
#include "envelope.h"
#include "mock_log.h"
#include "spool.h"
#include "spool_test.h"
#include "util.h"
#include "testutil.h"

#define ID1	"0123456789abcdef0123"
#define HOST	"relay.example.net"
#define NOW	1700000000	/* Tue, 14 Nov 2023 22:13:20 +0000 */
#define MAXF	64
#define MAXP	8

#define ORIG_HEADERS \
	"Received: from app1 (app1 [192.0.2.7])\r\n" \
	"\tby relay.example.net with ESMTP; Tue, 14 Nov 2023 22:00:00 +0000\r\n" \
	"From: Alice <alice@example.com>\r\n" \
	"To: bob@example.org, carol@example.net\r\n" \
	"Subject: quarterly report\r\n" \
	"Message-ID: <abc@example.com>\r\n"
#define ORIG_BODY	"\r\nHello,\r\n--=_ not a boundary\r\n.\r\n"

/* One header field or delivery-status field, unfolded. */
struct field {
	char	*name;
	char	*value;
};

struct fields {
	struct field	 f[MAXF];
	size_t		 n;
};

struct part {
	struct fields	 h;
	char		*body;		/* NUL-terminated copy */
	size_t		 len;
};

/* A DSN taken apart. */
struct dsn {
	struct fields	 h;
	char		 boundary[128];
	struct part	 part[MAXP];
	size_t		 nparts;
};

static void	 check_lines(const char *, size_t, bool);
static char	*unwrap(const char *);
static size_t	 parse_fields(const char *, size_t, struct fields *);
static void	 fields_free(struct fields *);
static const char *get(const struct fields *, const char *);
static size_t	 count(const struct fields *, const char *);
static void	 parse_dsn(const char *, size_t, struct dsn *);
static void	 dsn_free(struct dsn *);
static size_t	 status_blocks(const struct part *, struct fields *, size_t);
static void	 make_env(struct envelope *);
static int	 body_file(struct envelope *, const char *, size_t);
static int	 build(const struct envelope *, const bool *, int, struct dsn *,
		    char **, size_t *);

/*
 * Every line ends in CRLF and holds at most 998 octets; no bare CR or LF,
 * no NUL, and (unless 8-bit is allowed) nothing outside printable ASCII
 * and tab.
 */
static void
check_lines(const char *s, size_t len, bool eightbit_ok)
{
	size_t col = 0;

	assert_true(len >= 2);
	assert_memory_equal(s + len - 2, "\r\n", 2);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\r') {
			if (i + 1 >= len || s[i + 1] != '\n')
				fail_msg("bare CR at %zu", i);
			i++;
			col = 0;
			continue;
		}
		if (c == '\n')
			fail_msg("bare LF at %zu", i);
		if (c == '\0' || (c < 0x20 && c != '\t') || c == 0x7f ||
		    (c >= 0x80 && !eightbit_ok))
			fail_msg("byte 0x%02x at %zu", c, i);
		if (++col > 998)
			fail_msg("line longer than 998 at %zu", i);
	}
}

/* The human part with its continuation lines ("\r\n    ") joined up. */
static char *
unwrap(const char *s)
{
	char *o = xstrdup(s), *w = o;

	for (const char *p = s; *p != '\0'; p++) {
		if (strncmp(p, "\r\n    ", 6) == 0 && p[6] != ' ') {
			*w++ = ' ';
			p += 5;
		} else
			*w++ = *p;
	}
	*w = '\0';
	return o;
}

/*
 * Header fields (RFC 5322 2.2) from s up to the empty line or the end;
 * continuation lines are unfolded (CRLF removed).  Returns the offset
 * just past the empty line (or len).
 */
static size_t
parse_fields(const char *s, size_t len, struct fields *fs)
{
	size_t i = 0;

	memset(fs, 0, sizeof(*fs));
	while (i < len) {
		const char *eol = NULL;
		size_t n;

		for (size_t j = i; j + 1 < len; j++)
			if (s[j] == '\r' && s[j + 1] == '\n') {
				eol = s + j;
				break;
			}
		n = eol != NULL ? (size_t)(eol - (s + i)) : len - i;
		if (n == 0)
			return i + 2;
		if (s[i] == ' ' || s[i] == '\t') {
			struct field *f;
			char *v;

			assert_true(fs->n > 0);
			f = &fs->f[fs->n - 1];
			v = xasprintf("%s%.*s", f->value, (int)n, s + i);
			free(f->value);
			f->value = v;
		} else {
			const char *colon = memchr(s + i, ':', n);
			size_t vs;

			if (colon == NULL)
				fail_msg("no colon in \"%.*s\"", (int)n, s + i);
			assert_true(fs->n < MAXF);
			vs = (size_t)(colon - (s + i)) + 1;
			while (vs < n && s[i + vs] == ' ')
				vs++;
			fs->f[fs->n].name = xstrndup(s + i,
			    (size_t)(colon - (s + i)));
			fs->f[fs->n].value = xstrndup(s + i + vs, n - vs);
			fs->n++;
		}
		i += n + (eol != NULL ? 2 : 0);
	}
	return len;
}

static void
fields_free(struct fields *fs)
{
	for (size_t i = 0; i < fs->n; i++) {
		free(fs->f[i].name);
		free(fs->f[i].value);
	}
	fs->n = 0;
}

static const char *
get(const struct fields *fs, const char *name)
{
	for (size_t i = 0; i < fs->n; i++)
		if (strcasecmp(fs->f[i].name, name) == 0)
			return fs->f[i].value;
	return NULL;
}

static size_t
count(const struct fields *fs, const char *name)
{
	size_t c = 0;

	for (size_t i = 0; i < fs->n; i++)
		c += strcasecmp(fs->f[i].name, name) == 0;
	return c;
}

/*
 * RFC 2046 5.1.1: the body is split at lines that are exactly "--B" or,
 * once and last, "--B--"; the CRLF before a delimiter belongs to it.
 */
static void
parse_dsn(const char *msg, size_t len, struct dsn *d)
{
	const char *ct, *bp, *p, *end = msg + len, *start = NULL;
	size_t off, blen;
	char delim[140], close[140];
	bool closed = false;

	memset(d, 0, sizeof(*d));
	off = parse_fields(msg, len, &d->h);
	ct = get(&d->h, "Content-Type");
	assert_non_null(ct);
	assert_true(strncasecmp(ct, "multipart/report;", 17) == 0);
	assert_non_null(strstr(ct, "report-type=delivery-status"));
	assert_non_null(bp = strstr(ct, "boundary=\""));
	bp += 10;
	blen = strcspn(bp, "\"");
	assert_true(blen > 0 && blen <= 70);	/* RFC 2046 limit */
	assert_true(bp[blen] == '"');
	memcpy(d->boundary, bp, blen);
	d->boundary[blen] = '\0';
	snprintf(delim, sizeof(delim), "--%s", d->boundary);
	snprintf(close, sizeof(close), "--%s--", d->boundary);

	p = msg + off;
	while (p < end) {
		const char *eol = p;
		size_t n;

		while (eol + 1 < end && !(eol[0] == '\r' && eol[1] == '\n'))
			eol++;
		assert_true(eol + 1 < end);
		n = (size_t)(eol - p);
		if (closed) {
			p = eol + 2;	/* epilogue */
			continue;
		}
		if ((n == strlen(delim) && memcmp(p, delim, n) == 0) ||
		    (n == strlen(close) && memcmp(p, close, n) == 0)) {
			if (start != NULL) {
				struct part *pt = &d->part[d->nparts++];
				const char *cend = p - 2;	/* CRLF before */
				size_t hoff;

				assert_true(cend >= start);
				hoff = parse_fields(start, (size_t)(cend - start),
				    &pt->h);
				pt->len = (size_t)(cend - start) - hoff;
				pt->body = xstrndup(start + hoff, pt->len);
				assert_true(d->nparts < MAXP);
			}
			if (n == strlen(close))
				closed = true;
			start = eol + 2;
		} else if (n >= 2 && memcmp(p, "--", 2) == 0 &&
		    strstr(p, d->boundary) == p + 2 && n > strlen(delim))
			fail_msg("boundary-like line \"%.*s\"", (int)n, p);
		p = eol + 2;
	}
	assert_true(closed);
}

static void
dsn_free(struct dsn *d)
{
	fields_free(&d->h);
	for (size_t i = 0; i < d->nparts; i++) {
		fields_free(&d->part[i].h);
		free(d->part[i].body);
	}
}

/* The field blocks of a message/delivery-status body. */
static size_t
status_blocks(const struct part *pt, struct fields *blk, size_t max)
{
	size_t off = 0, n = 0;

	while (off < pt->len && n < max) {
		size_t used = parse_fields(pt->body + off, pt->len - off, &blk[n]);

		if (blk[n].n > 0)
			n++;
		off += used;
	}
	return n;
}

/*
 * alice@example.com sent to four: bob (remote 550, bounced), carol
 * (local DNS reason, written as "carol"), dave (delivered), erin (orig
 * equal to addr, expired after 4.4.1).
 */
static void
make_env(struct envelope *env)
{
	envelope_init(env);
	memcpy(env->id, ID1, sizeof(ID1));
	env->sender = xstrdup("alice@example.com");
	env->arrival = NOW - 3600;
	env->size = 100;
	envelope_add_rcpt(env, "bob@example.org", NULL);
	envelope_add_rcpt(env, "carol@example.net", "carol");
	envelope_add_rcpt(env, "dave@example.org", NULL);
	envelope_add_rcpt(env, "erin@example.org", "erin@example.org");
	env->rcpt[0].state = RCPT_BOUNCED;
	env->rcpt[0].attempts = 1;
	env->rcpt[0].last_try = NOW - 60;
	env->rcpt[0].last_reply = xstrdup("550 5.1.1 <bob@example.org>: "
	    "Recipient address rejected: User unknown");
	env->rcpt[0].status = xstrdup("5.1.1");
	env->rcpt[0].remote_mta = xstrdup("mx1.example.org");
	env->rcpt[1].state = RCPT_BOUNCED;
	env->rcpt[1].attempts = 1;
	env->rcpt[1].last_try = NOW - 30;
	env->rcpt[1].last_reply = xstrdup("Host or domain name not found "
	    "(NXDOMAIN)");
	env->rcpt[1].status = xstrdup("5.1.2");
	env->rcpt[2].state = RCPT_DELIVERED;
	env->rcpt[2].last_reply = xstrdup("250 2.0.0 Ok: queued as SECRET");
	env->rcpt[2].status = xstrdup("2.0.0");
	env->rcpt[2].remote_mta = xstrdup("mx1.example.org");
	env->rcpt[3].state = RCPT_BOUNCED;
	env->rcpt[3].attempts = 40;
	env->rcpt[3].last_try = NOW;
	env->rcpt[3].last_reply = xstrdup("451 4.4.1 greylisted\r\n"
	    "451 4.4.1 please come back");
	env->rcpt[3].status = xstrdup("4.4.1");
	env->rcpt[3].remote_mta = xstrdup("mx2.example.org");
}

/*
 * What follows the body in the spool's message file (msg/ID: the
 * envelope, then the trailer).  Readers must stop at env->size: a header
 * line here would show up in a notice that read too far.
 */
#define PAST_BODY	"X-Past-The-Body: envelope bytes\r\n\r\n"

/*
 * An unlinked temporary file holding len bytes of s, then PAST_BODY, like
 * a message file of the spool; env->size is set to len.  Offset at the end.
 */
static int
body_file(struct envelope *env, const char *s, size_t len)
{
	char path[] = "/tmp/test_bounce.XXXXXX";
	const char *tmp = getenv("TMPDIR");
	char buf[PATH_MAX];
	int fd;

	if (tmp != NULL && *tmp != '\0') {
		snprintf(buf, sizeof(buf), "%s/test_bounce.XXXXXX", tmp);
		fd = mkstemp(buf);
		if (fd != -1)
			unlink(buf);
	} else {
		fd = mkstemp(path);
		if (fd != -1)
			unlink(path);
	}
	assert_true(fd != -1);
	assert_int_equal(write(fd, s, len), (ssize_t)len);
	assert_int_equal(write(fd, PAST_BODY, sizeof(PAST_BODY) - 1),
	    (ssize_t)sizeof(PAST_BODY) - 1);
	env->size = len;
	return fd;
}

static int
build(const struct envelope *env, const bool *report, int fd,
    struct dsn *d, char **out, size_t *len)
{
	int rc;

	rc = bounce_build(env, report, fd, HOST, NOW, out, len);
	if (rc == 0) {
		assert_int_equal((*out)[*len], '\0');
		assert_int_equal(strlen(*out), *len);
		check_lines(*out, *len, false);
		parse_dsn(*out, *len, d);
	}
	return rc;
}

static void
test_build_fields(void **state)
{
	static const char orig[] = ORIG_HEADERS ORIG_BODY;
	struct envelope env;
	struct dsn d;
	struct fields blk[8];
	const bool report[4] = { true, true, false, true };
	const char *v;
	char *out, *text;
	size_t len, nb;
	int fd;

	make_env(&env);
	fd = body_file(&env, orig, sizeof(orig) - 1);
	assert_int_equal(build(&env, report, fd, &d, &out, &len), 0);
	/* The fd offset is left where it was. */
	assert_true(lseek(fd, 0, SEEK_CUR) ==
	    (off_t)(sizeof(orig) - 1 + sizeof(PAST_BODY) - 1));

	/* Top-level header. */
	assert_string_equal(get(&d.h, "From"),
	    "Mail Delivery System <MAILER-DAEMON@" HOST ">");
	assert_string_equal(get(&d.h, "To"), "alice@example.com");
	assert_string_equal(get(&d.h, "Subject"),
	    "Undelivered Mail Returned to Sender");
	assert_string_equal(get(&d.h, "Date"), "Tue, 14 Nov 2023 22:13:20 +0000");
	assert_string_equal(get(&d.h, "Auto-Submitted"), "auto-replied");
	assert_string_equal(get(&d.h, "MIME-Version"), "1.0");
	assert_non_null(v = get(&d.h, "Message-ID"));
	assert_true(v[0] == '<' && v[strlen(v) - 1] == '>');
	assert_non_null(strstr(v, ID1));
	assert_non_null(strstr(v, ".bounce@" HOST ">"));
	assert_null(strchr(v, ' '));
	assert_null(get(&d.h, "Content-Transfer-Encoding"));
	for (size_t i = 0; i < d.h.n; i++)
		assert_int_equal(count(&d.h, d.h.f[i].name), 1);
	/* The boundary occurs nowhere but on its own lines. */
	for (size_t i = 0; i < d.nparts; i++)
		assert_null(strstr(d.part[i].body, d.boundary));

	/* Three parts, in order. */
	assert_int_equal(d.nparts, 3);
	assert_true(strncmp(get(&d.part[0].h, "Content-Type"), "text/plain", 10)
	    == 0);
	assert_string_equal(get(&d.part[1].h, "Content-Type"),
	    "message/delivery-status");
	assert_string_equal(get(&d.part[2].h, "Content-Type"),
	    "text/rfc822-headers");

	/* 1: the human part names each failed recipient and the reply. */
	text = unwrap(d.part[0].body);
	assert_non_null(strstr(text, HOST));
	assert_non_null(strstr(text, "<bob@example.org>"));
	assert_non_null(strstr(text, "host mx1.example.org said: 550 5.1.1 "
	    "<bob@example.org>: Recipient address rejected: User unknown"));
	assert_non_null(strstr(text, "<carol@example.net> (originally carol)"));
	assert_non_null(strstr(text, "Host or domain name not found"));
	assert_non_null(strstr(text, "<erin@example.org>:"));
	assert_null(strstr(text, "erin@example.org (originally"));
	assert_non_null(strstr(text, "451 4.4.1 greylisted 451 4.4.1 please"));
	assert_null(strstr(text, "dave"));
	assert_null(strstr(text, "SECRET"));
	free(text);

	/* 2: per-message block, then one block per reported recipient. */
	nb = status_blocks(&d.part[1], blk, 8);
	assert_int_equal(nb, 4);
	assert_string_equal(get(&blk[0], "Reporting-MTA"), "dns; " HOST);
	assert_string_equal(get(&blk[0], "Arrival-Date"),
	    "Tue, 14 Nov 2023 21:13:20 +0000");
	assert_null(get(&blk[0], "Final-Recipient"));

	assert_string_equal(get(&blk[1], "Final-Recipient"),
	    "rfc822; bob@example.org");
	assert_null(get(&blk[1], "Original-Recipient"));
	assert_string_equal(get(&blk[1], "Action"), "failed");
	assert_string_equal(get(&blk[1], "Status"), "5.1.1");
	assert_string_equal(get(&blk[1], "Remote-MTA"), "dns; mx1.example.org");
	assert_string_equal(get(&blk[1], "Diagnostic-Code"),
	    "smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: "
	    "User unknown");
	assert_string_equal(get(&blk[1], "Last-Attempt-Date"),
	    "Tue, 14 Nov 2023 22:12:20 +0000");

	assert_string_equal(get(&blk[2], "Final-Recipient"),
	    "rfc822; carol@example.net");
	assert_string_equal(get(&blk[2], "Original-Recipient"), "rfc822; carol");
	assert_string_equal(get(&blk[2], "Action"), "failed");
	assert_string_equal(get(&blk[2], "Status"), "5.1.2");
	assert_null(get(&blk[2], "Remote-MTA"));
	v = get(&blk[2], "Diagnostic-Code");
	assert_non_null(v);
	assert_true(strncmp(v, "smtp;", 5) != 0);
	assert_non_null(strstr(v, "; Host or domain name not found (NXDOMAIN)"));

	assert_string_equal(get(&blk[3], "Final-Recipient"),
	    "rfc822; erin@example.org");
	assert_null(get(&blk[3], "Original-Recipient"));	/* same as addr */
	assert_string_equal(get(&blk[3], "Status"), "4.4.1");
	assert_string_equal(get(&blk[3], "Remote-MTA"), "dns; mx2.example.org");
	assert_string_equal(get(&blk[3], "Diagnostic-Code"),
	    "smtp; 451 4.4.1 greylisted 451 4.4.1 please come back");
	assert_string_equal(get(&blk[3], "Last-Attempt-Date"),
	    "Tue, 14 Nov 2023 22:13:20 +0000");
	for (size_t i = 1; i < nb; i++) {
		static const char *one[] = { "Final-Recipient", "Action",
		    "Status" };

		for (size_t k = 0; k < 3; k++)
			assert_int_equal(count(&blk[i], one[k]), 1);
	}

	/* 3: exactly the original header section, and not the body. */
	assert_string_equal(d.part[2].body, ORIG_HEADERS);
	assert_null(strstr(out, "Hello,"));

	for (size_t i = 0; i < nb; i++)
		fields_free(&blk[i]);
	dsn_free(&d);
	free(out);
	close(fd);
	envelope_free(&env);
}

/* Statuses that cannot stand next to "Action: failed" become 5.0.0. */
static void
test_status_defaults(void **state)
{
	struct envelope env;
	struct dsn d;
	struct fields blk[8];
	const bool report[3] = { true, true, true };
	char *out;
	size_t len;

	envelope_init(&env);
	env.sender = xstrdup("alice@example.com");
	envelope_add_rcpt(&env, "a@x.test", NULL);
	envelope_add_rcpt(&env, "b@x.test", "");
	envelope_add_rcpt(&env, "c@x.test", NULL);
	env.rcpt[1].status = xstrdup("2.0.0");
	env.rcpt[2].status = xstrdup("5.7.26");
	env.rcpt[2].remote_mta = xstrdup("mx.x.test");
	assert_int_equal(build(&env, report, -1, &d, &out, &len), 0);
	assert_int_equal(d.nparts, 2);		/* no body fd: no headers part */
	assert_int_equal(status_blocks(&d.part[1], blk, 8), 4);
	assert_null(get(&blk[0], "Arrival-Date"));	/* arrival 0: unknown */
	assert_null(get(&blk[0], "X-mxrelay-Queue-ID"));
	assert_string_equal(get(&blk[1], "Status"), "5.0.0");
	assert_string_equal(get(&blk[2], "Status"), "5.0.0");
	assert_string_equal(get(&blk[3], "Status"), "5.7.26");
	assert_null(get(&blk[1], "Diagnostic-Code"));	/* nothing recorded */
	assert_null(get(&blk[1], "Last-Attempt-Date"));
	assert_null(get(&blk[2], "Original-Recipient"));	/* "" orig */
	assert_string_equal(get(&blk[3], "Remote-MTA"), "dns; mx.x.test");
	assert_non_null(strstr(d.part[0].body, "no reason was recorded"));
	for (size_t i = 0; i < 4; i++)
		fields_free(&blk[i]);
	dsn_free(&d);
	free(out);
	envelope_free(&env);
}

/*
 * A hostile reply: control bytes, an escape sequence, CRLF, a fake
 * header and boundary, a 3000-octet word, then 4500 octets of words.  The
 * DSN keeps every line within 998 octets, no control byte gets through,
 * the text is cut and marked, and no field can be forged.
 */
static void
test_long_reply(void **state)
{
	struct envelope env;
	struct dsn d;
	struct fields blk[4];
	const bool report[1] = { true };
	char *out, *reply, *big;
	const char *diag;
	static const char want[] = "smtp; 550-5.1.1 first X-Injected: yes --=_"
	    "\\x1b[31m\\x01\\x7f\\xc3\\xa4\\x5c tab here ZZZZ";
	size_t len, nb;

	big = xmalloc(3001);
	memset(big, 'Z', 3000);
	big[3000] = '\0';
	reply = xasprintf("550-5.1.1 first\r\nX-Injected: yes\r\n\r\n--=_\x1b[31m"
	    "\x01\x7f\xc3\xa4\\ tab\there %s", big);
	free(big);
	for (int i = 0; i < 500; i++) {
		char *n = xasprintf("%s word%04d", reply, i);

		free(reply);
		reply = n;
	}
	envelope_init(&env);
	memcpy(env.id, ID1, sizeof(ID1));
	env.sender = xstrdup("alice@example.com");
	envelope_add_rcpt(&env, "bob@example.org", NULL);
	env.rcpt[0].last_reply = reply;
	env.rcpt[0].status = xstrdup("5.1.1");
	env.rcpt[0].remote_mta = xstrdup("mx\r\nX-Evil: 1.example.org");

	assert_int_equal(build(&env, report, -1, &d, &out, &len), 0);
	nb = status_blocks(&d.part[1], blk, 4);
	assert_int_equal(nb, 2);
	assert_null(get(&blk[1], "X-Injected"));
	assert_null(get(&blk[1], "X-Evil"));
	assert_int_equal(blk[1].n, 5);
	assert_string_equal(get(&blk[1], "Remote-MTA"),
	    "dns; mx X-Evil: 1.example.org");
	diag = get(&blk[1], "Diagnostic-Code");
	assert_non_null(diag);
	assert_true(strncmp(diag, want, strlen(want)) == 0);
	/* Cut to the limit, and it says so. */
	assert_true(strlen(diag) < BOUNCE_DIAG_MAX + 64);
	assert_true(strlen(diag) > BOUNCE_DIAG_MAX - 64);
	assert_true(strcmp(diag + strlen(diag) - 3, "...") == 0);
	assert_non_null(strstr(diag, " word0000 "));
	assert_null(strstr(diag, "word0499"));
	/* The human part is folded at words (check_lines saw <= 998). */
	assert_non_null(strstr(d.part[0].body, "\r\n    word"));
	assert_null(strstr(d.part[0].body, "X-Evil: 1.example.org\r\n"));
	for (size_t i = 0; i < nb; i++)
		fields_free(&blk[i]);
	dsn_free(&d);
	free(out);
	envelope_free(&env);
}

/*
 * The copied header section: bare LF and bare CR repaired, NUL dropped,
 * an over-long line cut, 8-bit labelled, a section with no body, one
 * that is empty, and one past the size limit (whole lines only).
 */
static void
test_headers_copy(void **state)
{
	static const char messy[] = "Subject: a\nX-CR: b\rc\r\nX-Nul: d\0e\r\n"
	    "X-8: \xc3\xa4\r\n\r\nbody\r\n";
	static const char headonly[] = "Subject: x\r\nTo: y";
	static const char nohead[] = "\r\nbody only\r\n";
	struct envelope env;
	struct dsn d;
	const bool report[1] = { true };
	char *out, *big, *longline;
	size_t len, blen;
	int fd;

	envelope_init(&env);
	env.sender = xstrdup("alice@example.com");
	envelope_add_rcpt(&env, "bob@example.org", NULL);

	fd = body_file(&env, messy, sizeof(messy) - 1);
	assert_int_equal(bounce_build(&env, report, fd, HOST, NOW, &out, &len),
	    0);
	check_lines(out, len, true);
	parse_dsn(out, len, &d);
	assert_string_equal(get(&d.h, "Content-Transfer-Encoding"), "8bit");
	assert_string_equal(get(&d.part[2].h, "Content-Transfer-Encoding"),
	    "8bit");
	assert_string_equal(d.part[2].body, "Subject: a\r\nX-CR: bc\r\n"
	    "X-Nul: de\r\nX-8: \xc3\xa4\r\n");
	dsn_free(&d);
	free(out);
	close(fd);

	fd = body_file(&env, headonly, sizeof(headonly) - 1);
	assert_int_equal(build(&env, report, fd, &d, &out, &len), 0);
	assert_string_equal(d.part[2].body, "Subject: x\r\nTo: y\r\n");
	dsn_free(&d);
	free(out);
	close(fd);

	fd = body_file(&env, nohead, sizeof(nohead) - 1);
	assert_int_equal(build(&env, report, fd, &d, &out, &len), 0);
	assert_int_equal(d.nparts, 3);
	assert_string_equal(d.part[2].body, "");
	dsn_free(&d);
	free(out);
	close(fd);

	/* A 2000-octet line is cut to 998; the next line survives. */
	longline = xmalloc(2100);
	memcpy(longline, "X-Long: ", 8);
	memset(longline + 8, 'q', 1992);
	memcpy(longline + 2000, "\r\nX-After: 1\r\n\r\nb\r\n", 19);
	fd = body_file(&env, longline, 2019);
	assert_int_equal(build(&env, report, fd, &d, &out, &len), 0);
	assert_int_equal(strcspn(d.part[2].body, "\r"), 998);
	assert_non_null(strstr(d.part[2].body, "\r\nX-After: 1\r\n"));
	dsn_free(&d);
	free(out);
	close(fd);
	free(longline);

	/* 1.5 MB of header lines without an end: cut below the limit. */
	blen = 1536 * 1024;
	big = xmalloc(blen);
	for (size_t i = 0; i < blen; i += 64) {
		memset(big + i, 'h', 64);
		memcpy(big + i, "X-H: ", 5);
		memcpy(big + i + 62, "\r\n", 2);
	}
	fd = body_file(&env, big, blen);
	assert_int_equal(build(&env, report, fd, &d, &out, &len), 0);
	assert_true(d.part[2].len <= BOUNCE_HEADERS_MAX);
	assert_true(d.part[2].len > BOUNCE_HEADERS_MAX - 128);
	assert_true(d.part[2].len % 64 == 0);	/* whole lines only */
	dsn_free(&d);
	free(out);
	close(fd);
	free(big);
	envelope_free(&env);
}

/*
 * A message signed at intake is quoted as it was sent: the signature
 * the envelope holds, then the header section of the body file.
 */
static void
test_headers_dkim(void **state)
{
	static const char body[] = "Subject: x\r\nTo: y\r\n\r\nbody\r\n";
	static const char sig[] = "DKIM-Signature: v=1; a=ed25519-sha256; "
	    "d=example.com;\r\n\ts=sel; b=AbC\r\n";
	struct envelope env;
	struct dsn d;
	const bool report[1] = { true };
	char *out;
	size_t len;
	int fd;

	(void)state;
	envelope_init(&env);
	env.sender = xstrdup("alice@example.com");
	envelope_add_rcpt(&env, "bob@example.org", NULL);
	env.dkim = xstrdup(sig);
	fd = body_file(&env, body, sizeof(body) - 1);
	assert_int_equal(build(&env, report, fd, &d, &out, &len), 0);
	assert_string_equal(d.part[2].body, "DKIM-Signature: v=1; "
	    "a=ed25519-sha256; d=example.com;\r\n\ts=sel; b=AbC\r\n"
	    "Subject: x\r\nTo: y\r\n");
	dsn_free(&d);
	free(out);
	close(fd);
	envelope_free(&env);
}

static void
test_build_errors(void **state)
{
	struct envelope env;
	bool report[4] = { true, false, false, false };
	const bool none[4] = { false, false, false, false };
	char *out = (char *)1;
	size_t len = 1;
	int fd;

	make_env(&env);
	errno = 0;
	assert_int_equal(bounce_build(&env, none, -1, HOST, NOW, &out, &len), -1);
	assert_int_equal(errno, EINVAL);
	assert_null(out);
	assert_int_equal(len, 0);
	assert_int_equal(bounce_build(&env, report, -1, "", NOW, &out, &len), -1);
	assert_int_equal(bounce_build(&env, report, -1, "a b", NOW, &out, &len),
	    -1);
	assert_int_equal(bounce_build(&env, report, -1, "x\r\nBcc: y", NOW, &out,
	    &len), -1);
	assert_int_equal(bounce_build(&env, report, -1, HOST, -1, &out, &len), -1);
	assert_int_equal(errno, EINVAL);

	free(env.sender);
	env.sender = xstrdup("");
	assert_int_equal(bounce_build(&env, report, -1, HOST, NOW, &out, &len), -1);
	assert_int_equal(errno, EINVAL);
	free(env.sender);
	env.sender = xstrdup("a@b\r\nBcc: victim@example.com");
	assert_int_equal(bounce_build(&env, report, -1, HOST, NOW, &out, &len), -1);
	assert_int_equal(errno, EINVAL);
	free(env.sender);
	env.sender = xstrdup("\"x y\"@example.com");

	/* A body fd that cannot be read: its errno, nothing returned. */
	fd = open(".", O_RDONLY | O_DIRECTORY);
	assert_true(fd != -1);
	errno = 0;
	assert_int_equal(bounce_build(&env, report, fd, HOST, NOW, &out, &len),
	    -1);
	assert_int_equal(errno, EISDIR);
	assert_null(out);
	close(fd);

	assert_int_equal(bounce_build(&env, report, -1, HOST, NOW, &out, &len), 0);
	assert_non_null(strstr(out, "\r\nTo: \"x y\"@example.com\r\n"));
	free(out);
	envelope_free(&env);
}

/* Two bounces of one message (different recipients) differ in Message-ID. */
static void
test_message_id_unique(void **state)
{
	struct envelope env;
	struct dsn a, b;
	const bool ra[4] = { true, false, false, false };
	const bool rb[4] = { false, true, false, true };
	char *oa, *ob;
	size_t la, lb;

	make_env(&env);
	assert_int_equal(build(&env, ra, -1, &a, &oa, &la), 0);
	assert_int_equal(build(&env, rb, -1, &b, &ob, &lb), 0);
	assert_string_not_equal(get(&a.h, "Message-ID"), get(&b.h, "Message-ID"));
	assert_null(strstr(a.part[0].body, "carol"));
	assert_null(strstr(b.part[0].body, "bob@"));
	dsn_free(&a);
	dsn_free(&b);
	free(oa);
	free(ob);
	envelope_free(&env);
}

/* ---- queueing through a real spool ------------------------------------ */

struct spool_fx {
	char		 top[PATH_MAX];
	struct queue	*q;
};

struct scan_res {
	size_t		 n;
	struct envelope	 env;	/* a copy of the last one seen */
};

static int	 rm_entry(const char *, const struct stat *, int, struct FTW *);
static int	 scan_cb(struct queue *, const struct envelope *, void *);
static size_t	 dir_entries(const char *, const char *);

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup_spool(void **state)
{
	struct spool_fx *fx = xcalloc(1, sizeof(*fx));

	assert_non_null(test_mkdtemp(fx->top, sizeof(fx->top), "test_bounce"));
	assert_int_equal(queue_open(fx->top, true, &fx->q), 0);
	mock_log_clear();
	*state = fx;
	return 0;
}

static int
teardown_spool(void **state)
{
	struct spool_fx *fx = *state;

	queue_test_set_sysops(NULL);
	queue_close(fx->q);
	nftw(fx->top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static int
scan_cb(struct queue *q, const struct envelope *env, void *arg)
{
	struct scan_res *r = arg;
	char *buf;
	size_t len;
	const char *err;

	r->n++;
	envelope_free(&r->env);
	assert_int_equal(envelope_encode(env, &buf, &len), 0);
	assert_int_equal(envelope_decode(buf, len, &r->env, &err), 0);
	free(buf);
	return 0;
}

/* Entries in top/sub other than "." and "..". */
static size_t
dir_entries(const char *top, const char *sub)
{
	char path[PATH_MAX + 16];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/%s", top, sub);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_queue_null_sender(void **state)
{
	struct spool_fx *fx = *state;
	struct envelope env;
	struct scan_res res = { 0 };
	const bool report[4] = { true, true, false, true };
	char newid[QUEUE_ID_LEN + 1] = "x";

	make_env(&env);
	free(env.sender);
	env.sender = xstrdup("");
	assert_int_equal(bounce_queue(fx->q, &env, report, -1, HOST, NOW, newid),
	    0);
	assert_string_equal(newid, "");
	assert_int_equal(queue_scan(fx->q, scan_cb, &res), 0);
	assert_int_equal(res.n, 0);
	assert_int_equal(dir_entries(fx->top, "tmp"), 0);
	assert_int_equal(dir_entries(fx->top, "msg"), 0);

	/* Nothing to report: nothing queued either. */
	free(env.sender);
	env.sender = xstrdup("alice@example.com");
	{
		const bool none[4] = { false, false, false, false };

		newid[0] = 'x';
		assert_int_equal(bounce_queue(fx->q, &env, none, -1, HOST, NOW,
		    newid), 0);
		assert_string_equal(newid, "");
	}
	assert_int_equal(queue_scan(fx->q, scan_cb, &res), 0);
	assert_int_equal(res.n, 0);
	envelope_free(&env);
}

static void
test_queue_dsn(void **state)
{
	static const char orig[] = ORIG_HEADERS ORIG_BODY;
	struct spool_fx *fx = *state;
	struct envelope env;
	struct scan_res res = { 0 };
	const bool report[4] = { true, true, false, true };
	char newid[QUEUE_ID_LEN + 1], *want, *got;
	size_t wlen;
	ssize_t n;
	int fd, bfd;

	make_env(&env);
	fd = body_file(&env, orig, sizeof(orig) - 1);
	assert_int_equal(bounce_queue(fx->q, &env, report, fd, HOST, NOW, newid),
	    0);
	assert_true(queue_id_valid(newid));
	assert_true(mock_log_contains(ID1));
	assert_true(mock_log_contains(newid));

	assert_int_equal(queue_scan(fx->q, scan_cb, &res), 0);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.env.id, newid);
	assert_string_equal(res.env.sender, "");	/* never bounces back */
	assert_int_equal(res.env.nrcpt, 1);
	assert_string_equal(res.env.rcpt[0].addr, "alice@example.com");
	assert_null(res.env.rcpt[0].orig);
	assert_int_equal(res.env.rcpt[0].state, RCPT_PENDING);
	assert_true(res.env.arrival == NOW);

	/* The body is the DSN bounce_build() makes, byte for byte. */
	assert_int_equal(bounce_build(&env, report, fd, HOST, NOW, &want, &wlen),
	    0);
	assert_true(res.env.size == wlen);
	bfd = queue_body_open(fx->q, newid);
	assert_true(bfd != -1);
	/* Its first size bytes; the envelope and trailer of msg/ID follow. */
	got = xmalloc(wlen + 1);
	n = read(bfd, got, wlen + 1);
	assert_int_equal(n, (ssize_t)wlen + 1);
	assert_memory_equal(got, want, wlen);
	assert_int_equal(got[wlen], 'm');	/* "mxrelay-envelope 1" */
	close(bfd);
	free(got);
	free(want);

	/* A second, different bounce of the same message is a new message. */
	{
		const bool r2[4] = { false, false, true, false };
		char id2[QUEUE_ID_LEN + 1];

		res.n = 0;
		assert_int_equal(bounce_queue(fx->q, &env, r2, fd, HOST, NOW, id2),
		    0);
		assert_string_not_equal(id2, newid);
		assert_int_equal(queue_scan(fx->q, scan_cb, &res), 0);
		assert_int_equal(res.n, 2);
	}
	close(fd);
	envelope_free(&res.env);
	envelope_free(&env);
}

/* ENOSPC on the first write, and on each fsync: -1, errno, spool as it was. */
static int	 fail_at, fail_count;
static int	 fail_errno;

static ssize_t
full_write(int fd, const void *p, size_t n)
{
	if (++fail_count == fail_at) {
		errno = fail_errno;
		return -1;
	}
	return write(fd, p, n);
}

static int
full_fsync(int fd)
{
	if (++fail_count == fail_at) {
		errno = fail_errno;
		return -1;
	}
	return fsync(fd);
}

static void
test_queue_full(void **state)
{
	struct spool_fx *fx = *state;
	struct envelope env;
	struct scan_res res = { 0 };
	const bool report[4] = { true, false, false, false };
	struct queue_sysops ops = queue_sysops_default;
	char newid[QUEUE_ID_LEN + 1];
	int failures = 0;

	make_env(&env);
	ops.write = full_write;
	ops.fsync = full_fsync;
	for (fail_at = 1; fail_at < 50; fail_at++) {
		int rc;

		fail_count = 0;
		fail_errno = fail_at % 2 ? ENOSPC : EIO;
		queue_test_set_sysops(&ops);
		errno = 0;
		rc = bounce_queue(fx->q, &env, report, -1, HOST, NOW, newid);
		queue_test_set_sysops(NULL);
		if (fail_count < fail_at) {
			/* Every write and fsync has been failed once: done. */
			assert_int_equal(rc, 0);
			break;
		}
		failures++;
		assert_int_equal(rc, -1);
		assert_int_equal(errno, fail_errno);
		assert_int_equal(queue_scan(fx->q, scan_cb, &res), 0);
		assert_int_equal(res.n, 0);
		assert_int_equal(dir_entries(fx->top, "tmp"), 0);
		assert_int_equal(dir_entries(fx->top, "msg"), 0);
	}
	assert_true(failures >= 3);	/* writes, file fsync, msg/ fsync */
	assert_int_equal(queue_scan(fx->q, scan_cb, &res), 0);
	assert_int_equal(res.n, 1);
	envelope_free(&res.env);
	envelope_free(&env);
}

/*
 * A delay notice: Action delayed, the recipient's 4.x.x Status (4.0.0
 * when its last one is not temporary), Will-Retry-Until, its own Subject
 * and Message-ID.
 */
static void
test_delayed_notice(void **state)
{
	static const char orig[] = ORIG_HEADERS ORIG_BODY;
	struct bounce_notice n = { BOUNCE_DELAYED, NOW + 86400, NULL, NULL, 0,
	    false };
	struct envelope env;
	struct dsn d;
	struct fields blk[8];
	const bool report[4] = { true, false, false, true };
	char *out, *text;
	size_t len, nb;
	int fd;

	(void)state;
	make_env(&env);
	fd = body_file(&env, orig, sizeof(orig) - 1);
	assert_int_equal(bounce_build_notice(&env, report, fd, &n, HOST, NOW,
	    &out, &len), 0);
	check_lines(out, len, false);
	parse_dsn(out, len, &d);
	assert_string_equal(get(&d.h, "Subject"),
	    "Delayed Mail (still being retried)");
	assert_non_null(strstr(get(&d.h, "Message-ID"), ".delay@" HOST ">"));
	assert_int_equal(d.nparts, 3);
	text = unwrap(d.part[0].body);
	assert_non_null(strstr(text, "has not been delivered yet"));
	assert_non_null(strstr(text, "until Wed, 15 Nov 2023 22:13:20 +0000"));
	assert_null(strstr(text, "queue lifetime ran out"));
	free(text);
	nb = status_blocks(&d.part[1], blk, 8);
	assert_int_equal(nb, 3);
	assert_string_equal(get(&blk[1], "Action"), "delayed");
	assert_string_equal(get(&blk[1], "Status"), "4.0.0");	/* was 5.1.1 */
	assert_string_equal(get(&blk[2], "Action"), "delayed");
	assert_string_equal(get(&blk[2], "Status"), "4.4.1");
	for (size_t i = 1; i < nb; i++)
		assert_string_equal(get(&blk[i], "Will-Retry-Until"),
		    "Wed, 15 Nov 2023 22:13:20 +0000");
	assert_string_equal(d.part[2].body, ORIG_HEADERS);
	for (size_t i = 0; i < nb; i++)
		fields_free(&blk[i]);
	dsn_free(&d);
	free(out);

	/* No until: no Will-Retry-Until. */
	n.until = 0;
	assert_int_equal(bounce_build_notice(&env, report, -1, &n, HOST, NOW,
	    &out, &len), 0);
	parse_dsn(out, len, &d);
	nb = status_blocks(&d.part[1], blk, 8);
	assert_null(get(&blk[1], "Will-Retry-Until"));
	for (size_t i = 0; i < nb; i++)
		fields_free(&blk[i]);
	dsn_free(&d);
	free(out);
	close(fd);
	envelope_free(&env);
}

/*
 * A combined notice: each recipient with the queue id of its message in
 * both parts, no message-wide queue id or Arrival-Date, and the header
 * section given (not read from a file).
 */
static void
test_combined_notice(void **state)
{
	static const char hdrs[] = "Subject: first\r\n";
	const char *ids[4] = { "aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb",
	    NULL, "cccccccccccccccccccc" };
	struct bounce_notice n = { BOUNCE_FAILED, 0, ids, hdrs,
	    sizeof(hdrs) - 1, false };
	struct envelope env;
	struct dsn d;
	struct fields blk[8];
	const bool report[4] = { true, true, false, true };
	char *out, *text;
	size_t len, nb;

	(void)state;
	make_env(&env);
	assert_int_equal(bounce_build_notice(&env, report, -1, &n, HOST, NOW,
	    &out, &len), 0);
	check_lines(out, len, false);
	parse_dsn(out, len, &d);
	assert_string_equal(get(&d.h, "Subject"),
	    "Undelivered Mail Returned to Sender");
	assert_non_null(strstr(get(&d.h, "Message-ID"), ".bounces@" HOST ">"));
	text = unwrap(d.part[0].body);
	assert_non_null(strstr(text, "<bob@example.org> (queue id "
	    "aaaaaaaaaaaaaaaaaaaa):"));
	assert_non_null(strstr(text, "<carol@example.net> (originally carol) "
	    "(queue id bbbbbbbbbbbbbbbbbbbb):"));
	assert_non_null(strstr(text, "<erin@example.org> (queue id "
	    "cccccccccccccccccccc):"));
	free(text);
	nb = status_blocks(&d.part[1], blk, 8);
	assert_int_equal(nb, 4);
	assert_null(get(&blk[0], "X-mxrelay-Queue-ID"));
	assert_null(get(&blk[0], "Arrival-Date"));
	assert_string_equal(get(&blk[1], "X-mxrelay-Queue-ID"),
	    "aaaaaaaaaaaaaaaaaaaa");
	assert_string_equal(get(&blk[2], "X-mxrelay-Queue-ID"),
	    "bbbbbbbbbbbbbbbbbbbb");
	assert_string_equal(get(&blk[3], "X-mxrelay-Queue-ID"),
	    "cccccccccccccccccccc");
	assert_string_equal(get(&blk[3], "Action"), "failed");
	assert_int_equal(d.nparts, 3);
	assert_string_equal(d.part[2].body, hdrs);
	for (size_t i = 0; i < nb; i++)
		fields_free(&blk[i]);
	dsn_free(&d);
	free(out);
	envelope_free(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_fields),
		cmocka_unit_test(test_status_defaults),
		cmocka_unit_test(test_long_reply),
		cmocka_unit_test(test_headers_copy),
		cmocka_unit_test(test_headers_dkim),
		cmocka_unit_test(test_build_errors),
		cmocka_unit_test(test_message_id_unique),
		cmocka_unit_test_setup_teardown(test_queue_null_sender,
		    setup_spool, teardown_spool),
		cmocka_unit_test_setup_teardown(test_queue_dsn,
		    setup_spool, teardown_spool),
		cmocka_unit_test_setup_teardown(test_queue_full,
		    setup_spool, teardown_spool),
		cmocka_unit_test(test_delayed_notice),
		cmocka_unit_test(test_combined_notice),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
