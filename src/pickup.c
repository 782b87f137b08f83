/*
 * pickup: drop/ID -> the queue.  See pickup.h.
 *
 * The drop file was written by mxrelay on behalf of a user who cannot
 * write to the spool.  Nothing in it is taken on trust: the submitter is
 * the file's owner, the envelope is decoded and its addresses checked
 * again, the body must be CRLF text within max_message_size, and the
 * message keeps its queue id, so that a pickup cut short after its commit
 * only removes the drop file the next time.
 */
#include "config.h"

#include <sys/types.h>

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dkim_keys.h"
#include "log.h"
#include "message.h"
#include "pickup.h"
#include "spool.h"
#include "util.h"

/* What a submitter may add to a message after its size check. */
#define HEADER_SLACK	(1024 * 1024)

/* Why the envelope a drop file carries is not acceptable, or NULL. */
static const char *
check_env(const struct envelope *env, uint64_t max_size)
{
	char err[256];
	/* UTF-8 local parts come only with the SMTPUTF8 flag (RFC 6531). */
	int (*check)(const char *, bool, char *, size_t) =
	    (env->flags & ENVELOPE_F_SMTPUTF8) ? msg_addr_check_utf8 :
	    msg_addr_check;

	if (env->sender == NULL ||
	    (env->sender[0] != '\0' &&
	    check(env->sender, false, err, sizeof(err)) == -1))
		return "bad sender address";
	if (env->nrcpt == 0)
		return "no recipient";
	if (env->nrcpt > 100000)
		return "too many recipients";
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		if (check(r->addr, false, err, sizeof(err)) == -1)
			return "bad recipient address";
		if (r->state != RCPT_PENDING || r->attempts != 0 ||
		    r->last_try != 0 || r->next_try != 0 ||
		    r->last_reply != NULL || r->status != NULL ||
		    r->remote_mta != NULL)
			return "recipient state set by the submitter";
	}
	/*
	 * The submitter checked max_message_size and told its caller yes; it
	 * may add trace and missing header fields after that (-bs counts the
	 * client's bytes, as RFC 1870 does).  Only what no submitter can
	 * have written is refused here.
	 */
	if (max_size != 0 && env->size > max_size + HEADER_SLACK)
		return "larger than max_message_size";
	return NULL;
}

/*
 * Copy the body into qn, checking that it is CRLF text: every LF comes
 * after a CR and every CR before an LF.  0, -1 (I/O, errno), or -2 with
 * *why.
 */
static int
copy_body(const struct queue_drop *d, struct queue_new *qn, const char **why)
{
	char buf[65536];
	uint64_t left = d->body_len;
	off_t off = (off_t)d->body_off;
	bool cr = false;

	while (left > 0) {
		size_t want = left < sizeof(buf) ? (size_t)left : sizeof(buf);
		ssize_t r = pread(d->fd, buf, want, off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (cr != (buf[i] == '\n')) {
				*why = "body is not CRLF text";
				return -2;
			}
			cr = buf[i] == '\r';
		}
		if (queue_new_write(qn, buf, (size_t)r) == -1)
			return -1;
		left -= (uint64_t)r;
		off += r;
	}
	if (cr) {
		*why = "body is not CRLF text";
		return -2;
	}
	return 0;
}

/*
 * The queued message with the drop file's id is this drop file, taken in
 * by an earlier pickup that stopped before removing it: same submitter,
 * size, arrival and recipients.
 */
static bool
already_in(struct queue *q, const char *name, const struct queue_drop *d)
{
	struct envelope cur;
	bool same;

	if (queue_env_load(q, name, &cur) == -1)
		return false;
	same = cur.submit_user != NULL && cur.submit_uid == (uint32_t)d->uid &&
	    cur.size == d->body_len && cur.arrival == d->env.arrival &&
	    cur.nrcpt == d->env.nrcpt && strcmp(cur.sender, d->env.sender) == 0;
	envelope_free(&cur);
	return same;
}

/*
 * The signature of the copied message into env->dkim (none when it is
 * not signed).  -1: a signing error, logged.
 */
static int
pickup_sign(struct dkim_signer *sg, const char *name, struct envelope *env)
{
	if (sg == NULL)
		return 0;
	if (dkim_signer_end(sg, &env->dkim) == -1) {
		log_warnx("%s: DKIM signing failed: %s (drop/%s left there)",
		    name, dkim_signer_error(sg), name);
		return -1;
	}
	if (env->dkim == NULL)
		log_debug("%s: not DKIM-signed: %s", name,
		    dkim_signer_why(sg));
	return 0;
}

static bool
pickup_one(struct queue *q, uint64_t max_size, struct dkim_keys *keys,
    const char *name, pickup_cb cb, void *arg)
{
	struct dkim_signer *sg = NULL;
	struct queue_drop d;
	struct queue_new *qn = NULL;
	struct envelope env;
	struct passwd *pw;
	const char *why = NULL;
	char esc[512];
	time_t now = time(NULL);
	int r;

	envelope_init(&env);
	if ((r = queue_drop_open(q, name, &d, &why)) == -2) {
		queue_drop_quarantine(q, name, why);
		return false;
	}
	if (r == -1) {
		if (errno != EAGAIN && errno != ENOENT)
			log_warn("%s: cannot read drop/%s", name, name);
		return false;
	}
	if ((why = check_env(&d.env, max_size)) != NULL) {
		queue_drop_close(&d);
		queue_drop_quarantine(q, name, why);
		return false;
	}
	if (queue_new_begin_id(q, name, &qn) == -1) {
		int e = errno;

		if (e == EEXIST && already_in(q, name, &d)) {
			/* Taken in before, and the drop file outlived it. */
			if (queue_drop_remove(q, name) == -1)
				log_warn("%s: removing drop/%s", name, name);
			queue_drop_close(&d);
			return false;
		}
		/* The id is someone else's (a clock step): a new one. */
		errno = e;
		if (e != EEXIST || queue_new_begin(q, &qn) == -1) {
			log_warn("%s: cannot take drop/%s into the queue", name,
			    name);
			queue_drop_close(&d);
			return false;
		}
	}
	/* The signer sees the message as it is stored (t= is now). */
	if ((sg = dkim_signer_new(keys, now)) != NULL)
		queue_new_set_tap(qn, dkim_signer_feed, sg);
	if ((r = copy_body(&d, qn, &why)) != 0) {
		dkim_signer_free(sg);
		queue_new_abort(qn);
		queue_drop_close(&d);
		if (r == -2)
			queue_drop_quarantine(q, name, why);
		else
			log_warn("%s: cannot copy drop/%s", name, name);
		return false;
	}

	/* The envelope: the addresses it carried, the submitter we saw. */
	env.sender = xstrdup(d.env.sender);
	for (size_t i = 0; i < d.env.nrcpt; i++)
		envelope_add_rcpt(&env, d.env.rcpt[i].addr, d.env.rcpt[i].orig);
	env.arrival = d.env.arrival > 0 && d.env.arrival <= now ?
	    d.env.arrival : now;
	/* RFC 6531: what delivery needs; the other flags are not the
	   submitter's to set. */
	env.flags = d.env.flags & ENVELOPE_F_SMTPUTF8;
	env.submit_uid = (uint32_t)d.uid;
	if ((pw = getpwuid(d.uid)) != NULL)
		env.submit_user = xstrdup(pw->pw_name);
	else
		env.submit_user = xasprintf("#%lu", (unsigned long)d.uid);

	/* The drop file's envelope never carries a signature: ours only. */
	r = pickup_sign(sg, name, &env);
	dkim_signer_free(sg);
	if (r == -1) {
		queue_new_abort(qn);
		queue_drop_close(&d);
		envelope_free(&env);
		return false;
	}
	/* The drop file's lock is held until the file is gone. */
	if (queue_new_commit(qn, &env) == -1) {
		log_warn("%s: cannot take drop/%s into the queue (left there)",
		    name, name);
		queue_drop_close(&d);
		envelope_free(&env);
		return false;
	}
	if (queue_drop_remove(q, name) == -1)
		log_warn("%s: removing drop/%s", name, name);
	queue_drop_close(&d);
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu, uid=%lu, user=%s "
	    "(queued from drop/)", env.id,
	    util_escape(esc, sizeof(esc), env.sender),
	    (unsigned long long)env.size, env.nrcpt,
	    (unsigned long)env.submit_uid, env.submit_user);
	if (cb != NULL)
		cb(arg, &env);
	envelope_free(&env);
	return true;
}

size_t
pickup_run(struct queue *q, uint64_t max_size, const char *name,
    pickup_cb cb, void *arg)
{
	return pickup_run_signing(q, max_size, NULL, name, cb, arg);
}

size_t
pickup_run_signing(struct queue *q, uint64_t max_size, struct dkim_keys *keys,
    const char *name, pickup_cb cb, void *arg)
{
	struct strlist names = { NULL, 0, 0 };
	size_t n = 0;

	if (name != NULL)
		return pickup_one(q, max_size, keys, name, cb, arg) ? 1 : 0;
	if (queue_drop_list(q, &names) == -1) {
		log_warn("%s/drop: cannot list", queue_dir(q));
		return 0;
	}
	for (size_t i = 0; i < names.n; i++)
		if (pickup_one(q, max_size, keys, names.v[i], cb, arg))
			n++;
	strlist_free(&names);
	return n;
}
