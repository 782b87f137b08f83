/*
 * smtpd_auth: AUTH in the SMTP listener (RFC 4954): the exchange of a
 * session (334 challenges, the replies, counting failures), the pure
 * decoding of the AUTH argument and of the SASL PLAIN (RFC 4616) and
 * LOGIN responses, and the auth_users file (see smtpd_auth.h).
 *
 * AUTH is offered and taken only once TLS is active and a users file is
 * given, never in a local session.  SMTPD_AUTH_FAILS_MAX failures end
 * the session with 421.  The users file holds crypt(3) hashes; they are
 * checked with crypt_r() and compared without stopping at the first
 * difference, and a user who does not exist costs one hash too, so that
 * timing does not tell who exists.  Every buffer that held a password
 * or a hash is cleared with explicit_bzero() before it is freed or goes
 * out of scope.
 *
 * Under attack (mxrelayd(8), AUTH FAILURES):
 * - crypt_r() runs in a worker thread (the smtpd's workq) with copies
 *   of the password and of the hash, never on the loop; the session
 *   waits in S_AUTH_WAIT, taking no input, so that replies stay in
 *   order.  A session that goes meanwhile is detached from its check,
 *   whose failure still counts.  Without a workq the check runs inline.
 * - Failures are counted per client address in the smtpd's table
 *   (smtpd_authfail.c), across connections.  The reply to a failure is
 *   delayed by a timer (1 s, 2 s, 4 s ... up to auth_fail_delay_max_ms;
 *   other sessions go on), and an address at auth_fail_limit gets 454
 *   to AUTH until its failures are forgotten.  Each failure and each
 *   refusal is one log line in a fixed format:
 *	auth failure from [ADDR]:PORT count=N mech=MECH user=NAME
 *	auth refused from [ADDR]:PORT count=N limit=L
 *   (NAME escaped and last, since the client chose it).
 */
#include "config.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "event.h"
#include "io.h"
#include "log.h"
#include "metrics.h"
#include "smtp_proto.h"
#include "smtpd.h"
#include "smtpd_auth.h"
#include "smtpd_authfail.h"
#include "smtpd_session.h"
#include "util.h"
#include "workq.h"

#define SMTPD_AUTH_FAILS_MAX	3	/* per connection, then 421 */
#define SMTPD_USERS_LINE_MAX	4096
#define SMTPD_AUTH_DELAY_MS	1000	/* after a first failure; doubles */
#define SMTPD_AUTHFAIL_MAX	4096	/* client addresses remembered */

/* Checked against when a user is unknown, so that timing does not tell. */
#define SMTPD_DUMMY_HASH \
	"$6$mxrelaydummy$MnykwyN7Gi3sXZfd4s6m5za8L77zB1Bfmm7DVg.qruXWRisX6" \
	"Crta5AnfqzrYNdGd9ejoNHXfv9wXPOlvog2a1"

struct smtpd_user {
	char		*name;
	char		*hash;
};

struct smtpd_users {
	struct smtpd_user *v;
	size_t		 n;
};

/* One password check (in a worker thread, or inline) and its reply. */
struct auth_check {
	struct smtpd	*sd;
	struct session	*s;		/* NULL once the session is gone */
	struct authfail_addr addr;
	char		 peer[160];	/* the session's, for the logs */
	const char	*mech;
	char		*user;		/* NULL: malformed credentials */
	char		*hash;		/* checked against; NULL: malformed */
	char		*pass;
	bool		 known;		/* the user exists */
	bool		 ok;
	bool		 in_worker;
	struct ev_timer	 timer;		/* the delayed reply to a failure */
};

static bool	 auth_decode(struct session *, const char *, size_t, char *,
		    size_t);
static void	 auth_line(struct session *, char *, size_t, bool);
static void	 auth_plain(struct session *, const char *, size_t);
static void	 auth_finish(struct session *, const char *, const char *,
		    const char *);
static struct authfail *auth_table(struct smtpd *);
static uint64_t	 auth_window(const struct smtpd *);
static void	 auth_addr(const struct session *, struct authfail_addr *);
static bool	 auth_refused(struct session *, bool);
static struct auth_check *check_new(struct session *, const char *,
		    const char *, const char *);
static void	 check_free(struct auth_check *);
static void	 check_work(void *);
static void	 check_done(void *);
static void	 check_result(struct auth_check *, bool);
static void	 check_on_timer(void *);
static void	 check_reply_fail(struct auth_check *, bool);
static void	 check_end(struct auth_check *, bool);
static const char *users_setting(const struct smtpd_users *, const char *,
		    bool *);
static bool	 hash_check(const char *, const char *, bool);
static int	 users_line(struct smtpd_users *, char *, size_t,
		    struct crypt_data *, const char *, unsigned long, char *,
		    size_t);
static bool	 ct_equal(const char *, const char *);

/* ------------------------------------------------------------------ */
/* The AUTH exchange of a session. */

void
smtpd_auth_begin(struct session *s, char *arg)
{
	const struct smtpd_params *p = &s->sd->p;
	struct smtpd_auth_cmd ac;

	if (p->users == NULL || s->lc != NULL) {
		smtpd_reply_error(s, "503 5.5.1 Error: authentication not "
		    "enabled");
		return;
	}
	/* RFC 4954 §4: never look at credentials sent in clear. */
	if (!io_tls_active(s->io)) {
		smtpd_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if (!s->esmtp) {
		smtpd_reply_error(s, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->auth_user != NULL) {
		smtpd_reply_error(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (s->sender != NULL) {
		smtpd_reply_error(s, "503 5.5.1 Error: MAIL transaction in "
		    "progress");
		return;
	}
	if (auth_refused(s, false))
		return;
	if (smtpd_auth_cmd_parse(arg, &ac) == -1) {
		smtpd_reply_error(s, "501 5.5.4 Syntax: AUTH mechanism "
		    "[initial-response]");
		return;
	}
	switch (ac.mech) {
	case SMTPD_AUTH_PLAIN:
		if (ac.ir != NULL) {
			auth_plain(s, ac.ir, strlen(ac.ir));
			return;
		}
		s->state = S_AUTH;
		s->auth_step = AUTH_PLAIN;
		smtpd_reply(s, "334 ");
		break;
	case SMTPD_AUTH_LOGIN:
		s->state = S_AUTH;
		s->auth_step = AUTH_LOGIN_USER;
		if (ac.ir != NULL)	/* the user name (as Postfix) */
			auth_line(s, ac.ir, strlen(ac.ir), true);
		else
			smtpd_reply(s, "334 VXNlcm5hbWU6"); /* "Username:" */
		break;
	case SMTPD_AUTH_UNSUPPORTED:
		smtpd_reply_error(s, "504 5.5.4 Unsupported authentication "
		    "mechanism");
		break;
	}
}

/* Leave the AUTH exchange: back to commands, the LOGIN user name gone. */
void
smtpd_auth_reset(struct session *s)
{
	if (s->state == S_AUTH)
		s->state = S_CMD;
	if (s->auth_login != NULL) {
		explicit_bzero(s->auth_login, strlen(s->auth_login));
		free(s->auth_login);
		s->auth_login = NULL;
	}
}

/* A line read in S_AUTH: the limits of any line, then the exchange. */
void
smtpd_auth_input(struct session *s, char *line, size_t len, bool too_long)
{
	if (too_long || memchr(line, '\0', len) != NULL) {
		smtpd_auth_reset(s);
		smtpd_reply_error(s, too_long ?
		    "500 5.5.2 Error: line too long" :
		    "500 5.5.2 Error: NUL byte in command");
		return;
	}
	auth_line(s, line, len, false);
}

/*
 * One base64 LOGIN response into buf (a C string without NULs); false
 * after the error reply when it cannot be decoded.
 */
static bool
auth_decode(struct session *s, const char *line, size_t len, char *buf,
    size_t size)
{
	if (smtpd_auth_login_decode(line, len, buf, size) == -1) {
		smtpd_auth_reset(s);
		smtpd_reply_error(s, "501 5.5.2 Error: cannot decode response");
		return false;
	}
	return true;
}

/* An AUTH continuation line (or LOGIN's initial response when ir). */
static void
auth_line(struct session *s, char *line, size_t len, bool ir)
{
	char buf[SMTPD_AUTH_BUF];

	if (!ir && strcmp(line, "*") == 0) {
		smtpd_auth_reset(s);
		smtpd_reply(s, "501 5.7.0 Authentication aborted");
		return;
	}
	switch (s->auth_step) {
	case AUTH_PLAIN:
		s->state = S_CMD;
		auth_plain(s, line, len);
		break;
	case AUTH_LOGIN_USER:
		if (!auth_decode(s, line, len, buf, sizeof(buf)))
			break;
		free(s->auth_login);
		s->auth_login = xstrdup(buf);
		s->auth_step = AUTH_LOGIN_PASS;
		smtpd_reply(s, "334 UGFzc3dvcmQ6");	/* "Password:" */
		break;
	case AUTH_LOGIN_PASS:
		if (!auth_decode(s, line, len, buf, sizeof(buf)))
			break;
		s->state = S_CMD;
		auth_finish(s, "LOGIN", s->auth_login, buf);
		smtpd_auth_reset(s);
		break;
	}
	explicit_bzero(buf, sizeof(buf));
	explicit_bzero(line, len);
}

/* A PLAIN response (RFC 4616), as a continuation or an initial response. */
static void
auth_plain(struct session *s, const char *b64, size_t len)
{
	struct smtpd_auth_plain pl;

	s->state = S_CMD;
	if (smtpd_auth_plain_decode(b64, len, &pl) == -1)
		smtpd_reply_error(s, "501 5.5.2 Error: cannot decode response");
	else
		auth_finish(s, "PLAIN", pl.user, pl.pass);
	explicit_bzero(&pl, sizeof(pl));
}

/*
 * The credentials are in (user/pass NULL: malformed, a failure): unless
 * the address is refused, the session waits for their check.
 */
static void
auth_finish(struct session *s, const char *mech, const char *user,
    const char *pass)
{
	struct smtpd *sd = s->sd;
	struct auth_check *c;

	if (auth_refused(s, true))
		return;
	c = check_new(s, mech, user, pass);
	s->state = S_AUTH_WAIT;
	s->auth_check = c;
	smtpd_session_timeout(s);
	if (sd->wq != NULL && c->hash != NULL) {
		c->in_worker = true;
		workq_push(sd->wq, check_work, check_done, c);
		return;
	}
	check_work(c);
	check_result(c, true);
}

void
smtpd_auth_detach(struct session *s)
{
	struct auth_check *c = s->auth_check;

	if (c == NULL)
		return;
	s->auth_check = NULL;
	if (c->in_worker) {
		c->s = NULL;	/* check_done() counts it and frees it */
		return;
	}
	ev_timer_del(s->sd->loop, &c->timer);
	check_free(c);
}

/* ------------------------------------------------------------------ */
/* Failures per client address. */

/* The smtpd's table, made at its first use. */
static struct authfail *
auth_table(struct smtpd *sd)
{
	if (sd->authfail == NULL)
		sd->authfail = authfail_new(SMTPD_AUTHFAIL_MAX);
	return sd->authfail;
}

static uint64_t
auth_window(const struct smtpd *sd)
{
	return sd->p.auth_fail_window_ms > 0 ? sd->p.auth_fail_window_ms :
	    SMTPD_AUTH_FAIL_WINDOW_MS;
}

/*
 * The key of the client's failures: its network as for its connection
 * count (smtpd_client_net()), an IPv6 client by its /64 and an
 * IPv4-mapped one as IPv4, so that hopping addresses inside a /64 gains
 * no tries.
 */
static void
auth_addr(const struct session *s, struct authfail_addr *a)
{
	memset(a, 0, sizeof(*a));
	if ((a->family = smtpd_client_net(s->family, s->rawaddr,
	    a->addr)) == 0) {
		a->family = s->family;
		memcpy(a->addr, s->rawaddr, sizeof(a->addr));
	}
}

/*
 * Whether the client's address has had its auth_fail_limit failures
 * (then 454, logged).  With begin, a check starts unless it is refused:
 * it counts against the limit until check_result().
 */
static bool
auth_refused(struct session *s, bool begin)
{
	struct smtpd *sd = s->sd;
	struct authfail_addr a;
	unsigned limit = sd->p.auth_fail_limit, n;

	auth_addr(s, &a);
	if (begin) {
		if (authfail_begin(auth_table(sd), &a, limit, auth_window(sd),
		    ev_now(sd->loop), &n))
			return false;
	} else {
		n = authfail_count(auth_table(sd), &a, auth_window(sd),
		    ev_now(sd->loop));
		if (limit == 0 || n < limit)
			return false;
	}
	smtpd_auth_reset(s);
	log_warnx("auth refused from %s count=%u limit=%u", s->peer, n, limit);
	metrics_inc1(METRIC_SMTPD_REFUSED, "auth_limit");
	smtpd_reply_error(s, "454 4.7.0 Error: too many authentication "
	    "failures, try again later");
	return true;
}

/* ------------------------------------------------------------------ */
/* The check of a password, off the loop. */

static struct auth_check *
check_new(struct session *s, const char *mech, const char *user,
    const char *pass)
{
	struct auth_check *c = xcalloc(1, sizeof(*c));
	const struct smtpd_users *u = s->sd->p.users;

	c->sd = s->sd;
	c->s = s;
	auth_addr(s, &c->addr);
	util_strlcpy(c->peer, s->peer, sizeof(c->peer));
	c->mech = mech;
	ev_timer_init(&c->timer, check_on_timer, c);
	if (user == NULL || pass == NULL || user[0] == '\0' || u == NULL)
		return c;
	c->user = xstrdup(user);
	c->pass = xstrdup(pass);
	c->hash = xstrdup(users_setting(u, user, &c->known));
	return c;
}

static void
check_free(struct auth_check *c)
{
	free(c->user);
	if (c->pass != NULL) {
		explicit_bzero(c->pass, strlen(c->pass));
		free(c->pass);
	}
	if (c->hash != NULL) {
		explicit_bzero(c->hash, strlen(c->hash));
		free(c->hash);
	}
	free(c);
}

/* crypt_r(): in a worker thread; touches nothing but c. */
static void
check_work(void *arg)
{
	struct auth_check *c = arg;

	if (c->hash == NULL)
		return;
	c->ok = hash_check(c->hash, c->pass, c->known);
	explicit_bzero(c->pass, strlen(c->pass));
}

static void
check_done(void *arg)
{
	struct auth_check *c = arg;

	c->in_worker = false;
	if (c->sd->freeing) {
		check_free(c);
		return;
	}
	check_result(c, false);
}

/*
 * The check is over (from_input: inline, inside the session's input):
 * count and log it, then the reply, a failure's after its delay.
 */
static void
check_result(struct auth_check *c, bool from_input)
{
	struct smtpd *sd = c->sd;
	struct session *s = c->s;
	char esc[128];
	uint64_t delay = SMTPD_AUTH_DELAY_MS;
	unsigned n;

	n = authfail_end(auth_table(sd), &c->addr, c->ok, auth_window(sd),
	    ev_now(sd->loop));
	util_escape(esc, sizeof(esc), c->user != NULL ? c->user : "");
	if (c->ok)
		log_info("AUTH %s ok: user=%s client=%s", c->mech, esc,
		    c->peer);
	else
		log_warnx("auth failure from %s count=%u mech=%s user=%s",
		    c->peer, n, c->mech, esc);
	if (!c->ok)
		metrics_inc(METRIC_SMTPD_AUTHFAIL, NULL);
	if (s == NULL) {		/* the client left */
		check_free(c);
		return;
	}
	if (s->state == S_CLOSING) {	/* timed out meanwhile */
		check_end(c, true);
		return;
	}
	if (c->ok) {
		s->auth_user = xstrdup(c->user);
		smtpd_session_trusted(s);
		smtpd_reply(s, "235 2.7.0 Authentication successful");
		check_end(c, from_input);
		return;
	}
	s->auth_fails++;
	for (unsigned i = 1; i < n && delay < sd->p.auth_fail_delay_max_ms;
	    i++)
		delay *= 2;
	if (delay > sd->p.auth_fail_delay_max_ms)
		delay = sd->p.auth_fail_delay_max_ms;
	if (delay > 0) {
		ev_timer_add(sd->loop, &c->timer, delay);
		return;
	}
	check_reply_fail(c, from_input);
}

static void
check_on_timer(void *arg)
{
	check_reply_fail(arg, false);
}

static void
check_reply_fail(struct auth_check *c, bool from_input)
{
	struct session *s = c->s;

	if (s->state == S_CLOSING) {	/* timed out meanwhile */
		check_end(c, from_input);
		return;
	}
	if (s->auth_fails >= SMTPD_AUTH_FAILS_MAX) {
		smtpd_reply(s, "421 4.7.0 %s Error: too many authentication "
		    "failures", s->sd->p.hostname);
		smtpd_session_closing(s);
	} else
		smtpd_reply(s, "535 5.7.8 Authentication credentials invalid");
	check_end(c, from_input);
}

/* The reply is queued: back to commands, and to the input waiting. */
static void
check_end(struct auth_check *c, bool from_input)
{
	struct session *s = c->s;

	s->auth_check = NULL;
	check_free(c);
	if (s->state != S_AUTH_WAIT)
		return;
	s->state = S_CMD;
	smtpd_session_timeout(s);
	if (!from_input)
		smtpd_session_input(s);
}

/* ------------------------------------------------------------------ */
/* Decoding AUTH. */

int
smtpd_auth_cmd_parse(char *arg, struct smtpd_auth_cmd *out)
{
	char *ir;

	out->mech = SMTPD_AUTH_UNSUPPORTED;
	out->ir = NULL;
	if ((ir = strchr(arg, ' ')) != NULL) {
		*ir++ = '\0';
		while (*ir == ' ')
			ir++;
		if (*ir == '\0' || strchr(ir, ' ') != NULL)
			return -1;
	}
	if (strcasecmp(arg, "PLAIN") == 0) {
		out->mech = SMTPD_AUTH_PLAIN;
		/* RFC 4954 §4: "=" is an empty initial response. */
		if (ir != NULL && strcmp(ir, "=") == 0)
			ir[0] = '\0';
	} else if (strcasecmp(arg, "LOGIN") == 0)
		out->mech = SMTPD_AUTH_LOGIN;
	out->ir = ir;
	return 0;
}

/* RFC 4616: authzid NUL authcid NUL passwd. */
int
smtpd_auth_plain_decode(const char *b64, size_t len,
    struct smtpd_auth_plain *out)
{
	char *buf = out->buf;
	const char *authz, *user, *pass;
	size_t n, l1, l2;

	out->user = out->pass = NULL;
	if (smtp_base64_decode(b64, len, buf, sizeof(out->buf) - 1, &n) == -1)
		return -1;
	buf[n] = '\0';
	authz = buf;
	l1 = strlen(authz);
	if (l1 >= n)
		return 0;
	user = buf + l1 + 1;
	l2 = strlen(user);
	if (l1 + 1 + l2 >= n)
		return 0;
	out->user = user;
	pass = user + l2 + 1;
	/* A NUL in the password, or a proxy authzid: refused. */
	if ((size_t)(pass - buf) + strlen(pass) != n ||
	    (authz[0] != '\0' && strcmp(authz, user) != 0))
		return 0;
	out->pass = pass;
	return 0;
}

int
smtpd_auth_login_decode(const char *b64, size_t len, char *buf, size_t size)
{
	size_t n;

	if (size == 0 ||
	    smtp_base64_decode(b64, len, buf, size - 1, &n) == -1 ||
	    memchr(buf, '\0', n) != NULL)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ */
/* The users file. */

/*
 * One line of the users file (n octets, NUL-terminated, edited in place)
 * into u: 0 when added or skipped (a comment, an empty line), or -1 with
 * "FILE:LINE: why" in err.
 */
static int
users_line(struct smtpd_users *u, char *line, size_t n, struct crypt_data *cd,
    const char *path, unsigned long lineno, char *err, size_t errlen)
{
	char *p = line, *end = line + n, *colon;
	const char *why = NULL, *h;

	while (end > p && isspace((unsigned char)end[-1]))
		*--end = '\0';
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '\0' || *p == '#')
		return 0;
	if ((colon = strchr(p, ':')) == NULL) {
		why = "expected user:hash";
		goto fail;
	}
	*colon = '\0';
	if (colon == p) {
		why = "empty user name";
		goto fail;
	}
	for (const char *c = p; *c != '\0'; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c == 0x7f) {
			why = "bad character in user name";
			goto fail;
		}
	if (colon[1] == '\0') {
		why = "empty password hash";
		goto fail;
	}
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i].name, p) == 0) {
			util_seterr(err, errlen, "%s:%lu: duplicate user %s",
			    path, lineno, u->v[i].name);
			return -1;
		}
	/* Refuse what crypt(3) cannot use rather than fail later. */
	h = crypt_r("", colon + 1, cd);
	if (h == NULL || h[0] == '*' || colon[1] != '$') {
		why = "unsupported or malformed password hash";
		goto fail;
	}
	u->v = xreallocarray(u->v, u->n + 1, sizeof(*u->v));
	u->v[u->n].name = xstrdup(p);
	u->v[u->n].hash = xstrdup(colon + 1);
	u->n++;
	return 0;

fail:
	util_seterr(err, errlen, "%s:%lu: %s", path, lineno, why);
	return -1;
}

struct smtpd_users *
smtpd_users_load(const char *path, char *err, size_t errlen)
{
	return smtpd_users_load_fd(path, -1, err, errlen);
}

struct smtpd_users *
smtpd_users_load_fd(const char *path, int fd, char *err, size_t errlen)
{
	struct smtpd_users *u;
	struct crypt_data *cd;
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	unsigned long lineno = 0;
	ssize_t n;
	bool ok = false;
	int dfd;

	if (fd == -1)
		f = fopen(path, "re");
	else if ((dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
		f = NULL;
	else if ((f = fdopen(dfd, "r")) == NULL)
		close(dfd);
	if (f == NULL) {
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	u = xcalloc(1, sizeof(*u));
	cd = xcalloc(1, sizeof(*cd));
	while ((n = util_getline(f, &line, &cap, SMTPD_USERS_LINE_MAX, path,
	    &lineno, err, errlen)) >= 0)
		if (users_line(u, line, (size_t)n, cd, path, lineno, err,
		    errlen) == -1)
			goto done;
	if (n == -1 && ferror(f)) {
		util_seterr(err, errlen, "%s:%lu: %s", path, lineno + 1,
		    strerror(errno));
		goto done;
	}
	if (n == -2)
		goto done;
	ok = true;
done:
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	fclose(f);
	if (!ok) {
		smtpd_users_free(u);
		return NULL;
	}
	return u;
}

void
smtpd_users_free(struct smtpd_users *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++) {
		free(u->v[i].name);
		explicit_bzero(u->v[i].hash, strlen(u->v[i].hash));
		free(u->v[i].hash);
	}
	free(u->v);
	free(u);
}

/* Compare without stopping at the first difference. */
static bool
ct_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = la != lb;

	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

/*
 * The hash to check a password of user against: the user's (*known),
 * else the first user's, so that an unknown user costs the same (same
 * algorithm and cost as real checks), else a fixed SHA-512 one.
 */
static const char *
users_setting(const struct smtpd_users *u, const char *user, bool *known)
{
	*known = false;
	for (size_t i = 0; i < u->n; i++)
		if (strcmp(u->v[i].name, user) == 0) {
			*known = true;
			return u->v[i].hash;
		}
	return u->n > 0 ? u->v[0].hash : SMTPD_DUMMY_HASH;
}

/* crypt_r(): safe in any thread, with its own crypt_data. */
static bool
hash_check(const char *hash, const char *pass, bool known)
{
	struct crypt_data *cd;
	const char *r;
	bool ok;

	cd = xcalloc(1, sizeof(*cd));
	r = crypt_r(pass, hash, cd);
	ok = known && r != NULL && r[0] != '*' && ct_equal(r, hash);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

bool
smtpd_users_check(const struct smtpd_users *u, const char *user,
    const char *pass)
{
	const char *hash;
	bool known;

	if (u == NULL || user == NULL || pass == NULL)
		return false;
	hash = users_setting(u, user, &known);
	return hash_check(hash, pass, known);
}
