/*
 * conf: mxrelay.conf parsed into one struct conf.
 *
 * Syntax (see mxrelay.conf(5)):
 *	# a comment line
 *	key = value		# a trailing comment
 * One key per line.  Leading and trailing white space is ignored, CRLF
 * line ends are accepted.  '#' begins a comment at the start of a line or
 * after white space; a '#' inside a word (a path "/x#y") is kept.  Key
 * names are case-insensitive.  A key may appear once, except tls_policy.
 * Lists are separated by white space or commas.  An empty value means
 * "none" for lists and optional files and is an error elsewhere.
 *
 * Every key is a row of keys[] below: name, parser (one per type of
 * value), where it lives in struct conf, its default as text (parsed by
 * the same code as the file, so a default can never be invalid) and the
 * range it must fall within.  set_value() finds the row and calls its
 * parser.
 * After the file, check_conf() derives what depends on other keys
 * (hostname, qualify_domain, default ports) and cross-checks them.
 * The values that modules share (host:port, CIDRs, TLS policies) are
 * parsed by confval.c.
 *
 * Errors are "FILE:LINE: KEY: what is wrong"; anything taken from the file
 * is escaped before it is quoted.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "util.h"

#define CONF_LINE_MAX	8192	/* longer lines are an error */
#define CONF_WHY_MAX	256

#define DAY		(24 * 60 * 60)

struct conf_key;

/*
 * A key's parser: reads value, stores it in the field of c that k names
 * (off, and countoff for lists), replacing what was there (tls_policy
 * adds an entry instead).  On error nothing in c changes and why says
 * what is wrong.  An empty value reaches it only for a CK_OPTIONAL key,
 * where it means "none".
 */
typedef int	 conf_set_fn(struct conf *, const struct conf_key *, const char *,
		    char *, size_t);

static conf_set_fn set_hostname;	/* char *: a DNS name */
static conf_set_fn set_name;		/* char *: a user or group name */
static conf_set_fn set_path;		/* char *: an absolute path */
static conf_set_fn set_uint;		/* unsigned, within [min, max] */
static conf_set_fn set_duration;	/* ms; [min, max] in seconds */
static conf_set_fn set_size;		/* uint64_t, bytes within [min, max] */
static conf_set_fn set_tls;		/* enum tls_policy */
static conf_set_fn set_auth_tls;	/* enum tls_policy: encrypt, verify */
static conf_set_fn set_bare_lf;		/* enum bare_lf_policy */
static conf_set_fn set_hostports;	/* struct hostport * + size_t count */
static conf_set_fn set_cidrs;		/* struct cidr * + size_t count */
static conf_set_fn set_fallback;	/* bool: relayhost_fallback = mx */
static conf_set_fn set_tls_policy;	/* struct tls_domain_policy * + count */
static conf_set_fn set_log_format;	/* enum record_format */
static conf_set_fn set_yesno;		/* bool: yes or no */
static conf_set_fn set_dkim_key;	/* struct conf_dkim_key * + count */

#define CK_OPTIONAL	0x01	/* an empty value means none */
#define CK_REPEAT	0x02	/* may appear more than once */
#define CK_IPONLY	0x04	/* set_hostports: IP addresses, no names */
#define CK_UINT		0x08	/* set_duration: an unsigned field, not int64_t */
/* A CK_UINT duration is at most a day: its ms fit an unsigned. */
_Static_assert(86400ULL * 1000 <= UINT_MAX, "a day of ms in an unsigned");

struct conf_key {
	const char	*name;
	conf_set_fn	*set;
	size_t		 off;		/* offsetof(struct conf, field) */
	size_t		 countoff;	/* lists: offsetof the count */
	const char	*def;		/* default as text; NULL = none */
	uint64_t	 min, max;	/* set_uint, set_size; seconds for durations */
	unsigned	 flags;
};

#define K(n, set, f, def, min, max, fl) \
	{ n, set, offsetof(struct conf, f), 0, def, min, max, fl }
#define KL(n, set, f, cnt, def, fl) \
	{ n, set, offsetof(struct conf, f), offsetof(struct conf, cnt), def, \
	    0, 0, fl }

/* hostname and qualify_domain default in check_conf(). */
static const struct conf_key keys[] = {
	K("hostname", set_hostname, hostname, NULL, 0, 0, 0),
	K("qualify_domain", set_hostname, qualify_domain, NULL, 0, 0, 0),
	K("spool_dir", set_path, spool_dir, CONF_DEFAULT_SPOOL, 0, 0, 0),
	K("runtime_dir", set_path, runtime_dir, CONF_DEFAULT_RUNTIME, 0, 0, 0),
	K("aliases", set_path, aliases, NULL, 0, 0, CK_OPTIONAL),
	KL("listen", set_hostports, listen, nlisten, "127.0.0.1:25 [::1]:25",
	    CK_OPTIONAL),
	KL("relay_clients", set_cidrs, relay_clients, nrelay_clients,
	    "127.0.0.0/8 ::1", CK_OPTIONAL),
	KL("relayhost", set_hostports, relayhost, nrelayhost, NULL, CK_OPTIONAL),
	K("relayhost_auth_file", set_path, relayhost_auth_file, NULL, 0, 0,
	    CK_OPTIONAL),
	K("relayhost_auth_tls", set_auth_tls, relayhost_auth_tls, "verify", 0,
	    0, 0),
	KL("dns_servers", set_hostports, dns_servers, ndns_servers, NULL,
	    CK_OPTIONAL | CK_IPONLY),
	K("smtp_port", set_uint, smtp_port, "25", 1, 65535, 0),
	K("tls", set_tls, tls, "dane", 0, 0, 0),
	KL("tls_policy", set_tls_policy, tls_policies, ntls_policies, NULL,
	    CK_REPEAT),
	K("tls_ca_file", set_path, tls_ca_file, NULL, 0, 0, CK_OPTIONAL),
	K("mta_sts", set_yesno, mta_sts, "yes", 0, 0, 0),
	K("mta_sts_ca_file", set_path, mta_sts_ca_file, NULL, 0, 0,
	    CK_OPTIONAL),
	K("mta_sts_port", set_uint, mta_sts_port, "443", 1, 65535, 0),
	K("mta_sts_timeout", set_duration, mta_sts_timeout_ms, "30s", 1, 300,
	    CK_UINT),
	K("tls_cert_file", set_path, tls_cert_file, NULL, 0, 0, CK_OPTIONAL),
	K("tls_key_file", set_path, tls_key_file, NULL, 0, 0, CK_OPTIONAL),
	K("auth_users", set_path, auth_users, NULL, 0, 0, CK_OPTIONAL),
	K("auth_fail_limit", set_uint, auth_fail_limit, "10", 0, 1000, 0),
	K("auth_fail_window", set_duration, auth_fail_window_ms, "30m", 1, DAY,
	    CK_UINT),
	K("auth_fail_delay_max", set_duration, auth_fail_delay_max_ms, "8s", 0,
	    60, CK_UINT),
	K("retry_min", set_duration, retry_min_ms, "5m", 1, 7 * DAY, 0),
	K("retry_max", set_duration, retry_max_ms, "1h", 1, 7 * DAY, 0),
	K("queue_lifetime", set_duration, queue_lifetime_ms, "5d", 0, 365 * DAY,
	    0),
	K("max_message_size", set_size, max_message_size, "35M", 1, 1ULL << 40,
	    0),
	K("concurrency", set_uint, concurrency, "100", 1, 10000, 0),
	K("domain_concurrency", set_uint, domain_concurrency, "20", 1, 10000,
	    0),
	K("max_recipients", set_uint, max_recipients, "1000", 1, 1000000, 0),
	K("bare_lf", set_bare_lf, bare_lf, "normalize", 0, 0, 0),
	K("max_clients", set_uint, max_clients, "100", 1, 100000, 0),
	K("max_clients_per_address", set_uint, max_clients_per_address, "10",
	    0, 100000, 0),
	K("smtpd_idle_timeout", set_duration, smtpd_idle_timeout_ms, "1m", 1,
	    DAY, CK_UINT),
	K("smtpd_command_timeout", set_duration, smtpd_command_timeout_ms, "5m",
	    1, DAY, CK_UINT),
	K("smtpd_data_timeout", set_duration, smtpd_data_timeout_ms, "5m", 1,
	    DAY, CK_UINT),
	K("smtpd_tls_timeout", set_duration, smtpd_tls_timeout_ms, "1m", 1,
	    DAY, CK_UINT),
	K("smtpd_session_deadline", set_duration, smtpd_session_deadline_ms,
	    "1h", 0, DAY, CK_UINT),
	K("smtpd_junk_command_limit", set_uint, smtpd_junk_command_limit, "100",
	    0, 1000000, 0),
	K("user", set_name, user, "mxrelay", 0, 0, 0),
	K("group", set_name, group, "mxrelay", 0, 0, 0),
	K("smtp_connect_timeout", set_duration, smtp_timeouts.connect, "30s", 1,
	    DAY, CK_UINT),
	K("smtp_greeting_timeout", set_duration, smtp_timeouts.greeting, "5m", 1,
	    DAY, CK_UINT),
	K("smtp_helo_timeout", set_duration, smtp_timeouts.helo, "5m", 1,
	    DAY, CK_UINT),
	K("smtp_mail_timeout", set_duration, smtp_timeouts.mail, "5m", 1,
	    DAY, CK_UINT),
	K("smtp_rcpt_timeout", set_duration, smtp_timeouts.rcpt, "5m", 1,
	    DAY, CK_UINT),
	K("smtp_data_timeout", set_duration, smtp_timeouts.data, "2m", 1,
	    DAY, CK_UINT),
	K("smtp_block_timeout", set_duration, smtp_timeouts.block, "3m", 1,
	    DAY, CK_UINT),
	K("smtp_dot_timeout", set_duration, smtp_timeouts.dot, "10m", 1,
	    DAY, CK_UINT),
	K("connection_reuse_limit", set_uint, connection_reuse_limit, "100", 1,
	    100000, 0),
	K("mx_host_limit", set_uint, mx_host_limit, "10", 0, 1000, 0),
	K("mx_address_limit", set_uint, mx_address_limit, "5", 0, 1000, 0),
	K("dns_timeout", set_duration, dns_timeout_ms, "5s", 1, 300, CK_UINT),
	K("dns_tries", set_uint, dns_tries, "3", 1, 10, 0),
	KL("metrics_listen", set_hostports, metrics_listen, nmetrics_listen,
	    NULL, CK_OPTIONAL | CK_IPONLY),
	K("relayhost_fallback", set_fallback, relayhost_fallback, "none", 0, 0,
	    0),
	K("log_format", set_log_format, log_format, "text", 0, 0, 0),
	K("bounce_interval", set_duration, bounce_interval_ms, "0", 0, DAY, 0),
	K("bounce_limit_per_sender", set_uint, bounce_limit_per_sender, "10",
	    0, 100000, 0),
	K("delay_warning_time", set_duration, delay_warning_time_ms, "0", 0,
	    365 * DAY, 0),
	K("smtpd_add_missing_headers", set_yesno, smtpd_add_missing_headers,
	    "yes", 0, 0, 0),
	KL("dkim_key", set_dkim_key, dkim_keys, ndkim_keys, NULL, CK_REPEAT),
	K("dkim_expire", set_duration, dkim_expire_ms, "0", 0, 365 * DAY, 0),
};
#define NKEYS	(sizeof(keys) / sizeof(keys[0]))

#undef K
#undef KL

/* Where each key was set in the file (0 = default), for cross-check errors. */
struct conf_seen {
	unsigned long	 line[NKEYS];
};

static void	 set_defaults(struct conf *);
static const struct conf_key *find_key(const char *, size_t *);
static int	 set_value(struct conf *, const struct conf_key *, const char *,
		    char *, size_t);
static int	 check_conf(struct conf *, const struct conf_seen *, const char *,
		    char *, size_t);
static int	 parse_line(struct conf *, struct conf_seen *, char *,
		    const char *, unsigned long, char *, size_t);
static const char *host_fqdn(void);
static int	 valid_name(const char *);
static const char *next_word(const char **, size_t *);
static void	 store_string(struct conf *, const struct conf_key *,
		    const char *);
static int	 parse_domain_policy(const char *, char *, enum tls_policy *,
		    char *, size_t);
static void	 hostports_free(struct hostport *, size_t);

/* ---- single values (those of confval.h are in confval.c) ---------- */

/* User and group names: POSIX portable characters, no leading '-'. */
static int
valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 32 || s[0] == '-')
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-')
			return -1;
	}
	return 0;
}

/* ---- lists ----------------------------------------------------------- */

/* The next word of *sp, separated by white space or commas; NULL at end. */
static const char *
next_word(const char **sp, size_t *len)
{
	const char *s = *sp, *w;

	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	if (*s == '\0') {
		*sp = s;
		return NULL;
	}
	w = s;
	while (*s != '\0' && *s != ' ' && *s != '\t' && *s != ',')
		s++;
	*len = (size_t)(s - w);
	*sp = s;
	return w;
}

static void
hostports_free(struct hostport *hp, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(hp[i].host);
	free(hp);
}

/* ---- one parser per type of value ---------------------------------- */

#define FIELD(c, k, type)	((type *)(void *)((char *)(c) + (k)->off))
#define COUNT(c, k)		((size_t *)(void *)((char *)(c) + (k)->countoff))

/* Replace the string of k with a copy of value, or NULL when it is empty. */
static void
store_string(struct conf *c, const struct conf_key *k, const char *value)
{
	char **sp = FIELD(c, k, char *);

	free(*sp);
	*sp = *value != '\0' ? xstrdup(value) : NULL;
}

static int
set_hostname(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	if (*value != '\0' && conf_valid_hostname(value, false) == -1) {
		util_seterr(why, whylen, "not a valid host name");
		return -1;
	}
	store_string(c, k, value);
	return 0;
}

static int
set_name(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	if (*value != '\0' && valid_name(value) == -1) {
		util_seterr(why, whylen, "not a valid user or group name");
		return -1;
	}
	store_string(c, k, value);
	return 0;
}

static int
set_path(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	if (*value != '\0' && value[0] != '/') {
		util_seterr(why, whylen, "not an absolute path");
		return -1;
	}
	if (strlen(value) >= PATH_MAX) {
		util_seterr(why, whylen, "path too long");
		return -1;
	}
	store_string(c, k, value);
	return 0;
}

static int
set_uint(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	uint64_t v;

	if (conf_parse_uint(value, k->min, k->max, &v) == -1) {
		util_seterr(why, whylen, "must be a number from %llu to %llu",
		    (unsigned long long)k->min, (unsigned long long)k->max);
		return -1;
	}
	*FIELD(c, k, unsigned) = (unsigned)v;
	return 0;
}

/* A duration in whole seconds within k's bounds, into *secs. */
static int
parse_duration(const struct conf_key *k, const char *value, uint64_t *secs,
    char *why, size_t whylen)
{
	time_t t;

	if (util_parse_duration(value, &t) == -1) {
		util_seterr(why, whylen, "%s", errno == ERANGE ?
		    "duration too long" :
		    "not a duration (a number with s, m, h, d or w)");
		return -1;
	}
	if ((uint64_t)t < k->min || (uint64_t)t > k->max) {
		/* The upper bound in whole days when it is some. */
		bool days = k->max % DAY == 0;

		util_seterr(why, whylen, "must be from %llus to %llu%c",
		    (unsigned long long)k->min,
		    (unsigned long long)(days ? k->max / DAY : k->max),
		    days ? 'd' : 's');
		return -1;
	}
	*secs = (uint64_t)t;
	return 0;
}

/* In ms, into an int64_t, or an unsigned for a CK_UINT key (up to a day). */
static int
set_duration(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	uint64_t secs;

	if (parse_duration(k, value, &secs, why, whylen) == -1)
		return -1;
	if (k->flags & CK_UINT)
		*FIELD(c, k, unsigned) = (unsigned)(secs * 1000);
	else
		*FIELD(c, k, int64_t) = (int64_t)secs * 1000;
	return 0;
}

static int
set_size(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	uint64_t v;

	if (util_parse_size(value, &v) == -1) {
		util_seterr(why, whylen, "%s", errno == ERANGE ?
		    "size too large" : "not a size (a number with K, M or G)");
		return -1;
	}
	if (v < k->min || v > k->max) {
		util_seterr(why, whylen, "must be from %llu bytes to %lluG",
		    (unsigned long long)k->min,
		    (unsigned long long)(k->max >> 30));
		return -1;
	}
	*FIELD(c, k, uint64_t) = v;
	return 0;
}

static int
set_tls(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	enum tls_policy p;

	if (conf_parse_tls_policy(value, &p) == -1) {
		util_seterr(why, whylen,
		    "must be none, may, encrypt, verify or dane");
		return -1;
	}
	*FIELD(c, k, enum tls_policy) = p;
	return 0;
}

/* The TLS that credentials need: encrypt or verify (never none or may). */
static int
set_auth_tls(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	enum tls_policy p;

	if (conf_parse_tls_policy(value, &p) == -1 ||
	    (p != TLS_ENCRYPT && p != TLS_VERIFY)) {
		util_seterr(why, whylen, "must be encrypt or verify");
		return -1;
	}
	*FIELD(c, k, enum tls_policy) = p;
	return 0;
}

static int
set_bare_lf(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	enum bare_lf_policy p;

	if (strcasecmp(value, "normalize") == 0)
		p = BARE_LF_NORMALIZE;
	else if (strcasecmp(value, "reject") == 0)
		p = BARE_LF_REJECT;
	else {
		util_seterr(why, whylen, "must be normalize or reject");
		return -1;
	}
	*FIELD(c, k, enum bare_lf_policy) = p;
	return 0;
}

static int
set_yesno(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	bool v;

	if (strcasecmp(value, "yes") == 0)
		v = true;
	else if (strcasecmp(value, "no") == 0)
		v = false;
	else {
		util_seterr(why, whylen, "must be yes or no");
		return -1;
	}
	*FIELD(c, k, bool) = v;
	return 0;
}

static int
set_log_format(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	enum record_format f;

	if (record_format_parse(value, &f) == -1) {
		util_seterr(why, whylen, "must be text or json");
		return -1;
	}
	*FIELD(c, k, enum record_format) = f;
	return 0;
}

/* relayhost_fallback: none, or mx (by MX when every relayhost fails). */
static int
set_fallback(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	bool mx;

	if (strcasecmp(value, "mx") == 0)
		mx = true;
	else if (strcasecmp(value, "none") == 0)
		mx = false;
	else {
		util_seterr(why, whylen, "must be none or mx");
		return -1;
	}
	*FIELD(c, k, bool) = mx;
	return 0;
}

static int
set_hostports(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	struct hostport **lp = FIELD(c, k, struct hostport *), *l = NULL;
	size_t *np = COUNT(c, k), n = 0, len;
	const char *w, *rest = value;
	unsigned char bin[16];

	while ((w = next_word(&rest, &len)) != NULL) {
		struct hostport hp;

		if (conf_hostport_parse(w, len, &hp, why, whylen) == -1)
			goto fail;
		if ((k->flags & CK_IPONLY) &&
		    inet_pton(AF_INET, hp.host, bin) != 1 &&
		    inet_pton(AF_INET6, hp.host, bin) != 1) {
			util_seterr(why, whylen, "%s: an IP address is needed "
			    "here, not a name", hp.host);
			free(hp.host);
			goto fail;
		}
		l = xreallocarray(l, n + 1, sizeof(*l));
		l[n++] = hp;
	}
	hostports_free(*lp, *np);
	*lp = l;
	*np = n;
	return 0;
 fail:
	hostports_free(l, n);
	return -1;
}

static int
set_cidrs(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	struct cidr **lp = FIELD(c, k, struct cidr *), *l = NULL, cidr;
	size_t *np = COUNT(c, k), n = 0, len;
	const char *w, *rest = value;

	while ((w = next_word(&rest, &len)) != NULL) {
		if (conf_cidr_parse(w, len, &cidr, why, whylen) == -1) {
			free(l);
			return -1;
		}
		l = xreallocarray(l, n + 1, sizeof(*l));
		l[n++] = cidr;
	}
	free(*lp);
	*lp = l;
	*np = n;
	return 0;
}

/*
 * "DOMAIN POLICY": the domain, lower case and without its trailing dot,
 * into domain (CONF_HOSTNAME_MAX + 3 bytes), and the policy into *p.
 */
static int
parse_domain_policy(const char *value, char *domain, enum tls_policy *p,
    char *why, size_t whylen)
{
	const char *w, *pw, *rest = value;
	size_t len, plen;
	char pol[16];

	if ((w = next_word(&rest, &len)) == NULL) {
		util_seterr(why, whylen, "expected DOMAIN POLICY");
		return -1;
	}
	if (len >= CONF_HOSTNAME_MAX + 3) {
		util_seterr(why, whylen, "domain name too long");
		return -1;
	}
	memcpy(domain, w, len);
	domain[len] = '\0';
	if (conf_valid_hostname(domain, true) == -1) {
		util_seterr(why, whylen, "not a valid domain name");
		return -1;
	}
	if ((pw = next_word(&rest, &plen)) == NULL || plen >= sizeof(pol) ||
	    next_word(&rest, &len) != NULL) {
		util_seterr(why, whylen, "expected DOMAIN POLICY");
		return -1;
	}
	memcpy(pol, pw, plen);
	pol[plen] = '\0';
	if (conf_parse_tls_policy(pol, p) == -1) {
		util_seterr(why, whylen,
		    "policy must be none, may, encrypt, verify or dane");
		return -1;
	}
	len = strlen(domain);
	if (len > 1 && domain[len - 1] == '.')
		domain[--len] = '\0';
	for (size_t i = 0; i < len; i++)
		domain[i] = (char)tolower((unsigned char)domain[i]);
	return 0;
}

/* One more entry; each domain may have one. */
static int
set_tls_policy(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	struct tls_domain_policy **lp = FIELD(c, k, struct tls_domain_policy *);
	size_t *np = COUNT(c, k);
	char domain[CONF_HOSTNAME_MAX + 3];
	enum tls_policy p;

	if (parse_domain_policy(value, domain, &p, why, whylen) == -1)
		return -1;
	for (size_t i = 0; i < *np; i++)
		if (strcmp((*lp)[i].domain, domain) == 0) {
			util_seterr(why, whylen, "%s: domain listed twice",
			    domain);
			return -1;
		}
	*lp = xreallocarray(*lp, *np + 1, sizeof(**lp));
	(*lp)[*np].domain = xstrdup(domain);
	(*lp)[*np].policy = p;
	(*np)++;
	return 0;
}

/*
 * A DKIM selector (RFC 6376 §3.1): sub-domains, each letters, digits and
 * '-' (not first or last), joined by dots; at most 63 octets a label.
 */
static bool
valid_selector(const char *s)
{
	size_t label = 0;

	if (*s == '\0' || strlen(s) > CONF_HOSTNAME_MAX)
		return false;
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return false;
		if (label == 0 && *p == '-')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && s[strlen(s) - 1] != '-';
}

/* "DOMAIN SELECTOR PATH": one more key; the same line twice is an error. */
static int
set_dkim_key(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	struct conf_dkim_key **lp = FIELD(c, k, struct conf_dkim_key *);
	size_t *np = COUNT(c, k), len[3];
	const char *w[3], *rest = value;
	char *word[3];
	int rc = -1;

	for (size_t i = 0; i < 3; i++)
		if ((w[i] = next_word(&rest, &len[i])) == NULL) {
			util_seterr(why, whylen, "expected DOMAIN SELECTOR PATH");
			return -1;
		}
	if (next_word(&rest, &len[0]) != NULL) {
		util_seterr(why, whylen, "expected DOMAIN SELECTOR PATH");
		return -1;
	}
	for (size_t i = 0; i < 3; i++)
		word[i] = xstrndup(w[i], len[i]);
	if (len[0] > 1 && word[0][len[0] - 1] == '.')
		word[0][--len[0]] = '\0';
	for (size_t i = 0; i < len[0]; i++)
		word[0][i] = (char)tolower((unsigned char)word[0][i]);
	if (conf_valid_hostname(word[0], false) == -1 ||
	    strchr(word[0], '.') == NULL) {
		util_seterr(why, whylen, "%s: not a valid domain name (an "
		    "A-label with a dot)", word[0]);
		goto done;
	}
	if (!valid_selector(word[1])) {
		util_seterr(why, whylen, "%s: not a valid selector (letters, "
		    "digits and '-', in labels joined by dots)", word[1]);
		goto done;
	}
	if (word[2][0] != '/' || len[2] >= PATH_MAX) {
		util_seterr(why, whylen, "%s: not an absolute path", word[2]);
		goto done;
	}
	/*
	 * One selector of a domain is one TXT record, so one public key:
	 * a second key under it would make signatures no one can verify.
	 */
	for (size_t i = 0; i < *np; i++)
		if (strcasecmp((*lp)[i].domain, word[0]) == 0 &&
		    strcasecmp((*lp)[i].selector, word[1]) == 0) {
			util_seterr(why, whylen, "%s %s: a second key for the "
			    "same domain and selector (one selector publishes "
			    "one key: give each key its own)", word[0], word[1]);
			goto done;
		}
	*lp = xreallocarray(*lp, *np + 1, sizeof(**lp));
	(*lp)[*np].domain = word[0];
	(*lp)[*np].selector = word[1];
	(*lp)[*np].path = word[2];
	(*np)++;
	word[0] = word[1] = word[2] = NULL;
	rc = 0;
 done:
	for (size_t i = 0; i < 3; i++)
		free(word[i]);
	return rc;
}

#undef FIELD
#undef COUNT

/* ---- the key table at work ------------------------------------------- */

static const struct conf_key *
find_key(const char *name, size_t *idx)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcasecmp(keys[i].name, name) == 0) {
			*idx = i;
			return &keys[i];
		}
	return NULL;
}

/* Parse value for key k into c (see conf_set_fn). */
static int
set_value(struct conf *c, const struct conf_key *k, const char *value,
    char *why, size_t whylen)
{
	if (*value == '\0' && !(k->flags & CK_OPTIONAL)) {
		util_seterr(why, whylen, "missing value");
		return -1;
	}
	return k->set(c, k, value, why, whylen);
}

const char *
conf_key_name(size_t i, const char **def)
{
	if (i >= NKEYS)
		return NULL;
	if (def != NULL)
		*def = keys[i].def;
	return keys[i].name;
}

static void
set_defaults(struct conf *c)
{
	char why[CONF_WHY_MAX];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].def != NULL &&
		    set_value(c, &keys[i], keys[i].def, why, sizeof(why)) == -1)
			fatalx("conf: default of %s: %s", keys[i].name, why);
}

/*
 * The host's fully qualified name, looked up once per process: the name
 * from gethostname() when it has a dot, else its canonical name from
 * getaddrinfo(AI_CANONNAME), else the plain name.
 */
static const char *
host_fqdn(void)
{
	static char fqdn[CONF_HOSTNAME_MAX + 2];
	char name[CONF_HOSTNAME_MAX + 2];
	struct addrinfo hints, *res = NULL;

	if (fqdn[0] != '\0')
		return fqdn;
	if (gethostname(name, sizeof(name)) == -1 || name[0] == '\0')
		util_strlcpy(name, "localhost", sizeof(name));
	name[sizeof(name) - 1] = '\0';
	util_strlcpy(fqdn, name, sizeof(fqdn));
	if (strchr(name, '.') != NULL)
		return fqdn;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_CANONNAME;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(name, NULL, &hints, &res) == 0) {
		if (res != NULL && res->ai_canonname != NULL &&
		    conf_valid_hostname(res->ai_canonname, false) == 0)
			util_strlcpy(fqdn, res->ai_canonname, sizeof(fqdn));
		freeaddrinfo(res);
	}
	return fqdn;
}

void
conf_defaults(struct conf *c)
{
	set_defaults(c);
	c->hostname = xstrdup(host_fqdn());
	c->qualify_domain = xstrdup(c->hostname);
}

/* Which key does this field belong to (for the line number of errors)? */
static size_t
key_index(size_t off)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].off == off)
			return i;
	fatalx("conf: no key at offset %zu", off);
}

#define SEEN(f)		(seen->line[key_index(offsetof(struct conf, f))])

/* Derived defaults and checks that involve more than one key. */
static int
check_conf(struct conf *c, const struct conf_seen *seen, const char *path,
    char *err, size_t errlen)
{
	if (c->hostname == NULL)
		c->hostname = xstrdup(host_fqdn());
	if (c->qualify_domain == NULL)
		c->qualify_domain = xstrdup(c->hostname);
	for (size_t i = 0; i < c->nlisten; i++)
		if (c->listen[i].port == 0)
			c->listen[i].port = 25;
	for (size_t i = 0; i < c->ndns_servers; i++)
		if (c->dns_servers[i].port == 0)
			c->dns_servers[i].port = 53;
	for (size_t i = 0; i < c->nmetrics_listen; i++)
		if (c->metrics_listen[i].port == 0) {
			util_seterr(err, errlen, "%s:%lu: metrics_listen: %s: "
			    "a port is needed", path, SEEN(metrics_listen),
			    c->metrics_listen[i].host);
			return -1;
		}

	/*
	 * When only one bound of a pair is set, the other default follows
	 * it; when both are set, they must agree.
	 */
	if (c->retry_min_ms > c->retry_max_ms) {
		if (SEEN(retry_min_ms) && SEEN(retry_max_ms)) {
			util_seterr(err, errlen, "%s:%lu: retry_min: %llus is more "
			    "than retry_max (%llus)", path,
			    SEEN(retry_min_ms) > SEEN(retry_max_ms) ?
			    SEEN(retry_min_ms) : SEEN(retry_max_ms),
			    (unsigned long long)(c->retry_min_ms / 1000),
			    (unsigned long long)(c->retry_max_ms / 1000));
			return -1;
		}
		if (SEEN(retry_min_ms))
			c->retry_max_ms = c->retry_min_ms;
		else
			c->retry_min_ms = c->retry_max_ms;
	}
	if (c->domain_concurrency > c->concurrency) {
		if (SEEN(domain_concurrency) && SEEN(concurrency)) {
			util_seterr(err, errlen, "%s:%lu: domain_concurrency: %u is "
			    "more than concurrency (%u)", path,
			    SEEN(domain_concurrency) > SEEN(concurrency) ?
			    SEEN(domain_concurrency) : SEEN(concurrency),
			    c->domain_concurrency, c->concurrency);
			return -1;
		}
		if (SEEN(domain_concurrency))
			c->concurrency = c->domain_concurrency;
		else
			c->domain_concurrency = c->concurrency;
	}
	if ((c->tls_cert_file == NULL) != (c->tls_key_file == NULL)) {
		bool cert = c->tls_cert_file != NULL;

		util_seterr(err, errlen, "%s:%lu: %s: set without %s", path,
		    cert ? SEEN(tls_cert_file) : SEEN(tls_key_file),
		    cert ? "tls_cert_file" : "tls_key_file",
		    cert ? "tls_key_file" : "tls_cert_file");
		return -1;
	}
	if (c->auth_users != NULL && c->tls_cert_file == NULL) {
		util_seterr(err, errlen, "%s:%lu: auth_users: needs tls_cert_file "
		    "and tls_key_file (AUTH is offered only after STARTTLS)",
		    path, SEEN(auth_users));
		return -1;
	}
	return 0;
}

#undef SEEN

/*
 * One line, without its line end.  Modifies line.  0 or -1 with err set.
 */
static int
parse_line(struct conf *c, struct conf_seen *seen, char *line,
    const char *path, unsigned long lineno, char *err, size_t errlen)
{
	char ekey[128], why[CONF_WHY_MAX];
	char *p, *eq, *key, *value, *end;
	const struct conf_key *k;
	size_t idx;

	/* Comments: '#' at the start or after white space. */
	for (p = line; *p != '\0'; p++)
		if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	for (p = line; *p == ' ' || *p == '\t'; p++)
		;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	if (*p == '\0')
		return 0;
	for (char *q = p; *q != '\0'; q++)
		if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) {
			util_seterr(err, errlen, "%s:%lu: control character in line",
			    path, lineno);
			return -1;
		}

	key = p;
	if ((eq = strchr(p, '=')) == NULL) {
		size_t klen = strcspn(key, " \t");

		key[klen] = '\0';
		util_escape(ekey, sizeof(ekey), key);
		util_seterr(err, errlen, "%s:%lu: %s: missing '=' (expected "
		    "KEY = VALUE)", path, lineno, ekey);
		return -1;
	}
	value = eq + 1;
	while (eq > key && (eq[-1] == ' ' || eq[-1] == '\t'))
		eq--;
	*eq = '\0';
	while (*value == ' ' || *value == '\t')
		value++;
	if (*key == '\0') {
		util_seterr(err, errlen, "%s:%lu: missing key before '='", path,
		    lineno);
		return -1;
	}
	util_escape(ekey, sizeof(ekey), key);
	if ((k = find_key(key, &idx)) == NULL) {
		util_seterr(err, errlen, "%s:%lu: %s: unknown key", path, lineno,
		    ekey);
		return -1;
	}
	if (seen->line[idx] != 0 && !(k->flags & CK_REPEAT)) {
		util_seterr(err, errlen, "%s:%lu: %s: duplicate key (first set at "
		    "line %lu)", path, lineno, k->name, seen->line[idx]);
		return -1;
	}
	if (set_value(c, k, value, why, sizeof(why)) == -1) {
		char evalue[96];

		util_escape(evalue, sizeof(evalue), value);
		util_seterr(err, errlen, "%s:%lu: %s: \"%s\": %s", path, lineno,
		    k->name, evalue, why);
		return -1;
	}
	seen->line[idx] = lineno;
	return 0;
}

int
conf_load(const char *path, bool must_exist, struct conf *c, char *err,
    size_t errlen)
{
	struct conf_seen seen;
	FILE *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	int rc = -1;

	memset(&seen, 0, sizeof(seen));
	set_defaults(c);
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT && !must_exist)
			goto checks;
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	while ((len = util_getline(f, &line, &cap, CONF_LINE_MAX, path, &lineno,
	    err, errlen)) != -1) {
		if (len == -2)
			goto done;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (parse_line(c, &seen, line, path, lineno, err, errlen) == -1)
			goto done;
	}
	if (ferror(f)) {
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
 checks:
	if (check_conf(c, &seen, path, err, errlen) == -1)
		goto done;
	rc = 0;
 done:
	free(line);
	if (f != NULL)
		fclose(f);
	if (rc == -1)
		conf_free(c);
	return rc;
}

void
conf_free(struct conf *c)
{
	free(c->hostname);
	free(c->qualify_domain);
	free(c->spool_dir);
	free(c->runtime_dir);
	free(c->aliases);
	hostports_free(c->listen, c->nlisten);
	free(c->relay_clients);
	hostports_free(c->relayhost, c->nrelayhost);
	free(c->relayhost_auth_file);
	hostports_free(c->dns_servers, c->ndns_servers);
	for (size_t i = 0; i < c->ntls_policies; i++)
		free(c->tls_policies[i].domain);
	free(c->tls_policies);
	free(c->tls_ca_file);
	free(c->mta_sts_ca_file);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->auth_users);
	free(c->user);
	free(c->group);
	hostports_free(c->metrics_listen, c->nmetrics_listen);
	for (size_t i = 0; i < c->ndkim_keys; i++) {
		free(c->dkim_keys[i].domain);
		free(c->dkim_keys[i].selector);
		free(c->dkim_keys[i].path);
	}
	free(c->dkim_keys);
	memset(c, 0, sizeof(*c));
}

const char *
conf_default_path(bool *must_exist)
{
	const char *p = secure_getenv("MXRELAY_CONFIG");

	if (p != NULL && *p != '\0') {
		*must_exist = true;
		return p;
	}
	*must_exist = false;
	return CONF_DEFAULT_PATH;
}
