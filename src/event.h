/*
 * event: one epoll loop for everything (c-ares sockets, SMTP sockets, TLS,
 * timers).  Single-threaded.  Callbacks run from ev_run()/ev_run_once()
 * only, never from inside ev_* calls.
 */
#ifndef MXRELAY_EVENT_H
#define MXRELAY_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EV_READ		0x01
#define EV_WRITE	0x02
#define EV_ERROR	0x04	/* EPOLLERR/EPOLLHUP, reported with READ set too */

struct ev_loop;

typedef void (*ev_fd_cb)(int fd, int events, void *arg);
typedef void (*ev_timer_cb)(void *arg);
/* Called before each wait; returns the longest wait in ms, or -1 for no cap. */
typedef int (*ev_prepare_cb)(void *arg);

/*
 * A timer lives in its owner's memory (embed it); the loop only links it.
 * Fields are private to event.c.
 */
struct ev_timer {
	ev_timer_cb	 cb;
	void		*arg;
	uint64_t	 when;		/* ms, ev_now() clock */
	size_t		 heap_idx;	/* 0 = not pending */
};

struct ev_loop	*ev_loop_new(void);
void		 ev_loop_free(struct ev_loop *);

/* Watch fd for events (EV_READ|EV_WRITE); one registration per fd. */
int		 ev_fd_add(struct ev_loop *, int fd, int events, ev_fd_cb, void *arg);
int		 ev_fd_mod(struct ev_loop *, int fd, int events);
/* Safe to call from inside that fd's callback; no callback follows. */
void		 ev_fd_del(struct ev_loop *, int fd);

void		 ev_timer_init(struct ev_timer *, ev_timer_cb, void *arg);
/* Arm (or re-arm) to fire once, ms from now.  0 = on the next iteration. */
void		 ev_timer_add(struct ev_loop *, struct ev_timer *, uint64_t ms);
/* Make it fire within ms from now: armed sooner already, it is left be. */
void		 ev_timer_add_earlier(struct ev_loop *, struct ev_timer *,
		    uint64_t ms);
void		 ev_timer_del(struct ev_loop *, struct ev_timer *);
bool		 ev_timer_pending(const struct ev_timer *);

/* Several hooks may be added; the smallest cap wins. */
void		 ev_prepare_add(struct ev_loop *, ev_prepare_cb, void *arg);

/* Monotonic milliseconds, read once per loop iteration. */
uint64_t	 ev_now(struct ev_loop *);

/* One iteration: wait at most max_wait_ms (-1 = no limit), run callbacks. */
int		 ev_run_once(struct ev_loop *, int max_wait_ms);
/* Iterate until ev_break(), or until nothing (fd or timer) is left. */
int		 ev_run(struct ev_loop *);
void		 ev_break(struct ev_loop *);

#endif
