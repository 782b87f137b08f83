/*
 * dkim: DKIM signing, relaxed/relaxed, rsa-sha256 and ed25519-sha256 (see
 * dkim.h).
 *
 * The header section is held as it came (up to DKIM_HEADER_MAX) until the
 * empty line that ends it; a bare LF is taken as a line end too, though
 * the spool has none.  The body goes through relaxed canonicalization
 * (RFC 6376 §3.4.4) into SHA-256 as it comes, with this state between
 * pieces:
 *	wsp	white space seen in the current line, not yet written (it
 *		becomes one SP if something else follows on the line, and
 *		nothing if the line ends)
 *	empty	empty lines seen, not yet written (they are written when
 *		a non-empty line follows, and dropped at the end)
 *	open	the current line has content written (its CRLF is written
 *		at once when it comes, or at the end when it does not)
 *	cr	a CR that may be the start of a CRLF
 * An empty body hashes as the empty string (relaxed: no CRLF is added to an
 * empty body).  A last line without its CRLF gets one; the empty lines
 * before it stay (OpenDKIM 2.11 drops them, dkimpy keeps them: the spool's
 * bodies always end in CRLF, so this only matters to the tests).
 *
 * At the end, the header fields are canonicalized (RFC 6376 §3.4.2), the
 * signed ones chosen from the bottom up (§5.4.2), and the DKIM-Signature
 * field with an empty b= is canonicalized without its CRLF and added (§3.7).
 * rsa-sha256 signs that data with SHA-256; ed25519-sha256 signs its SHA-256
 * hash with PureEdDSA (RFC 8463 §3).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim.h"
#include "msg_addr.h"
#include "util.h"

/* Largest key file read. */
#define KEY_FILE_MAX	(64 * 1024)
/* RFC 5322 §2.1.1: lines of at most 78 characters, without the CRLF. */
#define FOLD_WIDTH	78
#define SHA256_LEN	32

struct dkim_key {
	char		*domain;
	char		*selector;
	EVP_PKEY	*pkey;
	bool		 ed25519;
};

struct dkim_sign {
	struct dkim_key	**keys;
	size_t		  nkeys;
	time_t		  now;
	long		  expire;

	/* The header section, as it came. */
	char		*hdr;
	size_t		 hdrlen, hdrcap;
	size_t		 line_start;	/* offset of the current line in hdr */
	bool		 in_body;
	bool		 too_big;

	/* Relaxed body canonicalization (see the top of the file). */
	EVP_MD_CTX	*bh_ctx;
	bool		 wsp, open, cr;
	size_t		 empty;
	char		 out[4096];
	size_t		 outlen;
	char		*bh;		/* base64 at the end */
	bool		 ended;
};

/* One header field of the message: name and whole text (lines, CRLF). */
struct field {
	const char	*name;
	size_t		 namelen;
	const char	*text;
	size_t		 len;
	bool		 used;
};

/* A growing buffer, and the folding of a header field in it. */
struct buf {
	char		*p;
	size_t		 len, cap;
	size_t		 col;		/* octets on the current line */
};

/* The fields signed when present, in the order of h= (dkim.h). */
static const char *const signed_names[] = {
	"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"MIME-Version", "Content-Type", "List-Unsubscribe",
	"List-Unsubscribe-Post",
};
#define NSIGNED	(sizeof(signed_names) / sizeof(signed_names[0]))

static void	 buf_add(struct buf *, const char *, size_t);
static void	 buf_adds(struct buf *, const char *);
static void	 fold_word(struct buf *, const char *);
static void	 fold_b64(struct buf *, const char *, bool);
static char	*b64(const unsigned char *, size_t);
static void	 ssl_err(char *, size_t, const char *, const char *);
static int	 no_pass(char *, int, int, void *);
static void	 body_flush(struct dkim_sign *);
static void	 body_put(struct dkim_sign *, const char *, size_t);
static void	 body_content(struct dkim_sign *, char);
static void	 body_feed(struct dkim_sign *, const char *, size_t);
static size_t	 hdr_feed(struct dkim_sign *, const char *, size_t);
static size_t	 fields_split(const char *, size_t, struct field *, size_t);
static bool	 name_is(const struct field *, const char *);
static void	 canon_field(struct buf *, const char *, size_t, bool);
static int	 from_domain(const struct field *, size_t, char *, size_t,
		    const char **);
static bool	 tag_value(const char *, size_t, const char *, char *, size_t);
static bool	 name_spaced(const struct field *, const char *);
static bool	 already_signed(const struct field *, size_t,
		    const struct dkim_key *);
static bool	 domain_matches(const char *, const char *);
static void	 hashed_fields(struct field *, size_t, const char *,
		    struct buf *);
static char	*sign_data(const struct dkim_key *, const char *, size_t,
		    char *, size_t);
static int	 sign_one(struct dkim_sign *, const struct dkim_key *,
		    struct field *, size_t, struct buf *, char *, size_t);

/* Keys. */

static void
ssl_err(char *err, size_t errlen, const char *path, const char *what)
{
	unsigned long e = ERR_peek_last_error();
	char text[256];

	if (e != 0) {
		ERR_error_string_n(e, text, sizeof(text));
		util_seterr(err, errlen, "%s: %s (%s)", path, what, text);
	} else
		util_seterr(err, errlen, "%s: %s", path, what);
	ERR_clear_error();
}

/* No passphrase: an encrypted key is refused, never asked for. */
static int
no_pass(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

struct dkim_key *
dkim_key_read_fd(int fd, const char *path, const char *domain,
    const char *selector, bool *weak, char *err, size_t errlen)
{
	struct dkim_key *key = NULL;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *text;
	size_t len = 0;
	ssize_t n;
	int bits;

	if (weak != NULL)
		*weak = false;
	text = xmalloc(KEY_FILE_MAX + 1);
	for (;;) {
		n = read(fd, text + len, KEY_FILE_MAX + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			util_seterr(err, errlen, "%s: %s", path,
			    strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > KEY_FILE_MAX) {
			util_seterr(err, errlen, "%s: larger than %d octets: "
			    "not a key", path, KEY_FILE_MAX);
			goto done;
		}
	}
	ERR_clear_error();
	if ((bio = BIO_new_mem_buf(text, (int)len)) == NULL) {
		ssl_err(err, errlen, path, "out of memory");
		goto done;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, no_pass, NULL);
	if (pkey == NULL) {
		ssl_err(err, errlen, path, "not a PEM private key "
		    "(PKCS#8 or RSA, without a passphrase)");
		goto done;
	}
	if (EVP_PKEY_get_id(pkey) == EVP_PKEY_ED25519) {
		key = xcalloc(1, sizeof(*key));
		key->ed25519 = true;
	} else if (EVP_PKEY_get_id(pkey) == EVP_PKEY_RSA) {
		bits = EVP_PKEY_get_bits(pkey);
		if (bits < DKIM_RSA_MIN) {
			util_seterr(err, errlen, "%s: an RSA key of %d bits "
			    "(at least %d)", path, bits, DKIM_RSA_MIN);
			goto done;
		}
		if (weak != NULL)
			*weak = bits < DKIM_RSA_GOOD;
		key = xcalloc(1, sizeof(*key));
	} else {
		util_seterr(err, errlen, "%s: a %s key: DKIM signs with RSA "
		    "or Ed25519", path, EVP_PKEY_get0_type_name(pkey) != NULL ?
		    EVP_PKEY_get0_type_name(pkey) : "other");
		goto done;
	}
	key->pkey = pkey;
	pkey = NULL;
	key->domain = xstrdup(domain);
	key->selector = xstrdup(selector);
done:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	explicit_bzero(text, KEY_FILE_MAX + 1);
	free(text);
	return key;
}

void
dkim_key_free(struct dkim_key *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key->domain);
	free(key->selector);
	free(key);
}

const char *
dkim_key_domain(const struct dkim_key *key)
{
	return key->domain;
}

const char *
dkim_key_selector(const struct dkim_key *key)
{
	return key->selector;
}

bool
dkim_key_is_ed25519(const struct dkim_key *key)
{
	return key->ed25519;
}

char *
dkim_key_txt(const struct dkim_key *key)
{
	unsigned char raw[64], *der = NULL;
	size_t rawlen = sizeof(raw);
	char *p, *txt;
	int n;

	if (key->ed25519) {
		if (EVP_PKEY_get_raw_public_key(key->pkey, raw, &rawlen) != 1)
			return NULL;
		p = b64(raw, rawlen);
		txt = xasprintf("v=DKIM1; k=ed25519; p=%s", p);
	} else {
		if ((n = i2d_PUBKEY(key->pkey, &der)) <= 0)
			return NULL;
		p = b64(der, (size_t)n);
		OPENSSL_free(der);
		txt = xasprintf("v=DKIM1; k=rsa; p=%s", p);
	}
	free(p);
	return txt;
}

/* Buffers and folding. */

static void
buf_add(struct buf *b, const char *p, size_t n)
{
	size_t i;

	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	for (i = 0; i < n; i++)
		b->col = p[i] == '\n' ? 0 : b->col + 1;
}

static void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/*
 * A word of a folded field: after a space on the same line when it fits
 * in FOLD_WIDTH, else on a new line that starts with a space.
 */
static void
fold_word(struct buf *b, const char *w)
{
	size_t n = strlen(w);

	if (b->col > 1 && b->col + 1 + n > FOLD_WIDTH)
		buf_adds(b, "\r\n ");
	else if (b->col > 0)
		buf_adds(b, " ");
	buf_add(b, w, n);
}

/*
 * A base64 value after its "tag=", broken where the line is full (FWS may
 * come between any two of its characters, RFC 6376 §2.10), with a ';'
 * after it when semi.
 */
static void
fold_b64(struct buf *b, const char *v, bool semi)
{
	size_t n = strlen(v), i;
	size_t tail;

	for (i = 0; i < n; i++) {
		tail = i + 1 == n && semi ? 1 : 0;
		if (b->col + 1 + tail > FOLD_WIDTH)
			buf_adds(b, "\r\n ");
		buf_add(b, v + i, 1);
	}
	if (semi)
		buf_adds(b, ";");
}

static char *
b64(const unsigned char *p, size_t n)
{
	char *s;

	s = xmalloc(4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* The body. */

static void
body_flush(struct dkim_sign *s)
{
	if (s->outlen > 0)
		(void)EVP_DigestUpdate(s->bh_ctx, s->out, s->outlen);
	s->outlen = 0;
}

static void
body_put(struct dkim_sign *s, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = sizeof(s->out) - s->outlen;

		if (k > n)
			k = n;
		memcpy(s->out + s->outlen, p, k);
		s->outlen += k;
		p += k;
		n -= k;
		if (s->outlen == sizeof(s->out))
			body_flush(s);
	}
}

/* An octet that is neither white space nor a line end. */
static void
body_content(struct dkim_sign *s, char c)
{
	for (; s->empty > 0; s->empty--)
		body_put(s, "\r\n", 2);
	if (s->wsp)
		body_put(s, " ", 1);
	s->wsp = false;
	body_put(s, &c, 1);
	s->open = true;
}

static void
body_feed(struct dkim_sign *s, const char *p, size_t n)
{
	size_t i, run;
	char c;

	for (i = 0; i < n; i++) {
		c = p[i];
		if (s->cr && c != '\n') {
			/* A bare CR: content, as it is. */
			s->cr = false;
			body_content(s, '\r');
		}
		switch (c) {
		case ' ':
		case '\t':
			s->wsp = true;
			break;
		case '\r':
			s->cr = true;
			break;
		case '\n':
			/* Trailing white space goes (§3.4.4 b). */
			s->cr = false;
			s->wsp = false;
			if (s->open) {
				body_put(s, "\r\n", 2);
				s->open = false;
			} else
				s->empty++;
			break;
		default:
			/* A run of content octets goes out at once. */
			for (run = i + 1; run < n && p[run] != ' ' &&
			    p[run] != '\t' && p[run] != '\r' && p[run] != '\n';
			    run++)
				;
			body_content(s, c);
			body_put(s, p + i + 1, run - i - 1);
			i = run - 1;
			break;
		}
	}
}

/*
 * The header section: held until its empty line (or a bare LF one).
 * Returns how much of p it took; the rest is body.
 */
static size_t
hdr_feed(struct dkim_sign *s, const char *p, size_t n)
{
	size_t i, linelen;

	for (i = 0; i < n; i++) {
		if (s->too_big)
			return n;
		if (s->hdrlen == DKIM_HEADER_MAX) {
			s->too_big = true;
			free(s->hdr);
			s->hdr = NULL;
			s->hdrlen = s->hdrcap = 0;
			continue;
		}
		if (s->hdrlen == s->hdrcap) {
			s->hdrcap = s->hdrcap == 0 ? 4096 : s->hdrcap * 2;
			if (s->hdrcap > DKIM_HEADER_MAX)
				s->hdrcap = DKIM_HEADER_MAX;
			s->hdr = xreallocarray(s->hdr, s->hdrcap, 1);
		}
		s->hdr[s->hdrlen++] = p[i];
		if (p[i] != '\n')
			continue;
		linelen = s->hdrlen - s->line_start;
		if (linelen == 1 || (linelen == 2 &&
		    s->hdr[s->line_start] == '\r')) {
			s->hdrlen = s->line_start;
			s->in_body = true;
			return i + 1;
		}
		s->line_start = s->hdrlen;
	}
	return n;
}

/* The signer. */

struct dkim_sign *
dkim_sign_new(struct dkim_key *const *keys, size_t nkeys, time_t now,
    long expire)
{
	struct dkim_sign *s;

	s = xcalloc(1, sizeof(*s));
	if (nkeys > 0) {
		s->keys = xreallocarray(NULL, nkeys, sizeof(*s->keys));
		memcpy(s->keys, keys, nkeys * sizeof(*s->keys));
	}
	s->nkeys = nkeys;
	s->now = now;
	s->expire = expire;
	if ((s->bh_ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(s->bh_ctx, EVP_sha256(), NULL) != 1) {
		/* Only out of memory: as xmalloc, fatal. */
		fprintf(stderr, "dkim: out of memory\n");
		abort();
	}
	return s;
}

void
dkim_sign_feed(struct dkim_sign *s, const char *buf, size_t len)
{
	size_t k;

	if (s->ended)
		return;
	if (!s->in_body) {
		k = hdr_feed(s, buf, len);
		buf += k;
		len -= k;
	}
	if (s->in_body && len > 0)
		body_feed(s, buf, len);
}

/* Split the header section into fields; returns their number (at most max). */
static size_t
fields_split(const char *h, size_t len, struct field *f, size_t max)
{
	size_t n = 0, i = 0, start, colon;

	while (i < len) {
		start = i;
		/* A field: its first line, then lines that start with WSP. */
		do {
			while (i < len && h[i] != '\n')
				i++;
			if (i < len)
				i++;
		} while (i < len && (h[i] == ' ' || h[i] == '\t'));
		for (colon = start; colon < i && h[colon] != ':' &&
		    h[colon] != '\n'; colon++)
			;
		if (colon == i || h[colon] != ':' || n == max)
			continue;
		f[n].text = h + start;
		f[n].len = i - start;
		f[n].name = h + start;
		/*
		 * White space before the colon (obsolete syntax, RFC 5322
		 * §4.5.3) stays part of the name: such a field is never one
		 * that h= lists, since verifiers differ on its name.
		 */
		f[n].namelen = colon - start;
		f[n].used = false;
		n++;
	}
	return n;
}

static bool
name_is(const struct field *f, const char *name)
{
	return f->namelen == strlen(name) &&
	    strncasecmp(f->name, name, f->namelen) == 0;
}

/* f is name written with white space before its colon ("Subject :"). */
static bool
name_spaced(const struct field *f, const char *name)
{
	size_t len = f->namelen;

	while (len > 0 && (f->name[len - 1] == ' ' || f->name[len - 1] == '\t'))
		len--;
	return len != f->namelen && len == strlen(name) &&
	    strncasecmp(f->name, name, len) == 0;
}

/*
 * Relaxed header canonicalization (RFC 6376 §3.4.2) of one field: name in
 * lower case, no white space around the colon, unfolded, runs of white
 * space as one SP, none at the end; then CRLF when crlf.
 */
static void
canon_field(struct buf *out, const char *text, size_t len, bool crlf)
{
	size_t i = 0, j;
	bool sp = false, any = false;
	char c;

	for (; i < len && text[i] != ':'; i++) {
		c = text[i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		c = (char)tolower((unsigned char)c);
		buf_add(out, &c, 1);
	}
	buf_adds(out, ":");
	for (j = i + 1; j < len; j++) {
		c = text[j];
		if (c == '\r' || c == '\n') {
			/* CRLF (or a bare LF) of a fold: unfolded. */
			if (c == '\r' && j + 1 < len && text[j + 1] != '\n') {
				if (sp && any)
					buf_adds(out, " ");
				sp = false;
				buf_add(out, &c, 1);
				any = true;
			}
			continue;
		}
		if (c == ' ' || c == '\t') {
			sp = true;
			continue;
		}
		if (sp && any)
			buf_adds(out, " ");
		sp = false;
		buf_add(out, &c, 1);
		any = true;
	}
	if (crlf)
		buf_adds(out, "\r\n");
}

/*
 * The domain of the single From: address, in lower case.  0, or -1 with
 * why (no From:, several, unparsable, not one address, no domain).
 */
static int
from_domain(const struct field *f, size_t n, char *dom, size_t domlen,
    const char **why)
{
	struct strlist addrs = { 0 };
	const struct field *from = NULL;
	char err[256];
	const char *at;
	size_t i;
	int rc = -1;

	for (i = 0; i < n; i++) {
		if (!name_is(&f[i], "From"))
			continue;
		if (from != NULL) {
			*why = "several From: fields";
			return -1;
		}
		from = &f[i];
	}
	if (from == NULL) {
		*why = "no From: field";
		return -1;
	}
	/* The text after "From:"; msg_addrlist_parse unfolds it. */
	at = memchr(from->text, ':', from->len);
	if (msg_addrlist_parse(at + 1, from->len - (size_t)(at + 1 -
	    from->text), &addrs, err, sizeof(err)) != 1) {
		*why = "not one address in From:";
		goto done;
	}
	if ((at = strrchr(addrs.v[0], '@')) == NULL || at[1] == '\0' ||
	    strlen(at + 1) >= domlen) {
		*why = "no domain in From:";
		goto done;
	}
	for (i = 0; at[1 + i] != '\0'; i++)
		dom[i] = (char)tolower((unsigned char)at[1 + i]);
	dom[i] = '\0';
	rc = 0;
done:
	strlist_free(&addrs);
	return rc;
}

/*
 * The value of tag `tag` in a tag-list (RFC 6376 §3.2), white space
 * taken out (it may be folded).  False when absent or too long.
 */
static bool
tag_value(const char *v, size_t len, const char *tag, char *out,
    size_t outlen)
{
	size_t i = 0, j, k, tlen = strlen(tag);

	while (i < len) {
		/* One tag-spec: up to ';'. */
		for (j = i; j < len && v[j] != ';'; j++)
			;
		for (k = i; k < j && strchr(" \t\r\n", v[k]) != NULL; k++)
			;
		if (j - k > tlen && strncmp(v + k, tag, tlen) == 0) {
			size_t m = k + tlen, o = 0;

			while (m < j && strchr(" \t\r\n", v[m]) != NULL)
				m++;
			if (m < j && v[m] == '=') {
				for (m++; m < j; m++) {
					if (strchr(" \t\r\n", v[m]) != NULL)
						continue;
					if (o + 1 >= outlen)
						return false;
					out[o++] = v[m];
				}
				out[o] = '\0';
				return true;
			}
		}
		i = j + 1;
	}
	return false;
}

/*
 * A DKIM-Signature field with this key's d= and s= already (any case:
 * both are DNS names).
 */
static bool
already_signed(const struct field *f, size_t n, const struct dkim_key *key)
{
	char d[MSG_DOMAIN_MAX + 1], sel[256];
	const char *v;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!name_is(&f[i], "DKIM-Signature"))
			continue;
		v = (const char *)memchr(f[i].text, ':', f[i].len) + 1;
		if (tag_value(v, f[i].len - (size_t)(v - f[i].text), "d", d,
		    sizeof(d)) && tag_value(v, f[i].len - (size_t)(v -
		    f[i].text), "s", sel, sizeof(sel)) &&
		    strcasecmp(d, key->domain) == 0 &&
		    strcasecmp(sel, key->selector) == 0)
			return true;
	}
	return false;
}

/* dom is kd, or a subdomain of it (both in any case). */
static bool
domain_matches(const char *dom, const char *kd)
{
	size_t dl = strlen(dom), kl = strlen(kd);

	if (dl == kl)
		return strcasecmp(dom, kd) == 0;
	return dl > kl && dom[dl - kl - 1] == '.' &&
	    strcasecmp(dom + dl - kl, kd) == 0;
}

/*
 * The fields that h (names separated by ':', no white space) signs, in
 * relaxed form, appended to data: for each name the last field of that
 * name not yet taken, none when there is no such field left (§5.4.2).
 */
static void
hashed_fields(struct field *f, size_t n, const char *h, struct buf *data)
{
	/*
	 * Where the search for each name stopped: the next one of the same
	 * name goes on above it, so that a header of thousands of fields of
	 * one name costs one pass, not one per field.  Names beyond the
	 * table's size search from the bottom (correct, only slower).
	 */
	struct { const char *name; size_t len, next; } seen[32];
	size_t i, j, k, len, nseen = 0;

	for (i = 0; i < n; i++)
		f[i].used = false;
	for (; *h != '\0'; h += len + (h[len] == ':')) {
		len = strcspn(h, ":");
		for (j = 0; j < nseen; j++)
			if (seen[j].len == len &&
			    strncasecmp(seen[j].name, h, len) == 0)
				break;
		if (j == nseen && nseen < sizeof(seen) / sizeof(seen[0])) {
			seen[nseen].name = h;
			seen[nseen].len = len;
			seen[nseen].next = n;
			nseen++;
		}
		for (k = j < nseen ? seen[j].next : n; k-- > 0;)
			if (!f[k].used && f[k].namelen == len &&
			    strncasecmp(f[k].name, h, len) == 0)
				break;
		if (j < nseen)
			seen[j].next = k == (size_t)-1 ? 0 : k;
		if (k == (size_t)-1)
			continue;
		f[k].used = true;
		canon_field(data, f[k].text, f[k].len, true);
	}
}

/*
 * The signature of data, in base64: rsa-sha256 signs data with SHA-256,
 * ed25519-sha256 its SHA-256 hash (RFC 8463 §3).  NULL with err.
 */
static char *
sign_data(const struct dkim_key *key, const char *data, size_t len,
    char *err, size_t errlen)
{
	unsigned char hash[SHA256_LEN], *raw = NULL;
	const unsigned char *tbs = (const unsigned char *)data;
	size_t tbslen = len, rawlen = 0;
	EVP_MD_CTX *ctx;
	unsigned int hlen;
	char *b = NULL;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto ssl;
	if (key->ed25519) {
		if (EVP_Digest(data, len, hash, &hlen, EVP_sha256(), NULL) != 1)
			goto ssl;
		tbs = hash;
		tbslen = hlen;
		if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) != 1)
			goto ssl;
	} else if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL,
	    key->pkey) != 1)
		goto ssl;
	if (EVP_DigestSign(ctx, NULL, &rawlen, tbs, tbslen) != 1)
		goto ssl;
	raw = xmalloc(rawlen);
	if (EVP_DigestSign(ctx, raw, &rawlen, tbs, tbslen) != 1)
		goto ssl;
	b = b64(raw, rawlen);
	goto done;
ssl:
	ssl_err(err, errlen, key->domain, "DKIM signing failed");
done:
	EVP_MD_CTX_free(ctx);
	free(raw);
	return b;
}

/*
 * One signature with key over the fields f, appended to out.  0, or -1
 * with err.
 */
static int
sign_one(struct dkim_sign *s, const struct dkim_key *key, struct field *f,
    size_t n, struct buf *out, char *err, size_t errlen)
{
	struct buf sig = { 0 }, data = { 0 }, h = { 0 };
	size_t i, j;
	char *b, *w;
	int rc = -1;

	/*
	 * h=: each name as often as present, then each name once more
	 * (over-signing, §8.15): a field of any of these names added below
	 * the signature, a second Subject: or Reply-To: as much as a second
	 * From:, or one the message did not have, breaks it.
	 */
	for (i = 0; i < NSIGNED; i++)
		for (j = 0; j < n; j++) {
			if (!name_is(&f[j], signed_names[i]))
				continue;
			buf_adds(&h, h.len == 0 ? "" : ":");
			buf_adds(&h, signed_names[i]);
		}
	for (i = 0; i < NSIGNED; i++) {
		/*
		 * Not a name the message has with white space before its
		 * colon: verifiers differ on whether such a field is one of
		 * that name, so the extra entry would break the signature
		 * for some of them.
		 */
		for (j = 0; j < n; j++)
			if (name_spaced(&f[j], signed_names[i]))
				break;
		if (j < n)
			continue;
		buf_adds(&h, h.len == 0 ? "" : ":");
		buf_adds(&h, signed_names[i]);
	}
	for (i = 0; i < h.len; i++)
		h.p[i] = (char)tolower((unsigned char)h.p[i]);

	buf_adds(&sig, "DKIM-Signature:");
	fold_word(&sig, "v=1;");
	fold_word(&sig, key->ed25519 ? "a=ed25519-sha256;" : "a=rsa-sha256;");
	fold_word(&sig, "c=relaxed/relaxed;");
	w = xasprintf("d=%s;", key->domain);
	fold_word(&sig, w);
	free(w);
	w = xasprintf("s=%s;", key->selector);
	fold_word(&sig, w);
	free(w);
	w = xasprintf("t=%lld;", (long long)s->now);
	fold_word(&sig, w);
	free(w);
	if (s->expire > 0) {
		w = xasprintf("x=%lld;", (long long)s->now + s->expire);
		fold_word(&sig, w);
		free(w);
	}
	/* h=: FWS may come around its colons (§3.5); a word per name. */
	for (i = 0, j = 0; i <= h.len; i++) {
		if (i < h.len && h.p[i] != ':')
			continue;
		w = xasprintf("%s%.*s%s", j == 0 ? "h=" : "", (int)(i - j),
		    h.p + j, i == h.len ? ";" : ":");
		if (j == 0)
			fold_word(&sig, w);
		else if (sig.col + strlen(w) > FOLD_WIDTH) {
			buf_adds(&sig, "\r\n ");
			buf_adds(&sig, w);
		} else
			buf_adds(&sig, w);
		free(w);
		j = i + 1;
	}
	w = xasprintf("bh=%s;", s->bh);
	fold_word(&sig, w);
	free(w);
	fold_word(&sig, "b=");

	hashed_fields(f, n, h.p, &data);
	/* §3.7: the field as it will be, b= empty, without its CRLF. */
	canon_field(&data, sig.p, sig.len, false);
	if ((b = sign_data(key, data.p, data.len, err, errlen)) != NULL) {
		fold_b64(&sig, b, false);
		buf_adds(&sig, "\r\n");
		buf_add(out, sig.p, sig.len);
		free(b);
		rc = 0;
	}
	free(sig.p);
	free(h.p);
	free(data.p);
	return rc;
}

char *
dkim_sign_end(struct dkim_sign *s, const char **why, char *err, size_t errlen)
{
	unsigned char hash[SHA256_LEN];
	char dom[MSG_DOMAIN_MAX + 1];
	struct field *f = NULL;
	struct buf out = { 0 };
	const char *reason = NULL;
	size_t n, i, best = 0;
	unsigned int hlen;
	bool any_match = false, any_signed = false, ed;
	int pass;

	if (why != NULL)
		*why = NULL;
	if (s->ended) {
		util_seterr(err, errlen, "dkim_sign_end called twice");
		return NULL;
	}
	s->ended = true;
	/* The end of the body (§3.4.4): a bare CR, a last line's CRLF. */
	if (s->cr) {
		s->cr = false;
		body_content(s, '\r');
	}
	if (s->open)
		body_put(s, "\r\n", 2);
	body_flush(s);
	if (EVP_DigestFinal_ex(s->bh_ctx, hash, &hlen) != 1) {
		util_seterr(err, errlen, "DKIM body hash failed");
		return NULL;
	}
	s->bh = b64(hash, hlen);

	buf_adds(&out, "");
	if (s->too_big) {
		reason = "header section too large";
		goto done;
	}
	if (s->nkeys == 0) {
		reason = "no DKIM key";
		goto done;
	}
	/*
	 * A NUL in the header section (the sendmail interface keeps one):
	 * verifiers disagree on it (OpenDKIM fails what dkimpy passes).
	 */
	if (s->hdrlen > 0 && memchr(s->hdr, '\0', s->hdrlen) != NULL) {
		reason = "NUL in the header section";
		goto done;
	}
	/* At most one field per line. */
	for (i = 0, n = 1; i < s->hdrlen; i++)
		n += s->hdr[i] == '\n';
	f = xreallocarray(NULL, n, sizeof(*f));
	n = fields_split(s->hdr == NULL ? "" : s->hdr, s->hdrlen, f, n);
	if (from_domain(f, n, dom, sizeof(dom), &reason) == -1)
		goto done;
	for (i = 0; i < s->nkeys; i++)
		if (domain_matches(dom, s->keys[i]->domain) &&
		    strlen(s->keys[i]->domain) > best)
			best = strlen(s->keys[i]->domain);
	/* The longest matching domain; RSA first, then Ed25519. */
	for (pass = 0; pass < 2; pass++) {
		ed = pass == 1;
		for (i = 0; i < s->nkeys; i++) {
			const struct dkim_key *k = s->keys[i];

			if (k->ed25519 != ed || strlen(k->domain) != best ||
			    !domain_matches(dom, k->domain))
				continue;
			any_match = true;
			if (already_signed(f, n, k))
				continue;
			if (sign_one(s, k, f, n, &out, err, errlen) == -1) {
				free(out.p);
				out.p = NULL;
				goto done;
			}
			any_signed = true;
		}
	}
	if (!any_match)
		reason = "no DKIM key for the From: domain";
	else if (!any_signed)
		reason = "already signed with the same d= and s=";
done:
	free(f);
	if (why != NULL && out.p != NULL && out.len == 0)
		*why = reason;
	return out.p;
}

void
dkim_sign_free(struct dkim_sign *s)
{
	if (s == NULL)
		return;
	EVP_MD_CTX_free(s->bh_ctx);
	free(s->keys);
	free(s->hdr);
	free(s->bh);
	free(s);
}

const char *
dkim_sign_bh(const struct dkim_sign *s)
{
	return s->bh;
}

char *
dkim_canon_header(const char *field, size_t len)
{
	struct buf b = { 0 };

	canon_field(&b, field, len, true);
	return b.p;
}

char *
dkim_sign_test_b(struct dkim_sign *s, const struct dkim_key *key,
    const char *prefix, char *err, size_t errlen)
{
	struct buf data = { 0 };
	struct field *f;
	char h[4096];
	const char *v;
	size_t i, n;
	char *b;

	v = strchr(prefix, ':');
	if (!s->ended || s->too_big || v == NULL ||
	    !tag_value(v + 1, strlen(v + 1), "h", h, sizeof(h))) {
		util_seterr(err, errlen, "dkim_sign_test_b: no h=");
		return NULL;
	}
	for (i = 0, n = 1; i < s->hdrlen; i++)
		n += s->hdr[i] == '\n';
	f = xreallocarray(NULL, n, sizeof(*f));
	n = fields_split(s->hdr == NULL ? "" : s->hdr, s->hdrlen, f, n);
	hashed_fields(f, n, h, &data);
	canon_field(&data, prefix, strlen(prefix), false);
	b = sign_data(key, data.p, data.len, err, errlen);
	free(data.p);
	free(f);
	return b;
}
