/*
 * Unit tests for src/control.c: the reply codes of the control socket
 * (parsed into enum control_code, formatted by the daemon), table-driven,
 * and the client calls against a scripted daemon on a real Unix socket in
 * a temporary runtime_dir.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "control.h"
#include "testutil.h"

static void
test_reply_parse(void **state)
{
	static const struct {
		const char *line;
		enum control_code code;
		const char *rest;
	} t[] = {
		{ "ok 3", CONTROL_OK, "3" },
		{ "ok 1\n2\nxx", CONTROL_OK, "1\n2\nxx" },
		{ "ok messages=1 in_flight=0 clients=2", CONTROL_OK,
		  "messages=1 in_flight=0 clients=2" },
		{ "ok", CONTROL_OK, "" },
		{ "error perm permission denied", CONTROL_ERR_PERM,
		  "permission denied" },
		{ "error nomsg no such message", CONTROL_ERR_NOMSG,
		  "no such message" },
		{ "error badid not a queue id", CONTROL_ERR_BADID,
		  "not a queue id" },
		{ "error badreq unknown request", CONTROL_ERR_BADREQ,
		  "unknown request" },
		{ "error queue cannot read the queue\n", CONTROL_ERR_QUEUE,
		  "cannot read the queue\n" },
		{ "error busy too many connections", CONTROL_ERR_BUSY,
		  "too many connections" },
		{ "error nomsg", CONTROL_ERR_NOMSG, "" },
		/* words are whole and exact */
		{ "error nomsgx no such message", CONTROL_ERR_OTHER,
		  "error nomsgx no such message" },
		{ "error NOMSG no such message", CONTROL_ERR_OTHER,
		  "error NOMSG no such message" },
		{ "error nom no such message", CONTROL_ERR_OTHER,
		  "error nom no such message" },
		/* the text never decides: an older daemon's wording */
		{ "error no such message", CONTROL_ERR_OTHER,
		  "error no such message" },
		{ "error permission denied", CONTROL_ERR_OTHER,
		  "error permission denied" },
		{ "okay", CONTROL_ERR_OTHER, "okay" },
		{ "Ok 1", CONTROL_ERR_OTHER, "Ok 1" },
		{ "", CONTROL_ERR_OTHER, "" },
		{ "error", CONTROL_ERR_OTHER, "error" },
		{ "error ", CONTROL_ERR_OTHER, "error " },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const char *rest = NULL;

		if (control_reply_parse(t[i].line, &rest) != t[i].code ||
		    strcmp(rest, t[i].rest) != 0)
			fail_msg("row %zu \"%s\": code %d, rest \"%s\"", i,
			    t[i].line, (int)control_reply_parse(t[i].line,
			    NULL), rest);
	}
}

/* What the daemon writes is what the clients read back. */
static void
test_reply_format(void **state)
{
	static const struct {
		enum control_code code;
		const char *text;
		const char *line;
	} t[] = {
		{ CONTROL_OK, "3", "ok 3\n" },
		{ CONTROL_ERR_PERM, "permission denied",
		  "error perm permission denied\n" },
		{ CONTROL_ERR_NOMSG, "no such message",
		  "error nomsg no such message\n" },
		{ CONTROL_ERR_BADID, "not a queue id",
		  "error badid not a queue id\n" },
		{ CONTROL_ERR_BADREQ, "unknown request",
		  "error badreq unknown request\n" },
		{ CONTROL_ERR_QUEUE, "cannot read the queue",
		  "error queue cannot read the queue\n" },
		{ CONTROL_ERR_BUSY, "too many connections",
		  "error busy too many connections\n" },
	};
	char buf[CONTROL_LINE_MAX], small[8];
	const char *rest;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t n = control_reply_format(buf, sizeof(buf), t[i].code,
		    t[i].text);

		assert_string_equal(buf, t[i].line);
		assert_int_equal(n, strlen(t[i].line));
		buf[n - 1] = '\0';
		assert_int_equal(control_reply_parse(buf, &rest), t[i].code);
		assert_string_equal(rest, t[i].text);
	}
	/* truncated like snprintf, NUL-terminated, length of what is there */
	assert_int_equal(control_reply_format(small, sizeof(small),
	    CONTROL_ERR_NOMSG, "no such message"), sizeof(small) - 1);
	assert_string_equal(small, "error n");
}

/*
 * A scripted daemon: accept one connection, read the request line, answer
 * with reply, close.  The request it read goes to the pipe.
 */
static pid_t
daemon_start(const char *dir, const char *reply, int *reqfd)
{
	struct sockaddr_un sun;
	int lfd, p[2];
	pid_t pid;

	assert_int_equal(control_addr(dir, &sun), 0);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(lfd, 1), 0);
	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char req[CONTROL_LINE_MAX];
		size_t got = 0;
		int c;

		close(p[0]);
		alarm(10);
		if ((c = accept(lfd, NULL, NULL)) == -1)
			_exit(1);
		while (got < sizeof(req) && memchr(req, '\n', got) == NULL) {
			ssize_t n = read(c, req + got, sizeof(req) - got);

			if (n <= 0)
				_exit(1);
			got += (size_t)n;
		}
		if (write(p[1], req, got) != (ssize_t)got ||
		    write(c, reply, strlen(reply)) != (ssize_t)strlen(reply))
			_exit(1);
		close(c);
		_exit(0);
	}
	close(lfd);
	close(p[1]);
	*reqfd = p[0];
	return pid;
}

static void
daemon_wait(pid_t pid, int reqfd, const char *want)
{
	char req[CONTROL_LINE_MAX + 1];
	ssize_t n = read(reqfd, req, sizeof(req) - 1);
	int status;

	assert_true(n > 0);
	req[n] = '\0';
	assert_string_equal(req, want);
	close(reqfd);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
test_request(void **state)
{
	char dir[256], path[300], reply[CONTROL_LINE_MAX], *all;
	const char *rest;
	size_t len;
	int reqfd;
	pid_t pid;

	(void)state;
	assert_non_null(test_mkdtemp(dir, sizeof(dir), "control"));
	snprintf(path, sizeof(path), "%s/%s", dir, CONTROL_NAME);

	/* no daemon: ENOENT, as mxrelay -q expects */
	assert_int_equal(control_request(dir, "flush", reply, sizeof(reply)),
	    -1);
	assert_int_equal(errno, ENOENT);

	pid = daemon_start(dir, "error nomsg no such message\n", &reqfd);
	assert_int_equal(control_request(dir, "flush 0123456789abcdef0123",
	    reply, sizeof(reply)), 0);
	daemon_wait(pid, reqfd, "flush 0123456789abcdef0123\n");
	assert_string_equal(reply, "error nomsg no such message");
	assert_int_equal(control_reply_parse(reply, &rest), CONTROL_ERR_NOMSG);
	unlink(path);

	pid = daemon_start(dir, "ok 2\n5\nabcde6\nfghijk", &reqfd);
	assert_int_equal(control_request_all(dir, "list", &all, &len,
	    CONTROL_LIST_MAX), 0);
	daemon_wait(pid, reqfd, "list\n");
	assert_int_equal(len, strlen("ok 2\n5\nabcde6\nfghijk"));
	assert_int_equal(control_reply_parse(all, &rest), CONTROL_OK);
	assert_string_equal(rest, "2\n5\nabcde6\nfghijk");
	free(all);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_format),
		cmocka_unit_test(test_request),
	};

	signal(SIGPIPE, SIG_IGN);
	alarm(60);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
