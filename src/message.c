/*
 * message: RFC 5322 header handling for the sendmail interface, and the
 * Received: field and hop count of the SMTP listener.  Address lists and
 * envelope addresses are the other half of the module, in msg_addr.c.
 *
 * msg_headers_fix() walks the header section once, line by line: each
 * field is copied out with CRLF line ends (Bcc and Resent-Bcc left out),
 * the fields that matter are noted by name, and with -t the addresses of
 * the recipient fields are collected; the missing Date, Message-ID and
 * From are added at the end.  The input is only read: the new header
 * section is built in a buffer of its own.
 *
 * Pure code: no I/O, no clock (localtime_r only converts the caller's now).
 */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "message.h"

#define MSG_FULLNAME_MAX	256	/* -F NAME, in octets */

/* A growable output buffer. */
struct obuf {
	char	*p;
	size_t	 n;
	size_t	 cap;
};

/* msg_headers_fix() at work: its input, and what it has found so far. */
struct hdr_fix {
	const char			*in;
	size_t				 len;
	const struct msg_header_opts	*o;
	struct obuf			 out;	/* fields kept, CRLF lines */
	struct obuf			 field;	/* a field's body, unfolded */
	struct strlist			 plain;	/* -t: To, Cc, Bcc */
	struct strlist			 resent; /* -t: the Resent- ones */
	int				 seen;	/* HDR_* of the fields seen */
#define HDR_RCPT	0x01	/* To, Cc, Bcc: recipients for -t */
#define HDR_RESENT	0x02	/* Resent-To, -Cc, -Bcc: these instead */
#define HDR_DROP	0x04	/* Bcc, Resent-Bcc: not copied out */
#define HDR_DATE	0x08
#define HDR_MSGID	0x10
#define HDR_FROM	0x20
};

/* The fields msg_headers_fix() looks at; names match in any case. */
static const struct {
	const char	*name;
	int		 kind;
} hdr_fields[] = {
	{ "to",		HDR_RCPT },
	{ "cc",		HDR_RCPT },
	{ "bcc",	HDR_RCPT | HDR_DROP },
	{ "resent-to",	HDR_RESENT },
	{ "resent-cc",	HDR_RESENT },
	{ "resent-bcc",	HDR_RESENT | HDR_DROP },
	{ "date",	HDR_DATE },
	{ "message-id",	HDR_MSGID },
	{ "from",	HDR_FROM },
};

static void	 ob_add(struct obuf *, const void *, size_t);
static void	 ob_adds(struct obuf *, const char *);
static void	 next_line(const char *, size_t, size_t, size_t *, size_t *);
static size_t	 field_name_len(const char *, size_t);
static size_t	 field_end(const char *, size_t, size_t);
static int	 field_kind(const char *, size_t);
static void	 field_copy(struct hdr_fix *, size_t, size_t, size_t, bool);
static int	 field_rcpts(struct hdr_fix *, const char *, size_t, int,
		    char *, size_t);
static int	 header_scan(struct hdr_fix *, size_t *, char *, size_t);
static int	 header_complete(struct hdr_fix *, char *, size_t);
static void	 header_rcpts(struct hdr_fix *, struct strlist *);
static int	 add_date(struct obuf *, time_t, char *, size_t);
static int	 add_from(struct obuf *, const struct msg_header_opts *,
		    char *, size_t);
static void	 add_name(struct obuf *, const char *);
static bool	 local_name_ok(const char *);

static void
ob_add(struct obuf *b, const void *p, size_t n)
{
	if (b->cap - b->n < n + 1) {
		while (b->cap - b->n < n + 1)
			b->cap = b->cap ? b->cap * 2 : 1024;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->n, p, n);
	b->n += n;
	b->p[b->n] = '\0';
}

static void
ob_adds(struct obuf *b, const char *s)
{
	ob_add(b, s, strlen(s));
}

/*
 * The line at pos: its content ends at *end (before CRLF or LF; a lone CR
 * at the end of the input is dropped too), the next line starts at *next.
 */
static void
next_line(const char *in, size_t len, size_t pos, size_t *end, size_t *next)
{
	const char *nl = memchr(in + pos, '\n', len - pos);
	size_t e;

	if (nl != NULL) {
		e = (size_t)(nl - in);
		*next = e + 1;
	} else
		e = *next = len;
	if (e > pos && in[e - 1] == '\r')
		e--;
	*end = e;
}

/* Length of the field name when the line is a header field, else 0. */
static size_t
field_name_len(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch < 33 || ch > 126 || ch == ':')
			break;
	}
	if (i > 0 && i < n && s[i] == ':')
		return i;
	return 0;
}

/*
 * Where the field whose first line ends before next ends: after its
 * continuation lines, which start with white space (RFC 5322 §2.2.3).
 */
static size_t
field_end(const char *in, size_t len, size_t next)
{
	size_t end;

	while (next < len && (in[next] == ' ' || in[next] == '\t'))
		next_line(in, len, next, &end, &next);
	return next;
}

/* The HDR_* kind of the field named name (n octets), 0 for the others. */
static int
field_kind(const char *name, size_t n)
{
	for (size_t i = 0; i < sizeof(hdr_fields) / sizeof(hdr_fields[0]); i++)
		if (strlen(hdr_fields[i].name) == n &&
		    strncasecmp(name, hdr_fields[i].name, n) == 0)
			return hdr_fields[i].kind;
	return 0;
}

/*
 * The field in[pos..fend), its name nlen octets: its lines go to f->out
 * with CRLF when keep, and its body, unfolded (§2.2.3), to f->field.
 */
static void
field_copy(struct hdr_fix *f, size_t pos, size_t nlen, size_t fend, bool keep)
{
	size_t p, end, next;

	f->field.n = 0;
	for (p = pos; p < fend; p = next) {
		next_line(f->in, f->len, p, &end, &next);
		if (keep) {
			ob_add(&f->out, f->in + p, end - p);
			ob_add(&f->out, "\r\n", 2);
		}
		if (p == pos)
			ob_add(&f->field, f->in + p + nlen + 1,
			    end - p - nlen - 1);
		else
			ob_add(&f->field, f->in + p, end - p);
	}
}

/*
 * -t: the addresses of the recipient field just copied (its kind says
 * which list they join).  An error names the field: "To: reason".
 */
static int
field_rcpts(struct hdr_fix *f, const char *name, size_t nlen, int kind,
    char *err, size_t errlen)
{
	char why[256];

	if (msg_addrlist_parse(f->field.p, f->field.n,
	    (kind & HDR_RCPT) ? &f->plain : &f->resent, why,
	    sizeof(why)) == -1) {
		util_seterr(err, errlen, "%.*s: %s",
		    (int)(nlen > 64 ? 64 : nlen), name, why);
		return -1;
	}
	return 0;
}

/*
 * Walk the header section field by field.  *body becomes the offset of
 * the body when a line ends the header section (it is left as it was
 * when the input ends first).
 */
static int
header_scan(struct hdr_fix *f, size_t *body, char *err, size_t errlen)
{
	const char *in = f->in;
	size_t pos = 0, end, next, nlen, fend;
	int kind;

	/* An mbox "From " line before the header section is dropped. */
	if (f->len >= 5 && memcmp(in, "From ", 5) == 0) {
		next_line(in, f->len, 0, &end, &next);
		pos = next;
	}
	while (pos < f->len) {
		next_line(in, f->len, pos, &end, &next);
		if (end == pos) {
			/* The empty line separating the body (§2.1). */
			*body = next;
			return 0;
		}
		if ((nlen = field_name_len(in + pos, end - pos)) == 0) {
			*body = pos;
			return 0;
		}
		fend = field_end(in, f->len, next);
		kind = field_kind(in + pos, nlen);
		f->seen |= kind;
		field_copy(f, pos, nlen, fend, !(kind & HDR_DROP));
		if (f->o->extract_rcpts && (kind & (HDR_RCPT | HDR_RESENT)) &&
		    field_rcpts(f, in + pos, nlen, kind, err, errlen) == -1)
			return -1;
		pos = fend;
	}
	return 0;
}

/* Add Date, Message-ID and From when the header section has none. */
static int
header_complete(struct hdr_fix *f, char *err, size_t errlen)
{
	if (!(f->seen & HDR_DATE) &&
	    add_date(&f->out, f->o->now, err, errlen) == -1)
		return -1;
	if (!(f->seen & HDR_MSGID)) {
		ob_adds(&f->out, "Message-ID: <");
		ob_adds(&f->out, f->o->queue_id);
		ob_adds(&f->out, "@");
		ob_adds(&f->out, f->o->hostname);
		ob_adds(&f->out, ">\r\n");
	}
	if (!(f->seen & HDR_FROM) && add_from(&f->out, f->o, err, errlen) == -1)
		return -1;
	return 0;
}

/*
 * sendmail -t: Resent- fields, when present, name the recipients.  Those
 * already in rcpts are not added again.
 */
static void
header_rcpts(struct hdr_fix *f, struct strlist *rcpts)
{
	const struct strlist *chosen;

	chosen = (f->seen & HDR_RESENT) ? &f->resent : &f->plain;
	for (size_t i = 0; i < chosen->n; i++)
		if (!strlist_contains_nocase(rcpts, chosen->v[i]))
			strlist_add(rcpts, chosen->v[i]);
}

/* RFC 5322 §3.3 date-time, local time zone; names not from the locale. */
static int
add_date(struct obuf *b, time_t now, char *err, size_t errlen)
{
	char date[64];

	if (util_date_rfc5322(now, false, date, sizeof(date)) == -1) {
		util_seterr(err, errlen, "cannot convert the time for Date:");
		return -1;
	}
	ob_adds(b, "Date: ");
	ob_adds(b, date);
	ob_adds(b, "\r\n");
	return 0;
}

/* "From: sender", or "From: NAME <sender>" with -F. */
static int
add_from(struct obuf *b, const struct msg_header_opts *o, char *err,
    size_t errlen)
{
	const char *sender = o->sender != NULL ? o->sender : "";
	const char *name = o->full_name;
	char *mailer = NULL;
	int rc = -1;

	if (name != NULL && strlen(name) > MSG_FULLNAME_MAX) {
		util_seterr(err, errlen, "full name longer than %d octets",
		    MSG_FULLNAME_MAX);
		return -1;
	}
	if (*sender == '\0')
		sender = mailer = xasprintf("MAILER-DAEMON@%s", o->hostname);
	for (const char *s = sender; *s != '\0'; s++)
		if (msg_is_ctl((unsigned char)*s) || *s == '\t' || *s == ' ') {
			util_seterr(err, errlen, "sender address contains white "
			    "space or control characters");
			goto done;
		}
	ob_adds(b, "From: ");
	if (name == NULL || *name == '\0') {
		ob_adds(b, sender);
		ob_adds(b, "\r\n");
		rc = 0;
		goto done;
	}
	add_name(b, name);
	ob_adds(b, " <");
	ob_adds(b, sender);
	ob_adds(b, ">\r\n");
	rc = 0;
done:
	free(mailer);
	return rc;
}

/*
 * The -F name as a display name: as it is when it is plain words (atoms
 * and single spaces), else as a quoted-string (RFC 5322 §3.2.4) in which
 * control characters become spaces.
 */
static void
add_name(struct obuf *b, const char *name)
{
	size_t n = strlen(name);
	bool plain = true, prev_space = true;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch == ' ' && !prev_space)
			prev_space = true;
		else if (msg_is_ascii_atext(ch))
			prev_space = false;
		else
			plain = false;
	}
	if (prev_space)
		plain = false;
	if (plain) {
		ob_add(b, name, n);
		return;
	}
	ob_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch == '"' || ch == '\\')
			ob_add(b, "\\", 1);
		if (msg_is_ctl(ch) || ch == '\t')
			ch = ' ';
		ob_add(b, &ch, 1);
	}
	ob_add(b, "\"", 1);
}

int
msg_headers_fix(const char *in, size_t len,
    const struct msg_header_opts *o, char **out, size_t *outlen,
    size_t *body_off, struct strlist *rcpts, char *err, size_t errlen)
{
	struct hdr_fix f;
	size_t body = len;
	int rc = -1;

	*out = NULL;
	*outlen = 0;
	*body_off = 0;
	memset(&f, 0, sizeof(f));
	f.in = in;
	f.len = in != NULL ? len : 0;
	f.o = o;
	if (o->hostname == NULL || *o->hostname == '\0' ||
	    o->queue_id == NULL || *o->queue_id == '\0') {
		util_seterr(err, errlen, "no hostname or queue id for the headers");
		goto done;
	}
	if (header_scan(&f, &body, err, errlen) == -1 ||
	    header_complete(&f, err, errlen) == -1)
		goto done;
	if (o->extract_rcpts)
		header_rcpts(&f, rcpts);
	if (f.out.p == NULL)
		ob_add(&f.out, "", 0);
	*out = f.out.p;
	*outlen = f.out.n;
	*body_off = body;
	f.out.p = NULL;
	rc = 0;
done:
	free(f.out.p);
	free(f.field.p);
	strlist_free(&f.plain);
	strlist_free(&f.resent);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The SMTP listener's Received: field and hop count. */

/* A user name that may stand in a Received: field as it is. */
static bool
local_name_ok(const char *u)
{
	size_t n = 0;

	if (u == NULL)
		return false;
	for (; *u != '\0'; u++) {
		unsigned char c = (unsigned char)*u;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-' || c == '$' || c == '+' || c == '@'))
			return false;
		if (++n > 64)
			return false;
	}
	return n > 0;
}

const char *
msg_received_proto(bool esmtp, bool tls, bool auth)
{
	if (!esmtp)
		return tls ? "SMTPS" : "SMTP";
	if (tls)
		return auth ? "ESMTPSA" : "ESMTPS";
	return auth ? "ESMTPA" : "ESMTP";
}

char *
msg_received(const struct msg_received *r)
{
	char date[64] = "", *from, *hdr;

	/* A local time that cannot be converted: say it in UTC. */
	if (util_date_rfc5322(r->now, false, date, sizeof(date)) == -1)
		(void)util_date_rfc5322(r->now, true, date, sizeof(date));
	if (!r->local)
		from = xasprintf("%s ([%s])", r->helo, r->addr);
	else if (local_name_ok(r->user))
		from = xasprintf("user %s (uid %" PRIu32 ")", r->user, r->uid);
	else
		from = xasprintf("uid %" PRIu32, r->uid);
	if (r->rcpt != NULL)
		hdr = xasprintf("Received: from %s\r\n"
		    "\tby %s (mxrelay) with %s id %s\r\n"
		    "\tfor <%s>; %s\r\n", from, r->by, r->proto, r->id,
		    r->rcpt, date);
	else
		hdr = xasprintf("Received: from %s\r\n"
		    "\tby %s (mxrelay) with %s id %s;\r\n"
		    "\t%s\r\n", from, r->by, r->proto, r->id, date);
	free(from);
	return hdr;
}

void
msg_hops_init(struct msg_hops *h)
{
	memset(h, 0, sizeof(*h));
	h->match = true;
}

void
msg_hops_scan(struct msg_hops *h, const char *buf, size_t len)
{
	static const char pat[] = "received:";

	for (size_t i = 0; i < len && !h->done; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\n') {
			/* The body is CRLF lines: "\r\n" alone is empty. */
			if (h->pos == 1)
				h->done = true;
			h->pos = 0;
			h->match = true;
			continue;
		}
		if (h->match && h->pos < sizeof(pat) - 1) {
			h->match = tolower(c) == pat[h->pos];
			if (h->match && h->pos == sizeof(pat) - 2)
				h->count++;
		}
		h->pos++;
	}
}
