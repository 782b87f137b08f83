/*
 * smtpd: the SMTP listener of mxrelayd (mxrelayd(8), THE SMTP LISTENER),
 * level 5: the listening sockets, the relay ACL, and one server session
 * per client with a table of commands (OpenSMTPD smtp_session.c shape).
 * The listener's other files: smtpd_parse.c (pure parsing of command
 * lines and arguments), smtpd_commit.c (DATA and the commit to the
 * spool), smtpd_auth.c (AUTH and the users file), smtpd_local.c (local
 * sessions, mxrelay -bs); smtpd_session.h holds the structs they share.
 *
 * Session states:
 *	S_CMD		waiting for a command line (io in line mode, 512 octets)
 *	S_AUTH		waiting for an AUTH continuation line (same limit)
 *	S_DATA		after 354: io in raw mode, bytes go through the
 *			streaming unstuffer (smtp_proto.c) into the spool
 *	S_COMMIT	the message is being made durable in a worker
 *			thread; no input is taken until its reply is queued
 *	S_AUTH_WAIT	AUTH: the password is being checked in a worker
 *			thread, or the reply to a failure is delayed; no
 *			input is taken until the reply is queued
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
 *   is never held in memory (smtpd_commit.c).
 * - 250 is sent only after queue_new_commit() returned 0 and the queued
 *   callback ran.
 * - STARTTLS: input buffered behind the STARTTLS line is discarded, never
 *   executed; after the handshake the session is as before EHLO.
 * - Parameters are read through sd->p at each use, so smtpd_set_params()
 *   takes effect for every session at once.
 * - s->lc is NULL for clients of the listener, and every branch for
 *   local sessions tests it.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "confval.h"
#include "event.h"
#include "io.h"
#include "log.h"
#include "metrics.h"
#include "message.h"
#include "smtp_proto.h"
#include "smtpd.h"
#include "smtpd_auth.h"
#include "smtpd_authfail.h"
#include "smtpd_parse.h"
#include "smtpd_session.h"
#include "workq.h"
#include "utf8.h"
#include "util.h"

/* RFC 5321 §4.5.3.1.4: 512 octets with CRLF; two octets of slack. */
#define SMTPD_CMD_LINE_MAX	512
#define SMTPD_WQ_HIWAT		65536	/* stop taking commands above this */
#define SMTPD_ERRORS_MAX	20	/* bad commands before 421 (Postfix) */
#define SMTPD_CLOSE_WAIT_MS	2000	/* bound on flushing the last reply */
#define SMTPD_ACCEPT_PAUSE_MS	1000	/* after EMFILE/ENFILE */
#define SMTPD_DEADLINE_RETRY_MS	1000	/* deadline during a commit */
#define SMTPD_OUTSIDER_GRACE_MS	10000	/* an outsider's, before eviction */

/* How many sessions one client address holds (smtpd->addrs). */
struct addr_count {
	struct hash_node node;
	unsigned	 n;
	char		 key[SMTPD_CLIENT_KEY_MAX];
};

struct listener {
	struct smtpd	*sd;
	int		 fd;
	bool		 registered;
};

/* What each verb does, indexed by enum smtpd_verb (smtpd_parse.c). */
typedef void (*cmd_proceed)(struct session *, char *arg);

static void	 params_set(struct smtpd *, const struct smtpd_params *);
static void	 listener_on_fd(int, int, void *);
static void	 listeners_watch(struct smtpd *, bool);
static void	 listeners_close(struct smtpd *);
static void	 on_pause_timer(void *);
static void	 session_new(struct smtpd *, int, const struct sockaddr_storage *);
static void	 session_refuse(struct smtpd *, int, const char *);
static bool	 session_make_room(struct smtpd *, bool);
static struct addr_count *addr_count_get(struct smtpd *, int, const void *,
		    const char *);
static void	 addr_count_put(struct smtpd *, struct addr_count *);
static void	 session_on_deadline(void *);
static bool	 session_junk(struct session *);
static void	 session_input_run(struct session *);
static void	 session_free(struct session *);
static void	 session_on_io(struct io *, enum io_event, void *);
static void	 session_on_close_timer(void *);
static void	 session_line(struct session *, char *, size_t, bool);
static void	 session_after_reply(struct session *);
static bool	 addr_relay_ok(const struct smtpd *, int, const void *);
static void	 vreply(struct session *, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));
static void	 cmd_helo(struct session *, char *);
static void	 cmd_ehlo(struct session *, char *);
static void	 cmd_mail(struct session *, char *);
static void	 mail_param_error(struct session *, enum smtpd_param_status,
		    const char *);
static void	 reply_nonascii(struct session *, const char *,
		    const char *);
static void	 cmd_rcpt(struct session *, char *);
static void	 cmd_rset(struct session *, char *);
static void	 cmd_noop(struct session *, char *);
static void	 cmd_quit(struct session *, char *);
static void	 cmd_help(struct session *, char *);
static void	 cmd_vrfy(struct session *, char *);
static void	 cmd_starttls(struct session *, char *);

static const cmd_proceed commands[SMTPD_NVERBS] = {
	[SMTPD_VERB_HELO] =	cmd_helo,
	[SMTPD_VERB_EHLO] =	cmd_ehlo,
	[SMTPD_VERB_MAIL] =	cmd_mail,
	[SMTPD_VERB_RCPT] =	cmd_rcpt,
	[SMTPD_VERB_DATA] =	smtpd_data_begin,
	[SMTPD_VERB_RSET] =	cmd_rset,
	[SMTPD_VERB_NOOP] =	cmd_noop,
	[SMTPD_VERB_QUIT] =	cmd_quit,
	[SMTPD_VERB_HELP] =	cmd_help,
	[SMTPD_VERB_VRFY] =	cmd_vrfy,
	[SMTPD_VERB_STARTTLS] =	cmd_starttls,
	[SMTPD_VERB_AUTH] =	smtpd_auth_begin,
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
	if (sd->p.idle_timeout_ms == 0)
		sd->p.idle_timeout_ms = SMTPD_IDLE_TIMEOUT_MS;
	if (sd->p.tls_timeout_ms == 0)
		sd->p.tls_timeout_ms = SMTPD_TLS_TIMEOUT_MS;
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
	/*
	 * The timeouts apply at once; the other values at their next use
	 * (a session's deadline was set when it began).
	 */
	TAILQ_FOREACH(s, &sd->sessions, entry)
		smtpd_session_timeout(s);
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
		smtpd_local_release(sd->local);
		sd->local = NULL;
	}
	listeners_close(sd);
	/* Commits in flight finish (their messages are queued, unanswered). */
	sd->freeing = true;
	workq_free(sd->wq);
	hash_free(&sd->addrs);
	authfail_free(sd->authfail);
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
		case S_AUTH_WAIT:
			/* The 421 answers the AUTH. */
			smtpd_auth_detach(s);
			/* FALLTHROUGH */
		case S_CMD:
		case S_AUTH:
			smtpd_reply(s, "421 4.3.2 %s Service shutting down",
			    sd->p.hostname);
			smtpd_session_closing(s);
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
/* Sessions. */

static void
session_new(struct smtpd *sd, int fd, const struct sockaddr_storage *ss)
{
	struct session *s;
	struct addr_count *ac;
	char addr[INET6_ADDRSTRLEN] = "unknown";
	unsigned char raw[16] = { 0 };
	unsigned port = 0;
	bool relay;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		memcpy(raw, &sin->sin_addr, 4);
		port = ntohs(sin->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		memcpy(raw, &sin6->sin6_addr, 16);
		port = ntohs(sin6->sin6_port);
	}
	relay = addr_relay_ok(sd, ss->ss_family, raw);
	/*
	 * An outsider gets no more than max_per_address connections from
	 * one address (relay clients are not counted).  Checked first: one
	 * at its limit must not close another's session for nothing.
	 */
	ac = relay ? NULL : addr_count_get(sd, ss->ss_family, raw, addr);
	if (ac != NULL && sd->p.max_per_address > 0 &&
	    ac->n >= sd->p.max_per_address) {
		log_warnx("smtpd: too many connections from [%s], refused "
		    "[%s]:%u", ac->key, addr, port);
		addr_count_put(sd, ac);
		metrics_inc1(METRIC_SMTPD_REFUSED, "max_per_address");
		session_refuse(sd, fd, "Too many connections from your address");
		return;
	}
	/*
	 * A full listener still takes a relay client: the oldest outsider
	 * makes room.  It takes a new outsider when the oldest outsider has
	 * had its grace time, so that one who holds every slot cannot keep
	 * out someone who would authenticate.  Outsiders get what relay
	 * clients leave.
	 */
	if (sd->p.max_clients > 0 && sd->nsessions >= sd->p.max_clients &&
	    !session_make_room(sd, relay)) {
		log_warnx("smtpd: too many connections, refused [%s]:%u",
		    addr, port);
		if (ac != NULL)
			addr_count_put(sd, ac);
		metrics_inc1(METRIC_SMTPD_REFUSED, "max_clients");
		session_refuse(sd, fd, "Too many connections");
		return;
	}

	s = smtpd_session_alloc(sd, fd);
	if ((s->ac = ac) != NULL)
		ac->n++;
	util_strlcpy(s->addr, addr, sizeof(s->addr));
	s->port = port;
	s->family = ss->ss_family;
	memcpy(s->rawaddr, raw, sizeof(s->rawaddr));
	snprintf(s->peer, sizeof(s->peer), "[%s]:%u", s->addr, s->port);
	if (sd->p.session_deadline_ms > 0)
		ev_timer_add(sd->loop, &s->deadline_timer,
		    sd->p.session_deadline_ms);
	smtpd_session_timeout(s);
	log_info("connect from %s", s->peer);
	metrics_inc(METRIC_SMTPD_CONN, NULL);
	smtpd_reply(s, "220 %s ESMTP mxrelay", sd->p.hostname);
}

/* 421 on a socket that gets no session, and close it. */
static void
session_refuse(struct smtpd *sd, int fd, const char *why)
{
	char buf[512];
	int n;

	n = snprintf(buf, sizeof(buf), "421 4.7.0 %s %s, try again later\r\n",
	    sd->p.hostname, why);
	/* A fresh socket's send buffer takes this at once. */
	if (n > 0 && (size_t)n < sizeof(buf))
		(void)send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)shutdown(fd, SHUT_WR);
	close(fd);
}

/*
 * The listener is full: close the oldest outsider's session that waits
 * for a command or a handshake, for a relay client, or for an outsider
 * when that session is older than SMTPD_OUTSIDER_GRACE_MS.  When there
 * is none, drop an outsider's session that is flushing its last reply
 * (it holds its slot up to SMTPD_CLOSE_WAIT_MS).  False when nothing can
 * go (every slot is held by relay clients, authenticated users, or young
 * outsiders).
 */
static bool
session_make_room(struct smtpd *sd, bool for_relay)
{
	const char *whom = for_relay ? "a relay client" : "a new client";
	struct session *s, *closing = NULL;

	TAILQ_FOREACH(s, &sd->sessions, entry) {
		if (s->lc != NULL || smtpd_session_relay_ok(s))
			continue;
		if (s->state == S_CLOSING) {
			if (closing == NULL)
				closing = s;
			continue;
		}
		if (s->state != S_CMD && s->state != S_AUTH &&
		    s->state != S_AUTH_WAIT && s->state != S_TLS)
			continue;
		/* The list is in the order of arrival: none older follows. */
		if (!for_relay &&
		    ev_now(sd->loop) - s->start_ms < SMTPD_OUTSIDER_GRACE_MS)
			break;
		if (s->state == S_TLS) {
			/* Nothing can be said in clear now. */
			log_warnx("smtpd: listener full: closing %s (an "
			    "outsider, in its TLS handshake) for %s", s->peer,
			    whom);
			metrics_inc1(METRIC_SMTPD_REFUSED, "evicted");
			session_free(s);
			return true;
		}
		log_warnx("smtpd: listener full: closing %s (an outsider) for "
		    "%s", s->peer, whom);
		metrics_inc1(METRIC_SMTPD_REFUSED, "evicted");
		if (s->state == S_AUTH_WAIT)
			smtpd_auth_detach(s);	/* the 421 answers the AUTH */
		smtpd_reply(s, "421 4.7.0 %s Too many connections, closing",
		    sd->p.hostname);
		smtpd_session_closing(s);
		return true;
	}
	if (closing == NULL)
		return false;
	log_info("smtpd: listener full: dropping %s (an outsider, closing) "
	    "for %s", closing->peer, whom);
	metrics_inc1(METRIC_SMTPD_REFUSED, "evicted");
	session_free(closing);
	return true;
}

/*
 * The count of sessions from a client (smtpd_client_key()), made when
 * there is none (n = 0).  addr is the printed address.
 */
static struct addr_count *
addr_count_get(struct smtpd *sd, int family, const void *raw, const char *addr)
{
	struct hash_node *hn;
	struct addr_count *ac;
	char key[SMTPD_CLIENT_KEY_MAX];

	smtpd_client_key(family, raw, addr, key);
	if ((hn = hash_find(&sd->addrs, key)) != NULL)
		return HASH_ENTRY(hn, struct addr_count, node);
	ac = xcalloc(1, sizeof(*ac));
	util_strlcpy(ac->key, key, sizeof(ac->key));
	hash_insert(&sd->addrs, &ac->node, ac->key);
	return ac;
}

/*
 * The session's client authenticated: it no longer counts against its
 * address's max_per_address (an office behind one NAT address).
 */
void
smtpd_session_trusted(struct session *s)
{
	if (s->ac == NULL)
		return;
	s->ac->n--;
	addr_count_put(s->sd, s->ac);
	s->ac = NULL;
}

/* Forget a count that no session holds any more. */
static void
addr_count_put(struct smtpd *sd, struct addr_count *ac)
{
	if (ac->n > 0)
		return;
	hash_remove(&sd->addrs, &ac->node);
	free(ac);
}

/* A new session in S_CMD on a connected socket (taken over by its io). */
struct session *
smtpd_session_alloc(struct smtpd *sd, int fd)
{
	struct session *s;

	s = xcalloc(1, sizeof(*s));
	s->sd = sd;
	s->state = S_CMD;
	s->start_ms = ev_now(sd->loop);
	ev_timer_init(&s->close_timer, session_on_close_timer, s);
	ev_timer_init(&s->deadline_timer, session_on_deadline, s);
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
	if (s->lc != NULL)
		smtpd_local_session_gone(s->lc, s->sender != NULL);
	TAILQ_REMOVE(&sd->sessions, s, entry);
	sd->nsessions--;
	ev_timer_del(sd->loop, &s->close_timer);
	ev_timer_del(sd->loop, &s->deadline_timer);
	if (s->ac != NULL) {
		s->ac->n--;
		addr_count_put(sd, s->ac);
	}
	if (s->commit != NULL)
		smtpd_commit_detach(s->commit);
	smtpd_auth_detach(s);
	io_free(s->io);
	smtpd_session_reset_txn(s);
	free(s->auth_user);
	smtpd_auth_reset(s);
	free(s);
}

/* The last reply is queued: flush it, then go. */
void
smtpd_session_closing(struct session *s)
{
	s->state = S_CLOSING;
	smtpd_data_drop(s);
	io_set_timeout(s->io, 0);
	ev_timer_del(s->sd->loop, &s->deadline_timer);
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

/* The whole session took too long: 421, whatever it is doing. */
static void
session_on_deadline(void *arg)
{
	struct session *s = arg;
	struct smtpd *sd = s->sd;

	switch (s->state) {
	case S_COMMIT:
		/* Its reply comes first; look again soon. */
		ev_timer_add(sd->loop, &s->deadline_timer,
		    SMTPD_DEADLINE_RETRY_MS);
		return;
	case S_CLOSING:
		return;
	case S_TLS:
		log_info("session deadline exceeded during TLS handshake "
		    "from %s", s->peer);
		metrics_inc1(METRIC_SMTPD_REFUSED, "deadline");
		session_free(s);
		return;
	case S_AUTH_WAIT:
		/* The 421 answers the AUTH. */
		smtpd_auth_detach(s);
		break;
	case S_CMD:
	case S_AUTH:
	case S_DATA:
		break;
	}
	log_info("session deadline exceeded %s from %s",
	    s->state == S_DATA ? "in DATA" : "after command", s->peer);
	metrics_inc1(METRIC_SMTPD_REFUSED, "deadline");
	smtpd_reply(s, "421 4.4.2 %s Error: session deadline exceeded",
	    sd->p.hostname);
	smtpd_session_closing(s);
}

/*
 * The io timeout for the session's state: a TLS handshake, DATA, or a
 * command; an outsider waits the shorter idle_timeout (RFC 5321
 * §4.5.3.2.7 asks 5 minutes of the server for a client that sends mail;
 * an outsider cannot: every RCPT of its gets 554).
 */
void
smtpd_session_timeout(struct session *s)
{
	const struct smtpd_params *p = &s->sd->p;
	unsigned ms;

	switch (s->state) {
	case S_TLS:
		ms = p->tls_timeout_ms;
		break;
	case S_DATA:
		ms = p->data_timeout_ms;
		break;
	case S_AUTH_WAIT:
		/* We keep the client waiting (a delay of up to a minute). */
		ms = 0;
		break;
	case S_COMMIT:
	case S_CMD:
	case S_AUTH:
		ms = smtpd_session_relay_ok(s) ? p->cmd_timeout_ms :
		    p->idle_timeout_ms;
		break;
	case S_CLOSING:
	default:
		return;
	}
	io_set_timeout(s->io, ms);
}

/* Forget the mail transaction (RSET, EHLO, end of DATA). */
void
smtpd_session_reset_txn(struct session *s)
{
	free(s->sender);
	s->sender = NULL;
	strlist_free(&s->rcpts);
	s->smtputf8 = false;
	s->addr8bit = false;
	smtpd_data_drop(s);
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
		smtpd_session_input(s);
		break;
	case IO_LOWAT:
		if (s->state == S_CLOSING) {
			if (io_queued(s->io) == 0)
				session_free(s);
			break;
		}
		if (s->blocked && io_queued(s->io) < SMTPD_WQ_HIWAT / 2) {
			s->blocked = false;
			smtpd_session_input(s);
		} else if (s->lc != NULL)
			smtpd_local_eof_check(s->lc);
		break;
	case IO_TLS_DONE:
		/* RFC 3207 §4.2: forget everything learnt in clear. */
		s->state = S_CMD;
		s->helo[0] = '\0';
		s->esmtp = false;
		free(s->auth_user);
		s->auth_user = NULL;
		smtpd_session_reset_txn(s);
		smtpd_session_timeout(s);
		log_info("STARTTLS from %s: %s", s->peer,
		    io_tls_version(s->io) != NULL ? io_tls_version(s->io) :
		    "?");
		smtpd_session_input(s);
		break;
	case IO_TIMEOUT:
		if (s->state == S_TLS || s->state == S_CLOSING) {
			log_info("timeout during %s from %s",
			    s->state == S_TLS ? "TLS handshake" : "close",
			    s->peer);
			metrics_inc1(METRIC_SMTPD_REFUSED, "timeout");
			session_free(s);
			break;
		}
		log_info("timeout after %s from %s",
		    s->state == S_DATA ? "DATA" : "command", s->peer);
		metrics_inc1(METRIC_SMTPD_REFUSED, "timeout");
		if (s->lc != NULL)
			s->lc->end.timeout = true;
		smtpd_reply(s, "421 4.4.2 %s Error: timeout exceeded",
		    sd->p.hostname);
		smtpd_session_closing(s);
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
void
smtpd_session_input(struct session *s)
{
	session_input_run(s);
	if (s->lc != NULL)
		smtpd_local_eof_check(s->lc);
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
		case S_AUTH_WAIT:
		case S_CLOSING:
			return;
		case S_DATA:
			smtpd_data_input(s);
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

/* After each command: the error and junk limits, the next timeout. */
static void
session_after_reply(struct session *s)
{
	const struct smtpd_params *p = &s->sd->p;

	if (s->state == S_CLOSING)
		return;
	if (s->errors >= SMTPD_ERRORS_MAX) {
		log_warnx("too many errors from %s", s->peer);
		metrics_inc1(METRIC_SMTPD_REFUSED, "errors");
		if (s->lc != NULL)
			s->lc->end.error_limit = true;
		smtpd_reply(s, "421 4.7.0 %s Error: too many errors",
		    p->hostname);
		smtpd_session_closing(s);
		return;
	}
	if (s->state == S_CMD || s->state == S_AUTH)
		smtpd_session_timeout(s);
}

/*
 * NOOP, RSET, HELP, VRFY or an unknown command: an outsider may send
 * junk_limit of them in a session (relay clients, authenticated users and
 * local sessions, which may keep a connection alive with NOOP, have no
 * limit).  The one over the limit gets 421 instead of its reply: false.
 */
static bool
session_junk(struct session *s)
{
	const struct smtpd_params *p = &s->sd->p;

	if (p->junk_limit == 0 || smtpd_session_relay_ok(s) ||
	    ++s->junk <= p->junk_limit)
		return true;
	log_warnx("too many junk commands from %s", s->peer);
	metrics_inc1(METRIC_SMTPD_REFUSED, "junk");
	smtpd_reply(s, "421 4.7.0 %s Error: too many commands without mail",
	    p->hostname);
	smtpd_session_closing(s);
	return false;
}

static void
session_line(struct session *s, char *line, size_t len, bool too_long)
{
	struct smtpd_cmd cmd;
	char esc[64];

	s->ncmds++;
	if (s->state == S_AUTH) {
		smtpd_auth_input(s, line, len, too_long);
		return;
	}
	if (too_long) {
		smtpd_reply_error(s, "500 5.5.2 Error: line too long");
		return;
	}
	switch (smtpd_cmd_parse(line, len, &cmd)) {
	case SMTPD_CMD_NUL:
		smtpd_reply_error(s, "500 5.5.2 Error: NUL byte in command");
		break;
	case SMTPD_CMD_UNKNOWN:
		log_debug("unknown command from %s: %s", s->peer,
		    smtp_escape(esc, sizeof(esc), line, len));
		if (session_junk(s))
			smtpd_reply_error(s, "500 5.5.2 Error: command "
			    "not recognized");
		break;
	case SMTPD_CMD_EXTRA_ARG:
		smtpd_reply_error(s, "501 5.5.4 Syntax: %s", cmd.name);
		break;
	case SMTPD_CMD_NEED_ARG:
		smtpd_reply_error(s, "501 5.5.4 Syntax: %s requires an "
		    "argument", cmd.name);
		break;
	case SMTPD_CMD_OK:
		commands[cmd.verb](s, cmd.arg);
		break;
	}
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

void
smtpd_reply(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
}

/* A reply to a bad command: counts towards SMTPD_ERRORS_MAX. */
void
smtpd_reply_error(struct session *s, const char *fmt, ...)
{
	va_list ap;

	s->errors++;
	va_start(ap, fmt);
	vreply(s, fmt, ap);
	va_end(ap);
}

bool
smtpd_session_relay_ok(const struct session *s)
{
	const struct smtpd *sd = s->sd;

	if (s->auth_user != NULL || s->lc != NULL)
		return true;
	return addr_relay_ok(sd, s->family, s->rawaddr);
}

/* A client address inside relay_clients. */
static bool
addr_relay_ok(const struct smtpd *sd, int family, const void *raw)
{
	if (family != AF_INET && family != AF_INET6)
		return false;
	return conf_cidr_match(sd->p.relay_clients, sd->p.nrelay_clients,
	    family, raw);
}

/* ------------------------------------------------------------------ */
/* Commands. */

static void
cmd_helo(struct session *s, char *arg)
{
	if (!smtpd_helo_ok(arg)) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: HELO hostname");
		return;
	}
	smtpd_session_reset_txn(s);
	util_strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = false;
	smtpd_reply(s, "250 %s", s->sd->p.hostname);
}

static void
cmd_ehlo(struct session *s, char *arg)
{
	const struct smtpd_params *p = &s->sd->p;

	if (!smtpd_helo_ok(arg)) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: EHLO hostname");
		return;
	}
	/* RFC 5321 §4.1.4: EHLO also resets the transaction. */
	smtpd_session_reset_txn(s);
	util_strlcpy(s->helo, arg, sizeof(s->helo));
	s->esmtp = true;
	smtpd_reply(s, "250-%s", p->hostname);
	smtpd_reply(s, "250-PIPELINING");
	if (p->max_size > 0)
		smtpd_reply(s, "250-SIZE %" PRIu64, p->max_size);
	else
		smtpd_reply(s, "250-SIZE");
	smtpd_reply(s, "250-8BITMIME");
	smtpd_reply(s, "250-SMTPUTF8");
	if (p->tls_ctx != NULL && !io_tls_active(s->io) && s->lc == NULL)
		smtpd_reply(s, "250-STARTTLS");
	if (io_tls_active(s->io) && p->users != NULL)
		smtpd_reply(s, "250-AUTH PLAIN LOGIN");
	smtpd_reply(s, "250 ENHANCEDSTATUSCODES");
}

/* The reply to a MAIL parameter refused (RFC 1870, RFC 6152). */
static void
mail_param_error(struct session *s, enum smtpd_param_status st,
    const char *bad)
{
	char esc[64];

	switch (st) {
	case SMTPD_PARAM_BAD_SIZE:
		smtpd_reply_error(s, "555 5.5.4 Bad SIZE parameter");
		break;
	case SMTPD_PARAM_TOO_BIG:
		smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		break;
	case SMTPD_PARAM_BAD_BODY:
		smtpd_reply_error(s, "555 5.5.4 Unsupported BODY parameter");
		break;
	case SMTPD_PARAM_UNKNOWN:
		smtpd_reply_error(s, "555 5.5.4 Unsupported parameter: %s",
		    smtp_escape(esc, sizeof(esc), bad, strlen(bad)));
		break;
	case SMTPD_PARAM_OK:
		break;
	}
}

static void
cmd_mail(struct session *s, char *arg)
{
	struct smtpd_path pp;
	struct smtpd_mail_params mp;
	enum smtpd_param_status st;
	char err[128], esc[128], *sender;

	if (s->helo[0] == '\0') {
		smtpd_reply_error(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (s->sender != NULL) {
		smtpd_reply_error(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (smtpd_path_parse(arg, "FROM:", &pp) == -1) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	if (pp.params[0] != '\0' && !s->esmtp) {
		smtpd_reply_error(s, "555 5.5.4 Error: parameters need EHLO");
		return;
	}
	st = smtpd_mail_params_parse(pp.params, s->sd->p.max_size, &mp);
	if (st != SMTPD_PARAM_OK) {
		mail_param_error(s, st, mp.bad);
		return;
	}
	if (utf8_has_8bit(pp.path) && !mp.smtputf8) {
		reply_nonascii(s, "sender", pp.path);
		return;
	}
	if (pp.path[0] == '\0')
		sender = xstrdup("");		/* the null sender <> */
	else if ((sender = (mp.smtputf8 ? smtpd_mailbox_utf8 :
	    smtpd_mailbox)(pp.path, s->sd->p.qualify_domain, err,
	    sizeof(err))) == NULL) {
		log_info("reject: MAIL from %s: bad sender <%s>: %s",
		    s->peer, smtp_escape(esc, sizeof(esc), pp.path,
		    strlen(pp.path)), err);
		smtpd_reply_error(s, "501 5.1.7 Bad sender address syntax");
		return;
	}
	s->sender = sender;
	s->smtputf8 = mp.smtputf8;
	s->addr8bit = utf8_has_8bit(sender);
	smtpd_reply(s, "250 2.1.0 Ok");
}

/*
 * RFC 6531 §3.4 and RFC 6533 §3: a non-ASCII address in a transaction
 * that did not say SMTPUTF8 in its MAIL command.
 */
static void
reply_nonascii(struct session *s, const char *what, const char *path)
{
	char esc[128];

	log_info("reject: %s from %s: non-ASCII %s <%s> without SMTPUTF8",
	    what[0] == 's' ? "MAIL" : "RCPT", s->peer, what,
	    smtp_escape(esc, sizeof(esc), path, strlen(path)));
	smtpd_reply_error(s, "553 5.6.7 Error: non-ASCII %s address "
	    "without SMTPUTF8", what);
}

static void
cmd_rcpt(struct session *s, char *arg)
{
	const struct smtpd_params *p = &s->sd->p;
	struct smtpd_path pp;
	char *addr = NULL, err[128] = "", esc[128];

	if (s->sender == NULL) {
		smtpd_reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (!smtpd_session_relay_ok(s)) {
		log_info("reject: RCPT from %s: 554 5.7.1 Relay access "
		    "denied: %s", s->peer,
		    smtp_escape(esc, sizeof(esc), arg, strlen(arg)));
		smtpd_reply_error(s, "554 5.7.1 Relay access denied");
		return;
	}
	if (p->max_recipients > 0 && s->rcpts.n >= p->max_recipients) {
		smtpd_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (smtpd_path_parse(arg, "TO:", &pp) == -1) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	if (smtpd_rcpt_params_parse(pp.params) != SMTPD_PARAM_OK) {
		smtpd_reply_error(s, "555 5.5.4 Unsupported parameter");
		return;
	}
	if (utf8_has_8bit(pp.path) && !s->smtputf8) {
		reply_nonascii(s, "recipient", pp.path);
		return;
	}
	if (pp.path[0] != '\0')
		addr = (s->smtputf8 ? smtpd_mailbox_utf8 : smtpd_mailbox)(
		    pp.path, p->qualify_domain, err, sizeof(err));
	if (addr == NULL) {
		log_info("reject: RCPT from %s: bad recipient <%s>: %s",
		    s->peer, smtp_escape(esc, sizeof(esc), pp.path,
		    strlen(pp.path)), err[0] != '\0' ? err : "empty");
		smtpd_reply_error(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (utf8_has_8bit(addr))
		s->addr8bit = true;
	strlist_add_owned(&s->rcpts, addr);
	smtpd_reply(s, "250 2.1.5 Ok");
}

static void
cmd_rset(struct session *s, char *arg)
{
	(void)arg;
	if (!session_junk(s))
		return;
	smtpd_session_reset_txn(s);
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct session *s, char *arg)
{
	(void)arg;
	if (!session_junk(s))
		return;
	smtpd_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct session *s, char *arg)
{
	(void)arg;
	if (s->lc != NULL)
		s->lc->end.quit = true;
	smtpd_reply(s, "221 2.0.0 Bye");
	smtpd_session_closing(s);
}

static void
cmd_help(struct session *s, char *arg)
{
	(void)arg;
	if (!session_junk(s))
		return;
	/* A local session (mxrelay -bs) has neither STARTTLS nor AUTH. */
	if (s->lc != NULL)
		smtpd_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA "
		    "RSET NOOP QUIT HELP VRFY");
	else
		smtpd_reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA "
		    "RSET NOOP QUIT HELP VRFY STARTTLS AUTH");
}

static void
cmd_vrfy(struct session *s, char *arg)
{
	(void)arg;
	if (!session_junk(s))
		return;
	/* RFC 5321 §3.5.3: 252 rather than reveal anything. */
	smtpd_reply(s, "252 2.5.2 Cannot VRFY user, but will accept message "
	    "and attempt delivery");
}

static void
cmd_starttls(struct session *s, char *arg)
{
	struct smtpd *sd = s->sd;
	size_t pending;

	(void)arg;
	if (io_tls_active(s->io)) {
		smtpd_reply_error(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (sd->p.tls_ctx == NULL || s->lc != NULL) {
		smtpd_reply_error(s, "502 5.5.1 Error: command not "
		    "implemented");
		return;
	}
	if (s->sender != NULL) {
		smtpd_reply_error(s, "503 5.5.1 Error: MAIL transaction in "
		    "progress");
		return;
	}
	smtpd_reply(s, "220 2.0.0 Ready to start TLS");
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
		smtpd_session_closing(s);
		return;
	}
	s->state = S_TLS;
	smtpd_session_timeout(s);
}
