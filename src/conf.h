/*
 * conf: /etc/mxrelay.conf ("key = value" lines, '#' comments) parsed into
 * one struct conf.  Every key has a default, so a missing default config
 * file is not an error.  Unknown keys, bad values and repeated keys are
 * errors that name file:line:key.
 */
#ifndef MXRELAY_CONF_H
#define MXRELAY_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#define CONF_DEFAULT_PATH	SYSCONFDIR "/mxrelay.conf"
#define CONF_DEFAULT_SPOOL	LOCALSTATEDIR "/spool/mxrelay"
/* mxrelayd.pid and the control socket mxrelayd.sock. */
#define CONF_DEFAULT_RUNTIME	RUNSTATEDIR "/mxrelay"

enum tls_policy {
	TLS_NONE = 0,
	TLS_MAY,
	TLS_ENCRYPT,
	TLS_VERIFY,
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

struct conf {
	char		*hostname;	/* default: the host's FQDN */
	char		*qualify_domain;/* default: hostname */
	char		*spool_dir;
	char		*runtime_dir;	/* mxrelayd.pid, mxrelayd.sock */
	char		*aliases;	/* aliases file; NULL = none */

	struct hostport	*listen;
	size_t		 nlisten;
	struct cidr	*relay_clients;
	size_t		 nrelay_clients;

	struct hostport	*relayhost;	/* NULL = deliver by MX */
	char		*relayhost_auth_file;
	struct hostport	*dns_servers;
	size_t		 ndns_servers;
	unsigned	 smtp_port;

	enum tls_policy	 tls;
	struct tls_domain_policy *tls_policies;
	size_t		 ntls_policies;
	char		*tls_ca_file;
	char		*tls_cert_file;
	char		*tls_key_file;
	char		*auth_users;

	time_t		 retry_min;
	time_t		 retry_max;
	time_t		 queue_lifetime;
	uint64_t	 max_message_size;
	unsigned	 concurrency;
	unsigned	 domain_concurrency;
	unsigned	 max_recipients;
	unsigned	 max_clients;
	char		*user;
	char		*group;

	/* Outbound SMTP (RFC 5321 §4.5.3.2 timeouts) and DNS. */
	time_t		 smtp_connect_timeout;
	time_t		 smtp_greeting_timeout;
	time_t		 smtp_helo_timeout;
	time_t		 smtp_mail_timeout;
	time_t		 smtp_rcpt_timeout;
	time_t		 smtp_data_timeout;
	time_t		 smtp_block_timeout;
	time_t		 smtp_dot_timeout;
	unsigned	 connection_reuse_limit;
	time_t		 dns_timeout;
	unsigned	 dns_tries;
};

/*
 * Fill every field with its default (allocates; conf_free() releases).
 * hostname becomes the host's FQDN (looked up once per process).
 */
void	 conf_defaults(struct conf *);
/*
 * Defaults, then the file at path.  With must_exist false a missing file
 * is fine (the defaults stand).  On error returns -1 and writes a message
 * of the form "FILE:LINE: KEY: what is wrong" into err; *c is then freed
 * and must not be used.
 */
int	 conf_load(const char *path, bool must_exist, struct conf *c,
	    char *err, size_t errlen);
/* Release everything; c is left zeroed, so a second call is harmless. */
void	 conf_free(struct conf *);
/*
 * The config file to read when no -C was given: $MXRELAY_CONFIG when set
 * and not empty (*must_exist = true), else CONF_DEFAULT_PATH (false).
 */
const char *conf_default_path(bool *must_exist);

/*
 * The keys that conf_load() knows: the name of the i-th (0, 1, ...), or
 * NULL past the last.  With def not NULL, *def is the key's default as
 * the text of a value, NULL when it has none or when it is derived from
 * something else (hostname, qualify_domain).  For the tests that hold
 * mxrelay.conf(5) to the code.
 */
const char *conf_key_name(size_t i, const char **def);

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
 * Does addr (family + raw bytes: struct in_addr or struct in6_addr) fall
 * within any of the CIDRs?  An IPv4-mapped IPv6 address (::ffff:a.b.c.d,
 * as a dual-stack listener sees IPv4 peers) is also tried as IPv4.
 */
bool	 conf_cidr_match(const struct cidr *, size_t, int family,
	    const void *addr);
/*
 * The outbound TLS policy for a destination domain: a tls_policy entry for
 * exactly that domain (case-insensitive, trailing dot ignored), else the
 * longest ".suffix" entry that matches a subdomain, else c->tls.
 */
enum tls_policy conf_tls_policy_for(const struct conf *, const char *domain);

#endif
