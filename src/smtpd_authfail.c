/*
 * smtpd_authfail: AUTH failures per client address (see
 * smtpd_authfail.h).  A plain array searched from end to end: it is
 * looked at only when a client uses AUTH, and it is bounded.
 */
#include "config.h"

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd_authfail.h"
#include "util.h"

struct authfail_entry {
	struct authfail_addr key;
	unsigned	 fails;		/* within the window of last_ms */
	unsigned	 pending;	/* checks under way */
	uint64_t	 last_ms;	/* the last failure (or the first check) */
};

struct authfail {
	struct authfail_entry *v;
	size_t		 n, max;
};

static bool	 key_equal(const struct authfail_addr *,
		    const struct authfail_addr *);
static struct authfail_entry *entry_find(struct authfail *,
		    const struct authfail_addr *, uint64_t, uint64_t);
static struct authfail_entry *entry_make(struct authfail *,
		    const struct authfail_addr *, uint64_t, uint64_t);
static bool	 entry_before(const struct authfail_entry *,
		    const struct authfail_entry *, uint64_t, uint64_t);

struct authfail *
authfail_new(size_t max)
{
	struct authfail *t = xcalloc(1, sizeof(*t));

	t->max = max > 0 ? max : 1;
	return t;
}

void
authfail_free(struct authfail *t)
{
	if (t == NULL)
		return;
	free(t->v);
	free(t);
}

size_t
authfail_size(const struct authfail *t)
{
	return t->n;
}

static bool
key_equal(const struct authfail_addr *a, const struct authfail_addr *b)
{
	return a->family == b->family && memcmp(a->addr, b->addr,
	    a->family == AF_INET ? 4 : sizeof(a->addr)) == 0;
}

/* The address's entry, its failures forgotten when the window is over. */
static struct authfail_entry *
entry_find(struct authfail *t, const struct authfail_addr *a,
    uint64_t window_ms, uint64_t now_ms)
{
	for (size_t i = 0; i < t->n; i++) {
		struct authfail_entry *e = &t->v[i];

		if (!key_equal(&e->key, a))
			continue;
		if (e->fails > 0 && now_ms - e->last_ms >= window_ms)
			e->fails = 0;
		return e;
	}
	return NULL;
}

/*
 * Should c give way before e when the table is full?  One without a check
 * under way first, then the one with the fewest failures within the
 * window, then the oldest: an address at the limit, which only gets
 * refusals and so stops moving its last_ms, is the last to be forgotten
 * (else fresh addresses that fail once each would push it out and give
 * it its tries again).
 */
static bool
entry_before(const struct authfail_entry *c, const struct authfail_entry *e,
    uint64_t window_ms, uint64_t now_ms)
{
	unsigned cf = now_ms - c->last_ms >= window_ms ? 0 : c->fails;
	unsigned ef = now_ms - e->last_ms >= window_ms ? 0 : e->fails;

	if ((c->pending == 0) != (e->pending == 0))
		return c->pending == 0;
	if (cf != ef)
		return cf < ef;
	return c->last_ms < e->last_ms;
}

/* A new entry: appended while there is room, else in the place of one. */
static struct authfail_entry *
entry_make(struct authfail *t, const struct authfail_addr *a,
    uint64_t window_ms, uint64_t now_ms)
{
	struct authfail_entry *e = NULL;

	if (t->n < t->max) {
		t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
		e = &t->v[t->n++];
	} else
		for (size_t i = 0; i < t->n; i++)
			if (e == NULL || entry_before(&t->v[i], e, window_ms,
			    now_ms))
				e = &t->v[i];
	memset(e, 0, sizeof(*e));
	e->key.family = a->family;
	memcpy(e->key.addr, a->addr, sizeof(e->key.addr));
	e->last_ms = now_ms;
	return e;
}

unsigned
authfail_count(struct authfail *t, const struct authfail_addr *a,
    uint64_t window_ms, uint64_t now_ms)
{
	struct authfail_entry *e = entry_find(t, a, window_ms, now_ms);

	return e == NULL ? 0 : e->fails + e->pending;
}

bool
authfail_begin(struct authfail *t, const struct authfail_addr *a,
    unsigned limit, uint64_t window_ms, uint64_t now_ms, unsigned *count)
{
	struct authfail_entry *e = entry_find(t, a, window_ms, now_ms);

	*count = e == NULL ? 0 : e->fails + e->pending;
	if (limit > 0 && *count >= limit)
		return false;
	if (e == NULL)
		e = entry_make(t, a, window_ms, now_ms);
	e->pending++;
	return true;
}

unsigned
authfail_end(struct authfail *t, const struct authfail_addr *a, bool ok,
    uint64_t window_ms, uint64_t now_ms)
{
	struct authfail_entry *e = entry_find(t, a, window_ms, now_ms);

	if (e == NULL) {		/* it made room for another meanwhile */
		if (ok)
			return 0;
		e = entry_make(t, a, window_ms, now_ms);
	}
	if (e->pending > 0)
		e->pending--;
	/*
	 * A success forgets nothing: one valid account must not buy an
	 * address more tries at the others' passwords.
	 */
	if (ok)
		return e->fails;
	e->fails++;
	e->last_ms = now_ms;
	return e->fails;
}
