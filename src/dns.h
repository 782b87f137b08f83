/*
 * dns: c-ares (1.18) on the event loop.  "Give me the exchangers of
 * domain D" and "give me the addresses of host H" (and, for DANE and
 * MTA-STS, the TLSA records of a host's port, the TXT records of a name,
 * and whether a validating resolver vouched for each answer: RFC 4035
 * 3.2.3, the AD bit), with results cached
 * in memory for their TTL and concurrent lookups of one name coalesced.
 * A few dozen queries are out at once; the others wait their turn, in
 * order, and then have the same timeout and tries.  Knows nothing of
 * SMTP.
 *
 * Callbacks are always delivered from the event loop, never from inside
 * dns_*_lookup().  A request can be cancelled until its callback runs;
 * after cancellation the callback is never called.
 */
#ifndef MXRELAY_DNS_H
#define MXRELAY_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "event.h"
#include "tlsa.h"

enum dns_status {
	DNS_OK,		/* records found */
	DNS_NODATA,	/* the name exists, no record of that type (MX: implicit MX) */
	DNS_NXDOMAIN,	/* the name does not exist */
	DNS_NULLMX,	/* RFC 7505 "0 ." : the domain accepts no mail */
	DNS_TEMPFAIL,	/* SERVFAIL, REFUSED, timeout, no server reachable */
};

struct dns_mx {
	char		*host;		/* exchanger name, no trailing dot */
	unsigned	 pref;
	/*
	 * Seconds the answer may still be used: the smallest TTL of its
	 * answer section (RFC 2181 5.2: one TTL per RRset), less the time
	 * it has been cached.  For diagnostics (mxrelay route).
	 */
	unsigned	 ttl;
};

struct dns;
struct dns_req;

/*
 * servers: "addr[:port]" list (IPv6 as "[addr]:port"), comma separated,
 * or NULL for /etc/resolv.conf.  timeout_ms and tries as c-ares takes
 * them.  NULL + err on failure.
 */
struct dns	*dns_new(struct ev_loop *, const char *servers, unsigned timeout_ms,
		    unsigned tries, char *err, size_t errlen);
void		 dns_free(struct dns *);	/* pending callbacks are not called */

/*
 * MX lookup (no search list).  On DNS_OK: mx sorted by
 * ascending preference, equal preferences in random order; a CNAME'd
 * exchanger name is as the answer gives it.  DNS_NULLMX when the only
 * record is "0 .".  errtext explains failures ("SERVFAIL", "timeout").
 * The MX query is sent with the AD bit set (RFC 6840 §5.7); secure is
 * true when the answer (DNS_OK, DNS_NODATA, DNS_NXDOMAIN, DNS_NULLMX)
 * came with AD from the configured resolver, i.e. it validated it.
 */
typedef void (*dns_mx_cb)(void *arg, enum dns_status, bool secure,
		    const struct dns_mx *mx, size_t n, const char *errtext);
struct dns_req	*dns_mx_lookup(struct dns *, const char *domain, dns_mx_cb,
		    void *arg);

/*
 * Address lookup: AAAA and A (ares_getaddrinfo), CNAMEs followed.
 * addrs have port 0.  DNS_OK with n > 0, or DNS_NODATA, DNS_NXDOMAIN,
 * DNS_TEMPFAIL.  Order: as received, IPv6 first.
 */
typedef void (*dns_addr_cb)(void *arg, enum dns_status,
		    const struct sockaddr_storage *addrs, size_t n,
		    const char *errtext);
struct dns_req	*dns_addr_lookup(struct dns *, const char *host, dns_addr_cb,
		    void *arg);

/*
 * Address lookup for DANE (RFC 7672 §2.2.2): A and AAAA queries with AD,
 * CNAMEs followed.  secure when every answer (data or NODATA) was secure
 * and at least one came: a half that failed (SERVFAIL, which is also how
 * a validating resolver says bogus) adds no address and does not make the
 * other half's addresses insecure.  Same statuses and order as
 * dns_addr_lookup().
 */
typedef void (*dns_saddr_cb)(void *arg, enum dns_status, bool secure,
		    const struct sockaddr_storage *addrs, size_t n,
		    const char *errtext);
struct dns_req	*dns_addr_secure_lookup(struct dns *, const char *host,
		    dns_saddr_cb, void *arg);

/*
 * TLSA lookup of _PORT._tcp.HOST (AD asked).  DNS_OK: every TLSA record
 * of the answer (n > 0), whatever its usage; DNS_NODATA, DNS_NXDOMAIN:
 * none; DNS_TEMPFAIL: failed, including an answer the resolver found
 * bogus (it says SERVFAIL).  secure as for MX.  The records and their
 * data are valid during the callback only.
 */
typedef void (*dns_tlsa_cb)(void *arg, enum dns_status, bool secure,
		    const struct tlsa_rr *rr, size_t n, const char *errtext);
struct dns_req	*dns_tlsa_lookup(struct dns *, const char *host, unsigned port,
		    dns_tlsa_cb, void *arg);

/*
 * TXT lookup: one NUL-ended string per record, the character-strings of
 * a record joined (RFC 7208 §3.3 style).  DNS_OK with n > 0, or
 * DNS_NODATA, DNS_NXDOMAIN, DNS_TEMPFAIL.  Valid during the callback.
 */
typedef void (*dns_txt_cb)(void *arg, enum dns_status, const char *const *txt,
		    size_t n, const char *errtext);
struct dns_req	*dns_txt_lookup(struct dns *, const char *name, dns_txt_cb,
		    void *arg);

void		 dns_cancel(struct dns_req *);
const char	*dns_status_to_text(enum dns_status);

#endif
