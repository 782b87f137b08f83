/*
 * qmgr: the queue manager.  See qmgr.h.
 *
 * Index: one struct qent per message (its id and due time, about 80
 * bytes), in a hash table by id and, while waiting, in a min-heap by
 * (due, id), so that the oldest due message goes first.  A message is
 * "busy" while it is loaded: locked (queue_msg_lock) from the moment it is
 * loaded until its envelope has been updated, so that a second runner
 * (mxrelay -q) skips it.
 *
 * One attempt: the due recipients are split by domain into parts for the
 * delivery engine; when the last part comes back the envelope is updated
 * once: delivered recipients are never tried again, deferred ones get
 * their next attempt by exponential backoff, permanent failures and
 * recipients past queue_lifetime are reported to the sender in one DSN
 * (never for the null sender) and marked bounced.  A message with no
 * pending recipient left is removed.
 *
 * Destination backoff (daemon mode): when a part comes back with
 * dest_down (no exchanger of the destination could be reached, or its DNS
 * failed temporarily), the destination is held back for
 * sched_backoff(failures) -- counted once per episode, not once per
 * message.  Its recipients are then not handed to the engine until the
 * hold ends (unless forced, or past queue_lifetime, so that they still
 * expire on time); the messages wait in the heap with no disk access.
 * When the delay is over, one message goes first as a probe while the
 * others wait (up to QMGR_PROBE_WAIT): if it reaches an exchanger, the
 * hold ends and the rest follow; if not, the next, longer hold starts.
 *
 * Stranded messages: one that cannot be opened, locked or read (a file
 * this user may not read, a body that is not a regular file, a read
 * error) is retried with the same backoff as a deferred delivery
 * (retry_min doubling up to retry_max), and each failure is logged with
 * the queue id and the reason.  When its envelope can be read and
 * written, the reason goes into it (last_reply and next_try of the
 * pending recipients) so that mailq shows it; otherwise the reason and
 * the backoff are kept in the index entry.  Past queue_lifetime (from
 * the envelope's arrival, or from the files' age when the envelope
 * cannot be read) it is moved into corrupt/ with a log line naming the
 * reason.  Envelopes the start-up scan could not read are indexed too
 * (load_unread), so that none sits unseen.  A message locked by someone
 * else (EWOULDBLOCK) is not stranded: it is looked at again shortly.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "delivery.h"
#include "log.h"
#include "qmgr.h"
#include "scheduler.h"
#include "spool.h"
#include "util.h"

/* Messages open at once: bounds memory and file descriptors. */
#define QMGR_WINDOW		1000
/* Descriptors kept for sessions, DNS and the spool itself. */
#define QMGR_FD_RESERVE		64
/*
 * A message locked by someone else is looked at again after 100 ms (a
 * submitter finishing its commit), then 1 s, then every 5 s (a queue
 * runner working on it).
 */
static const int64_t locked_retry_ms[] = { 100, 1000, 5000 };
/* While a probe is out, the other messages of its destination wait this long. */
#define QMGR_PROBE_WAIT		5
/* Removals are made durable in groups, at most this often (ms). */
#define QMGR_FLUSH_MS		50
/* The longest sleep between two looks at the heap (a clock may step). */
#define QMGR_MAX_SLEEP_MS	60000

struct qent {
	char		 id[QUEUE_ID_LEN + 1];
	int64_t		 due;		/* wall clock, ms */
	unsigned char	 lock_tries;
	size_t		 hidx;		/* 1 + heap index; 0 = not in the heap */
	bool		 busy;		/* loaded */
	bool		 force;		/* flushed: due or not, held or not */
	unsigned	 strand_fails;	/* failures in a row to open, lock, read */
	time_t		 strand_since;	/* age of an unreadable envelope's files */
	char		*strand_why;	/* the last such failure */
	bool		 has_submitter;	/* a local user queued it: */
	uint32_t	 submit_uid;	/* its uid (for qmgr_submitted_by) */
	struct qent	*hnext;		/* hash chain */
};

struct qmsg;

struct qpart {
	struct delivery_msg	 dm;
	struct qmsg		*m;
	char			*key;	/* destination hold key */
};

struct qmsg {
	struct qmgr		*qm;
	struct qent		*qe;
	struct envelope		 env;
	int			 lockfd;
	int			 body_fd;
	unsigned		 parts_left;
	struct qpart		*parts;
	size_t			 nparts;
	struct delivery_rcpt	**result;	/* per env rcpt, NULL = not tried */
};

struct hold {
	char		*key;		/* domain, or "" for the relayhost */
	time_t		 until;		/* no attempt before */
	time_t		 probe_until;	/* a probe is out: the others wait */
	unsigned	 failures;
};

struct qmgr {
	struct ev_loop		*loop;
	struct queue		*q;
	const struct conf	*conf;
	struct delivery_engine	*engine;
	struct qmgr_opts	 opts;
	struct runner_stats	*stats;
	bool			 stopped;

	struct qent		**buckets;
	size_t			 nbuckets;	/* a power of two */
	size_t			 nent;
	struct qent		**heap;
	size_t			 nheap, heapcap;

	unsigned		 in_flight;
	unsigned		 window;
	struct ev_timer		 tick;
	struct ev_timer		 flush;

	struct hold		*holds;
	size_t			 nholds;
};

static void	 msg_load(struct qmgr *, struct qent *);
static void	 msg_finish(struct qmsg *);
static void	 part_done(void *, struct delivery_msg *);
static void	 on_tick(void *);
static void	 on_flush(void *);
static void	 kick(struct qmgr *, uint64_t);
static void	 kick_flush(struct qmgr *);
static void	 set_text(char **, const char *);

/*
 * The index: hash table by id, heap by due time.
 */

static size_t
id_hash(const char *id)
{
	size_t h = 5381;

	while (*id)
		h = h * 33 + (unsigned char)*id++;
	return h;
}

static struct qent *
ent_find(const struct qmgr *qm, const char *id)
{
	struct qent *e;

	for (e = qm->buckets[id_hash(id) & (qm->nbuckets - 1)]; e; e = e->hnext)
		if (strcmp(e->id, id) == 0)
			return e;
	return NULL;
}

static void
hash_grow(struct qmgr *qm)
{
	size_t n = qm->nbuckets * 2;
	struct qent **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < qm->nbuckets; i++) {
		struct qent *e, *next;

		for (e = qm->buckets[i]; e != NULL; e = next) {
			next = e->hnext;
			e->hnext = b[id_hash(e->id) & (n - 1)];
			b[id_hash(e->id) & (n - 1)] = e;
		}
	}
	free(qm->buckets);
	qm->buckets = b;
	qm->nbuckets = n;
}

static struct qent *
ent_new(struct qmgr *qm, const char *id)
{
	struct qent *e = xcalloc(1, sizeof(*e));
	size_t b;

	util_strlcpy(e->id, id, sizeof(e->id));
	if (qm->nent >= qm->nbuckets)
		hash_grow(qm);
	b = id_hash(id) & (qm->nbuckets - 1);
	e->hnext = qm->buckets[b];
	qm->buckets[b] = e;
	qm->nent++;
	return e;
}

static bool
heap_less(const struct qent *a, const struct qent *b)
{
	if (a->force != b->force)
		return a->force;
	if (a->due != b->due)
		return a->due < b->due;
	return strcmp(a->id, b->id) < 0;
}

static void
heap_set(struct qmgr *qm, size_t i, struct qent *e)
{
	qm->heap[i] = e;
	e->hidx = i + 1;
}

static void
heap_up(struct qmgr *qm, size_t i)
{
	struct qent *e = qm->heap[i];

	while (i > 0 && heap_less(e, qm->heap[(i - 1) / 2])) {
		heap_set(qm, i, qm->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(qm, i, e);
}

static void
heap_down(struct qmgr *qm, size_t i)
{
	struct qent *e = qm->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= qm->nheap)
			break;
		if (c + 1 < qm->nheap && heap_less(qm->heap[c + 1], qm->heap[c]))
			c++;
		if (!heap_less(qm->heap[c], e))
			break;
		heap_set(qm, i, qm->heap[c]);
		i = c;
	}
	heap_set(qm, i, e);
}

static void
heap_push(struct qmgr *qm, struct qent *e)
{
	if (qm->nheap == qm->heapcap) {
		qm->heapcap = qm->heapcap ? qm->heapcap * 2 : 1024;
		qm->heap = xreallocarray(qm->heap, qm->heapcap, sizeof(*qm->heap));
	}
	qm->heap[qm->nheap++] = e;
	heap_up(qm, qm->nheap - 1);
}

static void
heap_remove(struct qmgr *qm, struct qent *e)
{
	size_t i = e->hidx - 1;
	struct qent *last;

	e->hidx = 0;
	last = qm->heap[--qm->nheap];
	if (i == qm->nheap)
		return;
	heap_set(qm, i, last);
	heap_up(qm, i);
	heap_down(qm, last->hidx - 1);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Change the due time (ms) of a waiting or idle entry and (re)place it. */
static void
ent_schedule_ms(struct qmgr *qm, struct qent *e, int64_t due)
{
	e->due = due;
	if (e->hidx != 0) {
		heap_up(qm, e->hidx - 1);
		heap_down(qm, e->hidx - 1);
	} else
		heap_push(qm, e);
}

static void
ent_schedule(struct qmgr *qm, struct qent *e, time_t due)
{
	ent_schedule_ms(qm, e, (int64_t)due * 1000);
}

static void
ent_delete(struct qmgr *qm, struct qent *e)
{
	struct qent **p = &qm->buckets[id_hash(e->id) & (qm->nbuckets - 1)];

	if (e->hidx != 0)
		heap_remove(qm, e);
	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	qm->nent--;
	free(e->strand_why);
	free(e);
}

/*
 * Destination holds.
 */

static const char *
rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* The recipient's domain in lower case (allocated). */
static char *
domain_lower(const char *addr)
{
	char *d = xstrdup(rcpt_domain(addr));

	for (char *p = d; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* What a recipient's destination is called in the holds. */
static char *
hold_key(const struct qmgr *qm, const char *addr)
{
	if (qm->conf->relayhost != NULL)
		return xstrdup("");
	return domain_lower(addr);
}

static struct hold *
hold_find(const struct qmgr *qm, const char *key)
{
	for (size_t i = 0; i < qm->nholds; i++)
		if (strcmp(qm->holds[i].key, key) == 0)
			return &qm->holds[i];
	return NULL;
}

static void
hold_end(struct qmgr *qm, const char *key)
{
	struct hold *h = hold_find(qm, key);

	if (h == NULL)
		return;
	if (h->until > 0)
		log_info("%s: destination reachable again",
		    *key ? key : "relayhost");
	free(h->key);
	*h = qm->holds[--qm->nholds];
}

static void
hold_start(struct qmgr *qm, const char *key, time_t now)
{
	struct hold *h = hold_find(qm, key);
	time_t delay;

	if (h == NULL) {
		qm->holds = xreallocarray(qm->holds, qm->nholds + 1,
		    sizeof(*qm->holds));
		h = &qm->holds[qm->nholds++];
		h->key = xstrdup(key);
		h->until = 0;
		h->failures = 0;
	}
	if (h->until > now)
		return;		/* the same episode: its parts come back one by one */
	h->probe_until = 0;
	h->failures++;
	delay = sched_backoff(h->failures, qm->conf->retry_min,
	    qm->conf->retry_max);
	h->until = now + delay;
	log_info("%s: destination unreachable, held back for %llds "
	    "(failure %u in a row)", *key ? key : "relayhost",
	    (long long)delay, h->failures);
}

/* When the destination may next be tried; 0: now. */
static time_t
hold_until(const struct qmgr *qm, const char *key, time_t now)
{
	const struct hold *h;

	if (!qm->opts.daemon || (h = hold_find(qm, key)) == NULL)
		return 0;
	if (h->until > now)
		return h->until;
	if (h->probe_until > now)
		return h->probe_until;
	return 0;
}

/*
 * May this message's recipients for key go now?  A hold whose delay is
 * over lets one message through as the probe; keys already let through
 * for this message (probes) go too.
 */
static bool
hold_pass(struct qmgr *qm, const char *key, time_t now,
    struct strlist *probes)
{
	struct hold *h;

	if (strlist_contains_nocase(probes, key))
		return true;
	if (hold_until(qm, key, now) != 0)
		return false;
	if (qm->opts.daemon && (h = hold_find(qm, key)) != NULL) {
		h->probe_until = now + QMGR_PROBE_WAIT;
		strlist_add(probes, key);
		log_info("%s: hold over, one message goes first as a probe",
		    *key ? key : "relayhost");
	}
	return true;
}

static bool
env_expired(const struct qmgr *qm, const struct envelope *env, time_t now)
{
	return now >= env->arrival + qm->conf->queue_lifetime;
}

/* When the message is next worth loading: retry times, then holds. */
static bool
env_due(const struct qmgr *qm, const struct envelope *env, time_t now,
    time_t *due)
{
	bool any = false;
	bool expired = env_expired(qm, env, now);
	time_t min = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		time_t t = r->next_try;

		if (r->state != RCPT_PENDING)
			continue;
		if (!expired) {
			char *k = hold_key(qm, r->addr);
			time_t h = hold_until(qm, k, now);

			free(k);
			if (h > t)
				t = h;
		}
		if (!any || t < min)
			min = t;
		any = true;
	}
	if (any)
		*due = min;
	return any;
}

/*
 * Loading and finishing one message.
 */

/* Whether the body has 8-bit bytes: 0, or -1 with errno if it cannot be read. */
static int
body_is_8bit(int fd, bool *eightbit)
{
	unsigned char buf[65536];
	off_t off = 0;
	ssize_t n;

	*eightbit = false;
	for (;;) {
		if ((n = pread(fd, buf, sizeof(buf), off)) == -1) {
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

/* The local user who queued the message, when its envelope says. */
static void
ent_note_submitter(struct qent *e, const struct envelope *env)
{
	if (env->submit_user != NULL) {
		e->has_submitter = true;
		e->submit_uid = env->submit_uid;
	}
}

static void
strand_clear(struct qent *e)
{
	e->strand_fails = 0;
	e->strand_since = 0;
	free(e->strand_why);
	e->strand_why = NULL;
}

/* Done with an entry after an attempt or a look: requeue or forget it. */
static void
ent_release(struct qmgr *qm, struct qent *e, const struct envelope *env,
    bool gone)
{
	time_t due;

	e->busy = false;
	if (gone || !qm->opts.daemon || env == NULL ||
	    !env_due(qm, env, time(NULL), &due)) {
		ent_delete(qm, e);
		return;
	}
	ent_schedule(qm, e, due);
}

static void
msg_skip(struct qmsg *m, bool gone)
{
	struct qmgr *qm = m->qm;

	if (m->body_fd != -1)
		close(m->body_fd);
	if (m->lockfd != -1)
		queue_msg_unlock(m->lockfd);
	ent_release(qm, m->qe, gone ? NULL : &m->env, gone);
	envelope_free(&m->env);
	free(m->result);
	free(m);
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
	static const char *const dirs[] = { "data", "env" };
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

/* How the envelope stands when a message is found stranded. */
enum strand_env {
	STRAND_ENV_LOADED,	/* in m->env */
	STRAND_ENV_TRY,		/* not read yet: try (the lock failed) */
	STRAND_ENV_UNREADABLE,	/* reading it failed */
};

/*
 * The message cannot be opened, locked or read for the reason why: log
 * it, record it (in the envelope when it can be read and written, else
 * in the entry), and schedule the next try with backoff; past
 * queue_lifetime, move the message into corrupt/.  Frees m.
 *
 * When the lock itself failed, the envelope is read and updated without
 * it.  Only a runner with other rights than ours could hold the lock at
 * that moment and update the envelope too; root runs work as the spool's
 * owner, so in a sound set-up there is none.
 */
static void
msg_strand(struct qmsg *m, enum strand_env es, const char *why, bool force)
{
	struct qmgr *qm = m->qm;
	struct qent *qe = m->qe;
	const struct conf *c = qm->conf;
	struct envelope *env = &m->env;
	/* The heap's clock: time() may lag it by a tick after a second turns. */
	time_t now = (time_t)(now_ms() / 1000), arrival, next;
	bool expired = false, recorded = false, gone = false;
	int uerr = 0;

	if (m->body_fd != -1) {
		close(m->body_fd);
		m->body_fd = -1;
	}
	if (es == STRAND_ENV_TRY) {
		es = STRAND_ENV_UNREADABLE;
		if (queue_env_load(qm->q, qe->id, env) == 0) {
			time_t due;

			es = STRAND_ENV_LOADED;
			/*
			 * Indexed without its envelope (the scan could not
			 * look at it): keep to the backoff it records.
			 */
			if (!force && sched_env_next_due(env, &due) &&
			    due > now) {
				if (m->lockfd != -1)
					queue_msg_unlock(m->lockfd);
				qe->busy = false;
				if (qm->opts.daemon)
					ent_schedule(qm, qe, due);
				else
					ent_delete(qm, qe);
				envelope_free(env);
				free(m->result);
				free(m);
				return;
			}
		} else if (errno == ENOENT)
			gone = true;	/* removed meanwhile */
		else if (errno == EBADMSG) {
			queue_msg_quarantine(qm->q, qe->id,
			    "envelope cannot be parsed");
			gone = true;
		}
	}
	if (gone) {
		msg_skip(m, true);
		return;
	}
	if (qe->strand_fails < UINT_MAX)
		qe->strand_fails++;
	free(qe->strand_why);
	qe->strand_why = xstrdup(why);
	if (es == STRAND_ENV_LOADED)
		arrival = env->arrival;
	else {
		if (qe->strand_since == 0)
			qe->strand_since = files_time(qm, qe->id, now);
		arrival = qe->strand_since;
	}
	next = sched_next_try(now, qe->strand_fails, c->retry_min, c->retry_max,
	    arrival, c->queue_lifetime, &expired);

	if (!expired && es == STRAND_ENV_LOADED) {
		bool any = false;

		for (size_t i = 0; i < env->nrcpt; i++) {
			struct envelope_rcpt *er = &env->rcpt[i];
			bool x;

			if (er->state != RCPT_PENDING)
				continue;
			er->attempts++;
			er->last_try = now;
			er->next_try = sched_next_try(now, er->attempts,
			    c->retry_min, c->retry_max, arrival,
			    c->queue_lifetime, &x);
			set_text(&er->last_reply, why);
			set_text(&er->status, "4.3.0");
			set_text(&er->remote_mta, NULL);
			if (!any || er->next_try < next)
				next = er->next_try;
			any = true;
		}
		/* (None pending: finished, but it cannot be removed either.) */
		if (any && queue_env_update(qm->q, env) == 0)
			recorded = true;
		else if (any && errno == ENOENT)
			gone = true;
		else if (any)
			uerr = errno;
	}

	if (expired) {
		char *qwhy = xasprintf("%s, for longer than queue_lifetime "
		    "(%u failure%s in a row)", why, qe->strand_fails,
		    qe->strand_fails == 1 ? "" : "s");

		/* queue_msg_quarantine logs the move, or why it failed. */
		if (queue_msg_quarantine(qm->q, qe->id, qwhy) == 0 ||
		    errno == ENOENT)
			gone = true;
		else
			next = now + sched_backoff(qe->strand_fails,
			    c->retry_min, c->retry_max);
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
		    qe->id, why, when, qe->strand_fails,
		    uerr != 0 ? "; not recorded in the envelope: " : "",
		    uerr != 0 ? strerror(uerr) : "");
	}

	if (m->lockfd != -1)
		queue_msg_unlock(m->lockfd);
	qe->busy = false;
	if (gone || !qm->opts.daemon)
		ent_delete(qm, qe);	/* one-shot: tried once */
	else
		ent_schedule(qm, qe, next);
	envelope_free(env);
	free(m->result);
	free(m);
}

/* "what: the text of errno" (allocated). */
static char *
why_errno(const char *what, int err)
{
	return xasprintf("%s: %s", what, strerror(err));
}

static void
msg_strand_errno(struct qmsg *m, enum strand_env es, const char *what,
    int err, bool force)
{
	char *why = why_errno(what, err);

	msg_strand(m, es, why, force);
	free(why);
}

static void
msg_load(struct qmgr *qm, struct qent *qe)
{
	struct qmsg *m;
	bool force = qe->force || qm->opts.force || qm->opts.only_id != NULL;
	struct strlist domains = { 0 }, probes = { 0 };
	/* The heap's clock: time() may lag it by a tick after a second turns. */
	time_t now = (time_t)(now_ms() / 1000);
	bool expired, pending = false, *go = NULL;
	size_t ndue = 0;

	qe->force = false;
	qe->busy = true;
	m = xcalloc(1, sizeof(*m));
	m->qm = qm;
	m->qe = qe;
	m->lockfd = m->body_fd = -1;
	envelope_init(&m->env);
	if (queue_msg_lock(qm->q, qe->id, &m->lockfd) == -1) {
		if (errno == EWOULDBLOCK && qm->opts.daemon) {
			/* Another runner or a submitter has it: look again. */
			size_t n = sizeof(locked_retry_ms) /
			    sizeof(locked_retry_ms[0]);

			qe->busy = false;
			ent_schedule_ms(qm, qe, now_ms() +
			    locked_retry_ms[qe->lock_tries < n ? qe->lock_tries :
			    n - 1]);
			if (qe->lock_tries < 255)
				qe->lock_tries++;
			free(m);
			return;
		}
		if (errno != EWOULDBLOCK && errno != ENOENT) {
			/* Not readable by us, not a file...: stranded. */
			msg_strand_errno(m, STRAND_ENV_TRY, "cannot lock", errno,
			    force);
			return;
		}
		msg_skip(m, true);
		return;
	}
	qe->lock_tries = 0;
	if (queue_env_load(qm->q, qe->id, &m->env) == -1) {
		if (errno == EBADMSG)
			queue_msg_quarantine(qm->q, qe->id,
			    "envelope cannot be parsed");
		else if (errno != ENOENT) {
			msg_strand_errno(m, STRAND_ENV_UNREADABLE,
			    "cannot read the envelope", errno, force);
			return;
		}
		msg_skip(m, true);
		return;
	}
	ent_note_submitter(qe, &m->env);
	expired = env_expired(qm, &m->env, now);

	/* The due recipients, by domain (case-insensitive), unless held. */
	m->result = xcalloc(m->env.nrcpt, sizeof(*m->result));
	go = xcalloc(m->env.nrcpt, sizeof(*go));
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		const struct envelope_rcpt *r = &m->env.rcpt[i];
		char *dom;

		if (r->state == RCPT_PENDING)
			pending = true;
		if (!sched_rcpt_due(r, now, force))
			continue;
		if (!force && !expired) {
			char *k = hold_key(qm, r->addr);
			bool pass = hold_pass(qm, k, now, &probes);

			free(k);
			if (!pass)
				continue;
		}
		go[i] = true;
		ndue++;
		dom = domain_lower(r->addr);
		if (!strlist_contains_nocase(&domains, dom))
			strlist_add_owned(&domains, dom);
		else
			free(dom);
	}
	if (!pending) {
		/* Finished before a crash could remove it: remove it now. */
		if (queue_msg_remove_later(qm->q, qe->id) == 0) {
			log_info("%s: removed", qe->id);
			kick_flush(qm);
		}
		strlist_free(&domains);
		strlist_free(&probes);
		free(go);
		msg_skip(m, true);
		return;
	}
	if (ndue == 0) {
		strlist_free(&domains);
		strlist_free(&probes);
		free(go);
		msg_skip(m, false);
		return;
	}
	{
		char *why = NULL;
		bool eightbit = false;

		/* It opens only a regular file (EINVAL: something else). */
		if ((m->body_fd = queue_body_open(qm->q, qe->id)) == -1)
			why = errno == EINVAL ? xstrdup("cannot open the "
			    "message: not a regular file") :
			    why_errno("cannot open the message", errno);
		else if (body_is_8bit(m->body_fd, &eightbit) == -1)
			why = why_errno("cannot read the message", errno);
		if (why != NULL) {
			strlist_free(&domains);
			strlist_free(&probes);
			free(go);
			msg_strand(m, STRAND_ENV_LOADED, why, force);
			free(why);
			return;
		}
		if (qe->strand_fails > 0) {
			log_info("%s: can be read again after %u failure%s",
			    qe->id, qe->strand_fails,
			    qe->strand_fails == 1 ? "" : "s");
			strand_clear(qe);
		}

		m->parts = xcalloc(domains.n, sizeof(*m->parts));
		m->nparts = domains.n;
		for (size_t k = 0; k < domains.n; k++) {
			struct qpart *p = &m->parts[k];
			size_t n = 0;

			p->m = m;
			p->dm.rcpt = xcalloc(ndue, sizeof(*p->dm.rcpt));
			for (size_t i = 0; i < m->env.nrcpt; i++) {
				const struct envelope_rcpt *r = &m->env.rcpt[i];

				if (!go[i] || strcasecmp(rcpt_domain(r->addr),
				    domains.v[k]) != 0)
					continue;
				p->dm.rcpt[n].addr = r->addr;
				m->result[i] = &p->dm.rcpt[n];
				n++;
			}
			p->key = hold_key(qm, p->dm.rcpt[0].addr);
			p->dm.nrcpt = n;
			p->dm.id = m->env.id;
			p->dm.sender = m->env.sender;
			p->dm.body_fd = m->body_fd;
			p->dm.size = m->env.size;
			p->dm.eightbit = eightbit;
			p->dm.arrival = m->env.arrival;
			p->dm.done = part_done;
			p->dm.arg = p;
		}
	}
	qm->in_flight++;
	qm->stats->messages++;
	/* Count first: a part may come back before delivery_submit returns. */
	m->parts_left = (unsigned)m->nparts;
	{
		size_t nparts = m->nparts;
		struct qpart *parts = m->parts;
		struct delivery_engine *engine = qm->engine;

		for (size_t k = 0; k < nparts; k++)
			delivery_submit(engine, domains.v[k], &parts[k].dm);
	}
	strlist_free(&domains);
	strlist_free(&probes);
	free(go);
}

static void
part_done(void *arg, struct delivery_msg *dm)
{
	struct qpart *p = arg;

	(void)dm;
	if (--p->m->parts_left == 0)
		msg_finish(p->m);
}

static void
set_text(char **field, const char *text)
{
	free(*field);
	*field = text != NULL && *text != '\0' ? xstrdup(text) : NULL;
}

/* Destination holds from what the parts met. */
static void
holds_update(struct qmgr *qm, const struct qmsg *m, time_t now)
{
	if (!qm->opts.daemon)
		return;
	for (size_t k = 0; k < m->nparts; k++) {
		const struct qpart *p = &m->parts[k];
		bool reached = false;

		for (size_t i = 0; i < p->dm.nrcpt; i++)
			if (p->dm.rcpt[i].remote_mta[0] != '\0')
				reached = true;
		if (p->dm.dest_down)
			hold_start(qm, p->key, now);
		else if (reached)
			hold_end(qm, p->key);
	}
}

/* Every part is back: record the outcomes once, bounce, remove or update. */
static void
msg_finish(struct qmsg *m)
{
	struct qmgr *qm = m->qm;
	const struct conf *c = qm->conf;
	struct envelope *env = &m->env;
	bool *report = xcalloc(env->nrcpt, sizeof(*report));
	size_t nreport = 0;
	bool pending = false, gone = false;
	time_t now = time(NULL);

	holds_update(qm, m, now);
	for (size_t i = 0; i < env->nrcpt; i++) {
		struct envelope_rcpt *er = &env->rcpt[i];
		struct delivery_rcpt *res = m->result[i];
		bool expired = false;

		if (res == NULL)
			continue;
		er->attempts++;
		er->last_try = now;
		set_text(&er->last_reply, res->reply);
		set_text(&er->status, envelope_status_valid(res->status) ?
		    res->status : NULL);
		set_text(&er->remote_mta, res->remote_mta);
		switch (res->outcome) {
		case OUTCOME_OK:
			er->state = RCPT_DELIVERED;
			qm->stats->sent++;
			break;
		case OUTCOME_PERMFAIL:
			report[i] = true;
			nreport++;
			break;
		default:
			er->next_try = sched_next_try(now, er->attempts,
			    c->retry_min, c->retry_max, env->arrival,
			    c->queue_lifetime, &expired);
			if (expired) {
				log_info("%s: to=<%s>, status=expired (queued "
				    "longer than queue_lifetime)", env->id, er->addr);
				report[i] = true;
				nreport++;
			} else
				qm->stats->deferred++;
			break;
		}
	}

	if (nreport > 0) {
		char newid[QUEUE_ID_LEN + 1] = "";

		if (bounce_queue(qm->q, env, report, m->body_fd, c->hostname, now,
		    newid) == 0) {
			for (size_t i = 0; i < env->nrcpt; i++)
				if (report[i]) {
					env->rcpt[i].state = RCPT_BOUNCED;
					qm->stats->bounced++;
				}
			if (newid[0] != '\0') {
				log_info("%s: sender non-delivery notification: %s",
				    env->id, newid);
				qmgr_add(qm, newid);
			} else
				log_info("%s: no notification: null sender",
				    env->id);
		} else {
			/* Keep them: a bounce must not be lost either. */
			log_warn("%s: cannot queue the non-delivery notification",
			    env->id);
			for (size_t i = 0; i < env->nrcpt; i++)
				if (report[i])
					env->rcpt[i].next_try = now + c->retry_min;
		}
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING)
			pending = true;
	if (!pending) {
		if (queue_msg_remove_later(qm->q, env->id) == -1)
			log_warn("%s: cannot remove", env->id);
		else {
			log_info("%s: removed", env->id);
			kick_flush(qm);
		}
		gone = true;
	} else if (queue_env_update(qm->q, env) == -1)
		log_warn("%s: cannot update the envelope", env->id);

	free(report);
	close(m->body_fd);
	queue_msg_unlock(m->lockfd);
	ent_release(qm, m->qe, gone ? NULL : env, gone);
	for (size_t k = 0; k < m->nparts; k++) {
		free(m->parts[k].dm.rcpt);
		free(m->parts[k].key);
	}
	free(m->parts);
	free(m->result);
	envelope_free(env);
	free(m);
	qm->in_flight--;
	kick(qm, 0);
}

/*
 * Pumping: load due messages while the window has room.
 */

static void
kick(struct qmgr *qm, uint64_t ms)
{
	if (qm->stopped)
		return;
	ev_timer_add_earlier(qm->loop, &qm->tick, ms);
}

static void
kick_flush(struct qmgr *qm)
{
	if (!ev_timer_pending(&qm->flush))
		ev_timer_add(qm->loop, &qm->flush, QMGR_FLUSH_MS);
}

static void
on_flush(void *arg)
{
	struct qmgr *qm = arg;

	if (queue_flush(qm->q) == -1)
		log_warn("%s: finishing removals", queue_dir(qm->q));
}

static void
on_tick(void *arg)
{
	struct qmgr *qm = arg;
	int64_t now = now_ms();

	if (qm->opts.daemon)
		delivery_gc(qm->engine);
	while (!qm->stopped && qm->in_flight < qm->window && qm->nheap > 0) {
		struct qent *e = qm->heap[0];

		if (!e->force && e->due > now)
			break;
		heap_remove(qm, e);
		msg_load(qm, e);
	}
	if (qm->stopped || qm->nheap == 0 || qm->in_flight >= qm->window)
		return;
	if (!qm->heap[0]->force && qm->heap[0]->due > now) {
		int64_t wait = qm->heap[0]->due - now;

		kick(qm, wait > QMGR_MAX_SLEEP_MS ? QMGR_MAX_SLEEP_MS :
		    (uint64_t)wait);
	}
}

/*
 * Each open message holds two descriptors (lock and body).  Raise the
 * soft limit as far as allowed and size the window to fit beside the
 * connections and whatever the caller keeps for itself.
 */
static unsigned
fd_window(unsigned concurrency, unsigned reserve)
{
	struct rlimit rl;
	rlim_t keep = (rlim_t)concurrency + QMGR_FD_RESERVE + reserve;
	rlim_t want = 2 * QMGR_WINDOW + keep;
	rlim_t have;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 100;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ?
		    want : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	have = rl.rlim_cur;
	if (have <= keep + 2)
		return 1;
	have = (have - keep) / 2;
	return have < QMGR_WINDOW ? (unsigned)have : QMGR_WINDOW;
}

/*
 * The interface.
 */

struct qmgr *
qmgr_new(struct ev_loop *loop, struct queue *q, const struct conf *c,
    struct delivery_engine *engine, const struct qmgr_opts *o,
    struct runner_stats *stats)
{
	struct qmgr *qm = xcalloc(1, sizeof(*qm));

	qm->loop = loop;
	qm->q = q;
	qm->conf = c;
	qm->engine = engine;
	qm->opts = *o;
	qm->stats = stats;
	qm->nbuckets = 1024;
	qm->buckets = xcalloc(qm->nbuckets, sizeof(*qm->buckets));
	qm->window = fd_window(c->concurrency, o->fd_reserve);
	ev_timer_init(&qm->tick, on_tick, qm);
	ev_timer_init(&qm->flush, on_flush, qm);
	return qm;
}

void
qmgr_free(struct qmgr *qm)
{
	if (qm == NULL)
		return;
	ev_timer_del(qm->loop, &qm->tick);
	ev_timer_del(qm->loop, &qm->flush);
	on_flush(qm);
	for (size_t i = 0; i < qm->nbuckets; i++) {
		struct qent *e, *next;

		for (e = qm->buckets[i]; e != NULL; e = next) {
			next = e->hnext;
			free(e->strand_why);
			free(e);
		}
	}
	free(qm->buckets);
	free(qm->heap);
	for (size_t i = 0; i < qm->nholds; i++)
		free(qm->holds[i].key);
	free(qm->holds);
	free(qm);
}

struct scan_arg {
	struct qmgr	*qm;
	time_t		 now;
	struct strlist	 seen;	/* read by the scan but not indexed */
};

static int
scan_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct scan_arg *sa = arg;
	struct qmgr *qm = sa->qm;
	bool force = qm->opts.force || qm->opts.only_id != NULL;
	struct qent *e;
	time_t due;

	(void)q;
	if (qm->opts.only_id != NULL && strcmp(env->id, qm->opts.only_id) != 0)
		return 0;
	if (ent_find(qm, env->id) != NULL)
		return 0;
	if (!sched_env_next_due(env, &due))
		due = 0;	/* nothing pending: msg_load removes it */
	if (!qm->opts.daemon && !force && due > sa->now) {
		strlist_add(&sa->seen, env->id);
		return 0;	/* one-shot: only what is due now */
	}
	e = ent_new(qm, env->id);
	ent_note_submitter(e, env);
	ent_schedule(qm, e, force ? 0 : due);
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The scan logs an envelope it cannot read and goes on: index every
 * message in env/ that the scan did not hand over, due now, so that
 * msg_load finds it stranded (or, if it was only just committed,
 * delivers it).
 */
static void
load_unread(struct qmgr *qm, struct strlist *seen)
{
	char *path = xasprintf("%s/env", queue_dir(qm->q));
	struct dirent *de;
	DIR *d = NULL;
	int fd;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1 || (d = fdopendir(fd)) == NULL) {
		log_warn("%s: cannot list", path);
		if (fd != -1)
			close(fd);
		free(path);
		return;
	}
	if (seen->n > 1)
		qsort(seen->v, seen->n, sizeof(seen->v[0]), cmp_id);
	while ((de = readdir(d)) != NULL) {
		const char *id = de->d_name;

		if (!queue_id_valid(id) || ent_find(qm, id) != NULL ||
		    (qm->opts.only_id != NULL &&
		    strcmp(id, qm->opts.only_id) != 0) ||
		    (seen->n > 0 && bsearch(&id, seen->v, seen->n,
		    sizeof(seen->v[0]), cmp_id) != NULL))
			continue;
		ent_schedule(qm, ent_new(qm, id), 0);
	}
	closedir(d);
	free(path);
}

int
qmgr_load(struct qmgr *qm)
{
	struct scan_arg sa = { qm, time(NULL), { NULL, 0, 0 } };
	int saved;

	if (queue_scan(qm->q, scan_one, &sa) == -1) {
		saved = errno;
		strlist_free(&sa.seen);
		errno = saved;
		return -1;
	}
	load_unread(qm, &sa.seen);
	strlist_free(&sa.seen);
	kick(qm, 0);
	return 0;
}

void
qmgr_add(struct qmgr *qm, const char *id)
{
	if (!queue_id_valid(id) || ent_find(qm, id) != NULL)
		return;
	ent_schedule(qm, ent_new(qm, id), 0);
	kick(qm, 0);
}

void
qmgr_set_submitter(struct qmgr *qm, const char *id, uint32_t uid)
{
	struct qent *e = ent_find(qm, id);

	if (e != NULL) {
		e->has_submitter = true;
		e->submit_uid = uid;
	}
}

size_t
qmgr_submitted_by(const struct qmgr *qm, uint32_t uid, struct strlist *ids)
{
	size_t n = 0;

	for (size_t i = 0; i < qm->nbuckets; i++)
		for (const struct qent *e = qm->buckets[i]; e != NULL;
		    e = e->hnext)
			if (e->has_submitter && e->submit_uid == uid) {
				strlist_add(ids, e->id);
				n++;
			}
	return n;
}

size_t
qmgr_flush(struct qmgr *qm, const char *id)
{
	size_t n = 0;

	for (size_t i = 0; i < qm->nbuckets; i++)
		for (struct qent *e = qm->buckets[i]; e != NULL; e = e->hnext) {
			if (id != NULL && strcmp(e->id, id) != 0)
				continue;
			n++;
			if (e->busy)
				continue;
			e->force = true;
			ent_schedule(qm, e, 0);
		}
	if (n > 0)
		kick(qm, 0);
	return n;
}

void
qmgr_set_conf(struct qmgr *qm, const struct conf *c,
    struct delivery_engine *engine)
{
	qm->conf = c;
	qm->engine = engine;
	kick(qm, 0);
}

void
qmgr_stop(struct qmgr *qm)
{
	qm->stopped = true;
	ev_timer_del(qm->loop, &qm->tick);
}

bool
qmgr_done(const struct qmgr *qm)
{
	if (qm->in_flight > 0)
		return false;
	return qm->opts.daemon || qm->stopped || qm->nheap == 0;
}

size_t
qmgr_count(const struct qmgr *qm)
{
	return qm->nent;
}

size_t
qmgr_in_flight(const struct qmgr *qm)
{
	return qm->in_flight;
}
