/*
 * fuzz_envelope: envelope_decode() on arbitrary bytes, the decoder the
 * spool, the drop folder and mxrelay -bp use on every envelope they load
 * (versions 1 to 3).  It must never crash, leak or read out of bounds;
 * when it accepts the input, encoding the result must give back exactly
 * the input (the encoding is canonical) and decoding that again must give
 * the same envelope, every field compared (the submitter and body lines
 * of versions 2 and 3, each recipient's status and remote MTA); a copy
 * (envelope_copy, as the queue manager makes) must equal it too.
 *
 * make check replays tests/fuzz/corpus/envelope through tests/fuzz/replay.c;
 * configure --enable-fuzzing builds tests/fuzz/lf/fuzz_envelope.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	str_eq(const char *, const char *);
static int	env_eq(const struct envelope *, const struct envelope *);

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
env_eq(const struct envelope *a, const struct envelope *b)
{
	if (strcmp(a->id, b->id) != 0 || !str_eq(a->sender, b->sender) ||
	    a->arrival != b->arrival || a->size != b->size ||
	    a->submit_uid != b->submit_uid ||
	    !str_eq(a->submit_user, b->submit_user) ||
	    a->eightbit != b->eightbit || a->nrcpt != b->nrcpt)
		return 0;
	for (size_t i = 0; i < a->nrcpt; i++) {
		const struct envelope_rcpt *x = &a->rcpt[i], *y = &b->rcpt[i];

		if (!str_eq(x->addr, y->addr) || !str_eq(x->orig, y->orig) ||
		    x->state != y->state || x->attempts != y->attempts ||
		    x->next_try != y->next_try || x->last_try != y->last_try ||
		    !str_eq(x->last_reply, y->last_reply) ||
		    !str_eq(x->status, y->status) ||
		    !str_eq(x->remote_mta, y->remote_mta))
			return 0;
	}
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct envelope env, again;
	const char *err;
	char *buf;
	size_t len;

	if (envelope_decode((const char *)data, size, &env, &err) == -1) {
		/* A rejection always says why and leaves nothing behind. */
		if (err == NULL || env.sender != NULL || env.rcpt != NULL)
			abort();
		return 0;
	}
	if (envelope_encode(&env, &buf, &len) == -1)
		abort();
	if (len != size || memcmp(buf, data, size) != 0)
		abort();
	if (envelope_decode(buf, len, &again, &err) == -1 || !env_eq(&env, &again))
		abort();
	free(buf);
	envelope_free(&again);
	envelope_copy(&again, &env);
	if (!env_eq(&env, &again))
		abort();
	envelope_free(&again);
	envelope_free(&env);
	return 0;
}
