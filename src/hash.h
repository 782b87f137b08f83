/*
 * hash: one string-keyed hash table for the whole tree.  Intrusive and
 * chained: the caller embeds a struct hash_node in its element and keeps
 * the key alive (usually in the element itself); the table allocates only
 * its bucket array, which doubles (a power of two) when the elements
 * outnumber the buckets.  Keys are compared exactly (byte for byte).
 *
 * No I/O, no clock; allocation failure is fatal (xcalloc).
 */
#ifndef MXRELAY_HASH_H
#define MXRELAY_HASH_H

#include <stddef.h>

struct hash_node {
	struct hash_node	*next;		/* private */
	const char		*key;		/* private: set by hash_insert */
	size_t			 hv;		/* private */
};

struct hash {
	struct hash_node	**b;		/* private */
	size_t			  nb;		/* private: a power of two */
	size_t			  n;		/* elements (read-only) */
};

/* The element that holds node n, its struct hash_node being member m. */
#define HASH_ENTRY(n, type, m) \
	((type *)(void *)((char *)(n) - offsetof(type, m)))

/* An empty table (an all-zero struct hash is empty too). */
void		 hash_init(struct hash *);
/* Frees the buckets, not the elements; the table is empty afterwards. */
void		 hash_free(struct hash *);
struct hash_node *hash_find(const struct hash *, const char *key);
/*
 * Add n under key (which must live as long as n is in the table).  Keys
 * are not checked for duplicates: look them up first.
 */
void		 hash_insert(struct hash *, struct hash_node *, const char *key);
/* Take n out; n must be in the table. */
void		 hash_remove(struct hash *, struct hash_node *);
/*
 * Walk: hash_next(h, NULL) is the first element, hash_next(h, n) the one
 * after n, NULL at the end.  The current element may be removed once its
 * successor has been fetched; nothing may be inserted during a walk.
 */
struct hash_node *hash_next(const struct hash *, const struct hash_node *);

#endif
