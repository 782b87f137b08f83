/*
 * delivery: destinations, routes and sessions (mxrelay(8), DELIVERY).
 * This file holds the engine, the destinations, their queues of parts
 * and the lookup of their routes; delivery_sess.c holds the sessions that
 * carry the parts and the outcomes they give; delivery_int.h what the two
 * share.
 *
 * A destination (struct dest) is a recipient domain, or a relayhost (one
 * each of the list; delivery_relay.c passes parts from one to the next).
 * Its routes are the addresses of its exchangers in the order to try
 * them: MX preference (equal preferences shuffled by dns.c), then each
 * exchanger's addresses as DNS gave them (IPv6 first).  Message parts
 * wait in the destination's queue; sessions (struct dsess) connect to a
 * route and pull parts from the queue one after the other (up to
 * reuse_limit), so many messages share one connection and up to
 * domain_concurrency connections share one destination (the sessions,
 * and how they wait idle for more, are described in delivery_sess.c).
 *
 * Destinations are found by a hash of the lower-case domain ("[relayhost
 * N]" for the relayhost N of the list).  One left with nothing queued and
 * no session is freed from the loop soon after (engine_on_gc), so that a
 * queue run over many domains holds only those it is working on; one that
 * failed as a whole or has a failed route is kept, so that the rest of
 * the run does not wait for that failure again, until delivery_gc()
 * forgets it (the daemon, before each round of new work).
 *
 * Rules of the lookup, each pinned by a test in tests/e2e/t_delivery.sh
 * (those of the sessions are in delivery_sess.c):
 * - MX NXDOMAIN: bounce 5.1.2; null MX: bounce 5.1.10; MX SERVFAIL or
 *   timeout: defer 4.4.3, never fall back to the domain's A record; MX
 *   NODATA: the domain itself is the exchanger (implicit MX).
 * - An exchanger whose name has no address is skipped; none left: bounce
 *   5.4.4 when every answer was definite, defer 4.4.3 when any failed
 *   temporarily.
 * - The list is cut at this host (by name or by a listen address); nothing
 *   before it: bounce 5.4.6 (RFC 5321 §5.1).
 *
 * Under tls = dane, for a destination by MX (mxrelay.conf(5), DANE AND
 * MTA-STS; t_dane.sh, t_sts.sh):
 * - The MX answer validated (AD, RFC 6840 §5.7): each exchanger's
 *   addresses are looked up with AD too, and for those that validated its
 *   TLSA records _PORT._tcp.HOST (RFC 7672 §2.2.2).  Secure records with
 *   a usable one (usage 2 or 3): the route needs TLS authenticated by
 *   them; secure records none of which is usable: TLS, unauthenticated
 *   (RFC 7672 §2.2).  A failed TLSA lookup (SERVFAIL: bogus) drops the
 *   host; none left: defer 4.7.5.  Anything insecure: as may.
 * - The MTA-STS policy (RFC 8461) is asked for at the same time; the
 *   routes are built when both have answered.  It governs the hosts DANE
 *   does not (RFC 8461 §2): enforce drops those that do not match its mx
 *   patterns (none left: defer 4.7.0) and needs TLS verified for the
 *   host name; testing delivers as may and logs what would fail.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <ifaddrs.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery_int.h"
#include "log.h"
#include "util.h"

struct mxent {
	struct dest		*d;
	char			*host;
	unsigned		 pref;
	unsigned		 ttl;		/* of the MX answer */
	struct dns_req		*req;
	enum dns_status		 st;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs;
	bool			 addr_secure;	/* its addresses validated */
	enum delivery_dane	 dane;
	char			 dane_err[128];	/* DANE_FAILED: why */
	struct tlsa_rr		*rr;		/* its secure TLSA records */
	size_t			 nrr;
	const char		*names[1];	/* reference name: the domain */
	struct io_tls_dane	 tls_dane;	/* for ROUTE_DANE sessions */
	enum route_auth		 auth;		/* routes_build() */
	bool			 unused;	/* no route (DANE, MTA-STS) */
};

static bool	 dest_unused(const struct dest *);
static bool	 dest_learnt(const struct dest *);
static void	 engine_on_gc(void *);
static void	 dest_forget(struct dest *);
static void	 dest_fail(struct dest *, enum outcome, const char *,
		    const char *, ...) __attribute__((format(printf, 4, 5)));
static void	 on_mx(void *, enum dns_status, bool, const struct dns_mx *,
		    size_t, const char *);
static void	 on_mx_addrs(void *, enum dns_status,
		    const struct sockaddr_storage *, size_t, const char *);
static void	 on_mx_saddrs(void *, enum dns_status, bool,
		    const struct sockaddr_storage *, size_t, const char *);
static void	 on_tlsa(void *, enum dns_status, bool, const struct tlsa_rr *,
		    size_t, const char *);
static void	 on_sts(void *, const struct sts_policy *, const char *,
		    const char *);
static void	 lookups_done(struct dest *);
static void	 routes_build(struct dest *);
static int	 wildcard_family(const char *);
static char	*tlsa_text(const struct tlsa_rr *, size_t);
static void	 probe_dane_fill(struct delivery_probe_route *,
		    const struct io_tls_dane *, const char *);
static void	 local_addrs(struct delivery_engine *);

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
	if (e->c.relayhost == NULL)
		e->c.nrelayhost = 0;
	else if (e->c.nrelayhost == 0)
		e->c.nrelayhost = 1;
	LIST_INIT(&e->fallbacks);
	hash_init(&e->byname);
	LIST_INIT(&e->dests);
	LIST_INIT(&e->gcq);
	ev_timer_init(&e->gc_timer, engine_on_gc, e);
	for (size_t i = 0; i < e->c.nself; i++)
		if (wildcard_family(e->c.self[i].host) != 0) {
			local_addrs(e);
			break;
		}
	return e;
}

void
delivery_set_sts(struct delivery_engine *e, struct sts *sts, SSL_CTX *ctx,
    SSL_CTX *ctx_verify)
{
	e->c.sts = sts;
	e->c.sts_ctx = ctx;
	e->c.sts_ctx_verify = ctx_verify;
}

/*
 * AF_INET for a listener on 0.0.0.0, AF_INET6 for one on :: (however it
 * is spelt), else 0.  mxrelayd sets IPV6_V6ONLY: each covers its own
 * family only.
 */
static int
wildcard_family(const char *host)
{
	static const unsigned char zero[16];
	unsigned char buf[16];

	if (inet_pton(AF_INET, host, buf) == 1)
		return memcmp(buf, zero, 4) == 0 ? AF_INET : 0;
	if (inet_pton(AF_INET6, host, buf) == 1)
		return memcmp(buf, zero, 16) == 0 ? AF_INET6 : 0;
	return 0;
}

/* The addresses of the host's interfaces, into e->local. */
static void
local_addrs(struct delivery_engine *e)
{
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa) == -1) {
		log_warn("getifaddrs: mail loops through a wildcard listener "
		    "are seen on loopback only");
		return;
	}
	for (i = ifa; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || (i->ifa_addr->sa_family != AF_INET &&
		    i->ifa_addr->sa_family != AF_INET6))
			continue;
		e->local = xreallocarray(e->local, e->nlocal + 1,
		    sizeof(*e->local));
		memset(&e->local[e->nlocal], 0, sizeof(*e->local));
		memcpy(&e->local[e->nlocal++], i->ifa_addr,
		    i->ifa_addr->sa_family == AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
	}
	freeifaddrs(ifa);
}

static void
tlsa_free(struct tlsa_rr *rr, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((void *)(uintptr_t)rr[i].data);
	free(rr);
}

/* A deep copy of n records (their data is the caller's). */
static struct tlsa_rr *
tlsa_copy(const struct tlsa_rr *rr, size_t n)
{
	struct tlsa_rr *c = xcalloc(n + 1, sizeof(*c));

	for (size_t i = 0; i < n; i++) {
		unsigned char *data = xmalloc(rr[i].len + 1);

		memcpy(data, rr[i].data, rr[i].len);
		c[i] = rr[i];
		c[i].data = data;
	}
	return c;
}

static void
dest_free(struct dest *d)
{
	if (d->mxreq != NULL)
		dns_cancel(d->mxreq);
	if (d->stsreq != NULL)
		sts_cancel(d->stsreq);
	if (d->have_sts)
		sts_policy_clear(&d->sts);
	for (size_t i = 0; i < d->nmx; i++) {
		if (d->mx[i].req != NULL)
			dns_cancel(d->mx[i].req);
		free(d->mx[i].host);
		free(d->mx[i].addrs);
		tlsa_free(d->mx[i].rr, d->mx[i].nrr);
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
	delivery_relay_free(e);
	while ((d = LIST_FIRST(&e->dests)) != NULL) {
		LIST_REMOVE(d, link);
		dest_free(d);
	}
	hash_free(&e->byname);
	free(e->local);
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
void
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

/*
 * The destination of domain (any case) by MX (rhi DEST_BY_MX), or of the
 * relayhost rhi (domain unused): made on demand.
 */
struct dest *
dest_get(struct delivery_engine *e, const char *domain, size_t rhi)
{
	const struct hostport *rh = NULL;
	struct hash_node *n;
	struct dest *d;
	char *key;

	if (rhi != DEST_BY_MX) {
		rh = &e->c.relayhost[rhi];
		key = xasprintf("[relayhost %zu]", rhi);
	} else
		key = xstrdup(domain);
	for (char *p = key; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if ((n = hash_find(&e->byname, key)) != NULL) {
		free(key);
		return HASH_ENTRY(n, struct dest, node);
	}
	d = xcalloc(1, sizeof(*d));
	d->e = e;
	d->key = key;
	d->rh = rh;
	d->rhi = rhi;
	if (rh != NULL) {
		d->name = xstrdup(rh->host);
		d->by_mx = !rh->bracketed;
		d->port = rh->port != 0 ? rh->port : e->c.smtp_port;
		d->tls = conf_tls_policy_for(e->c.tls, e->c.tls_policies,
		    e->c.ntls_policies, rh->host);
		/* No DANE nor MTA-STS for a relayhost (RFC 7672 §2.2.3). */
		if (d->tls == TLS_DANE)
			d->tls = TLS_MAY;
	} else {
		d->name = xstrdup(domain);
		d->by_mx = true;
		d->port = e->c.smtp_port;
		d->tls = conf_tls_policy_for(e->c.tls, e->c.tls_policies,
		    e->c.ntls_policies, domain);
		d->dane = d->tls == TLS_DANE;
	}
	hash_insert(&e->byname, &d->node, d->key);
	LIST_INSERT_HEAD(&e->dests, d, link);
	return d;
}

void
delivery_submit(struct delivery_engine *e, const char *domain,
    struct delivery_msg *m)
{
	part_submit(dest_get(e, domain, e->c.nrelayhost > 0 ? 0 : DEST_BY_MX),
	    m);
}

/* A new part for d: every recipient pending, not tried yet. */
void
part_submit(struct dest *d, struct delivery_msg *m)
{
	m->route_min = 0;
	m->dest_down = false;
	for (size_t i = 0; i < m->nrcpt; i++) {
		m->rcpt[i].final = false;
		m->rcpt[i].noted = false;
		m->rcpt[i].own_reply = false;
		m->rcpt[i].outcome = OUTCOME_TEMPFAIL;
		m->rcpt[i].cause = SMTPC_CAUSE_NONE;
		m->rcpt[i].code = 0;
		m->rcpt[i].accepted = false;
		m->rcpt[i].status[0] = '\0';
		m->rcpt[i].reply[0] = '\0';
		m->rcpt[i].remote_mta[0] = '\0';
	}
	d->e->pending++;
	dest_enqueue(d, m, false);
	dest_pump(d);
}

/*
 * The queue of parts waiting in a destination.
 */

void
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

void
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

/*
 * Looking up the routes.
 */

/* The whole destination fails: every part gets o, status and the text. */
static void
dest_fail(struct dest *d, enum outcome o, const char *status,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->fail_reply, sizeof(d->fail_reply), fmt, ap);
	va_end(ap);
	util_strlcpy(d->fail_status, status, sizeof(d->fail_status));
	/*
	 * One relayhost of several that cannot be looked up (or is this
	 * host) is down like one that does not answer: the mail goes on to
	 * the others and is never bounced for it.
	 */
	if (d->rh != NULL && d->e->c.nrelayhost > 1 && o == OUTCOME_PERMFAIL) {
		o = OUTCOME_TEMPFAIL;
		d->fail_status[0] = '4';
	}
	d->fail_outcome = o;
	d->state = DEST_FAILED;
	dest_pump(d);
}

void
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
	if (d->dane && d->e->c.sts != NULL && !d->sts_asked) {
		d->sts_asked = true;
		d->stsreq = sts_policy_get(d->e->c.sts, d->name, on_sts, d);
	}
	if (d->by_mx)
		d->mxreq = dns_mx_lookup(d->e->dns, d->name, on_mx, d);
	else
		on_mx(d, DNS_NODATA, false, NULL, 0, NULL);
}

/* The MTA-STS answer (sts.h): kept for routes_build(). */
static void
on_sts(void *arg, const struct sts_policy *pol, const char *fail,
    const char *why)
{
	struct dest *d = arg;

	d->stsreq = NULL;
	if (pol != NULL) {
		sts_policy_copy(&d->sts, pol);
		d->have_sts = true;
	}
	if (fail != NULL) {
		util_strlcpy(d->sts_fail, fail, sizeof(d->sts_fail));
		util_strlcpy(d->sts_why, why != NULL ? why : "",
		    sizeof(d->sts_why));
		dest_tlsrpt(d, "sts", fail);
	}
	lookups_done(d);
}

/* Every lookup of d has answered: its routes. */
static void
lookups_done(struct dest *d)
{
	if (d->state == DEST_RESOLVING && d->mxreq == NULL && d->mx != NULL &&
	    d->mx_pending == 0 && d->stsreq == NULL)
		routes_build(d);
}

/* The address lookup of exchanger x: with AD when its MX set was secure. */
static struct dns_req *
mx_addr_lookup(struct dest *d, struct mxent *x)
{
	if (d->mx_secure)
		return dns_addr_secure_lookup(d->e->dns, x->host, on_mx_saddrs,
		    x);
	return dns_addr_lookup(d->e->dns, x->host, on_mx_addrs, x);
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
on_mx(void *arg, enum dns_status st, bool secure, const struct dns_mx *mx,
    size_t n, const char *errtext)
{
	struct dest *d = arg;
	size_t keep = n;
	bool cut = false;

	d->mxreq = NULL;
	d->mx_st = st;
	/* RFC 7672 §2.2.1: DANE only below a validated MX answer. */
	d->mx_secure = secure && d->dane;
	util_strlcpy(d->mx_err, errtext != NULL ? errtext : "",
	    sizeof(d->mx_err));
	switch (st) {
	case DNS_OK:
		break;
	case DNS_NODATA:
		/* RFC 5321 §5.1: no MX, the domain itself is the exchanger. */
		d->mx = xcalloc(1, sizeof(*d->mx));
		d->nmx = d->mx_pending = 1;
		d->mx[0].d = d;
		d->mx[0].host = xstrdup(d->name);
		d->mx[0].req = mx_addr_lookup(d, &d->mx[0]);
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
	/* mx_host_limit: the best ones (equal preferences came shuffled). */
	if (d->e->c.mx_host_limit > 0 && keep > d->e->c.mx_host_limit)
		keep = d->e->c.mx_host_limit;
	d->mx = xcalloc(keep, sizeof(*d->mx));
	d->nmx = d->mx_pending = keep;
	for (size_t i = 0; i < keep; i++) {
		d->mx[i].d = d;
		d->mx[i].host = xstrdup(mx[i].host);
		d->mx[i].pref = mx[i].pref;
		d->mx[i].ttl = mx[i].ttl;
	}
	/* Lookups may complete only from the loop, so start them all. */
	for (size_t i = 0; i < keep; i++)
		d->mx[i].req = mx_addr_lookup(d, &d->mx[i]);
}

static void
mx_addrs_keep(struct mxent *x, enum dns_status st,
    const struct sockaddr_storage *addrs, size_t n)
{
	x->req = NULL;
	x->st = st;
	if (st == DNS_OK && n > 0) {
		x->addrs = xreallocarray(NULL, n, sizeof(*addrs));
		memcpy(x->addrs, addrs, n * sizeof(*addrs));
		x->naddrs = n;
	}
}

static void
on_mx_addrs(void *arg, enum dns_status st, const struct sockaddr_storage *addrs,
    size_t n, const char *errtext)
{
	struct mxent *x = arg;
	struct dest *d = x->d;

	(void)errtext;
	mx_addrs_keep(x, st, addrs, n);
	d->mx_pending--;
	lookups_done(d);
}

/* The addresses of an exchanger of a secure MX set (RFC 7672 §2.2.2). */
static void
on_mx_saddrs(void *arg, enum dns_status st, bool secure,
    const struct sockaddr_storage *addrs, size_t n, const char *errtext)
{
	struct mxent *x = arg;
	struct dest *d = x->d;

	(void)errtext;
	mx_addrs_keep(x, st, addrs, n);
	x->addr_secure = secure;
	if (x->naddrs > 0 && secure) {
		x->req = dns_tlsa_lookup(d->e->dns, x->host, d->port, on_tlsa,
		    x);
		if (x->req != NULL)
			return;
		x->dane = DANE_FAILED;
		util_strlcpy(x->dane_err, "not sent", sizeof(x->dane_err));
	} else if (x->naddrs > 0)
		x->dane = DANE_INSECURE;
	d->mx_pending--;
	lookups_done(d);
}

/* Usage 2 or 3, selector 0 or 1, matching type 0, 1 or 2 (RFC 7672 §3). */
static bool
tlsa_usable(const struct tlsa_rr *rr)
{
	return (rr->usage == 2 || rr->usage == 3) && rr->selector <= 1 &&
	    rr->mtype <= 2;
}

static void
on_tlsa(void *arg, enum dns_status st, bool secure, const struct tlsa_rr *rr,
    size_t n, const char *errtext)
{
	struct mxent *x = arg;
	struct dest *d = x->d;
	size_t usable = 0;

	x->req = NULL;
	if (st == DNS_TEMPFAIL) {
		/* Bogus or unanswered: the host is not used (RFC 7672 §2.2). */
		x->dane = DANE_FAILED;
		util_strlcpy(x->dane_err, errtext != NULL ? errtext :
		    "temporary failure", sizeof(x->dane_err));
		log_info("dane: %s: TLSA lookup for _%u._tcp.%s failed (%s)",
		    d->name, d->port, x->host, x->dane_err);
		dest_tlsrpt(d, "tlsa", "dnssec-invalid");
	} else if (st == DNS_OK && secure && n > 0) {
		x->rr = tlsa_copy(rr, n);
		x->nrr = n;
		for (size_t i = 0; i < n; i++)
			if (tlsa_usable(&rr[i]))
				usable++;
		x->dane = usable > 0 ? DANE_USABLE : DANE_UNUSABLE;
		x->names[0] = d->name;
		x->tls_dane.base = x->host;
		x->tls_dane.names = x->names;
		x->tls_dane.nnames = 1;
		x->tls_dane.rr = x->rr;
		x->tls_dane.nrr = x->nrr;
	} else
		x->dane = DANE_NONE;
	d->mx_pending--;
	lookups_done(d);
}

/* The raw address of ss (4 or 16 bytes) and its length. */
static const unsigned char *
addr_bytes(const struct sockaddr_storage *ss, size_t *len)
{
	if (ss->ss_family == AF_INET) {
		*len = 4;
		return (const unsigned char *)
		    &((const struct sockaddr_in *)ss)->sin_addr;
	}
	*len = 16;
	return (const unsigned char *)
	    &((const struct sockaddr_in6 *)ss)->sin6_addr;
}

/*
 * Where a connection to ss really goes: an IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d) is that IPv4 address.
 */
static void
addr_unmap(const struct sockaddr_storage *ss, struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;

	*out = *ss;
	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return;
	memset(out, 0, sizeof(*out));
	s4->sin_family = AF_INET;
	memcpy(&s4->sin_addr, (const unsigned char *)&s6->sin6_addr + 12, 4);
}

/*
 * 127.0.0.0/8, ::1, and the unspecified 0.0.0.0/8 and :: (a connection
 * to those reaches this host too).
 */
static bool
addr_is_loopback(const struct sockaddr_storage *ss)
{
	static const unsigned char v6lo[16] = { [15] = 1 };
	static const unsigned char zero[16];
	size_t len;
	const unsigned char *a = addr_bytes(ss, &len);

	if (len == 4)
		return a[0] == 127 || a[0] == 0;
	return memcmp(a, v6lo, 16) == 0 || memcmp(a, zero, 16) == 0;
}

/* Loopback, or one of the host's interface addresses (same family). */
static bool
addr_is_local(const struct delivery_engine *e,
    const struct sockaddr_storage *ss)
{
	size_t len, llen;
	const unsigned char *a = addr_bytes(ss, &len);

	if (addr_is_loopback(ss))
		return true;
	for (size_t i = 0; i < e->nlocal; i++)
		if (e->local[i].ss_family == ss->ss_family &&
		    memcmp(addr_bytes(&e->local[i], &llen), a, len) == 0)
			return true;
	return false;
}

/*
 * Is a connection to address on port one of our listeners: the same
 * address, or any address of this host (loopback, an interface) of the
 * family of a wildcard listener on that port?
 */
static bool
addr_is_self(const struct dest *d, const struct sockaddr_storage *address,
    unsigned port)
{
	const struct delivery_conf *c = &d->e->c;
	struct sockaddr_storage ss;
	size_t len;
	const unsigned char *a;

	addr_unmap(address, &ss);
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return false;
	a = addr_bytes(&ss, &len);
	for (size_t i = 0; i < c->nself; i++) {
		unsigned char buf[16];
		int wf;

		if (c->self[i].port != port)
			continue;
		if ((wf = wildcard_family(c->self[i].host)) != 0) {
			if (wf == ss.ss_family && addr_is_local(d->e, &ss))
				return true;
			continue;
		}
		if (inet_pton(ss.ss_family, c->self[i].host, buf) == 1 &&
		    memcmp(buf, a, len) == 0)
			return true;
	}
	return false;
}

/* A route to exchanger i's address j. */
static void
route_add(struct dest *d, size_t i, size_t j)
{
	struct route *r = &d->routes[d->nroutes++];

	r->host = xstrdup(d->mx[i].host);
	r->pref = d->mx[i].pref;
	r->auth = d->mx[i].auth;
	r->dane = r->auth == ROUTE_DANE ? &d->mx[i].tls_dane : NULL;
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

/* The addresses of exchanger i that routes may use. */
static size_t
mx_naddrs(const struct dest *d, size_t i)
{
	return d->mx[i].unused ? 0 : d->mx[i].naddrs;
}

/*
 * How exchanger x is secured, or whether it is left out: DANE where its
 * TLSA records are secure, else the MTA-STS policy (RFC 8461 §2).
 */
static void
mx_decide(const struct dest *d, struct mxent *x)
{
	x->auth = ROUTE_BASE;
	x->unused = false;
	switch (x->dane) {
	case DANE_USABLE:
		x->auth = ROUTE_DANE;
		return;
	case DANE_UNUSABLE:
		x->auth = ROUTE_DANE_ENCRYPT;
		return;
	case DANE_FAILED:
		x->unused = true;
		return;
	default:
		break;
	}
	if (!d->have_sts)
		return;
	if (d->sts.mode == STS_MODE_ENFORCE) {
		if (sts_mx_match(&d->sts, x->host))
			x->auth = ROUTE_STS_ENFORCE;
		else
			x->unused = true;
	} else if (d->sts.mode == STS_MODE_TESTING)
		/* Used; an exchanger outside the patterns is logged per
		 * session (delivery_sess.c sess_tlsrpt). */
		x->auth = ROUTE_STS_TESTING;
}

/*
 * The routes: the n addresses of the first keep exchangers, in preference
 * order, cut at mx_address_limit.  When the cut would leave out every
 * address of one family (a host with many AAAA records tried first, on a
 * machine without IPv6), the last place goes to the first address of that
 * family, so that both are tried (Postfix's smtp_balance_inet_protocols).
 */
static void
routes_pick(struct dest *d, size_t keep, size_t n)
{
	size_t lim = d->e->c.mx_address_limit, k = 0, late_i = 0, late_j = 0;
	bool have[2] = { false, false }, late = false;

	if (lim == 0 || lim > n)
		lim = n;
	d->routes = xcalloc(lim, sizeof(*d->routes));
	/* late: the first address after the cut of a family before it lacks. */
	for (size_t i = 0; i < keep; i++)
		for (size_t j = 0; j < mx_naddrs(d, i); j++, k++) {
			bool v6 = d->mx[i].addrs[j].ss_family == AF_INET6;

			if (k < lim)
				have[v6] = true;
			else if (!have[v6] && !late && lim > 1) {
				late = true;
				late_i = i;
				late_j = j;
			}
		}
	k = 0;
	for (size_t i = 0; i < keep; i++)
		for (size_t j = 0; j < mx_naddrs(d, i); j++)
			if (k++ < lim - late)
				route_add(d, i, j);
	if (late)
		route_add(d, late_i, late_j);
}

static void
routes_build(struct dest *d)
{
	size_t n = 0, keep = d->nmx;
	bool temp = false, cut = false;
	const struct mxent *dane_failed = NULL, *sts_cut = NULL;

	for (size_t i = 0; i < d->nmx; i++)
		mx_decide(d, &d->mx[i]);

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
		const struct mxent *x = &d->mx[i];

		n += mx_naddrs(d, i);
		if (x->st == DNS_TEMPFAIL)
			temp = true;
		if (x->unused && x->naddrs > 0 && x->dane == DANE_FAILED &&
		    dane_failed == NULL)
			dane_failed = x;
		else if (x->unused && x->naddrs > 0 && sts_cut == NULL)
			sts_cut = x;
	}
	if (n == 0) {
		if (cut)
			dest_fail(d, OUTCOME_PERMFAIL, "5.4.6", "mail for %s loops "
			    "back to myself", d->name);
		else if (dane_failed != NULL)
			/* Never in clear where DANE was required. */
			dest_fail(d, OUTCOME_TEMPFAIL, "4.7.5", "TLSA lookup "
			    "for _%u._tcp.%s failed: %s", d->port,
			    dane_failed->host, dane_failed->dane_err);
		else if (sts_cut != NULL)
			dest_fail(d, OUTCOME_TEMPFAIL, "4.7.0", "no MX host of "
			    "%s matches its MTA-STS policy", d->name);
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
	routes_pick(d, keep, n);
	d->state = DEST_READY;
	d->ready_ms = ev_now(d->e->loop);
	dest_pump(d);
}

/*
 * Probes (mxrelay route; delivery.h).
 */

void
delivery_set_seen(struct delivery_engine *e, delivery_seen_cb cb, void *arg)
{
	e->seen = cb;
	e->seen_arg = arg;
}

/* What d knows now, into p (replacing what p held). */
void
dest_probe_fill(const struct dest *d, struct delivery_probe *p)
{
	delivery_probe_clear(p);
	p->name = xstrdup(d->name);
	p->relayhost = d->rh != NULL;
	p->by_mx = d->by_mx;
	p->port = d->port;
	p->tls = d->tls;
	p->mx_status = d->mx_st;
	util_strlcpy(p->mx_errtext, d->mx_err, sizeof(p->mx_errtext));
	p->mx_secure = d->mx_secure;
	p->dane = d->dane;
	p->sts_asked = d->sts_asked;
	if (d->have_sts) {
		sts_policy_copy(&p->sts, &d->sts);
		p->have_sts = true;
	}
	util_strlcpy(p->sts_fail, d->sts_fail, sizeof(p->sts_fail));
	util_strlcpy(p->sts_why, d->sts_why, sizeof(p->sts_why));
	p->mx = xcalloc(d->nmx + 1, sizeof(*p->mx));
	for (size_t i = 0; i < d->nmx; i++) {
		struct delivery_probe_mx *x = &p->mx[p->nmx++];

		x->host = xstrdup(d->mx[i].host);
		x->pref = d->mx[i].pref;
		x->ttl = d->mx[i].ttl;
		x->st = d->mx[i].st;
		x->addrs = xcalloc(d->mx[i].naddrs + 1, sizeof(*x->addrs));
		memcpy(x->addrs, d->mx[i].addrs,
		    d->mx[i].naddrs * sizeof(*x->addrs));
		x->naddrs = d->mx[i].naddrs;
		x->addr_secure = d->mx[i].addr_secure;
		x->dane = d->mx[i].dane;
		x->tlsa = tlsa_text(d->mx[i].rr, d->mx[i].nrr);
		util_strlcpy(x->dane_err, d->mx[i].dane_err,
		    sizeof(x->dane_err));
		x->sts_match = d->have_sts && sts_mx_match(&d->sts,
		    d->mx[i].host);
	}
	p->routes = xcalloc(d->nroutes + 1, sizeof(*p->routes));
	for (size_t i = 0; i < d->nroutes; i++) {
		struct delivery_probe_route *r = &p->routes[p->nroutes++];

		r->host = xstrdup(d->routes[i].host);
		r->pref = d->routes[i].pref;
		r->ss = d->routes[i].ss;
		r->sslen = d->routes[i].sslen;
		r->rhi = d->rh != NULL ? d->rhi : DEST_BY_MX;
		r->failed = d->routes[i].failed;
		r->tls_broken = d->routes[i].tls_broken;
		r->auth = d->routes[i].auth;
		r->tls = route_tls(d, &d->routes[i], false);
		if (d->routes[i].dane != NULL)
			probe_dane_fill(r, d->routes[i].dane, d->name);
	}
}

/*
 * "3 1 1 8f2a...e1" for each record, joined by ", "; the data cut after
 * 32 bytes.  NULL when none.
 */
static char *
tlsa_text(const struct tlsa_rr *rr, size_t n)
{
	char *s = NULL;

	for (size_t i = 0; i < n; i++) {
		char hex[2 * 32 + 4], *t;
		size_t k = 0;

		for (size_t j = 0; j < rr[i].len && j < 32; j++)
			k += (size_t)snprintf(hex + k, sizeof(hex) - k, "%02x",
			    rr[i].data[j]);
		if (rr[i].len > 32)
			snprintf(hex + k, sizeof(hex) - k, "...");
		t = xasprintf("%s%s%u %u %u %s", s != NULL ? s : "",
		    s != NULL ? ", " : "", rr[i].usage, rr[i].selector,
		    rr[i].mtype, hex);
		free(s);
		s = t;
	}
	return s;
}

/* The DANE records of a probe route, its own copy (see delivery.h). */
static void
probe_dane_fill(struct delivery_probe_route *r, const struct io_tls_dane *dn,
    const char *domain)
{
	r->rr = tlsa_copy(dn->rr, dn->nrr);
	r->domain = xstrdup(domain);
	r->names[0] = r->domain;
	r->dane.base = r->host;
	r->dane.names = r->names;
	r->dane.nnames = 1;
	r->dane.rr = r->rr;
	r->dane.nrr = dn->nrr;
}

const char *
delivery_dane_to_text(enum delivery_dane s)
{
	static const char *const text[] = {
		[DANE_OFF] = "off",
		[DANE_INSECURE] = "insecure",
		[DANE_NONE] = "no TLSA records",
		[DANE_USABLE] = "usable TLSA records",
		[DANE_UNUSABLE] = "no usable TLSA record",
		[DANE_FAILED] = "TLSA lookup failed",
	};

	return (size_t)s < sizeof(text) / sizeof(text[0]) ? text[s] : "?";
}

const char *
delivery_route_auth_to_text(enum route_auth a)
{
	static const char *const text[] = {
		[ROUTE_BASE] = "policy",
		[ROUTE_DANE] = "dane",
		[ROUTE_DANE_ENCRYPT] = "dane-encrypt",
		[ROUTE_STS_ENFORCE] = "mta-sts-enforce",
		[ROUTE_STS_TESTING] = "mta-sts-testing",
	};

	return (size_t)a < sizeof(text) / sizeof(text[0]) ? text[a] : "?";
}

void
delivery_probe_clear(struct delivery_probe *p)
{
	long route = p->route;

	for (size_t i = 0; i < p->nmx; i++) {
		free(p->mx[i].host);
		free(p->mx[i].addrs);
		free(p->mx[i].tlsa);
	}
	free(p->mx);
	for (size_t i = 0; i < p->nroutes; i++) {
		free(p->routes[i].host);
		tlsa_free(p->routes[i].rr, p->routes[i].dane.nrr);
		free(p->routes[i].domain);
	}
	free(p->routes);
	if (p->have_sts)
		sts_policy_clear(&p->sts);
	free(p->name);
	memset(p, 0, sizeof(*p));
	p->route = route;
}

struct smtpc *
delivery_probe_session(struct delivery_engine *e, const char *domain,
    const struct delivery_probe_route *pr, const struct smtpc_ops *ops,
    void *arg)
{
	/* The destination the route came from: its relayhost, or by MX. */
	struct dest *d = dest_get(e, domain, pr->rhi);
	struct smtpc_params p;
	struct route r;

	memset(&r, 0, sizeof(r));
	r.host = pr->host;
	r.pref = pr->pref;
	r.tls_broken = pr->tls_broken;
	r.auth = pr->auth;
	r.dane = pr->auth == ROUTE_DANE ? &pr->dane : NULL;
	sess_params(d, &r, pr->tls_broken, &p);
	return smtpc_new(e->loop, (const struct sockaddr *)&pr->ss, pr->sslen,
	    &p, ops, arg);
}
