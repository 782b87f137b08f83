/*
 * smtpd: the SMTP listener of mxrelayd (mxrelayd(8), THE SMTP LISTENER),
 * and the local sessions of mxrelay -bs on the same code
 * (smtpd_session_fds()).  The users file for AUTH is in smtpd_auth.h.
 *
 * ESMTP (RFC 5321) with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME
 * (RFC 6152), SMTPUTF8 (RFC 6531: UTF-8 local parts in a transaction
 * whose MAIL says SMTPUTF8; domains stay ASCII, A-labels),
 * ENHANCEDSTATUSCODES (RFC 2034/3463), STARTTLS (RFC 3207)
 * when a server TLS context is given, and AUTH PLAIN/LOGIN (RFC 4954,
 * 4616) only once TLS is active and a users file is given.
 *
 * Only clients inside relay_clients, and authenticated users, may give
 * recipients; anyone else gets 554 5.7.1 at RCPT and nothing is queued.
 * A message is written to the spool while it arrives and 250 is sent
 * only after queue_new_commit() returned; then the queued callback runs.
 *
 * Sessions always read the current parameters through the smtpd (never
 * a copy of a pointer), so smtpd_set_params() may swap them between two
 * loop iterations and the caller may then free the old ones.
 */
#ifndef MXRELAY_SMTPD_H
#define MXRELAY_SMTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "confval.h"
#include "envelope.h"
#include "event.h"
#include "smtpd_auth.h"

struct dkim_keys;
struct queue;
struct smtpd;

struct smtpd_params {
	const char		*hostname;	/* greeting, EHLO, Received: by */
	const char		*qualify_domain;/* for RCPT TO:<user> without @ */
	uint64_t		 max_size;	/* SIZE; the DATA limit (0 = none) */
	/* a bare LF in DATA from a relay client, a user or a local session */
	enum bare_lf_policy	 bare_lf;
	unsigned		 max_recipients;
	unsigned		 max_clients;	/* more: 421 4.7.0 and close */
	unsigned		 cmd_timeout_ms;	/* waiting for a command */
	unsigned		 data_timeout_ms;	/* waiting for DATA bytes */
	/*
	 * The limits that keep the listener's slots for those it serves
	 * (mxrelay.conf(5), Listener).  An outsider is a client of the
	 * listener that is neither in relay_clients nor authenticated.
	 */
	unsigned		 idle_timeout_ms;	/* an outsider, before MAIL */
	unsigned		 tls_timeout_ms;	/* the STARTTLS handshake */
	unsigned		 session_deadline_ms;	/* whole session; 0: none */
	unsigned		 max_per_address;	/* outsiders' connections
						   per address; 0: none */
	unsigned		 junk_limit;	/* an outsider's NOOP RSET HELP
					   VRFY and unknown commands;
					   0: none */
	const struct cidr	*relay_clients;
	size_t			 nrelay_clients;
	SSL_CTX			*tls_ctx;	/* NULL: no STARTTLS */
	const struct smtpd_users *users;	/* NULL: no AUTH */
	unsigned		 auth_fail_limit;	/* per address; 0: none */
	unsigned		 auth_fail_window_ms;	/* 0: the default */
	unsigned		 auth_fail_delay_max_ms;	/* 0: no delay */
	/*
	 * Add a missing Date: and Message-ID: to a message from a relay
	 * client, an authenticated user or a local session (never from
	 * an outsider).
	 */
	bool			 add_missing_headers;
	/*
	 * DKIM keys (dkim_keys.h): each message is signed as it is stored,
	 * the signature made at its commit.  NULL: none.  A message holds
	 * a reference, so the set may be replaced with the parameters.
	 */
	struct dkim_keys	*dkim;
};

/*
 * The struct is copied; what it points to (strings, CIDRs, SSL_CTX, users)
 * must stay valid until the next smtpd_set_params() or smtpd_free().
 * max_recipients, max_clients, session_deadline_ms, max_per_address and
 * junk_limit 0 mean no limit; a timeout of 0 means its default below;
 * hostname NULL is "localhost", qualify_domain NULL is hostname.
 *
 * AUTH failures are counted per client address, and forgotten
 * auth_fail_window_ms after the last one (0: SMTPD_AUTH_FAIL_WINDOW_MS).
 * The reply to the n-th failure is delayed by 2^(n-1) s, at most
 * auth_fail_delay_max_ms; an address with auth_fail_limit failures gets
 * 454 4.7.0 to AUTH until they are forgotten.
 */

/*
 * Defaults for the timeouts (RFC 5321 §4.5.3.2.7: at least 5 minutes for
 * commands and data; outsiders that have not begun a transaction, and
 * TLS handshakes, get less).
 */
#define SMTPD_CMD_TIMEOUT_MS	(300 * 1000)
#define SMTPD_DATA_TIMEOUT_MS	(300 * 1000)
#define SMTPD_IDLE_TIMEOUT_MS	(60 * 1000)
#define SMTPD_TLS_TIMEOUT_MS	(60 * 1000)
#define SMTPD_AUTH_FAIL_WINDOW_MS	(30 * 60 * 1000)

/*
 * A message was committed to the spool (env->id is set), before the 250.
 * The callback may call smtpd_shutdown() but not smtpd_free().
 */
typedef void (*smtpd_queued_cb)(void *arg, const struct envelope *env);

struct smtpd	*smtpd_new(struct ev_loop *, struct queue *,
		    const struct smtpd_params *, smtpd_queued_cb, void *arg);
/* Stop everything: sessions are closed, unfinished messages thrown away. */
void		 smtpd_free(struct smtpd *);
void		 smtpd_set_params(struct smtpd *, const struct smtpd_params *);
/*
 * Make messages durable (queue_new_commit: fsyncs, renames) in n worker
 * threads instead of in the loop, so that the loop goes on serving other
 * clients meanwhile; the session waits for its reply in order.  Without
 * it (or n = 0) commits run inline.  -1 when the threads cannot start.
 */
int		 smtpd_commit_threads(struct smtpd *, unsigned n);

/*
 * Accept clients on a bound, listening, non-blocking socket (taken over:
 * closed by smtpd_shutdown()/smtpd_free(), or at once when this fails,
 * with errno; ESHUTDOWN after smtpd_shutdown()).
 */
int		 smtpd_listen(struct smtpd *, int fd);
/*
 * Shutting down: close the listening sockets; sessions between commands
 * get "421 4.3.2" and are closed; a session in DATA may finish its
 * message (its reply is sent), then gets 421 and is closed.
 */
void		 smtpd_shutdown(struct smtpd *);
unsigned	 smtpd_nsessions(const struct smtpd *);

/*
 * A local session (mxrelay -bs): one SMTP session over a pair of open
 * descriptors that need not be a socket: infd may be a pipe, a tty, a
 * regular file or /dev/null, outfd a pipe, a tty or a file (they may be
 * the same descriptor).  It runs the same session code, limits and DATA
 * rules as the listener, with these differences:
 * - the user is trusted: any recipient is accepted (as relay_clients);
 * - STARTTLS and AUTH are neither offered nor accepted;
 * - max_clients does not apply;
 * - the Received: field names the user instead of a client address:
 *	Received: from user NAME (uid N)
 *		by HOST (mxrelay) with ESMTP id ID
 *		for <RCPT>; DATE
 *   ("from uid N" when there is no user name, or one that is unsafe in a
 *   header field);
 * - committed envelopes get submit_uid = uid and submit_user = user;
 * - the end of the input ends the session, once every command before it
 *   has been answered; an unfinished message is thrown away.
 * The descriptors are not closed.  Pollable ones are made non-blocking
 * while the session runs and get their file status flags back before
 * done() is called (or in smtpd_free()).  SIGPIPE must be ignored.
 */
struct smtpd_local_end {
	unsigned	 queued;	/* messages committed to the spool */
	bool		 quit;		/* ended by QUIT */
	bool		 eof;		/* ended by the end of the input */
	bool		 in_txn;	/* ... inside a transaction (MAIL given,
					   the message not finished) */
	bool		 timeout;	/* 421 after a timeout */
	bool		 error_limit;	/* 421 after too many bad commands */
	bool		 io_error;	/* reading infd/writing outfd failed */
	int		 spool_err;	/* errno of the last failed spool
					   operation (its 451/452), or 0 */
};

struct smtpd_local {
	uint32_t	 uid;		/* the submitting user */
	const char	*user;		/* login name (copied); NULL: none */
	/*
	 * Called once from the loop when the session is over and its last
	 * reply is written out (or cannot be).  It may call smtpd_free().
	 */
	void		(*done)(void *arg, const struct smtpd_local_end *);
	void		*arg;
};

/*
 * Start a local session on the loop (one at a time per smtpd).  0, or -1
 * with errno (EBUSY: one runs already; ESHUTDOWN after smtpd_shutdown()).
 */
int		 smtpd_session_fds(struct smtpd *, int infd, int outfd,
		    const struct smtpd_local *);

#endif
