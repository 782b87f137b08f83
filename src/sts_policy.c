/*
 * sts_policy: MTA-STS (RFC 8461) texts.  The TXT record grammar is
 * §3.1's, the policy grammar §3.2's; both are case-sensitive (%s in the
 * ABNF).  The HTTP pieces follow RFC 9112 closely enough for one GET of
 * a small text file: no obs-fold, no transfer codings but chunked.
 * See sts_policy.h.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sts_policy.h"
#include "util.h"

#define STS_EXT_NAME_MAX	32	/* §3.1, §3.2: 1 + *31 */
#define STS_LINE_MAX		8192	/* chunk extension or trailer line */

enum chunked_state {
	CH_SIZE,		/* first hex digit of a chunk size */
	CH_SIZE_MORE,		/* more digits, an extension or the line end */
	CH_EXT,			/* chunk extension, to the LF */
	CH_SIZE_LF,		/* the LF after the size line's CR */
	CH_DATA,
	CH_DATA_CR,		/* the CRLF after a chunk's data */
	CH_DATA_LF,
	CH_TRAILER,		/* start of a trailer line, or the end */
	CH_TRAILER_LINE,
	CH_END_LF,		/* the last LF */
	CH_DONE,
};

static bool	 is_alnum(int);
static bool	 is_wsp(int);
static int	 txt_field(const char *, size_t, char *, bool *);
static int	 valid_domain(const char *, size_t);
static int	 policy_line(const char *, size_t, struct sts_policy *,
		    unsigned *, char *, size_t);
static int	 policy_mx(struct sts_policy *, const char *, size_t);
static bool	 ext_name_ok(const char *, size_t);
static int	 hexval(int);

static bool
is_alnum(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static bool
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

/* (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static bool
ext_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > STS_EXT_NAME_MAX || !is_alnum((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '_' &&
		    s[i] != '-' && s[i] != '.')
			return false;
	return true;
}

/* One field of a TXT record: id= (copied to id, *seen set) or an extension. */
static int
txt_field(const char *f, size_t n, char *id, bool *seen)
{
	const char *eq = memchr(f, '=', n);
	size_t nlen, vlen;

	if (eq == NULL)
		return -1;
	nlen = (size_t)(eq - f);
	vlen = n - nlen - 1;
	if (nlen == 2 && memcmp(f, "id", 2) == 0) {
		if (*seen || vlen == 0 || vlen > STS_ID_MAX)
			return -1;
		for (size_t i = 0; i < vlen; i++)
			if (!is_alnum((unsigned char)eq[1 + i]))
				return -1;
		memcpy(id, eq + 1, vlen);
		id[vlen] = '\0';
		*seen = true;
		return 0;
	}
	if (!ext_name_ok(f, nlen) || vlen == 0)
		return -1;
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)eq[1 + i];

		/* %x21-3A / %x3C / %x3E-7E */
		if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
			return -1;
	}
	return 0;
}

int
sts_txt_parse(const char *rec, char id[STS_ID_MAX + 1])
{
	static const char version[] = "v=STSv1";
	char tmp[STS_ID_MAX + 1];
	const char *p = rec;
	bool seen = false;

	if (strncmp(p, version, sizeof(version) - 1) != 0)
		return -1;
	p += sizeof(version) - 1;
	for (;;) {
		const char *f;

		/* sts-field-delim = *WSP ";" *WSP */
		while (is_wsp((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		if (*p != ';')
			return -1;
		p++;
		while (is_wsp((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;		/* a trailing delimiter */
		f = p;
		while (*p != '\0' && *p != ';' && !is_wsp((unsigned char)*p))
			p++;
		if (txt_field(f, (size_t)(p - f), tmp, &seen) == -1)
			return -1;
	}
	if (!seen)
		return -1;
	memcpy(id, tmp, sizeof(tmp));
	return 0;
}

/* RFC 5321 Domain: LDH labels of 1 to 63, 253 at most in all. */
static int
valid_domain(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 253)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return -1;
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return -1;
		if (c == '-' && label == 0)
			return -1;
		if (++label > 63)
			return -1;
	}
	if (label == 0 || s[n - 1] == '-')
		return -1;
	return 0;
}

/* An mx value: ["*."] Domain, kept lower case without a trailing dot. */
static int
policy_mx(struct sts_policy *p, const char *v, size_t n)
{
	size_t off = 0;
	char *pat;

	if (n > 0 && v[n - 1] == '.')
		n--;
	if (n >= 2 && v[0] == '*' && v[1] == '.')
		off = 2;
	if (valid_domain(v + off, n - off) == -1)
		return -1;
	pat = xstrndup(v, n);
	for (char *c = pat; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	p->mx = xreallocarray(p->mx, p->nmx + 1, sizeof(*p->mx));
	p->mx[p->nmx++] = pat;
	return 0;
}

#define SEEN_VERSION	0x01
#define SEEN_MODE	0x02
#define SEEN_MAX_AGE	0x04

/* One line, without its end and trailing white space. */
static int
policy_line(const char *l, size_t n, struct sts_policy *p, unsigned *seen,
    char *err, size_t errlen)
{
	const char *colon = memchr(l, ':', n), *v;
	size_t klen, vlen;

	if (colon == NULL) {
		util_seterr(err, errlen, "a line without a colon");
		return -1;
	}
	klen = (size_t)(colon - l);
	v = colon + 1;
	while (v < l + n && is_wsp((unsigned char)*v))
		v++;
	vlen = (size_t)(l + n - v);
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 && c != '\t') {
			util_seterr(err, errlen, "a control character");
			return -1;
		}
	}
#define KEY(k)	(klen == sizeof(k) - 1 && memcmp(l, k, klen) == 0)
#define VAL(x)	(vlen == sizeof(x) - 1 && memcmp(v, x, vlen) == 0)
	if (KEY("version")) {
		if ((*seen & SEEN_VERSION) || !VAL("STSv1")) {
			util_seterr(err, errlen, "bad or second version");
			return -1;
		}
		*seen |= SEEN_VERSION;
	} else if (KEY("mode")) {
		if (*seen & SEEN_MODE) {
			util_seterr(err, errlen, "a second mode");
			return -1;
		}
		if (VAL("enforce"))
			p->mode = STS_MODE_ENFORCE;
		else if (VAL("testing"))
			p->mode = STS_MODE_TESTING;
		else if (VAL("none"))
			p->mode = STS_MODE_NONE;
		else {
			util_seterr(err, errlen, "unknown mode");
			return -1;
		}
		*seen |= SEEN_MODE;
	} else if (KEY("max_age")) {
		uint64_t age = 0;

		if ((*seen & SEEN_MAX_AGE) || vlen == 0 || vlen > 10) {
			util_seterr(err, errlen, "bad or second max_age");
			return -1;
		}
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9') {
				util_seterr(err, errlen, "bad max_age");
				return -1;
			}
			age = age * 10 + (uint64_t)(v[i] - '0');
		}
		p->max_age = age > STS_MAX_AGE_MAX ? STS_MAX_AGE_MAX :
		    (uint32_t)age;
		*seen |= SEEN_MAX_AGE;
	} else if (KEY("mx")) {
		if (policy_mx(p, v, vlen) == -1) {
			util_seterr(err, errlen, "bad mx pattern");
			return -1;
		}
	} else if (!ext_name_ok(l, klen) || vlen == 0) {
		util_seterr(err, errlen, "a malformed line");
		return -1;
	}
#undef KEY
#undef VAL
	return 0;
}

int
sts_policy_parse(const char *body, size_t len, struct sts_policy *out,
    char *err, size_t errlen)
{
	struct sts_policy p;
	const char *l = body, *end = body + len;
	unsigned seen = 0;

	memset(&p, 0, sizeof(p));
	if (len > STS_BODY_MAX) {
		util_seterr(err, errlen, "over 64 KiB");
		return -1;
	}
	if (memchr(body, '\0', len) != NULL) {
		util_seterr(err, errlen, "a NUL byte");
		return -1;
	}
	while (l < end) {
		const char *nl = memchr(l, '\n', (size_t)(end - l));
		const char *e = nl != NULL ? nl : end;

		if (e > l && e[-1] == '\r')
			e--;
		while (e > l && is_wsp((unsigned char)e[-1]))
			e--;
		/* Empty lines are taken as line ends; the grammar has none. */
		if (e > l && policy_line(l, (size_t)(e - l), &p, &seen, err,
		    errlen) == -1)
			goto fail;
		if (nl == NULL)
			break;
		l = nl + 1;
	}
	if ((seen & (SEEN_VERSION | SEEN_MODE | SEEN_MAX_AGE)) !=
	    (SEEN_VERSION | SEEN_MODE | SEEN_MAX_AGE)) {
		util_seterr(err, errlen, "%s missing",
		    !(seen & SEEN_VERSION) ? "version" :
		    !(seen & SEEN_MODE) ? "mode" : "max_age");
		goto fail;
	}
	if (p.mode != STS_MODE_NONE && p.nmx == 0) {
		util_seterr(err, errlen, "no mx in mode %s",
		    sts_mode_to_text(p.mode));
		goto fail;
	}
	p.fetched = out->fetched;
	memcpy(p.id, out->id, sizeof(p.id));
	*out = p;
	return 0;
fail:
	sts_policy_clear(&p);
	return -1;
}

void
sts_policy_clear(struct sts_policy *p)
{
	for (size_t i = 0; i < p->nmx; i++)
		free(p->mx[i]);
	free(p->mx);
	p->mx = NULL;
	p->nmx = 0;
}

void
sts_policy_copy(struct sts_policy *dst, const struct sts_policy *src)
{
	*dst = *src;
	dst->mx = NULL;
	if (src->nmx > 0) {
		dst->mx = xreallocarray(NULL, src->nmx, sizeof(*dst->mx));
		for (size_t i = 0; i < src->nmx; i++)
			dst->mx[i] = xstrdup(src->mx[i]);
	}
}

/*
 * §4.1: an exact match, or "*.rest" matching LABEL.rest for exactly one
 * leftmost label.
 */
bool
sts_mx_match(const struct sts_policy *p, const char *host)
{
	size_t hlen = strlen(host);
	const char *dot;

	if (hlen > 0 && host[hlen - 1] == '.')
		hlen--;
	if (hlen == 0)
		return false;
	dot = memchr(host, '.', hlen);
	for (size_t i = 0; i < p->nmx; i++) {
		const char *pat = p->mx[i];
		size_t plen = strlen(pat);

		if (plen >= 2 && pat[0] == '*' && pat[1] == '.') {
			if (dot != NULL && dot != host &&
			    (size_t)(host + hlen - (dot + 1)) == plen - 2 &&
			    strncasecmp(dot + 1, pat + 2, plen - 2) == 0)
				return true;
		} else if (plen == hlen && strncasecmp(host, pat, hlen) == 0)
			return true;
	}
	return false;
}

const char *
sts_mode_to_text(enum sts_mode m)
{
	switch (m) {
	case STS_MODE_ENFORCE:
		return "enforce";
	case STS_MODE_TESTING:
		return "testing";
	case STS_MODE_NONE:
		break;
	}
	return "none";
}

void
sts_http_init(struct sts_http *h)
{
	memset(h, 0, sizeof(*h));
	h->length = -1;
}

int
sts_http_status(struct sts_http *h, const char *line, size_t len)
{
	int code = 0;

	/* HTTP-version SP status-code SP [ reason-phrase ] */
	if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 ||
	    (line[7] != '0' && line[7] != '1') || line[8] != ' ')
		return -1;
	for (size_t i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -1;
		code = code * 10 + (line[i] - '0');
	}
	if (code < 100 || (len > 12 && line[12] != ' '))
		return -1;
	h->status = code;
	return 0;
}

int
sts_http_header(struct sts_http *h, const char *line, size_t len,
    char *err, size_t errlen)
{
	const char *colon, *v, *e;
	size_t nlen, vlen;

	if (++h->nheaders > STS_HTTP_HEADERS_MAX) {
		util_seterr(err, errlen, "too many header lines");
		return -1;
	}
	colon = memchr(line, ':', len);
	if (colon == NULL || colon == line) {
		util_seterr(err, errlen, "a malformed header line");
		return -1;
	}
	nlen = (size_t)(colon - line);
	for (size_t i = 0; i < nlen; i++) {
		unsigned char c = (unsigned char)line[i];

		/* token; white space before the colon is refused (§5.1) */
		if (c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}",
		    c) != NULL) {
			util_seterr(err, errlen, "a malformed header name");
			return -1;
		}
	}
	v = colon + 1;
	e = line + len;
	while (v < e && is_wsp((unsigned char)*v))
		v++;
	while (e > v && is_wsp((unsigned char)e[-1]))
		e--;
	vlen = (size_t)(e - v);
	if (memchr(v, '\0', vlen) != NULL) {
		util_seterr(err, errlen, "a NUL byte in a header");
		return -1;
	}
	if (nlen == 12 && strncasecmp(line, "Content-Type", 12) == 0) {
		size_t t = 0;
		bool ok;

		while (t < vlen && v[t] != ';' && !is_wsp((unsigned char)v[t]))
			t++;
		ok = t == 10 && strncasecmp(v, "text/plain", 10) == 0;
		h->type_ok = h->have_type ? h->type_ok && ok : ok;
		h->have_type = true;
	} else if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
		int64_t n = 0;

		if (vlen == 0 || vlen > 18) {
			util_seterr(err, errlen, "a bad Content-Length");
			return -1;
		}
		for (size_t i = 0; i < vlen; i++) {
			if (v[i] < '0' || v[i] > '9') {
				util_seterr(err, errlen, "a bad Content-Length");
				return -1;
			}
			n = n * 10 + (v[i] - '0');
		}
		if (h->length != -1 && h->length != n) {
			util_seterr(err, errlen, "two Content-Length values");
			return -1;
		}
		h->length = n;
	} else if (nlen == 17 &&
	    strncasecmp(line, "Transfer-Encoding", 17) == 0) {
		if (vlen != 7 || strncasecmp(v, "chunked", 7) != 0 ||
		    h->chunked) {
			util_seterr(err, errlen, "an unsupported "
			    "Transfer-Encoding");
			return -1;
		}
		h->chunked = true;
	}
	return 0;
}

void
sts_chunked_init(struct sts_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * chunked-body = *chunk last-chunk trailer-section CRLF (RFC 9112 §7.1).
 * A bare LF is taken for CRLF, as RFC 9112 §2.2 allows a recipient to.
 */
enum sts_chunked_result
sts_chunked_decode(struct sts_chunked *c, const char *in, size_t inlen,
    size_t *used, char *out, size_t *outlen, size_t outmax)
{
	size_t i = 0;

	while (i < inlen && c->state != CH_DONE) {
		int ch = (unsigned char)in[i];

		switch (c->state) {
		case CH_SIZE:
		case CH_SIZE_MORE:
			if (hexval(ch) >= 0) {
				if (++c->ndigits > 15)
					goto error;
				c->left = c->left * 16 + (uint64_t)hexval(ch);
				c->state = CH_SIZE_MORE;
				i++;
				break;
			}
			if (c->state == CH_SIZE)
				goto error;
			if (c->left > outmax - *outlen) {
				*used = i;
				return STS_CHUNKED_FULL;
			}
			if (ch == ';' || is_wsp(ch))
				c->state = CH_EXT;
			else if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (ch == '\n')
				c->state = c->left > 0 ? CH_DATA : CH_TRAILER;
			else
				goto error;
			c->linelen = 0;
			i++;
			break;
		case CH_EXT:
		case CH_TRAILER_LINE:
			if (ch == '\n')
				c->state = c->state == CH_TRAILER_LINE ?
				    CH_TRAILER : c->left > 0 ? CH_DATA :
				    CH_TRAILER;
			else if (++c->linelen > STS_LINE_MAX || ch == '\0')
				goto error;
			i++;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				goto error;
			c->state = c->left > 0 ? CH_DATA : CH_TRAILER;
			i++;
			break;
		case CH_DATA: {
			size_t n = inlen - i;

			if (n > c->left)
				n = (size_t)c->left;
			memcpy(out + *outlen, in + i, n);
			*outlen += n;
			c->left -= n;
			i += n;
			if (c->left == 0)
				c->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (ch == '\r')
				c->state = CH_DATA_LF;
			else if (ch == '\n') {
				c->state = CH_SIZE;
				c->ndigits = 0;
			} else
				goto error;
			i++;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				goto error;
			c->state = CH_SIZE;
			c->ndigits = 0;
			i++;
			break;
		case CH_TRAILER:
			if (ch == '\r')
				c->state = CH_END_LF;
			else if (ch == '\n')
				c->state = CH_DONE;
			else {
				c->state = CH_TRAILER_LINE;
				c->linelen = 1;
			}
			i++;
			break;
		case CH_END_LF:
			if (ch != '\n')
				goto error;
			c->state = CH_DONE;
			i++;
			break;
		default:
			goto error;
		}
	}
	*used = i;
	return c->state == CH_DONE ? STS_CHUNKED_DONE : STS_CHUNKED_MORE;
error:
	*used = i;
	return STS_CHUNKED_ERROR;
}
