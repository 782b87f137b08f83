/*
 * testutil: see testutil.h.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "testutil.h"

char *
test_mkdtemp(char *buf, size_t len, const char *name)
{
	const char *t = getenv("TMPDIR");
	int n = -1;

	if (t != NULL && *t != '\0')
		n = snprintf(buf, len, "%s/%s.XXXXXX", t, name);
	if (n < 0 || (size_t)n >= len)
		n = snprintf(buf, len, "/tmp/%s.XXXXXX", name);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	return mkdtemp(buf);
}
