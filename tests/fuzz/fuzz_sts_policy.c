/*
 * fuzz_sts_policy: feeds arbitrary bytes to the MTA-STS parsers of
 * sts_policy.c: as a TXT record (up to the first NUL), as a policy body
 * (whose accepted patterns must then match the hosts they describe), and
 * as an HTTP response: the status line, header lines up to the empty one,
 * then the rest through the chunked decoder in pieces whose sizes come
 * from the input.  Nothing may crash, read out of bounds or break the
 * parsers' invariants.
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sts_policy.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	out[STS_BODY_MAX];

static void
check_policy(const struct sts_policy *p)
{
	char host[300];

	if (p->mode != STS_MODE_NONE && p->mode != STS_MODE_TESTING &&
	    p->mode != STS_MODE_ENFORCE)
		abort();
	if (p->max_age > STS_MAX_AGE_MAX || (p->mode != STS_MODE_NONE &&
	    p->nmx == 0))
		abort();
	for (size_t i = 0; i < p->nmx; i++) {
		const char *m = p->mx[i];
		size_t n = strlen(m);

		if (n == 0 || n > 255 || m[n - 1] == '.')
			abort();
		for (size_t k = 0; k < n; k++)
			if (m[k] >= 'A' && m[k] <= 'Z')
				abort();
		if (m[0] == '*') {
			if (m[1] != '.' || strchr(m + 1, '*') != NULL)
				abort();
			memcpy(host, "Xy", 2);
			memcpy(host + 2, m + 1, n);	/* NUL included */
			if (!sts_mx_match(p, host))
				abort();
		} else if (strchr(m, '*') != NULL || !sts_mx_match(p, m))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char *p = (const char *)data, *end = p + len;
	char *s, id[STS_ID_MAX + 1], err[128];
	struct sts_policy pol, copy;
	struct sts_http h;
	struct sts_chunked c;
	size_t outlen = 0, step = 0;
	bool status = true;

	s = malloc(len + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, len);
	s[len] = '\0';
	if (sts_txt_parse(s, id) == 0 && (strlen(id) == 0 ||
	    strlen(id) > STS_ID_MAX))
		abort();
	free(s);

	memset(&pol, 0, sizeof(pol));
	if (sts_policy_parse(p, len, &pol, err, sizeof(err)) == 0) {
		check_policy(&pol);
		sts_policy_copy(&copy, &pol);
		sts_policy_clear(&pol);
		check_policy(&copy);
		sts_policy_clear(&copy);
	}

	sts_http_init(&h);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		if (llen > 0 && p[llen - 1] == '\r')
			llen--;
		if (status) {
			if (sts_http_status(&h, p, llen) == 0 &&
			    (h.status < 100 || h.status > 999))
				abort();
			status = false;
		} else if (llen == 0) {
			p = nl != NULL ? nl + 1 : end;
			break;
		} else if (sts_http_header(&h, p, llen, err,
		    sizeof(err)) == -1)
			break;
		if (h.length < -1)
			abort();
		p = nl != NULL ? nl + 1 : end;
	}

	sts_chunked_init(&c);
	while (p < end) {
		size_t n = (size_t)(end - p), used;
		enum sts_chunked_result r;

		step = step * 31 + (unsigned char)*p;
		if (n > 1 + step % 97)
			n = 1 + step % 97;
		r = sts_chunked_decode(&c, p, n, &used, out, &outlen,
		    sizeof(out));
		if (used > n || outlen > sizeof(out) ||
		    (r == STS_CHUNKED_MORE && used != n))
			abort();
		p += used;
		if (r != STS_CHUNKED_MORE)
			break;
	}
	return 0;
}
