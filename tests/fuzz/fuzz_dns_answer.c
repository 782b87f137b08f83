/*
 * fuzz_dns_answer: a DNS answer as delivery gets it.  The bytes become
 * the answers of a fake name server that c-ares talks to through its
 * socket functions (no network), so they go through c-ares' own parsers
 * (ares_query with ares_parse_mx_reply for MX, ares_getaddrinfo for the
 * A and AAAA of an exchanger) and then through dns.c's mapping of what
 * c-ares gives (mx_result, mx_shuffle, addr_result, wire_ttl), reached by
 * including dns.c so that its static functions stay static.
 *
 * Input: one flag byte (bit 0: address lookup, else MX), then the
 * answers to the queries c-ares sends, in order (A before AAAA), each:
 *	rcode:1  ancount:2  nscount:2  arcount:2  length:2  records
 * where the rcode byte has the RCODE in its low 4 bits, 0x20 for TC
 * (c-ares asks again over TCP) and 0x40 for AA.  A response is built
 * from the query's id and question and those fields, so the records may
 * point (0xc0 0x0c) at the name asked.  Queries past the last answer get
 * REFUSED.
 *
 * Promises checked: MX results are sorted by preference, names are
 * printable ASCII without the root's trailing dot, no more exchangers than
 * records; a null MX result comes only from an answer whose MX records
 * are all "."; equal preferences are shuffled among themselves only;
 * addresses are IPv6 then IPv4 with port 0; NXDOMAIN (a bounce) only
 * when the server said so; a failure has a text; the TTLs to cache are
 * in range.  The answer to the MX query also goes through the parsers of
 * the hand-made queries (raw_status, tlsa_result with wire_tlsa,
 * txt_result, saddr_half_result), which must take any bytes: raw_status
 * maps NOERROR and NXDOMAIN as ares_query did, TLSA records have at
 * least one octet of data, inside the answer.
 *
 * make check replays tests/fuzz/corpus/dns_answer through replay.c;
 * configure --enable-fuzzing builds tests/fuzz/lf/fuzz_dns_answer.
 */
#include "../../src/dns.c"

#include <sys/uio.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FZ_QNAME	"mx.example.test"
#define FZ_ROUNDS	16	/* reads per input */
#define FZ_MSG_MAX	2048
#define FZ_PENDING	4	/* queries (and answers) in flight */

struct fz_msg {
	ares_socket_t	 fd;		/* sent on, or to be read from */
	uint8_t		 b[2 + FZ_MSG_MAX];	/* TCP: length first */
	size_t		 len;
	size_t		 off;		/* read so far */
};

struct fz {
	const uint8_t	*in;		/* answers left in the input */
	size_t		 inlen;
	struct fz_msg	 query[FZ_PENDING];	/* sent, not answered */
	size_t		 nquery;
	struct fz_msg	 reply[FZ_PENDING];	/* answers to hand over */
	size_t		 nreply;
	bool		 done;		/* the callback ran */
	bool		 nxdomain;	/* an answer said NXDOMAIN */
};

static struct fz fz;
/* The sockets to the server, which c-ares may keep from one input on. */
static ares_socket_t fz_udp = ARES_SOCKET_BAD, fz_tcp = ARES_SOCKET_BAD;

static ares_socket_t
fz_socket(int af, int type, int proto, void *arg)
{
	ares_socket_t fd;

	(void)arg;
	if ((fd = socket(af, type | SOCK_CLOEXEC, proto)) == -1)
		return ARES_SOCKET_BAD;
	if (type == SOCK_STREAM)
		fz_tcp = fd;
	else
		fz_udp = fd;
	return fd;
}

/* Drop what fd would still have read. */
static int
fz_close(ares_socket_t fd, void *arg)
{
	size_t keep = 0;

	(void)arg;
	for (size_t i = 0; i < fz.nreply; i++)
		if (fz.reply[i].fd != fd)
			fz.reply[keep++] = fz.reply[i];
	fz.nreply = keep;
	if (fd == fz_tcp)
		fz_tcp = ARES_SOCKET_BAD;
	if (fd == fz_udp)
		fz_udp = ARES_SOCKET_BAD;
	return close(fd);
}

static int
fz_connect(ares_socket_t fd, const struct sockaddr *sa, ares_socklen_t len,
    void *arg)
{
	(void)fd;
	(void)sa;
	(void)len;
	(void)arg;
	return 0;
}

/* The server's address: c-ares ignores UDP answers from anyone else. */
static void
fz_server(struct sockaddr *from, ares_socklen_t *fromlen)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(53);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (from != NULL && fromlen != NULL && *fromlen >= sizeof(sin)) {
		memcpy(from, &sin, sizeof(sin));
		*fromlen = sizeof(sin);
	}
}

static ares_ssize_t
fz_recvfrom(ares_socket_t fd, void *buf, size_t len, int flags,
    struct sockaddr *from, ares_socklen_t *fromlen, void *arg)
{
	struct fz_msg *m;
	size_t i;

	(void)flags;
	(void)arg;
	for (i = 0; i < fz.nreply && fz.reply[i].fd != fd; i++)
		;
	if (i == fz.nreply) {
		errno = EAGAIN;
		return -1;
	}
	m = &fz.reply[i];
	if (m->len - m->off < len)
		len = m->len - m->off;
	memcpy(buf, m->b + m->off, len);
	if ((m->off += len) == m->len)
		memmove(m, m + 1, (--fz.nreply - i) * sizeof(*m));
	fz_server(from, fromlen);
	return (ares_ssize_t)len;
}

static ares_ssize_t
fz_sendv(ares_socket_t fd, const struct iovec *iov, int n, void *arg)
{
	struct fz_msg *m;
	size_t total = 0;

	(void)arg;
	if (fz.nquery == FZ_PENDING) {
		errno = EAGAIN;
		return -1;
	}
	m = &fz.query[fz.nquery++];
	m->fd = fd;
	m->len = 0;
	for (int i = 0; i < n; i++) {
		size_t take = iov[i].iov_len;

		if (take > FZ_MSG_MAX - m->len)
			take = FZ_MSG_MAX - m->len;
		memcpy(m->b + m->len, iov[i].iov_base, take);
		m->len += take;
		total += iov[i].iov_len;
	}
	if (fd == fz_tcp && m->len >= 2) {
		memmove(m->b, m->b + 2, m->len - 2);
		m->len -= 2;
	}
	return (ares_ssize_t)total;
}

static const struct ares_socket_functions fz_funcs = {
	fz_socket, fz_close, fz_connect, fz_recvfrom, fz_sendv
};

/*
 * The next answer of the input to query q (REFUSED when none is left),
 * with its length first over TCP.
 */
static void
fz_answer(const struct fz_msg *q, struct fz_msg *r)
{
	uint8_t rcode = 5, counts[6] = { 0 }, *p = r->b;
	size_t rec = 0, qd;

	if (fz.inlen >= 9) {
		rcode = fz.in[0];
		memcpy(counts, fz.in + 1, 6);
		rec = (size_t)fz.in[7] << 8 | fz.in[8];
		fz.in += 9;
		fz.inlen -= 9;
		if (rec > fz.inlen)
			rec = fz.inlen;
	} else
		fz.inlen = 0;
	qd = q->len > 12 ? q->len - 12 : 0;
	if (12 + qd + rec > FZ_MSG_MAX)
		rec = FZ_MSG_MAX - 12 - qd;
	r->fd = q->fd;
	if (q->fd == fz_tcp) {
		p[0] = (uint8_t)((12 + qd + rec) >> 8);
		p[1] = (uint8_t)(12 + qd + rec);
		p += 2;
	}
	memset(p, 0, 12);
	if (q->len >= 2)
		memcpy(p, q->b, 2);	/* id */
	/* QR, opcode QUERY, AA and TC from the input, RD; RA, rcode. */
	p[2] = 0x81 | (rcode & 0x40 ? 0x04 : 0) | (rcode & 0x20 ? 0x02 : 0);
	p[3] = 0x80 | (rcode & 0x0f);
	p[5] = 1;
	memcpy(p + 6, counts, 6);
	memcpy(p + 12, q->b + 12, qd);
	memcpy(p + 12 + qd, fz.in, rec);
	r->len = (size_t)(p - r->b) + 12 + qd + rec;
	r->off = 0;
	fz.in += rec;
	fz.inlen -= rec;
	if ((rcode & 0x0f) == ns_r_nxdomain)
		fz.nxdomain = true;
}

/*
 * c-ares writes other bytes of a name as \DDD and a dot or backslash in
 * a label with a backslash; a space stays (dns.c finds no address for
 * such a name: the exchanger is skipped).
 */
static bool
printable_name(const char *s)
{
	size_t len = strlen(s), bs = 0;

	/* A last "." after an odd number of backslashes is in the label. */
	while (bs + 1 < len && s[len - 2 - bs] == '\\')
		bs++;
	if (len == 0 || (s[len - 1] == '.' && bs % 2 == 0))
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static void
check_ttl(long ttl, long max)
{
	if (ttl < 0 || ttl > max)
		abort();
}

/* Does the answer have MX records, all of them "."? */
static bool
all_null_mx(const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *reply = NULL, *m;
	bool all = true;

	if (ares_parse_mx_reply(abuf, alen, &reply) != ARES_SUCCESS)
		return false;
	for (m = reply; m != NULL; m = m->next)
		if (m->host[0] != '\0' && strcmp(m->host, ".") != 0)
			all = false;
	ares_free_data(reply);
	return all && reply != NULL;
}

static void
check_shuffle(const struct dns_result *res)
{
	struct dns_mx *mx;
	size_t n = res->nmx;

	mx = xreallocarray(NULL, n, sizeof(*mx));
	memcpy(mx, res->mx, n * sizeof(*mx));
	mx_shuffle(mx, n);
	for (size_t i = 0; i < n; i++) {
		size_t j;

		if (mx[i].pref != res->mx[i].pref)
			abort();
		/* The same exchanger, from the same preference. */
		for (j = 0; j < n && res->mx[j].host != mx[i].host; j++)
			;
		if (j == n || res->mx[j].pref != mx[i].pref)
			abort();
		for (j = 0; j < i; j++)
			if (mx[j].host == mx[i].host)
				abort();
	}
	free(mx);
}

/* The parsers of dns.c's hand-made queries on the same answer. */
static void
check_raw_parsers(int status, const unsigned char *abuf, int alen)
{
	struct dns_result *res;
	long ttl;
	bool secure;
	int raw;

	if (abuf == NULL || alen < 12)
		return;
	raw = raw_status(ARES_SUCCESS, abuf, alen, &secure);
	if (((abuf[3] & 0x0f) == ns_r_noerror ||
	    (abuf[3] & 0x0f) == ns_r_nxdomain) && raw != status)
		abort();
	if (raw != ARES_SUCCESS)
		return;

	res = tlsa_result(raw, abuf, alen, &ttl);
	if (res->errtext == NULL || res->status == DNS_NULLMX ||
	    (res->status == DNS_NXDOMAIN && !fz.nxdomain))
		abort();
	if (res->status == DNS_OK) {
		if (res->ntlsa == 0 || res->ntlsa > (size_t)alen / 11)
			abort();
		for (size_t i = 0; i < res->ntlsa; i++)
			if (res->tlsa[i].len == 0 ||
			    res->tlsa[i].data < res->raw + 12 ||
			    res->tlsa[i].data + res->tlsa[i].len >
			    res->raw + alen)
				abort();
		check_ttl(ttl, INT32_MAX);
	} else if (res->ntlsa != 0 && res->status != DNS_TEMPFAIL)
		abort();
	dns_result_unref(res);

	res = txt_result(raw, abuf, alen, &ttl);
	if (res->errtext == NULL ||
	    (res->status == DNS_OK) != (res->ntxt > 0))
		abort();
	for (size_t i = 0; i < res->ntxt; i++)
		if (res->txt[i] == NULL)
			abort();
	dns_result_unref(res);

	for (int k = 0; k < 2; k++) {
		int family = k == 0 ? AF_INET : AF_INET6;

		res = saddr_half_result(raw, abuf, alen, family, &ttl);
		if ((res->status == DNS_OK) != (res->naddrs > 0))
			abort();
		for (size_t i = 0; i < res->naddrs; i++)
			if (res->addrs[i].ss_family != family)
				abort();
		dns_result_unref(res);
	}
}

static void
fz_on_mx(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_result *res;
	long ttl;

	(void)arg;
	(void)timeouts;
	fz.done = true;
	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION)
		return;
	check_raw_parsers(status, abuf, alen);
	res = mx_result(status, abuf, alen, &ttl);
	/* Only the server's NXDOMAIN bounces mail: never a bad answer. */
	if (res->errtext == NULL ||
	    (res->status == DNS_NXDOMAIN && !fz.nxdomain))
		abort();
	switch (res->status) {
	case DNS_OK:
		if (res->nmx == 0 || abuf == NULL ||
		    res->nmx > (size_t)alen / 11)
			abort();
		for (size_t i = 0; i < res->nmx; i++)
			if (!printable_name(res->mx[i].host) ||
			    res->mx[i].pref > 0xffff ||
			    (i > 0 && res->mx[i - 1].pref > res->mx[i].pref))
				abort();
		check_shuffle(res);
		check_ttl(ttl, INT32_MAX);
		break;
	case DNS_NULLMX:
		if (res->nmx != 0 || !all_null_mx(abuf, alen))
			abort();
		check_ttl(ttl, INT32_MAX);
		break;
	default:
		if (res->nmx != 0 || res->errtext[0] == '\0')
			abort();
		check_ttl(ttl, DNS_TTL_NEG);
		break;
	}
	dns_result_unref(res);
}

/*
 * This answer as one half of an address lookup (addr_result_pair()):
 * with the other half failing for now, never a permanent "no address";
 * with the other half saying "no data", what this half says alone, and
 * its addresses in the same order.
 */
static void
check_pair(int status, const struct ares_addrinfo *ai)
{
	struct dns_result *one, *p;
	long t1, tp;

	one = addr_result(status, ai, &t1);
	p = addr_result_pair(status, ai, ARES_ESERVFAIL, NULL, &tp);
	if (p->status != (one->status == DNS_OK ? DNS_OK : DNS_TEMPFAIL) ||
	    tp > DNS_TTL_NEG)
		abort();
	dns_result_unref(p);
	p = addr_result_pair(ARES_ENODATA, NULL, status, ai, &tp);
	if ((one->status == DNS_NXDOMAIN ? DNS_NODATA : one->status) !=
	    p->status || p->naddrs != one->naddrs || (one->naddrs > 0 &&
	    memcmp(p->addrs, one->addrs, one->naddrs * sizeof(*p->addrs))
	    != 0))
		abort();
	dns_result_unref(p);
	dns_result_unref(one);
}

static void
fz_on_addr(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct dns_result *res;
	long ttl;

	(void)arg;
	(void)timeouts;
	fz.done = true;
	if (status == ARES_ECANCELLED || status == ARES_EDESTRUCTION) {
		if (ai != NULL)
			ares_freeaddrinfo(ai);
		return;
	}
	check_pair(status, ai);
	res = addr_result(status, ai, &ttl);
	if (ai != NULL)
		ares_freeaddrinfo(ai);
	if (res->errtext == NULL || res->nmx != 0 ||
	    (res->status == DNS_NXDOMAIN && !fz.nxdomain))
		abort();
	if (res->status == DNS_OK) {
		int family = AF_INET6;

		if (res->naddrs == 0)
			abort();
		for (size_t i = 0; i < res->naddrs; i++) {
			const struct sockaddr_storage *ss = &res->addrs[i];

			if (ss->ss_family == AF_INET && family == AF_INET6)
				family = AF_INET;
			if (ss->ss_family != family)
				abort();
			if (family == AF_INET6 ?
			    ((const struct sockaddr_in6 *)ss)->sin6_port != 0 :
			    ((const struct sockaddr_in *)ss)->sin_port != 0)
				abort();
		}
		check_ttl(ttl, INT32_MAX);
	} else {
		if (res->naddrs != 0 || res->addrs != NULL ||
		    res->errtext[0] == '\0')
			abort();
		check_ttl(ttl, DNS_TTL_NEG);
	}
	dns_result_unref(res);
}

static ares_channel
fz_channel(void)
{
	static ares_channel ch;
	struct ares_options opts;
	char lookups[] = "b";

	if (ch != NULL)
		return ch;
	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS)
		abort();
	memset(&opts, 0, sizeof(opts));
	opts.timeout = 1000;
	opts.tries = 1;
	opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	opts.lookups = lookups;		/* no hosts file */
	if (ares_init_options(&ch, &opts, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
	    ARES_OPT_FLAGS | ARES_OPT_DOMAINS | ARES_OPT_LOOKUPS) !=
	    ARES_SUCCESS ||
	    ares_set_servers_ports_csv(ch, "127.0.0.1:53") != ARES_SUCCESS)
		abort();
	ares_set_socket_functions(ch, &fz_funcs, NULL);
	return ch;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ares_channel ch = fz_channel();

	if (size < 1)
		return 0;
	memset(&fz, 0, sizeof(fz));
	fz.in = data + 1;
	fz.inlen = size - 1;
	if (data[0] & 1) {
		struct ares_addrinfo_hints hints;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_flags = ARES_AI_NOSORT;
		ares_getaddrinfo(ch, FZ_QNAME, NULL, &hints, fz_on_addr, NULL);
	} else
		ares_query(ch, FZ_QNAME, ns_c_in, ns_t_mx, fz_on_mx, NULL);
	for (int i = 0; i < FZ_ROUNDS && !fz.done; i++) {
		/* A query over TCP is written when its socket is writable. */
		if (fz.nquery == 0 && fz.nreply == 0 && fz_tcp != ARES_SOCKET_BAD)
			ares_process_fd(ch, ARES_SOCKET_BAD, fz_tcp);
		if (fz.nquery == 0 && fz.nreply == 0)
			break;
		for (size_t j = 0; j < fz.nquery; j++)
			if (fz.nreply < FZ_PENDING)
				fz_answer(&fz.query[j], &fz.reply[fz.nreply++]);
		fz.nquery = 0;
		ares_process_fd(ch, fz.reply[0].fd, ARES_SOCKET_BAD);
	}
	if (!fz.done)
		ares_cancel(ch);
	if (!fz.done)
		abort();
	return 0;
}
