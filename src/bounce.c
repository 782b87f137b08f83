/*
 * bounce: delivery status notifications (RFC 3464) for recipients that
 * failed, built as bytes and queued through queue/ as a new message from
 * the null sender to the original envelope sender.
 *
 * The report, as built (every line CRLF, none over 998 octets):
 *
 *	Date:, From: Mail Delivery System <MAILER-DAEMON@hostname>,
 *	Subject:, To: <original envelope sender>, Auto-Submitted:
 *	auto-replied (RFC 3834), Message-ID:, MIME-Version: 1.0,
 *	Content-Type: multipart/report; report-type=delivery-status;
 *	boundary="..."
 *	  1. text/plain: the failed recipients and what was said about them
 *	  2. message/delivery-status: Reporting-MTA, Arrival-Date, then per
 *	     recipient Final-Recipient, Original-Recipient (when the user
 *	     wrote something else), Action: failed, Status, Remote-MTA (when a
 *	     remote server gave the reply), Diagnostic-Code (smtp; for a
 *	     remote reply, X-mxrelay; for a local reason), Last-Attempt-Date
 *	     (a delay warning: Action: delayed, Status 4.x.x and
 *	     Will-Retry-Until; a notice that combines several messages: no
 *	     Arrival-Date, and X-mxrelay-Queue-ID per recipient)
 *	  3. text/rfc822-headers: the original header section (when a body
 *	     fd is given), labelled 8bit when it holds 8-bit bytes
 *
 * Invariants: text that came from a peer or from the spool (replies,
 * exchanger names, addresses) is cleaned before it is written: line ends
 * and tabs become spaces, other control bytes and bytes >= 0x7f become
 * \xNN, and the result is cut to BOUNCE_DIAG_MAX octets and folded.  The
 * boundary is checked against every part, so no content can end a part.
 * Dates are UTC and formatted here, not by the locale.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "envelope.h"
#include "log.h"
#include "record.h"
#include "spool.h"
#include "utf8.h"
#include "util.h"

#define LINE_MAX_OCTETS	998	/* RFC 5322 section 2.1.1, without CRLF */
#define FOLD_AT		78	/* the "SHOULD" of the same section */
#define ADDR_MAX	900	/* a sender longer than this cannot be a To: */
#define HOST_MAX	255
#define READ_CHUNK	65536
#define BOUNDARY_TRIES	64

/* A growable output buffer; allocation failure is fatal (xmalloc). */
struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

/* A report being built: what its parts and its header need. */
struct draft {
	const struct envelope	*env;
	const struct bounce_notice *n;	/* never NULL */
	const char		*hostname;
	time_t			 now;
	char			 date[64];	/* now, for Date: */
	size_t			 first;		/* first recipient reported */
	struct buf		 text;		/* part 1 */
	struct buf		 status;	/* part 2 */
	struct buf		 hdrs;		/* part 3 */
	bool			 with_hdrs;	/* part 3 is there */
	bool			 eightbit;	/* part 3 has 8-bit bytes */
	char			 boundary[80];
};

static void	 buf_add(struct buf *, const void *, size_t);
static void	 buf_str(struct buf *, const char *);
static void	 buf_fmt(struct buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static bool	 find(const char *, size_t, const char *, size_t);
static int	 fmt_date(time_t, char *, size_t);
static char	*clean_text(const char *);
static void	 put_folded(struct buf *, const char *, const char *,
		    const char *);
static bool	 hostname_ok(const char *);
static bool	 sender_ok(const char *);
static const char *rcpt_status(const struct envelope_rcpt *);
static const char *rcpt_delay_status(const struct envelope_rcpt *);
static bool	 orig_differs(const struct envelope_rcpt *);
static void	 make_intro(struct buf *, const struct bounce_notice *,
		    const char *);
static void	 make_text(struct buf *, const struct envelope *, const bool *,
		    const struct bounce_notice *, const char *);
static void	 make_status(struct buf *, const struct envelope *,
		    const bool *, const struct bounce_notice *, const char *);
static int	 read_headers(int, uint64_t, struct buf *, bool *);
static uint64_t	 fnv1a(uint64_t, const void *, size_t);
static bool	 draft_begin(struct draft *, const struct envelope *,
		    const bool *, const char *, time_t);
static int	 draft_boundary(struct draft *);
static void	 put_head(struct buf *, const struct draft *);
static void	 put_parts(struct buf *, const struct draft *);

static void
buf_add(struct buf *b, const void *s, size_t n)
{
	if (b->cap - b->len < n) {
		size_t cap = b->cap ? b->cap : 1024;

		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2)
				abort();	/* cannot happen in memory */
			cap *= 2;
		}
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void
buf_fmt(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	char tmp[512];
	int n;

	/* Only for our own short texts: what is cut off is a bug, not input. */
	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		abort();
	buf_add(b, tmp, (size_t)n);
}

/* True when needle occurs in hay (memmem is not POSIX.1-2008). */
static bool
find(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
	if (nlen == 0)
		return true;
	for (size_t i = 0; i + nlen <= hlen; i++) {
		const char *p = memchr(hay + i, needle[0], hlen - i - nlen + 1);

		if (p == NULL)
			return false;
		i = (size_t)(p - hay);
		if (memcmp(p, needle, nlen) == 0)
			return true;
	}
	return false;
}

/* RFC 5322 section 3.3 date in UTC; English names, whatever the locale. */
static int
fmt_date(time_t t, char *out, size_t outlen)
{
	return t < 0 ? -1 : util_date_rfc5322(t, true, out, outlen);
}

/*
 * A copy of s fit for one logical line of a report: runs of CR, LF and
 * tab become one space (multi-line replies join up), other control bytes
 * and bytes >= 0x7f (and the backslash, so that the escapes are
 * unambiguous) become \xNN, leading and trailing spaces go, and the
 * result is cut to BOUNCE_DIAG_MAX octets with "..." at the end.
 */
static char *
clean_text(const char *s)
{
	static const char hex[] = "0123456789abcdef";
	struct buf b = { NULL, 0, 0 };
	const unsigned char *p = (const unsigned char *)s;
	bool cut = false;

	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	for (; *p != '\0'; p++) {
		char e[4];

		if (b.len + 4 > BOUNCE_DIAG_MAX - 3) {
			cut = true;
			break;
		}
		if (*p == '\r' || *p == '\n' || *p == '\t') {
			while (p[1] == '\r' || p[1] == '\n' || p[1] == '\t')
				p++;
			buf_add(&b, " ", 1);
		} else if (*p < 0x20 || *p >= 0x7f || *p == '\\') {
			e[0] = '\\';
			e[1] = 'x';
			e[2] = hex[*p >> 4];
			e[3] = hex[*p & 0xf];
			buf_add(&b, e, sizeof(e));
		} else
			buf_add(&b, p, 1);
	}
	while (b.len > 0 && b.p[b.len - 1] == ' ')
		b.len--;
	if (cut)
		buf_add(&b, "...", 3);
	buf_add(&b, "", 1);
	return b.p;
}

/*
 * Write lead, then the space-separated words of text (cleaned: no
 * control bytes), then CRLF.  Lines are broken before a word that would
 * go past FOLD_AT; continuation lines start with indent (" " makes it a
 * header fold, RFC 5322 section 2.2.3).  A word too long for any line is
 * cut so that no line exceeds LINE_MAX_OCTETS.
 */
static void
put_folded(struct buf *b, const char *lead, const char *text,
    const char *indent)
{
	size_t col = strlen(lead), ilen = strlen(indent);
	const char *p = text;
	bool fresh = true;

	buf_str(b, lead);
	for (;;) {
		size_t wl;

		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		wl = strcspn(p, " ");
		if (!fresh && col + 1 + wl > FOLD_AT) {
			buf_str(b, "\r\n");
			buf_str(b, indent);
			col = ilen;
			fresh = true;
		}
		if (!fresh) {
			buf_add(b, " ", 1);
			col++;
		}
		while (col + wl > LINE_MAX_OCTETS) {
			size_t n = LINE_MAX_OCTETS - col;

			buf_add(b, p, n);
			p += n;
			wl -= n;
			buf_str(b, "\r\n");
			buf_str(b, indent);
			col = ilen;
		}
		buf_add(b, p, wl);
		col += wl;
		p += wl;
		fresh = false;
	}
	buf_str(b, "\r\n");
}

/* A host name we can put after "@" and "dns;" as it is. */
static bool
hostname_ok(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

/* The envelope sender goes into To: verbatim: no line breaks, no controls. */
static bool
sender_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > ADDR_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/*
 * The Status: of a failed recipient.  A "2.x.x" would contradict
 * "Action: failed"; a 4.x.x is kept (lifetime expired after a temporary
 * failure, as Postfix reports it).
 */
static const char *
rcpt_status(const struct envelope_rcpt *r)
{
	if (r->status == NULL || !envelope_status_valid(r->status) ||
	    r->status[0] == '2')
		return "5.0.0";
	return r->status;
}

/* The Status: of a delayed recipient: its last one when temporary. */
static const char *
rcpt_delay_status(const struct envelope_rcpt *r)
{
	if (r->status == NULL || !envelope_status_valid(r->status) ||
	    r->status[0] != '4')
		return "4.0.0";
	return r->status;
}

static bool
orig_differs(const struct envelope_rcpt *r)
{
	return r->orig != NULL && r->orig[0] != '\0' &&
	    strcmp(r->orig, r->addr) != 0;
}

/* Part 1's first paragraphs: what kind of notice this is. */
static void
make_intro(struct buf *b, const struct bounce_notice *n,
    const char *hostname)
{
	char date[64];

	buf_fmt(b, "This is the mail relay at %s.\r\n\r\n", hostname);
	if (n->kind == BOUNCE_DELAYED) {
		buf_str(b, "Your message has not been delivered yet to the "
		    "recipients listed below.\r\n");
		if (n->until > 0 && fmt_date(n->until, date, sizeof(date)) == 0)
			buf_fmt(b, "The relay keeps trying until %s.\r\n",
			    date);
		else
			buf_str(b, "The relay keeps trying.\r\n");
		buf_str(b, "You do not need to send it again; you will be told "
		    "if it fails.\r\n");
	} else if (n->rcpt_ids != NULL)
		buf_str(b, "Your messages could not be delivered to the "
		    "recipients listed below,\r\neach with the queue id of "
		    "its message.  A delivery status report and\r\nthe "
		    "header of the first of these messages follow.\r\n");
	else
		buf_str(b, "Your message could not be delivered to the "
		    "recipients listed below.\r\nA delivery status report "
		    "and the header of your message follow.\r\n");
}

/* Part 1: for people. */
static void
make_text(struct buf *b, const struct envelope *env, const bool *report,
    const struct bounce_notice *n, const char *hostname)
{
	make_intro(b, n, hostname);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		char *addr, *line, *reply, *mta = NULL, *from = NULL;

		if (!report[i])
			continue;
		addr = clean_text(r->addr);
		if (n->rcpt_ids != NULL && n->rcpt_ids[i] != NULL) {
			char *id = clean_text(n->rcpt_ids[i]);

			from = xasprintf(" (queue id %s)", id);
			free(id);
		}
		if (orig_differs(r)) {
			char *orig = clean_text(r->orig);

			line = xasprintf("<%s> (originally %s)%s:", addr, orig,
			    from != NULL ? from : "");
			free(orig);
		} else
			line = xasprintf("<%s>%s:", addr,
			    from != NULL ? from : "");
		buf_str(b, "\r\n");
		put_folded(b, "", line, "    ");
		free(line);
		free(addr);
		free(from);

		reply = clean_text(r->last_reply != NULL ? r->last_reply :
		    "no reason was recorded");
		if (n->kind == BOUNCE_FAILED && r->status != NULL &&
		    r->status[0] == '4')
			put_folded(b, "    ", "Delivery kept failing "
			    "temporarily until the queue lifetime ran out.",
			    "    ");
		if (r->remote_mta != NULL) {
			mta = clean_text(r->remote_mta);
			line = xasprintf("host %s said: %s", mta, reply);
			put_folded(b, "    ", line, "    ");
			free(line);
			free(mta);
		} else
			put_folded(b, "    ", reply, "    ");
		free(reply);
	}
}

/* Part 2: RFC 3464 section 2, for programs. */
static void
make_status(struct buf *b, const struct envelope *env, const bool *report,
    const struct bounce_notice *n, const char *hostname)
{
	char date[64];

	buf_fmt(b, "Reporting-MTA: dns; %s\r\n", hostname);
	if (n->rcpt_ids == NULL && env->id[0] != '\0')
		buf_fmt(b, "X-mxrelay-Queue-ID: %s\r\n", env->id);
	if (n->rcpt_ids == NULL && env->arrival > 0 &&
	    fmt_date(env->arrival, date, sizeof(date)) == 0)
		buf_fmt(b, "Arrival-Date: %s\r\n", date);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		char *s;

		if (!report[i])
			continue;
		buf_str(b, "\r\n");
		s = clean_text(r->addr);
		put_folded(b, "Final-Recipient: rfc822; ", s, " ");
		free(s);
		if (orig_differs(r)) {
			s = clean_text(r->orig);
			put_folded(b, "Original-Recipient: rfc822; ", s, " ");
			free(s);
		}
		if (n->kind == BOUNCE_DELAYED) {
			buf_str(b, "Action: delayed\r\n");
			buf_fmt(b, "Status: %s\r\n", rcpt_delay_status(r));
		} else {
			buf_str(b, "Action: failed\r\n");
			buf_fmt(b, "Status: %s\r\n", rcpt_status(r));
		}
		if (r->remote_mta != NULL) {
			s = clean_text(r->remote_mta);
			put_folded(b, "Remote-MTA: dns; ", s, " ");
			free(s);
		}
		if (r->last_reply != NULL) {
			s = clean_text(r->last_reply);
			/* Section 2.3.6: "smtp" only for a reply an SMTP server gave. */
			put_folded(b, r->remote_mta != NULL ?
			    "Diagnostic-Code: smtp; " : "Diagnostic-Code: X-mxrelay; ",
			    s, " ");
			free(s);
		}
		if (r->last_try > 0 && fmt_date(r->last_try, date, sizeof(date)) == 0)
			buf_fmt(b, "Last-Attempt-Date: %s\r\n", date);
		if (n->kind == BOUNCE_DELAYED && n->until > 0 &&
		    fmt_date(n->until, date, sizeof(date)) == 0)
			buf_fmt(b, "Will-Retry-Until: %s\r\n", date);
		if (n->rcpt_ids != NULL && n->rcpt_ids[i] != NULL) {
			s = clean_text(n->rcpt_ids[i]);
			put_folded(b, "X-mxrelay-Queue-ID: ", s, " ");
			free(s);
		}
	}
}

/*
 * Part 3: the header section of the stored message, up to the empty line
 * or BOUNCE_HEADERS_MAX octets (then only whole lines).  The spool holds
 * CRLF text; still, lines are rebuilt here: a bare CR and NUL are dropped,
 * a bare LF ends a line, and a line longer than LINE_MAX_OCTETS is cut.
 */
static int
read_headers(int fd, uint64_t size, struct buf *b, bool *eightbit)
{
	struct buf raw = { NULL, 0, 0 };
	size_t start = 0;
	bool eof = false, done = false;
	int rc = -1;

	*eightbit = false;
	while (!eof && raw.len < BOUNCE_HEADERS_MAX) {
		size_t want = BOUNCE_HEADERS_MAX - raw.len;
		ssize_t n;

		if (want > READ_CHUNK)
			want = READ_CHUNK;
		/* The body is size bytes; the spool's file holds more. */
		if (raw.len >= size)
			want = 0;
		else if (size - raw.len < want)
			want = (size_t)(size - raw.len);
		if (raw.cap - raw.len < want) {
			raw.p = xreallocarray(raw.p, raw.len + want, 1);
			raw.cap = raw.len + want;
		}
		n = want == 0 ? 0 : pread(fd, raw.p + raw.len, want,
		    (off_t)raw.len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			goto done;
		}
		if (n == 0)
			eof = true;
		raw.len += (size_t)n;
		/* Stop reading once the empty line is in. */
		if (find(raw.p, raw.len, "\n\r\n", 3) ||
		    find(raw.p, raw.len, "\n\n", 2) ||
		    (raw.len >= 2 && memcmp(raw.p, "\r\n", 2) == 0) ||
		    (raw.len >= 1 && raw.p[0] == '\n'))
			break;
	}
	while (start < raw.len && !done) {
		const char *nl = memchr(raw.p + start, '\n', raw.len - start);
		size_t end, out = 0;

		if (nl == NULL) {
			/* A last line without LF counts only at the end of file. */
			if (!eof)
				break;
			end = raw.len;
		} else
			end = (size_t)(nl - raw.p);
		for (size_t i = start; i < end; i++) {
			unsigned char c = (unsigned char)raw.p[i];

			if (c == '\r' || c == '\0' || out == LINE_MAX_OCTETS)
				continue;
			if (c >= 0x80)
				*eightbit = true;
			buf_add(b, &c, 1);
			out++;
		}
		start = nl != NULL ? end + 1 : raw.len;
		if (out == 0) {
			done = true;	/* the empty line: the body follows */
			break;
		}
		buf_str(b, "\r\n");
	}
	rc = 0;

done:
	free(raw.p);
	return rc;
}

static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/*
 * Whether a report can be built, with the first recipient reported (it
 * names the Message-ID) and the Date: of now filled in.
 */
static bool
draft_begin(struct draft *d, const struct envelope *env, const bool *report,
    const char *hostname, time_t now)
{
	d->env = env;
	d->hostname = hostname;
	d->now = now;
	d->first = SIZE_MAX;
	if (env == NULL || report == NULL || hostname == NULL ||
	    env->sender == NULL || !sender_ok(env->sender) ||
	    !hostname_ok(hostname) || (env->nrcpt > 0 && env->rcpt == NULL) ||
	    fmt_date(now, d->date, sizeof(d->date)) == -1)
		return false;
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].addr == NULL)
			return false;
		if (report[i] && d->first == SIZE_MAX)
			d->first = i;
	}
	return d->first != SIZE_MAX;
}

/*
 * RFC 2046 section 5.1.1: the boundary must not occur in any part.
 * Derived from the content, so a sender cannot plant it in the headers
 * we copy; checked all the same.
 */
static int
draft_boundary(struct draft *d)
{
	for (unsigned k = 0; k < BOUNDARY_TRIES; k++) {
		uint64_t h = UINT64_C(0xcbf29ce484222325);
		size_t blen;

		h = fnv1a(h, &k, sizeof(k));
		h = fnv1a(h, d->text.p, d->text.len);
		h = fnv1a(h, d->status.p, d->status.len);
		h = fnv1a(h, d->hdrs.p, d->hdrs.len);
		snprintf(d->boundary, sizeof(d->boundary), "=_%s/%lld/%016llx",
		    d->env->id[0] != '\0' ? d->env->id : "noid",
		    (long long)d->now, (unsigned long long)h);
		blen = strlen(d->boundary);
		if (!find(d->text.p, d->text.len, d->boundary, blen) &&
		    !find(d->status.p, d->status.len, d->boundary, blen) &&
		    !find(d->hdrs.p, d->hdrs.len, d->boundary, blen))
			return 0;
	}
	return -1;	/* not reachable in practice */
}

/* The header section of the report and the preamble. */
static void
put_head(struct buf *msg, const struct draft *d)
{
	const struct envelope *env = d->env;

	buf_fmt(msg, "Date: %s\r\n", d->date);
	buf_fmt(msg, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    d->hostname);
	buf_str(msg, d->n->kind == BOUNCE_DELAYED ?
	    "Subject: Delayed Mail (still being retried)\r\n" :
	    "Subject: Undelivered Mail Returned to Sender\r\n");
	buf_str(msg, "To: ");
	buf_str(msg, env->sender);
	buf_str(msg, "\r\n");
	/* RFC 3834 section 5: so that vacation responders stay quiet. */
	buf_str(msg, "Auto-Submitted: auto-replied\r\n");
	buf_fmt(msg, "Message-ID: <%s.%lld.%zu.%s@%s>\r\n",
	    env->id[0] != '\0' ? env->id : "noid", (long long)d->now, d->first,
	    d->n->kind == BOUNCE_DELAYED ? "delay" :
	    d->n->rcpt_ids != NULL ? "bounces" : "bounce", d->hostname);
	buf_str(msg, "MIME-Version: 1.0\r\n");
	buf_str(msg, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n");
	buf_fmt(msg, "\tboundary=\"%s\"\r\n", d->boundary);
	if (d->eightbit)
		buf_str(msg, "Content-Transfer-Encoding: 8bit\r\n");
	buf_str(msg, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");
}

/* The parts, each after its boundary line, and the closing boundary. */
static void
put_parts(struct buf *msg, const struct draft *d)
{
	buf_fmt(msg, "--%s\r\n", d->boundary);
	buf_str(msg, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	buf_add(msg, d->text.p, d->text.len);
	buf_fmt(msg, "\r\n--%s\r\n", d->boundary);
	buf_str(msg, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n");
	buf_add(msg, d->status.p, d->status.len);
	if (d->with_hdrs) {
		buf_fmt(msg, "\r\n--%s\r\n", d->boundary);
		buf_str(msg,
		    "Content-Description: Undelivered Message Headers\r\n"
		    "Content-Type: text/rfc822-headers\r\n");
		if (d->eightbit)
			buf_str(msg, "Content-Transfer-Encoding: 8bit\r\n");
		buf_str(msg, "\r\n");
		buf_add(msg, d->hdrs.p, d->hdrs.len);
	}
	buf_fmt(msg, "\r\n--%s--\r\n", d->boundary);
}

int
bounce_read_headers(int fd, uint64_t size, char **out, size_t *outlen,
    bool *eightbit)
{
	struct buf b = { NULL, 0, 0 };

	*out = NULL;
	*outlen = 0;
	if (read_headers(fd, size, &b, eightbit) == -1) {
		int saved = errno;

		free(b.p);
		errno = saved;
		return -1;
	}
	buf_add(&b, "", 1);
	*out = b.p;
	*outlen = b.len - 1;
	return 0;
}

int
bounce_build(const struct envelope *env, const bool *report, int body_fd,
    const char *hostname, time_t now, char **out, size_t *outlen)
{
	return bounce_build_notice(env, report, body_fd, NULL, hostname, now,
	    out, outlen);
}

int
bounce_build_notice(const struct envelope *env, const bool *report,
    int body_fd, const struct bounce_notice *n, const char *hostname,
    time_t now, char **out, size_t *outlen)
{
	static const struct bounce_notice failed = { BOUNCE_FAILED, 0, NULL,
	    NULL, 0, false };
	struct draft d;
	struct buf msg = { NULL, 0, 0 };
	int rc = -1, saved;

	*out = NULL;
	*outlen = 0;
	memset(&d, 0, sizeof(d));
	d.n = n != NULL ? n : &failed;
	if (!draft_begin(&d, env, report, hostname, now))
		goto invalid;
	make_text(&d.text, env, report, d.n, hostname);
	make_status(&d.status, env, report, d.n, hostname);
	if (d.n->hdrs != NULL) {
		d.with_hdrs = true;
		d.eightbit = d.n->hdrs8bit;
		buf_add(&d.hdrs, d.n->hdrs, d.n->hdrslen);
	} else {
		d.with_hdrs = body_fd != -1;
		/* The message as it was sent: our DKIM signature first. */
		if (d.with_hdrs && env->dkim != NULL)
			buf_str(&d.hdrs, env->dkim);
		if (d.with_hdrs &&
		    read_headers(body_fd, env->size, &d.hdrs, &d.eightbit) == -1)
			goto done;
	}
	if (draft_boundary(&d) == -1)
		goto invalid;
	put_head(&msg, &d);
	put_parts(&msg, &d);
	buf_add(&msg, "", 1);	/* a NUL past the end, for callers' ease */
	*out = msg.p;
	*outlen = msg.len - 1;
	msg.p = NULL;
	rc = 0;
	goto done;

invalid:
	errno = EINVAL;
done:
	saved = errno;
	free(msg.p);
	free(d.text.p);
	free(d.status.p);
	free(d.hdrs.p);
	errno = saved;
	return rc;
}

void
bounce_log(const char *id, enum bounce_kind kind, const char *newid,
    size_t nrcpt, size_t nmsgs)
{
	const struct record_field f[] = {
		{ "event", "%s", RECORD_STR, kind == BOUNCE_DELAYED ?
		    "sender delay notification" :
		    "sender non-delivery notification", 0 },
		{ "notification", ": %s", RECORD_STR, newid, 0 },
		{ "recipients", nmsgs > 0 ? (nrcpt == 1 ? " (%s recipient" :
		    " (%s recipients") : nrcpt == 1 ? " (%s recipient)" :
		    " (%s recipients)", RECORD_NUM, NULL, (long long)nrcpt },
		{ "messages", nmsgs == 1 ? "; one notice for %s message)" :
		    "; one notice for %s messages)", RECORD_NUM, NULL,
		    (long long)nmsgs },
	};

	record_log(id, f, sizeof(f) / sizeof(f[0]) - (nmsgs == 0));
}

int
bounce_queue(struct queue *q, const struct envelope *env, const bool *report,
    int body_fd, const char *hostname, time_t now, char *newid)
{
	size_t n = 0;

	if (bounce_queue_notice(q, env, report, body_fd, NULL, hostname, now,
	    newid) == -1)
		return -1;
	if (newid[0] == '\0')
		return 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		n += report[i];
	bounce_log(env->id[0] != '\0' ? env->id : "-", BOUNCE_FAILED, newid, n,
	    0);
	return 0;
}

int
bounce_queue_notice(struct queue *q, const struct envelope *env,
    const bool *report, int body_fd, const struct bounce_notice *notice,
    const char *hostname, time_t now, char *newid)
{
	struct queue_new *qn = NULL;
	struct envelope dsn;
	char *buf = NULL;
	size_t len, n = 0;
	int rc = -1, saved;

	newid[0] = '\0';
	envelope_init(&dsn);
	if (env == NULL || env->sender == NULL || report == NULL) {
		errno = EINVAL;
		return -1;
	}
	/* A null-sender message is never bounced (RFC 5321 4.5.5). */
	if (env->sender[0] == '\0')
		return 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		n += report[i];
	if (n == 0)
		return 0;

	if (bounce_build_notice(env, report, body_fd, notice, hostname, now,
	    &buf, &len) == -1)
		goto done;
	if (queue_new_begin(q, &qn) == -1)
		goto done;
	if (queue_new_write(qn, buf, len) == -1) {
		queue_new_abort(qn);	/* keeps errno */
		goto done;
	}
	dsn.sender = xstrdup("");
	dsn.arrival = now;
	envelope_add_rcpt(&dsn, env->sender, NULL);
	/* To a UTF-8 sender (in To: as well): RFC 6531 on delivery. */
	if (utf8_has_8bit(env->sender))
		dsn.flags |= ENVELOPE_F_SMTPUTF8;
	if (queue_new_commit(qn, &dsn) == -1)
		goto done;
	util_strlcpy(newid, dsn.id, QUEUE_ID_LEN + 1);
	rc = 0;

done:
	saved = errno;
	free(buf);
	envelope_free(&dsn);
	errno = saved;
	return rc;
}
