/*
 * tls: OpenSSL 3 contexts, built once at start.  Only tls.c and io.c call
 * SSL_* functions.
 */
#ifndef MXRELAY_TLS_H
#define MXRELAY_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

/*
 * A client context: TLS 1.2 minimum.  With verify, peer verification is
 * on against ca_file, or the system store when ca_file is NULL; without,
 * the handshake succeeds whatever the certificate, and io_tls_verified()
 * still tells whether it would have verified.  DANE is enabled on the
 * context (with no name checks for DANE-EE) for io_start_tls_dane(); it
 * changes nothing for the other sessions.  NULL + err on failure.
 */
SSL_CTX	*tls_client_ctx_new(const char *ca_file, bool verify, char *err,
	    size_t errlen);
/* A server context with this certificate chain and key. */
SSL_CTX	*tls_server_ctx_new(const char *cert_file, const char *key_file,
	    char *err, size_t errlen);
/*
 * The same with the key read from key_fd (opened by the caller with the
 * checks of a secret file; not closed here); key_file names it in
 * messages.
 */
SSL_CTX	*tls_server_ctx_new_fd(const char *cert_file, const char *key_file,
	    int key_fd, char *err, size_t errlen);
void	 tls_ctx_free(SSL_CTX *);

#endif
