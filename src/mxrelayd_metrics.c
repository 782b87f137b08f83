/*
 * mxrelayd: the metrics (metrics.h) as text, with the queue's gauges
 * taken at that moment, for the control request "stats" and for the
 * optional HTTP listener of metrics_listen: GET /metrics and nothing
 * else.  The listener has no authentication and no TLS: it is meant for
 * loopback (mxrelayd(8), METRICS).  Each connection sends one request of
 * at most MHTTP_REQ_MAX bytes within MHTTP_TIMEOUT_MS, gets one answer
 * and is closed; at most MHTTP_CONNS are open at once (more are closed
 * at once).
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/types.h>
#include <netdb.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "metrics.h"
#include "mxrelayd.h"
#include "qmgr.h"
#include "util.h"

#define MHTTP_REQ_MAX		4096
#define MHTTP_TIMEOUT_MS	10000
#define MHTTP_CONNS		8
/* Out of descriptors: accepting pauses this long. */
#define MHTTP_PAUSE_MS		1000

struct mhttp_conn {
	struct mhttp		*h;
	int			 fd;
	char			 buf[MHTTP_REQ_MAX + 1];
	size_t			 len;
	char			*out;
	size_t			 outlen, outoff;
	struct ev_timer		 timer;
	struct mhttp_conn	*next;
};

struct mhttp {
	struct daemon		*d;
	int			*fds;
	size_t			 nfds;
	struct mhttp_conn	*conns;
	size_t			 nconns;
	struct ev_timer		 pause;		/* accepting again */
};

static void	 mhttp_conn_close(struct mhttp_conn *);
static void	 mhttp_on_timeout(void *);
static void	 mhttp_on_write(int, int, void *);
static void	 mhttp_on_read(int, int, void *);
static void	 mhttp_on_accept(int, int, void *);
static void	 mhttp_answer(struct mhttp_conn *);
static void	 mhttp_reply(struct mhttp_conn *, const char *status,
		    const char *extra, const char *body, size_t bodylen);
static int	 mhttp_bind(struct mhttp *, const struct hostport *);
static void	 mhttp_on_resume(void *);

char *
daemon_metrics(struct daemon *d, size_t *len)
{
	time_t oldest;
	size_t deferred;

	if (d->qm != NULL) {
		qmgr_queue_ages(d->qm, time(NULL), &oldest, &deferred);
		metrics_set(METRIC_QUEUE_MSGS, NULL, (double)qmgr_count(d->qm));
		metrics_set(METRIC_QUEUE_OLDEST, NULL, (double)oldest);
		metrics_set(METRIC_QUEUE_DEFERRED, NULL, (double)deferred);
	}
	return metrics_render(len);
}

static void
mhttp_conn_close(struct mhttp_conn *c)
{
	struct mhttp_conn **p;
	struct ev_loop *loop = c->h->d->loop;

	for (p = &c->h->conns; *p != NULL; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	c->h->nconns--;
	ev_timer_del(loop, &c->timer);
	ev_fd_del(loop, c->fd);
	close(c->fd);
	free(c->out);
	free(c);
}

static void
mhttp_on_timeout(void *arg)
{
	mhttp_conn_close(arg);
}

static void
mhttp_on_write(int fd, int events, void *arg)
{
	struct mhttp_conn *c = arg;

	(void)events;
	if (daemon_send_some(fd, c->out, c->outlen, &c->outoff))
		mhttp_conn_close(c);
}

/* One answer, then close (the timer bounds a client that never reads). */
static void
mhttp_reply(struct mhttp_conn *c, const char *status, const char *extra,
    const char *body, size_t bodylen)
{
	struct ev_loop *loop = c->h->d->loop;
	char *head;
	size_t hlen;

	head = xasprintf("HTTP/1.0 %s\r\n%sContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", status, extra, bodylen);
	hlen = strlen(head);
	c->out = xmalloc(hlen + bodylen);
	memcpy(c->out, head, hlen);
	memcpy(c->out + hlen, body, bodylen);
	free(head);
	c->outlen = hlen + bodylen;
	c->outoff = 0;
	ev_fd_del(loop, c->fd);
	if (ev_fd_add(loop, c->fd, EV_WRITE, mhttp_on_write, c) == -1) {
		mhttp_conn_close(c);
		return;
	}
	mhttp_on_write(c->fd, EV_WRITE, c);
}

/*
 * The request line only: "GET /metrics HTTP/1.x" (a query string is
 * ignored); the header fields are read and not looked at.
 */
static void
mhttp_answer(struct mhttp_conn *c)
{
	static const char notfound[] = "not found\n";
	static const char notallowed[] = "method not allowed\n";
	static const char bad[] = "bad request\n";
	char *line = c->buf, *sp1, *sp2, *text;
	size_t tlen, plen;

	line[strcspn(line, "\r\n")] = '\0';
	if ((sp1 = strchr(line, ' ')) == NULL ||
	    (sp2 = strchr(sp1 + 1, ' ')) == NULL ||
	    strncmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp1[1] != '/') {
		mhttp_reply(c, "400 Bad Request", "Content-Type: text/plain\r\n",
		    bad, sizeof(bad) - 1);
		return;
	}
	*sp1 = *sp2 = '\0';
	if (strcmp(line, "GET") != 0) {
		mhttp_reply(c, "405 Method Not Allowed",
		    "Allow: GET\r\nContent-Type: text/plain\r\n", notallowed,
		    sizeof(notallowed) - 1);
		return;
	}
	plen = strcspn(sp1 + 1, "?");
	if (plen != strlen("/metrics") ||
	    strncmp(sp1 + 1, "/metrics", plen) != 0) {
		mhttp_reply(c, "404 Not Found", "Content-Type: text/plain\r\n",
		    notfound, sizeof(notfound) - 1);
		return;
	}
	text = daemon_metrics(c->h->d, &tlen);
	mhttp_reply(c, "200 OK",
	    "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n",
	    text, tlen);
	free(text);
}

static void
mhttp_on_read(int fd, int events, void *arg)
{
	struct mhttp_conn *c = arg;
	ssize_t n;

	(void)events;
	n = read(fd, c->buf + c->len, MHTTP_REQ_MAX - c->len);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		mhttp_conn_close(c);
		return;
	}
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (strlen(c->buf) != c->len) {
		mhttp_conn_close(c);	/* a NUL: not HTTP */
		return;
	}
	if (strstr(c->buf, "\r\n\r\n") != NULL ||
	    strstr(c->buf, "\n\n") != NULL) {
		mhttp_answer(c);
		return;
	}
	if (c->len == MHTTP_REQ_MAX) {
		static const char big[] = "request too large\n";

		mhttp_reply(c, "431 Request Header Fields Too Large",
		    "Content-Type: text/plain\r\n", big, sizeof(big) - 1);
	}
}

static void
mhttp_on_accept(int fd, int events, void *arg)
{
	struct mhttp *h = arg;
	struct mhttp_conn *c;
	int cfd;

	(void)events;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
	    SOCK_CLOEXEC)) != -1) {
		if (h->nconns >= MHTTP_CONNS) {
			close(cfd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->h = h;
		c->fd = cfd;
		ev_timer_init(&c->timer, mhttp_on_timeout, c);
		if (ev_fd_add(h->d->loop, cfd, EV_READ, mhttp_on_read, c) == -1) {
			close(cfd);
			free(c);
			continue;
		}
		ev_timer_add(h->d->loop, &c->timer, MHTTP_TIMEOUT_MS);
		c->next = h->conns;
		h->conns = c;
		h->nconns++;
	}
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
	    errno == ENOMEM) {
		/* Level-triggered: without a pause the loop would spin. */
		log_warn("metrics_listen: accept (pausing %d ms)",
		    MHTTP_PAUSE_MS);
		for (size_t i = 0; i < h->nfds; i++)
			ev_fd_del(h->d->loop, h->fds[i]);
		ev_timer_add(h->d->loop, &h->pause, MHTTP_PAUSE_MS);
	}
}

static void
mhttp_on_resume(void *arg)
{
	struct mhttp *h = arg;

	for (size_t i = 0; i < h->nfds; i++)
		if (ev_fd_add(h->d->loop, h->fds[i], EV_READ, mhttp_on_accept,
		    h) == -1)
			log_warn("metrics_listen");
}

static int
mhttp_bind(struct mhttp *h, const struct hostport *hp)
{
	size_t first = h->nfds;

	if (hp->port == 0) {
		log_warnx("metrics_listen %s: a port is needed", hp->host);
		return -1;
	}
	if (daemon_bind(hp, true, 16, "metrics_listen", &h->fds,
	    &h->nfds) != 0)
		return -1;
	for (size_t i = first; i < h->nfds; i++)
		if (ev_fd_add(h->d->loop, h->fds[i], EV_READ, mhttp_on_accept,
		    h) == -1) {
			log_warn("metrics_listen");
			return -1;
		}
	log_info("metrics on http://%s%s%s:%u/metrics",
	    strchr(hp->host, ':') != NULL ? "[" : "", hp->host,
	    strchr(hp->host, ':') != NULL ? "]" : "", hp->port);
	return 0;
}

int
mhttp_open(struct daemon *d, const struct hostport *hps, size_t n)
{
	if (n == 0)
		return 0;
	d->mhttp = xcalloc(1, sizeof(*d->mhttp));
	d->mhttp->d = d;
	ev_timer_init(&d->mhttp->pause, mhttp_on_resume, d->mhttp);
	for (size_t i = 0; i < n; i++)
		if (mhttp_bind(d->mhttp, &hps[i]) == -1)
			return -1;
	return 0;
}

void
mhttp_close(struct daemon *d)
{
	struct mhttp *h = d->mhttp;

	if (h == NULL)
		return;
	while (h->conns != NULL)
		mhttp_conn_close(h->conns);
	ev_timer_del(d->loop, &h->pause);
	for (size_t i = 0; i < h->nfds; i++) {
		ev_fd_del(d->loop, h->fds[i]);
		close(h->fds[i]);
	}
	free(h->fds);
	free(h);
	d->mhttp = NULL;
}
