/*
 * sts: MTA-STS (RFC 8461) policies of recipient domains, on the event
 * loop.  Discovery by the _mta-sts TXT record (dns), the policy fetched
 * over HTTPS (io, tls) from https://mta-sts.DOMAIN/.well-known/mta-sts.txt
 * with the size limit, no redirects and a timeout; policies cached in
 * memory and in a folder on disk (SPOOL/sts), so that they survive
 * restarts.  Knows nothing of SMTP: delivery.c asks, and enforces.
 */
#ifndef MXRELAY_STS_H
#define MXRELAY_STS_H

#include <openssl/ssl.h>

#include "dns.h"
#include "event.h"
#include "sts_policy.h"

struct sts_conf {
	SSL_CTX		*ctx;		/* verifying client context for the fetch */
	unsigned	 port;		/* of the policy host; 443 */
	unsigned	 timeout_ms;	/* a whole fetch: connect, TLS, response */
	const char	*cache_dir;	/* SPOOL/sts; NULL: memory only */
};

struct sts;
struct sts_req;

/* NULL + err on failure. */
struct sts	*sts_new(struct ev_loop *, struct dns *, const struct sts_conf *,
		    char *err, size_t errlen);
void		 sts_free(struct sts *);	/* pending callbacks are not called */

/*
 * The policy of domain (any case), from the loop, never from inside
 * sts_policy_get().  pol NULL: no policy applies (none published, the
 * discovery failed, or the fetch failed with no cached policy): deliver
 * as without MTA-STS.  fail: the RFC 8460 §4.3 result type when a fetch
 * failed ("sts-policy-fetch-error", "sts-policy-invalid",
 * "sts-webpki-invalid"), else NULL; why says more, for logs.  A cached
 * policy that has not expired applies even when a refetch fails.  pol is
 * valid during the callback only (sts_policy_copy() to keep it).
 *
 * A policy in memory whose TXT record was checked in the last minute is
 * answered at once; otherwise the TXT record is read again (the dns
 * cache keeps it for its TTL) and the policy fetched again when its id
 * changed or less than a quarter of its max_age is left.  Requests for a
 * domain being looked up wait for that lookup (timeout_ms once its
 * fetch has one of the slots that cap the fetches in flight).
 */
typedef void (*sts_cb)(void *arg, const struct sts_policy *pol,
		    const char *fail, const char *why);
struct sts_req	*sts_policy_get(struct sts *, const char *domain, sts_cb,
		    void *arg);
/* Until its callback runs; after it the callback is never called. */
void		 sts_cancel(struct sts_req *);

#endif
