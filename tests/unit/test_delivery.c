/*
 * Unit tests for src/delivery*.c: a real delivery engine on the real event
 * loop, with the real resolver against tests/world/dnsd (one for the whole
 * run, as in test_dns.c) and the exchangers played by tests/world/smtpsink
 * on loopback addresses 127.0.0.2-7, all on one port picked per test (the
 * engine connects to every exchanger on smtp_port).  Where smtpsink cannot
 * play the part (a STARTTLS whose handshake breaks), a child process
 * scripted here does.
 *
 * Each test submits one part and asserts the typed result of every
 * recipient (outcome, cause, reply code, enhanced status, accepted at
 * RCPT, remote MTA, dest_down) and which exchanger saw what.  The last
 * ones look at scale and at the engine's destinations: a thousand domains
 * at once, and which destinations outlive their parts.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

#include "delivery.h"
#include "dns.h"
#include "event.h"
#include "metrics.h"
#include "tls.h"
#include "util.h"
#include "mock_log.h"
#include "testutil.h"

#ifndef DNSD_PATH
#define DNSD_PATH	"tests/world/dnsd"
#endif
#ifndef SMTPSINK_PATH
#define SMTPSINK_PATH	"tests/world/smtpsink"
#endif
#define TEST_DEADLINE_MS	20000
#define NSINK			4
#define MANY_DOMAINS		1000

/*
 * 127.0.0.2 and .3 run smtpsinks when a test starts them; .5 and .7 never
 * listen (connection refused); .6 is the scripted STARTTLS peer.
 */
static const char zone_text[] =
    "# zone for tests/unit/test_delivery.c\n"
    "pref.test MX 20 mx20.pref.test\n"
    "pref.test MX 10 mx10.pref.test\n"
    "mx10.pref.test A 127.0.0.2\n"
    "mx20.pref.test A 127.0.0.3\n"
    "failover.test MX 10 dead.failover.test\n"
    "failover.test MX 20 live.failover.test\n"
    "dead.failover.test A 127.0.0.5\n"
    "live.failover.test A 127.0.0.3\n"
    "down.test MX 10 a.down.test\n"
    "down.test MX 20 b.down.test\n"
    "a.down.test A 127.0.0.5\n"
    "b.down.test A 127.0.0.7\n"
    "tlsfail.test MX 10 mx.tlsfail.test\n"
    "mx.tlsfail.test A 127.0.0.6\n"
    "afterdata.test MX 10 mx1.afterdata.test\n"
    "afterdata.test MX 20 mx2.afterdata.test\n"
    "mx1.afterdata.test A 127.0.0.2\n"
    "mx2.afterdata.test A 127.0.0.3\n"
    "rcpt.test MX 10 mx1.rcpt.test\n"
    "rcpt.test MX 20 mx2.rcpt.test\n"
    "mx1.rcpt.test A 127.0.0.2\n"
    "mx2.rcpt.test A 127.0.0.3\n"
    "*.many.test MX 10 mx.sink.test\n"
    "mx.sink.test A 127.0.0.2\n";

static const char body[] = "Subject: test\r\n\r\nhello\r\n";

/* One dnsd for the whole run. */
static struct {
	char	 dir[64];
	char	 zone[128];
	char	 servers[64];
	pid_t	 pid;
} world;

struct fixture {
	char		 dir[256];
	unsigned	 port;
	pid_t		 sink[NSINK];
	char		 sink_addr[NSINK][16];
	size_t		 nsink;
	pid_t		 peer;		/* the scripted STARTTLS peer */
	int		 peer_report;	/* what it saw, one byte per event */
	enum tls_policy	 tls;		/* the engine's default policy */
	SSL_CTX		*tls_ctx;
	struct ev_loop	*loop;
	struct dns	*dns;
	struct delivery_engine *engine;
	int		 body_fd;
};

/* One message part and its recipients. */
struct part {
	struct delivery_msg	 m;
	struct delivery_rcpt	 rcpt[4];
	bool			 done;
};

static int
start_world(void **state)
{
	char buf[64];
	unsigned port;
	FILE *f;

	(void)state;
	alarm(300);
	if (test_mkdtemp(world.dir, sizeof(world.dir), "test_delivery") ==
	    NULL)
		return -1;
	snprintf(world.zone, sizeof(world.zone), "%s/zone", world.dir);
	if ((f = fopen(world.zone, "w")) == NULL || fputs(zone_text, f) < 0 ||
	    fclose(f) != 0)
		return -1;
	{
		const char *argv[] = { DNSD_PATH, "-l", "127.0.0.1:0", "-z",
		    world.zone, "-t", "300", NULL };

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
	(void)state;
	if (world.pid > 0) {
		kill(world.pid, SIGTERM);
		waitpid(world.pid, NULL, 0);
	}
	unlink(world.zone);
	rmdir(world.dir);
	alarm(0);
	return 0;
}

/* A port free on 127.0.0.2 now; the others are almost surely free too. */
static unsigned
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = inet_addr("127.0.0.2");
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char path[300], err[256];

	if (f == NULL || test_mkdtemp(f->dir, sizeof(f->dir), "dlv") == NULL)
		return -1;
	f->peer = -1;
	f->peer_report = -1;
	f->port = free_port();
	f->loop = ev_loop_new();
	f->dns = dns_new(f->loop, world.servers, 300, 2, err, sizeof(err));
	if (f->dns == NULL) {
		fprintf(stderr, "dns_new: %s\n", err);
		return -1;
	}
	f->tls_ctx = tls_client_ctx_new(NULL, false, err, sizeof(err));
	if (f->tls_ctx == NULL) {
		fprintf(stderr, "tls: %s\n", err);
		return -1;
	}
	f->tls = TLS_NONE;
	snprintf(path, sizeof(path), "%s/body", f->dir);
	f->body_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (f->body_fd == -1 ||
	    write(f->body_fd, body, sizeof(body) - 1) != sizeof(body) - 1)
		return -1;
	mock_log_clear();
	*state = f;
	return 0;
}

/* The engine, once the test has set up its world. */
static void
engine_start(struct fixture *f)
{
	struct delivery_conf dc;

	memset(&dc, 0, sizeof(dc));
	dc.hostname = "relay.test";
	dc.smtp_port = f->port;
	smtpc_timeouts_default(&dc.timeouts);
	dc.timeouts.connect = 5000;
	dc.timeouts.greeting = 5000;
	dc.timeouts.helo = 1000;	/* also bounds a TLS handshake */
	dc.timeouts.mail = dc.timeouts.rcpt = dc.timeouts.data = 5000;
	dc.timeouts.block = dc.timeouts.dot = 5000;
	dc.reuse_limit = 10;
	dc.concurrency = 10;
	/* one session at a time: routes are tried in a fixed order */
	dc.domain_concurrency = 1;
	dc.tls = f->tls;
	dc.tls_ctx = f->tls_ctx;
	dc.tls_ctx_verify = f->tls_ctx;
	f->engine = delivery_engine_new(f->loop, f->dns, &dc);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char path[300];

	delivery_engine_free(f->engine);
	dns_free(f->dns);
	tls_ctx_free(f->tls_ctx);
	ev_loop_free(f->loop);
	for (size_t i = 0; i < f->nsink; i++) {
		kill(f->sink[i], SIGTERM);
		waitpid(f->sink[i], NULL, 0);
		snprintf(path, sizeof(path), "%s/%s.log", f->dir,
		    f->sink_addr[i]);
		unlink(path);
	}
	if (f->peer > 0) {
		kill(f->peer, SIGTERM);
		waitpid(f->peer, NULL, 0);
	}
	if (f->peer_report != -1)
		close(f->peer_report);
	close(f->body_fd);
	snprintf(path, sizeof(path), "%s/body", f->dir);
	unlink(path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* An exchanger on addr:port; extra smtpsink arguments, NULL-terminated. */
static void
sink_start(struct fixture *f, const char *addr, ...)
{
	const char *argv[32];
	char listen[64], logpath[300], line[128];
	int n = 0;
	va_list ap;
	pid_t pid;

	assert_true(f->nsink < NSINK);
	snprintf(listen, sizeof(listen), "%s:%u", addr, f->port);
	snprintf(logpath, sizeof(logpath), "%s/%s.log", f->dir, addr);
	argv[n++] = SMTPSINK_PATH;
	argv[n++] = "-l";
	argv[n++] = listen;
	argv[n++] = "-L";
	argv[n++] = logpath;
	argv[n++] = "-t";
	argv[n++] = "60";
	va_start(ap, addr);
	while ((argv[n] = va_arg(ap, const char *)) != NULL && n < 30)
		n++;
	va_end(ap);
	argv[n] = NULL;

	/* it prints its address once it listens */
	assert_int_not_equal(test_spawn_line(argv, line, sizeof(line), 5000,
	    &pid), -1);
	f->sink[f->nsink] = pid;
	util_strlcpy(f->sink_addr[f->nsink], addr, sizeof(f->sink_addr[0]));
	f->nsink++;
}

/* What the sink on addr logged, whole; caller frees. */
static char *
sink_log(struct fixture *f, const char *addr)
{
	char path[300], *buf;
	struct stat sb;
	FILE *fp;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.log", f->dir, addr);
	if (stat(path, &sb) == -1 || (fp = fopen(path, "r")) == NULL)
		return strdup("");
	buf = calloc(1, (size_t)sb.st_size + 1);
	assert_non_null(buf);
	n = fread(buf, 1, (size_t)sb.st_size, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* Read one line (up to LF) from a blocking socket; false at EOF. */
static bool
peer_readline(int fd, char *buf, size_t len)
{
	size_t n = 0;
	char c;

	while (read(fd, &c, 1) == 1) {
		if (c == '\n') {
			buf[n] = '\0';
			if (n > 0 && buf[n - 1] == '\r')
				buf[n - 1] = '\0';
			return true;
		}
		if (n + 1 < len)
			buf[n++] = c;
	}
	return false;
}

static void
peer_say(int fd, const char *s)
{
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		_exit(2);
}

enum peer_tls {
	PEER_TLS_BREAK,		/* close right after "220 go ahead" */
	PEER_TLS_HANG,		/* never answer the ClientHello */
	PEER_TLS_INJECT,	/* a reply glued to "220 go ahead" */
};

/*
 * The first connection offers STARTTLS, says go ahead, then breaks the
 * handshake as told; a second connection gets a plain transaction (no
 * STARTTLS offered).  Reports 'S' for each STARTTLS, 'M' for each message
 * taken, to the pipe in f->peer_report.
 */
static void
peer_start(struct fixture *f, const char *addr, enum peer_tls how)
{
	struct sockaddr_in sin;
	int lfd, p[2], on = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)f->port);
	sin.sin_addr.s_addr = inet_addr(addr);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(pipe(p), 0);
	f->peer = fork();
	assert_true(f->peer >= 0);
	if (f->peer == 0) {
		char line[1024];
		bool data = false;
		int c;

		close(p[0]);
		alarm(30);
		/* the connection whose handshake breaks */
		if ((c = accept(lfd, NULL, NULL)) == -1)
			_exit(1);
		peer_say(c, "220 mx.tlsfail.test ESMTP\r\n");
		if (!peer_readline(c, line, sizeof(line)))
			_exit(1);
		peer_say(c, "250-mx.tlsfail.test\r\n250 STARTTLS\r\n");
		if (!peer_readline(c, line, sizeof(line)) ||
		    strcmp(line, "STARTTLS") != 0)
			_exit(1);
		peer_say(p[1], "S");
		if (how == PEER_TLS_INJECT)
			peer_say(c, "220 2.0.0 go ahead\r\n250 injected\r\n");
		else
			peer_say(c, "220 2.0.0 go ahead\r\n");
		if (how != PEER_TLS_BREAK)
			while (read(c, line, sizeof(line)) > 0)
				;	/* until the client gives up */
		close(c);
		/* a plain session */
		if ((c = accept(lfd, NULL, NULL)) == -1)
			_exit(1);
		peer_say(c, "220 mx.tlsfail.test ESMTP\r\n");
		while (peer_readline(c, line, sizeof(line))) {
			if (data) {
				if (strcmp(line, ".") == 0) {
					data = false;
					peer_say(p[1], "M");
					peer_say(c, "250 2.0.0 queued\r\n");
				}
			} else if (strncmp(line, "EHLO", 4) == 0)
				peer_say(c, "250 mx.tlsfail.test\r\n");
			else if (strcmp(line, "DATA") == 0) {
				data = true;
				peer_say(c, "354 go ahead\r\n");
			} else if (strcmp(line, "QUIT") == 0) {
				peer_say(c, "221 2.0.0 bye\r\n");
				break;
			} else if (strncmp(line, "STARTTLS", 8) == 0)
				peer_say(p[1], "S");	/* must not happen */
			else
				peer_say(c, "250 2.0.0 ok\r\n");
		}
		close(c);
		_exit(0);
	}
	close(lfd);
	close(p[1]);
	f->peer_report = p[0];
}

/* What the peer reported so far (waits for it to finish, at most 5 s). */
static void
peer_report(struct fixture *f, char *buf, size_t len)
{
	size_t n = 0;

	for (;;) {
		struct pollfd p = { f->peer_report, POLLIN, 0 };
		ssize_t r;

		if (poll(&p, 1, 5000) != 1 ||
		    (r = read(f->peer_report, buf + n, len - 1 - n)) <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
}

static void
on_part_done(void *arg, struct delivery_msg *m)
{
	struct part *p = arg;

	(void)m;
	assert_false(p->done);
	p->done = true;
}

/* A part of the test message for one or two recipients. */
static void
part_init(struct fixture *f, struct part *p, const char *rcpt0,
    const char *rcpt1)
{
	memset(p, 0, sizeof(*p));
	p->m.id = "0123456789abcdef0123";
	p->m.sender = "sender@example.org";
	p->m.body_fd = f->body_fd;
	p->m.size = sizeof(body) - 1;
	p->m.arrival = time(NULL);
	p->rcpt[0].addr = rcpt0;
	p->rcpt[1].addr = rcpt1;
	p->m.rcpt = p->rcpt;
	p->m.nrcpt = rcpt1 != NULL ? 2 : 1;
	p->m.done = on_part_done;
	p->m.arg = p;
}

/* Submit the part, run until it is done and every session has closed. */
static void
deliver(struct fixture *f, struct part *p, const char *domain,
    const char *rcpt0, const char *rcpt1)
{
	uint64_t start;

	part_init(f, p, rcpt0, rcpt1);
	delivery_submit(f->engine, domain, &p->m);
	start = ev_now(f->loop);
	while ((!p->done || !delivery_idle(f->engine)) &&
	    ev_now(f->loop) - start < TEST_DEADLINE_MS)
		ev_run_once(f->loop, 100);
	assert_true(p->done);
	assert_true(delivery_idle(f->engine));
}

/* The typed result of one recipient. */
static void
assert_rcpt(const struct delivery_rcpt *r, enum outcome o,
    enum smtpc_cause cause, int code, const char *status, bool accepted,
    const char *mta)
{
	if (r->outcome != o || r->cause != cause || r->code != code ||
	    strcmp(r->status, status) != 0 || r->accepted != accepted ||
	    strcmp(r->remote_mta, mta) != 0)
		fail_msg("<%s>: outcome %d cause %s code %d status %s "
		    "accepted %d mta \"%s\" (%s); want %d %s %d %s %d \"%s\"",
		    r->addr, r->outcome, smtpc_cause_to_text(r->cause),
		    r->code, r->status, r->accepted, r->remote_mta, r->reply,
		    o, smtpc_cause_to_text(cause), code, status, accepted,
		    mta);
}

/* Exchangers in MX preference order: MX 10 takes it, MX 20 is not asked. */
static void
test_mx_preference(void **state)
{
	struct fixture *f = *state;
	struct part p;
	char *l2, *l3;

	sink_start(f, "127.0.0.2", NULL);
	sink_start(f, "127.0.0.3", NULL);
	engine_start(f);
	deliver(f, &p, "pref.test", "a@pref.test", "b@pref.test");
	for (int i = 0; i < 2; i++)
		assert_rcpt(&p.rcpt[i], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250,
		    "2.0.0", true, "mx10.pref.test");
	assert_false(p.m.dest_down);
	l2 = sink_log(f, "127.0.0.2");
	l3 = sink_log(f, "127.0.0.3");
	assert_int_equal(count(l2, "msg id="), 1);
	assert_int_equal(count(l2, "rcpts=2"), 1);
	assert_int_equal(count(l3, "connect id="), 0);
	free(l2);
	free(l3);
	assert_true(mock_log_contains("to=<a@pref.test>, relay=mx10.pref.test"
	    "[127.0.0.2]"));
}

/* MX 10 refuses the connection: the part goes to MX 20 in this attempt. */
static void
test_mx_failover(void **state)
{
	struct fixture *f = *state;
	struct part p;
	char *l3;

	sink_start(f, "127.0.0.3", NULL);
	engine_start(f);
	deliver(f, &p, "failover.test", "x@failover.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250, "2.0.0",
	    true, "live.failover.test");
	assert_false(p.m.dest_down);
	l3 = sink_log(f, "127.0.0.3");
	assert_int_equal(count(l3, "msg id="), 1);
	free(l3);
	assert_true(mock_log_contains("dead.failover.test[127.0.0.5]"));
	assert_true(mock_log_contains("connect failed"));
}

/* No exchanger reachable: deferred 4.4.1, the destination is down. */
static void
test_dest_down(void **state)
{
	struct fixture *f = *state;
	struct part p;

	engine_start(f);
	deliver(f, &p, "down.test", "x@down.test", "y@down.test");
	for (int i = 0; i < 2; i++) {
		assert_rcpt(&p.rcpt[i], OUTCOME_TEMPFAIL, SMTPC_CAUSE_CONNECT,
		    0, "4.4.1", false, "b.down.test");
		assert_non_null(strstr(p.rcpt[i].reply, "connect failed"));
	}
	assert_true(p.m.dest_down);
}

/*
 * tls = may: a STARTTLS whose handshake fails (broken, or never finished)
 * is retried on the same exchanger in clear, on the typed cause.
 */
static void
tls_may_clear(void **state, enum peer_tls how, enum tls_policy tls)
{
	struct fixture *f = *state;
	struct part p;
	char rep[16];

	peer_start(f, "127.0.0.6", how);
	f->tls = tls;
	engine_start(f);
	deliver(f, &p, "tlsfail.test", "x@tlsfail.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250, "2.0.0",
	    true, "mx.tlsfail.test");
	assert_false(p.m.dest_down);
	peer_report(f, rep, sizeof(rep));
	/* one STARTTLS, then the message in clear (no second STARTTLS) */
	assert_string_equal(rep, "SM");
	assert_true(mock_log_contains("to=<x@tlsfail.test>, relay="
	    "mx.tlsfail.test[127.0.0.6]"));
	assert_true(mock_log_contains("tls=none"));
}

static void
test_tls_may_handshake_fails(void **state)
{
	tls_may_clear(state, PEER_TLS_BREAK, TLS_MAY);
}

static void
test_tls_may_handshake_timeout(void **state)
{
	tls_may_clear(state, PEER_TLS_HANG, TLS_MAY);
}

/*
 * tls = dane where nothing is secure (dnsd sets no AD bit): exactly may,
 * the retry in clear included; the session that tried TLS is counted
 * with no policy (RFC 8460 "no-policy-found").
 */
static void
test_tls_dane_insecure(void **state)
{
	size_t len;
	char *text;

	metrics_reset();
	tls_may_clear(state, PEER_TLS_BREAK, TLS_DANE);
	text = metrics_render(&len);
	assert_non_null(strstr(text, "mxrelay_tls_sessions_total{"
	    "domain=\"tlsfail.test\",policy=\"no-policy-found\","
	    "result=\"validation-failure\"} 1\n"));
	free(text);
}

/*
 * Not a handshake failure (a reply glued to the 220: a protocol error):
 * no retry in clear, the exchanger is failed and the part deferred.
 */
static void
test_tls_may_protocol_error(void **state)
{
	struct fixture *f = *state;
	struct part p;
	char rep[16];

	peer_start(f, "127.0.0.6", PEER_TLS_INJECT);
	f->tls = TLS_MAY;
	engine_start(f);
	deliver(f, &p, "tlsfail.test", "x@tlsfail.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_TEMPFAIL, SMTPC_CAUSE_PROTOCOL, 0,
	    "4.0.0", false, "mx.tlsfail.test");
	assert_non_null(strstr(p.rcpt[0].reply, "data after the STARTTLS"));
	assert_true(p.m.dest_down);
	kill(f->peer, SIGTERM);
	peer_report(f, rep, sizeof(rep));
	assert_string_equal(rep, "S");
}

/*
 * Accepted at RCPT, then the connection is lost after the data: it may
 * have been delivered, so it is deferred (4.4.2) and never sent to MX 20
 * in this attempt.
 */
static void
test_lost_after_data(void **state)
{
	struct fixture *f = *state;
	struct part p;
	char *l3;

	sink_start(f, "127.0.0.2", "--drop=dot", NULL);
	sink_start(f, "127.0.0.3", NULL);
	engine_start(f);
	deliver(f, &p, "afterdata.test", "x@afterdata.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_TEMPFAIL, SMTPC_CAUSE_LOST, 0, "4.4.2",
	    true, "mx1.afterdata.test");
	assert_false(p.m.dest_down);
	l3 = sink_log(f, "127.0.0.3");
	assert_int_equal(count(l3, "connect id="), 0);
	free(l3);
}

/* The same with a 4xx reply to the data: its own code and status. */
static void
test_4xx_after_data(void **state)
{
	struct fixture *f = *state;
	struct part p;
	char *l3;

	sink_start(f, "127.0.0.2", "-r", "dot=452", NULL);
	sink_start(f, "127.0.0.3", NULL);
	engine_start(f);
	deliver(f, &p, "afterdata.test", "x@afterdata.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_TEMPFAIL, SMTPC_CAUSE_REPLY, 452,
	    "4.0.0", true, "mx1.afterdata.test");
	assert_true(strncmp(p.rcpt[0].reply, "452 4.0.0", 9) == 0);
	l3 = sink_log(f, "127.0.0.3");
	assert_int_equal(count(l3, "connect id="), 0);
	free(l3);
}

/* A 4xx of its own at RCPT: that recipient goes to the next MX. */
static void
test_rcpt_4xx_next_mx(void **state)
{
	struct fixture *f = *state;
	struct part p;
	char *l2, *l3;

	sink_start(f, "127.0.0.2", "-r", "rcpt=450:a@rcpt.test", NULL);
	sink_start(f, "127.0.0.3", NULL);
	engine_start(f);
	deliver(f, &p, "rcpt.test", "a@rcpt.test", "b@rcpt.test");
	assert_rcpt(&p.rcpt[0], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250, "2.0.0",
	    true, "mx2.rcpt.test");
	assert_rcpt(&p.rcpt[1], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250, "2.0.0",
	    true, "mx1.rcpt.test");
	l2 = sink_log(f, "127.0.0.2");
	l3 = sink_log(f, "127.0.0.3");
	assert_int_equal(count(l2, "msg id="), 1);
	assert_int_equal(count(l3, "msg id="), 1);
	assert_non_null(strstr(l3, "rcpt id=1 to=<a@rcpt.test> code=250"));
	free(l2);
	free(l3);
}

/* A 5xx at RCPT bounces that recipient; no next MX for it. */
static void
test_rcpt_5xx(void **state)
{
	struct fixture *f = *state;
	struct part p;
	char *l3;

	sink_start(f, "127.0.0.2", "-r", "rcpt=550:a@rcpt.test", NULL);
	sink_start(f, "127.0.0.3", NULL);
	engine_start(f);
	deliver(f, &p, "rcpt.test", "a@rcpt.test", "b@rcpt.test");
	assert_rcpt(&p.rcpt[0], OUTCOME_PERMFAIL, SMTPC_CAUSE_REPLY, 550,
	    "5.1.1", false, "mx1.rcpt.test");
	assert_rcpt(&p.rcpt[1], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250, "2.0.0",
	    true, "mx1.rcpt.test");
	l3 = sink_log(f, "127.0.0.3");
	assert_int_equal(count(l3, "connect id="), 0);
	free(l3);
}

/* No session has a say when the domain does not exist. */
static void
test_nxdomain(void **state)
{
	struct fixture *f = *state;
	struct part p;

	engine_start(f);
	deliver(f, &p, "nothing.test", "x@nothing.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_PERMFAIL, SMTPC_CAUSE_NONE, 0,
	    "5.1.2", false, "");
	assert_false(p.m.dest_down);
}

/* Run the loop a little: the engine frees unused destinations from it. */
static void
settle(struct fixture *f)
{
	for (int i = 0; i < 3; i++)
		ev_run_once(f->loop, 10);
}

/*
 * One part for each of 1,000 domains, all served by one exchanger: every
 * recipient is delivered.  The 1,000 MX queries sent at once overflowed
 * the resolver, and the lookups that timed out deferred their parts.
 * Once the parts are done the engine holds no destination: a queue run
 * over many domains does not keep every one it has seen.
 */
static void
test_many_domains(void **state)
{
	struct fixture *f = *state;
	struct part *p = calloc(MANY_DOMAINS, sizeof(*p));
	char (*rcpt)[64] = calloc(MANY_DOMAINS, sizeof(*rcpt));
	size_t done = 0, sent = 0;
	uint64_t start;
	char *l2, err[256];

	assert_non_null(p);
	assert_non_null(rcpt);
	/* As tests/e2e/world.sh has it: a query lost is a lookup failed. */
	dns_free(f->dns);
	f->dns = dns_new(f->loop, world.servers, 2000, 1, err, sizeof(err));
	assert_non_null(f->dns);
	sink_start(f, "127.0.0.2", NULL);
	engine_start(f);
	for (size_t i = 0; i < MANY_DOMAINS; i++) {
		snprintf(rcpt[i], sizeof(rcpt[i]), "x@d%zu.many.test", i);
		part_init(f, &p[i], rcpt[i], NULL);
		delivery_submit(f->engine, strchr(rcpt[i], '@') + 1, &p[i].m);
	}
	start = ev_now(f->loop);
	while (!delivery_idle(f->engine) &&
	    ev_now(f->loop) - start < 3 * TEST_DEADLINE_MS)
		ev_run_once(f->loop, 100);
	for (size_t i = 0; i < MANY_DOMAINS; i++) {
		if (!p[i].done)
			continue;
		done++;
		if (p[i].rcpt[0].outcome == OUTCOME_OK)
			sent++;
		else if (sent + 1 == done)
			fprintf(stderr, "first not sent: <%s> %s\n", rcpt[i],
			    p[i].rcpt[0].reply);
	}
	assert_int_equal(done, MANY_DOMAINS);
	assert_int_equal(sent, MANY_DOMAINS);
	settle(f);
	assert_int_equal(delivery_ndest(f->engine), 0);
	l2 = sink_log(f, "127.0.0.2");
	assert_int_equal(count(l2, "msg id="), MANY_DOMAINS);
	free(l2);
	free(rcpt);
	free(p);
}

/*
 * A destination whose routes all worked is freed once its part is done.
 * One whose exchanger failed is kept until delivery_gc(): the next part
 * of the run (its domain in another case) goes straight to MX 20 instead
 * of waiting for MX 10 again.
 */
static void
test_failed_dest_kept(void **state)
{
	struct fixture *f = *state;
	struct part p;
	char *l3;

	sink_start(f, "127.0.0.2", NULL);
	sink_start(f, "127.0.0.3", NULL);
	engine_start(f);
	deliver(f, &p, "pref.test", "a@pref.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250, "2.0.0",
	    true, "mx10.pref.test");
	settle(f);
	assert_int_equal(delivery_ndest(f->engine), 0);

	deliver(f, &p, "failover.test", "x@failover.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250, "2.0.0",
	    true, "live.failover.test");
	assert_true(mock_log_contains("connect failed"));
	settle(f);
	assert_int_equal(delivery_ndest(f->engine), 1);

	mock_log_clear();
	deliver(f, &p, "Failover.Test", "y@failover.test", NULL);
	assert_rcpt(&p.rcpt[0], OUTCOME_OK, SMTPC_CAUSE_REPLY, 250, "2.0.0",
	    true, "live.failover.test");
	assert_false(mock_log_contains("connect failed"));
	settle(f);
	assert_int_equal(delivery_ndest(f->engine), 1);
	l3 = sink_log(f, "127.0.0.3");
	assert_int_equal(count(l3, "msg id="), 2);
	free(l3);

	delivery_gc(f->engine);
	assert_int_equal(delivery_ndest(f->engine), 0);
}

/* What the seen hook of the engine reported, in order. */
struct seen_log {
	size_t		 n;
	char		 host[4][64];
	bool		 ready[4];
	enum smtpc_stage stage[4];
	char		 banner[4][128];
};

static void
on_seen(void *arg, const struct delivery_seen *ds)
{
	struct seen_log *l = arg;

	assert_true(l->n < 4);
	util_strlcpy(l->host[l->n], ds->host, sizeof(l->host[0]));
	l->ready[l->n] = ds->ready;
	l->stage[l->n] = ds->why->stage;
	util_strlcpy(l->banner[l->n], smtpc_seen(ds->s)->banner,
	    sizeof(l->banner[0]));
	l->n++;
}

/*
 * A probe (mxrelay route) takes the path a message would: MX 10 refuses
 * the connection, MX 20 gets ready and hears QUIT instead of MAIL.  The
 * recipient is OUTCOME_OK 2.0.0 from MX 20 with no delivery log line; the
 * probe names both exchangers, their TTL and routes, and route 1 as the
 * one the mail would take; the seen hook saw both sessions.
 */
static void
test_probe(void **state)
{
	struct fixture *f = *state;
	struct delivery_probe probe;
	struct seen_log seen;
	struct part p;
	uint64_t start;
	char *l3;

	sink_start(f, "127.0.0.3", NULL);
	engine_start(f);
	memset(&seen, 0, sizeof(seen));
	delivery_set_seen(f->engine, on_seen, &seen);
	memset(&probe, 0, sizeof(probe));
	probe.route = -1;
	part_init(f, &p, "postmaster", NULL);
	p.m.probe = &probe;
	delivery_submit(f->engine, "failover.test", &p.m);
	start = ev_now(f->loop);
	while ((!p.done || !delivery_idle(f->engine)) &&
	    ev_now(f->loop) - start < TEST_DEADLINE_MS)
		ev_run_once(f->loop, 100);
	assert_true(p.done);
	assert_rcpt(&p.rcpt[0], OUTCOME_OK, SMTPC_CAUSE_NONE, 0, "2.0.0",
	    false, "live.failover.test");
	assert_false(mock_log_contains("to=<postmaster>"));

	assert_string_equal(probe.name, "failover.test");
	assert_true(probe.by_mx);
	assert_int_equal(probe.mx_status, DNS_OK);
	assert_int_equal(probe.nmx, 2);
	assert_string_equal(probe.mx[0].host, "dead.failover.test");
	assert_int_equal(probe.mx[0].pref, 10);
	assert_int_equal(probe.mx[0].ttl, 300);
	assert_int_equal(probe.nroutes, 2);
	assert_true(probe.routes[0].failed);
	assert_false(probe.routes[1].failed);
	assert_int_equal(probe.route, 1);

	assert_int_equal(seen.n, 2);
	assert_string_equal(seen.host[0], "dead.failover.test");
	assert_false(seen.ready[0]);
	assert_int_equal(seen.stage[0], SMTPC_STAGE_CONNECT);
	assert_string_equal(seen.host[1], "live.failover.test");
	assert_true(seen.ready[1]);
	assert_non_null(strstr(seen.banner[1], "220"));

	l3 = sink_log(f, "127.0.0.3");
	assert_int_equal(count(l3, "connect id="), 1);
	assert_int_equal(count(l3, "mail id="), 0);
	assert_int_equal(count(l3, "quit id="), 1);
	free(l3);
	delivery_probe_clear(&probe);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_mx_preference),
		T(test_mx_failover),
		T(test_dest_down),
		T(test_tls_may_handshake_fails),
		T(test_tls_may_handshake_timeout),
		T(test_tls_dane_insecure),
		T(test_tls_may_protocol_error),
		T(test_lost_after_data),
		T(test_4xx_after_data),
		T(test_rcpt_4xx_next_mx),
		T(test_rcpt_5xx),
		T(test_nxdomain),
		T(test_many_domains),
		T(test_failed_dest_kept),
		T(test_probe),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, start_world, stop_world);
}
