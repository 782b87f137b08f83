/*
 * heap: one binary min-heap for the whole tree (timers, due times).  An
 * array of pointers to the caller's elements, ordered by a compare
 * callback; each element carries a size_t slot (at a fixed offset given
 * at init) where the heap keeps 1 + its index, 0 when the element is not
 * in this heap, so that removal and re-ordering are O(log n).
 *
 * An element is in at most one heap at a time through one slot.  No I/O,
 * no clock; allocation failure is fatal (xreallocarray).
 */
#ifndef MXRELAY_HEAP_H
#define MXRELAY_HEAP_H

#include <stdbool.h>
#include <stddef.h>

/* True when a must come out before b. */
typedef bool (*heap_less_fn)(const void *a, const void *b);

struct heap {
	void		**v;		/* v[0] is the minimum (read-only) */
	size_t		  n;		/* elements (read-only) */
	size_t		  cap;		/* private */
	heap_less_fn	  less;		/* private */
	size_t		  slot;		/* private: offset of the size_t slot */
};

/* slot: offsetof(element type, its size_t slot member). */
void	 heap_init(struct heap *, heap_less_fn, size_t slot);
/* Frees the array, not the elements (their slots are left as they are). */
void	 heap_free(struct heap *);
void	 heap_push(struct heap *, void *);
/* The minimum, or NULL when empty. */
void	*heap_top(const struct heap *);
/* Take the minimum out and return it; NULL when empty. */
void	*heap_pop(struct heap *);
/* True when e is in this heap (its slot points back at it). */
bool	 heap_contains(const struct heap *, const void *e);
/* Take e out; nothing happens when e is not in this heap. */
void	 heap_remove(struct heap *, void *e);
/* e's ordering key changed: move it into place (push it when absent). */
void	 heap_update(struct heap *, void *e);

#endif
