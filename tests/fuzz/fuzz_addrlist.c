/*
 * fuzz_addrlist: msg_addrlist_parse and msg_addr_check on arbitrary bytes.
 * Checks the parser's promises: on success every address passes
 * msg_addr_check(addr, true); on error nothing is appended.
 *
 * libFuzzer build: CC=clang ./configure --enable-fuzzing; make fuzz
 * (tests/fuzz/local.mk) gives tests/fuzz/lf/fuzz_addrlist.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct strlist out = { NULL, 0, 0 };
	char err[256], err2[256], *s;
	int n;

	strlist_add(&out, "sentinel");
	n = msg_addrlist_parse((const char *)data, size, &out, err, sizeof(err));
	if (n == -1) {
		if (out.n != 1 || err[0] == '\0')
			abort();
	} else {
		if (out.n != (size_t)n + 1)
			abort();
		for (size_t i = 1; i < out.n; i++)
			if (msg_addr_check(out.v[i], true, err2,
			    sizeof(err2)) == -1)
				abort();
	}
	strlist_free(&out);

	/* The same bytes as one envelope address, NUL-terminated. */
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)msg_addr_check(s, false, err, sizeof(err));
	(void)msg_addr_check(s, true, err, sizeof(err));
	free(s);
	return 0;
}
