/*
 * delivery: a list of relayhosts and the fallback to delivery by MX
 * (mxrelay(8), Relayhosts).  The engine's model is at the top of
 * delivery.c.
 *
 * Each relayhost of the list is a destination of its own, "[relayhost N]",
 * looked up and tried as a single one is (its exchangers in preference
 * order, failed routes remembered, its own TLS policy, the credentials).
 * A part comes to relayhost 0.  When it runs out of routes there (every
 * address failed: no connection, a 4xx or 5xx greeting, a failed EHLO,
 * TLS that the policy refuses, the credentials withheld or refused, a 4xx
 * to MAIL), or the relayhost failed as a whole (its name), the part goes
 * on to relayhost N + 1 with its recipients that are not final, as it
 * would to the next MX: those refused for now at RCPT too.  A reply to a
 * recipient from a relayhost that answered (2xx, 5xx), and anything after
 * DATA, stays final as with one relayhost.
 *
 * After the last one, with relayhost_fallback = mx, the recipients that
 * no relayhost refused for themselves (their own 4xx at RCPT keeps them
 * deferred) go by MX in the same attempt: split by domain into child
 * parts, each submitted to the destination of its domain as without a
 * relayhost (never with the relayhost credentials, nor its certificate
 * name).  When every child is done, their outcomes are the part's, and
 * the part is down as a whole (dest_down) only when every child was.
 */
#include "config.h"

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "delivery_int.h"
#include "log.h"
#include "util.h"

/* One domain's recipients of a part gone by MX. */
struct fb_child {
	struct fallback		*fb;
	struct delivery_msg	 m;
	size_t			*idx;	/* the parent's index of each rcpt */
};

/* A part gone by MX, waiting for its children. */
struct fallback {
	LIST_ENTRY(fallback)	 link;		/* e->fallbacks */
	struct delivery_engine	*e;
	struct delivery_msg	*parent;
	struct fb_child		*child;
	size_t			 nchild;
	size_t			 pending;
	bool			 all_down;
};

static bool	 part_fallback(struct dest *, struct delivery_msg *);
static const char *rcpt_domain(const char *);
static void	 fb_child_add(struct fallback *, const char *, size_t);
static void	 fb_on_child_done(void *, struct delivery_msg *);
static void	 fb_release(struct fallback *);
static void	 fb_free(struct fallback *);

bool
part_pass_on(struct dest *d, struct delivery_msg *m)
{
	struct delivery_engine *e = d->e;
	const char *why;
	struct dest *next;

	if (d->rh == NULL)
		return false;
	why = d->state == DEST_FAILED ? d->fail_reply : d->last_reply[0] ?
	    d->last_reply : "no address could be reached";
	if (d->rhi + 1 < e->c.nrelayhost) {
		next = dest_get(e, NULL, d->rhi + 1);
		log_info("%s: relayhost %s failed (%s): trying relayhost %s",
		    m->id, d->rh->host, why, next->rh->host);
		m->route_min = 0;
		dest_enqueue(next, m, false);
		dest_pump(next);
		return true;
	}
	if (!e->c.relayhost_fallback)
		return false;
	return part_fallback(d, m);
}

/* The domain of an address (after its last '@'), NULL without one. */
static const char *
rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL && at[1] != '\0' ? at + 1 : NULL;
}

/*
 * Every relayhost failed for m: its recipients that no relayhost refused
 * for themselves go by MX, a child part per domain; the others are
 * deferred now.  False when none is left to go (the caller defers them).
 */
static bool
part_fallback(struct dest *d, struct delivery_msg *m)
{
	struct delivery_engine *e = d->e;
	struct fallback *fb;
	size_t n = 0;

	for (size_t i = 0; i < m->nrcpt; i++)
		if (!m->rcpt[i].final && !m->rcpt[i].own_reply &&
		    rcpt_domain(m->rcpt[i].addr) != NULL)
			n++;
	if (n == 0)
		return false;
	log_info("%s: every relayhost failed (%s): delivering by MX", m->id,
	    d->state == DEST_FAILED ? d->fail_reply : d->last_reply[0] ?
	    d->last_reply : "no address could be reached");
	fb = xcalloc(1, sizeof(*fb));
	fb->e = e;
	fb->parent = m;
	fb->all_down = true;
	fb->child = xcalloc(n, sizeof(*fb->child));
	for (size_t i = 0; i < m->nrcpt; i++) {
		struct delivery_rcpt *r = &m->rcpt[i];

		if (r->final)
			continue;
		if (r->own_reply || rcpt_domain(r->addr) == NULL)
			rcpt_defer_last(d, m, i);
		else
			fb_child_add(fb, rcpt_domain(r->addr), i);
	}
	LIST_INSERT_HEAD(&e->fallbacks, fb, link);
	/*
	 * A child may be done at once (its destination failed earlier in
	 * this run): the part is finished only after the last submit.
	 */
	fb->pending = fb->nchild + 1;
	for (size_t c = 0; c < fb->nchild; c++) {
		struct delivery_msg *cm = &fb->child[c].m;

		part_submit(dest_get(e, rcpt_domain(cm->rcpt[0].addr),
		    DEST_BY_MX), cm);
	}
	fb_release(fb);
	return true;
}

/* Recipient i of the part goes with the child of its domain (any case). */
static void
fb_child_add(struct fallback *fb, const char *domain, size_t i)
{
	const struct delivery_msg *p = fb->parent;
	struct fb_child *c = NULL;

	for (size_t k = 0; k < fb->nchild; k++)
		if (strcasecmp(rcpt_domain(fb->child[k].m.rcpt[0].addr),
		    domain) == 0) {
			c = &fb->child[k];
			break;
		}
	if (c == NULL) {
		c = &fb->child[fb->nchild++];
		c->fb = fb;
		c->m.id = p->id;
		c->m.sender = p->sender;
		c->m.body_fd = p->body_fd;
		c->m.size = p->size;
		c->m.eightbit = p->eightbit;
		c->m.smtputf8 = p->smtputf8;
		c->m.prefix = p->prefix;
		c->m.prefix_len = p->prefix_len;
		c->m.arrival = p->arrival;
		/* mxrelay route: the MX destination fills the probe. */
		c->m.probe = p->probe;
		c->m.done = fb_on_child_done;
		c->m.arg = c;
	}
	c->m.rcpt = xreallocarray(c->m.rcpt, c->m.nrcpt + 1,
	    sizeof(*c->m.rcpt));
	c->idx = xreallocarray(c->idx, c->m.nrcpt + 1, sizeof(*c->idx));
	memset(&c->m.rcpt[c->m.nrcpt], 0, sizeof(*c->m.rcpt));
	c->m.rcpt[c->m.nrcpt].addr = p->rcpt[i].addr;
	c->idx[c->m.nrcpt++] = i;
}

/* A child is done: its outcomes become the parent's recipients'. */
static void
fb_on_child_done(void *arg, struct delivery_msg *m)
{
	struct fb_child *c = arg;
	struct fallback *fb = c->fb;

	for (size_t j = 0; j < m->nrcpt; j++) {
		struct delivery_rcpt *r = &fb->parent->rcpt[c->idx[j]];
		const char *addr = r->addr;

		*r = m->rcpt[j];
		r->addr = addr;
		r->final = r->noted = true;
	}
	if (!m->dest_down)
		fb->all_down = false;
	fb_release(fb);
}

/* One child (or the submitting) less; the last one finishes the parent. */
static void
fb_release(struct fallback *fb)
{
	struct delivery_engine *e = fb->e;
	struct delivery_msg *parent = fb->parent;

	if (--fb->pending > 0)
		return;
	parent->dest_down = fb->all_down;
	LIST_REMOVE(fb, link);
	fb_free(fb);
	part_done(e, parent);
}

static void
fb_free(struct fallback *fb)
{
	for (size_t c = 0; c < fb->nchild; c++) {
		free(fb->child[c].m.rcpt);
		free(fb->child[c].idx);
	}
	free(fb->child);
	free(fb);
}

void
delivery_relay_free(struct delivery_engine *e)
{
	struct fallback *fb;

	while ((fb = LIST_FIRST(&e->fallbacks)) != NULL) {
		LIST_REMOVE(fb, link);
		fb_free(fb);
	}
}
