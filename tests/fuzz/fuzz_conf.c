/*
 * fuzz_conf: feeds arbitrary bytes to the config and aliases parsers.
 * The bytes are written to one temp file (created on the first call,
 * removed at exit) which conf_load() and aliases_load() then read; the
 * first line is also given to the single-value parsers.  Nothing may
 * crash, leak or read out of bounds, whatever the input.
 */
#include "config.h"

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aliases.h"
#include "conf.h"
#include "util.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char	fuzz_path[PATH_MAX];

static void
fuzz_cleanup(void)
{
	if (fuzz_path[0] != '\0')
		unlink(fuzz_path);
}

static int
fuzz_write(const uint8_t *data, size_t len)
{
	int fd;

	if (fuzz_path[0] == '\0') {
		const char *t = getenv("TMPDIR");

		snprintf(fuzz_path, sizeof(fuzz_path), "%s/fuzz_conf.XXXXXX",
		    t != NULL && *t != '\0' ? t : "/tmp");
		if ((fd = mkstemp(fuzz_path)) == -1)
			abort();
		close(fd);
		atexit(fuzz_cleanup);
	}
	if ((fd = open(fuzz_path, O_WRONLY | O_TRUNC)) == -1)
		return -1;
	while (len > 0) {
		ssize_t n = write(fd, data, len);

		if (n <= 0) {
			close(fd);
			return -1;
		}
		data += n;
		len -= (size_t)n;
	}
	return close(fd);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct conf c;
	struct aliases *al;
	struct hostport hp;
	struct cidr cidr;
	char err[256], *first;
	size_t flen;

	if (fuzz_write(data, len) == -1)
		abort();
	/* A config that sets no hostname looks the host up: once, cached. */
	if (conf_load(fuzz_path, true, &c, err, sizeof(err)) == 0) {
		unsigned char any[16] = { 0 };

		(void)conf_cidr_match(c.relay_clients, c.nrelay_clients,
		    AF_INET6, any);
		(void)conf_tls_policy_for(c.tls, c.tls_policies,
		    c.ntls_policies, "example.com");
		conf_free(&c);
	}
	if (aliases_load(fuzz_path, &al, err, sizeof(err)) == 0) {
		struct strlist out = { NULL, 0, 0 };
		static const char *names[] = { "root", "postmaster", "a" };

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			(void)aliases_expand(al, names[i], &out, err,
			    sizeof(err));
		strlist_free(&out);
		aliases_free(al);
	}

	flen = 0;
	while (flen < len && data[flen] != '\n' && data[flen] != '\0')
		flen++;
	first = xstrndup((const char *)data, flen);
	if (conf_parse_hostport(first, &hp) == 0)
		free(hp.host);
	(void)conf_parse_cidr(first, &cidr);
	free(first);
	return 0;
}
