/*
 * qmgr_msg: one attempt of a message's groups.  See qmgr_int.h.
 *
 * The first group of a message to run opens it (lock with
 * queue_msg_lock, read the envelope, open the body), so that a second
 * runner (mxrelay -q) skips it; the message stays locked and open while
 * any of its groups is in flight.  When the envelope does not say whether
 * the body has 8-bit bytes (written before version 3), the body is read
 * first: at once when it is small (QMGR_SCAN_INLINE_MAX and _TURN), else
 * on the work queue, and groups handed out meanwhile wait for it; the
 * envelope keeps the answer from its next write on.
 * A group's due recipients go to the engine as one part.  When the part
 * comes back, its outcomes are applied to the envelope
 * (sched_rcpt_outcome: delivered, deferred with backoff, or to be
 * reported) and, while other groups of the message are still out,
 * written at once on the work queue, so that a crash does not send a
 * delivered group again.  When the last group is back the message
 * closes: permanent failures and expired recipients go into one DSN
 * (never for the null sender; qmgr_dsn.c: or into the sender's combined
 * one, or none past the sender's limit) and are marked bounced, a delay
 * warning goes out when due, the envelope is
 * written a last time (or the message removed when nothing is pending),
 * and it is unlocked.  Writes of one message never overlap, and a
 * message is removed only when no write of it is out.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "delivery.h"
#include "log.h"
#include "metrics.h"
#include "qmgr_int.h"
#include "record.h"
#include "scheduler.h"
#include "spool.h"
#include "util.h"
#include "workq.h"

/*
 * A message locked by someone else is looked at again after 100 ms (a
 * submitter finishing its commit), then 1 s, then every 5 s (a queue
 * runner working on it).
 */
static const int64_t locked_retry_ms[] = { 100, 1000, 5000 };

static void	 part_start(struct qmsg *, const struct sched_pick *, int64_t);
static void	 part_done(void *, struct delivery_msg *);
static void	 qmsg_close(struct qmsg *);
static void	 qmsg_settle(struct qmsg *);
static void	 qmsg_write(struct qmsg *);

/*
 * Opening a message and closing it.
 */

/* Whether the body has 8-bit bytes: 0, or -1 with errno if it cannot be read. */
static int
body_is_8bit(int fd, uint64_t size, bool *eightbit)
{
	unsigned char buf[65536];
	off_t off = 0;
	ssize_t n;

	*eightbit = false;
	for (;;) {
		size_t want = sizeof(buf);

		/* The body is its first size bytes (spool.c). */
		if ((uint64_t)off >= size)
			return 0;
		if (size - (uint64_t)off < want)
			want = (size_t)(size - (uint64_t)off);
		if ((n = pread(fd, buf, want, off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] & 0x80) {
				*eightbit = true;
				return 0;
			}
		off += n;
	}
}

/*
 * Lock, read the envelope, open the body: small and quick, on the loop,
 * so that the parts of the groups due together reach the engine together
 * (it spreads them over its connections).
 */
static void
open_files(struct qmsg *m)
{
	struct queue *q = m->qm->q;
	const char *id = m->id;

	m->failed = OPEN_OK;
	if (queue_msg_lock(q, id, &m->lockfd) == -1)
		m->failed = OPEN_LOCK;
	else if (queue_env_load(q, id, &m->env) == -1)
		m->failed = OPEN_ENV;
	/*
	 * The body is the file just locked (queue_msg_lock() opened it
	 * read-only with the checks of queue_body_open()): a duplicate
	 * saves opening and checking it again.  Readers use pread(), so the
	 * shared offset does not matter; the lock stays with lockfd, and
	 * body_fd is always closed before it.
	 */
	else if ((m->body_fd = fcntl(m->lockfd, F_DUPFD_CLOEXEC, 0)) == -1)
		m->failed = OPEN_BODY;
	else
		m->eightbit = m->env.eightbit == ENVELOPE_8BIT_YES;
	m->err = errno;
}

/*
 * May the body be scanned at once on the loop?  A trip through the work
 * queue costs more than reading a few pages (old spools are mostly small
 * messages); a large body, one that fstat() cannot size, or one past this
 * turn's share (QMGR_SCAN_INLINE_TURN) goes to the work queue.
 */
static bool
scan_inline(struct qmgr *qm, int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1 || st.st_size > QMGR_SCAN_INLINE_MAX ||
	    (uint64_t)st.st_size > qm->scan_left)
		return false;
	qm->scan_left -= (uint64_t)st.st_size;
	return true;
}

/*
 * An envelope written before the spool noted 8-bit bodies (version 1 or
 * 2): read the whole body to know.  Runs on a worker thread, or on the
 * loop for a small body; touches nothing but m's own fields.
 */
static void
scan_work(void *arg)
{
	struct qmsg *m = arg;

	if (body_is_8bit(m->body_fd, m->env.size, &m->eightbit) == -1) {
		m->failed = OPEN_READ;
		m->err = errno;
	}
}

static struct qmsg *
qmsg_new(struct qmgr *qm, struct sched_msg *sm)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));

	m->qm = qm;
	m->sm = sm;
	m->lockfd = m->body_fd = -1;
	envelope_init(&m->env);
	/* Apart from env: queue_env_load() empties env, id and all. */
	util_strlcpy(m->id, sm->id, sizeof(m->id));
	qmgr_note(sm)->open = m;
	if ((m->next = qm->open) != NULL)
		m->next->prev = m;
	qm->open = m;
	qm->nopen++;
	return m;
}

/* Close and free m; its message stays indexed as the caller left it. */
static void
qmsg_discard(struct qmsg *m)
{
	struct qmgr *qm = m->qm;
	struct qnote *n = m->sm->udata;

	if (m->body_fd != -1)
		close(m->body_fd);
	if (m->lockfd != -1)
		queue_msg_unlock(m->lockfd);
	if (n != NULL) {
		n->open = NULL;
		if (n->strand_fails == 0)
			qmgr_note_free(m->sm);
	}
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		qm->open = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	qm->nopen--;
	envelope_free(&m->env);
	free(m->busy);
	free(m->report);
	free(m->waiting);
	free(m);
	qmgr_kick(qm, 0);
}

/* The groups handed out before the open failed go back, due at due. */
static bool
abort_waiting(struct qmsg *m, int64_t due)
{
	bool force = false;

	for (size_t i = 0; i < m->nwaiting; i++) {
		force = force || m->waiting[i].force;
		sched_group_abort(m->qm->sched, m->waiting[i].group, due);
	}
	m->nwaiting = 0;
	return force;
}

/* The open failed: retry, forget or strand the message. */
static void
open_failed(struct qmsg *m, int64_t now)
{
	struct qmgr *qm = m->qm;
	struct sched_msg *sm = m->sm;
	struct envelope env;
	enum open_step failed = m->failed;
	int err = m->err;
	char *why = NULL;
	bool force;

	if (m->failed == OPEN_LOCK && m->err == EWOULDBLOCK &&
	    qm->opts.daemon) {
		/* Another runner or a submitter has it: look again. */
		size_t n = sizeof(locked_retry_ms) / sizeof(locked_retry_ms[0]);

		abort_waiting(m, now + locked_retry_ms[sm->lock_tries < n ?
		    sm->lock_tries : n - 1]);
		if (sm->lock_tries < 255)
			sm->lock_tries++;
		qmsg_discard(m);
		return;
	}
	force = abort_waiting(m, now);
	/* The envelope read under the lock goes to qmgr_strand(). */
	env = m->env;
	envelope_init(&m->env);
	if (failed == OPEN_BODY)
		why = err == EINVAL ? xstrdup("cannot open the message: "
		    "not a regular file") :
		    qmgr_why_errno("cannot open the message", err);
	else if (failed == OPEN_READ)
		why = qmgr_why_errno("cannot read the message", err);
	else if (failed == OPEN_ENV && err != ENOENT && err != EBADMSG)
		why = qmgr_why_errno("cannot read the envelope", err);
	else if (failed == OPEN_LOCK && err != EWOULDBLOCK &&
	    err != ENOENT)
		/* Not ours, not a file... */
		why = qmgr_why_errno("cannot lock", err);
	if (why != NULL && (failed == OPEN_BODY || failed == OPEN_READ)) {
		/* Recorded in the envelope while the lock is still held. */
		int lockfd = m->lockfd;

		m->lockfd = -1;
		qmsg_discard(m);
		qmgr_strand(qm, sm, &env, why, force);
		queue_msg_unlock(lockfd);
	} else {
		qmsg_discard(m);
		if (why != NULL)
			qmgr_strand(qm, sm, NULL, why, force);
		else if (failed == OPEN_ENV && err == EBADMSG) {
			queue_msg_quarantine(qm->q, sm->id,
			    "envelope cannot be parsed");
			qmgr_index_forget(qm, sm);
		} else
			/* Gone, or locked (one-shot). */
			qmgr_index_forget(qm, sm);
	}
	envelope_free(&env);
	free(why);
}

/* The message is open, or failed to open (also the scan job's done()). */
static void
open_done(void *arg)
{
	struct qmsg *m = arg;
	struct qmgr *qm = m->qm;
	struct sched_msg *sm = m->sm;
	struct qnote *n;
	struct sched_pick *picks;
	size_t npicks;
	int64_t now;
	time_t due;

	if (qm->freeing)
		return;		/* abandoned with the rest */
	now = qmgr_wall_ms();
	m->ready = true;
	if (qm->stopped && m->failed == OPEN_OK) {
		/* Shutting down: no new deliveries, the groups wait. */
		abort_waiting(m, now);
		qmsg_discard(m);
		return;
	}
	if (m->failed != OPEN_OK) {
		open_failed(m, now);
		return;
	}
	/* A scanned old envelope keeps the answer from its next write on. */
	if (m->env.eightbit == ENVELOPE_8BIT_UNKNOWN)
		m->env.eightbit = m->eightbit ? ENVELOPE_8BIT_YES :
		    ENVELOPE_8BIT_NO;
	sm->lock_tries = 0;
	n = qmgr_note(sm);
	qmgr_note_submitter(sm, &m->env);
	if (n->strand_fails > 0) {
		log_info("%s: can be read again after %u failure%s", sm->id,
		    n->strand_fails, n->strand_fails == 1 ? "" : "s");
		n->strand_fails = 0;
		n->strand_since = 0;
		qmgr_set_text(&n->strand_why, NULL);
	}
	if (!sched_env_next_due(&m->env, &due)) {
		/* Finished before a crash could remove it: remove it now. */
		abort_waiting(m, now);
		if (queue_msg_remove_later(qm->q, sm->id) == 0) {
			log_info("%s: removed", sm->id);
			qmgr_kick_flush(qm);
		}
		qmsg_discard(m);
		qmgr_index_forget(qm, sm);
		return;
	}
	if (m->env.flags & ENVELOPE_F_HOLD) {
		/* Held since it was indexed (mxrelay hold without mxrelayd). */
		struct envelope env = m->env;

		abort_waiting(m, now);
		envelope_init(&m->env);
		qmsg_discard(m);
		qmgr_index_set(qm, sm, &env, now);
		envelope_free(&env);
		return;
	}
	m->busy = xcalloc(m->env.nrcpt, sizeof(*m->busy));
	m->report = xcalloc(m->env.nrcpt, sizeof(*m->report));
	qm->stats->messages++;
	/* What the envelope says now, under the lock, for the other groups. */
	sched_msg_set(qm->sched, sm, &m->env, now);
	/* A part may close m when it comes back at once: not m after the last. */
	picks = m->waiting;
	npicks = m->nwaiting;
	m->waiting = NULL;
	m->nwaiting = 0;
	for (size_t i = 0; i < npicks; i++)
		part_start(m, &picks[i], now);
	free(picks);
}

/* A group handed out by the scheduler. */
bool
qmgr_group_start(struct qmgr *qm, const struct sched_pick *p, int64_t now)
{
	struct qmsg *m = qmgr_note(p->msg)->open;

	if (m != NULL && m->closing) {
		sched_group_abort(qm->sched, p->group, now + QMGR_CLOSING_WAIT_MS);
		return true;
	}
	if (m != NULL && m->ready) {
		part_start(m, p, now);
		return true;
	}
	/*
	 * The scheduler counts messages with groups in flight; messages
	 * still writing their last state hold descriptors too.  Past the
	 * window, wait until some have closed.
	 */
	if (m == NULL && qm->nopen >= qm->window) {
		sched_group_abort(qm->sched, p->group, now + QMGR_CLOSING_WAIT_MS);
		return false;
	}
	if (m == NULL)
		m = qmsg_new(qm, p->msg);
	m->waiting = xreallocarray(m->waiting, m->nwaiting + 1,
	    sizeof(*m->waiting));
	m->waiting[m->nwaiting++] = *p;
	if (m->nwaiting > 1)
		return true;	/* the body scan is out */
	open_files(m);
	if (m->failed == OPEN_OK && m->env.eightbit == ENVELOPE_8BIT_UNKNOWN) {
		if (!scan_inline(qm, m->body_fd)) {
			workq_push(qm->wq, scan_work, open_done, m);
			return true;
		}
		scan_work(m);
	}
	open_done(m);
	return true;
}

/* The group's attempt is over: tell the scheduler, log, write or close. */
static void
group_finish(struct qmsg *m, struct sched_group *g, struct sched_result *res,
    int64_t now)
{
	struct qmgr *qm = m->qm;
	char *dest = xstrdup(sched_dest_name(g->dest));
	struct sched_event ev;
	unsigned flags;

	res->pending = false;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		const struct envelope_rcpt *r = &m->env.rcpt[i];

		if (r->state != RCPT_PENDING || m->report[i] || m->busy[i] ||
		    !sched_rcpt_in(qm->sched, r->addr, dest))
			continue;
		if (!res->pending || r->next_try < res->next_try)
			res->next_try = r->next_try;
		res->pending = true;
	}
	flags = sched_group_done(qm->sched, g, res, now, &ev);
	if (flags & SCHED_EV_HOLD_START)
		log_info("%s: destination unreachable, held back for %llds "
		    "(failure %u in a row)", *dest ? dest : "relayhost",
		    (long long)(ev.delay / 1000), ev.failures);
	if (flags & SCHED_EV_HOLD_END)
		log_info("%s: destination reachable again",
		    *dest ? dest : "relayhost");
	if (flags & (SCHED_EV_HOLD_START | SCHED_EV_HOLD_END))
		qmgr_holds_save(qm);
	free(dest);
	if (flags & SCHED_EV_CLOSED)
		qmsg_close(m);
	else
		/* The other groups may hang: record this one now. */
		qmsg_write(m);
}

static void
part_start(struct qmsg *m, const struct sched_pick *p, int64_t now)
{
	struct qmgr *qm = m->qm;
	time_t now_s = (time_t)(now / 1000);
	struct qpart *part;
	size_t n = 0;

	part = xcalloc(1, sizeof(*part));
	part->m = m;
	part->g = p->group;
	part->dm.rcpt = xcalloc(m->env.nrcpt, sizeof(*part->dm.rcpt));
	part->idx = xcalloc(m->env.nrcpt, sizeof(*part->idx));
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		const struct envelope_rcpt *r = &m->env.rcpt[i];

		if (m->busy[i] || m->report[i] ||
		    (m->env.flags & ENVELOPE_F_HOLD) ||
		    !sched_rcpt_due(r, now_s, p->force) ||
		    !sched_rcpt_in(qm->sched, r->addr, p->dest))
			continue;
		m->busy[i] = true;
		part->dm.rcpt[n].addr = r->addr;
		part->idx[n++] = i;
	}
	if (n == 0) {
		/* Changed under us (another runner): nothing due here. */
		struct sched_result res = { false, false, false, 0 };

		free(part->dm.rcpt);
		free(part->idx);
		free(part);
		group_finish(m, p->group, &res, now);
		return;
	}
	if (p->probe)
		log_info("%s: hold over, one message goes first as a probe",
		    *p->dest ? p->dest : "relayhost");
	part->dm.nrcpt = n;
	part->dm.id = m->env.id;
	part->dm.sender = m->env.sender;
	part->dm.body_fd = m->body_fd;
	part->dm.size = m->env.size;
	/* The signature made at intake, in front of the body (envelope.h). */
	if (m->env.dkim != NULL) {
		part->dm.prefix = m->env.dkim;
		part->dm.prefix_len = strlen(m->env.dkim);
		part->dm.size += part->dm.prefix_len;
	}
	part->dm.eightbit = m->eightbit;
	part->dm.smtputf8 = (m->env.flags & ENVELOPE_F_SMTPUTF8) != 0;
	part->dm.arrival = m->env.arrival;
	part->dm.done = part_done;
	part->dm.arg = part;
	delivery_submit(qm->engine, p->dest, &part->dm);
}

/* The record of a recipient given up on (record.h). */
static void
log_expired(const char *id, const char *addr)
{
	const struct record_field f[] = {
		{ "to", "to=<%s>", RECORD_STR, addr, 0 },
		{ "status", ", status=%s", RECORD_STR, "expired", 0 },
		{ "reason", " (%s)", RECORD_STR,
		    "queued longer than queue_lifetime", 0 },
	};

	record_log(id, f, sizeof(f) / sizeof(f[0]));
}

/* One recipient's outcome into the envelope. */
static void
rcpt_apply(struct qmsg *m, size_t i, const struct delivery_rcpt *dr,
    time_t now)
{
	struct qmgr *qm = m->qm;
	const struct qmgr_conf *c = &qm->c;
	struct envelope_rcpt *er = &m->env.rcpt[i];

	qmgr_set_text(&er->last_reply, dr->reply);
	qmgr_set_text(&er->status, envelope_status_valid(dr->status) ?
	    dr->status : NULL);
	qmgr_set_text(&er->remote_mta, dr->remote_mta);
	switch (sched_rcpt_outcome(er, dr->outcome, now, c->retry_min_ms,
	    c->retry_max_ms, m->env.arrival, c->lifetime_ms)) {
	case SCHED_RCPT_DELIVERED:
		qm->stats->sent++;
		metrics_rcpt(er->addr, "sent", dr->tls_use);
		metrics_observe(METRIC_DELAY, NULL, now > m->env.arrival ?
		    (double)(now - m->env.arrival) : 0);
		break;
	case SCHED_RCPT_EXPIRED:
		log_expired(m->env.id, er->addr);
		m->report[i] = true;
		metrics_rcpt(er->addr, "bounced", dr->tls_use);
		break;
	case SCHED_RCPT_BOUNCE:
		m->report[i] = true;
		metrics_rcpt(er->addr, "bounced", dr->tls_use);
		break;
	case SCHED_RCPT_DEFERRED:
		qm->stats->deferred++;
		metrics_rcpt(er->addr, "deferred", dr->tls_use);
		break;
	}
}

/* A message done: whether any recipient was not delivered (metrics). */
static bool
msg_bounced(const struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_BOUNCED)
			return true;
	return false;
}

static void
part_done(void *arg, struct delivery_msg *dm)
{
	struct qpart *p = arg;
	struct qmsg *m = p->m;
	struct sched_result res = { dm->dest_down, false, false, 0 };
	int64_t now = qmgr_wall_ms();

	for (size_t k = 0; k < dm->nrcpt; k++) {
		m->busy[p->idx[k]] = false;
		if (dm->rcpt[k].remote_mta[0] != '\0')
			res.reached = true;
		rcpt_apply(m, p->idx[k], &dm->rcpt[k], (time_t)(now / 1000));
	}
	m->dirty = true;
	group_finish(m, p->g, &res, now);
	free(p->dm.rcpt);
	free(p->idx);
	free(p);
}

/* The last group is back: one DSN for what failed, then settle. */
static void
qmsg_close(struct qmsg *m)
{
	struct qmgr *qm = m->qm;
	struct envelope *env = &m->env;
	time_t now = time(NULL);
	size_t nreport = 0;

	m->closing = true;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (m->report[i])
			nreport++;
	/* qmgr_dsn_failed() queues, collects or drops the notice, and logs. */
	if (nreport > 0 && qmgr_dsn_failed(qm, env, m->report,
	    m->body_fd) == 0) {
		for (size_t i = 0; i < env->nrcpt; i++)
			if (m->report[i]) {
				env->rcpt[i].state = RCPT_BOUNCED;
				qm->stats->bounced++;
			}
		m->dirty = true;
	} else if (nreport > 0) {
		/* Keep them: a bounce must not be lost either. */
		log_warn("%s: cannot queue the non-delivery notification",
		    env->id);
		for (size_t i = 0; i < env->nrcpt; i++)
			if (m->report[i])
				env->rcpt[i].next_try = now +
				    sched_ms_to_s(qm->c.retry_min_ms);
		m->dirty = true;
	}
	memset(m->report, 0, env->nrcpt * sizeof(*m->report));
	if (qmgr_dsn_delay(qm, env, m->body_fd))
		m->dirty = true;
	qmsg_settle(m);
}

/*
 * Closing: once no write is out, write the last state (or remove the
 * message when nothing is pending), unlock, and index what is left.
 */
static void
qmsg_settle(struct qmsg *m)
{
	struct qmgr *qm = m->qm;
	struct sched_msg *sm = m->sm;
	time_t due;

	if (m->writing)
		return;		/* write_done() comes back here */
	if (sched_env_next_due(&m->env, &due)) {
		struct envelope env;

		if (m->dirty) {
			qmsg_write(m);
			return;
		}
		/* Unlocked first: the groups due at once may open it again. */
		env = m->env;
		envelope_init(&m->env);
		qmsg_discard(m);
		qmgr_index_set(qm, sm, &env, qmgr_wall_ms());
		envelope_free(&env);
		return;
	}
	if (queue_msg_remove_later(qm->q, m->env.id) == -1)
		log_warn("%s: cannot remove", m->env.id);
	else {
		log_info("%s: removed", m->env.id);
		metrics_inc1(METRIC_MSG, msg_bounced(&m->env) ?
		    "bounced" : "sent");
		qmgr_kick_flush(qm);
	}
	qmsg_discard(m);
	qmgr_index_forget(qm, sm);
}

struct write_job {
	struct qmsg	*m;
	struct envelope	 env;	/* the state to write */
	int		 rc;
	int		 err;
};

static void
write_work(void *arg)
{
	struct write_job *j = arg;

	j->rc = queue_env_update(j->m->qm->q, &j->env);
	j->err = errno;
}

static void
write_done(void *arg)
{
	struct write_job *j = arg;
	struct qmsg *m = j->m;

	envelope_free(&j->env);
	if (m->qm->freeing) {
		free(j);
		return;
	}
	if (j->rc == -1) {
		errno = j->err;
		log_warn("%s: cannot update the envelope", m->env.id);
	}
	free(j);
	m->writing = false;
	if (m->closing)
		qmsg_settle(m);
	else if (m->dirty)
		qmsg_write(m);
}

/* Write the envelope as it stands, after any write still out. */
static void
qmsg_write(struct qmsg *m)
{
	struct write_job *j;

	if (m->writing || !m->dirty)
		return;
	j = xcalloc(1, sizeof(*j));
	j->m = m;
	envelope_copy(&j->env, &m->env);
	m->dirty = false;
	m->writing = true;
	workq_push(m->qm->wq, write_work, write_done, j);
}

/*
 * Queue administration changed the open message's envelope in memory
 * (qmgr_admin.c): written after any write still out, or by the close.
 */
void
qmgr_msg_changed(struct qmsg *m)
{
	m->dirty = true;
	if (!m->closing)
		qmsg_write(m);
}
