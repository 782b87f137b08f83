/*
 * qmgr_index: filling the queue manager's index.  See qmgr_int.h.
 *
 * The scheduler holds every message (by id) and its groups, one per
 * destination with pending recipients, each due at its earliest
 * next_try.  The start-up scan hands over the envelopes it reads (in the
 * daemon, QMGR_SCAN_SLICE at a time, from a timer, so that delivery starts
 * at once); a message that only its id is known of (new, or unread at the
 * scan) is a SCHED_LOAD job: its envelope is read (unlocked, just to learn
 * its groups; qmgr_msg.c takes the recipients again under the lock).
 *
 * Stranded messages: one that cannot be opened, locked or read (a file
 * this user may not read, a body that is not a regular file, a read
 * error) is retried with the same backoff as a deferred delivery
 * (retry_min doubling up to retry_max), and each failure is logged with
 * the queue id and the reason.  When its envelope can be read and
 * written, the reason goes into it (last_reply and next_try of the
 * pending recipients) so that mailq shows it; otherwise the reason and
 * the backoff are kept in memory (struct qnote).  Past queue_lifetime
 * (from the envelope's arrival, or from the files' age when the envelope
 * cannot be read) it is moved into corrupt/ with a log line naming the
 * reason.  Envelopes the start-up scan could not read are indexed too
 * (index_unread), so that none sits unseen.  A message locked by someone
 * else (EWOULDBLOCK) is not stranded: it is looked at again shortly.
 *
 * Destination holds (daemon mode) are the scheduler's; they are kept in
 * the spool's holds file (queue_holds_save, one write at a time on the
 * work queue) so that a restart keeps the backoff of a destination that
 * is down, and read back before the scan.
 */
#include "config.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "qmgr.h"
#include "qmgr_int.h"
#include "scheduler.h"
#include "spool.h"
#include "util.h"
#include "workq.h"

struct qnote *
qmgr_note(struct sched_msg *sm)
{
	if (sm->udata == NULL)
		sm->udata = xcalloc(1, sizeof(struct qnote));
	return sm->udata;
}

void
qmgr_note_free(struct sched_msg *sm)
{
	struct qnote *n = sm->udata;

	if (n != NULL) {
		free(n->strand_why);
		free(n);
		sm->udata = NULL;
	}
}

/* Forget a message (none of its groups in flight). */
void
qmgr_index_forget(struct qmgr *qm, struct sched_msg *sm)
{
	qmgr_note_free(sm);
	sched_msg_remove(qm->sched, sm);
}

/* The local user who queued the message, when its envelope says. */
void
qmgr_note_submitter(struct sched_msg *sm, const struct envelope *env)
{
	if (env->submit_user != NULL) {
		sm->has_submitter = true;
		sm->submit_uid = env->submit_uid;
	}
}

/*
 * A message on hold stays in the daemon's index without groups, so that
 * mailq (through the control socket) and status count it; one-shot runs
 * forget it.
 */
static bool
kept_held(const struct qmgr *qm, const struct envelope *env)
{
	return qm->opts.daemon && (env->flags & ENVELOPE_F_HOLD);
}

/*
 * After a look at the envelope: index its groups, or forget the message
 * when nothing of it is left to try in this run.
 */
void
qmgr_index_set(struct qmgr *qm, struct sched_msg *sm, const struct envelope *env,
    int64_t now)
{
	qmgr_note_submitter(sm, env);
	sm->deferred = 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING &&
		    env->rcpt[i].attempts > 0)
			sm->deferred++;
	if (sched_msg_set(qm->sched, sm, env, now) == 0 && !kept_held(qm, env))
		qmgr_index_forget(qm, sm);
}

/*
 * Stranded messages (see the top of this file).
 */

/*
 * The age of a message whose envelope cannot be read: the older of its
 * files' mtimes (the body is written once, at arrival), else now.
 */
static time_t
files_time(const struct qmgr *qm, const char *id, time_t now)
{
	static const char *const dirs[] = { "msg", "data", "env" };
	time_t t = now;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *path = xasprintf("%s/%s/%s", queue_dir(qm->q), dirs[i], id);
		struct stat st;

		if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime < t)
			t = st.st_mtime;
		free(path);
	}
	return t;
}

/* Record why in the pending recipients; false when there were none. */
static bool
strand_record(const struct qmgr_conf *c, struct envelope *env, const char *why,
    time_t now, time_t *next)
{
	bool any = false;

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct envelope_rcpt *er = &env->rcpt[i];
		bool x;

		if (er->state != RCPT_PENDING)
			continue;
		er->attempts++;
		er->last_try = now;
		er->next_try = sched_next_try(now, er->attempts, c->retry_min_ms,
		    c->retry_max_ms, env->arrival, c->lifetime_ms, &x);
		qmgr_set_text(&er->last_reply, why);
		qmgr_set_text(&er->status, "4.3.0");
		qmgr_set_text(&er->remote_mta, NULL);
		if (!any || er->next_try < *next)
			*next = er->next_try;
		any = true;
	}
	return any;
}

/*
 * The message cannot be opened, locked or read for the reason why: log
 * it, record it (in the envelope when it can be read and written, else
 * in the note), and schedule the next try with backoff; past
 * queue_lifetime, move the message into corrupt/.  env: the envelope
 * when it was read, else NULL (then it is read here, without the lock:
 * only a runner with other rights than ours could hold the lock at that
 * moment and update the envelope too, and root runs work as the spool's
 * owner, so in a sound set-up there is none).  None of the message's
 * groups may be in flight.
 */
void
qmgr_strand(struct qmgr *qm, struct sched_msg *sm, struct envelope *env,
    const char *why, bool force)
{
	const struct qmgr_conf *c = &qm->c;
	struct qnote *n = qmgr_note(sm);
	struct envelope own;
	int64_t now_ms = qmgr_wall_ms();
	time_t now = (time_t)(now_ms / 1000), arrival, next, due;
	bool expired = false, recorded = false, gone = false;
	int uerr = 0;

	envelope_init(&own);
	if (env == NULL) {
		if (queue_env_load(qm->q, sm->id, &own) == 0) {
			env = &own;
			/* Indexed unread: keep to the backoff it records. */
			if (!force && sched_env_next_due(env, &due) &&
			    due > now) {
				if (qm->opts.daemon)
					qmgr_index_set(qm, sm, env, now_ms);
				else
					qmgr_index_forget(qm, sm);
				envelope_free(&own);
				return;
			}
		} else if (errno == ENOENT)
			gone = true;	/* removed meanwhile */
		else if (errno == EBADMSG) {
			queue_msg_quarantine(qm->q, sm->id,
			    "envelope cannot be parsed");
			gone = true;
		}
	}
	if (gone) {
		qmgr_index_forget(qm, sm);
		return;
	}
	if (n->strand_fails < UINT_MAX)
		n->strand_fails++;
	qmgr_set_text(&n->strand_why, why);
	if (env != NULL)
		arrival = env->arrival;
	else {
		if (n->strand_since == 0)
			n->strand_since = files_time(qm, sm->id, now);
		arrival = n->strand_since;
	}
	next = sched_next_try(now, n->strand_fails, c->retry_min_ms,
	    c->retry_max_ms, arrival, c->lifetime_ms, &expired);

	/* (None pending: finished, but it cannot be removed either.) */
	if (!expired && env != NULL && strand_record(c, env, why, now, &next)) {
		if (queue_env_update(qm->q, env) == 0)
			recorded = true;
		else if (errno == ENOENT)
			gone = true;
		else
			uerr = errno;
	}
	if (expired) {
		char *qwhy = xasprintf("%s, for longer than queue_lifetime "
		    "(%u failure%s in a row)", why, n->strand_fails,
		    n->strand_fails == 1 ? "" : "s");

		/* queue_msg_quarantine logs the move, or why it failed. */
		if (queue_msg_quarantine(qm->q, sm->id, qwhy) == 0 ||
		    errno == ENOENT)
			gone = true;
		else
			next = now + sched_ms_to_s(sched_backoff(n->strand_fails,
			    c->retry_min_ms, c->retry_max_ms));
		free(qwhy);
	}
	if (!gone) {
		char when[64];

		if (qm->opts.daemon || recorded)
			snprintf(when, sizeof(when), "in %llds",
			    (long long)(next - now));
		else
			snprintf(when, sizeof(when), "at the next queue run");
		log_warnx("%s: %s; next try %s (failure %u in a row%s%s)",
		    sm->id, why, when, n->strand_fails,
		    uerr != 0 ? "; not recorded in the envelope: " : "",
		    uerr != 0 ? strerror(uerr) : "");
	}
	if (gone || !qm->opts.daemon)
		qmgr_index_forget(qm, sm);	/* one-shot: tried once */
	else
		sched_msg_delay(qm->sched, sm, (int64_t)next * 1000);
	envelope_free(&own);
}

/* "what: the text of errno" (allocated). */
char *
qmgr_why_errno(const char *what, int err)
{
	return xasprintf("%s: %s", what, strerror(err));
}

/*
 * A message with nothing pending, finished before a crash could remove
 * it: remove it now, under its lock.
 */
static void
remove_finished(struct qmgr *qm, const char *id)
{
	int lockfd;

	if (queue_msg_lock(qm->q, id, &lockfd) == -1)
		return;
	if (queue_msg_remove_later(qm->q, id) == 0) {
		log_info("%s: removed", id);
		qmgr_kick_flush(qm);
	}
	queue_msg_unlock(lockfd);
}

/*
 * SCHED_LOAD: read the envelope of a message only its id is known of,
 * without the lock (the recipients are taken again under it).
 */
void
qmgr_index_load(struct qmgr *qm, struct sched_msg *sm, bool force, int64_t now)
{
	struct envelope env;
	time_t due;

	force = force || qm->opts.force || qm->opts.only_id != NULL;
	envelope_init(&env);
	if (queue_env_load(qm->q, sm->id, &env) == 0) {
		if (!sched_env_next_due(&env, &due)) {
			remove_finished(qm, sm->id);
			qmgr_index_forget(qm, sm);
		} else
			qmgr_index_set(qm, sm, &env, now);
		envelope_free(&env);
		return;
	}
	if (errno == ENOENT)
		qmgr_index_forget(qm, sm);
	else if (errno == EBADMSG) {
		queue_msg_quarantine(qm->q, sm->id, "envelope cannot be parsed");
		qmgr_index_forget(qm, sm);
	} else {
		char *why = qmgr_why_errno("cannot read the envelope", errno);

		qmgr_strand(qm, sm, NULL, why, force);
		free(why);
	}
}

/*
 * Destination holds in the spool (daemon mode), one write at a time.
 */

struct holds_job {
	struct qmgr		*qm;
	struct queue_hold	*v;
	size_t			 n;
	int			 rc;
	int			 err;
};

static void
holds_work(void *arg)
{
	struct holds_job *j = arg;

	j->rc = queue_holds_save(j->qm->q, j->v, j->n);
	j->err = errno;
}

static void
holds_done(void *arg)
{
	struct holds_job *j = arg;
	struct qmgr *qm = j->qm;

	if (j->rc == -1 && !qm->freeing) {
		errno = j->err;
		log_warn("%s: cannot save the destination holds",
		    queue_dir(qm->q));
	}
	for (size_t i = 0; i < j->n; i++)
		free(j->v[i].dest);
	free(j->v);
	free(j);
	if (qm->freeing)
		return;
	qm->holds_writing = false;
	if (qm->holds_dirty)
		qmgr_holds_save(qm);
}

void
qmgr_holds_save(struct qmgr *qm)
{
	struct holds_job *j;
	const struct sched_dest *it = NULL;
	const char *name;
	int64_t until, now, stale;
	unsigned failures;
	size_t cap = 0;

	if (!qm->opts.daemon)
		return;
	if (qm->holds_writing) {
		qm->holds_dirty = true;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->qm = qm;
	now = qmgr_wall_ms();
	stale = qm->c.retry_max_ms;
	while ((it = sched_hold_next(qm->sched, it, &name, &until,
	    &failures)) != NULL) {
		/* A hold over for longer than retry_max is not worth keeping. */
		if (until < now - stale)
			continue;
		if (j->n == cap) {
			cap = cap > 0 ? 2 * cap : 16;
			j->v = xreallocarray(j->v, cap, sizeof(*j->v));
		}
		j->v[j->n].dest = xstrdup(name);
		j->v[j->n].until = until;
		j->v[j->n].failures = failures;
		j->n++;
	}
	qm->holds_dirty = false;
	qm->holds_writing = true;
	workq_push(qm->wq, holds_work, holds_done, j);
}

/*
 * At start: the holds of the last run, each as it was, but never longer
 * than the backoff its failures give from now (a clock that was ahead,
 * or a damaged file, must not hold a destination for ever).
 */
static void
holds_load(struct qmgr *qm)
{
	struct queue_hold *v = NULL;
	size_t n = 0;
	int64_t now = qmgr_wall_ms();

	if (queue_holds_load(qm->q, &v, &n) == -1) {
		log_warn("%s: cannot read the destination holds",
		    queue_dir(qm->q));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t max = now + sched_backoff(v[i].failures,
		    qm->c.retry_min_ms, qm->c.retry_max_ms);

		sched_hold_set(qm->sched, v[i].dest,
		    v[i].until > max ? max : v[i].until, v[i].failures);
		free(v[i].dest);
	}
	free(v);
	if (n > 0)
		log_info("%zu destination%s held back as the last run left "
		    "them", n, n == 1 ? "" : "s");
}

struct scan_arg {
	struct qmgr	*qm;
	int64_t		 now;
	struct strlist	 seen;	/* read by the scan but not indexed */
};

static int
scan_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct scan_arg *sa = arg;
	struct qmgr *qm = sa->qm;
	bool force = qm->opts.force || qm->opts.only_id != NULL;
	struct sched_msg *sm;
	time_t due;

	(void)q;
	if (qm->opts.only_id != NULL && strcmp(env->id, qm->opts.only_id) != 0)
		return 0;
	if (sched_msg_find(qm->sched, env->id) != NULL)
		return 0;
	sm = sched_msg_add(qm->sched, env->id, sa->now, force);
	if (!sched_env_next_due(env, &due))
		return 0;	/* nothing pending: index_load removes it */
	qmgr_note_submitter(sm, env);
	if (sched_msg_set(qm->sched, sm, env, sa->now) == 0 &&
	    !kept_held(qm, env)) {
		/* One-shot: only what is due now. */
		sched_msg_remove(qm->sched, sm);
		strlist_add(&sa->seen, env->id);
	}
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The scan logs an envelope it cannot read and goes on: index every
 * message in msg/ and env/ that the scan did not hand over, due now, so
 * that index_load finds it stranded (or, if it was only just committed,
 * delivers it).
 */
static void
index_unread(struct qmgr *qm, struct strlist *seen, int64_t now)
{
	static const char *const dirs[] = { "msg", "env" };

	if (seen->n > 1)
		qsort(seen->v, seen->n, sizeof(seen->v[0]), cmp_id);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char *path = xasprintf("%s/%s", queue_dir(qm->q), dirs[i]);
		struct dirent *de;
		DIR *d = NULL;
		int fd;

		if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC)) == -1 || (d = fdopendir(fd)) == NULL) {
			/* A spool of the older layout may have no msg/. */
			if (errno != ENOENT || i == 1)
				log_warn("%s: cannot list", path);
			if (fd != -1)
				close(fd);
			free(path);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			const char *id = de->d_name;

			if (!queue_id_valid(id) ||
			    sched_msg_find(qm->sched, id) != NULL ||
			    (qm->opts.only_id != NULL &&
			    strcmp(id, qm->opts.only_id) != 0) ||
			    (seen->n > 0 && bsearch(&id, seen->v, seen->n,
			    sizeof(seen->v[0]), cmp_id) != NULL))
				continue;
			sched_msg_add(qm->sched, id, now, false);
		}
		closedir(d);
		free(path);
	}
}

/*
 * One slice of the scan (max envelopes); at the end, the unread ones.
 * Returns 1 while there is more, 0 at the end, -1 with errno.
 */
static int
scan_slice(struct qmgr *qm, size_t max)
{
	struct scan_arg sa = { qm, qmgr_wall_ms(), { NULL, 0, 0 } };
	int rc, saved;

	rc = queue_scan_step(qm->scan, max, scan_one, &sa);
	saved = errno;
	if (rc == 0)
		index_unread(qm, &sa.seen, sa.now);
	if (rc != 1) {
		queue_scan_end(qm->scan);
		qm->scan = NULL;
	}
	strlist_free(&sa.seen);
	qmgr_kick(qm, 0);
	errno = saved;
	return rc;
}

void
qmgr_on_scan(void *arg)
{
	struct qmgr *qm = arg;

	if (scan_slice(qm, QMGR_SCAN_SLICE) == 1)
		ev_timer_add(qm->loop, &qm->scan_next, 0);
}

int
qmgr_load(struct qmgr *qm)
{
	int rc;

	if (qm->opts.daemon)
		holds_load(qm);
	if (queue_scan_begin(qm->q, &qm->scan) == -1)
		return -1;
	/* One-shot: all at once (the caller counts what is due). */
	rc = scan_slice(qm, qm->opts.daemon ? QMGR_SCAN_SLICE : SIZE_MAX);
	if (rc == 1)
		ev_timer_add(qm->loop, &qm->scan_next, 0);
	return rc == -1 ? -1 : 0;
}
