/*
 * smtpsink: a scripted SMTP exchanger for tests and the benchmark (see
 * smtpsink.md for the options).  One process, one poll() loop, any number
 * of listeners and connections, STARTTLS with OpenSSL directly (a test
 * tool: the product's io layer is what it tests, not what it uses).
 *
 * Each accepted message becomes a file in -d DIR, written under a temp
 * name and renamed when complete:
 *	MAIL FROM:<sender>\n
 *	RCPT TO:<rcpt>\n		(one per accepted recipient)
 *	TLS: TLSv1.3\n			(or "TLS: none")
 *	\n
 *	the message, un-stuffed, as received (CRLF lines)
 * and every event is one line "EVENT id=N key=value ..." in the -L log
 * (stderr by default), flushed at once so that tests can read it while the
 * sink runs.  Peer-supplied text in the log is escaped.  No fsync: speed
 * over durability, it is a sink.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "smtp_proto.h"
#include "util.h"

#define SINK_INBUF	(64 * 1024)
#define SINK_CMD_MAX	2048	/* longer than RFC 5321's 512: AUTH */
#define SINK_MAX_LISTEN	16
#define SINK_MAX_RULES	64
#define SINK_ADDR_TEXT	(NI_MAXHOST + NI_MAXSERV + 4)

enum sink_stage {
	STAGE_GREETING,
	STAGE_EHLO,
	STAGE_HELO,
	STAGE_STARTTLS,
	STAGE_AUTH,
	STAGE_MAIL,
	STAGE_RCPT,
	STAGE_DATA,
	STAGE_DOT,
	STAGE_RSET,
	STAGE_QUIT,
	STAGE_N,
};

static const char *stage_names[STAGE_N] = {
	"greeting", "ehlo", "helo", "starttls", "auth", "mail", "rcpt",
	"data", "dot", "rset", "quit",
};

struct rule {
	enum sink_stage	 stage;
	int		 code;
	char		*addr;		/* rcpt only; NULL = every address */
};

enum conn_mode {
	MODE_CMD,
	MODE_DATA,
	MODE_AUTH_PLAIN,	/* waiting for the PLAIN response */
	MODE_AUTH_USER,
	MODE_AUTH_PASS,
	MODE_TLS_WAIT,		/* 220 to STARTTLS queued, not yet sent */
	MODE_HANG,		/* never answer again */
};

struct conn {
	int		 fd;
	unsigned	 id;
	SSL		*ssl;
	bool		 handshaking;
	short		 ssl_want;	/* poll events the handshake waits for */
	char		 tls_version[32];
	char		 local[SINK_ADDR_TEXT];
	char		 peer[SINK_ADDR_TEXT];

	char		 in[SINK_INBUF];
	size_t		 inpos, inlen;
	bool		 skipping;	/* over-long command line */
	char		*out;
	size_t		 outpos, outlen, outcap;
	bool		 close_after_flush;
	bool		 closing;

	enum conn_mode	 mode;
	bool		 greeted;	/* EHLO/HELO seen */
	bool		 esmtp;
	bool		 authed;
	char		 auth_user[256];
	char		*mail_from;
	struct strlist	 rcpts;
	unsigned	 nmsgs;
	uint64_t	 last_in;	/* ms, monotonic: --idle */

	/* DATA */
	FILE		*msgf;
	char		 tmppath[PATH_MAX];
	char		 path[PATH_MAX];
	int		 dstate;
	uint64_t	 msgsize;
};

static struct {
	const char	*dir;
	FILE		*log;
	const char	*cert, *key;
	const char	*name;
	char		*auth_user, *auth_pass;
	struct rule	 rules[SINK_MAX_RULES];
	size_t		 nrules;
	unsigned	 hang;		/* 1 << stage */
	unsigned	 drop;
	bool		 no_pipelining;
	bool		 no_starttls;
	bool		 smtputf8;	/* --smtputf8: offer SMTPUTF8 */
	uint64_t	 size_max;
	long		 lifetime;
	unsigned	 drop_after;	/* --drop-after: messages */
	long		 idle_ms;	/* --idle */
	SSL_CTX		*ctx;
} opt;

static volatile sig_atomic_t	 stop;
static unsigned			 next_id = 1;
static unsigned long		 msg_seq;

static void	 usage(void);
static void	 on_signal(int);
static bool	 conn_drop_after(struct conn *, const char *);
static int	 parse_stage(const char *, size_t, enum sink_stage *);
static int	 parse_rule(const char *);
static int	 listen_on(const char *, int *, char *, size_t);
static void	 sink_log(const char *, ...) __attribute__((format(printf, 1, 2)));
static void	 sockaddr_text(const struct sockaddr *, char *, size_t);
static struct conn *conn_new(int, const char *);
static void	 conn_free(struct conn *);
static void	 conn_out(struct conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 conn_reply(struct conn *, enum sink_stage, int, const char *,
		    const char *);
static bool	 conn_rule(struct conn *, enum sink_stage, const char *,
		    int *);
static bool	 conn_hang_drop(struct conn *, enum sink_stage);
static void	 conn_read(struct conn *);
static void	 conn_process(struct conn *);
static void	 conn_line(struct conn *, char *, size_t, bool);
static void	 conn_auth_line(struct conn *, const char *, size_t);
static void	 conn_ehlo(struct conn *, const char *, bool);
static char	*path_arg(char *, const char *, char **);
static void	 conn_mail(struct conn *, char *);
static void	 conn_rcpt(struct conn *, char *);
static void	 conn_data_start(struct conn *, bool);
static size_t	 conn_data(struct conn *, const char *, size_t);
static void	 conn_data_end(struct conn *);
static void	 conn_flush(struct conn *);
static void	 conn_handshake(struct conn *);
static void	 conn_tx_reset(struct conn *);
static bool	 auth_check(const char *, size_t);
static const char *esc(const char *, size_t);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: smtpsink -l addr:port [-l ...] [-d dir] [-L logfile]\n"
	    "\t[-c cert -k key] [-a user:pass] [-r stage=code[:addr]] ...\n"
	    "\t[--hang=stage] [--drop=stage] [--drop-after=N] [--idle=ms]\n"
	    "\t[--no-pipelining] [--size=N]\n"
	    "\t[--no-starttls] [--smtputf8] [-n name] [-t seconds]\n");
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int
parse_stage(const char *s, size_t len, enum sink_stage *st)
{
	for (int i = 0; i < STAGE_N; i++)
		if (strlen(stage_names[i]) == len &&
		    strncasecmp(s, stage_names[i], len) == 0) {
			*st = (enum sink_stage)i;
			return 0;
		}
	return -1;
}

/* "stage=code" or "rcpt=code:addr" */
static int
parse_rule(const char *arg)
{
	const char *eq = strchr(arg, '='), *colon;
	struct rule *r;
	char *end;
	long code;

	if (eq == NULL || opt.nrules == SINK_MAX_RULES)
		return -1;
	r = &opt.rules[opt.nrules];
	if (parse_stage(arg, (size_t)(eq - arg), &r->stage) == -1)
		return -1;
	code = strtol(eq + 1, &end, 10);
	if (code < 200 || code > 599 || (*end != '\0' && *end != ':'))
		return -1;
	r->code = (int)code;
	r->addr = NULL;
	if (*end == ':') {
		colon = end + 1;
		if (r->stage != STAGE_RCPT || *colon == '\0')
			return -1;
		r->addr = xstrdup(colon);
	}
	opt.nrules++;
	return 0;
}

static void
sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
	    host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		util_strlcpy(buf, "?", len);
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%s", host, serv);
	else
		snprintf(buf, len, "%s:%s", host, serv);
}

/* "127.0.0.1:2525", "[::1]:0" */
static int
listen_on(const char *arg, int *fdp, char *text, size_t textlen)
{
	struct addrinfo hints, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256];
	const char *colon, *port;
	int fd, on = 1;

	if (arg[0] == '[') {
		const char *rb = strchr(arg, ']');

		if (rb == NULL || rb[1] != ':' ||
		    (size_t)(rb - arg - 1) >= sizeof(host))
			return -1;
		memcpy(host, arg + 1, (size_t)(rb - arg - 1));
		host[rb - arg - 1] = '\0';
		port = rb + 2;
	} else {
		if ((colon = strrchr(arg, ':')) == NULL ||
		    (size_t)(colon - arg) >= sizeof(host))
			return -1;
		memcpy(host, arg, (size_t)(colon - arg));
		host[colon - arg] = '\0';
		port = colon + 1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on,
	    sizeof(on)) == -1 || bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
	    listen(fd, 512) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		fprintf(stderr, "smtpsink: %s: %s\n", arg, strerror(errno));
		if (fd != -1)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	sockaddr_text((struct sockaddr *)&ss, text, textlen);
	*fdp = fd;
	return 0;
}

static void
sink_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(opt.log, fmt, ap);
	va_end(ap);
	fputc('\n', opt.log);
	fflush(opt.log);
}

/* Escaped peer text for the log; four buffers in turn (one log line). */
static const char *
esc(const char *s, size_t len)
{
	static char buf[4][1024];
	static unsigned next;

	next = (next + 1) % 4;
	return smtp_escape(buf[next], sizeof(buf[next]), s, len);
}

static struct conn *
conn_new(int fd, const char *local)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	c->fd = fd;
	c->id = next_id++;
	c->last_in = util_now_ms();
	util_strlcpy(c->local, local, sizeof(c->local));
	if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0)
		sockaddr_text((struct sockaddr *)&ss, c->peer, sizeof(c->peer));
	util_strlcpy(c->tls_version, "none", sizeof(c->tls_version));
	sink_log("connect id=%u local=%s peer=%s", c->id, c->local, c->peer);
	if (conn_hang_drop(c, STAGE_GREETING))
		return c;
	{
		int code;

		if (conn_rule(c, STAGE_GREETING, NULL, &code)) {
			conn_reply(c, STAGE_GREETING, code, NULL,
			    "smtpsink says no");
			if (code == 421 || code / 100 == 5)
				/* 554: wait for QUIT; 421: close */
				c->close_after_flush = code == 421;
		} else
			conn_out(c, "220-%s ESMTP smtpsink\r\n220 ready\r\n",
			    opt.name);
	}
	return c;
}

static void
conn_tx_reset(struct conn *c)
{
	free(c->mail_from);
	c->mail_from = NULL;
	strlist_free(&c->rcpts);
	memset(&c->rcpts, 0, sizeof(c->rcpts));
}

static void
conn_free(struct conn *c)
{
	sink_log("close id=%u msgs=%u tls=%s", c->id, c->nmsgs,
	    c->tls_version);
	if (c->msgf != NULL) {
		fclose(c->msgf);
		unlink(c->tmppath);
	}
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	close(c->fd);
	conn_tx_reset(c);
	free(c->out);
	free(c);
}

static void
conn_out(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = c->outcap - c->outlen;

		va_start(ap, fmt);
		n = vsnprintf(c->out != NULL ? c->out + c->outlen : NULL, room,
		    fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < room) {
			c->outlen += (size_t)n;
			return;
		}
		c->outcap = c->outcap * 2 + (size_t)n + 256;
		c->out = xreallocarray(c->out, 1, c->outcap);
	}
}

/* A reply "code x.y.z text"; the stage's rule decides the code. */
static void
conn_reply(struct conn *c, enum sink_stage st, int code, const char *enh,
    const char *text)
{
	char def[16];

	if (enh == NULL) {
		snprintf(def, sizeof(def), "%d.0.0", code / 100);
		enh = def;
	}
	conn_out(c, "%d %s %s\r\n", code, enh, text);
	if (st != STAGE_GREETING && code == 421)
		c->close_after_flush = true;
}

/* Is there a rule for this stage (and address)?  *code gets its code. */
static bool
conn_rule(struct conn *c, enum sink_stage st, const char *addr, int *code)
{
	const struct rule *any = NULL;

	(void)c;
	for (size_t i = 0; i < opt.nrules; i++) {
		const struct rule *r = &opt.rules[i];

		if (r->stage != st)
			continue;
		if (r->addr == NULL) {
			if (any == NULL)
				any = r;
		} else if (addr != NULL && strcasecmp(r->addr, addr) == 0) {
			*code = r->code;
			return true;
		}
	}
	if (any != NULL)
		*code = any->code;
	return any != NULL;
}

/* --hang / --drop for this stage: true when it applied. */
/* --drop-after=N: the connection carried N messages; drop it, no reply. */
static bool
conn_drop_after(struct conn *c, const char *stage)
{
	if (opt.drop_after == 0 || c->nmsgs < opt.drop_after)
		return false;
	sink_log("drop id=%u stage=%s after=%u", c->id, stage, c->nmsgs);
	c->closing = true;
	return true;
}

static bool
conn_hang_drop(struct conn *c, enum sink_stage st)
{
	if (opt.hang & (1u << st)) {
		sink_log("hang id=%u stage=%s", c->id, stage_names[st]);
		c->mode = MODE_HANG;
		return true;
	}
	if (opt.drop & (1u << st)) {
		sink_log("drop id=%u stage=%s", c->id, stage_names[st]);
		c->closing = true;
		return true;
	}
	return false;
}

static void
conn_handshake(struct conn *c)
{
	int r, e;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		c->handshaking = false;
		util_strlcpy(c->tls_version, SSL_get_version(c->ssl),
		    sizeof(c->tls_version));
		sink_log("tls id=%u version=%s cipher=%s", c->id,
		    c->tls_version, SSL_get_cipher_name(c->ssl));
		/* RFC 3207 §4.2: start over. */
		c->greeted = false;
		c->esmtp = false;
		c->mode = MODE_CMD;
		conn_tx_reset(c);
		return;
	}
	e = SSL_get_error(c->ssl, r);
	if (e == SSL_ERROR_WANT_READ)
		c->ssl_want = POLLIN;
	else if (e == SSL_ERROR_WANT_WRITE)
		c->ssl_want = POLLOUT;
	else {
		char buf[256];

		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		sink_log("tls-error id=%u error=%s", c->id, esc(buf,
		    strlen(buf)));
		c->closing = true;
	}
}

static void
conn_flush(struct conn *c)
{
	while (c->outpos < c->outlen && !c->closing) {
		size_t len = c->outlen - c->outpos;
		ssize_t n;

		if (c->ssl != NULL) {
			int r;

			ERR_clear_error();
			r = SSL_write(c->ssl, c->out + c->outpos,
			    len > INT_MAX ? INT_MAX : (int)len);
			if (r <= 0) {
				int e = SSL_get_error(c->ssl, r);

				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ)
					return;
				c->closing = true;
				return;
			}
			n = r;
		} else {
			n = send(c->fd, c->out + c->outpos, len, MSG_NOSIGNAL);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				c->closing = true;
				return;
			}
		}
		c->outpos += (size_t)n;
	}
	if (c->outpos == c->outlen) {
		c->outpos = c->outlen = 0;
		if (c->close_after_flush)
			c->closing = true;
		else if (c->mode == MODE_TLS_WAIT && c->ssl == NULL) {
			c->ssl = SSL_new(opt.ctx);
			if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
				c->closing = true;
				return;
			}
			SSL_set_accept_state(c->ssl);
			c->handshaking = true;
			conn_handshake(c);
		}
	}
}

static void
conn_read(struct conn *c)
{
	for (;;) {
		size_t room;
		ssize_t n;

		if (c->inpos > 0 && c->inpos == c->inlen)
			c->inpos = c->inlen = 0;
		if (c->inpos > 0 && c->inlen == sizeof(c->in)) {
			memmove(c->in, c->in + c->inpos, c->inlen - c->inpos);
			c->inlen -= c->inpos;
			c->inpos = 0;
		}
		room = sizeof(c->in) - c->inlen;
		if (room == 0) {
			conn_process(c);
			if (c->closing || (c->inpos == 0 &&
			    c->inlen == sizeof(c->in)))
				return;
			continue;
		}
		if (c->ssl != NULL) {
			int r, e;

			ERR_clear_error();
			r = SSL_read(c->ssl, c->in + c->inlen, (int)room);
			if (r <= 0) {
				e = SSL_get_error(c->ssl, r);
				if (e == SSL_ERROR_WANT_READ ||
				    e == SSL_ERROR_WANT_WRITE)
					break;
				c->closing = true;
				return;
			}
			n = r;
		} else {
			n = read(c->fd, c->in + c->inlen, room);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && errno == EAGAIN)
				break;
			if (n <= 0) {
				c->closing = true;
				return;
			}
		}
		c->inlen += (size_t)n;
		c->last_in = util_now_ms();
		if (c->ssl == NULL && (size_t)n < room)
			break;
	}
	conn_process(c);
}

/* Take what is buffered: commands, body bytes. */
static void
conn_process(struct conn *c)
{
	while (c->inpos < c->inlen && !c->closing && !c->handshaking) {
		char *p = c->in + c->inpos, *lf;
		size_t avail = c->inlen - c->inpos, len;

		switch (c->mode) {
		case MODE_HANG:
			c->inpos = c->inlen;
			continue;
		case MODE_DATA:
			c->inpos += conn_data(c, p, avail);
			continue;
		case MODE_TLS_WAIT:
			/* bytes pipelined after STARTTLS: dropped (RFC 3207 4.2) */
			sink_log("violation id=%u what=data-after-starttls",
			    c->id);
			c->inpos = c->inlen;
			continue;
		default:
			break;
		}
		if ((lf = memchr(p, '\n', avail)) == NULL) {
			if (avail > SINK_CMD_MAX) {
				c->inpos = c->inlen;
				c->skipping = true;
			} else if (c->inpos > 0) {
				memmove(c->in, p, avail);
				c->inpos = 0;
				c->inlen = avail;
			}
			break;
		}
		len = (size_t)(lf - p);
		c->inpos += len + 1;
		if (c->skipping) {
			c->skipping = false;
			conn_out(c, "500 5.5.2 line too long\r\n");
			continue;
		}
		if (len > 0 && p[len - 1] == '\r')
			len--;
		p[len] = '\0';
		if (len > SINK_CMD_MAX) {
			conn_out(c, "500 5.5.2 line too long\r\n");
			continue;
		}
		if (c->mode == MODE_CMD)
			conn_line(c, p, len, c->inpos < c->inlen);
		else
			conn_auth_line(c, p, len);
	}
	if (c->inpos == c->inlen)
		c->inpos = c->inlen = 0;
}

static bool
auth_check(const char *user, size_t ulen)
{
	return opt.auth_user != NULL && strlen(opt.auth_user) == ulen &&
	    memcmp(opt.auth_user, user, ulen) == 0;
}

static void
conn_auth_line(struct conn *c, const char *line, size_t len)
{
	char dec[512];
	size_t n;
	int code;
	bool ok = false;

	if (len == 1 && line[0] == '*') {
		c->mode = MODE_CMD;
		conn_out(c, "501 5.0.0 AUTH aborted\r\n");
		return;
	}
	if (smtp_base64_decode(line, len, dec, sizeof(dec) - 1, &n) == -1) {
		c->mode = MODE_CMD;
		conn_out(c, "501 5.5.2 bad base64\r\n");
		return;
	}
	dec[n] = '\0';
	switch (c->mode) {
	case MODE_AUTH_PLAIN: {
		/* authzid NUL authcid NUL passwd */
		char *u = memchr(dec, '\0', n), *pw;

		if (u != NULL && (pw = memchr(u + 1, '\0',
		    n - (size_t)(u + 1 - dec))) != NULL) {
			size_t ulen = (size_t)(pw - u - 1);

			util_strlcpy(c->auth_user, esc(u + 1, ulen),
			    sizeof(c->auth_user));
			ok = auth_check(u + 1, ulen) &&
			    strcmp(pw + 1, opt.auth_pass) == 0;
		}
		break;
	}
	case MODE_AUTH_USER:
		util_strlcpy(c->auth_user, dec, sizeof(c->auth_user));
		c->mode = MODE_AUTH_PASS;
		conn_out(c, "334 UGFzc3dvcmQ6\r\n");
		return;
	case MODE_AUTH_PASS:
		ok = auth_check(c->auth_user, strlen(c->auth_user)) &&
		    strcmp(dec, opt.auth_pass) == 0;
		break;
	default:
		break;
	}
	explicit_bzero(dec, sizeof(dec));
	c->mode = MODE_CMD;
	if (conn_rule(c, STAGE_AUTH, NULL, &code))
		ok = false;
	else
		code = ok ? 235 : 535;
	sink_log("auth id=%u user=%s result=%s", c->id,
	    esc(c->auth_user, strlen(c->auth_user)), ok ? "ok" : "fail");
	c->authed = ok;
	conn_reply(c, STAGE_AUTH, code, ok ? "2.7.0" : NULL,
	    ok ? "authenticated" : "authentication failed");
}

static void
conn_ehlo(struct conn *c, const char *arg, bool esmtp)
{
	enum sink_stage st = esmtp ? STAGE_EHLO : STAGE_HELO;
	int code;

	sink_log("%s id=%u name=%s", esmtp ? "ehlo" : "helo", c->id,
	    esc(arg, strlen(arg)));
	if (conn_hang_drop(c, st))
		return;
	conn_tx_reset(c);
	if (conn_rule(c, st, NULL, &code)) {
		conn_reply(c, st, code, NULL, "smtpsink says no");
		return;
	}
	c->greeted = true;
	c->esmtp = esmtp;
	if (!esmtp) {
		conn_out(c, "250 %s\r\n", opt.name);
		return;
	}
	conn_out(c, "250-%s hello %s\r\n", opt.name, esc(arg, strlen(arg)));
	if (!opt.no_pipelining)
		conn_out(c, "250-PIPELINING\r\n");
	if (opt.size_max > 0)
		conn_out(c, "250-SIZE %llu\r\n",
		    (unsigned long long)opt.size_max);
	else
		conn_out(c, "250-SIZE\r\n");
	conn_out(c, "250-8BITMIME\r\n");
	if (opt.smtputf8)
		conn_out(c, "250-SMTPUTF8\r\n");
	if (opt.ctx != NULL && c->ssl == NULL && !opt.no_starttls)
		conn_out(c, "250-STARTTLS\r\n");
	if (opt.auth_user != NULL && c->ssl != NULL)
		conn_out(c, "250-AUTH PLAIN LOGIN\r\n");
	conn_out(c, "250 ENHANCEDSTATUSCODES\r\n");
}

/* "FROM:<addr> params" -> addr (in place); NULL when malformed. */
static char *
path_arg(char *s, const char *kw, char **params)
{
	size_t kl = strlen(kw);
	char *gt;

	if (strncasecmp(s, kw, kl) != 0)
		return NULL;
	s += kl;
	while (*s == ' ')
		s++;
	if (*s != '<' || (gt = strchr(s, '>')) == NULL)
		return NULL;
	*gt = '\0';
	*params = gt + 1;
	while (**params == ' ')
		(*params)++;
	return s + 1;
}

static void
conn_mail(struct conn *c, char *arg)
{
	char *params, *addr, *p;
	uint64_t size = 0;
	int code;

	if (!c->greeted) {
		conn_out(c, "503 5.5.1 EHLO first\r\n");
		return;
	}
	if (c->mail_from != NULL) {
		conn_out(c, "503 5.5.1 nested MAIL\r\n");
		return;
	}
	if ((addr = path_arg(arg, "FROM:", &params)) == NULL) {
		conn_out(c, "501 5.5.4 syntax: MAIL FROM:<address>\r\n");
		return;
	}
	if ((p = strcasestr(params, "SIZE=")) != NULL)
		size = strtoull(p + 5, NULL, 10);
	sink_log("mail id=%u from=<%s> params=%s", c->id,
	    esc(addr, strlen(addr)), esc(params, strlen(params)));
	if (conn_hang_drop(c, STAGE_MAIL))
		return;
	if (conn_rule(c, STAGE_MAIL, NULL, &code)) {
		conn_reply(c, STAGE_MAIL, code, NULL, "smtpsink says no");
		return;
	}
	if (opt.size_max > 0 && size > opt.size_max) {
		conn_reply(c, STAGE_MAIL, 552, "5.3.4", "message too big");
		return;
	}
	c->mail_from = xstrdup(addr);
	conn_out(c, "250 2.1.0 sender ok\r\n");
}

static void
conn_rcpt(struct conn *c, char *arg)
{
	char *params, *addr;
	int code;

	if (c->mail_from == NULL) {
		conn_out(c, "503 5.5.1 MAIL first\r\n");
		return;
	}
	if ((addr = path_arg(arg, "TO:", &params)) == NULL) {
		conn_out(c, "501 5.5.4 syntax: RCPT TO:<address>\r\n");
		return;
	}
	if (conn_hang_drop(c, STAGE_RCPT)) {
		sink_log("rcpt id=%u to=<%s> code=none", c->id,
		    esc(addr, strlen(addr)));
		return;
	}
	if (!conn_rule(c, STAGE_RCPT, addr, &code))
		code = 250;
	sink_log("rcpt id=%u to=<%s> code=%d", c->id, esc(addr, strlen(addr)),
	    code);
	if (code / 100 == 2) {
		strlist_add(&c->rcpts, addr);
		conn_out(c, "%d 2.1.5 recipient ok\r\n", code);
	} else
		conn_reply(c, STAGE_RCPT, code, code / 100 == 5 ? "5.1.1" :
		    "4.3.0", "recipient refused by smtpsink rule");
}

static void
conn_data_start(struct conn *c, bool more)
{
	int code, fd;

	if (c->mail_from == NULL) {
		conn_out(c, "503 5.5.1 MAIL first\r\n");
		sink_log("data id=%u code=503", c->id);
		return;
	}
	if (c->rcpts.n == 0) {
		/* RFC 2920 §3.1 */
		conn_out(c, "554 5.5.1 no valid recipients\r\n");
		sink_log("data id=%u code=554", c->id);
		return;
	}
	if (conn_hang_drop(c, STAGE_DATA))
		return;
	if (conn_rule(c, STAGE_DATA, NULL, &code)) {
		conn_reply(c, STAGE_DATA, code, NULL, "smtpsink says no");
		sink_log("data id=%u code=%d", c->id, code);
		return;
	}
	if (more)
		/* RFC 2920 §3.1: DATA ends a group; wait for the 354 */
		sink_log("violation id=%u what=body-before-354", c->id);
	c->msgsize = 0;
	c->dstate = 0;
	c->msgf = NULL;
	if (opt.dir != NULL) {
		snprintf(c->tmppath, sizeof(c->tmppath), "%s/tmp.%ld.%lu",
		    opt.dir, (long)getpid(), ++msg_seq);
		snprintf(c->path, sizeof(c->path), "%s/msg.%ld.%06lu",
		    opt.dir, (long)getpid(), msg_seq);
		fd = open(c->tmppath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0644);
		if (fd == -1 || (c->msgf = fdopen(fd, "w")) == NULL) {
			sink_log("error id=%u %s: %s", c->id, c->tmppath,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			conn_out(c, "451 4.3.0 cannot store\r\n");
			return;
		}
		setvbuf(c->msgf, NULL, _IOFBF, 65536);
		fprintf(c->msgf, "MAIL FROM:<%s>\n", c->mail_from);
		for (size_t i = 0; i < c->rcpts.n; i++)
			fprintf(c->msgf, "RCPT TO:<%s>\n", c->rcpts.v[i]);
		fprintf(c->msgf, "TLS: %s\n\n", c->tls_version);
	}
	c->mode = MODE_DATA;
	sink_log("data id=%u code=354", c->id);
	conn_out(c, "354 go ahead\r\n");
}

/*
 * Body bytes: un-stuff (RFC 5321 §4.5.2) into the message file until
 * CRLF "." CRLF.  Returns the bytes taken.  dstate: 0 line start, 1 in a
 * line, 2 after CR, 3 a dot at line start, 4 after ".\r".
 */
static size_t
conn_data(struct conn *c, const char *p, size_t len)
{
	size_t i;

#define EMIT(ch) do {						\
	if (c->msgf != NULL)					\
		putc_unlocked((ch), c->msgf);			\
	c->msgsize++;						\
} while (0)
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)p[i];

		switch (c->dstate) {
		case 0:
			if (ch == '.') {
				c->dstate = 3;
				break;
			}
			EMIT(ch);
			c->dstate = ch == '\r' ? 2 : 1;
			break;
		case 1:
			EMIT(ch);
			if (ch == '\r')
				c->dstate = 2;
			break;
		case 2:
			EMIT(ch);
			c->dstate = ch == '\n' ? 0 : ch == '\r' ? 2 : 1;
			break;
		case 3:
			if (ch == '\r') {
				c->dstate = 4;
				break;
			}
			EMIT(ch);	/* the leading dot is dropped */
			c->dstate = 1;
			break;
		case 4:
			if (ch == '\n') {
				conn_data_end(c);
				return i + 1;
			}
			EMIT('\r');
			EMIT(ch);
			c->dstate = ch == '\r' ? 2 : 1;
			break;
		}
	}
#undef EMIT
	return i;
}

static void
conn_data_end(struct conn *c)
{
	bool keep;
	int code = 250;

	c->mode = MODE_CMD;
	if (conn_hang_drop(c, STAGE_DOT)) {
		if (c->msgf != NULL) {
			fclose(c->msgf);
			c->msgf = NULL;
			unlink(c->tmppath);
		}
		conn_tx_reset(c);
		return;
	}
	if (!conn_rule(c, STAGE_DOT, NULL, &code))
		code = 250;
	keep = code / 100 == 2;
	if (c->msgf != NULL) {
		if (fclose(c->msgf) != 0)
			keep = false, code = 451;
		c->msgf = NULL;
		if (!keep)
			unlink(c->tmppath);
		else if (rename(c->tmppath, c->path) == -1) {
			unlink(c->tmppath);
			code = 451;
			keep = false;
		}
	}
	if (keep)
		c->nmsgs++;
	sink_log("msg id=%u n=%u size=%llu rcpts=%zu tls=%s code=%d file=%s",
	    c->id, c->nmsgs, (unsigned long long)c->msgsize, c->rcpts.n,
	    c->tls_version, code, keep && opt.dir != NULL ? c->path : "-");
	if (keep)
		conn_out(c, "250 2.0.0 queued as %u.%u\r\n", c->id, c->nmsgs);
	else
		conn_reply(c, STAGE_DOT, code, NULL, "smtpsink says no");
	conn_tx_reset(c);
}

static void
conn_line(struct conn *c, char *line, size_t len, bool more)
{
	char *arg = line;
	size_t vlen;
	int code;

	while (*arg != '\0' && *arg != ' ')
		arg++;
	vlen = (size_t)(arg - line);
	while (*arg == ' ')
		arg++;
	/* RFC 2920: only a server that offers PIPELINING may see groups */
	if (more && opt.no_pipelining)
		sink_log("violation id=%u what=pipelining", c->id);
#define VERB(v) (vlen == strlen(v) && strncasecmp(line, (v), vlen) == 0)
	if (VERB("EHLO"))
		conn_ehlo(c, arg, true);
	else if (VERB("HELO"))
		conn_ehlo(c, arg, false);
	else if (VERB("MAIL")) {
		if (!conn_drop_after(c, "mail"))
			conn_mail(c, arg);
	}
	else if (VERB("RCPT"))
		conn_rcpt(c, arg);
	else if (VERB("DATA"))
		conn_data_start(c, more);
	else if (VERB("RSET")) {
		sink_log("rset id=%u", c->id);
		if (conn_drop_after(c, "rset"))
			return;
		if (conn_hang_drop(c, STAGE_RSET))
			return;
		conn_tx_reset(c);
		if (conn_rule(c, STAGE_RSET, NULL, &code))
			conn_reply(c, STAGE_RSET, code, NULL, "smtpsink says no");
		else
			conn_out(c, "250 2.0.0 reset\r\n");
	} else if (VERB("NOOP"))
		conn_out(c, "250 2.0.0 ok\r\n");
	else if (VERB("QUIT")) {
		sink_log("quit id=%u", c->id);
		if (conn_hang_drop(c, STAGE_QUIT))
			return;
		conn_out(c, "221 2.0.0 bye\r\n");
		c->close_after_flush = true;
		c->mode = MODE_HANG;
	} else if (VERB("STARTTLS")) {
		sink_log("starttls id=%u", c->id);
		if (conn_hang_drop(c, STAGE_STARTTLS))
			return;
		if (opt.ctx == NULL || opt.no_starttls || c->ssl != NULL) {
			conn_out(c, "502 5.5.1 no STARTTLS here\r\n");
			return;
		}
		if (conn_rule(c, STAGE_STARTTLS, NULL, &code)) {
			conn_reply(c, STAGE_STARTTLS, code, NULL,
			    "smtpsink says no");
			return;
		}
		conn_out(c, "220 2.0.0 ready to start TLS\r\n");
		c->mode = MODE_TLS_WAIT;
	} else if (VERB("AUTH")) {
		char *mech = arg, *ir;

		/* Every AUTH that arrives, even one refused: tests check
		 * that credentials never reached a server. */
		sink_log("auth-cmd id=%u tls=%s", c->id,
		    c->ssl != NULL ? "yes" : "no");
		if (opt.auth_user == NULL || c->ssl == NULL || c->authed) {
			conn_out(c, "503 5.5.1 no AUTH here\r\n");
			return;
		}
		if (conn_hang_drop(c, STAGE_AUTH))
			return;
		for (ir = mech; *ir != '\0' && *ir != ' '; ir++)
			;
		if (*ir == ' ')
			*ir++ = '\0';
		if (strcasecmp(mech, "PLAIN") == 0) {
			c->mode = MODE_AUTH_PLAIN;
			if (*ir != '\0')
				conn_auth_line(c, ir, strlen(ir));
			else
				conn_out(c, "334 \r\n");
		} else if (strcasecmp(mech, "LOGIN") == 0) {
			c->mode = MODE_AUTH_USER;
			conn_out(c, "334 VXNlcm5hbWU6\r\n");
		} else
			conn_out(c, "504 5.5.4 mechanism not supported\r\n");
	} else {
		sink_log("badcmd id=%u line=%s", c->id, esc(line, len));
		conn_out(c, "500 5.5.2 unknown command\r\n");
	}
#undef VERB
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "hang", required_argument, NULL, 'H' },
		{ "drop", required_argument, NULL, 'D' },
		{ "drop-after", required_argument, NULL, 'A' },
		{ "idle", required_argument, NULL, 'I' },
		{ "no-pipelining", no_argument, NULL, 'P' },
		{ "no-starttls", no_argument, NULL, 'S' },
		{ "size", required_argument, NULL, 'z' },
		{ "smtputf8", no_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listens[SINK_MAX_LISTEN], *logpath = NULL;
	int lfd[SINK_MAX_LISTEN];
	char ltext[SINK_MAX_LISTEN][SINK_ADDR_TEXT];
	size_t nlisten = 0, nconn = 0, capconn = 0;
	struct conn **conns = NULL;
	struct pollfd *pfd = NULL;
	struct sigaction sa;
	time_t deadline;
	enum sink_stage st;
	int ch;

	opt.lifetime = 600;
	opt.name = "smtpsink.test";
	while ((ch = getopt_long(argc, argv, "l:d:L:c:k:a:r:t:n:h", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'l':
			if (nlisten == SINK_MAX_LISTEN)
				usage();
			listens[nlisten++] = optarg;
			break;
		case 'd':
			opt.dir = optarg;
			break;
		case 'L':
			logpath = optarg;
			break;
		case 'c':
			opt.cert = optarg;
			break;
		case 'k':
			opt.key = optarg;
			break;
		case 'a': {
			char *colon = strchr(optarg, ':');

			if (colon == NULL)
				usage();
			opt.auth_user = xstrndup(optarg,
			    (size_t)(colon - optarg));
			opt.auth_pass = xstrdup(colon + 1);
			break;
		}
		case 'r':
			if (parse_rule(optarg) == -1) {
				fprintf(stderr, "smtpsink: bad rule %s\n", optarg);
				usage();
			}
			break;
		case 'H':
		case 'D':
			if (parse_stage(optarg, strlen(optarg), &st) == -1)
				usage();
			if (ch == 'H')
				opt.hang |= 1u << st;
			else
				opt.drop |= 1u << st;
			break;
		case 'A':
			opt.drop_after = (unsigned)strtoul(optarg, NULL, 10);
			if (opt.drop_after == 0)
				usage();
			break;
		case 'I':
			opt.idle_ms = strtol(optarg, NULL, 10);
			if (opt.idle_ms <= 0)
				usage();
			break;
		case 'P':
			opt.no_pipelining = true;
			break;
		case 'S':
			opt.no_starttls = true;
			break;
		case 'U':
			opt.smtputf8 = true;
			break;
		case 'z':
			if (util_parse_size(optarg, &opt.size_max) == -1)
				usage();
			break;
		case 't':
			opt.lifetime = strtol(optarg, NULL, 10);
			if (opt.lifetime <= 0)
				usage();
			break;
		case 'n':
			opt.name = optarg;
			break;
		default:
			usage();
		}
	}
	if (nlisten == 0 || optind != argc || (opt.cert == NULL) !=
	    (opt.key == NULL))
		usage();
	opt.log = stderr;
	if (logpath != NULL && (opt.log = fopen(logpath, "a")) == NULL) {
		fprintf(stderr, "smtpsink: %s: %s\n", logpath, strerror(errno));
		return 1;
	}
	if (opt.cert != NULL) {
		if ((opt.ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
		    SSL_CTX_use_certificate_chain_file(opt.ctx, opt.cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(opt.ctx, opt.key,
		    SSL_FILETYPE_PEM) != 1) {
			fprintf(stderr, "smtpsink: cannot load %s / %s\n",
			    opt.cert, opt.key);
			return 1;
		}
		SSL_CTX_set_mode(opt.ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	for (size_t i = 0; i < nlisten; i++) {
		if (listen_on(listens[i], &lfd[i], ltext[i],
		    sizeof(ltext[i])) == -1) {
			fprintf(stderr, "smtpsink: cannot listen on %s\n",
			    listens[i]);
			return 1;
		}
		sink_log("listen addr=%s", ltext[i]);
	}
	/* The addresses with the ports picked: tests read them here. */
	for (size_t i = 0; i < nlisten; i++)
		printf("%s\n", ltext[i]);
	fflush(stdout);

	deadline = time(NULL) + opt.lifetime;
	while (!stop) {
		time_t now = time(NULL);
		size_t n = 0;
		int r, wait_ms;

		if (now >= deadline) {
			sink_log("exit reason=lifetime");
			break;
		}
		wait_ms = (int)(deadline - now) * 1000;
		if (opt.idle_ms > 0) {
			/* An exchanger's idle timeout: 421, then close. */
			uint64_t t = util_now_ms();

			for (size_t i = 0; i < nconn; i++) {
				struct conn *c = conns[i];
				uint64_t due = c->last_in + (uint64_t)opt.idle_ms;

				if (c->closing || c->close_after_flush ||
				    c->mode == MODE_HANG)
					continue;
				if (due <= t) {
					sink_log("idle id=%u", c->id);
					conn_out(c, "421 4.4.2 %s idle timeout\r\n",
					    opt.name);
					c->close_after_flush = true;
					conn_flush(c);
					wait_ms = 0;	/* reap it below */
				} else if (due - t < (uint64_t)wait_ms)
					wait_ms = (int)(due - t);
			}
		}
		pfd = xreallocarray(pfd, nlisten + nconn, sizeof(*pfd));
		for (size_t i = 0; i < nlisten; i++) {
			pfd[n].fd = lfd[i];
			pfd[n].events = POLLIN;
			pfd[n++].revents = 0;
		}
		for (size_t i = 0; i < nconn; i++) {
			struct conn *c = conns[i];

			pfd[n].fd = c->fd;
			if (c->handshaking)
				pfd[n].events = c->ssl_want;
			else
				pfd[n].events = POLLIN |
				    (c->outlen > c->outpos ? POLLOUT : 0);
			pfd[n++].revents = 0;
		}
		r = poll(pfd, n, wait_ms);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			perror("smtpsink: poll");
			break;
		}
		for (size_t i = 0; i < nlisten; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			for (;;) {
				int fd = accept4(lfd[i], NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (fd == -1)
					break;
				if (nconn == capconn) {
					capconn = capconn * 2 + 16;
					conns = xreallocarray(conns, capconn,
					    sizeof(*conns));
				}
				conns[nconn] = conn_new(fd, ltext[i]);
				conn_flush(conns[nconn]);
				nconn++;
			}
		}
		for (size_t i = 0; i < n - nlisten; i++) {
			struct conn *c = conns[i];
			short re = pfd[nlisten + i].revents;

			if (re == 0)
				continue;
			if (c->handshaking)
				conn_handshake(c);
			else {
				if (re & (POLLIN | POLLHUP | POLLERR))
					conn_read(c);
				/* a handshake may have begun and ended here */
			}
			if (!c->handshaking && !c->closing)
				conn_flush(c);
			/* TLS finished with input already decrypted: */
			if (!c->handshaking && !c->closing && c->ssl != NULL &&
			    SSL_pending(c->ssl) > 0)
				conn_read(c), conn_flush(c);
		}
		/* Reap closed connections; keep the order of the others. */
		{
			size_t o = 0;

			for (size_t i = 0; i < nconn; i++) {
				if (conns[i]->closing)
					conn_free(conns[i]);
				else
					conns[o++] = conns[i];
			}
			nconn = o;
		}
	}
	if (stop)
		sink_log("exit reason=signal");
	for (size_t i = 0; i < nconn; i++)
		conn_free(conns[i]);
	for (size_t i = 0; i < nlisten; i++)
		close(lfd[i]);
	free(conns);
	free(pfd);
	for (size_t i = 0; i < opt.nrules; i++)
		free(opt.rules[i].addr);
	free(opt.auth_user);
	free(opt.auth_pass);
	if (opt.ctx != NULL)
		SSL_CTX_free(opt.ctx);
	if (opt.log != stderr)
		fclose(opt.log);
	return 0;
}
