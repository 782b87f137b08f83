/*
 * Unit tests for the SMTP listener through real sessions: src/smtpd.c,
 * smtpd_commit.c, smtpd_auth.c and smtpd_local.c (the pure parsers have
 * test_smtpd_parse.c), and the raw-read mode of src/io.c.  A real
 * struct smtpd on a real event loop, listening on 127.0.0.1:0, a real
 * spool in a mkdtemp directory, and a scripted client over loopback TCP
 * (non-blocking, driven by ev_run_once() so nothing hangs; TLS with
 * OpenSSL directly on the client side).  Certificates come from
 * tls-certs.sh and password hashes from `openssl passwd -6`; without the
 * openssl command those tests are skipped.  Spool failures are injected
 * through queue/spool_test.h.  Local sessions (mxrelay -bs) run over
 * pipes, regular files and a pty, by smtpd_session_fds() on the test's
 * loop or by submit_bs() on its own.
 */
#include "config.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "conf.h"
#include "event.h"
#include "io.h"
#include "metrics.h"
#include "mock_log.h"
#include "smtp_proto.h"
#include "smtpd.h"
#include "spool.h"
#include "spool_test.h"
#include "submit_bs.h"
#include "tls.h"
#include "util.h"
#include "testutil.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

#define WAIT_MS		5000	/* longest wait for anything */

static char	 certdir[256];
static bool	 have_certs;
static char	 secret_hash[256];	/* openssl passwd -6 secret */

struct fx {
	char		 top[PATH_MAX];
	char		 spool[PATH_MAX + 16];
	struct ev_loop	*loop;
	struct queue	*q;
	struct smtpd	*sd;
	struct smtpd_params p;
	struct cidr	 relay[2];
	struct sockaddr_in sin;
	SSL_CTX		*sctx;		/* server */
	SSL_CTX		*cctx;		/* client */
	struct smtpd_users *users;
	/* queued callback */
	unsigned	 nqueued;
	bool		 env_existed;
	char		 last_id[QUEUE_ID_LEN + 1];
};

struct client {
	struct fx	*fx;
	int		 fd;		/* replies are read from it */
	int		 wfd;		/* commands go here: fd, or a pipe */
	SSL		*ssl;
	char		 buf[65536];
	size_t		 len;
	bool		 eof;
	char		 reply[8192];	/* the last reply, lines joined by \n */
};

static struct fx *cur;

/*
 * crypt_r() wrapped (-Wl,--wrap=crypt_r): how often it ran on the
 * thread of the loop and how often elsewhere (a worker).
 */
static pthread_t main_thread;
static _Atomic unsigned crypt_on_loop, crypt_off_loop;
char	*__real_crypt_r(const char *, const char *, struct crypt_data *);
char	*__wrap_crypt_r(const char *, const char *, struct crypt_data *);

char *
__wrap_crypt_r(const char *key, const char *setting, struct crypt_data *cd)
{
	if (pthread_equal(pthread_self(), main_thread))
		crypt_on_loop++;
	else
		crypt_off_loop++;
	return __real_crypt_r(key, setting, cd);
}

static void
on_queued(void *arg, const struct envelope *env)
{
	struct fx *fx = arg;
	struct envelope e;

	fx->nqueued++;
	snprintf(fx->last_id, sizeof(fx->last_id), "%s", env->id);
	/* Committed before it is reported: the spool already has it whole. */
	fx->env_existed = queue_env_load(fx->q, env->id, &e) == 0 &&
	    e.size == env->size;
	if (fx->env_existed)
		envelope_free(&e);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_non_null(test_mkdtemp(fx->top, sizeof(fx->top), "mxrelay-smtpd"));
	snprintf(fx->spool, sizeof(fx->spool), "%s/spool", fx->top);
	assert_int_equal(queue_open(fx->spool, true, &fx->q), 0);
	fx->loop = ev_loop_new();
	assert_int_equal(conf_parse_cidr("127.0.0.0/8", &fx->relay[0]), 0);
	assert_int_equal(conf_parse_cidr("::1", &fx->relay[1]), 0);
	fx->p.hostname = "mx.example";
	fx->p.qualify_domain = "example.org";
	fx->p.max_size = 10000000;
	fx->p.max_recipients = 100;
	fx->p.max_clients = 10;
	fx->p.cmd_timeout_ms = SMTPD_CMD_TIMEOUT_MS;
	fx->p.data_timeout_ms = SMTPD_DATA_TIMEOUT_MS;
	fx->p.relay_clients = fx->relay;
	fx->p.nrelay_clients = 2;
	mock_log_clear();
	cur = fx;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[PATH_MAX + 32];

	queue_test_set_sysops(NULL);
	smtpd_free(fx->sd);
	/* Let freed io objects finish (nothing may be left behind). */
	for (int i = 0; i < 3; i++)
		ev_run_once(fx->loop, 0);
	ev_loop_free(fx->loop);
	queue_close(fx->q);
	tls_ctx_free(fx->sctx);
	tls_ctx_free(fx->cctx);
	smtpd_users_free(fx->users);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->top);
	assert_int_equal(system(cmd), 0);
	free(fx);
	cur = NULL;
	return 0;
}

/* Start the listener with fx->p. */
static void
fx_start(struct fx *fx)
{
	socklen_t sl = sizeof(fx->sin);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&fx->sin, 0, sizeof(fx->sin));
	fx->sin.sin_family = AF_INET;
	fx->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&fx->sin,
	    sizeof(fx->sin)), 0);
	assert_int_equal(listen(fd, 64), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&fx->sin, &sl), 0);
	fx->sd = smtpd_new(fx->loop, fx->q, &fx->p, on_queued, fx);
	assert_non_null(fx->sd);
	assert_int_equal(smtpd_listen(fx->sd, fd), 0);
}

static void
tls_setup(struct fx *fx)
{
	char err[256], crt[512], key[512];

	snprintf(crt, sizeof(crt), "%s/server.crt", certdir);
	snprintf(key, sizeof(key), "%s/server.key", certdir);
	fx->sctx = tls_server_ctx_new(crt, key, err, sizeof(err));
	assert_non_null(fx->sctx);
	fx->cctx = tls_client_ctx_new(NULL, false, err, sizeof(err));
	assert_non_null(fx->cctx);
	fx->p.tls_ctx = fx->sctx;
}

/* ------------------------------------------------------------------ */
/* The scripted client. */

static void
cl_open(struct fx *fx, struct client *c)
{
	memset(c, 0, sizeof(*c));
	c->fx = fx;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c->fd >= 0);
	c->wfd = c->fd;
	/* Loopback: the kernel completes it from the backlog. */
	assert_int_equal(connect(c->fd, (struct sockaddr *)&fx->sin,
	    sizeof(fx->sin)), 0);
	assert_int_equal(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
}

static void
cl_close(struct client *c)
{
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->wfd != -1 && c->wfd != c->fd)
		close(c->wfd);
	c->wfd = -1;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
}

/* Read what is there; false when nothing came. */
static bool
cl_pull(struct client *c)
{
	ssize_t n;

	if (c->eof || c->len == sizeof(c->buf))
		return false;
	if (c->ssl != NULL) {
		int r, e;

		ERR_clear_error();
		r = SSL_read(c->ssl, c->buf + c->len,
		    (int)(sizeof(c->buf) - c->len));
		if (r > 0) {
			c->len += (size_t)r;
			return true;
		}
		e = SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			c->eof = true;
		return false;
	}
	/* read(2): the same as recv() on a socket, and works on pipes. */
	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (n > 0) {
		c->len += (size_t)n;
		return true;
	}
	if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR))
		c->eof = true;
	return false;
}

static void
cl_send(struct client *c, const void *data, size_t len)
{
	const char *p = data;
	uint64_t end = util_now_ms() + WAIT_MS;

	while (len > 0) {
		ssize_t n;

		assert_true(util_now_ms() < end);
		if (c->ssl != NULL) {
			int r, e;

			ERR_clear_error();
			r = SSL_write(c->ssl, p, (int)(len > 16384 ? 16384 :
			    len));
			if (r > 0)
				n = r;
			else {
				e = SSL_get_error(c->ssl, r);
				assert_true(e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ);
				n = 0;
			}
		} else {
			n = send(c->wfd, p, len, MSG_NOSIGNAL);
			if (n == -1 && errno == ENOTSOCK)	/* pipe, pty */
				n = write(c->wfd, p, len);
			if (n == -1) {
				if (errno != EAGAIN && errno != EWOULDBLOCK)
					fail_msg("send: %s", strerror(errno));
				n = 0;
			}
		}
		p += n;
		len -= (size_t)n;
		if (len > 0) {
			/* Let the server take some; keep our side drained. */
			ev_run_once(c->fx->loop, 5);
			while (cl_pull(c))
				;
		}
	}
}

static void
cl_sends(struct client *c, const char *s)
{
	cl_send(c, s, strlen(s));
}

/* Length of a complete reply at the start of buf, or 0. */
static size_t
reply_len(const char *buf, size_t len)
{
	size_t pos = 0;

	while (pos < len) {
		const char *lf = memchr(buf + pos, '\n', len - pos);
		size_t l;

		if (lf == NULL)
			return 0;
		l = (size_t)(lf - (buf + pos));
		if (l < 4 || buf[pos + 3] == ' ' || l == 4)
			return (size_t)(lf - buf) + 1;
		pos += l + 1;
	}
	return 0;
}

/* Wait for one reply; returns its code (0 on EOF), text in c->reply. */
static int
cl_reply(struct client *c)
{
	uint64_t end = util_now_ms() + WAIT_MS;
	size_t n, o = 0;

	for (;;) {
		while (cl_pull(c))
			;
		if ((n = reply_len(c->buf, c->len)) > 0)
			break;
		if (c->eof) {
			c->reply[0] = '\0';
			return 0;
		}
		if (util_now_ms() > end)
			fail_msg("no reply within %d ms (have %zu bytes: %.*s)",
			    WAIT_MS, c->len, (int)c->len, c->buf);
		ev_run_once(c->fx->loop, 10);
	}
	for (size_t i = 0; i < n && o + 1 < sizeof(c->reply); i++)
		if (c->buf[i] != '\r')
			c->reply[o++] = c->buf[i];
	if (o > 0 && c->reply[o - 1] == '\n')
		o--;
	c->reply[o] = '\0';
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	return atoi(c->reply);
}

/* Expect the next reply to start with prefix. */
#define EXPECT(c, prefix) do {						\
	cl_reply(c);							\
	if (strncmp((c)->reply, (prefix), strlen(prefix)) != 0)		\
		fail_msg("expected \"%s\", got \"%s\"", (prefix),	\
		    (c)->reply);					\
} while (0)

static void
cl_wait_eof(struct client *c)
{
	uint64_t end = util_now_ms() + WAIT_MS;

	while (!c->eof) {
		while (cl_pull(c))
			;
		if (c->eof)
			break;
		assert_true(util_now_ms() < end);
		ev_run_once(c->fx->loop, 10);
	}
	assert_int_equal(c->len, 0);
}

/* Run the loop for ms (or until cond holds). */
static void
run_for(struct fx *fx, unsigned ms)
{
	uint64_t end = util_now_ms() + ms;

	while (util_now_ms() < end)
		ev_run_once(fx->loop, 10);
}

static void
cl_tls(struct client *c)
{
	uint64_t end = util_now_ms() + WAIT_MS;
	int r, e;

	assert_int_equal(c->len, 0);
	c->ssl = SSL_new(c->fx->cctx);
	assert_non_null(c->ssl);
	assert_int_equal(SSL_set_fd(c->ssl, c->fd), 1);
	SSL_set_connect_state(c->ssl);
	for (;;) {
		ERR_clear_error();
		r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		e = SSL_get_error(c->ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			fail_msg("client handshake failed: %d", e);
		assert_true(util_now_ms() < end);
		ev_run_once(c->fx->loop, 10);
	}
}

/* Connect, greeting, EHLO. */
static void
cl_hello(struct fx *fx, struct client *c)
{
	cl_open(fx, c);
	EXPECT(c, "220 mx.example ESMTP mxrelay");
	cl_sends(c, "EHLO client.example\r\n");
	EXPECT(c, "250-mx.example");
}

/* ------------------------------------------------------------------ */
/* Spool inspection. */

struct collected {
	unsigned	 n;
	char		 id[16][QUEUE_ID_LEN + 1];
};

static int
collect(struct queue *q, const struct envelope *env, void *arg)
{
	struct collected *c = arg;

	(void)q;
	if (c->n < 16)
		snprintf(c->id[c->n], sizeof(c->id[0]), "%s", env->id);
	c->n++;
	return 0;
}

static unsigned
spool_count(struct fx *fx, struct collected *c)
{
	struct collected tmp;

	if (c == NULL)
		c = &tmp;
	memset(c, 0, sizeof(*c));
	assert_int_equal(queue_scan(fx->q, collect, c), 0);
	return c->n;
}

static unsigned
tmp_count(struct fx *fx)
{
	char path[PATH_MAX * 2];
	struct dirent *de;
	unsigned n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/tmp", fx->spool);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * The body of a queued message (malloc'd, NUL-terminated): the first
 * size bytes (its envelope's) of the file queue_body_open() gives.
 */
static char *
spool_body(struct fx *fx, const char *id, size_t *lenp)
{
	struct envelope env;
	char *buf;
	size_t len = 0;
	ssize_t n;
	int fd;

	assert_int_equal(queue_env_load(fx->q, id, &env), 0);
	fd = queue_body_open(fx->q, id);
	assert_true(fd >= 0);
	buf = malloc(env.size + 1);
	assert_non_null(buf);
	while (len < env.size &&
	    (n = pread(fd, buf + len, env.size - len, (off_t)len)) > 0)
		len += (size_t)n;
	close(fd);
	assert_int_equal(len, env.size);
	envelope_free(&env);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

/* Send a whole transaction to DATA's 354. */
static void
cl_txn(struct client *c, const char *from, const char *to)
{
	char buf[600];

	snprintf(buf, sizeof(buf), "MAIL FROM:<%s>\r\n", from);
	cl_sends(c, buf);
	EXPECT(c, "250 2.1.0");
	snprintf(buf, sizeof(buf), "RCPT TO:<%s>\r\n", to);
	cl_sends(c, buf);
	EXPECT(c, "250 2.1.5");
	cl_sends(c, "DATA\r\n");
	EXPECT(c, "354 ");
}

/* ------------------------------------------------------------------ */
/* io raw mode. */

struct rawctx {
	struct io	*io;
	int		 ndatain;
	bool		 consume;	/* take everything on IO_DATAIN */
	size_t		 taken;
	char		 seen[64];
};

static void
raw_cb(struct io *io, enum io_event ev, void *arg)
{
	struct rawctx *r = arg;

	if (ev != IO_DATAIN)
		return;
	r->ndatain++;
	if (r->consume) {
		size_t len;
		const char *p = io_peek(io, &len);

		if (r->taken + len < sizeof(r->seen))
			memcpy(r->seen + r->taken, p, len);
		r->taken += len;
		io_consume(io, len);
	}
}

static void
test_io_raw(void **state)
{
	struct fx *fx = *state;
	struct rawctx r = { 0 };
	const char *p, *line;
	char big[65536];
	size_t len, sent = 0;
	bool tl;
	int sv[2];
	uint64_t end;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r.io = io_new(fx->loop, raw_cb, &r);
	io_attach(r.io, sv[1]);

	/* Line mode: no IO_DATAIN for a partial line. */
	assert_int_equal(write(sv[0], "ab", 2), 2);
	run_for(fx, 50);
	assert_int_equal(r.ndatain, 0);
	/* Raw mode: the buffered bytes are reported from the loop. */
	io_set_raw(r.io, true);
	run_for(fx, 50);
	assert_true(r.ndatain >= 1);
	p = io_peek(r.io, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(p, "ab", 2);
	io_consume(r.io, 1);
	assert_int_equal(io_pending(r.io), 1);
	/* A single byte fires it too. */
	r.ndatain = 0;
	assert_int_equal(write(sv[0], "c", 1), 1);
	run_for(fx, 50);
	assert_true(r.ndatain >= 1);
	p = io_peek(r.io, &len);
	assert_int_equal(len, 2);
	assert_memory_equal(p, "bc", 2);
	/* Back to lines: "bc" + "d\r\n" is one line, "e" waits. */
	io_set_raw(r.io, false);
	assert_int_equal(write(sv[0], "d\r\ne", 4), 4);
	run_for(fx, 50);
	line = io_getline(r.io, &len, &tl);
	assert_non_null(line);
	assert_string_equal(line, "bcd");
	assert_null(io_getline(r.io, &len, &tl));
	assert_int_equal(io_pending(r.io), 1);
	io_consume(r.io, 5);	/* more than there is: takes what there is */
	assert_int_equal(io_pending(r.io), 0);

	/* Back-pressure: a full buffer stops reading until consumed. */
	io_set_raw(r.io, true);
	memset(big, 'x', sizeof(big));
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	end = util_now_ms() + WAIT_MS;
	while (sent < 4 * sizeof(big)) {
		ssize_t n = write(sv[0], big, sizeof(big));

		if (n > 0)
			sent += (size_t)n;
		ev_run_once(fx->loop, 5);
		if (r.ndatain > 0 && !r.consume && sent > 1 << 17) {
			size_t have;

			/*
			 * Nothing taken so far: the io stopped at its buffer
			 * size (IO_DATAIN is not repeated); taking bytes
			 * resumes reading.
			 */
			run_for(fx, 20);
			have = io_pending(r.io);
			assert_true(have > 0 && have <= 1 << 16);
			(void)io_peek(r.io, &len);
			assert_int_equal(len, have);
			r.taken = have;
			r.consume = true;
			io_consume(r.io, have);
		}
		assert_true(util_now_ms() < end);
	}
	while (r.taken < sent) {
		assert_true(util_now_ms() < end);
		ev_run_once(fx->loop, 5);
	}
	assert_int_equal(r.taken, sent);
	io_free(r.io);
	close(sv[0]);
}

/* ------------------------------------------------------------------ */
/* The users file. */

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/*
 * A hash made by `openssl passwd -6`, as the manual says to make them.
 * The file's syntax and the checks are in test_smtpd_auth.c.
 */
static void
test_users_file(void **state)
{
	struct fx *fx = *state;
	struct smtpd_users *u;
	char path[PATH_MAX + 32], text[1024], err[256];

	if (secret_hash[0] == '\0')
		skip();
	snprintf(path, sizeof(path), "%s/users", fx->top);
	snprintf(text, sizeof(text), "# users\n\n  alice:%s  \n"
	    "bob:%s\n", secret_hash, secret_hash);
	write_file(path, text);
	u = smtpd_users_load(path, err, sizeof(err));
	assert_non_null(u);
	assert_true(smtpd_users_check(u, "alice", "secret"));
	assert_true(smtpd_users_check(u, "bob", "secret"));
	assert_false(smtpd_users_check(u, "alice", "Secret"));
	assert_false(smtpd_users_check(u, "mallory", "secret"));
	smtpd_users_free(u);
}

/* ------------------------------------------------------------------ */
/* Sessions. */

static void
test_message(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct collected col;
	struct envelope env = { 0 };
	char want[128], *body;
	bool has_pipe = false, has_size = false, has_8bit = false,
	    has_esc = false;

	fx_start(fx);
	cl_open(fx, &c);
	EXPECT(&c, "220 mx.example ESMTP mxrelay");
	cl_sends(&c, "EHLO client.example\r\n");
	cl_reply(&c);
	for (char *l = c.reply; l != NULL; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		assert_int_equal(strncmp(l, "250", 3), 0);
		has_pipe |= strncmp(l + 4, "PIPELINING", 10) == 0;
		has_size |= strncmp(l + 4, "SIZE 10000000", 13) == 0;
		has_8bit |= strncmp(l + 4, "8BITMIME", 8) == 0;
		has_esc |= strncmp(l + 4, "ENHANCEDSTATUSCODES", 19) == 0;
		assert_int_equal(strncmp(l + 4, "STARTTLS", 8) == 0, 0);
		assert_int_equal(strncmp(l + 4, "AUTH", 4) == 0, 0);
	}
	assert_true(has_pipe && has_size && has_8bit && has_esc);
	cl_txn(&c, "sender@example.org", "rcpt@example.net");
	assert_int_equal(fx->nqueued, 0);
	cl_sends(&c, "Subject: hi\r\n\r\nline one\r\n..dot line\r\n.\r\n");
	EXPECT(&c, "250 2.0.0 Ok: queued as ");
	assert_int_equal(fx->nqueued, 1);
	assert_true(fx->env_existed);
	assert_string_equal(c.reply + strlen("250 2.0.0 Ok: queued as "),
	    fx->last_id);

	assert_int_equal(spool_count(fx, &col), 1);
	assert_string_equal(col.id[0], fx->last_id);
	assert_int_equal(queue_env_load(fx->q, col.id[0], &env), 0);
	assert_string_equal(env.sender, "sender@example.org");
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpt[0].addr, "rcpt@example.net");
	assert_true(env.arrival > 0);
	envelope_free(&env);
	body = spool_body(fx, col.id[0], NULL);
	assert_int_equal(strncmp(body, "Received: from client.example "
	    "([127.0.0.1])\r\n\tby mx.example (mxrelay) with ESMTP id ", 76),
	    0);
	snprintf(want, sizeof(want), "id %s\r\n\tfor <rcpt@example.net>; ",
	    fx->last_id);
	assert_non_null(strstr(body, want));
	assert_non_null(strstr(body, "\r\nSubject: hi\r\n\r\nline one\r\n"
	    ".dot line\r\n"));
	assert_int_equal(strstr(body, ".dot line\r\n")[11], '\0');
	free(body);
	snprintf(want, sizeof(want), "%s: from=<sender@example.org>, size=",
	    fx->last_id);
	assert_true(mock_log_contains(want));
	assert_true(mock_log_contains("nrcpt=1, client=[127.0.0.1]:"));
	assert_true(mock_log_contains("tls=none"));
	assert_true(mock_log_contains("connect from [127.0.0.1]:"));
	assert_int_equal(tmp_count(fx), 0);

	cl_sends(&c, "QUIT\r\n");
	EXPECT(&c, "221 2.0.0");
	cl_wait_eof(&c);
	run_for(fx, 20);
	assert_int_equal(smtpd_nsessions(fx->sd), 0);
	assert_true(mock_log_contains("disconnect from [127.0.0.1]:"));
	assert_true(mock_log_contains("commands=5"));
	cl_close(&c);
}

static void
test_pipelining(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct collected col;
	struct envelope env = { 0 };
	char *body;

	fx_start(fx);
	cl_hello(fx, &c);
	cl_sends(&c, "MAIL FROM:<s@example.org> SIZE=100 BODY=8BITMIME\r\n"
	    "RCPT TO:<a@example.net>\r\nRCPT TO:<root>\r\nDATA\r\n");
	EXPECT(&c, "250 2.1.0");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "354 ");
	/* The body, its end and the next commands in one write. */
	cl_sends(&c, "Subject: p\r\n\r\nbody\r\n.\r\nNOOP\r\nMAIL FROM:<>\r\n"
	    "RSET\r\nQUIT\r\n");
	EXPECT(&c, "250 2.0.0 Ok: queued as ");
	EXPECT(&c, "250 2.0.0");
	EXPECT(&c, "250 2.1.0");
	EXPECT(&c, "250 2.0.0");
	EXPECT(&c, "221 2.0.0");
	cl_wait_eof(&c);
	cl_close(&c);

	assert_int_equal(spool_count(fx, &col), 1);
	assert_int_equal(queue_env_load(fx->q, col.id[0], &env), 0);
	assert_int_equal(env.nrcpt, 2);
	assert_string_equal(env.rcpt[0].addr, "a@example.net");
	assert_string_equal(env.rcpt[1].addr, "root@example.org");
	assert_null(env.rcpt[1].orig);
	envelope_free(&env);
	/* Two recipients: no "for" clause. */
	body = spool_body(fx, col.id[0], NULL);
	assert_null(strstr(body, "\tfor <"));
	assert_non_null(strstr(body, " with ESMTP id "));
	free(body);
}

static void
test_commands(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct collected col;
	struct envelope env = { 0 };
	char *body;

	fx_start(fx);
	cl_open(fx, &c);
	EXPECT(&c, "220 ");
	cl_sends(&c, "MAIL FROM:<a@example.org>\r\n");
	EXPECT(&c, "503 5.5.1");
	cl_sends(&c, "EHLO\r\n");
	EXPECT(&c, "501 5.5.4");
	cl_sends(&c, "FOO bar\r\n");
	EXPECT(&c, "500 5.5.2");
	cl_sends(&c, "NOOP\r\nHELP\r\nVRFY root\r\nRSET\r\n");
	EXPECT(&c, "250 2.0.0");
	EXPECT(&c, "214 2.0.0");
	EXPECT(&c, "252 2.5.2");
	EXPECT(&c, "250 2.0.0");
	cl_sends(&c, "DATA\r\n");
	EXPECT(&c, "503 5.5.1");
	cl_sends(&c, "QUIT now\r\n");
	EXPECT(&c, "501 5.5.4");
	/* HELO: no extensions, and no parameters on MAIL. */
	cl_sends(&c, "HELO old.example\r\n");
	EXPECT(&c, "250 mx.example");
	cl_sends(&c, "MAIL FROM:<a@example.org> SIZE=10\r\n");
	EXPECT(&c, "555 5.5.4");
	cl_sends(&c, "ehlo client.example\r\n");
	EXPECT(&c, "250-mx.example");
	cl_sends(&c, "MAIL FROM:junk\r\n");
	EXPECT(&c, "501 5.5.4");
	cl_sends(&c, "MAIL FROM:<a b@example.org>\r\n");
	EXPECT(&c, "501 5.1.7");
	cl_sends(&c, "MAIL FROM:<a@@example.org>\r\n");
	EXPECT(&c, "501 5.1.7");
	cl_sends(&c, "MAIL FROM:<a@example.org>x\r\n");
	EXPECT(&c, "501 5.5.4");
	cl_sends(&c, "MAIL FROM:<a@example.org> BODY=BINARYMIME\r\n");
	EXPECT(&c, "555 5.5.4");
	cl_sends(&c, "MAIL FROM:<a@example.org> FOO=1\r\n");
	EXPECT(&c, "555 5.5.4");
	cl_sends(&c, "MAIL FROM:<a@example.org> SIZE=12x\r\n");
	EXPECT(&c, "555 5.5.4");
	/* A source route is dropped (RFC 5321 §C). */
	cl_sends(&c, "MAIL FROM:<@a.example,@b.example:u@d.example> "
	    "AUTH=<>\r\n");
	EXPECT(&c, "250 2.1.0");
	cl_sends(&c, "MAIL FROM:<x@example.org>\r\n");
	EXPECT(&c, "503 5.5.1");
	cl_sends(&c, "DATA\r\n");
	EXPECT(&c, "554 5.5.1");
	cl_sends(&c, "RCPT TO:<>\r\n");
	EXPECT(&c, "501 5.1.3");
	cl_sends(&c, "RCPT TO:<a..b@example.net>\r\n");
	EXPECT(&c, "501 5.1.3");
	cl_sends(&c, "RCPT TO:x@example.net\r\n");
	EXPECT(&c, "501 5.5.4");
	cl_sends(&c, "RCPT TO:<x@example.net> NOTIFY=NEVER\r\n");
	EXPECT(&c, "555 5.5.4");
	cl_sends(&c, "RCPT TO: <\"quoted name\"@example.net>\r\n");
	EXPECT(&c, "250 2.1.5");
	cl_sends(&c, "RCPT TO:<\"a@b\">\r\n");
	EXPECT(&c, "250 2.1.5");
	cl_sends(&c, "DATA\r\n");
	EXPECT(&c, "354 ");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "250 2.0.0");
	cl_sends(&c, "QUIT\r\n");
	EXPECT(&c, "221 ");
	cl_wait_eof(&c);
	cl_close(&c);
	assert_int_equal(spool_count(fx, &col), 1);
	assert_int_equal(queue_env_load(fx->q, col.id[0], &env), 0);
	assert_string_equal(env.sender, "u@d.example");
	assert_string_equal(env.rcpt[0].addr, "\"quoted name\"@example.net");
	assert_string_equal(env.rcpt[1].addr, "\"a@b\"@example.org");
	envelope_free(&env);
	body = spool_body(fx, col.id[0], NULL);
	assert_non_null(strstr(body, "Received: from client.example"));
	free(body);

	/* HELO session: "with SMTP". */
	cl_open(fx, &c);
	EXPECT(&c, "220 ");
	cl_sends(&c, "HELO old.example\r\n");
	EXPECT(&c, "250 ");
	cl_txn(&c, "", "r@example.net");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "250 2.0.0");
	cl_close(&c);
	body = spool_body(fx, fx->last_id, NULL);
	assert_non_null(strstr(body, "Received: from old.example ([127.0.0.1])"
	    "\r\n\tby mx.example (mxrelay) with SMTP id "));
	free(body);
	assert_int_equal(queue_env_load(fx->q, fx->last_id, &env), 0);
	assert_string_equal(env.sender, "");
	envelope_free(&env);
}

static void
test_outsider(void **state)
{
	struct fx *fx = *state;
	struct client c;

	assert_int_equal(conf_parse_cidr("10.0.0.0/8", &fx->relay[0]), 0);
	fx->p.nrelay_clients = 1;
	fx_start(fx);
	cl_hello(fx, &c);
	cl_sends(&c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
	    "RCPT TO:<root>\r\nDATA\r\n");
	EXPECT(&c, "250 2.1.0");
	EXPECT(&c, "554 5.7.1 Relay access denied");
	EXPECT(&c, "554 5.7.1 Relay access denied");
	EXPECT(&c, "554 5.5.1");
	cl_sends(&c, "QUIT\r\n");
	EXPECT(&c, "221 ");
	cl_close(&c);
	assert_true(mock_log_contains("Relay access denied"));
	assert_true(mock_log_contains("[127.0.0.1]:"));
	assert_int_equal(spool_count(fx, NULL), 0);
	assert_int_equal(tmp_count(fx), 0);
}

static void
test_smuggling(void **state)
{
	struct fx *fx = *state;
	static const struct {
		const char	*end;
		const char	*why;
	} cases[] = {
		{ "\n.\r\n", "bare LF" },
		{ "\r.\r\n", "bare CR" },
		{ "\n.\n", "bare LF" },
		{ "\r\n.\n", "bare LF" },
		{ "\r.\n", "bare CR" },
		{ "\n.\r", "bare LF" },
	};
	struct client c;
	char buf[512];

	fx->p.bare_lf = BARE_LF_REJECT;
	fx_start(fx);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cl_hello(fx, &c);
		cl_txn(&c, "a@example.org", "b@example.net");
		snprintf(buf, sizeof(buf), "Subject: x\r\n\r\nhello%s"
		    "MAIL FROM:<evil@example.org>\r\nRCPT TO:<v@example.net>"
		    "\r\nDATA\r\nsmuggled\r\n.\r\n", cases[i].end);
		cl_sends(&c, buf);
		cl_reply(&c);
		if (strncmp(c.reply, "554 5.6.0", 9) != 0 ||
		    strstr(c.reply, cases[i].why) == NULL)
			fail_msg("case %zu: %s", i, c.reply);
		/* In step: the next command is a command again. */
		cl_sends(&c, "NOOP\r\n");
		EXPECT(&c, "250 2.0.0");
		cl_close(&c);
		assert_int_equal(spool_count(fx, NULL), 0);
		assert_int_equal(fx->nqueued, 0);
	}
	run_for(fx, 20);
	assert_int_equal(tmp_count(fx), 0);
}

/* Does message id end in tail, and has it CRLF line ends only? */
static void
body_check(struct fx *fx, const char *id, const char *tail)
{
	size_t len, tlen = strlen(tail);
	char *body = spool_body(fx, id, &len);

	if (len < tlen || memcmp(body + len - tlen, tail, tlen) != 0)
		fail_msg("stored: %s", body);
	for (size_t i = 0; i < len; i++)
		if ((body[i] == '\n' && (i == 0 || body[i - 1] != '\r')) ||
		    (body[i] == '\r' && (i + 1 == len || body[i + 1] != '\n')))
			fail_msg("bare CR or LF at %zu: %s", i, body);
	free(body);
}

/*
 * bare_lf = normalize, a relay client: a bare LF is a line end stored as
 * CRLF, and only CRLF "." CRLF ends the data, so each smuggling payload
 * is one message with the smuggled commands as its text, or one 554 when
 * it has a bare CR.
 */
static void
test_smuggling_normalize(void **state)
{
	struct fx *fx = *state;
	static const char smuggled[] = "MAIL FROM:<evil@example.org>\r\n"
	    "RCPT TO:<v@example.net>\r\nDATA\r\nsmuggled\r\n";
	static const struct {
		const char	*end;
		const char	*stored; /* before smuggled[]; NULL: a 554 */
		const char	*why;
	} cases[] = {
		{ "\n.\r\n", "hello\r\n\r\n", NULL },
		{ "\r.\r\n", NULL, "bare CR" },
		{ "\n.\n", "hello\r\n\r\n", NULL },
		{ "\r\n.\n", "hello\r\n\r\n", NULL },
		{ "\r.\n", NULL, "bare CR" },
		{ "\n.\r", NULL, "bare CR" },
		{ "\n..\n.\n", "hello\r\n.\r\n\r\n", NULL },
		{ "\n.\n.\r\n", "hello\r\n\r\n\r\n", NULL },
		{ "\r\n.\n.\n", "hello\r\n\r\n\r\n", NULL },
		{ "\n\r\n.\n", "hello\r\n\r\n\r\n", NULL },
		{ "\n.\r\n\r\n", "hello\r\n\r\n\r\n", NULL },
	};
	struct client c;
	char buf[512];
	size_t queued = 0;

	fx->p.bare_lf = BARE_LF_NORMALIZE;
	fx_start(fx);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cl_hello(fx, &c);
		cl_txn(&c, "a@example.org", "b@example.net");
		snprintf(buf, sizeof(buf), "Subject: x\r\n\r\nhello%s%s"
		    ".\r\n", cases[i].end, smuggled);
		cl_sends(&c, buf);
		cl_reply(&c);
		if (cases[i].stored != NULL) {
			if (strncmp(c.reply, "250 2.0.0", 9) != 0)
				fail_msg("case %zu: %s", i, c.reply);
			queued++;
			snprintf(buf, sizeof(buf), "\r\nSubject: x\r\n\r\n"
			    "%s%s", cases[i].stored, smuggled);
			body_check(fx, fx->last_id, buf);
		} else if (strncmp(c.reply, "554 5.6.0", 9) != 0 ||
		    strstr(c.reply, cases[i].why) == NULL)
			fail_msg("case %zu: %s", i, c.reply);
		/* In step: the next command is a command again. */
		cl_sends(&c, "NOOP\r\n");
		EXPECT(&c, "250 2.0.0");
		cl_close(&c);
		assert_int_equal(spool_count(fx, NULL), queued);
		assert_int_equal(fx->nqueued, queued);
	}
	/* An LF-only body; the client's CRLF "." CRLF adds an empty line. */
	cl_hello(fx, &c);
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "Subject: lf\n\n..stuffed\n.unstuffed\nline\n\r\n.\r\n"
	    "NOOP\r\n");
	EXPECT(&c, "250 2.0.0");
	EXPECT(&c, "250 2.0.0");
	body_check(fx, fx->last_id, "\r\nSubject: lf\r\n\r\n.stuffed\r\n"
	    "unstuffed\r\nline\r\n\r\n");
	cl_close(&c);
	assert_int_equal(spool_count(fx, NULL), queued + 1);
	run_for(fx, 20);
	assert_int_equal(tmp_count(fx), 0);
}

static void
test_data_errors(void **state)
{
	struct fx *fx = *state;
	struct client c;
	char line[1100];

	fx_start(fx);
	cl_hello(fx, &c);
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_send(&c, "a\0b\r\n.\r\n", 8);
	EXPECT(&c, "554 5.6.0 Error: message contains a NUL byte");
	/* 998 octets and CRLF: fine. */
	cl_txn(&c, "a@example.org", "b@example.net");
	memset(line, 'y', 998);
	memcpy(line + 998, "\r\n.\r\n", 6);
	cl_sends(&c, line);
	EXPECT(&c, "250 2.0.0");
	/* 999: too long, however it is split. */
	cl_txn(&c, "a@example.org", "b@example.net");
	memset(line, 'z', 999);
	memcpy(line + 999, "\r\n.\r\n", 6);
	cl_send(&c, line, 500);
	run_for(fx, 20);
	cl_sends(&c, line + 500);
	EXPECT(&c, "554 5.6.0 Error: message contains a line longer");
	cl_sends(&c, "QUIT\r\n");
	EXPECT(&c, "221 ");
	cl_close(&c);
	assert_int_equal(spool_count(fx, NULL), 1);
	assert_int_equal(tmp_count(fx), 0);
}

static void
test_size(void **state)
{
	struct fx *fx = *state;
	struct client c;
	char *big;

	fx->p.max_size = 1000;
	fx_start(fx);
	cl_open(fx, &c);
	EXPECT(&c, "220 ");
	cl_sends(&c, "EHLO c.example\r\n");
	cl_reply(&c);
	assert_non_null(strstr(c.reply, "\n250-SIZE 1000\n"));
	cl_sends(&c, "MAIL FROM:<a@example.org> SIZE=1001\r\n");
	EXPECT(&c, "552 5.3.4");
	cl_sends(&c, "MAIL FROM:<a@example.org> SIZE=99999999999999999999999"
	    "\r\n");
	EXPECT(&c, "555 5.5.4");
	/* SIZE may lie: the stream is counted. */
	cl_sends(&c, "MAIL FROM:<a@example.org> SIZE=1000\r\n");
	EXPECT(&c, "250 2.1.0");
	cl_sends(&c, "RCPT TO:<b@example.net>\r\nDATA\r\n");
	EXPECT(&c, "250 ");
	EXPECT(&c, "354 ");
	big = malloc(200000);
	assert_non_null(big);
	for (size_t i = 0; i < 200000; i += 100) {
		memset(big + i, 'q', 98);
		memcpy(big + i + 98, "\r\n", 2);
	}
	cl_send(&c, big, 200000);
	free(big);
	run_for(fx, 20);
	/* Nothing is kept while the rest streams in. */
	assert_int_equal(tmp_count(fx), 0);
	cl_sends(&c, ".\r\n");
	EXPECT(&c, "552 5.3.4");
	cl_sends(&c, "NOOP\r\n");
	EXPECT(&c, "250 ");
	cl_close(&c);
	assert_int_equal(spool_count(fx, NULL), 0);
	assert_int_equal(tmp_count(fx), 0);

	/* No limit: a bare SIZE. */
	fx->p.max_size = 0;
	smtpd_set_params(fx->sd, &fx->p);
	cl_open(fx, &c);
	EXPECT(&c, "220 ");
	cl_sends(&c, "EHLO c.example\r\n");
	cl_reply(&c);
	assert_non_null(strstr(c.reply, "\n250-SIZE\n"));
	cl_close(&c);
}

static void
test_max_recipients(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct envelope env = { 0 };

	fx->p.max_recipients = 3;
	fx_start(fx);
	cl_hello(fx, &c);
	cl_sends(&c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.net>\r\n"
	    "RCPT TO:<r2@example.net>\r\nRCPT TO:<r3@example.net>\r\n"
	    "RCPT TO:<r4@example.net>\r\nDATA\r\n");
	EXPECT(&c, "250 2.1.0");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "452 4.5.3 Error: too many recipients");
	EXPECT(&c, "354 ");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "250 2.0.0");
	cl_close(&c);
	assert_int_equal(queue_env_load(fx->q, fx->last_id, &env), 0);
	assert_int_equal(env.nrcpt, 3);
	envelope_free(&env);
}

static void
test_command_lines(void **state)
{
	struct fx *fx = *state;
	struct client c;
	char buf[4000];

	fx_start(fx);
	cl_hello(fx, &c);
	/* Just under the limit: fine. */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "NOOP ", 5);
	memcpy(buf + 510, "\r\n", 3);
	cl_sends(&c, buf);
	EXPECT(&c, "250 2.0.0");
	/* Over it, with and without the end in the same read. */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "NOOP ", 5);
	memcpy(buf + 600, "\r\nNOOP\r\n", 9);
	cl_sends(&c, buf);
	EXPECT(&c, "500 5.5.2 Error: line too long");
	EXPECT(&c, "250 2.0.0");
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "MAIL FROM:<", 11);
	cl_send(&c, buf, sizeof(buf));
	run_for(fx, 20);
	cl_sends(&c, "xxxx>\r\nRSET\r\n");
	EXPECT(&c, "500 5.5.2 Error: line too long");
	EXPECT(&c, "250 2.0.0");
	/* NUL in a command. */
	cl_send(&c, "NO\0OP\r\nNOOP\r\n", 13);
	EXPECT(&c, "500 5.5.2");
	EXPECT(&c, "250 2.0.0");
	cl_close(&c);
}

/*
 * A client that pipelines far more than it reads (HELP: 6 octets in, 86
 * out): every reply comes, in order, although the server stops taking
 * commands while too many replies wait (SMTPD_WQ_HIWAT) and resumes on
 * IO_LOWAT.
 */
static void
test_pipeline_flood(void **state)
{
	struct fx *fx = *state;
	struct client c;
	enum { N = 100000, PER = 100 };
	static const char help[] = "214 2.0.0 Commands: EHLO HELO MAIL RCPT "
	    "DATA RSET NOOP QUIT HELP VRFY STARTTLS AUTH\r\n";
	char chunk[PER * 6 + 1];
	size_t off = 0, total = (size_t)N * 6, got = 0, clen;
	unsigned stuck = 0;
	uint64_t end, phase1;

	fx_start(fx);
	cl_open(fx, &c);
	EXPECT(&c, "220 ");
	clen = 0;
	for (int i = 0; i < PER; i++)
		clen += (size_t)sprintf(chunk + clen, "HELP\r\n");
	end = util_now_ms() + 4 * WAIT_MS;
	/* Phase 1: write without reading until the server stops taking. */
	phase1 = util_now_ms() + 300;
	while (off < total && stuck < 50 && util_now_ms() < phase1) {
		size_t at = off % clen;
		ssize_t n = send(c.fd, chunk + at, clen - at, MSG_NOSIGNAL);

		assert_true(util_now_ms() < end);
		if (n > 0) {
			off += (size_t)n;
			stuck = 0;
		} else {
			assert_true(n == -1 && errno == EAGAIN);
			stuck++;
		}
		ev_run_once(fx->loop, n > 0 ? 0 : 2);
	}
	/* Phase 2: read; everything comes, in order. */
	while (got < N) {
		assert_true(util_now_ms() < end);
		if (off < total) {
			size_t at = off % clen;
			ssize_t n = send(c.fd, chunk + at, clen - at,
			    MSG_NOSIGNAL);

			if (n > 0)
				off += (size_t)n;
		}
		ev_run_once(fx->loop, 0);
		while (cl_pull(&c))
			;
		for (;;) {
			size_t l = reply_len(c.buf, c.len);

			if (l == 0)
				break;
			assert_int_equal(l, sizeof(help) - 1);
			assert_memory_equal(c.buf, help, l);
			memmove(c.buf, c.buf + l, c.len - l);
			c.len -= l;
			got++;
		}
	}
	assert_int_equal(got, N);
	cl_sends(&c, "QUIT\r\n");
	EXPECT(&c, "221 ");
	cl_close(&c);
}

static void
test_error_limit(void **state)
{
	struct fx *fx = *state;
	struct client c;
	char buf[20 * 16 + 1] = "";

	fx_start(fx);
	cl_hello(fx, &c);
	for (int i = 0; i < 20; i++)
		strcat(buf, "BOGUS\r\n");
	cl_sends(&c, buf);
	for (int i = 0; i < 20; i++)
		EXPECT(&c, "500 5.5.2");
	EXPECT(&c, "421 4.7.0 mx.example");
	cl_wait_eof(&c);
	cl_close(&c);
}

static void
test_hops(void **state)
{
	struct fx *fx = *state;
	struct client c;
	char *msg;
	size_t len = 0;

	fx_start(fx);
	msg = malloc(101 * 40 + 100);
	assert_non_null(msg);
	for (int n = 100; n <= 101; n++) {
		len = 0;
		for (int i = 0; i < n; i++)
			len += (size_t)sprintf(msg + len, "%s: from x%d by y\r\n",
			    i % 2 ? "Received" : "rEcEiVeD", i);
		len += (size_t)sprintf(msg + len, "\r\nReceived: body\r\n"
		    ".\r\n");
		cl_hello(fx, &c);
		cl_txn(&c, "a@example.org", "b@example.net");
		cl_send(&c, msg, len);
		EXPECT(&c, n == 100 ? "250 2.0.0" : "554 5.4.6");
		cl_close(&c);
	}
	free(msg);
	assert_int_equal(spool_count(fx, NULL), 1);
}

static void
test_max_clients(void **state)
{
	struct fx *fx = *state;
	struct client c1, c2, c3, c4;
	uint64_t end;

	fx->p.max_clients = 2;
	fx_start(fx);
	cl_open(fx, &c1);
	EXPECT(&c1, "220 ");
	cl_open(fx, &c2);
	EXPECT(&c2, "220 ");
	cl_open(fx, &c3);
	EXPECT(&c3, "421 4.7.0 mx.example Too many connections, try again "
	    "later");
	cl_wait_eof(&c3);
	cl_close(&c3);
	assert_int_equal(smtpd_nsessions(fx->sd), 2);
	cl_close(&c1);
	end = util_now_ms() + WAIT_MS;
	while (smtpd_nsessions(fx->sd) != 1) {
		assert_true(util_now_ms() < end);
		ev_run_once(fx->loop, 10);
	}
	cl_open(fx, &c4);
	EXPECT(&c4, "220 ");
	cl_close(&c2);
	cl_close(&c4);
}

static void
test_timeouts(void **state)
{
	struct fx *fx = *state;
	struct client c;
	uint64_t t0;

	fx->p.cmd_timeout_ms = 200;
	fx->p.data_timeout_ms = 300;
	fx_start(fx);
	t0 = util_now_ms();
	cl_hello(fx, &c);
	EXPECT(&c, "421 4.4.2 mx.example Error: timeout exceeded");
	assert_true(util_now_ms() - t0 >= 150);
	cl_wait_eof(&c);
	cl_close(&c);

	cl_hello(fx, &c);
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "Subject: half\r\n\r\nsome");
	t0 = util_now_ms();
	EXPECT(&c, "421 4.4.2 mx.example Error: timeout exceeded");
	assert_true(util_now_ms() - t0 >= 200);
	cl_wait_eof(&c);
	cl_close(&c);
	run_for(fx, 20);
	assert_int_equal(spool_count(fx, NULL), 0);
	assert_int_equal(tmp_count(fx), 0);
	assert_int_equal(smtpd_nsessions(fx->sd), 0);
}

/* Spool failure injection: every write (or the n-th openat) fails. */
static int	inj_errno;
static bool	inj_openat;

static ssize_t
fail_write(int fd, const void *p, size_t n)
{
	(void)fd;
	(void)p;
	(void)n;
	errno = inj_errno;
	return -1;
}

static int
fail_openat(int d, const char *p, int f, mode_t m)
{
	if (inj_openat) {
		errno = inj_errno;
		return -1;
	}
	return openat(d, p, f, m);
}

static void
test_spool_errors(void **state)
{
	struct fx *fx = *state;
	struct queue_sysops ops = queue_sysops_default;
	struct client c;

	ops.write = fail_write;
	ops.openat = fail_openat;
	fx_start(fx);
	queue_test_set_sysops(&ops);
	cl_hello(fx, &c);

	inj_errno = ENOSPC;
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "452 4.3.1 Insufficient system storage");
	inj_errno = EDQUOT;
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "452 4.3.1");
	inj_errno = EIO;
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "451 4.3.0");
	/* The spool cannot even start a message: refused at DATA. */
	inj_errno = ENOSPC;
	inj_openat = true;
	cl_sends(&c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
	    "DATA\r\n");
	EXPECT(&c, "250 ");
	EXPECT(&c, "250 ");
	EXPECT(&c, "452 4.3.1");
	inj_openat = false;
	queue_test_set_sysops(NULL);
	assert_int_equal(fx->nqueued, 0);
	assert_int_equal(spool_count(fx, NULL), 0);
	assert_int_equal(tmp_count(fx), 0);
	/* And it works again afterwards, in the same session. */
	cl_sends(&c, "RSET\r\n");
	EXPECT(&c, "250 ");
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "250 2.0.0");
	cl_close(&c);
	assert_int_equal(spool_count(fx, NULL), 1);
}

static void
test_shutdown(void **state)
{
	struct fx *fx = *state;
	struct client idle, busy, late;
	uint64_t end;

	fx_start(fx);
	cl_hello(fx, &idle);
	cl_hello(fx, &busy);
	cl_txn(&busy, "a@example.org", "b@example.net");
	cl_sends(&busy, "Subject: s\r\n\r\npart one\r\n");
	run_for(fx, 20);
	smtpd_shutdown(fx->sd);
	EXPECT(&idle, "421 4.3.2 mx.example Service shutting down");
	cl_wait_eof(&idle);
	/* The listener is gone. */
	late.fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(late.fd >= 0);
	assert_int_equal(connect(late.fd, (struct sockaddr *)&fx->sin,
	    sizeof(fx->sin)), -1);
	close(late.fd);
	/* The message in DATA is finished, then 421. */
	assert_int_equal(smtpd_nsessions(fx->sd), 1);
	cl_sends(&busy, "part two\r\n.\r\nNOOP\r\n");
	EXPECT(&busy, "250 2.0.0 Ok: queued as ");
	EXPECT(&busy, "421 4.3.2");
	cl_wait_eof(&busy);
	end = util_now_ms() + WAIT_MS;
	while (smtpd_nsessions(fx->sd) > 0) {
		assert_true(util_now_ms() < end);
		ev_run_once(fx->loop, 10);
	}
	cl_close(&idle);
	cl_close(&busy);
	assert_int_equal(spool_count(fx, NULL), 1);
	assert_int_equal(smtpd_listen(fx->sd, open("/dev/null", O_RDONLY)),
	    -1);
}

static void
test_free_mid_data(void **state)
{
	struct fx *fx = *state;
	struct client c, idle;
	char *big;

	fx_start(fx);
	cl_hello(fx, &idle);
	cl_hello(fx, &c);
	cl_txn(&c, "a@example.org", "b@example.net");
	big = malloc(300000);
	assert_non_null(big);
	for (size_t i = 0; i < 300000; i += 100) {
		memset(big + i, 'm', 98);
		memcpy(big + i + 98, "\r\n", 2);
	}
	cl_send(&c, big, 300000);
	free(big);
	run_for(fx, 50);
	assert_int_equal(tmp_count(fx), 1);
	smtpd_free(fx->sd);
	fx->sd = NULL;
	assert_int_equal(tmp_count(fx), 0);
	assert_int_equal(spool_count(fx, NULL), 0);
	cl_wait_eof(&c);
	cl_close(&c);
	cl_close(&idle);
}

static void
test_set_params(void **state)
{
	struct fx *fx = *state;
	struct smtpd_params np;
	struct client c;

	fx_start(fx);
	cl_hello(fx, &c);
	np = fx->p;
	np.hostname = "new.example";
	smtpd_set_params(fx->sd, &np);
	fx->p.hostname = "gone";	/* the old values may go away */
	cl_sends(&c, "EHLO again.example\r\n");
	EXPECT(&c, "250-new.example");
	cl_close(&c);
}

static void
test_accept_emfile(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct rlimit rl, low;
	int fds[256], n = 0, fd;

	fx_start(fx);
	/* Connect first: the client needs its own descriptor. */
	cl_open(fx, &c);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	low = rl;
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	low.rlim_cur = (rlim_t)fd + 1;
	close(fd);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (n < 256 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) !=
	    -1)
		fds[n++] = fd;
	assert_int_equal(errno, EMFILE);
	mock_log_clear();
	run_for(fx, 200);
	assert_true(mock_log_contains("pausing"));
	assert_int_equal(mock_log_count(), 1);	/* no spinning, no spam */
	while (n > 0)
		close(fds[--n]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	EXPECT(&c, "220 mx.example");
	cl_close(&c);
}

/* ------------------------------------------------------------------ */
/* STARTTLS and AUTH. */

static void
test_starttls(void **state)
{
	struct fx *fx = *state;
	struct client c;
	char *body;

	if (!have_certs)
		skip();
	tls_setup(fx);
	fx_start(fx);
	cl_open(fx, &c);
	EXPECT(&c, "220 ");
	cl_sends(&c, "EHLO c.example\r\n");
	cl_reply(&c);
	assert_non_null(strstr(c.reply, "\n250-STARTTLS\n"));
	assert_null(strstr(c.reply, "AUTH"));
	/* Commands pipelined behind STARTTLS are dropped, never run. */
	cl_sends(&c, "STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n"
	    "RCPT TO:<x@example.net>\r\n");
	EXPECT(&c, "220 2.0.0 Ready to start TLS");
	run_for(fx, 20);
	assert_int_equal(c.len, 0);	/* nothing else in clear */
	assert_true(mock_log_contains("discarding"));
	cl_tls(&c);
	/* The state is as before EHLO. */
	cl_sends(&c, "MAIL FROM:<a@example.org>\r\n");
	EXPECT(&c, "503 5.5.1");
	cl_sends(&c, "EHLO c.example\r\n");
	cl_reply(&c);
	assert_null(strstr(c.reply, "STARTTLS"));
	assert_null(strstr(c.reply, "AUTH"));	/* no users file */
	cl_sends(&c, "RCPT TO:<x@example.net>\r\n");
	EXPECT(&c, "503 5.5.1");
	cl_sends(&c, "STARTTLS\r\n");
	EXPECT(&c, "503 5.5.1");
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "250 2.0.0");
	cl_sends(&c, "QUIT\r\n");
	EXPECT(&c, "221 ");
	cl_close(&c);
	body = spool_body(fx, fx->last_id, NULL);
	assert_non_null(strstr(body, " with ESMTPS id "));
	free(body);
	assert_true(mock_log_contains("tls=TLSv1."));
	assert_int_equal(spool_count(fx, NULL), 1);

	/* A handshake that fails closes the session. */
	cl_hello(fx, &c);
	cl_sends(&c, "STARTTLS\r\n");
	EXPECT(&c, "220 2.0.0");
	cl_sends(&c, "this is not a ClientHello\r\n");
	cl_wait_eof(&c);
	cl_close(&c);
}

static void
b64(const char *s, size_t len, char *out, size_t outlen)
{
	assert_int_equal(smtp_base64_encode(s, len, out, outlen), 0);
}

static void
users_setup(struct fx *fx)
{
	char path[PATH_MAX + 32], text[512], err[256];

	snprintf(path, sizeof(path), "%s/users", fx->top);
	snprintf(text, sizeof(text), "alice:%s\n", secret_hash);
	write_file(path, text);
	fx->users = smtpd_users_load(path, err, sizeof(err));
	assert_non_null(fx->users);
	fx->p.users = fx->users;
}

/*
 * bare_lf = normalize: an authenticated user that is not a relay client
 * may send bare LFs too (outsiders cannot reach DATA: no recipients).
 */
static void
test_auth_bare_lf(void **state)
{
	struct fx *fx = *state;
	struct client c;
	char good[128], line[256];

	if (!have_certs || secret_hash[0] == '\0')
		skip();
	tls_setup(fx);
	users_setup(fx);
	assert_int_equal(conf_parse_cidr("10.0.0.0/8", &fx->relay[0]), 0);
	fx->p.nrelay_clients = 1;
	fx->p.bare_lf = BARE_LF_NORMALIZE;
	fx_start(fx);
	b64("\0alice\0secret", 13, good, sizeof(good));
	cl_hello(fx, &c);
	cl_sends(&c, "STARTTLS\r\n");
	EXPECT(&c, "220 ");
	cl_tls(&c);
	cl_sends(&c, "EHLO c.example\r\n");
	EXPECT(&c, "250-");
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", good);
	cl_sends(&c, line);
	EXPECT(&c, "235 2.7.0");
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "Subject: lf\n\nbody\n.\nMAIL FROM:<e@example.org>\r\n"
	    ".\r\n");
	EXPECT(&c, "250 2.0.0");
	cl_close(&c);
	body_check(fx, fx->last_id, "\r\nSubject: lf\r\n\r\nbody\r\n\r\n"
	    "MAIL FROM:<e@example.org>\r\n");
	assert_int_equal(spool_count(fx, NULL), 1);
}

static void
test_auth(void **state)
{
	struct fx *fx = *state;
	struct client c;
	char good[128], bad[128], line[256], *body;

	if (!have_certs || secret_hash[0] == '\0')
		skip();
	tls_setup(fx);
	users_setup(fx);
	/* Not a relay client: only AUTH lets mail through. */
	assert_int_equal(conf_parse_cidr("10.0.0.0/8", &fx->relay[0]), 0);
	fx->p.nrelay_clients = 1;
	fx_start(fx);
	b64("\0alice\0secret", 13, good, sizeof(good));
	b64("\0alice\0wrong", 12, bad, sizeof(bad));

	/* In clear: no AUTH offered, refused before the credentials. */
	cl_open(fx, &c);
	EXPECT(&c, "220 ");
	cl_sends(&c, "EHLO c.example\r\n");
	cl_reply(&c);
	assert_null(strstr(c.reply, "AUTH"));
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", good);
	cl_sends(&c, line);
	EXPECT(&c, "530 5.7.0 Must issue a STARTTLS command first");
	cl_sends(&c, "AUTH LOGIN\r\n");
	EXPECT(&c, "530 5.7.0");
	assert_false(mock_log_contains("AUTH PLAIN ok"));

	cl_sends(&c, "STARTTLS\r\n");
	EXPECT(&c, "220 ");
	cl_tls(&c);
	cl_sends(&c, line);
	EXPECT(&c, "503 5.5.1");	/* EHLO first */
	cl_sends(&c, "EHLO c.example\r\n");
	cl_reply(&c);
	assert_non_null(strstr(c.reply, "\n250-AUTH PLAIN LOGIN\n"));
	cl_sends(&c, "MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
	    "RSET\r\n");
	EXPECT(&c, "250 ");
	EXPECT(&c, "554 5.7.1");
	EXPECT(&c, "250 ");
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", bad);
	cl_sends(&c, line);
	EXPECT(&c, "535 5.7.8 Authentication credentials invalid");
	cl_sends(&c, "AUTH CRAM-MD5\r\n");
	EXPECT(&c, "504 5.5.4");
	cl_sends(&c, "AUTH PLAIN\r\n");
	EXPECT(&c, "334 ");
	cl_sends(&c, "*\r\n");
	EXPECT(&c, "501 5.7.0");
	cl_sends(&c, "AUTH PLAIN\r\n");
	EXPECT(&c, "334 ");
	cl_sends(&c, "!!!!\r\n");
	EXPECT(&c, "501 5.5.2");
	/* The continuation line has the command line limit. */
	{
		char longl[800];

		cl_sends(&c, "AUTH PLAIN\r\n");
		EXPECT(&c, "334 ");
		memset(longl, 'A', sizeof(longl));
		memcpy(longl + 780, "\r\nNOOP\r\n", 9);
		cl_sends(&c, longl);
		EXPECT(&c, "500 5.5.2 Error: line too long");
		EXPECT(&c, "250 2.0.0");
	}
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", good);
	cl_sends(&c, line);
	EXPECT(&c, "235 2.7.0 Authentication successful");
	cl_sends(&c, line);
	EXPECT(&c, "503 5.5.1");
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "x\r\n.\r\n");
	EXPECT(&c, "250 2.0.0");
	cl_close(&c);
	body = spool_body(fx, fx->last_id, NULL);
	assert_non_null(strstr(body, " with ESMTPSA id "));
	free(body);
	assert_true(mock_log_contains("AUTH PLAIN ok: user=alice client=["
	    "127.0.0.1]:"));
	assert_true(mock_log_contains("auth failure from [127.0.0.1]:"));
	assert_true(mock_log_contains(" mech=PLAIN user=alice"));
	assert_true(mock_log_contains(", auth=alice"));

	/* LOGIN, and the user name as initial response. */
	cl_hello(fx, &c);
	cl_sends(&c, "STARTTLS\r\n");
	EXPECT(&c, "220 ");
	cl_tls(&c);
	cl_sends(&c, "EHLO c.example\r\n");
	EXPECT(&c, "250-");
	cl_sends(&c, "AUTH LOGIN\r\n");
	EXPECT(&c, "334 VXNlcm5hbWU6");
	b64("alice", 5, good, sizeof(good));
	snprintf(line, sizeof(line), "%s\r\n", good);
	cl_sends(&c, line);
	EXPECT(&c, "334 UGFzc3dvcmQ6");
	b64("wrong", 5, bad, sizeof(bad));
	snprintf(line, sizeof(line), "%s\r\n", bad);
	cl_sends(&c, line);
	EXPECT(&c, "535 5.7.8");
	snprintf(line, sizeof(line), "AUTH LOGIN %s\r\n", good);
	cl_sends(&c, line);
	EXPECT(&c, "334 UGFzc3dvcmQ6");
	b64("secret", 6, good, sizeof(good));
	snprintf(line, sizeof(line), "%s\r\n", good);
	cl_sends(&c, line);
	EXPECT(&c, "235 2.7.0");
	cl_sends(&c, "RCPT TO:<b@example.net>\r\n");
	EXPECT(&c, "503 5.5.1");
	cl_close(&c);
	assert_true(mock_log_contains("AUTH LOGIN ok: user=alice"));

	/* Three failures and out; unknown users fail the same way. */
	cl_hello(fx, &c);
	cl_sends(&c, "STARTTLS\r\n");
	EXPECT(&c, "220 ");
	cl_tls(&c);
	cl_sends(&c, "EHLO c.example\r\n");
	EXPECT(&c, "250-");
	b64("\0mallory\0secret", 15, bad, sizeof(bad));
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", bad);
	cl_sends(&c, line);
	EXPECT(&c, "535 5.7.8");
	cl_sends(&c, line);
	EXPECT(&c, "535 5.7.8");
	cl_sends(&c, line);
	EXPECT(&c, "421 4.7.0");
	cl_wait_eof(&c);
	cl_close(&c);
	assert_true(mock_log_contains(" mech=PLAIN user=mallory"));
	/* Passwords are never logged. */
	assert_false(mock_log_contains("secret"));
	assert_false(mock_log_contains("wrong"));
	assert_int_equal(spool_count(fx, NULL), 1);
}

/* TLS and EHLO on a new connection. */
static void
cl_tls_hello(struct fx *fx, struct client *c)
{
	cl_hello(fx, c);
	cl_sends(c, "STARTTLS\r\n");
	EXPECT(c, "220 ");
	cl_tls(c);
	cl_sends(c, "EHLO c.example\r\n");
	EXPECT(c, "250-");
}

/*
 * AUTH under attack, with worker threads: crypt_r() never runs on the
 * loop's thread; failures are counted per address across connections,
 * their replies delayed by a timer (1 s, then 2 s) while another
 * session is served at once, replies stay in order behind the wait, and
 * at auth_fail_limit the address gets 454 even on a new connection.
 */
static void
test_auth_abuse(void **state)
{
	struct fx *fx = *state;
	struct client a, b, other;
	char bad[128], line[300];
	uint64_t t0, t;

	if (!have_certs || secret_hash[0] == '\0')
		skip();
	tls_setup(fx);
	users_setup(fx);
	fx->p.auth_fail_limit = 3;
	fx->p.auth_fail_delay_max_ms = 2000;
	fx_start(fx);
	metrics_reset();
	assert_int_equal(smtpd_commit_threads(fx->sd, 2), 0);
	crypt_on_loop = crypt_off_loop = 0;
	b64("\0alice\0wrong", 12, bad, sizeof(bad));
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\nNOOP\r\n", bad);

	cl_hello(fx, &other);
	cl_tls_hello(fx, &a);
	t0 = util_now_ms();
	cl_sends(&a, line);
	/* Meanwhile another session is answered at once. */
	run_for(fx, 100);
	cl_sends(&other, "NOOP\r\n");
	EXPECT(&other, "250 ");
	while (cl_pull(&a))
		;
	assert_int_equal(a.len, 0);	/* its reply is still held back */
	EXPECT(&a, "535 5.7.8");
	t = util_now_ms() - t0;
	if (t < 950)
		fail_msg("first failure answered after %llu ms, want 1 s",
		    (unsigned long long)t);
	EXPECT(&a, "250 2.0.0");	/* the NOOP, after the 535 */
	t0 = util_now_ms();
	cl_sends(&a, line);
	EXPECT(&a, "535 5.7.8");
	t = util_now_ms() - t0;
	if (t < 1950)
		fail_msg("second failure answered after %llu ms, want 2 s",
		    (unsigned long long)t);
	EXPECT(&a, "250 2.0.0");
	cl_close(&a);

	/* A new connection: the third failure, then refusals. */
	cl_tls_hello(fx, &b);
	cl_sends(&b, line);
	EXPECT(&b, "535 5.7.8");
	EXPECT(&b, "250 2.0.0");
	cl_sends(&b, line);
	EXPECT(&b, "454 4.7.0");
	EXPECT(&b, "250 2.0.0");
	cl_close(&b);
	cl_tls_hello(fx, &b);
	b64("\0alice\0secret", 13, bad, sizeof(bad));
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", bad);
	cl_sends(&b, line);		/* even the right password */
	EXPECT(&b, "454 4.7.0");
	cl_sends(&b, "AUTH LOGIN\r\n");
	EXPECT(&b, "454 4.7.0");
	cl_close(&b);
	cl_close(&other);
	assert_true(mock_log_contains("auth failure from [127.0.0.1]:"));
	assert_true(mock_log_contains(" count=2 mech=PLAIN user=alice"));
	assert_true(mock_log_contains(" count=3 mech=PLAIN user=alice"));
	assert_true(mock_log_contains("auth refused from [127.0.0.1]:"));
	assert_true(mock_log_contains(" count=3 limit=3"));
	assert_false(mock_log_contains("AUTH PLAIN ok"));
	assert_int_equal(crypt_on_loop, 0);
	assert_int_equal(crypt_off_loop, 3);
	/* The metrics: three failures, three AUTH refused, four sessions. */
	{
		char *m = metrics_render(NULL);

		assert_non_null(strstr(m,
		    "\nmxrelay_smtpd_auth_failures_total 3\n"));
		assert_non_null(strstr(m,
		    "\nmxrelay_smtpd_refusals_total{reason=\"auth_limit\"} 3\n"));
		assert_non_null(strstr(m,
		    "\nmxrelay_smtpd_connections_total 4\n"));
		free(m);
	}
}

/* A session that goes while its password is checked or its reply waits. */
static void
test_auth_gone(void **state)
{
	struct fx *fx = *state;
	struct client a;
	char bad[128], line[300];

	if (!have_certs || secret_hash[0] == '\0')
		skip();
	tls_setup(fx);
	users_setup(fx);
	fx->p.auth_fail_delay_max_ms = 5000;
	fx_start(fx);
	assert_int_equal(smtpd_commit_threads(fx->sd, 1), 0);
	b64("\0alice\0wrong", 12, bad, sizeof(bad));
	snprintf(line, sizeof(line), "AUTH PLAIN %s\r\n", bad);
	/* Gone at once: the check finishes alone, and counts. */
	cl_tls_hello(fx, &a);
	cl_sends(&a, line);
	cl_close(&a);
	run_for(fx, 300);
	assert_true(mock_log_contains(" count=1 mech=PLAIN user=alice"));
	/* Gone during the delay (the timer is dropped with the session). */
	cl_tls_hello(fx, &a);
	cl_sends(&a, line);
	run_for(fx, 300);
	assert_true(mock_log_contains(" count=2 mech=PLAIN user=alice"));
	cl_close(&a);
	run_for(fx, 100);
	assert_int_equal(smtpd_nsessions(fx->sd), 0);
	/* Shut down during the delay: 421 at once. */
	cl_tls_hello(fx, &a);
	cl_sends(&a, line);
	run_for(fx, 300);
	smtpd_shutdown(fx->sd);
	EXPECT(&a, "421 4.3.2");
	cl_wait_eof(&a);
	cl_close(&a);
}

static void
test_auth_unconfigured(void **state)
{
	struct fx *fx = *state;
	struct client c;

	fx_start(fx);
	cl_hello(fx, &c);
	cl_sends(&c, "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	EXPECT(&c, "503 5.5.1");
	cl_sends(&c, "STARTTLS\r\n");
	EXPECT(&c, "502 5.5.1");
	cl_close(&c);
}

static bool
make_hash(void)
{
	FILE *p = popen("openssl passwd -6 secret 2>/dev/null", "r");
	size_t n;

	if (p == NULL)
		return false;
	if (fgets(secret_hash, sizeof(secret_hash), p) == NULL)
		secret_hash[0] = '\0';
	pclose(p);
	n = strlen(secret_hash);
	while (n > 0 && (secret_hash[n - 1] == '\n' ||
	    secret_hash[n - 1] == '\r'))
		secret_hash[--n] = '\0';
	return strncmp(secret_hash, "$6$", 3) == 0;
}

/* ------------------------------------------------------------------ */
/* Local sessions (mxrelay -bs). */

struct localrun {
	bool			 done;
	struct smtpd_local_end	 end;
};

static void
on_local_done(void *arg, const struct smtpd_local_end *end)
{
	struct localrun *r = arg;

	assert_false(r->done);
	r->done = true;
	r->end = *end;
}

/* An smtpd without listeners. */
static void
fx_start_local(struct fx *fx)
{
	fx->sd = smtpd_new(fx->loop, fx->q, &fx->p, on_queued, fx);
	assert_non_null(fx->sd);
}

/*
 * A local session over two pipes: the session reads sfd[0] and writes
 * sfd[1] (both blocking, as a shell would pass them); the client writes
 * commands to c->wfd and reads replies from c->fd.
 */
static void
lcl_open(struct fx *fx, struct client *c, struct localrun *r, int sfd[2],
    uint32_t uid, const char *user)
{
	struct smtpd_local lo;
	int in[2], out[2];

	assert_int_equal(pipe2(in, O_CLOEXEC), 0);
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	memset(c, 0, sizeof(*c));
	c->fx = fx;
	c->fd = out[0];
	c->wfd = in[1];
	assert_int_equal(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(fcntl(c->wfd, F_SETFL, O_WRONLY | O_NONBLOCK), 0);
	sfd[0] = in[0];
	sfd[1] = out[1];
	memset(r, 0, sizeof(*r));
	memset(&lo, 0, sizeof(lo));
	lo.uid = uid;
	lo.user = user;
	lo.done = on_local_done;
	lo.arg = r;
	assert_int_equal(smtpd_session_fds(fx->sd, sfd[0], sfd[1], &lo), 0);
}

static void
lcl_wait_done(struct fx *fx, struct localrun *r)
{
	uint64_t end = util_now_ms() + WAIT_MS;

	while (!r->done) {
		if (util_now_ms() > end)
			fail_msg("the local session did not end");
		ev_run_once(fx->loop, 10);
	}
}

/* The caller's descriptors got their flags back (blocking, as given). */
static void
assert_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	assert_true(fl != -1);
	assert_int_equal(fl & O_NONBLOCK, 0);
}

/* The EHLO reply: no STARTTLS, no AUTH, but PIPELINING. */
static void
assert_local_ehlo(struct client *c)
{
	bool has_pipe = false;

	cl_reply(c);
	for (char *l = c->reply; l != NULL; l = strchr(l, '\n')) {
		if (*l == '\n')
			l++;
		assert_int_equal(strncmp(l, "250", 3), 0);
		has_pipe |= strncmp(l + 4, "PIPELINING", 10) == 0;
		if (strncmp(l + 4, "STARTTLS", 8) == 0 ||
		    strncmp(l + 4, "AUTH", 4) == 0)
			fail_msg("offered on a local session: %s", l);
	}
	assert_true(has_pipe);
}

static void
test_local_session(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct localrun r;
	struct collected col;
	struct envelope env;
	char *body;
	int sfd[2];

	/* Not a relay client by address, TLS configured: neither matters. */
	assert_int_equal(conf_parse_cidr("10.0.0.0/8", &fx->relay[0]), 0);
	fx->p.nrelay_clients = 1;
	if (have_certs)
		tls_setup(fx);
	fx_start_local(fx);
	lcl_open(fx, &c, &r, sfd, 1234, "alice");
	EXPECT(&c, "220 mx.example ESMTP mxrelay");
	assert_int_equal(smtpd_nsessions(fx->sd), 1);
	cl_sends(&c, "EHLO app.example\r\n");
	assert_local_ehlo(&c);
	cl_sends(&c, "STARTTLS\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n");
	EXPECT(&c, "502 5.5.1");
	EXPECT(&c, "503 5.5.1");
	/* Two messages, everything pipelined. */
	cl_sends(&c, "MAIL FROM:<s@example.org>\r\nRCPT TO:<a@remote.example>"
	    "\r\nRCPT TO:<root>\r\nDATA\r\n");
	EXPECT(&c, "250 2.1.0");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "354 ");
	cl_sends(&c, "Subject: one\r\n\r\nbody one\r\n.\r\nMAIL FROM:<>\r\n"
	    "RCPT TO:<b@remote.example>\r\nDATA\r\n");
	EXPECT(&c, "250 2.0.0 Ok: queued as ");
	EXPECT(&c, "250 2.1.0");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "354 ");
	cl_sends(&c, "Subject: two\r\n\r\nbody two\r\n.\r\nQUIT\r\n");
	EXPECT(&c, "250 2.0.0 Ok: queued as ");
	EXPECT(&c, "221 2.0.0");
	lcl_wait_done(fx, &r);
	assert_true(r.end.quit);
	assert_false(r.end.eof);
	assert_false(r.end.in_txn);
	assert_false(r.end.io_error);
	assert_int_equal(r.end.spool_err, 0);
	assert_int_equal(r.end.queued, 2);
	assert_int_equal(smtpd_nsessions(fx->sd), 0);
	assert_blocking(sfd[0]);
	assert_blocking(sfd[1]);
	/* The descriptors are the caller's: still open, closed by it. */
	close(sfd[1]);
	cl_wait_eof(&c);
	close(sfd[0]);
	cl_close(&c);

	assert_int_equal(fx->nqueued, 2);
	assert_int_equal(spool_count(fx, &col), 2);
	for (unsigned i = 0; i < 2; i++) {
		bool first;

		assert_int_equal(queue_env_load(fx->q, col.id[i], &env), 0);
		assert_int_equal(env.submit_uid, 1234);
		assert_non_null(env.submit_user);
		assert_string_equal(env.submit_user, "alice");
		first = env.nrcpt == 2;
		if (first) {
			assert_string_equal(env.sender, "s@example.org");
			assert_string_equal(env.rcpt[0].addr,
			    "a@remote.example");
			assert_string_equal(env.rcpt[1].addr,
			    "root@example.org");
		} else {
			assert_string_equal(env.sender, "");
			assert_string_equal(env.rcpt[0].addr,
			    "b@remote.example");
		}
		envelope_free(&env);
		body = spool_body(fx, col.id[i], NULL);
		assert_int_equal(strncmp(body, "Received: from user alice "
		    "(uid 1234)\r\n\tby mx.example (mxrelay) with ESMTP id ",
		    strlen("Received: from user alice (uid 1234)\r\n\tby "
		    "mx.example (mxrelay) with ESMTP id ")), 0);
		assert_true((strstr(body, "\tfor <b@remote.example>; ") !=
		    NULL) == !first);
		assert_non_null(strstr(body, first ? "\r\n\r\nbody one\r\n" :
		    "\r\n\r\nbody two\r\n"));
		free(body);
	}
	assert_true(mock_log_contains("connect from local user alice "
	    "(uid 1234)"));
	assert_true(mock_log_contains("client=local, uid=1234, user=alice"));
	assert_true(mock_log_contains("disconnect from local user alice"));
	assert_int_equal(tmp_count(fx), 0);
}

static void
test_local_smuggling(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct localrun r;
	int sfd[2];

	fx_start_local(fx);
	lcl_open(fx, &c, &r, sfd, 33, "www-data");
	EXPECT(&c, "220 ");
	cl_sends(&c, "EHLO app.example\r\n");
	EXPECT(&c, "250-mx.example");
	/* A bare LF before the dot: one 554, and no second message. */
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "Subject: x\r\n\r\nhello\n.\r\nMAIL FROM:<evil@example.org>"
	    "\r\nRCPT TO:<v@example.net>\r\nDATA\r\nsmuggled\r\n.\r\n");
	EXPECT(&c, "554 5.6.0 Error: message contains a bare LF");
	cl_sends(&c, "NOOP\r\n");
	EXPECT(&c, "250 2.0.0");
	/* NUL and over-long lines too. */
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_send(&c, "a\0b\r\n.\r\n", 8);
	EXPECT(&c, "554 5.6.0 Error: message contains a NUL byte");
	assert_int_equal(spool_count(fx, NULL), 0);

	/* The input ends inside DATA: nothing is queued. */
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "Subject: cut\r\n\r\nthe first line\r\n");
	run_for(fx, 20);
	assert_int_equal(tmp_count(fx), 1);
	close(c.wfd);
	c.wfd = -1;
	lcl_wait_done(fx, &r);
	assert_true(r.end.eof);
	assert_true(r.end.in_txn);
	assert_false(r.end.quit);
	assert_int_equal(r.end.queued, 0);
	assert_int_equal(spool_count(fx, NULL), 0);
	assert_int_equal(tmp_count(fx), 0);
	assert_int_equal(fx->nqueued, 0);
	assert_true(mock_log_contains("lost connection after DATA from local "
	    "user www-data (uid 33)"));
	assert_true(mock_log_contains("reject: DATA from local user www-data "
	    "(uid 33): 554 5.6.0"));
	assert_blocking(sfd[0]);
	assert_blocking(sfd[1]);
	close(sfd[0]);
	close(sfd[1]);
	cl_close(&c);
}

/*
 * Everything written at once, then EOF without QUIT (printf ... | sendmail
 * -bs): every command before the EOF is answered, the last partial line
 * is not taken, and the session is over.
 */
static void
test_local_eof(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct localrun r;
	int sfd[2];

	fx_start_local(fx);
	lcl_open(fx, &c, &r, sfd, 1000, NULL);
	cl_sends(&c, "EHLO app.example\r\nMAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<b@example.net>\r\nDATA\r\nSubject: e\r\n\r\nx\r\n.\r\n"
	    "NOOP");
	close(c.wfd);
	c.wfd = -1;
	EXPECT(&c, "220 ");
	EXPECT(&c, "250-mx.example");
	EXPECT(&c, "250 2.1.0");
	EXPECT(&c, "250 2.1.5");
	EXPECT(&c, "354 ");
	EXPECT(&c, "250 2.0.0 Ok: queued as ");
	lcl_wait_done(fx, &r);
	assert_true(r.end.eof);
	assert_false(r.end.in_txn);
	assert_int_equal(r.end.queued, 1);
	close(sfd[1]);
	cl_wait_eof(&c);	/* and nothing after the 250 */
	close(sfd[0]);
	cl_close(&c);
	assert_int_equal(spool_count(fx, NULL), 1);
	assert_true(mock_log_contains("connect from local uid 1000"));
	{
		struct envelope env;
		char *body;

		assert_int_equal(queue_env_load(fx->q, fx->last_id, &env), 0);
		/* No user name: nothing recorded (the uid goes with a name). */
		assert_null(env.submit_user);
		envelope_free(&env);
		const char *want = "Received: from uid 1000\r\n\tby "
		    "mx.example (mxrelay) with ESMTP id ";

		body = spool_body(fx, fx->last_id, NULL);
		assert_int_equal(strncmp(body, want, strlen(want)), 0);
		free(body);
	}
}

/* The reader of the replies goes away: the session ends. */
static void
test_local_output_gone(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct localrun r;
	int sfd[2];

	fx_start_local(fx);
	lcl_open(fx, &c, &r, sfd, 1000, "bob");
	EXPECT(&c, "220 ");
	close(c.fd);
	c.fd = -1;
	cl_sends(&c, "EHLO app.example\r\n");
	lcl_wait_done(fx, &r);
	assert_true(r.end.io_error);
	assert_false(r.end.quit);
	assert_true(mock_log_contains("local session: write"));
	assert_blocking(sfd[0]);
	close(sfd[0]);
	close(sfd[1]);
	cl_close(&c);
}

/* smtpd_free() in the middle; one session at a time; not after shutdown. */
static void
test_local_free(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct localrun r;
	struct smtpd_local lo = { 0 };
	int sfd[2], p[2];

	fx_start_local(fx);
	lcl_open(fx, &c, &r, sfd, 1000, "bob");
	EXPECT(&c, "220 ");
	cl_sends(&c, "EHLO app.example\r\n");
	EXPECT(&c, "250-mx.example");
	assert_int_equal(pipe(p), 0);
	errno = 0;
	assert_int_equal(smtpd_session_fds(fx->sd, p[0], p[1], &lo), -1);
	assert_int_equal(errno, EBUSY);
	cl_txn(&c, "a@example.org", "b@example.net");
	cl_sends(&c, "Subject: never\r\n\r\n");
	run_for(fx, 20);
	assert_int_equal(tmp_count(fx), 1);
	smtpd_free(fx->sd);
	fx->sd = NULL;
	assert_false(r.done);
	assert_int_equal(tmp_count(fx), 0);
	assert_blocking(sfd[0]);
	assert_blocking(sfd[1]);
	close(sfd[0]);
	close(sfd[1]);
	cl_close(&c);

	/* A bad descriptor, and after smtpd_shutdown(). */
	fx_start_local(fx);
	assert_int_equal(smtpd_session_fds(fx->sd, -1, p[1], &lo), -1);
	assert_int_equal(errno, EBADF);
	smtpd_shutdown(fx->sd);
	assert_int_equal(smtpd_session_fds(fx->sd, p[0], p[1], &lo), -1);
	assert_int_equal(errno, ESHUTDOWN);
	assert_blocking(p[0]);
	close(p[0]);
	close(p[1]);
	assert_int_equal(spool_count(fx, NULL), 0);
}

/* A terminal: one descriptor both ways, the same file description. */
static void
test_local_pty(void **state)
{
	struct fx *fx = *state;
	struct client c;
	struct localrun r;
	struct smtpd_local lo = { 0 };
	struct termios tio;
	int m, sl = -1;

	if ((m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1 ||
	    grantpt(m) == -1 || unlockpt(m) == -1 ||
	    (sl = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC)) == -1) {
		if (m != -1)
			close(m);
		skip();
	}
	/* CR stays CR (a shell's cooked mode would make CRLF LF LF). */
	assert_int_equal(tcgetattr(sl, &tio), 0);
	cfmakeraw(&tio);
	assert_int_equal(tcsetattr(sl, TCSANOW, &tio), 0);
	fx_start_local(fx);
	memset(&c, 0, sizeof(c));
	c.fx = fx;
	c.fd = c.wfd = m;
	assert_int_equal(fcntl(m, F_SETFL, O_RDWR | O_NONBLOCK), 0);
	memset(&r, 0, sizeof(r));
	lo.uid = 7;
	lo.user = "tty";
	lo.done = on_local_done;
	lo.arg = &r;
	assert_int_equal(smtpd_session_fds(fx->sd, sl, sl, &lo), 0);
	EXPECT(&c, "220 mx.example ESMTP mxrelay");
	cl_sends(&c, "EHLO tty.example\r\n");
	assert_local_ehlo(&c);
	cl_txn(&c, "a@example.org", "b@remote.example");
	cl_sends(&c, "Subject: tty\r\n\r\nhi\r\n.\r\n");
	EXPECT(&c, "250 2.0.0 Ok: queued as ");
	cl_sends(&c, "QUIT\r\n");
	EXPECT(&c, "221 2.0.0");
	lcl_wait_done(fx, &r);
	assert_true(r.end.quit);
	assert_int_equal(r.end.queued, 1);
	assert_blocking(sl);
	close(sl);
	close(m);
	assert_int_equal(spool_count(fx, NULL), 1);
}

/* submit_bs() on regular files: in a file, out a file. */
static int
bs_run(struct fx *fx, const char *in, size_t inlen, uint32_t uid,
    const char *user, char **out)
{
	char ipath[PATH_MAX + 16], opath[PATH_MAX + 16];
	char host[] = "mx.example", qual[] = "example.org";
	struct submit_bs_conf conf;
	struct stat st;
	int ifd, ofd, rc;
	ssize_t n;

	snprintf(ipath, sizeof(ipath), "%s/bs.in", fx->top);
	snprintf(opath, sizeof(opath), "%s/bs.out", fx->top);
	ifd = open(ipath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(ifd >= 0);
	assert_int_equal(write(ifd, in, inlen), (ssize_t)inlen);
	assert_int_equal(lseek(ifd, 0, SEEK_SET), 0);
	ofd = open(opath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(ofd >= 0);
	memset(&conf, 0, sizeof(conf));
	conf.hostname = host;
	conf.qualify_domain = qual;
	conf.max_size = 10000000;
	conf.max_recipients = 100;
	conf.bare_lf = fx->p.bare_lf;
	rc = submit_bs(fx->q, &conf, uid, user, ifd, ofd);
	assert_int_equal(fstat(ofd, &st), 0);
	*out = malloc((size_t)st.st_size + 1);
	assert_non_null(*out);
	n = pread(ofd, *out, (size_t)st.st_size, 0);
	assert_int_equal(n, st.st_size);
	(*out)[n] = '\0';
	close(ifd);
	close(ofd);
	return rc;
}

static int
bs_runs(struct fx *fx, const char *in, char **out)
{
	return bs_run(fx, in, strlen(in), 33, "www-data", out);
}

static unsigned
count_str(const char *hay, const char *needle)
{
	unsigned n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void
test_submit_bs(void **state)
{
	struct fx *fx = *state;
	struct collected col;
	struct envelope env;
	char *in, *out, *p;
	size_t big = 1 << 20, len;
	int rc, fd;

	/* Two messages (one of 1 MB) pipelined in one go, from a file. */
	in = malloc(big + 1024);
	assert_non_null(in);
	p = in + sprintf(in, "EHLO app.example\r\nMAIL FROM:<s@example.org>\r\n"
	    "RCPT TO:<a@remote.example>\r\nDATA\r\nSubject: big\r\n\r\n");
	for (size_t i = 0; i < big; i += 100) {
		memset(p, 'b', 98);
		memcpy(p + 98, "\r\n", 2);
		p += 100;
	}
	p += sprintf(p, ".\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<root>\r\n"
	    "DATA\r\nSubject: small\r\n\r\nsmall\r\n.\r\nQUIT\r\n");
	len = (size_t)(p - in);
	rc = bs_run(fx, in, len, 33, "www-data", &out);
	free(in);
	assert_int_equal(rc, EX_OK);
	assert_int_equal(strncmp(out, "220 mx.example ESMTP mxrelay\r\n", 30), 0);
	assert_int_equal(count_str(out, "250 2.0.0 Ok: queued as "), 2);
	assert_non_null(strstr(out, "\r\n221 2.0.0 Bye\r\n"));
	assert_null(strstr(out, "STARTTLS"));
	free(out);
	assert_int_equal(spool_count(fx, &col), 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(queue_env_load(fx->q, col.id[i], &env), 0);
		assert_int_equal(env.submit_uid, 33);
		assert_string_equal(env.submit_user, "www-data");
		if (strcmp(env.rcpt[0].addr, "a@remote.example") == 0)
			assert_true(env.size > big);
		else
			assert_string_equal(env.rcpt[0].addr,
			    "root@example.org");
		envelope_free(&env);
	}

	/* EOF between transactions: fine; inside one: EX_DATAERR. */
	rc = bs_runs(fx, "EHLO a\r\nNOOP\r\n", &out);
	assert_int_equal(rc, EX_OK);
	assert_non_null(strstr(out, "\r\n250 2.0.0 Ok\r\n"));
	free(out);
	rc = bs_runs(fx, "EHLO a\r\nMAIL FROM:<a@example.org>\r\n", &out);
	assert_int_equal(rc, EX_DATAERR);
	assert_non_null(strstr(out, "\r\n250 2.1.0 Ok\r\n"));
	free(out);
	/* Smuggling: refused, in step, nothing queued, and then QUIT. */
	rc = bs_runs(fx, "HELO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@"
	    "example.net>\r\nDATA\r\nx\r\n\n.\r\nMAIL FROM:<e@example.org>\r\n"
	    "RCPT TO:<v@example.net>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n",
	    &out);
	assert_int_equal(rc, EX_OK);
	assert_non_null(strstr(out, "\r\n554 5.6.0 Error: message contains a "
	    "bare LF\r\n221 2.0.0 Bye\r\n"));
	free(out);
	assert_int_equal(spool_count(fx, NULL), 2);
	assert_int_equal(tmp_count(fx), 0);

	/* /dev/null: the greeting, then the end. */
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	{
		char host[] = "mx.example";
		struct submit_bs_conf conf;
		int pp[2];
		char buf[256];
		ssize_t n;

		memset(&conf, 0, sizeof(conf));
		conf.hostname = host;
		assert_int_equal(pipe(pp), 0);
		assert_int_equal(submit_bs(fx->q, &conf, 0, "root", fd, pp[1]),
		    EX_OK);
		close(pp[1]);
		n = read(pp[0], buf, sizeof(buf) - 1);
		assert_true(n > 0);
		buf[n] = '\0';
		assert_string_equal(buf, "220 mx.example ESMTP mxrelay\r\n");
		assert_blocking(pp[0]);
		close(pp[0]);
	}
	close(fd);
}

/*
 * bare_lf = normalize in -bs: the local user is trusted, its bare LFs are
 * line ends, and a smuggling payload is one message.
 */
static void
test_submit_bs_bare_lf(void **state)
{
	struct fx *fx = *state;
	struct collected col;
	char *out;
	int rc;

	fx->p.bare_lf = BARE_LF_NORMALIZE;
	rc = bs_runs(fx, "HELO a\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@"
	    "example.net>\r\nDATA\r\nx\n\n.\r\nMAIL FROM:<e@example.org>\r\n"
	    "RCPT TO:<v@example.net>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n",
	    &out);
	assert_int_equal(rc, EX_OK);
	assert_int_equal(count_str(out, "250 2.0.0 Ok: queued"), 1);
	assert_non_null(strstr(out, "\r\n221 2.0.0 Bye\r\n"));
	free(out);
	assert_int_equal(spool_count(fx, &col), 1);
	body_check(fx, col.id[0], "\r\nx\r\n\r\n\r\nMAIL FROM:<e@example.org>"
	    "\r\nRCPT TO:<v@example.net>\r\nDATA\r\nsmuggled\r\n");
	assert_int_equal(tmp_count(fx), 0);
}

/* The spool fails: 452/451 to the client, and the exit status says so. */
static void
test_submit_bs_spool(void **state)
{
	struct fx *fx = *state;
	struct queue_sysops ops = queue_sysops_default;
	static const char in[] = "EHLO a\r\nMAIL FROM:<a@example.org>\r\n"
	    "RCPT TO:<b@example.net>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n";
	char *out;
	int rc;

	ops.write = fail_write;
	ops.openat = fail_openat;
	queue_test_set_sysops(&ops);
	inj_errno = ENOSPC;
	rc = bs_run(fx, in, sizeof(in) - 1, 1, "u", &out);
	assert_int_equal(rc, EX_TEMPFAIL);
	assert_non_null(strstr(out, "\r\n452 4.3.1"));
	assert_non_null(strstr(out, "\r\n221 2.0.0"));
	free(out);
	inj_errno = EIO;
	rc = bs_run(fx, in, sizeof(in) - 1, 1, "u", &out);
	assert_int_equal(rc, EX_IOERR);
	assert_non_null(strstr(out, "\r\n451 4.3.0"));
	free(out);
	/* Not even a file: the drop folder is not writable (EACCES). */
	inj_errno = EACCES;
	inj_openat = true;
	rc = bs_run(fx, in, sizeof(in) - 1, 1, "u", &out);
	inj_openat = false;
	assert_int_equal(rc, EX_CANTCREAT);
	assert_non_null(strstr(out, "\r\n451 4.3.0"));
	free(out);
	queue_test_set_sysops(NULL);
	assert_int_equal(spool_count(fx, NULL), 0);
	assert_int_equal(tmp_count(fx), 0);
}

/* Killed by SIGTERM in a session: the caller's flags are back first. */
static void
test_submit_bs_signal(void **state)
{
	struct fx *fx = *state;
	char host[] = "mx.example", buf[256];
	struct submit_bs_conf conf;
	int in[2], out[2], st;
	ssize_t n;
	pid_t pid;

	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		close(in[1]);
		close(out[0]);
		memset(&conf, 0, sizeof(conf));
		conf.hostname = host;
		(void)submit_bs(fx->q, &conf, 1, "u", in[0], out[1]);
		_exit(99);
	}
	/* in[0] and out[1] stay open here: the child's file descriptions. */
	/* The greeting: the session runs, its descriptors non-blocking. */
	n = read(out[0], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "220 mx.example ESMTP mxrelay\r\n");
	assert_int_not_equal(fcntl(in[0], F_GETFL) & O_NONBLOCK, 0);
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGTERM);
	assert_blocking(in[0]);
	assert_blocking(out[1]);
	for (int i = 0; i < 2; i++) {
		close(in[i]);
		close(out[i]);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_io_raw, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users_file, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelining, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_commands, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_outsider, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_smuggling, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_smuggling_normalize, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_data_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_recipients, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_command_lines, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pipeline_flood, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_error_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_hops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_clients, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeouts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_spool_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_free_mid_data, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_set_params, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_accept_emfile, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_starttls, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_auth_abuse, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_gone, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_bare_lf, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_auth_unconfigured, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_local_session, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_local_smuggling, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_local_eof, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_local_output_gone, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_local_free, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_local_pty, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_submit_bs, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_submit_bs_bare_lf, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_submit_bs_spool, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_submit_bs_signal, setup,
		    teardown),
	};
	char cmd[PATH_MAX + 512];
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (system("openssl version >/dev/null 2>&1") == 0) {
		(void)make_hash();
		if (test_mkdtemp(certdir, sizeof(certdir),
		    "mxrelay-smtpd-tls") != NULL) {
			snprintf(cmd, sizeof(cmd), "sh '%s/tests/unit/"
			    "tls-certs.sh' '%s' 2>/dev/null", TOP_SRCDIR,
			    certdir);
			have_certs = system(cmd) == 0;
		} else
			certdir[0] = '\0';
	}
	if (!have_certs)
		fprintf(stderr, "openssl command or tls-certs.sh failed: "
		    "TLS tests skipped\n");
	main_thread = pthread_self();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (certdir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certdir);
		(void)system(cmd);
	}
	return rc;
}
