/*
 * event: the epoll loop.
 *
 * File descriptors: a table indexed by fd, one registration per fd.  Each
 * registration gets a generation number that travels in the epoll event
 * data next to the fd, so an event fetched in a batch is dropped when its
 * registration was deleted (or deleted and replaced by a new one for the
 * same fd number) by an earlier callback of the same batch.  Events are
 * also masked with the interest current at dispatch time.
 *
 * Timers: a min-heap (heap.h) of pointers ordered by `when`; heap_idx is
 * its slot, 1 + the index (0 = not pending).  Timers due in an iteration are first
 * moved to a run batch, then run in deadline order; while in the batch,
 * heap_idx holds BATCH_FLAG | slot so that ev_timer_del() can clear the
 * slot (the owner may free the timer right after).  A timer re-armed from
 * a callback goes back to the heap and fires at the earliest on the next
 * iteration, so `ms = 0` never spins inside one iteration.
 *
 * Invariants: callbacks run only from ev_run_once(); ev_run_once() is not
 * re-entered from a callback.  Prepare hooks do not keep ev_run() alive:
 * it returns when no fd is registered and no timer is pending.
 */
#include "config.h"

#include <sys/epoll.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "heap.h"
#include "log.h"
#include "util.h"

#define EV_BATCH_MAX	256
#define BATCH_FLAG	((SIZE_MAX >> 1) + 1)

struct ev_fdreg {
	ev_fd_cb	 cb;
	void		*arg;
	int		 events;
	uint32_t	 gen;		/* 0 = slot unused */
};

struct ev_prepare {
	ev_prepare_cb	 cb;
	void		*arg;
};

struct ev_loop {
	int		  epfd;
	uint64_t	  now;
	bool		  stop;

	struct ev_fdreg	 *fds;
	size_t		  fds_cap;
	size_t		  nfds;		/* registrations in use */
	uint32_t	  gen;

	struct heap	  timers;

	struct ev_timer	**batch;	/* due timers of this iteration */
	size_t		  nbatch;
	size_t		  batch_cap;

	struct ev_prepare *prep;
	size_t		  nprep;
};

static uint32_t	to_epoll(int);
static struct ev_fdreg *fd_lookup(struct ev_loop *, int);
static bool	timer_less(const void *, const void *);
static int	next_wait(struct ev_loop *, int);
static void	run_timers(struct ev_loop *);

static uint32_t
to_epoll(int events)
{
	uint32_t e = 0;

	if (events & EV_READ)
		e |= EPOLLIN | EPOLLRDHUP;
	if (events & EV_WRITE)
		e |= EPOLLOUT;
	return e;
}

struct ev_loop *
ev_loop_new(void)
{
	struct ev_loop *loop;

	loop = xcalloc(1, sizeof(*loop));
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd == -1) {
		free(loop);
		return NULL;
	}
	loop->now = util_now_ms();
	heap_init(&loop->timers, timer_less, offsetof(struct ev_timer, heap_idx));
	return loop;
}

void
ev_loop_free(struct ev_loop *loop)
{
	if (loop == NULL)
		return;
	/* Leave the owners' timers in a sane "not pending" state. */
	for (size_t i = 0; i < loop->timers.n; i++)
		((struct ev_timer *)loop->timers.v[i])->heap_idx = 0;
	for (size_t i = 0; i < loop->nbatch; i++)
		if (loop->batch[i] != NULL)
			loop->batch[i]->heap_idx = 0;
	close(loop->epfd);
	free(loop->fds);
	heap_free(&loop->timers);
	free(loop->batch);
	free(loop->prep);
	free(loop);
}

static struct ev_fdreg *
fd_lookup(struct ev_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->fds_cap)
		return NULL;
	if (loop->fds[fd].gen == 0)
		return NULL;
	return &loop->fds[fd];
}

int
ev_fd_add(struct ev_loop *loop, int fd, int events, ev_fd_cb cb, void *arg)
{
	struct epoll_event ee;
	struct ev_fdreg *r;

	if (fd < 0 || cb == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (fd_lookup(loop, fd) != NULL) {
		errno = EEXIST;
		return -1;
	}
	if ((size_t)fd >= loop->fds_cap) {
		size_t ncap = loop->fds_cap ? loop->fds_cap : 64;

		while (ncap <= (size_t)fd)
			ncap *= 2;
		loop->fds = xreallocarray(loop->fds, ncap, sizeof(*loop->fds));
		memset(loop->fds + loop->fds_cap, 0,
		    (ncap - loop->fds_cap) * sizeof(*loop->fds));
		loop->fds_cap = ncap;
	}
	if (++loop->gen == 0)
		loop->gen = 1;
	memset(&ee, 0, sizeof(ee));
	ee.events = to_epoll(events);
	ee.data.u64 = ((uint64_t)loop->gen << 32) | (uint32_t)fd;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ee) == -1)
		return -1;
	r = &loop->fds[fd];
	r->cb = cb;
	r->arg = arg;
	r->events = events & (EV_READ | EV_WRITE);
	r->gen = loop->gen;
	loop->nfds++;
	return 0;
}

int
ev_fd_mod(struct ev_loop *loop, int fd, int events)
{
	struct epoll_event ee;
	struct ev_fdreg *r;

	if ((r = fd_lookup(loop, fd)) == NULL) {
		errno = ENOENT;
		return -1;
	}
	events &= EV_READ | EV_WRITE;
	if (r->events == events)
		return 0;
	memset(&ee, 0, sizeof(ee));
	ee.events = to_epoll(events);
	ee.data.u64 = ((uint64_t)r->gen << 32) | (uint32_t)fd;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ee) == -1)
		return -1;
	r->events = events;
	return 0;
}

void
ev_fd_del(struct ev_loop *loop, int fd)
{
	struct ev_fdreg *r;

	if ((r = fd_lookup(loop, fd)) == NULL)
		return;
	/* Fails with EBADF when the owner closed first; nothing to undo then. */
	(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	memset(r, 0, sizeof(*r));
	loop->nfds--;
}

void
ev_timer_init(struct ev_timer *t, ev_timer_cb cb, void *arg)
{
	t->cb = cb;
	t->arg = arg;
	t->when = 0;
	t->heap_idx = 0;
}

static bool
timer_less(const void *a, const void *b)
{
	return ((const struct ev_timer *)a)->when <
	    ((const struct ev_timer *)b)->when;
}

void
ev_timer_add(struct ev_loop *loop, struct ev_timer *t, uint64_t ms)
{
	ev_timer_del(loop, t);
	t->when = ms > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + ms;
	heap_push(&loop->timers, t);
}

void
ev_timer_add_earlier(struct ev_loop *loop, struct ev_timer *t, uint64_t ms)
{
	uint64_t when = ms > UINT64_MAX - loop->now ? UINT64_MAX :
	    loop->now + ms;

	if (ev_timer_pending(t) && t->when <= when)
		return;
	ev_timer_add(loop, t, ms);
}

void
ev_timer_del(struct ev_loop *loop, struct ev_timer *t)
{
	if (t->heap_idx == 0)
		return;
	if (t->heap_idx & BATCH_FLAG) {
		size_t slot = t->heap_idx & ~BATCH_FLAG;

		if (slot < loop->nbatch && loop->batch[slot] == t)
			loop->batch[slot] = NULL;
		t->heap_idx = 0;
		return;
	}
	heap_remove(&loop->timers, t);
	t->heap_idx = 0;
}

bool
ev_timer_pending(const struct ev_timer *t)
{
	return t->heap_idx != 0;
}

void
ev_prepare_add(struct ev_loop *loop, ev_prepare_cb cb, void *arg)
{
	loop->prep = xreallocarray(loop->prep, loop->nprep + 1,
	    sizeof(*loop->prep));
	loop->prep[loop->nprep].cb = cb;
	loop->prep[loop->nprep].arg = arg;
	loop->nprep++;
}

uint64_t
ev_now(struct ev_loop *loop)
{
	return loop->now;
}

/* The epoll timeout: the smallest of the caller's cap, the next timer and the hooks. */
static int
next_wait(struct ev_loop *loop, int max_wait_ms)
{
	int wait = max_wait_ms < 0 ? -1 : max_wait_ms;

	for (size_t i = 0; i < loop->nprep; i++) {
		int cap = loop->prep[i].cb(loop->prep[i].arg);

		if (cap >= 0 && (wait < 0 || cap < wait))
			wait = cap;
	}
	if (loop->timers.n > 0) {
		const struct ev_timer *t = heap_top(&loop->timers);
		uint64_t when = t->when, now = util_now_ms();
		uint64_t d = when > now ? when - now : 0;

		if (d > INT_MAX)
			d = INT_MAX;
		if (wait < 0 || (int)d < wait)
			wait = (int)d;
	}
	return wait;
}

static void
run_timers(struct ev_loop *loop)
{
	/* Move everything due to the batch first: re-arms wait for the next round. */
	loop->nbatch = 0;
	while (loop->timers.n > 0 && ((struct ev_timer *)
	    heap_top(&loop->timers))->when <= loop->now) {
		struct ev_timer *t = heap_pop(&loop->timers);

		if (loop->nbatch == loop->batch_cap) {
			size_t ncap = loop->batch_cap ? loop->batch_cap * 2 : 64;

			loop->batch = xreallocarray(loop->batch, ncap,
			    sizeof(*loop->batch));
			loop->batch_cap = ncap;
		}
		t->heap_idx = BATCH_FLAG | loop->nbatch;
		loop->batch[loop->nbatch++] = t;
	}
	for (size_t i = 0; i < loop->nbatch; i++) {
		struct ev_timer *t = loop->batch[i];

		if (t == NULL)
			continue;
		loop->batch[i] = NULL;
		t->heap_idx = 0;
		t->cb(t->arg);
	}
	loop->nbatch = 0;
}

int
ev_run_once(struct ev_loop *loop, int max_wait_ms)
{
	struct epoll_event evs[EV_BATCH_MAX];
	int n, wait;

	loop->now = util_now_ms();
	wait = next_wait(loop, max_wait_ms);
	n = epoll_wait(loop->epfd, evs, EV_BATCH_MAX, wait);
	if (n == -1) {
		if (errno != EINTR)
			return -1;
		n = 0;
	}
	loop->now = util_now_ms();
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		uint32_t e = evs[i].events;
		struct ev_fdreg *r;
		int events = 0;

		/* Deleted (or replaced) by an earlier callback of this batch. */
		if ((r = fd_lookup(loop, fd)) == NULL || r->gen != gen)
			continue;
		if (e & (EPOLLIN | EPOLLRDHUP))
			events |= EV_READ;
		if (e & EPOLLOUT)
			events |= EV_WRITE;
		events &= r->events;
		if (e & (EPOLLERR | EPOLLHUP))
			events |= EV_ERROR | EV_READ;
		if (events == 0)
			continue;
		r->cb(fd, events, r->arg);
	}
	run_timers(loop);
	return 0;
}

int
ev_run(struct ev_loop *loop)
{
	loop->stop = false;
	while (!loop->stop) {
		if (loop->nfds == 0 && loop->timers.n == 0)
			break;
		if (ev_run_once(loop, -1) == -1)
			return -1;
	}
	loop->stop = false;
	return 0;
}

void
ev_break(struct ev_loop *loop)
{
	loop->stop = true;
}
