/*
 * Unit tests for src/smtpd_auth.c without a session: the AUTH argument,
 * the SASL PLAIN (RFC 4616) and LOGIN decoders, and the auth_users file
 * (loading, malformed lines, the password check).  Hashes are made here
 * with crypt_r(), so no openssl command is needed; the AUTH exchange
 * itself is tested through real sessions in test_smtpd.c.
 */
#include "config.h"

#include <crypt.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "smtp_proto.h"
#include "smtpd_auth.h"

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static char	 dir[] = "/tmp/test_smtpd_auth.XXXXXX";
static char	 path[PATH_MAX];
static char	 hash_secret[256];	/* crypt("secret"), SHA-512 */
static char	 hash_other[256];	/* crypt("other"), yescrypt or MD5 */

/* ------------------------------------------------------------------ */
/* The AUTH argument. */

static void
test_auth_cmd(void **state)
{
	static const struct {
		const char		*arg;
		int			 rc;
		enum smtpd_auth_mech	 mech;
		const char		*ir;	/* NULL: none */
	} rows[] = {
		{ "PLAIN", 0, SMTPD_AUTH_PLAIN, NULL },
		{ "plain", 0, SMTPD_AUTH_PLAIN, NULL },
		{ "PLAIN AGFsaWNlAHNlY3JldA==", 0, SMTPD_AUTH_PLAIN,
		    "AGFsaWNlAHNlY3JldA==" },
		{ "PLAIN    eA==", 0, SMTPD_AUTH_PLAIN, "eA==" },
		/* RFC 4954 §4: "=" is the empty initial response. */
		{ "PLAIN =", 0, SMTPD_AUTH_PLAIN, "" },
		{ "LOGIN", 0, SMTPD_AUTH_LOGIN, NULL },
		{ "Login YWxpY2U=", 0, SMTPD_AUTH_LOGIN, "YWxpY2U=" },
		{ "LOGIN =", 0, SMTPD_AUTH_LOGIN, "=" },
		{ "CRAM-MD5", 0, SMTPD_AUTH_UNSUPPORTED, NULL },
		{ "XOAUTH2 dXNlcg==", 0, SMTPD_AUTH_UNSUPPORTED, "dXNlcg==" },
		{ "PLAINX", 0, SMTPD_AUTH_UNSUPPORTED, NULL },
		{ "", 0, SMTPD_AUTH_UNSUPPORTED, NULL },
		/* The syntax is checked before the mechanism. */
		{ "PLAIN a b", -1, SMTPD_AUTH_UNSUPPORTED, NULL },
		{ "PLAIN ", -1, SMTPD_AUTH_UNSUPPORTED, NULL },
		{ "LOGIN   ", -1, SMTPD_AUTH_UNSUPPORTED, NULL },
		{ "XOAUTH2 a b", -1, SMTPD_AUTH_UNSUPPORTED, NULL },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		char *arg = strdup(rows[i].arg);
		struct smtpd_auth_cmd ac;
		int rc;

		assert_non_null(arg);
		rc = smtpd_auth_cmd_parse(arg, &ac);
		if (rc != rows[i].rc)
			fail_msg("row %zu: rc %d", i, rc);
		if (rc == 0 && (ac.mech != rows[i].mech ||
		    (rows[i].ir == NULL ? ac.ir != NULL : ac.ir == NULL ||
		    strcmp(ac.ir, rows[i].ir) != 0)))
			fail_msg("row %zu: mech %d ir \"%s\"", i, ac.mech,
			    ac.ir != NULL ? ac.ir : "(null)");
		free(arg);
	}
}

/* ------------------------------------------------------------------ */
/* SASL responses. */

/* base64 of len raw bytes, in a static buffer. */
static const char *
b64(const char *raw, size_t len)
{
	static char out[2048];

	assert_int_equal(smtp_base64_encode(raw, len, out, sizeof(out)), 0);
	return out;
}

#define R(s)	s, sizeof(s) - 1
static void
test_plain_decode(void **state)
{
	static const struct {
		const char	*raw;
		size_t		 len;
		const char	*user;	/* NULL: malformed */
		const char	*pass;	/* NULL: refused */
	} rows[] = {
		{ R("\0alice\0secret"), "alice", "secret" },
		{ R("alice\0alice\0secret"), "alice", "secret" },
		{ R("\0alice\0"), "alice", "" },
		{ R("\0\0secret"), "", "secret" },
		{ R("\0al ice\0s p a c e"), "al ice", "s p a c e" },
		{ R("\0\xc3\xa9\0\xff\x01"), "\xc3\xa9", "\xff\x01" },
		/* Proxy authorization and NULs in the password: refused. */
		{ R("bob\0alice\0secret"), "alice", NULL },
		{ R("\0alice\0sec\0ret"), "alice", NULL },
		{ R("\0alice\0secret\0"), "alice", NULL },
		/* Fewer than three parts. */
		{ R(""), NULL, NULL },
		{ R("alice"), NULL, NULL },
		{ R("\0alice"), NULL, NULL },
		{ R("alice\0"), NULL, NULL },
		{ R("\0"), NULL, NULL },
	};
	struct smtpd_auth_plain pl;
	char raw[600];
	const char *enc;

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		enc = b64(rows[i].raw, rows[i].len);
		memset(&pl, 0x55, sizeof(pl));
		assert_int_equal(smtpd_auth_plain_decode(enc, strlen(enc), &pl),
		    0);
		if (rows[i].user == NULL ? pl.user != NULL :
		    pl.user == NULL || strcmp(pl.user, rows[i].user) != 0)
			fail_msg("row %zu: user", i);
		if (rows[i].pass == NULL ? pl.pass != NULL :
		    pl.pass == NULL || strcmp(pl.pass, rows[i].pass) != 0)
			fail_msg("row %zu: pass", i);
	}
	/* Not base64. */
	assert_int_equal(smtpd_auth_plain_decode("!!!!", 4, &pl), -1);
	assert_null(pl.user);
	assert_int_equal(smtpd_auth_plain_decode("AGFs=aWNl", 9, &pl), -1);
	assert_int_equal(smtpd_auth_plain_decode("AGFsaWNl\0AA", 11, &pl),
	    -1);
	/* The longest response that fits, and one octet more. */
	memset(raw, 'p', sizeof(raw));
	raw[0] = '\0';
	raw[2] = '\0';
	raw[1] = 'u';
	enc = b64(raw, SMTPD_AUTH_BUF - 1);
	assert_int_equal(smtpd_auth_plain_decode(enc, strlen(enc), &pl), 0);
	assert_string_equal(pl.user, "u");
	assert_int_equal(strlen(pl.pass), SMTPD_AUTH_BUF - 4);
	enc = b64(raw, SMTPD_AUTH_BUF);
	assert_int_equal(smtpd_auth_plain_decode(enc, strlen(enc), &pl), -1);
	explicit_bzero(&pl, sizeof(pl));
}

static void
test_login_decode(void **state)
{
	char buf[SMTPD_AUTH_BUF];
	const char *enc;

	(void)state;
	assert_int_equal(smtpd_auth_login_decode("YWxpY2U=", 8, buf,
	    sizeof(buf)), 0);
	assert_string_equal(buf, "alice");
	assert_int_equal(smtpd_auth_login_decode("", 0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	enc = b64(R("al\0ice"));
	assert_int_equal(smtpd_auth_login_decode(enc, strlen(enc), buf,
	    sizeof(buf)), -1);
	assert_int_equal(smtpd_auth_login_decode("*", 1, buf, sizeof(buf)),
	    -1);
	assert_int_equal(smtpd_auth_login_decode("=", 1, buf, sizeof(buf)),
	    -1);
	assert_int_equal(smtpd_auth_login_decode("YWxp\nY2U=", 9, buf,
	    sizeof(buf)), -1);
	/* Room for the text and its NUL, and not one octet less. */
	assert_int_equal(smtpd_auth_login_decode("YWxpY2U=", 8, buf, 6), 0);
	assert_string_equal(buf, "alice");
	assert_int_equal(smtpd_auth_login_decode("YWxpY2U=", 8, buf, 5), -1);
	assert_int_equal(smtpd_auth_login_decode("YWxpY2U=", 8, buf, 0), -1);
}
#undef R

/* ------------------------------------------------------------------ */
/* The users file. */

static void
write_file(const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
write_text(const char *fmt, ...)
{
	char text[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	/* Table rows pass their text as the format (clang's -Wformat=2). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	n = vsnprintf(text, sizeof(text), fmt, ap);
#pragma GCC diagnostic pop
	va_end(ap);
	assert_true(n >= 0 && (size_t)n < sizeof(text));
	write_file(text, (size_t)n);
}

static void
test_users_check(void **state)
{
	struct smtpd_users *u;
	char err[256];

	(void)state;
	write_text("# users\n\n  alice:%s  \n\tbob:%s\ncarol:%s\n"
	    "# dave:%s\n", hash_secret, hash_secret, hash_other, hash_secret);
	u = smtpd_users_load(path, err, sizeof(err));
	assert_non_null(u);
	assert_true(smtpd_users_check(u, "alice", "secret"));
	assert_true(smtpd_users_check(u, "bob", "secret"));
	assert_true(smtpd_users_check(u, "carol", "other"));
	assert_false(smtpd_users_check(u, "carol", "secret"));
	assert_false(smtpd_users_check(u, "alice", "Secret"));
	assert_false(smtpd_users_check(u, "alice", "secret "));
	assert_false(smtpd_users_check(u, "alice", ""));
	assert_false(smtpd_users_check(u, "Alice", "secret"));
	assert_false(smtpd_users_check(u, "dave", "secret"));
	assert_false(smtpd_users_check(u, "#dave", "secret"));
	assert_false(smtpd_users_check(u, "", "secret"));
	assert_false(smtpd_users_check(u, "mallory", "secret"));
	assert_false(smtpd_users_check(u, NULL, "secret"));
	assert_false(smtpd_users_check(u, "alice", NULL));
	assert_false(smtpd_users_check(NULL, "alice", "secret"));
	smtpd_users_free(u);
	smtpd_users_free(NULL);

	/* Nobody in the file: every check fails, with the dummy hash. */
	write_text("# nobody\n");
	u = smtpd_users_load(path, err, sizeof(err));
	assert_non_null(u);
	assert_false(smtpd_users_check(u, "alice", "secret"));
	assert_false(smtpd_users_check(u, "", ""));
	smtpd_users_free(u);
	write_file("", 0);
	u = smtpd_users_load(path, err, sizeof(err));
	assert_non_null(u);
	smtpd_users_free(u);
}

static void
test_users_bad(void **state)
{
	static const struct {
		const char	*text;	/* %s: a valid hash */
		unsigned	 line;
		const char	*what;
	} rows[] = {
		{ "# c\nalice\n", 2, "expected user:hash" },
		{ "alice %s\n", 1, "expected user:hash" },
		{ "\n:%s\n", 2, "empty user name" },
		{ "  :%s\n", 1, "empty user name" },
		{ "bob:\n", 1, "empty password hash" },
		{ "bob:   \n", 1, "empty password hash" },
		{ "a b:%s\n", 1, "bad character in user name" },
		{ "a\tb:%s\n", 1, "bad character in user name" },
		{ "a\x7f:%s\n", 1, "bad character in user name" },
		{ "a\x01:%s\n", 1, "bad character in user name" },
		{ "carol:nothash\n", 1, "unsupported or malformed password "
		    "hash" },
		{ "carol:*\n", 1, "unsupported or malformed password hash" },
		{ "carol:!%s\n", 1, "unsupported or malformed password hash" },
		{ "carol:$99$x$y\n", 1, "unsupported or malformed password "
		    "hash" },
		{ "dave:%s\ndave:%s\n", 2, "duplicate user dave" },
	};
	char err[256], want[PATH_MAX + 64];

	(void)state;
	for (size_t i = 0; i < NELEM(rows); i++) {
		/* Each row names the hash at most twice. */
		write_text(rows[i].text, hash_secret, hash_secret);
		err[0] = '\0';
		assert_null(smtpd_users_load(path, err, sizeof(err)));
		snprintf(want, sizeof(want), "%s:%u: %s", path, rows[i].line,
		    rows[i].what);
		if (strcmp(err, want) != 0)
			fail_msg("row %zu: got \"%s\", want \"%s\"", i, err,
			    want);
	}
}

/* What util_getline() refuses, and a file that is not there. */
static void
test_users_file_limits(void **state)
{
	static const char nul[] = "alice:x\0y\n";
	struct smtpd_users *u;
	char err[256], *big;
	size_t n = 5000;

	(void)state;
	write_file(nul, sizeof(nul) - 1);
	assert_null(smtpd_users_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ":1: NUL byte in line"));
	big = malloc(n + 2);
	assert_non_null(big);
	memset(big, 'a', n);
	big[n] = '\n';
	big[n + 1] = '\0';
	write_file(big, n + 1);
	free(big);
	assert_null(smtpd_users_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ":1: line too long"));
	/* The last line needs no newline. */
	write_text("alice:%s", hash_secret);
	u = smtpd_users_load(path, err, sizeof(err));
	assert_non_null(u);
	assert_true(smtpd_users_check(u, "alice", "secret"));
	smtpd_users_free(u);
	assert_int_equal(unlink(path), 0);
	assert_null(smtpd_users_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, path));
}

static int
setup(void **state)
{
	struct crypt_data cd;
	const char *h;

	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/users", dir);
	memset(&cd, 0, sizeof(cd));
	h = crypt_r("secret", "$6$rounds=1000$saltsaltsalt$", &cd);
	if (h == NULL || h[0] != '$')
		return -1;
	snprintf(hash_secret, sizeof(hash_secret), "%s", h);
	h = crypt_r("other", "$5$rounds=1000$othersalt$", &cd);
	if (h == NULL || h[0] != '$')
		return -1;
	snprintf(hash_other, sizeof(hash_other), "%s", h);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	(void)unlink(path);
	return rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_auth_cmd),
		cmocka_unit_test(test_plain_decode),
		cmocka_unit_test(test_login_decode),
		cmocka_unit_test(test_users_check),
		cmocka_unit_test(test_users_bad),
		cmocka_unit_test(test_users_file_limits),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
