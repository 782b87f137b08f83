/*
 * smtpload: SMTP load generator for the benchmark of mxrelayd's listener
 * (tests/bench/bench_smtpd.sh).  libc only.
 *
 *   smtpload -s HOST:PORT -c CLIENTS -n MESSAGES -d DOMAINS
 *            [-m MSGS_PER_CONNECTION] [-b BODY_BYTES] [-t SOCKET_TIMEOUT]
 *            [-T TOTAL_TIMEOUT] [-f SENDER] [-v]
 *
 * CLIENTS child processes, each with blocking sockets.  Client i sends the
 * messages i, i + CLIENTS, i + 2 * CLIENTS, ... (so the MESSAGES are shared
 * out evenly); message k goes to <uk@dD.test> with D = k % DOMAINS.  Per
 * connection: EHLO once, then per message MAIL, RCPT and DATA (in one
 * write when the server offers PIPELINING), the body, and QUIT at the end;
 * -m starts a new connection after that many messages (default: one
 * connection per client for all its messages).
 *
 * A message counts as acknowledged only when the reply after its final dot
 * is 2xx.  Any other reply to MAIL, RCPT, DATA (not 354) or the dot counts
 * the message as refused.  A connection that fails (connect error, timeout,
 * closed, unparsable reply, a non-2xx greeting or EHLO/HELO, 421) ends: the
 * message in flight and the messages it still had to send count as errors
 * (refused for the greeting/EHLO), and the client goes on with a new
 * connection for its next group of messages.  Every read and write is
 * bounded by -t (SO_RCVTIMEO/SO_SNDTIMEO, default 30 s) and every client
 * by -T (alarm, default 600 s): a client killed by it counts all it has
 * not reported as errors.
 *
 * Output (stdout), two lines:
 *   acked N of M, refused R, errors E, seconds S
 *   cpu user U system Y
 * (U and Y: the CPU seconds of smtpload and its clients, getrusage).
 * Exit status 0 when every message was acknowledged, 1 otherwise, 2 on a
 * usage error.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS	1000
#define LINE_MAX_LEN	1024

static const char *opt_host, *opt_port;
static long opt_clients = 1, opt_messages = 1, opt_domains = 1;
static long opt_per_conn = 0, opt_body = 256, opt_timeout = 30;
static long opt_total = 600;
static const char *opt_sender = "bench@load.test";
static int opt_verbose;
static volatile sig_atomic_t stop_signal;

/* One child's report, written to the parent's pipe in one write(). */
struct report {
	long	client;
	long	acked, refused, errors;
};

struct conn {
	int	fd;
	char	buf[8192];
	size_t	off, len;
	int	pipelining;
};

static void
usage(void)
{
	fprintf(stderr, "usage: smtpload -s HOST:PORT -c CLIENTS -n MESSAGES "
	    "-d DOMAINS [-m MSGS_PER_CONNECTION] [-b BODY_BYTES]\n"
	    "                [-t SOCKET_TIMEOUT] [-T TOTAL_TIMEOUT] "
	    "[-f SENDER] [-v]\n");
	exit(2);
}

static long
num(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max) {
		fprintf(stderr, "smtpload: bad %s '%s' (%ld..%ld)\n", what, s,
		    min, max);
		exit(2);
	}
	return v;
}

static void	vlog(long, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

static void
vlog(long client, const char *fmt, ...)
{
	va_list ap;

	if (!opt_verbose)
		return;
	fprintf(stderr, "smtpload[%ld]: ", client);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
tv_secs(const struct timeval *tv)
{
	return tv->tv_sec + tv->tv_usec / 1e6;
}

static int
conn_open(struct conn *c, long client)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv;
	int fd = -1, one = 1, gai;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((gai = getaddrinfo(opt_host, opt_port, &hints, &res)) != 0) {
		vlog(client, "%s: %s", opt_host, gai_strerror(gai));
		return -1;
	}
	tv.tv_sec = opt_timeout;
	tv.tv_usec = 0;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype,
		    ai->ai_protocol)) == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		vlog(client, "connect: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	c->fd = fd;
	c->off = c->len = 0;
	c->pipelining = 0;
	return fd == -1 ? -1 : 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

static int
send_all(struct conn *c, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;	/* EAGAIN: the send timeout */
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One line without its CRLF into line (truncated to size - 1); -1 on error. */
static int
read_line(struct conn *c, char *line, size_t size)
{
	size_t n = 0, total = 0;
	ssize_t r;
	char ch;

	for (;;) {
		if (c->off == c->len) {
			r = recv(c->fd, c->buf, sizeof(c->buf), 0);
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				return -1;	/* closed, error or timeout */
			c->off = 0;
			c->len = (size_t)r;
		}
		ch = c->buf[c->off++];
		if (ch == '\n')
			break;
		if (n + 1 < size)
			line[n++] = ch;
		if (++total > 64 * 1024)
			return -1;	/* no line is that long */
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return 0;
}

/*
 * One (possibly multi-line) reply: its code, or -1 when the connection
 * failed or the reply is malformed.  With ehlo, notes PIPELINING.
 */
static int
read_reply(struct conn *c, int ehlo, char *last, size_t lastsize)
{
	char line[LINE_MAX_LEN];
	int code = -1, lines = 0;

	for (;;) {
		if (read_line(c, line, sizeof(line)) == -1)
			return -1;
		if (strlen(line) < 3 || line[0] < '1' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' ||
		    line[2] > '9' || (line[3] != '\0' && line[3] != ' ' &&
		    line[3] != '-'))
			return -1;
		if (code == -1)
			code = atoi(line);
		else if (atoi(line) != code)
			return -1;
		if (ehlo && lines > 0 && (strncasecmp(line + 4, "PIPELINING",
		    10) == 0) && (line[14] == '\0' || line[14] == ' '))
			c->pipelining = 1;
		if (++lines > 1000)
			return -1;
		if (line[3] != '-')
			break;
	}
	if (last != NULL)
		snprintf(last, lastsize, "%s", line);
	return code;
}

/* The message text (headers + body + final dot), dot-stuffing not needed. */
static size_t
make_message(char *buf, size_t size, long k, long domain, long client)
{
	static const char fill[] = "The quick brown fox jumps over the lazy "
	    "dog, benchmarking the relay 0123456789.";
	size_t n, body = 0, l;

	n = (size_t)snprintf(buf, size,
	    "From: Bench <%s>\r\n"
	    "To: <u%ld@d%ld.test>\r\n"
	    "Subject: smtpload message %ld\r\n"
	    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
	    "Message-ID: <smtpload.%ld.%ld@load.test>\r\n"
	    "\r\n", opt_sender, k, domain, k, k, client);
	while (body < (size_t)opt_body && n + 80 < size) {
		l = (size_t)opt_body - body;
		if (l > sizeof(fill) - 1)
			l = sizeof(fill) - 1;
		memcpy(buf + n, fill, l);
		n += l;
		memcpy(buf + n, "\r\n", 2);
		n += 2;
		body += l + 2;
	}
	memcpy(buf + n, ".\r\n", 3);
	return n + 3;
}

enum outcome { OK, REFUSED, CONN_FAIL };

/* One message on an open session. */
static enum outcome
one_message(struct conn *c, long client, long k, char *msgbuf, size_t msgsize)
{
	char cmd[3 * 600], last[LINE_MAX_LEN];
	long domain = k % opt_domains;
	int mail, rcpt, data, dot, n1, n2;
	size_t len;

	n1 = snprintf(cmd, sizeof(cmd), "MAIL FROM:<%s>\r\n", opt_sender);
	n2 = snprintf(cmd + n1, sizeof(cmd) - (size_t)n1,
	    "RCPT TO:<u%ld@d%ld.test>\r\n", k, domain);
	snprintf(cmd + n1 + n2, sizeof(cmd) - (size_t)(n1 + n2), "DATA\r\n");
	if (c->pipelining) {
		if (send_all(c, cmd, strlen(cmd)) == -1)
			return CONN_FAIL;
		if ((mail = read_reply(c, 0, last, sizeof(last))) == -1 ||
		    (rcpt = read_reply(c, 0, last, sizeof(last))) == -1 ||
		    (data = read_reply(c, 0, last, sizeof(last))) == -1)
			return CONN_FAIL;
	} else {
		rcpt = data = 0;
		if (send_all(c, cmd, (size_t)n1) == -1 ||
		    (mail = read_reply(c, 0, last, sizeof(last))) == -1)
			return CONN_FAIL;
		if (mail / 100 == 2) {
			if (send_all(c, cmd + n1, (size_t)n2) == -1 ||
			    (rcpt = read_reply(c, 0, last, sizeof(last))) == -1)
				return CONN_FAIL;
		}
		if (mail / 100 == 2 && rcpt / 100 == 2) {
			if (send_all(c, "DATA\r\n", 6) == -1 ||
			    (data = read_reply(c, 0, last, sizeof(last))) == -1)
				return CONN_FAIL;
		}
	}
	if (mail == 421 || rcpt == 421 || data == 421) {
		vlog(client, "message %ld: %s", k, last);
		return CONN_FAIL;
	}
	if (data == 354) {
		if (mail / 100 != 2 || rcpt / 100 != 2) {
			/* 354 without a recipient: end an empty message. */
			if (send_all(c, ".\r\n", 3) == -1 ||
			    read_reply(c, 0, last, sizeof(last)) == -1)
				return CONN_FAIL;
			vlog(client, "message %ld: 354 after a refusal", k);
			return REFUSED;
		}
		len = make_message(msgbuf, msgsize, k, domain, client);
		if (send_all(c, msgbuf, len) == -1 ||
		    (dot = read_reply(c, 0, last, sizeof(last))) == -1)
			return CONN_FAIL;
		if (dot / 100 == 2)
			return OK;
		vlog(client, "message %ld: after the dot: %s", k, last);
		return dot == 421 ? CONN_FAIL : REFUSED;
	}
	vlog(client, "message %ld: refused: %s", k, last);
	if (mail / 100 == 2) {
		/* Leave the half-made transaction. */
		if (send_all(c, "RSET\r\n", 6) == -1 ||
		    read_reply(c, 0, NULL, 0) == -1)
			return CONN_FAIL;
	}
	return REFUSED;
}

/* One connection for the messages first, first + step, ... (count of them). */
static void
one_connection(long client, long first, long step, long count,
    struct report *rep, char *msgbuf, size_t msgsize)
{
	struct conn c;
	char line[300], last[LINE_MAX_LEN];
	long i;
	int code;

	if (conn_open(&c, client) == -1) {
		rep->errors += count;
		return;
	}
	if ((code = read_reply(&c, 0, last, sizeof(last))) == -1) {
		vlog(client, "no greeting");
		rep->errors += count;
		goto done;
	}
	if (code / 100 != 2) {
		vlog(client, "greeting: %s", last);
		rep->refused += count;
		goto done;
	}
	snprintf(line, sizeof(line), "EHLO client%ld.load.test\r\n", client);
	if (send_all(&c, line, strlen(line)) == -1 ||
	    (code = read_reply(&c, 1, last, sizeof(last))) == -1) {
		rep->errors += count;
		goto done;
	}
	if (code / 100 != 2) {
		vlog(client, "EHLO: %s", last);
		snprintf(line, sizeof(line), "HELO client%ld.load.test\r\n",
		    client);
		if (code == 421 || send_all(&c, line, strlen(line)) == -1 ||
		    (code = read_reply(&c, 0, last, sizeof(last))) == -1) {
			rep->errors += count;
			goto done;
		}
		if (code / 100 != 2) {
			vlog(client, "HELO: %s", last);
			rep->refused += count;
			goto done;
		}
	}
	for (i = 0; i < count; i++) {
		switch (one_message(&c, client, first + i * step, msgbuf,
		    msgsize)) {
		case OK:
			rep->acked++;
			break;
		case REFUSED:
			rep->refused++;
			break;
		case CONN_FAIL:
			vlog(client, "connection failed at message %ld",
			    first + i * step);
			rep->errors += count - i;
			goto done;
		}
	}
	if (send_all(&c, "QUIT\r\n", 6) == 0)
		(void)read_reply(&c, 0, NULL, 0);
done:
	conn_close(&c);
}

static void
on_stop(int sig)
{
	stop_signal = sig;
}

static void
client_main(long client, int wfd)
{
	struct report rep = { client, 0, 0, 0 };
	size_t msgsize = (size_t)opt_body + 4096;
	char *msgbuf;
	long mine, done, chunk;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	alarm((unsigned)opt_total);
	if ((msgbuf = malloc(msgsize)) == NULL)
		_exit(3);
	mine = opt_messages / opt_clients +
	    (client < opt_messages % opt_clients ? 1 : 0);
	/* Each connection takes at least one message: bounded. */
	for (done = 0; done < mine; done += chunk) {
		chunk = mine - done;
		if (opt_per_conn > 0 && chunk > opt_per_conn)
			chunk = opt_per_conn;
		one_connection(client, client + done * opt_clients,
		    opt_clients, chunk, &rep, msgbuf, msgsize);
	}
	if (write(wfd, &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		_exit(3);
	_exit(0);
}

int
main(int argc, char *argv[])
{
	static pid_t pids[MAX_CLIENTS];
	static int reported[MAX_CLIENTS];
	struct report rep;
	long acked = 0, refused = 0, errors = 0, i, mine;
	char *server = NULL, *colon;
	struct sigaction sa;
	int ch, p[2], stopped = 0;
	double start, secs;
	ssize_t r;

	while ((ch = getopt(argc, argv, "s:c:n:d:m:b:t:T:f:v")) != -1) {
		switch (ch) {
		case 's':
			server = optarg;
			break;
		case 'c':
			opt_clients = num(optarg, 1, MAX_CLIENTS, "-c");
			break;
		case 'n':
			opt_messages = num(optarg, 0, 100000000, "-n");
			break;
		case 'd':
			opt_domains = num(optarg, 1, 1000000, "-d");
			break;
		case 'm':
			opt_per_conn = num(optarg, 0, LONG_MAX, "-m");
			break;
		case 'b':
			opt_body = num(optarg, 0, 64 * 1024 * 1024, "-b");
			break;
		case 't':
			opt_timeout = num(optarg, 1, 3600, "-t");
			break;
		case 'T':
			opt_total = num(optarg, 1, 86400, "-T");
			break;
		case 'f':
			if (strlen(optarg) > 256)
				usage();
			opt_sender = optarg;
			break;
		case 'v':
			opt_verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || server == NULL)
		usage();
	/* HOST:PORT or [V6]:PORT */
	if (server[0] == '[') {
		if ((colon = strstr(server, "]:")) == NULL)
			usage();
		*colon = '\0';
		opt_host = server + 1;
		opt_port = colon + 2;
	} else {
		if ((colon = strrchr(server, ':')) == NULL)
			usage();
		*colon = '\0';
		opt_host = server;
		opt_port = colon + 1;
	}
	if (*opt_host == '\0' || *opt_port == '\0')
		usage();
	if (opt_clients > opt_messages && opt_messages > 0)
		opt_clients = opt_messages;

	signal(SIGPIPE, SIG_IGN);
	/* Stopped: the clients are stopped too, and reaped (no sa_restart). */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (pipe(p) == -1) {
		perror("smtpload: pipe");
		return 1;
	}
	fflush(NULL);
	start = now();
	for (i = 0; i < opt_clients && !stop_signal; i++) {
		if ((pids[i] = fork()) == -1) {
			perror("smtpload: fork");
			break;		/* the others still run; their share counts */
		}
		if (pids[i] == 0) {
			close(p[0]);
			client_main(i, p[1]);
		}
	}
	close(p[1]);
	/* EOF once every child has exited (each is bounded by its alarm). */
	for (;;) {
		if (stop_signal && !stopped) {
			for (i = 0; i < opt_clients; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGTERM);
			stopped = 1;
		}
		r = read(p[0], &rep, sizeof(rep));
		if (r == -1 && errno == EINTR)
			continue;
		if (r != (ssize_t)sizeof(rep))
			break;
		if (rep.client < 0 || rep.client >= opt_clients ||
		    reported[rep.client])
			continue;
		reported[rep.client] = 1;
		acked += rep.acked;
		refused += rep.refused;
		errors += rep.errors;
	}
	secs = now() - start;
	close(p[0]);
	for (i = 0; i < opt_clients; i++) {
		int st;

		if (pids[i] > 0) {
			while (waitpid(pids[i], &st, 0) == -1 && errno == EINTR)
				;
			if (!reported[i] && WIFSIGNALED(st) && !stop_signal)
				fprintf(stderr, "smtpload: client %ld killed "
				    "by signal %d%s\n", i, WTERMSIG(st),
				    WTERMSIG(st) == SIGALRM ?
				    " (total timeout)" : "");
		}
		if (!reported[i]) {
			mine = opt_messages / opt_clients +
			    (i < opt_messages % opt_clients ? 1 : 0);
			errors += mine;
		}
	}
	printf("acked %ld of %ld, refused %ld, errors %ld, seconds %.3f\n",
	    acked, opt_messages, refused, errors, secs);
	{
		struct rusage self, kids;

		if (getrusage(RUSAGE_SELF, &self) == 0 &&
		    getrusage(RUSAGE_CHILDREN, &kids) == 0)
			printf("cpu user %.3f system %.3f\n",
			    tv_secs(&self.ru_utime) + tv_secs(&kids.ru_utime),
			    tv_secs(&self.ru_stime) + tv_secs(&kids.ru_stime));
	}
	fflush(stdout);
	if (stop_signal) {
		fprintf(stderr, "smtpload: stopped by signal %d\n",
		    (int)stop_signal);
		signal(stop_signal, SIG_DFL);
		raise(stop_signal);
	}
	return acked == opt_messages ? 0 : 1;
}
