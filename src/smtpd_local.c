/*
 * smtpd_local: local sessions of the SMTP listener (mxrelay -bs,
 * smtpd_session_fds()), level 5 with smtpd.c.
 *
 * A local session runs the listener's session code over one end of a
 * socketpair; a pump ("struct local") moves bytes between the other end
 * and the caller's descriptors, which may be pipes, ttys or regular
 * files (those epoll cannot watch are read and written as if always
 * ready).  The io layer ends a session at once on EOF and drops replies
 * not yet written, so the end of the caller's input is passed on
 * (shutdown(SHUT_WR)) only once the session has read all the bytes
 * before it (FIONREAD) and its replies are out (io_queued() == 0): every
 * command before the EOF is answered.  The session tells the pump what
 * happened through lc->end and smtpd_local_session_gone(); the owner
 * hears of it once, from the loop, in done().
 */
#include "config.h"

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "event.h"
#include "io.h"
#include "log.h"
#include "smtpd.h"
#include "smtpd_session.h"
#include "util.h"

#define SMTPD_LOCAL_POLL_MS	20	/* waiting to pass the EOF on */

static int	 local_pollable(struct local *, int);
static void	 local_restore_fl(int, int);
static void	 local_close_sv(struct local *);
static void	 local_break(struct local *, const char *);
static void	 local_want(struct local *, int, int *, int);
static void	 local_watch(struct local *);
static void	 local_finish(struct local *);
static bool	 local_pump_in(struct local *);
static bool	 local_pump_out(struct local *);
static void	 local_pump(struct local *);
static void	 local_on_fd(int, int, void *);
static void	 local_on_timer(void *);

/*
 * Whether epoll can watch fd: 1, 0 (a regular file, /dev/null: always
 * ready), or -1 with errno.
 */
static int
local_pollable(struct local *lc, int fd)
{
	struct stat st;

	if (fstat(fd, &st) == -1)
		return -1;
	if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))
		return 0;
	if (ev_fd_add(lc->sd->loop, fd, EV_READ, local_on_fd, lc) == -1)
		return errno == EPERM ? 0 : -1;
	ev_fd_del(lc->sd->loop, fd);
	return 1;
}

/* A spool operation failed in a local session: its exit status says so. */
void
smtpd_local_spool_err(struct session *s, int e)
{
	if (s->lc != NULL)
		s->lc->end.spool_err = e != 0 ? e : EIO;
}

/* Put O_NONBLOCK back as it was. */
static void
local_restore_fl(int fd, int orig)
{
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) != -1 &&
	    (fl & O_NONBLOCK) != (orig & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) |
		    (orig & O_NONBLOCK));
}

static void
local_close_sv(struct local *lc)
{
	if (lc->sv == -1)
		return;
	if (lc->sv_ev != 0)
		ev_fd_del(lc->sd->loop, lc->sv);
	lc->sv_ev = 0;
	close(lc->sv);
	lc->sv = -1;
}

/* The pump cannot go on: the session sees its connection close. */
static void
local_break(struct local *lc, const char *what)
{
	log_warn("smtpd: local session: %s", what);
	lc->end.io_error = true;
	lc->in_eof = true;
	lc->out_err = true;
	lc->ipos = lc->ilen = lc->opos = lc->olen = 0;
	local_close_sv(lc);
	ev_timer_add(lc->sd->loop, &lc->timer, 0);
}

/* Register the interest in fd (0: none). */
static void
local_want(struct local *lc, int fd, int *cur, int want)
{
	struct ev_loop *loop = lc->sd->loop;

	if (want == *cur)
		return;
	if (want == 0)
		ev_fd_del(loop, fd);
	else if (*cur == 0 ? ev_fd_add(loop, fd, want, local_on_fd, lc) == -1 :
	    ev_fd_mod(loop, fd, want) == -1) {
		if (*cur != 0)
			ev_fd_del(loop, fd);
		*cur = 0;
		local_break(lc, "event loop");
		return;
	}
	*cur = want;
}

static void
local_watch(struct local *lc)
{
	int in = 0, out = 0, sv = 0;

	if (lc->in_poll && lc->ilen == 0 && !lc->in_eof && !lc->in_shut &&
	    lc->s != NULL && lc->sv != -1)
		in = EV_READ;
	if (lc->out_poll && lc->opos < lc->olen && !lc->out_err)
		out = EV_WRITE;
	if (lc->sv != -1) {
		if (lc->ipos < lc->ilen)
			sv |= EV_WRITE;
		if (lc->olen == 0 && !lc->sv_eof)
			sv |= EV_READ;
	}
	if (lc->infd == lc->outfd)
		local_want(lc, lc->infd, &lc->in_ev, in | out);
	else {
		local_want(lc, lc->infd, &lc->in_ev, in);
		local_want(lc, lc->outfd, &lc->out_ev, out);
	}
	if (lc->sv != -1)
		local_want(lc, lc->sv, &lc->sv_ev, sv);
}

/* Everything but the struct's memory, without a word to the owner. */
void
smtpd_local_release(struct local *lc)
{
	struct ev_loop *loop = lc->sd->loop;

	ev_timer_del(loop, &lc->timer);
	if (lc->in_ev != 0)
		ev_fd_del(loop, lc->infd);
	if (lc->out_ev != 0)
		ev_fd_del(loop, lc->outfd);
	lc->in_ev = lc->out_ev = 0;
	local_close_sv(lc);
	if (lc->out_setfl)
		local_restore_fl(lc->outfd, lc->out_fl);
	if (lc->in_setfl)
		local_restore_fl(lc->infd, lc->in_fl);
	if (lc->s != NULL)
		lc->s->lc = NULL;
	free(lc->user);
	free(lc);
}

/*
 * Pass the end of the input on once the session has taken every byte
 * before it and its replies are out; until then the hooks in
 * smtpd_session_input() and IO_LOWAT, or the timer, come back here.
 */
void
smtpd_local_eof_check(struct local *lc)
{
	struct session *s = lc->s;
	int unread = 0;

	if (!lc->in_eof || lc->in_shut || lc->ipos < lc->ilen || lc->sv == -1)
		return;
	if (s != NULL && s->state != S_CLOSING && (s->state == S_COMMIT ||
	    io_queued(s->io) > 0 || ioctl(io_fd(s->io), FIONREAD,
	    &unread) == -1 || unread > 0)) {
		if (!ev_timer_pending(&lc->timer))
			ev_timer_add(lc->sd->loop, &lc->timer,
			    SMTPD_LOCAL_POLL_MS);
		return;
	}
	(void)shutdown(lc->sv, SHUT_WR);
	lc->in_shut = true;
}

/* The session is going: the pump writes out what is left, then finishes. */
void
smtpd_local_session_gone(struct local *lc, bool in_txn)
{
	lc->end.in_txn = in_txn;
	lc->end.eof = lc->in_shut && !lc->end.quit;
	lc->s = NULL;
	ev_timer_add(lc->sd->loop, &lc->timer, 0);
}

/* The session is gone and its output written: tell the owner. */
static void
local_finish(struct local *lc)
{
	struct smtpd_local_end end = lc->end;
	void (*done)(void *, const struct smtpd_local_end *) = lc->done;
	void *arg = lc->arg;

	lc->sd->local = NULL;
	smtpd_local_release(lc);
	if (done != NULL)
		done(arg, &end);
}

/* The caller's input to the session; true if anything moved. */
static bool
local_pump_in(struct local *lc)
{
	bool progress = false;
	ssize_t n;

	if (lc->ilen == 0 && !lc->in_eof && !lc->in_shut && lc->s != NULL &&
	    lc->sv != -1) {
		n = read(lc->infd, lc->ibuf, sizeof(lc->ibuf));
		if (n > 0) {
			lc->ipos = 0;
			lc->ilen = (size_t)n;
			progress = true;
		} else if (n == 0) {
			lc->in_eof = true;
			progress = true;
		} else if (errno == EINTR)
			progress = true;
		else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			log_warn("smtpd: local session: read");
			lc->end.io_error = true;
			lc->in_eof = true;
			progress = true;
		}
	}
	if (lc->ipos < lc->ilen && (lc->s == NULL || lc->sv == -1))
		lc->ipos = lc->ilen = 0;	/* nobody to hear it */
	if (lc->ipos < lc->ilen) {
		n = send(lc->sv, lc->ibuf + lc->ipos, lc->ilen - lc->ipos,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			lc->ipos += (size_t)n;
			if (lc->ipos == lc->ilen)
				lc->ipos = lc->ilen = 0;
			progress = true;
		} else if (errno == EINTR)
			progress = true;
		else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			/* The session closed its end: it is going. */
			lc->ipos = lc->ilen = 0;
			progress = true;
		}
	}
	return progress;
}

/* The session's output to the caller; true if anything moved. */
static bool
local_pump_out(struct local *lc)
{
	bool progress = false;
	ssize_t n;

	if (lc->olen == 0 && !lc->sv_eof && lc->sv != -1) {
		n = recv(lc->sv, lc->obuf, sizeof(lc->obuf), MSG_DONTWAIT);
		if (n > 0) {
			lc->opos = 0;
			lc->olen = (size_t)n;
			progress = true;
		} else if (n == 0) {
			lc->sv_eof = true;
			progress = true;
		} else if (errno == EINTR)
			progress = true;
		else if (errno != EAGAIN && errno != EWOULDBLOCK) {
			/* ECONNRESET: it closed with input unread. */
			lc->sv_eof = true;
			progress = true;
		}
	}
	if (lc->opos < lc->olen && lc->out_err)
		lc->opos = lc->olen = 0;
	if (lc->opos < lc->olen) {
		n = send(lc->outfd, lc->obuf + lc->opos, lc->olen - lc->opos,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == ENOTSOCK)
			n = write(lc->outfd, lc->obuf + lc->opos,
			    lc->olen - lc->opos);
		if (n > 0) {
			lc->opos += (size_t)n;
			if (lc->opos == lc->olen)
				lc->opos = lc->olen = 0;
			progress = true;
		} else if (n == -1 && errno == EINTR)
			progress = true;
		else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			if (n == 0)
				errno = EIO;
			log_warn("smtpd: local session: write");
			lc->end.io_error = true;
			lc->out_err = true;
			lc->opos = lc->olen = 0;
			/* Nobody hears the session: it ends. */
			local_close_sv(lc);
			progress = true;
		}
	}
	return progress;
}

/* Move what can be moved without blocking, in both directions. */
static void
local_pump(struct local *lc)
{
	bool progress;

	do {
		progress = local_pump_in(lc);
		if (local_pump_out(lc))
			progress = true;
		smtpd_local_eof_check(lc);
	} while (progress);
	if (lc->s == NULL && (lc->sv == -1 || lc->sv_eof) &&
	    lc->opos == lc->olen) {
		local_finish(lc);
		return;
	}
	local_watch(lc);
}

static void
local_on_fd(int fd, int events, void *arg)
{
	(void)fd;
	(void)events;
	local_pump(arg);
}

static void
local_on_timer(void *arg)
{
	local_pump(arg);
}

int
smtpd_session_fds(struct smtpd *sd, int infd, int outfd,
    const struct smtpd_local *lo)
{
	struct local *lc;
	struct session *s;
	char esc[128];
	int sv[2], r, e;

	if (sd->shutting_down) {
		errno = ESHUTDOWN;
		return -1;
	}
	if (sd->local != NULL) {
		errno = EBUSY;
		return -1;
	}
	lc = xcalloc(1, sizeof(*lc));
	lc->sd = sd;
	lc->infd = infd;
	lc->outfd = outfd;
	lc->sv = -1;
	lc->uid = lo->uid;
	lc->user = lo->user != NULL ? xstrdup(lo->user) : NULL;
	lc->done = lo->done;
	lc->arg = lo->arg;
	ev_timer_init(&lc->timer, local_on_timer, lc);
	/* Both before either changes: 0 and 1 may share a tty's flags. */
	if ((lc->in_fl = fcntl(infd, F_GETFL)) == -1 ||
	    (lc->out_fl = fcntl(outfd, F_GETFL)) == -1)
		goto fail;
	if ((r = local_pollable(lc, infd)) == -1)
		goto fail;
	lc->in_poll = r == 1;
	if (outfd == infd)
		lc->out_poll = lc->in_poll;
	else if ((r = local_pollable(lc, outfd)) == -1)
		goto fail;
	else
		lc->out_poll = r == 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
	    sv) == -1)
		goto fail;
	lc->sv = sv[0];
	/* Reads and writes must not block the loop; undone at the end. */
	if (lc->in_poll && !(lc->in_fl & O_NONBLOCK)) {
		lc->in_setfl = true;
		if (fcntl(infd, F_SETFL, lc->in_fl | O_NONBLOCK) == -1)
			goto fail_sv;
	}
	if (lc->out_poll && !(lc->out_fl & O_NONBLOCK) && outfd != infd) {
		int fl = fcntl(outfd, F_GETFL);

		lc->out_setfl = true;
		if (fl == -1 || fcntl(outfd, F_SETFL, fl | O_NONBLOCK) == -1)
			goto fail_sv;
	}

	util_escape(esc, sizeof(esc), lc->user != NULL ? lc->user : "");
	s = smtpd_session_alloc(sd, sv[1]);
	s->family = AF_UNIX;
	s->lc = lc;
	lc->s = s;
	if (lc->user != NULL)
		snprintf(s->peer, sizeof(s->peer), "local user %s (uid %"
		    PRIu32 ")", esc, lc->uid);
	else
		snprintf(s->peer, sizeof(s->peer), "local uid %" PRIu32,
		    lc->uid);
	sd->local = lc;
	log_info("connect from %s", s->peer);
	smtpd_reply(s, "220 %s ESMTP mxrelay", sd->p.hostname);
	/* Callbacks only from the loop: the pump starts there. */
	ev_timer_add(sd->loop, &lc->timer, 0);
	return 0;

fail_sv:
	e = errno;
	close(sv[1]);
	errno = e;
fail:
	e = errno;
	smtpd_local_release(lc);
	errno = e;
	return -1;
}
