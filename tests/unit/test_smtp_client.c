/*
 * Unit tests for src/smtp_client.c, through the real event loop and io
 * layer, against tests/world/smtpsink started on 127.0.0.1 port 0 for
 * each test (killed by PID at teardown), or against a peer scripted in
 * the test for malformed replies.  What the client did is checked from
 * its callbacks and from what the sink logged and stored.  Every test
 * bounds its own time (TEST_DEADLINE_MS; alarm() as a last resort).
 *
 * TLS tests need src/tls.c; certificates are made at test time with the
 * OpenSSL API into the test's mkdtemp directory.  DANE: a 3 1 1 match is
 * authenticated ("dane"), a wrong digest ends the session before MAIL
 * (4.7.5), STARTTLS missing gives 4.7.4, no usable record plain TLS;
 * smtpc_tls_failure() gives the RFC 8460 type of each TLS problem.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "event.h"
#include "metrics.h"
#include "mock_log.h"
#include "smtp_client.h"
#include "status.h"
#include "tls.h"
#include "util.h"
#include "testutil.h"

#ifndef SMTPSINK_PATH
#define SMTPSINK_PATH	"tests/world/smtpsink"
#endif
#define TEST_DEADLINE_MS	20000

struct tmsg {
	const char	*sender;
	const char	*rcpts[4];
	size_t		 nrcpt;
	const char	*body;		/* NULL: bodylen bytes of a pattern */
	size_t		 bodylen;
	bool		 eightbit;
	uint64_t	 size;		/* 0: bodylen */
	bool		 smtputf8;
	const char	*prefix;	/* sent before the body; NULL: none */
};

struct tres {
	struct smtpc_reason why;
	size_t		 nrcpt;
	struct smtpc_rcpt_result rcpt[4];
};

struct fixture {
	char		 dir[256];
	pid_t		 sink;
	struct sockaddr_in sin;
	/* the run */
	struct ev_loop	*loop;
	struct smtpc	*s;
	struct smtpc_params p;
	struct tmsg	*msgs;
	size_t		 nmsgs, next;
	struct smtpc_msg m[4];
	int		 fds[4];
	struct tres	 res[4];
	size_t		 ndone;
	bool		 ready, closed;
	struct smtpc_reason c_why;	/* what closed said */
	enum outcome	 c_outcome;
	enum smtpc_stage c_stage;
	char		 c_reply[SMTPC_REPLY_MAX];
	char		 tls_version[32];
	bool		 tls_verified;
	const char	*tls_auth;	/* smtpc_tls_auth() at closed */
	const char	*tls_failure;	/* smtpc_tls_failure() at closed */
	char		 tls_dane[64];	/* smtpc_seen()->tls.dane at closed */
	unsigned	 msgs_sent;
	/* a scripted peer instead of the sink */
	int		 lfd, pfd;
	const char	*script;
	size_t		 scriptlen;
	bool		 expect_send_fail;
	bool		 peer_close;	/* shut down after the script */
	SSL_CTX		*ctx;
};

static void	on_ready(void *, struct smtpc *);
static void	on_done(void *, struct smtpc *, const struct smtpc_result *);
static void	on_closed(void *, struct smtpc *,
		    const struct smtpc_reason *);

static const struct smtpc_ops ops = { on_ready, on_done, on_closed };

/* The metrics (reset by setup()) have this line. */
static bool
has_metric(const char *line)
{
	char *m = metrics_render(NULL), *want = xasprintf("\n%s\n", line);
	bool found = strstr(m, want) != NULL;

	if (!found)
		print_error("no line \"%s\" in the metrics:\n%s", line, m);
	free(want);
	free(m);
	return found;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	metrics_reset();
	if (f == NULL)
		return -1;
	if (test_mkdtemp(f->dir, sizeof(f->dir), "smtpc") == NULL)
		return -1;
	f->sink = -1;
	f->lfd = f->pfd = -1;
	for (int i = 0; i < 4; i++)
		f->fds[i] = -1;
	f->loop = ev_loop_new();
	memset(&f->p, 0, sizeof(f->p));
	f->p.helo_name = "client.test";
	f->p.peer_name = "mx.test";
	f->p.tls = TLS_NONE;
	smtpc_timeouts_default(&f->p.timeouts);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d;
	struct dirent *de;

	if (f->sink > 0) {
		kill(f->sink, SIGTERM);
		waitpid(f->sink, NULL, 0);
	}
	if (f->s != NULL)
		smtpc_free(f->s);
	if (f->pfd != -1) {
		ev_fd_del(f->loop, f->pfd);
		close(f->pfd);
	}
	if (f->lfd != -1) {
		ev_fd_del(f->loop, f->lfd);
		close(f->lfd);
	}
	for (int i = 0; i < 4; i++)
		if (f->fds[i] != -1)
			close(f->fds[i]);
#ifdef SMTPC_TEST_TLS
	if (f->ctx != NULL)
		tls_ctx_free(f->ctx);
#endif
	ev_loop_free(f->loop);
	if ((d = opendir(f->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			char path[512];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", f->dir, de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Start the sink with extra arguments (NULL-terminated); learn its port. */
static void
sink_start(struct fixture *f, ...)
{
	const char *argv[40];
	char logpath[300], line[128];
	int n = 0;
	va_list ap;
	char *colon;

	snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
	argv[n++] = SMTPSINK_PATH;
	argv[n++] = "-l";
	argv[n++] = "127.0.0.1:0";
	argv[n++] = "-d";
	argv[n++] = f->dir;
	argv[n++] = "-L";
	argv[n++] = logpath;
	argv[n++] = "-t";
	argv[n++] = "60";
	va_start(ap, f);
	while ((argv[n] = va_arg(ap, const char *)) != NULL && n < 38)
		n++;
	va_end(ap);
	argv[n] = NULL;

	assert_int_not_equal(test_spawn_line(argv, line, sizeof(line), 5000,
	    &f->sink), -1);
	colon = strrchr(line, ':');
	assert_non_null(colon);
	memset(&f->sin, 0, sizeof(f->sin));
	f->sin.sin_family = AF_INET;
	f->sin.sin_port = htons((uint16_t)atoi(colon + 1));
	f->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

static void
send_next(struct fixture *f, struct smtpc *s)
{
	if (f->next < f->nmsgs) {
		assert_int_equal(smtpc_send(s, &f->m[f->next]), 0);
		f->next++;
	} else
		smtpc_quit(s);
}

/*
 * Every reason holds together: a reply code exactly when the cause is a
 * reply (and then a code the parser accepts), a status that is a
 * well-formed RFC 3463 code of the reply's class or empty, one line of
 * text.
 */
static void
assert_reason_sane(const struct smtpc_reason *r)
{
	assert_int_not_equal(r->cause, SMTPC_CAUSE_NONE);
	if (r->cause == SMTPC_CAUSE_REPLY) {
		assert_in_range(r->code, 200, 599);
		if (r->status[0] != '\0')
			assert_int_equal(r->status[0] - '0', r->code / 100);
	} else
		assert_int_equal(r->code, 0);
	assert_true(r->status[0] == '\0' || status_valid(r->status));
	assert_null(strpbrk(r->text, "\r\n"));
	assert_true(r->text[0] != '\0');
}

static void
on_ready(void *arg, struct smtpc *s)
{
	struct fixture *f = arg;

	assert_false(f->ready);
	f->ready = true;
	/* only after ready or done */
	send_next(f, s);
}

static void
on_done(void *arg, struct smtpc *s, const struct smtpc_result *r)
{
	struct fixture *f = arg;
	struct tres *t;

	assert_true(f->ndone < 4);
	assert_false(f->closed);
	t = &f->res[f->ndone++];
	t->why = r->why;
	t->nrcpt = r->nrcpt;
	assert_true(r->nrcpt <= 4);
	memcpy(t->rcpt, r->rcpt, r->nrcpt * sizeof(r->rcpt[0]));
	assert_reason_sane(&r->why);
	for (size_t i = 0; i < r->nrcpt; i++)
		assert_reason_sane(&r->rcpt[i].why);
	/* a session that is going away refuses more */
	if (f->expect_send_fail)
		assert_int_equal(smtpc_send(s, &f->m[0]), -1);
	send_next(f, s);
}

static void
on_closed(void *arg, struct smtpc *s, const struct smtpc_reason *why)
{
	struct fixture *f = arg;

	assert_false(f->closed);
	f->closed = true;
	f->c_why = *why;
	f->c_outcome = why->outcome;
	f->c_stage = why->stage;
	util_strlcpy(f->c_reply, why->text, sizeof(f->c_reply));
	assert_reason_sane(why);
	util_strlcpy(f->tls_version, smtpc_tls_version(s),
	    sizeof(f->tls_version));
	f->tls_verified = smtpc_tls_verified(s);
	f->tls_auth = smtpc_tls_auth(s);
	f->tls_failure = smtpc_tls_failure(s);
	util_strlcpy(f->tls_dane, smtpc_seen(s)->tls.dane, sizeof(f->tls_dane));
	f->msgs_sent = smtpc_msgs_sent(s);
	/* freeing from inside closed is allowed */
	smtpc_free(s);
	f->s = NULL;
}

static char *
body_of(const struct tmsg *t)
{
	char *b = malloc(t->bodylen + 1);

	assert_non_null(b);
	if (t->body != NULL)
		memcpy(b, t->body, t->bodylen);
	else
		for (size_t i = 0; i < t->bodylen; i++)
			b[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ?
			    '\n' : (i % 100 == 0) ? '.' :
			    (char)('a' + (i * 7) % 26);
	return b;
}

/* Connect, send msgs, QUIT; run until closed or the deadline. */
static void
run(struct fixture *f, struct tmsg *msgs, size_t n)
{
	uint64_t start;

	assert_true(n <= 4);
	f->msgs = msgs;
	f->nmsgs = n;
	for (size_t i = 0; i < n; i++) {
		char path[300], *b = body_of(&msgs[i]);

		snprintf(path, sizeof(path), "%s/body%zu", f->dir, i);
		f->fds[i] = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		assert_true(f->fds[i] >= 0);
		assert_int_equal(write(f->fds[i], b, msgs[i].bodylen),
		    (ssize_t)msgs[i].bodylen);
		free(b);
		f->m[i].sender = msgs[i].sender;
		f->m[i].rcpts = msgs[i].rcpts;
		f->m[i].nrcpt = msgs[i].nrcpt;
		f->m[i].body_fd = f->fds[i];
		f->m[i].size = msgs[i].size ? msgs[i].size : msgs[i].bodylen;
		f->m[i].eightbit = msgs[i].eightbit;
		f->m[i].smtputf8 = msgs[i].smtputf8;
		if (msgs[i].prefix != NULL) {
			f->m[i].prefix = msgs[i].prefix;
			f->m[i].prefix_len = strlen(msgs[i].prefix);
			if (msgs[i].size == 0)
				f->m[i].size += f->m[i].prefix_len;
		}
	}
	f->s = smtpc_new(f->loop, (struct sockaddr *)&f->sin, sizeof(f->sin),
	    &f->p, &ops, f);
	assert_non_null(f->s);
	start = ev_now(f->loop);
	while (!f->closed && ev_now(f->loop) - start < TEST_DEADLINE_MS)
		ev_run_once(f->loop, 100);
	if (!f->closed) {
		char path[300], buf[4096];
		FILE *fp;
		size_t got;

		/* show what the sink saw before failing */
		snprintf(path, sizeof(path), "%s/log", f->dir);
		if ((fp = fopen(path, "r")) != NULL) {
			got = fread(buf, 1, sizeof(buf) - 1, fp);
			buf[got] = '\0';
			fprintf(stderr, "sink log:\n%s", buf);
			fclose(fp);
		}
	}
	assert_true(f->closed);
}

/* The sink log, whole; caller frees. */
static char *
sink_log(struct fixture *f)
{
	char path[300], *buf;
	FILE *fp;
	size_t n;

	/* the sink logs the close after the client has seen it */
	for (int i = 0; i < 50; i++) {
		struct stat sb;

		snprintf(path, sizeof(path), "%s/log", f->dir);
		if (stat(path, &sb) == 0 && (fp = fopen(path, "r")) != NULL) {
			buf = calloc(1, (size_t)sb.st_size + 1);
			assert_non_null(buf);
			n = fread(buf, 1, (size_t)sb.st_size, fp);
			buf[n] = '\0';
			fclose(fp);
			if (strstr(buf, "close id=") != NULL || i == 49)
				return buf;
			free(buf);
		}
		usleep(20000);
	}
	return strdup("");
}

static size_t
count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* The stored message number k (1-based, by name), whole; NULL if none. */
static char *
stored(struct fixture *f, unsigned k, size_t *len)
{
	struct dirent **ents;
	int n = scandir(f->dir, &ents, NULL, alphasort);
	unsigned seen = 0;
	char *buf = NULL;

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (buf == NULL && strncmp(ents[i]->d_name, "msg.", 4) == 0 &&
		    ++seen == k) {
			char path[512];
			struct stat sb;
			int fd;

			snprintf(path, sizeof(path), "%s/%s", f->dir,
			    ents[i]->d_name);
			fd = open(path, O_RDONLY);
			assert_true(fd >= 0);
			assert_int_equal(fstat(fd, &sb), 0);
			buf = malloc((size_t)sb.st_size + 1);
			assert_non_null(buf);
			*len = 0;
			while (*len < (size_t)sb.st_size) {
				ssize_t r = read(fd, buf + *len,
				    (size_t)sb.st_size - *len);

				assert_true(r > 0);
				*len += (size_t)r;
			}
			buf[*len] = '\0';
			close(fd);
		}
		free(ents[i]);
	}
	free(ents);
	return buf;
}

/* The stored body equals the message's body (plus a CRLF if it had none). */
static void
assert_body(struct fixture *f, unsigned k, const struct tmsg *t)
{
	size_t len, blen;
	char *m = stored(f, k, &len), *b = body_of(t), *body;

	assert_non_null(m);
	body = strstr(m, "\n\n");
	assert_non_null(body);
	body += 2;
	blen = len - (size_t)(body - m);
	if (t->bodylen < 2 || memcmp(b + t->bodylen - 2, "\r\n", 2) != 0) {
		assert_int_equal(blen, t->bodylen + 2);
		assert_memory_equal(body + t->bodylen, "\r\n", 2);
	} else
		assert_int_equal(blen, t->bodylen);
	assert_memory_equal(body, b, t->bodylen);
	free(m);
	free(b);
}

static struct tmsg two_rcpts = {
	"sender@example.org", { "a@example.com", "b@example.com" }, 2,
	"Subject: test\r\n\r\nhello\r\n", 24, false, 0, false, NULL,
};

static void
test_plain_two_rcpts(void **state)
{
	struct fixture *f = *state;
	char *log;

	sink_start(f, NULL);
	run(f, &two_rcpts, 1);
	assert_true(f->ready);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_DOT);
	assert_int_equal(f->res[0].nrcpt, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(f->res[0].rcpt[i].why.outcome, OUTCOME_OK);
		assert_non_null(strstr(f->res[0].rcpt[i].why.text, "250 2.0.0"));
		/* the reply to the end of data, typed */
		assert_true(f->res[0].rcpt[i].accepted);
		assert_int_equal(f->res[0].rcpt[i].why.cause, SMTPC_CAUSE_REPLY);
		assert_int_equal(f->res[0].rcpt[i].why.code, 250);
		assert_int_equal(f->res[0].rcpt[i].why.stage, SMTPC_STAGE_DOT);
		assert_string_equal(f->res[0].rcpt[i].why.status, "2.0.0");
	}
	assert_int_equal(f->c_outcome, OUTCOME_OK);
	assert_int_equal(f->c_stage, SMTPC_STAGE_QUIT);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_REPLY);
	assert_int_equal(f->c_why.code, 221);
	assert_string_equal(f->tls_version, "none");
	assert_int_equal(f->msgs_sent, 1);
	/* a session that was up is no failure, whatever ends it */
	assert_true(has_metric("mxrelay_smtp_connections_total 1"));
	assert_true(has_metric(
	    "# TYPE mxrelay_smtp_connection_failures_total counter"));
	{
		char *m = metrics_render(NULL);

		assert_null(strstr(m, "mxrelay_smtp_connection_failures_total{"));
		free(m);
	}
	log = sink_log(f);
	assert_non_null(strstr(log, "ehlo id=1 name=client.test"));
	assert_non_null(strstr(log, "mail id=1 from=<sender@example.org> params=SIZE=24"));
	assert_non_null(strstr(log, "rcpts=2"));
	assert_non_null(strstr(log, "quit id=1"));
	assert_int_equal(count(log, "violation"), 0);
	assert_int_equal(count(log, "badcmd"), 0);
	free(log);
	assert_body(f, 1, &two_rcpts);
}

static void
test_no_pipelining(void **state)
{
	struct fixture *f = *state;
	char *log;

	sink_start(f, "--no-pipelining", NULL);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_int_equal(f->c_outcome, OUTCOME_OK);
	log = sink_log(f);
	/* one command at a time: the sink saw no group */
	assert_int_equal(count(log, "violation"), 0);
	assert_int_equal(count(log, "rcpt id=1"), 2);
	free(log);
	assert_body(f, 1, &two_rcpts);
}

static void
test_one_rcpt_refused(void **state)
{
	struct fixture *f = *state;
	struct tmsg t = two_rcpts;
	char *log, *m;
	size_t len;

	t.rcpts[0] = "bad@x";
	sink_start(f, "-r", "rcpt=550:bad@x", NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_int_equal(f->res[0].rcpt[0].why.outcome, OUTCOME_PERMFAIL);
	assert_non_null(strstr(f->res[0].rcpt[0].why.text, "550 5.1.1"));
	assert_int_equal(f->res[0].rcpt[1].why.outcome, OUTCOME_OK);
	/* 5xx at RCPT: its own reply, typed; the other was accepted */
	assert_false(f->res[0].rcpt[0].accepted);
	assert_int_equal(f->res[0].rcpt[0].why.cause, SMTPC_CAUSE_REPLY);
	assert_int_equal(f->res[0].rcpt[0].why.stage, SMTPC_STAGE_RCPT);
	assert_int_equal(f->res[0].rcpt[0].why.code, 550);
	assert_string_equal(f->res[0].rcpt[0].why.status, "5.1.1");
	assert_true(f->res[0].rcpt[1].accepted);
	assert_int_equal(f->res[0].rcpt[1].why.code, 250);
	log = sink_log(f);
	assert_non_null(strstr(log, "rcpts=1"));
	free(log);
	m = stored(f, 1, &len);
	assert_non_null(m);
	assert_null(strstr(m, "bad@x"));
	assert_non_null(strstr(m, "RCPT TO:<b@example.com>"));
	free(m);
}

static void
all_refused(void **state, bool pipelining)
{
	struct fixture *f = *state;
	char *log;
	size_t len;

	if (pipelining)
		sink_start(f, "-r", "rcpt=550", NULL);
	else
		sink_start(f, "-r", "rcpt=550", "--no-pipelining", NULL);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_RCPT);
	assert_int_equal(f->res[0].rcpt[0].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->res[0].rcpt[1].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->c_outcome, OUTCOME_OK);
	log = sink_log(f);
	/* no body: it would show up as unknown commands */
	assert_int_equal(count(log, "badcmd"), 0);
	assert_int_equal(count(log, "msg id="), 0);
	assert_int_equal(count(log, "violation"), 0);
	if (pipelining)
		assert_non_null(strstr(log, "data id=1 code=554"));
	else
		assert_int_equal(count(log, "data id="), 0);
	free(log);
	assert_null(stored(f, 1, &len));
}

static void
test_all_refused_pipelining(void **state)
{
	all_refused(state, true);
}

static void
test_all_refused_no_pipelining(void **state)
{
	all_refused(state, false);
}

static void
test_rcpt_450(void **state)
{
	struct fixture *f = *state;

	sink_start(f, "-r", "rcpt=450", NULL);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_RCPT);
	assert_int_equal(f->res[0].rcpt[0].why.outcome, OUTCOME_TEMPFAIL);
	assert_non_null(strstr(f->res[0].rcpt[0].why.text, "450 4.3.0"));
	for (int i = 0; i < 2; i++) {
		const struct smtpc_rcpt_result *rr = &f->res[0].rcpt[i];

		assert_false(rr->accepted);
		assert_int_equal(rr->why.cause, SMTPC_CAUSE_REPLY);
		assert_int_equal(rr->why.stage, SMTPC_STAGE_RCPT);
		assert_int_equal(rr->why.code, 450);
		assert_string_equal(rr->why.status, "4.3.0");
	}
	/* the transaction says what the last recipient got */
	assert_int_equal(f->res[0].why.cause, SMTPC_CAUSE_REPLY);
	assert_int_equal(f->res[0].why.code, 450);
}

static void
test_mail_451(void **state)
{
	struct fixture *f = *state;
	char *log;

	sink_start(f, "-r", "mail=451", NULL);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_MAIL);
	assert_true(strncmp(f->res[0].why.text, "451 ", 4) == 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(f->res[0].rcpt[i].why.outcome, OUTCOME_TEMPFAIL);
		assert_string_equal(f->res[0].rcpt[i].why.text, f->res[0].why.text);
	}
	log = sink_log(f);
	assert_int_equal(count(log, "msg id="), 0);
	assert_int_equal(count(log, "badcmd"), 0);
	free(log);
}

static void
test_greeting_554(void **state)
{
	struct fixture *f = *state;
	char *log;

	sink_start(f, "-r", "greeting=554", NULL);
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->ndone, 0);
	assert_int_equal(f->c_outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_GREETING);
	assert_true(strncmp(f->c_reply, "554 ", 4) == 0);
	log = sink_log(f);
	assert_int_equal(count(log, "ehlo id="), 0);
	assert_non_null(strstr(log, "quit id=1"));
	free(log);
	assert_true(has_metric("mxrelay_smtp_connections_total 1"));
	assert_true(has_metric(
	    "mxrelay_smtp_connection_failures_total{reason=\"greeting\"} 1"));
}

static void
test_greeting_421(void **state)
{
	struct fixture *f = *state;

	sink_start(f, "-r", "greeting=421", NULL);
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_GREETING);
	assert_true(strncmp(f->c_reply, "421 ", 4) == 0);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_REPLY);
	assert_int_equal(f->c_why.code, 421);
	assert_string_equal(f->c_why.status, "4.0.0");
}

static void
test_ehlo_500_helo(void **state)
{
	struct fixture *f = *state;
	char *log;

	sink_start(f, "-r", "ehlo=500", NULL);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	log = sink_log(f);
	assert_non_null(strstr(log, "helo id=1 name=client.test"));
	/* no extensions after HELO: no SIZE= */
	assert_non_null(strstr(log, "params=\n"));
	assert_int_equal(count(log, "violation"), 0);
	free(log);
	assert_body(f, 1, &two_rcpts);
}

static void
test_size_over_limit(void **state)
{
	struct fixture *f = *state;
	struct tmsg t = two_rcpts;
	char *log;

	t.size = 5000;
	sink_start(f, "--size=1000", NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_MAIL);
	assert_string_equal(f->res[0].why.text,
	    "552 5.3.4 message size exceeds fixed limit of the server");
	/* not a reply: we did not send it; the status is ours */
	assert_int_equal(f->res[0].why.cause, SMTPC_CAUSE_LOCAL);
	assert_int_equal(f->res[0].why.code, 0);
	assert_string_equal(f->res[0].why.status, "5.3.4");
	assert_int_equal(f->res[0].rcpt[1].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->c_outcome, OUTCOME_OK);
	log = sink_log(f);
	assert_int_equal(count(log, "mail id="), 0);
	free(log);
}

/* RFC 6531: SMTPUTF8 when offered; else nothing sent, 5.6.7 for all. */
static void
test_smtputf8(void **state)
{
	struct fixture *f = *state;
	struct tmsg t = two_rcpts;
	char *log;

	t.smtputf8 = true;
	t.rcpts[0] = "j\xc3\xb6s\xc3\xa9@example.net";
	sink_start(f, "--smtputf8", NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	log = sink_log(f);
	assert_non_null(strstr(log, "params=SIZE=24 SMTPUTF8"));
	assert_non_null(strstr(log, "to=<j\\xc3\\xb6s\\xc3\\xa9@example.net>"));
	free(log);
}

static void
test_smtputf8_missing(void **state)
{
	struct fixture *f = *state;
	struct tmsg t = two_rcpts;
	char *log;

	t.smtputf8 = true;
	sink_start(f, NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_MAIL);
	assert_int_equal(f->res[0].why.cause, SMTPC_CAUSE_LOCAL);
	assert_string_equal(f->res[0].why.status, "5.6.7");
	assert_int_equal(f->res[0].rcpt[0].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->res[0].rcpt[1].why.outcome, OUTCOME_PERMFAIL);
	log = sink_log(f);
	assert_int_equal(count(log, "mail id="), 0);
	free(log);
}

static void
test_eightbit(void **state)
{
	struct fixture *f = *state;
	struct tmsg t = two_rcpts;
	char *log;

	t.eightbit = true;
	t.body = "Subject: caf\xc3\xa9\r\n\r\n\xc3\xa9t\xc3\xa9\r\n";
	t.bodylen = strlen(t.body);
	sink_start(f, NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	log = sink_log(f);
	assert_non_null(strstr(log, "BODY=8BITMIME"));
	free(log);
	assert_body(f, 1, &t);
}

static void
test_dot_stuffing(void **state)
{
	struct fixture *f = *state;
	static const char body[] = "Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n"
	    "a.b\r\n\r\n.\r\n. \r\nend without CRLF .";
	struct tmsg t = two_rcpts;

	t.body = body;
	t.bodylen = sizeof(body) - 1;
	sink_start(f, NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_body(f, 1, &t);
}

/*
 * The signature made at intake goes before the body file's bytes, in the
 * same stream (dot-stuffed with it), and SIZE= counts it.
 */
static void
test_prefix(void **state)
{
	struct fixture *f = *state;
	static const char prefix[] = "DKIM-Signature: v=1; a=rsa-sha256; "
	    "d=example.org;\r\n\ts=sel; b=AbC\r\n";
	static const char body[] = ".starts with a dot\r\n\r\n.\r\nend\r\n";
	char want[256], size[64], *log;
	struct tmsg t = two_rcpts, whole = two_rcpts;

	t.body = body;
	t.bodylen = sizeof(body) - 1;
	t.prefix = prefix;
	snprintf(want, sizeof(want), "%s%s", prefix, body);
	whole.body = want;
	whole.bodylen = strlen(want);
	sink_start(f, NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_body(f, 1, &whole);
	log = sink_log(f);
	snprintf(size, sizeof(size), "SIZE=%zu", strlen(want));
	assert_non_null(strstr(log, size));
	free(log);
}

static void
test_large_body(void **state)
{
	struct fixture *f = *state;
	struct tmsg t = two_rcpts;
	char *log;

	t.body = NULL;
	t.bodylen = 5 * 1024 * 1024;
	sink_start(f, NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	log = sink_log(f);
	assert_int_equal(count(log, "badcmd"), 0);
	free(log);
	assert_body(f, 1, &t);
}

static void
test_drop_at_dot(void **state)
{
	struct fixture *f = *state;

	sink_start(f, "--drop=dot", NULL);
	f->expect_send_fail = true;
	run(f, &two_rcpts, 1);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_DOT);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(f->res[0].rcpt[i].why.outcome, OUTCOME_TEMPFAIL);
		/* no SMTP reply: the delivery layer maps it to 4.4.2 */
		assert_string_equal(f->res[0].rcpt[i].why.text, f->res[0].why.text);
		assert_false(f->res[0].rcpt[i].why.text[0] >= '0' &&
		    f->res[0].rcpt[i].why.text[0] <= '9');
		/* accepted at RCPT, then the connection was lost */
		assert_true(f->res[0].rcpt[i].accepted);
		assert_int_equal(f->res[0].rcpt[i].why.cause, SMTPC_CAUSE_LOST);
		assert_int_equal(f->res[0].rcpt[i].why.stage, SMTPC_STAGE_DOT);
		assert_int_equal(f->res[0].rcpt[i].why.code, 0);
		assert_string_equal(f->res[0].rcpt[i].why.status, "");
	}
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_LOST);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_DOT);
	assert_int_equal(f->msgs_sent, 0);
}

static void
test_dot_452(void **state)
{
	struct fixture *f = *state;
	struct tmsg t = two_rcpts;

	t.rcpts[0] = "bad@x";
	sink_start(f, "-r", "dot=452", "-r", "rcpt=550:bad@x", NULL);
	run(f, &t, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_DOT);
	/* refused keeps its own reply; accepted gets the dot's */
	assert_int_equal(f->res[0].rcpt[0].why.outcome, OUTCOME_PERMFAIL);
	assert_true(strncmp(f->res[0].rcpt[0].why.text, "550", 3) == 0);
	assert_int_equal(f->res[0].rcpt[1].why.outcome, OUTCOME_TEMPFAIL);
	assert_true(strncmp(f->res[0].rcpt[1].why.text, "452", 3) == 0);
	assert_false(f->res[0].rcpt[0].accepted);
	assert_int_equal(f->res[0].rcpt[0].why.stage, SMTPC_STAGE_RCPT);
	assert_int_equal(f->res[0].rcpt[0].why.code, 550);
	assert_true(f->res[0].rcpt[1].accepted);
	assert_int_equal(f->res[0].rcpt[1].why.stage, SMTPC_STAGE_DOT);
	assert_int_equal(f->res[0].rcpt[1].why.code, 452);
	assert_string_equal(f->res[0].rcpt[1].why.status, "4.0.0");
	assert_int_equal(f->c_outcome, OUTCOME_OK);
}

/* Accepted at RCPT, then refused after the data: typed, per recipient. */
static void
test_dot_554(void **state)
{
	struct fixture *f = *state;
	size_t len;

	sink_start(f, "-r", "dot=554", NULL);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_DOT);
	for (int i = 0; i < 2; i++) {
		const struct smtpc_rcpt_result *rr = &f->res[0].rcpt[i];

		assert_true(rr->accepted);
		assert_int_equal(rr->why.outcome, OUTCOME_PERMFAIL);
		assert_int_equal(rr->why.cause, SMTPC_CAUSE_REPLY);
		assert_int_equal(rr->why.stage, SMTPC_STAGE_DOT);
		assert_int_equal(rr->why.code, 554);
		assert_string_equal(rr->why.status, "5.0.0");
	}
	assert_int_equal(f->msgs_sent, 0);
	assert_null(stored(f, 1, &len));
}

/* The connection dropped before DATA: nobody was accepted. */
static void
test_drop_at_rcpt(void **state)
{
	struct fixture *f = *state;

	/* one command at a time: MAIL is answered, RCPT is not */
	sink_start(f, "--drop=rcpt", "--no-pipelining", NULL);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_RCPT);
	assert_int_equal(f->res[0].why.cause, SMTPC_CAUSE_LOST);
	for (int i = 0; i < 2; i++) {
		const struct smtpc_rcpt_result *rr = &f->res[0].rcpt[i];

		assert_false(rr->accepted);
		assert_int_equal(rr->why.outcome, OUTCOME_TEMPFAIL);
		assert_int_equal(rr->why.cause, SMTPC_CAUSE_LOST);
		assert_int_equal(rr->why.stage, SMTPC_STAGE_RCPT);
		assert_int_equal(rr->why.code, 0);
	}
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_LOST);
	assert_int_equal(f->c_why.stage, SMTPC_STAGE_RCPT);
	/* lost after the session was up: not a connection failure */
	{
		char *m = metrics_render(NULL);

		assert_null(strstr(m, "mxrelay_smtp_connection_failures_total{"));
		free(m);
	}
}

static void
test_data_554(void **state)
{
	struct fixture *f = *state;
	char *log;

	sink_start(f, "-r", "data=554", NULL);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_DATA);
	assert_int_equal(f->res[0].rcpt[0].why.outcome, OUTCOME_PERMFAIL);
	log = sink_log(f);
	assert_int_equal(count(log, "badcmd"), 0);
	free(log);
}

static void
test_timeout_greeting(void **state)
{
	struct fixture *f = *state;
	uint64_t t0;

	sink_start(f, "--hang=greeting", NULL);
	f->p.timeouts.greeting = 1000;
	t0 = ev_now(f->loop);
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_GREETING);
	assert_non_null(strstr(f->c_reply, "timeout waiting for greeting"));
	assert_true(ev_now(f->loop) - t0 < 5000);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_TIMEOUT);
	assert_int_equal(f->c_why.code, 0);
	assert_string_equal(f->c_why.status, "");
	assert_true(has_metric(
	    "mxrelay_smtp_connection_failures_total{reason=\"timeout\"} 1"));
}

static void
test_timeout_rcpt(void **state)
{
	struct fixture *f = *state;

	sink_start(f, "--hang=rcpt", NULL);
	f->p.timeouts.rcpt = 1000;
	run(f, &two_rcpts, 1);
	assert_int_equal(f->ndone, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->res[0].why.stage, SMTPC_STAGE_RCPT);
	assert_non_null(strstr(f->res[0].why.text, "timeout"));
	assert_int_equal(f->res[0].why.cause, SMTPC_CAUSE_TIMEOUT);
	assert_int_equal(f->res[0].rcpt[0].why.cause, SMTPC_CAUSE_TIMEOUT);
	assert_false(f->res[0].rcpt[0].accepted);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
}

static void
test_two_messages_rset(void **state)
{
	struct fixture *f = *state;
	struct tmsg t[2] = { two_rcpts, two_rcpts };
	char *log;

	t[1].sender = "";
	t[1].rcpts[0] = "c@example.com";
	t[1].nrcpt = 1;
	t[1].body = ".starts with a dot\r\n";
	t[1].bodylen = strlen(t[1].body);
	sink_start(f, NULL);
	run(f, t, 2);
	assert_int_equal(f->ndone, 2);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_int_equal(f->res[1].why.outcome, OUTCOME_OK);
	assert_int_equal(f->msgs_sent, 2);
	log = sink_log(f);
	assert_int_equal(count(log, "connect id="), 1);
	/* The first transaction ended at the dot: no RSET before the next. */
	assert_int_equal(count(log, "rset id=1"), 0);
	assert_non_null(strstr(log, "mail id=1 from=<> "));
	assert_non_null(strstr(log, "close id=1 msgs=2"));
	free(log);
	assert_body(f, 1, &t[0]);
	assert_body(f, 2, &t[1]);
}

/* A transaction that stops before the end of data is reset before the next. */
static void
test_rset_after_refused(void **state)
{
	struct fixture *f = *state;
	struct tmsg t[3] = { two_rcpts, two_rcpts, two_rcpts };
	char *log;

	t[0].rcpts[0] = "bad@x";
	t[0].rcpts[1] = "bad@x";
	t[1].rcpts[0] = "c@example.com";
	t[1].nrcpt = 1;
	t[2].rcpts[0] = "d@example.com";
	t[2].nrcpt = 1;
	sink_start(f, "-r", "rcpt=550:bad@x", NULL);
	run(f, t, 3);
	assert_int_equal(f->ndone, 3);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->res[1].why.outcome, OUTCOME_OK);
	assert_int_equal(f->res[2].why.outcome, OUTCOME_OK);
	log = sink_log(f);
	assert_int_equal(count(log, "connect id="), 1);
	/* RSET after the refused one only; none after the delivered one. */
	assert_int_equal(count(log, "rset id=1"), 1);
	assert_non_null(strstr(log, "close id=1 msgs=2"));
	free(log);
}

static void
test_connect_refused(void **state)
{
	struct fixture *f = *state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	socklen_t len = sizeof(f->sin);

	/* a port nobody listens on: bind one, learn it, close it */
	memset(&f->sin, 0, sizeof(f->sin));
	f->sin.sin_family = AF_INET;
	f->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&f->sin, sizeof(f->sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&f->sin, &len), 0);
	close(fd);
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_CONNECT);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_CONNECT);
	assert_int_equal(f->c_why.code, 0);
	assert_non_null(strstr(f->c_reply, "connect failed"));
	assert_true(has_metric(
	    "mxrelay_smtp_connection_failures_total{reason=\"connect\"} 1"));
}

/* The scripted peer: on accept, write the script, then read and discard. */
static void
peer_on_data(int fd, int events, void *arg)
{
	char buf[4096];

	(void)events;
	(void)arg;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void
peer_on_accept(int fd, int events, void *arg)
{
	struct fixture *f = arg;
	size_t len = f->scriptlen;

	(void)events;
	f->pfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (f->pfd == -1)
		return;
	assert_int_equal(write(f->pfd, f->script, len), (ssize_t)len);
	if (f->peer_close)
		shutdown(f->pfd, SHUT_WR);
	fcntl(f->pfd, F_SETFL, O_NONBLOCK);
	ev_fd_add(f->loop, f->pfd, EV_READ, peer_on_data, f);
	ev_fd_del(f->loop, fd);
}

static void
peer_start(struct fixture *f, const char *script, size_t scriptlen)
{
	socklen_t len = sizeof(f->sin);

	f->script = script;
	f->scriptlen = scriptlen;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	memset(&f->sin, 0, sizeof(f->sin));
	f->sin.sin_family = AF_INET;
	f->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&f->sin,
	    sizeof(f->sin)), 0);
	assert_int_equal(listen(f->lfd, 1), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&f->sin,
	    &len), 0);
	assert_int_equal(ev_fd_add(f->loop, f->lfd, EV_READ, peer_on_accept,
	    f), 0);
}

static void
test_protocol_errors(void **state)
{
#define S(x) x, sizeof(x) - 1
	static const struct {
		const char *script;
		size_t len;
		const char *want;
		enum smtpc_cause cause;
		int code;
	} t[] = {
		{ S("220-mx\r\n250 other code\r\n"), "protocol error",
		  SMTPC_CAUSE_PROTOCOL, 0 },
		{ S("HTTP/1.1 400 Bad Request\r\n"), "protocol error",
		  SMTPC_CAUSE_PROTOCOL, 0 },
		{ S("220 ok\r\n250-mx\r\n250 PIPE\0LINING\r\n"),
		  "protocol error", SMTPC_CAUSE_PROTOCOL, 0 },
		{ S("220 ok\r\n250-mx\r\n250 ok\r\n421 4.4.2 bye\r\n"),
		  "421 4.4.2 bye", SMTPC_CAUSE_REPLY, 421 },
		{ S("220 ok\r\n"), "timeout waiting for EHLO reply",
		  SMTPC_CAUSE_TIMEOUT, 0 },
		{ S("220 ok\r\n250 a\rb\r\n"), "protocol error: control",
		  SMTPC_CAUSE_PROTOCOL, 0 },
		{ S("220 ok\r\n250 ok\r\n354 go on\r\n"), "354 go on",
		  SMTPC_CAUSE_REPLY, 354 },
		{ NULL, 0, "protocol error: reply line too long",
		  SMTPC_CAUSE_PROTOCOL, 0 },
	};
#undef S
	char longline[1200];

	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "220 ", 4);
	memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct fixture *f;

		teardown(state);
		assert_int_equal(setup(state), 0);
		f = *state;
		if (t[i].script != NULL)
			peer_start(f, t[i].script, t[i].len);
		else
			peer_start(f, longline, sizeof(longline) - 1);
		f->p.timeouts.helo = 1000;
		f->p.timeouts.mail = f->p.timeouts.rcpt = 1000;
		run(f, &two_rcpts, 1);
		if (f->ndone > 0 && strstr(f->res[0].why.text, t[i].want)) {
			/* an unexpected code at MAIL: that transaction failed */
			assert_int_equal(f->res[0].why.outcome, OUTCOME_TEMPFAIL);
			assert_int_equal(f->res[0].why.cause, t[i].cause);
			assert_int_equal(f->res[0].why.code, t[i].code);
			continue;
		}
		assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
		assert_non_null(strstr(f->c_reply, t[i].want));
		assert_int_equal(f->c_why.cause, t[i].cause);
		assert_int_equal(f->c_why.code, t[i].code);
		assert_null(strpbrk(f->c_reply, "\r\n"));
	}
}

/* Peer text is escaped once: one log-safe line, backslashes too. */
static void
test_reply_escaped(void **state)
{
	static const char script[] = "554-no \\ \x01 \xc3\xa9\r\n554 second\r\n";
	struct fixture *f = *state;

	peer_start(f, script, sizeof(script) - 1);
	f->p.timeouts.helo = 1000;
	run(f, &two_rcpts, 1);
	assert_int_equal(f->c_outcome, OUTCOME_PERMFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_GREETING);
	assert_string_equal(f->c_reply,
	    "554 no \\x5c \\x01 \\xc3\\xa9 second");
}

#ifdef SMTPC_TEST_TLS
static void	make_cert_until(struct fixture *, char *, char *, size_t,
		    long);

/* A self-signed certificate for CN=mx.test, written as cert.pem/key.pem. */
static void
make_cert(struct fixture *f, char *cert, char *key, size_t len)
{
	make_cert_until(f, cert, key, len, 86400);
}

/* The same, valid until now + after seconds (negative: expired). */
static void
make_cert_until(struct fixture *f, char *cert, char *key, size_t len,
    long after)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *fp;

	assert_non_null(pk);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -7200);
	X509_gmtime_adj(X509_getm_notAfter(x), after);
	X509_set_pubkey(x, pk);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"mx.test", -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
	snprintf(cert, len, "%s/cert.pem", f->dir);
	snprintf(key, len, "%s/key.pem", f->dir);
	assert_non_null(fp = fopen(cert, "w"));
	PEM_write_X509(fp, x);
	fclose(fp);
	assert_non_null(fp = fopen(key, "w"));
	PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL, NULL);
	fclose(fp);
	X509_free(x);
	EVP_PKEY_free(pk);
}

static void
tls_setup(struct fixture *f, enum tls_policy pol, bool verify)
{
	char err[256];

	f->ctx = tls_client_ctx_new(NULL, verify, err, sizeof(err));
	assert_non_null(f->ctx);
	f->p.tls = pol;
	f->p.tls_ctx = f->ctx;
}

static void
test_starttls_may(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300], *log, *m;
	size_t len;

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, NULL);
	tls_setup(f, TLS_MAY, false);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_int_equal(f->c_outcome, OUTCOME_OK);
	assert_true(strncmp(f->tls_version, "TLSv1.", 6) == 0);
	assert_false(f->tls_verified);	/* self-signed */
	log = sink_log(f);
	assert_non_null(strstr(log, "tls id=1 version=TLSv1."));
	/* EHLO again after TLS */
	assert_int_equal(count(log, "ehlo id=1"), 2);
	assert_int_equal(count(log, "violation"), 0);
	free(log);
	m = stored(f, 1, &len);
	assert_non_null(m);
	assert_non_null(strstr(m, "TLS: TLSv1."));
	free(m);
	assert_body(f, 1, &two_rcpts);
}

static void
test_starttls_may_not_offered(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300], *m;
	size_t len;

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, "--no-starttls", NULL);
	tls_setup(f, TLS_MAY, false);
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_string_equal(f->tls_version, "none");
	m = stored(f, 1, &len);
	assert_non_null(m);
	assert_non_null(strstr(m, "TLS: none"));
	free(m);
}

static void
test_encrypt_not_offered(void **state)
{
	struct fixture *f = *state;
	char *log;

	sink_start(f, NULL);
	tls_setup(f, TLS_ENCRYPT, false);
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->ndone, 0);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_STARTTLS);
	assert_string_equal(f->c_reply, "STARTTLS not offered");
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_TLS);
	assert_string_equal(f->c_why.status, "4.7.4");
	log = sink_log(f);
	assert_int_equal(count(log, "mail id="), 0);
	assert_non_null(strstr(log, "quit id=1"));
	free(log);
}

static void
test_verify_self_signed(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300], *log;

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, NULL);
	tls_setup(f, TLS_VERIFY, true);
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_STARTTLS);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_TLS);
	/* RFC 3463 X.7.5, "Cryptographic failure", as Postfix says. */
	assert_string_equal(f->c_why.status, "4.7.5");
	/* the handshake failed on it: the verify error says why */
	assert_string_equal(f->tls_failure, "certificate-not-trusted");
	log = sink_log(f);
	assert_int_equal(count(log, "mail id="), 0);
	free(log);
}

static void
test_verify_with_ca(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300], err[256];

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, NULL);
	/* the self-signed certificate is its own CA; CN=mx.test = peer_name */
	f->ctx = tls_client_ctx_new(cert, true, err, sizeof(err));
	assert_non_null(f->ctx);
	f->p.tls = TLS_VERIFY;
	f->p.tls_ctx = f->ctx;
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_true(f->tls_verified);
}

/*
 * A failed handshake is typed as such (under may, the delivery layer
 * retries in clear on that cause), under may and encrypt alike; one that
 * never finishes too.
 */
static void
handshake_fails(void **state, enum tls_policy pol, bool hang)
{
	static const char script[] = "220 ok\r\n250-mx\r\n250 STARTTLS\r\n"
	    "220 go ahead\r\n";
	struct fixture *f = *state;

	peer_start(f, script, sizeof(script) - 1);
	f->peer_close = !hang;
	f->p.timeouts.helo = 1000;
	tls_setup(f, pol, false);
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_STARTTLS);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_TLS);
	assert_int_equal(f->c_why.code, 0);
	assert_string_equal(f->c_why.status, "4.7.5");
	assert_non_null(strstr(f->c_reply, hang ? "timeout during TLS handshake" :
	    "TLS handshake failed"));
	assert_string_equal(f->tls_failure, "validation-failure");
	assert_string_equal(f->tls_auth, "none");
}

static void
test_starttls_handshake_fails(void **state)
{
	handshake_fails(state, TLS_MAY, false);
}

static void
test_encrypt_handshake_fails(void **state)
{
	handshake_fails(state, TLS_ENCRYPT, false);
}

static void
test_starttls_handshake_timeout(void **state)
{
	handshake_fails(state, TLS_MAY, true);
}

/* RFC 3207 §4.2: bytes after the 220 to STARTTLS are refused, not TLS. */
static void
test_starttls_injected(void **state)
{
	static const char script[] = "220 ok\r\n250-mx\r\n250 STARTTLS\r\n"
	    "220 go ahead\r\n250 injected\r\n";
	struct fixture *f = *state;

	peer_start(f, script, sizeof(script) - 1);
	tls_setup(f, TLS_MAY, false);
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_STARTTLS);
	assert_non_null(strstr(f->c_reply, "protocol error"));
	/* not a handshake failure: no retry in clear for this one */
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_PROTOCOL);
}

/*
 * A context that trusts the self-signed certificate (its own CA) without
 * requiring it: the verification result is there for AUTH to look at.
 */
static void
tls_setup_trusting(struct fixture *f, const char *cert, enum tls_policy pol)
{
	char err[256];

	f->ctx = tls_client_ctx_new(cert, false, err, sizeof(err));
	assert_non_null(f->ctx);
	f->p.tls = pol;
	f->p.tls_ctx = f->ctx;
}

/* Over TLS verified for mx.test (peer_name), AUTH goes. */
static void
test_auth(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300], *log;

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, "-a", "joe:secret", NULL);
	tls_setup_trusting(f, cert, TLS_MAY);
	f->p.auth_user = "joe";
	f->p.auth_pass = "secret";
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_true(f->tls_verified);
	log = sink_log(f);
	assert_non_null(strstr(log, "auth id=1 user=joe result=ok"));
	assert_null(strstr(log, "secret"));
	free(log);
	assert_false(mock_log_contains("sending credentials"));
}

/*
 * Unverified TLS (a self-signed certificate, as a man in the middle would
 * show under may or encrypt; or a trusted one for another name than
 * verify_name): no AUTH command at all, a TEMPFAIL at stage AUTH, cause
 * TLS, 4.7.0, and QUIT.
 */
static void
auth_withheld(void **state, bool trusted, enum tls_policy pol,
    const char *verify_name, const char *why)
{
	struct fixture *f = *state;
	char cert[300], key[300], *log;

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, "-a", "joe:secret", NULL);
	if (trusted)
		tls_setup_trusting(f, cert, pol);
	else
		tls_setup(f, pol, false);
	f->p.verify_name = verify_name;
	f->p.auth_user = "joe";
	f->p.auth_pass = "secret";
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->ndone, 0);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_AUTH);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_TLS);
	assert_int_equal(f->c_why.code, 0);
	assert_string_equal(f->c_why.status, "4.7.0");
	assert_non_null(strstr(f->c_reply, "4.7.0 credentials withheld: TLS "
	    "certificate not verified for "));
	assert_non_null(strstr(f->c_reply, verify_name != NULL ? verify_name :
	    "mx.test"));
	assert_non_null(strstr(f->c_reply, why));
	assert_true(strncmp(f->tls_version, "TLSv1.", 6) == 0);
	assert_false(f->tls_verified);
	log = sink_log(f);
	assert_non_null(strstr(log, "tls id=1 version=TLSv1."));
	assert_int_equal(count(log, "auth-cmd id="), 0);
	assert_int_equal(count(log, "auth id="), 0);
	assert_int_equal(count(log, "mail id="), 0);
	assert_non_null(strstr(log, "quit id=1"));
	free(log);
}

static void
test_auth_self_signed_may(void **state)
{
	auth_withheld(state, false, TLS_MAY, NULL, "self-signed certificate");
}

static void
test_auth_self_signed_encrypt(void **state)
{
	auth_withheld(state, false, TLS_ENCRYPT, NULL,
	    "self-signed certificate");
}

/* The chain verifies, but not for the name the caller asked for. */
static void
test_auth_wrong_name(void **state)
{
	auth_withheld(state, true, TLS_MAY, "smarthost.test",
	    "mismatch");
}

/* auth_unverified: over any TLS, with a warning naming the peer. */
static void
test_auth_unverified_allowed(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300], *log;

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, "-a", "joe:secret", NULL);
	tls_setup(f, TLS_ENCRYPT, false);
	f->p.auth_user = "joe";
	f->p.auth_pass = "secret";
	f->p.auth_unverified = true;
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_false(f->tls_verified);
	log = sink_log(f);
	assert_non_null(strstr(log, "auth id=1 user=joe result=ok"));
	free(log);
	assert_true(mock_log_contains("sending credentials over TLS that is "
	    "not verified for mx.test (self-signed certificate): "
	    "relayhost_auth_tls = encrypt allows it"));
	assert_false(mock_log_contains("secret"));
}

/*
 * Under verify the certificate is checked against verify_name, not
 * peer_name (the name of an MX record): a certificate for mx.test fails
 * for verify_name other.test, and passes for verify_name mx.test whatever
 * peer_name says.
 */
static void
test_verify_name(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300], err[256];

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, NULL);
	f->ctx = tls_client_ctx_new(cert, true, err, sizeof(err));
	assert_non_null(f->ctx);
	f->p.tls = TLS_VERIFY;
	f->p.tls_ctx = f->ctx;
	f->p.verify_name = "other.test";
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_stage, SMTPC_STAGE_STARTTLS);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_TLS);
	assert_string_equal(f->c_why.status, "4.7.5");
	/* a verify context ends the handshake itself */
	assert_non_null(strstr(f->c_reply, "TLS handshake failed"));
	assert_non_null(strstr(f->c_reply, "hostname mismatch"));
}

static void
test_verify_name_not_peer_name(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300], err[256];

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, NULL);
	f->ctx = tls_client_ctx_new(cert, true, err, sizeof(err));
	assert_non_null(f->ctx);
	f->p.tls = TLS_VERIFY;
	f->p.tls_ctx = f->ctx;
	f->p.peer_name = "mx1.elsewhere.test";
	f->p.verify_name = "mx.test";
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_true(f->tls_verified);
}

static void
test_auth_bad_password(void **state)
{
	struct fixture *f = *state;
	char cert[300], key[300];

	make_cert(f, cert, key, sizeof(cert));
	sink_start(f, "-c", cert, "-k", key, "-a", "joe:secret", NULL);
	tls_setup_trusting(f, cert, TLS_MAY);
	f->p.auth_user = "joe";
	f->p.auth_pass = "wrong";
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_AUTH);
	assert_true(strncmp(f->c_reply, "535", 3) == 0);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_REPLY);
	assert_int_equal(f->c_why.code, 535);
}

/* The TLSA 3 1 1 data of a certificate file: SHA2-256 of its SPKI. */
static size_t
spki_sha256(const char *cert, unsigned char *out)
{
	unsigned char *der = NULL;
	unsigned int mdlen = 0;
	FILE *fp;
	X509 *x;
	int len;

	assert_non_null(fp = fopen(cert, "r"));
	assert_non_null(x = PEM_read_X509(fp, NULL, NULL, NULL));
	fclose(fp);
	len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	assert_true(len > 0);
	assert_int_equal(EVP_Digest(der, (size_t)len, out, &mdlen,
	    EVP_sha256(), NULL), 1);
	OPENSSL_free(der);
	X509_free(x);
	return mdlen;
}

/*
 * A DANE session (RFC 7672) against the sink with a self-signed
 * certificate for mx.test; the TLSA base is mx.example, so that only
 * DANE-EE can authenticate it (no name check, no CA).  dlen: the length
 * of the 3 1 1 record; wrong: a digest of no key.
 */
static void
dane_run(struct fixture *f, const char *sinkopt, size_t dlen, bool wrong,
    long after)
{
	unsigned char data[EVP_MAX_MD_SIZE];
	char cert[300], key[300];
	struct tlsa_rr rr = { 3, 1, 1, data, 0 };
	struct io_tls_dane d = { "mx.example", NULL, 0, &rr, 1 };

	make_cert_until(f, cert, key, sizeof(cert), after);
	sink_start(f, "-c", cert, "-k", key, sinkopt, NULL);
	tls_setup(f, TLS_VERIFY, false);
	rr.len = spki_sha256(cert, data);
	if (wrong)
		data[0] ^= 0xff;
	if (dlen > 0)
		rr.len = dlen;
	f->p.dane = &d;
	run(f, &two_rcpts, 1);
}

static void
test_dane_match(void **state)
{
	struct fixture *f = *state;
	char *log;

	dane_run(f, NULL, 0, false, 86400);
	assert_true(f->ready);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_int_equal(f->c_outcome, OUTCOME_OK);
	assert_true(f->tls_verified);
	assert_string_equal(f->tls_auth, "dane");
	assert_null(f->tls_failure);
	assert_string_equal(f->tls_dane, "3 1 1 matched at depth 0");
	log = sink_log(f);
	assert_int_equal(count(log, "mail id=1"), 1);
	free(log);
	assert_body(f, 1, &two_rcpts);
}

/* DANE-EE does not look at the expiry date (RFC 7671 §5.1). */
static void
test_dane_expired(void **state)
{
	struct fixture *f = *state;

	dane_run(f, NULL, 0, false, -3600);
	assert_true(f->ready);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_string_equal(f->tls_auth, "dane");
	assert_null(f->tls_failure);
}

/* No record matches: ended before MAIL, 4.7.5, after a QUIT. */
static void
test_dane_mismatch(void **state)
{
	struct fixture *f = *state;
	char *log;

	dane_run(f, NULL, 0, true, 86400);
	assert_false(f->ready);
	assert_int_equal(f->ndone, 0);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_STARTTLS);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_TLS);
	assert_string_equal(f->c_why.status, "4.7.5");
	assert_non_null(strstr(f->c_reply, "TLSA mismatch for mx.example"));
	assert_non_null(strstr(f->c_reply, "no matching DANE TLSA records"));
	assert_false(f->tls_verified);
	assert_string_equal(f->tls_auth, "unverified");
	assert_string_equal(f->tls_failure, "validation-failure");
	assert_string_equal(f->tls_dane, "");
	log = sink_log(f);
	assert_non_null(strstr(log, "tls id=1"));
	assert_int_equal(count(log, "mail id="), 0);
	assert_non_null(strstr(log, "quit id=1"));
	free(log);
}

/* STARTTLS is mandatory under DANE: 4.7.4 without it, nothing in clear. */
static void
test_dane_not_offered(void **state)
{
	struct fixture *f = *state;
	char *log;

	dane_run(f, "--no-starttls", 0, false, 86400);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_STARTTLS);
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_TLS);
	assert_string_equal(f->c_why.status, "4.7.4");
	assert_string_equal(f->tls_auth, "none");
	assert_string_equal(f->tls_failure, "starttls-not-supported");
	log = sink_log(f);
	assert_int_equal(count(log, "mail id="), 0);
	free(log);
}

/* No usable record (a 31-byte SHA2-256): TLS, not authenticated. */
static void
test_dane_unusable(void **state)
{
	struct fixture *f = *state;

	dane_run(f, NULL, 31, false, 86400);
	assert_true(f->ready);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
	assert_true(strncmp(f->tls_version, "TLSv1.", 6) == 0);
	assert_string_equal(f->tls_auth, "unverified");
	assert_string_equal(f->tls_failure, "tlsa-invalid");
	assert_string_equal(f->tls_dane, "");
}

/*
 * smtpc_tls_failure() of sessions that went on under may (what MTA-STS
 * testing mode reports): the RFC 8460 type of what would have failed.
 */
static void
tls_failure_may(struct fixture *f, long after, const char *trust,
    const char *vname, const char *sinkopt)
{
	char cert[300], key[300];

	make_cert_until(f, cert, key, sizeof(cert), after);
	sink_start(f, "-c", cert, "-k", key, sinkopt, NULL);
	if (trust != NULL)
		tls_setup_trusting(f, cert, TLS_MAY);
	else
		tls_setup(f, TLS_MAY, false);
	f->p.verify_name = vname;
	run(f, &two_rcpts, 1);
	assert_int_equal(f->res[0].why.outcome, OUTCOME_OK);
}

static void
test_tls_failure_untrusted(void **state)
{
	struct fixture *f = *state;

	tls_failure_may(f, 86400, NULL, "mx.test", NULL);
	assert_string_equal(f->tls_auth, "unverified");
	assert_string_equal(f->tls_failure, "certificate-not-trusted");
}

static void
test_tls_failure_host(void **state)
{
	struct fixture *f = *state;

	tls_failure_may(f, 86400, "trust", "other.test", NULL);
	assert_string_equal(f->tls_failure, "certificate-host-mismatch");
}

static void
test_tls_failure_expired(void **state)
{
	struct fixture *f = *state;

	tls_failure_may(f, -3600, "trust", "mx.test", NULL);
	assert_string_equal(f->tls_failure, "certificate-expired");
}

static void
test_tls_failure_none(void **state)
{
	struct fixture *f = *state;

	tls_failure_may(f, 86400, "trust", "mx.test", NULL);
	assert_string_equal(f->tls_auth, "verified");
	assert_null(f->tls_failure);
}

static void
test_tls_failure_not_offered(void **state)
{
	struct fixture *f = *state;

	tls_failure_may(f, 86400, "trust", "mx.test", "--no-starttls");
	assert_string_equal(f->tls_auth, "none");
	assert_string_equal(f->tls_failure, "starttls-not-supported");
}

#endif /* SMTPC_TEST_TLS */

static void
test_auth_never_in_clear(void **state)
{
	struct fixture *f = *state;
	char *log;

	sink_start(f, "-a", "joe:secret", NULL);
	f->p.auth_user = "joe";
	f->p.auth_pass = "secret";
	run(f, &two_rcpts, 1);
	assert_false(f->ready);
	assert_int_equal(f->c_outcome, OUTCOME_TEMPFAIL);
	assert_int_equal(f->c_stage, SMTPC_STAGE_AUTH);
	assert_non_null(strstr(f->c_reply, "never sent in clear"));
	assert_int_equal(f->c_why.cause, SMTPC_CAUSE_LOCAL);
	log = sink_log(f);
	assert_int_equal(count(log, "auth id="), 0);
	free(log);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_plain_two_rcpts),
		T(test_no_pipelining),
		T(test_one_rcpt_refused),
		T(test_all_refused_pipelining),
		T(test_all_refused_no_pipelining),
		T(test_rcpt_450),
		T(test_mail_451),
		T(test_greeting_554),
		T(test_greeting_421),
		T(test_ehlo_500_helo),
		T(test_size_over_limit),
		T(test_eightbit),
		T(test_smtputf8),
		T(test_smtputf8_missing),
		T(test_dot_stuffing),
		T(test_prefix),
		T(test_large_body),
		T(test_drop_at_dot),
		T(test_dot_452),
		T(test_dot_554),
		T(test_drop_at_rcpt),
		T(test_data_554),
		T(test_timeout_greeting),
		T(test_timeout_rcpt),
		T(test_two_messages_rset),
		T(test_rset_after_refused),
		T(test_connect_refused),
		T(test_protocol_errors),
		T(test_reply_escaped),
#ifdef SMTPC_TEST_TLS
		T(test_starttls_may),
		T(test_starttls_may_not_offered),
		T(test_encrypt_not_offered),
		T(test_starttls_handshake_fails),
		T(test_encrypt_handshake_fails),
		T(test_starttls_handshake_timeout),
		T(test_starttls_injected),
		T(test_verify_self_signed),
		T(test_verify_with_ca),
		T(test_auth),
		T(test_auth_bad_password),
		T(test_auth_self_signed_may),
		T(test_auth_self_signed_encrypt),
		T(test_auth_wrong_name),
		T(test_auth_unverified_allowed),
		T(test_verify_name),
		T(test_verify_name_not_peer_name),
		T(test_dane_match),
		T(test_dane_mismatch),
		T(test_dane_expired),
		T(test_dane_not_offered),
		T(test_dane_unusable),
		T(test_tls_failure_untrusted),
		T(test_tls_failure_host),
		T(test_tls_failure_expired),
		T(test_tls_failure_none),
		T(test_tls_failure_not_offered),
#endif
		T(test_auth_never_in_clear),
#undef T
	};

	signal(SIGPIPE, SIG_IGN);
	/* a last resort: no test may hang make check */
	alarm(300);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
