/*
 * Unit tests for src/util.c: duration and size parsing, bounded copies,
 * escaping for log lines, string lists.
 */
#include "config.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "util.h"

static void
test_duration(void **state)
{
	static const struct { const char *in; time_t out; } ok[] = {
		{ "0", 0 }, { "90", 90 }, { "90s", 90 }, { "5m", 300 },
		{ "1h", 3600 }, { "5d", 432000 }, { "2w", 1209600 }, { " 7m ", 420 },
	};
	static const char *bad[] = { "", "m", "5x", "5 m s", "-5m", "1.5h", "5mm" };
	time_t t;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(util_parse_duration(ok[i].in, &t), 0);
		assert_int_equal(t, ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(util_parse_duration(bad[i], &t), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(util_parse_duration("99999999999999999999999d", &t), -1);
	assert_int_equal(errno, ERANGE);
	assert_int_equal(util_parse_duration("9999999999d", &t), -1);
	assert_int_equal(errno, ERANGE);
}

static void
test_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(util_parse_size("1000", &v), 0);
	assert_true(v == 1000);
	assert_int_equal(util_parse_size("512K", &v), 0);
	assert_true(v == 512 * 1024);
	assert_int_equal(util_parse_size("35M", &v), 0);
	assert_true(v == 35ULL * 1024 * 1024);
	assert_int_equal(util_parse_size("2g", &v), 0);
	assert_true(v == 2ULL * 1024 * 1024 * 1024);
	assert_int_equal(util_parse_size("35Q", &v), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(util_parse_size("M", &v), -1);
	assert_int_equal(util_parse_size("18446744073709551615G", &v), -1);
	assert_int_equal(errno, ERANGE);
}

static void
test_strlcpy(void **state)
{
	char buf[4];

	(void)state;
	assert_int_equal(util_strlcpy(buf, "abcdef", sizeof(buf)), 6);
	assert_string_equal(buf, "abc");
	assert_int_equal(util_strlcpy(buf, "ab", sizeof(buf)), 2);
	assert_string_equal(buf, "ab");
}

static void
test_escape(void **state)
{
	char buf[64];

	(void)state;
	assert_string_equal(util_escape(buf, sizeof(buf), "ok 250"), "ok 250");
	assert_string_equal(util_escape(buf, sizeof(buf), "a\r\nb\\"), "a\\x0d\\x0ab\\x5c");
	/* Truncation never splits an escape. */
	assert_string_equal(util_escape(buf, 6, "ab\x01"), "ab");
}

/* util_now_ms: monotonic milliseconds, moving with a sleep. */
static void
test_now_ms(void **state)
{
	struct timespec ts = { 0, 30 * 1000000L };
	uint64_t t0, t1;

	(void)state;
	t0 = util_now_ms();
	assert_true(t0 > 0);
	while (nanosleep(&ts, &ts) == -1)
		;
	t1 = util_now_ms();
	assert_true(t1 >= t0 + 30);
	assert_true(t1 < t0 + 30000);
}

static void
test_date(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(util_date_rfc5322(0, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Thu, 1 Jan 1970 00:00:00 +0000");
	assert_int_equal(util_date_rfc5322(1795468901, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Mon, 23 Nov 2026 21:21:41 +0000");
	/* Local time: east and west of UTC, and the offset's minutes. */
	setenv("TZ", "UTC-5:30", 1);
	tzset();
	assert_int_equal(util_date_rfc5322(0, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Thu, 1 Jan 1970 05:30:00 +0530");
	setenv("TZ", "UTC+3", 1);
	tzset();
	assert_int_equal(util_date_rfc5322(0, false, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Wed, 31 Dec 1969 21:00:00 -0300");
	/* utc ignores TZ. */
	assert_int_equal(util_date_rfc5322(0, true, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "Thu, 1 Jan 1970 00:00:00 +0000");
	unsetenv("TZ");
	tzset();
	/* Too small a buffer, a year of five digits: refused. */
	assert_int_equal(util_date_rfc5322(0, true, buf, 10), -1);
	assert_int_equal(util_date_rfc5322((time_t)400000000000LL, true, buf,
	    sizeof(buf)), -1);
}

static void
test_strlist(void **state)
{
	struct strlist l = { 0 };

	(void)state;
	for (int i = 0; i < 20; i++)
		strlist_add(&l, i % 2 ? "Root@Example.COM" : "x");
	assert_int_equal(l.n, 20);
	assert_true(strlist_contains_nocase(&l, "root@example.com"));
	assert_false(strlist_contains_nocase(&l, "y"));
	strlist_free(&l);
	assert_int_equal(l.n, 0);
}

/* Secrets: what root may read, what it refuses, and when it warns. */
static void
test_secret_open(void **state)
{
	static const struct {
		const char	*rule;
		mode_t		 mode;
		bool		 daemon_group;	/* chown to the daemon's group */
		bool		 ok, loose;
	} t[] = {
		{ "0600: read, no warning", 0600, false, true, false },
		{ "0400: read, no warning", 0400, false, true, false },
		{ "0644: read, with a warning", 0644, false, true, true },
		{ "0604: read, with a warning", 0604, false, true, true },
		{ "0640 to the daemon's group: no warning", 0640, true, true,
		    false },
		{ "0660 to the daemon's group: read", 0660, true, true, false },
		{ "0602: world-writable, refused", 0602, false, false, false },
		{ "0666: world-writable, refused", 0666, false, false, false },
	};
	char dir[] = "/tmp/test_util.XXXXXX", path[64], link[64], fifo[64];
	char hard[64];
	char err[256];
	gid_t other = getgid() == 0 ? 1 : getgid();
	bool loose;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		(void)unlink(path);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "u:p\n", 4), 4);
		close(fd);
		assert_int_equal(chmod(path, t[i].mode), 0);
		/*
		 * The file's group is ours (root's when we are root): as the
		 * "daemon's group" it is trusted, and as another it is not
		 * (a group other than 0 when we run as root).
		 */
		if (getuid() == 0 && !t[i].daemon_group)
			assert_int_equal(chown(path, (uid_t)-1, other), 0);
		loose = !t[i].loose;
		fd = util_secret_open(path, (uid_t)-1, t[i].daemon_group ?
		    getgid() : (gid_t)-1, &loose, err, sizeof(err));
		if (t[i].ok && (fd < 0 || loose != t[i].loose))
			fail_msg("%s: fd %d loose %d (%s)", t[i].rule, fd, loose,
			    fd < 0 ? err : "");
		if (!t[i].ok && fd >= 0)
			fail_msg("%s: opened", t[i].rule);
		if (!t[i].ok && strstr(err, "refusing to use it") == NULL)
			fail_msg("%s: %s", t[i].rule, err);
		if (fd >= 0) {
			/* Closed on exec. */
			assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
			close(fd);
		}
	}
	/* A symbolic link only when root owns it; no FIFO, no directory. */
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(symlink(path, link), 0);
	if (getuid() == 0) {
		fd = util_secret_open(link, (uid_t)-1, (gid_t)-1, &loose, err,
		    sizeof(err));
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(lchown(link, 1, (gid_t)-1), 0);
	}
	assert_int_equal(util_secret_open(link, (uid_t)-1, (gid_t)-1, &loose,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "a symbolic link owned by uid"));
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(util_secret_open(fifo, (uid_t)-1, (gid_t)-1, &loose,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(util_secret_open(dir, (uid_t)-1, (gid_t)-1, &loose,
	    err, sizeof(err)), -1);
	/* Owned by someone else: refused unless that is the daemon's user. */
	if (getuid() == 0) {
		assert_int_equal(chown(path, 1, (gid_t)-1), 0);
		assert_int_equal(util_secret_open(path, (uid_t)-1, (gid_t)-1,
		    &loose, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "owned by uid 1, not by root"));
		fd = util_secret_open(path, 1, (gid_t)-1, &loose, err,
		    sizeof(err));
		assert_true(fd >= 0);
		close(fd);
	}
	/* A second name (a hard link), a file too large. */
	if (getuid() == 0)
		assert_int_equal(chown(path, 0, (gid_t)-1), 0);
	fd = util_secret_open(path, (uid_t)-1, (gid_t)-1, &loose, err,
	    sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	snprintf(hard, sizeof(hard), "%s/hard", dir);
	assert_int_equal(linkat(AT_FDCWD, path, AT_FDCWD, hard, 0), 0);
	assert_int_equal(util_secret_open(hard, (uid_t)-1, (gid_t)-1, &loose,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "has 2 hard links; refusing to use it"));
	assert_int_equal(unlink(hard), 0);
	assert_int_equal(truncate(path, UTIL_SECRET_MAX + 1), 0);
	assert_int_equal(util_secret_open(path, (uid_t)-1, (gid_t)-1, &loose,
	    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "more than a secret file may hold"));
	assert_int_equal(truncate(path, UTIL_SECRET_MAX), 0);
	fd = util_secret_open(path, (uid_t)-1, (gid_t)-1, &loose, err,
	    sizeof(err));
	assert_true(fd >= 0);
	close(fd);
	unlink(link);
	unlink(fifo);
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_strlcpy),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_date),
		cmocka_unit_test(test_now_ms),
		cmocka_unit_test(test_strlist),
		cmocka_unit_test(test_secret_open),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
