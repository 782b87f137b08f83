/*
 * runner: one run of the queue.  See runner.h.
 *
 * A message is locked (queue_msg_lock) from the moment it is loaded until
 * its envelope has been updated, so a second runner skips it.  Its due
 * recipients are split by domain into parts for the delivery engine; when
 * the last part comes back the envelope is updated once: delivered
 * recipients are never tried again, deferred ones get their next attempt
 * by exponential backoff, permanent failures and recipients past
 * queue_lifetime are reported to the sender in one DSN (never for the
 * null sender) and marked bounced.  A message with no pending recipient
 * left is removed.
 */
#include "config.h"

#include <sys/resource.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bounce.h"
#include "delivery.h"
#include "dns.h"
#include "event.h"
#include "log.h"
#include "runner.h"
#include "scheduler.h"
#include "smtp_client.h"
#include "spool.h"
#include "tls.h"
#include "util.h"

/* Messages open at once: bounds memory and file descriptors. */
#define RUNNER_WINDOW	1000
/* Descriptors kept for sessions, DNS and the spool itself. */
#define RUNNER_FD_RESERVE	64

struct runner;
struct rmsg;

struct rpart {
	struct delivery_msg	 dm;
	struct rmsg		*m;
	size_t			*env_idx;	/* dm.rcpt[i] is env.rcpt[env_idx[i]] */
};

struct rmsg {
	struct runner		*r;
	struct envelope		 env;
	int			 lockfd;
	int			 body_fd;
	unsigned		 parts_left;
	struct rpart		*parts;
	size_t			 nparts;
	struct delivery_rcpt	**result;	/* per env rcpt, NULL = not tried */
};

struct runner {
	const struct conf	*conf;
	const struct runner_opts *opts;
	struct runner_stats	*stats;
	struct queue		*q;
	struct delivery_engine	*engine;
	struct strlist		 ids;		/* messages to try, in order */
	size_t			 next_id;
	unsigned		 in_flight;
	unsigned		 window;
	time_t			 now;
};

struct scan_arg {
	struct runner		*r;
};

static int	 scan_one(struct queue *, const struct envelope *, void *);
static void	 msg_load(struct runner *, const char *);
static void	 msg_finish(struct rmsg *);
static void	 part_done(void *, struct delivery_msg *);
static bool	 body_is_8bit(int);
static char	*dns_servers_csv(const struct conf *);
static int	 auth_load(const char *, char **, char **);
static unsigned	 fd_window(unsigned);

static int
scan_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct scan_arg *sa = arg;
	struct runner *r = sa->r;

	(void)q;
	if (r->opts->only_id != NULL && strcmp(env->id, r->opts->only_id) != 0)
		return 0;
	for (size_t i = 0; i < env->nrcpt; i++)
		if (sched_rcpt_due(&env->rcpt[i], r->now,
		    r->opts->force || r->opts->only_id != NULL)) {
			strlist_add(&r->ids, env->id);
			break;
		}
	return 0;
}

static bool
body_is_8bit(int fd)
{
	unsigned char buf[65536];
	off_t off = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] & 0x80)
				return true;
		off += n;
	}
	return false;
}

static const char *
rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL ? at + 1 : "";
}

/* Load one message, lock it, and submit its due recipients by domain. */
static void
msg_load(struct runner *r, const char *id)
{
	struct rmsg *m;
	bool force = r->opts->force || r->opts->only_id != NULL;
	struct strlist domains = { 0 };
	size_t ndue = 0;

	m = xcalloc(1, sizeof(*m));
	m->r = r;
	m->lockfd = m->body_fd = -1;
	envelope_init(&m->env);
	if (queue_msg_lock(r->q, id, &m->lockfd) == -1) {
		if (errno != EWOULDBLOCK && errno != ENOENT)
			log_warn("%s: cannot lock", id);
		goto skip;
	}
	if (queue_env_load(r->q, id, &m->env) == -1) {
		if (errno == EBADMSG)
			queue_msg_quarantine(r->q, id, "envelope cannot be parsed");
		else if (errno != ENOENT)
			log_warn("%s: cannot read the envelope", id);
		goto skip;
	}
	if ((m->body_fd = queue_body_open(r->q, id)) == -1) {
		log_warn("%s: cannot open the message", id);
		goto skip;
	}
	m->result = xcalloc(m->env.nrcpt, sizeof(*m->result));

	/* Group the due recipients by domain (case-insensitive). */
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		char *dom;

		if (!sched_rcpt_due(&m->env.rcpt[i], r->now, force))
			continue;
		ndue++;
		dom = xstrdup(rcpt_domain(m->env.rcpt[i].addr));
		for (char *p = dom; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (!strlist_contains_nocase(&domains, dom))
			strlist_add_owned(&domains, dom);
		else
			free(dom);
	}
	if (ndue == 0)
		goto skip;

	{
		bool eightbit = body_is_8bit(m->body_fd);

		m->parts = xcalloc(domains.n, sizeof(*m->parts));
		m->nparts = domains.n;
		for (size_t k = 0; k < domains.n; k++) {
			struct rpart *p = &m->parts[k];
			size_t n = 0;

			p->m = m;
			p->env_idx = xcalloc(ndue, sizeof(*p->env_idx));
			p->dm.rcpt = xcalloc(ndue, sizeof(*p->dm.rcpt));
			for (size_t i = 0; i < m->env.nrcpt; i++) {
				if (!sched_rcpt_due(&m->env.rcpt[i], r->now, force) ||
				    strcasecmp(rcpt_domain(m->env.rcpt[i].addr),
				    domains.v[k]) != 0)
					continue;
				p->env_idx[n] = i;
				p->dm.rcpt[n].addr = m->env.rcpt[i].addr;
				m->result[i] = &p->dm.rcpt[n];
				n++;
			}
			p->dm.nrcpt = n;
			p->dm.id = m->env.id;
			p->dm.sender = m->env.sender;
			p->dm.body_fd = m->body_fd;
			p->dm.size = m->env.size;
			p->dm.eightbit = eightbit;
			p->dm.arrival = m->env.arrival;
			p->dm.done = part_done;
			p->dm.arg = p;
		}
	}
	r->in_flight++;
	r->stats->messages++;
	/* Count first: a part may come back before delivery_submit returns. */
	m->parts_left = (unsigned)m->nparts;
	{
		size_t nparts = m->nparts;
		struct rpart *parts = m->parts;

		for (size_t k = 0; k < nparts; k++)
			delivery_submit(r->engine, domains.v[k], &parts[k].dm);
	}
	strlist_free(&domains);
	return;

skip:
	strlist_free(&domains);
	if (m->body_fd != -1)
		close(m->body_fd);
	if (m->lockfd != -1)
		queue_msg_unlock(m->lockfd);
	envelope_free(&m->env);
	free(m->result);
	free(m);
}

static void
part_done(void *arg, struct delivery_msg *dm)
{
	struct rpart *p = arg;

	(void)dm;
	if (--p->m->parts_left == 0)
		msg_finish(p->m);
}

static void
set_text(char **field, const char *text)
{
	free(*field);
	*field = text != NULL && *text != '\0' ? xstrdup(text) : NULL;
}

/* Every part is back: record the outcomes once, bounce, remove or update. */
static void
msg_finish(struct rmsg *m)
{
	struct runner *r = m->r;
	const struct conf *c = r->conf;
	struct envelope *env = &m->env;
	bool *report = xcalloc(env->nrcpt, sizeof(*report));
	size_t nreport = 0;
	bool pending = false;
	time_t now = time(NULL);

	for (size_t i = 0; i < env->nrcpt; i++) {
		struct envelope_rcpt *er = &env->rcpt[i];
		struct delivery_rcpt *res = m->result[i];
		bool expired = false;

		if (res == NULL)
			continue;
		er->attempts++;
		er->last_try = now;
		set_text(&er->last_reply, res->reply);
		set_text(&er->status, envelope_status_valid(res->status) ?
		    res->status : NULL);
		set_text(&er->remote_mta, res->remote_mta);
		switch (res->outcome) {
		case OUTCOME_OK:
			er->state = RCPT_DELIVERED;
			r->stats->sent++;
			break;
		case OUTCOME_PERMFAIL:
			report[i] = true;
			nreport++;
			break;
		default:
			er->next_try = sched_next_try(now, er->attempts,
			    c->retry_min, c->retry_max, env->arrival,
			    c->queue_lifetime, &expired);
			if (expired) {
				log_info("%s: to=<%s>, status=expired (queued "
				    "longer than queue_lifetime)", env->id, er->addr);
				report[i] = true;
				nreport++;
			} else
				r->stats->deferred++;
			break;
		}
	}

	if (nreport > 0) {
		char newid[QUEUE_ID_LEN + 1] = "";

		if (bounce_queue(r->q, env, report, m->body_fd, c->hostname, now,
		    newid) == 0) {
			for (size_t i = 0; i < env->nrcpt; i++)
				if (report[i]) {
					env->rcpt[i].state = RCPT_BOUNCED;
					r->stats->bounced++;
				}
			if (newid[0] != '\0') {
				log_info("%s: sender non-delivery notification: %s",
				    env->id, newid);
				strlist_add(&r->ids, newid);
			} else
				log_info("%s: no notification: null sender",
				    env->id);
		} else {
			/* Keep them: a bounce must not be lost either. */
			log_warn("%s: cannot queue the non-delivery notification",
			    env->id);
			for (size_t i = 0; i < env->nrcpt; i++)
				if (report[i])
					env->rcpt[i].next_try = now + c->retry_min;
		}
	}
	for (size_t i = 0; i < env->nrcpt; i++)
		if (env->rcpt[i].state == RCPT_PENDING)
			pending = true;
	if (!pending) {
		if (queue_msg_remove_later(r->q, env->id) == -1)
			log_warn("%s: cannot remove", env->id);
		else
			log_info("%s: removed", env->id);
	} else if (queue_env_update(r->q, env) == -1)
		log_warn("%s: cannot update the envelope", env->id);

	free(report);
	close(m->body_fd);
	queue_msg_unlock(m->lockfd);
	for (size_t k = 0; k < m->nparts; k++) {
		free(m->parts[k].env_idx);
		free(m->parts[k].dm.rcpt);
	}
	free(m->parts);
	free(m->result);
	envelope_free(env);
	free(m);
	r->in_flight--;
}

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

/* relayhost_auth_file: the first line that is not a comment, "user:password". */
static int
auth_load(const char *path, char **user, char **pass)
{
	FILE *f;
	char *line = NULL, *colon;
	size_t cap = 0;
	ssize_t len;
	int rc = -1;

	if ((f = fopen(path, "r")) == NULL) {
		log_warn("%s", path);
		return -1;
	}
	while ((len = getline(&line, &cap, f)) != -1) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if ((colon = strchr(line, ':')) == NULL || colon == line) {
			log_warnx("%s: expected user:password", path);
			break;
		}
		*colon = '\0';
		*user = xstrdup(line);
		*pass = xstrdup(colon + 1);
		rc = 0;
		break;
	}
	if (rc == -1 && len == -1)
		log_warnx("%s: no user:password line", path);
	free(line);
	fclose(f);
	return rc;
}

/*
 * Each open message holds two descriptors (lock and body).  Raise the
 * soft limit as far as allowed and size the window to fit beside the
 * connections.
 */
static unsigned
fd_window(unsigned concurrency)
{
	struct rlimit rl;
	rlim_t want = 2 * RUNNER_WINDOW + concurrency + RUNNER_FD_RESERVE;
	rlim_t have;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 100;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ?
		    want : rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	have = rl.rlim_cur;
	if (have <= concurrency + RUNNER_FD_RESERVE + 2)
		return 1;
	have = (have - concurrency - RUNNER_FD_RESERVE) / 2;
	return have < RUNNER_WINDOW ? (unsigned)have : RUNNER_WINDOW;
}

int
runner_run(const struct conf *c, const struct runner_opts *o,
    struct runner_stats *stats)
{
	struct runner r;
	struct ev_loop *loop = NULL;
	struct dns *dns = NULL;
	struct delivery_conf dc;
	struct scan_arg sa;
	char err[512], *servers = NULL, *auth_user = NULL, *auth_pass = NULL;
	uint64_t last_flush = 0;
	int rc = -1;

	memset(&r, 0, sizeof(r));
	memset(stats, 0, sizeof(*stats));
	memset(&dc, 0, sizeof(dc));
	r.conf = c;
	r.opts = o;
	r.stats = stats;
	r.now = time(NULL);

	if (queue_open(c->spool_dir, false, &r.q) == -1) {
		if (errno == ENOENT)
			return 0;	/* no spool yet: nothing to do */
		log_warn("%s", c->spool_dir);
		return -1;
	}
	sa.r = &r;
	if (queue_scan(r.q, scan_one, &sa) == -1) {
		log_warn("%s: scanning the queue", c->spool_dir);
		goto done;
	}
	if (o->only_id != NULL && r.ids.n == 0) {
		log_warnx("%s: no such message, or nothing to deliver", o->only_id);
		goto done;
	}
	if (r.ids.n == 0) {
		rc = 0;
		goto done;
	}

	if (c->relayhost != NULL && c->relayhost_auth_file != NULL &&
	    auth_load(c->relayhost_auth_file, &auth_user, &auth_pass) == -1)
		goto done;
	if ((loop = ev_loop_new()) == NULL) {
		log_warn("event loop");
		goto done;
	}
	servers = dns_servers_csv(c);
	if ((dns = dns_new(loop, servers, (unsigned)c->dns_timeout * 1000,
	    c->dns_tries, err, sizeof(err))) == NULL) {
		log_warnx("DNS: %s", err);
		goto done;
	}
	dc.hostname = c->hostname;
	dc.smtp_port = c->smtp_port;
	dc.relayhost = c->relayhost;
	dc.auth_user = auth_user;
	dc.auth_pass = auth_pass;
	dc.timeouts.connect = (unsigned)c->smtp_connect_timeout;
	dc.timeouts.greeting = (unsigned)c->smtp_greeting_timeout;
	dc.timeouts.helo = (unsigned)c->smtp_helo_timeout;
	dc.timeouts.mail = (unsigned)c->smtp_mail_timeout;
	dc.timeouts.rcpt = (unsigned)c->smtp_rcpt_timeout;
	dc.timeouts.data = (unsigned)c->smtp_data_timeout;
	dc.timeouts.block = (unsigned)c->smtp_block_timeout;
	dc.timeouts.dot = (unsigned)c->smtp_dot_timeout;
	dc.reuse_limit = c->connection_reuse_limit;
	dc.concurrency = c->concurrency;
	dc.domain_concurrency = c->domain_concurrency;
	dc.conf = c;
	dc.self = c->listen;
	dc.nself = c->nlisten;
	if ((dc.tls_ctx = tls_client_ctx_new(c->tls_ca_file, false, err,
	    sizeof(err))) == NULL ||
	    (dc.tls_ctx_verify = tls_client_ctx_new(c->tls_ca_file, true, err,
	    sizeof(err))) == NULL) {
		log_warnx("TLS: %s", err);
		goto done;
	}
	r.engine = delivery_engine_new(loop, dns, &dc);
	r.window = fd_window(c->concurrency);

	for (;;) {
		while (r.in_flight < r.window && r.next_id < r.ids.n)
			msg_load(&r, r.ids.v[r.next_id++]);
		if (r.in_flight == 0 && r.next_id >= r.ids.n &&
		    delivery_idle(r.engine))
			break;
		if (ev_run_once(loop, 1000) == -1 && errno != EINTR) {
			log_warn("event loop");
			goto done;
		}
		/* Group commit of removals: one fsync pair per 50 ms at most. */
		if (ev_now(loop) - last_flush >= 50) {
			if (queue_flush(r.q) == -1)
				log_warn("%s: finishing removals", c->spool_dir);
			last_flush = ev_now(loop);
		}
	}
	log_info("queue run: %u messages, %u recipients sent, %u deferred, "
	    "%u bounced", stats->messages, stats->sent, stats->deferred,
	    stats->bounced);
	rc = 0;
done:
	delivery_engine_free(r.engine);
	dns_free(dns);
	tls_ctx_free(dc.tls_ctx);
	tls_ctx_free(dc.tls_ctx_verify);
	ev_loop_free(loop);
	queue_close(r.q);
	strlist_free(&r.ids);
	free(servers);
	free(auth_user);
	if (auth_pass != NULL) {
		explicit_bzero(auth_pass, strlen(auth_pass));
		free(auth_pass);
	}
	return rc;
}
