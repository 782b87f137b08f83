/*
 * dkim: DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC
 * 8463), relaxed/relaxed, level 1 ("formats": pure apart from OpenSSL; no
 * file I/O, no clock: the caller passes the key file's descriptor and
 * `now`).
 *
 * The signer sees the message as the spool stores it (CRLF lines, not
 * dot-stuffed) in pieces of any size.  It holds the header section (at
 * most DKIM_HEADER_MAX octets) and hashes the body as it comes, keeping
 * only the state of relaxed body canonicalization between pieces (white
 * space and empty lines not yet known to be trailing).
 *
 * Which keys sign: those whose domain is the domain of the single From:
 * address, or a parent of it (a key for example.com signs mail From:
 * a@mail.example.com, with d=example.com); of those, only the longest
 * matching domain, and then every key of that domain: RSA first, then
 * Ed25519.
 *
 * The signature: v=1; a=; c=relaxed/relaxed; d=; s=; t=; [x=;] h=; bh=;
 * b=.  h= lists, in this order, each of From, To, Cc, Subject, Date,
 * Message-ID, Reply-To, MIME-Version, Content-Type, List-Unsubscribe and
 * List-Unsubscribe-Post present in the message, as many times as it is
 * present, then each of these names once more (over-signing: a field of
 * any of them added later breaks the signature).  No l=, no i= (its
 * default is @d).  A header section with a NUL octet is not signed.
 */
#ifndef MXRELAY_DKIM_H
#define MXRELAY_DKIM_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The header section held for signing; a larger one is not signed. */
#define DKIM_HEADER_MAX	(256 * 1024)
/* RSA keys below this are refused, below DKIM_RSA_GOOD warned about. */
#define DKIM_RSA_MIN	1024
#define DKIM_RSA_GOOD	2048

struct dkim_key;	/* opaque: domain, selector, EVP_PKEY, algorithm */
struct dkim_sign;

/*
 * Read a private key (PEM: PKCS#8, or traditional RSA) from fd, opened by
 * the caller with the checks of a secret file (not closed here); path names
 * it in messages.  RSA of at least DKIM_RSA_MIN (1024) bits, or Ed25519.
 * *weak is set for RSA below 2048 bits (weak may be NULL).  NULL with err
 * on failure (err starts with path).  domain and selector are copied.
 */
struct dkim_key	*dkim_key_read_fd(int fd, const char *path, const char *domain,
		    const char *selector, bool *weak, char *err, size_t errlen);
void		 dkim_key_free(struct dkim_key *);
const char	*dkim_key_domain(const struct dkim_key *);
const char	*dkim_key_selector(const struct dkim_key *);
/* True for Ed25519, false for RSA. */
bool		 dkim_key_is_ed25519(const struct dkim_key *);
/*
 * The DNS TXT record text for it: "v=DKIM1; k=rsa; p=BASE64" (p= the
 * DER SubjectPublicKeyInfo) or "v=DKIM1; k=ed25519; p=BASE64" (p= the raw
 * 32-octet public key, RFC 8463 §4).  malloc'd.
 */
char		*dkim_key_txt(const struct dkim_key *);

/*
 * The signer of one message.  keys: every configured key (the signer picks
 * those that match the From: domain, see above); they must outlive it.
 * now: the t= tag.  expire: seconds for x= (0: no x=).
 */
struct dkim_sign *dkim_sign_new(struct dkim_key *const *keys, size_t nkeys,
		    time_t now, long expire);
/*
 * The message exactly as the spool stores it (CRLF lines, not
 * dot-stuffed, with the Received: and any Date:/Message-ID: the relay added),
 * in pieces of any size.
 */
void		 dkim_sign_feed(struct dkim_sign *, const char *buf, size_t len);
/*
 * At the end of the message: the DKIM-Signature header field(s) to put in
 * front of it, each ending in CRLF and folded (lines of at most 78 octets
 * where the tags allow), rsa-sha256 before ed25519-sha256.  "" (malloc'd,
 * empty) when the message is not to be signed (no matching key, no or
 * several From:, already signed with the same d= and s=, header section
 * larger than DKIM_HEADER_MAX = 256 KiB).  NULL with err on a signing error.
 * why (may be NULL) receives a short reason when "" is returned, for a debug log.
 * Called once.
 */
char		*dkim_sign_end(struct dkim_sign *, const char **why, char *err, size_t errlen);
void		 dkim_sign_free(struct dkim_sign *);

/*
 * For the tests: the base64 body hash (bh=) of what was fed, valid after
 * dkim_sign_end(); NULL before, or when the body was not hashed.
 */
const char	*dkim_sign_bh(const struct dkim_sign *);
/*
 * For the tests: the relaxed canonical form (RFC 6376 §3.4.2) of one
 * header field (its lines with their CRLF), with CRLF.  malloc'd.
 */
char		*dkim_canon_header(const char *field, size_t len);
/*
 * For the tests (RFC 8463 Appendix A): after dkim_sign_end(), the b=
 * value (base64, malloc'd) that key gives to a signature field whose text
 * up to and including "b=" is prefix, as written (folded or not); the
 * fields signed are those its h= names.  NULL with err.
 */
char		*dkim_sign_test_b(struct dkim_sign *, const struct dkim_key *,
		    const char *prefix, char *err, size_t errlen);

#endif
