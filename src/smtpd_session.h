/*
 * smtpd_session: internal to the SMTP listener, shared by its files and
 * included by nothing else:
 *	smtpd.c		the listener, sessions, the command table
 *	smtpd_local.c	local sessions (mxrelay -bs): the pump
 *	smtpd_commit.c	DATA and the commit of a message to the spool
 *	smtpd_auth.c	AUTH (the exchange; the users file and the pure
 *			decoders are its public part, smtpd_auth.h)
 * The pure parsers are in smtpd_parse.c.  The public interface is
 * smtpd.h; ARCHITECTURE.md places the module in its layer.
 */
#ifndef MXRELAY_SMTPD_SESSION_H
#define MXRELAY_SMTPD_SESSION_H

#include <sys/queue.h>

#include <netinet/in.h>

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "hash.h"
#include "message.h"
#include "msg_stream.h"
#include "smtp_proto.h"
#include "smtpd.h"
#include "smtpd_parse.h"
#include "util.h"

#define SMTPD_DATA_CHUNK	16384	/* input fed to the unstuffer at once */
#define SMTPD_LOCAL_BUF		16384	/* pump buffer, each direction */

/* The states; smtpd.c says what each one means. */
enum session_state {
	S_CMD,
	S_AUTH,
	S_DATA,
	S_TLS,
	S_COMMIT,	/* the message is being made durable (worker thread) */
	S_AUTH_WAIT,	/* AUTH: the password checked (worker), or a delay */
	S_CLOSING,
};

enum auth_step {
	AUTH_PLAIN,		/* waiting for the PLAIN response */
	AUTH_LOGIN_USER,	/* waiting for the LOGIN user name */
	AUTH_LOGIN_PASS,	/* waiting for the LOGIN password */
};

struct addr_count;

struct session {
	TAILQ_ENTRY(session) entry;
	struct smtpd	*sd;
	struct io	*io;
	enum session_state state;
	char		 addr[INET6_ADDRSTRLEN];
	unsigned	 port;
	int		 family;
	unsigned char	 rawaddr[16];	/* in_addr or in6_addr */
	char		 peer[160];	/* logs: "[addr]:port", or the user */
	struct local	*lc;		/* a local session's pump; else NULL */

	char		 helo[SMTPD_HELO_MAX + 1];	/* "" before HELO/EHLO */
	bool		 esmtp;		/* EHLO (not HELO) */
	char		*auth_user;	/* authenticated as; NULL if not */
	enum auth_step	 auth_step;
	char		*auth_login;	/* LOGIN: the user name given */
	unsigned	 auth_fails;
	struct auth_check *auth_check;	/* S_AUTH_WAIT: the check */
	unsigned	 errors;
	unsigned	 junk;		/* junk commands (an outsider's) */
	unsigned	 ncmds;
	struct addr_count *ac;	/* its address's count; NULL if local */
	uint64_t	 start_ms;	/* connected (ev_now) */
	bool		 blocked;	/* too many replies waiting */
	bool		 closing_pending;	/* shutdown after this message */

	/* The mail transaction. */
	char		*sender;	/* NULL before MAIL */
	struct strlist	 rcpts;
	bool		 smtputf8;	/* MAIL gave SMTPUTF8 (RFC 6531) */
	bool		 addr8bit;	/* a non-ASCII sender or recipient */

	/* DATA. */
	struct queue_new *qn;
	struct smtp_unstuff unstuff;
	struct msg_hops	 hops;
	struct msg_stream hdr;		/* Date, Message-ID, UTF-8 fields */
	struct dkim_signer *dkim;	/* sees what qn stores; NULL: none */
	uint64_t	 dsize;
	bool		 too_big;
	int		 spool_err;	/* errno of a failed spool call, or 0 */

	struct commit	*commit;	/* S_COMMIT: the job in a worker */

	struct ev_timer	 close_timer;
	struct ev_timer	 deadline_timer;	/* session_deadline_ms */
};

/*
 * A local session's pump: infd -> ibuf -> sv and sv -> obuf -> outfd, sv
 * being our end of the socketpair whose other end the session's io owns.
 */
struct local {
	struct smtpd	*sd;
	struct session	*s;		/* NULL once the session is gone */
	uint32_t	 uid;
	char		*user;		/* NULL: none */
	void		(*done)(void *, const struct smtpd_local_end *);
	void		*arg;
	struct smtpd_local_end end;

	int		 infd, outfd, sv;	/* sv -1 once closed */
	int		 in_fl, out_fl;	/* file status flags to restore */
	bool		 in_setfl, out_setfl;	/* we changed them */
	bool		 in_poll, out_poll;	/* epoll can watch them */
	int		 in_ev, out_ev, sv_ev;	/* registered interest */
	bool		 in_eof;	/* infd ended (or failed) */
	bool		 in_shut;	/* the EOF was passed to the session */
	bool		 sv_eof;	/* all the session's output was read */
	bool		 out_err;	/* outfd failed: output is dropped */
	struct ev_timer	 timer;
	size_t		 ipos, ilen, opos, olen;
	char		 ibuf[SMTPD_LOCAL_BUF];
	char		 obuf[SMTPD_LOCAL_BUF];
};

struct smtpd {
	struct ev_loop	*loop;
	struct queue	*q;
	struct smtpd_params p;
	smtpd_queued_cb	 cb;
	void		*arg;
	struct listener	**listeners;
	size_t		 nlisteners;
	bool		 accept_paused;
	struct ev_timer	 pause_timer;
	bool		 shutting_down;
	TAILQ_HEAD(, session) sessions;
	unsigned	 nsessions;
	struct hash	 addrs;		/* struct addr_count by client address */
	struct workq	*wq;		/* commits off the loop; NULL = inline */
	struct authfail	*authfail;	/* AUTH failures per address */
	bool		 freeing;
	struct local	*local;		/* the local session, if one runs */
	char		 dbuf[SMTPD_DATA_CHUNK + 1];	/* unstuffer output */
};

/* smtpd.c: sessions and replies. */
struct session	*smtpd_session_alloc(struct smtpd *, int fd);
void		 smtpd_session_input(struct session *);
void		 smtpd_session_closing(struct session *);
void		 smtpd_session_reset_txn(struct session *);
/* Set the io timeout that the session's state and client call for. */
void		 smtpd_session_timeout(struct session *);
/* It authenticated: out of its address's connection count. */
void		 smtpd_session_trusted(struct session *);
/* May it give recipients: a relay client, a user or a local session? */
bool		 smtpd_session_relay_ok(const struct session *);
/* A reply line (CRLF added) queued on the session's io. */
void		 smtpd_reply(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
/* A reply to a bad command: counts towards the error limit. */
void		 smtpd_reply_error(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* smtpd_local.c: what the session tells its pump. */
void		 smtpd_local_eof_check(struct local *);
void		 smtpd_local_session_gone(struct local *, bool in_txn);
void		 smtpd_local_spool_err(struct session *, int);
/* Everything but the struct's memory, without a word to the owner. */
void		 smtpd_local_release(struct local *);

/* smtpd_commit.c: DATA (the command and its bytes), the commit. */
void		 smtpd_data_begin(struct session *, char *arg);
void		 smtpd_data_input(struct session *);
void		 smtpd_data_drop(struct session *);
/* The session goes while its message is being committed. */
void		 smtpd_commit_detach(struct commit *);

/* smtpd_auth.c: the AUTH exchange (RFC 4954). */
void		 smtpd_auth_begin(struct session *, char *arg);
void		 smtpd_auth_input(struct session *, char *line, size_t len,
		    bool too_long);
void		 smtpd_auth_reset(struct session *);
/* The session goes (or shuts down) while its AUTH waits: forget it. */
void		 smtpd_auth_detach(struct session *);

#endif
