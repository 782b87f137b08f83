/*
 * delivery: the sessions that carry the parts of a destination, and the
 * outcomes they give (the model is at the top of delivery.c;
 * delivery_int.h has what the two files share).
 *
 * Sessions (struct dsess) connect to a route and pull parts from the
 * destination's queue one after the other (up to reuse_limit).  A session
 * whose queue ran dry waits idle for delivery_keep_idle() milliseconds (0,
 * the default, for a queue run that ends: QUIT at once), so that a trickle
 * of new messages rides the open connection instead of a new one each; an
 * idle session gives its global slot up at once to a destination waiting
 * for one (Postfix's connection cache, smtp_connection_cache_time_limit).
 *
 * Rules of the sessions, each pinned by a test in tests/e2e/t_delivery.sh:
 * - Connection failure, 4xx/5xx greeting, EHLO failure, STARTTLS refused
 *   under encrypt/verify: the route is marked failed and the part goes to
 *   the next route.  Under tls=may a failed handshake is retried on the
 *   same route in clear; never under DANE or an MTA-STS policy in enforce
 *   mode, where TLS is required.
 * - MAIL 4xx: next route for that part; MAIL 5xx: bounce the part.
 * - RCPT 2xx then accepted at the dot: sent; RCPT 5xx: bounced (no next
 *   MX); RCPT 4xx: next route in the same attempt, deferred when none is
 *   left.  4xx/5xx to DATA or the dot, or the connection lost after DATA:
 *   deferred/bounced, never resent elsewhere in the same attempt (it may
 *   have been delivered).
 * - Every route failed: the part's pending recipients are deferred with
 *   the last error (4.4.1 for a refused connection); at a relayhost, the
 *   part goes on to the next one or by MX first (delivery_relay.c).
 *
 * Every rule decides on the typed results of smtp_client.c (outcome,
 * stage, cause, reply code, enhanced status, accepted at RCPT), never on
 * the text of a reply: the text only goes to the log and to the caller
 * for DSNs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery_int.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "status.h"
#include "util.h"

/* An idle session keeps routes no older than this (see sess_may_park). */
#define DEST_ROUTES_MAX_MS	60000

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
	bool			 tls_counted;	/* in METRIC_TLSRPT */
	struct dsess		*inext, *iprev;
	struct ev_timer		 idle_timer;
};

static void	 dest_pump_parts(struct dest *);
static size_t	 route_spread(struct dest *, size_t);
static void	 sess_start(struct dest *, size_t);
static void	 sess_next(struct dsess *);
static struct delivery_msg *dest_part_for(const struct dest *, size_t);
static bool	 sess_may_park(const struct dsess *);
static void	 sess_park(struct dsess *);
static void	 sess_unpark(struct dsess *);
static void	 sess_on_idle_timeout(void *);
static bool	 engine_close_one_idle(struct delivery_engine *);
static void	 sess_probe(struct dsess *, struct delivery_msg *);
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
static void	 engine_wake(struct delivery_engine *);
static void	 sess_tlsrpt(const struct dest *, struct dsess *,
		    const struct route *, const struct smtpc *);

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
 * Routes for parts and sessions.
 */

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
	r->own_reply = false;
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
	char relay[512], tls[64];
	long long delay;

	if (r->final)
		return;
	r->final = true;
	r->outcome = o;
	r->tls_use = "none";
	if (s != NULL && s->s != NULL && smtpc_tls_active(s->s)) {
		r->tls_use = smtpc_tls_auth(s->s);
		/* Verified as an MTA-STS policy in enforce mode wants it. */
		if (strcmp(r->tls_use, "verified") == 0 &&
		    d->routes[s->ri].auth == ROUTE_STS_ENFORCE)
			r->tls_use = "sts";
	}

	if (s != NULL && s->s != NULL) {
		util_strlcpy(relay, smtpc_peer_text(s->s), sizeof(relay));
		if (smtpc_tls_active(s->s))
			snprintf(tls, sizeof(tls), "%s/%s",
			    smtpc_tls_version(s->s), r->tls_use);
		else
			snprintf(tls, sizeof(tls), "none");
	} else {
		snprintf(relay, sizeof(relay), "none");
		snprintf(tls, sizeof(tls), "none");
	}
	delay = (long long)(time(NULL) - m->arrival);
	if (delay < 0)
		delay = 0;
	if (m->probe != NULL)
		return;
	{
		const struct record_field f[] = {
			{ "to", "to=<%s>", RECORD_STR, r->addr, 0 },
			{ "relay", ", relay=%s", RECORD_STR, relay, 0 },
			{ "tls", ", tls=%s", RECORD_STR, tls, 0 },
			{ "delay", ", delay=%ss", RECORD_NUM, NULL, delay },
			{ "dsn", ", dsn=%s", RECORD_STR, r->status, 0 },
			{ "status", ", status=%s", RECORD_STR,
			    outcome_to_text(o), 0 },
			{ "reply", " (%s)", RECORD_PEER, r->reply, 0 },
		};

		record_log(m->id, f, sizeof(f) / sizeof(f[0]));
	}
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
	if (m->probe != NULL)
		dest_probe_fill(d, m->probe);
	part_done(d->e, m);
}

void
part_done(struct delivery_engine *e, struct delivery_msg *m)
{
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

void
rcpt_defer_last(struct dest *d, struct delivery_msg *m, size_t i)
{
	struct delivery_rcpt *r = &m->rcpt[i];

	if (r->final)
		return;
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

/*
 * TLS reporting (RFC 8460): counters, and what an MTA-STS policy in
 * testing mode would have refused.
 */

void
dest_tlsrpt(const struct dest *d, const char *policy, const char *result)
{
	char buf[METRICS_DOMAIN_LEN];

	metrics_inc(METRIC_TLSRPT, (const char *[]){
	    metrics_domain(d->name, buf, sizeof(buf)), policy, result });
}

/*
 * A session over route r got ready for MAIL, or closed before: count it
 * once when it asked for TLS (the retry in clear did not), by the policy
 * that governed it.  At ready, not at close: a session may stay open,
 * idle, for long.
 */
static void
sess_tlsrpt(const struct dest *d, struct dsess *s, const struct route *r,
    const struct smtpc *sc)
{
	const struct smtpc_seen *seen = smtpc_seen(sc);
	const char *policy = "no-policy-found", *fail;
	bool nomatch;

	if (s->tls_counted || route_tls(d, r, s->clear) == TLS_NONE ||
	    !seen->ehlo_done)
		return;
	s->tls_counted = true;
	switch (r->auth) {
	case ROUTE_DANE:
	case ROUTE_DANE_ENCRYPT:
		policy = "tlsa";
		break;
	case ROUTE_STS_ENFORCE:
	case ROUTE_STS_TESTING:
		policy = "sts";
		break;
	default:
		/* No policy to fail: only whether TLS came up counts. */
		if (seen->tls_tried)
			dest_tlsrpt(d, policy, seen->tls_done ? "success" :
			    "validation-failure");
		return;
	}
	if (r->auth == ROUTE_DANE_ENCRYPT)
		/* RFC 8460 §4.3.2: no record of the set could be used. */
		fail = seen->tls_done ? "tlsa-invalid" : seen->tls_tried ?
		    "validation-failure" : "starttls-not-supported";
	else
		fail = smtpc_tls_failure(sc);
	/* Testing: an exchanger outside the mx patterns fails too (§4.1). */
	nomatch = r->auth == ROUTE_STS_TESTING && fail == NULL &&
	    d->have_sts && !sts_mx_match(&d->sts, r->host);
	if (nomatch)
		fail = "validation-failure";
	dest_tlsrpt(d, policy, fail != NULL ? fail : "success");
	if (fail != NULL && r->auth == ROUTE_STS_TESTING)
		log_info("mta-sts: %s: testing: %s: would fail: %s (%s)",
		    d->name, r->host, fail, nomatch ?
		    "not in the policy's mx patterns" : !seen->tls_tried ?
		    "STARTTLS not offered" : seen->tls.verify_text[0] != '\0' ?
		    seen->tls.verify_text : "handshake failed");
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
void
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
			if (part_pass_on(d, m))
				continue;
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
		if (part_pass_on(d, m))
			continue;
		for (size_t i = 0; i < m->nrcpt; i++)
			rcpt_defer_last(d, m, i);
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

enum tls_policy
route_tls(const struct dest *d, const struct route *r, bool clear)
{
	if (clear)
		return TLS_NONE;
	switch (r->auth) {
	case ROUTE_DANE:
	case ROUTE_STS_ENFORCE:
		return TLS_VERIFY;
	case ROUTE_DANE_ENCRYPT:
		return TLS_ENCRYPT;
	case ROUTE_STS_TESTING:
		return TLS_MAY;
	default:
		return d->tls == TLS_DANE ? TLS_MAY : d->tls;
	}
}

/*
 * The parameters of a session over route r (clear: without TLS).  DANE:
 * the TLSA records with the context that does not verify (OpenSSL's DANE
 * check decides, RFC 7672 §3); MTA-STS: the contexts of mta_sts_ca_file,
 * the certificate checked for the MX host name (RFC 8461 §4.1).
 */
void
sess_params(const struct dest *d, const struct route *r, bool clear,
    struct smtpc_params *p)
{
	const struct delivery_engine *e = d->e;

	memset(p, 0, sizeof(*p));
	p->helo_name = e->c.hostname;
	p->peer_name = r->host;
	p->tls = route_tls(d, r, clear);
	p->tls_ctx = p->tls == TLS_VERIFY ? e->c.tls_ctx_verify : e->c.tls_ctx;
	if (p->tls != TLS_NONE)
		switch (r->auth) {
		case ROUTE_DANE:
			p->tls_ctx = e->c.tls_ctx;
			p->dane = r->dane;
			break;
		case ROUTE_STS_ENFORCE:
			if (e->c.sts_ctx_verify != NULL)
				p->tls_ctx = e->c.sts_ctx_verify;
			p->verify_name = r->host;
			break;
		case ROUTE_STS_TESTING:
			if (e->c.sts_ctx != NULL)
				p->tls_ctx = e->c.sts_ctx;
			p->verify_name = r->host;
			break;
		default:
			break;
		}
	if (p->tls_ctx == NULL)
		p->tls = TLS_NONE;
	if (d->rh != NULL) {
		/*
		 * The certificate must match the configured name, not the
		 * name of an MX record that unauthenticated DNS gave.  The
		 * credentials go to a relayhost only, never by MX.
		 */
		p->verify_name = d->rh->host;
		p->auth_user = e->c.auth_user;
		p->auth_pass = e->c.auth_pass;
		if (e->c.rh_auth_user != NULL &&
		    e->c.rh_auth_user[d->rhi] != NULL) {
			p->auth_user = e->c.rh_auth_user[d->rhi];
			p->auth_pass = e->c.rh_auth_pass[d->rhi];
		}
		p->auth_unverified = e->c.auth_unverified;
	}
	p->timeouts = e->c.timeouts;
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
	sess_params(d, r, s->clear, &p);
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
	if (m->probe != NULL) {
		sess_probe(s, m);
		return;
	}
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
	s->m.smtputf8 = m->smtputf8;
	s->m.prefix = m->prefix;
	s->m.prefix_len = m->prefix_len;
	if (smtpc_send(s->s, &s->m) == -1) {
		/* The session cannot take it: put it back for another. */
		s->cur = NULL;
		dest_enqueue(d, m, true);
		smtpc_quit(s->s);
	}
}

/*
 * A probe reached a session that is ready for MAIL: the mail would go
 * this way.  It says QUIT instead.
 */
static void
sess_probe(struct dsess *s, struct delivery_msg *m)
{
	struct dest *d = s->d;
	char text[DELIVERY_REPLY_MAX];

	snprintf(text, sizeof(text), "would be sent to %s",
	    smtpc_peer_text(s->s));
	m->probe->route = (long)s->ri;
	for (size_t i = 0; i < m->nrcpt; i++) {
		if (m->rcpt[i].final)
			continue;
		rcpt_note(&m->rcpt[i], NULL, false, "2.0.0", text,
		    d->routes[s->ri].host);
		rcpt_final(d, s, m, i, OUTCOME_OK);
	}
	part_complete(d, m);
	smtpc_quit(s->s);
}

static void
sess_on_ready(void *arg, struct smtpc *sc)
{
	struct dsess *s = arg;

	s->ready = true;
	s->d->nconnecting--;
	sess_tlsrpt(s->d, s, &s->d->routes[s->ri], sc);
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
			r->own_reply = true;
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
		    why->stage == SMTPC_STAGE_STARTTLS &&
		    route_tls(d, r, false) == TLS_MAY && !s->clear) {
			/*
			 * Under may, a failed handshake is retried in clear;
			 * never where DANE or MTA-STS enforce requires TLS.
			 */
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
	if (e->seen != NULL) {
		struct delivery_seen ds = {
			.host = r->host, .pref = r->pref, .ss = &r->ss,
			.tls = route_tls(d, r, s->clear), .auth = r->auth,
			.clear = s->clear,
			.ready = s->ready, .s = sc, .why = why,
		};

		e->seen(e->seen_arg, &ds);
	}
	sess_tlsrpt(d, s, r, sc);
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
