/*
 * test_envelope: the versioned text encoding of queue/envelope.c.  Round
 * trips of every field (null sender, quoted local parts with spaces,
 * replies with control bytes and non-ASCII, status codes, remote MTAs),
 * the canonical form, one table row per decode error, and the fuzz seed
 * corpus (valid-* decode and round-trip, bad-* do not).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "envelope.h"
#include "util.h"
#include "mock_log.h"

#define ID1	"0123456789abcdef0123"

static void	assert_str_eq_null(const char *, const char *);
static void	assert_env_equal(const struct envelope *, const struct envelope *);
static void	roundtrip(const struct envelope *);

static void
assert_str_eq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
assert_env_equal(const struct envelope *a, const struct envelope *b)
{
	assert_string_equal(a->id, b->id);
	assert_str_eq_null(a->sender, b->sender);
	assert_true(a->arrival == b->arrival);
	assert_true(a->size == b->size);
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++) {
		const struct envelope_rcpt *x = &a->rcpt[i], *y = &b->rcpt[i];

		assert_string_equal(x->addr, y->addr);
		assert_str_eq_null(x->orig, y->orig);
		assert_int_equal(x->state, y->state);
		assert_int_equal(x->attempts, y->attempts);
		assert_true(x->next_try == y->next_try);
		assert_true(x->last_try == y->last_try);
		assert_str_eq_null(x->last_reply, y->last_reply);
		assert_str_eq_null(x->status, y->status);
		assert_str_eq_null(x->remote_mta, y->remote_mta);
	}
}

/* Encode, check the text is one-record-per-line ASCII, decode, compare. */
static void
roundtrip(const struct envelope *env)
{
	struct envelope back;
	const char *err = NULL;
	char *buf, *buf2;
	size_t len, len2, lines = 0;

	assert_int_equal(envelope_encode(env, &buf, &len), 0);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		assert_true(c == '\n' || (c >= 0x20 && c <= 0x7e));
		lines += c == '\n';
	}
	assert_int_equal(lines, env->nrcpt + 7);
	assert_int_equal(envelope_decode(buf, len, &back, &err), 0);
	assert_null(err);
	assert_env_equal(env, &back);
	/* Canonical: the decoded envelope encodes to the same bytes. */
	assert_int_equal(envelope_encode(&back, &buf2, &len2), 0);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	free(buf);
	free(buf2);
	envelope_free(&back);
}

static void
test_roundtrip_all_fields(void **state)
{
	struct envelope env;

	envelope_init(&env);
	memcpy(env.id, ID1, sizeof(ID1));
	env.sender = strdup("");		/* the null sender <> */
	env.arrival = 1700000000;
	env.size = UINT64_MAX;
	envelope_add_rcpt(&env, "\"john doe\"@example.com", NULL);
	envelope_add_rcpt(&env, "root@example.org", "root");
	envelope_add_rcpt(&env, "b%c@x.test", "- = %41");
	env.rcpt[0].state = RCPT_PENDING;
	env.rcpt[0].attempts = 3;
	env.rcpt[0].next_try = 1700003600;
	env.rcpt[0].last_try = 1700000100;
	env.rcpt[0].last_reply = strdup("451 4.7.1\tgreylisted\x01\x1b[31m, "
	    "try again \x7f later");
	env.rcpt[1].state = RCPT_DELIVERED;
	env.rcpt[1].attempts = UINT_MAX;
	env.rcpt[1].next_try = sizeof(time_t) >= 8 ? (time_t)INT64_MAX : 0;
	env.rcpt[1].last_reply = strdup("250 2.0.0 Ok: queued \xc3\xa4\xc3\xb6 "
	    "\xe2\x9c\x93 \xff\x80");
	env.rcpt[0].status = strdup("4.7.1");
	env.rcpt[0].remote_mta = strdup("mx1.example.com");
	env.rcpt[1].status = strdup("2.0.0");
	env.rcpt[1].remote_mta = strdup("[192.0.2.1] - =%\x01 \xc3\xa4");
	env.rcpt[2].status = strdup("5.123.999");
	env.rcpt[2].state = RCPT_BOUNCED;
	env.rcpt[2].last_reply = strdup("");
	roundtrip(&env);

	/* The null sender is "" and not NULL after decode, too. */
	envelope_free(&env);
	assert_null(env.sender);
	assert_int_equal(env.nrcpt, 0);
}

static void
test_roundtrip_minimal(void **state)
{
	struct envelope env;

	envelope_init(&env);
	env.sender = strdup("alice@example.com");
	roundtrip(&env);			/* no id yet, no recipients */
	envelope_add_rcpt(&env, "x@y", NULL);
	roundtrip(&env);
	envelope_free(&env);
}

static void
test_roundtrip_every_byte(void **state)
{
	struct envelope env;
	char all[256];

	for (int i = 1; i < 256; i++)
		all[i - 1] = (char)i;
	all[255] = '\0';
	envelope_init(&env);
	env.sender = strdup(all);
	envelope_add_rcpt(&env, all, all);
	env.rcpt[0].last_reply = strdup(all);
	env.rcpt[0].remote_mta = strdup(all);
	roundtrip(&env);
	envelope_free(&env);
}

static void
test_encode_text(void **state)
{
	struct envelope env;
	char *buf;
	size_t len;
	static const char want[] =
	    "mxrelay-envelope 1\n"
	    "id " ID1 "\n"
	    "sender =\n"
	    "arrival 5\n"
	    "size 42\n"
	    "rcpts 2\n"
	    "rcpt =\"a%20b\"@c.d - delivered 1 0 7 =250%20ok%25%0D%0A - -\n"
	    "rcpt =e@f =e bounced 2 0 9 =550%205.1.1%20no =5.1.1 =mx.f%20x\n"
	    "end\n";

	envelope_init(&env);
	memcpy(env.id, ID1, sizeof(ID1));
	env.sender = strdup("");
	env.arrival = 5;
	env.size = 42;
	envelope_add_rcpt(&env, "\"a b\"@c.d", NULL);
	env.rcpt[0].state = RCPT_DELIVERED;
	env.rcpt[0].attempts = 1;
	env.rcpt[0].last_try = 7;
	env.rcpt[0].last_reply = strdup("250 ok%\r\n");
	envelope_add_rcpt(&env, "e@f", "e");
	env.rcpt[1].state = RCPT_BOUNCED;
	env.rcpt[1].attempts = 2;
	env.rcpt[1].last_try = 9;
	env.rcpt[1].last_reply = strdup("550 5.1.1 no");
	env.rcpt[1].status = strdup("5.1.1");
	env.rcpt[1].remote_mta = strdup("mx.f x");
	assert_int_equal(envelope_encode(&env, &buf, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(buf, want, len);
	free(buf);
	envelope_free(&env);
}

/* Version 2: the submitter line, only when there is a submitter. */
static void
test_submitter(void **state)
{
	static const char want[] =
	    "mxrelay-envelope 2\n"
	    "id " ID1 "\n"
	    "sender =a@b\n"
	    "arrival 5\n"
	    "size 42\n"
	    "submitter 33 =www-data%20x\n"
	    "rcpts 1\n"
	    "rcpt =c@d - pending 0 0 0 - - -\n"
	    "end\n";
	struct envelope env, back;
	const char *err;
	char *buf;
	size_t len;

	(void)state;
	envelope_init(&env);
	memcpy(env.id, ID1, sizeof(ID1));
	env.sender = strdup("a@b");
	env.arrival = 5;
	env.size = 42;
	envelope_add_rcpt(&env, "c@d", NULL);
	env.submit_uid = 33;
	env.submit_user = strdup("www-data x");
	assert_int_equal(envelope_encode(&env, &buf, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(buf, want, len);
	assert_int_equal(envelope_decode(buf, len, &back, &err), 0);
	assert_int_equal(back.submit_uid, 33);
	assert_string_equal(back.submit_user, "www-data x");
	free(buf);
	envelope_free(&back);
	/* No submitter: version 1 bytes, as before. */
	free(env.submit_user);
	env.submit_user = NULL;
	assert_int_equal(envelope_encode(&env, &buf, &len), 0);
	assert_memory_equal(buf, "mxrelay-envelope 1\n", 19);
	assert_null(memmem(buf, len, "submitter", 9));
	assert_int_equal(envelope_decode(buf, len, &back, &err), 0);
	assert_null(back.submit_user);
	free(buf);
	envelope_free(&back);
	envelope_free(&env);
}

static void
test_encode_errors(void **state)
{
	struct envelope env;
	char *buf = (char *)1;
	size_t len = 1;

	envelope_init(&env);
	errno = 0;
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);  /* no sender */
	assert_int_equal(errno, EINVAL);
	assert_null(buf);
	assert_int_equal(len, 0);

	env.sender = strdup("a@b");
	memcpy(env.id, "0123456789ABCDEF0123", QUEUE_ID_LEN + 1);
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	memcpy(env.id, "0123", 5);
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	env.id[0] = '\0';
	env.arrival = -1;
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	env.arrival = 0;

	envelope_add_rcpt(&env, "c@d", NULL);
	env.rcpt[0].state = (enum rcpt_state)7;
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	assert_int_equal(errno, EINVAL);
	env.rcpt[0].state = RCPT_PENDING;
	env.rcpt[0].next_try = -5;
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	env.rcpt[0].next_try = 0;
	env.rcpt[0].last_try = -5;
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	env.rcpt[0].last_try = 0;
	free(env.rcpt[0].addr);
	env.rcpt[0].addr = NULL;
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	env.rcpt[0].addr = strdup("c@d");
	env.rcpt[0].status = strdup("5.1");
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	assert_int_equal(errno, EINVAL);
	free(env.rcpt[0].status);
	env.rcpt[0].status = strdup("5.1.1 ");
	assert_int_equal(envelope_encode(&env, &buf, &len), -1);
	free(env.rcpt[0].status);
	env.rcpt[0].status = strdup("5.1.1");
	assert_int_equal(envelope_encode(&env, &buf, &len), 0);
	free(buf);
	envelope_free(&env);
}

static void
test_state_text(void **state)
{
	assert_string_equal(envelope_state_to_text(RCPT_PENDING), "pending");
	assert_string_equal(envelope_state_to_text(RCPT_DELIVERED), "delivered");
	assert_string_equal(envelope_state_to_text(RCPT_BOUNCED), "bounced");
	assert_string_equal(envelope_state_to_text((enum rcpt_state)9), "unknown");
}

#define HEAD	"mxrelay-envelope 1\nid " ID1 "\nsender =a@b\narrival 1\nsize 2\n"
#define RC1	"rcpts 1\n"
#define RCPT	"rcpt =c@d - pending 0 0 0 - - -\n"

struct bad {
	const char	*name;
	const char	*text;
	size_t		 len;		/* 0: strlen(text) */
	const char	*err;		/* expected error text, NULL: any */
};

static const struct bad bad[] = {
	{ "empty", "", 0, "not an envelope" },
	{ "garbage", "hello world\n", 0, "not an envelope" },
	{ "no newline", "mxrelay-envelope 1", 0, "not an envelope" },
	{ "magic only", "mxrelay-envelope\n", 0, "not an envelope" },
	{ "version 6", "mxrelay-envelope 6\nid -\n", 0,
	    "unsupported envelope version" },
	{ "v5 without dkim", "mxrelay-envelope 5\nid -\nsender =\n"
	    "arrival 0\nsize 0\nflags hold\nrcpts 0\nend\n", 0,
	    "missing or bad dkim" },
	{ "v5 empty dkim", "mxrelay-envelope 5\nid -\nsender =\n"
	    "arrival 0\nsize 0\ndkim =\nrcpts 0\nend\n", 0, "empty dkim" },
	{ "v5 null dkim", "mxrelay-envelope 5\nid -\nsender =\n"
	    "arrival 0\nsize 0\ndkim -\nrcpts 0\nend\n", 0,
	    "required field is absent" },
	{ "v5 dkim raw tab", "mxrelay-envelope 5\nid -\nsender =\n"
	    "arrival 0\nsize 0\ndkim =a\tb\nrcpts 0\nend\n", 0,
	    "unescaped byte in string field" },
	{ "v5 dkim bad escape", "mxrelay-envelope 5\nid -\nsender =\n"
	    "arrival 0\nsize 0\ndkim =a%0d%0a\nrcpts 0\nend\n", 0,
	    "bad escape in string field" },
	{ "v5 dkim short escape", "mxrelay-envelope 5\nid -\nsender =\n"
	    "arrival 0\nsize 0\ndkim =a%0\nrcpts 0\nend\n", 0,
	    "bad escape in string field" },
	{ "v5 dkim needless escape", "mxrelay-envelope 5\nid -\nsender =\n"
	    "arrival 0\nsize 0\ndkim =%41\nrcpts 0\nend\n", 0,
	    "needless escape in string field" },
	{ "v5 dkim before flags", "mxrelay-envelope 5\nid -\nsender =\n"
	    "arrival 0\nsize 0\ndkim =x\nflags hold\nrcpts 0\nend\n", 0,
	    "missing or bad recipient count" },
	{ "v4 with dkim", "mxrelay-envelope 4\nid -\nsender =\n"
	    "arrival 0\nsize 0\nflags hold\ndkim =x\nrcpts 0\nend\n", 0,
	    "missing or bad recipient count" },
	{ "v4 without flags", "mxrelay-envelope 4\nid -\nsender =\n"
	    "arrival 0\nsize 0\nbody 7bit\nrcpts 0\nend\n", 0,
	    "missing or bad flags" },
	{ "v4 empty flags", "mxrelay-envelope 4\nid -\nsender =\n"
	    "arrival 0\nsize 0\nflags \nrcpts 0\nend\n", 0,
	    "missing or bad flags" },
	{ "v4 unknown flag", "mxrelay-envelope 4\nid -\nsender =\n"
	    "arrival 0\nsize 0\nflags hold frozen\nrcpts 0\nend\n", 0,
	    "missing or bad flags" },
	{ "v4 flag twice", "mxrelay-envelope 4\nid -\nsender =\n"
	    "arrival 0\nsize 0\nflags hold hold\nrcpts 0\nend\n", 0,
	    "missing or bad flags" },
	{ "v4 flags out of order", "mxrelay-envelope 4\nid -\nsender =\n"
	    "arrival 0\nsize 0\nflags warned hold\nrcpts 0\nend\n", 0,
	    "missing or bad flags" },
	{ "v4 two spaces", "mxrelay-envelope 4\nid -\nsender =\n"
	    "arrival 0\nsize 0\nflags hold  warned\nrcpts 0\nend\n", 0,
	    "missing or bad flags" },
	{ "v4 flags before submitter", "mxrelay-envelope 4\nid -\nsender =\n"
	    "arrival 0\nsize 0\nflags hold\nsubmitter 33 =www\nrcpts 0\n"
	    "end\n", 0, "missing or bad recipient count" },
	{ "v3 without body", "mxrelay-envelope 3\nid -\nsender =\n"
	    "arrival 0\nsize 0\nrcpts 0\nend\n", 0, "missing or bad body" },
	{ "v3 bad body", "mxrelay-envelope 3\nid -\nsender =\n"
	    "arrival 0\nsize 0\nbody 9bit\nrcpts 0\nend\n", 0,
	    "missing or bad body" },
	{ "v3 body after submitter", "mxrelay-envelope 3\nid -\nsender =\n"
	    "arrival 0\nsize 0\nsubmitter 33 =www\nbody 7bit\nrcpts 0\nend\n",
	    0, "missing or bad body" },
	{ "v1 with body", "mxrelay-envelope 1\nid -\nsender =\n"
	    "arrival 0\nsize 0\nbody 7bit\nrcpts 0\nend\n", 0,
	    "missing or bad recipient count" },
	{ "v2 without submitter", "mxrelay-envelope 2\nid -\nsender =\n"
	    "arrival 0\nsize 0\nrcpts 0\nend\n", 0,
	    "missing or bad submitter" },
	{ "v1 with submitter", "mxrelay-envelope 1\nid -\nsender =\n"
	    "arrival 0\nsize 0\nsubmitter 33 =www\nrcpts 0\nend\n", 0,
	    "missing or bad recipient count" },
	{ "submitter no name", "mxrelay-envelope 2\nid -\nsender =\n"
	    "arrival 0\nsize 0\nsubmitter 33\nrcpts 0\nend\n", 0,
	    "bad string field" },
	{ "submitter null name", "mxrelay-envelope 2\nid -\nsender =\n"
	    "arrival 0\nsize 0\nsubmitter 33 -\nrcpts 0\nend\n", 0,
	    "required field is absent" },
	{ "submitter uid too big", "mxrelay-envelope 2\nid -\nsender =\n"
	    "arrival 0\nsize 0\nsubmitter 4294967296 =x\nrcpts 0\nend\n", 0,
	    "missing or bad submitter" },
	{ "submitter negative", "mxrelay-envelope 2\nid -\nsender =\n"
	    "arrival 0\nsize 0\nsubmitter -1 =x\nrcpts 0\nend\n", 0,
	    "missing or bad submitter" },
	{ "submitter spaced name", "mxrelay-envelope 2\nid -\nsender =\n"
	    "arrival 0\nsize 0\nsubmitter 1 =a b\nrcpts 0\nend\n", 0,
	    "unescaped byte in string field" },
	{ "version 0", "mxrelay-envelope 0\n", 0, "unsupported envelope version" },
	{ "version 01", "mxrelay-envelope 01\n", 0, "unsupported envelope version" },
	{ "version junk", "mxrelay-envelope 1x\n", 0,
	    "unsupported envelope version" },
	{ "version huge", "mxrelay-envelope 99999999999999999999999\n", 0,
	    "unsupported envelope version" },
	{ "missing id", "mxrelay-envelope 1\nsender =a@b\n", 0, "missing id" },
	{ "uppercase id", "mxrelay-envelope 1\nid 0123456789ABCDEF0123\n", 0,
	    "bad id" },
	{ "short id", "mxrelay-envelope 1\nid 0123\n", 0, "bad id" },
	{ "long id", "mxrelay-envelope 1\nid " ID1 "0\n", 0, "bad id" },
	{ "id path", "mxrelay-envelope 1\nid ../../etc/passwd00\n", 0, "bad id" },
	{ "empty id", "mxrelay-envelope 1\nid \n", 0, "missing id" },
	{ "missing sender", "mxrelay-envelope 1\nid -\narrival 1\n", 0,
	    "missing sender" },
	{ "null sender field", "mxrelay-envelope 1\nid -\nsender -\n", 0,
	    "required field is absent" },
	{ "sender no prefix", "mxrelay-envelope 1\nid -\nsender a@b\n", 0,
	    "bad string field" },
	{ "sender space", "mxrelay-envelope 1\nid -\nsender =a b\n", 0,
	    "unescaped byte in string field" },
	{ "sender tab", "mxrelay-envelope 1\nid -\nsender =a\tb\n", 0,
	    "unescaped byte in string field" },
	{ "sender CR", "mxrelay-envelope 1\nid -\nsender =a\r\n", 0,
	    "unescaped byte in string field" },
	{ "sender high byte", "mxrelay-envelope 1\nid -\nsender =\xc3\xa4\n", 0,
	    "unescaped byte in string field" },
	{ "sender NUL raw", "mxrelay-envelope 1\nid -\nsender =a\0b\n",
	    sizeof("mxrelay-envelope 1\nid -\nsender =a\0b\n") - 1,
	    "unescaped byte in string field" },
	{ "escape NUL", "mxrelay-envelope 1\nid -\nsender =a%00\n", 0,
	    "NUL byte in string field" },
	{ "escape lowercase", "mxrelay-envelope 1\nid -\nsender =a%0a\n", 0,
	    "bad escape in string field" },
	{ "escape short", "mxrelay-envelope 1\nid -\nsender =a%4\n", 0,
	    "bad escape in string field" },
	{ "escape bare", "mxrelay-envelope 1\nid -\nsender =a%\n", 0,
	    "bad escape in string field" },
	{ "escape needless", "mxrelay-envelope 1\nid -\nsender =%41\n", 0,
	    "needless escape in string field" },
	{ "missing arrival", "mxrelay-envelope 1\nid -\nsender =\nsize 1\n", 0,
	    "missing or bad arrival" },
	{ "negative arrival", "mxrelay-envelope 1\nid -\nsender =\narrival -1\n",
	    0, "missing or bad arrival" },
	{ "plus arrival", "mxrelay-envelope 1\nid -\nsender =\narrival +1\n",
	    0, "missing or bad arrival" },
	{ "zero-led arrival", "mxrelay-envelope 1\nid -\nsender =\narrival 01\n",
	    0, "missing or bad arrival" },
	{ "huge arrival", "mxrelay-envelope 1\nid -\nsender =\n"
	    "arrival 9223372036854775808\n", 0, "missing or bad arrival" },
	{ "empty arrival", "mxrelay-envelope 1\nid -\nsender =\narrival \n",
	    0, "missing or bad arrival" },
	{ "size overflow", "mxrelay-envelope 1\nid -\nsender =\narrival 1\n"
	    "size 18446744073709551616\n", 0, "missing or bad size" },
	{ "size hex", "mxrelay-envelope 1\nid -\nsender =\narrival 1\n"
	    "size 0x10\n", 0, "missing or bad size" },
	{ "missing rcpts", HEAD "end\n", 0, "missing or bad recipient count" },
	{ "rcpts junk", HEAD "rcpts one\n", 0, "missing or bad recipient count" },
	{ "no end", HEAD RC1 RCPT, 0, "truncated envelope" },
	{ "end without LF", HEAD RC1 RCPT "end", 0, "truncated envelope" },
	{ "cut in rcpt", HEAD RC1 "rcpt =c@d - pend", 0, "truncated envelope" },
	{ "data after end", HEAD RC1 RCPT "end\nx", 0, "data after end" },
	{ "two ends", HEAD RC1 RCPT "end\nend\n", 0, "data after end" },
	{ "CRLF", "mxrelay-envelope 1\r\n", 0, "unsupported envelope version" },
	{ "CRLF end", HEAD RC1 RCPT "end\r\n", 0, "unknown record" },
	{ "unknown record", HEAD RC1 "note hello\n" RCPT "end\n", 0,
	    "unknown record" },
	{ "too many", HEAD RC1 RCPT RCPT "end\n", 0, "more recipients than counted" },
	{ "too few", HEAD "rcpts 2\n" RCPT "end\n", 0,
	    "fewer recipients than counted" },
	{ "huge count", HEAD "rcpts 18446744073709551615\n" RCPT "end\n", 0,
	    "fewer recipients than counted" },
	{ "rcpt 6 fields", HEAD RC1 "rcpt =c@d - pending 0 0 0\nend\n", 0,
	    "bad recipient line" },
	{ "rcpt 7 fields (old layout)", HEAD RC1
	    "rcpt =c@d - pending 0 0 0 -\nend\n", 0, "bad recipient line" },
	{ "rcpt 8 fields", HEAD RC1 "rcpt =c@d - pending 0 0 0 - -\nend\n", 0,
	    "bad recipient line" },
	{ "rcpt 10 fields", HEAD RC1 "rcpt =c@d - pending 0 0 0 - - - -\nend\n",
	    0, "bad recipient line" },
	{ "rcpt double space", HEAD RC1 "rcpt =c@d  - pending 0 0 0 - - -\nend\n",
	    0, "bad recipient line" },
	{ "rcpt trailing space", HEAD RC1 "rcpt =c@d - pending 0 0 0 - - - \nend\n",
	    0, "bad recipient line" },
	{ "rcpt empty", HEAD RC1 "rcpt \nend\n", 0, "bad recipient line" },
	{ "rcpt null addr", HEAD RC1 "rcpt - - pending 0 0 0 - - -\nend\n", 0,
	    "required field is absent" },
	{ "rcpt bad orig", HEAD RC1 "rcpt =c@d x pending 0 0 0 - - -\nend\n", 0,
	    "bad string field" },
	{ "rcpt bad state", HEAD RC1 "rcpt =c@d - sent 0 0 0 - - -\nend\n", 0,
	    "bad recipient state" },
	{ "rcpt state case", HEAD RC1 "rcpt =c@d - Pending 0 0 0 - - -\nend\n", 0,
	    "bad recipient state" },
	{ "attempts overflow", HEAD RC1
	    "rcpt =c@d - pending 4294967296 0 0 - - -\nend\n", 0, "bad attempt count" },
	{ "attempts negative", HEAD RC1 "rcpt =c@d - pending -1 0 0 - - -\nend\n", 0,
	    "bad attempt count" },
	{ "next_try bad", HEAD RC1 "rcpt =c@d - pending 0 1e9 0 - - -\nend\n", 0,
	    "bad recipient time" },
	{ "last_try huge", HEAD RC1
	    "rcpt =c@d - pending 0 0 99999999999999999999 - - -\nend\n", 0,
	    "bad recipient time" },
	{ "reply bad escape", HEAD RC1 "rcpt =c@d - pending 0 0 0 =%zz - -\nend\n",
	    0, "bad escape in string field" },
	{ "status class 3", HEAD RC1 "rcpt =c@d - pending 0 0 0 - =3.1.1 -\nend\n",
	    0, "bad status code" },
	{ "status two parts", HEAD RC1 "rcpt =c@d - pending 0 0 0 - =5.1 -\nend\n",
	    0, "bad status code" },
	{ "status long subject", HEAD RC1
	    "rcpt =c@d - pending 0 0 0 - =5.1000.1 -\nend\n", 0, "bad status code" },
	{ "status long detail", HEAD RC1
	    "rcpt =c@d - pending 0 0 0 - =5.1.1000 -\nend\n", 0, "bad status code" },
	{ "status trailing dot", HEAD RC1
	    "rcpt =c@d - pending 0 0 0 - =5.1.1. -\nend\n", 0, "bad status code" },
	{ "status empty", HEAD RC1 "rcpt =c@d - pending 0 0 0 - = -\nend\n",
	    0, "bad status code" },
	{ "status escaped space", HEAD RC1
	    "rcpt =c@d - pending 0 0 0 - =5.1.1%20 -\nend\n", 0, "bad status code" },
	{ "status no prefix", HEAD RC1 "rcpt =c@d - pending 0 0 0 - 5.1.1 -\nend\n",
	    0, "bad string field" },
	{ "remote_mta no prefix", HEAD RC1
	    "rcpt =c@d - pending 0 0 0 - - mx.test\nend\n", 0, "bad string field" },
	{ "remote_mta bad escape", HEAD RC1
	    "rcpt =c@d - pending 0 0 0 - - =mx%2\nend\n", 0,
	    "bad escape in string field" },
	{ "remote_mta raw tab", HEAD RC1
	    "rcpt =c@d - pending 0 0 0 - - =mx\t\nend\n", 0,
	    "unescaped byte in string field" },
};

static void
test_decode_errors(void **state)
{
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct envelope env;
		const char *err = NULL;
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
		int rc;

		memset(&env, 0xa5, sizeof(env));
		rc = envelope_decode(bad[i].text, len, &env, &err);
		if (rc != -1 || err == NULL ||
		    (bad[i].err != NULL && strcmp(err, bad[i].err) != 0))
			fail_msg("%s: rc %d err \"%s\", want \"%s\"", bad[i].name,
			    rc, err ? err : "(null)", bad[i].err);
		/* Left empty: nothing to free, nothing half-filled. */
		assert_null(env.sender);
		assert_null(env.rcpt);
		assert_int_equal(env.nrcpt, 0);
		assert_string_equal(env.id, "");
	}
}

static void
test_status_valid(void **state)
{
	static const char *good[] = { "2.0.0", "4.4.1", "5.1.1", "5.1.10",
	    "5.123.999", "4.000.000", "5.7.26" };
	static const char *badst[] = { "", "5", "5.", "5.1", "5.1.", "1.1.1",
	    "3.1.1", "6.0.0", "0.0.0", "55.1.1", "5.1000.1", "5.1.1000",
	    "5..1", "5.1..1", "5.1.1.", ".5.1.1", " 5.1.1", "5.1.1 ", "5.a.1",
	    "5.1.x", "5-1-1", "5.1.1\n", "+5.1.1", "5.1.-1" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!envelope_status_valid(good[i]))
			fail_msg("\"%s\" refused", good[i]);
	for (size_t i = 0; i < sizeof(badst) / sizeof(badst[0]); i++)
		if (envelope_status_valid(badst[i]))
			fail_msg("\"%s\" accepted", badst[i]);
	assert_false(envelope_status_valid(NULL));
}

/*
 * The seed corpus of the fuzz target: files named valid-* must decode
 * (the fuzz target then checks the round trip), bad-* must not, so that a
 * change of layout cannot silently turn every seed into a rejection.
 */
static void
test_corpus(void **state)
{
	const char *srcdir = getenv("srcdir");
	char dir[PATH_MAX], path[PATH_MAX + 256];
	struct dirent *de;
	DIR *d;
	unsigned nvalid = 0, nbad = 0;

	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/envelope",
	    srcdir != NULL ? srcdir : ".");
	if ((d = opendir(dir)) == NULL) {
		if (srcdir == NULL)
			skip();
		fail_msg("%s: %s", dir, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		struct envelope env;
		const char *err;
		char buf[8192];
		size_t len;
		FILE *f;
		bool valid;

		if (strncmp(de->d_name, "valid-", 6) == 0)
			valid = true;
		else if (strncmp(de->d_name, "bad-", 4) == 0)
			valid = false;
		else
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_non_null(f = fopen(path, "rb"));
		len = fread(buf, 1, sizeof(buf), f);
		assert_true(len < sizeof(buf));
		fclose(f);
		if (envelope_decode(buf, len, &env, &err) == 0) {
			char *again;
			size_t alen;

			if (!valid)
				fail_msg("%s decodes", de->d_name);
			assert_int_equal(envelope_encode(&env, &again, &alen), 0);
			assert_int_equal(alen, len);
			assert_memory_equal(again, buf, len);
			free(again);
			envelope_free(&env);
			nvalid++;
		} else {
			if (valid)
				fail_msg("%s: %s", de->d_name, err);
			nbad++;
		}
	}
	closedir(d);
	assert_true(nvalid >= 4);
	assert_true(nbad >= 4);
}

static void
test_decode_good(void **state)
{
	static const char text[] = HEAD RC1 RCPT "end\n";
	static const char noid[] = "mxrelay-envelope 1\nid -\nsender =\n"
	    "arrival 0\nsize 0\nrcpts 0\nend\n";
	static const char st[] = HEAD "rcpts 2\n"
	    "rcpt =c@d - bounced 1 0 3 =550%20no =5.1.1 =mx1.d\n"
	    "rcpt =e@f - pending 1 9 3 =timeout =4.4.1 -\n"
	    "end\n";
	struct envelope env;
	const char *err;

	assert_int_equal(envelope_decode(text, strlen(text), &env, &err), 0);
	assert_string_equal(env.id, ID1);
	assert_string_equal(env.sender, "a@b");
	assert_int_equal(env.arrival, 1);
	assert_int_equal(env.size, 2);
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpt[0].addr, "c@d");
	assert_null(env.rcpt[0].orig);
	assert_null(env.rcpt[0].last_reply);
	envelope_free(&env);

	assert_int_equal(envelope_decode(noid, strlen(noid), &env, &err), 0);
	assert_string_equal(env.id, "");
	assert_string_equal(env.sender, "");
	envelope_free(&env);

	/* Only len bytes are read: a valid prefix of a longer buffer. */
	assert_int_equal(envelope_decode(text, strlen(text) - 1, &env, &err), -1);
	assert_int_equal(envelope_decode(NULL, 0, &env, &err), -1);

	/* The last two fields: status code and reporting exchanger. */
	assert_int_equal(envelope_decode(st, strlen(st), &env, &err), 0);
	assert_string_equal(env.rcpt[0].status, "5.1.1");
	assert_string_equal(env.rcpt[0].remote_mta, "mx1.d");
	assert_string_equal(env.rcpt[1].status, "4.4.1");
	assert_null(env.rcpt[1].remote_mta);
	assert_null(env.rcpt[0].orig);
	envelope_free(&env);
	assert_int_equal(envelope_decode(text, strlen(text), &env, &err), 0);
	assert_null(env.rcpt[0].status);
	assert_null(env.rcpt[0].remote_mta);
	envelope_free(&env);
}

/*
 * Version 3: the body line.  Old envelopes (1 and 2) load with eightbit
 * UNKNOWN and keep their version when written again; a known flag
 * writes version 3, with or without a submitter, and reads back.
 */
static void
test_body_8bit(void **state)
{
	static const char v1[] = "mxrelay-envelope 1\nid -\nsender =\n"
	    "arrival 0\nsize 0\nrcpts 0\nend\n";
	static const char v3[] = "mxrelay-envelope 3\nid -\nsender =\n"
	    "arrival 0\nsize 0\nbody 8bit\nrcpts 0\nend\n";
	static const char v3s[] = "mxrelay-envelope 3\nid -\nsender =\n"
	    "arrival 0\nsize 0\nbody 7bit\nsubmitter 33 =www\nrcpts 0\nend\n";
	static const struct {
		const char		*rule;
		const char		*text;
		enum envelope_8bit	 want;
	} t[] = {
		{ "an old envelope does not know", v1, ENVELOPE_8BIT_UNKNOWN },
		{ "8bit", v3, ENVELOPE_8BIT_YES },
		{ "7bit, then the submitter", v3s, ENVELOPE_8BIT_NO },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct envelope env, copy;
		const char *err;
		char *buf;
		size_t len;

		if (envelope_decode(t[i].text, strlen(t[i].text), &env,
		    &err) != 0)
			fail_msg("%s: %s", t[i].rule, err);
		assert_int_equal(env.eightbit, t[i].want);
		/* Canonical: the same bytes back, so the version is kept. */
		assert_int_equal(envelope_encode(&env, &buf, &len), 0);
		assert_int_equal(len, strlen(t[i].text));
		assert_memory_equal(buf, t[i].text, len);
		free(buf);
		/* A copy encodes the same. */
		envelope_copy(&copy, &env);
		assert_int_equal(envelope_encode(&copy, &buf, &len), 0);
		assert_memory_equal(buf, t[i].text, len);
		free(buf);
		envelope_free(&copy);
		envelope_free(&env);
	}
}

/*
 * Version 4: the flags line.  Each flag, and all of them, read back and
 * write the same bytes; with the body and submitter lines or without.
 * An envelope without flags keeps its older version; a flag outside
 * ENVELOPE_F_ALL cannot be written.
 */
static void
test_flags(void **state)
{
	static const struct {
		const char	*text;
		unsigned	 want;
	} t[] = {
		{ "mxrelay-envelope 4\nid -\nsender =\narrival 0\nsize 0\n"
		    "flags hold\nrcpts 0\nend\n", ENVELOPE_F_HOLD },
		{ "mxrelay-envelope 4\nid -\nsender =\narrival 0\nsize 0\n"
		    "body 8bit\nsubmitter 33 =www\nflags smtputf8\nrcpts 0\n"
		    "end\n", ENVELOPE_F_SMTPUTF8 },
		{ "mxrelay-envelope 4\nid -\nsender =\narrival 0\nsize 0\n"
		    "body 7bit\nflags hold smtputf8 warned\nrcpts 0\nend\n",
		    ENVELOPE_F_ALL },
		{ "mxrelay-envelope 4\nid -\nsender =\narrival 0\nsize 0\n"
		    "submitter 33 =www\nflags warned\nrcpts 1\n"
		    "rcpt =a@b - pending 0 0 0 - - -\nend\n", ENVELOPE_F_WARNED },
	};
	struct envelope env;
	const char *err;
	char *buf;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (envelope_decode(t[i].text, strlen(t[i].text), &env,
		    &err) != 0)
			fail_msg("row %zu: %s", i, err);
		assert_int_equal(env.flags, t[i].want);
		assert_int_equal(envelope_encode(&env, &buf, &len), 0);
		assert_int_equal(len, strlen(t[i].text));
		assert_memory_equal(buf, t[i].text, len);
		free(buf);
		/* Without its flags it is an older version again. */
		env.flags = 0;
		assert_int_equal(envelope_encode(&env, &buf, &len), 0);
		assert_null(memmem(buf, len, "flags", 5));
		assert_memory_not_equal(buf, "mxrelay-envelope 4", 18);
		free(buf);
		env.flags = 0x80;
		assert_int_equal(envelope_encode(&env, &buf, &len), -1);
		envelope_free(&env);
	}
}

/*
 * Version 5: the dkim line.  The signature's CR, LF, tabs and spaces of
 * folding come back byte for byte, alone or with every other optional
 * line; the same bytes are written again.  Without a signature (NULL or
 * "") an envelope keeps its older version and has no dkim line.
 */
#define SIG	"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n" \
		"\td=example.com; s=sel; t=1700000000;\r\n" \
		"\th=from:to:subject:from; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" \
		"\tb=AbC+/x==\r\n"
#define SIG_ENC	"=DKIM-Signature:%20v=1;%20a=rsa-sha256;%20c=relaxed/relaxed;%0D%0A" \
		"%09d=example.com;%20s=sel;%20t=1700000000;%0D%0A" \
		"%09h=from:to:subject:from;%20bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;%0D%0A" \
		"%09b=AbC+/x==%0D%0A"
static void
test_dkim(void **state)
{
	static const struct {
		const char	*text;
		const char	*older;	/* its version without the signature */
	} t[] = {
		{ "mxrelay-envelope 5\nid -\nsender =\narrival 0\nsize 0\n"
		    "dkim " SIG_ENC "\nrcpts 0\nend\n", "mxrelay-envelope 1\n" },
		{ "mxrelay-envelope 5\nid " ID1 "\nsender =a@b\narrival 7\n"
		    "size 9\nbody 8bit\nsubmitter 33 =www\nflags hold warned\n"
		    "dkim " SIG_ENC "\nrcpts 1\n"
		    "rcpt =c@d - pending 0 0 0 - - -\nend\n",
		    "mxrelay-envelope 4\n" },
		{ "mxrelay-envelope 5\nid -\nsender =\narrival 0\nsize 0\n"
		    "body 7bit\ndkim " SIG_ENC "\nrcpts 0\nend\n",
		    "mxrelay-envelope 3\n" },
		{ "mxrelay-envelope 5\nid -\nsender =\narrival 0\nsize 0\n"
		    "submitter 0 =root\ndkim " SIG_ENC "\nrcpts 0\nend\n",
		    "mxrelay-envelope 2\n" },
	};
	struct envelope env, copy;
	const char *err;
	char *buf;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (envelope_decode(t[i].text, strlen(t[i].text), &env,
		    &err) != 0)
			fail_msg("row %zu: %s", i, err);
		assert_non_null(env.dkim);
		assert_string_equal(env.dkim, SIG);
		assert_int_equal(envelope_encode(&env, &buf, &len), 0);
		assert_int_equal(len, strlen(t[i].text));
		assert_memory_equal(buf, t[i].text, len);
		free(buf);
		/* A copy has its own signature. */
		envelope_copy(&copy, &env);
		assert_ptr_not_equal(copy.dkim, env.dkim);
		assert_string_equal(copy.dkim, SIG);
		envelope_free(&copy);
		/* Without its signature it is an older version again. */
		for (int empty = 0; empty < 2; empty++) {
			free(env.dkim);
			env.dkim = empty ? xstrdup("") : NULL;
			assert_int_equal(envelope_encode(&env, &buf, &len), 0);
			assert_null(memmem(buf, len, "dkim", 4));
			assert_memory_equal(buf, t[i].older,
			    strlen(t[i].older));
			free(buf);
		}
		envelope_free(&env);
	}
}

static void
test_copy_deep(void **state)
{
	struct envelope a, b;

	(void)state;
	envelope_init(&a);
	a.sender = xstrdup("s@x");
	envelope_add_rcpt(&a, "r@y", "orig");
	a.rcpt[0].last_reply = xstrdup("451 later");
	envelope_copy(&b, &a);
	envelope_free(&a);	/* b owns its own strings */
	assert_string_equal(b.sender, "s@x");
	assert_string_equal(b.rcpt[0].addr, "r@y");
	assert_string_equal(b.rcpt[0].orig, "orig");
	assert_string_equal(b.rcpt[0].last_reply, "451 later");
	assert_null(b.rcpt[0].status);
	envelope_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_all_fields),
		cmocka_unit_test(test_roundtrip_minimal),
		cmocka_unit_test(test_roundtrip_every_byte),
		cmocka_unit_test(test_encode_text),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_submitter),
		cmocka_unit_test(test_state_text),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_decode_good),
		cmocka_unit_test(test_status_valid),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_body_8bit),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_dkim),
		cmocka_unit_test(test_copy_deep),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
