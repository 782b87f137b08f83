/*
 * bounce_batch: per-sender collection and limit of non-delivery notices.
 * See bounce_batch.h.
 *
 * One struct bsender per envelope sender seen, in a hash table: its
 * hour (window_start, sent: notices since then) and, while collecting,
 * its batch: an envelope from that sender holding copies of every failed
 * recipient (status, reply, exchanger, dates), the queue id of each
 * one's message, the messages in order with their recipient counts (for
 * the log), and the header section of the first message.  A sender
 * whose hour is over and who has nothing collected is forgotten now and
 * then, so that the table stays the size of the senders of the last
 * hour.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bounce.h"
#include "bounce_batch.h"
#include "envelope.h"
#include "hash.h"
#include "log.h"
#include "spool.h"
#include "util.h"

#define HOUR_MS		(3600 * INT64_C(1000))
/* Forget idle senders after this many bounce_batch_add() calls. */
#define PRUNE_EVERY	1024

struct bmsg {
	char		 id[QUEUE_ID_LEN + 1];
	size_t		 nrcpt;
};

struct bsender {
	struct hash_node node;
	char		*addr;
	int64_t		 window_start;
	unsigned	 sent;
	/* The batch, while held. */
	bool		 held;
	int64_t		 due;
	struct envelope	 env;
	char		**ids;		/* per env.rcpt: its message's id */
	struct bmsg	*msgs;
	size_t		 nmsgs;
	char		*hdrs;		/* of the first message; may be NULL */
	size_t		 hdrslen;
	bool		 hdrs8bit;
};

struct bounce_batch {
	struct bounce_batch_conf c;
	struct hash	 senders;
	unsigned	 adds;
};

static struct bsender *sender_get(struct bounce_batch *, const char *);
static void	 sender_free(struct bsender *);
static void	 batch_clear(struct bsender *);
static bool	 allowed(const struct bounce_batch *, struct bsender *,
		    int64_t);
static void	 batch_start(struct bounce_batch *, struct bsender *,
		    const struct envelope *, int, int64_t);
static void	 batch_append(struct bsender *, const struct envelope *,
		    const bool *);
static int	 batch_send(struct bsender *, struct queue *, const char *,
		    int64_t, char *);
static void	 prune(struct bounce_batch *, int64_t);

struct bounce_batch *
bounce_batch_new(const struct bounce_batch_conf *c)
{
	struct bounce_batch *b = xcalloc(1, sizeof(*b));

	b->c = *c;
	hash_init(&b->senders);
	return b;
}

void
bounce_batch_set_conf(struct bounce_batch *b, const struct bounce_batch_conf *c)
{
	b->c = *c;
}

void
bounce_batch_free(struct bounce_batch *b)
{
	struct hash_node *n, *next;

	if (b == NULL)
		return;
	for (n = hash_next(&b->senders, NULL); n != NULL; n = next) {
		next = hash_next(&b->senders, n);
		hash_remove(&b->senders, n);
		sender_free(HASH_ENTRY(n, struct bsender, node));
	}
	hash_free(&b->senders);
	free(b);
}

static struct bsender *
sender_get(struct bounce_batch *b, const char *addr)
{
	struct hash_node *n = hash_find(&b->senders, addr);
	struct bsender *s;

	if (n != NULL)
		return HASH_ENTRY(n, struct bsender, node);
	s = xcalloc(1, sizeof(*s));
	s->addr = xstrdup(addr);
	envelope_init(&s->env);
	hash_insert(&b->senders, &s->node, s->addr);
	return s;
}

static void
batch_clear(struct bsender *s)
{
	for (size_t i = 0; i < s->env.nrcpt; i++)
		free(s->ids[i]);
	free(s->ids);
	s->ids = NULL;
	envelope_free(&s->env);
	envelope_init(&s->env);
	free(s->msgs);
	s->msgs = NULL;
	s->nmsgs = 0;
	free(s->hdrs);
	s->hdrs = NULL;
	s->hdrslen = 0;
	s->held = false;
}

static void
sender_free(struct bsender *s)
{
	batch_clear(s);
	free(s->addr);
	free(s);
}

/* May s be sent one more notice this hour?  Starts a new hour when due. */
static bool
allowed(const struct bounce_batch *b, struct bsender *s, int64_t now)
{
	if (s->sent == 0 || now - s->window_start >= HOUR_MS ||
	    now < s->window_start) {
		s->window_start = now;
		s->sent = 0;
	}
	return b->c.limit == 0 || s->sent < b->c.limit;
}

/* Start collecting for s: due after the interval, headers of this message. */
static void
batch_start(struct bounce_batch *b, struct bsender *s,
    const struct envelope *env, int body_fd, int64_t now)
{
	s->held = true;
	s->due = now + b->c.interval_ms;
	s->env.sender = xstrdup(env->sender);
	util_strlcpy(s->env.id, env->id, sizeof(s->env.id));
	if (body_fd != -1 && bounce_read_headers(body_fd, env->size, &s->hdrs,
	    &s->hdrslen, &s->hdrs8bit) == -1)
		log_warn("%s: cannot read the header section for the "
		    "notification", env->id);
	/* The message as it was sent: our DKIM signature first. */
	if (s->hdrs != NULL && env->dkim != NULL) {
		size_t slen = strlen(env->dkim);
		char *h = xmalloc(slen + s->hdrslen + 1);

		memcpy(h, env->dkim, slen);
		memcpy(h + slen, s->hdrs, s->hdrslen);
		h[slen + s->hdrslen] = '\0';
		free(s->hdrs);
		s->hdrs = h;
		s->hdrslen += slen;
	}
}

/* Copies of env's reported recipients into s's batch. */
static void
batch_append(struct bsender *s, const struct envelope *env,
    const bool *report)
{
	struct bmsg *m;

	s->msgs = xreallocarray(s->msgs, s->nmsgs + 1, sizeof(*s->msgs));
	m = &s->msgs[s->nmsgs++];
	util_strlcpy(m->id, env->id, sizeof(m->id));
	m->nrcpt = 0;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		struct envelope_rcpt *c;

		if (!report[i])
			continue;
		envelope_add_rcpt(&s->env, r->addr, r->orig);
		c = &s->env.rcpt[s->env.nrcpt - 1];
		c->attempts = r->attempts;
		c->last_try = r->last_try;
		c->last_reply = r->last_reply != NULL ?
		    xstrdup(r->last_reply) : NULL;
		c->status = r->status != NULL ? xstrdup(r->status) : NULL;
		c->remote_mta = r->remote_mta != NULL ?
		    xstrdup(r->remote_mta) : NULL;
		s->ids = xreallocarray(s->ids, s->env.nrcpt, sizeof(*s->ids));
		s->ids[s->env.nrcpt - 1] = xstrdup(env->id);
		m->nrcpt++;
	}
}

int
bounce_batch_add(struct bounce_batch *b, struct queue *q,
    const struct envelope *env, const bool *report, int body_fd,
    const char *hostname, int64_t now, char *newid, int64_t *due)
{
	struct bsender *s;
	size_t n = 0;

	newid[0] = '\0';
	*due = -1;
	if (env->sender == NULL || env->sender[0] == '\0')
		return BOUNCE_BATCH_NONE;
	for (size_t i = 0; i < env->nrcpt; i++)
		n += report[i];
	if (n == 0)
		return BOUNCE_BATCH_NONE;
	if (++b->adds % PRUNE_EVERY == 0)
		prune(b, now);
	s = sender_get(b, env->sender);
	if (!s->held && !allowed(b, s, now)) {
		log_info("%s: no non-delivery notification to <%s>: %u sent "
		    "this hour (bounce_limit_per_sender); %zu recipient%s "
		    "not told", env->id, env->sender, s->sent, n,
		    n == 1 ? "" : "s");
		return BOUNCE_BATCH_DROPPED;
	}
	if (!s->held && b->c.interval_ms <= 0) {
		if (bounce_queue(q, env, report, body_fd, hostname,
		    (time_t)(now / 1000), newid) == -1)
			return -1;
		s->sent++;
		return BOUNCE_BATCH_SENT;
	}
	if (!s->held) {
		s->sent++;	/* the combined notice, counted when it starts */
		batch_start(b, s, env, body_fd, now);
	}
	batch_append(s, env, report);
	if (s->env.nrcpt >= BOUNCE_BATCH_RCPT_MAX)
		s->due = now;
	*due = s->due;
	log_info("%s: non-delivery notification to <%s> collected (%zu "
	    "recipient%s; bounce_interval)", env->id, env->sender, n,
	    n == 1 ? "" : "s");
	return BOUNCE_BATCH_HELD;
}

/* Queue s's combined notice and log it for each of its messages. */
static int
batch_send(struct bsender *s, struct queue *q, const char *hostname,
    int64_t now, char *newid)
{
	struct bounce_notice notice;
	bool *report;
	int rc;

	memset(&notice, 0, sizeof(notice));
	notice.kind = BOUNCE_FAILED;
	notice.rcpt_ids = (const char *const *)s->ids;
	notice.hdrs = s->hdrs;
	notice.hdrslen = s->hdrslen;
	notice.hdrs8bit = s->hdrs8bit;
	report = xcalloc(s->env.nrcpt, sizeof(*report));
	for (size_t i = 0; i < s->env.nrcpt; i++)
		report[i] = true;
	rc = bounce_queue_notice(q, &s->env, report, -1, &notice, hostname,
	    (time_t)(now / 1000), newid);
	free(report);
	if (rc == -1)
		return -1;
	for (size_t i = 0; i < s->nmsgs; i++)
		bounce_log(s->msgs[i].id, BOUNCE_FAILED, newid,
		    s->msgs[i].nrcpt, s->nmsgs);
	return 0;
}

int64_t
bounce_batch_flush(struct bounce_batch *b, struct queue *q,
    const char *hostname, int64_t now, bool all,
    void (*added)(void *, const char *), void *arg)
{
	struct hash_node *n;
	int64_t next = -1;

	for (n = hash_next(&b->senders, NULL); n != NULL;
	    n = hash_next(&b->senders, n)) {
		struct bsender *s = HASH_ENTRY(n, struct bsender, node);
		char newid[QUEUE_ID_LEN + 1];

		if (!s->held)
			continue;
		if (!all && s->due > now) {
			if (next == -1 || s->due < next)
				next = s->due;
			continue;
		}
		if (batch_send(s, q, hostname, now, newid) == 0) {
			batch_clear(s);
			if (added != NULL)
				added(arg, newid);
			continue;
		}
		if (errno == EINVAL) {
			/* It cannot be built: no retry makes it better. */
			log_warnx("no non-delivery notification to <%s> can "
			    "be built for %zu recipients: dropped", s->addr,
			    s->env.nrcpt);
			batch_clear(s);
			continue;
		}
		log_warn("cannot queue the non-delivery notification to <%s> "
		    "(%zu recipients); trying again", s->addr, s->env.nrcpt);
		s->due = now + BOUNCE_BATCH_RETRY_MS;
		if (next == -1 || s->due < next)
			next = s->due;
	}
	return next;
}

/* Forget the senders with nothing held whose hour is over. */
static void
prune(struct bounce_batch *b, int64_t now)
{
	struct hash_node *n, *next;

	for (n = hash_next(&b->senders, NULL); n != NULL; n = next) {
		struct bsender *s = HASH_ENTRY(n, struct bsender, node);

		next = hash_next(&b->senders, n);
		if (s->held || (s->sent > 0 && now - s->window_start < HOUR_MS &&
		    now >= s->window_start))
			continue;
		hash_remove(&b->senders, n);
		sender_free(s);
	}
}
