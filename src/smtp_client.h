/*
 * smtp_client: one outbound SMTP session to one address (RFC 5321).
 * Greeting, EHLO (HELO fallback), STARTTLS per policy then EHLO again,
 * optional AUTH, then any number of transactions (RSET after one that did
 * not reach the end of data), QUIT.
 * PIPELINING (MAIL, RCPTs, DATA in one write), SIZE, 8BITMIME,
 * dot-stuffing, RFC 5321 §4.5.3.2 timeouts.  Knows nothing of the spool:
 * a body fd and recipients in, results out.
 *
 * Life cycle:
 *	s = smtpc_new(loop, addr, params, ops, arg)
 *	-> ops->ready(arg, s)			session up, may send
 *	   smtpc_send(s, &msg)			one transaction
 *	-> ops->done(arg, s, &result)		per-recipient results
 *	   smtpc_send() again, or smtpc_quit(s)
 *	-> ops->closed(arg, s, &why)		session over (always last)
 * A failure before ready (connect, greeting, EHLO, STARTTLS, AUTH) or
 * between transactions ends in ops->closed with its reason.  Once closed
 * has run the owner calls smtpc_free(); it is safe to call smtpc_free()
 * from inside closed, and smtpc_free() at any other time aborts the
 * session without callbacks.
 *
 * Every result is typed (struct smtpc_reason): the outcome, the stage, a
 * cause, the reply code and enhanced status when the server replied, and
 * a text that is for logs and DSNs only.  Callers decide on the fields,
 * never on the text.
 */
#ifndef MXRELAY_SMTP_CLIENT_H
#define MXRELAY_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "confval.h"
#include "event.h"
#include "io.h"
#include "outcome.h"
#include "status.h"

#define SMTPC_REPLY_MAX	512

struct smtpc_params {
	const char	*helo_name;	/* our host name for EHLO */
	const char	*peer_name;	/* MX host name: SNI, verify, logs */
	enum tls_policy	 tls;		/* none, may, encrypt, verify */
	SSL_CTX		*tls_ctx;	/* client context; NULL when tls == none */
	/*
	 * The name the certificate must match, under verify and for AUTH
	 * (a relayhost's configured name); also sent as SNI.  NULL: peer_name.
	 */
	const char	*verify_name;
	const char	*auth_user;	/* AUTH PLAIN/LOGIN over TLS only; NULL = none */
	const char	*auth_pass;
	/*
	 * false: AUTH only over TLS whose chain was verified and whose
	 * certificate matched verify_name; otherwise the session ends before
	 * AUTH (TEMPFAIL, stage AUTH, cause TLS, 4.7.0).  true: over any TLS,
	 * with a warning in the log (relayhost_auth_tls = encrypt).  Never in
	 * clear either way.
	 */
	bool		 auth_unverified;
	/*
	 * DANE (RFC 7672): the exchanger's secure TLSA records; NULL: none.
	 * With it, tls must be TLS_VERIFY and tls_ctx a context that does
	 * not verify.  STARTTLS is then mandatory (4.7.4 without it); after
	 * the handshake the peer must match a record (else the session ends
	 * before MAIL: TEMPFAIL, stage STARTTLS, cause TLS, 4.7.5).  When
	 * OpenSSL found none of the records usable, TLS is still required
	 * but not authenticated (RFC 7672 §2.2), as under encrypt.  Never a
	 * retry in clear.  smtpc_new() copies the records and names.
	 */
	const struct io_tls_dane *dane;
	struct smtpc_timeouts timeouts;	/* ms (confval.h) */
};

struct smtpc_msg {
	const char	*sender;	/* "" = null sender */
	const char	**rcpts;
	size_t		 nrcpt;
	/*
	 * The body: size - prefix_len bytes from offset 0 (the file may
	 * hold more after them: the spool's message file).  Not closed.
	 */
	int		 body_fd;
	uint64_t	 size;		/* body bytes, for SIZE= (prefix too) */
	bool		 eightbit;	/* body has 8-bit bytes: BODY=8BITMIME */
	/*
	 * A UTF-8 address or header field (RFC 6531): MAIL ... SMTPUTF8;
	 * to a server that does not offer it, nothing is sent and every
	 * recipient fails (PERMFAIL, stage MAIL, cause LOCAL, 5.6.7).
	 */
	bool		 smtputf8;
	/*
	 * Bytes sent before body_fd's, dot-stuffed with them: the
	 * DKIM-Signature header field(s) made at intake.  NULL: none.
	 */
	const char	*prefix;
	size_t		 prefix_len;
};

/* Where a transaction ended. */
enum smtpc_stage {
	SMTPC_STAGE_CONNECT,
	SMTPC_STAGE_GREETING,
	SMTPC_STAGE_EHLO,
	SMTPC_STAGE_STARTTLS,
	SMTPC_STAGE_AUTH,
	SMTPC_STAGE_MAIL,
	SMTPC_STAGE_RCPT,
	SMTPC_STAGE_DATA,	/* the 354 */
	SMTPC_STAGE_DOT,	/* the reply to the end of data */
	SMTPC_STAGE_QUIT,
};

/*
 * Why a recipient, a transaction or a session ended as it did.  Only
 * SMTPC_CAUSE_REPLY carries a reply code; the others say why there was
 * none (or why it was not acted on).
 */
enum smtpc_cause {
	SMTPC_CAUSE_NONE = 0,	/* not set: no session had a say */
	SMTPC_CAUSE_REPLY,	/* the server's reply: code, status */
	SMTPC_CAUSE_CONNECT,	/* the TCP connection could not be made
				 * (refused, unreachable, timed out) */
	SMTPC_CAUSE_TLS,	/* TLS: the handshake failed or timed out,
				 * STARTTLS missing under encrypt/verify, the
				 * peer not verified under verify, or not
				 * verified enough for our credentials */
	SMTPC_CAUSE_TIMEOUT,	/* no reply, or no progress sending the
				 * body, in time (RFC 5321 §4.5.3.2) */
	SMTPC_CAUSE_LOST,	/* the connection closed or failed */
	SMTPC_CAUSE_PROTOCOL,	/* the server broke the protocol */
	SMTPC_CAUSE_LOCAL,	/* our side: an address we do not send, a
				 * body we cannot read, a message over the
				 * server's SIZE, our TLS or AUTH settings */
};

struct smtpc_reason {
	enum outcome	 outcome;
	enum smtpc_stage stage;		/* where */
	enum smtpc_cause cause;		/* why */
	int		 code;		/* the reply's code; 0 unless REPLY */
	/* RFC 3463 code of that reply, or one we set (5.3.4), or "" */
	char		 status[STATUS_MAX];
	/* "550 5.1.1 ..." or a local reason, escaped, one line: for logs
	 * and DSNs only */
	char		 text[SMTPC_REPLY_MAX];
};

struct smtpc_rcpt_result {
	/* The RCPT reply; for accepted recipients the reply to DATA or the
	 * end of data, or the failure of the transaction after RCPT. */
	struct smtpc_reason why;
	bool		 accepted;	/* 2xx to its RCPT */
};

struct smtpc_result {
	/*
	 * Transaction level: OK when the message was accepted for at least
	 * one recipient.  Otherwise stage says where it failed:
	 *  MAIL 4xx/5xx, DATA/DOT 4xx/5xx, a connection lost or timed out
	 *  (TEMPFAIL, stage where it happened), SIZE over the server's limit
	 *  (PERMFAIL, stage MAIL, cause LOCAL, no command sent).  RCPT: every
	 *  recipient was refused (see rcpt[]).
	 */
	struct smtpc_reason why;
	/* One per recipient, in msg order. */
	struct smtpc_rcpt_result *rcpt;
	size_t		 nrcpt;
};

struct smtpc;

struct smtpc_ops {
	void	(*ready)(void *arg, struct smtpc *);
	void	(*done)(void *arg, struct smtpc *, const struct smtpc_result *);
	void	(*closed)(void *arg, struct smtpc *,
		    const struct smtpc_reason *);
};

void		 smtpc_timeouts_default(struct smtpc_timeouts *);
struct smtpc	*smtpc_new(struct ev_loop *, const struct sockaddr *, socklen_t,
		    const struct smtpc_params *, const struct smtpc_ops *,
		    void *arg);
/* Only after ready or done; msg and what it points to must stay valid until done. */
int		 smtpc_send(struct smtpc *, const struct smtpc_msg *);
/* QUIT politely; closed follows. */
void		 smtpc_quit(struct smtpc *);
void		 smtpc_free(struct smtpc *);

/* For log lines: "TLSv1.3" or "none", whether the peer was verified. */
const char	*smtpc_tls_version(const struct smtpc *);
bool		 smtpc_tls_active(const struct smtpc *);
bool		 smtpc_tls_verified(const struct smtpc *);
/*
 * How the peer was authenticated: "dane" (a TLSA record matched),
 * "verified" (the chain and name, WebPKI), "unverified" (TLS without
 * it), "none" (no TLS).
 */
const char	*smtpc_tls_auth(const struct smtpc *);
/*
 * The RFC 8460 §4.3 result type of this session's TLS problem, whether
 * or not the policy made it fatal (MTA-STS testing mode logs it):
 * "starttls-not-supported" (not offered, or refused), "validation-failure"
 * (the handshake failed, or no TLSA record matched),
 * "certificate-host-mismatch", "certificate-expired",
 * "certificate-not-trusted" (the chain or name did not verify against the
 * context's CA store and the session's verify name), "tlsa-invalid"
 * (DANE: none of the TLSA records was usable, RFC 8460 §4.3.2.1).  NULL
 * when TLS is up and authenticated (dane or verified), or was never asked
 * for (tls none).
 */
const char	*smtpc_tls_failure(const struct smtpc *);
/* "reply", "connect", "tls", ...: for logs and tests. */
const char	*smtpc_cause_to_text(enum smtpc_cause);
/* "connect", "greeting", "ehlo", ..., "quit". */
const char	*smtpc_stage_to_text(enum smtpc_stage);
/* "host[addr]:port" */
const char	*smtpc_peer_text(const struct smtpc *);
/* Messages sent so far on this session (for the per-connection limit). */
unsigned	 smtpc_msgs_sent(const struct smtpc *);

/*
 * What the session saw of the server, for diagnostics (mxrelay route):
 * valid until smtpc_free(), also from inside closed().
 */
struct smtpc_seen {
	char		 banner[SMTPC_REPLY_MAX];	/* the greeting, escaped */
	bool		 ehlo_done;	/* EHLO (or HELO) in clear answered 2xx */
	char		 ehlo[SMTPC_REPLY_MAX];		/* that reply, escaped */
	unsigned	 ext;		/* its SMTP_EXT_* keywords */
	bool		 tls_tried;	/* STARTTLS answered 220 */
	bool		 tls_done;	/* the handshake succeeded */
	struct io_tls_peer tls;		/* once tried: what the peer showed */
};
const struct smtpc_seen *smtpc_seen(const struct smtpc *);

#endif
