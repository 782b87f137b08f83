/*
 * test_bounce_batch: the notices that bounce-storm protection collects
 * (bounce_batch.c).  With log_format = json, the line of a combined
 * notice is a delivery record like the others (it was text; found by
 * review).
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
#include <unistd.h>
#include <cmocka.h>
#include "bounce_batch.h"
#include "envelope.h"
#include "mock_log.h"
#include "record.h"
#include "spool.h"
#include "testutil.h"
#include "util.h"

static void
env_make(struct envelope *env, const char *id, const char *sender)
{
	envelope_init(env);
	util_strlcpy(env->id, id, sizeof(env->id));
	env->sender = xstrdup(sender);
	env->arrival = 1700000000;
	envelope_add_rcpt(env, "a@x.org", NULL);
	env->rcpt[0].status = xstrdup("5.1.1");
	env->rcpt[0].last_reply = xstrdup("550 no");
}

/* log_format = json: a combined notice is logged as JSON records. */
static void
test_json_combined(void **state)
{
	struct bounce_batch_conf bc = { 1000, 10 };
	struct bounce_batch *b;
	struct queue *q;
	struct envelope e1, e2;
	bool rep[1] = { true };
	char top[256], newid[QUEUE_ID_LEN + 1];
	int64_t due;
	size_t n;

	(void)state;

	assert_non_null(test_mkdtemp(top, sizeof(top), "rabatch"));
	assert_int_equal(queue_open(top, true, &q), 0);
	record_set_format(RECORD_JSON);
	mock_log_clear();
	b = bounce_batch_new(&bc);
	env_make(&e1, "AAAAAAAAAAAA", "s@sender.org");
	env_make(&e2, "BBBBBBBBBBBB", "s@sender.org");
	assert_int_equal(bounce_batch_add(b, q, &e1, rep, -1, "mx.test", 0,
	    newid, &due), BOUNCE_BATCH_HELD);
	assert_int_equal(bounce_batch_add(b, q, &e2, rep, -1, "mx.test", 1,
	    newid, &due), BOUNCE_BATCH_HELD);
	(void)bounce_batch_flush(b, q, "mx.test", 2000, false, NULL, NULL);
	n = 0;
	for (size_t i = 0; i < mock_log_count(); i++) {
		const char *l = mock_log_line(i);

		if (strstr(l, "sender non-delivery notification") == NULL)
			continue;
		n++;
		if (strstr(l, "{\"id\":\"") == NULL ||
		    strstr(l, "\"recipients\":1,\"messages\":2}") == NULL)
			fail_msg("not the JSON record: %s", l);
	}
	/* One line for each of the two messages of the one notice. */
	assert_int_equal(n, 2);
	record_set_format(RECORD_TEXT);
	bounce_batch_free(b);
	envelope_free(&e1);
	envelope_free(&e2);
	queue_close(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_combined),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
