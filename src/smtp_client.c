/*
 * smtp_client: one outbound SMTP session (see smtp_client.h).
 *
 * Shape of OpenSMTPD's mta_session.c: an enum of states, one
 * smtpc_enter_state() that sends what a state needs and arms its timeout,
 * one smtpc_on_reply() that hands a complete reply to the handler of the
 * current state (the short ones stay in its switch).  Replies are parsed by smtp_proto.c; bytes move through
 * io.c.  This file has the interface, the event entry points, the state
 * machine, reasons and the end of a session; the handlers are in
 * smtp_client_start.c (greeting to ready) and smtp_client_tx.c (the
 * transactions), with what the three share in smtp_client_int.h.
 *
 * Invariants:
 *  - every owner callback runs from the event loop (an io event or the
 *    `defer` timer), never from inside smtpc_send()/smtpc_quit();
 *  - once smtpc_send() has accepted a message, done() runs exactly once
 *    for it, also when the session fails (then before closed());
 *  - closed() runs exactly once and is the last callback;
 *  - smtpc_free() inside a callback only marks the session; it is freed
 *    when the callback returns (busy == 0).
 *  - the body is never held in memory: it is read from body_fd in pieces
 *    when the write queue drains (IO_LOWAT), dot-stuffed on the way.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "log.h"
#include "metrics.h"
#include "smtp_client_int.h"
#include "smtp_proto.h"
#include "util.h"

static void	 smtpc_io_cb(struct io *, enum io_event, void *);
static void	 smtpc_on_io(struct smtpc *, enum io_event);
static void	 smtpc_dane_copy(struct smtpc *, const struct io_tls_dane *);
static void	 smtpc_dane_free(struct smtpc *);
static const char *smtpc_verify_result_type(long);
static void	 smtpc_on_datain(struct smtpc *);
static void	 smtpc_on_defer(void *);
static void	 smtpc_on_reply(struct smtpc *);
static void	 smtpc_reason_vset(struct smtpc_reason *, enum outcome,
		    enum smtpc_stage, enum smtpc_cause, const char *, va_list)
		    __attribute__((format(printf, 5, 0)));
static void	 smtpc_close(struct smtpc *, const struct smtpc_reason *);
static void	 smtpc_defer_fail(struct smtpc *, const struct smtpc_reason *);
static void	 smtpc_destroy(struct smtpc *);
static enum smtpc_stage smtpc_stage_of(enum smtpc_state);
static const char *smtpc_waiting_for(enum smtpc_state);
static const char *smtpc_fail_reason(const struct smtpc_reason *);
static unsigned	 smtpc_timeout_of(const struct smtpc *, enum smtpc_state);

void
smtpc_timeouts_default(struct smtpc_timeouts *t)
{
	t->connect = 30 * 1000;
	t->greeting = 300 * 1000;
	t->helo = 300 * 1000;
	t->mail = 300 * 1000;
	t->rcpt = 300 * 1000;
	t->data = 120 * 1000;
	t->block = 180 * 1000;
	t->dot = 600 * 1000;
}

struct smtpc *
smtpc_new(struct ev_loop *loop, const struct sockaddr *sa, socklen_t salen,
    const struct smtpc_params *params, const struct smtpc_ops *ops,
    void *arg)
{
	struct smtpc *s = xcalloc(1, sizeof(*s));
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	s->loop = loop;
	s->ops = ops;
	s->arg = arg;
	s->p = *params;
	s->helo_name = xstrdup(params->helo_name != NULL ?
	    params->helo_name : "localhost.localdomain");
	s->peer_name = params->peer_name != NULL ?
	    xstrdup(params->peer_name) : NULL;
	s->verify_name = params->verify_name != NULL ?
	    xstrdup(params->verify_name) : params->peer_name != NULL ?
	    xstrdup(params->peer_name) : NULL;
	s->auth_user = params->auth_user != NULL ?
	    xstrdup(params->auth_user) : NULL;
	s->auth_pass = xstrdup(params->auth_pass != NULL ?
	    params->auth_pass : "");
	s->p.helo_name = s->helo_name;
	s->p.peer_name = s->peer_name;
	s->p.verify_name = s->verify_name;
	s->p.auth_user = s->auth_user;
	s->p.auth_pass = s->auth_pass;
	s->tls_verify_error = -1;
	s->dane_usable = -1;
	if (params->dane != NULL) {
		/* DANE makes TLS mandatory whatever the caller said. */
		smtpc_dane_copy(s, params->dane);
		s->p.dane = &s->dane;
		s->p.tls = TLS_VERIFY;
	}
	if (s->p.tls_ctx == NULL)
		s->p.tls = s->p.tls == TLS_MAY ? TLS_NONE : s->p.tls;
	util_strlcpy(s->tls_version, "none", sizeof(s->tls_version));
	smtp_reply_init(&s->reply);
	ev_timer_init(&s->defer, smtpc_on_defer, s);

	if (getnameinfo(sa, salen, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		util_strlcpy(host, "?", sizeof(host));
		util_strlcpy(serv, "?", sizeof(serv));
	}
	snprintf(s->peer_text, sizeof(s->peer_text), "%s[%s]:%s",
	    s->peer_name != NULL ? s->peer_name : host, host, serv);

	s->io = io_new(loop, smtpc_io_cb, s);
	io_set_line_max(s->io, SMTP_REPLY_LINE_MAX);
	s->state = SMTPC_CONNECT;
	metrics_inc(METRIC_CONN, NULL);
	if (s->p.timeouts.connect > 0)
		io_set_timeout(s->io, s->p.timeouts.connect);
	if (io_connect(s->io, sa, salen) == -1)
		smtpc_defer_fail_local(s, SMTPC_CAUSE_CONNECT,
		    SMTPC_STAGE_CONNECT, "connect failed: %s",
		    smtpc_io_error(s));
	return s;
}

void
smtpc_quit(struct smtpc *s)
{
	if (s->dead || s->state == SMTPC_CLOSED || s->state == SMTPC_QUIT ||
	    (s->defer_what & SMTPC_DEFER_FAIL))
		return;
	if (s->state == SMTPC_READY && s->msg == NULL && !s->server_closing) {
		smtpc_enter_state(s, SMTPC_QUIT);
		return;
	}
	if (s->server_closing) {
		struct smtpc_reason why;

		smtpc_reason_reply(s, OUTCOME_TEMPFAIL,
		    smtpc_stage_of(s->state), &why);
		smtpc_defer_fail(s, &why);
	} else
		smtpc_defer_fail_local(s, SMTPC_CAUSE_LOCAL,
		    smtpc_stage_of(s->state), "session aborted");
}

void
smtpc_free(struct smtpc *s)
{
	if (s == NULL)
		return;
	if (s->busy > 0) {
		s->dead = true;
		return;
	}
	smtpc_destroy(s);
}

static void
smtpc_destroy(struct smtpc *s)
{
	ev_timer_del(s->loop, &s->defer);
	if (s->io != NULL)
		io_free(s->io);
	free(s->rcpt);
	free(s->rstate);
	free(s->helo_name);
	free(s->peer_name);
	free(s->verify_name);
	free(s->auth_user);
	smtpc_dane_free(s);
	if (s->auth_pass != NULL) {
		explicit_bzero(s->auth_pass, strlen(s->auth_pass));
		free(s->auth_pass);
	}
	free(s);
}

const char *
smtpc_tls_version(const struct smtpc *s)
{
	return s->tls_version;
}

bool
smtpc_tls_active(const struct smtpc *s)
{
	return s->tls_active;
}

bool
smtpc_tls_verified(const struct smtpc *s)
{
	return s->tls_verified;
}

const char *
smtpc_peer_text(const struct smtpc *s)
{
	return s->peer_text;
}

unsigned
smtpc_msgs_sent(const struct smtpc *s)
{
	return s->msgs_sent;
}

const struct smtpc_seen *
smtpc_seen(const struct smtpc *s)
{
	return &s->seen;
}

/* The TLS session, or the handshake that just failed, as the peer showed it. */
void
smtpc_seen_tls(struct smtpc *s)
{
	if (s->io == NULL)
		return;
	(void)io_tls_peer(s->io, s->verify_name, &s->seen.tls);
	s->tls_verify_error = io_tls_verify_error(s->io);
	s->dane_usable = io_tls_dane_usable(s->io);
}

/*
 * Event entry points: the only places callbacks run from.  The busy count
 * lets an owner free the session from inside its callback.
 */
static void
smtpc_io_cb(struct io *io, enum io_event ev, void *arg)
{
	struct smtpc *s = arg;

	(void)io;
	s->busy++;
	smtpc_on_io(s, ev);
	s->busy--;
	if (s->dead && s->busy == 0)
		smtpc_destroy(s);
}

static void
smtpc_on_defer(void *arg)
{
	struct smtpc *s = arg;
	unsigned what = s->defer_what;

	s->defer_what = 0;
	s->busy++;
	if (what & SMTPC_DEFER_FAIL) {
		struct smtpc_reason why = s->fail;

		smtpc_close(s, &why);
	} else if ((what & SMTPC_DEFER_DONE) && s->msg != NULL)
		smtpc_tx_done(s);
	s->busy--;
	if (s->dead && s->busy == 0)
		smtpc_destroy(s);
}

static void
smtpc_on_io(struct smtpc *s, enum io_event ev)
{
	enum smtpc_stage stage = smtpc_stage_of(s->state);
	struct smtpc_reason why;

	if (s->dead || s->state == SMTPC_CLOSED)
		return;
	if (s->state == SMTPC_TLS && (ev == IO_TIMEOUT || ev == IO_CLOSED ||
	    ev == IO_ERROR))
		smtpc_seen_tls(s);
	switch (ev) {
	case IO_CONNECTED:
		smtpc_enter_state(s, SMTPC_GREETING);
		break;
	case IO_DATAIN:
		smtpc_on_datain(s);
		break;
	case IO_LOWAT:
		if (s->state == SMTPC_BODY)
			smtpc_body_fill(s);
		break;
	case IO_TLS_DONE:
		if (s->state == SMTPC_TLS)
			smtpc_on_tls_done(s);
		break;
	case IO_TIMEOUT:
		if (s->state == SMTPC_QUIT) {
			if (s->failing)
				why = s->fail;
			else
				smtpc_reason_set(&why, OUTCOME_OK,
				    SMTPC_STAGE_QUIT, SMTPC_CAUSE_TIMEOUT,
				    "timeout waiting for QUIT reply");
			smtpc_close(s, &why);
			break;
		}
		/* A handshake that does not finish is a failed one. */
		smtpc_fail(s, s->state == SMTPC_TLS ? SMTPC_CAUSE_TLS :
		    s->state == SMTPC_CONNECT ? SMTPC_CAUSE_CONNECT :
		    SMTPC_CAUSE_TIMEOUT, stage, "timeout %s",
		    smtpc_waiting_for(s->state));
		break;
	case IO_CLOSED:
	case IO_ERROR:
		if (s->state == SMTPC_QUIT) {
			if (s->failing)
				why = s->fail;
			else
				smtpc_reason_set(&why, OUTCOME_OK,
				    SMTPC_STAGE_QUIT, SMTPC_CAUSE_LOST, "%s",
				    s->last_reply);
			smtpc_close(s, &why);
			break;
		}
		if (s->server_closing) {
			smtpc_fail_reply(s, stage);
			break;
		}
		if (s->state == SMTPC_TLS)
			smtpc_fail(s, SMTPC_CAUSE_TLS, stage,
			    "TLS handshake failed: %s", ev == IO_CLOSED ?
			    "connection closed by peer" : smtpc_io_error(s));
		else if (s->state == SMTPC_CONNECT)
			smtpc_fail(s, SMTPC_CAUSE_CONNECT, stage,
			    "connect failed: %s", ev == IO_CLOSED ?
			    "connection closed" : smtpc_io_error(s));
		else if (ev == IO_CLOSED)
			smtpc_fail(s, SMTPC_CAUSE_LOST, stage,
			    "connection closed by peer %s",
			    smtpc_waiting_for(s->state));
		else
			smtpc_fail(s, SMTPC_CAUSE_LOST, stage,
			    "connection error %s: %s",
			    smtpc_waiting_for(s->state), smtpc_io_error(s));
		break;
	}
}

static void
smtpc_on_datain(struct smtpc *s)
{
	const char *line;
	char err[128];
	size_t len;
	bool too_long;
	int rv;

	while (!s->dead && s->io != NULL && s->state != SMTPC_CLOSED &&
	    s->state != SMTPC_TLS &&
	    (line = io_getline(s->io, &len, &too_long)) != NULL) {
		if (too_long) {
			smtpc_fail(s, SMTPC_CAUSE_PROTOCOL,
			    smtpc_stage_of(s->state),
			    "protocol error: reply line too long");
			return;
		}
		rv = smtp_reply_feed(&s->reply, line, len, err, sizeof(err));
		if (rv == -1) {
			smtpc_fail(s, SMTPC_CAUSE_PROTOCOL,
			    smtpc_stage_of(s->state), "protocol error: %s",
			    err);
			return;
		}
		if (rv == 0)
			continue;
		s->last_code = s->reply.code;
		util_strlcpy(s->last_status, s->reply.status,
		    sizeof(s->last_status));
		smtp_reply_to_text(&s->reply, s->last_reply,
		    sizeof(s->last_reply));
		/* RFC 5321 §3.8: 421 means the server is closing. */
		if (s->reply.code == 421)
			s->server_closing = true;
		smtpc_on_reply(s);
		smtp_reply_init(&s->reply);
	}
}

static unsigned
smtpc_timeout_of(const struct smtpc *s, enum smtpc_state st)
{
	const struct smtpc_timeouts *t = &s->p.timeouts;

	switch (st) {
	case SMTPC_CONNECT:
		return t->connect;
	case SMTPC_GREETING:
		return t->greeting;
	case SMTPC_MAIL:
		return t->mail;
	case SMTPC_RCPT:
		return t->rcpt;
	case SMTPC_DATA:
		return t->data;
	case SMTPC_BODY:
		return t->block;
	case SMTPC_DOT:
		return t->dot;
	case SMTPC_READY:
		return 0;
	default:
		return t->helo;
	}
}

static enum smtpc_stage
smtpc_stage_of(enum smtpc_state st)
{
	switch (st) {
	case SMTPC_INIT:
	case SMTPC_CONNECT:
		return SMTPC_STAGE_CONNECT;
	case SMTPC_GREETING:
		return SMTPC_STAGE_GREETING;
	case SMTPC_EHLO:
	case SMTPC_HELO:
		return SMTPC_STAGE_EHLO;
	case SMTPC_STARTTLS:
	case SMTPC_TLS:
		return SMTPC_STAGE_STARTTLS;
	case SMTPC_AUTH_PLAIN:
	case SMTPC_AUTH_LOGIN:
	case SMTPC_AUTH_USER:
	case SMTPC_AUTH_PASS:
		return SMTPC_STAGE_AUTH;
	case SMTPC_READY:
	case SMTPC_RSET:
	case SMTPC_MAIL:
		return SMTPC_STAGE_MAIL;
	case SMTPC_RCPT:
		return SMTPC_STAGE_RCPT;
	case SMTPC_DATA:
		return SMTPC_STAGE_DATA;
	case SMTPC_BODY:
	case SMTPC_DOT:
		/* Lost after DATA: it may have been delivered (4.4.2). */
		return SMTPC_STAGE_DOT;
	case SMTPC_QUIT:
	case SMTPC_CLOSED:
		break;
	}
	return SMTPC_STAGE_QUIT;
}

static const char *
smtpc_waiting_for(enum smtpc_state st)
{
	switch (st) {
	case SMTPC_INIT:
	case SMTPC_CONNECT:
		return "connecting";
	case SMTPC_GREETING:
		return "waiting for greeting";
	case SMTPC_EHLO:
		return "waiting for EHLO reply";
	case SMTPC_HELO:
		return "waiting for HELO reply";
	case SMTPC_STARTTLS:
		return "waiting for STARTTLS reply";
	case SMTPC_TLS:
		return "during TLS handshake";
	case SMTPC_AUTH_PLAIN:
	case SMTPC_AUTH_LOGIN:
	case SMTPC_AUTH_USER:
	case SMTPC_AUTH_PASS:
		return "waiting for AUTH reply";
	case SMTPC_READY:
		return "while idle";
	case SMTPC_RSET:
		return "waiting for RSET reply";
	case SMTPC_MAIL:
		return "waiting for MAIL reply";
	case SMTPC_RCPT:
		return "waiting for RCPT reply";
	case SMTPC_DATA:
		return "waiting for DATA reply";
	case SMTPC_BODY:
		return "sending message body";
	case SMTPC_DOT:
		return "waiting for reply to end of data";
	case SMTPC_QUIT:
		return "waiting for QUIT reply";
	case SMTPC_CLOSED:
		break;
	}
	return "after close";
}

enum outcome
smtpc_outcome_of(int code)
{
	switch (code / 100) {
	case 2:
		return OUTCOME_OK;
	case 5:
		return OUTCOME_PERMFAIL;
	default:
		/* 4xx, and anything unexpected: try again later */
		return OUTCOME_TEMPFAIL;
	}
}

const char *
smtpc_cause_to_text(enum smtpc_cause c)
{
	switch (c) {
	case SMTPC_CAUSE_NONE:
		return "none";
	case SMTPC_CAUSE_REPLY:
		return "reply";
	case SMTPC_CAUSE_CONNECT:
		return "connect";
	case SMTPC_CAUSE_TLS:
		return "tls";
	case SMTPC_CAUSE_TIMEOUT:
		return "timeout";
	case SMTPC_CAUSE_LOST:
		return "lost";
	case SMTPC_CAUSE_PROTOCOL:
		return "protocol";
	case SMTPC_CAUSE_LOCAL:
		return "local";
	}
	return "unknown";
}

const char *
smtpc_stage_to_text(enum smtpc_stage st)
{
	switch (st) {
	case SMTPC_STAGE_CONNECT:
		return "connect";
	case SMTPC_STAGE_GREETING:
		return "greeting";
	case SMTPC_STAGE_EHLO:
		return "ehlo";
	case SMTPC_STAGE_STARTTLS:
		return "starttls";
	case SMTPC_STAGE_AUTH:
		return "auth";
	case SMTPC_STAGE_MAIL:
		return "mail";
	case SMTPC_STAGE_RCPT:
		return "rcpt";
	case SMTPC_STAGE_DATA:
		return "data";
	case SMTPC_STAGE_DOT:
		return "dot";
	case SMTPC_STAGE_QUIT:
		return "quit";
	}
	return "unknown";
}

/*
 * Why a session failed before it was up, for the metrics: the cause, or
 * for a reply the stage that got it ("greeting", "ehlo", ...).
 */
static const char *
smtpc_fail_reason(const struct smtpc_reason *why)
{
	if (why->cause != SMTPC_CAUSE_REPLY)
		return smtpc_cause_to_text(why->cause);
	switch (why->stage) {
	case SMTPC_STAGE_GREETING:
	case SMTPC_STAGE_EHLO:
	case SMTPC_STAGE_STARTTLS:
	case SMTPC_STAGE_AUTH:
		return smtpc_stage_to_text(why->stage);
	default:
		return "reply";
	}
}

/* io's error text, escaped: TLS errors may quote what the peer sent. */
const char *
smtpc_io_error(struct smtpc *s)
{
	const char *e = s->io != NULL ? io_error(s->io) : NULL;

	if (e == NULL)
		e = "unknown error";
	return smtp_escape(s->errbuf, sizeof(s->errbuf), e, strlen(e));
}

void
smtpc_write(struct smtpc *s, const char *fmt, ...)
{
	char buf[SMTP_PATH_MAX + 128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf)) {
		smtpc_defer_fail_local(s, SMTPC_CAUSE_LOCAL,
		    smtpc_stage_of(s->state), "command too long");
		return;
	}
	if (io_write(s->io, buf, (size_t)n) == -1)
		smtpc_defer_fail_local(s, SMTPC_CAUSE_LOST,
		    smtpc_stage_of(s->state), "write failed: %s",
		    smtpc_io_error(s));
}

/* Send what a state needs and arm its timeout. */
void
smtpc_enter_state(struct smtpc *s, enum smtpc_state st)
{
	s->state = st;
	if (s->io != NULL)
		io_set_timeout(s->io, smtpc_timeout_of(s, st));
	switch (st) {
	case SMTPC_EHLO:
		smtpc_write(s, "EHLO %s\r\n", s->helo_name);
		break;
	case SMTPC_HELO:
		smtpc_write(s, "HELO %s\r\n", s->helo_name);
		break;
	case SMTPC_STARTTLS:
		smtpc_write(s, "STARTTLS\r\n");
		break;
	case SMTPC_AUTH_PLAIN:
		smtpc_send_auth_plain(s);
		break;
	case SMTPC_AUTH_LOGIN:
		smtpc_write(s, "AUTH LOGIN\r\n");
		break;
	case SMTPC_AUTH_USER:
	case SMTPC_AUTH_PASS:
		smtpc_send_auth_login(s, st);
		break;
	case SMTPC_RSET:
		smtpc_write(s, "RSET\r\n");
		break;
	case SMTPC_MAIL:
		smtpc_send_mail(s);
		break;
	case SMTPC_RCPT:
		if (!s->pipelined)
			smtpc_send_rcpt(s, s->rcpt_send);
		break;
	case SMTPC_DATA:
		if (!s->pipelined)
			smtpc_write(s, "DATA\r\n");
		break;
	case SMTPC_BODY:
		s->body_off = 0;
		s->prefix_off = 0;
		s->body_eof = false;
		smtp_stuff_init(&s->stuff);
		smtpc_body_fill(s);
		break;
	case SMTPC_DOT:
		if (s->dot_abort)
			smtpc_write(s, ".\r\n");
		break;
	case SMTPC_QUIT:
		smtpc_write(s, "QUIT\r\n");
		break;
	case SMTPC_INIT:
	case SMTPC_CONNECT:
	case SMTPC_GREETING:
	case SMTPC_TLS:
	case SMTPC_READY:
	case SMTPC_CLOSED:
		break;
	}
}

/* A complete reply: to the handler of the current state. */
static void
smtpc_on_reply(struct smtpc *s)
{
	struct smtpc_reason why;

	switch (s->state) {
	case SMTPC_GREETING:
		smtpc_on_greeting(s);
		break;
	case SMTPC_EHLO:
		smtpc_on_ehlo(s);
		break;
	case SMTPC_HELO:
		smtpc_on_helo(s);
		break;
	case SMTPC_STARTTLS:
		smtpc_on_starttls(s);
		break;
	case SMTPC_AUTH_PLAIN:
	case SMTPC_AUTH_PASS:
		smtpc_on_auth(s);
		break;
	case SMTPC_AUTH_LOGIN:
	case SMTPC_AUTH_USER:
		smtpc_on_auth_login(s);
		break;
	case SMTPC_RSET:
		smtpc_on_rset(s);
		break;
	case SMTPC_MAIL:
		smtpc_on_mail(s);
		break;
	case SMTPC_RCPT:
		smtpc_on_rcpt(s);
		break;
	case SMTPC_DATA:
		smtpc_on_data(s);
		break;
	case SMTPC_DOT:
		smtpc_on_dot(s);
		break;
	case SMTPC_QUIT:
		if (s->failing)
			why = s->fail;
		else
			smtpc_reason_reply(s, OUTCOME_OK, SMTPC_STAGE_QUIT,
			    &why);
		smtpc_close(s, &why);
		break;
	case SMTPC_READY:
		if (s->server_closing)
			smtpc_fail_reply(s, SMTPC_STAGE_MAIL);
		else
			smtpc_fail(s, SMTPC_CAUSE_PROTOCOL, SMTPC_STAGE_MAIL,
			    "protocol error: unexpected reply: %s",
			    s->last_reply);
		break;
	case SMTPC_BODY:
		smtpc_fail(s, SMTPC_CAUSE_PROTOCOL, SMTPC_STAGE_DOT,
		    "protocol error: reply during message body: %s",
		    s->last_reply);
		break;
	case SMTPC_INIT:
	case SMTPC_CONNECT:
	case SMTPC_TLS:
	case SMTPC_CLOSED:
		smtpc_fail(s, SMTPC_CAUSE_PROTOCOL, smtpc_stage_of(s->state),
		    "protocol error: unexpected reply: %s", s->last_reply);
		break;
	}
}

/*
 * Reasons.  A reason from the last reply carries its code and status; one
 * of our own carries a cause and a text (already escaped where it quotes
 * the peer: replies, smtpc_io_error()).
 */
void
smtpc_reason_reply(const struct smtpc *s, enum outcome o,
    enum smtpc_stage stage, struct smtpc_reason *r)
{
	memset(r, 0, sizeof(*r));
	r->outcome = o;
	r->stage = stage;
	r->cause = SMTPC_CAUSE_REPLY;
	r->code = s->last_code;
	util_strlcpy(r->status, s->last_status, sizeof(r->status));
	util_strlcpy(r->text, s->last_reply, sizeof(r->text));
}

static void
smtpc_reason_vset(struct smtpc_reason *r, enum outcome o,
    enum smtpc_stage stage, enum smtpc_cause cause, const char *fmt,
    va_list ap)
{
	memset(r, 0, sizeof(*r));
	r->outcome = o;
	r->stage = stage;
	r->cause = cause;
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	/*
	 * A TLS failure is a security one (RFC 3463 X.7.x): a handshake that
	 * fails or never ends, a certificate not verified, X.7.5
	 * "Cryptographic failure" as Postfix has it; the callers that know
	 * better set their own (STARTTLS not offered: X.7.4).
	 */
	if (cause == SMTPC_CAUSE_TLS)
		util_strlcpy(r->status, o == OUTCOME_PERMFAIL ? "5.7.5" :
		    "4.7.5", sizeof(r->status));
}

void
smtpc_reason_set(struct smtpc_reason *r, enum outcome o,
    enum smtpc_stage stage, enum smtpc_cause cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtpc_reason_vset(r, o, stage, cause, fmt, ap);
	va_end(ap);
}

/* The end: drop the connection, finish an open transaction, closed(). */
static void
smtpc_close(struct smtpc *s, const struct smtpc_reason *reason)
{
	struct smtpc_reason why = *reason;

	if (s->state == SMTPC_CLOSED)
		return;
	ev_timer_del(s->loop, &s->defer);
	s->defer_what = 0;
	if (s->io != NULL) {
		io_free(s->io);
		s->io = NULL;
	}
	s->state = SMTPC_CLOSED;
	if (s->msg != NULL) {
		smtpc_tx_fail(s, &why);
		smtpc_tx_done(s);
	}
	if (s->dead)
		return;
	if (!s->up && why.outcome != OUTCOME_OK)
		metrics_inc1(METRIC_CONN_FAIL, smtpc_fail_reason(&why));
	s->ops->closed(s->arg, s, &why);
}

/* A failure of ours or of the connection (TEMPFAIL): close now. */
void
smtpc_fail(struct smtpc *s, enum smtpc_cause cause, enum smtpc_stage stage,
    const char *fmt, ...)
{
	struct smtpc_reason why;
	va_list ap;

	va_start(ap, fmt);
	smtpc_reason_vset(&why, OUTCOME_TEMPFAIL, stage, cause, fmt, ap);
	va_end(ap);
	log_debug("smtp %s: %s", s->peer_text, why.text);
	smtpc_close(s, &why);
}

/* The reply just read ends the session (TEMPFAIL): close now. */
void
smtpc_fail_reply(struct smtpc *s, enum smtpc_stage stage)
{
	struct smtpc_reason why;

	smtpc_reason_reply(s, OUTCOME_TEMPFAIL, stage, &why);
	log_debug("smtp %s: %s", s->peer_text, why.text);
	smtpc_close(s, &why);
}

/* A failure before any transaction: say QUIT, then closed(). */
void
smtpc_quit_fail(struct smtpc *s, const struct smtpc_reason *why)
{
	s->failing = true;
	s->fail = *why;
	if (s->server_closing) {
		smtpc_close(s, &s->fail);
		return;
	}
	smtpc_enter_state(s, SMTPC_QUIT);
}

void
smtpc_quit_fail_reply(struct smtpc *s, enum outcome o, enum smtpc_stage stage)
{
	struct smtpc_reason why;

	smtpc_reason_reply(s, o, stage, &why);
	smtpc_quit_fail(s, &why);
}

void
smtpc_quit_fail_local(struct smtpc *s, enum smtpc_cause cause,
    enum smtpc_stage stage, const char *text)
{
	struct smtpc_reason why;

	smtpc_reason_set(&why, OUTCOME_TEMPFAIL, stage, cause, "%s", text);
	smtpc_quit_fail(s, &why);
}

/* A failure found outside the loop's callbacks: report it from there. */
static void
smtpc_defer_fail(struct smtpc *s, const struct smtpc_reason *why)
{
	if (s->defer_what & SMTPC_DEFER_FAIL)
		return;
	s->fail = *why;
	s->defer_what |= SMTPC_DEFER_FAIL;
	ev_timer_add(s->loop, &s->defer, 0);
}

void
smtpc_defer_fail_local(struct smtpc *s, enum smtpc_cause cause,
    enum smtpc_stage stage, const char *fmt, ...)
{
	struct smtpc_reason why;
	va_list ap;

	va_start(ap, fmt);
	smtpc_reason_vset(&why, OUTCOME_TEMPFAIL, stage, cause, fmt, ap);
	va_end(ap);
	smtpc_defer_fail(s, &why);
}

/* A deep copy of the caller's TLSA records and names into s->dane. */
static void
smtpc_dane_copy(struct smtpc *s, const struct io_tls_dane *d)
{
	const char **names;
	struct tlsa_rr *rr;
	unsigned char *data;
	size_t i;

	s->dane.base = xstrdup(d->base);
	names = xcalloc(d->nnames + 1, sizeof(*names));
	for (i = 0; i < d->nnames; i++)
		names[i] = xstrdup(d->names[i]);
	s->dane.names = names;
	s->dane.nnames = d->nnames;
	rr = xcalloc(d->nrr + 1, sizeof(*rr));
	for (i = 0; i < d->nrr; i++) {
		rr[i] = d->rr[i];
		data = xmalloc(d->rr[i].len + 1);
		if (d->rr[i].len > 0)
			memcpy(data, d->rr[i].data, d->rr[i].len);
		rr[i].data = data;
	}
	s->dane.rr = rr;
	s->dane.nrr = d->nrr;
}

static void
smtpc_dane_free(struct smtpc *s)
{
	size_t i;

	if (s->p.dane == NULL)
		return;
	for (i = 0; i < s->dane.nnames; i++)
		free((void *)s->dane.names[i]);
	free((void *)s->dane.names);
	for (i = 0; i < s->dane.nrr; i++)
		free((void *)s->dane.rr[i].data);
	free((void *)s->dane.rr);
	free((void *)s->dane.base);
	s->p.dane = NULL;
}

const char *
smtpc_tls_auth(const struct smtpc *s)
{
	if (!s->tls_active)
		return "none";
	if (s->tls_dane)
		return "dane";
	return s->tls_verified ? "verified" : "unverified";
}

/* RFC 8460 §4.3.2 result type of a certificate verification error. */
static const char *
smtpc_verify_result_type(long e)
{
	switch (e) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return "certificate-host-mismatch";
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return "certificate-expired";
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return "certificate-not-trusted";
	default:	/* X509_V_ERR_DANE_NO_MATCH among others */
		return "validation-failure";
	}
}

const char *
smtpc_tls_failure(const struct smtpc *s)
{
	if (s->p.tls == TLS_NONE)
		return NULL;
	if (s->starttls_failed)
		return "starttls-not-supported";
	if (!s->seen.tls_tried)
		return NULL;		/* the session ended before */
	if (!s->seen.tls_done)
		return s->tls_verify_error > 0 ?
		    smtpc_verify_result_type(s->tls_verify_error) :
		    "validation-failure";
	if (s->tls_dane)
		return NULL;
	/* RFC 8460 §4.3.2.1: none of the TLSA records was usable. */
	if (s->p.dane != NULL && s->dane_usable == 0)
		return "tlsa-invalid";
	if (s->tls_verified)
		return NULL;
	return smtpc_verify_result_type(s->tls_verify_error);
}
