/*
 * sendmail_route.c: `mxrelay route [-C file] [--json] [-v] DOMAIN`, what
 * delivery to DOMAIN would do now, without sending mail (mxrelay(8),
 * ROUTE).
 *
 * It runs the delivery engine itself (runner_setup_new(), the set-up of
 * mxrelay -q) on a probe part (delivery.h): the same MX and address
 * lookups, the same routes in the same order, the same sessions with the
 * same TLS policy and contexts, the same next-route rules and the same
 * status codes.  The first session that gets ready for MAIL says QUIT:
 * that is where the mail would go.  So the verdict cannot disagree with
 * delivery, except where the exchangers change their mind in between, or
 * equal preferences are shuffled differently.
 *
 * Then each route the engine did not try gets one session with the same
 * parameters (delivery_probe_session()), so that every address is shown
 * with its greeting, EHLO, STARTTLS and certificate.
 *
 * Exit: 0 deliver, EX_TEMPFAIL defer, EX_UNAVAILABLE bounce; EX_USAGE,
 * EX_CONFIG (configuration, DNS or TLS set-up), EX_SOFTWARE (the loop).
 */
#include "config.h"

#include <sys/socket.h>

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "delivery.h"
#include "dns.h"
#include "event.h"
#include "log.h"
#include "privs.h"
#include "runner.h"
#include "sendmail_int.h"
#include "smtp_client.h"
#include "smtp_proto.h"
#include "util.h"

/* One session to one route, as it ended. */
struct rsess {
	char			*host;
	unsigned		 pref;
	struct sockaddr_storage	 ss;
	enum tls_policy		 tls;
	enum route_auth		 auth;
	bool			 clear;
	bool			 ready;
	bool			 verdict;	/* a session of the verdict's run */
	struct smtpc_seen	 seen;
	struct smtpc_reason	 why;
};

struct rrun {
	struct ev_loop		*loop;
	struct runner_setup	*rs;
	const char		*domain;
	struct delivery_probe	 probe;
	struct delivery_rcpt	 rcpt;
	struct delivery_msg	 m;
	bool			 done;
	struct rsess		*sess;
	size_t			 nsess;
	size_t			 pending;	/* extra sessions still open */
	const struct delivery_probe_route *cur;	/* of a new extra session */
};

struct xsess {
	struct rrun		*run;
	const struct delivery_probe_route *r;
	enum tls_policy		 tls;
	enum route_auth		 auth;
	bool			 ready;
};

static void	 route_usage(void);
static int	 route_loop(struct rrun *, bool (*)(const struct rrun *));
static bool	 verdict_done(const struct rrun *);
static bool	 extra_done(const struct rrun *);
static void	 on_done(void *, struct delivery_msg *);
static void	 on_seen(void *, const struct delivery_seen *);
static void	 rsess_add(struct rrun *, const char *, unsigned,
		    const struct sockaddr_storage *, enum tls_policy,
		    enum route_auth, bool, bool, bool, const struct smtpc *,
		    const struct smtpc_reason *);
static void	 extra_start(struct rrun *);
static void	 x_ready(void *, struct smtpc *);
static void	 x_done(void *, struct smtpc *, const struct smtpc_result *);
static void	 x_closed(void *, struct smtpc *, const struct smtpc_reason *);
static const char *addr_text(const struct sockaddr_storage *, char *, size_t);
static unsigned	 addr_port(const struct sockaddr_storage *);
static bool	 addr_same(const struct sockaddr_storage *,
		    const struct sockaddr_storage *);
static const char *action_of(enum outcome);
static int	 exit_of(enum outcome);
static void	 print_text(const struct rrun *);
static void	 print_json(const struct rrun *);
static const char *mx_unused_text(const struct delivery_probe *,
		    const struct delivery_probe_mx *);
static void	 print_policy_text(const struct delivery_probe *);
static void	 print_mx_policy_text(const struct delivery_probe *,
		    const struct delivery_probe_mx *);
static void	 print_sts_json(const struct delivery_probe *);
static void	 print_mx_dane_json(const struct delivery_probe *,
		    const struct delivery_probe_mx *);

static const struct smtpc_ops x_ops = {
	.ready = x_ready,
	.done = x_done,
	.closed = x_closed,
};

static void
route_usage(void)
{
	fprintf(stderr, "usage: mxrelay route [-v] [-C file] [--json] DOMAIN\n");
}

/*
 * Root: become who mxrelay -q runs as, for good: the spool's owner, or
 * the configuration's user when there is no spool yet.  0, or -1 logged.
 */
static int
route_drop_root(const struct conf *conf)
{
	struct passwd *pw;
	char err[256];
	bool missing;

	if (as_spool_owner(conf, false, &missing) != 0)
		return -1;
	if (!missing)
		return 0;
	if ((pw = getpwnam(conf->user)) == NULL) {
		log_warnx("user %s: no such user (mxrelay.conf user)",
		    conf->user);
		return -1;
	}
	if (privs_become(pw->pw_uid, pw->pw_gid, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return -1;
	}
	return 0;
}

int
route_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rrun run;
	struct conf conf;
	const char *config = NULL;
	bool json = false;
	int ch, verbose = 0, rc;
	char *domain, *rcpt = NULL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "C:v", longopts, NULL)) != -1)
		switch (ch) {
		case 'C':
			config = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			printf("usage: mxrelay route [-v] [-C file] [--json] "
			    "DOMAIN\n");
			return EX_OK;
		default:
			route_usage();
			return EX_USAGE;
		}
	argc -= optind;
	argv += optind;
	if (argc != 1 || argv[0][0] == '\0' || strchr(argv[0], '@') != NULL ||
	    strlen(argv[0]) > 253) {
		route_usage();
		return EX_USAGE;
	}
	log_init("mxrelay", LOG_TO_STDERR, verbose);
	if ((rc = command_conf(config, &conf)) != EX_OK)
		return rc;

	memset(&run, 0, sizeof(run));
	domain = xstrdup(argv[0]);
	for (char *p = domain; *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (domain[strlen(domain) - 1] == '.' && domain[1] != '\0')
		domain[strlen(domain) - 1] = '\0';
	run.domain = domain;
	rc = EX_CONFIG;
	if ((run.loop = ev_loop_new()) == NULL) {
		log_warn("event loop");
		goto done;
	}
	if ((run.rs = runner_setup_new(run.loop, &conf)) == NULL)
		goto done;
	/*
	 * The secrets are read: root goes on as the configuration's user,
	 * as mxrelayd does, before it reads a DNS answer, a reply or a
	 * certificate from the network.
	 */
	if (geteuid() == 0 && route_drop_root(&conf) == -1)
		goto done;
	/* MTA-STS, whose cache is in the spool: as the spool's owner. */
	if (runner_setup_sts(run.rs, run.loop, &conf) == -1)
		goto done;
	delivery_set_seen(run.rs->engine, on_seen, &run);

	/*
	 * A recipient in the domain, so that relayhost_fallback = mx has
	 * somewhere to send it; the probe never gets as far as RCPT.
	 */
	rcpt = xasprintf("postmaster@%s", domain);
	run.rcpt.addr = rcpt;
	run.probe.route = -1;
	run.m.id = "route";
	run.m.sender = "";
	run.m.body_fd = -1;
	run.m.arrival = time(NULL);
	run.m.rcpt = &run.rcpt;
	run.m.nrcpt = 1;
	run.m.done = on_done;
	run.m.arg = &run;
	run.m.probe = &run.probe;
	delivery_submit(run.rs->engine, domain, &run.m);
	rc = EX_SOFTWARE;
	if (route_loop(&run, verdict_done) == -1)
		goto done;
	extra_start(&run);
	if (route_loop(&run, extra_done) == -1)
		goto done;
	if (json)
		print_json(&run);
	else
		print_text(&run);
	rc = exit_of(run.rcpt.outcome);
done:
	if (run.rs != NULL)
		runner_setup_free(run.rs);
	ev_loop_free(run.loop);
	delivery_probe_clear(&run.probe);
	for (size_t i = 0; i < run.nsess; i++)
		free(run.sess[i].host);
	free(run.sess);
	free(rcpt);
	free(domain);
	conf_free(&conf);
	return rc;
}

/* Run the loop until done(run); every wait is bounded by smtp timeouts. */
static int
route_loop(struct rrun *run, bool (*done)(const struct rrun *))
{
	while (!done(run))
		if (ev_run_once(run->loop, 1000) == -1 && errno != EINTR) {
			log_warn("event loop");
			return -1;
		}
	return 0;
}

static bool
verdict_done(const struct rrun *run)
{
	return run->done && delivery_idle(run->rs->engine);
}

static bool
extra_done(const struct rrun *run)
{
	return run->pending == 0;
}

static void
on_done(void *arg, struct delivery_msg *m)
{
	struct rrun *run = arg;

	(void)m;
	run->done = true;
}

static void
on_seen(void *arg, const struct delivery_seen *ds)
{
	struct rrun *run = arg;

	rsess_add(run, ds->host, ds->pref, ds->ss, ds->tls, ds->auth, ds->clear,
	    ds->ready, true, ds->s, ds->why);
}

static void
rsess_add(struct rrun *run, const char *host, unsigned pref,
    const struct sockaddr_storage *ss, enum tls_policy tls,
    enum route_auth auth, bool clear, bool ready, bool verdict,
    const struct smtpc *s, const struct smtpc_reason *why)
{
	struct rsess *r;

	run->sess = xreallocarray(run->sess, run->nsess + 1,
	    sizeof(*run->sess));
	r = &run->sess[run->nsess++];
	memset(r, 0, sizeof(*r));
	r->host = xstrdup(host);
	r->pref = pref;
	r->ss = *ss;
	r->tls = tls;
	r->auth = auth;
	r->clear = clear;
	r->ready = ready;
	r->verdict = verdict;
	r->seen = *smtpc_seen(s);
	r->why = *why;
}

/* One session to every route that the verdict's run did not try. */
static void
extra_start(struct rrun *run)
{
	const struct delivery_probe *p = &run->probe;

	for (size_t i = 0; i < p->nroutes; i++) {
		const struct delivery_probe_route *r = &p->routes[i];
		struct xsess *x;
		bool tried = false;

		for (size_t k = 0; k < run->nsess && !tried; k++)
			tried = addr_same(&run->sess[k].ss, &r->ss);
		if (tried)
			continue;
		x = xcalloc(1, sizeof(*x));
		x->run = run;
		x->r = r;
		x->tls = r->tls_broken ? TLS_NONE : r->tls;
		x->auth = r->auth;
		run->pending++;
		(void)delivery_probe_session(run->rs->engine, run->domain, r,
		    &x_ops, x);
	}
}

static void
x_ready(void *arg, struct smtpc *s)
{
	struct xsess *x = arg;

	x->ready = true;
	smtpc_quit(s);
}

static void
x_done(void *arg, struct smtpc *s, const struct smtpc_result *res)
{
	(void)arg;
	(void)s;
	(void)res;
}

static void
x_closed(void *arg, struct smtpc *s, const struct smtpc_reason *why)
{
	struct xsess *x = arg;
	struct rrun *run = x->run;

	rsess_add(run, x->r->host, x->r->pref, &x->r->ss, x->tls, x->auth,
	    x->r->tls_broken, x->ready, false, s, why);
	run->pending--;
	smtpc_free(s);
	free(x);
}

/*
 * Small helpers.
 */

static const char *
addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	socklen_t sl = ss->ss_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

	if (getnameinfo((const struct sockaddr *)ss, sl, buf, (socklen_t)len,
	    NULL, 0, NI_NUMERICHOST) != 0)
		util_strlcpy(buf, "?", len);
	return buf;
}

static unsigned
addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static bool
addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	char x[NI_MAXHOST], y[NI_MAXHOST];

	return a->ss_family == b->ss_family &&
	    addr_port(a) == addr_port(b) &&
	    strcmp(addr_text(a, x, sizeof(x)), addr_text(b, y, sizeof(y))) == 0;
}

/* Is address a (port 0) one of the routes? */
static bool
addr_routed(const struct delivery_probe *p, const struct sockaddr_storage *a)
{
	char x[NI_MAXHOST], y[NI_MAXHOST];

	for (size_t i = 0; i < p->nroutes; i++)
		if (p->routes[i].ss.ss_family == a->ss_family &&
		    strcmp(addr_text(&p->routes[i].ss, x, sizeof(x)),
		    addr_text(a, y, sizeof(y))) == 0)
			return true;
	return false;
}

static const char *
action_of(enum outcome o)
{
	switch (o) {
	case OUTCOME_OK:
		return "deliver";
	case OUTCOME_PERMFAIL:
		return "bounce";
	default:
		return "defer";
	}
}

static int
exit_of(enum outcome o)
{
	switch (o) {
	case OUTCOME_OK:
		return EX_OK;
	case OUTCOME_PERMFAIL:
		return EX_UNAVAILABLE;
	default:
		return EX_TEMPFAIL;
	}
}

/* The EHLO keywords that delivery acts on, as text. */
static const char *
ext_text(unsigned ext, char *buf, size_t len)
{
	static const struct {
		unsigned	 bit;
		const char	*name;
	} kw[] = {
		{ SMTP_EXT_PIPELINING, "PIPELINING" },
		{ SMTP_EXT_SIZE, "SIZE" },
		{ SMTP_EXT_8BITMIME, "8BITMIME" },
		{ SMTP_EXT_STARTTLS, "STARTTLS" },
		{ SMTP_EXT_AUTH, "AUTH" },
		{ SMTP_EXT_ENHANCEDSTATUSCODES, "ENHANCEDSTATUSCODES" },
	};

	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(kw) / sizeof(kw[0]); i++)
		if ((ext & kw[i].bit) && n < len) {
			int w = snprintf(buf + n, len - n, "%s%s",
			    n > 0 ? " " : "", kw[i].name);

			if (w < 0)
				break;
			n += (size_t)w;
		}
	return buf;
}

/* Did the session get a TCP connection? */
static bool
rsess_connected(const struct rsess *r)
{
	return r->seen.banner[0] != '\0' || r->why.stage != SMTPC_STAGE_CONNECT;
}

/* The mx entry group number (equal preferences share one). */
static size_t
mx_group(const struct delivery_probe *p, size_t i)
{
	size_t g = 0;

	for (size_t k = 1; k <= i; k++)
		if (p->mx[k].pref != p->mx[k - 1].pref)
			g++;
	return g;
}

static bool
mx_has_equal(const struct delivery_probe *p, size_t i)
{
	return (i > 0 && p->mx[i - 1].pref == p->mx[i].pref) ||
	    (i + 1 < p->nmx && p->mx[i + 1].pref == p->mx[i].pref);
}

/*
 * Text output.
 */

static void
print_sess_text(const struct rsess *r)
{
	char esc[1024], kw[128];
	const struct io_tls_peer *t = &r->seen.tls;

	printf("    session (%s%s, tls = %s%s%s):\n",
	    r->verdict ? "as delivery" : "probe of a route delivery did not "
	    "need", r->clear ? ", retry in clear" : "",
	    conf_tls_policy_to_text(r->tls), r->auth != ROUTE_BASE ? ", " : "",
	    r->auth != ROUTE_BASE ? delivery_route_auth_to_text(r->auth) : "");
	printf("      connect: %s\n", rsess_connected(r) ? "ok" : "failed");
	if (r->seen.banner[0] != '\0')
		printf("      banner: %s\n", r->seen.banner);
	if (r->seen.ehlo_done) {
		printf("      ehlo: %s\n", r->seen.ehlo);
		printf("      keywords: %s\n", ext_text(r->seen.ext, kw,
		    sizeof(kw)));
		printf("      starttls: %s%s\n", r->seen.ext & SMTP_EXT_STARTTLS ?
		    "offered" : "not offered", r->tls == TLS_NONE &&
		    (r->seen.ext & SMTP_EXT_STARTTLS) ? " (not used: tls = "
		    "none, or the retry in clear)" : "");
	}
	if (r->seen.tls_tried) {
		printf("      tls: %s%s%s%s\n", r->seen.tls_done ? "" :
		    "handshake failed, ", t->version,
		    t->cipher[0] != '\0' ? " " : "", t->cipher);
		if (t->have_cert) {
			printf("      certificate subject: %s\n",
			    util_escape(esc, sizeof(esc), t->subject));
			printf("      certificate issuer: %s\n",
			    util_escape(esc, sizeof(esc), t->issuer));
			printf("      certificate not after: %s\n", t->not_after);
			printf("      certificate name match: %s\n",
			    t->name_match == 1 ? "yes" : t->name_match == 0 ?
			    "no" : "unknown");
		}
		printf("      certificate verification: %s\n", t->verify_text);
		if (t->dane[0] != '\0')
			printf("      dane: %s\n", t->dane);
	}
	if (r->ready)
		printf("      result: ready for MAIL, then QUIT\n");
	else
		printf("      result: failed at %s (%s): %s\n",
		    smtpc_stage_to_text(r->why.stage),
		    smtpc_cause_to_text(r->why.cause), r->why.text);
}

static void
print_text(const struct rrun *run)
{
	const struct delivery_probe *p = &run->probe;
	const struct delivery_rcpt *v = &run->rcpt;
	char a[NI_MAXHOST], esc[DELIVERY_REPLY_MAX * 2];

	printf("route to %s\n", run->domain);
	if (p->relayhost)
		printf("relayhost: %s port %u (every domain goes there)\n",
		    p->name != NULL ? p->name : "?", p->port);
	printf("tls policy: %s\n", conf_tls_policy_to_text(p->tls));
	if (p->by_mx && p->name != NULL) {
		printf("MX lookup of %s: %s%s%s\n", p->name,
		    dns_status_to_text(p->mx_status),
		    p->mx_errtext[0] != '\0' ? ": " : "", p->mx_errtext);
		if (p->mx_status == DNS_NODATA)
			printf("no MX records: the domain itself is the "
			    "exchanger (implicit MX, RFC 5321 5.1)\n");
	}
	print_policy_text(p);
	for (size_t i = 0; i < p->nmx; i++) {
		const struct delivery_probe_mx *x = &p->mx[i];

		if (i == 0 || x->pref != p->mx[i - 1].pref)
			printf("preference %u%s\n", x->pref, mx_has_equal(p, i) ?
			    " (equal preferences: delivery tries these in a "
			    "random order, shuffled anew for each lookup; this "
			    "run's order)" : "");
		printf("  %s", x->host);
		if (p->by_mx && p->mx_status == DNS_OK)
			printf(" ttl %u", x->ttl);
		if (x->naddrs == 0)
			printf(" (no address: %s)", dns_status_to_text(x->st));
		printf("\n");
		for (size_t j = 0; j < x->naddrs; j++)
			printf("    address %s%s\n", addr_text(&x->addrs[j], a,
			    sizeof(a)), addr_routed(p, &x->addrs[j]) ? "" :
			    mx_unused_text(p, x));
		print_mx_policy_text(p, x);
	}
	if (p->nroutes > 0)
		printf("routes, in the order delivery tries them:\n");
	for (size_t i = 0; i < p->nroutes; i++) {
		const struct delivery_probe_route *r = &p->routes[i];

		printf("  %zu. %s[%s]:%u preference %u%s\n", i + 1, r->host,
		    addr_text(&r->ss, a, sizeof(a)), addr_port(&r->ss),
		    r->pref, (long)i == p->route ? " (the mail would go here)" :
		    "");
		for (size_t k = 0; k < run->nsess; k++)
			if (addr_same(&run->sess[k].ss, &r->ss))
				print_sess_text(&run->sess[k]);
	}
	printf("verdict: %s", action_of(v->outcome));
	if (v->outcome == OUTCOME_OK && p->route >= 0 &&
	    (size_t)p->route < p->nroutes)
		printf(" to %s[%s]:%u", p->routes[p->route].host,
		    addr_text(&p->routes[p->route].ss, a, sizeof(a)),
		    addr_port(&p->routes[p->route].ss));
	printf(" (%s): %s\n", v->status, util_escape(esc, sizeof(esc),
	    v->reply));
}

/* Why an address of exchanger x is not a route. */
static const char *
mx_unused_text(const struct delivery_probe *p,
    const struct delivery_probe_mx *x)
{
	if (p->dane && x->dane == DANE_FAILED)
		return " (not used: its TLSA lookup failed)";
	if (p->dane && p->have_sts && p->sts.mode == STS_MODE_ENFORCE &&
	    !x->sts_match && x->dane != DANE_USABLE &&
	    x->dane != DANE_UNUSABLE)
		return " (not used: not an mx of the MTA-STS policy)";
	return " (not tried: mx_address_limit, or after this host)";
}

/* The verdict of DANE for exchanger x (RFC 7672 §2.2). */
static const char *
dane_verdict(const struct delivery_probe *p,
    const struct delivery_probe_mx *x)
{
	if (!p->dane)
		return "off (tls policy is not dane)";
	if (!p->mx_secure)
		return "insecure: the MX answer was not validated (DNSSEC); as "
		    "may";
	switch (x->dane) {
	case DANE_INSECURE:
		return "insecure: its addresses were not validated; as may";
	case DANE_NONE:
		return "secure, no TLSA records; as may";
	case DANE_USABLE:
		return "secure -> TLS required, authenticated by DANE";
	case DANE_UNUSABLE:
		return "secure, no usable TLSA record -> TLS required, not "
		    "authenticated";
	case DANE_FAILED:
		return "failed: the TLSA lookup failed -> not used";
	default:
		return "not looked up";
	}
}

/* Whether MTA-STS governs x (DANE does not), and what it does with it. */
static const char *
sts_verdict(const struct delivery_probe *p,
    const struct delivery_probe_mx *x)
{
	if (!p->have_sts || p->sts.mode == STS_MODE_NONE)
		return NULL;
	if (x->dane == DANE_USABLE || x->dane == DANE_UNUSABLE ||
	    x->dane == DANE_FAILED)
		return "not consulted (DANE applies)";
	if (p->sts.mode == STS_MODE_TESTING)
		return x->sts_match ? "matches (testing: as may, failures "
		    "logged)" : "does not match (testing: used all the same)";
	return x->sts_match ? "matches -> TLS required, certificate verified" :
	    "does not match -> not used";
}

static void
print_policy_text(const struct delivery_probe *p)
{
	if (!p->dane || p->name == NULL || p->relayhost)
		return;
	if (p->by_mx && (p->mx_status == DNS_OK || p->mx_status == DNS_NODATA))
		printf("dnssec: MX answer %s\n", p->mx_secure ? "secure" :
		    "insecure (not validated: DANE does not apply)");
	printf("mta-sts: %s: ", p->name);
	if (!p->sts_asked)
		printf("off\n");
	else if (p->have_sts) {
		printf("policy id %s mode %s max_age %u mx:", p->sts.id,
		    sts_mode_to_text(p->sts.mode), (unsigned)p->sts.max_age);
		for (size_t i = 0; i < p->sts.nmx; i++)
			printf(" %s", p->sts.mx[i]);
		printf("%s\n", p->sts_fail[0] != '\0' ? " (cached; the refetch "
		    "failed)" : "");
	} else if (p->sts_fail[0] != '\0')
		printf("policy fetch failed: %s (%s); as without a policy\n",
		    p->sts_why, p->sts_fail);
	else
		printf("none\n");
}

static void
print_mx_policy_text(const struct delivery_probe *p,
    const struct delivery_probe_mx *x)
{
	const char *sts;

	if (!p->dane || p->relayhost)
		return;
	printf("    dane: %s", dane_verdict(p, x));
	if (x->tlsa != NULL)
		printf(" (TLSA _%u._tcp.%s: %s)", p->port, x->host, x->tlsa);
	if (x->dane == DANE_FAILED)
		printf(" (_%u._tcp.%s: %s)", p->port, x->host, x->dane_err);
	printf("\n");
	if ((sts = sts_verdict(p, x)) != NULL)
		printf("    mta-sts: %s\n", sts);
}

/*
 * JSON output: one object.  Strings are written as ASCII: a byte over
 * 0x7e is \u00XX, as are control characters.
 */

static void
json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p > 0x7e)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	putchar('"');
}

static void
json_key(const char *k, const char *v, bool comma)
{
	json_str(k);
	putchar(':');
	if (v == NULL)
		printf("null");
	else
		json_str(v);
	if (comma)
		putchar(',');
}

static void
print_sess_json(const struct rsess *r)
{
	const struct io_tls_peer *t = &r->seen.tls;
	char kw[128];

	putchar('{');
	json_key("run", r->verdict ? "delivery" : "probe", true);
	json_key("tls_policy", conf_tls_policy_to_text(r->tls), true);
	json_key("auth", delivery_route_auth_to_text(r->auth), true);
	printf("\"clear_retry\":%s,", r->clear ? "true" : "false");
	printf("\"connected\":%s,", rsess_connected(r) ? "true" : "false");
	json_key("banner", r->seen.banner[0] != '\0' ? r->seen.banner : NULL,
	    true);
	json_key("ehlo", r->seen.ehlo_done ? r->seen.ehlo : NULL, true);
	json_key("keywords", r->seen.ehlo_done ? ext_text(r->seen.ext, kw,
	    sizeof(kw)) : NULL, true);
	printf("\"starttls_offered\":%s,", !r->seen.ehlo_done ? "null" :
	    r->seen.ext & SMTP_EXT_STARTTLS ? "true" : "false");
	printf("\"tls\":");
	if (!r->seen.tls_tried)
		printf("null,");
	else {
		printf("{\"handshake\":%s,", r->seen.tls_done ? "true" : "false");
		json_key("version", t->version, true);
		json_key("cipher", t->cipher[0] != '\0' ? t->cipher : NULL, true);
		json_key("subject", t->have_cert ? t->subject : NULL, true);
		json_key("issuer", t->have_cert ? t->issuer : NULL, true);
		json_key("not_after", t->have_cert ? t->not_after : NULL, true);
		printf("\"name_match\":%s,", t->name_match == 1 ? "true" :
		    t->name_match == 0 ? "false" : "null");
		printf("\"verified\":%s,", t->chain_ok ? "true" : "false");
		json_key("dane", t->dane[0] != '\0' ? t->dane : NULL, true);
		json_key("verify_result", t->verify_text, false);
		printf("},");
	}
	printf("\"ready\":%s,", r->ready ? "true" : "false");
	json_key("stage", smtpc_stage_to_text(r->why.stage), true);
	json_key("cause", smtpc_cause_to_text(r->why.cause), true);
	printf("\"code\":%d,", r->why.code);
	json_key("text", r->why.text, false);
	putchar('}');
}

/* "dnssec", "mta_sts": the domain's (null when tls is not dane). */
static void
print_sts_json(const struct delivery_probe *p)
{
	bool on = p->dane && !p->relayhost;

	printf("\"dnssec\":");
	if (!on)
		printf("null,");
	else
		printf("{\"mx_secure\":%s},", p->mx_secure ? "true" : "false");
	printf("\"mta_sts\":");
	if (!on || !p->sts_asked) {
		printf("null,");
		return;
	}
	putchar('{');
	json_key("mode", p->have_sts ? sts_mode_to_text(p->sts.mode) : NULL,
	    true);
	json_key("id", p->have_sts ? p->sts.id : NULL, true);
	if (p->have_sts)
		printf("\"max_age\":%u,", (unsigned)p->sts.max_age);
	printf("\"mx\":[");
	for (size_t i = 0; p->have_sts && i < p->sts.nmx; i++) {
		if (i > 0)
			putchar(',');
		json_str(p->sts.mx[i]);
	}
	printf("],");
	json_key("failure", p->sts_fail[0] != '\0' ? p->sts_fail : NULL, true);
	json_key("why", p->sts_why[0] != '\0' ? p->sts_why : NULL, false);
	printf("},");
}

/* "dane", "address_secure", "tlsa", "mta_sts" of one exchanger. */
static void
print_mx_dane_json(const struct delivery_probe *p,
    const struct delivery_probe_mx *x)
{
	const char *sts = sts_verdict(p, x);

	if (!p->dane || p->relayhost) {
		printf("\"dane\":null,");
		return;
	}
	printf("\"dane\":{");
	json_key("state", !p->mx_secure ? "insecure" :
	    delivery_dane_to_text(x->dane), true);
	printf("\"address_secure\":%s,", x->addr_secure ? "true" : "false");
	json_key("tlsa", x->tlsa, true);
	json_key("error", x->dane_err[0] != '\0' ? x->dane_err : NULL, true);
	json_key("verdict", dane_verdict(p, x), true);
	json_key("mta_sts", sts, false);
	printf("},");
}

static void
print_json(const struct rrun *run)
{
	const struct delivery_probe *p = &run->probe;
	const struct delivery_rcpt *v = &run->rcpt;
	char a[NI_MAXHOST], port[16];

	putchar('{');
	json_key("domain", run->domain, true);
	printf("\"relayhost\":%s,", p->relayhost ? "true" : "false");
	json_key("name", p->name, true);
	printf("\"port\":%u,", p->port);
	json_key("tls_policy", conf_tls_policy_to_text(p->tls), true);
	printf("\"mx_lookup\":");
	if (!p->by_mx || p->name == NULL)
		printf("null,");
	else {
		putchar('{');
		json_key("status", dns_status_to_text(p->mx_status), true);
		json_key("error", p->mx_errtext, false);
		printf("},");
	}
	printf("\"implicit_mx\":%s,", p->by_mx && p->name != NULL &&
	    p->mx_status == DNS_NODATA ? "true" : "false");
	print_sts_json(p);
	printf("\"mx\":[");
	for (size_t i = 0; i < p->nmx; i++) {
		const struct delivery_probe_mx *x = &p->mx[i];

		printf("%s{", i > 0 ? "," : "");
		json_key("host", x->host, true);
		printf("\"preference\":%u,\"group\":%zu,\"equal_preference\":%s,",
		    x->pref, mx_group(p, i), mx_has_equal(p, i) ? "true" :
		    "false");
		if (p->by_mx && p->mx_status == DNS_OK)
			printf("\"ttl\":%u,", x->ttl);
		else
			printf("\"ttl\":null,");
		json_key("address_status", dns_status_to_text(x->st), true);
		print_mx_dane_json(p, x);
		printf("\"addresses\":[");
		for (size_t j = 0; j < x->naddrs; j++) {
			if (j > 0)
				putchar(',');
			json_str(addr_text(&x->addrs[j], a, sizeof(a)));
		}
		printf("],\"not_tried\":[");
		for (size_t j = 0, first = 1; j < x->naddrs; j++)
			if (!addr_routed(p, &x->addrs[j])) {
				if (!first)
					putchar(',');
				first = 0;
				json_str(addr_text(&x->addrs[j], a, sizeof(a)));
			}
		printf("]}");
	}
	printf("],\"routes\":[");
	for (size_t i = 0; i < p->nroutes; i++) {
		const struct delivery_probe_route *r = &p->routes[i];
		bool first = true;

		printf("%s{", i > 0 ? "," : "");
		json_key("host", r->host, true);
		json_key("address", addr_text(&r->ss, a, sizeof(a)), true);
		printf("\"port\":%u,\"preference\":%u,\"chosen\":%s,",
		    addr_port(&r->ss), r->pref, (long)i == p->route ? "true" :
		    "false");
		printf("\"sessions\":[");
		for (size_t k = 0; k < run->nsess; k++)
			if (addr_same(&run->sess[k].ss, &r->ss)) {
				if (!first)
					putchar(',');
				first = false;
				print_sess_json(&run->sess[k]);
			}
		printf("]}");
	}
	printf("],\"verdict\":{");
	json_key("action", action_of(v->outcome), true);
	json_key("status", v->status, true);
	json_key("reason", v->reply, true);
	if (v->outcome == OUTCOME_OK && p->route >= 0 &&
	    (size_t)p->route < p->nroutes) {
		const struct delivery_probe_route *r = &p->routes[p->route];

		json_key("host", r->host, true);
		json_key("address", addr_text(&r->ss, a, sizeof(a)), true);
		snprintf(port, sizeof(port), "%u", addr_port(&r->ss));
		printf("\"port\":%s,", port);
	} else
		printf("\"host\":null,\"address\":null,\"port\":null,");
	printf("\"exit\":%d}}\n", exit_of(v->outcome));
}
