/*
 * Unit tests for src/dns.c: the real c-ares on the real event loop against
 * tests/world/dnsd on 127.0.0.1 (c-ares' own MockServer approach).  The
 * zone is written by the test; dnsd's query log counts what reached the
 * wire, so caching, coalescing and the cap on queries out at once are
 * checked on the server side.  One test per DNS status (enum dns_status),
 * plus the request life cycle (callbacks from the loop only, cancel,
 * dns_free with requests pending or waiting for their turn).  TLSA, TXT
 * and the secure address lookup against dnsd (never secure: it does not
 * validate); the AD bit, EDNS, query IDs, secure answers and malformed
 * TLSA records against a fake server in the test itself.  With
 * MXRELAY_TEST_VALIDATOR=127.0.0.1:PORT, a validating resolver serving
 * the zones of tests/world (see there), secure answers for real.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <cmocka.h>

#include "dns.h"
#include "event.h"
#include "metrics.h"
#include "util.h"
#include "testutil.h"

#ifndef DNSD_PATH
#define DNSD_PATH	"tests/world/dnsd"
#endif

#define TEST_TIMEOUT_MS	300	/* c-ares per-try timeout in the tests */
#define TEST_TRIES	2
#define WAIT_MAX_MS	5000	/* longest any single wait may take */
#define CAP			64	/* DNS_INFLIGHT_MAX in dns.c */
#define CAP_NAMES		100	/* lookups in test_inflight_cap */
#define CAP_TIMEOUT_MS		2500

/* TLSA association data: 32 and 64 octets in hex (SHA2-256, SHA2-512). */
#define HEX32	"0123456789abcdef0123456789abcdef" \
		"0123456789abcdef0123456789abcdef"
#define HEX64	"fedcba9876543210fedcba9876543210" \
		"fedcba9876543210fedcba9876543210" \
		"fedcba9876543210fedcba9876543210" \
		"fedcba9876543210fedcba9876543210"

static const char zone_text[] =
    "# zone for tests/unit/test_dns.c\n"
    "order.test MX 20 mx20.order.test.\n"
    "order.test MX 10 mx10.order.test\n"
    "order.test MX 30 mx30.order.test\n"
    "*.eq.test MX 10 a.eq-mx.test\n"
    "*.eq.test MX 10 b.eq-mx.test\n"
    "*.eq.test MX 10 c.eq-mx.test\n"
    "*.eq.test MX 10 d.eq-mx.test\n"
    "*.eq.test MX 5 first.eq-mx.test\n"
    "*.eq.test MX 50 last.eq-mx.test\n"
    "implicit.test A 127.0.0.10\n"
    "nullmx.test MX 0 .\n"
    "nullmx.test A 127.0.0.11\n"
    "fail.test SERVFAIL\n"
    "fail.test A 127.0.0.12\n"
    "fail.test MX 10 mx.fail.test\n"
    "mxfail.test SERVFAIL MX\n"
    "mxfail.test A 127.0.0.13\n"
    "refused.test REFUSED\n"
    "refused.test MX 10 mx.refused.test\n"
    "dead.test DROP\n"
    "dead.test MX 10 mx.dead.test\n"
    "slow.test DELAY 500\n"
    "slow.test MX 10 mx.slow.test\n"
    "alias.test CNAME real.test\n"
    "real.test A 127.0.0.14\n"
    "mxcname.test MX 10 alias.test\n"
    "dual.test A 127.0.0.15\n"
    "dual.test AAAA ::1\n"
    "dual.test AAAA 2001:db8::1\n"
    "dual.test A 127.0.0.16\n"
    "cache.test MX 10 mx.cache.test\n"
    "cacheaddr.test A 127.0.0.17\n"
    "short.test 1 MX 10 mx.short.test\n"
    "neg.test A 127.0.0.18\n"
    "coal.test MX 10 mx.coal.test\n"
    "coaladdr.test A 127.0.0.19\n"
    "coaladdr.test AAAA ::2\n"
    "cancel.test DELAY 200\n"
    "cancel.test MX 10 mx.cancel.test\n"
    "pending.test DELAY 300\n"
    "pending.test MX 10 mx.pending.test\n"
    "pending.test A 127.0.0.20\n"
    "onlymx.test MX 10 mx.onlymx.test\n"
    "*.cap.test DROP\n"
    "*.cap.test MX 10 mx.cap.test\n"
    "*.capw.test DROP\n"
    "ttl.test 120 MX 10 mx1.ttl.test\n"
    "ttl.test 120 MX 20 mx2.ttl.test\n"
    "_25._tcp.mx.tlsa.test TLSA 3 1 1 " HEX32 "\n"
    "_25._tcp.mx.tlsa.test TLSA 2 0 2 " HEX64 "\n"
    "_25._tcp.mx.tlsa.test 60 TLSA 1 1 0 ab\n"
    "_587._tcp.mx.tlsa.test TLSA 3 0 1 " HEX32 "\n"
    "_25._tcp.nodata.tlsa.test A 127.0.0.30\n"
    "_25._tcp.mx.tlsafail.test SERVFAIL\n"
    "sts.txt.test TXT v=STSv1; id=20260101;\n"
    "two.txt.test TXT first\n"
    "two.txt.test TXT second part\n"
    "mx.txt.test MX 10 mx.txt.test\n";

/* One dnsd for the whole run. */
static struct {
	char	 dir[64];
	char	 zone[128];
	char	 qlog[128];
	char	 pidfile[128];
	char	 servers[64];
	pid_t	 pid;
} world;

/* Per test. */
struct fixture {
	struct ev_loop	*loop;
	struct dns	*dns;
};

struct mx_result {
	int		 calls;
	enum dns_status	 status;
	bool		 secure;
	size_t		 n;
	char		 host[8][64];
	unsigned	 pref[8];
	unsigned	 ttl[8];
	char		 errtext[128];
	struct dns	*free_me;	/* dns_free() from inside the callback */
};

struct addr_result {
	int		 calls;
	enum dns_status	 status;
	bool		 secure;	/* dns_addr_secure_lookup() */
	size_t		 n;
	struct sockaddr_storage addr[64];
	char		 errtext[128];
};

/* zone_text and 40 A records for one name (too big for UDP). */
static void
write_zone(void)
{
	FILE *f = fopen(world.zone, "w");

	assert_non_null(f);
	assert_true(fputs(zone_text, f) >= 0);
	for (int i = 1; i <= 40; i++)
		assert_true(fprintf(f, "big.test A 127.0.1.%d\n", i) > 0);
	assert_int_equal(fclose(f), 0);
}

/* Lines "NAME TYPE" in dnsd's query log. */
static int
query_count(const char *name, const char *type)
{
	char line[512], want[300];
	FILE *f;
	int n = 0;

	snprintf(want, sizeof(want), "%s %s\n", name, type);
	if ((f = fopen(world.qlog, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strcmp(line, want) == 0)
			n++;
	fclose(f);
	return n;
}

/* Lines of dnsd's query log that contain s. */
static int
query_count_having(const char *s)
{
	char line[512];
	FILE *f;
	int n = 0;

	if ((f = fopen(world.qlog, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, s) != NULL)
			n++;
	fclose(f);
	return n;
}

static int
start_world(void **state)
{
	char buf[64];
	unsigned port;

	(void)state;
	/* Nothing here may hang: the whole program is bounded. */
	alarm(120);
	if (test_mkdtemp(world.dir, sizeof(world.dir), "test_dns") == NULL)
		return -1;
	snprintf(world.zone, sizeof(world.zone), "%s/zone", world.dir);
	snprintf(world.qlog, sizeof(world.qlog), "%s/queries", world.dir);
	snprintf(world.pidfile, sizeof(world.pidfile), "%s/pid", world.dir);
	write_zone();

	{
		const char *argv[] = { DNSD_PATH, "-l", "127.0.0.1:0", "-z",
		    world.zone, "-q", world.qlog, "-p", world.pidfile, "-t", "300",
		    NULL };

		/* "port N\n", within 10 s. */
		if (test_spawn_line(argv, buf, sizeof(buf), 10000,
		    &world.pid) == -1)
			return -1;
	}
	if (sscanf(buf, "port %u", &port) != 1 || port == 0 || port > 65535)
		return -1;
	snprintf(world.servers, sizeof(world.servers), "127.0.0.1:%u", port);
	return 0;
}

static int
stop_world(void **state)
{
	int status = -1;
	uint64_t end;
	bool clean = false;

	(void)state;
	if (world.pid > 0) {
		kill(world.pid, SIGTERM);
		for (end = util_now_ms() + 5000; util_now_ms() < end;) {
			pid_t p = waitpid(world.pid, &status, WNOHANG);

			if (p == world.pid)
				break;
			usleep(10000);
		}
		if (waitpid(world.pid, &status, WNOHANG) == 0) {
			kill(world.pid, SIGKILL);
			waitpid(world.pid, &status, 0);
		}
		/* dnsd exits 0 on SIGTERM, also under LeakSanitizer. */
		clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
		if (!clean)
			fprintf(stderr, "dnsd ended badly (status %d)\n",
			    status);
	}
	unlink(world.zone);
	unlink(world.qlog);
	unlink(world.pidfile);
	rmdir(world.dir);
	alarm(0);
	return clean ? 0 : -1;
}

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char err[256];

	if (fx == NULL || (fx->loop = ev_loop_new()) == NULL)
		return -1;
	fx->dns = dns_new(fx->loop, world.servers, TEST_TIMEOUT_MS, TEST_TRIES,
	    err, sizeof(err));
	if (fx->dns == NULL) {
		fprintf(stderr, "dns_new: %s\n", err);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	dns_free(fx->dns);
	ev_loop_free(fx->loop);
	free(fx);
	return 0;
}

/* Run the loop until *count reaches want; fail after WAIT_MAX_MS. */
static void
run_until(struct ev_loop *loop, const int *count, int want)
{
	uint64_t end = util_now_ms() + WAIT_MAX_MS;

	while (*count < want) {
		if (util_now_ms() > end)
			fail_msg("timed out waiting for %d callbacks (have %d)",
			    want, *count);
		assert_int_equal(ev_run_once(loop, 50), 0);
	}
}

/* Run the loop for ms milliseconds whatever happens. */
static void
run_for(struct ev_loop *loop, unsigned ms)
{
	uint64_t end = util_now_ms() + ms, now;

	while ((now = util_now_ms()) < end)
		assert_int_equal(ev_run_once(loop, (int)(end - now)), 0);
}

static void
on_mx(void *arg, enum dns_status st, bool secure, const struct dns_mx *mx,
    size_t n, const char *errtext)
{
	struct mx_result *r = arg;

	r->calls++;
	r->status = st;
	r->secure = secure;
	r->n = n;
	assert_non_null(errtext);
	snprintf(r->errtext, sizeof(r->errtext), "%s", errtext);
	if (st != DNS_OK)
		assert_int_equal(n, 0);
	for (size_t i = 0; i < n && i < 8; i++) {
		snprintf(r->host[i], sizeof(r->host[i]), "%s", mx[i].host);
		r->pref[i] = mx[i].pref;
		r->ttl[i] = mx[i].ttl;
	}
	if (r->free_me != NULL) {
		dns_free(r->free_me);
		r->free_me = NULL;
	}
}

static void
on_addr(void *arg, enum dns_status st, const struct sockaddr_storage *a,
    size_t n, const char *errtext)
{
	struct addr_result *r = arg;

	r->calls++;
	r->status = st;
	r->n = n;
	assert_non_null(errtext);
	snprintf(r->errtext, sizeof(r->errtext), "%s", errtext);
	if (st != DNS_OK)
		assert_int_equal(n, 0);
	else
		assert_true(n > 0);
	for (size_t i = 0; i < n && i < 64; i++)
		r->addr[i] = a[i];
}

static struct mx_result
mx_lookup(struct fixture *fx, const char *domain)
{
	struct mx_result r;

	memset(&r, 0, sizeof(r));
	assert_non_null(dns_mx_lookup(fx->dns, domain, on_mx, &r));
	assert_int_equal(r.calls, 0);	/* never from inside the lookup */
	run_until(fx->loop, &r.calls, 1);
	run_for(fx->loop, 1);
	assert_int_equal(r.calls, 1);
	return r;
}

static struct addr_result
addr_lookup(struct fixture *fx, const char *host)
{
	struct addr_result r;

	memset(&r, 0, sizeof(r));
	assert_non_null(dns_addr_lookup(fx->dns, host, on_addr, &r));
	assert_int_equal(r.calls, 0);
	run_until(fx->loop, &r.calls, 1);
	run_for(fx->loop, 1);
	assert_int_equal(r.calls, 1);
	return r;
}

static const char *
addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		assert_int_equal(sin->sin_port, 0);
		return inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)len);
	}
	assert_int_equal(ss->ss_family, AF_INET6);
	assert_int_equal(((const struct sockaddr_in6 *)ss)->sin6_port, 0);
	return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr,
	    buf, (socklen_t)len);
}

static void
test_mx_order(void **state)
{
	struct mx_result r = mx_lookup(*state, "Order.Test.");

	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.host[0], "mx10.order.test");
	assert_string_equal(r.host[1], "mx20.order.test");
	assert_string_equal(r.host[2], "mx30.order.test");
	assert_int_equal(r.pref[0], 10);
	assert_int_equal(r.pref[1], 20);
	assert_int_equal(r.pref[2], 30);
	assert_string_equal(dns_status_to_text(r.status), "ok");
}

/*
 * Four exchangers of preference 10 between a 5 and a 50: the 5 always
 * first, the 50 always last, each of the four first among them at least
 * once over 200 lookups (chance of a false failure: 4 * (3/4)^200).
 * Half the lookups are fresh queries (distinct names), half cache hits.
 */
static void
test_mx_shuffle_equal(void **state)
{
	struct fixture *fx = *state;
	static struct mx_result r[200];
	int calls = 0, seen[4] = { 0 };
	char name[64];

	memset(r, 0, sizeof(r));
	for (int batch = 0; batch < 200; batch += 50) {
		for (int i = batch; i < batch + 50; i++) {
			if (i % 2)
				snprintf(name, sizeof(name), "n%d.eq.test", i);
			else
				snprintf(name, sizeof(name), "same.eq.test");
			assert_non_null(dns_mx_lookup(fx->dns, name, on_mx,
			    &r[i]));
		}
		for (;;) {
			calls = 0;
			for (int i = 0; i < batch + 50; i++)
				calls += r[i].calls;
			if (calls == batch + 50)
				break;
			run_until(fx->loop, &r[batch + 49].calls, 1);
			assert_int_equal(ev_run_once(fx->loop, 50), 0);
		}
	}
	for (int i = 0; i < 200; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].status, DNS_OK);
		assert_int_equal(r[i].n, 6);
		assert_string_equal(r[i].host[0], "first.eq-mx.test");
		assert_string_equal(r[i].host[5], "last.eq-mx.test");
		for (int k = 1; k < 5; k++)
			assert_int_equal(r[i].pref[k], 10);
		assert_true(r[i].host[1][0] >= 'a' && r[i].host[1][0] <= 'd');
		seen[r[i].host[1][0] - 'a']++;
	}
	for (int k = 0; k < 4; k++)
		assert_true(seen[k] > 0);
	/* The cached name was asked for once. */
	assert_int_equal(query_count("same.eq.test", "MX"), 1);
}

/* No MX but an A record: NODATA for MX, the address resolves. */
static void
test_mx_nodata_implicit(void **state)
{
	struct mx_result r = mx_lookup(*state, "implicit.test");
	struct addr_result a;
	char buf[64];

	assert_int_equal(r.status, DNS_NODATA);
	assert_int_equal(r.n, 0);
	a = addr_lookup(*state, "implicit.test");
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 1);
	assert_string_equal(addr_text(&a.addr[0], buf, sizeof(buf)),
	    "127.0.0.10");
}

static void
test_mx_nullmx(void **state)
{
	struct mx_result r = mx_lookup(*state, "nullmx.test");

	assert_int_equal(r.status, DNS_NULLMX);
	assert_int_equal(r.n, 0);
	assert_non_null(strstr(r.errtext, "7505"));
}

static void
test_nxdomain(void **state)
{
	struct mx_result r = mx_lookup(*state, "nope.test");
	struct addr_result a = addr_lookup(*state, "nope.test");

	assert_int_equal(r.status, DNS_NXDOMAIN);
	assert_string_equal(r.errtext, "NXDOMAIN");
	assert_int_equal(a.status, DNS_NXDOMAIN);
	/* A name that cannot be asked for: NXDOMAIN, from the loop too. */
	r = mx_lookup(*state, "");
	assert_int_equal(r.status, DNS_NXDOMAIN);
	r = mx_lookup(*state, "bad..name.test");
	assert_int_equal(r.status, DNS_NXDOMAIN);
}

/* SERVFAIL for every type: TEMPFAIL, and never cached. */
static void
test_servfail(void **state)
{
	struct mx_result r = mx_lookup(*state, "fail.test");
	struct addr_result a;
	int n;

	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_non_null(strstr(r.errtext, "SERVFAIL"));
	a = addr_lookup(*state, "fail.test");
	assert_int_equal(a.status, DNS_TEMPFAIL);
	n = query_count("fail.test", "MX");
	assert_true(n >= 1);
	r = mx_lookup(*state, "fail.test");
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_true(query_count("fail.test", "MX") > n);
}

/* SERVFAIL for MX only: TEMPFAIL for MX while the A record resolves. */
static void
test_servfail_mx_only(void **state)
{
	struct mx_result r;
	struct addr_result a;
	char buf[64], *m;

	metrics_reset();
	r = mx_lookup(*state, "mxfail.test");
	a = addr_lookup(*state, "mxfail.test");
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 1);
	assert_string_equal(addr_text(&a.addr[0], buf, sizeof(buf)),
	    "127.0.0.13");
	/* The metrics: each query with its own result, AAAA and A apart. */
	m = metrics_render(NULL);
	assert_non_null(strstr(m, "\nmxrelay_dns_lookups_total{type=\"MX\","
	    "result=\"tempfail\"} 1\n"));
	assert_non_null(strstr(m, "\nmxrelay_dns_lookups_total{type=\"A\","
	    "result=\"ok\"} 1\n"));
	assert_non_null(strstr(m, "\nmxrelay_dns_lookups_total{type=\"AAAA\","
	    "result=\"nodata\"} 1\n"));
	free(m);
}

static void
test_refused(void **state)
{
	struct mx_result r = mx_lookup(*state, "refused.test");

	assert_int_equal(r.status, DNS_TEMPFAIL);
}

/* No answer at all: TEMPFAIL after the configured timeout and tries. */
static void
test_drop_timeout(void **state)
{
	uint64_t t0 = util_now_ms(), dt;
	struct mx_result r = mx_lookup(*state, "dead.test");

	dt = util_now_ms() - t0;
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_string_equal(r.errtext, "timeout");
	assert_true(dt >= TEST_TIMEOUT_MS * TEST_TRIES);
	assert_true(dt < 4000);
	assert_int_equal(query_count("dead.test", "MX"), TEST_TRIES);
}

/* An answer that takes 500 ms, under a 2 s timeout: OK. */
static void
test_delay_under_timeout(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	uint64_t t0, dt;
	struct mx_result r;

	dns_free(fx->dns);
	fx->dns = dns_new(fx->loop, world.servers, 2000, 1, err, sizeof(err));
	assert_non_null(fx->dns);
	t0 = util_now_ms();
	r = mx_lookup(fx, "slow.test");
	dt = util_now_ms() - t0;
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.host[0], "mx.slow.test");
	assert_true(dt >= 450);
}

static void
test_addr_cname(void **state)
{
	struct addr_result a = addr_lookup(*state, "alias.test");
	char buf[64];

	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 1);
	assert_string_equal(addr_text(&a.addr[0], buf, sizeof(buf)),
	    "127.0.0.14");
}

/* An MX target that is a CNAME comes back as named; addresses follow it. */
static void
test_mx_target_cname(void **state)
{
	struct mx_result r = mx_lookup(*state, "mxcname.test");
	struct addr_result a;

	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.host[0], "alias.test");
	a = addr_lookup(*state, r.host[0]);
	assert_int_equal(a.status, DNS_OK);
}

/* AAAA and A: IPv6 first, each family in the order received. */
static void
test_addr_v6_first(void **state)
{
	struct addr_result a = addr_lookup(*state, "dual.test");
	char buf[64];

	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 4);
	assert_string_equal(addr_text(&a.addr[0], buf, sizeof(buf)), "::1");
	assert_string_equal(addr_text(&a.addr[1], buf, sizeof(buf)),
	    "2001:db8::1");
	assert_string_equal(addr_text(&a.addr[2], buf, sizeof(buf)),
	    "127.0.0.15");
	assert_string_equal(addr_text(&a.addr[3], buf, sizeof(buf)),
	    "127.0.0.16");
}

static void
test_addr_nodata(void **state)
{
	struct addr_result a = addr_lookup(*state, "onlymx.test");

	assert_int_equal(a.status, DNS_NODATA);
}

/* 40 A records do not fit in 512 bytes: truncated, retried over TCP. */
static void
test_addr_tcp_fallback(void **state)
{
	struct addr_result a = addr_lookup(*state, "big.test");
	char buf[64];

	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 40);
	assert_string_equal(addr_text(&a.addr[0], buf, sizeof(buf)),
	    "127.0.1.1");
	assert_string_equal(addr_text(&a.addr[39], buf, sizeof(buf)),
	    "127.0.1.40");
}

/* A cached answer is not asked for again, and still comes from the loop. */
static void
test_cache_hit(void **state)
{
	struct mx_result r1, r2;
	struct addr_result a;
	char *m;

	metrics_reset();
	r1 = mx_lookup(*state, "cache.test");
	r2 = mx_lookup(*state, "CACHE.test.");
	/* An answer from the cache is no query: counted once. */
	m = metrics_render(NULL);
	assert_non_null(strstr(m, "\nmxrelay_dns_lookups_total{type=\"MX\","
	    "result=\"ok\"} 1\n"));
	free(m);
	assert_int_equal(r1.status, DNS_OK);
	assert_int_equal(r2.status, DNS_OK);
	assert_string_equal(r2.host[0], "mx.cache.test");
	assert_int_equal(query_count("cache.test", "MX"), 1);

	a = addr_lookup(*state, "cacheaddr.test");
	assert_int_equal(a.status, DNS_OK);
	a = addr_lookup(*state, "cacheaddr.test");
	assert_int_equal(a.status, DNS_OK);
	assert_int_equal(a.n, 1);
	assert_int_equal(query_count("cacheaddr.test", "A"), 1);

	/* Negative answers are cached too (briefly). */
	r1 = mx_lookup(*state, "neg.test");
	assert_int_equal(r1.status, DNS_NODATA);
	r1 = mx_lookup(*state, "neg.test");
	assert_int_equal(r1.status, DNS_NODATA);
	assert_int_equal(query_count("neg.test", "MX"), 1);
}

/* A 1-second TTL: asked for again once it has run out. */
static void
test_cache_expiry(void **state)
{
	struct fixture *fx = *state;
	struct mx_result r;

	r = mx_lookup(fx, "short.test");
	assert_int_equal(r.status, DNS_OK);
	r = mx_lookup(fx, "short.test");
	assert_int_equal(query_count("short.test", "MX"), 1);
	run_for(fx->loop, 1100);
	r = mx_lookup(fx, "short.test");
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(query_count("short.test", "MX"), 2);
}

/*
 * An exchanger carries the TTL of the answer (mxrelay route shows it);
 * from the cache, what is left of it: 120 s, then less once a second has
 * gone by, without a new query.
 */
static void
test_mx_ttl(void **state)
{
	struct fixture *fx = *state;
	struct mx_result r;

	r = mx_lookup(fx, "ttl.test");
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.ttl[0], 120);
	assert_int_equal(r.ttl[1], 120);
	run_for(fx->loop, 1100);
	r = mx_lookup(fx, "ttl.test");
	assert_int_equal(query_count("ttl.test", "MX"), 1);
	assert_true(r.ttl[0] < 120 && r.ttl[0] >= 100);
	assert_int_equal(r.ttl[1], r.ttl[0]);
}

/* Two lookups of one name at once: one query, two callbacks. */
static void
test_coalesce(void **state)
{
	struct fixture *fx = *state;
	struct mx_result r1, r2;
	struct addr_result a1, a2;

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&a1, 0, sizeof(a1));
	memset(&a2, 0, sizeof(a2));
	assert_non_null(dns_mx_lookup(fx->dns, "coal.test", on_mx, &r1));
	assert_non_null(dns_mx_lookup(fx->dns, "coal.test", on_mx, &r2));
	assert_non_null(dns_addr_lookup(fx->dns, "coaladdr.test", on_addr,
	    &a1));
	assert_non_null(dns_addr_lookup(fx->dns, "coaladdr.test", on_addr,
	    &a2));
	run_until(fx->loop, &r1.calls, 1);
	run_until(fx->loop, &r2.calls, 1);
	run_until(fx->loop, &a1.calls, 1);
	run_until(fx->loop, &a2.calls, 1);
	run_for(fx->loop, 10);
	assert_int_equal(r1.calls + r2.calls + a1.calls + a2.calls, 4);
	assert_int_equal(r1.status, DNS_OK);
	assert_int_equal(r2.status, DNS_OK);
	assert_int_equal(a1.n, 2);
	assert_int_equal(a2.n, 2);
	assert_int_equal(query_count("coal.test", "MX"), 1);
	assert_int_equal(query_count("coaladdr.test", "A"), 1);
	assert_int_equal(query_count("coaladdr.test", "AAAA"), 1);
}

/*
 * Cancelled requests never call back: one waiting on the wire, one
 * already answered from the cache.  The query itself goes on and its
 * answer is cached.
 */
static void
test_cancel(void **state)
{
	struct fixture *fx = *state;
	struct mx_result r1, r2, r3;
	struct addr_result a;
	struct dns_req *req;

	memset(&a, 0, sizeof(a));
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&r3, 0, sizeof(r3));
	req = dns_mx_lookup(fx->dns, "cancel.test", on_mx, &r1);
	assert_non_null(req);
	assert_non_null(dns_mx_lookup(fx->dns, "cancel.test", on_mx, &r3));
	dns_cancel(req);
	run_until(fx->loop, &r3.calls, 1);
	run_for(fx->loop, 50);
	assert_int_equal(r1.calls, 0);
	assert_int_equal(r3.status, DNS_OK);

	req = dns_mx_lookup(fx->dns, "cancel.test", on_mx, &r2);	/* hit */
	dns_cancel(req);
	run_for(fx->loop, 100);
	assert_int_equal(r1.calls, 0);
	assert_int_equal(r2.calls, 0);
	assert_int_equal(query_count("cancel.test", "MX"), 1);

	/* Cancel the only waiter: the answer is still cached. */
	req = dns_addr_lookup(fx->dns, "cancel.test", on_addr, &a);
	dns_cancel(req);
	run_for(fx->loop, 400);
	assert_int_equal(a.calls, 0);
	a = addr_lookup(fx, "cancel.test");
	assert_int_equal(a.status, DNS_NODATA);
	assert_int_equal(query_count("cancel.test", "A"), 1);
	r1 = mx_lookup(fx, "cancel.test");
	assert_int_equal(r1.status, DNS_OK);
	assert_int_equal(query_count("cancel.test", "MX"), 1);
}

/* dns_free() with requests on the wire and in the ready queue. */
static void
test_free_pending(void **state)
{
	struct fixture *fx = *state;
	struct mx_result r1, r2, r3;
	struct addr_result a;

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&r3, 0, sizeof(r3));
	memset(&a, 0, sizeof(a));
	r3 = mx_lookup(fx, "cache.test");
	memset(&r3, 0, sizeof(r3));
	assert_non_null(dns_mx_lookup(fx->dns, "pending.test", on_mx, &r1));
	assert_non_null(dns_mx_lookup(fx->dns, "pending.test", on_mx, &r2));
	assert_non_null(dns_addr_lookup(fx->dns, "pending.test", on_addr, &a));
	assert_non_null(dns_mx_lookup(fx->dns, "cache.test", on_mx, &r3));
	assert_non_null(dns_mx_lookup(fx->dns, "", on_mx, &r3));
	dns_free(fx->dns);
	fx->dns = NULL;
	run_for(fx->loop, 500);
	assert_int_equal(r1.calls + r2.calls + r3.calls + a.calls, 0);
}

/* A callback that frees the resolver: the other ready callbacks are not run. */
static void
test_free_in_callback(void **state)
{
	struct fixture *fx = *state;
	struct mx_result r1, r2;

	r1 = mx_lookup(fx, "cache.test");
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	r1.free_me = fx->dns;
	assert_non_null(dns_mx_lookup(fx->dns, "cache.test", on_mx, &r1));
	assert_non_null(dns_mx_lookup(fx->dns, "cache.test", on_mx, &r2));
	fx->dns = NULL;
	run_until(fx->loop, &r1.calls, 1);
	run_for(fx->loop, 50);
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r2.calls, 0);
}

/*
 * No more than 64 queries out at once, the rest first come first served:
 * 100 lookups of names never answered put the first 64 on the wire, and
 * no more until those time out.  Every lookup still ends, TEMPFAIL
 * "timeout" (none hangs), each name asked once; a request cancelled while
 * it waits for its turn never calls back.
 */
static void
test_inflight_cap(void **state)
{
	struct fixture *fx = *state;
	static struct mx_result r[CAP_NAMES];
	struct dns_req *cancelled = NULL;
	char err[256], name[64], line[512];
	uint64_t t0, end;
	int calls, n = 0;
	FILE *f;

	dns_free(fx->dns);
	fx->dns = dns_new(fx->loop, world.servers, CAP_TIMEOUT_MS, 1, err,
	    sizeof(err));
	assert_non_null(fx->dns);
	memset(r, 0, sizeof(r));
	t0 = util_now_ms();
	for (int i = 0; i < CAP_NAMES; i++) {
		struct dns_req *req;

		snprintf(name, sizeof(name), "n%d.cap.test", i);
		req = dns_mx_lookup(fx->dns, name, on_mx, &r[i]);
		assert_non_null(req);
		if (i == CAP_NAMES - 1)
			cancelled = req;
	}
	dns_cancel(cancelled);

	/* The first wave on the wire, then nothing more before it times out. */
	end = t0 + CAP_TIMEOUT_MS / 2;
	while (query_count_having(".cap.test MX") < CAP && util_now_ms() < end)
		assert_int_equal(ev_run_once(fx->loop, 20), 0);
	run_for(fx->loop, 200);
	assert_true(util_now_ms() < t0 + CAP_TIMEOUT_MS);
	assert_int_equal(query_count_having(".cap.test MX"), CAP);
	assert_non_null(f = fopen(world.qlog, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		int k;

		if (strstr(line, ".cap.test MX") == NULL)
			continue;
		assert_int_equal(sscanf(line, "n%d.cap.test", &k), 1);
		assert_true(k < CAP);
		n++;
	}
	fclose(f);
	assert_int_equal(n, CAP);

	/* The rest go as slots free up, and every one ends. */
	end = t0 + 3 * CAP_TIMEOUT_MS + WAIT_MAX_MS;
	do {
		assert_true(util_now_ms() < end);
		assert_int_equal(ev_run_once(fx->loop, 50), 0);
		calls = 0;
		for (int i = 0; i < CAP_NAMES; i++)
			calls += r[i].calls;
	} while (calls < CAP_NAMES - 1);
	run_for(fx->loop, 10);
	for (int i = 0; i < CAP_NAMES - 1; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].status, DNS_TEMPFAIL);
		assert_string_equal(r[i].errtext, "timeout");
	}
	assert_int_equal(r[CAP_NAMES - 1].calls, 0);
	/* The cancelled one's query went out too (its answer is cached). */
	assert_int_equal(query_count_having(".cap.test MX"), CAP_NAMES);
}

/* dns_free() with lookups waiting for their turn. */
static void
test_free_waiting(void **state)
{
	struct fixture *fx = *state;
	static struct mx_result r[CAP_NAMES];
	char name[64];
	int calls = 0;

	memset(r, 0, sizeof(r));
	for (int i = 0; i < CAP_NAMES; i++) {
		snprintf(name, sizeof(name), "w%d.capw.test", i);
		assert_non_null(dns_mx_lookup(fx->dns, name, on_mx, &r[i]));
	}
	run_for(fx->loop, 50);
	dns_free(fx->dns);
	fx->dns = NULL;
	run_for(fx->loop, 100);
	for (int i = 0; i < CAP_NAMES; i++)
		calls += r[i].calls;
	assert_int_equal(calls, 0);
}

static void
test_bad_servers(void **state)
{
	struct fixture *fx = *state;
	char err[256] = "";

	assert_null(dns_new(fx->loop, "not an address!", 100, 1, err,
	    sizeof(err)));
	assert_true(err[0] != '\0');
}

struct tlsa_result {
	int		 calls;
	enum dns_status	 status;
	bool		 secure;
	size_t		 n;
	struct tlsa_rr	 rr[8];		/* data: see data[] */
	unsigned char	 data[8][64];	/* a copy of rr[i].data */
	char		 errtext[128];
};

struct txt_result {
	int		 calls;
	enum dns_status	 status;
	size_t		 n;
	char		 txt[4][128];
	char		 errtext[128];
};

static void
on_tlsa(void *arg, enum dns_status st, bool secure, const struct tlsa_rr *rr,
    size_t n, const char *errtext)
{
	struct tlsa_result *r = arg;

	r->calls++;
	r->status = st;
	r->secure = secure;
	r->n = n;
	assert_non_null(errtext);
	snprintf(r->errtext, sizeof(r->errtext), "%s", errtext);
	if (st != DNS_OK)
		assert_int_equal(n, 0);
	else
		assert_true(n > 0);
	for (size_t i = 0; i < n && i < 8; i++) {
		r->rr[i] = rr[i];
		assert_true(rr[i].len <= sizeof(r->data[i]));
		memcpy(r->data[i], rr[i].data, rr[i].len);
		r->rr[i].data = NULL;	/* valid during the callback only */
	}
}

static void
on_txt(void *arg, enum dns_status st, const char *const *txt, size_t n,
    const char *errtext)
{
	struct txt_result *r = arg;

	r->calls++;
	r->status = st;
	r->n = n;
	assert_non_null(errtext);
	snprintf(r->errtext, sizeof(r->errtext), "%s", errtext);
	if (st != DNS_OK)
		assert_int_equal(n, 0);
	else
		assert_true(n > 0);
	for (size_t i = 0; i < n && i < 4; i++)
		snprintf(r->txt[i], sizeof(r->txt[i]), "%s", txt[i]);
}

static void
on_saddr(void *arg, enum dns_status st, bool secure,
    const struct sockaddr_storage *a, size_t n, const char *errtext)
{
	struct addr_result *r = arg;

	on_addr(arg, st, a, n, errtext);
	r->secure = secure;
}

static struct tlsa_result
tlsa_lookup(struct fixture *fx, const char *host, unsigned port)
{
	struct tlsa_result r;

	memset(&r, 0, sizeof(r));
	assert_non_null(dns_tlsa_lookup(fx->dns, host, port, on_tlsa, &r));
	assert_int_equal(r.calls, 0);
	run_until(fx->loop, &r.calls, 1);
	run_for(fx->loop, 1);
	assert_int_equal(r.calls, 1);
	return r;
}

static struct txt_result
txt_lookup(struct fixture *fx, const char *name)
{
	struct txt_result r;

	memset(&r, 0, sizeof(r));
	assert_non_null(dns_txt_lookup(fx->dns, name, on_txt, &r));
	assert_int_equal(r.calls, 0);
	run_until(fx->loop, &r.calls, 1);
	run_for(fx->loop, 1);
	assert_int_equal(r.calls, 1);
	return r;
}

static struct addr_result
saddr_lookup(struct fixture *fx, const char *host)
{
	struct addr_result r;

	memset(&r, 0, sizeof(r));
	assert_non_null(dns_addr_secure_lookup(fx->dns, host, on_saddr, &r));
	assert_int_equal(r.calls, 0);
	run_until(fx->loop, &r.calls, 1);
	run_for(fx->loop, 1);
	assert_int_equal(r.calls, 1);
	return r;
}

/* The TLSA record i of r has these fields and hex data. */
static void
assert_tlsa(const struct tlsa_result *r, size_t i, unsigned usage,
    unsigned selector, unsigned mtype, const char *hex)
{
	char got[2 * 64 + 1];

	assert_true(i < r->n);
	assert_int_equal(r->rr[i].usage, usage);
	assert_int_equal(r->rr[i].selector, selector);
	assert_int_equal(r->rr[i].mtype, mtype);
	assert_int_equal(r->rr[i].len, strlen(hex) / 2);
	for (size_t k = 0; k < r->rr[i].len; k++)
		snprintf(got + 2 * k, 3, "%02x", r->data[i][k]);
	got[2 * r->rr[i].len] = '\0';
	assert_string_equal(got, hex);
}

/*
 * Every TLSA record of _25._tcp.HOST, whatever its usage, with its
 * fields and data as the zone has them; another port is another name;
 * the answer is cached.  dnsd does not validate: never secure.
 */
static void
test_tlsa_records(void **state)
{
	struct fixture *fx = *state;
	struct tlsa_result r;

	metrics_reset();
	r = tlsa_lookup(fx, "MX.tlsa.test.", 25);
	assert_int_equal(r.status, DNS_OK);
	assert_false(r.secure);
	assert_int_equal(r.n, 3);
	assert_tlsa(&r, 0, 3, 1, 1, HEX32);
	assert_tlsa(&r, 1, 2, 0, 2, HEX64);
	assert_tlsa(&r, 2, 1, 1, 0, "ab");
	assert_int_equal(query_count("_25._tcp.mx.tlsa.test", "TLSA"), 1);

	r = tlsa_lookup(fx, "mx.tlsa.test", 25);
	assert_int_equal(r.n, 3);
	assert_int_equal(query_count("_25._tcp.mx.tlsa.test", "TLSA"), 1);

	r = tlsa_lookup(fx, "mx.tlsa.test", 587);
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_tlsa(&r, 0, 3, 0, 1, HEX32);
	{
		char *m = metrics_render(NULL);

		assert_non_null(strstr(m, "\nmxrelay_dns_lookups_total{"
		    "type=\"TLSA\",result=\"ok\"} 2\n"));
		free(m);
	}
}

/* No TLSA: NODATA, NXDOMAIN; SERVFAIL (bogus) TEMPFAIL; bad port. */
static void
test_tlsa_negative(void **state)
{
	struct fixture *fx = *state;
	struct tlsa_result r;

	r = tlsa_lookup(fx, "nodata.tlsa.test", 25);
	assert_int_equal(r.status, DNS_NODATA);
	assert_false(r.secure);
	r = tlsa_lookup(fx, "none.tlsa.test", 25);
	assert_int_equal(r.status, DNS_NXDOMAIN);
	r = tlsa_lookup(fx, "mx.tlsafail.test", 25);
	assert_int_equal(r.status, DNS_TEMPFAIL);
	assert_false(r.secure);
	r = tlsa_lookup(fx, "mx.tlsa.test", 0);
	assert_int_equal(r.status, DNS_NXDOMAIN);
	r = tlsa_lookup(fx, "mx.tlsa.test", 65536);
	assert_int_equal(r.status, DNS_NXDOMAIN);
}

/* The character-strings of a record joined; one string per record. */
static void
test_txt(void **state)
{
	struct fixture *fx = *state;
	struct txt_result r;

	metrics_reset();
	r = txt_lookup(fx, "sts.txt.test");
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.txt[0], "v=STSv1;id=20260101;");

	r = txt_lookup(fx, "two.txt.test");
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 2);
	if (strcmp(r.txt[0], "first") == 0)
		assert_string_equal(r.txt[1], "secondpart");
	else {
		assert_string_equal(r.txt[0], "secondpart");
		assert_string_equal(r.txt[1], "first");
	}

	r = txt_lookup(fx, "mx.txt.test");
	assert_int_equal(r.status, DNS_NODATA);
	r = txt_lookup(fx, "none.txt.test");
	assert_int_equal(r.status, DNS_NXDOMAIN);
	r = txt_lookup(fx, "fail.test");
	assert_int_equal(r.status, DNS_TEMPFAIL);
	{
		char *m = metrics_render(NULL);

		assert_non_null(strstr(m, "\nmxrelay_dns_lookups_total{"
		    "type=\"TXT\",result=\"ok\"} 2\n"));
		free(m);
	}
}

/* Secure address lookup from dnsd: as dns_addr_lookup, never secure. */
static void
test_saddr(void **state)
{
	struct fixture *fx = *state;
	struct addr_result r;
	char buf[64];

	r = saddr_lookup(fx, "dual.test");
	assert_int_equal(r.status, DNS_OK);
	assert_false(r.secure);
	assert_int_equal(r.n, 4);
	assert_string_equal(addr_text(&r.addr[0], buf, sizeof(buf)), "::1");
	assert_string_equal(addr_text(&r.addr[1], buf, sizeof(buf)),
	    "2001:db8::1");
	assert_string_equal(addr_text(&r.addr[2], buf, sizeof(buf)),
	    "127.0.0.15");
	assert_string_equal(addr_text(&r.addr[3], buf, sizeof(buf)),
	    "127.0.0.16");

	r = saddr_lookup(fx, "alias.test");
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
	assert_string_equal(addr_text(&r.addr[0], buf, sizeof(buf)),
	    "127.0.0.14");
	r = saddr_lookup(fx, "onlymx.test");
	assert_int_equal(r.status, DNS_NODATA);
	r = saddr_lookup(fx, "nope.test");
	assert_int_equal(r.status, DNS_NXDOMAIN);
	r = saddr_lookup(fx, "fail.test");
	assert_int_equal(r.status, DNS_TEMPFAIL);
	r = saddr_lookup(fx, "mxfail.test");	/* SERVFAIL for MX only */
	assert_int_equal(r.status, DNS_OK);
	assert_int_equal(r.n, 1);
}

/* MX from a server that does not validate: never secure. */
static void
test_mx_insecure(void **state)
{
	struct mx_result r = mx_lookup(*state, "order.test");

	assert_int_equal(r.status, DNS_OK);
	assert_false(r.secure);
	r = mx_lookup(*state, "nope.test");
	assert_int_equal(r.status, DNS_NXDOMAIN);
	assert_false(r.secure);
}

/*
 * A fake server on a UDP socket of the test: it sees the queries as sent
 * and answers what the test makes, AD bit included.
 */
struct fake {
	int			 fd;
	char			 servers[64];
	struct sockaddr_storage	 peer;
	socklen_t		 peerlen;
	unsigned char		 q[512];	/* last query */
	size_t			 qlen;
	size_t			 qend;		/* end of its question */
};

static void
fake_open(struct fake *f)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(f, 0, sizeof(*f));
	assert_true((f->fd = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(f->fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(f->servers, sizeof(f->servers), "127.0.0.1:%u",
	    (unsigned)ntohs(sin.sin_port));
}

/* Run the loop until a query reaches f; its type is returned. */
static unsigned
fake_recv(struct ev_loop *loop, struct fake *f)
{
	uint64_t end = util_now_ms() + WAIT_MAX_MS;
	ssize_t n;
	size_t off = 12;

	for (;;) {
		f->peerlen = sizeof(f->peer);
		n = recvfrom(f->fd, f->q, sizeof(f->q), MSG_DONTWAIT,
		    (struct sockaddr *)&f->peer, &f->peerlen);
		if (n > 0)
			break;
		if (util_now_ms() > end)
			fail_msg("no query reached the fake server");
		assert_int_equal(ev_run_once(loop, 10), 0);
	}
	f->qlen = (size_t)n;
	assert_true(f->qlen > 12);
	while (off < f->qlen && f->q[off] != 0)
		off += 1 + f->q[off];
	assert_true(off + 5 <= f->qlen);
	f->qend = off + 5;
	return (unsigned)f->q[off + 1] << 8 | f->q[off + 2];
}

/*
 * Answer the last query: byte 3 of the header (RA, Z, AD, CD, RCODE) is
 * flags3; n records of type, owner the name asked, with rdata[i] of
 * rdlen[i] octets.
 */
static void
fake_reply(struct fake *f, unsigned flags3, unsigned type, size_t n,
    const unsigned char *const *rdata, const size_t *rdlen)
{
	unsigned char a[1024];
	size_t len;

	assert_true(f->qend <= sizeof(a));
	memcpy(a, f->q, f->qend);
	a[2] = 0x81;		/* QR, RD */
	a[3] = (unsigned char)flags3;
	a[6] = 0;
	a[7] = (unsigned char)n;
	memset(a + 8, 0, 4);	/* no authority, no additional */
	len = f->qend;
	for (size_t i = 0; i < n; i++) {
		unsigned char rr[12] = { 0xc0, 0x0c, type >> 8, type & 0xff,
		    0, 1, 0, 0, 1, 0x2c, rdlen[i] >> 8, rdlen[i] & 0xff };

		assert_true(len + sizeof(rr) + rdlen[i] <= sizeof(a));
		memcpy(a + len, rr, sizeof(rr));
		memcpy(a + len + sizeof(rr), rdata[i], rdlen[i]);
		len += sizeof(rr) + rdlen[i];
	}
	assert_int_equal(sendto(f->fd, a, len, 0, (struct sockaddr *)&f->peer,
	    f->peerlen), (ssize_t)len);
}

static unsigned
fake_qid(const struct fake *f)
{
	return (unsigned)f->q[0] << 8 | f->q[1];
}

#define HDR_AD		0x20

/*
 * What goes on the wire: MX and TLSA queries ask for AD (RFC 6840 5.7),
 * TLSA with an EDNS OPT record, MX without; IDs are random.  What comes
 * back: AD makes the answer secure; a TLSA record shorter than 4 octets
 * makes the answer a temporary failure; a TLSA answer without AD is not
 * secure.
 */
static void
test_fake_ad(void **state)
{
	struct fixture *fx = *state;
	struct fake f;
	struct dns *dns;
	struct mx_result mr;
	struct tlsa_result tr;
	struct addr_result ar;
	char err[256];
	unsigned ids[4];
	const unsigned char mx[] = { 0, 10, 2, 'm', 'x', 0xc0, 0x0c };
	const unsigned char t1[] = { 3, 1, 1, 0xaa, 0xbb };
	const unsigned char t2[] = { 2, 0, 1, 0xcc };
	const unsigned char tbad[] = { 3, 1, 1 };
	const unsigned char a4[] = { 127, 0, 0, 40 };
	const unsigned char a6[16] = { [15] = 1 };

	fake_open(&f);
	assert_non_null(dns = dns_new(fx->loop, f.servers, 2000, 1, err,
	    sizeof(err)));

	memset(&mr, 0, sizeof(mr));
	assert_non_null(dns_mx_lookup(dns, "a.fake.test", on_mx, &mr));
	assert_int_equal(fake_recv(fx->loop, &f), 15);
	assert_true(f.q[3] & HDR_AD);
	assert_int_equal(f.q[10] << 8 | f.q[11], 0);	/* no OPT */
	ids[0] = fake_qid(&f);
	fake_reply(&f, HDR_AD, 15, 1, (const unsigned char *[]){ mx },
	    (size_t[]){ sizeof(mx) });
	run_until(fx->loop, &mr.calls, 1);
	assert_int_equal(mr.status, DNS_OK);
	assert_true(mr.secure);
	assert_string_equal(mr.host[0], "mx.a.fake.test");

	memset(&tr, 0, sizeof(tr));
	assert_non_null(dns_tlsa_lookup(dns, "mx.fake.test", 25, on_tlsa,
	    &tr));
	assert_int_equal(fake_recv(fx->loop, &f), 52);
	assert_true(f.q[3] & HDR_AD);
	assert_int_equal(f.q[10] << 8 | f.q[11], 1);	/* OPT */
	assert_int_equal(f.q[12], 3);
	assert_memory_equal(f.q + 13, "_25", 3);
	ids[1] = fake_qid(&f);
	fake_reply(&f, 0, 52, 2, (const unsigned char *[]){ t1, t2 },
	    (size_t[]){ sizeof(t1), sizeof(t2) });
	run_until(fx->loop, &tr.calls, 1);
	assert_int_equal(tr.status, DNS_OK);
	assert_false(tr.secure);
	assert_int_equal(tr.n, 2);
	assert_tlsa(&tr, 0, 3, 1, 1, "aabb");
	assert_tlsa(&tr, 1, 2, 0, 1, "cc");

	memset(&tr, 0, sizeof(tr));
	assert_non_null(dns_tlsa_lookup(dns, "bad.fake.test", 25, on_tlsa,
	    &tr));
	assert_int_equal(fake_recv(fx->loop, &f), 52);
	ids[2] = fake_qid(&f);
	fake_reply(&f, HDR_AD, 52, 2, (const unsigned char *[]){ t1, tbad },
	    (size_t[]){ sizeof(t1), sizeof(tbad) });
	run_until(fx->loop, &tr.calls, 1);
	assert_int_equal(tr.status, DNS_TEMPFAIL);
	assert_false(tr.secure);
	assert_non_null(strstr(tr.errtext, "malformed"));

	/* Addresses: secure only when both AAAA and A answers are. */
	for (int round = 0; round < 2; round++) {
		memset(&ar, 0, sizeof(ar));
		assert_non_null(dns_addr_secure_lookup(dns, round == 0 ?
		    "h1.fake.test" : "h2.fake.test", on_saddr, &ar));
		for (int k = 0; k < 2; k++) {
			unsigned type = fake_recv(fx->loop, &f);

			assert_true(f.q[3] & HDR_AD);
			if (k == 0)
				ids[3] = fake_qid(&f);
			if (type == 28)
				fake_reply(&f, HDR_AD, 28, 1,
				    (const unsigned char *[]){ a6 },
				    (size_t[]){ sizeof(a6) });
			else {
				assert_int_equal(type, 1);
				fake_reply(&f, round == 0 ? 0 : HDR_AD, 1, 1,
				    (const unsigned char *[]){ a4 },
				    (size_t[]){ sizeof(a4) });
			}
		}
		run_until(fx->loop, &ar.calls, 1);
		assert_int_equal(ar.status, DNS_OK);
		assert_int_equal(ar.n, 2);
		assert_int_equal(ar.addr[0].ss_family, AF_INET6);
		assert_int_equal(ar.addr[1].ss_family, AF_INET);
		assert_int_equal(ar.secure, round == 1);
	}

	/*
	 * A failed half (SERVFAIL: bogus, say) adds no address and leaves
	 * the other half's secure: else breaking the AAAA answer would turn
	 * DANE off for a host whose A and TLSA are secure.
	 */
	memset(&ar, 0, sizeof(ar));
	assert_non_null(dns_addr_secure_lookup(dns, "h3.fake.test", on_saddr,
	    &ar));
	for (int k = 0; k < 2; k++) {
		unsigned type = fake_recv(fx->loop, &f);

		if (type == 28)
			fake_reply(&f, 2 /* SERVFAIL */, 28, 0, NULL, NULL);
		else
			fake_reply(&f, HDR_AD, 1, 1,
			    (const unsigned char *[]){ a4 },
			    (size_t[]){ sizeof(a4) });
	}
	run_until(fx->loop, &ar.calls, 1);
	assert_int_equal(ar.status, DNS_OK);
	assert_int_equal(ar.n, 1);
	assert_int_equal(ar.addr[0].ss_family, AF_INET);
	assert_true(ar.secure);

	/* Random IDs: four in a row all equal has odds 2^-48. */
	assert_false(ids[0] == ids[1] && ids[1] == ids[2] &&
	    ids[2] == ids[3]);
	dns_free(dns);
	close(f.fd);
}

/*
 * Secure answers for real, from the validating resolver named by
 * MXRELAY_TEST_VALIDATOR=ADDR:PORT (skipped without it).  It must serve:
 * sec.test signed, with MX 10 mx.sec.test, mx.sec.test A (no AAAA) and
 * _25._tcp.mx.sec.test TLSA 3 1 1; bogus.test signed with mx.bogus.test A
 * changed after signing; plain.test insecure with an MX; the TXT record
 * _mta-sts.sts.test in an insecure zone.
 */
static void
test_validator(void **state)
{
	struct fixture *fx = *state;
	const char *servers = getenv("MXRELAY_TEST_VALIDATOR");
	struct fixture v;
	struct mx_result m;
	struct tlsa_result t;
	struct addr_result a;
	struct txt_result x;
	char err[256];

	if (servers == NULL || *servers == '\0') {
		skip();
		return;
	}
	v.loop = fx->loop;
	assert_non_null(v.dns = dns_new(fx->loop, servers, 2000, 2, err,
	    sizeof(err)));

	m = mx_lookup(&v, "sec.test");
	assert_int_equal(m.status, DNS_OK);
	assert_true(m.secure);
	assert_string_equal(m.host[0], "mx.sec.test");
	t = tlsa_lookup(&v, "mx.sec.test", 25);
	assert_int_equal(t.status, DNS_OK);
	assert_true(t.secure);
	assert_int_equal(t.n, 1);
	assert_int_equal(t.rr[0].usage, 3);
	assert_int_equal(t.rr[0].len, 32);
	a = saddr_lookup(&v, "mx.sec.test");
	assert_int_equal(a.status, DNS_OK);
	assert_true(a.secure);
	t = tlsa_lookup(&v, "nx.sec.test", 25);
	assert_int_equal(t.status, DNS_NXDOMAIN);
	assert_true(t.secure);

	a = saddr_lookup(&v, "mx.bogus.test");	/* bogus: SERVFAIL */
	assert_int_equal(a.status, DNS_TEMPFAIL);
	assert_false(a.secure);

	m = mx_lookup(&v, "plain.test");
	assert_int_equal(m.status, DNS_OK);
	assert_false(m.secure);
	x = txt_lookup(&v, "_mta-sts.sts.test");
	assert_int_equal(x.status, DNS_OK);
	assert_int_equal(x.n, 1);
	assert_true(strncmp(x.txt[0], "v=STSv1;id=", 11) == 0);
	dns_free(v.dns);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mx_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mx_shuffle_equal, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mx_nodata_implicit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mx_nullmx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mx_ttl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nxdomain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_servfail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_servfail_mx_only, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_drop_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_delay_under_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_addr_cname, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_mx_target_cname, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_addr_v6_first, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_addr_nodata, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_addr_tcp_fallback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_cache_hit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cache_expiry, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_coalesce, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_pending, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_in_callback, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_inflight_cap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_waiting, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_servers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_records, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_tlsa_negative, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_txt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_saddr, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mx_insecure, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fake_ad, setup, teardown),
		cmocka_unit_test_setup_teardown(test_validator, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, start_world, stop_world);
}
