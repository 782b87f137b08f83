/*
 * scheduler: retry arithmetic (exponential backoff between retry_min and
 * retry_max, expiry after queue_lifetime), due-ness of recipients, and
 * the in-memory index of the queue.  See scheduler.h.
 *
 * The index: messages in a hash table by id; each message owns a short
 * list of groups, one per destination with pending recipients (or one
 * SCHED_LOAD job with no destination while its envelope is unread).  A
 * waiting group is in exactly one heap: the global one by (force, due,
 * id, destination), or its destination's "parked" heap when that
 * destination already has dest_limit groups in flight; a group in flight
 * is in none.  Destinations live in a hash table by name while a group
 * refers to them or they are held.  A message is "open" (takes a window
 * slot) while one of its groups is in flight.
 *
 * Holds: one backoff episode per destination.  dest_down from a group
 * starts a hold of sched_backoff(failures) unless one is running (the
 * other groups of the same episode come back one by one); when it is
 * over, the first group to go is the probe, and the others wait
 * SCHED_PROBE_WAIT_MS (then another goes); a group that reaches an
 * exchanger ends the hold.  Forced groups and messages past their
 * lifetime ignore holds (so that they still expire on time), but not the
 * per-destination limit.
 *
 * Invariants: no I/O and no clock here; every time is an argument.
 * Durations are ms; dates in envelopes are time_t seconds, and a
 * duration added to one is rounded up to whole seconds.  All additions
 * saturate at the largest time_t, so a huge retry_max or a lifetime near
 * the end of time never wraps into the past.
 */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "envelope.h"
#include "hash.h"
#include "heap.h"
#include "scheduler.h"
#include "util.h"

static time_t	 time_max(void);
static time_t	 add_sat(time_t, time_t);

static time_t
time_max(void)
{
	/* time_t is a signed integer type of 32 or 64 bits on POSIX systems. */
	return sizeof(time_t) >= 8 ? (time_t)INT64_MAX : (time_t)INT32_MAX;
}

/* a + b for b >= 0, saturating at time_max(). */
static time_t
add_sat(time_t a, time_t b)
{
	if (b <= 0)
		return a;
	if (a > time_max() - b)
		return time_max();
	return a + b;
}

int64_t
sched_backoff(unsigned attempts, int64_t retry_min, int64_t retry_max)
{
	int64_t v;

	if (retry_min < 0)
		retry_min = 0;
	if (retry_max < retry_min)
		retry_max = retry_min;
	if (attempts == 0 || retry_min == 0)
		return 0;
	/*
	 * Double until the cap: at most about 63 rounds, since v >= 1 and
	 * the loop stops once v reaches retry_max.
	 */
	v = retry_min;
	for (unsigned i = 1; i < attempts && v < retry_max; i++) {
		if (v > retry_max / 2)
			v = retry_max;
		else
			v *= 2;
	}
	return v < retry_max ? v : retry_max;
}

time_t
sched_ms_to_s(int64_t ms)
{
	int64_t s;

	if (ms <= 0)
		return 0;
	s = ms / 1000 + (ms % 1000 != 0);
	return s > (int64_t)time_max() ? time_max() : (time_t)s;
}

time_t
sched_next_try(time_t now, unsigned attempts, int64_t retry_min,
    int64_t retry_max, time_t arrival, int64_t lifetime, bool *expired)
{
	time_t deadline, next;

	if (arrival > now)
		arrival = now;
	deadline = add_sat(arrival, sched_ms_to_s(lifetime));
	if (now >= deadline) {
		*expired = true;
		return now;
	}
	*expired = false;
	next = add_sat(now, sched_ms_to_s(sched_backoff(attempts, retry_min,
	    retry_max)));
	return next < deadline ? next : deadline;
}

bool
sched_rcpt_due(const struct envelope_rcpt *r, time_t now, bool force)
{
	if (r->state != RCPT_PENDING)
		return false;
	return force || r->next_try <= now;
}

bool
sched_env_next_due(const struct envelope *env, time_t *due)
{
	bool any = false;
	time_t min = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		if (r->state != RCPT_PENDING)
			continue;
		if (!any || r->next_try < min)
			min = r->next_try;
		any = true;
	}
	if (any)
		*due = min;
	return any;
}

enum sched_rcpt_next
sched_rcpt_outcome(struct envelope_rcpt *r, enum outcome o, time_t now,
    int64_t retry_min, int64_t retry_max, time_t arrival, int64_t lifetime)
{
	bool expired = false;

	r->attempts++;
	r->last_try = now;
	switch (o) {
	case OUTCOME_OK:
		r->state = RCPT_DELIVERED;
		return SCHED_RCPT_DELIVERED;
	case OUTCOME_PERMFAIL:
		return SCHED_RCPT_BOUNCE;
	default:
		r->next_try = sched_next_try(now, r->attempts, retry_min,
		    retry_max, arrival, lifetime, &expired);
		return expired ? SCHED_RCPT_EXPIRED : SCHED_RCPT_DEFERRED;
	}
}

/*
 * The index.
 */

struct sched_dest {
	struct hash_node	 node;
	char			*name;
	int64_t			 hold_until;	/* ms; 0: not held */
	int64_t			 probe_until;	/* a probe is out until then */
	unsigned		 failures;	/* hold episodes in a row */
	unsigned		 running;	/* groups in flight */
	size_t			 refs;		/* groups that name it */
	struct heap		 parked;	/* groups waiting for a slot */
	uint64_t		 gen;		/* sched_msg_set() scratch: */
	struct sched_group	*cur;		/* its group in that message */
};

struct sched {
	struct sched_conf	 c;
	struct hash		 msgs;
	struct hash		 dests;
	struct heap		 due;
	size_t			 open;
	uint64_t		 gen;
	char			*kbuf;		/* destination names being made */
	size_t			 kcap;
};

static bool	 group_less(const void *, const void *);
static struct sched_dest *dest_get(struct sched *, const char *);
static void	 dest_put(struct sched *, struct sched_dest *);
static struct sched_group *group_new(struct sched *, struct sched_msg *,
		    struct sched_dest *);
static void	 group_free(struct sched *, struct sched_group *);
static void	 group_requeue(struct sched *, struct sched_group *);
static unsigned	 group_stop(struct sched *, struct sched_group *);
static const char *dest_key(struct sched *, const char *);
static bool	 msg_expired(const struct sched *, const struct sched_msg *,
		    int64_t);

static bool
group_less(const void *a, const void *b)
{
	const struct sched_group *x = a, *y = b;
	int c;

	if (x->force != y->force)
		return x->force;
	if (x->due != y->due)
		return x->due < y->due;
	if ((c = strcmp(x->msg->id, y->msg->id)) != 0)
		return c < 0;
	if (x->dest == NULL || y->dest == NULL)
		return x->dest == NULL && y->dest != NULL;
	return strcmp(x->dest->name, y->dest->name) < 0;
}

struct sched *
sched_new(const struct sched_conf *c)
{
	struct sched *s = xcalloc(1, sizeof(*s));

	sched_set_conf(s, c);
	hash_init(&s->msgs);
	hash_init(&s->dests);
	heap_init(&s->due, group_less, offsetof(struct sched_group, slot));
	return s;
}

void
sched_set_conf(struct sched *s, const struct sched_conf *c)
{
	s->c = *c;
	if (s->c.dest_limit == 0)
		s->c.dest_limit = 1;
	if (s->c.window == 0)
		s->c.window = 1;
}

void
sched_free(struct sched *s)
{
	struct hash_node *n, *next;

	if (s == NULL)
		return;
	for (n = hash_next(&s->msgs, NULL); n != NULL; n = next) {
		struct sched_msg *m = HASH_ENTRY(n, struct sched_msg, node);
		struct sched_group *g, *gn;

		next = hash_next(&s->msgs, n);
		for (g = m->groups; g != NULL; g = gn) {
			gn = g->next;
			free(g);
		}
		strlist_free(&m->tried);
		free(m);
	}
	for (n = hash_next(&s->dests, NULL); n != NULL; n = next) {
		struct sched_dest *d = HASH_ENTRY(n, struct sched_dest, node);

		next = hash_next(&s->dests, n);
		heap_free(&d->parked);
		free(d->name);
		free(d);
	}
	hash_free(&s->msgs);
	hash_free(&s->dests);
	heap_free(&s->due);
	free(s->kbuf);
	free(s);
}

static struct sched_dest *
dest_find(const struct sched *s, const char *name)
{
	struct hash_node *n = hash_find(&s->dests, name);

	return n != NULL ? HASH_ENTRY(n, struct sched_dest, node) : NULL;
}

static struct sched_dest *
dest_get(struct sched *s, const char *name)
{
	struct sched_dest *d = dest_find(s, name);

	if (d != NULL)
		return d;
	d = xcalloc(1, sizeof(*d));
	d->name = xstrdup(name);
	heap_init(&d->parked, group_less, offsetof(struct sched_group, slot));
	hash_insert(&s->dests, &d->node, d->name);
	return d;
}

/* Forget d when nothing refers to it and it holds nothing back. */
static void
dest_put(struct sched *s, struct sched_dest *d)
{
	if (d == NULL || d->refs > 0 || d->running > 0 || d->failures > 0 ||
	    d->hold_until != 0)
		return;
	hash_remove(&s->dests, &d->node);
	heap_free(&d->parked);
	free(d->name);
	free(d);
}

const char *
sched_dest_name(const struct sched_dest *d)
{
	return d->name;
}

/* The destination of a recipient: its domain in lower case, or "". */
static const char *
dest_key(struct sched *s, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const char *dom = at != NULL ? at + 1 : "";
	size_t len = strlen(dom);

	if (s->c.relayhost)
		return "";
	if (len + 1 > s->kcap) {
		s->kcap = len + 64;
		s->kbuf = xreallocarray(s->kbuf, s->kcap, 1);
	}
	for (size_t i = 0; i <= len; i++)
		s->kbuf[i] = (char)tolower((unsigned char)dom[i]);
	return s->kbuf;
}

bool
sched_rcpt_in(const struct sched *s, const char *addr, const char *dest)
{
	const char *at = strrchr(addr, '@');

	if (s->c.relayhost)
		return true;
	return strcasecmp(at != NULL ? at + 1 : "", dest) == 0;
}

static struct sched_group *
group_new(struct sched *s, struct sched_msg *m, struct sched_dest *d)
{
	struct sched_group *g = xcalloc(1, sizeof(*g));

	(void)s;
	g->msg = m;
	g->dest = d;
	g->next = m->groups;
	m->groups = g;
	if (d != NULL)
		d->refs++;
	return g;
}

static void
group_free(struct sched *s, struct sched_group *g)
{
	struct sched_group **p = &g->msg->groups;

	if (g->parked)
		heap_remove(&g->dest->parked, g);
	else
		heap_remove(&s->due, g);
	while (*p != g)
		p = &(*p)->next;
	*p = g->next;
	if (g->dest != NULL) {
		g->dest->refs--;
		dest_put(s, g->dest);
	}
	free(g);
}

/* (Re)place a waiting group after its due time or force changed. */
static void
group_requeue(struct sched *s, struct sched_group *g)
{
	if (g->running)
		return;
	if (g->parked)
		heap_update(&g->dest->parked, g);
	else
		heap_update(&s->due, g);
}

static bool
msg_expired(const struct sched *s, const struct sched_msg *m, int64_t now)
{
	time_t t = (time_t)(now / 1000);

	return m->arrival != 0 && t >= add_sat(m->arrival,
	    sched_ms_to_s(s->c.lifetime_ms));
}

struct sched_msg *
sched_msg_find(const struct sched *s, const char *id)
{
	struct hash_node *n = hash_find(&s->msgs, id);

	return n != NULL ? HASH_ENTRY(n, struct sched_msg, node) : NULL;
}

struct sched_msg *
sched_msg_next(const struct sched *s, const struct sched_msg *m)
{
	struct hash_node *n = hash_next(&s->msgs, m != NULL ? &m->node : NULL);

	return n != NULL ? HASH_ENTRY(n, struct sched_msg, node) : NULL;
}

size_t
sched_count(const struct sched *s)
{
	return s->msgs.n;
}

size_t
sched_open(const struct sched *s)
{
	return s->open;
}

bool
sched_idle(const struct sched *s)
{
	return s->open == 0 && s->due.n == 0;
}

struct sched_msg *
sched_msg_add(struct sched *s, const char *id, int64_t due, bool force)
{
	struct sched_msg *m = xcalloc(1, sizeof(*m));
	struct sched_group *g;

	util_strlcpy(m->id, id, sizeof(m->id));
	hash_insert(&s->msgs, &m->node, m->id);
	m->force = force;
	g = group_new(s, m, NULL);
	g->due = due;
	g->force = force;
	heap_push(&s->due, g);
	return m;
}

size_t
sched_msg_set(struct sched *s, struct sched_msg *m, const struct envelope *env,
    int64_t now)
{
	struct sched_group *g, *next;
	size_t n = 0;

	s->gen++;
	m->arrival = env->arrival;
	for (g = m->groups; g != NULL; g = g->next)
		if (g->dest != NULL) {
			g->dest->gen = s->gen;
			g->dest->cur = g;
		}
	/* Waiting groups are made anew from the envelope: mark them unseen. */
	for (g = m->groups; g != NULL; g = g->next)
		if (!g->running)
			g->due = -1;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		struct sched_dest *d;
		int64_t due;

		if (r->state != RCPT_PENDING || (env->flags & ENVELOPE_F_HOLD))
			continue;
		/* One-shot: a destination is tried once per message and run. */
		if (!s->c.daemon && m->tried.n > 0 &&
		    strlist_contains_nocase(&m->tried, dest_key(s, r->addr)))
			continue;
		d = dest_get(s, dest_key(s, r->addr));
		if (d->gen != s->gen) {
			d->gen = s->gen;
			d->cur = group_new(s, m, d);
			d->cur->due = -1;
		}
		g = d->cur;
		if (g->running)
			continue;
		due = r->next_try > 0 ? (int64_t)r->next_try * 1000 : 0;
		if (g->due == -1 || due < g->due)
			g->due = due;
	}
	for (g = m->groups; g != NULL; g = next) {
		next = g->next;
		if (g->running)
			continue;
		if (g->dest == NULL || g->due == -1) {
			group_free(s, g);
			continue;
		}
		if (m->force) {
			g->force = true;
			g->due = 0;
		}
		if (!s->c.daemon && !g->force && g->due > now) {
			group_free(s, g);
			continue;
		}
		group_requeue(s, g);
		n++;
	}
	m->force = false;
	return n;
}

void
sched_msg_delay(struct sched *s, struct sched_msg *m, int64_t due)
{
	struct sched_group *g;
	bool any = false;

	for (g = m->groups; g != NULL; g = g->next) {
		if (g->running)
			continue;
		g->due = due;
		g->force = false;
		group_requeue(s, g);
		any = true;
	}
	if (!any && m->running == 0) {
		g = group_new(s, m, NULL);
		g->due = due;
		heap_push(&s->due, g);
	}
	m->force = false;
}

void
sched_msg_remove(struct sched *s, struct sched_msg *m)
{
	while (m->groups != NULL)
		group_free(s, m->groups);
	hash_remove(&s->msgs, &m->node);
	strlist_free(&m->tried);
	free(m);
}

static void
msg_flush(struct sched *s, struct sched_msg *m)
{
	for (struct sched_group *g = m->groups; g != NULL; g = g->next) {
		if (g->running)
			continue;
		g->force = true;
		g->due = 0;
		if (g->dest == NULL)
			m->force = true;
		group_requeue(s, g);
	}
}

size_t
sched_flush(struct sched *s, struct sched_msg *m)
{
	size_t n = 0;

	if (m != NULL) {
		msg_flush(s, m);
		return m->groups != NULL;
	}
	for (m = sched_msg_next(s, NULL); m != NULL; m = sched_msg_next(s, m)) {
		msg_flush(s, m);
		n += m->groups != NULL;
	}
	return n;
}

/* Whether a hold of d keeps g back at now; *until: till when. */
static bool
held(const struct sched *s, const struct sched_group *g, int64_t now,
    int64_t *until)
{
	const struct sched_dest *d = g->dest;

	int64_t end = 0;

	if (!s->c.daemon || g->force || msg_expired(s, g->msg, now))
		return false;
	if (d->hold_until > now)
		end = d->hold_until;
	else if (d->probe_until > now)
		end = d->probe_until;
	else
		return false;
	/*
	 * Not past the message's expiry: then it goes whatever the hold,
	 * so that it expires on time (mxrelayd(8)).
	 */
	if (g->msg->arrival != 0) {
		time_t exp = add_sat(g->msg->arrival,
		    sched_ms_to_s(s->c.lifetime_ms));
		int64_t exp_ms = exp > (time_t)(INT64_MAX / 1000) ? INT64_MAX :
		    (int64_t)exp * 1000;

		if (exp_ms < end)
			end = exp_ms;
	}
	*until = end;
	return true;
}

enum sched_job
sched_next(struct sched *s, int64_t now, struct sched_pick *p, int64_t *wake)
{
	struct sched_group *g;
	struct sched_dest *d;
	struct sched_msg *m;
	int64_t until;

	memset(p, 0, sizeof(*p));
	for (;;) {
		if ((g = heap_top(&s->due)) == NULL) {
			*wake = -1;
			return SCHED_NONE;
		}
		if (!g->force && g->due > now) {
			*wake = g->due;
			return SCHED_NONE;
		}
		m = g->msg;
		if ((d = g->dest) == NULL) {
			/* Out of the heap; sched_msg_set() or _delay() follows. */
			heap_remove(&s->due, g);
			p->msg = m;
			p->force = m->force;
			return SCHED_LOAD;
		}
		if (held(s, g, now, &until)) {
			g->due = until;
			heap_update(&s->due, g);
			continue;
		}
		if (d->running >= s->c.dest_limit) {
			heap_remove(&s->due, g);
			g->parked = true;
			heap_push(&d->parked, g);
			continue;
		}
		if (m->running == 0 && s->open >= s->c.window) {
			*wake = -1;
			return SCHED_NONE;
		}
		break;
	}
	heap_remove(&s->due, g);
	p->msg = m;
	p->group = g;
	p->dest = d->name;
	p->force = g->force;
	if (s->c.daemon && !g->force && !msg_expired(s, m, now) &&
	    d->failures > 0) {
		d->probe_until = now + SCHED_PROBE_WAIT_MS;
		p->probe = true;
	}
	g->force = false;
	g->running = true;
	d->running++;
	if (m->running++ == 0) {
		s->open++;
		p->open = true;
	}
	return SCHED_RUN;
}

/* Out of flight: frees a slot of its destination and maybe the window's. */
static unsigned
group_stop(struct sched *s, struct sched_group *g)
{
	struct sched_dest *d = g->dest;
	struct sched_group *w;

	g->running = false;
	d->running--;
	if (d->running < s->c.dest_limit &&
	    (w = heap_pop(&d->parked)) != NULL) {
		w->parked = false;
		heap_push(&s->due, w);
	}
	if (--g->msg->running == 0) {
		s->open--;
		return SCHED_EV_CLOSED;
	}
	return 0;
}

unsigned
sched_group_done(struct sched *s, struct sched_group *g,
    const struct sched_result *r, int64_t now, struct sched_event *ev)
{
	struct sched_dest *d = g->dest;
	unsigned flags = group_stop(s, g);

	memset(ev, 0, sizeof(*ev));
	ev->dest = d->name;
	if (!s->c.daemon)
		strlist_add(&g->msg->tried, d->name);
	if (s->c.daemon && r->dest_down) {
		if (d->hold_until <= now) {
			if (d->failures < UINT32_MAX)
				d->failures++;
			ev->delay = sched_backoff(d->failures,
			    s->c.retry_min_ms, s->c.retry_max_ms);
			ev->failures = d->failures;
			d->hold_until = now + ev->delay;
			d->probe_until = 0;
			flags |= SCHED_EV_HOLD_START;
		}
	} else if (s->c.daemon && r->reached && d->failures > 0) {
		d->failures = 0;
		d->hold_until = d->probe_until = 0;
		flags |= SCHED_EV_HOLD_END;
	}
	if (s->c.daemon && r->pending) {
		g->due = (int64_t)r->next_try * 1000;
		heap_push(&s->due, g);
	} else
		group_free(s, g);
	return flags;
}

unsigned
sched_group_abort(struct sched *s, struct sched_group *g, int64_t due)
{
	unsigned flags = group_stop(s, g);

	g->due = due;
	heap_push(&s->due, g);
	return flags;
}

const struct sched_dest *
sched_hold_next(const struct sched *s, const struct sched_dest *it,
    const char **name, int64_t *until, unsigned *failures)
{
	struct hash_node *n = hash_next(&s->dests, it != NULL ? &it->node : NULL);

	for (; n != NULL; n = hash_next(&s->dests, n)) {
		const struct sched_dest *d = HASH_ENTRY(n, struct sched_dest,
		    node);

		if (d->failures == 0 && d->hold_until == 0)
			continue;
		*name = d->name;
		*until = d->hold_until;
		*failures = d->failures;
		return d;
	}
	return NULL;
}

void
sched_hold_set(struct sched *s, const char *dest, int64_t until,
    unsigned failures)
{
	struct sched_dest *d = dest_get(s, dest);

	d->hold_until = until;
	d->failures = failures;
	d->probe_until = 0;
	dest_put(s, d);
}

int64_t
sched_hold_until(const struct sched *s, const char *dest, unsigned *failures)
{
	const struct sched_dest *d = dest_find(s, dest);

	if (failures != NULL)
		*failures = d != NULL ? d->failures : 0;
	return d != NULL ? d->hold_until : 0;
}
