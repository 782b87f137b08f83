/*
 * delivery: destinations, routes and sessions (mxrelay(8), DELIVERY).
 *
 * A destination (struct dest) is a recipient domain, or the relayhost.
 * Its routes are the addresses of its exchangers in the order to try
 * them: MX preference (equal preferences shuffled by dns.c), then each
 * exchanger's addresses as DNS gave them (IPv6 first).  Message parts
 * wait in the destination's queue; sessions (struct dsess) connect to a
 * route and pull parts from the queue one after the other (up to
 * reuse_limit), so many messages share one connection and up to
 * domain_concurrency connections share one destination.  A session whose
 * queue ran dry waits idle for delivery_keep_idle() milliseconds (0, the
 * default, for a queue run that ends: QUIT at once), so that a trickle of
 * new messages rides the open connection instead of a new one each; an
 * idle session gives its global slot up at once to a destination waiting
 * for one (Postfix's connection cache, smtp_connection_cache_time_limit).
 *
 * Destinations are found by a hash of the lower-case domain ("" for the
 * relayhost).  One left with nothing queued and no session is freed from
 * the loop soon after (engine_on_gc), so that a queue run over many
 * domains holds only those it is working on; one that failed as a whole
 * or has a failed route is kept, so that the rest of the run does not
 * wait for that failure again, until delivery_gc() forgets it (the
 * daemon, before each round of new work).
 *
 * Rules, each pinned by a test in tests/e2e/t_delivery.sh:
 * - MX NXDOMAIN: bounce 5.1.2; null MX: bounce 5.1.10; MX SERVFAIL or
 *   timeout: defer 4.4.3, never fall back to the domain's A record; MX
 *   NODATA: the domain itself is the exchanger (implicit MX).
 * - An exchanger whose name has no address is skipped; none left: bounce
 *   5.4.4 when every answer was definite, defer 4.4.3 when any failed
 *   temporarily.
 * - The list is cut at this host (by name or by a listen address); nothing
 *   before it: bounce 5.4.6 (RFC 5321 §5.1).
 * - Connection failure, 4xx/5xx greeting, EHLO failure, STARTTLS refused
 *   under encrypt/verify: the route is marked failed and the part goes to
 *   the next route.  Under tls=may a failed handshake is retried on the
 *   same route in clear.
 * - MAIL 4xx: next route for that part; MAIL 5xx: bounce the part.
 * - RCPT 2xx then accepted at the dot: sent; RCPT 5xx: bounced (no next
 *   MX); RCPT 4xx: next route in the same attempt, deferred when none is
 *   left.  4xx/5xx to DATA or the dot, or the connection lost after DATA:
 *   deferred/bounced, never resent elsewhere in the same attempt (it may
 *   have been delivered).
 * - Every route failed: the part's pending recipients are deferred with
 *   the last error (4.4.1 for a refused connection).
 *
 * Every rule decides on the typed results of smtp_client.c (outcome,
 * stage, cause, reply code, enhanced status, accepted at RCPT), never on
 * the text of a reply: the text only goes to the log and to the caller
 * for DSNs.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "delivery.h"
#include "hash.h"
#include "log.h"
#include "status.h"
#include "util.h"

enum dest_state {
	DEST_IDLE,		/* nothing looked up yet */
	DEST_RESOLVING,		/* MX or address lookups in flight */
	DEST_READY,		/* routes known */
	DEST_FAILED,		/* the whole destination fails (DNS, loop) */
};

struct route {
	char			*host;
	unsigned		 pref;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	bool			 failed;	/* connection-level failure */
	bool			 tls_broken;	/* handshake failed under may */
};

struct mxent {
	struct dest		*d;
	char			*host;
	unsigned		 pref;
	struct dns_req		*req;
	enum dns_status		 st;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs;
};

struct dest {
	struct delivery_engine	*e;
	struct hash_node	 node;		/* e->byname, under key */
	LIST_ENTRY(dest)	 link;		/* e->dests */
	LIST_ENTRY(dest)	 gclink;	/* e->gcq while gc_queued */
	bool			 gc_queued;
	struct dest		*wnext;		/* waiting for a global slot */
	bool			 waiting;
	char			*key;		/* lower-case domain; "" relayhost */
	char			*name;		/* what to look up */
	bool			 by_mx;
	unsigned		 port;
	enum tls_policy		 tls;
	enum dest_state		 state;
	struct dns_req		*mxreq;
	struct mxent		*mx;
	size_t			 nmx;
	size_t			 mx_pending;
	struct route		*routes;
	size_t			 nroutes;

	/* DEST_FAILED: what every part gets */
	enum outcome		 fail_outcome;
	char			 fail_status[16];
	char			 fail_reply[DELIVERY_REPLY_MAX];

	/* the last route failure, for parts that run out of routes */
	enum smtpc_cause	 last_cause;
	int			 last_code;
	char			 last_status[16];
	char			 last_reply[DELIVERY_REPLY_MAX];
	char			 last_mta[256];

	struct delivery_msg	*qhead, *qtail;
	size_t			 nqueued;
	struct dsess		*idle;		/* sessions waiting for a part */
	uint64_t		 ready_ms;	/* when the routes were built */
	unsigned		 nsess;
	unsigned		 nconnecting;
	unsigned		 rr;		/* spreads sessions over equal MXs */
};

struct dsess {
	struct dest		*d;
	size_t			 ri;
	struct smtpc		*s;
	struct delivery_msg	*cur;
	struct smtpc_msg	 m;
	bool			 ready;
	bool			 clear;		/* TLS off: retry after a failed handshake */
	bool			 parked;	/* on d->idle */
	bool			 woken;		/* first part after idling */
	struct dsess		*inext, *iprev;
	struct ev_timer		 idle_timer;
};

LIST_HEAD(dest_list, dest);

struct delivery_engine {
	struct ev_loop		*loop;
	struct dns		*dns;
	struct delivery_conf	 c;
	struct hash		 byname;	/* every destination, by key */
	struct dest_list	 dests;		/* the same, newest first */
	struct dest_list	 gcq;		/* may have nothing left to do */
	struct ev_timer		 gc_timer;	/* looks at gcq from the loop */
	struct dest		*whead, *wtail;	/* waiting for a slot */
	unsigned		 active;	/* sessions in all */
	unsigned		 nidle;		/* of which parked */
	unsigned		 keep_idle_ms;	/* 0: QUIT when the queue is dry */
	size_t			 pending;	/* parts submitted, not done */
};

/* An idle session keeps routes no older than this (see sess_may_park). */
#define DEST_ROUTES_MAX_MS	60000

static void	 dest_pump(struct dest *);
static void	 dest_pump_parts(struct dest *);
static bool	 dest_unused(const struct dest *);
static bool	 dest_learnt(const struct dest *);
static void	 dest_gc_note(struct dest *);
static void	 engine_on_gc(void *);
static void	 dest_forget(struct dest *);
static size_t	 route_spread(struct dest *, size_t);
static void	 dest_resolve(struct dest *);
static void	 dest_fail(struct dest *, enum outcome, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	 on_mx(void *, enum dns_status, const struct dns_mx *, size_t,
		    const char *);
static void	 on_mx_addrs(void *, enum dns_status,
		    const struct sockaddr_storage *, size_t, const char *);
static void	 routes_build(struct dest *);
static void	 sess_start(struct dest *, size_t);
static void	 sess_next(struct dsess *);
static struct delivery_msg *dest_part_for(const struct dest *, size_t);
static bool	 sess_may_park(const struct dsess *);
static void	 sess_park(struct dsess *);
static void	 sess_unpark(struct dsess *);
static void	 sess_on_idle_timeout(void *);
static bool	 engine_close_one_idle(struct delivery_engine *);
static void	 sess_on_ready(void *, struct smtpc *);
static void	 sess_on_done(void *, struct smtpc *, const struct smtpc_result *);
static void	 sess_mail_failed(struct dsess *, struct delivery_msg *,
		    const struct smtpc_reason *, bool);
static void	 sess_on_closed(void *, struct smtpc *,
		    const struct smtpc_reason *);
static void	 reason_status(const struct smtpc_reason *, char *, size_t);
static void	 dest_note_failure(struct dest *, const struct smtpc_reason *,
		    const char *, const char *);
static void	 rcpt_note(struct delivery_rcpt *, const struct smtpc_reason *,
		    bool, const char *, const char *, const char *);
static void	 rcpt_final(struct dest *, struct dsess *, struct delivery_msg *,
		    size_t, enum outcome);
static bool	 part_finished(const struct delivery_msg *);
static void	 part_complete(struct dest *, struct delivery_msg *);
static void	 dest_enqueue(struct dest *, struct delivery_msg *, bool);
static void	 dest_dequeue(struct dest *, struct delivery_msg *);
static void	 engine_wake(struct delivery_engine *);

static const struct smtpc_ops sess_ops = {
	.ready = sess_on_ready,
	.done = sess_on_done,
	.closed = sess_on_closed,
};

/*
 * Reasons and status codes.
 */

/*
 * The RFC 3463 code for a reason: the one the reply (or smtp_client)
 * gave, else the class default of the reply code (4.0.0 without one).
 */
static void
reason_status(const struct smtpc_reason *why, char *status, size_t len)
{
	if (why->status[0] != '\0')
		util_strlcpy(status, why->status, len);
	else
		status_class_default(why->code, status, len);
}

/* A route failed: what parts that run out of routes are deferred with. */
static void
dest_note_failure(struct dest *d, const struct smtpc_reason *why,
    const char *status, const char *mta)
{
	d->last_cause = why->cause;
	d->last_code = why->code;
	util_strlcpy(d->last_status, status, sizeof(d->last_status));
	util_strlcpy(d->last_reply, why->text, sizeof(d->last_reply));
	util_strlcpy(d->last_mta, mta, sizeof(d->last_mta));
}

static const char *
outcome_to_text(enum outcome o)
{
	switch (o) {
	case OUTCOME_OK:
		return "sent";
	case OUTCOME_PERMFAIL:
		return "bounced";
	default:
		return "deferred";
	}
}

/*
 * Engine.
 */

struct delivery_engine *
delivery_engine_new(struct ev_loop *loop, struct dns *dns,
    const struct delivery_conf *c)
{
	struct delivery_engine *e = xcalloc(1, sizeof(*e));

	e->loop = loop;
	e->dns = dns;
	e->c = *c;
	if (e->c.concurrency == 0)
		e->c.concurrency = 1;
	if (e->c.domain_concurrency == 0)
		e->c.domain_concurrency = 1;
	if (e->c.reuse_limit == 0)
		e->c.reuse_limit = 1;
	hash_init(&e->byname);
	LIST_INIT(&e->dests);
	LIST_INIT(&e->gcq);
	ev_timer_init(&e->gc_timer, engine_on_gc, e);
	return e;
}

static void
dest_free(struct dest *d)
{
	if (d->mxreq != NULL)
		dns_cancel(d->mxreq);
	for (size_t i = 0; i < d->nmx; i++) {
		if (d->mx[i].req != NULL)
			dns_cancel(d->mx[i].req);
		free(d->mx[i].host);
		free(d->mx[i].addrs);
	}
	free(d->mx);
	for (size_t i = 0; i < d->nroutes; i++)
		free(d->routes[i].host);
	free(d->routes);
	free(d->key);
	free(d->name);
	free(d);
}

/* Take d out of the engine and free it. */
static void
dest_forget(struct dest *d)
{
	struct delivery_engine *e = d->e;

	hash_remove(&e->byname, &d->node);
	LIST_REMOVE(d, link);
	if (d->gc_queued)
		LIST_REMOVE(d, gclink);
	dest_free(d);
}

void
delivery_engine_free(struct delivery_engine *e)
{
	struct dest *d;

	if (e == NULL)
		return;
	/* Sessions are owned by the smtpc layer's callbacks; the caller
	 * only frees an idle engine or is exiting. */
	ev_timer_del(e->loop, &e->gc_timer);
	while ((d = LIST_FIRST(&e->dests)) != NULL) {
		LIST_REMOVE(d, link);
		dest_free(d);
	}
	hash_free(&e->byname);
	free(e);
}

/* Nothing queued, no session, no lookup: nothing holds d. */
static bool
dest_unused(const struct dest *d)
{
	return d->qhead == NULL && d->nsess == 0 && !d->waiting &&
	    d->state != DEST_RESOLVING;
}

/*
 * Has d learnt something that the next part should not have to learn
 * again: the destination failed as a whole (a temporary DNS failure is
 * not cached by dns.c), or a route failed or broke TLS?  Routes that all
 * worked can be built again from dns.c's cache.
 */
static bool
dest_learnt(const struct dest *d)
{
	if (d->state == DEST_FAILED)
		return true;
	for (size_t i = 0; i < d->nroutes; i++)
		if (d->routes[i].failed || d->routes[i].tls_broken)
			return true;
	return false;
}

/*
 * d may have just become unused: look at it again from the loop, where
 * no caller holds it (dest_pump() runs nested inside part callbacks).
 */
static void
dest_gc_note(struct dest *d)
{
	struct delivery_engine *e = d->e;

	if (d->gc_queued || !dest_unused(d))
		return;
	d->gc_queued = true;
	LIST_INSERT_HEAD(&e->gcq, d, gclink);
	if (!ev_timer_pending(&e->gc_timer))
		ev_timer_add(e->loop, &e->gc_timer, 0);
}

/*
 * Free the destinations that are still unused and have learnt nothing,
 * so that a queue run over many domains keeps only those it is working
 * on (and the failed ones, for the rest of the run).
 */
static void
engine_on_gc(void *arg)
{
	struct delivery_engine *e = arg;
	struct dest *d;

	while ((d = LIST_FIRST(&e->gcq)) != NULL) {
		LIST_REMOVE(d, gclink);
		d->gc_queued = false;
		if (dest_unused(d) && !dest_learnt(d))
			dest_forget(d);
	}
}

void
delivery_gc(struct delivery_engine *e)
{
	struct dest *d, *next;

	for (d = LIST_FIRST(&e->dests); d != NULL; d = next) {
		next = LIST_NEXT(d, link);
		if (dest_unused(d))
			dest_forget(d);
	}
}

size_t
delivery_ndest(const struct delivery_engine *e)
{
	return e->byname.n;
}

bool
delivery_idle(const struct delivery_engine *e)
{
	return e->pending == 0 && e->active == 0;
}

void
delivery_keep_idle(struct delivery_engine *e, unsigned ms)
{
	e->keep_idle_ms = ms;
	if (ms == 0)
		delivery_close_idle(e);
}

void
delivery_close_idle(struct delivery_engine *e)
{
	e->keep_idle_ms = 0;
	while (engine_close_one_idle(e))
		;
}

/* The destination of domain (any case), or of the relayhost: made on demand. */
static struct dest *
dest_get(struct delivery_engine *e, const char *domain)
{
	const struct hostport *rh = e->c.relayhost;
	struct hash_node *n;
	struct dest *d;
	char *key;

	key = xstrdup(rh != NULL ? "" : domain);
	for (char *p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((n = hash_find(&e->byname, key)) != NULL) {
		free(key);
		return HASH_ENTRY(n, struct dest, node);
	}
	d = xcalloc(1, sizeof(*d));
	d->e = e;
	d->key = key;
	if (rh != NULL) {
		d->name = xstrdup(rh->host);
		d->by_mx = !rh->bracketed;
		d->port = rh->port != 0 ? rh->port : e->c.smtp_port;
		d->tls = conf_tls_policy_for(e->c.tls, e->c.tls_policies,
		    e->c.ntls_policies, rh->host);
	} else {
		d->name = xstrdup(domain);
		d->by_mx = true;
		d->port = e->c.smtp_port;
		d->tls = conf_tls_policy_for(e->c.tls, e->c.tls_policies,
		    e->c.ntls_policies, domain);
	}
	hash_insert(&e->byname, &d->node, d->key);
	LIST_INSERT_HEAD(&e->dests, d, link);
	return d;
}

void
delivery_submit(struct delivery_engine *e, const char *domain,
    struct delivery_msg *m)
{
	struct dest *d = dest_get(e, domain);

	m->route_min = 0;
	m->dest_down = false;
	for (size_t i = 0; i < m->nrcpt; i++) {
		m->rcpt[i].final = false;
		m->rcpt[i].noted = false;
		m->rcpt[i].outcome = OUTCOME_TEMPFAIL;
		m->rcpt[i].cause = SMTPC_CAUSE_NONE;
		m->rcpt[i].code = 0;
		m->rcpt[i].accepted = false;
		m->rcpt[i].status[0] = '\0';
		m->rcpt[i].reply[0] = '\0';
		m->rcpt[i].remote_mta[0] = '\0';
	}
	e->pending++;
	dest_enqueue(d, m, false);
	dest_pump(d);
}

/*
 * The queue of parts waiting in a destination.
 */

static void
dest_enqueue(struct dest *d, struct delivery_msg *m, bool front)
{
	m->next = NULL;
	if (front) {
		m->next = d->qhead;
		d->qhead = m;
		if (d->qtail == NULL)
			d->qtail = m;
	} else {
		if (d->qtail != NULL)
			d->qtail->next = m;
		else
			d->qhead = m;
		d->qtail = m;
	}
	d->nqueued++;
}

static void
dest_dequeue(struct dest *d, struct delivery_msg *m)
{
	struct delivery_msg **pp, *prev = NULL;

	for (pp = &d->qhead; *pp != NULL; prev = *pp, pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			if (d->qtail == m)
				d->qtail = prev;
			m->next = NULL;
			d->nqueued--;
			return;
		}
}

/* First usable route at or after i, or nroutes. */
static size_t
route_from(const struct dest *d, size_t i)
{
	while (i < d->nroutes && d->routes[i].failed)
		i++;
	return i;
}

/*
 * Sessions of one destination take turns over the usable routes that share
 * the preference of route ri, so that equal MXs share the load within a
 * run too (dns.c already shuffled their order).
 */
static size_t
route_spread(struct dest *d, size_t ri)
{
	size_t n = 0, k;

	for (size_t j = ri; j < d->nroutes && d->routes[j].pref ==
	    d->routes[ri].pref; j++)
		if (!d->routes[j].failed)
			n++;
	if (n <= 1)
		return ri;
	k = d->rr++ % n;
	for (size_t j = ri; ; j++)
		if (!d->routes[j].failed && k-- == 0)
			return j;
}

/*
 * Recipient and part outcomes.
 */

/*
 * Record what a recipient's outcome rests on, before it is final (a 4xx
 * of its own is kept while the next route is tried).  why is NULL when no
 * session had a say (DNS, routing); status NULL: from why; text NULL:
 * why's text.
 */
static void
rcpt_note(struct delivery_rcpt *r, const struct smtpc_reason *why,
    bool accepted, const char *status, const char *text, const char *mta)
{
	r->noted = true;
	r->cause = why != NULL ? why->cause : SMTPC_CAUSE_NONE;
	r->code = why != NULL ? why->code : 0;
	r->accepted = accepted;
	if (status != NULL)
		util_strlcpy(r->status, status, sizeof(r->status));
	else
		reason_status(why, r->status, sizeof(r->status));
	util_strlcpy(r->reply, text != NULL ? text : why->text,
	    sizeof(r->reply));
	util_strlcpy(r->remote_mta, mta != NULL ? mta : "",
	    sizeof(r->remote_mta));
}

/* The noted reason becomes the recipient's outcome: one log line. */
static void
rcpt_final(struct dest *d, struct dsess *s, struct delivery_msg *m, size_t i,
    enum outcome o)
{
	struct delivery_rcpt *r = &m->rcpt[i];
	char relay[512], tls[64], esc[DELIVERY_REPLY_MAX * 2];
	long long delay;

	if (r->final)
		return;
	r->final = true;
	r->outcome = o;

	if (s != NULL && s->s != NULL) {
		util_strlcpy(relay, smtpc_peer_text(s->s), sizeof(relay));
		snprintf(tls, sizeof(tls), "%s%s", smtpc_tls_version(s->s),
		    !smtpc_tls_active(s->s) ? "" :
		    smtpc_tls_verified(s->s) ? "/verified" : "/unverified");
	} else {
		snprintf(relay, sizeof(relay), "none");
		snprintf(tls, sizeof(tls), "none");
	}
	delay = (long long)(time(NULL) - m->arrival);
	if (delay < 0)
		delay = 0;
	log_info("%s: to=<%s>, relay=%s, tls=%s, delay=%llds, dsn=%s, "
	    "status=%s (%s)", m->id, r->addr, relay, tls, delay, r->status,
	    outcome_to_text(o), util_escape(esc, sizeof(esc), r->reply));
	(void)d;
}

static bool
part_finished(const struct delivery_msg *m)
{
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!m->rcpt[i].final)
			return false;
	return true;
}

static void
part_complete(struct dest *d, struct delivery_msg *m)
{
	struct delivery_engine *e = d->e;

	free(m->addrs);
	free(m->addr_idx);
	m->addrs = NULL;
	m->addr_idx = NULL;
	m->naddrs = 0;
	e->pending--;
	m->done(m->arg, m);
}

/*
 * Every pending recipient of m gets the same outcome, then m is done
 * (rcpt_note() says what why, status and text may be).
 */
static void
part_fail(struct dest *d, struct dsess *s, struct delivery_msg *m,
    enum outcome o, const struct smtpc_reason *why, const char *status,
    const char *text, const char *mta)
{
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->rcpt[i].final)
			continue;
		rcpt_note(&m->rcpt[i], why, false, status, text, mta);
		rcpt_final(d, s, m, i, o);
	}
	part_complete(d, m);
}

static void
dest_fail(struct dest *d, enum outcome o, const char *status,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->fail_reply, sizeof(d->fail_reply), fmt, ap);
	va_end(ap);
	util_strlcpy(d->fail_status, status, sizeof(d->fail_status));
	d->fail_outcome = o;
	d->state = DEST_FAILED;
	dest_pump(d);
}

/*
 * Looking up the routes.
 */

static void
dest_resolve(struct dest *d)
{
	struct in6_addr a6;
	struct in_addr a4;

	d->state = DEST_RESOLVING;
	if (!d->by_mx && (inet_pton(AF_INET, d->name, &a4) == 1 ||
	    inet_pton(AF_INET6, d->name, &a6) == 1)) {
		/* [address]:port relayhost: no DNS at all. */
		struct sockaddr_storage ss;

		memset(&ss, 0, sizeof(ss));
		if (inet_pton(AF_INET, d->name, &a4) == 1) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			sin->sin_family = AF_INET;
			sin->sin_addr = a4;
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			sin6->sin6_family = AF_INET6;
			sin6->sin6_addr = a6;
		}
		d->mx = xcalloc(1, sizeof(*d->mx));
		d->nmx = 1;
		d->mx[0].d = d;
		d->mx[0].host = xstrdup(d->name);
		d->mx[0].st = DNS_OK;
		d->mx[0].addrs = xmalloc(sizeof(ss));
		d->mx[0].addrs[0] = ss;
		d->mx[0].naddrs = 1;
		routes_build(d);
		return;
	}
	if (d->by_mx)
		d->mxreq = dns_mx_lookup(d->e->dns, d->name, on_mx, d);
	else
		on_mx(d, DNS_NODATA, NULL, 0, NULL);
}

static bool
is_self_name(const struct dest *d, const char *host)
{
	size_t a = strlen(host), b = strlen(d->e->c.hostname);

	if (a > 0 && host[a - 1] == '.')
		a--;
	return a == b && strncasecmp(host, d->e->c.hostname, a) == 0;
}

static void
on_mx(void *arg, enum dns_status st, const struct dns_mx *mx, size_t n,
    const char *errtext)
{
	struct dest *d = arg;
	size_t keep = n;
	bool cut = false;

	d->mxreq = NULL;
	switch (st) {
	case DNS_OK:
		break;
	case DNS_NODATA:
		/* RFC 5321 §5.1: no MX, the domain itself is the exchanger. */
		d->mx = xcalloc(1, sizeof(*d->mx));
		d->nmx = d->mx_pending = 1;
		d->mx[0].d = d;
		d->mx[0].host = xstrdup(d->name);
		d->mx[0].req = dns_addr_lookup(d->e->dns, d->name, on_mx_addrs,
		    &d->mx[0]);
		return;
	case DNS_NXDOMAIN:
		dest_fail(d, OUTCOME_PERMFAIL, "5.1.2", "Host or domain name not "
		    "found. Name service error for name=%s type=MX: Host not "
		    "found", d->name);
		return;
	case DNS_NULLMX:
		dest_fail(d, OUTCOME_PERMFAIL, "5.1.10", "Domain %s does not "
		    "accept mail (null MX)", d->name);
		return;
	default:
		/* Never fall back to the A record when the MX query failed. */
		dest_fail(d, OUTCOME_TEMPFAIL, "4.4.3", "Host or domain name "
		    "lookup failed temporarily: name=%s type=MX: %s", d->name,
		    errtext != NULL ? errtext : "temporary failure");
		return;
	}

	/* RFC 5321 §5.1: drop ourselves and every MX not better than us. */
	for (size_t i = 0; i < n; i++)
		if (is_self_name(d, mx[i].host)) {
			for (keep = 0; keep < n && mx[keep].pref < mx[i].pref; keep++)
				;
			cut = true;
			break;
		}
	if (keep == 0) {
		if (cut)
			dest_fail(d, OUTCOME_PERMFAIL, "5.4.6", "mail for %s loops "
			    "back to myself", d->name);
		else
			dest_fail(d, OUTCOME_PERMFAIL, "5.4.4", "no exchanger for %s",
			    d->name);
		return;
	}
	d->mx = xcalloc(keep, sizeof(*d->mx));
	d->nmx = d->mx_pending = keep;
	for (size_t i = 0; i < keep; i++) {
		d->mx[i].d = d;
		d->mx[i].host = xstrdup(mx[i].host);
		d->mx[i].pref = mx[i].pref;
	}
	/* Lookups may complete only from the loop, so start them all. */
	for (size_t i = 0; i < keep; i++)
		d->mx[i].req = dns_addr_lookup(d->e->dns, d->mx[i].host,
		    on_mx_addrs, &d->mx[i]);
}

static void
on_mx_addrs(void *arg, enum dns_status st, const struct sockaddr_storage *addrs,
    size_t n, const char *errtext)
{
	struct mxent *x = arg;
	struct dest *d = x->d;

	(void)errtext;
	x->req = NULL;
	x->st = st;
	if (st == DNS_OK && n > 0) {
		x->addrs = xreallocarray(NULL, n, sizeof(*addrs));
		memcpy(x->addrs, addrs, n * sizeof(*addrs));
		x->naddrs = n;
	}
	if (--d->mx_pending == 0)
		routes_build(d);
}

static bool
addr_is_self(const struct dest *d, const struct sockaddr_storage *ss,
    unsigned port)
{
	const struct delivery_conf *c = &d->e->c;

	for (size_t i = 0; i < c->nself; i++) {
		unsigned char buf[16];

		if (c->self[i].port != port)
			continue;
		if (ss->ss_family == AF_INET &&
		    inet_pton(AF_INET, c->self[i].host, buf) == 1 &&
		    memcmp(buf, &((const struct sockaddr_in *)ss)->sin_addr, 4) == 0)
			return true;
		if (ss->ss_family == AF_INET6 &&
		    inet_pton(AF_INET6, c->self[i].host, buf) == 1 &&
		    memcmp(buf, &((const struct sockaddr_in6 *)ss)->sin6_addr,
		    16) == 0)
			return true;
	}
	return false;
}

static void
routes_build(struct dest *d)
{
	size_t n = 0, keep = d->nmx;
	bool temp = false, cut = false;

	/* An exchanger that is one of our listen addresses is this host. */
	for (size_t i = 0; i < d->nmx && !cut; i++)
		for (size_t j = 0; j < d->mx[i].naddrs; j++)
			if (addr_is_self(d, &d->mx[i].addrs[j], d->port)) {
				for (keep = 0; keep < d->nmx &&
				    d->mx[keep].pref < d->mx[i].pref; keep++)
					;
				cut = true;
				break;
			}
	for (size_t i = 0; i < keep; i++) {
		n += d->mx[i].naddrs;
		if (d->mx[i].st == DNS_TEMPFAIL)
			temp = true;
	}
	if (n == 0) {
		if (cut)
			dest_fail(d, OUTCOME_PERMFAIL, "5.4.6", "mail for %s loops "
			    "back to myself", d->name);
		else if (temp)
			dest_fail(d, OUTCOME_TEMPFAIL, "4.4.3", "Host or domain "
			    "name lookup failed temporarily: no address for the "
			    "exchangers of %s", d->name);
		else
			dest_fail(d, OUTCOME_PERMFAIL, "5.4.4", "Host or domain "
			    "name not found: no address for the exchangers of %s "
			    "(%s)", d->name, d->mx[0].host);
		return;
	}
	d->routes = xcalloc(n, sizeof(*d->routes));
	for (size_t i = 0; i < keep; i++)
		for (size_t j = 0; j < d->mx[i].naddrs; j++) {
			struct route *r = &d->routes[d->nroutes++];

			r->host = xstrdup(d->mx[i].host);
			r->pref = d->mx[i].pref;
			r->ss = d->mx[i].addrs[j];
			if (r->ss.ss_family == AF_INET6) {
				((struct sockaddr_in6 *)&r->ss)->sin6_port =
				    htons((uint16_t)d->port);
				r->sslen = sizeof(struct sockaddr_in6);
			} else {
				((struct sockaddr_in *)&r->ss)->sin_port =
				    htons((uint16_t)d->port);
				r->sslen = sizeof(struct sockaddr_in);
			}
		}
	d->state = DEST_READY;
	d->ready_ms = ev_now(d->e->loop);
	dest_pump(d);
}

/*
 * Moving parts to sessions.
 */

static void
engine_wait(struct delivery_engine *e, struct dest *d)
{
	if (d->waiting)
		return;
	d->waiting = true;
	d->wnext = NULL;
	if (e->wtail != NULL)
		e->wtail->wnext = d;
	else
		e->whead = d;
	e->wtail = d;
	/* A slot held by an idle session elsewhere comes free at its QUIT. */
	(void)engine_close_one_idle(e);
}

/* QUIT one parked session (its slot is freed when it has closed). */
static bool
engine_close_one_idle(struct delivery_engine *e)
{
	struct dest *d;
	struct dsess *s;

	if (e->nidle == 0)
		return false;
	LIST_FOREACH(d, &e->dests, link)
		if ((s = d->idle) != NULL) {
			sess_unpark(s);
			smtpc_quit(s->s);
			return true;
		}
	return false;
}

/* A global slot was freed: let waiting destinations start sessions. */
static void
engine_wake(struct delivery_engine *e)
{
	while (e->whead != NULL && e->active < e->c.concurrency) {
		struct dest *d = e->whead;

		e->whead = d->wnext;
		if (e->whead == NULL)
			e->wtail = NULL;
		d->waiting = false;
		dest_pump(d);
	}
}

/* Move d's parts on, then see whether d has anything left to do. */
static void
dest_pump(struct dest *d)
{
	dest_pump_parts(d);
	dest_gc_note(d);
}

static void
dest_pump_parts(struct dest *d)
{
	struct delivery_engine *e = d->e;
	struct delivery_msg *m, *next;

	switch (d->state) {
	case DEST_IDLE:
		if (d->qhead != NULL)
			dest_resolve(d);
		return;
	case DEST_RESOLVING:
		return;
	case DEST_FAILED:
		while ((m = d->qhead) != NULL) {
			dest_dequeue(d, m);
			m->dest_down = d->fail_outcome == OUTCOME_TEMPFAIL;
			part_fail(d, NULL, m, d->fail_outcome, NULL,
			    d->fail_status, d->fail_reply, NULL);
		}
		return;
	case DEST_READY:
		break;
	}

	/* Parts with no route left are deferred with the last error. */
	for (m = d->qhead; m != NULL; m = next) {
		next = m->next;
		if (route_from(d, m->route_min) < d->nroutes)
			continue;
		dest_dequeue(d, m);
		for (size_t i = 0; i < m->nrcpt; i++) {
			struct delivery_rcpt *r = &m->rcpt[i];

			if (r->final)
				continue;
			/* A recipient that got its own 4xx keeps that reply. */
			if (!r->noted) {
				struct smtpc_reason last;

				memset(&last, 0, sizeof(last));
				last.cause = d->last_cause;
				last.code = d->last_code;
				m->dest_down = true;
				rcpt_note(r, &last, false, d->last_status[0] ?
				    d->last_status : "4.4.1", d->last_reply[0] ?
				    d->last_reply : "no exchanger could be reached",
				    d->last_mta);
			}
			rcpt_final(d, NULL, m, i, OUTCOME_TEMPFAIL);
		}
		part_complete(d, m);
	}

	/* Parked sessions first, each to a part its route may carry. */
	for (struct dsess *s = d->idle, *snext; s != NULL && d->qhead != NULL;
	    s = snext) {
		snext = s->inext;
		if (dest_part_for(d, s->ri) == NULL)
			continue;
		sess_unpark(s);
		s->woken = true;
		sess_next(s);
	}

	/* Open sessions while parts wait for one (and limits allow). */
	while (d->nqueued > d->nconnecting) {
		if (d->nsess >= e->c.domain_concurrency)
			break;
		if (e->active >= e->c.concurrency) {
			engine_wait(e, d);
			break;
		}
		sess_start(d, route_spread(d, route_from(d, d->qhead->route_min)));
	}
}

static void
sess_start(struct dest *d, size_t ri)
{
	struct delivery_engine *e = d->e;
	struct route *r = &d->routes[ri];
	struct smtpc_params p;
	struct dsess *s = xcalloc(1, sizeof(*s));

	s->d = d;
	s->ri = ri;
	s->clear = r->tls_broken;
	ev_timer_init(&s->idle_timer, sess_on_idle_timeout, s);
	memset(&p, 0, sizeof(p));
	p.helo_name = e->c.hostname;
	p.peer_name = r->host;
	p.tls = s->clear ? TLS_NONE : d->tls;
	p.tls_ctx = p.tls == TLS_VERIFY ? e->c.tls_ctx_verify : e->c.tls_ctx;
	if (p.tls_ctx == NULL)
		p.tls = TLS_NONE;
	if (e->c.relayhost != NULL) {
		p.auth_user = e->c.auth_user;
		p.auth_pass = e->c.auth_pass;
	}
	p.timeouts = e->c.timeouts;
	e->active++;
	d->nsess++;
	d->nconnecting++;
	s->s = smtpc_new(e->loop, (struct sockaddr *)&r->ss, r->sslen, &p,
	    &sess_ops, s);
}

/* The first queued part that may go over route ri. */
static struct delivery_msg *
dest_part_for(const struct dest *d, size_t ri)
{
	struct delivery_msg *m;

	for (m = d->qhead; m != NULL; m = m->next)
		if (route_from(d, m->route_min) <= ri)
			return m;
	return NULL;
}

/*
 * May a session with nothing to carry wait idle for the next part?  Only
 * on a route of the best preference: new parts go there first, and one
 * that a session on MX 20 took (MX 10 said 4xx to its recipient) must not
 * draw the next messages away from MX 10.  Not when a part is queued that
 * it cannot take (another route must get the slot), nor when another
 * destination waits for a global slot, nor while a route of its
 * destination is marked failed or its routes are older than
 * DEST_ROUTES_MAX_MS: an idle session keeps the destination from
 * delivery_gc(), and the next message should look the routes up and try
 * the exchangers afresh.
 */
static bool
sess_may_park(const struct dsess *s)
{
	const struct dest *d = s->d;
	const struct delivery_engine *e = d->e;

	if (e->keep_idle_ms == 0 || e->whead != NULL || d->qhead != NULL)
		return false;
	if (d->routes[s->ri].pref != d->routes[0].pref ||
	    ev_now(e->loop) - d->ready_ms > DEST_ROUTES_MAX_MS)
		return false;
	for (size_t i = 0; i < d->nroutes; i++)
		if (d->routes[i].failed || d->routes[i].tls_broken)
			return false;
	return true;
}

/* Nothing to carry now: wait idle a while. */
static void
sess_park(struct dsess *s)
{
	struct dest *d = s->d;
	struct delivery_engine *e = d->e;

	s->parked = true;
	s->iprev = NULL;
	s->inext = d->idle;
	if (d->idle != NULL)
		d->idle->iprev = s;
	d->idle = s;
	e->nidle++;
	ev_timer_add(e->loop, &s->idle_timer, e->keep_idle_ms);
}

static void
sess_unpark(struct dsess *s)
{
	struct dest *d = s->d;

	if (!s->parked)
		return;
	s->parked = false;
	if (s->iprev != NULL)
		s->iprev->inext = s->inext;
	else
		d->idle = s->inext;
	if (s->inext != NULL)
		s->inext->iprev = s->iprev;
	s->inext = s->iprev = NULL;
	d->e->nidle--;
	ev_timer_del(d->e->loop, &s->idle_timer);
}

static void
sess_on_idle_timeout(void *arg)
{
	struct dsess *s = arg;

	sess_unpark(s);
	smtpc_quit(s->s);
}

/* Take the next part this session may carry, or idle, or say goodbye. */
static void
sess_next(struct dsess *s)
{
	struct dest *d = s->d;
	struct delivery_engine *e = d->e;
	struct delivery_msg *m;
	size_t n = 0;

	s->cur = NULL;
	if (d->routes[s->ri].failed ||
	    smtpc_msgs_sent(s->s) >= e->c.reuse_limit) {
		smtpc_quit(s->s);
		return;
	}
	if ((m = dest_part_for(d, s->ri)) == NULL) {
		if (sess_may_park(s))
			sess_park(s);
		else
			smtpc_quit(s->s);
		return;
	}
	dest_dequeue(d, m);
	s->cur = m;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!m->rcpt[i].final)
			n++;
	free(m->addrs);
	free(m->addr_idx);
	m->addrs = xcalloc(n, sizeof(*m->addrs));
	m->addr_idx = xcalloc(n, sizeof(*m->addr_idx));
	m->naddrs = 0;
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!m->rcpt[i].final) {
			m->addr_idx[m->naddrs] = i;
			m->addrs[m->naddrs++] = m->rcpt[i].addr;
		}
	memset(&s->m, 0, sizeof(s->m));
	s->m.sender = m->sender;
	s->m.rcpts = m->addrs;
	s->m.nrcpt = m->naddrs;
	s->m.body_fd = m->body_fd;
	s->m.size = m->size;
	s->m.eightbit = m->eightbit;
	if (smtpc_send(s->s, &s->m) == -1) {
		/* The session cannot take it: put it back for another. */
		s->cur = NULL;
		dest_enqueue(d, m, true);
		smtpc_quit(s->s);
	}
}

static void
sess_on_ready(void *arg, struct smtpc *sc)
{
	struct dsess *s = arg;

	(void)sc;
	s->ready = true;
	s->d->nconnecting--;
	sess_next(s);
}

static void
sess_on_done(void *arg, struct smtpc *sc, const struct smtpc_result *res)
{
	struct dsess *s = arg;
	struct dest *d = s->d;
	struct delivery_msg *m = s->cur;
	const struct smtpc_reason *tx = &res->why;
	const char *mta = d->routes[s->ri].host;
	bool retry_next = false, woken = s->woken;

	(void)sc;
	s->cur = NULL;
	s->woken = false;
	if (m == NULL)
		return;
	if (tx->stage == SMTPC_STAGE_MAIL && tx->outcome != OUTCOME_OK) {
		sess_mail_failed(s, m, tx, woken);
		return;
	}

	for (size_t k = 0; k < res->nrcpt && k < m->naddrs; k++) {
		size_t i = m->addr_idx[k];
		struct delivery_rcpt *r = &m->rcpt[i];
		const struct smtpc_rcpt_result *rr = &res->rcpt[k];
		const struct smtpc_reason *why = &rr->why;

		switch (why->outcome) {
		case OUTCOME_OK:
		case OUTCOME_PERMFAIL:
			rcpt_note(r, why, rr->accepted, NULL, NULL, mta);
			rcpt_final(d, s, m, i, why->outcome);
			break;
		default:
			if (rr->accepted && (why->stage == SMTPC_STAGE_DATA ||
			    why->stage == SMTPC_STAGE_DOT)) {
				/*
				 * Accepted at RCPT, then the transaction
				 * failed: it may have been delivered, so it
				 * is never sent elsewhere in this attempt.
				 * No SMTP reply at all: the connection was
				 * lost or timed out (4.4.2).
				 */
				rcpt_note(r, why, true,
				    why->cause == SMTPC_CAUSE_REPLY ? NULL :
				    "4.4.2", why->text[0] != '\0' ? NULL :
				    "lost connection after DATA", mta);
				rcpt_final(d, s, m, i, OUTCOME_TEMPFAIL);
				break;
			}
			/* A 4xx of its own at RCPT: try the next route. */
			rcpt_note(r, why, rr->accepted,
			    why->cause == SMTPC_CAUSE_REPLY ? NULL : "4.4.2",
			    NULL, mta);
			retry_next = true;
			break;
		}
	}

	if (part_finished(m))
		part_complete(d, m);
	else if (retry_next) {
		m->route_min = s->ri + 1;
		dest_enqueue(d, m, true);
		dest_pump(d);
	} else
		/* Nothing said about some recipients: defer them. */
		part_fail(d, s, m, OUTCOME_TEMPFAIL, tx, "4.4.2",
		    tx->text[0] != '\0' ? NULL : "lost connection", mta);
	sess_next(s);
}

/* The transaction failed at MAIL (or before it was sent). */
static void
sess_mail_failed(struct dsess *s, struct delivery_msg *m,
    const struct smtpc_reason *tx, bool woken)
{
	struct dest *d = s->d;
	const char *mta = d->routes[s->ri].host;
	char status[16];

	if (woken && tx->outcome == OUTCOME_TEMPFAIL &&
	    (tx->cause != SMTPC_CAUSE_REPLY || tx->code == 421)) {
		/*
		 * The exchanger dropped the idle connection (or said 421,
		 * closing) as we spoke: not its fault nor the part's; the
		 * part goes back for a new connection to the same route,
		 * which the close of this one (sess_on_closed) starts.
		 */
		dest_enqueue(d, m, true);
		smtpc_quit(s->s);
		return;
	}
	if (tx->outcome == OUTCOME_PERMFAIL) {
		part_fail(d, s, m, OUTCOME_PERMFAIL, tx, NULL, NULL, mta);
		sess_next(s);
		return;
	}
	/* 4xx at MAIL: the next address / exchanger (mxrelay(8), Sessions). */
	for (size_t i = 0; i < m->nrcpt; i++)
		if (!m->rcpt[i].final)
			rcpt_note(&m->rcpt[i], tx, false, NULL, NULL, mta);
	m->route_min = s->ri + 1;
	dest_enqueue(d, m, true);
	/* The exchanger is unwell: do not send it more. */
	d->routes[s->ri].failed = true;
	reason_status(tx, status, sizeof(status));
	dest_note_failure(d, tx, status, mta);
	smtpc_quit(s->s);
	dest_pump(d);
}

static void
sess_on_closed(void *arg, struct smtpc *sc, const struct smtpc_reason *why)
{
	struct dsess *s = arg;
	struct dest *d = s->d;
	struct delivery_engine *e = d->e;
	struct route *r = &d->routes[s->ri];
	char status[16];

	sess_unpark(s);
	if (!s->ready) {
		d->nconnecting--;
		if (why->cause == SMTPC_CAUSE_TLS &&
		    why->stage == SMTPC_STAGE_STARTTLS && d->tls == TLS_MAY &&
		    !s->clear) {
			/* Under may, a failed handshake is retried in clear. */
			r->tls_broken = true;
		} else if (why->outcome != OUTCOME_OK) {
			r->failed = true;
			if (why->stage == SMTPC_STAGE_CONNECT)
				util_strlcpy(status, "4.4.1", sizeof(status));
			else {
				reason_status(why, status, sizeof(status));
				/* A 5xx greeting only moves on: still temporary. */
				status[0] = '4';
			}
			dest_note_failure(d, why, status, r->host);
			log_info("%s: %s", smtpc_peer_text(sc), why->text);
		}
	}
	if (s->cur != NULL) {
		/* Closed with a transaction open before DATA: next route,
		 * unless it was an idle connection that went stale. */
		if (!s->woken)
			s->cur->route_min = s->ri + 1;
		dest_enqueue(d, s->cur, true);
		s->cur = NULL;
	}
	smtpc_free(sc);
	free(s);
	d->nsess--;
	e->active--;
	/* The freed slot goes first to destinations already waiting for one. */
	engine_wake(e);
	dest_pump(d);
}
