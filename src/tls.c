/*
 * tls: OpenSSL 3 contexts, built once at start per policy.  Client: TLS 1.2
 * or newer, the CA file or the system store always loaded so that the
 * verification result exists even when it is not enforced (io.c reports
 * it).  Server: certificate chain and key, checked to match.  The
 * per-connection work (SNI, host name, handshake, reads, writes) is in io.c.
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "tls.h"
#include "util.h"

static void	tls_seterr(char *, size_t, const char *, const char *);
static SSL_CTX	*ctx_common(const SSL_METHOD *, char *, size_t);

/* "what path: <last OpenSSL error>", then an empty error queue. */
static void
tls_seterr(char *err, size_t errlen, const char *what, const char *path)
{
	char buf[256] = "unknown error";
	unsigned long e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last != 0)
		ERR_error_string_n(last, buf, sizeof(buf));
	if (path != NULL)
		util_seterr(err, errlen, "%s %s: %s", what, path, buf);
	else
		util_seterr(err, errlen, "%s: %s", what, buf);
}

static SSL_CTX *
ctx_common(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(method)) == NULL) {
		tls_seterr(err, errlen, "SSL_CTX_new", NULL);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		tls_seterr(err, errlen, "TLS minimum version", NULL);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/*
	 * SMTP has its own end of data; peers that close without
	 * close_notify are common and not an error for us.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
}

SSL_CTX *
tls_client_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = ctx_common(TLS_client_method(), err, errlen)) == NULL)
		return NULL;
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			tls_seterr(err, errlen, "CA file", ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_seterr(err, errlen, "system CA store", NULL);
		goto fail;
	}
	/* Without verify the chain is still checked; io_tls_verified() tells. */
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
	    NULL);
	/*
	 * DANE (RFC 7672) for the sessions that ask for it with
	 * SSL_dane_enable() (io_start_tls_dane); the others are unchanged.
	 * SMTP checks no name for DANE-EE (RFC 7672 §3.1.1,
	 * SSL_CTX_dane_enable(3)).
	 */
	if (SSL_CTX_dane_enable(ctx) <= 0) {
		tls_seterr(err, errlen, "DANE", NULL);
		goto fail;
	}
	(void)SSL_CTX_dane_set_flags(ctx, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	return ctx;

fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

/* The PEM private key on fd, with the context's passphrase callback. */
static int
use_key_fd(SSL_CTX *ctx, int fd)
{
	BIO *b;
	EVP_PKEY *pk;
	int ok;

	if ((b = BIO_new_fd(fd, BIO_NOCLOSE)) == NULL)
		return 0;
	pk = PEM_read_bio_PrivateKey(b, NULL,
	    SSL_CTX_get_default_passwd_cb(ctx),
	    SSL_CTX_get_default_passwd_cb_userdata(ctx));
	BIO_free(b);
	if (pk == NULL)
		return 0;
	ok = SSL_CTX_use_PrivateKey(ctx, pk);
	EVP_PKEY_free(pk);
	return ok;
}

SSL_CTX *
tls_server_ctx_new(const char *cert_file, const char *key_file, char *err,
    size_t errlen)
{
	return tls_server_ctx_new_fd(cert_file, key_file, -1, err, errlen);
}

SSL_CTX *
tls_server_ctx_new_fd(const char *cert_file, const char *key_file, int key_fd,
    char *err, size_t errlen)
{
	SSL_CTX *ctx;
	int ok;

	ERR_clear_error();
	if ((ctx = ctx_common(TLS_server_method(), err, errlen)) == NULL)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		tls_seterr(err, errlen, "certificate", cert_file);
		goto fail;
	}
	ok = key_fd == -1 ?
	    SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) :
	    use_key_fd(ctx, key_fd);
	if (ok != 1) {
		tls_seterr(err, errlen, "private key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_seterr(err, errlen, "private key does not match", cert_file);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;

fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return NULL;
}

void
tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}
