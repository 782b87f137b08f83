/*
 * dnsd: a small authoritative DNS server for the tests (c-ares' MockServer
 * idea as a separate process).  It answers real DNS queries over UDP and
 * TCP on one loopback address and port from a zone file in the tests' own
 * format (see tests/world/README), and can be told to fail, delay or drop
 * answers per name and type.
 *
 * usage: dnsd -l ADDR:PORT -z ZONE [-p PIDFILE] [-q QUERYLOG] [-t SECONDS]
 *
 *   -l  127.0.0.1:5353 or [::1]:5353; port 0 picks a free port.  The port
 *       in use is always printed as "port N" on stdout (then flushed).
 *   -z  zone file; re-read on SIGHUP (a bad file keeps the old zone).
 *   -p  write the PID there, removed on a clean exit.
 *   -q  append one line "NAME TYPE" per query received (lower case, no
 *       trailing dot), flushed before the answer is sent: tests count
 *       queries with it.
 *   -t  lifetime: exit by itself after this many seconds (default 600).
 *
 * SIGTERM and SIGINT end it cleanly (exit 0).  Invariants: every byte of
 * a query is bounds-checked before use; an answer that does not fit in
 * 512 bytes over UDP goes out truncated (TC) so that the client retries
 * over TCP; a query that cannot be parsed at all is dropped.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define T_A		1
#define T_CNAME		5
#define T_MX		15
#define T_TXT		16
#define T_AAAA		28
#define T_TLSA		52
#define T_ANY		255

#define RC_NOERROR	0
#define RC_FORMERR	1
#define RC_SERVFAIL	2
#define RC_NXDOMAIN	3
#define RC_NOTIMP	4
#define RC_REFUSED	5

#define NAME_TEXT_MAX	256	/* 253 characters + slack, NUL included */
#define UDP_MAX		512	/* RFC 1035 4.2.1; no EDNS */
#define MSG_MAX		65535	/* largest answer we build (TCP: RFC 1035 4.2.2) */
#define TCP_QUERY_MAX	1024
#define MAX_TCP		16
#define MAX_PENDING	64
#define CNAME_HOPS	8
#define DEFAULT_TTL	300

enum action {
	ACT_SERVFAIL,
	ACT_REFUSED,
	ACT_DROP,
	ACT_DELAY,
};

struct rr {
	uint16_t	 type;
	uint32_t	 ttl;
	uint16_t	 pref;		/* MX */
	uint8_t		 addr[16];	/* A: 4 bytes, AAAA: 16 */
	char		*target;	/* MX, CNAME: "" is the root */
	uint8_t		 tlsa[3];	/* TLSA: usage, selector, mtype */
	uint8_t		*data;		/* TLSA: association data */
	size_t		 datalen;
};

struct rule {
	enum action	 action;
	uint16_t	 type;		/* 0 = every type */
	unsigned	 ms;		/* DELAY */
};

struct node {
	char		*name;		/* lower case, no trailing dot */
	bool		 wild;		/* "*.name": any name below */
	struct rr	*rr;
	size_t		 nrr;
	struct rule	*rules;
	size_t		 nrules;
};

struct zone {
	struct node	*nodes;
	size_t		 n;
};

struct buf {
	uint8_t		*p;
	size_t		 cap;
	size_t		 len;
	bool		 overflow;
};

struct tcpconn {
	int		 fd;		/* -1 = free slot */
	unsigned	 gen;
	uint8_t		 in[2 + TCP_QUERY_MAX];
	size_t		 inlen;
};

struct pending {
	bool		 used;
	uint64_t	 due;
	bool		 tcp;
	size_t		 conn;
	unsigned	 gen;
	struct sockaddr_storage to;
	socklen_t	 tolen;
	uint8_t		 data[2 + MSG_MAX];
	size_t		 len;
};

static volatile sig_atomic_t	got_term, got_hup;
static struct tcpconn		conns[MAX_TCP];
static struct pending		pend[MAX_PENDING];
static FILE			*qlog;

static void	 usage(void) __attribute__((noreturn));
static void	*xrealloc(void *, size_t, size_t);
static char	*xstrdup(const char *);
static uint64_t	 now_ms(void);
static void	 on_signal(int);
static int	 name_normalize(const char *, char *, size_t);
static int	 parse_type(const char *, uint16_t *);
static const char *type_to_text(uint16_t, char *, size_t);
static int	 parse_number(const char *, unsigned long, unsigned long *);
static int	 txt_join(char **, size_t, char **);
static int	 zone_line(struct zone *, char *, char *, size_t);
static int	 zone_load(const char *, struct zone *);
static void	 zone_free(struct zone *);
static struct node *zone_find(const struct zone *, const char *);
static void	 put8(struct buf *, uint8_t);
static void	 put16(struct buf *, uint16_t);
static void	 put32(struct buf *, uint32_t);
static void	 putbytes(struct buf *, const void *, size_t);
static void	 putname(struct buf *, const char *);
static void	 put_txt(struct buf *, const char *);
static void	 put_rr(struct buf *, const char *, const struct rr *);
static int	 answer(const struct zone *, const uint8_t *, size_t, bool,
		    struct buf *, unsigned *);
static int	 parse_listen(const char *, struct sockaddr_storage *,
		    socklen_t *);
static void	 set_nonblock(int);
static void	 pending_add(const uint8_t *, size_t, unsigned, bool, size_t,
		    const struct sockaddr_storage *, socklen_t);
static void	 send_tcp(size_t, const uint8_t *, size_t);
static void	 pending_run(int, uint64_t);
static void	 handle_udp(const struct zone *, int);
static void	 handle_tcp(const struct zone *, size_t);
static void	 tcp_close(size_t);

static void
usage(void)
{
	fprintf(stderr, "usage: dnsd -l addr:port -z zonefile [-p pidfile] "
	    "[-q querylog] [-t seconds]\n");
	exit(2);
}

static void *
xrealloc(void *p, size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size) {
		fprintf(stderr, "dnsd: overflow\n");
		exit(1);
	}
	if ((p = realloc(p, n * size == 0 ? 1 : n * size)) == NULL) {
		fprintf(stderr, "dnsd: out of memory\n");
		exit(1);
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = xrealloc(NULL, n, 1);

	memcpy(p, s, n);
	return p;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		got_hup = 1;
	else
		got_term = 1;
}

/*
 * Lower-case a zone or query name, drop one trailing dot ("." alone is
 * the root, ""), check label and total lengths (RFC 1035 2.3.4).
 */
static int
name_normalize(const char *in, char *out, size_t outlen)
{
	size_t len = strlen(in), i, label = 0;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len > 253 || len + 1 > outlen)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (++label > 63 || c <= ' ' || c >= 0x7f)
			return -1;
		out[i] = (char)tolower(c);
	}
	if (len > 0 && label == 0)
		return -1;
	out[len] = '\0';
	return 0;
}

static int
parse_type(const char *s, uint16_t *type)
{
	static const struct { const char *name; uint16_t type; } types[] = {
		{ "A", T_A }, { "AAAA", T_AAAA }, { "MX", T_MX },
		{ "CNAME", T_CNAME }, { "TXT", T_TXT }, { "TLSA", T_TLSA },
		{ "ANY", T_ANY },
	};

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (strcasecmp(s, types[i].name) == 0) {
			*type = types[i].type;
			return 0;
		}
	return -1;
}

static const char *
type_to_text(uint16_t type, char *buf, size_t len)
{
	switch (type) {
	case T_A:	return "A";
	case T_AAAA:	return "AAAA";
	case T_MX:	return "MX";
	case T_CNAME:	return "CNAME";
	case T_TXT:	return "TXT";
	case T_TLSA:	return "TLSA";
	case T_ANY:	return "ANY";
	default:
		snprintf(buf, len, "TYPE%u", (unsigned)type);
		return buf;
	}
}

static int
parse_number(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return -1;
	*out = v;
	return 0;
}

/*
 * The words of a TXT record, each one character-string of 1 to 255
 * octets, kept joined by single spaces (a word has none).
 */
static int
txt_join(char **word, size_t n, char **out)
{
	size_t len = 0;
	char *p;

	if (n == 0)
		return -1;
	for (size_t k = 0; k < n; k++) {
		if (strlen(word[k]) > 255)
			return -1;
		len += strlen(word[k]) + 1;
	}
	p = *out = xrealloc(NULL, len, 1);
	for (size_t k = 0; k < n; k++) {
		if (k > 0)
			*p++ = ' ';
		memcpy(p, word[k], strlen(word[k]));
		p += strlen(word[k]);
	}
	*p = '\0';
	return 0;
}

/*
 * TLSA data (RFC 6698 2.2): USAGE SELECTOR MTYPE HEX, each number 0 to
 * 255, the hex digits an even number (at least 2) of them.
 */
static int
tlsa_parse(char **tok, size_t n, struct rr *rr)
{
	unsigned long v;
	size_t hexlen;

	if (n != 4)
		return -1;
	for (int k = 0; k < 3; k++) {
		if (parse_number(tok[k], 255, &v) == -1)
			return -1;
		rr->tlsa[k] = (uint8_t)v;
	}
	hexlen = strlen(tok[3]);
	if (hexlen == 0 || hexlen % 2 != 0 || hexlen / 2 > 4096)
		return -1;
	rr->datalen = hexlen / 2;
	rr->data = xrealloc(NULL, rr->datalen, 1);
	for (size_t k = 0; k < rr->datalen; k++) {
		char byte[3] = { tok[3][2 * k], tok[3][2 * k + 1], '\0' };

		if (!isxdigit((unsigned char)byte[0]) ||
		    !isxdigit((unsigned char)byte[1])) {
			free(rr->data);
			rr->data = NULL;
			return -1;
		}
		rr->data[k] = (uint8_t)strtoul(byte, NULL, 16);
	}
	return 0;
}

/*
 * One zone line: NAME [TTL] TYPE ARGS...  The line is modified.  Returns
 * -1 with a message in err.
 */
static int
zone_line(struct zone *z, char *line, char *err, size_t errlen)
{
	char *tok[8], *save = NULL, *t, name[NAME_TEXT_MAX];
	size_t ntok = 0, i = 1;
	unsigned long ttl = DEFAULT_TTL, v;
	struct node *node = NULL;
	struct rr rr;
	struct rule rule;
	bool wild = false;
	const char *owner;

	if ((t = strchr(line, '#')) != NULL)
		*t = '\0';
	for (t = strtok_r(line, " \t\r\n", &save); t != NULL;
	    t = strtok_r(NULL, " \t\r\n", &save)) {
		if (ntok == sizeof(tok) / sizeof(tok[0])) {
			snprintf(err, errlen, "too many fields");
			return -1;
		}
		tok[ntok++] = t;
	}
	if (ntok == 0)
		return 0;
	if (ntok < 2) {
		snprintf(err, errlen, "expected NAME [TTL] TYPE ...");
		return -1;
	}
	owner = tok[0];
	if (strncmp(owner, "*.", 2) == 0) {
		wild = true;
		owner += 2;
	}
	if (name_normalize(owner, name, sizeof(name)) == -1 ||
	    name[0] == '\0') {
		snprintf(err, errlen, "bad name");
		return -1;
	}
	if (isdigit((unsigned char)tok[1][0])) {
		if (parse_number(tok[1], INT32_MAX, &ttl) == -1) {
			snprintf(err, errlen, "bad TTL");
			return -1;
		}
		i = 2;
	}
	if (i >= ntok) {
		snprintf(err, errlen, "missing type");
		return -1;
	}

	for (size_t k = 0; k < z->n; k++)
		if (z->nodes[k].wild == wild &&
		    strcmp(z->nodes[k].name, name) == 0)
			node = &z->nodes[k];
	if (node == NULL) {
		z->nodes = xrealloc(z->nodes, z->n + 1, sizeof(*z->nodes));
		node = &z->nodes[z->n++];
		memset(node, 0, sizeof(*node));
		node->name = xstrdup(name);
		node->wild = wild;
	}

	memset(&rule, 0, sizeof(rule));
	if (strcasecmp(tok[i], "SERVFAIL") == 0 ||
	    strcasecmp(tok[i], "REFUSED") == 0 ||
	    strcasecmp(tok[i], "DROP") == 0 ||
	    strcasecmp(tok[i], "DELAY") == 0) {
		if (strcasecmp(tok[i], "SERVFAIL") == 0)
			rule.action = ACT_SERVFAIL;
		else if (strcasecmp(tok[i], "REFUSED") == 0)
			rule.action = ACT_REFUSED;
		else if (strcasecmp(tok[i], "DROP") == 0)
			rule.action = ACT_DROP;
		else {
			rule.action = ACT_DELAY;
			if (++i >= ntok ||
			    parse_number(tok[i], 600000, &v) == -1) {
				snprintf(err, errlen, "DELAY needs milliseconds");
				return -1;
			}
			rule.ms = (unsigned)v;
		}
		if (++i < ntok) {
			if (parse_type(tok[i], &rule.type) == -1) {
				snprintf(err, errlen, "unknown type %s", tok[i]);
				return -1;
			}
			if (rule.type == T_ANY)
				rule.type = 0;
			i++;
		}
		if (i != ntok) {
			snprintf(err, errlen, "trailing fields");
			return -1;
		}
		node->rules = xrealloc(node->rules, node->nrules + 1,
		    sizeof(*node->rules));
		node->rules[node->nrules++] = rule;
		return 0;
	}

	memset(&rr, 0, sizeof(rr));
	rr.ttl = (uint32_t)ttl;
	if (parse_type(tok[i], &rr.type) == -1 || rr.type == T_ANY) {
		snprintf(err, errlen, "unknown type %s", tok[i]);
		return -1;
	}
	i++;
	switch (rr.type) {
	case T_A:
	case T_AAAA:
		if (i + 1 != ntok || inet_pton(rr.type == T_A ? AF_INET :
		    AF_INET6, tok[i], rr.addr) != 1) {
			snprintf(err, errlen, "bad address");
			return -1;
		}
		break;
	case T_MX:
		if (i + 2 != ntok || parse_number(tok[i], 65535, &v) == -1) {
			snprintf(err, errlen, "expected MX PREF HOST");
			return -1;
		}
		rr.pref = (uint16_t)v;
		i++;
		/* FALLTHROUGH */
	case T_CNAME:
		if (i + 1 != ntok ||
		    name_normalize(tok[i], name, sizeof(name)) == -1) {
			snprintf(err, errlen, "bad target name");
			return -1;
		}
		rr.target = xstrdup(name);
		break;
	case T_TXT:
		if (txt_join(tok + i, ntok - i, &rr.target) == -1) {
			snprintf(err, errlen, "TXT takes words of 1 to 255 octets");
			return -1;
		}
		break;
	case T_TLSA:
		if (tlsa_parse(tok + i, ntok - i, &rr) == -1) {
			snprintf(err, errlen,
			    "expected TLSA USAGE SELECTOR MTYPE HEX");
			return -1;
		}
		break;
	}
	node->rr = xrealloc(node->rr, node->nrr + 1, sizeof(*node->rr));
	node->rr[node->nrr++] = rr;
	return 0;
}

static int
zone_load(const char *path, struct zone *z)
{
	FILE *f;
	char line[1024], err[128];
	unsigned lineno = 0;
	int rc = 0;

	memset(z, 0, sizeof(*z));
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "dnsd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "dnsd: %s:%u: line too long\n", path,
			    lineno);
			rc = -1;
			break;
		}
		if (zone_line(z, line, err, sizeof(err)) == -1) {
			fprintf(stderr, "dnsd: %s:%u: %s\n", path, lineno, err);
			rc = -1;
			break;
		}
	}
	fclose(f);
	if (rc == -1)
		zone_free(z);
	return rc;
}

static void
zone_free(struct zone *z)
{
	for (size_t i = 0; i < z->n; i++) {
		for (size_t k = 0; k < z->nodes[i].nrr; k++) {
			free(z->nodes[i].rr[k].target);
			free(z->nodes[i].rr[k].data);
		}
		free(z->nodes[i].rr);
		free(z->nodes[i].rules);
		free(z->nodes[i].name);
	}
	free(z->nodes);
	memset(z, 0, sizeof(*z));
}

/* Exact name first, then the closest "*." wildcard above it. */
static struct node *
zone_find(const struct zone *z, const char *name)
{
	const char *suffix;

	for (size_t i = 0; i < z->n; i++)
		if (!z->nodes[i].wild && strcmp(z->nodes[i].name, name) == 0)
			return &z->nodes[i];
	for (suffix = strchr(name, '.'); suffix != NULL;
	    suffix = strchr(suffix + 1, '.'))
		for (size_t i = 0; i < z->n; i++)
			if (z->nodes[i].wild &&
			    strcmp(z->nodes[i].name, suffix + 1) == 0)
				return &z->nodes[i];
	return NULL;
}

static void
put8(struct buf *b, uint8_t v)
{
	putbytes(b, &v, 1);
}

static void
put16(struct buf *b, uint16_t v)
{
	uint8_t p[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	putbytes(b, p, 2);
}

static void
put32(struct buf *b, uint32_t v)
{
	uint8_t p[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	putbytes(b, p, 4);
}

static void
putbytes(struct buf *b, const void *p, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = true;
		return;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* TXT data: each space-separated word as one character-string. */
static void
put_txt(struct buf *b, const char *words)
{
	size_t n;

	for (;;) {
		n = strcspn(words, " ");
		put8(b, (uint8_t)n);
		putbytes(b, words, n);
		if (words[n] == '\0')
			break;
		words += n + 1;
	}
}

/* A normalized name (checked label lengths) in wire form, uncompressed. */
static void
putname(struct buf *b, const char *name)
{
	const char *dot;
	size_t n;

	while (*name != '\0') {
		dot = strchr(name, '.');
		n = dot != NULL ? (size_t)(dot - name) : strlen(name);
		put8(b, (uint8_t)n);
		putbytes(b, name, n);
		name += n;
		if (*name == '.')
			name++;
	}
	put8(b, 0);
}

static void
put_rr(struct buf *b, const char *owner, const struct rr *rr)
{
	size_t lenpos;

	putname(b, owner);
	put16(b, rr->type);
	put16(b, 1);
	put32(b, rr->ttl);
	lenpos = b->len;
	put16(b, 0);
	switch (rr->type) {
	case T_A:
		putbytes(b, rr->addr, 4);
		break;
	case T_AAAA:
		putbytes(b, rr->addr, 16);
		break;
	case T_MX:
		put16(b, rr->pref);
		putname(b, rr->target);
		break;
	case T_CNAME:
		putname(b, rr->target);
		break;
	case T_TXT:
		put_txt(b, rr->target);
		break;
	case T_TLSA:
		putbytes(b, rr->tlsa, 3);
		putbytes(b, rr->data, rr->datalen);
		break;
	}
	if (!b->overflow) {
		size_t rdlen = b->len - lenpos - 2;

		b->p[lenpos] = (uint8_t)(rdlen >> 8);
		b->p[lenpos + 1] = (uint8_t)rdlen;
	}
}

/*
 * Build the answer to query q (qlen bytes) into out.  Returns 0 with
 * *delay_ms set, or -1 when nothing is to be sent (unparsable, a
 * response, or a DROP rule).
 */
static int
answer(const struct zone *z, const uint8_t *q, size_t qlen, bool udp,
    struct buf *out, unsigned *delay_ms)
{
	char qname[NAME_TEXT_MAX], tbuf[16];
	const char *owner;
	size_t off = 12, nlen = 0, qend, ancount_pos;
	uint16_t qtype = 0, qclass = 0, flags, ancount = 0;
	int rcode = RC_NOERROR;
	const struct node *node;
	bool cname_loop = true;

	*delay_ms = 0;
	out->len = 0;
	out->overflow = false;
	if (qlen < 12)
		return -1;
	flags = (uint16_t)(q[2] << 8 | q[3]);
	if (flags & 0x8000)
		return -1;	/* a response: never answer those */

	if (((flags >> 11) & 0xf) != 0) {
		rcode = RC_NOTIMP;
		goto header_only;
	}
	if (q[4] != 0 || q[5] != 1) {
		rcode = RC_FORMERR;
		goto header_only;
	}
	/* QNAME: plain labels only, no compression in a question. */
	for (;;) {
		uint8_t l;

		if (off >= qlen) {
			rcode = RC_FORMERR;
			goto header_only;
		}
		l = q[off++];
		if (l == 0)
			break;
		if (l > 63 || l > qlen - off || nlen + l + 2 > 254) {
			rcode = RC_FORMERR;
			goto header_only;
		}
		if (nlen > 0)
			qname[nlen++] = '.';
		for (uint8_t k = 0; k < l; k++) {
			unsigned char c = q[off + k];

			if (c == '.' || c <= ' ' || c >= 0x7f) {
				rcode = RC_FORMERR;
				goto header_only;
			}
			qname[nlen++] = (char)tolower(c);
		}
		off += l;
	}
	qname[nlen] = '\0';
	if (qlen - off < 4) {
		rcode = RC_FORMERR;
		goto header_only;
	}
	qtype = (uint16_t)(q[off] << 8 | q[off + 1]);
	qclass = (uint16_t)(q[off + 2] << 8 | q[off + 3]);
	qend = off + 4;

	if (qlog != NULL) {
		fprintf(qlog, "%s %s\n", qname[0] ? qname : ".",
		    type_to_text(qtype, tbuf, sizeof(tbuf)));
		fflush(qlog);
	}

	/* Header and question, echoed. */
	put16(out, (uint16_t)(q[0] << 8 | q[1]));
	put16(out, 0);		/* flags, set below */
	put16(out, 1);
	ancount_pos = out->len;
	put16(out, 0);
	put16(out, 0);
	put16(out, 0);
	putbytes(out, q + 12, qend - 12);

	if (qclass != 1 && qclass != 255) {
		rcode = RC_REFUSED;
		goto finish;
	}
	if ((node = zone_find(z, qname)) == NULL) {
		rcode = RC_NXDOMAIN;
		goto finish;
	}
	for (size_t i = 0; i < node->nrules; i++) {
		const struct rule *r = &node->rules[i];

		if (r->type != 0 && r->type != qtype)
			continue;
		switch (r->action) {
		case ACT_DROP:
			return -1;
		case ACT_DELAY:
			*delay_ms += r->ms;
			break;
		case ACT_SERVFAIL:
			rcode = RC_SERVFAIL;
			break;
		case ACT_REFUSED:
			rcode = RC_REFUSED;
			break;
		}
	}
	if (rcode != RC_NOERROR)
		goto finish;

	/* RFC 1034 3.6.2 / 4.3.2: follow CNAMEs, answering the chain. */
	owner = qname;
	for (int hop = 0; hop < CNAME_HOPS; hop++) {
		const struct rr *cname = NULL;

		for (size_t i = 0; i < node->nrr; i++)
			if (node->rr[i].type == T_CNAME)
				cname = &node->rr[i];
		if (cname != NULL && qtype != T_CNAME) {
			put_rr(out, owner, cname);
			ancount++;
			owner = cname->target;
			if ((node = zone_find(z, owner)) == NULL) {
				rcode = RC_NXDOMAIN;	/* RFC 6604 */
				cname_loop = false;
				break;
			}
			continue;
		}
		for (size_t i = 0; i < node->nrr; i++)
			if (qtype == T_ANY || node->rr[i].type == qtype) {
				put_rr(out, owner, &node->rr[i]);
				ancount++;
			}
		cname_loop = false;
		break;
	}
	if (cname_loop)
		rcode = RC_SERVFAIL;

finish:
	if (udp && (out->overflow || out->len > UDP_MAX)) {
		/* RFC 1035 4.2.1: truncate, the client retries over TCP. */
		out->overflow = false;
		out->len = qend;
		ancount = 0;
		flags = 0x0200;
	} else if (out->overflow) {
		out->overflow = false;
		out->len = qend;
		ancount = 0;
		rcode = RC_SERVFAIL;
		flags = 0;
	} else
		flags = 0;
	flags |= 0x8000 | 0x0400 | (uint16_t)(q[2] << 8 & 0x0100) |
	    (uint16_t)rcode;
	out->p[2] = (uint8_t)(flags >> 8);
	out->p[3] = (uint8_t)flags;
	out->p[ancount_pos] = (uint8_t)(ancount >> 8);
	out->p[ancount_pos + 1] = (uint8_t)ancount;
	return 0;

header_only:
	out->len = 0;
	put16(out, (uint16_t)(q[0] << 8 | q[1]));
	put16(out, (uint16_t)(0x8000 | (flags & 0x7900) | rcode));
	put16(out, 0);
	put16(out, 0);
	put16(out, 0);
	put16(out, 0);
	return 0;
}

static int
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *h, *port;
	unsigned long p;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	size_t n;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL || end[1] != ':')
			return -1;
		h = s + 1;
		n = (size_t)(end - h);
		port = end + 2;
	} else {
		if ((port = strrchr(s, ':')) == NULL)
			return -1;
		h = s;
		n = (size_t)(port - s);
		port++;
	}
	if (n >= sizeof(host) || parse_number(port, 65535, &p) == -1)
		return -1;
	memcpy(host, h, n);
	host[n] = '\0';
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*sin6);
	} else
		return -1;
	return 0;
}

static void
set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		perror("dnsd: fcntl");
		exit(1);
	}
}

static void
pending_add(const uint8_t *data, size_t len, unsigned ms, bool tcp,
    size_t conn, const struct sockaddr_storage *to, socklen_t tolen)
{
	for (size_t i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &pend[i];

		if (p->used)
			continue;
		p->used = true;
		p->due = now_ms() + ms;
		p->tcp = tcp;
		p->conn = conn;
		p->gen = tcp ? conns[conn].gen : 0;
		if (to != NULL)
			memcpy(&p->to, to, tolen);
		p->tolen = tolen;
		memcpy(p->data, data, len);
		p->len = len;
		return;
	}
	fprintf(stderr, "dnsd: too many delayed answers, one dropped\n");
}

static void
send_tcp(size_t c, const uint8_t *data, size_t len)
{
	uint8_t msg[2 + MSG_MAX];
	ssize_t n;

	if (conns[c].fd == -1 || len > MSG_MAX)
		return;
	msg[0] = (uint8_t)(len >> 8);
	msg[1] = (uint8_t)len;
	memcpy(msg + 2, data, len);
	/* Small answers to loopback: a short write means a dead client. */
	n = send(conns[c].fd, msg, len + 2, MSG_NOSIGNAL);
	if (n != (ssize_t)(len + 2))
		tcp_close(c);
}

/* Send delayed answers that are due. */
static void
pending_run(int udp, uint64_t now)
{
	for (size_t i = 0; i < MAX_PENDING; i++) {
		struct pending *p = &pend[i];

		if (!p->used || p->due > now)
			continue;
		p->used = false;
		if (!p->tcp)
			(void)sendto(udp, p->data, p->len, 0,
			    (struct sockaddr *)&p->to, p->tolen);
		else if (conns[p->conn].gen == p->gen)
			send_tcp(p->conn, p->data, p->len);
	}
}

static void
handle_udp(const struct zone *z, int udp)
{
	uint8_t q[UDP_MAX * 2], o[MSG_MAX];
	struct buf out = { o, sizeof(o), 0, false };
	struct sockaddr_storage from;
	socklen_t fromlen;
	ssize_t n;
	unsigned delay;

	for (;;) {
		fromlen = sizeof(from);
		n = recvfrom(udp, q, sizeof(q), 0, (struct sockaddr *)&from,
		    &fromlen);
		if (n < 0)
			return;
		if (answer(z, q, (size_t)n, true, &out, &delay) == -1)
			continue;
		if (delay > 0)
			pending_add(o, out.len, delay, false, 0, &from,
			    fromlen);
		else
			(void)sendto(udp, o, out.len, 0,
			    (struct sockaddr *)&from, fromlen);
	}
}

static void
tcp_close(size_t c)
{
	if (conns[c].fd != -1)
		close(conns[c].fd);
	conns[c].fd = -1;
	conns[c].inlen = 0;
	conns[c].gen++;
}

/* RFC 1035 4.2.2: two-byte length, then the message. */
static void
handle_tcp(const struct zone *z, size_t c)
{
	struct tcpconn *t = &conns[c];
	uint8_t o[MSG_MAX];
	struct buf out = { o, sizeof(o), 0, false };
	ssize_t n;
	size_t mlen;
	unsigned delay;

	n = read(t->fd, t->in + t->inlen, sizeof(t->in) - t->inlen);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			tcp_close(c);
		return;
	}
	t->inlen += (size_t)n;
	while (t->fd != -1 && t->inlen >= 2) {
		mlen = (size_t)t->in[0] << 8 | t->in[1];
		if (mlen > TCP_QUERY_MAX) {
			tcp_close(c);
			return;
		}
		if (t->inlen < mlen + 2)
			return;
		if (answer(z, t->in + 2, mlen, false, &out, &delay) == 0) {
			if (delay > 0)
				pending_add(o, out.len, delay, true, c, NULL, 0);
			else
				send_tcp(c, o, out.len);
		}
		if (t->fd == -1)
			return;
		memmove(t->in, t->in + 2 + mlen, t->inlen - 2 - mlen);
		t->inlen -= 2 + mlen;
	}
}

int
main(int argc, char **argv)
{
	const char *listen_arg = NULL, *zonefile = NULL, *pidfile = NULL;
	const char *qlogfile = NULL;
	unsigned long lifetime = 600;
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct zone zone;
	struct sigaction sa;
	sigset_t block, waitmask;
	struct pollfd pfd[2 + MAX_TCP];
	size_t pconn[2 + MAX_TCP];
	uint64_t deadline;
	int ch, udp = -1, tcp = -1, on = 1, tries;
	uint16_t port;

	while ((ch = getopt(argc, argv, "l:p:q:t:z:")) != -1) {
		switch (ch) {
		case 'l':
			listen_arg = optarg;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'q':
			qlogfile = optarg;
			break;
		case 't':
			if (parse_number(optarg, 86400, &lifetime) == -1 ||
			    lifetime == 0)
				usage();
			break;
		case 'z':
			zonefile = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || listen_arg == NULL || zonefile == NULL)
		usage();
	if (parse_listen(listen_arg, &ss, &sslen) == -1) {
		fprintf(stderr, "dnsd: bad listen address %s\n", listen_arg);
		return 2;
	}
	if (zone_load(zonefile, &zone) == -1)
		return 1;
	if (qlogfile != NULL && (qlog = fopen(qlogfile, "a")) == NULL) {
		fprintf(stderr, "dnsd: %s: %s\n", qlogfile, strerror(errno));
		return 1;
	}

	/*
	 * UDP and TCP on the same port; with port 0, take the one the
	 * kernel gives UDP and retry when TCP finds it taken.
	 */
	for (tries = 0;; tries++) {
		struct sockaddr_storage bound;
		socklen_t blen = sizeof(bound);

		if ((udp = socket(ss.ss_family, SOCK_DGRAM, 0)) == -1 ||
		    bind(udp, (struct sockaddr *)&ss, sslen) == -1 ||
		    getsockname(udp, (struct sockaddr *)&bound, &blen) == -1) {
			perror("dnsd: udp");
			return 1;
		}
		port = ntohs(bound.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&bound)->sin_port :
		    ((struct sockaddr_in6 *)&bound)->sin6_port);
		memcpy(&bound, &ss, sizeof(bound));
		if (bound.ss_family == AF_INET)
			((struct sockaddr_in *)&bound)->sin_port = htons(port);
		else
			((struct sockaddr_in6 *)&bound)->sin6_port = htons(port);
		if ((tcp = socket(ss.ss_family, SOCK_STREAM, 0)) == -1) {
			perror("dnsd: tcp");
			return 1;
		}
		(void)setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (bind(tcp, (struct sockaddr *)&bound, sslen) == 0 &&
		    listen(tcp, 16) == 0)
			break;
		if (errno != EADDRINUSE || tries == 20 ||
		    (ss.ss_family == AF_INET ?
		    ((struct sockaddr_in *)&ss)->sin_port :
		    ((struct sockaddr_in6 *)&ss)->sin6_port) != 0) {
			perror("dnsd: tcp bind");
			return 1;
		}
		close(udp);
		close(tcp);
	}
	set_nonblock(udp);
	set_nonblock(tcp);
	for (size_t i = 0; i < MAX_TCP; i++)
		conns[i].fd = -1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGHUP);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (pidfile != NULL) {
		FILE *f = fopen(pidfile, "w");

		if (f == NULL || fprintf(f, "%ld\n", (long)getpid()) < 0 ||
		    fclose(f) == EOF) {
			fprintf(stderr, "dnsd: %s: %s\n", pidfile,
			    strerror(errno));
			return 1;
		}
	}
	printf("port %u\n", (unsigned)port);
	fflush(stdout);

	deadline = now_ms() + (uint64_t)lifetime * 1000;
	while (!got_term) {
		uint64_t now = now_ms(), wait;
		struct timespec ts;
		size_t n = 0;
		int rc;

		if (got_hup) {
			struct zone nz;

			got_hup = 0;
			if (zone_load(zonefile, &nz) == 0) {
				zone_free(&zone);
				zone = nz;
			}
		}
		if (now >= deadline)
			break;
		pending_run(udp, now);
		wait = deadline - now;
		for (size_t i = 0; i < MAX_PENDING; i++)
			if (pend[i].used && pend[i].due > now &&
			    pend[i].due - now < wait)
				wait = pend[i].due - now;
		ts.tv_sec = (time_t)(wait / 1000);
		ts.tv_nsec = (long)(wait % 1000) * 1000000;

		pfd[n].fd = udp;
		pfd[n++].events = POLLIN;
		pfd[n].fd = tcp;
		pfd[n++].events = POLLIN;
		for (size_t i = 0; i < MAX_TCP; i++)
			if (conns[i].fd != -1) {
				pconn[n] = i;
				pfd[n].fd = conns[i].fd;
				pfd[n++].events = POLLIN;
			}
		rc = ppoll(pfd, n, &ts, &waitmask);
		if (rc == -1) {
			if (errno == EINTR)
				continue;
			perror("dnsd: ppoll");
			break;
		}
		if (pfd[0].revents & POLLIN)
			handle_udp(&zone, udp);
		if (pfd[1].revents & POLLIN) {
			int fd = accept(tcp, NULL, NULL);

			if (fd != -1) {
				size_t i;

				for (i = 0; i < MAX_TCP; i++)
					if (conns[i].fd == -1)
						break;
				if (i == MAX_TCP)
					close(fd);
				else {
					set_nonblock(fd);
					conns[i].fd = fd;
					conns[i].inlen = 0;
				}
			}
		}
		for (size_t k = 2; k < n; k++)
			if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
				handle_tcp(&zone, pconn[k]);
	}

	for (size_t i = 0; i < MAX_TCP; i++)
		tcp_close(i);
	close(udp);
	close(tcp);
	if (qlog != NULL)
		fclose(qlog);
	zone_free(&zone);
	if (pidfile != NULL)
		unlink(pidfile);
	return 0;
}
