/*
 * smtp_client: transactions on a ready session (the model is at the top
 * of smtp_client.c; smtp_client_int.h has what the three files share).
 * RSET when the last transaction did not reach the end of data, MAIL with
 * SIZE and BODY=8BITMIME as offered, SMTPUTF8 when needed, the RCPTs, DATA: in one group under
 * PIPELINING, else one by one.  The body is streamed from body_fd and
 * dot-stuffed on the way; the results, one per recipient, go to done().
 */
#include "config.h"

#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "smtp_client_int.h"
#include "smtp_proto.h"
#include "util.h"

/* Keep this much stuffed body queued; refill below io's low mark. */
#define SMTPC_BODY_HIWAT	(64 * 1024)
#define SMTPC_BODY_CHUNK	(16 * 1024)

static size_t	 smtpc_next_valid(const struct smtpc *, size_t);
static void	 smtpc_tx_fail_reply(struct smtpc *, enum outcome,
		    enum smtpc_stage);
static void	 smtpc_tx_refused(struct smtpc *);
static void	 tx_refuse(struct smtpc *, const char *, const char *);

int
smtpc_send(struct smtpc *s, const struct smtpc_msg *msg)
{
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
		tx_refuse(s, NULL, "invalid sender address, not sent");
		goto defer;
	}
	/*
	 * RFC 1870 §6: do not send what the server said it will refuse
	 * (RFC 3463: 5.3.4, message too big for system).
	 */
	if ((s->ehlo.ext & SMTP_EXT_SIZE) && s->ehlo.size_max > 0 &&
	    msg->size > s->ehlo.size_max) {
		tx_refuse(s, "5.3.4", "552 5.3.4 message size exceeds fixed "
		    "limit of the server");
		goto defer;
	}
	/*
	 * RFC 6531 §3.2: a message that needs SMTPUTF8 is not sent to a
	 * server without it; it is bounced (RFC 6533 §3: 5.6.7).
	 */
	if (msg->smtputf8 && !(s->ehlo.ext & SMTP_EXT_SMTPUTF8)) {
		tx_refuse(s, "5.6.7", "553 5.6.7 non-ASCII addresses or "
		    "header fields, and the server does not offer SMTPUTF8");
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
smtpc_on_rset(struct smtpc *s)
{
	int code = s->reply.code;

	if (code / 100 == 2) {
		s->need_rset = false;
		smtpc_enter_state(s, SMTPC_MAIL);
	} else
		smtpc_fail_reply(s, SMTPC_STAGE_MAIL);
}

void
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
	smtpc_write(s, "MAIL FROM:<%s>%s%s%s\r\n", m->sender, size, body,
	    m->smtputf8 ? " SMTPUTF8" : "");
	if (!s->pipelined)
		return;
	/* RFC 2920 §3.1: MAIL, the RCPTs and DATA in one group. */
	for (size_t i = smtpc_next_valid(s, 0); i < m->nrcpt;
	    i = smtpc_next_valid(s, i + 1))
		smtpc_send_rcpt(s, i);
	smtpc_write(s, "DATA\r\n");
}

void
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

void
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

void
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

void
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

void
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
void
smtpc_body_fill(struct smtpc *s)
{
	char in[SMTPC_BODY_CHUNK], out[2 * SMTPC_BODY_CHUNK + 4];
	/* size counts the prefix too (smtp_client.h). */
	uint64_t blen = s->msg->size > s->msg->prefix_len ?
	    s->msg->size - s->msg->prefix_len : 0;
	size_t used, w, want;
	ssize_t n;

	/* RFC 5321 §4.5.3.2.5: the block timeout runs per write. */
	io_set_timeout(s->io, s->p.timeouts.block);
	while (!s->body_eof && io_queued(s->io) < SMTPC_BODY_HIWAT) {
		/* The signature made at intake goes first (smtp_client.h). */
		if (s->prefix_off < s->msg->prefix_len) {
			size_t left = s->msg->prefix_len - s->prefix_off;

			w = smtp_stuff_encode(&s->stuff, s->msg->prefix +
			    s->prefix_off, left < sizeof(in) ? left : sizeof(in),
			    out, sizeof(out), &used);
			s->prefix_off += used;
			if (io_write(s->io, out, w) == -1) {
				smtpc_fail(s, SMTPC_CAUSE_LOST, SMTPC_STAGE_DOT,
				    "write failed: %s", smtpc_io_error(s));
				return;
			}
			continue;
		}
		/* The body ends at its size: more may follow it in the file. */
		want = sizeof(in);
		if (s->body_off >= blen)
			want = 0;
		else if (blen - s->body_off < want)
			want = (size_t)(blen - s->body_off);
		n = want == 0 ? 0 : pread(s->msg->body_fd, in, want,
		    (off_t)s->body_off);
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
 * The transaction failed at a stage: recipients still waiting and those
 * accepted get this reason; refused ones keep their own.
 */
void
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

/*
 * The message is not offered at all, for a reason of ours (text): a
 * permanent failure at MAIL, with the enhanced status code status when
 * not NULL.
 */
static void
tx_refuse(struct smtpc *s, const char *status, const char *text)
{
	struct smtpc_reason why;

	smtpc_reason_set(&why, OUTCOME_PERMFAIL, SMTPC_STAGE_MAIL,
	    SMTPC_CAUSE_LOCAL, "%s", text);
	if (status != NULL)
		util_strlcpy(why.status, status, sizeof(why.status));
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
void
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
