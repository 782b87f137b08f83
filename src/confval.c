/*
 * confval: single configuration values (confval.h) read from text and
 * matched: host names, "host:port", CIDRs, TLS policies.  conf.c reads
 * the file and hands each value to these; the tests call them directly.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "confval.h"
#include "util.h"

static int	 parse_port(const char *, size_t, unsigned *);

static const char *tls_names[] = {
	[TLS_NONE] = "none",
	[TLS_MAY] = "may",
	[TLS_ENCRYPT] = "encrypt",
	[TLS_VERIFY] = "verify",
	[TLS_DANE] = "dane",
};

/* ---- single values ------------------------------------------------- */

/*
 * A DNS name: labels of letters, digits, '-' and '_' (the last for
 * hosts named badly but real), 1-63 octets each, not starting or ending
 * with '-', 253 in all, one optional trailing dot.  With leading_dot,
 * ".example.com" is accepted too.
 */
int
conf_valid_hostname(const char *s, bool leading_dot)
{
	size_t len = strlen(s), label = 0;

	if (leading_dot && s[0] == '.') {
		s++;
		len--;
	}
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > CONF_HOSTNAME_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '.') {
			/* No empty label, none ending with '-'. */
			if (label == 0 || s[i - 1] == '-')
				return -1;
			label = 0;
			continue;
		}
		if (!isalnum(ch) && ch != '-' && ch != '_')
			return -1;
		if (ch == '-' && label == 0)
			return -1;
		if (++label > 63)
			return -1;
	}
	return label == 0 || s[len - 1] == '-' ? -1 : 0;
}

/* Decimal digits only (no sign, no space), within [min, max]. */
int
conf_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
parse_port(const char *s, size_t len, unsigned *port)
{
	char buf[8];
	uint64_t v;

	if (len == 0 || len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (conf_parse_uint(buf, 1, 65535, &v) == -1)
		return -1;
	*port = (unsigned)v;
	return 0;
}

/* s[0..len) has only digits and dots: it is meant as an IPv4 address. */
static bool
looks_ipv4(const char *s)
{
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s) && *s != '.')
			return false;
	return true;
}

int
conf_hostport_parse(const char *s, size_t len, struct hostport *hp, char *why,
    size_t whylen)
{
	char host[CONF_HOSTNAME_MAX + 2];
	unsigned char bin[16];
	const char *h, *port = NULL, *colon;
	size_t hlen, plen = 0;
	bool bracketed = false;

	if (len == 0) {
		util_seterr(why, whylen, "empty address");
		return -1;
	}
	if (s[0] == '[') {
		const char *close = memchr(s, ']', len);

		if (close == NULL) {
			util_seterr(why, whylen, "missing ']'");
			return -1;
		}
		h = s + 1;
		hlen = (size_t)(close - h);
		bracketed = true;
		if (close + 1 < s + len) {
			if (close[1] != ':') {
				util_seterr(why, whylen, "expected ':' after ']'");
				return -1;
			}
			port = close + 2;
			plen = (size_t)(s + len - port);
		}
	} else if ((colon = memchr(s, ':', len)) != NULL &&
	    memchr(colon + 1, ':', (size_t)(s + len - colon - 1)) != NULL) {
		/* Two colons or more, no brackets: a bare IPv6 address. */
		h = s;
		hlen = len;
	} else if (colon != NULL) {
		h = s;
		hlen = (size_t)(colon - s);
		port = colon + 1;
		plen = (size_t)(s + len - port);
	} else {
		h = s;
		hlen = len;
	}
	if (hlen == 0) {
		util_seterr(why, whylen, "missing host");
		return -1;
	}
	if (hlen >= sizeof(host)) {
		util_seterr(why, whylen, "host name too long");
		return -1;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (memchr(host, ':', hlen) != NULL) {
		if (inet_pton(AF_INET6, host, bin) != 1) {
			util_seterr(why, whylen, "not an IPv6 address");
			return -1;
		}
	} else if (looks_ipv4(host)) {
		if (inet_pton(AF_INET, host, bin) != 1) {
			util_seterr(why, whylen, "not an IPv4 address");
			return -1;
		}
	} else if (conf_valid_hostname(host, false) == -1) {
		util_seterr(why, whylen, "not a valid host name");
		return -1;
	}
	hp->port = 0;
	if (port != NULL && parse_port(port, plen, &hp->port) == -1) {
		util_seterr(why, whylen, "port must be a number from 1 to 65535");
		return -1;
	}
	hp->host = xstrdup(host);
	hp->bracketed = bracketed;
	return 0;
}

int
conf_parse_hostport(const char *s, struct hostport *hp)
{
	return conf_hostport_parse(s, strlen(s), hp, NULL, 0);
}

int
conf_cidr_parse(const char *s, size_t len, struct cidr *out, char *why,
    size_t whylen)
{
	char addr[INET6_ADDRSTRLEN + 1], net[INET6_ADDRSTRLEN];
	const char *slash = memchr(s, '/', len);
	size_t alen = slash != NULL ? (size_t)(slash - s) : len;
	struct cidr c;
	unsigned maxbits, nbytes;
	uint64_t prefix;

	memset(&c, 0, sizeof(c));
	if (alen == 0 || alen >= sizeof(addr)) {
		util_seterr(why, whylen, "not an IP address");
		return -1;
	}
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, c.addr) == 1) {
		c.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, addr, c.addr) == 1) {
		c.family = AF_INET6;
		maxbits = 128;
	} else {
		util_seterr(why, whylen, "not an IP address");
		return -1;
	}
	prefix = maxbits;
	if (slash != NULL) {
		char pbuf[5];
		size_t plen = (size_t)(s + len - slash - 1);

		if (plen == 0 || plen >= sizeof(pbuf)) {
			util_seterr(why, whylen, "prefix length must be 0 to %u",
			    maxbits);
			return -1;
		}
		memcpy(pbuf, slash + 1, plen);
		pbuf[plen] = '\0';
		if (conf_parse_uint(pbuf, 0, maxbits, &prefix) == -1) {
			util_seterr(why, whylen, "prefix length must be 0 to %u",
			    maxbits);
			return -1;
		}
	}
	c.prefix = (unsigned)prefix;

	/* Host bits set: most likely a typo, so refuse rather than guess. */
	nbytes = maxbits / 8;
	for (unsigned i = 0; i < nbytes; i++) {
		unsigned bits = c.prefix > i * 8 ? c.prefix - i * 8 : 0;
		unsigned char mask = bits >= 8 ? 0xff :
		    (unsigned char)(0xff00 >> bits);

		if ((c.addr[i] & ~mask) != 0) {
			for (unsigned j = i; j < nbytes; j++) {
				bits = c.prefix > j * 8 ? c.prefix - j * 8 : 0;
				mask = bits >= 8 ? 0xff :
				    (unsigned char)(0xff00 >> bits);
				c.addr[j] &= mask;
			}
			if (inet_ntop(c.family, c.addr, net, sizeof(net)) == NULL)
				util_strlcpy(net, "?", sizeof(net));
			util_seterr(why, whylen, "host bits set (the network is "
			    "%s/%u)", net, c.prefix);
			return -1;
		}
	}
	*out = c;
	return 0;
}

int
conf_parse_cidr(const char *s, struct cidr *c)
{
	return conf_cidr_parse(s, strlen(s), c, NULL, 0);
}

int
conf_parse_tls_policy(const char *s, enum tls_policy *p)
{
	for (size_t i = 0; i < sizeof(tls_names) / sizeof(tls_names[0]); i++)
		if (strcasecmp(s, tls_names[i]) == 0) {
			*p = (enum tls_policy)i;
			return 0;
		}
	return -1;
}

const char *
conf_tls_policy_to_text(enum tls_policy p)
{
	if ((size_t)p < sizeof(tls_names) / sizeof(tls_names[0]))
		return tls_names[p];
	return "unknown";
}

static bool
prefix_match(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	unsigned full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ b[full]) & (unsigned char)(0xff00 >> rest)) == 0;
}

bool
conf_cidr_match(const struct cidr *c, size_t n, int family, const void *addr)
{
	static const unsigned char mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};
	const unsigned char *a = addr, *v4 = NULL;

	if (family == AF_INET)
		v4 = a;
	else if (family == AF_INET6 && memcmp(a, mapped, sizeof(mapped)) == 0)
		v4 = a + sizeof(mapped);
	for (size_t i = 0; i < n; i++) {
		if (c[i].family == family && prefix_match(c[i].addr, a,
		    c[i].prefix))
			return true;
		if (c[i].family == AF_INET && v4 != NULL &&
		    prefix_match(c[i].addr, v4, c[i].prefix))
			return true;
	}
	return false;
}

enum tls_policy
conf_tls_policy_for(enum tls_policy def, const struct tls_domain_policy *v,
    size_t n, const char *domain)
{
	size_t dlen = strlen(domain), best = 0;
	enum tls_policy p = def;

	if (dlen > 0 && domain[dlen - 1] == '.')
		dlen--;
	for (size_t i = 0; i < n; i++) {
		const char *d = v[i].domain;
		size_t len = strlen(d);

		if (d[0] != '.') {
			if (len == dlen && strncasecmp(d, domain, dlen) == 0)
				return v[i].policy;
		} else if (dlen > len && len > best &&
		    strncasecmp(d, domain + dlen - len, len) == 0) {
			best = len;
			p = v[i].policy;
		}
	}
	return p;
}
