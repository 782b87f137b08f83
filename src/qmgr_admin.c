/*
 * qmgr_admin: queue administration in the daemon (qadmin.h), with the
 * index kept in step with the envelopes.  See qmgr.h, qmgr_admin().
 *
 * A message that is not open here is changed in the spool under its
 * lock (qadmin_apply) and then indexed anew from the envelope written:
 * held, it keeps its place in the index without groups (so that mailq
 * and status still count it, and nothing is attempted); released or
 * requeued, its groups are due at once, past destination holds too (as
 * a flush); deleted, it is forgotten, and its DSN indexed.
 *
 * A message open here (its groups being delivered) is changed in memory
 * and written by the queue manager's own writes (qmgr_msg_changed), so
 * that the write of a delivery result cannot undo the change: a hold
 * takes effect when the attempts in flight are back (no group of it is
 * handed out meanwhile), a release or requeue makes the waiting groups
 * due now (flushed).  Delete refuses it (busy: try again), so that a delivery
 * result never races the removal.  So does every action on a message
 * still being opened.
 *
 * The work is done on the loop, envelope writes included (one fsync per
 * message changed): queue administration is rare and done by a person.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "qadmin.h"
#include "qmgr.h"
#include "qmgr_int.h"
#include "scheduler.h"
#include "spool.h"
#include "util.h"

/* The message open here, or NULL. */
static struct qmsg *
open_msg(const struct qmgr *qm, const char *id)
{
	struct sched_msg *sm = sched_msg_find(qm->sched, id);
	struct qnote *n = sm != NULL ? sm->udata : NULL;

	return n != NULL ? n->open : NULL;
}

static enum qadmin_result
admin_open(struct qmgr *qm, struct qmsg *m, const struct qadmin_req *req)
{
	if (!m->ready || req->action == QADMIN_DELETE)
		return QADMIN_BUSY;
	if (!qadmin_selects(&m->env, NULL))
		return QADMIN_GONE;
	if (!qadmin_selects(&m->env, req->domain) ||
	    !qadmin_change(&m->env, req->action))
		return QADMIN_NOOP;
	qadmin_log(m->id, req->action, NULL, false);
	qmgr_msg_changed(m);
	/* Closing: qmsg_settle() indexes it from the envelope. */
	if (!m->closing) {
		sched_msg_set(qm->sched, m->sm, &m->env, qmgr_wall_ms());
		if (req->action != QADMIN_HOLD)
			sched_flush(qm->sched, m->sm);
		qmgr_kick(qm, 0);
	}
	return QADMIN_DONE;
}

static enum qadmin_result
admin_one(struct qmgr *qm, const char *id, const struct qadmin_req *req)
{
	struct qmsg *m = open_msg(qm, id);
	struct sched_msg *sm;
	struct envelope env;
	char newid[QUEUE_ID_LEN + 1];
	enum qadmin_result r;
	int64_t now;

	if (m != NULL)
		return admin_open(qm, m, req);
	if ((r = qadmin_apply(qm->q, id, req, &env, newid)) != QADMIN_DONE)
		return r;
	now = qmgr_wall_ms();
	sm = sched_msg_find(qm->sched, id);
	if (req->action == QADMIN_DELETE) {
		if (sm != NULL)
			qmgr_index_forget(qm, sm);
		if (newid[0] != '\0')
			qmgr_add(qm, newid);
	} else {
		if (sm == NULL)
			sm = sched_msg_add(qm->sched, id, now, false);
		qmgr_index_set(qm, sm, &env, now);
		if (req->action != QADMIN_HOLD &&
		    (sm = sched_msg_find(qm->sched, id)) != NULL)
			sched_flush(qm->sched, sm);
		qmgr_kick(qm, 0);
	}
	envelope_free(&env);
	return r;
}

struct admin_pick {
	struct qmgr		*qm;
	const struct qadmin_req	*req;
	struct strlist		 ids;
};

/*
 * The messages to work on.  One that is not open here and is already as
 * the action would make it is left out (read without its lock: the
 * action reads it again under the lock).
 */
static int
pick_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct admin_pick *p = arg;

	(void)q;
	if (!qadmin_selects(env, p->req->domain) ||
	    (open_msg(p->qm, env->id) == NULL && !qadmin_wanted(env, p->req)))
		return 0;
	strlist_add(&p->ids, env->id);
	return 0;
}

int
qmgr_admin(struct qmgr *qm, const char *id, const struct qadmin_req *req,
    struct qadmin_count *c)
{
	struct admin_pick p = { qm, req, { NULL, 0, 0 } };

	memset(c, 0, sizeof(*c));
	if (id != NULL) {
		qadmin_count_add(c, admin_one(qm, id, req));
		return 0;
	}
	if (queue_scan(qm->q, pick_one, &p) == -1) {
		strlist_free(&p.ids);
		return -1;
	}
	for (size_t i = 0; i < p.ids.n; i++)
		qadmin_count_add(c, admin_one(qm, p.ids.v[i], req));
	strlist_free(&p.ids);
	return 0;
}
