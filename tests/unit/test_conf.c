/*
 * Unit tests for src/conf.c: defaults, every kind of value, every kind of
 * error (with its FILE:LINE: KEY: text), cross-checks, the single-value
 * parsers and CIDR matching; the key table held to mxrelay.conf(5) (names,
 * defaults, ranges) and to the sample etc/mxrelay.conf.  Config files are written into a mkdtemp()
 * directory that the group teardown removes.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <cmocka.h>

#include "conf.h"
#include "util.h"
#include "testutil.h"

#define ARRLEN(a)	(sizeof(a) / sizeof((a)[0]))

static char	 tmpdir[PATH_MAX - 64];
static char	 cfpath[PATH_MAX];

static int
setup_dir(void **state)
{
	(void)state;
	if (test_mkdtemp(tmpdir, sizeof(tmpdir), "test_conf") == NULL)
		return -1;
	snprintf(cfpath, sizeof(cfpath), "%s/t.conf", tmpdir);
	return 0;
}

static int
teardown_dir(void **state)
{
	(void)state;
	unlink(cfpath);
	return rmdir(tmpdir);
}

/* Write len bytes of text (strlen when len is 0) to the test config file. */
static void
write_conf_len(const char *text, size_t len)
{
	FILE *f = fopen(cfpath, "w");

	assert_non_null(f);
	if (len == 0)
		len = strlen(text);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
load_ok(const char *text, struct conf *c)
{
	char err[512] = "";

	write_conf_len(text, 0);
	if (conf_load(cfpath, true, c, err, sizeof(err)) != 0)
		fail_msg("conf_load(\"%s\"): %s", text, err);
}

/* The load must fail with an error "PATH" + want (a prefix of the rest). */
static void
load_err_len(const char *text, size_t len, const char *want)
{
	struct conf c;
	char err[512] = "";
	size_t plen = strlen(cfpath);

	write_conf_len(text, len);
	if (conf_load(cfpath, true, &c, err, sizeof(err)) != -1)
		fail_msg("conf_load(\"%s\") succeeded, wanted \"%s\"", text,
		    want);
	if (strncmp(err, cfpath, plen) != 0 ||
	    strncmp(err + plen, want, strlen(want)) != 0)
		fail_msg("conf_load(\"%s\"): got \"%s\", wanted \"%s%s...\"",
		    text, err, cfpath, want);
}

static void
load_err(const char *text, const char *want)
{
	load_err_len(text, 0, want);
}

static void
check_defaults(const struct conf *c)
{
	assert_non_null(c->hostname);
	assert_true(c->hostname[0] != '\0');
	assert_string_equal(c->qualify_domain, c->hostname);
	assert_string_equal(c->spool_dir, CONF_DEFAULT_SPOOL);
	assert_null(c->aliases);
	assert_int_equal(c->nlisten, 2);
	assert_string_equal(c->listen[0].host, "127.0.0.1");
	assert_int_equal(c->listen[0].port, 25);
	assert_false(c->listen[0].bracketed);
	assert_string_equal(c->listen[1].host, "::1");
	assert_int_equal(c->listen[1].port, 25);
	assert_true(c->listen[1].bracketed);
	assert_int_equal(c->nrelay_clients, 2);
	assert_int_equal(c->relay_clients[0].family, AF_INET);
	assert_int_equal(c->relay_clients[0].prefix, 8);
	assert_int_equal(c->relay_clients[1].family, AF_INET6);
	assert_int_equal(c->relay_clients[1].prefix, 128);
	assert_null(c->relayhost);
	assert_null(c->relayhost_auth_file);
	assert_int_equal(c->relayhost_auth_tls, TLS_VERIFY);
	assert_int_equal(c->ndns_servers, 0);
	assert_int_equal(c->smtp_port, 25);
	assert_int_equal(c->tls, TLS_DANE);
	assert_int_equal(c->ntls_policies, 0);
	assert_null(c->tls_ca_file);
	assert_true(c->mta_sts);
	assert_null(c->mta_sts_ca_file);
	assert_int_equal(c->mta_sts_port, 443);
	assert_int_equal(c->mta_sts_timeout_ms, 30 * 1000);
	assert_null(c->tls_cert_file);
	assert_null(c->tls_key_file);
	assert_null(c->auth_users);
	assert_int_equal(c->auth_fail_limit, 10);
	assert_int_equal(c->auth_fail_window_ms, 30 * 60 * 1000);
	assert_int_equal(c->auth_fail_delay_max_ms, 8 * 1000);
	assert_int_equal(c->retry_min_ms, 300 * 1000);
	assert_int_equal(c->retry_max_ms, 3600 * 1000);
	assert_true(c->queue_lifetime_ms == 5 * 86400 * 1000LL);
	assert_true(c->max_message_size == 35ULL * 1024 * 1024);
	assert_int_equal(c->concurrency, 100);
	assert_int_equal(c->domain_concurrency, 20);
	assert_int_equal(c->max_recipients, 1000);
	assert_int_equal(c->bare_lf, BARE_LF_NORMALIZE);
	assert_int_equal(c->max_clients, 100);
	assert_string_equal(c->user, "mxrelay");
	assert_string_equal(c->group, "mxrelay");
	assert_int_equal(c->smtp_timeouts.connect, 30 * 1000);
	assert_int_equal(c->smtp_timeouts.greeting, 300 * 1000);
	assert_int_equal(c->smtp_timeouts.helo, 300 * 1000);
	assert_int_equal(c->smtp_timeouts.mail, 300 * 1000);
	assert_int_equal(c->smtp_timeouts.rcpt, 300 * 1000);
	assert_int_equal(c->smtp_timeouts.data, 120 * 1000);
	assert_int_equal(c->smtp_timeouts.block, 180 * 1000);
	assert_int_equal(c->smtp_timeouts.dot, 600 * 1000);
	assert_int_equal(c->connection_reuse_limit, 100);
	assert_int_equal(c->dns_timeout_ms, 5000);
	assert_int_equal(c->dns_tries, 3);
	assert_int_equal(c->nmetrics_listen, 0);
	assert_int_equal(c->log_format, RECORD_TEXT);
	assert_true(c->smtpd_add_missing_headers);
	assert_int_equal(c->ndkim_keys, 0);
	assert_null(c->dkim_keys);
	assert_true(c->dkim_expire_ms == 0);
}

static void
test_defaults(void **state)
{
	struct conf c;
	char err[256] = "", missing[PATH_MAX];

	(void)state;
	conf_defaults(&c);
	check_defaults(&c);
	conf_free(&c);
	conf_free(&c);		/* harmless twice */

	snprintf(missing, sizeof(missing), "%s/nonexistent.conf", tmpdir);
	assert_int_equal(conf_load(missing, false, &c, err, sizeof(err)), 0);
	check_defaults(&c);
	conf_free(&c);

	assert_int_equal(conf_load(missing, true, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, missing));
	assert_non_null(strstr(err, strerror(ENOENT)));

	/* An empty file and one with only comments: defaults too. */
	load_ok("", &c);
	check_defaults(&c);
	conf_free(&c);
	load_ok("# nothing\n\n   \t\n  # indented comment\n", &c);
	check_defaults(&c);
	conf_free(&c);

	/* A directory is not a config file, even when it need not exist. */
	assert_int_equal(conf_load(tmpdir, false, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, tmpdir));
}

static void
test_default_path(void **state)
{
	bool must;

	(void)state;
	unsetenv("MXRELAY_CONFIG");
	assert_string_equal(conf_default_path(&must), CONF_DEFAULT_PATH);
	assert_false(must);
	setenv("MXRELAY_CONFIG", "", 1);
	assert_string_equal(conf_default_path(&must), CONF_DEFAULT_PATH);
	assert_false(must);
	setenv("MXRELAY_CONFIG", "/x/y.conf", 1);
	assert_string_equal(conf_default_path(&must), "/x/y.conf");
	assert_true(must);
	unsetenv("MXRELAY_CONFIG");
}

/* String-valued keys: the text as stored, or NULL when emptied. */
static void
test_strings(void **state)
{
	static const struct {
		const char	*text;
		size_t		 off;
		const char	*want;
	} t[] = {
		{ "hostname = mx.example.com", offsetof(struct conf, hostname),
		    "mx.example.com" },
		{ "hostname = localhost", offsetof(struct conf, hostname),
		    "localhost" },
		{ "qualify_domain = example.org",
		    offsetof(struct conf, qualify_domain), "example.org" },
		{ "spool_dir = /tmp/spool", offsetof(struct conf, spool_dir),
		    "/tmp/spool" },
		{ "spool_dir = /srv/q#1", offsetof(struct conf, spool_dir),
		    "/srv/q#1" },
		{ "aliases = /etc/aliases", offsetof(struct conf, aliases),
		    "/etc/aliases" },
		{ "aliases =", offsetof(struct conf, aliases), NULL },
		{ "relayhost_auth_file = /etc/mxrelay/auth",
		    offsetof(struct conf, relayhost_auth_file),
		    "/etc/mxrelay/auth" },
		{ "tls_ca_file = /etc/ssl/ca.pem",
		    offsetof(struct conf, tls_ca_file), "/etc/ssl/ca.pem" },
		{ "tls_ca_file = ", offsetof(struct conf, tls_ca_file), NULL },
		{ "user = nobody", offsetof(struct conf, user), "nobody" },
		{ "group = mail-relay_2", offsetof(struct conf, group),
		    "mail-relay_2" },
	};
	struct conf c;

	(void)state;
	for (size_t i = 0; i < ARRLEN(t); i++) {
		const char *got;

		load_ok(t[i].text, &c);
		got = *(char **)(void *)((char *)&c + t[i].off);
		if (t[i].want == NULL)
			assert_null(got);
		else
			assert_string_equal(got, t[i].want);
		conf_free(&c);
	}

	/* hostname set: qualify_domain follows it. */
	load_ok("hostname = relay.example.net\n", &c);
	assert_string_equal(c.qualify_domain, "relay.example.net");
	conf_free(&c);

	/* cert and key together, auth_users with them. */
	load_ok("tls_cert_file = /c.pem\ntls_key_file = /k.pem\n"
	    "auth_users = /etc/mxrelay/users\n", &c);
	assert_string_equal(c.tls_cert_file, "/c.pem");
	assert_string_equal(c.tls_key_file, "/k.pem");
	assert_string_equal(c.auth_users, "/etc/mxrelay/users");
	conf_free(&c);
}

static void
test_numbers(void **state)
{
	static const struct {
		const char	*text;
		size_t		 off;
		char		 kind;	/* u: unsigned, d: int64_t ms, s: uint64_t */
		uint64_t	 want;
	} t[] = {
		{ "smtp_port = 2525", offsetof(struct conf, smtp_port), 'u', 2525 },
		{ "smtp_port = 1", offsetof(struct conf, smtp_port), 'u', 1 },
		{ "smtp_port = 65535", offsetof(struct conf, smtp_port), 'u',
		    65535 },
		{ "concurrency = 1000", offsetof(struct conf, concurrency), 'u',
		    1000 },
		{ "domain_concurrency = 5",
		    offsetof(struct conf, domain_concurrency), 'u', 5 },
		{ "max_recipients = 100", offsetof(struct conf, max_recipients),
		    'u', 100 },
		{ "auth_fail_limit = 0", offsetof(struct conf, auth_fail_limit),
		    'u', 0 },
		{ "auth_fail_window = 1h",
		    offsetof(struct conf, auth_fail_window_ms), 'u', 3600000 },
		{ "auth_fail_delay_max = 0",
		    offsetof(struct conf, auth_fail_delay_max_ms), 'u', 0 },
		{ "auth_fail_delay_max = 1m",
		    offsetof(struct conf, auth_fail_delay_max_ms), 'u', 60000 },
		{ "max_clients = 7", offsetof(struct conf, max_clients), 'u', 7 },
		{ "retry_min = 90", offsetof(struct conf, retry_min_ms), 'd',
		    90000 },
		{ "retry_min = 1s", offsetof(struct conf, retry_min_ms), 'd',
		    1000 },
		{ "retry_max = 2h", offsetof(struct conf, retry_max_ms), 'd',
		    7200000 },
		{ "retry_max = 1d", offsetof(struct conf, retry_max_ms), 'd',
		    86400000 },
		{ "queue_lifetime = 0", offsetof(struct conf, queue_lifetime_ms),
		    'd', 0 },
		{ "queue_lifetime = 2w", offsetof(struct conf, queue_lifetime_ms),
		    'd', 14 * 86400000ULL },
		{ "queue_lifetime = 30m", offsetof(struct conf, queue_lifetime_ms),
		    'd', 1800000 },
		{ "max_message_size = 1000",
		    offsetof(struct conf, max_message_size), 's', 1000 },
		{ "max_message_size = 512K",
		    offsetof(struct conf, max_message_size), 's', 512 * 1024 },
		{ "max_message_size = 10m",
		    offsetof(struct conf, max_message_size), 's',
		    10 * 1024 * 1024 },
		{ "max_message_size = 1G",
		    offsetof(struct conf, max_message_size), 's', 1ULL << 30 },
		{ "delay_warning_time = 4h",
		    offsetof(struct conf, delay_warning_time_ms), 'd',
		    4 * 3600000ULL },
		{ "delay_warning_time = 0",
		    offsetof(struct conf, delay_warning_time_ms), 'd', 0 },
		{ "bounce_interval = 5m",
		    offsetof(struct conf, bounce_interval_ms), 'd', 300000 },
		{ "bounce_limit_per_sender = 0",
		    offsetof(struct conf, bounce_limit_per_sender), 'u', 0 },
		{ "bounce_limit_per_sender = 25",
		    offsetof(struct conf, bounce_limit_per_sender), 'u', 25 },
		{ "dkim_expire = 7d", offsetof(struct conf, dkim_expire_ms),
		    'd', 7 * 86400000ULL },
		{ "dkim_expire = 0", offsetof(struct conf, dkim_expire_ms),
		    'd', 0 },
		{ "mta_sts_port = 8443", offsetof(struct conf, mta_sts_port),
		    'u', 8443 },
		{ "mta_sts_timeout = 5s",
		    offsetof(struct conf, mta_sts_timeout_ms), 'u', 5000 },
		{ "mta_sts_timeout = 5m",
		    offsetof(struct conf, mta_sts_timeout_ms), 'u', 300000 },
	};
	struct conf c;

	(void)state;
	for (size_t i = 0; i < ARRLEN(t); i++) {
		const char *p;
		uint64_t got = 0;

		load_ok(t[i].text, &c);
		p = (const char *)&c + t[i].off;
		switch (t[i].kind) {
		case 'u': got = *(const unsigned *)(const void *)p; break;
		case 'd': got = (uint64_t)*(const int64_t *)(const void *)p; break;
		case 's': got = *(const uint64_t *)(const void *)p; break;
		}
		if (got != t[i].want)
			fail_msg("%s: got %llu", t[i].text,
			    (unsigned long long)got);
		conf_free(&c);
	}
}

static void
test_add_missing_headers(void **state)
{
	struct conf c;

	(void)state;
	load_ok("smtpd_add_missing_headers = no", &c);
	assert_false(c.smtpd_add_missing_headers);
	conf_free(&c);
	load_ok("smtpd_add_missing_headers = Yes", &c);
	assert_true(c.smtpd_add_missing_headers);
	conf_free(&c);
}

static void
test_bare_lf(void **state)
{
	struct conf c;

	(void)state;
	load_ok("bare_lf = reject", &c);
	assert_int_equal(c.bare_lf, BARE_LF_REJECT);
	conf_free(&c);
	load_ok("bare_lf = Normalize", &c);
	assert_int_equal(c.bare_lf, BARE_LF_NORMALIZE);
	conf_free(&c);
}

static enum tls_policy
policy_for(const struct conf *c, const char *domain)
{
	return conf_tls_policy_for(c->tls, c->tls_policies, c->ntls_policies,
	    domain);
}

static void
test_tls(void **state)
{
	static const struct {
		const char	*text;
		enum tls_policy	 want;
	} t[] = {
		{ "tls = none", TLS_NONE }, { "tls = may", TLS_MAY },
		{ "tls = encrypt", TLS_ENCRYPT }, { "tls = verify", TLS_VERIFY },
		{ "tls = VERIFY", TLS_VERIFY }, { "tls = dane", TLS_DANE },
	};
	struct conf c;
	enum tls_policy p;

	(void)state;
	for (size_t i = 0; i < ARRLEN(t); i++) {
		load_ok(t[i].text, &c);
		assert_int_equal(c.tls, t[i].want);
		assert_int_equal(strcasecmp(conf_tls_policy_to_text(c.tls),
		    t[i].text + 6), 0);
		conf_free(&c);
	}
	load_ok("relayhost_auth_tls = encrypt", &c);
	assert_int_equal(c.relayhost_auth_tls, TLS_ENCRYPT);
	conf_free(&c);
	load_ok("relayhost_auth_tls = Verify", &c);
	assert_int_equal(c.relayhost_auth_tls, TLS_VERIFY);
	conf_free(&c);
	assert_int_equal(conf_parse_tls_policy("encrypt", &p), 0);
	assert_int_equal(p, TLS_ENCRYPT);
	assert_int_equal(conf_parse_tls_policy("sometimes", &p), -1);
	assert_string_equal(conf_tls_policy_to_text((enum tls_policy)42),
	    "unknown");

	load_ok("tls = encrypt\n"
	    "tls_policy = example.com verify\n"
	    "tls_policy = .example.com none\n"
	    "tls_policy = .mail.example.com may\n"
	    "tls_policy = Legacy.Example.NET. none\n", &c);
	assert_int_equal(c.ntls_policies, 4);
	assert_string_equal(c.tls_policies[3].domain, "legacy.example.net");
	assert_int_equal(policy_for(&c, "example.com"), TLS_VERIFY);
	assert_int_equal(policy_for(&c, "EXAMPLE.com."), TLS_VERIFY);
	assert_int_equal(policy_for(&c, "a.example.com"), TLS_NONE);
	assert_int_equal(policy_for(&c, "x.mail.example.com"),
	    TLS_MAY);
	assert_int_equal(policy_for(&c, "mail.example.com"), TLS_NONE);
	assert_int_equal(policy_for(&c, "legacy.example.net"),
	    TLS_NONE);
	assert_int_equal(policy_for(&c, "badexample.com"),
	    TLS_ENCRYPT);
	assert_int_equal(policy_for(&c, "other.org"), TLS_ENCRYPT);
	conf_free(&c);

	/* dane per domain; an explicit policy under the default dane. */
	load_ok("tls_policy = .example.com dane\n"
	    "tls_policy = old.example.com may\n", &c);
	assert_int_equal(c.tls, TLS_DANE);
	assert_int_equal(policy_for(&c, "a.example.com"), TLS_DANE);
	assert_int_equal(policy_for(&c, "old.example.com"), TLS_MAY);
	assert_int_equal(policy_for(&c, "other.org"), TLS_DANE);
	conf_free(&c);

	load_ok("mta_sts = no\nmta_sts_ca_file = /etc/ssl/sts.pem\n", &c);
	assert_false(c.mta_sts);
	assert_string_equal(c.mta_sts_ca_file, "/etc/ssl/sts.pem");
	conf_free(&c);
}

static void
test_hostport(void **state)
{
	static const struct {
		const char	*in;
		const char	*host;
		unsigned	 port;
		bool		 bracketed;
	} ok[] = {
		{ "127.0.0.1:25", "127.0.0.1", 25, false },
		{ "[::1]:25", "::1", 25, true },
		{ "[::1]", "::1", 0, true },
		{ "::1", "::1", 0, false },
		{ "2001:db8::53", "2001:db8::53", 0, false },
		{ "smtp.example.com:587", "smtp.example.com", 587, false },
		{ "[smtp.example.com]:587", "smtp.example.com", 587, true },
		{ "[smtp.example.com]", "smtp.example.com", 0, true },
		{ "smtp.example.com", "smtp.example.com", 0, false },
		{ "localhost:65535", "localhost", 65535, false },
		{ "[192.0.2.1]:1", "192.0.2.1", 1, true },
	};
	static const char *bad[] = {
		"", ":25", "[]:25", "[::1", "[::1]25", "[::1]:", "host:",
		"host:0", "host:65536", "host:-1", "host:+25", "host:2 5",
		"host:25x", "host:99999999999", "1.2.3.4.5:25", "300.1.1.1",
		"[::g]:25", "1:2:3:4:5:6:7:8:9", "-host.example:25",
		"ho st:25", "a..b:25", ".example.com", "bad!name",
		"[a_b]:x",
	};
	struct hostport hp;

	(void)state;
	for (size_t i = 0; i < ARRLEN(ok); i++) {
		if (conf_parse_hostport(ok[i].in, &hp) != 0)
			fail_msg("conf_parse_hostport(\"%s\") failed", ok[i].in);
		assert_string_equal(hp.host, ok[i].host);
		assert_int_equal(hp.port, ok[i].port);
		assert_int_equal(hp.bracketed, ok[i].bracketed);
		free(hp.host);
	}
	for (size_t i = 0; i < ARRLEN(bad); i++) {
		hp.host = NULL;
		if (conf_parse_hostport(bad[i], &hp) != -1)
			fail_msg("conf_parse_hostport(\"%s\") succeeded", bad[i]);
		assert_null(hp.host);
	}
}

static void
test_hostport_lists(void **state)
{
	struct conf c;

	(void)state;
	load_ok("listen = 0.0.0.0:2525, [::]:2526 127.0.0.2\n"
	    "dns_servers = 127.0.0.1:5353 [::1]:53 192.0.2.53\n"
	    "relayhost = [smtp.example.com]:587\n", &c);
	assert_int_equal(c.nlisten, 3);
	assert_string_equal(c.listen[0].host, "0.0.0.0");
	assert_int_equal(c.listen[0].port, 2525);
	assert_string_equal(c.listen[1].host, "::");
	assert_int_equal(c.listen[1].port, 2526);
	assert_int_equal(c.listen[2].port, 25);	/* the default port */
	assert_int_equal(c.ndns_servers, 3);
	assert_int_equal(c.dns_servers[0].port, 5353);
	assert_string_equal(c.dns_servers[1].host, "::1");
	assert_int_equal(c.dns_servers[2].port, 53);
	assert_non_null(c.relayhost);
	assert_string_equal(c.relayhost->host, "smtp.example.com");
	assert_int_equal(c.relayhost->port, 587);
	assert_true(c.relayhost->bracketed);
	conf_free(&c);
	load_ok("metrics_listen = 127.0.0.1:9100 [::1]:9100\n", &c);
	assert_int_equal(c.nmetrics_listen, 2);
	assert_string_equal(c.metrics_listen[1].host, "::1");
	assert_int_equal(c.metrics_listen[1].port, 9100);
	conf_free(&c);

	/* Empty lists: no listener, no relay clients; no relayhost. */
	load_ok("listen =\nrelay_clients =\nrelayhost =\n", &c);
	assert_int_equal(c.nlisten, 0);
	assert_null(c.listen);
	assert_int_equal(c.nrelay_clients, 0);
	assert_null(c.relayhost);
	conf_free(&c);

	/* A relayhost without a port keeps 0 (= smtp_port). */
	load_ok("relayhost = mail.example.com\nsmtp_port = 2525\n", &c);
	assert_int_equal(c.relayhost->port, 0);
	assert_false(c.relayhost->bracketed);
	conf_free(&c);
}

static void
test_cidr(void **state)
{
	static const struct {
		const char	*in;
		int		 family;
		unsigned	 prefix;
	} ok[] = {
		{ "127.0.0.0/8", AF_INET, 8 }, { "10.1.2.3", AF_INET, 32 },
		{ "0.0.0.0/0", AF_INET, 0 }, { "192.168.1.128/25", AF_INET, 25 },
		{ "::1", AF_INET6, 128 }, { "::/0", AF_INET6, 0 },
		{ "2001:db8::/32", AF_INET6, 32 },
		{ "fe80::/10", AF_INET6, 10 },
	};
	static const char *bad[] = {
		"", "/8", "127.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x",
		"10.0.0.0/-1", "10.0.0.0/08x", "::1/129", "2001:db8::1/64",
		"host.example", "10.0.0/8", "10.0.0.0/8/8", "[::1]",
		"fec0::/9",
	};
	struct cidr c;

	(void)state;
	for (size_t i = 0; i < ARRLEN(ok); i++) {
		if (conf_parse_cidr(ok[i].in, &c) != 0)
			fail_msg("conf_parse_cidr(\"%s\") failed", ok[i].in);
		assert_int_equal(c.family, ok[i].family);
		assert_int_equal(c.prefix, ok[i].prefix);
	}
	for (size_t i = 0; i < ARRLEN(bad); i++)
		if (conf_parse_cidr(bad[i], &c) != -1)
			fail_msg("conf_parse_cidr(\"%s\") succeeded", bad[i]);
}

static void
test_cidr_match(void **state)
{
	static const struct {
		const char	*addr;
		bool		 match;
	} t[] = {
		{ "127.0.0.1", true }, { "127.255.255.255", true },
		{ "128.0.0.1", false }, { "10.9.8.7", false },
		{ "192.168.1.129", true }, { "192.168.1.127", false },
		{ "::1", true }, { "::2", false },
		{ "2001:db8:1::5", true }, { "2001:db9::5", false },
		{ "::ffff:127.0.0.1", true },	/* IPv4-mapped */
		{ "::ffff:10.0.0.1", false },
	};
	struct conf c;
	unsigned char bin[16];

	(void)state;
	load_ok("relay_clients = 127.0.0.0/8 ::1, 192.168.1.128/25 "
	    "2001:db8:1::/48\n", &c);
	assert_int_equal(c.nrelay_clients, 4);
	for (size_t i = 0; i < ARRLEN(t); i++) {
		int fam = strchr(t[i].addr, ':') != NULL ? AF_INET6 : AF_INET;

		assert_int_equal(inet_pton(fam, t[i].addr, bin), 1);
		if (conf_cidr_match(c.relay_clients, c.nrelay_clients, fam,
		    bin) != t[i].match)
			fail_msg("conf_cidr_match(%s) != %d", t[i].addr,
			    t[i].match);
	}
	conf_free(&c);

	/* Everything, and nothing. */
	load_ok("relay_clients = 0.0.0.0/0 ::/0\n", &c);
	assert_int_equal(inet_pton(AF_INET, "203.0.113.9", bin), 1);
	assert_true(conf_cidr_match(c.relay_clients, c.nrelay_clients,
	    AF_INET, bin));
	assert_false(conf_cidr_match(c.relay_clients, 0, AF_INET, bin));
	assert_false(conf_cidr_match(c.relay_clients, c.nrelay_clients,
	    AF_UNIX, bin));
	conf_free(&c);
}

static void
test_syntax(void **state)
{
	struct conf c;

	(void)state;
	/* White space, trailing comments, CRLF, case-insensitive keys. */
	/* '#' inside a word is not a comment: here it makes a bad number. */
	load_err("smtp_port = 2525#x\n", ":1: smtp_port: \"2525#x\": must be");
	load_ok("  hostname\t=\tmx.example.com   # the EHLO name\r\n"
	    "Smtp_Port=2525 # now it is\n"
	    "\t# indented comment\n"
	    "retry_min = 1m\t\n", &c);
	assert_string_equal(c.hostname, "mx.example.com");
	assert_int_equal(c.smtp_port, 2525);
	assert_int_equal(c.retry_min_ms, 60 * 1000);
	conf_free(&c);
	/* No final newline. */
	load_ok("max_clients = 3", &c);
	assert_int_equal(c.max_clients, 3);
	conf_free(&c);
}

static void
test_errors(void **state)
{
	static const struct {
		const char	*text;
		const char	*want;	/* after the path */
	} t[] = {
		{ "retry_mn = 5m\n", ":1: retry_mn: unknown key" },
		{ "# c\n\nretry_mn = 5m\n", ":3: retry_mn: unknown key" },
		{ "hostname mx.example.com\n",
		    ":1: hostname: missing '=' (expected KEY = VALUE)" },
		{ "garbage\n", ":1: garbage: missing '='" },
		{ "= 5\n", ":1: missing key before '='" },
		{ "foo bar = 1\n", ":1: foo bar: unknown key" },
		{ "smtp_port = 25\nsmtp_port = 26\n",
		    ":2: smtp_port: duplicate key (first set at line 1)" },
		{ "listen =\nLISTEN = 127.0.0.1:25\n",
		    ":2: listen: duplicate key (first set at line 1)" },
		{ "hostname =\n", ":1: hostname: \"\": missing value" },
		{ "hostname = bad_name!\n", ":1: hostname: \"bad_name!\": not a "
		    "valid host name" },
		{ "hostname = a..b\n", ":1: hostname: " },
		{ "qualify_domain = -x.example\n", ":1: qualify_domain: " },
		{ "spool_dir = var/spool\n", ":1: spool_dir: \"var/spool\": not "
		    "an absolute path" },
		{ "spool_dir =\n", ":1: spool_dir: \"\": missing value" },
		{ "tls_ca_file = ca.pem\n", ":1: tls_ca_file: " },
		{ "aliases = ~/aliases\n", ":1: aliases: " },
		{ "smtp_port = 0\n", ":1: smtp_port: \"0\": must be a number "
		    "from 1 to 65535" },
		{ "smtp_port = 65536\n", ":1: smtp_port: \"65536\": must be" },
		{ "smtp_port = -1\n", ":1: smtp_port: " },
		{ "smtp_port = 25 26\n", ":1: smtp_port: " },
		{ "smtp_port = 0x19\n", ":1: smtp_port: " },
		{ "smtp_port = 99999999999999999999999\n", ":1: smtp_port: " },
		{ "concurrency = 0\n", ":1: concurrency: " },
		{ "max_recipients = 1000001\n", ":1: max_recipients: " },
		{ "max_clients =\n", ":1: max_clients: \"\": missing value" },
		{ "retry_min = 5x\n", ":1: retry_min: \"5x\": not a duration" },
		{ "retry_min = 0\n", ":1: retry_min: \"0\": must be from 1s" },
		{ "retry_max = 8d\n", ":1: retry_max: \"8d\": must be from 1s "
		    "to 7d" },
		/* A bound that is not whole days is said in seconds. */
		{ "dns_timeout = 301s\n", ":1: dns_timeout: \"301s\": must be "
		    "from 1s to 300s" },
		{ "queue_lifetime = 1.5d\n", ":1: queue_lifetime: " },
		{ "queue_lifetime = 9999999999d\n", ":1: queue_lifetime: "
		    "\"9999999999d\": duration too long" },
		{ "max_message_size = 35Q\n", ":1: max_message_size: \"35Q\": "
		    "not a size" },
		{ "max_message_size = 0\n", ":1: max_message_size: \"0\": must "
		    "be from 1 bytes" },
		{ "max_message_size = 2000G\n", ":1: max_message_size: " },
		{ "tls = sometimes\n", ":1: tls: \"sometimes\": must be none, "
		    "may, encrypt, verify or dane" },
		{ "mta_sts = maybe\n", ":1: mta_sts: \"maybe\": must be yes "
		    "or no" },
		{ "mta_sts_port = 0\n", ":1: mta_sts_port: \"0\": must be a "
		    "number from 1 to 65535" },
		{ "mta_sts_timeout = 10m\n", ":1: mta_sts_timeout: " },
		{ "mta_sts_ca_file = relative.pem\n", ":1: mta_sts_ca_file: " },
		{ "tls =\n", ":1: tls: \"\": missing value" },
		{ "relayhost_auth_tls = may\n", ":1: relayhost_auth_tls: "
		    "\"may\": must be encrypt or verify" },
		{ "relayhost_auth_tls = none\n", ":1: relayhost_auth_tls: "
		    "\"none\": must be encrypt or verify" },
		{ "relayhost_auth_tls =\n", ":1: relayhost_auth_tls: \"\": "
		    "missing value" },
		{ "bare_lf = strip\n", ":1: bare_lf: \"strip\": must be "
		    "normalize or reject" },
		{ "bare_lf =\n", ":1: bare_lf: \"\": missing value" },
		{ "smtpd_add_missing_headers = 1\n", ":1: "
		    "smtpd_add_missing_headers: \"1\": must be yes or no" },
		{ "dkim_key = example.com sel\n", ":1: dkim_key: "
		    "\"example.com sel\": expected DOMAIN SELECTOR PATH" },
		{ "dkim_key = example.com sel /k.pem extra\n", ":1: dkim_key: "
		    "\"example.com sel /k.pem extra\": expected DOMAIN SELECTOR "
		    "PATH" },
		{ "dkim_key =\n", ":1: dkim_key: \"\": missing value" },
		{ "dkim_key = bad!domain sel /k.pem\n", ":1: dkim_key: "
		    "\"bad!domain sel /k.pem\": bad!domain: not a valid domain" },
		{ "dkim_key = localhost sel /k.pem\n", ":1: dkim_key: "
		    "\"localhost sel /k.pem\": localhost: not a valid domain" },
		{ "dkim_key = example.com -sel /k.pem\n", ":1: dkim_key: "
		    "\"example.com -sel /k.pem\": -sel: not a valid selector" },
		{ "dkim_key = example.com a..b /k.pem\n", ":1: dkim_key: "
		    "\"example.com a..b /k.pem\": a..b: not a valid selector" },
		{ "dkim_key = example.com s_1 /k.pem\n", ":1: dkim_key: "
		    "\"example.com s_1 /k.pem\": s_1: not a valid selector" },
		{ "dkim_key = example.com sel k.pem\n", ":1: dkim_key: "
		    "\"example.com sel k.pem\": k.pem: not an absolute path" },
		{ "dkim_key = example.com sel /k.pem\n"
		    "dkim_key = Example.COM. sel /k.pem\n", ":2: dkim_key: "
		    "\"Example.COM. sel /k.pem\": example.com sel: a second key "
		    "for the same domain and selector (one selector publishes "
		    "one key: give each key its own)" },
		{ "dkim_key = example.com sel /rsa.pem\n"
		    "dkim_key = example.com SEL /ed.pem\n", ":2: dkim_key: "
		    "\"example.com SEL /ed.pem\": example.com SEL: a second key "
		    "for the same domain and selector (one selector publishes "
		    "one key: give each key its own)" },
		{ "dkim_expire = 1x\n", ":1: dkim_expire: \"1x\": not a "
		    "duration" },
		{ "dkim_expire = 366d\n", ":1: dkim_expire: \"366d\": must be "
		    "from 0s to 365d" },
		{ "dkim_expire = 1d\ndkim_expire = 2d\n", ":2: dkim_expire: "
		    "duplicate key (first set at line 1)" },
		{ "tls_policy = example.com\n", ":1: tls_policy: "
		    "\"example.com\": expected DOMAIN POLICY" },
		{ "tls_policy = example.com verify extra\n", ":1: tls_policy: " },
		{ "tls_policy = example.com maybe\n", ":1: tls_policy: "
		    "\"example.com maybe\": policy must be" },
		{ "tls_policy = bad!domain none\n", ":1: tls_policy: " },
		{ "tls_policy =\n", ":1: tls_policy: \"\": missing value" },
		{ "tls_policy = ,\n", ":1: tls_policy: \",\": expected" },
		{ "tls_policy = a.example none\ntls_policy = A.example. may\n",
		    ":2: tls_policy: \"A.example. may\": a.example: domain "
		    "listed twice" },
		{ "listen = 127.0.0.1:0\n", ":1: listen: \"127.0.0.1:0\": port "
		    "must be a number from 1 to 65535" },
		{ "listen = 127.0.0.1:25 [::1:25\n", ":1: listen: "
		    "\"127.0.0.1:25 [::1:25\": missing ']'" },
		{ "listen = [::1]25\n", ":1: listen: \"[::1]25\": expected ':' "
		    "after ']'" },
		{ "listen = :25\n", ":1: listen: \":25\": missing host" },
		{ "dns_servers = ns.example.com:53\n", ":1: dns_servers: "
		    "\"ns.example.com:53\": ns.example.com: an IP address is "
		    "needed here, not a name" },
		{ "dns_servers = 127.0.0.1:53 1.2.3:53\n", ":1: dns_servers: "
		    "\"127.0.0.1:53 1.2.3:53\": not an IPv4 address" },
		{ "relayhost = a.example, [b.example]:smtp\n",
		    ":1: relayhost: " },
		{ "relayhost_fallback = a\n", ":1: relayhost_fallback: \"a\": "
		    "must be none or mx" },
		{ "relayhost_fallback =\n", ":1: relayhost_fallback: \"\": "
		    "missing value" },
		{ "relayhost = [a.example]:smtp\n", ":1: relayhost: " },
		{ "relay_clients = 10.0.0.1/8\n", ":1: relay_clients: "
		    "\"10.0.0.1/8\": host bits set (the network is 10.0.0.0/8)" },
		{ "relay_clients = 2001:db8::1/32\n", ":1: relay_clients: "
		    "\"2001:db8::1/32\": host bits set (the network is "
		    "2001:db8::/32)" },
		{ "relay_clients = 10.0.0.0/33\n", ":1: relay_clients: "
		    "\"10.0.0.0/33\": prefix length must be 0 to 32" },
		{ "relay_clients = localhost\n", ":1: relay_clients: "
		    "\"localhost\": not an IP address" },
		{ "user = -root\n", ":1: user: \"-root\": not a valid user or "
		    "group name" },
		{ "group = wheel users\n", ":1: group: " },
		{ "hostname = a\001b\n", ":1: control character in line" },
		{ "hostname = a\177b\n", ":1: control character in line" },
		{ "retry_min = 2h\nretry_max = 1h\n", ":2: retry_min: 7200s is "
		    "more than retry_max (3600s)" },
		{ "domain_concurrency = 50\nconcurrency = 10\n",
		    ":2: domain_concurrency: 50 is more than concurrency (10)" },
		{ "tls_cert_file = /c.pem\n",
		    ":1: tls_cert_file: set without tls_key_file" },
		{ "\ntls_key_file = /k.pem\n",
		    ":2: tls_key_file: set without tls_cert_file" },
		{ "\n\nauth_users = /etc/mxrelay/users\n",
		    ":3: auth_users: needs tls_cert_file and tls_key_file" },
		{ "\001\002\003 = 1\n", ":1: control character" },
		{ "\xff\xfe = 1\n", ":1: \\xff\\xfe: unknown key" },
		{ "\nmetrics_listen = 127.0.0.1\n",
		    ":2: metrics_listen: 127.0.0.1: a port is needed" },
		{ "metrics_listen = localhost:9100\n", ":1: metrics_listen: "
		    "\"localhost:9100\": localhost: an IP address is needed "
		    "here, not a name" },
	};

	(void)state;
	for (size_t i = 0; i < ARRLEN(t); i++)
		load_err(t[i].text, t[i].want);

	/* A NUL byte, and a line too long. */
	load_err_len("hostname = a\0b\n", 15, ":1: NUL byte in line");
	{
		size_t n = 10000;
		char *big = malloc(n + 1);

		assert_non_null(big);
		memcpy(big, "hostname = ", 11);
		memset(big + 11, 'a', n - 12);
		big[n - 1] = '\n';
		big[n] = '\0';
		load_err(big, ":1: line too long");
		free(big);
	}
}

static void
test_error_buffer(void **state)
{
	struct conf c;
	char small[8];

	(void)state;
	/* A short or absent error buffer truncates, never overflows. */
	write_conf_len("retry_mn = 5m\n", 0);
	assert_int_equal(conf_load(cfpath, true, &c, small, sizeof(small)), -1);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(conf_load(cfpath, true, &c, NULL, 0), -1);
}

static void
test_cross_defaults(void **state)
{
	struct conf c;

	(void)state;
	/* Only one bound set: the other default follows it. */
	load_ok("retry_min = 2h\n", &c);
	assert_int_equal(c.retry_min_ms, 7200 * 1000);
	assert_int_equal(c.retry_max_ms, 7200 * 1000);
	conf_free(&c);
	load_ok("retry_max = 2s\n", &c);
	assert_int_equal(c.retry_min_ms, 2000);
	assert_int_equal(c.retry_max_ms, 2000);
	conf_free(&c);
	load_ok("retry_min = 1s\nretry_max = 1s\n", &c);
	conf_free(&c);
	load_ok("concurrency = 4\n", &c);
	assert_int_equal(c.concurrency, 4);
	assert_int_equal(c.domain_concurrency, 4);
	conf_free(&c);
	load_ok("domain_concurrency = 500\n", &c);
	assert_int_equal(c.concurrency, 500);
	assert_int_equal(c.domain_concurrency, 500);
	conf_free(&c);
}

static void
test_full(void **state)
{
	struct conf c;

	(void)state;
	load_ok("# every key once\n"
	    "hostname = mx.example.com\n"
	    "qualify_domain = example.com\n"
	    "spool_dir = /var/spool/mxrelay-test\n"
	    "aliases = /etc/aliases\n"
	    "listen = 127.0.0.1:2525\n"
	    "relay_clients = 10.0.0.0/8\n"
	    "relayhost = [127.0.0.1]:2526\n"
	    "relayhost_auth_file = /etc/mxrelay/relay-auth\n"
	    "dns_servers = 127.0.0.1:5353\n"
	    "smtp_port = 2527\n"
	    "tls = verify\n"
	    "tls_policy = example.org none\n"
	    "tls_ca_file = /etc/ssl/certs/ca-certificates.crt\n"
	    "tls_cert_file = /etc/mxrelay/cert.pem\n"
	    "tls_key_file = /etc/mxrelay/key.pem\n"
	    "auth_users = /etc/mxrelay/users\n"
	    "retry_min = 1s\n"
	    "retry_max = 10s\n"
	    "queue_lifetime = 1m\n"
	    "max_message_size = 1M\n"
	    "concurrency = 10\n"
	    "domain_concurrency = 2\n"
	    "max_recipients = 50\n"
	    "max_clients = 5\n"
	    "user = nobody\n"
	    "group = nogroup\n", &c);
	assert_string_equal(c.qualify_domain, "example.com");
	assert_int_equal(c.relayhost->port, 2526);
	assert_int_equal(c.smtp_port, 2527);
	assert_int_equal(c.tls, TLS_VERIFY);
	assert_int_equal(c.retry_max_ms, 10 * 1000);
	assert_int_equal(c.queue_lifetime_ms, 60 * 1000);
	assert_int_equal(c.domain_concurrency, 2);
	assert_string_equal(c.group, "nogroup");
	conf_free(&c);
}

/* A file of the source tree: under $srcdir when make check sets it. */
static void
src_path(char *buf, size_t size, const char *rel)
{
	const char *srcdir = getenv("srcdir");

	if (srcdir == NULL || *srcdir == '\0')
		srcdir = TOP_SRCDIR;
	snprintf(buf, size, "%s/%s", srcdir, rel);
}

/*
 * What mxrelay.conf(5) says about the keys.  Each ".It" of its KEYS
 * section is one entry: the key names of its head (up to ".Xc" when the
 * head is an ".It Xo"), the type and range of its ".Pq Em TYPE , No LO to
 * HI", and the values after "Default:" or "Defaults:" in its text, one
 * for all the names or one per name, in order.  The arguments of one
 * macro line (".Ql 127.0.0.1:25 [::1]:25") are one value; values are
 * separated by "," or "and" and end at "." or ";".
 */
#define MAN_NAMES	8
#define MAN_WORD	64
#define MAN_ENTRIES	64

enum man_default {
	DOC_LITERAL,	/* a value as a file would give it */
	DOC_NONE,	/* "none" or "empty" */
};

struct man_entry {
	char		 names[MAN_NAMES][MAN_WORD];
	size_t		 nnames;
	char		 type[MAN_WORD];
	char		 lo[MAN_WORD], hi[MAN_WORD];
	char		 defs[MAN_NAMES][MAN_WORD];
	enum man_default kinds[MAN_NAMES];
	size_t		 ndefs;
	bool		 prose;		/* the default is said in words */

	/* While reading the head. */
	bool		 after_pq;
	char		 prev[MAN_WORD];
	/* While reading the text: 0 before "Default:", 1 in it, 2 after. */
	int		 state;
	char		 run[MAN_WORD];	/* the first token of this value */
	size_t		 nrun;		/* its tokens */
	bool		 run_literal;	/* that token is a macro's arguments */
};

struct man_keys {
	struct man_entry e[MAN_ENTRIES];
	size_t		 n;
};

static void
copy_word(char *dst, const char *src)
{
	if (strlen(src) >= MAN_WORD)
		fail_msg("mxrelay.conf.5: word too long: %s", src);
	strcpy(dst, src);
}

/* Split line in place at white space; returns the number of words. */
static size_t
split_words(char *line, char **words, size_t max)
{
	size_t n = 0;

	for (char *p = line; *p != '\0' && n < max;) {
		p += strspn(p, " \t\n");
		if (*p == '\0')
			break;
		words[n++] = p;
		p += strcspn(p, " \t\n");
		if (*p != '\0')
			*p++ = '\0';
	}
	return n;
}

static bool
is_key_name(const char *w)
{
	return w[0] >= 'a' && w[0] <= 'z' &&
	    strspn(w, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(w);
}

/* A word of an entry's head: names before "Pq", type and range after. */
static void
man_head_word(struct man_entry *e, const char *w)
{
	if (!e->after_pq) {
		if (strcmp(w, "Pq") == 0)
			e->after_pq = true;
		else if (is_key_name(w)) {
			assert_true(e->nnames < MAN_NAMES);
			copy_word(e->names[e->nnames++], w);
		}
	} else if (strcmp(e->prev, "Em") == 0 && e->type[0] == '\0')
		copy_word(e->type, w);
	else if (strcmp(e->prev, "No") == 0 && e->lo[0] == '\0')
		copy_word(e->lo, w);
	else if (strcmp(e->prev, "to") == 0 && e->hi[0] == '\0')
		copy_word(e->hi, w);
	copy_word(e->prev, strlen(w) < MAN_WORD ? w : "");
}

/* The value being read is complete. */
static void
man_default_end(struct man_entry *e)
{
	if (e->nrun == 0)
		return;
	assert_true(e->ndefs < MAN_NAMES);
	if (!e->run_literal && (strcmp(e->run, "none") == 0 ||
	    strcmp(e->run, "empty") == 0)) {
		e->defs[e->ndefs][0] = '\0';
		e->kinds[e->ndefs++] = DOC_NONE;
	} else if (e->nrun == 1) {
		copy_word(e->defs[e->ndefs], e->run);
		e->kinds[e->ndefs++] = DOC_LITERAL;
	} else {
		e->prose = true;
		e->state = 2;
	}
	e->nrun = 0;
}

/* One token of an entry's text (see struct man_entry). */
static void
man_default_token(struct man_entry *e, const char *t, bool literal)
{
	if (e->state == 0) {
		if (strcmp(t, "Default:") == 0 || strcmp(t, "Defaults:") == 0)
			e->state = 1;
		return;
	}
	if (e->state != 1)
		return;
	if (!literal && (strcmp(t, ".") == 0 || strcmp(t, ";") == 0)) {
		man_default_end(e);
		e->state = 2;
	} else if (!literal && (strcmp(t, ",") == 0 || strcmp(t, "and") == 0))
		man_default_end(e);
	else if (e->nrun++ == 0) {
		e->run_literal = literal;
		copy_word(e->run, t);
	}
}

static bool
is_punct(const char *w)
{
	return strlen(w) == 1 && strchr(".,;()", w[0]) != NULL;
}

/* A line of an entry's text, split into tokens. */
static void
man_text_line(struct man_entry *e, char *line)
{
	char *w[32], lit[2 * MAN_WORD] = "", mark[2] = "";
	size_t n = split_words(line, w, 32), end;

	if (n > 0 && w[0][0] != '.') {
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(w[i]);

			mark[0] = len > 1 && strchr(".,;", w[i][len - 1]) != NULL ?
			    w[i][len - 1] : '\0';
			if (mark[0] != '\0')
				w[i][len - 1] = '\0';
			man_default_token(e, w[i], false);
			if (mark[0] != '\0')
				man_default_token(e, mark, false);
		}
		return;
	}
	/* ".Ql 5m ," is the literal "5m", then ",". */
	for (end = n; end > 1 && is_punct(w[end - 1]); end--)
		;
	for (size_t i = 1; i < end; i++) {
		if (i > 1)
			strncat(lit, " ", sizeof(lit) - strlen(lit) - 1);
		strncat(lit, w[i], sizeof(lit) - strlen(lit) - 1);
	}
	if (lit[0] != '\0')
		man_default_token(e, lit, true);
	for (size_t i = end; i < n; i++)
		man_default_token(e, w[i], false);
}

static void
man_keys_read(struct man_keys *mk)
{
	char path[PATH_MAX], line[512], *w[32];
	struct man_entry *e = NULL;
	bool in_keys = false, in_head = false, xo = false;
	FILE *f;

	memset(mk, 0, sizeof(*mk));
	src_path(path, sizeof(path), "man/mxrelay.conf.5");
	if ((f = fopen(path, "r")) == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		bool it = strncmp(line, ".It ", 4) == 0;

		if (e != NULL && (it || strncmp(line, ".El", 3) == 0 ||
		    strncmp(line, ".Ss", 3) == 0 || strncmp(line, ".Sh", 3) == 0)) {
			man_default_end(e);
			e = NULL;
		}
		if (strncmp(line, ".Sh ", 4) == 0)
			in_keys = strcmp(line, ".Sh KEYS\n") == 0;
		if (!in_keys)
			continue;
		if (it) {
			assert_true(mk->n < MAN_ENTRIES);
			e = &mk->e[mk->n++];
			in_head = true;
			xo = strstr(line, " Xo") != NULL;
		}
		if (e == NULL)
			continue;
		if (in_head) {
			bool xc = strncmp(line, ".Xc", 3) == 0;
			size_t n = split_words(line + (line[0] == '.'), w, 32);

			for (size_t i = 0; i < n; i++)
				man_head_word(e, w[i]);
			in_head = xo && !xc;
			continue;
		}
		man_text_line(e, line);
	}
	fclose(f);
	assert_true(mk->n > 0);
}

/* The entry that names key, and which of its names it is. */
static const struct man_entry *
man_entry_of(const struct man_keys *mk, const char *key, size_t *pos)
{
	for (size_t i = 0; i < mk->n; i++)
		for (size_t j = 0; j < mk->e[i].nnames; j++)
			if (strcmp(mk->e[i].names[j], key) == 0) {
				*pos = j;
				return &mk->e[i];
			}
	return NULL;
}

static bool
code_has_key(const char *name)
{
	const char *k;

	for (size_t i = 0; (k = conf_key_name(i, NULL)) != NULL; i++)
		if (strcmp(k, name) == 0)
			return true;
	return false;
}

/* Every key of the code is in mxrelay.conf(5), and every key there is. */
static void
test_keys_documented(void **state)
{
	static struct man_keys mk;
	const char *k;
	size_t pos, nkeys = 0;

	(void)state;
	man_keys_read(&mk);
	for (size_t i = 0; (k = conf_key_name(i, NULL)) != NULL; i++) {
		nkeys++;
		if (man_entry_of(&mk, k, &pos) == NULL)
			fail_msg("%s: not a key in mxrelay.conf(5)", k);
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(conf_key_name(j, NULL), k) == 0)
				fail_msg("%s: in the key table twice", k);
	}
	assert_true(nkeys > 30);
	for (size_t i = 0; i < mk.n; i++) {
		if (mk.e[i].nnames == 0)
			fail_msg("mxrelay.conf(5): a KEYS entry without a key");
		for (size_t j = 0; j < mk.e[i].nnames; j++)
			if (!code_has_key(mk.e[i].names[j]))
				fail_msg("mxrelay.conf(5) documents %s, which "
				    "conf_load() does not know",
				    mk.e[i].names[j]);
	}
}

/*
 * The documented default of a key: DOC_LITERAL with its text, DOC_NONE,
 * or -1 when it is said in words.
 */
static int
man_default_of(const struct man_keys *mk, const char *key, const char **text)
{
	size_t pos;
	const struct man_entry *e = man_entry_of(mk, key, &pos);

	if (e == NULL)
		fail_msg("%s: not a key in mxrelay.conf(5)", key);
	if (e->prose)
		return -1;
	if (e->ndefs == 1)
		pos = 0;
	else if (e->ndefs != e->nnames)
		fail_msg("mxrelay.conf(5): %s: %zu defaults for %zu keys", key,
		    e->ndefs, e->nnames);
	*text = e->defs[pos];
	return (int)e->kinds[pos];
}

/*
 * Default paths are documented as a build with localstatedir /var and
 * runstatedir /run has them: compare what follows the first folder.
 */
static bool
same_default(const char *code, const char *doc)
{
	size_t clen = strlen(code), tlen;

	if (doc[0] != '/')
		return strcmp(code, doc) == 0;
	doc = strchr(doc + 1, '/');
	if (doc == NULL || code[0] != '/')
		return false;
	tlen = strlen(doc);
	return clen >= tlen && strcmp(code + clen - tlen, doc) == 0;
}

/*
 * The default of every key in mxrelay.conf(5) is the one in the code, and
 * a file that sets it says the same as no file.  "none" is an empty value
 * (tls_policy, which may repeat, has none by having no line); a default
 * in words is computed, so the code has no text for it.
 */
static void
test_key_defaults(void **state)
{
	static struct man_keys mk;
	const char *k, *def, *doc;
	char line[256];
	struct conf c;

	(void)state;
	man_keys_read(&mk);
	for (size_t i = 0; (k = conf_key_name(i, &def)) != NULL; i++) {
		switch (man_default_of(&mk, k, &doc)) {
		case DOC_LITERAL:
			if (def == NULL || !same_default(def, doc))
				fail_msg("%s: default \"%s\" in mxrelay.conf(5), "
				    "\"%s\" in the code", k, doc,
				    def != NULL ? def : "(none)");
			snprintf(line, sizeof(line), "%s = %s\n", k, doc);
			break;
		case DOC_NONE:
			if (def != NULL)
				fail_msg("%s: no default in mxrelay.conf(5), "
				    "\"%s\" in the code", k, def);
			if (strcmp(k, "tls_policy") == 0 ||
			    strcmp(k, "dkim_key") == 0)
				continue;
			snprintf(line, sizeof(line), "%s =\n", k);
			break;
		default:
			if (def != NULL)
				fail_msg("%s: a derived default in mxrelay.conf(5), "
				    "\"%s\" in the code", k, def);
			continue;
		}
		load_ok(line, &c);
		conf_free(&c);
	}
}

/* A documented bound as a number of the key's unit (seconds, bytes). */
static uint64_t
man_bound(const char *type, const char *text)
{
	time_t t;
	uint64_t v;

	if (strcmp(type, "duration") == 0) {
		if (util_parse_duration(text, &t) == -1)
			fail_msg("mxrelay.conf(5): bad duration %s", text);
		return (uint64_t)t;
	}
	if (util_parse_size(text, &v) == -1)
		fail_msg("mxrelay.conf(5): bad %s %s", type, text);
	return v;
}

/*
 * Every documented range is the code's: both bounds load, one past
 * either is refused.  Every number, duration and size has a range.
 */
static void
test_key_ranges(void **state)
{
	static struct man_keys mk;
	char line[256], want[256];
	size_t nranges = 0;
	struct conf c;

	(void)state;
	man_keys_read(&mk);
	for (size_t i = 0; i < mk.n; i++) {
		const struct man_entry *e = &mk.e[i];
		uint64_t lo, hi;

		if (e->hi[0] == '\0') {
			if (strcmp(e->type, "number") == 0 ||
			    strcmp(e->type, "duration") == 0 ||
			    strcmp(e->type, "size") == 0)
				fail_msg("mxrelay.conf(5): %s: no range",
				    e->names[0]);
			continue;
		}
		lo = man_bound(e->type, e->lo);
		hi = man_bound(e->type, e->hi);
		for (size_t j = 0; j < e->nnames; j++) {
			const char *k = e->names[j];

			nranges++;
			snprintf(line, sizeof(line), "%s = %s\n", k, e->lo);
			load_ok(line, &c);
			conf_free(&c);
			snprintf(line, sizeof(line), "%s = %s\n", k, e->hi);
			load_ok(line, &c);
			conf_free(&c);
			snprintf(line, sizeof(line), "%s = %llu\n", k,
			    (unsigned long long)hi + 1);
			snprintf(want, sizeof(want), ":1: %s: \"%llu\": must be",
			    k, (unsigned long long)hi + 1);
			load_err(line, want);
			if (lo == 0)
				continue;
			snprintf(line, sizeof(line), "%s = %llu\n", k,
			    (unsigned long long)lo - 1);
			snprintf(want, sizeof(want), ":1: %s: \"%llu\": must be",
			    k, (unsigned long long)lo - 1);
			load_err(line, want);
		}
	}
	assert_true(nranges > 0);
}

/*
 * etc/mxrelay.conf shows every key, as "#key = value", and no other; a key
 * with a default shows that default.
 */
static void
test_sample_keys(void **state)
{
	char path[PATH_MAX], line[512], *eq, *value;
	bool shown[128] = { false };
	const char *k, *def;
	size_t i;
	FILE *f;

	(void)state;
	src_path(path, sizeof(path), "etc/mxrelay.conf");
	assert_non_null(f = fopen(path, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		/* "#key = value" is a setting; "# words" is prose. */
		if (line[0] != '#' || line[1] < 'a' || line[1] > 'z')
			continue;
		line[strcspn(line, "\n")] = '\0';
		if ((eq = strchr(line, '=')) == NULL)
			fail_msg("etc/mxrelay.conf: \"%s\": no '='", line);
		for (value = eq + 1; *value == ' '; value++)
			;
		while (eq > line + 1 && eq[-1] == ' ')
			eq--;
		*eq = '\0';
		for (i = 0; (k = conf_key_name(i, &def)) != NULL; i++)
			if (strcmp(k, line + 1) == 0)
				break;
		if (k == NULL)
			fail_msg("etc/mxrelay.conf: %s: not a key", line + 1);
		assert_true(i < ARRLEN(shown));
		shown[i] = true;
		if (def != NULL && !same_default(def, value))
			fail_msg("etc/mxrelay.conf: %s: shows \"%s\", the "
			    "default is \"%s\"", k, value, def);
	}
	fclose(f);
	for (i = 0; (k = conf_key_name(i, NULL)) != NULL; i++)
		if (!shown[i])
			fail_msg("etc/mxrelay.conf: %s is not shown", k);
}

/*
 * etc/mxrelay.conf changes nothing as shipped, and with every key line
 * uncommented it still loads and shows the defaults it claims.
 */
static void
test_sample(void **state)
{
	char path[PATH_MAX], *line = NULL;
	size_t cap = 0, o = 0;
	ssize_t len;
	struct conf c, d;
	FILE *f;
	char *text;

	(void)state;
	src_path(path, sizeof(path), "etc/mxrelay.conf");
	assert_int_equal(conf_load(path, true, &c, NULL, 0), 0);
	check_defaults(&c);
	conf_free(&c);

	assert_non_null(f = fopen(path, "r"));
	text = calloc(1, 65536);
	assert_non_null(text);
	while ((len = getline(&line, &cap, f)) != -1) {
		size_t skip = 0;

		/* "#key = ..." is a setting; "# words" is prose. */
		if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z')
			skip = 1;
		assert_true(o + (size_t)len < 65536);
		memcpy(text + o, line + skip, (size_t)len - skip);
		o += (size_t)len - skip;
	}
	free(line);
	fclose(f);
	load_ok(text, &c);
	free(text);
	conf_defaults(&d);
	/* The sample shows the path of a --localstatedir=/var build. */
	assert_string_equal(c.spool_dir, "/var/spool/mxrelay");
	assert_string_equal(c.aliases, "/etc/aliases");
	assert_int_equal(c.nlisten, d.nlisten);
	assert_int_equal(c.nrelay_clients, d.nrelay_clients);
	assert_null(c.relayhost);
	assert_int_equal(c.smtp_port, d.smtp_port);
	assert_int_equal(c.tls, d.tls);
	assert_int_equal(c.ntls_policies, 1);
	assert_int_equal(c.retry_min_ms, d.retry_min_ms);
	assert_int_equal(c.retry_max_ms, d.retry_max_ms);
	assert_true(c.queue_lifetime_ms == d.queue_lifetime_ms);
	assert_true(c.max_message_size == d.max_message_size);
	assert_int_equal(c.concurrency, d.concurrency);
	assert_int_equal(c.domain_concurrency, d.domain_concurrency);
	assert_int_equal(c.max_recipients, d.max_recipients);
	assert_int_equal(c.max_clients, d.max_clients);
	assert_string_equal(c.user, d.user);
	assert_string_equal(c.group, d.group);
	conf_free(&c);
	conf_free(&d);
}

/*
 * relayhost takes a list (commas or spaces), tried in order, each with
 * its own port and brackets; relayhost_fallback is none or mx.
 */
static void
test_relayhost_list(void **state)
{
	struct conf c;

	(void)state;
	load_ok("relayhost = [a.example]:587, b.example [127.0.0.1]:2525\n", &c);
	assert_int_equal(c.nrelayhost, 3);
	assert_string_equal(c.relayhost[0].host, "a.example");
	assert_int_equal(c.relayhost[0].port, 587);
	assert_true(c.relayhost[0].bracketed);
	assert_string_equal(c.relayhost[1].host, "b.example");
	assert_int_equal(c.relayhost[1].port, 0);
	assert_false(c.relayhost[1].bracketed);
	assert_string_equal(c.relayhost[2].host, "127.0.0.1");
	assert_int_equal(c.relayhost[2].port, 2525);
	assert_false(c.relayhost_fallback);
	conf_free(&c);
	load_ok("relayhost = b.example\nrelayhost_fallback = MX\n", &c);
	assert_int_equal(c.nrelayhost, 1);
	assert_true(c.relayhost_fallback);
	conf_free(&c);
	load_ok("relayhost_fallback = none\n", &c);
	assert_false(c.relayhost_fallback);
	assert_int_equal(c.nrelayhost, 0);
	conf_free(&c);
}

/*
 * dkim_key repeats: one entry a line, in order, the domain in lower case
 * without its final dot; an RSA and an Ed25519 key of one domain may
 * share a selector (their files differ).
 */
static void
test_dkim_keys(void **state)
{
	struct conf c;

	(void)state;
	load_ok("dkim_key = Example.COM. sel1 /etc/mxrelay/dkim/rsa.key\n"
	    "dkim_key = example.com sel2 /etc/mxrelay/dkim/ed.key\n"
	    "dkim_key = mail.example.org 2024-01.a /k.pem\n"
	    "dkim_expire = 1w\n", &c);
	assert_int_equal(c.ndkim_keys, 3);
	assert_string_equal(c.dkim_keys[0].domain, "example.com");
	assert_string_equal(c.dkim_keys[0].selector, "sel1");
	assert_string_equal(c.dkim_keys[0].path, "/etc/mxrelay/dkim/rsa.key");
	assert_string_equal(c.dkim_keys[1].path, "/etc/mxrelay/dkim/ed.key");
	assert_string_equal(c.dkim_keys[2].domain, "mail.example.org");
	assert_string_equal(c.dkim_keys[2].selector, "2024-01.a");
	assert_true(c.dkim_expire_ms == 7 * 86400000LL);
	conf_free(&c);
	assert_int_equal(c.ndkim_keys, 0);
}

static void
test_log_format(void **state)
{
	struct conf c;

	(void)state;
	load_ok("log_format = json", &c);
	assert_int_equal(c.log_format, RECORD_JSON);
	conf_free(&c);
	load_ok("log_format = Text", &c);
	assert_int_equal(c.log_format, RECORD_TEXT);
	conf_free(&c);
	load_err("log_format = yaml\n", ":1: log_format: \"yaml\": must be "
	    "text or json");
	load_err("log_format =\n", ":1: log_format: \"\": missing value");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_default_path),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_bare_lf),
		cmocka_unit_test(test_add_missing_headers),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_hostport_lists),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_error_buffer),
		cmocka_unit_test(test_cross_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_keys_documented),
		cmocka_unit_test(test_key_defaults),
		cmocka_unit_test(test_key_ranges),
		cmocka_unit_test(test_sample_keys),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_relayhost_list),
		cmocka_unit_test(test_log_format),
		cmocka_unit_test(test_dkim_keys),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
