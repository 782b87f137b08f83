/*
 * Unit tests for src/sts.c: the MTA-STS (RFC 8461) engine on a real loop.
 * The policy server is in this process: a TLS listener on 127.0.0.1 (io
 * server side, a certificate for the mta-sts.*.test names made at test
 * time from tls-certs.sh's CA) whose answer depends on the Host header.
 * The addresses of mta-sts.*.test come from tests/world/dnsd; the
 * _mta-sts TXT records from a table here (sts.c is built for this test
 * with STS_TEST_TXT, which routes its TXT lookups to this file), except
 * real.test's, which dnsd serves through dns_txt_lookup().  Cases:
 * a policy fetched, answered again from memory and kept on disk; a new
 * sts (a restart) answering from the disk with the server down, and
 * fetching again when the id changes; redirect, wrong Content-Type, over
 * 64 KiB (Content-Length, close-delimited, chunked), an invalid policy,
 * a certificate for another name, a server that never answers, no TXT
 * record; concurrent requests for one domain coalesced.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/ssl.h>

#include "dns.h"
#include "event.h"
#include "io.h"
#include "sts.h"
#include "sts_policy.h"
#include "tls.h"
#include "util.h"
#include "mock_log.h"
#include "testutil.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif
#ifndef DNSD_PATH
#define DNSD_PATH	"tests/world/dnsd"
#endif

#define NITEMS(a)	(sizeof(a) / sizeof((a)[0]))
#define WAIT_MS		20000

static const char *domains[] = {
	"ok", "redir", "big", "bigclose", "bigchunk", "biglen", "type",
	"chunk", "invalid", "slow", "nocert", "notxt", "down", "real",
};

static const char policy_ok[] =
    "version: STSv1\r\nmode: enforce\r\nmx: mx.ok.test\r\n"
    "mx: *.mx.ok.test\r\nmax_age: 86400\r\n";

/* The TXT records test_txt_lookup() answers with. */
static struct {
	const char	*domain;
	char		 txt[64];
} txt_table[NITEMS(domains)];

static struct {
	char		 dir[128];
	char		 certs[160];
	char		 cache[160];
	char		 zone[160];
	char		 servers[64];
	pid_t		 dnsd;
	struct ev_loop	*loop;
	struct dns	*dns;
	SSL_CTX		*cctx, *sctx;
	int		 lfd;
	unsigned	 port;
	int		 requests;	/* requests the server read */
	bool		 down;		/* answer 503 to everything */
	bool		 tarpit;	/* accept, never answer (no TLS) */
	int		 tarpit_fd[256];
	int		 ntarpit;
} w;

#define MANY		40	/* many0.test .. many39.test */
#define FETCH_MAX	16	/* fetches in flight at most (issue15.md 4.2) */

/* The fake TXT lookups: answered from the loop by a timer. */
struct fake_req {
	struct ev_timer	 t;
	char		 name[300];
	dns_txt_cb	 cb;
	void		*arg;
	struct fake_req	*next;
};
static struct fake_req	*fakes;
static int		 txt_queries;
static bool		 txt_stub;	/* dns_txt_lookup() never answers */

struct dns_req	*sts_test_txt_lookup(struct dns *, const char *, dns_txt_cb,
		    void *);
void		 sts_test_dns_cancel(struct dns_req *);

static void
fake_unlink(struct fake_req *f)
{
	for (struct fake_req **pp = &fakes; *pp != NULL; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			return;
		}
}

static void
on_fake(void *arg)
{
	struct fake_req *f = arg;
	const char *name = f->name + strlen("_mta-sts.");
	const char *rec[2];
	size_t n = 0;

	fake_unlink(f);
	if (strncmp(name, "many", 4) == 0)
		rec[n++] = "v=STSv1; id=1";
	for (size_t i = 0; i < NITEMS(txt_table); i++)
		if (txt_table[i].domain != NULL &&
		    strcasecmp(txt_table[i].domain, name) == 0 &&
		    txt_table[i].txt[0] != '\0') {
			rec[n++] = "v=spf1 -all";
			rec[n++] = txt_table[i].txt;
		}
	f->cb(f->arg, n > 0 ? DNS_OK : DNS_NXDOMAIN, rec, n, NULL);
	free(f);
}

struct dns_req *
sts_test_txt_lookup(struct dns *dns, const char *name, dns_txt_cb cb,
    void *arg)
{
	struct fake_req *f;
	struct dns_req *r;

	/* real.test: dnsd's TXT record, through dns.c */
	if (strcmp(name, "_mta-sts.real.test") == 0) {
		if ((r = dns_txt_lookup(dns, name, cb, arg)) == NULL)
			txt_stub = true;
		return r;
	}
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(strncmp(name, "_mta-sts.", 9), 0);
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->cb = cb;
	f->arg = arg;
	f->next = fakes;
	fakes = f;
	ev_timer_init(&f->t, on_fake, f);
	ev_timer_add(w.loop, &f->t, 0);
	txt_queries++;
	return (struct dns_req *)f;
}

void
sts_test_dns_cancel(struct dns_req *r)
{
	for (struct fake_req *f = fakes; f != NULL; f = f->next)
		if ((struct dns_req *)f == r) {
			fake_unlink(f);
			ev_timer_del(w.loop, &f->t);
			free(f);
			return;
		}
	dns_cancel(r);
}

static void
set_txt(const char *domain, const char *txt)
{
	for (size_t i = 0; i < NITEMS(txt_table); i++)
		if (txt_table[i].domain != NULL &&
		    strcmp(txt_table[i].domain, domain) == 0) {
			snprintf(txt_table[i].txt, sizeof(txt_table[i].txt),
			    "%s", txt);
			return;
		}
	fail_msg("no domain %s", domain);
}

/* The policy server: one connection. */
struct conn {
	struct io	*io;
	struct ev_timer	 t;		/* close once the queue drained */
	char		 host[128];
	bool		 answered;
	struct conn	*next;
};
static struct conn	*conns;

static void
conn_free(struct conn *c)
{
	for (struct conn **pp = &conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	ev_timer_del(w.loop, &c->t);
	io_free(c->io);
	free(c);
}

static void
on_conn_timer(void *arg)
{
	struct conn *c = arg;

	if (io_queued(c->io) == 0)
		conn_free(c);
	else
		ev_timer_add(w.loop, &c->t, 10);
}

/* n bytes of a policy padded with empty lines. */
static char *
padded(size_t n)
{
	char *b = malloc(n);

	assert_non_null(b);
	memset(b, '\n', n);
	memcpy(b, policy_ok, sizeof(policy_ok) - 1);
	return b;
}

static void
respond(struct conn *c)
{
	struct io *io = c->io;
	const char *d = c->host;
	size_t big = STS_BODY_MAX + 1;
	char *b;

	c->answered = true;
	w.requests++;
	if (w.down) {
		io_printf(io, "HTTP/1.1 503 Down\r\nContent-Length: 0\r\n\r\n");
	} else if (strcmp(d, "mta-sts.redir.test") == 0) {
		io_printf(io, "HTTP/1.1 301 Moved\r\nLocation: "
		    "https://mta-sts.ok.test/.well-known/mta-sts.txt\r\n"
		    "Content-Type: text/plain\r\nContent-Length: 0\r\n\r\n");
	} else if (strcmp(d, "mta-sts.big.test") == 0) {
		b = padded(big);
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "Content-Length: %zu\r\n\r\n", big);
		io_write(io, b, big);
		free(b);
	} else if (strcmp(d, "mta-sts.bigclose.test") == 0) {
		b = padded(big);
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "\r\n");
		io_write(io, b, big);
		free(b);
	} else if (strcmp(d, "mta-sts.bigchunk.test") == 0) {
		b = padded(big);
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "Transfer-Encoding: chunked\r\n\r\n");
		for (size_t off = 0; off < big; off += 4000) {
			size_t n = big - off < 4000 ? big - off : 4000;

			io_printf(io, "%zx\r\n", n);
			io_write(io, b + off, n);
			io_printf(io, "\r\n");
		}
		io_printf(io, "0\r\n\r\n");
		free(b);
	} else if (strcmp(d, "mta-sts.biglen.test") == 0) {
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "Content-Length: 100000\r\n\r\n%s", policy_ok);
	} else if (strcmp(d, "mta-sts.type.test") == 0) {
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
		    "Content-Length: %zu\r\n\r\n%s", strlen(policy_ok),
		    policy_ok);
	} else if (strcmp(d, "mta-sts.chunk.test") == 0) {
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
		    "charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
		    "10\r\n%.16s\r\n%zx\r\n%s\r\n0\r\n\r\n", policy_ok,
		    strlen(policy_ok) - 16, policy_ok + 16);
	} else if (strcmp(d, "mta-sts.invalid.test") == 0) {
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "\r\nversion: STSv1\r\nmode: enforce\r\nmax_age: 1\r\n");
	} else if (strcmp(d, "mta-sts.slow.test") == 0) {
		c->answered = false;	/* never */
		return;
	} else {
		io_printf(io, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
		    "Content-Length: %zu\r\n\r\n%s", strlen(policy_ok),
		    policy_ok);
	}
	ev_timer_add(w.loop, &c->t, 0);
}

static void
on_conn(struct io *io, enum io_event ev, void *arg)
{
	struct conn *c = arg;
	const char *l;
	size_t len;
	bool tl;

	switch (ev) {
	case IO_DATAIN:
		while (!c->answered && (l = io_getline(io, &len, &tl)) != NULL) {
			if (strncasecmp(l, "Host: ", 6) == 0)
				snprintf(c->host, sizeof(c->host), "%s", l + 6);
			if (len == 0) {
				respond(c);
				break;
			}
		}
		break;
	case IO_CLOSED:
	case IO_ERROR:
	case IO_TIMEOUT:
		conn_free(c);
		break;
	default:
		break;
	}
}

static void
on_accept(int fd, int events, void *arg)
{
	struct conn *c;
	int s;

	(void)events;
	(void)arg;
	if ((s = accept(fd, NULL, NULL)) == -1)
		return;
	if (w.tarpit) {
		if (w.ntarpit < (int)NITEMS(w.tarpit_fd))
			w.tarpit_fd[w.ntarpit++] = s;
		else
			close(s);
		return;
	}
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->io = io_new(w.loop, on_conn, c);
	ev_timer_init(&c->t, on_conn_timer, c);
	io_attach(c->io, s);
	assert_int_equal(io_start_tls(c->io, w.sctx, false, NULL, NULL), 0);
	c->next = conns;
	conns = c;
}

struct result {
	int		 calls;
	bool		 have;
	struct sts_policy pol;
	char		 fail[64];
	char		 why[256];
};

static void
on_policy(void *arg, const struct sts_policy *pol, const char *fail,
    const char *why)
{
	struct result *r = arg;

	r->calls++;
	r->have = pol != NULL;
	if (pol != NULL)
		sts_policy_copy(&r->pol, pol);
	snprintf(r->fail, sizeof(r->fail), "%s", fail != NULL ? fail : "");
	snprintf(r->why, sizeof(r->why), "%s", why != NULL ? why : "");
}

static void
run_until(const int *calls, int n)
{
	uint64_t end = util_now_ms() + WAIT_MS;

	while (*calls < n && util_now_ms() < end)
		ev_run_once(w.loop, 50);
	assert_int_equal(*calls, n);
}

static struct sts *
new_sts(unsigned timeout_ms)
{
	struct sts_conf c = {
		.ctx = w.cctx, .port = w.port, .timeout_ms = timeout_ms,
		.cache_dir = w.cache,
	};
	char err[256];
	struct sts *s = sts_new(w.loop, w.dns, &c, err, sizeof(err));

	if (s == NULL)
		fail_msg("sts_new: %s", err);
	return s;
}

/* One request to its end. */
static void
get(struct sts *s, const char *domain, struct result *r)
{
	memset(r, 0, sizeof(*r));
	assert_non_null(sts_policy_get(s, domain, on_policy, r));
	assert_int_equal(r->calls, 0);		/* never from inside */
	run_until(&r->calls, 1);
}

static void
result_clear(struct result *r)
{
	if (r->have)
		sts_policy_clear(&r->pol);
}

static void
test_fetch_and_cache(void **state)
{
	struct sts *s;
	struct result r;
	struct stat st;
	char path[256];
	int before;

	(void)state;
	mock_log_clear();
	set_txt("ok.test", "v=STSv1; id=1;");
	s = new_sts(0);
	before = w.requests;
	get(s, "ok.test", &r);
	assert_true(r.have);
	assert_string_equal(r.fail, "");
	assert_int_equal(r.pol.mode, STS_MODE_ENFORCE);
	assert_int_equal(r.pol.max_age, 86400);
	assert_string_equal(r.pol.id, "1");
	assert_true(sts_mx_match(&r.pol, "a.mx.ok.test"));
	assert_false(sts_mx_match(&r.pol, "mx.other.test"));
	assert_int_equal(w.requests, before + 1);
	assert_true(mock_log_contains("mta-sts: ok.test: policy id=1 "
	    "mode=enforce max_age=86400 fetched"));
	result_clear(&r);

	/* Kept on disk, owner only */
	snprintf(path, sizeof(path), "%s/ok.test", w.cache);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 077, 0);

	/* Again: from memory, no request to the server, no TXT lookup */
	txt_queries = 0;
	get(s, "ok.test", &r);
	assert_true(r.have);
	assert_string_equal(r.pol.id, "1");
	assert_int_equal(w.requests, before + 1);
	assert_int_equal(txt_queries, 0);
	result_clear(&r);
	sts_free(s);

	/* A restart with the server down: the policy comes from the disk */
	mock_log_clear();
	w.down = true;
	s = new_sts(0);
	get(s, "ok.test", &r);
	assert_true(r.have);
	assert_string_equal(r.pol.id, "1");
	assert_int_equal(r.pol.mode, STS_MODE_ENFORCE);
	assert_int_equal(r.pol.nmx, 2);
	assert_int_equal(w.requests, before + 1);
	assert_true(mock_log_contains("mta-sts: ok.test: policy id=1 from "
	    "cache"));
	result_clear(&r);
	sts_free(s);

	/* The TXT record gone: the cached policy still applies (§5.1) */
	set_txt("ok.test", "");
	s = new_sts(0);
	get(s, "ok.test", &r);
	assert_true(r.have);
	assert_string_equal(r.pol.id, "1");
	result_clear(&r);
	sts_free(s);

	/* A new id, the server down: the refetch fails, the cache applies */
	set_txt("ok.test", "v=STSv1; id=2");
	s = new_sts(0);
	get(s, "ok.test", &r);
	assert_true(r.have);
	assert_string_equal(r.pol.id, "1");
	assert_string_equal(r.fail, "sts-policy-fetch-error");
	assert_int_equal(w.requests, before + 2);
	result_clear(&r);
	sts_free(s);

	/* The server back: id 2 fetched and stored */
	w.down = false;
	s = new_sts(0);
	get(s, "ok.test", &r);
	assert_true(r.have);
	assert_string_equal(r.pol.id, "2");
	assert_string_equal(r.fail, "");
	assert_int_equal(w.requests, before + 3);
	result_clear(&r);
	sts_free(s);
	s = new_sts(0);
	w.down = true;
	get(s, "ok.test", &r);
	assert_string_equal(r.pol.id, "2");
	assert_int_equal(w.requests, before + 3);
	w.down = false;
	result_clear(&r);
	sts_free(s);
}

/* domain's fetch fails with type, and a log line with text. */
static void
fetch_fails(const char *domain, unsigned timeout_ms, const char *type,
    const char *text)
{
	struct sts *s;
	struct result r;
	char txt[64], line[256], path[256];
	struct stat st;

	mock_log_clear();
	snprintf(txt, sizeof(txt), "v=STSv1; id=%u", (unsigned)time(NULL));
	set_txt(domain, txt);
	s = new_sts(timeout_ms);
	get(s, domain, &r);
	if (r.have || strcmp(r.fail, type) != 0 ||
	    strstr(r.why, text) == NULL)
		fail_msg("%s: have %d fail \"%s\" why \"%s\"", domain, r.have,
		    r.fail, r.why);
	snprintf(line, sizeof(line), "mta-sts: %s: policy fetch failed: ",
	    domain);
	assert_true(mock_log_contains(line));
	assert_true(mock_log_contains(text));
	snprintf(line, sizeof(line), "(%s)", type);
	assert_true(mock_log_contains(line));
	snprintf(path, sizeof(path), "%s/%s", w.cache, domain);
	assert_int_equal(lstat(path, &st), -1);
	sts_free(s);
}

static void
test_redirect(void **state)
{
	(void)state;
	fetch_fails("redir.test", 0, "sts-policy-fetch-error",
	    "redirect (HTTP 3xx) refused");
}

static void
test_too_big(void **state)
{
	(void)state;
	fetch_fails("big.test", 0, "sts-policy-fetch-error", "over 64 KiB");
	fetch_fails("bigclose.test", 0, "sts-policy-fetch-error",
	    "over 64 KiB");
	fetch_fails("bigchunk.test", 0, "sts-policy-fetch-error",
	    "over 64 KiB");
	fetch_fails("biglen.test", 0, "sts-policy-fetch-error",
	    "over 64 KiB");
}

static void
test_refused(void **state)
{
	(void)state;
	fetch_fails("type.test", 0, "sts-policy-fetch-error", "text/plain");
	fetch_fails("invalid.test", 0, "sts-policy-invalid", "no mx");
}

static void
test_webpki(void **state)
{
	(void)state;
	fetch_fails("nocert.test", 0, "sts-webpki-invalid", "certificate");
}

static void
test_timeout(void **state)
{
	(void)state;
	fetch_fails("slow.test", 800, "sts-policy-fetch-error", "timed out");
}

static void
test_chunked(void **state)
{
	struct sts *s;
	struct result r;

	(void)state;
	set_txt("chunk.test", "v=STSv1; id=c1");
	s = new_sts(0);
	get(s, "chunk.test", &r);
	assert_true(r.have);
	assert_string_equal(r.fail, "");
	assert_int_equal(r.pol.nmx, 2);
	result_clear(&r);
	sts_free(s);
}

static void
test_no_txt(void **state)
{
	struct sts *s;
	struct result r;
	int before = w.requests;

	(void)state;
	s = new_sts(0);
	get(s, "notxt.test", &r);
	assert_false(r.have);
	assert_string_equal(r.fail, "");
	assert_int_equal(w.requests, before);
	/* Two STSv1 records: none applies */
	set_txt("notxt.test", "v=STSv1; id=1");
	sts_free(s);
	s = new_sts(0);
	get(s, "notxt.test", &r);
	assert_true(r.have);		/* one record (plus SPF): fetched */
	result_clear(&r);
	sts_free(s);
	set_txt("notxt.test", "");
}

static void
test_coalesce(void **state)
{
	struct sts *s;
	struct result r[3];
	struct sts_req *q;
	int before = w.requests, calls;

	(void)state;
	set_txt("chunk.test", "v=STSv1; id=c2");
	s = new_sts(0);
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 3; i++) {
		q = sts_policy_get(s, "chunk.test", on_policy, &r[i]);
		assert_non_null(q);
		if (i == 1)
			sts_cancel(q);
	}
	for (uint64_t end = util_now_ms() + WAIT_MS;
	    (r[0].calls == 0 || r[2].calls == 0) && util_now_ms() < end;)
		ev_run_once(w.loop, 50);
	calls = r[0].calls + r[1].calls + r[2].calls;
	assert_int_equal(calls, 2);
	assert_int_equal(r[1].calls, 0);
	assert_true(r[0].have && r[2].have);
	assert_string_equal(r[2].pol.id, "c2");
	assert_int_equal(w.requests, before + 1);
	result_clear(&r[0]);
	result_clear(&r[2]);

	/* sts_free() with a request pending: its callback never runs */
	set_txt("chunk.test", "v=STSv1; id=c3");
	sts_free(s);
	s = new_sts(0);
	memset(r, 0, sizeof(r));
	assert_non_null(sts_policy_get(s, "chunk.test", on_policy, &r[0]));
	ev_run_once(w.loop, 0);
	sts_free(s);
	for (int i = 0; i < 20; i++)
		ev_run_once(w.loop, 10);
	assert_int_equal(r[0].calls, 0);
}

static void
test_cache_dir(void **state)
{
	char link[200], file[256], err[128];
	struct sts_conf c = { .ctx = w.cctx, .port = w.port };
	struct sts *s;
	struct result r;
	struct stat st;
	FILE *f;

	(void)state;
	/*
	 * A symbolic link as the folder: memory only, said so.  The folder
	 * is opened at the first use, not by sts_new() (a daemon makes its
	 * engine as root, then becomes the spool's owner).
	 */
	snprintf(link, sizeof(link), "%s/link", w.dir);
	assert_int_equal(symlink(w.cache, link), 0);
	c.cache_dir = link;
	mock_log_clear();
	s = sts_new(w.loop, w.dns, &c, err, sizeof(err));
	assert_non_null(s);
	assert_false(mock_log_contains("mta-sts: cache"));
	set_txt("down.test", "");
	get(s, "down.test", &r);
	assert_true(mock_log_contains("mta-sts: cache"));
	sts_free(s);
	unlink(link);

	/* A corrupt file is removed, not used */
	snprintf(file, sizeof(file), "%s/down.test", w.cache);
	f = fopen(file, "w");
	assert_non_null(f);
	fprintf(f, "mxrelay-sts 1\nfetched %lld\nid 9\nlength 5\nmode:",
	    (long long)time(NULL));
	fclose(f);
	set_txt("down.test", "");
	s = new_sts(0);
	get(s, "down.test", &r);
	assert_false(r.have);
	assert_int_equal(lstat(file, &st), -1);
	sts_free(s);

	/* A missing folder is made at the first use, mode 0700 */
	snprintf(link, sizeof(link), "%s/new", w.dir);
	c.cache_dir = link;
	s = sts_new(w.loop, w.dns, &c, err, sizeof(err));
	assert_non_null(s);
	assert_int_equal(stat(link, &st), -1);
	get(s, "down.test", &r);
	assert_int_equal(stat(link, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	sts_free(s);
	rmdir(link);
}

/* Each test starts with the server up, whatever the last one left. */
static int
setup(void **state)
{
	(void)state;
	w.down = false;
	mock_log_clear();
	return 0;
}

/* A cache file for domain, fetched age seconds ago, with policy_ok. */
static void
write_cache(const char *domain, const char *id, long age)
{
	char file[256];
	FILE *f;

	snprintf(file, sizeof(file), "%s/%s", w.cache, domain);
	f = fopen(file, "w");
	assert_non_null(f);
	fprintf(f, "mxrelay-sts 1\nfetched %lld\nid %s\nlength %zu\n%s",
	    (long long)time(NULL) - age, id, strlen(policy_ok), policy_ok);
	assert_int_equal(fclose(f), 0);
}

/* Under a quarter of max_age left: fetched again though the id is the same. */
static void
test_refresh(void **state)
{
	struct sts *s;
	struct result r;
	int before = w.requests;

	(void)state;
	set_txt("down.test", "v=STSv1; id=7");
	write_cache("down.test", "7", 1000);
	s = new_sts(0);
	get(s, "down.test", &r);
	assert_true(r.have);
	assert_true(mock_log_contains("down.test: policy id=7 from cache"));
	assert_int_equal(w.requests, before);
	result_clear(&r);
	sts_free(s);

	write_cache("down.test", "7", 80000);
	s = new_sts(0);
	get(s, "down.test", &r);
	assert_true(r.have);
	assert_int_equal(w.requests, before + 1);
	assert_true(r.pol.fetched >= (int64_t)time(NULL) - 60);
	result_clear(&r);
	sts_free(s);

	/* Expired on disk, server down: no policy, the file removed */
	w.down = true;
	write_cache("down.test", "7", 90000);
	s = new_sts(0);
	get(s, "down.test", &r);
	assert_false(r.have);
	assert_string_equal(r.fail, "sts-policy-fetch-error");
	sts_free(s);
	set_txt("down.test", "");
}

/*
 * Many domains at once whose policy hosts hold the connection and never
 * answer (a tarpit): the fetches in flight are capped, so that a queue
 * over many such domains does not take a descriptor and a 64 KiB buffer
 * per destination (the queue manager's descriptor budget counts two per
 * message and the SMTP sessions, nothing for policy fetches).
 */
static void
test_fetch_cap(void **state)
{
	struct sts *s;
	struct result r[MANY];
	char d[32];
	int calls = 0;
	uint64_t end;

	(void)state;
	w.tarpit = true;
	w.ntarpit = 0;
	s = new_sts(1000);
	memset(r, 0, sizeof(r));
	for (int i = 0; i < MANY; i++) {
		snprintf(d, sizeof(d), "many%d.test", i);
		assert_non_null(sts_policy_get(s, d, on_policy, &r[i]));
	}
	/* Well before any fetch times out: the connections made so far. */
	for (end = util_now_ms() + 500; util_now_ms() < end;)
		ev_run_once(w.loop, 50);
	for (int i = 0; i < MANY; i++)
		calls += r[i].calls;
	if (w.ntarpit > FETCH_MAX)
		fail_msg("%d policy fetches in flight at once (%d answered)",
		    w.ntarpit, calls);
	/* Every request is answered in the end, each fetch timed out. */
	for (end = util_now_ms() + WAIT_MS; calls < MANY &&
	    util_now_ms() < end;) {
		ev_run_once(w.loop, 50);
		calls = 0;
		for (int i = 0; i < MANY; i++)
			calls += r[i].calls;
	}
	assert_int_equal(calls, MANY);
	for (int i = 0; i < MANY; i++) {
		assert_false(r[i].have);
		assert_string_equal(r[i].fail, "sts-policy-fetch-error");
		assert_non_null(strstr(r[i].why, "timed out"));
	}
	assert_int_equal(w.ntarpit, MANY);
	sts_free(s);
	for (int i = 0; i < w.ntarpit; i++)
		close(w.tarpit_fd[i]);
	w.ntarpit = 0;
	w.tarpit = false;
}

/*
 * A domain as a recipient address spells it (delivery_relay.c passes the
 * domain of the first recipient, in its case, for relayhost_fallback =
 * mx): its policy must still be kept on disk, or a later run has no
 * cached policy to hold on to when the TXT record is stripped.
 */
static void
test_case(void **state)
{
	struct sts *s;
	struct result r;
	char path[256];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/chunk.test", w.cache);
	unlink(path);
	set_txt("chunk.test", "v=STSv1; id=case1");
	s = new_sts(0);
	get(s, "Chunk.TEST", &r);
	assert_true(r.have);
	result_clear(&r);
	sts_free(s);
	if (lstat(path, &st) == -1)
		fail_msg("Chunk.TEST: no cache file %s", path);
	/* A restart, the TXT record gone: the cached policy applies */
	set_txt("chunk.test", "");
	s = new_sts(0);
	get(s, "Chunk.TEST", &r);
	if (!r.have)
		fail_msg("Chunk.TEST: %s %s", r.fail, r.why);
	assert_string_equal(r.pol.id, "case1");
	result_clear(&r);
	sts_free(s);
}

/* The TXT record from dnsd through dns_txt_lookup(). */
static void
test_real_txt(void **state)
{
	struct sts *s;
	struct result r;

	(void)state;
	s = new_sts(3000);
	get(s, "real.test", &r);
	sts_free(s);
	if (txt_stub) {
		assert_false(r.have);
		skip();
	}
	assert_true(r.have);
	assert_string_equal(r.pol.id, "r1");
	assert_true(mock_log_contains("real.test: policy id=r1 mode=enforce"));
	result_clear(&r);
}

static int
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(cmd))
		return -1;
	return system(cmd);
}

static int
start_world(void **state)
{
	char buf[64], path[200], sans[1024] = "", cert[200], key[200];
	char err[256];
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	unsigned port;
	FILE *f;

	(void)state;
	alarm(300);
	if (system("openssl version >/dev/null 2>&1") != 0)
		exit(77);
	if (test_mkdtemp(w.dir, sizeof(w.dir), "test_sts") == NULL)
		return -1;
	snprintf(w.certs, sizeof(w.certs), "%s/certs", w.dir);
	snprintf(w.cache, sizeof(w.cache), "%s/sts", w.dir);
	snprintf(w.zone, sizeof(w.zone), "%s/zone", w.dir);
	if (mkdir(w.certs, 0700) == -1 ||
	    sh("sh '%s/tests/unit/tls-certs.sh' '%s' >/dev/null 2>&1",
	    TOP_SRCDIR, w.certs) != 0)
		return -1;
	/* One certificate for every mta-sts.*.test name but nocert's */
	for (size_t i = 0; i < NITEMS(domains); i++) {
		char d[300];

		txt_table[i].domain = NULL;
		snprintf(d, sizeof(d), "%s.test", domains[i]);
		txt_table[i].domain = strdup(d);
		if (strcmp(domains[i], "nocert") == 0)
			continue;
		snprintf(sans + strlen(sans), sizeof(sans) - strlen(sans),
		    "%sDNS:mta-sts.%s.test", sans[0] != '\0' ? "," : "",
		    domains[i]);
	}
	if (sh("cd '%s' && openssl genpkey -algorithm EC -pkeyopt "
	    "ec_paramgen_curve:P-256 -out sts.key 2>/dev/null && "
	    "printf 'basicConstraints=critical,CA:FALSE\\nkeyUsage=critical,"
	    "digitalSignature\\nextendedKeyUsage=serverAuth\\n"
	    "subjectAltName=%s\\n' > sts.ext && "
	    "openssl req -new -key sts.key -subj /CN=mta-sts.ok.test "
	    "-out sts.csr && openssl x509 -req -in sts.csr -CA ca.crt "
	    "-CAkey ca.key -set_serial 9 -days 2 -extfile sts.ext "
	    "-out sts.crt 2>/dev/null", w.certs, sans) != 0)
		return -1;

	/* dnsd: mta-sts.*.test at 127.0.0.1 */
	if ((f = fopen(w.zone, "w")) == NULL)
		return -1;
	for (size_t i = 0; i < NITEMS(domains); i++)
		fprintf(f, "mta-sts.%s.test A 127.0.0.1\n", domains[i]);
	for (int i = 0; i < MANY; i++)
		fprintf(f, "mta-sts.many%d.test A 127.0.0.1\n", i);
	fprintf(f, "_mta-sts.real.test TXT v=STSv1; id=r1\n"
	    "real.test TXT v=spf1 -all\n");
	fclose(f);
	{
		const char *argv[] = { DNSD_PATH, "-l", "127.0.0.1:0", "-z",
		    w.zone, "-t", "300", NULL };

		if (test_spawn_line(argv, buf, sizeof(buf), 10000,
		    &w.dnsd) == -1)
			return -1;
	}
	if (sscanf(buf, "port %u", &port) != 1 || port == 0 || port > 65535)
		return -1;
	snprintf(w.servers, sizeof(w.servers), "127.0.0.1:%u", port);

	w.loop = ev_loop_new();
	w.dns = dns_new(w.loop, w.servers, 2000, 2, err, sizeof(err));
	snprintf(path, sizeof(path), "%s/ca.crt", w.certs);
	w.cctx = tls_client_ctx_new(path, true, err, sizeof(err));
	snprintf(cert, sizeof(cert), "%s/sts.crt", w.certs);
	snprintf(key, sizeof(key), "%s/sts.key", w.certs);
	w.sctx = tls_server_ctx_new(cert, key, err, sizeof(err));
	if (w.dns == NULL || w.cctx == NULL || w.sctx == NULL) {
		fprintf(stderr, "start_world: %s\n", err);
		return -1;
	}

	/* The policy server */
	w.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (w.lfd == -1 || bind(w.lfd, (struct sockaddr *)&sin,
	    sizeof(sin)) == -1 || listen(w.lfd, 16) == -1 ||
	    getsockname(w.lfd, (struct sockaddr *)&sin, &sl) == -1)
		return -1;
	w.port = ntohs(sin.sin_port);
	ev_fd_add(w.loop, w.lfd, EV_READ, on_accept, NULL);
	return 0;
}

static int
stop_world(void **state)
{
	int status;

	(void)state;
	while (conns != NULL)
		conn_free(conns);
	if (w.lfd > 0) {
		ev_fd_del(w.loop, w.lfd);
		close(w.lfd);
	}
	if (w.dns != NULL)
		dns_free(w.dns);
	tls_ctx_free(w.cctx);
	tls_ctx_free(w.sctx);
	if (w.loop != NULL)
		ev_loop_free(w.loop);
	if (w.dnsd > 0) {
		kill(w.dnsd, SIGTERM);
		waitpid(w.dnsd, &status, 0);
	}
	for (size_t i = 0; i < NITEMS(txt_table); i++)
		free((char *)txt_table[i].domain);
	if (w.dir[0] != '\0')
		sh("rm -rf '%s'", w.dir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_fetch_and_cache, setup),
		cmocka_unit_test_setup(test_redirect, setup),
		cmocka_unit_test_setup(test_too_big, setup),
		cmocka_unit_test_setup(test_refused, setup),
		cmocka_unit_test_setup(test_webpki, setup),
		cmocka_unit_test_setup(test_timeout, setup),
		cmocka_unit_test_setup(test_chunked, setup),
		cmocka_unit_test_setup(test_no_txt, setup),
		cmocka_unit_test_setup(test_coalesce, setup),
		cmocka_unit_test_setup(test_cache_dir, setup),
		cmocka_unit_test_setup(test_refresh, setup),
		cmocka_unit_test_setup(test_real_txt, setup),
		cmocka_unit_test_setup(test_fetch_cap, setup),
		cmocka_unit_test_setup(test_case, setup),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, start_world, stop_world);
}
