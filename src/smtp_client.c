/*
 * smtp_client: one outbound SMTP session (see smtp_client.h).
 *
 * Shape of OpenSMTPD's mta_session.c: an enum of states, one
 * smtpc_enter_state() that sends what a state needs and arms its timeout,
 * one smtpc_on_reply() that interprets a complete reply in the current
 * state.  Replies are parsed by smtp_proto.c; bytes move through io.c.
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

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "smtp_client.h"
#include "smtp_proto.h"
#include "util.h"

/* Keep this much stuffed body queued; refill below io's low mark. */
#define SMTPC_BODY_HIWAT	(64 * 1024)
#define SMTPC_BODY_CHUNK	(16 * 1024)

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
	bool			 server_closing;	/* got a 421 */
	char			 tls_version[32];
	bool			 tls_active;
	bool			 tls_verified;
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
};

static void	 smtpc_io_cb(struct io *, enum io_event, void *);
static void	 smtpc_on_io(struct smtpc *, enum io_event);
static void	 smtpc_on_datain(struct smtpc *);
static void	 smtpc_on_defer(void *);
static void	 smtpc_enter_state(struct smtpc *, enum smtpc_state);
static void	 smtpc_on_reply(struct smtpc *);
static void	 smtpc_after_ehlo(struct smtpc *);
static void	 smtpc_after_tls(struct smtpc *);
static void	 smtpc_on_tls_done(struct smtpc *);
static void	 smtpc_ready(struct smtpc *);
static void	 smtpc_on_mail(struct smtpc *);
static void	 smtpc_on_rcpt(struct smtpc *);
static void	 smtpc_on_data(struct smtpc *);
static void	 smtpc_on_dot(struct smtpc *);
static void	 smtpc_body_fill(struct smtpc *);
static void	 smtpc_send_mail(struct smtpc *);
static void	 smtpc_send_rcpt(struct smtpc *, size_t);
static size_t	 smtpc_next_valid(const struct smtpc *, size_t);
static void	 smtpc_reason_reply(const struct smtpc *, enum outcome,
		    enum smtpc_stage, struct smtpc_reason *);
static void	 smtpc_reason_set(struct smtpc_reason *, enum outcome,
		    enum smtpc_stage, enum smtpc_cause, const char *, ...)
		    __attribute__((format(printf, 5, 6)));
static void	 smtpc_reason_vset(struct smtpc_reason *, enum outcome,
		    enum smtpc_stage, enum smtpc_cause, const char *, va_list)
		    __attribute__((format(printf, 5, 0)));
static void	 smtpc_tx_fail(struct smtpc *, const struct smtpc_reason *);
static void	 smtpc_tx_fail_reply(struct smtpc *, enum outcome,
		    enum smtpc_stage);
static void	 smtpc_tx_refused(struct smtpc *);
static void	 smtpc_tx_done(struct smtpc *);
static void	 smtpc_close(struct smtpc *, const struct smtpc_reason *);
static void	 smtpc_fail(struct smtpc *, enum smtpc_cause, enum smtpc_stage,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	 smtpc_fail_reply(struct smtpc *, enum smtpc_stage);
static void	 smtpc_quit_fail(struct smtpc *, const struct smtpc_reason *);
static void	 smtpc_quit_fail_reply(struct smtpc *, enum outcome,
		    enum smtpc_stage);
static void	 smtpc_quit_fail_local(struct smtpc *, enum smtpc_cause,
		    enum smtpc_stage, const char *);
static void	 smtpc_defer_fail(struct smtpc *, const struct smtpc_reason *);
static void	 smtpc_defer_fail_local(struct smtpc *, enum smtpc_cause,
		    enum smtpc_stage, const char *, ...)
		    __attribute__((format(printf, 4, 5)));
static void	 smtpc_write(struct smtpc *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 smtpc_write_secret(struct smtpc *, const char *);
static void	 smtpc_destroy(struct smtpc *);
static enum outcome smtpc_outcome_of(int);
static enum smtpc_stage smtpc_stage_of(enum smtpc_state);
static const char *smtpc_waiting_for(enum smtpc_state);
static unsigned	 smtpc_timeout_of(const struct smtpc *, enum smtpc_state);
static bool	 smtpc_is_ip(const char *);
static const char *smtpc_io_error(struct smtpc *);

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
	s->auth_user = params->auth_user != NULL ?
	    xstrdup(params->auth_user) : NULL;
	s->auth_pass = xstrdup(params->auth_pass != NULL ?
	    params->auth_pass : "");
	s->p.helo_name = s->helo_name;
	s->p.peer_name = s->peer_name;
	s->p.auth_user = s->auth_user;
	s->p.auth_pass = s->auth_pass;
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
	if (s->p.timeouts.connect > 0)
		io_set_timeout(s->io, s->p.timeouts.connect);
	if (io_connect(s->io, sa, salen) == -1)
		smtpc_defer_fail_local(s, SMTPC_CAUSE_CONNECT,
		    SMTPC_STAGE_CONNECT, "connect failed: %s",
		    smtpc_io_error(s));
	return s;
}

int
smtpc_send(struct smtpc *s, const struct smtpc_msg *msg)
{
	struct smtpc_reason why;
	size_t nvalid = 0;

	if (s->state != SMTPC_READY || s->msg != NULL || s->server_closing ||
	    s->dead || msg->nrcpt == 0) {
		errno = EINVAL;
		return -1;
	}
	s->msg = msg;
	memset(&s->res, 0, sizeof(s->res));
	s->res.why.outcome = OUTCOME_TEMPFAIL;
	s->res.why.stage = SMTPC_STAGE_MAIL;
	s->rcpt = xcalloc(msg->nrcpt, sizeof(*s->rcpt));
	s->rstate = xcalloc(msg->nrcpt, sizeof(*s->rstate));
	for (size_t i = 0; i < msg->nrcpt; i++) {
		s->rcpt[i].why.outcome = OUTCOME_TEMPFAIL;
		s->rcpt[i].why.stage = SMTPC_STAGE_RCPT;
		if (!smtp_path_ok(msg->rcpts[i]) || msg->rcpts[i][0] == '\0') {
			s->rstate[i] = SMTPC_R_INVALID;
			smtpc_reason_set(&s->rcpt[i].why, OUTCOME_PERMFAIL,
			    SMTPC_STAGE_RCPT, SMTPC_CAUSE_LOCAL,
			    "invalid recipient address, not sent");
		} else
			nvalid++;
	}
	s->rcpt_next = s->rcpt_send = smtpc_next_valid(s, 0);
	s->naccepted = 0;
	s->mail_ok = false;
	s->dot_abort = false;
	s->pipelined = (s->ehlo.ext & SMTP_EXT_PIPELINING) != 0;

	if (!smtp_path_ok(msg->sender)) {
		smtpc_reason_set(&why, OUTCOME_PERMFAIL, SMTPC_STAGE_MAIL,
		    SMTPC_CAUSE_LOCAL, "invalid sender address, not sent");
		smtpc_tx_fail(s, &why);
		goto defer;
	}
	/* RFC 1870 §6: do not send what the server said it will refuse. */
	if ((s->ehlo.ext & SMTP_EXT_SIZE) && s->ehlo.size_max > 0 &&
	    msg->size > s->ehlo.size_max) {
		smtpc_reason_set(&why, OUTCOME_PERMFAIL, SMTPC_STAGE_MAIL,
		    SMTPC_CAUSE_LOCAL, "552 5.3.4 message size exceeds fixed "
		    "limit of the server");
		/* RFC 3463: 5.3.4, message too big for system */
		util_strlcpy(why.status, "5.3.4", sizeof(why.status));
		smtpc_tx_fail(s, &why);
		goto defer;
	}
	if (nvalid == 0) {
		smtpc_tx_refused(s);
		goto defer;
	}
	smtpc_enter_state(s, s->need_rset ? SMTPC_RSET : SMTPC_MAIL);
	return 0;

 defer:
	s->defer_what |= SMTPC_DEFER_DONE;
	ev_timer_add(s->loop, &s->defer, 0);
	return 0;
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
	free(s->auth_user);
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

static enum outcome
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

/* io's error text, escaped: TLS errors may quote what the peer sent. */
static const char *
smtpc_io_error(struct smtpc *s)
{
	const char *e = s->io != NULL ? io_error(s->io) : NULL;

	if (e == NULL)
		e = "unknown error";
	return smtp_escape(s->errbuf, sizeof(s->errbuf), e, strlen(e));
}

static bool
smtpc_is_ip(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 ||
	    inet_pton(AF_INET6, name, buf) == 1;
}

static void
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

/* One AUTH line (RFC 4954 allows them long); never logged. */
static void
smtpc_write_secret(struct smtpc *s, const char *line)
{
	if (io_write(s->io, line, strlen(line)) == -1 ||
	    io_write(s->io, "\r\n", 2) == -1)
		smtpc_defer_fail_local(s, SMTPC_CAUSE_LOST, SMTPC_STAGE_AUTH,
		    "write failed: %s", smtpc_io_error(s));
}

/* Send what a state needs and arm its timeout. */
static void
smtpc_enter_state(struct smtpc *s, enum smtpc_state st)
{
	char *buf, *raw;
	size_t ulen, plen, blen;

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
		/* RFC 4616: authzid NUL authcid NUL passwd, initial response */
		ulen = strlen(s->auth_user);
		plen = strlen(s->auth_pass);
		raw = xmalloc(ulen + plen + 2);
		raw[0] = '\0';
		memcpy(raw + 1, s->auth_user, ulen);
		raw[ulen + 1] = '\0';
		memcpy(raw + ulen + 2, s->auth_pass, plen);
		blen = 11 + (ulen + plen + 2 + 2) / 3 * 4 + 3;
		buf = xmalloc(blen);
		memcpy(buf, "AUTH PLAIN ", 11);
		(void)smtp_base64_encode(raw, ulen + plen + 2, buf + 11,
		    blen - 11);
		smtpc_write_secret(s, buf);
		explicit_bzero(raw, ulen + plen + 2);
		explicit_bzero(buf, blen);
		free(raw);
		free(buf);
		break;
	case SMTPC_AUTH_LOGIN:
		smtpc_write(s, "AUTH LOGIN\r\n");
		break;
	case SMTPC_AUTH_USER:
	case SMTPC_AUTH_PASS:
		raw = st == SMTPC_AUTH_USER ? s->auth_user : s->auth_pass;
		blen = (strlen(raw) + 2) / 3 * 4 + 1;
		buf = xmalloc(blen);
		(void)smtp_base64_encode(raw, strlen(raw), buf, blen);
		smtpc_write_secret(s, buf);
		explicit_bzero(buf, blen);
		free(buf);
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

static void
smtpc_send_mail(struct smtpc *s)
{
	const struct smtpc_msg *m = s->msg;
	char size[40] = "";
	const char *body = "";

	if (s->ehlo.ext & SMTP_EXT_SIZE)
		snprintf(size, sizeof(size), " SIZE=%llu",
		    (unsigned long long)m->size);
	if (m->eightbit && (s->ehlo.ext & SMTP_EXT_8BITMIME))
		body = " BODY=8BITMIME";
	smtpc_write(s, "MAIL FROM:<%s>%s%s\r\n", m->sender, size, body);
	if (!s->pipelined)
		return;
	/* RFC 2920 §3.1: MAIL, the RCPTs and DATA in one group. */
	for (size_t i = smtpc_next_valid(s, 0); i < m->nrcpt;
	    i = smtpc_next_valid(s, i + 1))
		smtpc_send_rcpt(s, i);
	smtpc_write(s, "DATA\r\n");
}

static void
smtpc_send_rcpt(struct smtpc *s, size_t i)
{
	smtpc_write(s, "RCPT TO:<%s>\r\n", s->msg->rcpts[i]);
}

static size_t
smtpc_next_valid(const struct smtpc *s, size_t i)
{
	while (i < s->msg->nrcpt && s->rstate[i] == SMTPC_R_INVALID)
		i++;
	return i;
}

/* Interpret a complete reply in the current state. */
static void
smtpc_on_reply(struct smtpc *s)
{
	struct smtpc_reason why;
	int code = s->reply.code;

	switch (s->state) {
	case SMTPC_GREETING:
		if (code / 100 == 2)
			smtpc_enter_state(s, SMTPC_EHLO);
		else if (code == 421)
			smtpc_fail_reply(s, SMTPC_STAGE_GREETING);
		else
			/* RFC 5321 §3.1: after a 554 greeting, QUIT. */
			smtpc_quit_fail_reply(s, smtpc_outcome_of(code),
			    SMTPC_STAGE_GREETING);
		break;
	case SMTPC_EHLO:
		if (code / 100 == 2) {
			smtp_ehlo_parse(&s->reply, &s->ehlo);
			smtpc_after_ehlo(s);
		} else if (code / 100 == 5 && !s->server_closing)
			/* RFC 5321 §3.2: an old server, try HELO. */
			smtpc_enter_state(s, SMTPC_HELO);
		else
			smtpc_quit_fail_reply(s, smtpc_outcome_of(code),
			    SMTPC_STAGE_EHLO);
		break;
	case SMTPC_HELO:
		if (code / 100 == 2) {
			memset(&s->ehlo, 0, sizeof(s->ehlo));
			smtpc_after_ehlo(s);
		} else
			smtpc_quit_fail_reply(s, smtpc_outcome_of(code),
			    SMTPC_STAGE_EHLO);
		break;
	case SMTPC_STARTTLS:
		if (code == 220) {
			/* RFC 3207 §4.2: nothing may precede TLS. */
			if (io_pending(s->io) > 0) {
				smtpc_fail(s, SMTPC_CAUSE_PROTOCOL,
				    SMTPC_STAGE_STARTTLS, "protocol error: "
				    "data after the STARTTLS reply");
				break;
			}
			s->state = SMTPC_TLS;
			io_set_timeout(s->io, s->p.timeouts.helo);
			if (io_start_tls(s->io, s->p.tls_ctx, true,
			    s->peer_name != NULL && !smtpc_is_ip(s->peer_name) ?
			    s->peer_name : NULL, s->peer_name) == -1)
				smtpc_fail(s, SMTPC_CAUSE_TLS,
				    SMTPC_STAGE_STARTTLS,
				    "TLS handshake failed: %s", smtpc_io_error(s));
		} else if (s->p.tls == TLS_MAY && !s->server_closing) {
			/* RFC 3207 §4: opportunistic, go on in clear. */
			s->starttls_refused = true;
			smtpc_after_tls(s);
		} else
			smtpc_quit_fail_reply(s, OUTCOME_TEMPFAIL,
			    SMTPC_STAGE_STARTTLS);
		break;
	case SMTPC_AUTH_PLAIN:
	case SMTPC_AUTH_PASS:
		if (code == 235)
			smtpc_ready(s);
		else
			/* a wrong password is our problem: defer, not bounce */
			smtpc_quit_fail_reply(s, OUTCOME_TEMPFAIL,
			    SMTPC_STAGE_AUTH);
		break;
	case SMTPC_AUTH_LOGIN:
	case SMTPC_AUTH_USER:
		if (code == 334)
			smtpc_enter_state(s, s->state == SMTPC_AUTH_LOGIN ?
			    SMTPC_AUTH_USER : SMTPC_AUTH_PASS);
		else
			smtpc_quit_fail_reply(s, OUTCOME_TEMPFAIL,
			    SMTPC_STAGE_AUTH);
		break;
	case SMTPC_RSET:
		if (code / 100 == 2) {
			s->need_rset = false;
			smtpc_enter_state(s, SMTPC_MAIL);
		} else
			smtpc_fail_reply(s, SMTPC_STAGE_MAIL);
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

/* EHLO/HELO answered: STARTTLS per policy, then AUTH, then ready. */
static void
smtpc_after_ehlo(struct smtpc *s)
{
	if (s->p.tls != TLS_NONE && !io_tls_active(s->io) &&
	    !s->starttls_refused) {
		if (s->p.tls_ctx == NULL) {
			smtpc_quit_fail_local(s, SMTPC_CAUSE_LOCAL,
			    SMTPC_STAGE_STARTTLS, "no TLS client context");
			return;
		}
		if (s->ehlo.ext & SMTP_EXT_STARTTLS) {
			smtpc_enter_state(s, SMTPC_STARTTLS);
			return;
		}
		if (s->p.tls != TLS_MAY) {
			smtpc_quit_fail_local(s, SMTPC_CAUSE_TLS,
			    SMTPC_STAGE_STARTTLS, "STARTTLS not offered");
			return;
		}
	}
	smtpc_after_tls(s);
}

static void
smtpc_after_tls(struct smtpc *s)
{
	if (s->auth_user == NULL) {
		smtpc_ready(s);
		return;
	}
	/* Credentials never go out in clear. */
	if (!io_tls_active(s->io)) {
		smtpc_quit_fail_local(s, SMTPC_CAUSE_LOCAL, SMTPC_STAGE_AUTH,
		    "AUTH needs TLS: credentials are never sent in clear");
		return;
	}
	if (!(s->ehlo.ext & SMTP_EXT_AUTH) ||
	    !(s->ehlo.auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
		smtpc_quit_fail_local(s, SMTPC_CAUSE_LOCAL, SMTPC_STAGE_AUTH,
		    "server offers no AUTH PLAIN or LOGIN");
		return;
	}
	smtpc_enter_state(s, (s->ehlo.auth & SMTP_AUTH_PLAIN) ?
	    SMTPC_AUTH_PLAIN : SMTPC_AUTH_LOGIN);
}

static void
smtpc_on_tls_done(struct smtpc *s)
{
	const char *v = io_tls_version(s->io);

	util_strlcpy(s->tls_version, v != NULL ? v : "unknown",
	    sizeof(s->tls_version));
	s->tls_active = true;
	s->tls_verified = io_tls_verified(s->io);
	if (s->p.tls == TLS_VERIFY && !s->tls_verified) {
		char why[SMTPC_REPLY_MAX], esc[SMTPC_REPLY_MAX / 2];
		const char *vt = io_tls_verify_text(s->io);

		smtp_escape(esc, sizeof(esc), vt != NULL ? vt : "?",
		    vt != NULL ? strlen(vt) : 1);
		snprintf(why, sizeof(why), "certificate not verified: %s", esc);
		smtpc_quit_fail_local(s, SMTPC_CAUSE_TLS, SMTPC_STAGE_STARTTLS,
		    why);
		return;
	}
	/* RFC 3207 §4.2: forget what was learnt in clear, ask again. */
	memset(&s->ehlo, 0, sizeof(s->ehlo));
	smtpc_enter_state(s, SMTPC_EHLO);
}

static void
smtpc_ready(struct smtpc *s)
{
	s->state = SMTPC_READY;
	io_set_timeout(s->io, 0);
	s->ops->ready(s->arg, s);
}

static void
smtpc_on_mail(struct smtpc *s)
{
	int code = s->reply.code;

	s->mail_ok = code / 100 == 2;
	if (!s->mail_ok)
		smtpc_tx_fail_reply(s, smtpc_outcome_of(code),
		    SMTPC_STAGE_MAIL);
	if (s->pipelined) {
		/* RFC 2920 §3.1: the RCPT and DATA replies follow anyway. */
		smtpc_enter_state(s, s->rcpt_next < s->msg->nrcpt ?
		    SMTPC_RCPT : SMTPC_DATA);
		return;
	}
	if (!s->mail_ok) {
		smtpc_tx_done(s);
		return;
	}
	smtpc_enter_state(s, SMTPC_RCPT);
}

static void
smtpc_on_rcpt(struct smtpc *s)
{
	size_t i = s->rcpt_next;
	int code = s->reply.code;

	if (s->mail_ok) {
		smtpc_reason_reply(s, smtpc_outcome_of(code), SMTPC_STAGE_RCPT,
		    &s->rcpt[i].why);
		if (code / 100 == 2) {
			s->rstate[i] = SMTPC_R_ACCEPTED;
			s->naccepted++;
		} else
			s->rstate[i] = SMTPC_R_REFUSED;
	}
	s->rcpt_next = smtpc_next_valid(s, i + 1);
	if (s->pipelined) {
		if (s->rcpt_next >= s->msg->nrcpt)
			smtpc_enter_state(s, SMTPC_DATA);
		return;
	}
	if (s->rcpt_next < s->msg->nrcpt && !s->server_closing) {
		s->rcpt_send = s->rcpt_next;
		smtpc_enter_state(s, SMTPC_RCPT);
	} else if (s->naccepted > 0 && !s->server_closing)
		smtpc_enter_state(s, SMTPC_DATA);
	else {
		if (s->rcpt_next < s->msg->nrcpt)
			smtpc_tx_fail_reply(s, OUTCOME_TEMPFAIL,
			    SMTPC_STAGE_RCPT);
		else
			smtpc_tx_refused(s);
		smtpc_tx_done(s);
	}
}

static void
smtpc_on_data(struct smtpc *s)
{
	int code = s->reply.code;

	if (!s->mail_ok || s->naccepted == 0) {
		/*
		 * RFC 2920 §3.1: DATA went out in the group although nothing
		 * was accepted; the server should refuse it (503/554).  One
		 * that says 354 gets an empty message ended at once.
		 */
		if (s->mail_ok)
			smtpc_tx_refused(s);
		if (code == 354) {
			s->dot_abort = true;
			smtpc_enter_state(s, SMTPC_DOT);
			return;
		}
		smtpc_tx_done(s);
		return;
	}
	if (code == 354) {
		smtpc_enter_state(s, SMTPC_BODY);
		return;
	}
	smtpc_tx_fail_reply(s, smtpc_outcome_of(code), SMTPC_STAGE_DATA);
	smtpc_tx_done(s);
}

static void
smtpc_on_dot(struct smtpc *s)
{
	int code = s->reply.code;

	if (s->dot_abort) {
		smtpc_tx_done(s);
		return;
	}
	if (code / 100 == 2) {
		s->msgs_sent++;
		smtpc_reason_reply(s, OUTCOME_OK, SMTPC_STAGE_DOT, &s->res.why);
		for (size_t i = 0; i < s->msg->nrcpt; i++)
			if (s->rstate[i] == SMTPC_R_ACCEPTED)
				s->rcpt[i].why = s->res.why;
	} else
		smtpc_tx_fail_reply(s, smtpc_outcome_of(code), SMTPC_STAGE_DOT);
	smtpc_tx_done(s);
}

/* Queue stuffed body until the high mark, then the end of data. */
static void
smtpc_body_fill(struct smtpc *s)
{
	char in[SMTPC_BODY_CHUNK], out[2 * SMTPC_BODY_CHUNK + 4];
	size_t used, w;
	ssize_t n;

	/* RFC 5321 §4.5.3.2.5: the block timeout runs per write. */
	io_set_timeout(s->io, s->p.timeouts.block);
	while (!s->body_eof && io_queued(s->io) < SMTPC_BODY_HIWAT) {
		n = pread(s->msg->body_fd, in, sizeof(in), (off_t)s->body_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			/* No end of data: the server discards what it has. */
			smtpc_fail(s, SMTPC_CAUSE_LOCAL, SMTPC_STAGE_DATA,
			    "error reading message body: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			s->body_eof = true;
			w = smtp_stuff_finish(&s->stuff, out, sizeof(out));
		} else {
			s->body_off += (uint64_t)n;
			w = smtp_stuff_encode(&s->stuff, in, (size_t)n, out,
			    sizeof(out), &used);
		}
		if (io_write(s->io, out, w) == -1) {
			smtpc_fail(s, SMTPC_CAUSE_LOST, SMTPC_STAGE_DOT,
			    "write failed: %s", smtpc_io_error(s));
			return;
		}
	}
	if (s->body_eof)
		smtpc_enter_state(s, SMTPC_DOT);
}

/*
 * Reasons.  A reason from the last reply carries its code and status; one
 * of our own carries a cause and a text (already escaped where it quotes
 * the peer: replies, smtpc_io_error()).
 */
static void
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
}

static void
smtpc_reason_set(struct smtpc_reason *r, enum outcome o,
    enum smtpc_stage stage, enum smtpc_cause cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtpc_reason_vset(r, o, stage, cause, fmt, ap);
	va_end(ap);
}

/*
 * The transaction failed at a stage: recipients still waiting and those
 * accepted get this reason; refused ones keep their own.
 */
static void
smtpc_tx_fail(struct smtpc *s, const struct smtpc_reason *why)
{
	s->res.why = *why;
	for (size_t i = 0; i < s->msg->nrcpt; i++) {
		if (s->rstate[i] == SMTPC_R_PENDING ||
		    s->rstate[i] == SMTPC_R_ACCEPTED ||
		    why->stage == SMTPC_STAGE_MAIL) {
			if (s->rstate[i] == SMTPC_R_INVALID)
				continue;
			s->rcpt[i].why = *why;
		}
	}
}

/* The transaction failed with the reply just read. */
static void
smtpc_tx_fail_reply(struct smtpc *s, enum outcome o, enum smtpc_stage stage)
{
	struct smtpc_reason why;

	smtpc_reason_reply(s, o, stage, &why);
	smtpc_tx_fail(s, &why);
}

/* Every recipient refused: TEMPFAIL if any was temporary. */
static void
smtpc_tx_refused(struct smtpc *s)
{
	enum outcome o = OUTCOME_PERMFAIL;

	for (size_t i = 0; i < s->msg->nrcpt; i++) {
		if (s->rcpt[i].why.outcome == OUTCOME_TEMPFAIL)
			o = OUTCOME_TEMPFAIL;
		/* the transaction says what the last recipient got */
		s->res.why = s->rcpt[i].why;
	}
	s->res.why.outcome = o;
	s->res.why.stage = SMTPC_STAGE_RCPT;
}

/*
 * Hand the results over; the session is idle again.  A reply to the end
 * of data closes the transaction (RFC 5321 §4.1.1.4); one that stopped
 * before it (MAIL, RCPT or DATA refused) is reset with RSET before the
 * next, as OpenSMTPD's mta does.
 */
static void
smtpc_tx_done(struct smtpc *s)
{
	struct smtpc_rcpt_result *rcpt = s->rcpt;
	unsigned char *rstate = s->rstate;
	struct smtpc_result res = s->res;

	for (size_t i = 0; i < s->msg->nrcpt; i++)
		rcpt[i].accepted = rstate[i] == SMTPC_R_ACCEPTED;
	res.rcpt = rcpt;
	res.nrcpt = s->msg->nrcpt;
	s->msg = NULL;
	s->rcpt = NULL;
	s->rstate = NULL;
	s->need_rset = s->state != SMTPC_DOT;
	if (s->state != SMTPC_CLOSED) {
		s->state = SMTPC_READY;
		if (s->io != NULL)
			io_set_timeout(s->io, 0);
	}
	if (!s->dead)
		s->ops->done(s->arg, s, &res);
	free(rcpt);
	free(rstate);
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
	s->ops->closed(s->arg, s, &why);
}

/* A failure of ours or of the connection (TEMPFAIL): close now. */
static void
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
static void
smtpc_fail_reply(struct smtpc *s, enum smtpc_stage stage)
{
	struct smtpc_reason why;

	smtpc_reason_reply(s, OUTCOME_TEMPFAIL, stage, &why);
	log_debug("smtp %s: %s", s->peer_text, why.text);
	smtpc_close(s, &why);
}

/* A failure before any transaction: say QUIT, then closed(). */
static void
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

static void
smtpc_quit_fail_reply(struct smtpc *s, enum outcome o, enum smtpc_stage stage)
{
	struct smtpc_reason why;

	smtpc_reason_reply(s, o, stage, &why);
	smtpc_quit_fail(s, &why);
}

static void
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

static void
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
