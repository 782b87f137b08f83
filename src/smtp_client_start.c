/*
 * smtp_client: setting a session up, from the greeting to ready (the
 * model is at the top of smtp_client.c; smtp_client_int.h has what the
 * three files share).  Greeting, EHLO (HELO when an old server refuses
 * it), STARTTLS per policy (under DANE with the TLSA records, the peer
 * checked after the handshake) and EHLO again over TLS, then AUTH PLAIN or
 * LOGIN, over TLS only.  A failure here ends the session before any
 * transaction: with QUIT when the server still listens.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "log.h"
#include "smtp_client_int.h"
#include "smtp_proto.h"
#include "util.h"

static void	 smtpc_seen_ehlo(struct smtpc *);
static void	 smtpc_after_ehlo(struct smtpc *);
static void	 smtpc_not_offered(struct smtpc *);
static void	 smtpc_after_tls(struct smtpc *);
static bool	 smtpc_auth_tls_ok(struct smtpc *);
static void	 smtpc_unverified_text(struct smtpc *, char *, size_t);
static void	 smtpc_ready(struct smtpc *);
static void	 smtpc_write_secret(struct smtpc *, const char *);
static bool	 smtpc_is_ip(const char *);
static int	 smtpc_start_tls(struct smtpc *);
static bool	 smtpc_dane_ok(struct smtpc *);

void
smtpc_on_greeting(struct smtpc *s)
{
	int code = s->reply.code;

	util_strlcpy(s->seen.banner, s->last_reply, sizeof(s->seen.banner));
	if (code / 100 == 2)
		smtpc_enter_state(s, SMTPC_EHLO);
	else if (code == 421)
		smtpc_fail_reply(s, SMTPC_STAGE_GREETING);
	else
		/* RFC 5321 §3.1: after a 554 greeting, QUIT. */
		smtpc_quit_fail_reply(s, smtpc_outcome_of(code),
		    SMTPC_STAGE_GREETING);
}

void
smtpc_on_ehlo(struct smtpc *s)
{
	int code = s->reply.code;

	if (code / 100 == 2) {
		smtp_ehlo_parse(&s->reply, &s->ehlo);
		smtpc_seen_ehlo(s);
		smtpc_after_ehlo(s);
	} else if (code / 100 == 5 && !s->server_closing)
		/* RFC 5321 §3.2: an old server, try HELO. */
		smtpc_enter_state(s, SMTPC_HELO);
	else
		smtpc_quit_fail_reply(s, smtpc_outcome_of(code),
		    SMTPC_STAGE_EHLO);
}

void
smtpc_on_helo(struct smtpc *s)
{
	int code = s->reply.code;

	if (code / 100 == 2) {
		memset(&s->ehlo, 0, sizeof(s->ehlo));
		smtpc_seen_ehlo(s);
		smtpc_after_ehlo(s);
	} else
		smtpc_quit_fail_reply(s, smtpc_outcome_of(code),
		    SMTPC_STAGE_EHLO);
}

void
smtpc_on_starttls(struct smtpc *s)
{
	int code = s->reply.code;

	if (code == 220) {
		/* RFC 3207 §4.2: nothing may precede TLS. */
		if (io_pending(s->io) > 0) {
			smtpc_fail(s, SMTPC_CAUSE_PROTOCOL,
			    SMTPC_STAGE_STARTTLS, "protocol error: "
			    "data after the STARTTLS reply");
			return;
		}
		s->state = SMTPC_TLS;
		s->seen.tls_tried = true;
		io_set_timeout(s->io, s->p.timeouts.helo);
		if (smtpc_start_tls(s) == -1)
			smtpc_fail(s, SMTPC_CAUSE_TLS,
			    SMTPC_STAGE_STARTTLS,
			    "TLS handshake failed: %s", smtpc_io_error(s));
	} else if (s->p.tls == TLS_MAY && !s->server_closing) {
		/* RFC 3207 §4: opportunistic, go on in clear. */
		s->starttls_refused = true;
		s->starttls_failed = true;
		smtpc_after_tls(s);
	} else {
		s->starttls_failed = true;
		smtpc_quit_fail_reply(s, OUTCOME_TEMPFAIL,
		    SMTPC_STAGE_STARTTLS);
	}
}

/*
 * The handshake: under DANE with the TLSA records (RFC 7672 §3), else
 * with SNI for the certificate of the name we check.
 */
static int
smtpc_start_tls(struct smtpc *s)
{
	if (s->p.dane != NULL)
		return io_start_tls_dane(s->io, s->p.tls_ctx, s->p.dane);
	return io_start_tls(s->io, s->p.tls_ctx, true,
	    s->verify_name != NULL && !smtpc_is_ip(s->verify_name) ?
	    s->verify_name : NULL, s->verify_name);
}

/* AUTH PLAIN, or the password of AUTH LOGIN, answered. */
void
smtpc_on_auth(struct smtpc *s)
{
	int code = s->reply.code;

	if (code == 235)
		smtpc_ready(s);
	else
		/* a wrong password is our problem: defer, not bounce */
		smtpc_quit_fail_reply(s, OUTCOME_TEMPFAIL,
		    SMTPC_STAGE_AUTH);
}

/* AUTH LOGIN, or its user name, answered: 334 asks for the next. */
void
smtpc_on_auth_login(struct smtpc *s)
{
	int code = s->reply.code;

	if (code == 334)
		smtpc_enter_state(s, s->state == SMTPC_AUTH_LOGIN ?
		    SMTPC_AUTH_USER : SMTPC_AUTH_PASS);
	else
		smtpc_quit_fail_reply(s, OUTCOME_TEMPFAIL,
		    SMTPC_STAGE_AUTH);
}

/*
 * TLS required and STARTTLS not offered: deferred 4.7.4, "Security
 * features not supported" (Postfix's code for it too).
 */
static void
smtpc_not_offered(struct smtpc *s)
{
	struct smtpc_reason why;

	smtpc_reason_set(&why, OUTCOME_TEMPFAIL, SMTPC_STAGE_STARTTLS,
	    SMTPC_CAUSE_TLS, "STARTTLS not offered");
	util_strlcpy(why.status, "4.7.4", sizeof(why.status));
	smtpc_quit_fail(s, &why);
}

/* The first EHLO or HELO in clear that succeeded, for smtpc_seen(). */
static void
smtpc_seen_ehlo(struct smtpc *s)
{
	if (io_tls_active(s->io))
		return;
	s->seen.ehlo_done = true;
	util_strlcpy(s->seen.ehlo, s->last_reply, sizeof(s->seen.ehlo));
	s->seen.ext = s->ehlo.ext;
}

/* EHLO/HELO answered: STARTTLS per policy, then AUTH, then ready. */
static void
smtpc_after_ehlo(struct smtpc *s)
{
	if (s->p.tls != TLS_NONE && !io_tls_active(s->io) &&
	    !s->starttls_refused) {
		if (s->p.tls_ctx == NULL) {
			smtpc_quit_fail_local(s, SMTPC_CAUSE_LOCAL,
			    SMTPC_STAGE_STARTTLS, "no TLS client context");
			return;
		}
		if (s->ehlo.ext & SMTP_EXT_STARTTLS) {
			smtpc_enter_state(s, SMTPC_STARTTLS);
			return;
		}
		s->starttls_failed = true;
		if (s->p.tls != TLS_MAY) {
			smtpc_not_offered(s);
			return;
		}
	}
	smtpc_after_tls(s);
}

static void
smtpc_after_tls(struct smtpc *s)
{
	if (s->auth_user == NULL) {
		smtpc_ready(s);
		return;
	}
	/* Credentials never go out in clear. */
	if (!io_tls_active(s->io)) {
		smtpc_quit_fail_local(s, SMTPC_CAUSE_LOCAL, SMTPC_STAGE_AUTH,
		    "AUTH needs TLS: credentials are never sent in clear");
		return;
	}
	if (!smtpc_auth_tls_ok(s))
		return;
	if (!(s->ehlo.ext & SMTP_EXT_AUTH) ||
	    !(s->ehlo.auth & (SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN))) {
		smtpc_quit_fail_local(s, SMTPC_CAUSE_LOCAL, SMTPC_STAGE_AUTH,
		    "server offers no AUTH PLAIN or LOGIN");
		return;
	}
	smtpc_enter_state(s, (s->ehlo.auth & SMTP_AUTH_PLAIN) ?
	    SMTPC_AUTH_PLAIN : SMTPC_AUTH_LOGIN);
}

/*
 * May the credentials go over this TLS session?  Only when its chain was
 * verified and its certificate matched verify_name (a man in the middle
 * with any other certificate would get them), unless the caller allows
 * unverified TLS: then with a warning.  Otherwise the session ends here
 * (4.7.0, as RFC 3463 has for a security condition) and false.
 */
static bool
smtpc_auth_tls_ok(struct smtpc *s)
{
	struct smtpc_reason why;
	char what[SMTPC_REPLY_MAX / 2];

	if (s->tls_verified && s->verify_name != NULL)
		return true;
	smtpc_unverified_text(s, what, sizeof(what));
	if (s->p.auth_unverified) {
		log_warnx("smtp %s: sending credentials over TLS that is not "
		    "verified for %s: relayhost_auth_tls = encrypt allows it",
		    s->peer_text, what);
		return true;
	}
	smtpc_reason_set(&why, OUTCOME_TEMPFAIL, SMTPC_STAGE_AUTH,
	    SMTPC_CAUSE_TLS, "4.7.0 credentials withheld: TLS certificate not "
	    "verified for %s", what);
	util_strlcpy(why.status, "4.7.0", sizeof(why.status));
	smtpc_quit_fail(s, &why);
	return false;
}

/* "name (OpenSSL's reason)", escaped: what the peer is not verified for. */
static void
smtpc_unverified_text(struct smtpc *s, char *buf, size_t len)
{
	const char *vt = io_tls_verify_text(s->io);
	const char *name = s->verify_name;
	char ename[SMTPC_REPLY_MAX / 4], evt[SMTPC_REPLY_MAX / 4];

	smtp_escape(ename, sizeof(ename), name != NULL ? name : "?",
	    name != NULL ? strlen(name) : 1);
	smtp_escape(evt, sizeof(evt), vt != NULL ? vt : "?",
	    vt != NULL ? strlen(vt) : 1);
	/* cut short rather than fail: it is only for reading */
	if (snprintf(buf, len, "%s (%s)", ename, evt) < 0)
		util_strlcpy(buf, "?", len);
}

/*
 * RFC 7672 §2.2: with usable TLSA records the peer must match one, or
 * the session ends before MAIL (4.7.5, after a QUIT over this TLS, never
 * a retry in clear); with none usable, TLS without authentication.
 */
static bool
smtpc_dane_ok(struct smtpc *s)
{
	char why[SMTPC_REPLY_MAX], ebase[SMTPC_REPLY_MAX / 4];
	char evt[SMTPC_REPLY_MAX / 4];
	const char *vt;

	if (s->dane_usable <= 0)
		return true;
	if (s->tls_verified && io_tls_dane_depth(s->io) >= 0) {
		s->tls_dane = true;
		return true;
	}
	vt = io_tls_verify_text(s->io);
	smtp_escape(ebase, sizeof(ebase), s->p.dane->base,
	    strlen(s->p.dane->base));
	smtp_escape(evt, sizeof(evt), vt, strlen(vt));
	snprintf(why, sizeof(why), "TLSA mismatch for %s (%s)", ebase, evt);
	smtpc_quit_fail_local(s, SMTPC_CAUSE_TLS, SMTPC_STAGE_STARTTLS, why);
	return false;
}

void
smtpc_on_tls_done(struct smtpc *s)
{
	const char *v = io_tls_version(s->io);

	util_strlcpy(s->tls_version, v != NULL ? v : "unknown",
	    sizeof(s->tls_version));
	s->tls_active = true;
	s->tls_verified = io_tls_verified(s->io);
	s->seen.tls_done = true;
	smtpc_seen_tls(s);
	if (s->p.dane != NULL) {
		if (!smtpc_dane_ok(s))
			return;
	} else if (s->p.tls == TLS_VERIFY && !s->tls_verified) {
		char why[SMTPC_REPLY_MAX], what[SMTPC_REPLY_MAX / 2];

		smtpc_unverified_text(s, what, sizeof(what));
		snprintf(why, sizeof(why), "certificate not verified for %s",
		    what);
		smtpc_quit_fail_local(s, SMTPC_CAUSE_TLS, SMTPC_STAGE_STARTTLS,
		    why);
		return;
	}
	/* RFC 3207 §4.2: forget what was learnt in clear, ask again. */
	memset(&s->ehlo, 0, sizeof(s->ehlo));
	smtpc_enter_state(s, SMTPC_EHLO);
}

static void
smtpc_ready(struct smtpc *s)
{
	s->state = SMTPC_READY;
	s->up = true;
	io_set_timeout(s->io, 0);
	s->ops->ready(s->arg, s);
}

/* RFC 4616: authzid NUL authcid NUL passwd, initial response */
void
smtpc_send_auth_plain(struct smtpc *s)
{
	char *buf, *raw;
	size_t ulen, plen, blen;

	ulen = strlen(s->auth_user);
	plen = strlen(s->auth_pass);
	raw = xmalloc(ulen + plen + 2);
	raw[0] = '\0';
	memcpy(raw + 1, s->auth_user, ulen);
	raw[ulen + 1] = '\0';
	memcpy(raw + ulen + 2, s->auth_pass, plen);
	blen = 11 + (ulen + plen + 2 + 2) / 3 * 4 + 3;
	buf = xmalloc(blen);
	memcpy(buf, "AUTH PLAIN ", 11);
	(void)smtp_base64_encode(raw, ulen + plen + 2, buf + 11,
	    blen - 11);
	smtpc_write_secret(s, buf);
	explicit_bzero(raw, ulen + plen + 2);
	explicit_bzero(buf, blen);
	free(raw);
	free(buf);
}

/* AUTH LOGIN: the user name or the password, in base64. */
void
smtpc_send_auth_login(struct smtpc *s, enum smtpc_state st)
{
	char *buf, *raw;
	size_t blen;

	raw = st == SMTPC_AUTH_USER ? s->auth_user : s->auth_pass;
	blen = (strlen(raw) + 2) / 3 * 4 + 1;
	buf = xmalloc(blen);
	(void)smtp_base64_encode(raw, strlen(raw), buf, blen);
	smtpc_write_secret(s, buf);
	explicit_bzero(buf, blen);
	free(buf);
}

/* One AUTH line (RFC 4954 allows them long); never logged. */
static void
smtpc_write_secret(struct smtpc *s, const char *line)
{
	if (io_write(s->io, line, strlen(line)) == -1 ||
	    io_write(s->io, "\r\n", 2) == -1)
		smtpc_defer_fail_local(s, SMTPC_CAUSE_LOST, SMTPC_STAGE_AUTH,
		    "write failed: %s", smtpc_io_error(s));
}

static bool
smtpc_is_ip(const char *name)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, buf) == 1 ||
	    inet_pton(AF_INET6, name, buf) == 1;
}
