/*
 * fuzz_headers: msg_headers_fix on arbitrary bytes, with and without -t.
 * Checks: body_off within the input, output made of CRLF-terminated
 * lines, every extracted recipient a valid (possibly unqualified) address,
 * nothing added on error.
 *
 * libFuzzer build: CC=clang ./configure --enable-fuzzing; make fuzz
 * (tests/fuzz/local.mk) gives tests/fuzz/lf/fuzz_headers.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
run(const uint8_t *data, size_t size, bool extract, const char *sender,
    const char *name)
{
	struct msg_header_opts o = {
		.extract_rcpts = extract,
		.sender = sender,
		.full_name = name,
		.hostname = "mx.example.org",
		.queue_id = "0123456789AB",
		.now = 1795459453,
	};
	struct strlist rcpts = { NULL, 0, 0 };
	char *out = NULL, err[256];
	size_t outlen = 0, body = 0;

	if (msg_headers_fix((const char *)data, size, &o, &out, &outlen,
	    &body, &rcpts, err, sizeof(err)) == -1) {
		if (out != NULL || rcpts.n != 0)
			abort();
	} else {
		if (out == NULL || body > size || outlen < 2 ||
		    memcmp(out + outlen - 2, "\r\n", 2) != 0)
			abort();
		for (size_t i = 0; i < rcpts.n; i++)
			if (msg_addr_check(rcpts.v[i], true, err,
			    sizeof(err)) == -1)
				abort();
	}
	free(out);
	strlist_free(&rcpts);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	run(data, size, true, "", NULL);
	run(data, size, false, "user@example.org", "Fuzz \"Name\" (x)");
	return 0;
}
