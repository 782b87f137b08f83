/*
 * Unit tests for src/io.c against a socketpair() peer scripted by the
 * test, through the real event loop: lines split across reads, CRLF/LF,
 * over-long lines, EOF with pending data, back-pressure on a full read
 * buffer, a write queue of megabytes drained with IO_LOWAT refills,
 * connect success and failure, timeouts, io_free() inside callbacks.
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "event.h"
#include "io.h"
#include "util.h"

#define MAXLINES	64
#define MAXEV		64

struct ctx {
	struct ev_loop	*loop;
	struct io	*io;
	int		 ev[MAXEV];
	int		 nev;
	char		*line[MAXLINES];
	size_t		 len[MAXLINES];
	bool		 toolong[MAXLINES];
	int		 nlines;
	size_t		 counted;	/* lines counted, not kept */
	bool		 count_only;
	int		 free_on;	/* event that makes the callback free the io, or -1 */
	size_t		 pending_at_close;
	/* write refill */
	size_t		 to_write, written;
	int		 nlowat;
	/* peer reader */
	int		 peer;
	size_t		 peer_got;
	bool		 peer_bad;
};

static void
ctx_init(struct ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->free_on = -1;
	c->peer = -1;
	c->loop = ev_loop_new();
	assert_non_null(c->loop);
}

static void
ctx_done(struct ctx *c)
{
	for (int i = 0; i < c->nlines; i++)
		free(c->line[i]);
	if (c->io != NULL)
		io_free(c->io);
	if (c->peer != -1)
		close(c->peer);
	ev_loop_free(c->loop);
}

static void
refill(struct ctx *c)
{
	static char chunk[65536];

	/* Queue until above the low mark, as the SMTP client does with a body. */
	while (c->written < c->to_write && io_queued(c->io) < 65536) {
		size_t n = sizeof(chunk);

		if (n > c->to_write - c->written)
			n = c->to_write - c->written;
		for (size_t i = 0; i < n; i++)
			chunk[i] = (char)((c->written + i) % 251);
		assert_int_equal(io_write(c->io, chunk, n), 0);
		c->written += n;
	}
}

static void
on_io(struct io *io, enum io_event ev, void *arg)
{
	struct ctx *c = arg;
	const char *l;
	size_t len;
	bool tl;

	assert_ptr_equal(io, c->io);
	if (c->nev < MAXEV)
		c->ev[c->nev++] = ev;
	switch (ev) {
	case IO_DATAIN:
		if (c->free_on == IO_DATAIN)
			break;
		while ((l = io_getline(io, &len, &tl)) != NULL) {
			assert_int_equal(strlen(l) <= len, 1);
			if (c->count_only) {
				assert_false(tl);
				assert_int_equal(len, 8);
				assert_memory_equal(l, "abcdefgh", 8);
				c->counted++;
				continue;
			}
			assert_true(c->nlines < MAXLINES);
			c->line[c->nlines] = malloc(len + 1);
			memcpy(c->line[c->nlines], l, len + 1);
			c->len[c->nlines] = len;
			c->toolong[c->nlines] = tl;
			c->nlines++;
		}
		break;
	case IO_LOWAT:
		if (c->to_write > 0)
			refill(c);
		break;
	case IO_CLOSED:
		c->pending_at_close = io_pending(io);
		break;
	default:
		break;
	}
	if ((int)ev == c->free_on) {
		io_free(io);
		c->io = NULL;
	}
}

static void
run_until(struct ctx *c, int nev, int ms)
{
	uint64_t end = util_now_ms() + (uint64_t)ms;

	while (c->nev < nev && util_now_ms() < end)
		assert_int_equal(ev_run_once(c->loop, 10), 0);
}

/* Run the loop for a while without waiting for anything in particular. */
static void
spin(struct ctx *c, int iterations)
{
	for (int i = 0; i < iterations; i++)
		assert_int_equal(ev_run_once(c->loop, 5), 0);
}

static void
setup_pair(struct ctx *c)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	c->io = io_new(c->loop, on_io, c);
	io_attach(c->io, sv[0]);
	assert_int_equal(io_fd(c->io), sv[0]);
	c->peer = sv[1];
}

static void
peer_send(struct ctx *c, const char *s)
{
	size_t len = strlen(s);

	assert_int_equal(write(c->peer, s, len), (ssize_t)len);
}

static void
expect_line(struct ctx *c, int i, const char *s, bool tl)
{
	assert_true(i < c->nlines);
	assert_int_equal(c->len[i], strlen(s));
	assert_memory_equal(c->line[i], s, strlen(s));
	assert_int_equal(c->toolong[i], tl);
}

static void
test_lines_split(void **state)
{
	struct ctx c;

	(void)state;
	ctx_init(&c);
	setup_pair(&c);
	peer_send(&c, "HEL");
	spin(&c, 3);
	assert_int_equal(c.nev, 0);	/* no line yet: no DATAIN */
	assert_int_equal(io_pending(c.io), 3);
	peer_send(&c, "LO\r");
	spin(&c, 3);
	assert_int_equal(c.nlines, 0);
	peer_send(&c, "\nWOR");
	run_until(&c, 1, 1000);
	expect_line(&c, 0, "HELLO", false);
	peer_send(&c, "LD\n");
	run_until(&c, 2, 1000);
	expect_line(&c, 1, "WORLD", false);
	assert_int_equal(c.nlines, 2);
	assert_int_equal(io_pending(c.io), 0);
	ctx_done(&c);
}

static void
test_line_ends(void **state)
{
	struct ctx c;

	(void)state;
	ctx_init(&c);
	setup_pair(&c);
	/* CRLF and bare LF end lines; a bare CR does not; NUL is kept. */
	assert_int_equal(write(c.peer, "a\r\nb\nc\rd\r\n\r\n\n\r\re\0f\n", 19), 19);
	run_until(&c, 1, 1000);
	assert_int_equal(c.nlines, 6);
	expect_line(&c, 0, "a", false);
	expect_line(&c, 1, "b", false);
	expect_line(&c, 2, "c\rd", false);
	expect_line(&c, 3, "", false);
	expect_line(&c, 4, "", false);
	assert_int_equal(c.len[5], 5);
	assert_memory_equal(c.line[5], "\r\re\0f", 5);
	ctx_done(&c);
}

static void
test_too_long(void **state)
{
	struct ctx c;

	(void)state;
	ctx_init(&c);
	setup_pair(&c);
	io_set_line_max(c.io, 10);
	/* Exactly the limit is fine, with CRLF or LF. */
	peer_send(&c, "0123456789\r\n0123456789\n");
	run_until(&c, 1, 1000);
	expect_line(&c, 0, "0123456789", false);
	expect_line(&c, 1, "0123456789", false);
	/* One over, end in the same read: reported once, cut at the limit. */
	peer_send(&c, "0123456789A\r\nok\r\n");
	run_until(&c, 2, 1000);
	assert_int_equal(c.nlines, 4);
	expect_line(&c, 2, "0123456789", true);
	expect_line(&c, 3, "ok", false);
	/* No end in sight over several reads: once, the rest skipped. */
	for (int i = 0; i < 8; i++) {
		peer_send(&c, "xxxxx");
		spin(&c, 2);
	}
	assert_int_equal(c.nlines, 5);
	expect_line(&c, 4, "xxxxxxxxxx", true);
	assert_int_equal(io_pending(c.io), 0);
	peer_send(&c, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
	spin(&c, 2);
	assert_int_equal(c.nlines, 5);
	peer_send(&c, "yyy\r\nnext\r\n");
	run_until(&c, c.nev + 1, 1000);
	assert_int_equal(c.nlines, 6);
	expect_line(&c, 5, "next", false);
	/* 11 chars then a CR but no LF yet: already known too long. */
	peer_send(&c, "abcdefghijk\r");
	run_until(&c, c.nev + 1, 1000);
	assert_int_equal(c.nlines, 7);
	expect_line(&c, 6, "abcdefghij", true);
	peer_send(&c, "\nlast\n");
	run_until(&c, c.nev + 1, 1000);
	assert_int_equal(c.nlines, 8);
	expect_line(&c, 7, "last", false);
	ctx_done(&c);
}

static void
test_eof_pending(void **state)
{
	struct ctx c;

	(void)state;
	ctx_init(&c);
	setup_pair(&c);
	peer_send(&c, "one\r\ntwo\r\npartial");
	close(c.peer);
	c.peer = -1;
	run_until(&c, 2, 1000);
	assert_int_equal(c.nev, 2);
	assert_int_equal(c.ev[0], IO_DATAIN);
	assert_int_equal(c.ev[1], IO_CLOSED);
	assert_int_equal(c.nlines, 2);
	expect_line(&c, 0, "one", false);
	expect_line(&c, 1, "two", false);
	assert_int_equal(c.pending_at_close, 7);
	/* Nothing more follows, and the loop has nothing left to watch. */
	spin(&c, 3);
	assert_int_equal(c.nev, 2);
	assert_int_equal(io_write(c.io, "x", 1), -1);
	ctx_done(&c);
}

static void
test_backpressure(void **state)
{
	struct ctx c;
	size_t nlines = 20000, sent = 0;
	char *buf;

	(void)state;
	ctx_init(&c);
	setup_pair(&c);
	c.count_only = true;
	io_set_line_max(c.io, 10);
	buf = malloc(nlines * 10);
	for (size_t i = 0; i < nlines; i++)
		memcpy(buf + i * 10, "abcdefgh\r\n", 10);
	assert_int_equal(fcntl(c.peer, F_SETFL, O_NONBLOCK), 0);
	/* 200 KB, more than the read buffer: reading pauses and resumes. */
	while (sent < nlines * 10) {
		ssize_t n = write(c.peer, buf + sent, nlines * 10 - sent);

		if (n > 0)
			sent += (size_t)n;
		assert_int_equal(ev_run_once(c.loop, 5), 0);
	}
	for (int i = 0; i < 200 && c.counted < nlines; i++)
		assert_int_equal(ev_run_once(c.loop, 5), 0);
	assert_int_equal(c.counted, nlines);
	assert_true(c.nev > 1);
	free(buf);
	ctx_done(&c);
}

static void
on_peer_read(int fd, int events, void *arg)
{
	struct ctx *c = arg;
	unsigned char buf[32768];
	ssize_t n;

	(void)events;
	/* A slow reader: at most one buffer per iteration. */
	if ((n = read(fd, buf, sizeof(buf))) <= 0)
		return;
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] != (unsigned char)((c->peer_got + (size_t)i) % 251))
			c->peer_bad = true;
	c->peer_got += (size_t)n;
}

static void
test_write_big(void **state)
{
	struct ctx c;
	uint64_t t0;
	int lowat_seen = 0;

	(void)state;
	ctx_init(&c);
	setup_pair(&c);
	assert_int_equal(fcntl(c.peer, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(ev_fd_add(c.loop, c.peer, EV_READ, on_peer_read, &c), 0);
	c.to_write = 8 * 1024 * 1024;
	refill(&c);
	assert_true(io_queued(c.io) > 0);
	t0 = util_now_ms();
	while (c.peer_got < c.to_write && util_now_ms() - t0 < 20000)
		assert_int_equal(ev_run_once(c.loop, 100), 0);
	assert_int_equal(c.peer_got, c.to_write);
	assert_false(c.peer_bad);
	assert_int_equal(io_queued(c.io), 0);
	for (int i = 0; i < c.nev; i++)
		if (c.ev[i] == IO_LOWAT)
			lowat_seen++;
	assert_true(lowat_seen > 2);
	ev_fd_del(c.loop, c.peer);
	ctx_done(&c);
}

static void
test_printf(void **state)
{
	struct ctx c;
	char big[3000], got[4000];
	size_t have = 0;

	(void)state;
	ctx_init(&c);
	setup_pair(&c);
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(io_printf(c.io, "%d %s\r\n", 250, "OK"), 0);
	assert_int_equal(io_printf(c.io, "%s\r\n", big), 0);
	assert_int_equal(io_queued(c.io), 8 + 3001);
	spin(&c, 3);
	assert_int_equal(io_queued(c.io), 0);
	while (have < 8 + 3001) {
		ssize_t n = read(c.peer, got + have, sizeof(got) - have);

		assert_true(n > 0);
		have += (size_t)n;
	}
	assert_memory_equal(got, "250 OK\r\n", 8);
	assert_memory_equal(got + 8, big, 2999);
	ctx_done(&c);
}

static int
listener(struct sockaddr_in *sin, bool keep)
{
	socklen_t sl = sizeof(*sin);
	int s;

	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)sin, &sl), 0);
	if (!keep) {
		close(s);
		return -1;
	}
	assert_int_equal(listen(s, 8), 0);
	return s;
}

static void
test_connect_refused(void **state)
{
	struct ctx c;
	struct sockaddr_in sin;

	(void)state;
	ctx_init(&c);
	(void)listener(&sin, false);	/* a port nobody listens on */
	c.io = io_new(c.loop, on_io, &c);
	assert_int_equal(io_connect(c.io, (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	assert_int_equal(c.nev, 0);	/* never from inside io_connect */
	run_until(&c, 1, 2000);
	assert_int_equal(c.nev, 1);
	assert_int_equal(c.ev[0], IO_ERROR);
	assert_non_null(strstr(io_error(c.io), "refused"));
	ctx_done(&c);
}

static void
test_connect_ok(void **state)
{
	struct ctx c;
	struct sockaddr_in sin;
	char buf[16];
	int ls, s;

	(void)state;
	ctx_init(&c);
	ls = listener(&sin, true);
	c.io = io_new(c.loop, on_io, &c);
	assert_int_equal(io_connect(c.io, (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	/* Queued before the connection is up: goes out after. */
	assert_int_equal(io_printf(c.io, "EHLO x\r\n"), 0);
	assert_int_equal(io_connect(c.io, (struct sockaddr *)&sin,
	    sizeof(sin)), -1);
	run_until(&c, 1, 2000);
	assert_int_equal(c.ev[0], IO_CONNECTED);
	s = accept(ls, NULL, NULL);
	assert_true(s >= 0);
	spin(&c, 3);
	assert_int_equal(read(s, buf, sizeof(buf)), 8);
	assert_memory_equal(buf, "EHLO x\r\n", 8);
	assert_int_equal(write(s, "250 ok\r\n", 8), 8);
	run_until(&c, 3, 1000);
	expect_line(&c, 0, "250 ok", false);
	close(s);
	close(ls);
	ctx_done(&c);
}

static uint64_t sent_at;	/* when send_later() ran */

static void
send_later(void *arg)
{
	struct ctx *c = arg;

	sent_at = util_now_ms();
	peer_send(c, "tick\r\n");
}

/*
 * One try of test_timeout: 1 when it ran undisturbed and passed, 0 when
 * the machine held the process so long that the input came after the
 * timeout (a loaded machine: the caller tries again).
 */
static int
timeout_try(void)
{
	struct ctx c;
	struct ev_timer t1;
	uint64_t t0, dt;

	ctx_init(&c);
	setup_pair(&c);
	sent_at = 0;
	t0 = util_now_ms();
	io_set_timeout(c.io, 200);
	/* Input at 30 ms restarts the timer: the timeout comes 200 ms later. */
	ev_timer_init(&t1, send_later, &c);
	ev_timer_add(c.loop, &t1, 30);
	while (c.nev < 2 && util_now_ms() - t0 < 5000)
		assert_int_equal(ev_run_once(c.loop, -1), 0);
	dt = util_now_ms() - t0;
	if (sent_at == 0 || sent_at - t0 >= 150 ||
	    (c.nev >= 1 && c.ev[0] == IO_TIMEOUT)) {
		ev_timer_del(c.loop, &t1);
		ctx_done(&c);
		return 0;
	}
	assert_int_equal(c.nev, 2);
	assert_int_equal(c.ev[0], IO_DATAIN);
	assert_int_equal(c.ev[1], IO_TIMEOUT);
	/* From the input, not from the start. */
	assert_true(dt >= sent_at - t0 + 199);
	assert_true(dt < 5000);
	/* 0 turns it off. */
	io_set_timeout(c.io, 0);
	spin(&c, 20);
	assert_int_equal(c.nev, 2);
	ctx_done(&c);
	return 1;
}

static void
test_timeout(void **state)
{
	int tries;

	(void)state;
	for (tries = 0; tries < 10; tries++)
		if (timeout_try())
			break;
	assert_true(tries < 10);
}

static void
test_free_in_cb(void **state)
{
	static const int evs[] = { IO_DATAIN, IO_CLOSED, IO_TIMEOUT, IO_LOWAT };

	(void)state;
	for (size_t k = 0; k < sizeof(evs) / sizeof(evs[0]); k++) {
		struct ctx c;

		ctx_init(&c);
		setup_pair(&c);
		c.free_on = evs[k];
		switch (evs[k]) {
		case IO_DATAIN:
		case IO_CLOSED:
			/* More lines and the EOF wait behind the first event. */
			peer_send(&c, "a\r\nb\r\nc\r\n");
			shutdown(c.peer, SHUT_WR);
			break;
		case IO_TIMEOUT:
			io_set_timeout(c.io, 10);
			break;
		case IO_LOWAT:
			c.to_write = 100;
			refill(&c);
			break;
		}
		run_until(&c, 1, 1000);
		spin(&c, 5);
		assert_null(c.io);
		assert_int_equal(c.ev[c.nev - 1], evs[k]);
		if (evs[k] != IO_CLOSED)
			assert_int_equal(c.nev, 1);
		else
			assert_int_equal(c.nev, 2);
		ctx_done(&c);
	}
}

static void
test_free_connect_cb(void **state)
{
	struct ctx c;
	struct sockaddr_in sin;
	int ls;

	(void)state;
	ctx_init(&c);
	ls = listener(&sin, true);
	c.io = io_new(c.loop, on_io, &c);
	c.free_on = IO_CONNECTED;
	io_set_timeout(c.io, 20);
	assert_int_equal(io_connect(c.io, (struct sockaddr *)&sin,
	    sizeof(sin)), 0);
	run_until(&c, 1, 1000);
	spin(&c, 10);	/* the timeout must not fire after the free */
	assert_int_equal(c.nev, 1);
	assert_null(c.io);
	close(ls);
	ctx_done(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_split),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_eof_pending),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_write_big),
		cmocka_unit_test(test_printf),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_ok),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_free_in_cb),
		cmocka_unit_test(test_free_connect_cb),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
