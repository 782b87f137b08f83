/*
 * qadmin: hold, release, requeue and delete one message in the spool,
 * under its lock (queue_msg_lock), the way a queue runner works on it.
 * See qadmin.h.
 *
 * A held message keeps its recipients as they are (attempts, replies,
 * next_try); only the flag ENVELOPE_F_HOLD says that no queue runner may
 * attempt it.  Release and requeue make every pending recipient due at
 * once (next_try 0).  Delete with a DSN reports every pending recipient
 * as failed with the reason "deleted by the administrator" (status
 * 5.0.0: RFC 3463 has no code of its own for it) and removes the message
 * only once the DSN is in the spool, so that the notification cannot be
 * lost.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "log.h"
#include "qadmin.h"
#include "spool.h"
#include "util.h"

#define QADMIN_REASON	"deleted by the administrator"
#define QADMIN_STATUS	"5.0.0"

static const char *const action_words[] = {
	[QADMIN_HOLD] = "hold",
	[QADMIN_RELEASE] = "release",
	[QADMIN_REQUEUE] = "requeue",
	[QADMIN_DELETE] = "delete",
};

static const char *const done_words[] = {
	[QADMIN_HOLD] = "held",
	[QADMIN_RELEASE] = "released",
	[QADMIN_REQUEUE] = "requeued",
	[QADMIN_DELETE] = "deleted",
};

const char *
qadmin_action_to_text(enum qadmin_action a)
{
	return action_words[a];
}

const char *
qadmin_done_text(enum qadmin_action a)
{
	return done_words[a];
}

int
qadmin_action_from_text(const char *s, enum qadmin_action *a, bool *bounce)
{
	*bounce = false;
	if (strcmp(s, "bounce") == 0) {
		*a = QADMIN_DELETE;
		*bounce = true;
		return 0;
	}
	for (size_t i = 0; i < sizeof(action_words) / sizeof(action_words[0]);
	    i++)
		if (strcmp(s, action_words[i]) == 0) {
			*a = (enum qadmin_action)i;
			return 0;
		}
	return -1;
}

bool
qadmin_domain_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > QADMIN_DOMAIN_MAX)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (!isalnum(*p) && *p != '-' && *p != '_' && *p != '.' &&
		    *p < 0x80)
			return false;
	return true;
}

bool
qadmin_selects(const struct envelope *env, const char *domain)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		const char *at;

		if (r->state != RCPT_PENDING)
			continue;
		if (domain == NULL)
			return true;
		if ((at = strrchr(r->addr, '@')) != NULL &&
		    strcasecmp(at + 1, domain) == 0)
			return true;
	}
	return false;
}

bool
qadmin_wanted(const struct envelope *env, const struct qadmin_req *req)
{
	bool held = (env->flags & ENVELOPE_F_HOLD) != 0;

	if (!qadmin_selects(env, req->domain))
		return false;
	switch (req->action) {
	case QADMIN_HOLD:
	case QADMIN_REQUEUE:
		return !held;
	case QADMIN_RELEASE:
		return held;
	case QADMIN_DELETE:
		break;
	}
	return true;
}

bool
qadmin_change(struct envelope *env, enum qadmin_action a)
{
	bool changed = false;

	switch (a) {
	case QADMIN_HOLD:
		if (env->flags & ENVELOPE_F_HOLD)
			return false;
		env->flags |= ENVELOPE_F_HOLD;
		return true;
	case QADMIN_RELEASE:
		if (!(env->flags & ENVELOPE_F_HOLD))
			return false;
		env->flags &= ~ENVELOPE_F_HOLD;
		changed = true;
		break;
	case QADMIN_REQUEUE:
		if (env->flags & ENVELOPE_F_HOLD)
			return false;
		break;
	case QADMIN_DELETE:
		return false;
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct envelope_rcpt *r = &env->rcpt[i];

		if (r->state == RCPT_PENDING && r->next_try != 0) {
			r->next_try = 0;
			changed = true;
		}
	}
	/* Requeue of a message already due: done all the same. */
	return changed || a == QADMIN_REQUEUE;
}

void
qadmin_log(const char *id, enum qadmin_action a, const char *newid,
    bool bounce)
{
	if (a != QADMIN_DELETE || !bounce)
		log_info("%s: %s by the administrator", id, done_words[a]);
	else if (newid != NULL && newid[0] != '\0')
		log_info("%s: deleted by the administrator, sender "
		    "non-delivery notification: %s", id, newid);
	else
		log_info("%s: deleted by the administrator, no notification: "
		    "null sender", id);
}

/* Delete with a DSN: every pending recipient reported as failed. */
static int
delete_bounce(struct queue *q, const char *id, struct envelope *env,
    const char *hostname, char *newid)
{
	time_t now = time(NULL);
	bool *report = xcalloc(env->nrcpt > 0 ? env->nrcpt : 1,
	    sizeof(*report));
	int fd, rc;

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct envelope_rcpt *r = &env->rcpt[i];

		if (r->state != RCPT_PENDING)
			continue;
		report[i] = true;
		free(r->last_reply);
		r->last_reply = xstrdup(QADMIN_REASON);
		free(r->status);
		r->status = xstrdup(QADMIN_STATUS);
		free(r->remote_mta);
		r->remote_mta = NULL;
		r->last_try = now;
	}
	/* Without the body the DSN goes without the original header. */
	fd = queue_body_open(q, id);
	rc = bounce_queue(q, env, report, fd, hostname, now, newid);
	if (rc == -1)
		log_warn("%s: cannot queue the non-delivery notification; "
		    "not deleted", id);
	if (fd != -1)
		close(fd);
	free(report);
	return rc;
}

enum qadmin_result
qadmin_apply(struct queue *q, const char *id, const struct qadmin_req *req,
    struct envelope *out, char *newid)
{
	struct envelope env;
	enum qadmin_result res = QADMIN_DONE;
	int lockfd = -1;

	newid[0] = '\0';
	envelope_init(&env);
	if (queue_msg_lock(q, id, &lockfd) == -1) {
		if (errno == EWOULDBLOCK)
			return QADMIN_BUSY;
		if (errno == ENOENT)
			return QADMIN_GONE;
		log_warn("%s: cannot lock", id);
		return QADMIN_ERROR;
	}
	if (queue_env_load(q, id, &env) == -1) {
		if (errno == ENOENT)
			res = QADMIN_GONE;
		else {
			log_warn("%s: cannot read the envelope", id);
			res = QADMIN_ERROR;
		}
		goto done;
	}
	if (!qadmin_selects(&env, NULL)) {
		res = QADMIN_GONE;	/* finished: the queue manager removes it */
		goto done;
	}
	if (!qadmin_selects(&env, req->domain)) {
		res = QADMIN_NOOP;
		goto done;
	}
	if (req->action == QADMIN_DELETE) {
		if (req->bounce && delete_bounce(q, id, &env, req->hostname,
		    newid) == -1) {
			res = QADMIN_ERROR;
			goto done;
		}
		if (queue_msg_remove(q, id) == -1) {
			log_warn("%s: cannot remove", id);
			res = QADMIN_ERROR;
			goto done;
		}
	} else if (!qadmin_change(&env, req->action)) {
		res = QADMIN_NOOP;
		goto done;
	} else if (queue_env_update(q, &env) == -1) {
		log_warn("%s: cannot update the envelope", id);
		res = QADMIN_ERROR;
		goto done;
	}
	qadmin_log(id, req->action, newid, req->bounce);
done:
	queue_msg_unlock(lockfd);
	if (out != NULL && res == QADMIN_DONE)
		*out = env;
	else
		envelope_free(&env);
	return res;
}

void
qadmin_count_add(struct qadmin_count *c, enum qadmin_result r)
{
	switch (r) {
	case QADMIN_DONE:
		c->done++;
		break;
	case QADMIN_NOOP:
		c->noop++;
		break;
	case QADMIN_GONE:
		c->gone++;
		break;
	case QADMIN_BUSY:
		c->busy++;
		break;
	case QADMIN_ERROR:
		c->failed++;
		break;
	}
}
