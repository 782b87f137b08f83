/*
 * testutil: small helpers shared by the unit tests (linked in with
 * TEST_COMMON, beside mock_log).
 */
#ifndef MXRELAY_TESTUTIL_H
#define MXRELAY_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

/*
 * mkdtemp() of "$TMPDIR/NAME.XXXXXX" into buf, or of "/tmp/NAME.XXXXXX"
 * when TMPDIR is unset, empty or too long for buf.  Returns buf, or NULL
 * (errno set) when even the /tmp name does not fit or mkdtemp() fails.
 */
char	*test_mkdtemp(char *buf, size_t len, const char *name);

/*
 * Start argv[0] (a test-world server: dnsd, smtpsink) with its standard
 * output on a pipe, and read the first line it prints (its address or
 * port, once it listens) into line, without the newline.  Each read
 * waits at most timeout_ms.  The child dies with the test (Linux).
 * Returns the child's pid, with *pidp set too; -1 when the fork failed,
 * or when no whole line came (*pidp is then the child to reap, or -1).
 */
pid_t	 test_spawn_line(const char *const argv[], char *line, size_t len,
	    int timeout_ms, pid_t *pidp);

#endif
