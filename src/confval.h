/*
 * confval: the types of configuration values that modules take in their
 * own options structs (struct delivery_conf, struct smtpd_params, struct
 * qmgr_conf, ...).  conf.h builds struct conf out of these; only the
 * programs' mains and runner.c, which wires the delivery side together
 * for both of them, see struct conf itself (ARCHITECTURE.md, "Layers").
 *
 * Durations inside the program are milliseconds.  Points in time that
 * the spool keeps (arrival, next attempt) stay time_t seconds, as the
 * envelope stores them.
 */
#ifndef MXRELAY_CONFVAL_H
#define MXRELAY_CONFVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest host name (RFC 1035 2.3.4), without the final dot. */
#define CONF_HOSTNAME_MAX	253

enum tls_policy {
	TLS_NONE = 0,
	TLS_MAY,
	TLS_ENCRYPT,
	TLS_VERIFY,
	/*
	 * DANE (RFC 7672) where the DNS is secure, MTA-STS (RFC 8461) where
	 * a policy applies, else as TLS_MAY.  Destinations by MX only: for a
	 * relayhost it is TLS_MAY.
	 */
	TLS_DANE,
};

/* bare_lf: a bare LF in DATA from a relay client or a user (smtpd.h). */
enum bare_lf_policy {
	BARE_LF_REJECT = 0,	/* 554 5.6.0, as from anyone else */
	BARE_LF_NORMALIZE,	/* a line end, stored as CRLF */
};

/*
 * "host:port", "[v6addr]:port", "[host]:port" (bracketed = no MX lookup),
 * "host" or a bare "v6addr" (no port).  conf_load() fills in the port of
 * listen (25) and dns_servers (53) entries that have none; a relayhost
 * without a port keeps 0, meaning smtp_port.
 */
struct hostport {
	char		*host;		/* without brackets */
	unsigned	 port;		/* 0 when none was given */
	bool		 bracketed;
};

struct cidr {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];	/* network address, host bits cleared */
	unsigned	 prefix;	/* 0..32 or 0..128 */
};

/* One "tls_policy = DOMAIN POLICY" line (the key may repeat). */
struct tls_domain_policy {
	char		*domain;
	enum tls_policy	 policy;
};

/*
 * Outbound SMTP timeouts (RFC 5321 §4.5.3.2), in ms; the defaults of
 * mxrelay.conf(5) are in parentheses.
 */
struct smtpc_timeouts {
	unsigned	 connect;	/* 30 s */
	unsigned	 greeting;	/* 5 min */
	unsigned	 helo;		/* 5 min (EHLO, STARTTLS, AUTH, RSET, QUIT too) */
	unsigned	 mail;		/* 5 min */
	unsigned	 rcpt;		/* 5 min */
	unsigned	 data;		/* 2 min (the 354) */
	unsigned	 block;		/* 3 min (each write of the body) */
	unsigned	 dot;		/* 10 min (reply to the final dot) */
};

/*
 * Does addr (family + raw bytes: struct in_addr or struct in6_addr) fall
 * within any of the CIDRs?  An IPv4-mapped IPv6 address (::ffff:a.b.c.d,
 * as a dual-stack listener sees IPv4 peers) is also tried as IPv4.
 */
bool	 conf_cidr_match(const struct cidr *, size_t, int family,
	    const void *addr);
/*
 * The outbound TLS policy for a destination domain: an entry of v for
 * exactly that domain (case-insensitive, trailing dot ignored), else the
 * longest ".suffix" entry that matches a subdomain, else def.
 */
enum tls_policy conf_tls_policy_for(enum tls_policy def,
	    const struct tls_domain_policy *v, size_t n, const char *domain);

/*
 * Parsers for single values, also used by the tests. 0 or -1 (nothing
 * allocated on -1).  conf_parse_hostport() allocates hp->host: free() it.
 * conf_parse_cidr() takes "addr/prefix" or a bare address (/32, /128);
 * an address with host bits set beyond the prefix is an error.
 */
int	 conf_parse_hostport(const char *, struct hostport *);
int	 conf_parse_cidr(const char *, struct cidr *);
int	 conf_parse_tls_policy(const char *, enum tls_policy *);
const char *conf_tls_policy_to_text(enum tls_policy);

/*
 * What conf.c builds its keys' parsers on.  conf_hostport_parse() and
 * conf_cidr_parse() are the two above for s[0..len), one word of a list,
 * saying in why (may be NULL) what is wrong.  conf_valid_hostname(): 0
 * for a DNS name (with leading_dot, ".example.com" too).
 * conf_parse_uint(): decimal digits only (no sign, no space), within
 * [min, max].
 */
int	 conf_hostport_parse(const char *s, size_t len, struct hostport *,
	    char *why, size_t whylen);
int	 conf_cidr_parse(const char *s, size_t len, struct cidr *, char *why,
	    size_t whylen);
int	 conf_valid_hostname(const char *, bool leading_dot);
int	 conf_parse_uint(const char *, uint64_t min, uint64_t max, uint64_t *);

#endif
