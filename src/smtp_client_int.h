/*
 * smtp_client_int: what the three files of the SMTP client share, and
 * nothing for other modules (they use smtp_client.h).
 *  - smtp_client.c: the interface, the event entry points, the state
 *    machine (smtpc_enter_state(), smtpc_on_reply()), reasons, and how a
 *    session ends;
 *  - smtp_client_start.c: setting a session up (greeting, EHLO or HELO,
 *    STARTTLS, AUTH) until it is ready;
 *  - smtp_client_tx.c: transactions (RSET, MAIL, RCPT, DATA, with or
 *    without PIPELINING), the body, the results per recipient.
 */
#ifndef MXRELAY_SMTP_CLIENT_INT_H
#define MXRELAY_SMTP_CLIENT_INT_H

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"
#include "smtp_client.h"
#include "smtp_proto.h"

enum smtpc_state {
	SMTPC_INIT,
	SMTPC_CONNECT,
	SMTPC_GREETING,
	SMTPC_EHLO,
	SMTPC_HELO,
	SMTPC_STARTTLS,
	SMTPC_TLS,		/* handshake running */
	SMTPC_AUTH_PLAIN,
	SMTPC_AUTH_LOGIN,
	SMTPC_AUTH_USER,
	SMTPC_AUTH_PASS,
	SMTPC_READY,
	SMTPC_RSET,
	SMTPC_MAIL,
	SMTPC_RCPT,
	SMTPC_DATA,
	SMTPC_BODY,
	SMTPC_DOT,
	SMTPC_QUIT,
	SMTPC_CLOSED,
};

/* Per recipient, during a transaction. */
enum smtpc_rstate {
	SMTPC_R_PENDING,
	SMTPC_R_ACCEPTED,
	SMTPC_R_REFUSED,
	SMTPC_R_INVALID,	/* never sent: not a usable path */
};

struct smtpc {
	struct ev_loop		*loop;
	struct io		*io;
	const struct smtpc_ops	*ops;
	void			*arg;
	struct smtpc_params	 p;	/* strings below are our copies */
	char			*helo_name;
	char			*peer_name;
	char			*verify_name;	/* p.verify_name or peer_name */
	char			*auth_user;
	char			*auth_pass;
	char			 peer_text[NI_MAXHOST * 2 + NI_MAXSERV + 8];

	enum smtpc_state	 state;
	struct smtp_reply	 reply;
	/* The last complete reply: its code, status and text. */
	int			 last_code;
	char			 last_status[STATUS_MAX];
	char			 last_reply[SMTPC_REPLY_MAX];
	struct smtp_ehlo	 ehlo;
	bool			 starttls_refused;	/* 4xx/5xx under may */
	bool			 starttls_failed;	/* none, or refused */
	bool			 server_closing;	/* got a 421 */
	char			 tls_version[32];
	bool			 tls_active;
	bool			 tls_verified;
	bool			 tls_dane;	/* a TLSA record matched */
	long			 tls_verify_error;	/* -1: unknown */
	int			 dane_usable;	/* io_tls_dane_usable() */
	/* Our copy of *p.dane (p.dane points at dane): names, records. */
	struct io_tls_dane	 dane;
	unsigned		 msgs_sent;
	bool			 need_rset;

	/* The transaction, while msg != NULL. */
	const struct smtpc_msg	*msg;
	struct smtpc_result	 res;
	struct smtpc_rcpt_result *rcpt;
	unsigned char		*rstate;	/* enum smtpc_rstate */
	size_t			 rcpt_next;	/* next reply is for this one */
	size_t			 rcpt_send;	/* unpipelined: next to send */
	size_t			 naccepted;
	bool			 pipelined;
	bool			 mail_ok;
	bool			 dot_abort;	/* "." sent only to end a 354 */
	uint64_t		 body_off;
	size_t			 prefix_off;	/* of msg->prefix sent */
	bool			 body_eof;
	struct smtp_stuff	 stuff;

	/* A failure to report when QUIT is answered, or from `defer`. */
	struct smtpc_reason	 fail;
	bool			 failing;
	char			 errbuf[SMTPC_REPLY_MAX / 2];

	struct ev_timer		 defer;
	unsigned		 defer_what;
#define SMTPC_DEFER_DONE	0x01	/* tx result ready without I/O */
#define SMTPC_DEFER_FAIL	0x02	/* close with fail_* */

	unsigned		 busy;
	bool			 dead;
	bool			 up;		/* was ready once (metrics) */
	struct smtpc_seen	 seen;		/* for smtpc_seen() */
};

/* smtp_client.c: the state machine, reasons, the end of a session. */
void		 smtpc_enter_state(struct smtpc *, enum smtpc_state);
enum outcome	 smtpc_outcome_of(int);
void		 smtpc_write(struct smtpc *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
const char	*smtpc_io_error(struct smtpc *);
void		 smtpc_reason_reply(const struct smtpc *, enum outcome,
		    enum smtpc_stage, struct smtpc_reason *);
void		 smtpc_reason_set(struct smtpc_reason *, enum outcome,
		    enum smtpc_stage, enum smtpc_cause, const char *, ...)
		    __attribute__((format(printf, 5, 6)));
void		 smtpc_fail(struct smtpc *, enum smtpc_cause, enum smtpc_stage,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
void		 smtpc_fail_reply(struct smtpc *, enum smtpc_stage);
void		 smtpc_quit_fail(struct smtpc *, const struct smtpc_reason *);
void		 smtpc_quit_fail_reply(struct smtpc *, enum outcome,
		    enum smtpc_stage);
void		 smtpc_quit_fail_local(struct smtpc *, enum smtpc_cause,
		    enum smtpc_stage, const char *);
void		 smtpc_defer_fail_local(struct smtpc *, enum smtpc_cause,
		    enum smtpc_stage, const char *, ...)
		    __attribute__((format(printf, 4, 5)));

void		 smtpc_seen_tls(struct smtpc *);

/* smtp_client_start.c: replies and commands until the session is ready. */
void		 smtpc_on_greeting(struct smtpc *);
void		 smtpc_on_ehlo(struct smtpc *);
void		 smtpc_on_helo(struct smtpc *);
void		 smtpc_on_starttls(struct smtpc *);
void		 smtpc_on_tls_done(struct smtpc *);
void		 smtpc_on_auth(struct smtpc *);
void		 smtpc_on_auth_login(struct smtpc *);
void		 smtpc_send_auth_plain(struct smtpc *);
void		 smtpc_send_auth_login(struct smtpc *, enum smtpc_state);

/* smtp_client_tx.c: one transaction. */
void		 smtpc_send_mail(struct smtpc *);
void		 smtpc_send_rcpt(struct smtpc *, size_t);
void		 smtpc_body_fill(struct smtpc *);
void		 smtpc_on_rset(struct smtpc *);
void		 smtpc_on_mail(struct smtpc *);
void		 smtpc_on_rcpt(struct smtpc *);
void		 smtpc_on_data(struct smtpc *);
void		 smtpc_on_dot(struct smtpc *);
void		 smtpc_tx_fail(struct smtpc *, const struct smtpc_reason *);
void		 smtpc_tx_done(struct smtpc *);

#endif
