/*
 * fuzz_smtpd_auth: what a client sends for AUTH (RFC 4954) through the
 * pure decoders of src/smtpd_auth.c: the command's argument, and the
 * base64 PLAIN and LOGIN responses.  Nothing may crash, leak or touch
 * memory outside the buffers given, and the results must keep the
 * promises of smtpd_auth.h.
 *
 * The first input octet chooses what the rest is: the argument of AUTH
 * (its initial response then decoded for its mechanism), a bare PLAIN
 * response, or a bare LOGIN response decoded into a buffer of
 * SMTPD_AUTH_BUF octets or of a size taken from the second octet.
 *
 * make check replays tests/fuzz/corpus/smtpd_auth through replay.c.
 * libFuzzer build: CC=clang ./configure --enable-fuzzing; make fuzz
 * (tests/fuzz/local.mk) gives tests/fuzz/lf/fuzz_smtpd_auth.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd_auth.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	*copy(const uint8_t *, size_t, int);
static void	fuzz_cmd(const uint8_t *, size_t);
static void	fuzz_plain(const char *, size_t);
static void	fuzz_login(const char *, size_t, size_t);

/* A heap copy of exactly len octets, plus a NUL when nul is set. */
static char *
copy(const uint8_t *data, size_t len, int nul)
{
	size_t n = len + (nul ? 1 : 0);
	char *c;

	if ((c = malloc(n == 0 ? 1 : n)) == NULL)
		abort();
	memcpy(c, data, len);
	if (nul)
		c[len] = '\0';
	return c;
}

static void
fuzz_plain(const char *b64, size_t len)
{
	struct smtpd_auth_plain *pl;
	const char *end;

	if ((pl = malloc(sizeof(*pl))) == NULL)
		abort();
	end = pl->buf + sizeof(pl->buf);
	if (smtpd_auth_plain_decode(b64, len, pl) == 0) {
		if (pl->pass != NULL && pl->user == NULL)
			abort();
		if (pl->user != NULL && (pl->user < pl->buf ||
		    pl->user + strnlen(pl->user, end - pl->user) >= end))
			abort();
		if (pl->pass != NULL && (pl->pass <= pl->user ||
		    pl->pass + strnlen(pl->pass, end - pl->pass) >= end))
			abort();
	} else if (pl->user != NULL || pl->pass != NULL)
		abort();
	free(pl);
}

static void
fuzz_login(const char *b64, size_t len, size_t size)
{
	char *buf;

	/* An exact heap buffer: ASan sees a write past size. */
	if ((buf = malloc(size == 0 ? 1 : size)) == NULL)
		abort();
	if (smtpd_auth_login_decode(b64, len, buf, size) == 0 &&
	    (size == 0 || strnlen(buf, size) >= size))
		abort();
	free(buf);
}

static void
fuzz_cmd(const uint8_t *data, size_t size)
{
	struct smtpd_auth_cmd ac;
	char *arg = copy(data, size, 1);

	/* smtpd_cmd_parse() hands over a line without NULs. */
	if (memchr(data, '\0', size) != NULL) {
		free(arg);
		return;
	}
	if (smtpd_auth_cmd_parse(arg, &ac) == -1) {
		free(arg);
		return;
	}
	if (ac.ir != NULL) {
		if (ac.ir < arg || ac.ir > arg + size)
			abort();
		if (ac.mech == SMTPD_AUTH_PLAIN)
			fuzz_plain(ac.ir, strlen(ac.ir));
		else if (ac.mech == SMTPD_AUTH_LOGIN)
			fuzz_login(ac.ir, strlen(ac.ir), SMTPD_AUTH_BUF);
	}
	free(arg);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *b64;

	if (size < 2)
		return 0;
	switch (data[0] % 4) {
	case 0:
		fuzz_cmd(data + 1, size - 1);
		break;
	case 1:
		/* Not NUL-terminated: the decoders take a length. */
		b64 = copy(data + 1, size - 1, 0);
		fuzz_plain(b64, size - 1);
		free(b64);
		break;
	case 2:
		b64 = copy(data + 1, size - 1, 0);
		fuzz_login(b64, size - 1, SMTPD_AUTH_BUF);
		free(b64);
		break;
	default:
		b64 = copy(data + 2, size - 2, 0);
		fuzz_login(b64, size - 2, data[1] % 64);
		free(b64);
		break;
	}
	return 0;
}
