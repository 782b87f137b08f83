/*
 * fuzz_dkim: the DKIM signer (src/dkim.c) on arbitrary messages, cut into
 * pieces of a size the fuzzer chooses.
 *
 * Input: octet 0 the size of each piece (0: the whole message in one
 * call); the rest is the message as the spool would hold it.  The keys:
 * Ed25519 for example.com and for sub.example.com.
 *
 * The signer must keep its promises whatever the bytes and the cut:
 *  - the same answer for the pieces as for the whole (Ed25519 is
 *    deterministic), and the same body hash;
 *  - either "" with a reason, or DKIM-Signature fields, each line ending
 *    in CRLF, of at most 78 octets, continuation lines starting with a
 *    space.
 *
 * make check replays tests/fuzz/corpus/dkim (run-dkim.sh).
 * libFuzzer build: CC=clang ./configure --enable-fuzzing; make fuzz
 * (tests/fuzz/local.mk) gives tests/fuzz/lf/fuzz_dkim.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "dkim.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct dkim_key *keys[2];

/* An Ed25519 key made from a fixed seed, read back as a key file is. */
static struct dkim_key *
key_make(unsigned char fill, const char *domain)
{
	unsigned char seed[32];
	struct dkim_key *key;
	EVP_PKEY *pkey;
	char err[256], *pem;
	BIO *bio;
	bool weak;
	long n;
	int fd[2];

	memset(seed, fill, sizeof(seed));
	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
	    sizeof(seed));
	bio = BIO_new(BIO_s_mem());
	if (pkey == NULL || bio == NULL || PEM_write_bio_PrivateKey(bio, pkey,
	    NULL, NULL, 0, NULL, NULL) != 1 || pipe(fd) == -1)
		abort();
	n = BIO_get_mem_data(bio, &pem);
	if (write(fd[1], pem, (size_t)n) != n)
		abort();
	close(fd[1]);
	key = dkim_key_read_fd(fd[0], "fuzz.key", domain, "s", &weak, err,
	    sizeof(err));
	close(fd[0]);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	if (key == NULL)
		abort();
	return key;
}

static char *
sign(const char *msg, size_t len, size_t piece, char **bh)
{
	struct dkim_sign *s;
	const char *why;
	char err[256], *out;
	size_t i, k;

	s = dkim_sign_new(keys, 2, 1700000000, 3600);
	if (piece == 0)
		dkim_sign_feed(s, msg, len);
	else
		for (i = 0; i < len; i += k) {
			k = len - i < piece ? len - i : piece;
			dkim_sign_feed(s, msg + i, k);
		}
	out = dkim_sign_end(s, &why, err, sizeof(err));
	if (out == NULL || (*out == '\0' && why == NULL))
		abort();
	*bh = strdup(dkim_sign_bh(s));
	dkim_sign_free(s);
	return out;
}

/* Folded DKIM-Signature fields: CRLF lines of at most 78 octets. */
static void
check_fields(const char *out)
{
	const char *p = out, *e;
	bool first = true;

	while (*p != '\0') {
		if ((e = strstr(p, "\r\n")) == NULL || e - p > 78 ||
		    memchr(p, '\n', (size_t)(e - p)) != NULL)
			abort();
		if (*p != ' ' && strncmp(p, "DKIM-Signature: v=1; ", 21) != 0)
			abort();
		if (first && *p == ' ')
			abort();
		first = false;
		p = e + 2;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *whole, *cut, *bh1, *bh2;

	if (keys[0] == NULL) {
		keys[0] = key_make(1, "example.com");
		keys[1] = key_make(2, "sub.example.com");
	}
	if (size < 1)
		return 0;
	whole = sign((const char *)data + 1, size - 1, 0, &bh1);
	cut = sign((const char *)data + 1, size - 1, data[0], &bh2);
	if (strcmp(whole, cut) != 0 || strcmp(bh1, bh2) != 0)
		abort();
	check_fields(whole);
	free(whole);
	free(cut);
	free(bh1);
	free(bh2);
	return 0;
}
