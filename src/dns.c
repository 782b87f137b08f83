/*
 * dns: c-ares 1.18 driven by the event loop.
 *
 * One c-ares channel per struct dns.  c-ares tells us which sockets it
 * wants watched through its socket-state callback; we mirror that into
 * ev_fd_add/mod/del and feed readiness back with ares_process_fd().
 * Timeouts: after every call into c-ares (a new query, socket readiness,
 * the timer itself) one ev_timer is re-armed from ares_timeout(), and when
 * it fires we call ares_process_fd(ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD).
 * c-ares only moves its deadlines inside those calls, so this caps every
 * wait exactly as a before-sleep hook would, without leaving a hook behind
 * in the loop after dns_free() (event.h has no ev_prepare_del()).
 *
 * Queries.  Addresses for everything but DANE come from ares_getaddrinfo.
 * MX, TLSA, TXT and the addresses for DANE are queries made here and
 * sent with ares_send(), because ares_query() cannot set the AD bit
 * (RFC 6840 5.7): a validating resolver answers with AD only when the
 * query had it (or DO).  Such a query gets a random ID that none of our
 * other hand-made queries in flight has (c-ares keeps the ID it is
 * given); the RCODE of its answer is mapped as ares_query() does (see
 * raw_status()), and "secure" means AD in that answer.  Only TLSA asks
 * with EDNS (payload DNS_EDNS_PSZ); the others are as ares_query() sent
 * them.  A resolver that does not validate never sets AD: everything is
 * insecure and works as before.  SERVFAIL, which is also how a
 * validating resolver reports a bogus answer, is DNS_TEMPFAIL.
 *
 * Lookups are keyed by (type, lower-cased name without trailing dot) in
 * one table of entries.  An entry is either pending (one c-ares query in
 * flight or waiting its turn, a list of waiting requests: concurrent
 * lookups are coalesced) or done (a shared, reference-counted result kept
 * until it expires).
 *
 * At most DNS_INFLIGHT_MAX queries are handed to c-ares at once; the
 * others wait in dns->waiting, first come first served, and each one that
 * ends starts the next.  A burst of lookups (one message to a thousand
 * domains) would otherwise overflow the resolver's socket buffer and come
 * back as timeouts.  A waiting lookup cannot hang: every query in flight
 * ends (answered, failed, or timed out after dns_timeout and dns_tries,
 * mxrelay.conf(5)), which starts the next; once started, a query has the
 * same timeout and tries as any other.
 *
 * Cache lifetimes, all capped at DNS_TTL_MAX:
 *   - MX: the smallest TTL in the raw answer section (ares_parse_mx_reply
 *     drops TTLs, so we walk the message ourselves, bounds-checked);
 *     DNS_TTL_DEFAULT when it cannot be read;
 *   - TLSA, TXT: likewise the smallest TTL of the answer section;
 *   - addresses: the smallest ai_ttl of the nodes and CNAMEs (one over
 *     2^31 - 1 counts as 0, RFC 2181 8); for DANE the smallest TTL
 *     ares_parse_a_reply / ares_parse_aaaa_reply give (CNAMEs included);
 *   - NXDOMAIN / NODATA: RFC 2308 section 5, min(SOA TTL, SOA MINIMUM)
 *     when the answer carries an SOA, never more than DNS_TTL_NEG;
 *   - TEMPFAIL: never cached; the entry goes as soon as its waiters have
 *     their result.  A TTL of 0 is not cached either.
 * The table holds at most DNS_CACHE_MAX finished entries; the oldest go
 * first.
 *
 * Callbacks are delivered from a zero-delay timer, never from inside
 * dns_*_lookup() and never from inside a c-ares callback, so a user
 * callback may start lookups, cancel requests or call dns_free().
 * The request is freed just before its callback runs.  dns_free() makes
 * c-ares end its queries with ARES_EDESTRUCTION; our callbacks see the
 * "dead" flag and touch nothing.  dns_free() must come before
 * ev_loop_free(), and requests must not be cancelled after dns_free().
 *
 * Status mapping (once, here): ARES_SUCCESS -> DNS_OK, ARES_ENODATA ->
 * DNS_NODATA, ARES_ENOTFOUND and ARES_EBADNAME (of the name asked; a
 * name in an answer that cannot be read makes a bad response) ->
 * DNS_NXDOMAIN, anything else (SERVFAIL, REFUSED, timeout, connection
 * errors, bad responses) -> DNS_TEMPFAIL.  An MX answer whose records are
 * all "." is DNS_NULLMX (RFC 7505); a "." mixed with real exchangers is
 * ignored; one without MX records (a CNAME alone) is DNS_NODATA, and so
 * is a TLSA or TXT answer without such records.  A TLSA record shorter
 * than 4 octets, or an answer that cannot be walked, is DNS_TEMPFAIL.
 * The secure flag is kept with the cached result: the AD bit is always
 * asked for, so one entry serves every caller.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>

#include "dns.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#define DNS_Q_MX		1
#define DNS_Q_ADDR		2	/* ares_getaddrinfo, AAAA and A */
#define DNS_Q_SADDR		3	/* hand-made AAAA and A with AD */
#define DNS_Q_TLSA		4
#define DNS_Q_TXT		5

#define DNS_EDNS_PSZ		1232	/* TLSA: EDNS UDP payload size */
#define DNS_HDR_AD		0x20	/* in byte 3 of the header */
#define DNS_QIDS		65536

#define DNS_BUCKETS		1024
#define DNS_CACHE_MAX		10000	/* finished entries kept */
#define DNS_TTL_MAX		3600	/* s, cap on any cached answer */
#define DNS_TTL_DEFAULT		300	/* s, MX answer whose TTL is unreadable */
#define DNS_TTL_NEG		60	/* s, cap on NXDOMAIN / NODATA */
#define DNS_NAME_MAX		253	/* RFC 1035 2.3.4, text form */
/*
 * Queries handed to c-ares at once (an address lookup counts once, for
 * its A and AAAA).  Enough to keep a resolver busy; few enough that a
 * burst does not overflow its socket buffer (1,000 at once did).
 */
#define DNS_INFLIGHT_MAX	64

#define DNS_TIMEOUT_DEFAULT	5000	/* ms, when dns_new() gets 0 */
#define DNS_TRIES_DEFAULT	2

struct dns_result {
	unsigned		 refs;
	enum dns_status		 status;
	const char		*errtext;	/* static text */
	struct dns_mx		*mx;		/* sorted by pref */
	size_t			 nmx;
	struct sockaddr_storage	*addrs;
	size_t			 naddrs;
	struct tlsa_rr		*tlsa;		/* data points into raw */
	size_t			 ntlsa;
	unsigned char		*raw;		/* TLSA: copy of the answer */
	char			**txt;
	size_t			 ntxt;
	bool			 secure;	/* AD on every answer used */
	uint64_t		 at;		/* ev_now() when answered */
};

union dns_cb {
	dns_mx_cb		 mx;
	dns_addr_cb		 addr;
	dns_saddr_cb		 saddr;
	dns_tlsa_cb		 tlsa;
	dns_txt_cb		 txt;
};

struct dns_req {
	TAILQ_ENTRY(dns_req)	 link;		/* entry->waiters or dns->ready */
	struct dns		*dns;
	struct dns_entry	*entry;		/* set while waiting */
	struct dns_result	*res;		/* set once ready */
	int			 type;
	union dns_cb		 cb;		/* the one of type */
	void			*arg;
	uint64_t		 seq;		/* order of readiness */
};
TAILQ_HEAD(dns_reqs, dns_req);

/*
 * One family's half of an address lookup.  AAAA and A are asked apart
 * (two ares_getaddrinfo calls): asked together, c-ares reports one status
 * for both, that of the answer that came last, so a SERVFAIL for A
 * followed by "no AAAA" read as no address at all and bounced the mail.
 */
struct addr_half {
	struct dns_entry	*e;
	int			 status;
	struct ares_addrinfo	*ai;		/* NULL: none (yet) */
	/* DNS_Q_SADDR: this half's answer, once in. */
	struct dns_result	*res;
	long			 ttl;
	uint16_t		 qid;
};

struct dns_entry {
	TAILQ_ENTRY(dns_entry)	 bucket;
	TAILQ_ENTRY(dns_entry)	 age;		/* oldest first */
	struct dns		*dns;
	int			 type;
	char			*name;
	bool			 pending;
	bool			 queued;	/* pending, not sent yet */
	TAILQ_ENTRY(dns_entry)	 wait;		/* dns->waiting while queued */
	struct dns_reqs		 waiters;	/* while pending */
	struct dns_result	*res;		/* once done */
	uint64_t		 expires;	/* ev_now() ms */
	struct addr_half	 half[2];	/* DNS_Q_ADDR: AAAA, A */
	unsigned		 halves_left;	/* answers still to come */
	uint16_t		 qid;		/* hand-made query in flight */
};
TAILQ_HEAD(dns_entries, dns_entry);

struct dns_sock {
	int	fd;
	int	events;
};

struct dns {
	struct ev_loop		*loop;
	ares_channel		 ch;
	struct ev_timer		 ares_timer;
	struct ev_timer		 deliver_timer;
	struct dns_sock		*socks;
	size_t			 nsocks;
	size_t			 capsocks;
	struct dns_entries	 buckets[DNS_BUCKETS];
	struct dns_entries	 entries;
	size_t			 ndone;		/* finished entries in the table */
	struct dns_entries	 waiting;	/* queued entries, oldest first */
	unsigned		 inflight;	/* queries in c-ares */
	bool			 starting;	/* inside dns_start_waiting() */
	struct dns_reqs		 ready;
	uint64_t		 seq;
	unsigned		 depth;		/* > 0 while delivering */
	bool			 dead;		/* dns_free() was called */
	/* IDs of our hand-made queries in flight, one bit each. */
	uint8_t			 qids[DNS_QIDS / 8];
};

static void	 dns_rearm(struct dns *);
static void	 dns_on_sock_state(void *, ares_socket_t, int, int);
static void	 dns_on_sock(int, int, void *);
static void	 dns_on_ares_timer(void *);
static void	 dns_on_deliver(void *);
static void	 dns_on_mx(void *, int, int, unsigned char *, int);
static void	 dns_on_tlsa(void *, int, int, unsigned char *, int);
static void	 dns_on_txt(void *, int, int, unsigned char *, int);
static void	 dns_on_saddr(void *, int, int, unsigned char *, int);
static void	 dns_send_ad(struct dns *, const char *, int, int,
		    ares_callback, void *, uint16_t *);
static uint16_t	 dns_qid_take(struct dns *);
static void	 dns_qid_release(struct dns *, uint16_t);
static int	 raw_status(int, const unsigned char *, int, bool *);
static struct dns_result *neg_result(int, const unsigned char *, int,
		    long *);
static struct dns_result *tlsa_result(int, const unsigned char *, int,
		    long *);
static int	 wire_tlsa(const unsigned char *, size_t, struct dns_result *);
static struct dns_result *txt_result(int, const unsigned char *, int,
		    long *);
static struct dns_result *saddr_half_result(int, const unsigned char *, int,
		    int, long *);
static struct dns_result *addr_pair(struct dns_result *, long,
		    struct dns_result *, long, long *);
static void	 dns_on_addr(void *, int, int, struct ares_addrinfo *);
static struct dns_result *addr_result_pair(int, const struct ares_addrinfo *,
		    int, const struct ares_addrinfo *, long *);
static struct dns_result *mx_result(int, const unsigned char *, int, long *);
static void	 mx_shuffle(struct dns_mx *, size_t);
static struct dns_result *addr_result(int, const struct ares_addrinfo *,
		    long *);
static void	 addr_ttl_min(long *, int);
static struct dns_req *dns_lookup(struct dns *, int, const char *,
		    union dns_cb, void *);
static void	 dns_start_waiting(struct dns *);
static void	 dns_query_start(struct dns *, struct dns_entry *);
static int	 dns_name_key(const char *, char *, size_t);
static unsigned	 dns_hash(int, const char *);
static struct dns_entry *dns_entry_find(struct dns *, int, const char *);
static void	 dns_entry_remove(struct dns *, struct dns_entry *);
static void	 dns_entry_done(struct dns_entry *, struct dns_result *, long);
static void	 dns_cache_trim(struct dns *);
static struct dns_result *dns_result_new(enum dns_status, const char *);
static void	 dns_result_unref(struct dns_result *);
static void	 dns_req_ready(struct dns *, struct dns_req *,
		    struct dns_result *);
static void	 dns_req_deliver(struct dns_req *);
static enum dns_status dns_map_status(int);
static const char *dns_status_errtext(int);
static int	 dns_mx_cmp(const void *, const void *);
static uint32_t	 dns_random(uint32_t);
static int	 wire_skip_name(const unsigned char *, size_t, size_t *);
static long	 wire_ttl(const unsigned char *, size_t, bool);

struct dns *
dns_new(struct ev_loop *loop, const char *servers, unsigned timeout_ms,
    unsigned tries, char *err, size_t errlen)
{
	static bool lib_ready;
	struct ares_options opts;
	struct dns *dns;
	int rc, optmask;

	if (!lib_ready) {
		if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) !=
		    ARES_SUCCESS) {
			util_seterr(err, errlen, "c-ares: %s",
			    ares_strerror(rc));
			return NULL;
		}
		lib_ready = true;
	}

	dns = xcalloc(1, sizeof(*dns));
	dns->loop = loop;
	ev_timer_init(&dns->ares_timer, dns_on_ares_timer, dns);
	ev_timer_init(&dns->deliver_timer, dns_on_deliver, dns);
	for (size_t i = 0; i < DNS_BUCKETS; i++)
		TAILQ_INIT(&dns->buckets[i]);
	TAILQ_INIT(&dns->entries);
	TAILQ_INIT(&dns->waiting);
	TAILQ_INIT(&dns->ready);

	memset(&opts, 0, sizeof(opts));
	opts.sock_state_cb = dns_on_sock_state;
	opts.sock_state_cb_data = dns;
	opts.timeout = timeout_ms > 0 && timeout_ms <= INT32_MAX ?
	    (int)timeout_ms : DNS_TIMEOUT_DEFAULT;
	opts.tries = tries > 0 && tries <= 100 ? (int)tries :
	    DNS_TRIES_DEFAULT;
	/*
	 * Exchanger names are fully qualified: no search list for
	 * ares_getaddrinfo (ndomains 0), none for ares_query anyway, and no
	 * HOSTALIASES from the environment.
	 */
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.domains = NULL;
	opts.ndomains = 0;
	optmask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS |
	    ARES_OPT_TRIES | ARES_OPT_FLAGS | ARES_OPT_DOMAINS;
	if ((rc = ares_init_options(&dns->ch, &opts, optmask)) !=
	    ARES_SUCCESS) {
		util_seterr(err, errlen, "c-ares init: %s", ares_strerror(rc));
		free(dns);
		return NULL;
	}
	if (servers != NULL && *servers != '\0' &&
	    (rc = ares_set_servers_ports_csv(dns->ch, servers)) !=
	    ARES_SUCCESS) {
		util_seterr(err, errlen, "dns servers \"%s\": %s", servers,
		    ares_strerror(rc));
		dns->dead = true;
		ares_destroy(dns->ch);
		free(dns->socks);
		free(dns);
		return NULL;
	}
	return dns;
}

void
dns_free(struct dns *dns)
{
	struct dns_entry *e;
	struct dns_req *r;

	if (dns == NULL || dns->dead)
		return;
	dns->dead = true;
	/* Queries end with ARES_EDESTRUCTION; our callbacks ignore them. */
	ares_destroy(dns->ch);
	for (size_t i = 0; i < dns->nsocks; i++)
		ev_fd_del(dns->loop, dns->socks[i].fd);
	free(dns->socks);
	dns->socks = NULL;
	dns->nsocks = dns->capsocks = 0;
	ev_timer_del(dns->loop, &dns->ares_timer);
	ev_timer_del(dns->loop, &dns->deliver_timer);

	while ((e = TAILQ_FIRST(&dns->entries)) != NULL) {
		while ((r = TAILQ_FIRST(&e->waiters)) != NULL) {
			TAILQ_REMOVE(&e->waiters, r, link);
			free(r);
		}
		e->pending = false;
		dns_entry_remove(dns, e);
	}
	while ((r = TAILQ_FIRST(&dns->ready)) != NULL) {
		TAILQ_REMOVE(&dns->ready, r, link);
		dns_result_unref(r->res);
		free(r);
	}
	/* From inside a callback, dns_on_deliver() frees it on return. */
	if (dns->depth == 0)
		free(dns);
}

struct dns_req *
dns_mx_lookup(struct dns *dns, const char *domain, dns_mx_cb cb, void *arg)
{
	return dns_lookup(dns, DNS_Q_MX, domain, (union dns_cb){ .mx = cb },
	    arg);
}

struct dns_req *
dns_addr_lookup(struct dns *dns, const char *host, dns_addr_cb cb, void *arg)
{
	return dns_lookup(dns, DNS_Q_ADDR, host, (union dns_cb){ .addr = cb },
	    arg);
}

struct dns_req *
dns_addr_secure_lookup(struct dns *dns, const char *host, dns_saddr_cb cb,
    void *arg)
{
	return dns_lookup(dns, DNS_Q_SADDR, host,
	    (union dns_cb){ .saddr = cb }, arg);
}

struct dns_req *
dns_tlsa_lookup(struct dns *dns, const char *host, unsigned port,
    dns_tlsa_cb cb, void *arg)
{
	char name[DNS_NAME_MAX + 32];
	int n;

	/* RFC 6698 3: _PORT._tcp.HOST.  A bad one is an invalid name. */
	n = snprintf(name, sizeof(name), "_%u._tcp.%s", port, host);
	if (port == 0 || port > 65535 || n < 0 || (size_t)n >= sizeof(name))
		name[0] = '\0';
	return dns_lookup(dns, DNS_Q_TLSA, name, (union dns_cb){ .tlsa = cb },
	    arg);
}

struct dns_req *
dns_txt_lookup(struct dns *dns, const char *name, dns_txt_cb cb, void *arg)
{
	return dns_lookup(dns, DNS_Q_TXT, name, (union dns_cb){ .txt = cb },
	    arg);
}

void
dns_cancel(struct dns_req *r)
{
	struct dns *dns;

	if (r == NULL)
		return;
	dns = r->dns;
	if (r->entry != NULL) {
		/* The query goes on; its answer is still cached. */
		TAILQ_REMOVE(&r->entry->waiters, r, link);
	} else {
		TAILQ_REMOVE(&dns->ready, r, link);
		dns_result_unref(r->res);
		if (TAILQ_EMPTY(&dns->ready))
			ev_timer_del(dns->loop, &dns->deliver_timer);
	}
	free(r);
}

const char *
dns_status_to_text(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "ok";
	case DNS_NODATA:
		return "nodata";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_NULLMX:
		return "nullmx";
	case DNS_TEMPFAIL:
		return "tempfail";
	}
	return "unknown";
}

static struct dns_req *
dns_lookup(struct dns *dns, int type, const char *name, union dns_cb cb,
    void *arg)
{
	char key[DNS_NAME_MAX + 1];
	struct dns_req *r;
	struct dns_entry *e;

	r = xcalloc(1, sizeof(*r));
	r->dns = dns;
	r->type = type;
	r->cb = cb;
	r->arg = arg;

	if (dns_name_key(name, key, sizeof(key)) == -1) {
		struct dns_result *res;

		res = dns_result_new(DNS_NXDOMAIN, "invalid name");
		dns_req_ready(dns, r, res);
		dns_result_unref(res);
		return r;
	}
	if ((e = dns_entry_find(dns, type, key)) != NULL) {
		if (e->pending) {
			r->entry = e;
			TAILQ_INSERT_TAIL(&e->waiters, r, link);
		} else
			dns_req_ready(dns, r, e->res);
		return r;
	}

	e = xcalloc(1, sizeof(*e));
	e->dns = dns;
	e->type = type;
	e->name = xstrdup(key);
	e->pending = true;
	TAILQ_INIT(&e->waiters);
	TAILQ_INSERT_TAIL(&dns->buckets[dns_hash(type, key) % DNS_BUCKETS], e,
	    bucket);
	TAILQ_INSERT_TAIL(&dns->entries, e, age);
	r->entry = e;
	TAILQ_INSERT_TAIL(&e->waiters, r, link);
	e->queued = true;
	TAILQ_INSERT_TAIL(&dns->waiting, e, wait);

	/* The entry may be gone when this returns: do not touch e. */
	dns_start_waiting(dns);
	dns_rearm(dns);
	return r;
}

/* Send queued entries, oldest first, while fewer than the cap are out. */
static void
dns_start_waiting(struct dns *dns)
{
	struct dns_entry *e;

	/* A query that ends inside c-ares comes back here: the loop goes on. */
	if (dns->starting)
		return;
	dns->starting = true;
	while (dns->inflight < DNS_INFLIGHT_MAX &&
	    (e = TAILQ_FIRST(&dns->waiting)) != NULL) {
		TAILQ_REMOVE(&dns->waiting, e, wait);
		e->queued = false;
		dns->inflight++;
		dns_query_start(dns, e);
	}
	dns->starting = false;
}

/*
 * Hand e's query to c-ares.  c-ares may call back synchronously from
 * here and e may be gone when this returns (hence the copy of its name).
 */
static void
dns_query_start(struct dns *dns, struct dns_entry *e)
{
	char name[DNS_NAME_MAX + 1];
	struct ares_addrinfo_hints hints;

	util_strlcpy(name, e->name, sizeof(name));
	switch (e->type) {
	case DNS_Q_MX:
		dns_send_ad(dns, name, ns_t_mx, 0, dns_on_mx, e, &e->qid);
		return;
	case DNS_Q_TLSA:
		dns_send_ad(dns, name, ns_t_tlsa, DNS_EDNS_PSZ, dns_on_tlsa, e,
		    &e->qid);
		return;
	case DNS_Q_TXT:
		dns_send_ad(dns, name, ns_t_txt, 0, dns_on_txt, e, &e->qid);
		return;
	case DNS_Q_SADDR:
		e->halves_left = 2;
		for (int i = 0; i < 2; i++) {
			e->half[i].e = e;
			e->half[i].res = NULL;
		}
		/* As below: the first answer cannot end e. */
		dns_send_ad(dns, name, ns_t_aaaa, 0, dns_on_saddr, &e->half[0],
		    &e->half[0].qid);
		dns_send_ad(dns, name, ns_t_a, 0, dns_on_saddr, &e->half[1],
		    &e->half[1].qid);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = ARES_AI_NOSORT;
	e->halves_left = 2;
	for (int i = 0; i < 2; i++) {
		e->half[i].e = e;
		e->half[i].status = ARES_ENODATA;
		e->half[i].ai = NULL;
	}
	/* e stays until both halves are in: the first call cannot end it. */
	hints.ai_family = AF_INET6;
	ares_getaddrinfo(dns->ch, name, NULL, &hints, dns_on_addr, &e->half[0]);
	hints.ai_family = AF_INET;
	ares_getaddrinfo(dns->ch, name, NULL, &hints, dns_on_addr, &e->half[1]);
}

/* Lower case, one trailing dot dropped, printable ASCII, length checked. */
static int
dns_name_key(const char *in, char *out, size_t outlen)
{
	size_t len = strlen(in);

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX || len >= outlen)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c <= ' ' || c >= 0x7f)
			return -1;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	return 0;
}

/* FNV-1a */
static unsigned
dns_hash(int type, const char *s)
{
	uint32_t h = 2166136261u;

	h = (h ^ (uint32_t)type) * 16777619u;
	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* A pending or unexpired entry; expired ones are dropped on the way. */
static struct dns_entry *
dns_entry_find(struct dns *dns, int type, const char *key)
{
	struct dns_entries *b;
	struct dns_entry *e;

	b = &dns->buckets[dns_hash(type, key) % DNS_BUCKETS];
	TAILQ_FOREACH(e, b, bucket) {
		if (e->type != type || strcmp(e->name, key) != 0)
			continue;
		if (!e->pending && ev_now(dns->loop) >= e->expires) {
			dns_entry_remove(dns, e);
			return NULL;
		}
		return e;
	}
	return NULL;
}

/* Only for entries without waiters. */
static void
dns_entry_remove(struct dns *dns, struct dns_entry *e)
{
	TAILQ_REMOVE(&dns->buckets[dns_hash(e->type, e->name) % DNS_BUCKETS],
	    e, bucket);
	TAILQ_REMOVE(&dns->entries, e, age);
	if (e->queued)
		TAILQ_REMOVE(&dns->waiting, e, wait);
	if (e->res != NULL) {
		dns->ndone--;
		dns_result_unref(e->res);
	}
	free(e->name);
	free(e);
}

/*
 * The query of e finished with res (a reference is taken): hand it to
 * every waiter and keep it for ttl seconds (TEMPFAIL or ttl <= 0: not
 * kept), then send the next queued query.  e may be freed.
 */
static void
dns_entry_done(struct dns_entry *e, struct dns_result *res, long ttl)
{
	struct dns *dns = e->dns;
	struct dns_req *r;

	dns->inflight--;
	e->pending = false;
	res->at = ev_now(dns->loop);
	res->refs++;
	e->res = res;
	dns->ndone++;
	while ((r = TAILQ_FIRST(&e->waiters)) != NULL) {
		TAILQ_REMOVE(&e->waiters, r, link);
		r->entry = NULL;
		dns_req_ready(dns, r, res);
	}
	if (ttl > DNS_TTL_MAX)
		ttl = DNS_TTL_MAX;
	if (res->status == DNS_TEMPFAIL || ttl <= 0)
		dns_entry_remove(dns, e);
	else {
		e->expires = ev_now(dns->loop) + (uint64_t)ttl * 1000;
		/* Keep insertion order = completion order for trimming. */
		TAILQ_REMOVE(&dns->entries, e, age);
		TAILQ_INSERT_TAIL(&dns->entries, e, age);
		dns_cache_trim(dns);
	}
	dns_start_waiting(dns);
}

/* Drop expired entries from the old end, then the oldest over the cap. */
static void
dns_cache_trim(struct dns *dns)
{
	struct dns_entry *e, *next;
	uint64_t now = ev_now(dns->loop);

	for (e = TAILQ_FIRST(&dns->entries); e != NULL; e = next) {
		next = TAILQ_NEXT(e, age);
		if (e->pending)
			continue;
		if (dns->ndone <= DNS_CACHE_MAX && now < e->expires)
			break;
		dns_entry_remove(dns, e);
	}
}

static struct dns_result *
dns_result_new(enum dns_status st, const char *errtext)
{
	struct dns_result *res;

	res = xcalloc(1, sizeof(*res));
	res->refs = 1;
	res->status = st;
	res->errtext = errtext;
	return res;
}

static void
dns_result_unref(struct dns_result *res)
{
	if (res == NULL || --res->refs > 0)
		return;
	for (size_t i = 0; i < res->nmx; i++)
		free(res->mx[i].host);
	free(res->mx);
	free(res->addrs);
	free(res->tlsa);
	free(res->raw);
	for (size_t i = 0; i < res->ntxt; i++)
		free(res->txt[i]);
	free(res->txt);
	free(res);
}

/* r gets its own reference to res and waits for the deliver timer. */
static void
dns_req_ready(struct dns *dns, struct dns_req *r, struct dns_result *res)
{
	res->refs++;
	r->res = res;
	r->entry = NULL;
	r->seq = ++dns->seq;
	TAILQ_INSERT_TAIL(&dns->ready, r, link);
	if (!ev_timer_pending(&dns->deliver_timer))
		ev_timer_add(dns->loop, &dns->deliver_timer, 0);
}

static void
dns_on_deliver(void *arg)
{
	struct dns *dns = arg;
	struct dns_req *r;
	uint64_t last = dns->seq;

	/*
	 * Only what was ready when we started: a callback that starts a
	 * lookup answered at once waits for the next iteration.
	 */
	dns->depth++;
	while (!dns->dead && (r = TAILQ_FIRST(&dns->ready)) != NULL &&
	    r->seq <= last) {
		TAILQ_REMOVE(&dns->ready, r, link);
		dns_req_deliver(r);
	}
	dns->depth--;
	if (dns->dead) {
		if (dns->depth == 0)
			free(dns);
		return;
	}
	if (!TAILQ_EMPTY(&dns->ready) &&
	    !ev_timer_pending(&dns->deliver_timer))
		ev_timer_add(dns->loop, &dns->deliver_timer, 0);
}

/*
 * Free r, then call its callback; equal MX preferences are shuffled anew,
 * and their TTL is what is left of it.
 */
static void
dns_req_deliver(struct dns_req *r)
{
	struct dns_result *res = r->res;
	uint64_t age = (ev_now(r->dns->loop) - res->at) / 1000;
	union dns_cb cb = r->cb;
	int type = r->type;
	void *arg = r->arg;
	struct dns_mx *mx = NULL;
	size_t n = 0;
	bool ok = res->status == DNS_OK;

	free(r);
	switch (type) {
	case DNS_Q_MX:
		if (res->status == DNS_OK && res->nmx > 0) {
			n = res->nmx;
			mx = xreallocarray(NULL, n, sizeof(*mx));
			memcpy(mx, res->mx, n * sizeof(*mx));
			for (size_t i = 0; i < n; i++)
				mx[i].ttl = mx[i].ttl > age ?
				    mx[i].ttl - (unsigned)age : 0;
			mx_shuffle(mx, n);
		}
		cb.mx(arg, res->status, res->secure, mx, n, res->errtext);
		free(mx);
		break;
	case DNS_Q_ADDR:
		cb.addr(arg, res->status, ok ? res->addrs : NULL,
		    ok ? res->naddrs : 0, res->errtext);
		break;
	case DNS_Q_SADDR:
		cb.saddr(arg, res->status, res->secure, ok ? res->addrs : NULL,
		    ok ? res->naddrs : 0, res->errtext);
		break;
	case DNS_Q_TLSA:
		cb.tlsa(arg, res->status, res->secure, ok ? res->tlsa : NULL,
		    ok ? res->ntlsa : 0, res->errtext);
		break;
	case DNS_Q_TXT:
		cb.txt(arg, res->status,
		    ok ? (const char *const *)res->txt : NULL,
		    ok ? res->ntxt : 0, res->errtext);
		break;
	}
	dns_result_unref(res);
}

/* RFC 5321 5.1: equal preferences in random order (mx is sorted). */
static void
mx_shuffle(struct dns_mx *mx, size_t n)
{
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && mx[j].pref == mx[i].pref; j++)
			;
		for (size_t k = j - 1; k > i; k--) {
			size_t pick = i + dns_random((uint32_t)(k - i + 1));
			struct dns_mx t = mx[k];

			mx[k] = mx[pick];
			mx[pick] = t;
		}
	}
}

static void
dns_rearm(struct dns *dns)
{
	struct timeval tv, *tvp;
	uint64_t ms;

	if (dns->dead)
		return;
	if ((tvp = ares_timeout(dns->ch, NULL, &tv)) == NULL) {
		ev_timer_del(dns->loop, &dns->ares_timer);
		return;
	}
	/* Round up: firing early would only spin until the deadline. */
	ms = (uint64_t)tvp->tv_sec * 1000 +
	    ((uint64_t)tvp->tv_usec + 999) / 1000;
	ev_timer_add(dns->loop, &dns->ares_timer, ms);
}

/* c-ares: "watch this socket for these events" (0, 0: it is closing). */
static void
dns_on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *dns = data;
	int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
	size_t i;

	for (i = 0; i < dns->nsocks; i++)
		if (dns->socks[i].fd == fd)
			break;
	if (events == 0) {
		if (i < dns->nsocks) {
			ev_fd_del(dns->loop, fd);
			dns->socks[i] = dns->socks[--dns->nsocks];
		}
		return;
	}
	if (i < dns->nsocks) {
		if (dns->socks[i].events != events &&
		    ev_fd_mod(dns->loop, fd, events) == -1)
			log_warn("dns: ev_fd_mod");
		dns->socks[i].events = events;
		return;
	}
	/* Not watched: the query times out and ends as TEMPFAIL. */
	if (ev_fd_add(dns->loop, fd, events, dns_on_sock, dns) == -1) {
		log_warn("dns: ev_fd_add");
		return;
	}
	if (dns->nsocks == dns->capsocks) {
		dns->capsocks = dns->capsocks ? dns->capsocks * 2 : 4;
		dns->socks = xreallocarray(dns->socks, dns->capsocks,
		    sizeof(*dns->socks));
	}
	dns->socks[dns->nsocks].fd = fd;
	dns->socks[dns->nsocks++].events = events;
}

static void
dns_on_sock(int fd, int events, void *arg)
{
	struct dns *dns = arg;

	ares_process_fd(dns->ch,
	    (events & (EV_READ | EV_ERROR)) ? fd : ARES_SOCKET_BAD,
	    (events & EV_WRITE) ? fd : ARES_SOCKET_BAD);
	dns_rearm(dns);
}

static void
dns_on_ares_timer(void *arg)
{
	struct dns *dns = arg;

	ares_process_fd(dns->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_rearm(dns);
}

/*
 * The answer to a query made by hand (MX, TLSA, TXT): its status and AD
 * bit, then parse into the entry's result.
 */
static void
raw_done(void *arg, int status, unsigned char *abuf, int alen,
    struct dns_result *(*parse)(int, const unsigned char *, int, long *),
    const char *label)
{
	struct dns_entry *e = arg;
	struct dns_result *res;
	long ttl;
	bool secure;

	dns_qid_release(e->dns, e->qid);
	if (status == ARES_EDESTRUCTION || e->dns->dead)
		return;
	status = raw_status(status, abuf, alen, &secure);
	res = parse(status, abuf, alen, &ttl);
	res->secure = secure && res->status != DNS_TEMPFAIL;
	metrics_inc(METRIC_DNS, (const char *[]){ label,
	    dns_status_to_text(res->status) });
	dns_entry_done(e, res, ttl);
	dns_result_unref(res);
}

static void
dns_on_mx(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	(void)timeouts;
	raw_done(arg, status, abuf, alen, mx_result, "MX");
}

static void
dns_on_tlsa(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	(void)timeouts;
	raw_done(arg, status, abuf, alen, tlsa_result, "TLSA");
}

static void
dns_on_txt(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	(void)timeouts;
	raw_done(arg, status, abuf, alen, txt_result, "TXT");
}

/*
 * One half (AAAA: half[0], A: half[1]) of a secure address lookup.  The
 * result is secure only when each answer came with AD or failed (and
 * one did not) (RFC 7672 2.2.2: the addresses of a host are used for
 * DANE only if validated; a failed half adds none).
 */
static void
dns_on_saddr(void *arg, int status, int timeouts, unsigned char *abuf,
    int alen)
{
	struct addr_half *h = arg;
	struct dns_entry *e = h->e;
	struct dns_result *res;
	long ttl;
	bool secure, dead;

	(void)timeouts;
	dns_qid_release(e->dns, h->qid);
	dead = status == ARES_EDESTRUCTION || e->dns->dead;
	if (!dead) {
		status = raw_status(status, abuf, alen, &secure);
		h->res = saddr_half_result(status, abuf, alen,
		    h == &e->half[0] ? AF_INET6 : AF_INET, &h->ttl);
		h->res->secure = secure && h->res->status != DNS_TEMPFAIL;
		metrics_inc(METRIC_DNS, (const char *[]){
		    h == &e->half[0] ? "AAAA" : "A",
		    dns_status_to_text(h->res->status) });
	}
	if (--e->halves_left > 0 && !dead)
		return;
	if (dead) {
		/* Going away: free what either half holds. */
		for (int i = 0; i < 2; i++) {
			dns_result_unref(e->half[i].res);
			e->half[i].res = NULL;
		}
		return;
	}
	/*
	 * A half that failed (SERVFAIL: maybe bogus) gives no address: the
	 * other half's addresses are secure when its answer was.  Calling
	 * the pair insecure would let whoever can break one answer turn
	 * DANE off for the host (t_dane bogus_aaaa).
	 */
	secure = true;
	for (int i = 0; i < 2; i++)
		if (!e->half[i].res->secure &&
		    e->half[i].res->status != DNS_TEMPFAIL)
			secure = false;
	res = addr_pair(e->half[0].res, e->half[0].ttl, e->half[1].res,
	    e->half[1].ttl, &ttl);
	e->half[0].res = e->half[1].res = NULL;
	res->secure = secure && res->status != DNS_TEMPFAIL;
	dns_entry_done(e, res, ttl);
	dns_result_unref(res);
}

/*
 * Send a query for name and type with the AD bit set (RFC 6840 5.7: a
 * validating resolver then says in AD whether it validated the answer),
 * with an EDNS OPT record (RFC 6891) when edns_psz > 0.  ares_query()
 * cannot set AD, so the query is made here and sent with ares_send(),
 * which keeps its ID: a random one (RFC 5452 9.2), not one of our other
 * queries in flight, stored in *qid for the callback to release.  cb may
 * run before this returns.
 */
static void
dns_send_ad(struct dns *dns, const char *name, int type, int edns_psz,
    ares_callback cb, void *arg, uint16_t *qid)
{
	unsigned char *q;
	int qlen, rc;

	*qid = dns_qid_take(dns);
	if ((rc = ares_create_query(name, ns_c_in, type, *qid, 1, &q, &qlen,
	    edns_psz)) != ARES_SUCCESS) {
		cb(arg, rc, 0, NULL, 0);
		return;
	}
	if (qlen < 12) {
		ares_free_string(q);
		cb(arg, ARES_EBADNAME, 0, NULL, 0);
		return;
	}
	q[3] |= DNS_HDR_AD;
	ares_send(dns->ch, q, qlen, cb, arg);	/* copies q */
	ares_free_string(q);
}

static uint16_t
dns_qid_take(struct dns *dns)
{
	uint32_t id = dns_random(DNS_QIDS);

	/* At most DNS_INFLIGHT_MAX * 2 are taken: a free one is near. */
	while (dns->qids[id / 8] & (1u << (id % 8)))
		id = (id + 1) % DNS_QIDS;
	dns->qids[id / 8] |= (uint8_t)(1u << (id % 8));
	return (uint16_t)id;
}

static void
dns_qid_release(struct dns *dns, uint16_t id)
{
	dns->qids[id / 8] &= (uint8_t)~(1u << (id % 8));
}

/*
 * The status of an answer to a hand-made query, mapped from its RCODE
 * as ares_query() does (NOERROR with answers ARES_SUCCESS, without
 * ARES_ENODATA; NXDOMAIN ARES_ENOTFOUND), any other RCODE a failure;
 * *secure: the AD bit.  c-ares itself already turns SERVFAIL, REFUSED and
 * NOTIMP into a try of the next server, then ARES_ECONNREFUSED.
 */
static int
raw_status(int status, const unsigned char *abuf, int alen, bool *secure)
{
	*secure = false;
	if (status != ARES_SUCCESS)
		return status;
	if (abuf == NULL || alen < 12)
		return ARES_EBADRESP;
	*secure = (abuf[3] & DNS_HDR_AD) != 0;
	switch (abuf[3] & 0x0f) {
	case ns_r_noerror:
		return abuf[6] != 0 || abuf[7] != 0 ? ARES_SUCCESS :
		    ARES_ENODATA;
	case ns_r_nxdomain:
		return ARES_ENOTFOUND;
	case ns_r_servfail:
		return ARES_ESERVFAIL;
	case ns_r_refused:
		return ARES_EREFUSED;
	case ns_r_formerr:
		return ARES_EFORMERR;
	case ns_r_notimpl:
		return ARES_ENOTIMP;
	default:
		return ARES_EBADRESP;
	}
}

/*
 * A query that failed or found nothing (status not ARES_SUCCESS): the
 * result, and in *ttl how long to keep it (RFC 2308 5 when the answer has
 * an SOA, never more than DNS_TTL_NEG).
 */
static struct dns_result *
neg_result(int status, const unsigned char *abuf, int alen, long *ttl)
{
	struct dns_result *res;

	res = dns_result_new(dns_map_status(status),
	    dns_status_errtext(status));
	*ttl = abuf != NULL && alen > 0 ?
	    wire_ttl(abuf, (size_t)alen, true) : -1;
	if (*ttl < 0 || *ttl > DNS_TTL_NEG)
		*ttl = DNS_TTL_NEG;
	return res;
}

/*
 * What a TLSA query that ended with status (mapped by raw_status()) and
 * the answer means: every TLSA record of the answer section, and in *ttl
 * how long to keep them.  Pure, like mx_result().
 */
static struct dns_result *
tlsa_result(int status, const unsigned char *abuf, int alen, long *ttl)
{
	struct dns_result *res;

	if (status != ARES_SUCCESS)
		return neg_result(status, abuf, alen, ttl);
	res = dns_result_new(DNS_OK, "");
	if (wire_tlsa(abuf, (size_t)alen, res) == -1) {
		dns_result_unref(res);
		*ttl = 0;
		return dns_result_new(DNS_TEMPFAIL, "malformed TLSA answer");
	}
	if (res->ntlsa == 0) {
		/* No TLSA record in the answer (a CNAME alone): NODATA. */
		dns_result_unref(res);
		return neg_result(ARES_ENODATA, abuf, alen, ttl);
	}
	if ((*ttl = wire_ttl(abuf, (size_t)alen, false)) < 0)
		*ttl = DNS_TTL_DEFAULT;
	return res;
}

/*
 * What a TXT query means: one string per record, its character-strings
 * joined without separator (a new record starts at record_start).  Pure.
 */
static struct dns_result *
txt_result(int status, const unsigned char *abuf, int alen, long *ttl)
{
	struct dns_result *res;
	struct ares_txt_ext *reply = NULL, *t;
	size_t n = 0, len = 0;

	if (status == ARES_SUCCESS &&
	    (status = ares_parse_txt_reply_ext(abuf, alen, &reply)) ==
	    ARES_EBADNAME)
		status = ARES_EBADRESP;
	if (status == ARES_SUCCESS && reply == NULL)
		status = ARES_ENODATA;
	if (status != ARES_SUCCESS)
		return neg_result(status, abuf, alen, ttl);

	for (t = reply; t != NULL; t = t->next)
		if (t->record_start || t == reply)
			n++;
	res = dns_result_new(DNS_OK, "");
	res->txt = xcalloc(n, sizeof(*res->txt));
	for (t = reply; t != NULL; t = t->next) {
		char **s;

		if (t->record_start || t == reply) {
			res->ntxt++;
			len = 0;
		}
		s = &res->txt[res->ntxt - 1];
		*s = xreallocarray(*s, len + t->length + 1, 1);
		memcpy(*s + len, t->txt, t->length);
		len += t->length;
		(*s)[len] = '\0';
	}
	ares_free_data(reply);
	if ((*ttl = wire_ttl(abuf, (size_t)alen, false)) < 0)
		*ttl = DNS_TTL_DEFAULT;
	return res;
}

/*
 * One half of a secure address lookup: the addresses of family in the
 * answer (CNAMEs followed by c-ares), port 0, and in *ttl the smallest
 * TTL of them and the CNAMEs.  Pure.
 */
static struct dns_result *
saddr_half_result(int status, const unsigned char *abuf, int alen,
    int family, long *ttl)
{
	struct dns_result *res;
	struct ares_addrttl *a4 = NULL;
	struct ares_addr6ttl *a6 = NULL;
	int n = 0;

	if (status == ARES_SUCCESS) {
		/* An address record takes at least 16 octets. */
		n = alen / 16 + 1;
		if (family == AF_INET) {
			a4 = xcalloc((size_t)n, sizeof(*a4));
			status = ares_parse_a_reply(abuf, alen, NULL, a4, &n);
		} else {
			a6 = xcalloc((size_t)n, sizeof(*a6));
			status = ares_parse_aaaa_reply(abuf, alen, NULL, a6,
			    &n);
		}
		if (status == ARES_EBADNAME)
			status = ARES_EBADRESP;
		if (status == ARES_SUCCESS && n <= 0)
			status = ARES_ENODATA;
	}
	if (status != ARES_SUCCESS) {
		free(a4);
		free(a6);
		res = dns_result_new(dns_map_status(status),
		    dns_status_errtext(status));
		*ttl = DNS_TTL_NEG;
		return res;
	}
	res = dns_result_new(DNS_OK, "");
	res->addrs = xcalloc((size_t)n, sizeof(*res->addrs));
	*ttl = -1;
	for (int i = 0; i < n; i++) {
		struct sockaddr_storage *ss = &res->addrs[res->naddrs++];

		ss->ss_family = (sa_family_t)family;
		if (family == AF_INET) {
			((struct sockaddr_in *)ss)->sin_addr = a4[i].ipaddr;
			addr_ttl_min(ttl, a4[i].ttl);
		} else {
			memcpy(&((struct sockaddr_in6 *)ss)->sin6_addr,
			    &a6[i].ip6addr, sizeof(a6[i].ip6addr));
			addr_ttl_min(ttl, a6[i].ttl);
		}
	}
	free(a4);
	free(a6);
	return res;
}

/*
 * What an MX query that c-ares ended with status and the answer (abuf,
 * alen; may be NULL) means: the result, and in *ttl how many seconds to
 * keep it.  Pure: tests/fuzz/fuzz_dns_answer.c feeds it raw answers.
 */
static struct dns_result *
mx_result(int status, const unsigned char *abuf, int alen, long *ttl)
{
	struct dns_result *res;
	struct ares_mx_reply *reply = NULL, *m;
	size_t n = 0, nnull = 0;

	/*
	 * A name the parser cannot read is a bad answer, not a name that
	 * cannot exist: ARES_EBADNAME would bounce the mail as NXDOMAIN.
	 */
	if (status == ARES_SUCCESS &&
	    (status = ares_parse_mx_reply(abuf, alen, &reply)) == ARES_EBADNAME)
		status = ARES_EBADRESP;
	if (status != ARES_SUCCESS)
		return neg_result(status, abuf, alen, ttl);

	for (m = reply; m != NULL; m = m->next)
		n++;
	res = dns_result_new(DNS_OK, "");
	res->mx = xcalloc(n, sizeof(*res->mx));
	for (m = reply; m != NULL; m = m->next) {
		size_t len = strlen(m->host);

		if (len > 0 && m->host[len - 1] == '.')
			len--;
		if (len == 0) {
			nnull++;	/* RFC 7505 "." */
			continue;
		}
		res->mx[res->nmx].host = xstrndup(m->host, len);
		res->mx[res->nmx++].pref = m->priority;
	}
	ares_free_data(reply);
	if (res->nmx == 0 && nnull == 0) {
		/* No MX record in the answer (a CNAME alone): NODATA. */
		dns_result_unref(res);
		return mx_result(ARES_ENODATA, abuf, alen, ttl);
	}
	if (res->nmx == 0) {
		res->status = DNS_NULLMX;
		res->errtext = "null MX (RFC 7505): domain accepts no mail";
	} else
		qsort(res->mx, res->nmx, sizeof(*res->mx), dns_mx_cmp);
	if ((*ttl = wire_ttl(abuf, (size_t)alen, false)) < 0)
		*ttl = DNS_TTL_DEFAULT;
	for (size_t i = 0; i < res->nmx; i++)
		res->mx[i].ttl = (unsigned)*ttl;
	return res;
}

static void
dns_on_addr(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct addr_half *h = arg;
	struct dns_entry *e = h->e;
	struct dns_result *res;
	long ttl;

	(void)timeouts;
	h->status = status;
	h->ai = ai;
	if (--e->halves_left > 0 && status != ARES_EDESTRUCTION &&
	    !e->dns->dead)
		return;
	if (status == ARES_EDESTRUCTION || e->dns->dead) {
		/* Going away: free what either half holds. */
		for (int i = 0; i < 2; i++)
			if (e->half[i].ai != NULL) {
				ares_freeaddrinfo(e->half[i].ai);
				e->half[i].ai = NULL;
			}
		return;
	}
	res = addr_result_pair(e->half[0].status, e->half[0].ai,
	    e->half[1].status, e->half[1].ai, &ttl);
	for (int i = 0; i < 2; i++)
		metrics_inc(METRIC_DNS, (const char *[]){ i == 0 ? "AAAA" : "A",
		    dns_status_to_text(dns_map_status(e->half[i].status)) });
	for (int i = 0; i < 2; i++)
		if (e->half[i].ai != NULL) {
			ares_freeaddrinfo(e->half[i].ai);
			e->half[i].ai = NULL;
		}
	dns_entry_done(e, res, ttl);
	dns_result_unref(res);
}

/*
 * The two halves of an address lookup (AAAA: s6/ai6, A: s4/ai4) as one
 * result: the addresses of both (IPv6 first) when either has some, kept
 * no longer than DNS_TTL_NEG when the other failed for now; else a
 * temporary failure when either failed for now (never "no address", which
 * bounces), NXDOMAIN when both said so, else no data.  Pure, like
 * addr_result().
 */
static struct dns_result *
addr_result_pair(int s6, const struct ares_addrinfo *ai6, int s4,
    const struct ares_addrinfo *ai4, long *ttl)
{
	struct dns_result *r6, *r4;
	long t6, t4;

	r6 = addr_result(s6, ai6, &t6);
	r4 = addr_result(s4, ai4, &t4);
	return addr_pair(r6, t6, r4, t4, ttl);
}

/*
 * The results of the AAAA half (r6, kept t6 seconds) and of the A half
 * as one, as addr_result_pair() says.  Takes both references.
 */
static struct dns_result *
addr_pair(struct dns_result *r6, long t6, struct dns_result *r4, long t4,
    long *ttl)
{
	struct dns_result *r[2] = { r6, r4 }, *res;
	long t[2] = { t6, t4 };

	if (r[0]->status == DNS_OK || r[1]->status == DNS_OK) {
		res = dns_result_new(DNS_OK, "");
		res->addrs = xcalloc(r[0]->naddrs + r[1]->naddrs,
		    sizeof(*res->addrs));
		*ttl = -1;
		for (int i = 0; i < 2; i++) {
			if (r[i]->status == DNS_OK) {
				memcpy(res->addrs + res->naddrs, r[i]->addrs,
				    r[i]->naddrs * sizeof(*res->addrs));
				res->naddrs += r[i]->naddrs;
				if (*ttl < 0 || t[i] < *ttl)
					*ttl = t[i];
			}
		}
		if (r[0]->status == DNS_TEMPFAIL || r[1]->status == DNS_TEMPFAIL)
			if (*ttl > DNS_TTL_NEG)
				*ttl = DNS_TTL_NEG;
	} else {
		int i = r[0]->status == DNS_TEMPFAIL ? 0 :
		    r[1]->status == DNS_TEMPFAIL ? 1 :
		    r[0]->status == DNS_NXDOMAIN && r[1]->status ==
		    DNS_NXDOMAIN ? 0 : r[0]->status == DNS_NODATA ? 0 : 1;

		res = r[i];
		res->refs++;
		*ttl = DNS_TTL_NEG;
	}
	dns_result_unref(r[0]);
	dns_result_unref(r[1]);
	return res;
}

/*
 * What an address lookup that c-ares ended with status and ai (may be
 * NULL; not freed here) means: the result, and in *ttl how many seconds
 * to keep it.  Pure: tests/fuzz/fuzz_dns_answer.c feeds it what c-ares
 * makes of raw answers.
 */
static struct dns_result *
addr_result(int status, const struct ares_addrinfo *ai, long *ttl)
{
	struct dns_result *res;
	struct ares_addrinfo_node *node;
	struct ares_addrinfo_cname *cn;
	size_t n = 0;

	*ttl = -1;
	if (status != ARES_SUCCESS || ai == NULL) {
		*ttl = DNS_TTL_NEG;
		return dns_result_new(dns_map_status(status),
		    dns_status_errtext(status));
	}

	for (node = ai->nodes; node != NULL; node = node->ai_next)
		n++;
	res = dns_result_new(DNS_OK, "");
	res->addrs = xcalloc(n, sizeof(*res->addrs));
	/* IPv6 first, then IPv4, each in the order received. */
	for (int pass = 0; pass < 2; pass++) {
		int family = pass == 0 ? AF_INET6 : AF_INET;

		for (node = ai->nodes; node != NULL; node = node->ai_next) {
			struct sockaddr_storage *ss = &res->addrs[res->naddrs];

			if (node->ai_family != family || node->ai_addr == NULL ||
			    node->ai_addrlen > sizeof(*ss))
				continue;
			memcpy(ss, node->ai_addr, node->ai_addrlen);
			if (family == AF_INET6)
				((struct sockaddr_in6 *)ss)->sin6_port = 0;
			else
				((struct sockaddr_in *)ss)->sin_port = 0;
			res->naddrs++;
			addr_ttl_min(ttl, node->ai_ttl);
		}
	}
	for (cn = ai->cnames; cn != NULL; cn = cn->next)
		addr_ttl_min(ttl, cn->ttl);
	if (res->naddrs == 0) {
		res->status = DNS_NODATA;
		res->errtext = dns_status_errtext(ARES_ENODATA);
		*ttl = DNS_TTL_NEG;
	}
	return res;
}

/*
 * *ttl (-1: none yet) becomes the smaller of it and t.  c-ares gives a
 * TTL over 2^31 - 1 as a negative int: it means 0 (RFC 2181 8).
 */
static void
addr_ttl_min(long *ttl, int t)
{
	if (t < 0)
		t = 0;
	if (*ttl < 0 || t < *ttl)
		*ttl = t;
}

static enum dns_status
dns_map_status(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return DNS_OK;
	case ARES_ENODATA:
		return DNS_NODATA;
	case ARES_ENOTFOUND:
	case ARES_EBADNAME:	/* cannot exist in the DNS */
		return DNS_NXDOMAIN;
	default:
		return DNS_TEMPFAIL;
	}
}

static const char *
dns_status_errtext(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return "";
	case ARES_ENODATA:
		return "no records of that type";
	case ARES_ENOTFOUND:
		return "NXDOMAIN";
	case ARES_EBADNAME:
		return "invalid name";
	case ARES_ESERVFAIL:
		return "SERVFAIL";
	case ARES_EREFUSED:
		return "REFUSED";
	case ARES_ETIMEOUT:
		return "timeout";
	case ARES_ECONNREFUSED:
		/*
		 * c-ares 1.18 moves on to the next server after SERVFAIL,
		 * REFUSED or NOTIMP and, with none left, ends the query with
		 * its initial ARES_ECONNREFUSED: we cannot tell them apart.
		 */
		return "SERVFAIL, REFUSED or connection refused";
	default:
		return ares_strerror(status);
	}
}

static int
dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	return x->pref < y->pref ? -1 : x->pref > y->pref;
}

/*
 * Uniform in [0, n), n > 0: MX shuffling and the ids of the queries made
 * by hand, which must not be guessable (off-path spoofing of answers).
 */
static uint32_t
dns_random(uint32_t n)
{
#if defined(__OpenBSD__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__APPLE__) || (defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 36)))
	return arc4random_uniform(n);
#else
	/* The kernel's generator, with rejection for a uniform result. */
	uint32_t x, lim = UINT32_MAX - UINT32_MAX % n;

	do {
		if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x))
			fatalx("getrandom failed");
	} while (x >= lim);
	return x % n;
#endif
}

/* Skip a possibly compressed name (RFC 1035 4.1.4); pointers not followed. */
static int
wire_skip_name(const unsigned char *p, size_t len, size_t *off)
{
	size_t o = *off;

	for (unsigned labels = 0; labels < 128; labels++) {
		unsigned c;

		if (o >= len)
			return -1;
		c = p[o];
		if (c == 0) {
			*off = o + 1;
			return 0;
		}
		if ((c & 0xc0) == 0xc0) {
			if (len - o < 2)
				return -1;
			*off = o + 2;
			return 0;
		}
		if ((c & 0xc0) != 0 || c >= len - o)
			return -1;
		o += 1 + c;
	}
	return -1;
}

/*
 * The TTL to cache a message for, in seconds: the smallest TTL of the
 * answer section, or for a negative answer min(SOA TTL, SOA MINIMUM)
 * from the authority section (RFC 2308 5).  -1 when the message cannot
 * be walked or has no such record.
 */
static long
wire_ttl(const unsigned char *p, size_t len, bool negative)
{
	size_t off = 12;
	unsigned qd, an, ns;
	long ttl = -1;

	if (len < 12)
		return -1;
	qd = (unsigned)p[4] << 8 | p[5];
	an = (unsigned)p[6] << 8 | p[7];
	ns = (unsigned)p[8] << 8 | p[9];
	for (unsigned i = 0; i < qd; i++) {
		if (wire_skip_name(p, len, &off) == -1 || len - off < 4)
			return -1;
		off += 4;
	}
	for (unsigned i = 0; i < an + ns; i++) {
		unsigned type, rdlen;
		uint32_t t;

		if (wire_skip_name(p, len, &off) == -1 || len - off < 10)
			return -1;
		type = (unsigned)p[off] << 8 | p[off + 1];
		t = (uint32_t)p[off + 4] << 24 | (uint32_t)p[off + 5] << 16 |
		    (uint32_t)p[off + 6] << 8 | p[off + 7];
		rdlen = (unsigned)p[off + 8] << 8 | p[off + 9];
		off += 10;
		if (rdlen > len - off)
			return -1;
		if (t > INT32_MAX)
			t = 0;	/* RFC 2181 8 */
		if (i < an) {
			if (!negative && (ttl < 0 || (long)t < ttl))
				ttl = (long)t;
		} else if (negative && type == ns_t_soa) {
			size_t r = off, end = off + rdlen;
			uint32_t min;

			if (wire_skip_name(p, end, &r) == -1 ||
			    wire_skip_name(p, end, &r) == -1 || end - r < 20)
				return -1;
			min = (uint32_t)p[r + 16] << 24 |
			    (uint32_t)p[r + 17] << 16 |
			    (uint32_t)p[r + 18] << 8 | p[r + 19];
			ttl = (long)(min < t ? min : t);
		}
		off += rdlen;
	}
	return ttl;
}

/*
 * Every TLSA record (RFC 6698 2.1: usage, selector, matching type, data)
 * of the answer section of p into res, whatever its owner (the target
 * of a CNAME in the same answer is covered by the same AD bit).  Their
 * data points into a copy of p.  -1 when the message cannot be walked
 * or a TLSA record has no data (fewer than 4 octets).
 */
static int
wire_tlsa(const unsigned char *p, size_t len, struct dns_result *res)
{
	size_t off = 12;
	unsigned qd, an;

	if (len < 12)
		return -1;
	qd = (unsigned)p[4] << 8 | p[5];
	an = (unsigned)p[6] << 8 | p[7];
	/* A record takes at least 11 octets: no more than fit. */
	if (an > len / 11)
		return -1;
	for (unsigned i = 0; i < qd; i++) {
		if (wire_skip_name(p, len, &off) == -1 || len - off < 4)
			return -1;
		off += 4;
	}
	res->raw = xmalloc(len);
	memcpy(res->raw, p, len);
	res->tlsa = xcalloc(an > 0 ? an : 1, sizeof(*res->tlsa));
	for (unsigned i = 0; i < an; i++) {
		unsigned type, class, rdlen;

		if (wire_skip_name(p, len, &off) == -1 || len - off < 10)
			return -1;
		type = (unsigned)p[off] << 8 | p[off + 1];
		class = (unsigned)p[off + 2] << 8 | p[off + 3];
		rdlen = (unsigned)p[off + 8] << 8 | p[off + 9];
		off += 10;
		if (rdlen > len - off)
			return -1;
		if (type == ns_t_tlsa && class == ns_c_in) {
			struct tlsa_rr *rr = &res->tlsa[res->ntlsa++];

			if (rdlen < 4)
				return -1;
			rr->usage = p[off];
			rr->selector = p[off + 1];
			rr->mtype = p[off + 2];
			rr->data = res->raw + off + 3;
			rr->len = rdlen - 3;
		}
		off += rdlen;
	}
	return 0;
}
