/*
 * Unit tests for src/dkim.c (DKIM signing, relaxed/relaxed, rsa-sha256 and
 * ed25519-sha256).  Table-driven where it fits:
 *	- relaxed body canonicalization (RFC 6376 §3.4.4, §3.4.6), each body
 *	  fed whole, cut at every octet and octet by octet: the body hash
 *	  must be the SHA-256 of the canonical form written in the row;
 *	- relaxed header canonicalization (§3.4.2);
 *	- the RFC 8463 Appendix A message, with the RFC 8032 §7.1 test key
 *	  that RFC 8463 A.2 uses: bh= must be the RFC's; and with both keys
 *	  of A.2 and the tags of A.3, b= must be the RFC's, octet for octet;
 *	- signatures made with generated RSA-2048 and Ed25519 keys, checked by
 *	  a small verifier written here from RFC 6376 §6.1 (not the signer's
 *	  code): the h= fields taken bottom-up, canonicalized, the signature
 *	  field with b= emptied, EVP_DigestVerify;
 *	- which key signs (From: domain, subdomains, longest match, both
 *	  keys), and the messages that are not signed;
 *	- reading keys: the sizes and types refused.
 * With DKIM_TEST_OUT set to a folder, every signed message is written
 * there as NAME.eml with, in NAME.txt, the number of signatures added
 * (they come first) on a line, then its keys' TXT records (one line each,
 * "SELECTOR._domainkey.DOMAIN TXT"), for checking with another verifier.
 */
#include "config.h"

#include <ctype.h>
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

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "dkim.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))
#define NOW		((time_t)1700000000)

/* Keys, made once. */
/* What h= ends with: every name it signs once more (over-signing). */
#define OVER	":from:to:cc:subject:date:message-id:reply-to:mime-version" \
		":content-type:list-unsubscribe:list-unsubscribe-post"

static struct dkim_key *rsa_key, *ed_key;

/* Write pkey as PKCS#8 PEM to a pipe and read it back with dkim. */
static struct dkim_key *
key_load(EVP_PKEY *pkey, const char *domain, const char *selector,
    bool *weak, char *err, size_t errlen)
{
	struct dkim_key *key;
	int fd[2];
	BIO *bio;
	char *pem;
	long n;

	bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0,
	    NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &pem);
	assert_int_equal(pipe(fd), 0);
	assert_int_equal(write(fd[1], pem, (size_t)n), n);
	close(fd[1]);
	BIO_free(bio);
	key = dkim_key_read_fd(fd[0], "/etc/test.key", domain, selector,
	    weak, err, errlen);
	close(fd[0]);
	return key;
}

static struct dkim_key *
key_text(const char *text, bool *weak, char *err, size_t errlen)
{
	struct dkim_key *key;
	int fd[2];

	assert_int_equal(pipe(fd), 0);
	assert_int_equal(write(fd[1], text, strlen(text)),
	    (ssize_t)strlen(text));
	close(fd[1]);
	key = dkim_key_read_fd(fd[0], "/etc/test.key", "example.com", "s",
	    weak, err, errlen);
	close(fd[0]);
	return key;
}

static struct dkim_key *
key_new(const char *type, size_t bits, const char *domain,
    const char *selector)
{
	struct dkim_key *key;
	EVP_PKEY *pkey;
	char err[512];
	bool weak;

	if (strcmp(type, "RSA") == 0)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, type);
	assert_non_null(pkey);
	key = key_load(pkey, domain, selector, &weak, err, sizeof(err));
	EVP_PKEY_free(pkey);
	if (key == NULL)
		fail_msg("%s", err);
	return key;
}

/* Sign msg fed in pieces of `piece` octets (0: whole). */
static char *
sign_pieces(struct dkim_key *const *keys, size_t nkeys, const char *msg,
    size_t len, size_t piece, const char **why, const char **bh)
{
	static char bhbuf[64];
	struct dkim_sign *s;
	char err[256], *out;
	size_t i, k;

	s = dkim_sign_new(keys, nkeys, NOW, 0);
	if (piece == 0)
		dkim_sign_feed(s, msg, len);
	else
		for (i = 0; i < len; i += k) {
			k = len - i < piece ? len - i : piece;
			dkim_sign_feed(s, msg + i, k);
		}
	out = dkim_sign_end(s, why, err, sizeof(err));
	if (out == NULL)
		fail_msg("%s", err);
	if (bh != NULL) {
		snprintf(bhbuf, sizeof(bhbuf), "%s", dkim_sign_bh(s));
		*bh = bhbuf;
	}
	dkim_sign_free(s);
	return out;
}

static char *
sign(struct dkim_key *const *keys, size_t nkeys, const char *msg,
    const char **why)
{
	return sign_pieces(keys, nkeys, msg, strlen(msg), 0, why, NULL);
}

static void
b64_sha256(const char *p, size_t n, char out[45])
{
	unsigned char h[32];
	unsigned int hl;

	assert_int_equal(EVP_Digest(p, n, h, &hl, EVP_sha256(), NULL), 1);
	EVP_EncodeBlock((unsigned char *)out, h, 32);
}

/* Body canonicalization: the header section here is fixed. */
static const struct {
	const char	*rule;
	const char	*body;		/* after "From: a@x\r\n" */
	const char	*canon;		/* NULL: the canonical body is bh */
	const char	*bh;
} body_rows[] = {
	{ "§3.4.6 example", "\r\n C \r\nD \t E\r\n\r\n\r\n", " C\r\nD E\r\n",
	    NULL },
	{ "no body, no separator", "", "", NULL },
	{ "empty body: the empty string, no CRLF added", "\r\n", "", NULL },
	{ "only empty lines", "\r\n\r\n\r\n", "", NULL },
	{ "only white space lines", "\r\n \t\r\n  \r\n", "", NULL },
	{ "trailing WSP", "\r\na  \t\r\n", "a\r\n", NULL },
	{ "no final CRLF: added", "\r\nabc", "abc\r\n", NULL },
	{ "no final CRLF, WSP at the end", "\r\nabc \t", "abc\r\n", NULL },
	{ "leading WSP kept as one SP", "\r\n\t\t a\r\n", " a\r\n", NULL },
	{ "WSP-only line inside", "\r\na\r\n \t\r\nb\r\n",
	    "a\r\n\r\nb\r\n", NULL },
	{ "empty lines inside kept", "\r\na\r\n\r\n\r\nb\r\n\r\n",
	    "a\r\n\r\n\r\nb\r\n", NULL },
	{ "8-bit octets as they are", "\r\ncaf\xc3\xa9 \xff\r\n",
	    "caf\xc3\xa9 \xff\r\n", NULL },
	{ "bare LF taken as a line end", "\na\nb  \n\n", "a\r\nb\r\n", NULL },
	{ "bare CR is content", "\r\na\rb\r\n", "a\rb\r\n", NULL },
	{ "RFC 8463 A.3 body",
	    "\r\nHi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\n"
	    "Joe.\r\n\r\n", NULL,
	    "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=" },
};

static void
test_body_canon(void **state)
{
	char msg[512], want[45], *out;
	const char *bh;
	size_t i, len, piece;

	(void)state;
	for (i = 0; i < NELEM(body_rows); i++) {
		snprintf(msg, sizeof(msg), "From: a@x\r\n%s", body_rows[i].body);
		len = strlen(msg);
		if (body_rows[i].canon != NULL)
			b64_sha256(body_rows[i].canon,
			    strlen(body_rows[i].canon), want);
		else
			snprintf(want, sizeof(want), "%s", body_rows[i].bh);
		for (piece = 0; piece <= len; piece++) {
			out = sign_pieces(NULL, 0, msg, len, piece, NULL, &bh);
			if (strcmp(bh, want) != 0)
				fail_msg("%s (pieces of %zu): bh %s, want %s",
				    body_rows[i].rule, piece, bh, want);
			free(out);
		}
	}
}

static const struct {
	const char	*rule;
	const char	*in;
	const char	*out;
} hdr_rows[] = {
	{ "§3.4.6 a", "A: X\r\n", "a:X\r\n" },
	{ "§3.4.6 b", "B : Y\t\r\n\tZ  \r\n", "b:Y Z\r\n" },
	{ "empty value", "Subject:\r\n", "subject:\r\n" },
	{ "WSP runs inside", "X-A:  a \t b  \r\n", "x-a:a b\r\n" },
	{ "folded twice", "To: a@x,\r\n b@y,\r\n\t c@z\r\n",
	    "to:a@x, b@y, c@z\r\n" },
	{ "no space after colon", "Subject:x\r\n", "subject:x\r\n" },
	{ "8-bit kept", "Subject: caf\xc3\xa9\r\n", "subject:caf\xc3\xa9\r\n" },
};

static void
test_header_canon(void **state)
{
	char *out;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(hdr_rows); i++) {
		out = dkim_canon_header(hdr_rows[i].in, strlen(hdr_rows[i].in));
		if (strcmp(out, hdr_rows[i].out) != 0)
			fail_msg("%s: \"%s\"", hdr_rows[i].rule, out);
		free(out);
	}
}

/*
 * The verifier of this test, written from RFC 6376 §3.4.2, §3.7, §5.4.2
 * and §6.1.3, apart from the signer.
 */
struct hfield {
	const char	*p;
	size_t		 len;
	size_t		 namelen;
	bool		 used;
};

static size_t
v_split(const char *h, size_t len, struct hfield *f, size_t max)
{
	size_t n = 0, i = 0, s;

	while (i < len && n < max) {
		s = i;
		for (;;) {
			const char *e = memchr(h + i, '\n', len - i);

			i = e == NULL ? len : (size_t)(e - h) + 1;
			if (i >= len || (h[i] != ' ' && h[i] != '\t'))
				break;
		}
		f[n].p = h + s;
		f[n].len = i - s;
		f[n].namelen = strcspn(h + s, ":");
		while (f[n].namelen > 0 && (h[s + f[n].namelen - 1] == ' ' ||
		    h[s + f[n].namelen - 1] == '\t'))
			f[n].namelen--;
		f[n].used = false;
		n++;
	}
	return n;
}

/* Relaxed canonical form of one field, appended to out. */
static void
v_canon(const char *p, size_t len, bool crlf, char *out, size_t *olen)
{
	size_t i, j = 0, n = *olen;
	char tmp[8192];

	/* Unfold, then WSP runs to one SP. */
	for (i = 0; i < len; i++) {
		if (p[i] == '\r' || p[i] == '\n')
			continue;
		if ((p[i] == ' ' || p[i] == '\t') && j > 0 &&
		    tmp[j - 1] == ' ')
			continue;
		assert_true(j < sizeof(tmp));
		tmp[j++] = p[i] == '\t' ? ' ' : p[i];
	}
	while (j > 0 && tmp[j - 1] == ' ')
		j--;
	for (i = 0; i < j && tmp[i] != ':'; i++)
		if (tmp[i] != ' ')
			out[n++] = (char)tolower((unsigned char)tmp[i]);
	out[n++] = ':';
	for (i++; i < j && tmp[i] == ' '; i++)
		;
	memcpy(out + n, tmp + i, j - i);
	n += j - i;
	if (crlf) {
		out[n++] = '\r';
		out[n++] = '\n';
	}
	*olen = n;
}

/* The value of tag t in the (unfolded, WSP-free) tag list. */
static bool
v_tag(const char *list, const char *t, char *out, size_t outlen)
{
	char key[16];
	const char *p = list;
	size_t n;

	snprintf(key, sizeof(key), "%s=", t);
	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, strlen(key)) == 0) {
			n = strcspn(p + strlen(key), ";");
			if (n >= outlen)
				return false;
			memcpy(out, p + strlen(key), n);
			out[n] = '\0';
			return true;
		}
		p = strchr(p, ';');
		if (p != NULL)
			p++;
	}
	return false;
}

/*
 * Verify the signature field sig (with CRLF) over msg with key.  The body
 * hash is checked against the body of msg as canonicalized by the rows
 * above: only for bodies given in canon (NULL: not checked).
 */
static void
v_verify(const char *sig, size_t siglen, const char *msg,
    const struct dkim_key *key, const char *canon_body)
{
	static char data[600000];
	struct hfield f[256];
	char list[8192], h[1024], bh[64], b[1024], want[45];
	unsigned char raw[1024], hash[32];
	const char *hend, *name, *bpos;
	size_t n, i, k, dlen = 0, l = 0, nl;
	unsigned int hl;
	EVP_MD_CTX *ctx;
	EVP_PKEY *pub;
	BIO *bio;
	char *pem, *txt, *p;
	int rawlen;

	/* The tag list, unfolded and without white space. */
	for (i = strcspn(sig, ":") + 1; i < siglen; i++)
		if (strchr(" \t\r\n", sig[i]) == NULL)
			list[l++] = sig[i];
	list[l] = '\0';
	assert_true(v_tag(list, "h", h, sizeof(h)));
	assert_true(v_tag(list, "bh", bh, sizeof(bh)));
	assert_true(v_tag(list, "b", b, sizeof(b)));
	if (canon_body != NULL) {
		b64_sha256(canon_body, strlen(canon_body), want);
		assert_string_equal(bh, want);
	}
	hend = strstr(msg, "\r\n\r\n");
	n = v_split(msg, hend == NULL ? strlen(msg) : (size_t)(hend - msg) + 2,
	    f, NELEM(f));
	/* §5.4.2: each name in h= takes the last instance not yet used. */
	for (name = h; *name != '\0'; name += nl + (name[nl] == ':')) {
		nl = strcspn(name, ":");
		for (k = n; k-- > 0;)
			if (!f[k].used && f[k].namelen == nl &&
			    strncasecmp(f[k].p, name, nl) == 0)
				break;
		if (k == (size_t)-1)
			continue;
		f[k].used = true;
		v_canon(f[k].p, f[k].len, true, data, &dlen);
	}
	/* §3.7: the signature field, b= value taken out, no CRLF. */
	bpos = strstr(sig, " b=");
	assert_non_null(bpos);
	v_canon(sig, (size_t)(bpos - sig) + 3, false, data, &dlen);

	/* The public key from the TXT record, as a verifier would get it. */
	txt = dkim_key_txt(key);
	p = strstr(txt, "p=") + 2;
	rawlen = EVP_DecodeBlock(raw, (unsigned char *)p, (int)strlen(p));
	assert_true(rawlen > 0);
	if (dkim_key_is_ed25519(key)) {
		pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw,
		    32);
	} else {
		const unsigned char *q = raw;

		pub = d2i_PUBKEY(NULL, &q, rawlen);
	}
	assert_non_null(pub);
	rawlen = EVP_DecodeBlock(raw, (unsigned char *)b, (int)strlen(b));
	assert_true(rawlen > 0);
	/* EVP_DecodeBlock counts the padding as zero octets. */
	rawlen -= (int)(strlen(b) - strcspn(b, "="));
	ctx = EVP_MD_CTX_new();
	if (dkim_key_is_ed25519(key)) {
		assert_int_equal(EVP_Digest(data, dlen, hash, &hl,
		    EVP_sha256(), NULL), 1);
		assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL,
		    pub), 1);
		assert_int_equal(EVP_DigestVerify(ctx, raw, (size_t)rawlen,
		    hash, 32), 1);
	} else {
		assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(),
		    NULL, pub), 1);
		assert_int_equal(EVP_DigestVerify(ctx, raw, (size_t)rawlen,
		    (const unsigned char *)data, dlen), 1);
	}
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pub);
	free(txt);
	(void)bio;
	(void)pem;
}

/* The signature fields of out, one by one: *len of the next one. */
static const char *
next_sig(const char *p, size_t *len)
{
	const char *e = p;

	if (*p == '\0')
		return NULL;
	do {
		e = strstr(e, "\r\n");
		assert_non_null(e);
		e += 2;
	} while (*e == ' ' || *e == '\t');
	*len = (size_t)(e - p);
	return p;
}

/* Every line of the signature fields at most 78 octets. */
static void
check_folding(const char *out)
{
	const char *p = out, *e;

	while ((e = strstr(p, "\r\n")) != NULL) {
		if (e - p > 78)
			fail_msg("a line of %zu octets: %.*s", (size_t)(e - p),
			    (int)(e - p), p);
		p = e + 2;
	}
	assert_string_equal(p, "");
}

/* Write out + msg and the keys' TXT records under DKIM_TEST_OUT. */
static void
save(const char *name, const char *out, size_t nsig, const char *msg,
    struct dkim_key *const *keys, size_t nkeys)
{
	const char *dir = getenv("DKIM_TEST_OUT");
	char path[4096], *txt;
	FILE *fp;
	size_t i;

	if (dir == NULL || *dir == '\0')
		return;
	snprintf(path, sizeof(path), "%s/%s.eml", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	fputs(out, fp);
	fputs(msg, fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/%s.txt", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	fprintf(fp, "%zu\n", nsig);
	for (i = 0; i < nkeys; i++) {
		txt = dkim_key_txt(keys[i]);
		fprintf(fp, "%s._domainkey.%s %s\n", dkim_key_selector(keys[i]),
		    dkim_key_domain(keys[i]), txt);
		free(txt);
	}
	fclose(fp);
}

/*
 * Sign msg with keys, expect nsig signatures, verify each (against the key
 * of the same order: RSA ones first), save it.
 */
static char *
sign_check(const char *name, struct dkim_key *const *keys, size_t nkeys,
    const char *msg, const char *canon_body, size_t nsig,
    struct dkim_key *const *signers)
{
	const char *why, *p;
	size_t len, i = 0;
	char *out;

	out = sign(keys, nkeys, msg, &why);
	if (nsig > 0 && *out == '\0')
		fail_msg("%s: not signed: %s", name, why);
	check_folding(out);
	for (p = out; (p = next_sig(p, &len)) != NULL; p += len) {
		assert_true(i < nsig);
		assert_memory_equal(p, "DKIM-Signature: v=1; ", 21);
		v_verify(p, len, msg, signers[i], canon_body);
		i++;
	}
	assert_int_equal(i, nsig);
	save(name, out, nsig, msg, keys, nkeys);
	return out;
}

/* Take out every white space and line end (to look at tags). */
static void
nows(char *s)
{
	char *d = s;

	for (; *s != '\0'; s++)
		if (strchr(" \t\r\n", *s) == NULL)
			*d++ = *s;
	*d = '\0';
}

#define RFC_MSG \
	"From: Joe SixPack <joe@football.example.com>\r\n" \
	"To: Suzie Q <suzie@shopping.example.net>\r\n" \
	"Subject: Is dinner ready?\r\n" \
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n" \
	"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n" \
	"\r\n" \
	"Hi.\r\n" \
	"\r\n" \
	"We lost the game.  Are you hungry yet?\r\n" \
	"\r\n" \
	"Joe.\r\n" \
	"\r\n"

/* RFC 8463 A.2: the RFC 8032 §7.1 test 1 secret key. */
static const unsigned char rfc8032_seed[32] = {
	0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
	0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
	0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};

/* RFC 8463 A.2: the RSA key of selector "test" (1024 bits). */
static const char rfc8463_rsa[] =
	"-----BEGIN RSA PRIVATE KEY-----\n"
	"MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
	"Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
	"KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
	"AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
	"6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
	"zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
	"6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
	"uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
	"WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
	"WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
	"licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
	"o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
	"uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
	"-----END RSA PRIVATE KEY-----\n";

/* RFC 8463 A.3: each signature field up to its b=, and its b= value. */
static const struct {
	const char	*prefix;
	const char	*b;
} rfc8463_sigs[] = {
	{ "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
	  " d=football.example.com; i=@football.example.com;\r\n"
	  " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
	  " subject : date : message-id : from : subject : date;\r\n"
	  " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	  " b=",
	  "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus"
	  "Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==" },
	{ "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
	  " d=football.example.com; i=@football.example.com;\r\n"
	  " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
	  " date : message-id : from : subject : date;\r\n"
	  " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
	  " b=",
	  "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3"
	  "DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz"
	  "dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=" },
};

/*
 * Both algorithms are deterministic: with the RFC's keys, its tags and
 * h=, the signed data this module builds must give the RFC's b= exactly.
 */
static void
test_rfc8463_exact(void **state)
{
	struct dkim_key *keys[2];
	struct dkim_sign *s;
	EVP_PKEY *pkey;
	char err[256], *out, *b;
	bool weak;
	size_t i;

	(void)state;
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
	    rfc8032_seed, sizeof(rfc8032_seed));
	keys[0] = key_load(pkey, "football.example.com", "brisbane", &weak,
	    err, sizeof(err));
	EVP_PKEY_free(pkey);
	keys[1] = key_text(rfc8463_rsa, &weak, err, sizeof(err));
	assert_non_null(keys[0]);
	assert_non_null(keys[1]);
	assert_true(weak);
	s = dkim_sign_new(keys, 2, 1528637909, 0);
	dkim_sign_feed(s, RFC_MSG, strlen(RFC_MSG));
	out = dkim_sign_end(s, NULL, err, sizeof(err));
	assert_non_null(out);
	for (i = 0; i < NELEM(rfc8463_sigs); i++) {
		b = dkim_sign_test_b(s, keys[i], rfc8463_sigs[i].prefix, err,
		    sizeof(err));
		if (b == NULL)
			fail_msg("%s", err);
		assert_string_equal(b, rfc8463_sigs[i].b);
		free(b);
	}
	free(out);
	dkim_sign_free(s);
	dkim_key_free(keys[0]);
	dkim_key_free(keys[1]);
}

static void
test_rfc8463(void **state)
{
	struct dkim_key *key;
	EVP_PKEY *pkey;
	char err[256], *out, *txt;
	const char *bh;
	bool weak;

	(void)state;
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL,
	    rfc8032_seed, sizeof(rfc8032_seed));
	assert_non_null(pkey);
	key = key_load(pkey, "football.example.com", "brisbane", &weak, err,
	    sizeof(err));
	EVP_PKEY_free(pkey);
	assert_non_null(key);
	assert_false(weak);
	/* RFC 8463 A.2: the public key. */
	txt = dkim_key_txt(key);
	assert_string_equal(txt, "v=DKIM1; k=ed25519; "
	    "p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
	free(txt);
	out = sign_check("rfc8463", &key, 1, RFC_MSG, NULL, 1, &key);
	nows(out);
	assert_non_null(strstr(out, "DKIM-Signature:v=1;a=ed25519-sha256;"
	    "c=relaxed/relaxed;d=football.example.com;s=brisbane;"
	    "t=1700000000;h=from:to:subject:date:message-id" OVER ";"
	    "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;b="));
	free(out);
	out = sign_pieces(&key, 1, RFC_MSG, strlen(RFC_MSG), 0, NULL, &bh);
	assert_string_equal(bh, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
	free(out);
	dkim_key_free(key);
}

/* Cut anywhere, the same signature (both algorithms are deterministic). */
static void
test_pieces(void **state)
{
	struct dkim_key *keys[2] = { rsa_key, ed_key };
	const char *msg = "From: a@example.com\r\nTo: b@x\r\n"
	    "Subject: s\r\n\r\nbody  \r\n\r\n";
	char *whole, *out;
	size_t piece;

	(void)state;
	whole = sign_pieces(keys, 2, msg, strlen(msg), 0, NULL, NULL);
	for (piece = 1; piece <= strlen(msg); piece++) {
		out = sign_pieces(keys, 2, msg, strlen(msg), piece, NULL,
		    NULL);
		assert_string_equal(out, whole);
		free(out);
	}
	free(whole);
}

static void
test_roundtrip(void **state)
{
	struct dkim_key *keys[2] = { rsa_key, ed_key };
	const char *why;
	char *out, *to, *msg;
	size_t i, n;

	(void)state;
	/* Both keys: two signatures, RSA first whatever the key order. */
	keys[0] = ed_key;
	keys[1] = rsa_key;
	out = sign_check("both", keys, 2,
	    "From: Alice <alice@example.com>\r\nTo: b@x.test\r\n"
	    "Subject: hello\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID: <1@example.com>\r\n\r\nHello.\r\n",
	    "Hello.\r\n", 2, (struct dkim_key *[]){ rsa_key, ed_key });
	assert_non_null(strstr(out, "a=rsa-sha256"));
	assert_true(strstr(out, "a=rsa-sha256") < strstr(out,
	    "a=ed25519-sha256"));
	free(out);

	/* Every signed field present, some twice; bottom-up. */
	out = sign_check("allfields", &rsa_key, 1,
	    "Received: from x by y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "From: alice@example.com\r\nTo: b@x.test\r\nCc: c@x.test\r\n"
	    "Subject: one\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-ID: <1@example.com>\r\nReply-To: r@example.com\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain;\r\n\tcharset=utf-8\r\n"
	    "List-Unsubscribe: <mailto:u@example.com>\r\n"
	    "To: second@x.test\r\nX-Other: not signed\r\n\r\nb\r\n",
	    "b\r\n", 1, &rsa_key);
	nows(out);
	assert_non_null(strstr(out, ";h=from:to:to:cc:subject:date:"
	    "message-id:reply-to:mime-version:content-type:list-unsubscribe"
	    OVER ";"));
	free(out);

	/* List-Unsubscribe-Post (RFC 8058) is signed with List-Unsubscribe. */
	out = sign_check("unsubpost", &rsa_key, 1,
	    "From: alice@example.com\r\n"
	    "List-Unsubscribe: <https://example.com/u/1>\r\n"
	    "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
	    "\r\nb\r\n", "b\r\n", 1, &rsa_key);
	nows(out);
	assert_non_null(strstr(out, ";h=from:list-unsubscribe:"
	    "list-unsubscribe-post" OVER ";"));
	free(out);

	/*
	 * Many fields of one name: each h= entry takes the next one up (the
	 * search goes on where the last one stopped), and the signature
	 * verifies (200: what the test's verifier holds).
	 */
	msg = malloc(200 * 24 + 256);
	n = (size_t)sprintf(msg, "From: alice@example.com\r\n");
	for (i = 0; i < 200; i++)
		n += (size_t)sprintf(msg + n, "To: u%zu@x.test\r\n", i);
	n += (size_t)sprintf(msg + n, "Subject: many\r\n\r\nb\r\n");
	free(sign_check("manyto", &ed_key, 1, msg, "b\r\n", 1, &ed_key));
	free(msg);

	/* A NUL in the header section: not signed. */
	{
		static const char nul[] = "From: alice@example.com\r\n"
		    "Subject: a\0b\r\n\r\nx\r\n";

		out = sign_pieces(&ed_key, 1, nul, sizeof(nul) - 1, 0, &why,
		    NULL);
		assert_string_equal(out, "");
		assert_non_null(why);
		assert_non_null(strstr(why, "NUL"));
		free(out);
	}

	/* 8-bit body and header. */
	free(sign_check("8bit", &ed_key, 1,
	    "From: alice@example.com\r\nSubject: caf\xc3\xa9\r\n\r\n"
	    "caf\xc3\xa9  \xe2\x82\xac\r\n", "caf\xc3\xa9 \xe2\x82\xac\r\n",
	    1, &ed_key));

	/* A To: of 2000 octets, folded. */
	n = 0;
	to = malloc(4096);
	n += (size_t)sprintf(to + n, "To: ");
	for (i = 0; n < 2000; i++)
		n += (size_t)sprintf(to + n, "user%03zu@x.test,\r\n ", i);
	n += (size_t)sprintf(to + n, "last@x.test\r\n");
	msg = malloc(8192);
	snprintf(msg, 8192, "From: alice@example.com\r\n%sSubject: long\r\n"
	    "\r\nbody\r\n", to);
	free(sign_check("longto", &rsa_key, 1, msg, "body\r\n", 1, &rsa_key));
	free(sign_check("longto-ed", &ed_key, 1, msg, "body\r\n", 1, &ed_key));
	free(msg);
	free(to);

	/*
	 * A UTF-8 display name.  White space before a colon (obsolete
	 * syntax): not a field that h= lists (verifiers differ on its name);
	 * From: written so is no From: (not signed).
	 */
	free(sign_check("utf8name", &ed_key, 1,
	    "From: Caf\xc3\xa9 Ren\xc3\xa9 <rene@example.com>\r\n"
	    "Subject: x\r\n\r\nx\r\n", "x\r\n", 1, &ed_key));
	out = sign_check("wspcolon", &ed_key, 1,
	    "From: rene@example.com\r\nSubject\t: x\r\nTo : y@x\r\n"
	    "\r\nx\r\n", "x\r\n", 1, &ed_key);
	nows(out);
	/* Not over-signed either: subject and to are left out of h=. */
	assert_non_null(strstr(out, ";h=from:from:cc:date:message-id:"
	    "reply-to:mime-version:content-type:list-unsubscribe:"
	    "list-unsubscribe-post;"));
	free(out);
	out = sign(&ed_key, 1, "From : rene@example.com\r\n\r\nx\r\n", &why);
	assert_string_equal(out, "");
	free(out);

	/* No final CRLF; no body; an empty body. */
	free(sign_check("nocrlf", &rsa_key, 1,
	    "From: alice@example.com\r\n\r\nabc", "abc\r\n", 1, &rsa_key));
	free(sign_check("nobody", &ed_key, 1,
	    "From: alice@example.com\r\nSubject: x\r\n", "", 1, &ed_key));
	free(sign_check("emptybody", &rsa_key, 1,
	    "From: alice@example.com\r\n\r\n", "", 1, &rsa_key));
}

/* dkim_expire: x= is t= plus it. */
static void
test_expire(void **state)
{
	struct dkim_sign *s;
	const char *msg = "From: a@example.com\r\n\r\nx\r\n";
	char err[256], *out;

	(void)state;
	s = dkim_sign_new(&ed_key, 1, NOW, 86400);
	dkim_sign_feed(s, msg, strlen(msg));
	out = dkim_sign_end(s, NULL, err, sizeof(err));
	assert_non_null(out);
	nows(out);
	assert_non_null(strstr(out, ";t=1700000000;x=1700086400;"));
	dkim_sign_free(s);
	free(out);
	out = sign(&ed_key, 1, msg, NULL);
	assert_null(strstr(out, "x="));
	free(out);
}

/* Which key signs, and the messages not signed. */
static void
test_choice(void **state)
{
	struct dkim_key *sub, *other, *sel2, *keys[6];
	const char *why;
	char *out;
	size_t i;
	static const struct {
		const char	*rule;
		const char	*msg;
	} unsigned_rows[] = {
		{ "no From", "To: b@x\r\n\r\nx\r\n" },
		{ "two From fields",
		    "From: a@example.com\r\nFrom: a@example.com\r\n\r\nx\r\n" },
		{ "two addresses", "From: a@example.com, b@example.com\r\n\r\n" },
		{ "unparsable From", "From: <a@example.com\r\n\r\nx\r\n" },
		{ "no domain", "From: alice\r\n\r\nx\r\n" },
		{ "no key for the domain", "From: a@example.net\r\n\r\nx\r\n" },
		{ "a suffix that is not a parent",
		    "From: a@notexample.com\r\n\r\nx\r\n" },
		{ "already signed, d= in another case, same s=",
		    "DKIM-Signature: v=1; a=rsa-sha256; d=EXAMPLE.com;\r\n"
		    "\ts=sel; h=from; bh=x; b=y\r\n"
		    "From: a@example.com\r\n\r\nx\r\n" },
		{ "From: after the empty line is body",
		    "Subject: x\r\n\r\nFrom: a@example.com\r\n" },
	};

	(void)state;
	keys[0] = rsa_key;	/* example.com sel */
	keys[1] = ed_key;	/* example.com ed */
	for (i = 0; i < NELEM(unsigned_rows); i++) {
		out = sign(keys, 1, unsigned_rows[i].msg, &why);
		if (*out != '\0')
			fail_msg("%s: signed", unsigned_rows[i].rule);
		if (why == NULL)
			fail_msg("%s: no reason", unsigned_rows[i].rule);
		free(out);
	}
	/* No key at all. */
	out = sign(NULL, 0, "From: a@example.com\r\n\r\n", &why);
	assert_string_equal(out, "");
	assert_non_null(why);
	free(out);

	/* Another selector's signature: signed. */
	free(sign_check("othersel", keys, 1,
	    "DKIM-Signature: v=1; d=example.com; s=old; b=x\r\n"
	    "From: a@example.com\r\n\r\nx\r\n", "x\r\n", 1, keys));
	/* Same d= and s= as one key: only the other key signs. */
	sel2 = key_new("ED25519", 0, "example.com", "sel2");
	keys[2] = sel2;
	free(sign_check("onealready", keys + 1, 2,
	    "DKIM-Signature: v=1; d=example.com; s=ed; b=x\r\n"
	    "From: a@example.com\r\n\r\nx\r\n", "x\r\n", 1, &sel2));
	/* Both keys with the same selector, signed with it: none signs. */
	out = sign((struct dkim_key *[]){ rsa_key, ed_key, ed_key }, 3,
	    "DKIM-Signature: v=1; d=example.com; s=sel; b=x\r\n"
	    "DKIM-Signature: v=1; d=example.com; s=ed; b=x\r\n"
	    "From: a@example.com\r\n\r\nx\r\n", &why);
	assert_string_equal(out, "");
	assert_non_null(why);
	free(out);

	/* A subdomain is signed by the parent's key, with d= the parent. */
	out = sign_check("subdomain", keys, 1,
	    "From: a@mail.Example.COM\r\n\r\nx\r\n", "x\r\n", 1, keys);
	nows(out);
	assert_non_null(strstr(out, ";d=example.com;"));
	free(out);

	/* The longest match wins; all its keys sign. */
	sub = key_new("RSA", 2048, "mail.example.com", "m");
	other = key_new("ED25519", 0, "example.org", "o");
	keys[0] = rsa_key;
	keys[1] = other;
	keys[2] = sub;
	keys[3] = ed_key;
	out = sign_check("longest", keys, 4,
	    "From: a@mail.example.com\r\n\r\nx\r\n", "x\r\n", 1, &sub);
	nows(out);
	assert_non_null(strstr(out, ";d=mail.example.com;s=m;"));
	free(out);
	out = sign_check("parent", keys, 4,
	    "From: a@www.example.com\r\n\r\nx\r\n", "x\r\n", 2,
	    (struct dkim_key *[]){ rsa_key, ed_key });
	assert_null(strstr(out, "d=mail.example.com"));
	free(out);
	dkim_key_free(sub);
	dkim_key_free(other);
	dkim_key_free(sel2);
}

/* A header section larger than DKIM_HEADER_MAX is not signed. */
static void
test_big_header(void **state)
{
	const char *why;
	char *msg, *out;
	size_t n = 0;

	(void)state;
	msg = malloc(DKIM_HEADER_MAX + 1024);
	n += (size_t)sprintf(msg, "From: a@example.com\r\n");
	while (n < DKIM_HEADER_MAX)
		n += (size_t)sprintf(msg + n, "X-Fill: %064d\r\n", 0);
	sprintf(msg + n, "\r\nx\r\n");
	out = sign(&rsa_key, 1, msg, &why);
	assert_string_equal(out, "");
	assert_non_null(why);
	free(out);
	free(msg);
}

static void
test_keys(void **state)
{
	struct dkim_key *key;
	EVP_PKEY *pkey;
	char err[512], *txt;
	bool weak;

	(void)state;
	/* RSA 1024: read, weak. */
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	key = key_load(pkey, "example.com", "s", &weak, err, sizeof(err));
	EVP_PKEY_free(pkey);
	assert_non_null(key);
	assert_true(weak);
	assert_false(dkim_key_is_ed25519(key));
	txt = dkim_key_txt(key);
	assert_memory_equal(txt, "v=DKIM1; k=rsa; p=MIG", 21);
	free(txt);
	assert_string_equal(dkim_key_domain(key), "example.com");
	assert_string_equal(dkim_key_selector(key), "s");
	dkim_key_free(key);

	/* RSA 2048 is not weak. */
	assert_false(dkim_key_is_ed25519(rsa_key));

	/* RSA 512: refused. */
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	key = key_load(pkey, "example.com", "s", &weak, err, sizeof(err));
	EVP_PKEY_free(pkey);
	assert_null(key);
	assert_non_null(strstr(err, "/etc/test.key"));
	assert_non_null(strstr(err, "512"));

	/* Ed25519. */
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	key = key_load(pkey, "example.com", "s", &weak, err, sizeof(err));
	EVP_PKEY_free(pkey);
	assert_non_null(key);
	assert_false(weak);
	assert_true(dkim_key_is_ed25519(key));
	txt = dkim_key_txt(key);
	assert_memory_equal(txt, "v=DKIM1; k=ed25519; p=", 22);
	assert_int_equal(strlen(txt), 22 + 44);
	free(txt);
	dkim_key_free(key);

	/* EC P-256: refused. */
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	key = key_load(pkey, "example.com", "s", &weak, err, sizeof(err));
	EVP_PKEY_free(pkey);
	assert_null(key);
	assert_non_null(strstr(err, "/etc/test.key"));

	/* Garbage, an empty file, a public key: refused. */
	assert_null(key_text("garbage\n", &weak, err, sizeof(err)));
	assert_non_null(strstr(err, "/etc/test.key"));
	assert_null(key_text("", &weak, err, sizeof(err)));
	assert_non_null(strstr(err, "/etc/test.key"));
	assert_null(key_text("-----BEGIN PUBLIC KEY-----\n"
	    "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
	    "-----END PUBLIC KEY-----\n", &weak, err, sizeof(err)));
	assert_non_null(strstr(err, "/etc/test.key"));
}

/* Traditional RSA PEM ("BEGIN RSA PRIVATE KEY") is read too. */
static void
test_key_traditional(void **state)
{
	struct dkim_key *key;
	EVP_PKEY *pkey;
	BIO *bio;
	char err[512], *pem, *text;
	bool weak;
	long n;

	(void)state;
	pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	bio = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL,
	    NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &pem);
	text = strndup(pem, (size_t)n);
	assert_non_null(strstr(text, "BEGIN RSA PRIVATE KEY"));
	key = key_text(text, &weak, err, sizeof(err));
	assert_non_null(key);
	assert_false(weak);
	dkim_key_free(key);
	free(text);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
}

static int
setup(void **state)
{
	(void)state;
	rsa_key = key_new("RSA", 2048, "example.com", "sel");
	ed_key = key_new("ED25519", 0, "example.com", "ed");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	dkim_key_free(rsa_key);
	dkim_key_free(ed_key);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_body_canon),
		cmocka_unit_test(test_header_canon),
		cmocka_unit_test(test_rfc8463),
		cmocka_unit_test(test_rfc8463_exact),
		cmocka_unit_test(test_pieces),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_expire),
		cmocka_unit_test(test_choice),
		cmocka_unit_test(test_big_header),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_key_traditional),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
