/*
 * io: one buffered, non-blocking stream connection on the event loop,
 * with TLS inside.  Reading is by lines (CRLF or LF ends; the line is
 * handed over without its end) with a length limit; writing is queued and
 * never blocks.  All untrusted bytes enter mxrelay through here.
 *
 * Events are delivered to the owner's callback from the loop:
 *	IO_CONNECTED	io_connect() succeeded
 *	IO_DATAIN	at least one complete line (or an over-long one) is buffered;
 *			in raw mode (io_set_raw()), any byte is
 *	IO_LOWAT	the write queue drained below the low-water mark
 *	IO_TLS_DONE	io_start_tls() handshake completed
 *	IO_TIMEOUT	no input for the timeout set with io_set_timeout()
 *	IO_CLOSED	the peer closed the connection
 *	IO_ERROR	connect, read, write or TLS failure: see io_error()
 * After IO_TIMEOUT, IO_CLOSED or IO_ERROR the owner should io_free().
 * It is safe to io_free() from inside the callback.
 */
#ifndef MXRELAY_IO_H
#define MXRELAY_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "event.h"
#include "tlsa.h"

enum io_event {
	IO_CONNECTED,
	IO_DATAIN,
	IO_LOWAT,
	IO_TLS_DONE,
	IO_TIMEOUT,
	IO_CLOSED,
	IO_ERROR,
};

struct io;
typedef void (*io_cb)(struct io *, enum io_event, void *arg);

struct io	*io_new(struct ev_loop *, io_cb, void *arg);
void		 io_free(struct io *);

/* Start a non-blocking connect; IO_CONNECTED or IO_ERROR follows. */
int		 io_connect(struct io *, const struct sockaddr *, socklen_t);
/* Take over a connected socket (server side); the io closes it. */
void		 io_attach(struct io *, int fd);

/* Input timeout in ms (0 = none); restarted by every read that makes progress. */
void		 io_set_timeout(struct io *, unsigned ms);
/* Longest accepted line, without its end (default 1000). */
void		 io_set_line_max(struct io *, size_t);

/*
 * Next complete line, NUL-terminated, without CRLF/LF; NULL when none.
 * *len gets its length.  A line over the limit is returned once as
 * *too_long = true with its first bytes, and the rest of it is skipped.
 * The pointer is valid until the next io_* call on this io.
 */
const char	*io_getline(struct io *, size_t *len, bool *too_long);
/*
 * Raw input, for SMTP DATA: in raw mode IO_DATAIN fires whenever any byte
 * is buffered, not only a whole line, and the owner takes bytes with
 * io_peek() and io_consume().  Nothing is skipped in raw mode (switching
 * to it ends the dropping of an over-long line).  Line mode, the default,
 * is unchanged; both modes share the buffer, so io_getline() still works
 * in raw mode and io_peek() in line mode.  When the switch leaves bytes
 * buffered that the new mode reports, IO_DATAIN follows from the loop.
 */
void		 io_set_raw(struct io *, bool);
/* The buffered bytes (*len of them, possibly 0); valid until the next io_* call. */
const void	*io_peek(struct io *, size_t *len);
/* Take n (at most io_pending()) bytes from the front of the buffer. */
void		 io_consume(struct io *, size_t n);
/* Bytes read but not yet taken (used to refuse input pipelined before STARTTLS). */
size_t		 io_pending(const struct io *);
void		 io_discard_input(struct io *);

int		 io_write(struct io *, const void *, size_t);
int		 io_printf(struct io *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
size_t		 io_queued(const struct io *);
/* IO_LOWAT fires when the queue drops below this (default 16 KB). */
void		 io_set_lowat(struct io *, size_t);

/*
 * Start TLS on the connection.  Client: sni (NULL = none; never an IP
 * address), verify_host (NULL = no host name check).  Verification of the
 * chain follows the SSL_CTX.  IO_TLS_DONE or IO_ERROR follows.
 * Buffered input at this point is a protocol violation the caller handles
 * (io_pending() before calling).
 */
int		 io_start_tls(struct io *, SSL_CTX *, bool client,
		    const char *sni, const char *verify_host);
/*
 * DANE (RFC 7672): the same as io_start_tls(io, ctx, true, ...) for a
 * client, with the TLSA records of dane given to OpenSSL
 * (SSL_dane_enable with dane->base: SNI and first reference identifier,
 * SSL_add1_host for the other names, SSL_dane_tlsa_add for each record).
 * ctx must not verify (tls_client_ctx_new(..., false)); the caller asks
 * after IO_TLS_DONE: io_tls_dane_usable(), io_tls_dane_depth(),
 * io_tls_verified().  DANE-EE skips name checks (RFC 7672 §3.1.1).
 */
struct io_tls_dane {
	const char		*base;		/* TLSA base domain: the MX host */
	const char *const	*names;		/* more reference identifiers */
	size_t			 nnames;
	const struct tlsa_rr	*rr;		/* the records (any usage) */
	size_t			 nrr;
};
int		 io_start_tls_dane(struct io *, SSL_CTX *,
		    const struct io_tls_dane *);
/*
 * Records OpenSSL took as usable (usage 2/3 only); -1: not a DANE session.
 * 0: DANE is off on that session, which is TLS without authentication.
 */
int		 io_tls_dane_usable(const struct io *);
/* After the handshake: depth of the DANE match (0 EE, >0 TA), -1 none. */
int		 io_tls_dane_depth(const struct io *);
/* SSL_get_verify_result() (X509_V_OK = 0), -1 when no TLS session. */
long		 io_tls_verify_error(const struct io *);
bool		 io_tls_active(const struct io *);
const char	*io_tls_version(const struct io *);	/* "TLSv1.3", or NULL */
/*
 * Whether the peer's certificate chain and name were verified; for a DANE
 * session with usable records: whether a TLSA record matched.
 */
bool		 io_tls_verified(const struct io *);
const char	*io_tls_verify_text(const struct io *);	/* why not, or "ok" */

/*
 * What a TLS session (or a handshake that failed, asked from inside its
 * IO_ERROR) showed of the peer, for diagnostics (mxrelay route).  Texts
 * are as OpenSSL gives them, not escaped; "" when unknown.
 */
struct io_tls_peer {
	char		 version[32];	/* "TLSv1.3" */
	char		 cipher[64];	/* "TLS_AES_256_GCM_SHA384" */
	bool		 have_cert;
	char		 subject[256];	/* "/CN=mx.example.org" */
	char		 issuer[256];
	char		 not_after[32];	/* "2026-12-04T02:31:00Z" */
	bool		 chain_ok;	/* the chain verified (and the name, when set) */
	char		 verify_text[128];	/* "ok", or why not */
	int		 name_match;	/* name in the certificate: 1, 0; -1 unknown */
	char		 dane[64];	/* "3 1 1 matched at depth 0", or "" */
};
/*
 * Fill *p from the connection's TLS session; name: the name the
 * certificate should carry (a host name or an IP address; NULL: none).
 * -1 when TLS was never started on it.
 */
int		 io_tls_peer(const struct io *, const char *name,
		    struct io_tls_peer *p);

const char	*io_error(const struct io *);
int		 io_fd(const struct io *);

#endif
