/*
 * smtpd: the SMTP listener of mxrelayd (SPEC "The SMTP listener").
 *
 * Owns the listening sockets, the relay ACL, AUTH, and one server session
 * per client with a table of commands (OpenSMTPD smtp_session.c shape).
 *
 * Session states:
 *	S_CMD		waiting for a command line (io in line mode, 512 octets)
 *	S_AUTH		waiting for an AUTH continuation line (same limit)
 *	S_DATA		after 354: io in raw mode, bytes go through the
 *			streaming unstuffer (smtp_proto.c) into the spool
 *	S_TLS		STARTTLS handshake running (no input is looked at)
 *	S_CLOSING	a last reply (221, 421) is being flushed; input ignored;
 *			the session goes when the write queue is empty or after
 *			SMTPD_CLOSE_WAIT_MS
 *
 * Invariants
 * - Buffered commands are taken in order and their replies queued in order
 *   (PIPELINING, RFC 2920); the io layer flushes them from the loop.  When
 *   more than SMTPD_WQ_HIWAT bytes of replies wait (a client that sends
 *   and never reads), commands are not taken until IO_LOWAT, so the read
 *   buffer fills and reading stops: memory stays bounded.
 * - A message is streamed to the spool while it arrives; the whole body
 *   is never held in memory.  Any problem (violation of the DATA syntax,
 *   too big, too many hops, a spool error) aborts the spool file at once
 *   and the rest of the data is read and dropped up to the real end of
 *   data, so one reply is given and the session stays in step.
 * - 250 is sent only after queue_new_commit() returned 0 and the queued
 *   callback ran.
 * - STARTTLS: input buffered behind the STARTTLS line is discarded, never
 *   executed; after the handshake the session is as before EHLO.
 * - Parameters are read through sd->p at each use, so smtpd_set_params()
 *   takes effect for every session at once.
 *
 * Local sessions (smtpd_session_fds(), mxrelay -bs) run the same session
 * code over one end of a socketpair; a pump ("struct local") moves bytes
 * between the other end and the caller's descriptors, which may be pipes,
 * ttys or regular files (those epoll cannot watch are read and written
 * as if always ready).  The io layer ends a session at once on EOF and
 * drops replies not yet written, so the end of the caller's input is
 * passed on (shutdown(SHUT_WR)) only once the session has read all the
 * bytes before it (FIONREAD) and its replies are out (io_queued() == 0):
 * every command before the EOF is answered.  s->lc is NULL for clients
 * of the listener, and every local branch tests it.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "envelope.h"
#include "event.h"
#include "io.h"
#include "log.h"
#include "message.h"
#include "smtp_proto.h"
#include "smtpd.h"
#include "workq.h"
#include "spool.h"
#include "util.h"

/* RFC 5321 §4.5.3.1.4: 512 octets with CRLF; two octets of slack. */
#define SMTPD_CMD_LINE_MAX	512
/* RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF. */
#define SMTPD_TEXT_LINE_MAX	(SMTP_TEXT_LINE_MAX + 2)
#define SMTPD_DATA_CHUNK	16384	/* input fed to the unstuffer at once */
#define SMTPD_WQ_HIWAT		65536	/* stop taking commands above this */
#define SMTPD_ERRORS_MAX	20	/* bad commands before 421 (Postfix) */
#define SMTPD_AUTH_FAILS_MAX	3
#define SMTPD_HOPS_MAX		100	/* more Received: fields = a loop */
#define SMTPD_CLOSE_WAIT_MS	2000	/* bound on flushing the last reply */
#define SMTPD_ACCEPT_PAUSE_MS	1000	/* after EMFILE/ENFILE */
#define SMTPD_HELO_MAX		255
#define SMTPD_USERS_LINE_MAX	4096
#define SMTPD_LOCAL_BUF		16384	/* pump buffer, each direction */
#define SMTPD_LOCAL_POLL_MS	20	/* waiting to pass the EOF on */

/* Checked against when a user is unknown, so that timing does not tell. */
#define SMTPD_DUMMY_HASH \
	"$6$mxrelaydummy$MnykwyN7Gi3sXZfd4s6m5za8L77zB1Bfmm7DVg.qruXWRisX6" \
	"Crta5AnfqzrYNdGd9ejoNHXfv9wXPOlvog2a1"

enum session_state {
	S_CMD,
	S_AUTH,
	S_DATA,
	S_TLS,
	S_COMMIT,	/* the message is being made durable (worker thread) */
	S_CLOSING,
};

enum auth_step {
	AUTH_PLAIN,		/* waiting for the PLAIN response */
	AUTH_LOGIN_USER,	/* waiting for the LOGIN user name */
	AUTH_LOGIN_PASS,	/* waiting for the LOGIN password */
};

/* Counting Received: fields in the header section as the body streams. */
struct hopscan {
	bool		 done;		/* past the header section */
	size_t		 pos;		/* octets of the current line so far */
	bool		 match;		/* the line so far matches "received:" */
	unsigned	 count;
};

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
	unsigned	 errors;
	unsigned	 ncmds;
	bool		 blocked;	/* too many replies waiting */
	bool		 closing_pending;	/* shutdown after this message */

	/* The mail transaction. */
	char		*sender;	/* NULL before MAIL */
	struct strlist	 rcpts;

	/* DATA. */
	struct queue_new *qn;
	struct smtp_unstuff unstuff;
	struct hopscan	 hops;
	uint64_t	 dsize;
	bool		 too_big;
	int		 spool_err;	/* errno of a failed spool call, or 0 */

	struct commit	*commit;	/* S_COMMIT: the job in a worker */

	struct ev_timer	 close_timer;
};

/* One message on its way to disk in a worker thread. */
struct commit {
	struct smtpd		*sd;
	struct session		*s;	/* NULL once the client is gone */
	struct queue_new	*qn;
	struct envelope		 env;
	int			 rc;
	int			 err;
};

struct listener {
	struct smtpd	*sd;
	int		 fd;
	bool		 registered;
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
	char		*rcvd_from;	/* "user NAME (uid N)" or "uid N" */
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
	struct workq	*wq;		/* commits off the loop; NULL = inline */
	bool		 freeing;
	struct local	*local;		/* the local session, if one runs */
	char		 dbuf[SMTPD_DATA_CHUNK + 1];	/* unstuffer output */
};

struct smtpd_user {
	char		*name;
	char		*hash;
};

struct smtpd_users {
	struct smtpd_user *v;
	size_t		 n;
};

/* Command table: verb, what it needs, what it does. */
#define CMD_NOARG	0x01	/* arguments are a syntax error */
#define CMD_NEEDARG	0x02	/* an argument is required */
struct smtpd_cmd {
	const char	*verb;
	unsigned	 flags;
	void		(*proceed)(struct session *, char *arg);
};

static void	 params_set(struct smtpd *, const struct smtpd_params *);
static void	 listener_on_fd(int, int, void *);
static void	 listeners_watch(struct smtpd *, bool);
static void	 listeners_close(struct smtpd *);
static void	 on_pause_timer(void *);
static void	 session_new(struct smtpd *, int, const struct sockaddr_storage *);
static struct session *session_alloc(struct smtpd *, int);
static void	 session_input_run(struct session *);
static void	 local_pump(struct local *);
static void	 local_on_fd(int, int, void *);
static void	 local_on_timer(void *);
static void	 local_eof_check(struct local *);
static void	 local_release(struct local *);
static void	 local_spool_err(struct session *, int);
static void	 session_free(struct session *);
static void	 session_on_io(struct io *, enum io_event, void *);
static void	 session_on_close_timer(void *);
static void	 session_input(struct session *);
static void	 session_line(struct session *, char *, size_t, bool);
static void	 session_closing(struct session *);
static void	 session_reset_txn(struct session *);
static void	 session_after_reply(struct session *);
static bool	 session_relay_ok(const struct session *);
static void	 vreply(struct session *, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));
static void	 reply(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 reply_error(struct session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 cmd_helo(struct session *, char *);
static void	 cmd_ehlo(struct session *, char *);
static void	 cmd_mail(struct session *, char *);
static void	 cmd_rcpt(struct session *, char *);
static void	 cmd_data(struct session *, char *);
static void	 cmd_rset(struct session *, char *);
static void	 cmd_noop(struct session *, char *);
static void	 cmd_quit(struct session *, char *);
static void	 cmd_help(struct session *, char *);
static void	 cmd_vrfy(struct session *, char *);
static void	 cmd_starttls(struct session *, char *);
static void	 cmd_auth(struct session *, char *);
static void	 auth_reset(struct session *);
static void	 auth_line(struct session *, char *, size_t, bool);
static void	 auth_plain(struct session *, const char *, size_t);
static void	 auth_finish(struct session *, const char *, const char *,
		    const char *);
static bool	 helo_ok(const char *);
static int	 parse_path(char *, const char *, char **, char **);
static bool	 route_strip(char **);
static char	*mailbox_get(struct session *, char *, char *, size_t);
static void	 data_input(struct session *);
static void	 data_out(struct session *, const char *, size_t);
static void	 data_drop(struct session *);
static void	 data_end(struct session *, enum smtp_unstuff_status);
static void	 commit_start(struct session *);
static void	 commit_done(void *);
static void	 data_commit(struct session *);
static void	 hops_scan(struct hopscan *, const char *, size_t);
static bool	 spool_full(int);
static bool	 ct_equal(const char *, const char *);

static const struct smtpd_cmd commands[] = {
	{ "HELO",	CMD_NEEDARG,	cmd_helo },
	{ "EHLO",	CMD_NEEDARG,	cmd_ehlo },
	{ "MAIL",	CMD_NEEDARG,	cmd_mail },
	{ "RCPT",	CMD_NEEDARG,	cmd_rcpt },
	{ "DATA",	CMD_NOARG,	cmd_data },
	{ "RSET",	CMD_NOARG,	cmd_rset },
	{ "NOOP",	0,		cmd_noop },	/* §4.1.1.9: may have one */
	{ "QUIT",	CMD_NOARG,	cmd_quit },
	{ "HELP",	0,		cmd_help },
	{ "VRFY",	CMD_NEEDARG,	cmd_vrfy },
	{ "STARTTLS",	CMD_NOARG,	cmd_starttls },
	{ "AUTH",	CMD_NEEDARG,	cmd_auth },
};

/* ------------------------------------------------------------------ */
/* The listener. */

struct smtpd *
smtpd_new(struct ev_loop *loop, struct queue *q, const struct smtpd_params *p,
    smtpd_queued_cb cb, void *arg)
{
	struct smtpd *sd;

	sd = xcalloc(1, sizeof(*sd));
	sd->loop = loop;
	sd->q = q;
	sd->cb = cb;
	sd->arg = arg;
	TAILQ_INIT(&sd->sessions);
	ev_timer_init(&sd->pause_timer, on_pause_timer, sd);
	params_set(sd, p);
	return sd;
}

static void
params_set(struct smtpd *sd, const struct smtpd_params *p)
{
	sd->p = *p;
	if (sd->p.hostname == NULL || sd->p.hostname[0] == '\0')
		sd->p.hostname = "localhost";
	if (sd->p.qualify_domain == NULL || sd->p.qualify_domain[0] == '\0')
		sd->p.qualify_domain = sd->p.hostname;
	if (sd->p.cmd_timeout_ms == 0)
		sd->p.cmd_timeout_ms = SMTPD_CMD_TIMEOUT_MS;
	if (sd->p.data_timeout_ms == 0)
		sd->p.data_timeout_ms = SMTPD_DATA_TIMEOUT_MS;
}

int
smtpd_commit_threads(struct smtpd *sd, unsigned n)
{
	if (sd->wq != NULL || n == 0)
		return 0;
	return (sd->wq = workq_new(sd->loop, n)) == NULL ? -1 : 0;
}

void
smtpd_set_params(struct smtpd *sd, const struct smtpd_params *p)
{
	struct session *s;

	params_set(sd, p);
	/* The timeouts apply at once; the other values at their next use. */
	TAILQ_FOREACH(s, &sd->sessions, entry) {
		if (s->state == S_DATA)
			io_set_timeout(s->io, sd->p.data_timeout_ms);
		else if (s->state != S_CLOSING)
			io_set_timeout(s->io, sd->p.cmd_timeout_ms);
	}
}

static void
listeners_close(struct smtpd *sd)
{
	for (size_t i = 0; i < sd->nlisteners; i++) {
		struct listener *l = sd->listeners[i];

		if (l->registered)
			ev_fd_del(sd->loop, l->fd);
		close(l->fd);
		free(l);
	}
	free(sd->listeners);
	sd->listeners = NULL;
	sd->nlisteners = 0;
	ev_timer_del(sd->loop, &sd->pause_timer);
	sd->accept_paused = false;
}

void
smtpd_free(struct smtpd *sd)
{
	struct session *s;

	if (sd == NULL)
		return;
	while ((s = TAILQ_FIRST(&sd->sessions)) != NULL)
		session_free(s);
	if (sd->local != NULL) {
		local_release(sd->local);
		sd->local = NULL;
	}
	listeners_close(sd);
	/* Commits in flight finish (their messages are queued, unanswered). */
	sd->freeing = true;
	workq_free(sd->wq);
	free(sd);
}

int
smtpd_listen(struct smtpd *sd, int fd)
{
	struct listener *l;
	int fl;

	if (sd->shutting_down) {
		close(fd);
		errno = ESHUTDOWN;
		return -1;
	}
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1))
		goto fail;
	(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
	l = xcalloc(1, sizeof(*l));
	l->sd = sd;
	l->fd = fd;
	if (!sd->accept_paused) {
		if (ev_fd_add(sd->loop, fd, EV_READ, listener_on_fd, l) == -1) {
			free(l);
			goto fail;
		}
		l->registered = true;
	}
	sd->listeners = xreallocarray(sd->listeners, sd->nlisteners + 1,
	    sizeof(*sd->listeners));
	sd->listeners[sd->nlisteners++] = l;
	return 0;

fail:
	{
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
}

static void
listeners_watch(struct smtpd *sd, bool on)
{
	for (size_t i = 0; i < sd->nlisteners; i++) {
		struct listener *l = sd->listeners[i];

		if (on && !l->registered) {
			if (ev_fd_add(sd->loop, l->fd, EV_READ, listener_on_fd,
			    l) == -1)
				log_warn("smtpd: listener");
			else
				l->registered = true;
		} else if (!on && l->registered) {
			ev_fd_del(sd->loop, l->fd);
			l->registered = false;
		}
	}
}

static void
on_pause_timer(void *arg)
{
	struct smtpd *sd = arg;

	sd->accept_paused = false;
	listeners_watch(sd, true);
}

static void
listener_on_fd(int fd, int events, void *arg)
{
	struct listener *l = arg;
	struct smtpd *sd = l->sd;
	struct sockaddr_storage ss;
	socklen_t sl;
	int cfd;

	(void)events;
	for (;;) {
		sl = sizeof(ss);
		cfd = accept4(fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd == -1) {
			switch (errno) {
			case EAGAIN:
#if EWOULDBLOCK != EAGAIN
			case EWOULDBLOCK:
#endif
				return;
			case EINTR:
			case ECONNABORTED:
			case EPROTO:
			/* accept(2), Linux: network errors of that client. */
			case ENETDOWN:
			case ENOPROTOOPT:
			case EHOSTDOWN:
			case ENONET:
			case EHOSTUNREACH:
			case EOPNOTSUPP:
			case ENETUNREACH:
				continue;
			default:
				/*
				 * EMFILE, ENFILE, ENOBUFS, ENOMEM and the
				 * unexpected: the client stays in the backlog
				 * and the listener readable, so do not spin.
				 */
				log_warn("smtpd: accept: pausing for %d ms",
				    SMTPD_ACCEPT_PAUSE_MS);
				sd->accept_paused = true;
				listeners_watch(sd, false);
				ev_timer_add(sd->loop, &sd->pause_timer,
				    SMTPD_ACCEPT_PAUSE_MS);
				return;
			}
		}
		session_new(sd, cfd, &ss);
	}
}

void
smtpd_shutdown(struct smtpd *sd)
{
	struct session *s, *next;

	sd->shutting_down = true;
	listeners_close(sd);
	for (s = TAILQ_FIRST(&sd->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		switch (s->state) {
		case S_DATA:
		case S_COMMIT:
			/* Let the message finish; 421 follows its reply. */
			s->closing_pending = true;
			break;
		case S_TLS:
			/* Nothing can be said in clear now. */
			session_free(s);
			break;
		case S_CLOSING:
			break;
		case S_CMD:
		case S_AUTH:
			reply(s, "421 4.3.2 %s Service shutting down",
			    sd->p.hostname);
			session_closing(s);
			break;
		}
	}
}

unsigned
smtpd_nsessions(const struct smtpd *sd)
{
	return sd->nsessions;
}

/* ------------------------------------------------------------------ */
/* Local sessions (mxrelay -bs). */

/* A user name that may stand in a Received: field as it is. */
static bool
local_name_ok(const char *u)
{
	size_t n = 0;

	if (u == NULL)
		return false;
	for (; *u != '\0'; u++) {
		unsigned char c = (unsigned char)*u;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-' || c == '$' || c == '+' || c == '@'))
			return false;
		if (++n > 64)
			return false;
	}
	return n > 0;
}

/*
 * Whether epoll can watch fd: 1, 0 (a regular file, /dev/null: always
 * ready), or -1 with errno.
 */
static int
local_pollable(struct local *lc, int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return -1;
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
		return 0;
	if (ev_fd_add(lc->sd->loop, fd, EV_READ, local_on_fd, lc) == -1)
		return errno == EPERM ? 0 : -1;
	ev_fd_del(lc->sd->loop, fd);
	return 1;
}

/* A spool operation failed in a local session: its exit status says so. */
static void
local_spool_err(struct session *s, int e)
{
	if (s->lc != NULL)
		s->lc->end.spool_err = e != 0 ? e : EIO;
}

/* Put O_NONBLOCK back as it was. */
static void
local_restore_fl(int fd, int orig)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) != -1 &&
	    (fl & O_NONBLOCK) != (orig & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) |
		    (orig & O_NONBLOCK));
}

static void
local_close_sv(struct local *lc)
{
	if (lc->sv == -1)
		return;
	if (lc->sv_ev != 0)
		ev_fd_del(lc->sd->loop, lc->sv);
	lc->sv_ev = 0;
	close(lc->sv);
	lc->sv = -1;
}

/* The pump cannot go on: the session sees its connection close. */
static void
local_break(struct local *lc, const char *what)
{
	log_warn("smtpd: local session: %s", what);
	lc->end.io_error = true;
	lc->in_eof = true;
	lc->out_err = true;
	lc->ipos = lc->ilen = lc->opos = lc->olen = 0;
	local_close_sv(lc);
	ev_timer_add(lc->sd->loop, &lc->timer, 0);
}

/* Register the interest in fd (0: none). */
static void
local_want(struct local *lc, int fd, int *cur, int want)
{
	struct ev_loop *loop = lc->sd->loop;

	if (want == *cur)
		return;
	if (want == 0)
		ev_fd_del(loop, fd);
	else if (*cur == 0 ? ev_fd_add(loop, fd, want, local_on_fd, lc) == -1 :
	    ev_fd_mod(loop, fd, want) == -1) {
		if (*cur != 0)
			ev_fd_del(loop, fd);
		*cur = 0;
		local_break(lc, "event loop");
		return;
	}
	*cur = want;
}

static void
local_watch(struct local *lc)
{
	int in = 0, out = 0, sv = 0;

	if (lc->in_poll && lc->ilen == 0 && !lc->in_eof && !lc->in_shut &&
	    lc->s != NULL && lc->sv != -1)
		in = EV_READ;
	if (lc->out_poll && lc->opos < lc->olen && !lc->out_err)
		out = EV_WRITE;
	if (lc->sv != -1) {
		if (lc->ipos < lc->ilen)
			sv |= EV_WRITE;
		if (lc->olen == 0 && !lc->sv_eof)
			sv |= EV_READ;
	}
	if (lc->infd == lc->outfd)
		local_want(lc, lc->infd, &lc->in_ev, in | out);
	else {
		local_want(lc, lc->infd, &lc->in_ev, in);
		local_want(lc, lc->outfd, &lc->out_ev, out);
	}
	if (lc->sv != -1)
		local_want(lc, lc->sv, &lc->sv_ev, sv);
}

/* Everything but the struct's memory, without a word to the owner. */
static void
local_release(struct local *lc)
{
	struct ev_loop *loop = lc->sd->loop;

	ev_timer_del(loop, &lc->timer);
	if (lc->in_ev != 0)
		ev_fd_del(loop, lc->infd);
	if (lc->out_ev != 0)
		ev_fd_del(loop, lc->outfd);
	lc->in_ev = lc->out_ev = 0;
	local_close_sv(lc);
	if (lc->out_setfl)
		local_restore_fl(lc->outfd, lc->out_fl);
	if (lc->in_setfl)
		local_restore_fl(lc->infd, lc->in_fl);
	if (lc->s != NULL)
		lc->s->lc = NULL;
	free(lc->user);
	free(lc->rcvd_from);
	free(lc);
}

/*
 * Pass the end of the input on once the session has taken every byte
 * before it and its replies are out; until then the hooks in
 * session_input() and IO_LOWAT, or the timer, come back here.
 */
static void
local_eof_check(struct local *lc)
{
	struct session *s = lc->s;
	int unread = 0;

	if (!lc->in_eof || lc->in_shut || lc->ipos < lc->ilen || lc->sv == -1)
		return;
	if (s != NULL && s->state != S_CLOSING && (s->state == S_COMMIT ||
	    io_queued(s->io) > 0 || ioctl(io_fd(s->io), FIONREAD,
	    &unread) == -1 || unread > 0)) {
		if (!ev_timer_pending(&lc->timer))
			ev_timer_add(lc->sd->loop, &lc->timer,
			    SMTPD_LOCAL_POLL_MS);
		return;
	}
	(void)shutdown(lc->sv, SHUT_WR);
	lc->in_shut = true;
}

/* The session is gone and its output written: tell the owner. */
static void
local_finish(struct local *lc)
{
	struct smtpd_local_end end = lc->end;
	void (*done)(void *, const struct smtpd_local_end *) = lc->done;
	void *arg = lc->arg;

	lc->sd->local = NULL;
	local_release(lc);
	if (done != NULL)
		done(arg, &end);
}

/* Move what can be moved without blocking, in both directions. */
static void
local_pump(struct local *lc)
{
	bool progress;
	ssize_t n;

	do {
		progress = false;
		/* The caller's input to the session. */
		if (lc->ilen == 0 && !lc->in_eof && !lc->in_shut &&
		    lc->s != NULL && lc->sv != -1) {
			n = read(lc->infd, lc->ibuf, sizeof(lc->ibuf));
			if (n > 0) {
				lc->ipos = 0;
				lc->ilen = (size_t)n;
				progress = true;
			} else if (n == 0) {
				lc->in_eof = true;
				progress = true;
			} else if (errno == EINTR)
				progress = true;
			else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				log_warn("smtpd: local session: read");
				lc->end.io_error = true;
				lc->in_eof = true;
				progress = true;
			}
		}
		if (lc->ipos < lc->ilen && (lc->s == NULL || lc->sv == -1))
			lc->ipos = lc->ilen = 0;	/* nobody to hear it */
		if (lc->ipos < lc->ilen) {
			n = send(lc->sv, lc->ibuf + lc->ipos,
			    lc->ilen - lc->ipos, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n > 0) {
				lc->ipos += (size_t)n;
				if (lc->ipos == lc->ilen)
					lc->ipos = lc->ilen = 0;
				progress = true;
			} else if (errno == EINTR)
				progress = true;
			else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* The session closed its end: it is going. */
				lc->ipos = lc->ilen = 0;
				progress = true;
			}
		}
		/* The session's output to the caller. */
		if (lc->olen == 0 && !lc->sv_eof && lc->sv != -1) {
			n = recv(lc->sv, lc->obuf, sizeof(lc->obuf),
			    MSG_DONTWAIT);
			if (n > 0) {
				lc->opos = 0;
				lc->olen = (size_t)n;
				progress = true;
			} else if (n == 0) {
				lc->sv_eof = true;
				progress = true;
			} else if (errno == EINTR)
				progress = true;
			else if (errno != EAGAIN && errno != EWOULDBLOCK) {
				/* ECONNRESET: it closed with input unread. */
				lc->sv_eof = true;
				progress = true;
			}
		}
		if (lc->opos < lc->olen && lc->out_err)
			lc->opos = lc->olen = 0;
		if (lc->opos < lc->olen) {
			n = send(lc->outfd, lc->obuf + lc->opos,
			    lc->olen - lc->opos, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n == -1 && errno == ENOTSOCK)
				n = write(lc->outfd, lc->obuf + lc->opos,
				    lc->olen - lc->opos);
			if (n > 0) {
				lc->opos += (size_t)n;
				if (lc->opos == lc->olen)
					lc->opos = lc->olen = 0;
				progress = true;
			} else if (n == -1 && errno == EINTR)
				progress = true;
			else if (n == 0 || (errno != EAGAIN &&
			    errno != EWOULDBLOCK)) {
				if (n == 0)
					errno = EIO;
				log_warn("smtpd: local session: write");
				lc->end.io_error = true;
				lc->out_err = true;
				lc->opos = lc->olen = 0;
				/* Nobody hears the session: it ends. */
				local_close_sv(lc);
				progress = true;
			}
		}
		local_eof_check(lc);
	} while (progress);
	if (lc->s == NULL && (lc->sv == -1 || lc->sv_eof) &&
	    lc->opos == lc->olen) {
		local_finish(lc);
		return;
	}
	local_watch(lc);
}

static void
local_on_fd(int fd, int events, void *arg)
{
	(void)fd;
	(void)events;
	local_pump(arg);
}

static void
local_on_timer(void *arg)
{
	local_pump(arg);
}

int
smtpd_session_fds(struct smtpd *sd, int infd, int outfd,
    const struct smtpd_local *lo)
{
	struct local *lc;
	struct session *s;
	char esc[128];
	int sv[2], r, e;

	if (sd->shutting_down) {
		errno = ESHUTDOWN;
		return -1;
	}
	if (sd->local != NULL) {
		errno = EBUSY;
		return -1;
	}
	lc = xcalloc(1, sizeof(*lc));
	lc->sd = sd;
	lc->infd = infd;
	lc->outfd = outfd;
	lc->sv = -1;
	lc->uid = lo->uid;
	lc->user = lo->user != NULL ? xstrdup(lo->user) : NULL;
	lc->done = lo->done;
	lc->arg = lo->arg;
	ev_timer_init(&lc->timer, local_on_timer, lc);
	/* Both before either changes: 0 and 1 may share a tty's flags. */
	if ((lc->in_fl = fcntl(infd, F_GETFL)) == -1 ||
	    (lc->out_fl = fcntl(outfd, F_GETFL)) == -1)
		goto fail;
	if ((r = local_pollable(lc, infd)) == -1)
		goto fail;
	lc->in_poll = r == 1;
	if (outfd == infd)
		lc->out_poll = lc->in_poll;
	else if ((r = local_pollable(lc, outfd)) == -1)
		goto fail;
	else
		lc->out_poll = r == 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		goto fail;
	lc->sv = sv[0];
	/* Reads and writes must not block the loop; undone at the end. */
	if (lc->in_poll && !(lc->in_fl & O_NONBLOCK)) {
		lc->in_setfl = true;
		if (fcntl(infd, F_SETFL, lc->in_fl | O_NONBLOCK) == -1)
			goto fail_sv;
	}
	if (lc->out_poll && !(lc->out_fl & O_NONBLOCK) && outfd != infd) {
		int fl = fcntl(outfd, F_GETFL);

		lc->out_setfl = true;
		if (fl == -1 || fcntl(outfd, F_SETFL, fl | O_NONBLOCK) == -1)
			goto fail_sv;
	}

	util_escape(esc, sizeof(esc), lc->user != NULL ? lc->user : "");
	if (local_name_ok(lc->user))
		lc->rcvd_from = xasprintf("user %s (uid %" PRIu32 ")",
		    lc->user, lc->uid);
	else
		lc->rcvd_from = xasprintf("uid %" PRIu32, lc->uid);
	s = session_alloc(sd, sv[1]);
	s->family = AF_UNIX;
	s->lc = lc;
	lc->s = s;
	if (lc->user != NULL)
		snprintf(s->peer, sizeof(s->peer), "local user %s (uid %"
		    PRIu32 ")", esc, lc->uid);
	else
		snprintf(s->peer, sizeof(s->peer), "local uid %" PRIu32,
		    lc->uid);
	sd->local = lc;
	log_info("connect from %s", s->peer);
	reply(s, "220 %s ESMTP mxrelay", sd->p.hostname);
	/* Callbacks only from the loop: the pump starts there. */
	ev_timer_add(sd->loop, &lc->timer, 0);
	return 0;

fail_sv:
	e = errno;
	close(sv[1]);
	errno = e;
fail:
	e = errno;
	local_release(lc);
	errno = e;
	return -1;
}

/* ------------------------------------------------------------------ */
/* Sessions. */

static void
session_new(struct smtpd *sd, int fd, const struct sockaddr_storage *ss)
{
	struct session *s;
	char addr[INET6_ADDRSTRLEN] = "unknown";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		port = ntohs(sin6->sin6_port);
	}
	if (sd->p.max_clients > 0 && sd->nsessions >= sd->p.max_clients) {
		char buf[512];
		int n;

		log_warnx("smtpd: too many connections, refused [%s]:%u",
		    addr, port);
		n = snprintf(buf, sizeof(buf), "421 4.7.0 %s Too many "
		    "connections, try again later\r\n", sd->p.hostname);
		/* A fresh socket's send buffer takes this at once. */
		if (n > 0 && (size_t)n < sizeof(buf))
			(void)send(fd, buf, (size_t)n,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)shutdown(fd, SHUT_WR);
		close(fd);
		return;
	}

	s = session_alloc(sd, fd);
	util_strlcpy(s->addr, addr, sizeof(s->addr));
	s->port = port;
	s->family = ss->ss_family;
	if (ss->ss_family == AF_INET)
		memcpy(s->rawaddr, &((const struct sockaddr_in *)
		    (const void *)ss)->sin_addr, 4);
	else if (ss->ss_family == AF_INET6)
		memcpy(s->rawaddr, &((const struct sockaddr_in6 *)
		    (const void *)ss)->sin6_addr, 16);
	snprintf(s->peer, sizeof(s->peer), "[%s]:%u", s->addr, s->port);
	log_info("connect from %s", s->peer);
	reply(s, "220 %s ESMTP mxrelay", sd->p.hostname);
}

/* A new session in S_CMD on a connected socket (taken over by its io). */
static struct session *
session_alloc(struct smtpd *sd, int fd)
{
	struct session *s;

	s = xcalloc(1, sizeof(*s));
	s->sd = sd;
	s->state = S_CMD;
	ev_timer_init(&s->close_timer, session_on_close_timer, s);
	TAILQ_INSERT_TAIL(&sd->sessions, s, entry);
	sd->nsessions++;

	s->io = io_new(sd->loop, session_on_io, s);
	io_attach(s->io, fd);
	io_set_line_max(s->io, SMTPD_CMD_LINE_MAX);
	io_set_timeout(s->io, sd->p.cmd_timeout_ms);
	return s;
}

/* Tear the session down now (also from inside its io callback). */
static void
session_free(struct session *s)
{
	struct smtpd *sd = s->sd;

	log_info("disconnect from %s commands=%u", s->peer, s->ncmds);
	if (s->lc != NULL) {
		struct local *lc = s->lc;

		lc->end.in_txn = s->sender != NULL;
		lc->end.eof = lc->in_shut && !lc->end.quit;
		lc->s = NULL;
		/* The pump writes out what is left, then finishes. */
		ev_timer_add(sd->loop, &lc->timer, 0);
	}
	TAILQ_REMOVE(&sd->sessions, s, entry);
	sd->nsessions--;
	ev_timer_del(sd->loop, &s->close_timer);
	if (s->commit != NULL)
		s->commit->s = NULL;
	io_free(s->io);
	session_reset_txn(s);
	free(s->auth_user);
	auth_reset(s);
	free(s);
}

/* The last reply is queued: flush it, then go. */
static void
session_closing(struct session *s)
{
	s->state = S_CLOSING;
	data_drop(s);
	io_set_timeout(s->io, 0);
	/* IO_LOWAT now means "all sent". */
	io_set_lowat(s->io, 1);
	ev_timer_add(s->sd->loop, &s->close_timer,
	    io_queued(s->io) == 0 ? 0 : SMTPD_CLOSE_WAIT_MS);
}

static void
session_on_close_timer(void *arg)
{
	session_free(arg);
}

/* Forget the mail transaction (RSET, EHLO, end of DATA). */
static void
session_reset_txn(struct session *s)
{
	free(s->sender);
	s->sender = NULL;
	strlist_free(&s->rcpts);
	data_drop(s);
	s->dsize = 0;
	s->too_big = false;
	s->spool_err = 0;
}

static void
session_on_io(struct io *io, enum io_event ev, void *arg)
{
	struct session *s = arg;
	struct smtpd *sd = s->sd;

	(void)io;
	switch (ev) {
	case IO_DATAIN:
		session_input(s);
		break;
	case IO_LOWAT:
		if (s->state == S_CLOSING) {
			if (io_queued(s->io) == 0)
				session_free(s);
			break;
		}
		if (s->blocked && io_queued(s->io) < SMTPD_WQ_HIWAT / 2) {
			s->blocked = false;
			session_input(s);
		} else if (s->lc != NULL)
			local_eof_check(s->lc);
		break;
	case IO_TLS_DONE:
		/* RFC 3207 §4.2: forget everything learnt in clear. */
		s->state = S_CMD;
		s->helo[0] = '\0';
		s->esmtp = false;
		free(s->auth_user);
		s->auth_user = NULL;
		session_reset_txn(s);
		log_info("STARTTLS from %s: %s", s->peer,
		    io_tls_version(s->io) != NULL ? io_tls_version(s->io) :
		    "?");
		session_input(s);
		break;
	case IO_TIMEOUT:
		if (s->state == S_TLS || s->state == S_CLOSING) {
			log_info("timeout during %s from %s",
			    s->state == S_TLS ? "TLS handshake" : "close",
			    s->peer);
			session_free(s);
			break;
		}
		log_info("timeout after %s from %s",
		    s->state == S_DATA ? "DATA" : "command", s->peer);
		if (s->lc != NULL)
			s->lc->end.timeout = true;
		reply(s, "421 4.4.2 %s Error: timeout exceeded",
		    sd->p.hostname);
		session_closing(s);
		break;
	case IO_CLOSED:
		if (s->state == S_DATA)
			log_info("lost connection after DATA from %s",
			    s->peer);
		session_free(s);
		break;
	case IO_ERROR:
		if (s->state != S_CLOSING)
			log_info("%s from %s: %s", s->state == S_TLS ?
			    "TLS handshake failed" : "lost connection",
			    s->peer, io_error(s->io));
		session_free(s);
		break;
	case IO_CONNECTED:
		break;
	}
}

/* Take buffered input; a local session may then pass an EOF on. */
static void
session_input(struct session *s)
{
	session_input_run(s);
	if (s->lc != NULL)
		local_eof_check(s->lc);
}

/* Take buffered input in order until none is left or the session waits. */
static void
session_input_run(struct session *s)
{
	const char *line;
	size_t len;
	bool too_long;

	for (;;) {
		switch (s->state) {
		case S_TLS:
		case S_COMMIT:
		case S_CLOSING:
			return;
		case S_DATA:
			data_input(s);
			if (s->state == S_DATA)
				return;		/* wants more bytes */
			continue;
		case S_CMD:
		case S_AUTH:
			break;
		}
		if (io_queued(s->io) > SMTPD_WQ_HIWAT) {
			s->blocked = true;
			return;
		}
		if ((line = io_getline(s->io, &len, &too_long)) == NULL)
			return;
		/* io_getline() NUL-terminated it inside its buffer: ours to edit. */
		session_line(s, (char *)line, len, too_long);
		session_after_reply(s);
	}
}

/* After each command: the error limit. */
static void
session_after_reply(struct session *s)
{
	if (s->state == S_CLOSING || s->errors < SMTPD_ERRORS_MAX)
		return;
	log_warnx("too many errors from %s", s->peer);
	if (s->lc != NULL)
		s->lc->end.error_limit = true;
	reply(s, "421 4.7.0 %s Error: too many errors", s->sd->p.hostname);
	session_closing(s);
}

static void
session_line(struct session *s, char *line, size_t len, bool too_long)
{
	const struct smtpd_cmd *cmd = NULL;
	char *arg, *end;
	size_t vlen;

	s->ncmds++;
	if (too_long) {
		if (s->state == S_AUTH)
			auth_reset(s);
		reply_error(s, "500 5.5.2 Error: line too long");
		return;
	}
	if (memchr(line, '\0', len) != NULL) {
		if (s->state == S_AUTH)
			auth_reset(s);
		reply_error(s, "500 5.5.2 Error: NUL byte in command");
		return;
	}
	if (s->state == S_AUTH) {
		auth_line(s, line, len, false);
		return;
	}
	/* Trailing white space is not part of the argument. */
	end = line + len;
	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	vlen = strcspn(line, " ");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strlen(commands[i].verb) == vlen &&
		    strncasecmp(commands[i].verb, line, vlen) == 0) {
			cmd = &commands[i];
			break;
		}
	if (cmd == NULL) {
		char esc[64];

		log_debug("unknown command from %s: %s", s->peer,
		    smtp_escape(esc, sizeof(esc), line, len));
		reply_error(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	arg = line + vlen;
	while (*arg == ' ')
		arg++;
	if ((cmd->flags & CMD_NOARG) && *arg != '\0') {
		reply_error(s, "501 5.5.4 Syntax: %s", cmd->verb);
		return;
	}
	if ((cmd->flags & CMD_NEEDARG) && *arg == '\0') {
		reply_error(s, "501 5.5.4 Syntax: %s requires an argument",
		    cmd->verb);
		return;
	}
	cmd->proceed(s, arg);
}

static void
vreply(struct session *s, const char *fmt, va_list ap)
{
	char buf[1024];
	int n;

	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = (int)sizeof(buf) - 3;
	buf[n++] = '\r';
	buf[n++] = '\n';
	(void)io_write(s->io, buf, (size_t)n);
}

static void
reply(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
}

/* A reply to a bad command: counts towards SMTPD_ERRORS_MAX. */
static void
reply_error(struct session *s, const char *fmt, ...)
{
	va_list ap;

	s->errors++;
	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
}

static bool
session_relay_ok(const struct session *s)
{
	const struct smtpd *sd = s->sd;

	if (s->auth_user != NULL || s->lc != NULL)
		return true;
	if (s->family != AF_INET && s->family != AF_INET6)
		return false;
	return conf_cidr_match(sd->p.relay_clients, sd->p.nrelay_clients,
	    s->family, s->rawaddr);
}

/* ------------------------------------------------------------------ */
/* Commands. */

/* A HELO/EHLO argument we are willing to copy into a Received: field. */
static bool
helo_ok(const char *arg)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '(' || *p == ')' ||
		    *p == '\\')
			return false;
		if (++n > SMTPD_HELO_MAX)
			return false;
	}
	return n > 0;
}

static void
cmd_helo(struct session *s, char *arg)
{
	if (!helo_ok(arg)) {
		reply_error(s, "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	session_reset_txn(s);
	util_strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = false;
	reply(s, "250 %s", s->sd->p.hostname);
}

static void
cmd_ehlo(struct session *s, char *arg)
{
	const struct smtpd_params *p = &s->sd->p;

	if (!helo_ok(arg)) {
		reply_error(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	/* RFC 5321 §4.1.4: EHLO also resets the transaction. */
	session_reset_txn(s);
	util_strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = true;
	reply(s, "250-%s", p->hostname);
	reply(s, "250-PIPELINING");
	if (p->max_size > 0)
		reply(s, "250-SIZE %" PRIu64, p->max_size);
	else
		reply(s, "250-SIZE");
	reply(s, "250-8BITMIME");
	if (p->tls_ctx != NULL && !io_tls_active(s->io) && s->lc == NULL)
		reply(s, "250-STARTTLS");
	if (io_tls_active(s->io) && p->users != NULL)
		reply(s, "250-AUTH PLAIN LOGIN");
	reply(s, "250 ENHANCEDSTATUSCODES");
}

/*
 * "FROM:<path> params" (kw = "FROM:") or "TO:<path> params": *path gets
 * the text inside the angle brackets (NUL-terminated in place), *rest the
 * parameters.  Returns 0, or -1 on a syntax error.  A quoted local part
 * may hold '>' and spaces.
 */
static int
parse_path(char *arg, const char *kw, char **path, char **rest)
{
	size_t kwlen = strlen(kw), i;
	bool quoted = false;
	char *p;

	if (strncasecmp(arg, kw, kwlen) != 0)
		return -1;
	p = arg + kwlen;
	while (*p == ' ')	/* "MAIL FROM: <a@b>" is common (Postfix too) */
		p++;
	if (*p != '<')
		return -1;
	for (i = 1; p[i] != '\0'; i++) {
		if (quoted) {
			if (p[i] == '\\' && p[i + 1] != '\0')
				i++;
			else if (p[i] == '"')
				quoted = false;
		} else if (p[i] == '"')
			quoted = true;
		else if (p[i] == '>')
			break;
	}
	if (p[i] != '>')
		return -1;
	p[i] = '\0';
	*path = p + 1;
	*rest = p + i + 1;
	if (**rest != '\0' && **rest != ' ')
		return -1;
	while (**rest == ' ')
		(*rest)++;
	return 0;
}

/*
 * RFC 5321 §4.1.2 / Appendix C: drop a source route "@a,@b:" in front of
 * the mailbox.  False when the route is malformed.
 */
static bool
route_strip(char **path)
{
	char *p = *path;
	int depth = 0;

	if (*p != '@')
		return true;
	for (; *p != '\0'; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']')
			depth--;
		else if (*p == ':' && depth == 0)
			break;
		else if (depth == 0 && *p == ',' && p[1] != '@')
			return false;
		else if (depth == 0 && !(isalnum((unsigned char)*p) ||
		    *p == '.' || *p == '-' || *p == '@' || *p == ','))
			return false;
	}
	if (*p != ':' || p == *path + 1)
		return false;
	*path = p + 1;
	return true;
}

/*
 * Check a mailbox from MAIL or RCPT; unqualified ones get @qualify_domain.
 * Returns a new string, or NULL (why in err).
 */
static char *
mailbox_get(struct session *s, char *path, char *err, size_t errlen)
{
	char *addr;

	if (!route_strip(&path)) {
		util_seterr(err, errlen, "malformed source route");
		return NULL;
	}
	if (!smtp_path_ok(path) ||
	    msg_addr_check(path, true, err, errlen) == -1) {
		if (err[0] == '\0')
			util_seterr(err, errlen, "bad characters or too long");
		return NULL;
	}
	/* Qualified?  (An '@' may also hide in a quoted local part.) */
	if (msg_addr_check(path, false, NULL, 0) == 0)
		return xstrdup(path);
	addr = xasprintf("%s@%s", path, s->sd->p.qualify_domain);
	if (msg_addr_check(addr, false, err, errlen) == -1) {
		free(addr);
		return NULL;
	}
	return addr;
}

static void
cmd_mail(struct session *s, char *arg)
{
	const struct smtpd_params *p = &s->sd->p;
	char *path, *rest, *tok, *next, err[128] = "", esc[128];
	char *sender;

	if (s->helo[0] == '\0') {
		reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->sender != NULL) {
		reply_error(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (parse_path(arg, "FROM:", &path, &rest) == -1) {
		reply_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	for (tok = rest; *tok != '\0'; tok = next) {
		next = tok + strcspn(tok, " ");
		if (*next != '\0') {
			*next++ = '\0';
			while (*next == ' ')
				next++;
		}
		if (!s->esmtp) {
			reply_error(s, "555 5.5.4 Error: parameters need EHLO");
			return;
		}
		if (strncasecmp(tok, "SIZE=", 5) == 0) {
			uint64_t n = 0;
			const char *d = tok + 5;

			if (*d == '\0') {
				reply_error(s, "555 5.5.4 Bad SIZE parameter");
				return;
			}
			for (; *d != '\0'; d++) {
				if (!isdigit((unsigned char)*d) ||
				    n > (UINT64_MAX - 9) / 10) {
					reply_error(s, "555 5.5.4 Bad SIZE "
					    "parameter");
					return;
				}
				n = n * 10 + (uint64_t)(*d - '0');
			}
			if (p->max_size > 0 && n > p->max_size) {
				reply(s, "552 5.3.4 Message size exceeds "
				    "fixed limit");
				return;
			}
		} else if (strncasecmp(tok, "BODY=", 5) == 0) {
			if (strcasecmp(tok + 5, "7BIT") != 0 &&
			    strcasecmp(tok + 5, "8BITMIME") != 0) {
				reply_error(s, "555 5.5.4 Unsupported BODY "
				    "parameter");
				return;
			}
		} else if (strncasecmp(tok, "AUTH=", 5) == 0) {
			/* RFC 4954 §5: may be ignored; we do not relay AUTH. */
		} else {
			reply_error(s, "555 5.5.4 Unsupported parameter: %s",
			    smtp_escape(esc, 64, tok, strlen(tok)));
			return;
		}
	}
	if (path[0] == '\0')
		sender = xstrdup("");		/* the null sender <> */
	else if ((sender = mailbox_get(s, path, err, sizeof(err))) == NULL) {
		log_info("reject: MAIL from %s: bad sender <%s>: %s",
		    s->peer, smtp_escape(esc, sizeof(esc), path,
		    strlen(path)), err);
		reply_error(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	s->sender = sender;
	reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct session *s, char *arg)
{
	const struct smtpd_params *p = &s->sd->p;
	char *path, *rest, *addr, err[128] = "", esc[128];

	if (s->sender == NULL) {
		reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!session_relay_ok(s)) {
		log_info("reject: RCPT from %s: 554 5.7.1 Relay access "
		    "denied: %s", s->peer,
		    smtp_escape(esc, sizeof(esc), arg, strlen(arg)));
		reply_error(s, "554 5.7.1 Relay access denied");
		return;
	}
	if (p->max_recipients > 0 && s->rcpts.n >= p->max_recipients) {
		reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (parse_path(arg, "TO:", &path, &rest) == -1) {
		reply_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (*rest != '\0') {
		/* No DSN (RFC 3461): NOTIFY and ORCPT are not offered. */
		reply_error(s, "555 5.5.4 Unsupported parameter");
		return;
	}
	if (path[0] == '\0' ||
	    (addr = mailbox_get(s, path, err, sizeof(err))) == NULL) {
		log_info("reject: RCPT from %s: bad recipient <%s>: %s",
		    s->peer, smtp_escape(esc, sizeof(esc), path,
		    strlen(path)), err[0] != '\0' ? err : "empty");
		reply_error(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	strlist_add_owned(&s->rcpts, addr);
	reply(s, "250 2.1.5 Ok");
}

static void
cmd_data(struct session *s, char *arg)
{
	struct smtpd *sd = s->sd;
	char date[64] = "";
	char *hdr;
	const char *proto;
	time_t now = time(NULL);
	int r;

	(void)arg;
	if (s->sender == NULL) {
		reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->rcpts.n == 0) {
		reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (queue_new_begin(sd->q, &s->qn) == -1) {
		int e = errno;

		s->qn = NULL;
		log_warn("smtpd: queue_new_begin");
		local_spool_err(s, e);
		if (spool_full(e))
			reply(s, "452 4.3.1 Insufficient system storage");
		else
			reply(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	/* RFC 5321 §4.4 time stamp; RFC 3848 protocol names. */
	if (!s->esmtp)
		proto = io_tls_active(s->io) ? "SMTPS" : "SMTP";
	else if (io_tls_active(s->io))
		proto = s->auth_user != NULL ? "ESMTPSA" : "ESMTPS";
	else
		proto = s->auth_user != NULL ? "ESMTPA" : "ESMTP";
	/* A local time that cannot be converted: say it in UTC. */
	if (util_date_rfc5322(now, false, date, sizeof(date)) == -1)
		(void)util_date_rfc5322(now, true, date, sizeof(date));
	if (s->lc != NULL && s->rcpts.n == 1)
		hdr = xasprintf("Received: from %s\r\n"
		    "\tby %s (mxrelay) with %s id %s\r\n"
		    "\tfor <%s>; %s\r\n", s->lc->rcvd_from, sd->p.hostname,
		    proto, queue_new_id(s->qn), s->rcpts.v[0], date);
	else if (s->lc != NULL)
		hdr = xasprintf("Received: from %s\r\n"
		    "\tby %s (mxrelay) with %s id %s;\r\n"
		    "\t%s\r\n", s->lc->rcvd_from, sd->p.hostname, proto,
		    queue_new_id(s->qn), date);
	else if (s->rcpts.n == 1)
		hdr = xasprintf("Received: from %s ([%s])\r\n"
		    "\tby %s (mxrelay) with %s id %s\r\n"
		    "\tfor <%s>; %s\r\n", s->helo, s->addr, sd->p.hostname,
		    proto, queue_new_id(s->qn), s->rcpts.v[0], date);
	else
		hdr = xasprintf("Received: from %s ([%s])\r\n"
		    "\tby %s (mxrelay) with %s id %s;\r\n"
		    "\t%s\r\n", s->helo, s->addr, sd->p.hostname, proto,
		    queue_new_id(s->qn), date);
	r = queue_new_write(s->qn, hdr, strlen(hdr));
	free(hdr);
	if (r == -1) {
		int e = errno;

		log_warn("smtpd: %s: queue write", queue_new_id(s->qn));
		local_spool_err(s, e);
		data_drop(s);
		if (spool_full(e))
			reply(s, "452 4.3.1 Insufficient system storage");
		else
			reply(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	s->dsize = 0;
	s->too_big = false;
	s->spool_err = 0;
	memset(&s->hops, 0, sizeof(s->hops));
	s->hops.match = true;
	smtp_unstuff_init(&s->unstuff, SMTPD_TEXT_LINE_MAX);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	s->state = S_DATA;
	io_set_timeout(s->io, sd->p.data_timeout_ms);
	io_set_raw(s->io, true);
}

static void
cmd_rset(struct session *s, char *arg)
{
	(void)arg;
	session_reset_txn(s);
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct session *s, char *arg)
{
	(void)arg;
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct session *s, char *arg)
{
	(void)arg;
	if (s->lc != NULL)
		s->lc->end.quit = true;
	reply(s, "221 2.0.0 Bye");
	session_closing(s);
}

static void
cmd_help(struct session *s, char *arg)
{
	(void)arg;
	/* A local session (mxrelay -bs) has neither STARTTLS nor AUTH. */
	if (s->lc != NULL)
		reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET "
		    "NOOP QUIT HELP VRFY");
	else
		reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET "
		    "NOOP QUIT HELP VRFY STARTTLS AUTH");
}

static void
cmd_vrfy(struct session *s, char *arg)
{
	(void)arg;
	/* RFC 5321 §3.5.3: 252 rather than reveal anything. */
	reply(s, "252 2.5.2 Cannot VRFY user, but will accept message and "
	    "attempt delivery");
}

static void
cmd_starttls(struct session *s, char *arg)
{
	struct smtpd *sd = s->sd;
	size_t pending;

	(void)arg;
	if (io_tls_active(s->io)) {
		reply_error(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (sd->p.tls_ctx == NULL || s->lc != NULL) {
		reply_error(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->sender != NULL) {
		reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	/*
	 * RFC 3207 §5, CVE-2011-0411: what the client sent behind STARTTLS
	 * before the handshake came in clear and must not be taken as if it
	 * had come over TLS.  Drop it.
	 */
	if ((pending = io_pending(s->io)) > 0) {
		log_warnx("smtpd: %s: discarding %zu bytes sent after "
		    "STARTTLS before the TLS handshake", s->peer,
		    pending);
		io_discard_input(s->io);
	}
	if (io_start_tls(s->io, sd->p.tls_ctx, false, NULL, NULL) == -1) {
		/* The 220 is already queued: no reply can follow it. */
		log_warnx("smtpd: %s: STARTTLS: %s", s->peer,
		    io_error(s->io));
		session_closing(s);
		return;
	}
	s->state = S_TLS;
}

static void
cmd_auth(struct session *s, char *arg)
{
	const struct smtpd_params *p = &s->sd->p;
	char *mech = arg, *ir;

	if (p->users == NULL || s->lc != NULL) {
		reply_error(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	/* RFC 4954 §4: never look at credentials sent in clear. */
	if (!io_tls_active(s->io)) {
		reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!s->esmtp) {
		reply_error(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_user != NULL) {
		reply_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->sender != NULL) {
		reply_error(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if ((ir = strchr(mech, ' ')) != NULL) {
		*ir++ = '\0';
		while (*ir == ' ')
			ir++;
		if (*ir == '\0' || strchr(ir, ' ') != NULL) {
			reply_error(s, "501 5.5.4 Syntax: AUTH mechanism "
			    "[initial-response]");
			return;
		}
	}
	if (strcasecmp(mech, "PLAIN") == 0) {
		if (ir != NULL) {
			/* RFC 4954 §4: "=" is an empty initial response. */
			if (strcmp(ir, "=") == 0)
				ir[0] = '\0';
			auth_plain(s, ir, strlen(ir));
			return;
		}
		s->state = S_AUTH;
		s->auth_step = AUTH_PLAIN;
		reply(s, "334 ");
	} else if (strcasecmp(mech, "LOGIN") == 0) {
		s->state = S_AUTH;
		if (ir != NULL) {
			/* The user name as initial response (as Postfix). */
			s->auth_step = AUTH_LOGIN_USER;
			auth_line(s, ir, strlen(ir), true);
			return;
		}
		s->auth_step = AUTH_LOGIN_USER;
		reply(s, "334 VXNlcm5hbWU6");	/* "Username:" */
	} else
		reply_error(s, "504 5.5.4 Unsupported authentication "
		    "mechanism");
}

/* Leave the AUTH exchange: back to commands, the LOGIN user name gone. */
static void
auth_reset(struct session *s)
{
	if (s->state == S_AUTH)
		s->state = S_CMD;
	if (s->auth_login != NULL) {
		explicit_bzero(s->auth_login, strlen(s->auth_login));
		free(s->auth_login);
		s->auth_login = NULL;
	}
}

/*
 * One base64 LOGIN response into buf (a C string without NULs); false
 * after the error reply when it cannot be decoded.
 */
static bool
auth_decode(struct session *s, const char *line, size_t len, char *buf,
    size_t size)
{
	size_t n;

	if (smtp_base64_decode(line, len, buf, size - 1, &n) == -1 ||
	    memchr(buf, '\0', n) != NULL) {
		auth_reset(s);
		reply_error(s, "501 5.5.2 Error: cannot decode response");
		return false;
	}
	buf[n] = '\0';
	return true;
}

/* An AUTH continuation line (or LOGIN's initial response when ir). */
static void
auth_line(struct session *s, char *line, size_t len, bool ir)
{
	char buf[SMTPD_CMD_LINE_MAX];

	if (!ir && strcmp(line, "*") == 0) {
		auth_reset(s);
		reply(s, "501 5.7.0 Authentication aborted");
		return;
	}
	switch (s->auth_step) {
	case AUTH_PLAIN:
		s->state = S_CMD;
		auth_plain(s, line, len);
		break;
	case AUTH_LOGIN_USER:
		if (!auth_decode(s, line, len, buf, sizeof(buf)))
			break;
		free(s->auth_login);
		s->auth_login = xstrdup(buf);
		s->auth_step = AUTH_LOGIN_PASS;
		reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
		break;
	case AUTH_LOGIN_PASS:
		if (!auth_decode(s, line, len, buf, sizeof(buf)))
			break;
		s->state = S_CMD;
		auth_finish(s, "LOGIN", s->auth_login, buf);
		auth_reset(s);
		break;
	}
	explicit_bzero(buf, sizeof(buf));
	explicit_bzero(line, len);
}

/* RFC 4616: authzid NUL authcid NUL passwd. */
static void
auth_plain(struct session *s, const char *b64, size_t len)
{
	char buf[SMTPD_CMD_LINE_MAX];
	const char *authz, *user, *pass;
	size_t n, l1, l2;

	s->state = S_CMD;
	if (smtp_base64_decode(b64, len, buf, sizeof(buf) - 1, &n) == -1) {
		reply_error(s, "501 5.5.2 Error: cannot decode response");
		return;
	}
	buf[n] = '\0';
	authz = buf;
	l1 = strlen(authz);
	if (l1 >= n) {
		auth_finish(s, "PLAIN", NULL, NULL);
		goto done;
	}
	user = buf + l1 + 1;
	l2 = strlen(user);
	if (l1 + 1 + l2 >= n) {
		auth_finish(s, "PLAIN", NULL, NULL);
		goto done;
	}
	pass = user + l2 + 1;
	if ((size_t)(pass - buf) + strlen(pass) != n ||
	    (authz[0] != '\0' && strcmp(authz, user) != 0)) {
		/* A NUL in the password, or a proxy authzid: refused. */
		auth_finish(s, "PLAIN", user, NULL);
		goto done;
	}
	auth_finish(s, "PLAIN", user, pass);
done:
	explicit_bzero(buf, sizeof(buf));
}

/* user/pass NULL: malformed, a failure. */
static void
auth_finish(struct session *s, const char *mech, const char *user,
    const char *pass)
{
	const struct smtpd_params *p = &s->sd->p;
	char esc[128];

	util_escape(esc, sizeof(esc), user != NULL ? user : "");
	if (user != NULL && pass != NULL && user[0] != '\0' &&
	    p->users != NULL && smtpd_users_check(p->users, user, pass)) {
		s->auth_user = xstrdup(user);
		log_info("AUTH %s ok: user=%s client=%s", mech, esc,
		    s->peer);
		reply(s, "235 2.7.0 Authentication successful");
		return;
	}
	s->auth_fails++;
	log_warnx("AUTH %s failed: user=%s client=%s", mech, esc,
	    s->peer);
	if (s->auth_fails >= SMTPD_AUTH_FAILS_MAX) {
		reply(s, "421 4.7.0 %s Error: too many authentication "
		    "failures", p->hostname);
		session_closing(s);
		return;
	}
	reply(s, "535 5.7.8 Authentication credentials invalid");
}

/* ------------------------------------------------------------------ */
/* DATA. */

static bool
spool_full(int e)
{
	return e == ENOSPC || e == EDQUOT;
}

/* Throw the message being received away (nothing is left in the spool). */
static void
data_drop(struct session *s)
{
	if (s->qn != NULL) {
		queue_new_abort(s->qn);
		s->qn = NULL;
	}
}

/* Feed what is buffered to the unstuffer; data_end() at the end of data. */
static void
data_input(struct session *s)
{
	enum smtp_unstuff_status st = SMTP_UNSTUFF_MORE;
	const char *in;
	size_t len, off = 0, used, outlen, chunk;

	in = io_peek(s->io, &len);
	while (off < len) {
		chunk = len - off;
		if (chunk > SMTPD_DATA_CHUNK)
			chunk = SMTPD_DATA_CHUNK;
		st = smtp_unstuff_feed(&s->unstuff, in + off, chunk, &used,
		    s->sd->dbuf, sizeof(s->sd->dbuf), &outlen);
		off += used;
		if (outlen > 0)
			data_out(s, s->sd->dbuf, outlen);
		/* After a violation nothing more is written: free the disk. */
		if (s->unstuff.err != SMTP_UNSTUFF_MORE)
			data_drop(s);
		if (st != SMTP_UNSTUFF_MORE)
			break;
	}
	io_consume(s->io, off);
	if (st != SMTP_UNSTUFF_MORE)
		data_end(s, st);
}

static void
data_out(struct session *s, const char *buf, size_t len)
{
	uint64_t max = s->sd->p.max_size;

	hops_scan(&s->hops, buf, len);
	s->dsize += len;
	if (max > 0 && s->dsize > max) {
		s->too_big = true;
		data_drop(s);
	}
	if (s->hops.count > SMTPD_HOPS_MAX)
		data_drop(s);
	if (s->qn == NULL)
		return;
	if (queue_new_write(s->qn, buf, len) == -1) {
		s->spool_err = errno;
		log_warn("smtpd: %s: queue write", queue_new_id(s->qn));
		data_drop(s);
	}
}

/* Count "Received:" fields until the empty line that ends the header. */
static void
hops_scan(struct hopscan *h, const char *buf, size_t len)
{
	static const char pat[] = "received:";

	for (size_t i = 0; i < len && !h->done; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\n') {
			/* The body is CRLF lines: "\r\n" alone is empty. */
			if (h->pos == 1)
				h->done = true;
			h->pos = 0;
			h->match = true;
			continue;
		}
		if (h->match && h->pos < sizeof(pat) - 1) {
			h->match = tolower(c) == pat[h->pos];
			if (h->match && h->pos == sizeof(pat) - 2)
				h->count++;
		}
		h->pos++;
	}
}

static void
data_end(struct session *s, enum smtp_unstuff_status st)
{
	struct smtpd *sd = s->sd;
	const char *why = NULL;

	io_set_raw(s->io, false);
	io_set_timeout(s->io, sd->p.cmd_timeout_ms);
	s->state = S_CMD;
	switch (st) {
	case SMTP_UNSTUFF_BARE_LF:
		why = "bare LF";
		break;
	case SMTP_UNSTUFF_BARE_CR:
		why = "bare CR";
		break;
	case SMTP_UNSTUFF_NUL:
		why = "NUL byte";
		break;
	case SMTP_UNSTUFF_LONG_LINE:
		why = "line longer than 1000 octets";
		break;
	case SMTP_UNSTUFF_END:
	case SMTP_UNSTUFF_MORE:
		break;
	}
	if (why != NULL) {
		data_drop(s);
		log_info("reject: DATA from %s: 554 5.6.0 message "
		    "contains a %s", s->peer, why);
		reply(s, "554 5.6.0 Error: message contains a %s", why);
	} else if (s->too_big) {
		data_drop(s);
		log_info("reject: DATA from %s: 552 5.3.4 message size "
		    "exceeds %" PRIu64, s->peer, sd->p.max_size);
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
	} else if (s->hops.count > SMTPD_HOPS_MAX) {
		data_drop(s);
		log_info("reject: DATA from %s: 554 5.4.6 too many hops "
		    "(%u Received: fields)", s->peer, s->hops.count);
		reply(s, "554 5.4.6 Error: too many hops");
	} else if (s->spool_err != 0 || s->qn == NULL) {
		data_drop(s);
		local_spool_err(s, s->spool_err != 0 ? s->spool_err : EIO);
		if (spool_full(s->spool_err))
			reply(s, "452 4.3.1 Insufficient system storage");
		else
			reply(s, "451 4.3.0 Error: queue file write error");
	} else if (sd->wq != NULL) {
		commit_start(s);
		session_reset_txn(s);
		return;		/* commit_done() goes on */
	} else
		data_commit(s);
	session_reset_txn(s);
	if (s->closing_pending) {
		reply(s, "421 4.3.2 %s Service shutting down", sd->p.hostname);
		session_closing(s);
	}
}

/* The envelope of the message that DATA just ended (its queue_new moves). */
static struct commit *
commit_new(struct session *s)
{
	struct commit *c = xcalloc(1, sizeof(*c));

	c->sd = s->sd;
	c->s = s;
	envelope_init(&c->env);
	c->env.sender = xstrdup(s->sender);
	for (size_t i = 0; i < s->rcpts.n; i++)
		envelope_add_rcpt(&c->env, s->rcpts.v[i], NULL);
	c->env.arrival = time(NULL);
	if (s->lc != NULL) {
		c->env.submit_uid = s->lc->uid;
		if (s->lc->user != NULL)
			c->env.submit_user = xstrdup(s->lc->user);
	}
	c->qn = s->qn;
	s->qn = NULL;		/* commit frees it, success or not */
	return c;
}

/* Fsyncs and renames: in a worker thread, or inline. */
static void
commit_work(void *arg)
{
	struct commit *c = arg;

	c->rc = queue_new_commit(c->qn, &c->env);
	c->err = errno;
	c->qn = NULL;
}

/* The reply, once the message is on disk (or could not be put there). */
static void
commit_reply(struct session *s, struct commit *c)
{
	char esc[SMTP_PATH_MAX * 4], user[256];
	const char *tls;
	struct envelope *env = &c->env;

	if (c->rc == -1) {
		errno = c->err;
		log_warn("smtpd: queue commit from %s", s->peer);
		local_spool_err(s, c->err);
		if (spool_full(c->err))
			reply(s, "452 4.3.1 Insufficient system storage");
		else
			reply(s, "451 4.3.0 Error: queue file write error");
		return;
	}
	tls = io_tls_version(s->io);
	util_escape(esc, sizeof(esc), env->sender);
	if (s->lc != NULL) {
		s->lc->end.queued++;
		util_escape(user, sizeof(user), s->lc->user != NULL ?
		    s->lc->user : "");
		log_info("%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu, "
		    "client=local, uid=%" PRIu32 ", user=%s", env->id, esc,
		    env->size, env->nrcpt, s->lc->uid, user);
	} else if (s->auth_user != NULL) {
		util_escape(user, sizeof(user), s->auth_user);
		log_info("%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu, "
		    "client=%s, tls=%s, auth=%s", env->id, esc, env->size,
		    env->nrcpt, s->peer, tls != NULL ? tls : "none",
		    user);
	} else
		log_info("%s: from=<%s>, size=%" PRIu64 ", nrcpt=%zu, "
		    "client=%s, tls=%s", env->id, esc, env->size,
		    env->nrcpt, s->peer, tls != NULL ? tls : "none");
	reply(s, "250 2.0.0 Ok: queued as %s", env->id);
}

static void
commit_free(struct commit *c)
{
	if (c->qn != NULL)
		queue_new_abort(c->qn);
	envelope_free(&c->env);
	free(c);
}

/* Inline: commit, tell the queue manager, reply. */
static void
data_commit(struct session *s)
{
	struct commit *c = commit_new(s);

	commit_work(c);
	if (c->rc == 0 && s->sd->cb != NULL)
		s->sd->cb(s->sd->arg, &c->env);
	commit_reply(s, c);
	commit_free(c);
}

/*
 * In a worker thread: the session waits (S_COMMIT, no input taken) so
 * that the replies stay in order.
 */
static void
commit_start(struct session *s)
{
	struct commit *c = commit_new(s);

	s->state = S_COMMIT;
	s->commit = c;
	workq_push(s->sd->wq, commit_work, commit_done, c);
}

static void
commit_done(void *arg)
{
	struct commit *c = arg;
	struct smtpd *sd = c->sd;
	struct session *s = c->s;

	if (c->rc == 0 && sd->cb != NULL && !sd->freeing)
		sd->cb(sd->arg, &c->env);
	if (s == NULL) {
		if (c->rc == 0)
			log_info("%s: queued, but the client left before the "
			    "reply", c->env.id);
		commit_free(c);
		return;
	}
	s->commit = NULL;
	if (s->state == S_CLOSING) {
		/* Timed out meanwhile: the 421 is said, the session goes. */
		commit_free(c);
		return;
	}
	s->state = S_CMD;
	commit_reply(s, c);
	commit_free(c);
	if (s->closing_pending) {
		reply(s, "421 4.3.2 %s Service shutting down", sd->p.hostname);
		session_closing(s);
		return;
	}
	session_input(s);
}

/* ------------------------------------------------------------------ */
/* The users file. */

struct smtpd_users *
smtpd_users_load(const char *path, char *err, size_t errlen)
{
	struct smtpd_users *u;
	struct crypt_data *cd = NULL;
	FILE *f;
	char *line = NULL, *p, *colon, *end;
	size_t cap = 0;
	unsigned long lineno = 0;
	ssize_t n;
	bool ok = false;

	if ((f = fopen(path, "re")) == NULL) {
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	u = xcalloc(1, sizeof(*u));
	cd = xcalloc(1, sizeof(*cd));
	while ((n = util_getline(f, &line, &cap, SMTPD_USERS_LINE_MAX, path,
	    &lineno, err, errlen)) >= 0) {
		const char *h;

		p = line;
		end = line + n;
		while (end > p && isspace((unsigned char)end[-1]))
			*--end = '\0';
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		if ((colon = strchr(p, ':')) == NULL) {
			util_seterr(err, errlen, "%s:%lu: expected user:hash",
			    path, lineno);
			goto done;
		}
		*colon = '\0';
		if (colon == p) {
			util_seterr(err, errlen, "%s:%lu: empty user name",
			    path, lineno);
			goto done;
		}
		for (const char *c = p; *c != '\0'; c++)
			if ((unsigned char)*c <= 0x20 ||
			    (unsigned char)*c == 0x7f) {
				util_seterr(err, errlen, "%s:%lu: bad character "
				    "in user name", path, lineno);
				goto done;
			}
		if (colon[1] == '\0') {
			util_seterr(err, errlen, "%s:%lu: empty password hash",
			    path, lineno);
			goto done;
		}
		for (size_t i = 0; i < u->n; i++)
			if (strcmp(u->v[i].name, p) == 0) {
				util_seterr(err, errlen, "%s:%lu: duplicate "
				    "user %s", path, lineno, u->v[i].name);
				goto done;
			}
		/* Refuse what crypt(3) cannot use rather than fail later. */
		h = crypt_r("", colon + 1, cd);
		if (h == NULL || h[0] == '*' || colon[1] != '$') {
			util_seterr(err, errlen, "%s:%lu: unsupported or "
			    "malformed password hash", path, lineno);
			goto done;
		}
		u->v = xreallocarray(u->v, u->n + 1, sizeof(*u->v));
		u->v[u->n].name = xstrdup(p);
		u->v[u->n].hash = xstrdup(colon + 1);
		u->n++;
	}
	if (n == -1 && ferror(f)) {
		util_seterr(err, errlen, "%s:%lu: %s", path, lineno + 1,
		    strerror(errno));
		goto done;
	}
	if (n == -2)
		goto done;
	ok = true;
done:
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	fclose(f);
	if (!ok) {
		smtpd_users_free(u);
		return NULL;
	}
	return u;
}

void
smtpd_users_free(struct smtpd_users *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		explicit_bzero(u->v[i].hash, strlen(u->v[i].hash));
		free(u->v[i].hash);
	}
	free(u->v);
	free(u);
}

/* Compare without stopping at the first difference. */
static bool
ct_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

bool
smtpd_users_check(const struct smtpd_users *u, const char *user,
    const char *pass)
{
	struct crypt_data *cd;
	const char *hash = NULL, *r;
	bool ok;

	if (u == NULL || user == NULL || pass == NULL)
		return false;
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i].name, user) == 0) {
			hash = u->v[i].hash;
			break;
		}
	/*
	 * Unknown user: hash anyway, with the first user's setting (same
	 * algorithm and cost as real checks), else a fixed SHA-512 one.
	 */
	cd = xcalloc(1, sizeof(*cd));
	r = crypt_r(pass, hash != NULL ? hash : u->n > 0 ? u->v[0].hash :
	    SMTPD_DUMMY_HASH, cd);
	ok = hash != NULL && r != NULL && r[0] != '*' && ct_equal(r, hash);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}
