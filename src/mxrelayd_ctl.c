/*
 * mxrelayd: the server side of the control socket (control.h has the
 * protocol, control.c the client side).  Connections are accepted,
 * capped per uid, read for one request line and answered: list, flush,
 * flush ID, status.  See mxrelayd(8).
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "mxrelayd.h"
#include "qmgr.h"
#include "smtpd.h"
#include "spool.h"
#include "util.h"

/*
 * Control connections: at most CONTROL_MAX at once from users other than
 * root and the daemon's, CONTROL_PER_UID of them from one uid; after
 * EMFILE/ENFILE accepting pauses.
 */
#define CONTROL_MAX		64
#define CONTROL_PER_UID		4
#define CONTROL_PAUSE_MS	1000
/* Control connections that say nothing are dropped after this. */
#define CONTROL_TIMEOUT_MS	5000

struct ctl_conn {
	struct daemon		*d;
	int			 fd;
	uid_t			 uid;		/* the caller, from the kernel */
	char			 buf[CONTROL_LINE_MAX];
	size_t			 len;
	char			*out;		/* a long answer being sent */
	size_t			 outlen, outoff;
	struct ev_timer		 timer;
	struct ctl_conn		*next;		/* daemon's list */
};

void
ctl_close(struct ctl_conn *cc)
{
	struct ctl_conn **p;

	for (p = &cc->d->ctls; *p != NULL; p = &(*p)->next)
		if (*p == cc) {
			*p = cc->next;
			break;
		}
	ev_timer_del(cc->d->loop, &cc->timer);
	ev_fd_del(cc->d->loop, cc->fd);
	close(cc->fd);
	free(cc->out);
	free(cc);
}

/* Root and the daemon's own user may flush and see everything. */
static bool
ctl_privileged(const struct ctl_conn *cc)
{
	return cc->uid == 0 || cc->uid == geteuid();
}

struct ctl_list {
	uid_t		 uid;
	bool		 all;
	char		*buf;
	size_t		 len, cap;
	size_t		 count;
};

static void
ctl_list_add(struct ctl_list *l, const char *p, size_t n)
{
	if (l->len + n + 1 > l->cap) {
		while (l->len + n + 1 > l->cap)
			l->cap = l->cap ? l->cap * 2 : 65536;
		l->buf = xreallocarray(l->buf, l->cap, 1);
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
}

static int
ctl_list_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct ctl_list *l = arg;
	char head[32], *ebuf;
	size_t elen;
	int n;

	(void)q;
	if (!l->all && (env->submit_user == NULL || env->submit_uid != l->uid))
		return 0;
	if (envelope_encode(env, &ebuf, &elen) == -1)
		return 0;
	if (l->len + elen > CONTROL_LIST_MAX - 64) {
		free(ebuf);
		return 0;	/* the client would refuse more */
	}
	n = snprintf(head, sizeof(head), "%zu\n", elen);
	ctl_list_add(l, head, (size_t)n);
	ctl_list_add(l, ebuf, elen);
	free(ebuf);
	l->count++;
	return 0;
}

static void
ctl_write(int fd, int events, void *arg)
{
	struct ctl_conn *cc = arg;

	(void)events;
	if (daemon_send_some(fd, cc->out, cc->outlen, &cc->outoff))
		ctl_close(cc);
}

/*
 * "list": every message for root and us (a scan of the spool); for anyone
 * else only the messages the index knows to be theirs, so that the work
 * is bounded by the caller's own mail.
 */
static void
ctl_list(struct ctl_conn *cc)
{
	struct ctl_list l = { cc->uid, ctl_privileged(cc), NULL, 0, 0, 0 };
	char head[32];
	int n, rc = 0;

	if (l.all)
		rc = queue_scan(cc->d->q, ctl_list_one, &l);
	else {
		struct strlist ids = { NULL, 0, 0 };

		qmgr_submitted_by(cc->d->qm, (uint32_t)cc->uid, &ids);
		for (size_t i = 0; i < ids.n &&
		    l.len < CONTROL_LIST_MAX - 64; i++) {
			struct envelope env;

			if (queue_env_load(cc->d->q, ids.v[i], &env) == 0) {
				ctl_list_one(cc->d->q, &env, &l);
				envelope_free(&env);
			}
		}
		strlist_free(&ids);
	}
	if (rc == -1) {
		char line[CONTROL_LINE_MAX];

		free(l.buf);
		cc->outlen = control_reply_format(line, sizeof(line),
		    CONTROL_ERR_QUEUE, "cannot read the queue");
		cc->out = xstrdup(line);
	} else {
		/* The head goes in front of the envelopes, in one buffer. */
		n = snprintf(head, sizeof(head), "ok %zu\n", l.count);
		ctl_list_add(&l, head, (size_t)n);
		memmove(l.buf + n, l.buf, l.len - (size_t)n);
		memcpy(l.buf, head, (size_t)n);
		cc->out = l.buf;
		cc->outlen = l.len;
	}
	cc->outoff = 0;
	/* The timer (CONTROL_TIMEOUT_MS) bounds a client that never reads. */
	ev_fd_del(cc->d->loop, cc->fd);
	if (ev_fd_add(cc->d->loop, cc->fd, EV_WRITE, ctl_write, cc) == -1) {
		ctl_close(cc);
		return;
	}
	ctl_write(cc->fd, EV_WRITE, cc);
}

/* "stats": "ok N\n" and then the N bytes of the metrics text. */
static void
ctl_stats(struct ctl_conn *cc)
{
	char *text, *head;
	size_t tlen, hlen;

	text = daemon_metrics(cc->d, &tlen);
	head = xasprintf("ok %zu\n", tlen);
	hlen = strlen(head);
	cc->out = xmalloc(hlen + tlen);
	memcpy(cc->out, head, hlen);
	memcpy(cc->out + hlen, text, tlen);
	free(head);
	free(text);
	cc->outlen = hlen + tlen;
	cc->outoff = 0;
	ev_fd_del(cc->d->loop, cc->fd);
	if (ev_fd_add(cc->d->loop, cc->fd, EV_WRITE, ctl_write, cc) == -1) {
		ctl_close(cc);
		return;
	}
	ctl_write(cc->fd, EV_WRITE, cc);
}

static void
ctl_timeout(void *arg)
{
	ctl_close(arg);
}

static void
ctl_answer(struct ctl_conn *cc, const char *req)
{
	struct daemon *d = cc->d;
	char reply[CONTROL_LINE_MAX];
	size_t n;

	if (strcmp(req, "list") == 0) {
		ctl_list(cc);
		return;
	}
	if (!ctl_privileged(cc))
		control_reply_format(reply, sizeof(reply), CONTROL_ERR_PERM,
		    "permission denied");
	else if (strcmp(req, "flush") == 0) {
		n = qmgr_flush(d->qm, NULL);
		log_info("control: flush requested, %zu messages", n);
		snprintf(reply, sizeof(reply), "ok %zu\n", n);
	} else if (strncmp(req, "flush ", 6) == 0) {
		const char *id = req + 6;

		if (!queue_id_valid(id))
			control_reply_format(reply, sizeof(reply),
			    CONTROL_ERR_BADID, "not a queue id");
		else if ((n = qmgr_flush(d->qm, id)) == 0)
			control_reply_format(reply, sizeof(reply),
			    CONTROL_ERR_NOMSG, "no such message");
		else {
			log_info("control: flush of %s requested", id);
			snprintf(reply, sizeof(reply), "ok %zu\n", n);
		}
	} else if (strcmp(req, "stats") == 0) {
		ctl_stats(cc);	/* it closes cc */
		return;
	} else if (strcmp(req, "status") == 0)
		snprintf(reply, sizeof(reply),
		    "ok messages=%zu in_flight=%zu clients=%u\n",
		    qmgr_count(d->qm), qmgr_in_flight(d->qm),
		    d->smtpd != NULL ? smtpd_nsessions(d->smtpd) : 0);
	else if (ctl_admin(d, req, reply, sizeof(reply)))
		;	/* hold, release, requeue, delete, bounce */
	else
		control_reply_format(reply, sizeof(reply), CONTROL_ERR_BADREQ,
		    "unknown request");
	/* One short line into an empty socket buffer: it fits. */
	(void)send(cc->fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
	ctl_close(cc);
}

static void
ctl_read(int fd, int events, void *arg)
{
	struct ctl_conn *cc = arg;
	char *nl;
	ssize_t n;

	(void)events;
	n = read(fd, cc->buf + cc->len, sizeof(cc->buf) - 1 - cc->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		ctl_close(cc);
		return;
	}
	cc->len += (size_t)n;
	cc->buf[cc->len] = '\0';
	if ((nl = strchr(cc->buf, '\n')) == NULL) {
		if (cc->len == sizeof(cc->buf) - 1)
			ctl_close(cc);
		return;
	}
	*nl = '\0';
	if (nl > cc->buf && nl[-1] == '\r')
		nl[-1] = '\0';
	ctl_answer(cc, cc->buf);	/* it closes cc */
}

static void
ctl_accept(int fd, int events, void *arg)
{
	struct daemon *d = arg;
	struct ctl_conn *cc;
	int c;

	(void)events;
	while ((c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) != -1) {
		struct ucred cr;
		socklen_t crlen = sizeof(cr);
		unsigned all = 0, mine = 0;

		/* Who is calling decides what it may ask. */
		if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == -1) {
			close(c);
			continue;
		}
		/* No user can take the slots of another, or of root. */
		if (cr.uid != 0 && cr.uid != geteuid()) {
			for (cc = d->ctls; cc != NULL; cc = cc->next)
				if (cc->uid != 0 && cc->uid != geteuid()) {
					all++;
					mine += cc->uid == cr.uid;
				}
			if (all >= CONTROL_MAX || mine >= CONTROL_PER_UID) {
				char busy[CONTROL_LINE_MAX];
				size_t blen = control_reply_format(busy,
				    sizeof(busy), CONTROL_ERR_BUSY,
				    "too many connections");

				(void)send(c, busy, blen,
				    MSG_NOSIGNAL | MSG_DONTWAIT);
				close(c);
				continue;
			}
		}
		cc = xcalloc(1, sizeof(*cc));
		cc->d = d;
		cc->fd = c;
		cc->uid = cr.uid;
		ev_timer_init(&cc->timer, ctl_timeout, cc);
		if (ev_fd_add(d->loop, c, EV_READ, ctl_read, cc) == -1) {
			close(c);
			free(cc);
			continue;
		}
		ev_timer_add(d->loop, &cc->timer, CONTROL_TIMEOUT_MS);
		cc->next = d->ctls;
		d->ctls = cc;
	}
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
	    errno == ENOMEM) {
		/* Level-triggered: without a pause the loop would spin. */
		log_warn("control socket: accept (pausing %d ms)",
		    CONTROL_PAUSE_MS);
		ev_fd_del(d->loop, d->ctlfd);
		ev_timer_add(d->loop, &d->ctl_pause, CONTROL_PAUSE_MS);
	}
}

void
ctl_resume(void *arg)
{
	struct daemon *d = arg;

	if (d->ctlfd != -1 && !d->stopping &&
	    ev_fd_add(d->loop, d->ctlfd, EV_READ, ctl_accept, d) == -1)
		log_warn("control socket");
}

int
ctl_open(struct daemon *d)
{
	struct sockaddr_un sun;
	mode_t old;

	if (control_addr(d->cur->conf.runtime_dir, &sun) == -1) {
		log_warn("%s: no control socket (mxrelay -q will run the queue "
		    "itself)", d->cur->conf.runtime_dir);
		return 0;
	}
	d->ctl_path = xstrdup(sun.sun_path);
	(void)unlink(d->ctl_path);
	if ((d->ctlfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		return -1;
	/* Every local user may connect; ctl_answer() checks who it is. */
	old = umask(0111);
	if (bind(d->ctlfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(d->ctlfd, 16) == -1) {
		umask(old);
		log_warn("%s", d->ctl_path);
		return -1;
	}
	umask(old);
	return ev_fd_add(d->loop, d->ctlfd, EV_READ, ctl_accept, d);
}
