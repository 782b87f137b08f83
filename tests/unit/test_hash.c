/*
 * test_hash: src/hash.c.  A table of operations with the expected
 * answers, growth through many powers of two, walking with removal, and
 * a seeded random run checked against a plain array model.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hash.h"
#include "mock_log.h"
#include "util.h"

struct item {
	char		 key[32];
	int		 val;
	struct hash_node node;
};

static struct item *
find(const struct hash *h, const char *key)
{
	struct hash_node *n = hash_find(h, key);

	return n != NULL ? HASH_ENTRY(n, struct item, node) : NULL;
}

static void
test_table(void **state)
{
	/* op: 'i' insert key=val, 'r' remove key, 'f' find key (val, -1 absent) */
	static const struct {
		const char	*rule;
		char		 op;
		const char	*key;
		int		 val;
		size_t		 n;	/* elements afterwards */
	} t[] = {
		{ "an empty table finds nothing", 'f', "a", -1, 0 },
		{ "an inserted key is found", 'i', "a", 1, 1 },
		{ "find returns the element", 'f', "a", 1, 1 },
		{ "keys are exact: case matters", 'f', "A", -1, 1 },
		{ "a prefix is another key", 'f', "", -1, 1 },
		{ "the empty key is a key", 'i', "", 2, 2 },
		{ "the empty key is found", 'f', "", 2, 2 },
		{ "a second key", 'i', "example.org", 3, 3 },
		{ "removal takes one key out", 'r', "a", 0, 2 },
		{ "a removed key is gone", 'f', "a", -1, 2 },
		{ "the others stay", 'f', "example.org", 3, 2 },
		{ "a key can come back", 'i', "a", 4, 3 },
		{ "with its new element", 'f', "a", 4, 3 },
	};
	static struct item items[sizeof(t) / sizeof(t[0])];
	struct hash h;

	(void)state;
	hash_init(&h);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct item *it;

		switch (t[i].op) {
		case 'i':
			util_strlcpy(items[i].key, t[i].key, sizeof(items[i].key));
			items[i].val = t[i].val;
			hash_insert(&h, &items[i].node, items[i].key);
			break;
		case 'r':
			it = find(&h, t[i].key);
			assert_non_null(it);
			hash_remove(&h, &it->node);
			break;
		case 'f':
			it = find(&h, t[i].key);
			if (t[i].val == -1)
				assert_null(it);
			else {
				if (it == NULL)
					fail_msg("%s", t[i].rule);
				assert_int_equal(it->val, t[i].val);
			}
			break;
		}
		if (h.n != t[i].n)
			fail_msg("%s: %zu elements, want %zu", t[i].rule, h.n,
			    t[i].n);
	}
	hash_free(&h);
	assert_null(hash_find(&h, "a"));
}

static void
test_grow_and_walk(void **state)
{
	enum { N = 5000 };
	struct item *items = xcalloc(N, sizeof(*items));
	struct hash h;
	struct hash_node *n, *next;
	size_t seen = 0;
	bool *hit = xcalloc(N, sizeof(*hit));

	(void)state;
	hash_init(&h);
	for (int i = 0; i < N; i++) {
		snprintf(items[i].key, sizeof(items[i].key), "k%d", i);
		items[i].val = i;
		hash_insert(&h, &items[i].node, items[i].key);
	}
	assert_int_equal(h.n, N);
	for (int i = 0; i < N; i++)
		assert_ptr_equal(find(&h, items[i].key), &items[i]);
	/* A walk sees each element once. */
	for (n = hash_next(&h, NULL); n != NULL; n = hash_next(&h, n)) {
		struct item *it = HASH_ENTRY(n, struct item, node);

		assert_false(hit[it->val]);
		hit[it->val] = true;
		seen++;
	}
	assert_int_equal(seen, N);
	/* Removing the current element after fetching the next one. */
	for (n = hash_next(&h, NULL); n != NULL; n = next) {
		struct item *it = HASH_ENTRY(n, struct item, node);

		next = hash_next(&h, n);
		if (it->val % 2 == 0)
			hash_remove(&h, n);
	}
	assert_int_equal(h.n, N / 2);
	for (int i = 0; i < N; i++)
		assert_true((find(&h, items[i].key) != NULL) == (i % 2 == 1));
	hash_free(&h);
	free(hit);
	free(items);
}

/* A seeded random mix of operations against a linear model. */
static void
test_random_model(void **state)
{
	enum { KEYS = 300, OPS = 20000 };
	struct item *items = xcalloc(KEYS, sizeof(*items));
	bool *in = xcalloc(KEYS, sizeof(*in));
	struct hash h;
	size_t count = 0;

	(void)state;
	srandom(12345);
	hash_init(&h);
	for (int i = 0; i < KEYS; i++)
		snprintf(items[i].key, sizeof(items[i].key), "%d.example", i);
	for (int op = 0; op < OPS; op++) {
		int k = (int)(random() % KEYS);
		struct item *it = find(&h, items[k].key);

		assert_true((it != NULL) == in[k]);
		if (it != NULL)
			assert_ptr_equal(it, &items[k]);
		if (random() % 2 == 0 && !in[k]) {
			hash_insert(&h, &items[k].node, items[k].key);
			in[k] = true;
			count++;
		} else if (in[k]) {
			hash_remove(&h, &items[k].node);
			in[k] = false;
			count--;
		}
		assert_int_equal(h.n, count);
	}
	hash_free(&h);
	free(in);
	free(items);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_grow_and_walk),
		cmocka_unit_test(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
