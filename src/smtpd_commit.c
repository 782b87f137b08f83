/*
 * smtpd_commit: DATA in the SMTP listener, from the command to the 250
 * (level 5 with smtpd.c): the Received: field, the bytes streamed
 * through the unstuffer (smtp_proto.c) into a new spool file, the checks
 * on the way (size, hops, the DATA syntax), and the commit of the
 * message to the spool, inline or in a worker thread (workq.c).
 *
 * Invariants
 * - The whole body is never held in memory.  Any problem (violation of
 *   the DATA syntax, too big, too many hops, a spool error) aborts the
 *   spool file at once and the rest of the data is read and dropped up
 *   to the real end of data, so one reply is given and the session
 *   stays in step.
 * - 250 is sent only after queue_new_commit() returned 0 and the queued
 *   callback ran.  Without worker threads the commit runs inline;
 *   with them the session waits in S_COMMIT (no input taken) so that
 *   the replies stay in order.  A session that goes meanwhile is
 *   detached from its commit; the message stays queued.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dkim_keys.h"
#include "envelope.h"
#include "io.h"
#include "log.h"
#include "message.h"
#include "smtp_proto.h"
#include "smtpd.h"
#include "smtpd_session.h"
#include "spool.h"
#include "util.h"
#include "workq.h"

/* RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF. */
#define SMTPD_TEXT_LINE_MAX	(SMTP_TEXT_LINE_MAX + 2)
#define SMTPD_HOPS_MAX		100	/* more Received: fields = a loop */

/* One message on its way to disk, inline or in a worker thread. */
struct commit {
	struct smtpd		*sd;
	struct session		*s;	/* NULL once the client is gone */
	struct queue_new	*qn;
	struct envelope		 env;
	struct dkim_signer	*dkim;	/* ends in commit_work(); NULL: none */
	bool			 dkim_failed;
	int			 rc;
	int			 err;
};

static char	*data_received(struct session *);
static void	 spool_error(struct session *, int);
static void	 data_out(struct session *, const char *, size_t);
static void	 data_write(void *, const char *, size_t);
static void	 data_end(struct session *, enum smtp_unstuff_status);
static struct commit *commit_new(struct session *);
static void	 commit_work(void *);
static void	 commit_reply(struct session *, struct commit *);
static void	 commit_free(struct commit *);
static void	 data_commit(struct session *);
static void	 commit_start(struct session *);
static void	 commit_done(void *);

/* ------------------------------------------------------------------ */
/* DATA. */

/* Our Received: field for the message that DATA starts. */
static char *
data_received(struct session *s)
{
	struct msg_received r = { 0 };
	bool tls = io_tls_active(s->io);

	r.local = s->lc != NULL;
	r.helo = s->helo;
	r.addr = s->addr;
	if (s->lc != NULL) {
		r.user = s->lc->user;
		r.uid = s->lc->uid;
	}
	r.by = s->sd->p.hostname;
	r.proto = msg_received_proto(s->esmtp, tls, s->auth_user != NULL);
	/* RFC 6531 §4.3: UTF8SMTP, UTF8SMTPA, UTF8SMTPS, UTF8SMTPSA. */
	if (s->smtputf8)
		r.proto = tls ? (s->auth_user != NULL ? "UTF8SMTPSA" :
		    "UTF8SMTPS") : (s->auth_user != NULL ? "UTF8SMTPA" :
		    "UTF8SMTP");
	r.id = queue_new_id(s->qn);
	r.rcpt = s->rcpts.n == 1 ? s->rcpts.v[0] : NULL;
	r.now = time(NULL);
	return msg_received(&r);
}

void
smtpd_data_begin(struct session *s, char *arg)
{
	struct smtpd *sd = s->sd;
	char *hdr;
	int r, e;

	(void)arg;
	if (s->sender == NULL) {
		smtpd_reply_error(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (s->rcpts.n == 0) {
		smtpd_reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (queue_new_begin(sd->q, &s->qn) == -1) {
		e = errno;
		s->qn = NULL;
		log_warn("smtpd: queue_new_begin");
		spool_error(s, e);
		return;
	}
	/* The signer is fed what is stored, our Received: first. */
	if ((s->dkim = dkim_signer_new(sd->p.dkim, time(NULL))) != NULL)
		queue_new_set_tap(s->qn, dkim_signer_feed, s->dkim);
	hdr = data_received(s);
	r = queue_new_write(s->qn, hdr, strlen(hdr));
	free(hdr);
	if (r == -1) {
		e = errno;
		log_warn("smtpd: %s: queue write", queue_new_id(s->qn));
		smtpd_data_drop(s);
		spool_error(s, e);
		return;
	}
	s->dsize = 0;
	s->too_big = false;
	s->spool_err = 0;
	msg_hops_init(&s->hops);
	/* Postfix's always_add_missing_headers, for trusted clients only. */
	msg_stream_init(&s->hdr, sd->p.add_missing_headers &&
	    smtpd_session_relay_ok(s), sd->p.hostname, queue_new_id(s->qn),
	    time(NULL), data_write, s);
	/* Postfix's smtpd_forbid_bare_newline = normalize, for trusted ones. */
	smtp_unstuff_init(&s->unstuff, SMTPD_TEXT_LINE_MAX,
	    sd->p.bare_lf == BARE_LF_NORMALIZE && smtpd_session_relay_ok(s) ?
	    SMTP_UNSTUFF_LF : 0);
	smtpd_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	s->state = S_DATA;
	smtpd_session_timeout(s);
	io_set_raw(s->io, true);
}

/* A spool operation failed: 452 when the disk is full, else 451. */
static void
spool_error(struct session *s, int e)
{
	smtpd_local_spool_err(s, e);
	if (e == ENOSPC || e == EDQUOT)
		smtpd_reply(s, "452 4.3.1 Insufficient system storage");
	else
		smtpd_reply(s, "451 4.3.0 Error: queue file write error");
}

/* Throw the message being received away (nothing is left in the spool). */
void
smtpd_data_drop(struct session *s)
{
	if (s->qn != NULL) {
		queue_new_abort(s->qn);
		s->qn = NULL;
	}
	dkim_signer_free(s->dkim);
	s->dkim = NULL;
}

/* Feed what is buffered to the unstuffer; data_end() at the end of data. */
void
smtpd_data_input(struct session *s)
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
			smtpd_data_drop(s);
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

	msg_hops_scan(&s->hops, buf, len);
	s->dsize += len;
	if (max > 0 && s->dsize > max) {
		s->too_big = true;
		smtpd_data_drop(s);
	}
	if (s->hops.count > SMTPD_HOPS_MAX)
		smtpd_data_drop(s);
	if (s->qn == NULL)
		return;
	msg_stream_feed(&s->hdr, buf, len);
}

/* The message's octets, as msg_stream passes them on, into the spool. */
static void
data_write(void *arg, const char *buf, size_t len)
{
	struct session *s = arg;

	if (s->qn == NULL)
		return;
	if (queue_new_write(s->qn, buf, len) == -1) {
		s->spool_err = errno;
		log_warn("smtpd: %s: queue write", queue_new_id(s->qn));
		smtpd_data_drop(s);
	}
}

static void
data_end(struct session *s, enum smtp_unstuff_status st)
{
	struct smtpd *sd = s->sd;
	const char *why = NULL;

	io_set_raw(s->io, false);
	s->state = S_CMD;
	smtpd_session_timeout(s);
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
	if (why == NULL && !s->too_big && s->hops.count <= SMTPD_HOPS_MAX &&
	    s->qn != NULL)
		msg_stream_end(&s->hdr);
	if (why != NULL) {
		smtpd_data_drop(s);
		log_info("reject: DATA from %s: 554 5.6.0 message "
		    "contains a %s", s->peer, why);
		smtpd_reply(s, "554 5.6.0 Error: message contains a %s", why);
	} else if (s->too_big) {
		smtpd_data_drop(s);
		log_info("reject: DATA from %s: 552 5.3.4 message size "
		    "exceeds %" PRIu64, s->peer, sd->p.max_size);
		smtpd_reply(s, "552 5.3.4 Message size exceeds fixed limit");
	} else if (s->hops.count > SMTPD_HOPS_MAX) {
		smtpd_data_drop(s);
		log_info("reject: DATA from %s: 554 5.4.6 too many hops "
		    "(%u Received: fields)", s->peer, s->hops.count);
		smtpd_reply(s, "554 5.4.6 Error: too many hops");
	} else if (s->spool_err != 0 || s->qn == NULL) {
		smtpd_data_drop(s);
		spool_error(s, s->spool_err != 0 ? s->spool_err : EIO);
	} else if (sd->wq != NULL) {
		commit_start(s);
		smtpd_session_reset_txn(s);
		return;		/* commit_done() goes on */
	} else
		data_commit(s);
	smtpd_session_reset_txn(s);
	if (s->closing_pending) {
		smtpd_reply(s, "421 4.3.2 %s Service shutting down",
		    sd->p.hostname);
		smtpd_session_closing(s);
	}
}

/* ------------------------------------------------------------------ */
/* The commit. */

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
	/*
	 * RFC 6531 §3.2: delivery needs SMTPUTF8 when an address or a
	 * header field is UTF-8; a message of ASCII only goes without it.
	 */
	if (s->smtputf8 && (s->addr8bit || s->hdr.eightbit))
		c->env.flags |= ENVELOPE_F_SMTPUTF8;
	if (s->lc != NULL) {
		c->env.submit_uid = s->lc->uid;
		if (s->lc->user != NULL)
			c->env.submit_user = xstrdup(s->lc->user);
	}
	c->qn = s->qn;
	s->qn = NULL;		/* commit frees it, success or not */
	c->dkim = s->dkim;
	s->dkim = NULL;
	return c;
}

/*
 * The signature (its RSA or Ed25519 operation off the loop), fsyncs and
 * renames: in a worker thread, or inline.
 */
static void
commit_work(void *arg)
{
	struct commit *c = arg;

	if (c->dkim != NULL && dkim_signer_end(c->dkim, &c->env.dkim) == -1) {
		c->dkim_failed = true;
		c->rc = -1;
		c->err = EIO;
		return;		/* commit_free() aborts qn */
	}
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

	if (c->dkim_failed) {
		log_warnx("smtpd: DKIM signing of a message from %s failed: "
		    "%s", s->peer, dkim_signer_error(c->dkim));
		smtpd_reply(s, "451 4.3.0 Error: message could not be signed");
		return;
	}
	if (c->rc == -1) {
		errno = c->err;
		log_warn("smtpd: queue commit from %s", s->peer);
		spool_error(s, c->err);
		return;
	}
	if (c->dkim != NULL && c->env.dkim == NULL)
		log_debug("%s: not DKIM-signed: %s", c->env.id,
		    dkim_signer_why(c->dkim));
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
	smtpd_reply(s, "250 2.0.0 Ok: queued as %s", env->id);
}

static void
commit_free(struct commit *c)
{
	if (c->qn != NULL)
		queue_new_abort(c->qn);
	dkim_signer_free(c->dkim);
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
		else if (c->dkim_failed)
			log_warnx("smtpd: DKIM signing failed: %s (the client "
			    "had left)", dkim_signer_error(c->dkim));
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
		smtpd_reply(s, "421 4.3.2 %s Service shutting down",
		    sd->p.hostname);
		smtpd_session_closing(s);
		return;
	}
	smtpd_session_input(s);
}

void
smtpd_commit_detach(struct commit *c)
{
	c->s = NULL;
}
