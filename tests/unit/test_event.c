/*
 * Unit tests for src/event.c: fd readiness over socketpair(), timer order
 * (including re-arm and delete from callbacks, and 10k timers), deleting
 * fds from callbacks within one epoll batch, prepare hooks capping the
 * wait, ev_run() ending and ev_break().
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "event.h"
#include "util.h"

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0, sv), 0);
}

/* ---- fd readiness ---- */

struct fdrec {
	struct ev_loop	*loop;
	int		 calls;
	int		 last_events;
	int		 last_fd;
};

static void
on_fd(int fd, int events, void *arg)
{
	struct fdrec *r = arg;

	r->calls++;
	r->last_events = events;
	r->last_fd = fd;
}

static void
test_fd_readiness(void **state)
{
	struct ev_loop *loop;
	struct fdrec r = { 0 };
	int sv[2];
	char c;

	(void)state;
	loop = ev_loop_new();
	assert_non_null(loop);
	pair(sv);
	r.loop = loop;
	assert_int_equal(ev_fd_add(loop, sv[0], EV_READ, on_fd, &r), 0);
	/* One registration per fd. */
	assert_int_equal(ev_fd_add(loop, sv[0], EV_READ, on_fd, &r), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(ev_fd_mod(loop, sv[1], EV_READ), -1);

	/* Nothing to read: the wait times out. */
	assert_int_equal(ev_run_once(loop, 10), 0);
	assert_int_equal(r.calls, 0);

	assert_int_equal(write(sv[1], "x", 1), 1);
	assert_int_equal(ev_run_once(loop, 1000), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.last_fd, sv[0]);
	assert_int_equal(r.last_events, EV_READ);
	assert_int_equal(read(sv[0], &c, 1), 1);

	/* Write interest: a fresh socket is writable. */
	assert_int_equal(ev_fd_mod(loop, sv[0], EV_WRITE), 0);
	assert_int_equal(ev_run_once(loop, 1000), 0);
	assert_int_equal(r.calls, 2);
	assert_int_equal(r.last_events, EV_WRITE);

	/* No interest: no callback. */
	assert_int_equal(ev_fd_mod(loop, sv[0], 0), 0);
	assert_int_equal(ev_run_once(loop, 10), 0);
	assert_int_equal(r.calls, 2);

	/* The peer goes away: reported as an error, with READ. */
	assert_int_equal(ev_fd_mod(loop, sv[0], EV_WRITE), 0);
	close(sv[1]);
	assert_int_equal(ev_run_once(loop, 1000), 0);
	assert_int_equal(r.calls, 3);
	assert_true(r.last_events & EV_ERROR);
	assert_true(r.last_events & EV_READ);

	ev_fd_del(loop, sv[0]);
	ev_fd_del(loop, sv[0]);		/* twice is harmless */
	close(sv[0]);
	/* Nothing left: ev_run returns at once. */
	assert_int_equal(ev_run(loop), 0);
	ev_loop_free(loop);
}

/* ---- deletion from callbacks ---- */

struct delctx {
	struct ev_loop	*loop;
	int		 sa[2], sb[2];
	int		 calls_a, calls_b, calls_new;
	int		 fresh[2];
	int		*victim_calls;
	int		 reuse;		/* 1: fd number was reused */
};

static void on_del_a(int, int, void *);
static void on_del_b(int, int, void *);

static void
on_new(int fd, int events, void *arg)
{
	struct delctx *d = arg;

	(void)fd;
	(void)events;
	d->calls_new++;
}

/* Whichever of a/b runs first deletes and closes the other, then reuses its number. */
static void
kill_other(struct delctx *d, int other[2], int self[2])
{
	int oldfd = other[0];

	ev_fd_del(d->loop, other[0]);
	close(other[0]);
	close(other[1]);
	other[0] = other[1] = -1;
	pair(d->fresh);
	d->reuse = d->fresh[0] == oldfd || d->fresh[1] == oldfd;
	/* Register both ends; the one with the old number must not see the stale event. */
	assert_int_equal(ev_fd_add(d->loop, d->fresh[0], EV_READ, on_new, d), 0);
	assert_int_equal(ev_fd_add(d->loop, d->fresh[1], EV_READ, on_new, d), 0);
	/* And delete ourselves: no second callback for us either. */
	ev_fd_del(d->loop, self[0]);
}

static void
on_del_a(int fd, int events, void *arg)
{
	struct delctx *d = arg;

	(void)fd;
	(void)events;
	d->calls_a++;
	kill_other(d, d->sb, d->sa);
}

static void
on_del_b(int fd, int events, void *arg)
{
	struct delctx *d = arg;

	(void)fd;
	(void)events;
	d->calls_b++;
	kill_other(d, d->sa, d->sb);
}

static void
test_fd_del_in_batch(void **state)
{
	struct ev_loop *loop;
	struct delctx *d;

	(void)state;
	loop = ev_loop_new();
	d = calloc(1, sizeof(*d));
	assert_non_null(d);
	d->loop = loop;
	pair(d->sa);
	pair(d->sb);
	assert_int_equal(ev_fd_add(loop, d->sa[0], EV_READ, on_del_a, d), 0);
	assert_int_equal(ev_fd_add(loop, d->sb[0], EV_READ, on_del_b, d), 0);
	assert_int_equal(write(d->sa[1], "a", 1), 1);
	assert_int_equal(write(d->sb[1], "b", 1), 1);

	/* Both are ready in one epoll_wait batch; exactly one callback runs. */
	assert_int_equal(ev_run_once(loop, 1000), 0);
	assert_int_equal(d->calls_a + d->calls_b, 1);
	assert_int_equal(d->calls_new, 0);
	assert_int_equal(d->reuse, 1);	/* the stale-event case was exercised */
	/* Later iterations: nothing stale either. */
	assert_int_equal(ev_run_once(loop, 20), 0);
	assert_int_equal(d->calls_a + d->calls_b, 1);
	assert_int_equal(d->calls_new, 0);

	ev_fd_del(loop, d->fresh[0]);
	ev_fd_del(loop, d->fresh[1]);
	close(d->fresh[0]);
	close(d->fresh[1]);
	for (int i = 0; i < 2; i++) {
		if (d->sa[i] != -1)
			close(d->sa[i]);
		if (d->sb[i] != -1)
			close(d->sb[i]);
	}
	assert_int_equal(ev_run(loop), 0);
	free(d);
	ev_loop_free(loop);
}

/* A callback frees the context of another fd: no use after free (ASan). */
struct owned {
	struct ev_loop	*loop;
	int		 sv[2];
	struct owned	*peer;
	int		*calls;
};

static void
on_owned(int fd, int events, void *arg)
{
	struct owned *o = arg;
	struct owned *p = o->peer;

	(void)fd;
	(void)events;
	(*o->calls)++;
	if (p != NULL) {
		ev_fd_del(o->loop, p->sv[0]);
		close(p->sv[0]);
		close(p->sv[1]);
		free(p);
	}
	ev_fd_del(o->loop, o->sv[0]);
	close(o->sv[0]);
	close(o->sv[1]);
	free(o);
}

static void
test_fd_del_frees_other(void **state)
{
	struct ev_loop *loop;
	struct owned *a, *b;
	int calls = 0;

	(void)state;
	loop = ev_loop_new();
	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	assert_non_null(a);
	assert_non_null(b);
	a->loop = b->loop = loop;
	a->calls = b->calls = &calls;
	a->peer = b;
	b->peer = a;
	pair(a->sv);
	pair(b->sv);
	assert_int_equal(ev_fd_add(loop, a->sv[0], EV_READ, on_owned, a), 0);
	assert_int_equal(ev_fd_add(loop, b->sv[0], EV_READ, on_owned, b), 0);
	assert_int_equal(write(a->sv[1], "a", 1), 1);
	assert_int_equal(write(b->sv[1], "b", 1), 1);
	assert_int_equal(ev_run(loop), 0);	/* ends: nothing is left */
	assert_int_equal(calls, 1);
	ev_loop_free(loop);
}

/* ---- timers ---- */

#define NREC	64

struct trec {
	struct ev_loop	*loop;
	int		 order[NREC];
	int		 n;
};

struct tctx {
	struct ev_timer	 t;
	struct trec	*rec;
	int		 id;
	int		 rearm;		/* times left to re-arm with 0 ms */
	struct ev_timer	*victim;
	uint64_t	 armed_at, delay;
};

static void
on_timer(void *arg)
{
	struct tctx *c = arg;
	struct trec *r = c->rec;

	assert_false(ev_timer_pending(&c->t));
	assert_true(ev_now(r->loop) >= c->armed_at + c->delay);
	if (r->n < NREC)
		r->order[r->n++] = c->id;
	if (c->victim != NULL)
		ev_timer_del(r->loop, c->victim);
	if (c->rearm > 0) {
		c->rearm--;
		c->armed_at = ev_now(r->loop);
		c->delay = 0;
		ev_timer_add(r->loop, &c->t, 0);
		assert_true(ev_timer_pending(&c->t));
	}
}

static void
arm(struct ev_loop *loop, struct tctx *c, struct trec *r, int id, uint64_t ms)
{
	ev_timer_init(&c->t, on_timer, c);
	c->rec = r;
	c->id = id;
	c->armed_at = ev_now(loop);
	c->delay = ms;
	ev_timer_add(loop, &c->t, ms);
}

static void
test_timer_order(void **state)
{
	struct ev_loop *loop;
	struct trec r = { 0 };
	struct tctx c[5];
	uint64_t t0;

	(void)state;
	memset(c, 0, sizeof(c));
	/* Before the loop reads its clock: the delays count from there. */
	t0 = util_now_ms();
	loop = ev_loop_new();
	r.loop = loop;
	arm(loop, &c[0], &r, 30, 30);
	arm(loop, &c[1], &r, 10, 10);
	arm(loop, &c[2], &r, 20, 20);
	arm(loop, &c[3], &r, 99, 40);
	ev_timer_del(loop, &c[3].t);
	assert_false(ev_timer_pending(&c[3].t));
	/* Re-arming moves a timer: 5 ms becomes 25 ms. */
	arm(loop, &c[4], &r, 25, 5);
	c[4].delay = 25;
	ev_timer_add(loop, &c[4].t, 25);
	assert_int_equal(ev_run(loop), 0);
	assert_true(util_now_ms() - t0 >= 30);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.order[0], 10);
	assert_int_equal(r.order[1], 20);
	assert_int_equal(r.order[2], 25);
	assert_int_equal(r.order[3], 30);
	ev_loop_free(loop);
}

/* ev_timer_add_earlier: moves a timer sooner, never later; arms an idle one. */
static void
test_timer_add_earlier(void **state)
{
	struct ev_loop *loop;
	struct trec r = { 0 };
	struct tctx c[4];

	(void)state;
	memset(c, 0, sizeof(c));
	loop = ev_loop_new();
	r.loop = loop;
	arm(loop, &c[0], &r, 1, 40);
	/* Later than it is armed for: left at 40 ms (before 4's 100 ms). */
	ev_timer_add_earlier(loop, &c[0].t, 5000);
	arm(loop, &c[3], &r, 4, 100);
	/* Sooner: 40 ms becomes 10 ms. */
	arm(loop, &c[1], &r, 2, 5000);
	c[1].delay = 10;
	ev_timer_add_earlier(loop, &c[1].t, 10);
	/* Not armed at all: armed. */
	ev_timer_init(&c[2].t, on_timer, &c[2]);
	c[2].rec = &r;
	c[2].id = 3;
	c[2].armed_at = ev_now(loop);
	c[2].delay = 20;
	ev_timer_add_earlier(loop, &c[2].t, 20);
	assert_true(ev_timer_pending(&c[2].t));
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.order[0], 2);
	assert_int_equal(r.order[1], 3);
	assert_int_equal(r.order[2], 1);
	assert_int_equal(r.order[3], 4);
	ev_loop_free(loop);
}

static void
test_timer_rearm_in_cb(void **state)
{
	struct ev_loop *loop;
	struct trec r = { 0 };
	struct tctx c;
	int iters = 0;

	(void)state;
	memset(&c, 0, sizeof(c));
	loop = ev_loop_new();
	r.loop = loop;
	arm(loop, &c, &r, 1, 0);
	c.rearm = 3;
	/* ms = 0 fires once per iteration, never twice in one. */
	while (ev_timer_pending(&c.t)) {
		int before = r.n;

		assert_int_equal(ev_run_once(loop, 1000), 0);
		assert_int_equal(r.n, before + 1);
		iters++;
		assert_true(iters <= 4);
	}
	assert_int_equal(r.n, 4);
	ev_loop_free(loop);
}

static void
test_timer_del_in_cb(void **state)
{
	struct ev_loop *loop;
	struct trec r = { 0 };
	struct tctx c[3];

	(void)state;
	memset(c, 0, sizeof(c));
	loop = ev_loop_new();
	r.loop = loop;
	/* Same deadline: both are due in one batch; the first run deletes the other. */
	arm(loop, &c[0], &r, 1, 5);
	arm(loop, &c[1], &r, 2, 5);
	c[0].victim = &c[1].t;
	c[1].victim = &c[0].t;
	/* A later one deleted from a callback too. */
	arm(loop, &c[2], &r, 3, 50);
	c[0].victim = &c[1].t;
	assert_int_equal(ev_run_once(loop, 1000), 0);
	while (r.n == 0)
		assert_int_equal(ev_run_once(loop, 1000), 0);
	assert_int_equal(r.n, 1);
	assert_false(ev_timer_pending(&c[0].t));
	assert_false(ev_timer_pending(&c[1].t));
	assert_true(ev_timer_pending(&c[2].t));
	ev_timer_del(loop, &c[2].t);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(r.n, 1);
	ev_loop_free(loop);
}

/* A timer callback that frees another timer due in the same batch. */
struct heaptimer {
	struct ev_timer	  t;
	struct ev_loop	 *loop;
	struct heaptimer **other;
	int		 *calls;
};

static void
on_heaptimer(void *arg)
{
	struct heaptimer *h = arg;

	(*h->calls)++;
	if (*h->other != NULL) {
		ev_timer_del(h->loop, &(*h->other)->t);
		free(*h->other);
		*h->other = NULL;
	}
}

static void
test_timer_free_other_in_cb(void **state)
{
	struct ev_loop *loop;
	struct heaptimer *a, *b;
	int calls = 0;

	(void)state;
	loop = ev_loop_new();
	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	ev_timer_init(&a->t, on_heaptimer, a);
	ev_timer_init(&b->t, on_heaptimer, b);
	a->loop = b->loop = loop;
	a->calls = b->calls = &calls;
	a->other = &b;
	b->other = &a;
	ev_timer_add(loop, &a->t, 1);
	ev_timer_add(loop, &b->t, 1);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(calls, 1);
	free(a);
	free(b);
	ev_loop_free(loop);
}

#define NMANY	10000

struct many {
	struct ev_timer	 t;
	struct ev_loop	*loop;
	uint64_t	 when;
	uint64_t	*last;
	size_t		*fired;
	int		*bad;
};

static void
on_many(void *arg)
{
	struct many *m = arg;

	if (m->when < *m->last || ev_now(m->loop) < m->when)
		(*m->bad)++;
	*m->last = m->when;
	(*m->fired)++;
}

static void
test_timer_many(void **state)
{
	struct ev_loop *loop;
	struct many *m;
	uint64_t last = 0;
	size_t fired = 0;
	int bad = 0;

	(void)state;
	loop = ev_loop_new();
	m = calloc(NMANY, sizeof(*m));
	assert_non_null(m);
	srandom(42);
	for (size_t i = 0; i < NMANY; i++) {
		uint64_t ms = (uint64_t)(random() % 60);

		ev_timer_init(&m[i].t, on_many, &m[i]);
		m[i].loop = loop;
		m[i].last = &last;
		m[i].fired = &fired;
		m[i].bad = &bad;
		m[i].when = ev_now(loop) + ms;
		ev_timer_add(loop, &m[i].t, ms);
	}
	/* Delete every tenth, some of them from the middle of the heap. */
	for (size_t i = 0; i < NMANY; i += 10)
		ev_timer_del(loop, &m[i].t);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(fired, NMANY - NMANY / 10);
	assert_int_equal(bad, 0);
	for (size_t i = 0; i < NMANY; i++)
		assert_false(ev_timer_pending(&m[i].t));
	free(m);
	ev_loop_free(loop);
}

/* ---- prepare hooks, ev_run/ev_break ---- */

static int
prep_cap(void *arg)
{
	int *calls_cap = arg;

	calls_cap[0]++;
	return calls_cap[1];
}

static void
test_prepare_cap(void **state)
{
	struct ev_loop *loop;
	struct trec r = { 0 };
	struct tctx c;
	int h1[2] = { 0, -1 }, h2[2] = { 0, 20 }, h3[2] = { 0, 200 };
	uint64_t t0, dt;

	(void)state;
	memset(&c, 0, sizeof(c));
	loop = ev_loop_new();
	r.loop = loop;
	arm(loop, &c, &r, 1, 10000);
	ev_prepare_add(loop, prep_cap, h1);
	ev_prepare_add(loop, prep_cap, h2);
	ev_prepare_add(loop, prep_cap, h3);
	t0 = util_now_ms();
	assert_int_equal(ev_run_once(loop, -1), 0);
	dt = util_now_ms() - t0;
	/* The smallest cap (20 ms) wins over the timer (10 s) and the others. */
	assert_true(dt >= 19);
	assert_true(dt < 2000);
	assert_int_equal(h1[0], 1);
	assert_int_equal(h2[0], 1);
	assert_int_equal(h3[0], 1);
	assert_int_equal(r.n, 0);
	/* A cap of 0 polls. */
	h2[1] = 0;
	t0 = util_now_ms();
	assert_int_equal(ev_run_once(loop, -1), 0);
	assert_true(util_now_ms() - t0 < 100);
	/* The caller's limit also counts. */
	h2[1] = -1;
	h3[1] = -1;
	t0 = util_now_ms();
	assert_int_equal(ev_run_once(loop, 5), 0);
	dt = util_now_ms() - t0;
	assert_true(dt >= 4 && dt < 2000);
	ev_timer_del(loop, &c.t);
	ev_loop_free(loop);
}

static void
on_break(void *arg)
{
	ev_break(arg);
}

static void
on_chain(void *arg)
{
	struct tctx *c = arg;

	/* Arms the next one: ev_run keeps going while a timer is pending. */
	c->rec->order[c->rec->n++] = c->id;
	if (c->id < 3) {
		c[1].armed_at = ev_now(c->rec->loop);
		ev_timer_add(c->rec->loop, &c[1].t, 2);
	}
}

static void
test_run_break(void **state)
{
	struct ev_loop *loop;
	struct ev_timer tb;
	struct trec r = { 0 };
	struct tctx c[3];
	struct fdrec fr = { 0 };
	int sv[2];

	(void)state;
	memset(c, 0, sizeof(c));
	loop = ev_loop_new();
	r.loop = loop;
	for (int i = 0; i < 3; i++) {
		ev_timer_init(&c[i].t, on_chain, &c[i]);
		c[i].rec = &r;
		c[i].id = i + 1;
	}
	ev_timer_add(loop, &c[0].t, 1);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(r.n, 3);

	/* An idle fd keeps ev_run going until ev_break. */
	pair(sv);
	assert_int_equal(ev_fd_add(loop, sv[0], EV_READ, on_fd, &fr), 0);
	ev_timer_init(&tb, on_break, loop);
	ev_timer_add(loop, &tb, 10);
	assert_int_equal(ev_run(loop), 0);
	assert_int_equal(fr.calls, 0);
	ev_fd_del(loop, sv[0]);
	close(sv[0]);
	close(sv[1]);
	ev_loop_free(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fd_readiness),
		cmocka_unit_test(test_fd_del_in_batch),
		cmocka_unit_test(test_fd_del_frees_other),
		cmocka_unit_test(test_timer_order),
		cmocka_unit_test(test_timer_add_earlier),
		cmocka_unit_test(test_timer_rearm_in_cb),
		cmocka_unit_test(test_timer_del_in_cb),
		cmocka_unit_test(test_timer_free_other_in_cb),
		cmocka_unit_test(test_timer_many),
		cmocka_unit_test(test_prepare_cap),
		cmocka_unit_test(test_run_break),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
