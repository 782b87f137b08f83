/*
 * runner: the delivery set-up and one run of the queue.  See runner.h.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "delivery.h"
#include "dkim_keys.h"
#include "dns.h"
#include "event.h"
#include "log.h"
#include "pickup.h"
#include "qmgr.h"
#include "record.h"
#include "runner.h"
#include "smtp_client.h"
#include "spool.h"
#include "sts.h"
#include "tls.h"
#include "util.h"

static char *
dns_servers_csv(const struct conf *c)
{
	char *s = NULL;

	for (size_t i = 0; i < c->ndns_servers; i++) {
		const struct hostport *h = &c->dns_servers[i];
		bool v6 = strchr(h->host, ':') != NULL;
		char *item = xasprintf("%s%s%s:%u", v6 ? "[" : "", h->host,
		    v6 ? "]" : "", h->port ? h->port : 53);
		char *n = xasprintf("%s%s%s", s ? s : "", s ? "," : "", item);

		free(item);
		free(s);
		s = n;
	}
	return s;
}

/* Set once mxrelayd runs as its user: a reload cannot change them. */
static bool	 ids_fixed;
static uid_t	 fixed_uid;
static gid_t	 fixed_gid;

void
runner_daemon_ids_fix(uid_t uid, gid_t gid)
{
	ids_fixed = true;
	fixed_uid = uid;
	fixed_gid = gid;
}

void
runner_daemon_ids(const struct conf *c, uid_t *uid, gid_t *gid)
{
	struct passwd *pw;
	struct group *gr;

	if (ids_fixed) {
		*uid = fixed_uid;
		*gid = fixed_gid;
		return;
	}
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (c->user != NULL && (pw = getpwnam(c->user)) != NULL) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;	/* with no group, mxrelayd takes this */
	}
	if (c->group != NULL && (gr = getgrnam(c->group)) != NULL)
		*gid = gr->gr_gid;
}

int
runner_secret_open(const struct conf *c, const char *path)
{
	char err[512];
	uid_t uid;
	gid_t gid;
	bool loose;
	int fd;

	runner_daemon_ids(c, &uid, &gid);
	if ((fd = util_secret_open(path, uid, gid, &loose, err,
	    sizeof(err))) == -1) {
		log_warnx("%s", err);
		return -1;
	}
	if (loose)
		log_warnx("%s: readable by others than root and %s (chmod "
		    "o-r, and g-r unless its group is %s)", path,
		    c->user != NULL ? c->user : "the daemon's user",
		    c->group != NULL ? c->group : "the daemon's group");
	return fd;
}

/*
 * A "HOST user:password" line of relayhost_auth_file: is the first word
 * (up to white space) a relayhost of the list, [host] or host, with or
 * without a port (one given must be the entry's)?  Its credentials go to
 * every such entry that has none yet.  False: not a host of the list.
 */
static bool
auth_host_line(const struct conf *c, struct runner_setup *d, const char *line)
{
	size_t wlen = strcspn(line, " \t");
	const char *rest = line + wlen, *colon;
	struct hostport hp;
	char why[128];
	bool named = false;

	if (line[wlen] == '\0' ||
	    conf_hostport_parse(line, wlen, &hp, why, sizeof(why)) == -1)
		return false;
	rest += strspn(rest, " \t");
	for (size_t i = 0; i < c->nrelayhost; i++) {
		const struct hostport *rh = &c->relayhost[i];

		if (strcasecmp(hp.host, rh->host) != 0 ||
		    (hp.port != 0 && hp.port != rh->port))
			continue;
		named = true;
		if (d->rh_auth_user[i] != NULL ||
		    (colon = strchr(rest, ':')) == NULL || colon == rest)
			continue;
		d->rh_auth_user[i] = xstrndup(rest, (size_t)(colon - rest));
		d->rh_auth_pass[i] = xstrdup(colon + 1);
	}
	free(hp.host);
	return named;
}

/*
 * relayhost_auth_file: "user:password" for every relayhost (the first such
 * line), and "HOST user:password" lines for one of the list; '#' comments
 * and empty lines are skipped.
 */
static int
auth_load(const struct conf *c, const char *path, struct runner_setup *d)
{
	FILE *f;
	char *line = NULL, *colon;
	size_t cap = 0;
	ssize_t len;
	bool any = false;
	int fd, rc = -1;

	if ((fd = runner_secret_open(c, path)) == -1)
		return -1;
	if ((f = fdopen(fd, "r")) == NULL) {
		log_warn("%s", path);
		close(fd);
		return -1;
	}
	d->nrh = c->nrelayhost;
	d->rh_auth_user = xcalloc(c->nrelayhost, sizeof(*d->rh_auth_user));
	d->rh_auth_pass = xcalloc(c->nrelayhost, sizeof(*d->rh_auth_pass));
	while ((len = getline(&line, &cap, f)) != -1) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (auth_host_line(c, d, line)) {
			any = true;
			continue;
		}
		/*
		 * White space before the first ':' makes a "HOST user:password"
		 * line.  One for a host not in the list (an old provider) is
		 * skipped: its password must not go to the relayhosts.
		 */
		if (strcspn(line, " \t") < strcspn(line, ":")) {
			log_warnx("%s: a line for a host that is not a relayhost; "
			    "skipped", path);
			continue;
		}
		if ((colon = strchr(line, ':')) == NULL || colon == line) {
			log_warnx("%s: expected user:password", path);
			goto done;
		}
		if (d->auth_user != NULL)
			continue;
		*colon = '\0';
		d->auth_user = xstrdup(line);
		d->auth_pass = xstrdup(colon + 1);
		any = true;
	}
	if (!any)
		log_warnx("%s: no user:password line", path);
	else
		rc = 0;
done:
	if (line != NULL)
		explicit_bzero(line, cap);
	free(line);
	fclose(f);
	return rc;
}

static void
secret_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/*
 * MTA-STS: the engine (its fetch verifies against mta_sts_ca_file) and
 * the two contexts for exchangers under a policy.  Its cache is SPOOL/sts
 * (ARCHITECTURE.md, the spool).  -1 with the reason logged.
 */
static int
sts_setup(struct ev_loop *loop, const struct conf *c, struct runner_setup *d)
{
	struct sts_conf sc;
	char err[512];

	if (!c->mta_sts || d->sts != NULL)
		return 0;
	if ((d->sts_ctx = tls_client_ctx_new(c->mta_sts_ca_file, false, err,
	    sizeof(err))) == NULL ||
	    (d->sts_ctx_verify = tls_client_ctx_new(c->mta_sts_ca_file, true,
	    err, sizeof(err))) == NULL) {
		log_warnx("TLS (mta_sts_ca_file): %s", err);
		return -1;
	}
	d->sts_cache = xasprintf("%s/sts", c->spool_dir);
	memset(&sc, 0, sizeof(sc));
	sc.ctx = d->sts_ctx_verify;
	sc.port = c->mta_sts_port;
	sc.timeout_ms = c->mta_sts_timeout_ms;
	sc.cache_dir = d->sts_cache;
	if ((d->sts = sts_new(loop, d->dns, &sc, err, sizeof(err))) == NULL) {
		log_warnx("MTA-STS: %s", err);
		return -1;
	}
	if (d->engine != NULL)
		delivery_set_sts(d->engine, d->sts, d->sts_ctx,
		    d->sts_ctx_verify);
	return 0;
}

int
runner_setup_sts(struct runner_setup *d, struct ev_loop *loop,
    const struct conf *c)
{
	return sts_setup(loop, c, d);
}

struct runner_setup *
runner_setup_new(struct ev_loop *loop, const struct conf *c)
{
	struct runner_setup *d = xcalloc(1, sizeof(*d));
	struct delivery_conf dc;
	char err[512], *servers;

	if (runner_dkim_keys(c, &d->dkim) == -1)
		goto fail;
	if (c->relayhost != NULL && c->relayhost_auth_file != NULL &&
	    auth_load(c, c->relayhost_auth_file, d) == -1)
		goto fail;
	servers = dns_servers_csv(c);
	d->dns = dns_new(loop, servers, c->dns_timeout_ms,
	    c->dns_tries, err, sizeof(err));
	free(servers);
	if (d->dns == NULL) {
		log_warnx("DNS: %s", err);
		goto fail;
	}
	if ((d->tls_ctx = tls_client_ctx_new(c->tls_ca_file, false, err,
	    sizeof(err))) == NULL ||
	    (d->tls_ctx_verify = tls_client_ctx_new(c->tls_ca_file, true, err,
	    sizeof(err))) == NULL) {
		log_warnx("TLS: %s", err);
		goto fail;
	}
	if (geteuid() != 0 && sts_setup(loop, c, d) == -1)
		goto fail;
	memset(&dc, 0, sizeof(dc));
	dc.hostname = c->hostname;
	dc.smtp_port = c->smtp_port;
	dc.relayhost = c->relayhost;
	dc.nrelayhost = c->nrelayhost;
	dc.relayhost_fallback = c->relayhost_fallback;
	dc.auth_user = d->auth_user;
	dc.auth_pass = d->auth_pass;
	dc.rh_auth_user = d->rh_auth_user;
	dc.rh_auth_pass = d->rh_auth_pass;
	dc.auth_unverified = c->relayhost_auth_tls != TLS_VERIFY;
	dc.timeouts = c->smtp_timeouts;
	dc.reuse_limit = c->connection_reuse_limit;
	dc.mx_host_limit = c->mx_host_limit;
	dc.mx_address_limit = c->mx_address_limit;
	dc.concurrency = c->concurrency;
	dc.domain_concurrency = c->domain_concurrency;
	dc.tls = c->tls;
	dc.tls_policies = c->tls_policies;
	dc.ntls_policies = c->ntls_policies;
	dc.tls_ctx = d->tls_ctx;
	dc.tls_ctx_verify = d->tls_ctx_verify;
	dc.sts = d->sts;
	dc.sts_ctx = d->sts_ctx;
	dc.sts_ctx_verify = d->sts_ctx_verify;
	dc.self = c->listen;
	dc.nself = c->nlisten;
	d->engine = delivery_engine_new(loop, d->dns, &dc);

	d->qc.hostname = c->hostname;
	d->qc.retry_min_ms = c->retry_min_ms;
	d->qc.retry_max_ms = c->retry_max_ms;
	d->qc.lifetime_ms = c->queue_lifetime_ms;
	d->qc.relayhost = c->relayhost != NULL;
	d->qc.concurrency = c->concurrency;
	d->qc.domain_concurrency = c->domain_concurrency;
	d->qc.delay_warning_ms = c->delay_warning_time_ms;
	d->qc.bounce_interval_ms = c->bounce_interval_ms;
	d->qc.bounce_limit = c->bounce_limit_per_sender;
	/* The delivery records of this configuration's runs (record.h). */
	record_set_format(c->log_format);
	return d;
fail:
	runner_setup_free(d);
	return NULL;
}

void
runner_setup_free(struct runner_setup *d)
{
	if (d == NULL)
		return;
	delivery_engine_free(d->engine);
	if (d->sts != NULL)
		sts_free(d->sts);
	tls_ctx_free(d->sts_ctx);
	tls_ctx_free(d->sts_ctx_verify);
	free(d->sts_cache);
	dns_free(d->dns);
	tls_ctx_free(d->tls_ctx);
	tls_ctx_free(d->tls_ctx_verify);
	free(d->auth_user);
	secret_free(d->auth_pass);
	for (size_t i = 0; d->rh_auth_user != NULL && i < d->nrh; i++) {
		free(d->rh_auth_user[i]);
		secret_free(d->rh_auth_pass[i]);
	}
	free(d->rh_auth_user);
	free(d->rh_auth_pass);
	dkim_keys_unref(d->dkim);
	free(d);
}

int
runner_run(const struct conf *c, const struct runner_opts *o,
    struct qmgr_stats *stats)
{
	struct queue *q = NULL;
	struct ev_loop *loop = NULL;
	struct runner_setup *dlv = NULL;
	struct qmgr *qm = NULL;
	struct qmgr_opts qo;
	size_t loaded;
	int rc = -1;

	memset(stats, 0, sizeof(*stats));
	/* The spool exists (the caller saw to it): make what it lacks. */
	if (queue_open(c->spool_dir, true, &q) == -1) {
		if (errno == ENOENT)
			return 0;	/* no spool yet: nothing to do */
		log_warn("%s", c->spool_dir);
		return -1;
	}
	if ((loop = ev_loop_new()) == NULL) {
		log_warn("event loop");
		goto done;
	}
	if ((dlv = runner_setup_new(loop, c)) == NULL ||
	    runner_setup_sts(dlv, loop, c) == -1)
		goto done;
	/*
	 * Messages that local users dropped: into the queue first, signed
	 * with the keys just read (so after the set-up, not before).
	 */
	pickup_run_signing(q, c->max_message_size, dlv->dkim, NULL, NULL,
	    NULL);
	memset(&qo, 0, sizeof(qo));
	qo.force = o->force;
	qo.only_id = o->only_id;
	qm = qmgr_new(loop, q, &dlv->qc, dlv->engine, &qo, stats);
	if (qmgr_load(qm) == -1) {
		log_warn("%s: scanning the queue", c->spool_dir);
		goto done;
	}
	loaded = qmgr_count(qm);
	if (o->only_id != NULL && loaded == 0) {
		log_warnx("%s: no such message, or nothing to deliver", o->only_id);
		goto done;
	}
	while (!qmgr_done(qm) || !delivery_idle(dlv->engine)) {
		if (ev_run_once(loop, 1000) == -1 && errno != EINTR) {
			log_warn("event loop");
			goto done;
		}
	}
	if (loaded > 0)
		log_info("queue run: %u messages, %u recipients sent, %u deferred, "
		    "%u bounced", stats->messages, stats->sent, stats->deferred,
		    stats->bounced);
	rc = 0;
done:
	qmgr_free(qm);
	runner_setup_free(dlv);
	ev_loop_free(loop);
	queue_close(q);
	return rc;
}
