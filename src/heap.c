/*
 * heap: the classic array heap (children of i at 2i+1 and 2i+2).  The
 * slot of every element holds 1 + its index at all times.  See heap.h.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"
#include "util.h"

static size_t	*slot_of(const struct heap *, const void *);
static void	 place(struct heap *, size_t, void *);
static void	 sift_up(struct heap *, size_t);
static void	 sift_down(struct heap *, size_t);

static size_t *
slot_of(const struct heap *h, const void *e)
{
	return (size_t *)(void *)((char *)(uintptr_t)e + h->slot);
}

static void
place(struct heap *h, size_t i, void *e)
{
	h->v[i] = e;
	*slot_of(h, e) = i + 1;
}

static void
sift_up(struct heap *h, size_t i)
{
	void *e = h->v[i];

	while (i > 0 && h->less(e, h->v[(i - 1) / 2])) {
		place(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	place(h, i, e);
}

static void
sift_down(struct heap *h, size_t i)
{
	void *e = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->less(h->v[c + 1], h->v[c]))
			c++;
		if (!h->less(h->v[c], e))
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, e);
}

void
heap_init(struct heap *h, heap_less_fn less, size_t slot)
{
	memset(h, 0, sizeof(*h));
	h->less = less;
	h->slot = slot;
}

void
heap_free(struct heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}

void
heap_push(struct heap *h, void *e)
{
	if (h->n == h->cap) {
		h->cap = h->cap != 0 ? h->cap * 2 : 64;
		h->v = xreallocarray(h->v, h->cap, sizeof(*h->v));
	}
	h->v[h->n++] = e;
	sift_up(h, h->n - 1);
}

void *
heap_top(const struct heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

void *
heap_pop(struct heap *h)
{
	void *e = heap_top(h);

	if (e != NULL)
		heap_remove(h, e);
	return e;
}

bool
heap_contains(const struct heap *h, const void *e)
{
	size_t i = *slot_of(h, e);

	return i >= 1 && i <= h->n && h->v[i - 1] == e;
}

void
heap_remove(struct heap *h, void *e)
{
	size_t i;
	void *last;

	if (!heap_contains(h, e))
		return;
	i = *slot_of(h, e) - 1;
	*slot_of(h, e) = 0;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	sift_up(h, i);
	sift_down(h, *slot_of(h, last) - 1);
}

void
heap_update(struct heap *h, void *e)
{
	size_t i;

	if (!heap_contains(h, e)) {
		heap_push(h, e);
		return;
	}
	i = *slot_of(h, e) - 1;
	sift_up(h, i);
	sift_down(h, *slot_of(h, e) - 1);
}
