/*
 * testutil: see testutil.h.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

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

pid_t
test_spawn_line(const char *const argv[], char *line, size_t len, int timeout_ms,
    pid_t *pidp)
{
	int pfd[2];
	size_t got = 0;
	char *nl;
	pid_t pid;

	*pidp = -1;
	if (len == 0 || pipe(pfd) == -1)
		return -1;
	if ((pid = fork()) == -1) {
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
#ifdef __linux__
		prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	*pidp = pid;
	close(pfd[1]);
	while (memchr(line, '\n', got) == NULL && got < len - 1) {
		struct pollfd p = { pfd[0], POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, timeout_ms) != 1 ||
		    (n = read(pfd[0], line + got, len - 1 - got)) <= 0) {
			close(pfd[0]);
			fprintf(stderr, "%s did not start\n", argv[0]);
			return -1;
		}
		got += (size_t)n;
	}
	close(pfd[0]);
	line[got] = '\0';
	if ((nl = strchr(line, '\n')) == NULL)
		return -1;
	*nl = '\0';
	return pid;
}
