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

enum tls_policy {
	TLS_NONE = 0,
	TLS_MAY,
	TLS_ENCRYPT,
	TLS_VERIFY,
};

/* "host:port", "[v6addr]:port", "[host]:port" (bracketed = no MX lookup). */
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
};

/* Fill every field with its default (allocates; conf_free() releases). */
void	 conf_defaults(struct conf *);
/*
 * Defaults, then the file at path.  With must_exist false a missing file
 * is fine (the defaults stand).  On error returns -1 and writes a message
 * of the form "FILE:LINE: KEY: what is wrong" into err; *c is then freed
 * and must not be used.
 */
int	 conf_load(const char *path, bool must_exist, struct conf *c,
	    char *err, size_t errlen);
void	 conf_free(struct conf *);

/* Parsers for single values, also used by the tests. 0 or -1. */
int	 conf_parse_hostport(const char *, struct hostport *);
int	 conf_parse_cidr(const char *, struct cidr *);
int	 conf_parse_tls_policy(const char *, enum tls_policy *);
const char *conf_tls_policy_to_text(enum tls_policy);
/* Does addr (family + raw bytes) fall within any of the CIDRs? */
bool	 conf_cidr_match(const struct cidr *, size_t, int family,
	    const void *addr);

#endif
