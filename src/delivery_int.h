/*
 * delivery_int: what the two files of the delivery engine share, and
 * nothing for other modules (they use delivery.h).  delivery.c: the
 * engine, destinations, their queues of parts and the lookup of their
 * routes; delivery_sess.c: moving parts to sessions, the sessions, and
 * recipient and part outcomes; delivery_relay.c: a part that a relayhost
 * could not take, on to the next one or by MX.
 */
#ifndef MXRELAY_DELIVERY_INT_H
#define MXRELAY_DELIVERY_INT_H

#include <sys/queue.h>
#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "delivery.h"
#include "hash.h"

enum dest_state {
	DEST_IDLE,		/* nothing looked up yet */
	DEST_RESOLVING,		/* MX or address lookups in flight */
	DEST_READY,		/* routes known */
	DEST_FAILED,		/* the whole destination fails (DNS, loop) */
};

struct route {
	char			*host;
	unsigned		 pref;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	bool			 failed;	/* connection-level failure */
	bool			 tls_broken;	/* handshake failed under may */
	enum route_auth		 auth;
	const struct io_tls_dane *dane;		/* ROUTE_DANE: the records */
};

struct mxent;		/* delivery.c */
struct dsess;		/* delivery_sess.c */
struct fallback;	/* delivery_relay.c */
LIST_HEAD(fallback_list, fallback);

/* dest_get(): the destination of a domain by MX, not of a relayhost. */
#define DEST_BY_MX	((size_t)-1)

struct dest {
	struct delivery_engine	*e;
	struct hash_node	 node;		/* e->byname, under key */
	LIST_ENTRY(dest)	 link;		/* e->dests */
	LIST_ENTRY(dest)	 gclink;	/* e->gcq while gc_queued */
	bool			 gc_queued;
	struct dest		*wnext;		/* waiting for a global slot */
	bool			 waiting;
	char			*key;		/* domain; "[relayhost N]" */
	char			*name;		/* what to look up */
	const struct hostport	*rh;		/* relayhost rhi; NULL: by MX */
	size_t			 rhi;
	bool			 by_mx;
	unsigned		 port;
	enum tls_policy		 tls;
	bool			 dane;		/* tls = dane, by MX */
	enum dest_state		 state;
	struct dns_req		*mxreq;
	enum dns_status		 mx_st;		/* of the MX lookup */
	char			 mx_err[128];
	bool			 mx_secure;	/* the MX answer validated */
	/* MTA-STS: the lookup, then the policy (when have_sts) */
	struct sts_req		*stsreq;
	bool			 sts_asked;
	bool			 have_sts;
	struct sts_policy	 sts;
	char			 sts_fail[64];	/* RFC 8460 type of a failure */
	char			 sts_why[256];
	struct mxent		*mx;
	size_t			 nmx;
	size_t			 mx_pending;
	struct route		*routes;
	size_t			 nroutes;

	/* DEST_FAILED: what every part gets */
	enum outcome		 fail_outcome;
	char			 fail_status[16];
	char			 fail_reply[DELIVERY_REPLY_MAX];

	/* the last route failure, for parts that run out of routes */
	enum smtpc_cause	 last_cause;
	int			 last_code;
	char			 last_status[16];
	char			 last_reply[DELIVERY_REPLY_MAX];
	char			 last_mta[256];

	struct delivery_msg	*qhead, *qtail;
	size_t			 nqueued;
	struct dsess		*idle;		/* sessions waiting for a part */
	uint64_t		 ready_ms;	/* when the routes were built */
	unsigned		 nsess;
	unsigned		 nconnecting;
	unsigned		 rr;		/* spreads sessions over equal MXs */
};

LIST_HEAD(dest_list, dest);

struct delivery_engine {
	struct ev_loop		*loop;
	struct dns		*dns;
	struct delivery_conf	 c;
	struct hash		 byname;	/* every destination, by key */
	struct dest_list	 dests;		/* the same, newest first */
	struct dest_list	 gcq;		/* may have nothing left to do */
	struct ev_timer		 gc_timer;	/* looks at gcq from the loop */
	struct dest		*whead, *wtail;	/* waiting for a slot */
	unsigned		 active;	/* sessions in all */
	unsigned		 nidle;		/* of which parked */
	unsigned		 keep_idle_ms;	/* 0: QUIT when the queue is dry */
	size_t			 pending;	/* parts submitted, not done */
	delivery_seen_cb	 seen;		/* delivery_set_seen() */
	void			*seen_arg;
	/*
	 * With a wildcard listener (0.0.0.0, ::): the host's interface
	 * addresses, which are this host on that port (loopback always is).
	 */
	struct sockaddr_storage	*local;
	size_t			 nlocal;
	struct fallback_list	 fallbacks;	/* parts gone by MX */
};

/* delivery.c: the queue of parts, the lookup, the check for an unused d. */
struct dest	*dest_get(struct delivery_engine *, const char *domain,
		    size_t rhi);
void		 part_submit(struct dest *, struct delivery_msg *);
void		 dest_enqueue(struct dest *, struct delivery_msg *, bool front);
void		 dest_dequeue(struct dest *, struct delivery_msg *);
void		 dest_resolve(struct dest *);
void		 dest_gc_note(struct dest *);
void		 dest_probe_fill(const struct dest *, struct delivery_probe *);

/* delivery_sess.c: move d's parts on, then see whether it has work left. */
void		 dest_pump(struct dest *);
/*
 * A recipient of a part that ran out of routes: deferred with its own 4xx
 * or the destination's last error (one log line).  A part done: callback.
 */
void		 rcpt_defer_last(struct dest *, struct delivery_msg *, size_t);
void		 part_done(struct delivery_engine *, struct delivery_msg *);

/*
 * delivery_relay.c: m (out of d's queue) ran out of routes at a relayhost:
 * pass it on to the next relayhost, or by MX, and say true; false: the
 * caller defers it as usual.  delivery_relay_free(): drop the parts gone
 * by MX (engine free).
 */
bool		 part_pass_on(struct dest *, struct delivery_msg *);
void		 delivery_relay_free(struct delivery_engine *);
void		 sess_params(const struct dest *, const struct route *, bool clear,
		    struct smtpc_params *);
/* The policy of route r's sessions (clear: the retry without TLS). */
enum tls_policy	 route_tls(const struct dest *, const struct route *,
		    bool clear);
/* mxrelay_tls_sessions_total (RFC 8460 result types). */
void		 dest_tlsrpt(const struct dest *, const char *policy,
		    const char *result);

#endif
