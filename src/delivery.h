/*
 * delivery: turns "these recipients of this message, in this destination
 * domain" into outcomes, following the rules in mxrelay(8) DELIVERY: MX
 * lookup (or the relayhost), exchangers in preference order, address
 * failover, the next-MX rules, STARTTLS policy, several messages per
 * connection, and global and per-destination connection limits.
 *
 * The engine owns one destination per domain (or one per relayhost),
 * found by a hash of the lower-case domain.  With a list of relayhosts a
 * part that none of them could take goes on to the next one, then, with
 * relayhost_fallback, by MX (delivery_relay.c).  A caller submits message
 * parts; each part comes back through its done callback once every
 * recipient in it has an outcome for this attempt.  A destination left
 * with nothing queued and no session is freed by the engine soon after,
 * unless it failed as a whole or one of its routes failed: that it keeps
 * until delivery_gc(), so that later parts of a queue run do not wait
 * for the same failure again.
 * One log line is written per recipient (mxrelay(8), Log lines: id,
 * rcpt, relay, tls, delay, status, reply).  No spool access here.
 */
#ifndef MXRELAY_DELIVERY_H
#define MXRELAY_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "confval.h"
#include "dns.h"
#include "event.h"
#include "outcome.h"
#include "smtp_client.h"
#include "sts.h"

#define DELIVERY_REPLY_MAX	(SMTPC_REPLY_MAX + 256)

struct delivery_rcpt {
	const char	*addr;				/* in */
	enum outcome	 outcome;			/* out */
	/*
	 * out: what the outcome rests on.  SMTPC_CAUSE_REPLY: the reply
	 * code is in code; SMTPC_CAUSE_NONE: no session had a say (DNS,
	 * no exchanger, a loop back to this host).
	 */
	enum smtpc_cause cause;
	int		 code;				/* out: 0 without a reply */
	bool		 accepted;			/* out: 2xx to its RCPT */
	char		 status[16];			/* out: "5.1.1" */
	char		 reply[DELIVERY_REPLY_MAX];	/* out: for logs and DSNs */
	char		 remote_mta[256];		/* out: "" when the reason is local */
	bool		 final;				/* private */
	bool		 noted;				/* private */
	/* out: "none", "unverified", "verified", "dane", "sts" */
	const char	*tls_use;
	bool		 own_reply;			/* private: own 4xx */
};

struct delivery_msg;
typedef void (*delivery_done_cb)(void *arg, struct delivery_msg *);

/*
 * A probe (mxrelay route): a part whose probe is set carries no message.
 * It goes through the lookup, the routes and the sessions exactly as a
 * message would; the first session that gets ready (greeting, EHLO,
 * STARTTLS per policy) takes it and says QUIT instead of MAIL.  Its
 * recipients then have OUTCOME_OK with status 2.0.0 ("would be sent
 * there"), or else the outcome, status and text a message would get.
 * No log line per recipient.  Before done() runs the engine fills *probe
 * with what it knows of the destination; delivery_probe_clear() frees
 * that.
 */
/*
 * DANE (RFC 7672) state of an exchanger, under tls = dane: what its
 * address and TLSA lookups said.
 */
enum delivery_dane {
	DANE_OFF,		/* not looked at: not dane, or an insecure MX */
	DANE_INSECURE,		/* addresses not secure: no TLSA lookup */
	DANE_NONE,		/* secure, no (secure) TLSA records */
	DANE_USABLE,		/* secure TLSA records, some usable */
	DANE_UNUSABLE,		/* secure TLSA records, none usable */
	DANE_FAILED,		/* the TLSA lookup failed: host not used */
};
const char	*delivery_dane_to_text(enum delivery_dane);

/* How the sessions of a route are secured. */
enum route_auth {
	ROUTE_BASE,		/* the destination's policy (dane: may) */
	ROUTE_DANE,		/* TLS, the peer must match a TLSA record */
	ROUTE_DANE_ENCRYPT,	/* TLSA, none usable: TLS, unauthenticated */
	ROUTE_STS_ENFORCE,	/* TLS, certificate verified for the MX name */
	ROUTE_STS_TESTING,	/* as may; what enforce refuses is logged */
};
const char	*delivery_route_auth_to_text(enum route_auth);

struct delivery_probe_mx {
	char			*host;
	unsigned		 pref;
	unsigned		 ttl;		/* s, of the MX answer; 0 implicit */
	enum dns_status		 st;		/* of its address lookup */
	struct sockaddr_storage	*addrs;		/* port 0 */
	size_t			 naddrs;
	bool			 addr_secure;	/* addresses validated */
	enum delivery_dane	 dane;
	char			*tlsa;		/* "3 1 1 ab12..., ..." */
	char			 dane_err[128];	/* DANE_FAILED: why */
	bool			 sts_match;	/* an mx of the policy */
};

struct delivery_probe_route {
	char			*host;
	unsigned		 pref;
	struct sockaddr_storage	 ss;		/* with the port */
	socklen_t		 sslen;
	bool			 failed;
	bool			 tls_broken;
	size_t			 rhi;		/* its relayhost; DEST_BY_MX */
	enum route_auth		 auth;
	enum tls_policy		 tls;		/* its sessions' policy */
	/* ROUTE_DANE: the records, for delivery_probe_session() */
	struct io_tls_dane	 dane;
	struct tlsa_rr		*rr;
	const char		*names[1];
	char			*domain;
};

struct delivery_probe {
	char			*name;		/* what was looked up */
	bool			 relayhost;
	bool			 by_mx;		/* an MX lookup was made */
	unsigned		 port;
	enum tls_policy		 tls;		/* the destination's policy */
	enum dns_status		 mx_status;	/* of the MX lookup, when by_mx */
	char			 mx_errtext[128];
	bool			 mx_secure;	/* the MX answer validated */
	bool			 dane;		/* tls = dane, by MX */
	/* MTA-STS: sts_asked, then a policy (sts.mode) or sts_fail */
	bool			 sts_asked;
	bool			 have_sts;
	struct sts_policy	 sts;
	char			 sts_fail[64];	/* RFC 8460 type; "" */
	char			 sts_why[256];
	struct delivery_probe_mx *mx;		/* in the order tried */
	size_t			 nmx;
	struct delivery_probe_route *routes;	/* likewise */
	size_t			 nroutes;
	long			 route;		/* the route it would use, or -1 */
};
void		 delivery_probe_clear(struct delivery_probe *);

/* One message's recipients in one destination. */
struct delivery_msg {
	const char		*id;
	const char		*sender;
	int			 body_fd;
	uint64_t		 size;		/* the prefix's bytes too */
	bool			 eightbit;
	bool			 smtputf8;	/* needs SMTPUTF8 (RFC 6531) */
	time_t			 arrival;
	/* Sent before body_fd's bytes (DKIM-Signature); NULL: none. */
	const char		*prefix;
	size_t			 prefix_len;
	struct delivery_rcpt	*rcpt;
	size_t			 nrcpt;
	delivery_done_cb	 done;
	void			*arg;
	/*
	 * out: the destination as a whole failed this part (no exchanger
	 * reachable, or its DNS failed temporarily): the caller may hold
	 * back the destination's other messages for a while.
	 */
	bool			 dest_down;
	struct delivery_probe	*probe;		/* NULL: a message (see above) */

	/* private to delivery.c and delivery_sess.c */
	size_t			 route_min;	/* first route this part may use */
	struct delivery_msg	*next;
	const char		**addrs;
	size_t			 naddrs;
	size_t			*addr_idx;
};

struct delivery_conf {
	const char		*hostname;	/* EHLO name; loop detection */
	unsigned		 smtp_port;
	const struct hostport	*relayhost;	/* NULL = by MX */
	size_t			 nrelayhost;	/* tried in order; 0 = 1 */
	bool			 relayhost_fallback;	/* then by MX */
	/* relayhost AUTH, never sent to an exchanger found by MX; NULL = none */
	const char		*auth_user;
	const char		*auth_pass;
	/* per relayhost (nrelayhost of each, NULL: the above); NULL: none */
	char *const		*rh_auth_user;
	char *const		*rh_auth_pass;
	/* AUTH over TLS not verified for the relayhost's name too */
	bool			 auth_unverified;
	struct smtpc_timeouts	 timeouts;	/* ms */
	unsigned		 reuse_limit;
	unsigned		 mx_host_limit;		/* 0: no limit */
	unsigned		 mx_address_limit;	/* 0: no limit */
	unsigned		 concurrency;
	unsigned		 domain_concurrency;
	enum tls_policy		 tls;		/* tls */
	const struct tls_domain_policy *tls_policies;	/* tls_policy lines */
	size_t			 ntls_policies;
	SSL_CTX			*tls_ctx;	/* no verification required */
	SSL_CTX			*tls_ctx_verify;
	/*
	 * MTA-STS (RFC 8461), under tls = dane: the engine (NULL: off), and
	 * the contexts for an exchanger's certificate under an enforce
	 * policy (verifying, against mta_sts_ca_file) and under testing
	 * (not verifying, to tell what enforce would have refused).
	 */
	struct sts		*sts;
	SSL_CTX			*sts_ctx_verify;
	SSL_CTX			*sts_ctx;
	const struct hostport	*self;		/* our listen addresses */
	size_t			 nself;
};

struct delivery_engine;

struct delivery_engine *delivery_engine_new(struct ev_loop *, struct dns *,
		    const struct delivery_conf *);
/*
 * MTA-STS from now on (delivery_conf's sts, sts_ctx, sts_ctx_verify), for
 * a caller that can make it only after the engine (runner.h).
 */
void		 delivery_set_sts(struct delivery_engine *, struct sts *,
		    SSL_CTX *ctx, SSL_CTX *ctx_verify);
/* Abort everything: pending parts get no callback. */
void		 delivery_engine_free(struct delivery_engine *);
/* domain is the recipients' domain (lower case); ignored with a relayhost. */
void		 delivery_submit(struct delivery_engine *, const char *domain,
		    struct delivery_msg *);
/*
 * Forget destinations with nothing queued and no session (their routes,
 * failed-route marks and DNS answers): a long-running caller calls this
 * from the top of its loop so that the next message of a domain looks it
 * up and tries its exchangers afresh.
 */
void		 delivery_gc(struct delivery_engine *);
/* Destinations held now (read-only; for tests and diagnostics). */
size_t		 delivery_ndest(const struct delivery_engine *);
/* No part pending and no connection open (idle ones count as open). */
bool		 delivery_idle(const struct delivery_engine *);
/*
 * Keep a session whose destination has nothing more for it open and idle
 * for ms milliseconds, ready for the next part (0, the default: QUIT at
 * once).  For a long-running caller with a trickle of new messages.
 */
void		 delivery_keep_idle(struct delivery_engine *, unsigned ms);
/* QUIT every idle session now and keep none from here on. */
void		 delivery_close_idle(struct delivery_engine *);

/*
 * Diagnostics (mxrelay route): cb sees every session of the engine as it
 * closes, with what it saw (smtpc_seen()) and why it ended.  clear: the
 * retry without TLS after a handshake failed under tls = may.
 */
struct delivery_seen {
	const char		*host;
	unsigned		 pref;
	const struct sockaddr_storage *ss;
	enum tls_policy		 tls;		/* the session's policy */
	enum route_auth		 auth;		/* the route's */
	bool			 clear;
	bool			 ready;		/* it got as far as MAIL */
	const struct smtpc	*s;
	const struct smtpc_reason *why;
};
typedef void (*delivery_seen_cb)(void *arg, const struct delivery_seen *);
void		 delivery_set_seen(struct delivery_engine *, delivery_seen_cb,
		    void *arg);
/*
 * A session to route r of domain's destination with the parameters
 * delivery would use (policy, TLS context, names, AUTH), for a probe of
 * a route the engine did not try.  The caller owns it (smtp_client.h).
 */
struct smtpc	*delivery_probe_session(struct delivery_engine *,
		    const char *domain, const struct delivery_probe_route *r,
		    const struct smtpc_ops *, void *arg);

#endif
