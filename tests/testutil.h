/*
 * testutil: small helpers shared by the unit tests (linked in with
 * TEST_COMMON, beside mock_log).
 */
#ifndef MXRELAY_TESTUTIL_H
#define MXRELAY_TESTUTIL_H

#include <stddef.h>

/*
 * mkdtemp() of "$TMPDIR/NAME.XXXXXX" into buf, or of "/tmp/NAME.XXXXXX"
 * when TMPDIR is unset, empty or too long for buf.  Returns buf, or NULL
 * (errno set) when even the /tmp name does not fit or mkdtemp() fails.
 */
char	*test_mkdtemp(char *buf, size_t len, const char *name);

#endif
