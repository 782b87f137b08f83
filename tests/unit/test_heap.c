/*
 * test_heap: src/heap.c.  A table of operations with the expected
 * minimum, removal from the middle through the element's slot, updates
 * of a key in place, and a seeded random run checked against a plain
 * array model.
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

#include "heap.h"
#include "mock_log.h"
#include "util.h"

struct item {
	int	 key;
	int	 id;	/* ties */
	size_t	 slot;
};

static bool
item_less(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key;
	return x->id < y->id;
}

static void
test_table(void **state)
{
	/* op: 'p' push item, 'r' remove item, 'u' set key and update, 'o' pop */
	static const struct {
		const char	*rule;
		char		 op;
		int		 item, key;
		int		 top;	/* item on top afterwards, -1 empty */
	} t[] = {
		{ "an empty heap has no top", 'o', 0, 0, -1 },
		{ "one element is the top", 'p', 0, 50, 0 },
		{ "a larger key goes below", 'p', 1, 60, 0 },
		{ "a smaller key goes on top", 'p', 2, 10, 2 },
		{ "equal keys order by the tie-break", 'p', 3, 10, 2 },
		{ "removing the top lifts the next", 'r', 2, 0, 3 },
		{ "removing from the middle keeps the top", 'r', 1, 0, 3 },
		{ "removing an absent element does nothing", 'r', 1, 0, 3 },
		{ "a key raised in place sinks", 'u', 3, 70, 0 },
		{ "a key lowered in place rises", 'u', 3, 5, 3 },
		{ "update pushes an absent element", 'u', 1, 1, 1 },
		{ "pop takes the top", 'o', 0, 0, 3 },
		{ "pop again", 'o', 0, 0, 0 },
		{ "the last one", 'o', 0, 0, -1 },
	};
	struct item it[4] = { { 0, 0, 0 }, { 0, 1, 0 }, { 0, 2, 0 },
	    { 0, 3, 0 } };
	struct heap h;

	(void)state;
	heap_init(&h, item_less, offsetof(struct item, slot));
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct item *top;

		switch (t[i].op) {
		case 'p':
			it[t[i].item].key = t[i].key;
			heap_push(&h, &it[t[i].item]);
			break;
		case 'r':
			heap_remove(&h, &it[t[i].item]);
			assert_false(heap_contains(&h, &it[t[i].item]));
			break;
		case 'u':
			it[t[i].item].key = t[i].key;
			heap_update(&h, &it[t[i].item]);
			break;
		case 'o':
			if ((top = heap_pop(&h)) != NULL)
				assert_int_equal(top->slot, 0);
			break;
		}
		top = heap_top(&h);
		if ((top == NULL ? -1 : top->id) != t[i].top)
			fail_msg("%s: top %d, want %d", t[i].rule,
			    top == NULL ? -1 : top->id, t[i].top);
	}
	heap_free(&h);
}

/* A seeded random mix of operations against a linear model. */
static void
test_random_model(void **state)
{
	enum { N = 400, OPS = 30000 };
	struct item *it = xcalloc(N, sizeof(*it));
	bool *in = xcalloc(N, sizeof(*in));
	struct heap h;
	size_t count = 0;

	(void)state;
	srandom(4242);
	heap_init(&h, item_less, offsetof(struct item, slot));
	for (int i = 0; i < N; i++)
		it[i].id = i;
	for (int op = 0; op < OPS; op++) {
		int k = (int)(random() % N), r = (int)(random() % 4);
		const struct item *want = NULL;

		if (r == 0 && !in[k]) {
			it[k].key = (int)(random() % 1000);
			heap_push(&h, &it[k]);
			in[k] = true;
			count++;
		} else if (r == 1 && in[k]) {
			heap_remove(&h, &it[k]);
			in[k] = false;
			count--;
		} else if (r == 2 && in[k]) {
			it[k].key = (int)(random() % 1000);
			heap_update(&h, &it[k]);
		} else if (r == 3 && count > 0) {
			struct item *p = heap_pop(&h);

			for (int i = 0; i < N; i++)
				if (in[i] && (want == NULL ||
				    item_less(&it[i], want)))
					want = &it[i];
			assert_ptr_equal(p, want);
			in[p->id] = false;
			count--;
			want = NULL;
		}
		assert_int_equal(h.n, count);
		for (int i = 0; i < N; i++)
			assert_true(heap_contains(&h, &it[i]) == in[i]);
	}
	heap_free(&h);
	free(in);
	free(it);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_random_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
