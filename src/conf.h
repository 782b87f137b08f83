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

#include "confval.h"
#include "record.h"

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

/* One dkim_key line: DOMAIN SELECTOR PATH (mxrelay.conf(5), DKIM). */
struct conf_dkim_key {
	char		*domain;	/* lower case, no trailing dot */
	char		*selector;
	char		*path;		/* the private key, a secret file */
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
	size_t		 nrelayhost;	/* tried in this order */
	char		*relayhost_auth_file;
	enum tls_policy	 relayhost_auth_tls;	/* verify, or encrypt */
	struct hostport	*dns_servers;
	size_t		 ndns_servers;
	unsigned	 smtp_port;

	enum tls_policy	 tls;
	struct tls_domain_policy *tls_policies;
	size_t		 ntls_policies;
	char		*tls_ca_file;
	/* MTA-STS (RFC 8461; mxrelay.conf(5), TLS). */
	bool		 mta_sts;
	char		*mta_sts_ca_file;	/* NULL: the system store */
	unsigned	 mta_sts_port;		/* of the policy host: 443 */
	unsigned	 mta_sts_timeout_ms;	/* a whole policy fetch */
	char		*tls_cert_file;
	char		*tls_key_file;
	char		*auth_users;
	unsigned	 auth_fail_limit;	/* per client address; 0: none */
	unsigned	 auth_fail_window_ms;	/* failures forgotten after */
	unsigned	 auth_fail_delay_max_ms;	/* 0: no delay */

	/* Durations are in ms (confval.h). */
	int64_t		 retry_min_ms;
	int64_t		 retry_max_ms;
	int64_t		 queue_lifetime_ms;
	uint64_t	 max_message_size;
	unsigned	 concurrency;
	unsigned	 domain_concurrency;
	unsigned	 max_recipients;
	enum bare_lf_policy bare_lf;
	unsigned	 max_clients;
	/* The listener's limits per client (mxrelay.conf(5), Listener). */
	unsigned	 max_clients_per_address;	/* 0: none */
	unsigned	 smtpd_idle_timeout_ms;
	unsigned	 smtpd_command_timeout_ms;
	unsigned	 smtpd_data_timeout_ms;
	unsigned	 smtpd_tls_timeout_ms;
	unsigned	 smtpd_session_deadline_ms;	/* 0: none */
	unsigned	 smtpd_junk_command_limit;	/* 0: none */
	char		*user;
	char		*group;

	/* Outbound SMTP and DNS. */
	struct smtpc_timeouts smtp_timeouts;
	unsigned	 connection_reuse_limit;
	unsigned	 mx_host_limit;		/* MX hosts looked up; 0: all */
	unsigned	 mx_address_limit;	/* addresses tried; 0: all */
	unsigned	 dns_timeout_ms;
	unsigned	 dns_tries;
	struct hostport	*metrics_listen;	/* mxrelayd's GET /metrics */
	size_t		 nmetrics_listen;
	bool		 relayhost_fallback;	/* = mx: by MX when all fail */

	enum record_format log_format;	/* delivery records: text or JSON */

	/* Notifications to senders (mxrelay.conf(5), Delivery). */
	int64_t		 bounce_interval_ms;	/* 0: each bounce at once */
	unsigned	 bounce_limit_per_sender;	/* per hour; 0: none */
	int64_t		 delay_warning_time_ms;	/* 0: no delay warning */
	/* Date:, Message-ID: for trusted clients of the listener */
	bool		 smtpd_add_missing_headers;

	/* DKIM signing at intake (mxrelay.conf(5), DKIM). */
	struct conf_dkim_key *dkim_keys;
	size_t		 ndkim_keys;
	int64_t		 dkim_expire_ms;	/* x= after t=; 0: no x= */
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

#endif
