/*
 * smtp_proto: pure SMTP helpers (see smtp_proto.h).  No I/O, no clock, no
 * allocation: every function works on caller-provided, bounded buffers.
 *
 * Invariants: a struct smtp_reply never holds a NUL, CR or LF inside a
 * line's text, never more than SMTP_REPLY_LINES_MAX lines or
 * SMTP_REPLY_SIZE_MAX bytes; the stuffing encoder never emits a bare CR,
 * a bare LF or a line that starts with an unstuffed '.'; the unstuffing
 * decoder ends data only on CRLF "." CRLF (a bare LF that it stores as
 * CRLF included) and writes no byte after its first violation, nor a bare
 * CR or LF.
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "smtp_proto.h"
#include "status.h"
#include "util.h"

static bool	is_digit(char);
static bool	keyword_is(const char *, size_t, const char *);
static uint64_t	parse_u64(const char *, size_t, bool *);
static size_t	stuff_put(struct smtp_stuff *, unsigned char, char *);
static void	unstuff_note(struct smtp_unstuff *, enum smtp_unstuff_status);
static enum smtp_unstuff_status unstuff_final(const struct smtp_unstuff *);
static int	b64_val(unsigned char);

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

void
smtp_reply_init(struct smtp_reply *r)
{
	r->code = 0;
	r->status[0] = '\0';
	r->status_line = SMTP_REPLY_LINES_MAX;
	r->complete = false;
	r->nlines = 0;
	r->len = 0;
	r->text[0] = '\0';
}

int
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
    char *err, size_t errlen)
{
	const char *text;
	size_t tlen;
	int code;
	bool last;

	if (r->complete) {
		util_seterr(err, errlen, "reply already complete");
		return -1;
	}
	if (len > SMTP_REPLY_LINE_MAX) {
		util_seterr(err, errlen, "reply line too long");
		return -1;
	}
	/* RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39 */
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '5' || !is_digit(line[2])) {
		util_seterr(err, errlen, "malformed reply line");
		return -1;
	}
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (len == 3) {
		last = true;
		text = line + 3;
		tlen = 0;
	} else if (line[3] == ' ' || line[3] == '-') {
		last = line[3] == ' ';
		text = line + 4;
		tlen = len - 4;
	} else {
		util_seterr(err, errlen, "malformed reply line");
		return -1;
	}
	for (size_t i = 0; i < tlen; i++) {
		if (text[i] == '\0' || text[i] == '\r' || text[i] == '\n') {
			util_seterr(err, errlen, "control byte in reply");
			return -1;
		}
	}
	if (r->nlines > 0 && code != r->code) {
		util_seterr(err, errlen, "reply code changed within a reply");
		return -1;
	}
	if (r->nlines == SMTP_REPLY_LINES_MAX) {
		util_seterr(err, errlen, "too many reply lines");
		return -1;
	}
	if (r->len + tlen + 1 > sizeof(r->text)) {
		util_seterr(err, errlen, "reply too long");
		return -1;
	}
	if (r->nlines == 0) {
		r->code = code;
		/* text is NUL-terminated only after the copy below */
	}
	r->off[r->nlines++] = (uint16_t)r->len;
	memcpy(r->text + r->len, text, tlen);
	r->text[r->len + tlen] = '\0';
	/* The code opens the reply's text: its first line that has any. */
	if (tlen > 0 && r->status_line == SMTP_REPLY_LINES_MAX) {
		r->status_line = r->nlines - 1;
		(void)smtp_status_parse(code, r->text + r->len, r->status,
		    sizeof(r->status));
	}
	r->len += tlen + 1;
	if (last)
		r->complete = true;
	return last ? 1 : 0;
}

const char *
smtp_reply_line(const struct smtp_reply *r, size_t i)
{
	if (i >= r->nlines)
		return NULL;
	return r->text + r->off[i];
}

size_t
smtp_status_parse(int code, const char *text, char *status,
    size_t statussize)
{
	if (statussize > 0)
		status[0] = '\0';
	/* RFC 2034 §3: the class matches the first digit of the reply code */
	if (text[0] - '0' != code / 100)
		return 0;
	return status_parse(text, strlen(text), status, statussize);
}

char *
smtp_escape(char *dst, size_t dstsize, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	if (dstsize == 0)
		return dst;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		size_t need = (c >= 0x20 && c < 0x7f && c != '\\') ? 1 : 4;

		if (o + need + 1 > dstsize)
			break;
		if (need == 1)
			dst[o++] = (char)c;
		else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 0xf];
		}
	}
	if (i < len && dstsize > 4) {
		/* Mark the cut; back off whole escapes so none is split. */
		while (o + 4 > dstsize) {
			size_t back = 1;

			if (o >= 4 && dst[o - 4] == '\\' && dst[o - 3] == 'x')
				back = 4;
			o -= back;
		}
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o] = '\0';
	return dst;
}

char *
smtp_reply_to_text(const struct smtp_reply *r, char *dst, size_t dstsize)
{
	char buf[SMTP_REPLY_SIZE_MAX + 16];
	size_t o = 0, slen = strlen(r->status);

	if (r->nlines == 0)
		return smtp_escape(dst, dstsize, "", 0);
	buf[o++] = (char)('0' + r->code / 100);
	buf[o++] = (char)('0' + r->code / 10 % 10);
	buf[o++] = (char)('0' + r->code % 10);
	for (size_t i = 0; i < r->nlines; i++) {
		const char *t = smtp_reply_line(r, i);
		size_t tlen = strlen(t);

		/* "550-5.1.1 a" "550 5.1.1 b" -> "550 5.1.1 a b" */
		if (i != r->status_line && slen > 0 &&
		    strncmp(t, r->status, slen) == 0 &&
		    (t[slen] == ' ' || t[slen] == '\0')) {
			t += slen;
			tlen -= slen;
			while (*t == ' ') {
				t++;
				tlen--;
			}
		}
		if (tlen == 0)
			continue;
		/* fits: text[] holds every line plus a NUL each */
		buf[o++] = ' ';
		memcpy(buf + o, t, tlen);
		o += tlen;
	}
	return smtp_escape(dst, dstsize, buf, o);
}

static bool
keyword_is(const char *s, size_t len, const char *kw)
{
	return strlen(kw) == len && strncasecmp(s, kw, len) == 0;
}

/* A decimal number of len bytes; *ok false on anything else or overflow. */
static uint64_t
parse_u64(const char *s, size_t len, bool *ok)
{
	uint64_t v = 0;

	*ok = len > 0 && len <= 19;
	for (size_t i = 0; *ok && i < len; i++) {
		if (!is_digit(s[i]))
			*ok = false;
		else
			v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return *ok ? v : 0;
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	memset(e, 0, sizeof(*e));
	if (r->code / 100 != 2)
		return;
	/* RFC 5321 §4.1.1.1: the first line is the server's name. */
	for (size_t i = 1; i < r->nlines; i++) {
		const char *l = smtp_reply_line(r, i), *p, *kw;
		size_t kwlen;
		bool old_auth = false;

		while (*l == ' ')
			l++;
		kw = l;
		for (p = l; *p != '\0' && *p != ' ' && *p != '='; p++)
			;
		kwlen = (size_t)(p - kw);
		if (*p == '=' && keyword_is(kw, kwlen, "AUTH"))
			old_auth = true;	/* "AUTH=LOGIN PLAIN" */
		else if (*p == '=')
			continue;
		if (keyword_is(kw, kwlen, "PIPELINING"))
			e->ext |= SMTP_EXT_PIPELINING;
		else if (keyword_is(kw, kwlen, "8BITMIME"))
			e->ext |= SMTP_EXT_8BITMIME;
		else if (keyword_is(kw, kwlen, "STARTTLS"))
			e->ext |= SMTP_EXT_STARTTLS;
		else if (keyword_is(kw, kwlen, "ENHANCEDSTATUSCODES"))
			e->ext |= SMTP_EXT_ENHANCEDSTATUSCODES;
		else if (keyword_is(kw, kwlen, "SMTPUTF8"))
			e->ext |= SMTP_EXT_SMTPUTF8;
		else if (keyword_is(kw, kwlen, "SIZE")) {
			const char *a = p;
			size_t alen;
			bool ok;
			uint64_t v;

			e->ext |= SMTP_EXT_SIZE;
			while (*a == ' ')
				a++;
			for (alen = 0; a[alen] != '\0' && a[alen] != ' '; alen++)
				;
			v = parse_u64(a, alen, &ok);
			e->size_max = ok ? v : 0;
		} else if (keyword_is(kw, kwlen, "AUTH")) {
			const char *a = p + (old_auth ? 1 : 0);

			e->ext |= SMTP_EXT_AUTH;
			while (*a != '\0') {
				size_t alen;

				while (*a == ' ')
					a++;
				for (alen = 0; a[alen] != '\0' && a[alen] != ' ';
				    alen++)
					;
				if (keyword_is(a, alen, "PLAIN"))
					e->auth |= SMTP_AUTH_PLAIN;
				else if (keyword_is(a, alen, "LOGIN"))
					e->auth |= SMTP_AUTH_LOGIN;
				a += alen;
			}
		}
	}
}

void
smtp_stuff_init(struct smtp_stuff *st)
{
	st->bol = true;
	st->cr = false;
	st->col = 0;
}

/* One input byte; writes at most 4 bytes to out. */
static size_t
stuff_put(struct smtp_stuff *st, unsigned char c, char *out)
{
	size_t o = 0;

	if (st->cr) {
		/* A held CR: with LF it is a line end, alone it becomes one. */
		out[o++] = '\r';
		out[o++] = '\n';
		st->cr = false;
		st->bol = true;
		st->col = 0;
		if (c == '\n')
			return o;
	}
	if (c == '\r') {
		st->cr = true;
		return o;
	}
	if (c == '\n') {
		out[o++] = '\r';
		out[o++] = '\n';
		st->bol = true;
		st->col = 0;
		return o;
	}
	if (st->col >= SMTP_TEXT_LINE_MAX) {
		/* Too long: continue on a new line that starts with a space. */
		out[o++] = '\r';
		out[o++] = '\n';
		out[o++] = ' ';
		st->col = 1;
	}
	/* RFC 5321 §4.5.2: a line that starts with '.' gets one more. */
	if (st->bol && c == '.') {
		out[o++] = '.';
		st->col++;
	}
	out[o++] = (char)c;
	st->col++;
	st->bol = false;
	return o;
}

size_t
smtp_stuff_encode(struct smtp_stuff *st, const char *src, size_t len,
    char *dst, size_t dstsize, size_t *used)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 4 <= dstsize; i++)
		o += stuff_put(st, (unsigned char)src[i], dst + o);
	*used = i;
	return o;
}

size_t
smtp_stuff_finish(struct smtp_stuff *st, char *dst, size_t dstsize)
{
	size_t o = 0;

	if (dstsize < SMTP_STUFF_FINISH_MAX)
		return 0;
	if (st->cr) {
		dst[o++] = '\r';
		dst[o++] = '\n';
		st->cr = false;
		st->bol = true;
	}
	/* RFC 5321 §4.1.1.4: the end is CRLF "." CRLF, so end the last line. */
	if (!st->bol) {
		dst[o++] = '\r';
		dst[o++] = '\n';
	}
	memcpy(dst + o, ".\r\n", 3);
	o += 3;
	st->bol = true;
	return o;
}

void
smtp_unstuff_init(struct smtp_unstuff *u, size_t line_max, unsigned flags)
{
	u->line_max = line_max < 3 ? 3 : line_max;
	u->col = 0;
	u->bol = true;		/* the data starts at a line start */
	u->cr = false;
	u->dotline = false;
	u->done = false;
	u->lfline = false;
	u->flags = flags;
	u->err = SMTP_UNSTUFF_MORE;
}

/* Record a violation; only the first one counts. */
static void
unstuff_note(struct smtp_unstuff *u, enum smtp_unstuff_status st)
{
	if (u->err == SMTP_UNSTUFF_MORE)
		u->err = st;
}

static enum smtp_unstuff_status
unstuff_final(const struct smtp_unstuff *u)
{
	return u->err != SMTP_UNSTUFF_MORE ? u->err : SMTP_UNSTUFF_END;
}

enum smtp_unstuff_status
smtp_unstuff_feed(struct smtp_unstuff *u, const char *in, size_t len,
    size_t *used, char *out, size_t outsize, size_t *outlen)
{
	size_t i, o = 0, need;
	unsigned char c;

	*used = 0;
	*outlen = 0;
	if (u->done)
		return unstuff_final(u);
	for (i = 0; i < len; i++) {
		c = (unsigned char)in[i];
		/* Worst case for this byte: a held CR and its LF. */
		need = c == '\r' ? 0 : (c == '\n' && (u->cr ||
		    (u->flags & SMTP_UNSTUFF_LF))) ? 2 : 1;
		if (u->err == SMTP_UNSTUFF_MORE && outsize - o < need)
			break;
		if (u->cr) {
			u->cr = false;
			if (c == '\n') {
				if (u->dotline && !u->lfline) {
					/* CRLF "." CRLF: the end of data. */
					u->done = true;
					*used = i + 1;
					*outlen = o;
					return unstuff_final(u);
				}
				if (u->err == SMTP_UNSTUFF_MORE) {
					out[o++] = '\r';
					out[o++] = '\n';
				}
				/*
				 * A line end; a "." line that started after a
				 * bare LF was an empty line, not the end.
				 */
				u->bol = true;
				u->lfline = false;
				u->dotline = false;
				u->col = 0;
				continue;
			}
			/* The held CR was a bare one; c is looked at below. */
			unstuff_note(u, SMTP_UNSTUFF_BARE_CR);
			u->bol = false;
			u->dotline = false;
		}
		if (c == '\r') {
			u->cr = true;
			continue;
		}
		if (c == '\n' && (u->flags & SMTP_UNSTUFF_LF)) {
			/*
			 * A line end, stored as CRLF; the "." line it may end
			 * is an empty line, and the next line cannot end the
			 * data either: only CRLF "." CRLF does.
			 */
			if (u->err == SMTP_UNSTUFF_MORE) {
				out[o++] = '\r';
				out[o++] = '\n';
			}
			u->bol = true;
			u->lfline = true;
			u->dotline = false;
			u->col = 0;
			continue;
		}
		if (c == '\n') {
			/* Bare LF: not a line end, so no "." after it ends. */
			unstuff_note(u, SMTP_UNSTUFF_BARE_LF);
			u->bol = false;
			u->dotline = false;
			continue;
		}
		if (c == '\0')
			unstuff_note(u, SMTP_UNSTUFF_NUL);
		/* Wire octets, the stuffing dot included; capped. */
		if (u->col <= u->line_max)
			u->col++;
		if (u->col > u->line_max - 2)
			unstuff_note(u, SMTP_UNSTUFF_LONG_LINE);
		if (u->bol && c == '.') {
			/* RFC 5321 §4.5.2: drop the first '.' of a line. */
			u->bol = false;
			u->dotline = true;
			continue;
		}
		u->bol = false;
		u->dotline = false;
		if (u->err == SMTP_UNSTUFF_MORE)
			out[o++] = (char)c;
	}
	*used = i;
	*outlen = o;
	return SMTP_UNSTUFF_MORE;
}

bool
smtp_path_ok(const char *addr)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)addr; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			return false;
		if (++n > SMTP_PATH_MAX - 2)
			return false;
	}
	return true;
}

int
smtp_base64_encode(const void *src, size_t len, char *dst, size_t dstsize)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = src;
	size_t o = 0, i;

	if (len / 3 + 1 > (SIZE_MAX - 1) / 4 || (len + 2) / 3 * 4 + 1 > dstsize)
		return -1;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 |
		    s[i + 2];

		dst[o++] = tab[v >> 18];
		dst[o++] = tab[(v >> 12) & 63];
		dst[o++] = tab[(v >> 6) & 63];
		dst[o++] = tab[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)s[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)s[i + 1] << 8;
		dst[o++] = tab[v >> 18];
		dst[o++] = tab[(v >> 12) & 63];
		dst[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return 0;
}

static int
b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
smtp_base64_decode(const char *src, size_t len, void *dst, size_t dstsize,
    size_t *outlen)
{
	unsigned char *d = dst;
	size_t o = 0, pad = 0;
	uint32_t v = 0;
	unsigned n = 0;

	if (len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		int x;

		if (c == '=') {
			/* only as the last one or two characters */
			if (i < len - 2)
				return -1;
			pad++;
			x = 0;
		} else if (pad > 0 || (x = b64_val(c)) < 0)
			return -1;
		v = v << 6 | (uint32_t)x;
		if (++n == 4) {
			size_t k = 3 - (i == len - 1 ? pad : 0);

			if (o + k > dstsize)
				return -1;
			d[o++] = (unsigned char)(v >> 16);
			if (k > 1)
				d[o++] = (unsigned char)(v >> 8);
			if (k > 2)
				d[o++] = (unsigned char)v;
			v = 0;
			n = 0;
		}
	}
	*outlen = o;
	return 0;
}
