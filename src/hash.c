/*
 * hash: chained buckets, power-of-two sized, with each node's full hash
 * value kept so that growing and walking never hash a key again.  See
 * hash.h.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "util.h"

#define HASH_MIN_BUCKETS	64

static size_t	 key_hash(const char *);
static void	 grow(struct hash *);

/* FNV-1a: short keys (queue ids, domains), good spread in the low bits. */
static size_t
key_hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return (size_t)(h ^ (h >> 32));
}

void
hash_init(struct hash *h)
{
	h->b = NULL;
	h->nb = 0;
	h->n = 0;
}

void
hash_free(struct hash *h)
{
	free(h->b);
	hash_init(h);
}

static void
grow(struct hash *h)
{
	size_t nb = h->nb != 0 ? h->nb * 2 : HASH_MIN_BUCKETS;
	struct hash_node **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < h->nb; i++) {
		struct hash_node *n, *next;

		for (n = h->b[i]; n != NULL; n = next) {
			next = n->next;
			n->next = b[n->hv & (nb - 1)];
			b[n->hv & (nb - 1)] = n;
		}
	}
	free(h->b);
	h->b = b;
	h->nb = nb;
}

struct hash_node *
hash_find(const struct hash *h, const char *key)
{
	size_t hv;

	if (h->n == 0)
		return NULL;
	hv = key_hash(key);
	for (struct hash_node *n = h->b[hv & (h->nb - 1)]; n != NULL;
	    n = n->next)
		if (n->hv == hv && strcmp(n->key, key) == 0)
			return n;
	return NULL;
}

void
hash_insert(struct hash *h, struct hash_node *n, const char *key)
{
	size_t i;

	if (h->n >= h->nb)
		grow(h);
	n->key = key;
	n->hv = key_hash(key);
	i = n->hv & (h->nb - 1);
	n->next = h->b[i];
	h->b[i] = n;
	h->n++;
}

void
hash_remove(struct hash *h, struct hash_node *n)
{
	struct hash_node **p = &h->b[n->hv & (h->nb - 1)];

	while (*p != n)
		p = &(*p)->next;
	*p = n->next;
	n->next = NULL;
	h->n--;
}

struct hash_node *
hash_next(const struct hash *h, const struct hash_node *n)
{
	size_t i = 0;

	if (n != NULL) {
		if (n->next != NULL)
			return n->next;
		i = (n->hv & (h->nb - 1)) + 1;
	}
	for (; i < h->nb; i++)
		if (h->b[i] != NULL)
			return h->b[i];
	return NULL;
}
