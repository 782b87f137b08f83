/*
 * io: one buffered non-blocking stream connection on the event loop, with
 * TLS inside (OpenSMTPD's ioev.c in spirit).
 *
 * Read buffer: rbuf[rpos..rlen) holds bytes read and not yet taken.  Its
 * size is at least line_max + 2, so a buffer with no LF in it and
 * line_max + 2 bytes or more holds an over-long line: io_getline() hands
 * over its first line_max bytes once with too_long set and drops the rest
 * of the line, also what arrives later up to the next LF ("skipping").
 * When the buffer is full of lines the owner has not taken, reading stops
 * until io_getline() makes room (back-pressure, never silent loss).
 * Raw mode (SMTP DATA) reports any buffered byte as IO_DATAIN; the owner
 * takes bytes with io_peek()/io_consume(), which also lift the pause.
 *
 * Write queue: wbuf[wpos..wlen), grown as needed; flushed from the loop
 * only, IO_LOWAT after a flush leaves fewer than lowat bytes queued.
 *
 * TLS: io_start_tls() first lets the plaintext still queued go out (a
 * "220 Ready to start TLS" reply), then runs the handshake from the loop.
 * SSL_read/SSL_write run with WANT_READ/WANT_WRITE mapped to the epoll
 * interest; a write is retried with the same length; reads go on until
 * WANT_READ so nothing waits in SSL's buffer while we sleep; the error
 * queue is cleared before each SSL call and its text kept for io_error().
 *
 * Callbacks run only from the loop, never from inside an io_* call, so
 * io_connect() reports even an immediate failure as IO_ERROR from the
 * loop (it returns -1 only on misuse).  io_free() from inside the callback
 * releases everything but the struct, which goes when the callback
 * returns ("in_cb"/"freed"), and no further event is delivered.
 *
 * OpenSSL writes with write(2): programs must ignore SIGPIPE.
 */
#include "config.h"

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "event.h"
#include "io.h"
#include "log.h"
#include "util.h"

#define LINE_MAX_DEFAULT	1000
#define LOWAT_DEFAULT	16384
#define IO_RBUF_MIN	16384
#define IO_WCHUNK	(1024 * 1024)

enum io_tls_state {
	IO_TLS_NONE,		/* clear text */
	IO_TLS_FLUSH,		/* clear text still queued before the handshake */
	IO_TLS_HANDSHAKE,
	IO_TLS_ON,
};

struct io {
	struct ev_loop	*loop;
	io_cb		 cb;
	void		*arg;
	int		 fd;
	int		 ev_events;	/* current interest */
	bool		 registered;
	bool		 connecting;
	bool		 eof;
	bool		 dead;		/* CLOSED/ERROR delivered: no more events */
	bool		 paused;	/* read buffer full */
	bool		 skipping;	/* dropping the rest of an over-long line */
	bool		 raw;		/* IO_DATAIN for any byte (io_set_raw()) */
	bool		 error_pending;	/* IO_ERROR due from the kick timer */
	int		 in_cb;
	bool		 freed;

	char		*rbuf;
	size_t		 rpos, rlen, rcap;
	size_t		 line_max;

	char		*wbuf;
	size_t		 wpos, wlen, wcap;
	size_t		 lowat;
	size_t		 clear_left;	/* queued bytes to send before TLS */

	unsigned	 timeout_ms;
	struct ev_timer	 timer;
	struct ev_timer	 kick;		/* deferred work on the next iteration */
	struct ev_timer	 flush;		/* send what io_write() queued */

	SSL		*ssl;
	enum io_tls_state tls;
	bool		 tls_client;
	int		 hs_want;	/* EV_READ/EV_WRITE for the handshake */
	bool		 rd_want_write;	/* SSL_read said WANT_WRITE */
	bool		 wr_want_read;	/* SSL_write said WANT_READ */
	size_t		 tls_wretry;	/* length of the SSL_write to repeat */
	int		 dane_usable;	/* TLSA records OpenSSL took; -1 no DANE */

	char		 err[512];
};

static bool	emit(struct io *, enum io_event);
static void	fail(struct io *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	tls_fail(struct io *, const char *, int, int);
static void	update_events(struct io *);
static void	arm_timer(struct io *);
static void	kick(struct io *);
static void	on_fd(int, int, void *);
static void	on_timer(void *);
static void	on_kick(void *);
static void	on_flush(void *);
static bool	can_flush(const struct io *);
static void	process(struct io *, int);
static bool	do_connected(struct io *);
static bool	do_handshake(struct io *);
static bool	do_write(struct io *, bool);
static bool	do_read(struct io *);
static bool	has_line(const struct io *);
static void	rbuf_reserve(struct io *);
static bool	is_ip_literal(const char *);
static int	tls_new(struct io *, SSL_CTX *);
static int	tls_setup_fail(struct io *);
static void	tls_begin(struct io *, bool);
static void	dane_text(const struct io *, char *, size_t);

struct io *
io_new(struct ev_loop *loop, io_cb cb, void *arg)
{
	struct io *io;

	io = xcalloc(1, sizeof(*io));
	io->loop = loop;
	io->cb = cb;
	io->arg = arg;
	io->fd = -1;
	io->line_max = LINE_MAX_DEFAULT;
	io->lowat = LOWAT_DEFAULT;
	io->dane_usable = -1;
	ev_timer_init(&io->timer, on_timer, io);
	ev_timer_init(&io->kick, on_kick, io);
	ev_timer_init(&io->flush, on_flush, io);
	return io;
}

void
io_free(struct io *io)
{
	if (io == NULL || io->freed)
		return;
	ev_timer_del(io->loop, &io->timer);
	ev_timer_del(io->loop, &io->kick);
	ev_timer_del(io->loop, &io->flush);
	if (io->registered)
		ev_fd_del(io->loop, io->fd);
	io->registered = false;
	if (io->ssl != NULL) {
		/* Best effort close_notify; never waits. */
		if (io->tls == IO_TLS_ON && !io->dead) {
			ERR_clear_error();
			(void)SSL_shutdown(io->ssl);
		}
		ERR_clear_error();
		SSL_free(io->ssl);
		io->ssl = NULL;
	}
	if (io->fd != -1)
		close(io->fd);
	io->fd = -1;
	free(io->rbuf);
	free(io->wbuf);
	io->rbuf = io->wbuf = NULL;
	io->dead = true;
	if (io->in_cb > 0) {
		io->freed = true;	/* emit() frees the struct */
		return;
	}
	free(io);
}

/* Deliver one event; false when the owner freed the io (do not touch it). */
static bool
emit(struct io *io, enum io_event ev)
{
	if (io->dead && ev != IO_ERROR && ev != IO_CLOSED)
		return false;
	io->in_cb++;
	io->cb(io, ev, io->arg);
	io->in_cb--;
	if (io->freed) {
		if (io->in_cb == 0)
			free(io);
		return false;
	}
	return !io->dead;
}

/* Stop all I/O and deliver IO_ERROR with this text. */
static void
fail(struct io *io, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(io->err, sizeof(io->err), fmt, ap);
	va_end(ap);
	io->dead = true;
	ev_timer_del(io->loop, &io->timer);
	ev_timer_del(io->loop, &io->kick);
	ev_timer_del(io->loop, &io->flush);
	update_events(io);
	(void)emit(io, IO_ERROR);
}

static void
tls_fail(struct io *io, const char *what, int ret, int sslerr)
{
	char buf[256] = "";
	unsigned long e, last = 0;
	long vr;
	int saved = errno;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last != 0)
		ERR_error_string_n(last, buf, sizeof(buf));
	else if (sslerr == SSL_ERROR_SYSCALL)
		snprintf(buf, sizeof(buf), "%s", ret == 0 || saved == 0 ?
		    "unexpected EOF" : strerror(saved));
	else
		snprintf(buf, sizeof(buf), "SSL error %d", sslerr);
	ERR_clear_error();
	vr = SSL_get_verify_result(io->ssl);
	if (vr != X509_V_OK && io->tls == IO_TLS_HANDSHAKE &&
	    SSL_get_verify_mode(io->ssl) != SSL_VERIFY_NONE)
		fail(io, "TLS %s: %s (%s)", what, buf,
		    X509_verify_cert_error_string(vr));
	else
		fail(io, "TLS %s: %s", what, buf);
}

static void
update_events(struct io *io)
{
	int want = 0;

	if (io->fd == -1)
		return;
	if (io->dead)
		want = 0;
	else if (io->connecting)
		want = EV_WRITE;
	else if (io->tls == IO_TLS_FLUSH)
		want = EV_WRITE;
	else if (io->tls == IO_TLS_HANDSHAKE)
		want = io->hs_want;
	else {
		if (!io->eof && !io->paused)
			want |= EV_READ;
		if (io->wlen > io->wpos)
			want |= io->wr_want_read ? EV_READ : EV_WRITE;
		if (io->rd_want_write)
			want |= EV_WRITE;
	}
	/* Unregister rather than watch nothing: epoll reports HUP regardless. */
	if (want == 0) {
		if (io->registered)
			ev_fd_del(io->loop, io->fd);
		io->registered = false;
		return;
	}
	if (!io->registered) {
		if (ev_fd_add(io->loop, io->fd, want, on_fd, io) == -1) {
			snprintf(io->err, sizeof(io->err), "event loop: %s",
			    strerror(errno));
			io->error_pending = true;
			kick(io);
			return;
		}
		io->registered = true;
	} else if (want != io->ev_events &&
	    ev_fd_mod(io->loop, io->fd, want) == -1) {
		snprintf(io->err, sizeof(io->err), "event loop: %s",
		    strerror(errno));
		io->error_pending = true;
		kick(io);
		return;
	}
	io->ev_events = want;
}

static void
arm_timer(struct io *io)
{
	if (io->timeout_ms > 0 && io->fd != -1 && !io->dead)
		ev_timer_add(io->loop, &io->timer, io->timeout_ms);
	else
		ev_timer_del(io->loop, &io->timer);
}

static void
kick(struct io *io)
{
	if (!ev_timer_pending(&io->kick))
		ev_timer_add(io->loop, &io->kick, 0);
}

static void
on_timer(void *arg)
{
	struct io *io = arg;

	if (!io->dead)
		(void)emit(io, IO_TIMEOUT);
}

static void
on_kick(void *arg)
{
	struct io *io = arg;

	if (io->dead)
		return;
	if (io->error_pending) {
		io->error_pending = false;
		io->dead = true;
		update_events(io);
		ev_timer_del(io->loop, &io->timer);
		(void)emit(io, IO_ERROR);
		return;
	}
	if (io->fd != -1 && !io->connecting)
		process(io, EV_READ);
}

/*
 * May queued output go out now, without waiting for EPOLLOUT?  Only on
 * an established stream (clear or TLS up) that epoll does not already
 * watch for writability (then the socket was full: wait for it).
 */
static bool
can_flush(const struct io *io)
{
	return io->fd != -1 && !io->dead && !io->connecting &&
	    (io->tls == IO_TLS_NONE || io->tls == IO_TLS_ON) &&
	    !io->wr_want_read && !(io->registered &&
	    (io->ev_events & EV_WRITE));
}

/*
 * What io_write() queued outside process(): sent from the loop's timers
 * of the same iteration, so that the replies to a batch of commands go
 * in one send() and the fd's interest changes only when the socket is
 * full.
 */
static void
on_flush(void *arg)
{
	struct io *io = arg;

	if (io->dead || io->wlen == io->wpos)
		return;
	if (can_flush(io) && !do_write(io, true))
		return;
	update_events(io);
}

static void
on_fd(int fd, int events, void *arg)
{
	(void)fd;
	process(arg, events);
}

static void
process(struct io *io, int events)
{
	if (io->connecting) {
		if (do_connected(io))
			update_events(io);
		return;
	}
	if (io->tls == IO_TLS_FLUSH) {
		if (!do_write(io, false))
			return;
		if (io->clear_left > 0) {
			update_events(io);
			return;
		}
		io->tls = IO_TLS_HANDSHAKE;
	}
	if (io->tls == IO_TLS_HANDSHAKE) {
		if (!do_handshake(io))
			return;
		if (io->tls != IO_TLS_ON) {
			update_events(io);
			return;
		}
		/* Fall through: data may follow the handshake at once. */
		events |= EV_READ;
	}
	if (io->wlen > io->wpos || io->rd_want_write) {
		if (!do_write(io, true))
			return;
	}
	if ((events & (EV_READ | EV_ERROR)) || io->rd_want_write ||
	    io->tls == IO_TLS_ON) {
		if (!io->eof && !io->paused && !do_read(io))
			return;
	}
	/* What the callbacks queued just now: try it before asking epoll. */
	if (io->wlen > io->wpos && can_flush(io)) {
		ev_timer_del(io->loop, &io->flush);
		if (!do_write(io, true))
			return;
	}
	update_events(io);
}

static bool
do_connected(struct io *io)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
		soerr = errno;
	if (soerr == EINPROGRESS || soerr == EALREADY)
		return true;
	if (soerr != 0) {
		fail(io, "connect: %s", strerror(soerr));
		return false;
	}
	io->connecting = false;
	arm_timer(io);
	return emit(io, IO_CONNECTED);
}

static bool
do_handshake(struct io *io)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(io->ssl);
	if (r == 1) {
		io->tls = IO_TLS_ON;
		return emit(io, IO_TLS_DONE);
	}
	e = SSL_get_error(io->ssl, r);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		io->hs_want = EV_READ;
		return true;
	case SSL_ERROR_WANT_WRITE:
		io->hs_want = EV_WRITE;
		return true;
	default:
		tls_fail(io, "handshake", r, e);
		return false;
	}
}

/*
 * Flush what the socket takes.  lowat: whether IO_LOWAT may follow.
 * False when the io is gone or dead.
 */
static bool
do_write(struct io *io, bool lowat)
{
	bool wrote = false;

	io->rd_want_write = false;
	while (io->wlen > io->wpos) {
		size_t len = io->wlen - io->wpos;
		ssize_t n;

		if (io->tls == IO_TLS_FLUSH) {
			if (io->clear_left == 0)
				break;
			if (len > io->clear_left)
				len = io->clear_left;
		}
		if (len > IO_WCHUNK)
			len = IO_WCHUNK;
		if (io->tls == IO_TLS_ON) {
			int r, e;

			if (io->tls_wretry > 0)
				len = io->tls_wretry;
			io->wr_want_read = false;
			ERR_clear_error();
			r = SSL_write(io->ssl, io->wbuf + io->wpos, (int)len);
			if (r > 0) {
				io->tls_wretry = 0;
				n = r;
			} else {
				e = SSL_get_error(io->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ) {
					io->tls_wretry = len;
					io->wr_want_read =
					    e == SSL_ERROR_WANT_READ;
					break;
				}
				tls_fail(io, "write", r, e);
				return false;
			}
		} else {
			n = send(io->fd, io->wbuf + io->wpos, len, MSG_NOSIGNAL);
			if (n == -1 && errno == ENOTSOCK)
				n = write(io->fd, io->wbuf + io->wpos, len);
			if (n == -1) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				if (errno == EINTR)
					continue;
				fail(io, "write: %s", strerror(errno));
				return false;
			}
		}
		io->wpos += (size_t)n;
		if (io->tls == IO_TLS_FLUSH)
			io->clear_left -= (size_t)n;
		wrote = true;
	}
	if (io->wpos == io->wlen)
		io->wpos = io->wlen = 0;
	if (wrote && lowat && io->wlen - io->wpos < io->lowat)
		return emit(io, IO_LOWAT);
	return true;
}

static void
rbuf_reserve(struct io *io)
{
	size_t need = io->line_max + 2;

	if (need < IO_RBUF_MIN)
		need = IO_RBUF_MIN;
	if (io->rcap < need) {
		io->rbuf = xreallocarray(io->rbuf, need, 1);
		io->rcap = need;
	}
}

static bool
has_line(const struct io *io)
{
	size_t avail = io->rlen - io->rpos;

	if (avail == 0)
		return false;
	if (io->raw)
		return true;
	return memchr(io->rbuf + io->rpos, '\n', avail) != NULL ||
	    avail >= io->line_max + 2;
}

/* Read what there is; IO_DATAIN, then IO_CLOSED at EOF.  False when gone/dead. */
static bool
do_read(struct io *io)
{
	bool progress = false, short_read = false;

	rbuf_reserve(io);
	io->wr_want_read = false;
	for (;;) {
		size_t space;
		ssize_t n;

		if (io->rpos > 0 && io->rlen == io->rcap) {
			memmove(io->rbuf, io->rbuf + io->rpos,
			    io->rlen - io->rpos);
			io->rlen -= io->rpos;
			io->rpos = 0;
		}
		if (io->rpos == io->rlen)
			io->rpos = io->rlen = 0;
		if ((space = io->rcap - io->rlen) == 0) {
			io->paused = true;
			break;
		}
		if (io->tls == IO_TLS_ON) {
			int r, e;

			if (space > INT_MAX)
				space = INT_MAX;
			ERR_clear_error();
			r = SSL_read(io->ssl, io->rbuf + io->rlen, (int)space);
			if (r > 0)
				n = r;
			else {
				e = SSL_get_error(io->ssl, r);
				if (e == SSL_ERROR_WANT_READ)
					break;
				if (e == SSL_ERROR_WANT_WRITE) {
					io->rd_want_write = true;
					break;
				}
				if (e == SSL_ERROR_ZERO_RETURN) {
					io->eof = true;
					break;
				}
				tls_fail(io, "read", r, e);
				return false;
			}
		} else {
			n = read(io->fd, io->rbuf + io->rlen, space);
			if (n == -1) {
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				if (errno == EINTR)
					continue;
				fail(io, "read: %s", strerror(errno));
				return false;
			}
			if (n == 0) {
				io->eof = true;
				break;
			}
		}
		io->rlen += (size_t)n;
		progress = true;
		/*
		 * A short read drained the socket: the read that would
		 * say EAGAIN is saved (epoll is level-triggered, later
		 * bytes and EOF are reported again).  Not under TLS,
		 * where SSL may hold more than epoll sees.
		 */
		if (io->tls != IO_TLS_ON && (size_t)n < space)
			short_read = true;
		if (io->skipping) {
			char *lf = memchr(io->rbuf + io->rpos, '\n',
			    io->rlen - io->rpos);

			if (lf != NULL) {
				io->rpos = (size_t)(lf - io->rbuf) + 1;
				io->skipping = false;
			} else
				io->rpos = io->rlen;
		}
		if (io->rpos == io->rlen)
			io->rpos = io->rlen = 0;
		if (short_read)
			break;
	}
	if (progress)
		arm_timer(io);
	if (has_line(io) && !emit(io, IO_DATAIN))
		return false;
	if (io->eof) {
		io->dead = true;
		ev_timer_del(io->loop, &io->timer);
		ev_timer_del(io->loop, &io->kick);
		update_events(io);
		(void)emit(io, IO_CLOSED);
		return false;
	}
	return true;
}

int
io_connect(struct io *io, const struct sockaddr *sa, socklen_t salen)
{
	if (io->fd != -1 || io->dead) {
		errno = EBUSY;
		return -1;
	}
	io->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (io->fd == -1) {
		snprintf(io->err, sizeof(io->err), "socket: %s",
		    strerror(errno));
		io->error_pending = true;
		kick(io);
		return 0;
	}
	io->connecting = true;
	if (connect(io->fd, sa, salen) == -1 && errno != EINPROGRESS) {
		snprintf(io->err, sizeof(io->err), "connect: %s",
		    strerror(errno));
		io->error_pending = true;
		kick(io);
		return 0;
	}
	/* Connected at once or not: writability tells, SO_ERROR says how. */
	arm_timer(io);
	update_events(io);
	return 0;
}

void
io_attach(struct io *io, int fd)
{
	int fl;

	io->fd = fd;
	if ((fl = fcntl(fd, F_GETFL)) != -1 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if ((fl = fcntl(fd, F_GETFD)) != -1 && !(fl & FD_CLOEXEC))
		(void)fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
	arm_timer(io);
	update_events(io);
}

void
io_set_timeout(struct io *io, unsigned ms)
{
	io->timeout_ms = ms;
	arm_timer(io);
}

void
io_set_line_max(struct io *io, size_t max)
{
	if (max == 0 || max > SIZE_MAX / 2)
		max = LINE_MAX_DEFAULT;
	io->line_max = max;
	if (io->rbuf != NULL)
		rbuf_reserve(io);
}

const char *
io_getline(struct io *io, size_t *len, bool *too_long)
{
	char *start, *lf;
	size_t avail, n;

	*len = 0;
	*too_long = false;
	if (io->rbuf == NULL || (avail = io->rlen - io->rpos) == 0)
		return NULL;
	start = io->rbuf + io->rpos;
	if ((lf = memchr(start, '\n', avail)) != NULL) {
		n = (size_t)(lf - start);
		io->rpos += n + 1;
		if (n > 0 && start[n - 1] == '\r')
			n--;
		if (n > io->line_max) {
			*too_long = true;
			n = io->line_max;
		}
	} else if (avail >= io->line_max + 2) {
		/* No end in sight: hand over the start, skip the rest. */
		*too_long = true;
		n = io->line_max;
		io->rpos = io->rlen;
		io->skipping = true;
	} else
		return NULL;
	start[n] = '\0';
	*len = n;
	if (io->paused) {
		io->paused = false;
		update_events(io);
		kick(io);	/* SSL may hold bytes epoll cannot see */
	}
	return start;
}

void
io_set_raw(struct io *io, bool raw)
{
	io->raw = raw;
	if (raw)
		io->skipping = false;
	/* Bytes that now count as input are reported from the loop. */
	if (io->fd != -1 && !io->dead && !io->connecting && has_line(io))
		kick(io);
}

const void *
io_peek(struct io *io, size_t *len)
{
	*len = io->rlen - io->rpos;
	if (io->rbuf == NULL)
		return "";
	return io->rbuf + io->rpos;
}

void
io_consume(struct io *io, size_t n)
{
	if (n > io->rlen - io->rpos)
		n = io->rlen - io->rpos;
	io->rpos += n;
	if (io->rpos == io->rlen)
		io->rpos = io->rlen = 0;
	if (io->paused && n > 0) {
		io->paused = false;
		update_events(io);
		kick(io);	/* SSL may hold bytes epoll cannot see */
	}
}

size_t
io_pending(const struct io *io)
{
	return io->rlen - io->rpos;
}

void
io_discard_input(struct io *io)
{
	io->rpos = io->rlen = 0;
	if (io->paused) {
		io->paused = false;
		update_events(io);
		kick(io);
	}
}

int
io_write(struct io *io, const void *buf, size_t len)
{
	if (io->dead || io->fd == -1) {
		errno = EPIPE;
		return -1;
	}
	if (len == 0)
		return 0;
	if (io->wcap - io->wlen < len) {
		size_t queued = io->wlen - io->wpos, ncap;

		/* Compact; the SSL retry is fine with a moved buffer. */
		if (io->wpos > 0) {
			memmove(io->wbuf, io->wbuf + io->wpos, queued);
			io->wpos = 0;
			io->wlen = queued;
		}
		if (io->wcap - io->wlen < len) {
			if (len > SIZE_MAX / 2 - queued) {
				errno = ENOMEM;
				return -1;
			}
			ncap = io->wcap ? io->wcap : 4096;
			while (ncap - queued < len)
				ncap *= 2;
			io->wbuf = xreallocarray(io->wbuf, ncap, 1);
			io->wcap = ncap;
		}
	}
	memcpy(io->wbuf + io->wlen, buf, len);
	io->wlen += len;
	if (io->connecting)
		return 0;
	if (can_flush(io)) {
		if (!ev_timer_pending(&io->flush))
			ev_timer_add(io->loop, &io->flush, 0);
	} else
		update_events(io);
	return 0;
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	char small[1024], *big = NULL;
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n < sizeof(small))
		return io_write(io, small, (size_t)n);
	big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	(void)vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	r = io_write(io, big, (size_t)n);
	free(big);
	return r;
}

size_t
io_queued(const struct io *io)
{
	return io->wlen - io->wpos;
}

void
io_set_lowat(struct io *io, size_t lowat)
{
	io->lowat = lowat;
}

static bool
is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (s[0] == '[')
		return true;
	return inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1;
}

/* The SSL object for a TLS start on io: 0, or -1 (errno EBUSY, or io->err). */
static int
tls_new(struct io *io, SSL_CTX *ctx)
{
	if (io->ssl != NULL || io->fd == -1 || io->dead || io->connecting) {
		errno = EBUSY;
		return -1;
	}
	ERR_clear_error();
	if ((io->ssl = SSL_new(ctx)) == NULL)
		return tls_setup_fail(io);
	SSL_set_mode(io->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_options(io->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (SSL_set_fd(io->ssl, io->fd) != 1)
		return tls_setup_fail(io);
	return 0;
}

/* io->err from OpenSSL's first error, the SSL object dropped: -1. */
static int
tls_setup_fail(struct io *io)
{
	char buf[256] = "unknown error";
	unsigned long e = ERR_get_error();

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	snprintf(io->err, sizeof(io->err), "TLS setup: %s", buf);
	SSL_free(io->ssl);
	io->ssl = NULL;
	io->dane_usable = -1;
	return -1;
}

/* The SSL object is set up: the handshake starts from the loop. */
static void
tls_begin(struct io *io, bool client)
{
	if (client)
		SSL_set_connect_state(io->ssl);
	else
		SSL_set_accept_state(io->ssl);
	io->tls_client = client;
	/* Bytes read in clear cannot belong to the TLS stream. */
	io->rpos = io->rlen = 0;
	io->skipping = false;
	io->paused = false;
	io->hs_want = client ? EV_WRITE : EV_READ;
	/* What is queued now goes in clear (the 220 reply); later writes wait. */
	io->clear_left = io->wlen - io->wpos;
	io->tls = io->clear_left > 0 ? IO_TLS_FLUSH : IO_TLS_HANDSHAKE;
	update_events(io);
}

int
io_start_tls(struct io *io, SSL_CTX *ctx, bool client, const char *sni,
    const char *verify_host)
{
	if (tls_new(io, ctx) == -1)
		return -1;
	if (client) {
		if (sni != NULL && !is_ip_literal(sni) &&
		    SSL_set_tlsext_host_name(io->ssl, sni) != 1)
			return tls_setup_fail(io);
		if (verify_host != NULL) {
			SSL_set_hostflags(io->ssl,
			    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(io->ssl, verify_host) != 1)
				return tls_setup_fail(io);
		}
	}
	tls_begin(io, client);
	return 0;
}

/*
 * SSL_dane_enable(3): the base domain is the SNI and the first reference
 * identifier (so no SSL_set1_host() after it, which would replace it);
 * the other names are added.  Only DANE-TA(2) and DANE-EE(3) records are
 * given: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672
 * §3.1.3).  OpenSSL returns 0 for a record it cannot use (an unknown
 * selector or matching type, a digest of the wrong length); with none
 * usable it does not enable DANE and the session is unauthenticated TLS.
 */
int
io_start_tls_dane(struct io *io, SSL_CTX *ctx, const struct io_tls_dane *d)
{
	const struct tlsa_rr *rr;
	size_t i;
	int r, usable = 0;

	if (d == NULL || d->base == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (tls_new(io, ctx) == -1)
		return -1;
	if (SSL_dane_enable(io->ssl, d->base) <= 0)
		return tls_setup_fail(io);
	SSL_set_hostflags(io->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (i = 0; i < d->nnames; i++)
		if (SSL_add1_host(io->ssl, d->names[i]) != 1)
			return tls_setup_fail(io);
	for (i = 0; i < d->nrr; i++) {
		rr = &d->rr[i];
		if (rr->usage != 2 /* DANE-TA */ &&
		    rr->usage != 3 /* DANE-EE */)
			continue;
		r = SSL_dane_tlsa_add(io->ssl, rr->usage, rr->selector,
		    rr->mtype, rr->data, rr->len);
		if (r < 0)
			return tls_setup_fail(io);
		if (r > 0)
			usable++;
	}
	ERR_clear_error();	/* what the unusable records left */
	io->dane_usable = usable;
	tls_begin(io, true);
	return 0;
}

int
io_tls_dane_usable(const struct io *io)
{
	return io->ssl != NULL ? io->dane_usable : -1;
}

int
io_tls_dane_depth(const struct io *io)
{
	if (io->ssl == NULL || io->dane_usable <= 0)
		return -1;
	return SSL_get0_dane_authority(io->ssl, NULL, NULL);
}

long
io_tls_verify_error(const struct io *io)
{
	if (io->ssl == NULL)
		return -1;
	return SSL_get_verify_result(io->ssl);
}

bool
io_tls_active(const struct io *io)
{
	return io->ssl != NULL && io->tls == IO_TLS_ON;
}

const char *
io_tls_version(const struct io *io)
{
	if (!io_tls_active(io))
		return NULL;
	return SSL_get_version(io->ssl);
}

bool
io_tls_verified(const struct io *io)
{
	if (!io_tls_active(io))
		return false;
	/* Under DANE, OK means a TLSA record matched; the depth says so too. */
	if (io->dane_usable > 0 && io_tls_dane_depth(io) < 0)
		return false;
	return SSL_get0_peer_certificate(io->ssl) != NULL &&
	    SSL_get_verify_result(io->ssl) == X509_V_OK;
}

const char *
io_tls_verify_text(const struct io *io)
{
	if (io->ssl == NULL)
		return "no TLS";
	if (SSL_get0_peer_certificate(io->ssl) == NULL)
		return "no peer certificate";
	return X509_verify_cert_error_string(SSL_get_verify_result(io->ssl));
}

/* "YYYY-MM-DDTHH:MM:SSZ" of an ASN.1 time, or "" when it cannot be read. */
static void
asn1_time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	buf[0] = '\0';
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		buf[0] = '\0';
}

/* "3 1 1 matched at depth 0": the TLSA record that matched, or "". */
static void
dane_text(const struct io *io, char *buf, size_t len)
{
	uint8_t usage, selector, mtype;
	const unsigned char *data;
	size_t dlen;
	int depth;

	buf[0] = '\0';
	if (io->dane_usable <= 0)
		return;
	depth = SSL_get0_dane_tlsa(io->ssl, &usage, &selector, &mtype, &data,
	    &dlen);
	if (depth >= 0)
		snprintf(buf, len, "%u %u %u matched at depth %d",
		    (unsigned)usage, (unsigned)selector, (unsigned)mtype,
		    depth);
}

int
io_tls_peer(const struct io *io, const char *name, struct io_tls_peer *p)
{
	const SSL_CIPHER *c;
	STACK_OF(X509) *chain;
	X509 *cert;
	long vr;

	memset(p, 0, sizeof(*p));
	p->name_match = -1;
	if (io->ssl == NULL)
		return -1;
	util_strlcpy(p->version, SSL_get_version(io->ssl), sizeof(p->version));
	if ((c = SSL_get_current_cipher(io->ssl)) != NULL)
		util_strlcpy(p->cipher, SSL_CIPHER_get_name(c),
		    sizeof(p->cipher));
	/* After a failed verification only the chain holds the certificate. */
	if ((cert = SSL_get0_peer_certificate(io->ssl)) == NULL &&
	    (chain = SSL_get_peer_cert_chain(io->ssl)) != NULL &&
	    sk_X509_num(chain) > 0)
		cert = sk_X509_value(chain, 0);
	vr = SSL_get_verify_result(io->ssl);
	p->chain_ok = cert != NULL && vr == X509_V_OK;
	util_strlcpy(p->verify_text, cert == NULL ? "no peer certificate" :
	    X509_verify_cert_error_string(vr), sizeof(p->verify_text));
	if (cert == NULL)
		return 0;
	dane_text(io, p->dane, sizeof(p->dane));
	p->have_cert = true;
	X509_NAME_oneline(X509_get_subject_name(cert), p->subject,
	    (int)sizeof(p->subject));
	X509_NAME_oneline(X509_get_issuer_name(cert), p->issuer,
	    (int)sizeof(p->issuer));
	asn1_time_text(X509_get0_notAfter(cert), p->not_after,
	    sizeof(p->not_after));
	if (name != NULL)
		p->name_match = (is_ip_literal(name) ?
		    X509_check_ip_asc(cert, name, 0) :
		    X509_check_host(cert, name, 0,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL)) == 1;
	ERR_clear_error();
	return 0;
}

const char *
io_error(const struct io *io)
{
	return io->err[0] != '\0' ? io->err : "no error";
}

int
io_fd(const struct io *io)
{
	return io->fd;
}
