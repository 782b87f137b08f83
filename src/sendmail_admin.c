/*
 * sendmail_admin.c: mxrelay hold, release, requeue and delete, queue
 * administration for root and the spool's owner (mxrelay(8), QUEUE
 * ADMINISTRATION):
 *
 *	mxrelay hold|release|requeue|delete [-C file] [--bounce]
 *	    (ID ... | -d DOMAIN | -a)
 *
 * When mxrelayd runs on the spool (it holds the spool's lock) the daemon
 * is asked through its control socket, one request per ID or one for
 * the domain or all (mxrelayd_admin.c), so that its index and the
 * messages it is delivering change with the envelopes.  Without it the
 * spool is changed here, each message under its lock as a queue run
 * takes it (qadmin.c); a DSN that delete --bounce queues then goes at
 * the next queue run.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "control.h"
#include "log.h"
#include "record.h"
#include "qadmin.h"
#include "sendmail_int.h"
#include "spool.h"
#include "util.h"

struct admin_opts {
	struct qadmin_req	 req;
	const char		*config;
	bool			 all;
	char			**ids;
	int			 nids;
};

/* --help: the usage on stdout, and success; -1 for an error. */
static int
admin_usage(const char *name, int code)
{
	fprintf(code == EX_OK ? stdout : stderr,
	    "usage: mxrelay %s [-C file]%s (ID ... | -d DOMAIN | -a)\n",
	    name, strcmp(name, "delete") == 0 ? " [--bounce]" : "");
	return code;
}

/* 0, an exit code, or -1 after --help. */
static int
admin_parse(int argc, char **argv, struct admin_opts *o)
{
	static const struct option longopts[] = {
		{ "bounce", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool bounce;
	int ch;

	memset(o, 0, sizeof(*o));
	if (qadmin_action_from_text(argv[0], &o->req.action, &bounce) == -1 ||
	    bounce)
		return admin_usage(argv[0], EX_USAGE);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "+C:ad:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'C':
			o->config = optarg;
			break;
		case 'a':
			o->all = true;
			break;
		case 'd':
			o->req.domain = optarg;
			break;
		case 'b':
			if (o->req.action != QADMIN_DELETE)
				return admin_usage(argv[0], EX_USAGE);
			o->req.bounce = true;
			break;
		case 'h':
			admin_usage(argv[0], EX_OK);
			return -1;
		default:
			return admin_usage(argv[0], EX_USAGE);
		}
	}
	o->ids = argv + optind;
	o->nids = argc - optind;
	if ((o->nids > 0) + o->all + (o->req.domain != NULL) != 1)
		return admin_usage(argv[0], EX_USAGE);
	if (o->req.domain != NULL && !qadmin_domain_valid(o->req.domain)) {
		log_warnx("%s: not a domain", o->req.domain);
		return EX_USAGE;
	}
	for (int i = 0; i < o->nids; i++)
		if (!queue_id_valid(o->ids[i])) {
			log_warnx("%s: not a queue id", o->ids[i]);
			return EX_USAGE;
		}
	return 0;
}

/*
 * Without the daemon.
 */

struct admin_pick {
	const struct qadmin_req	*req;
	struct strlist		 ids;
};

static int
pick_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct admin_pick *p = arg;

	(void)q;
	if (qadmin_wanted(env, p->req))
		strlist_add(&p->ids, env->id);
	return 0;
}

/* The ids of the messages to change (each is read again under its lock). */
static int
spool_ids(struct queue *q, const char *dir, struct admin_pick *p)
{
	if (queue_scan(q, pick_one, p) == -1) {
		log_warn("%s: scanning the queue", dir);
		return -1;
	}
	return 0;
}

static int
admin_here(const struct admin_opts *o, const struct conf *conf,
    struct qadmin_count *c, size_t *dsns)
{
	struct admin_pick p = { &o->req, { NULL, 0, 0 } };
	struct strlist *all = &p.ids;
	struct queue *q;
	char newid[QUEUE_ID_LEN + 1];

	if (queue_open(conf->spool_dir, false, &q) == -1) {
		if (errno == ENOENT) {
			c->gone += (size_t)o->nids;
			return 0;
		}
		log_warn("%s", conf->spool_dir);
		return -1;
	}
	if (o->nids == 0 && spool_ids(q, conf->spool_dir, &p) == -1) {
		queue_close(q);
		return -1;
	}
	for (size_t i = 0; i < (o->nids > 0 ? (size_t)o->nids : all->n); i++) {
		const char *id = o->nids > 0 ? o->ids[i] : all->v[i];
		enum qadmin_result r = qadmin_apply(q, id, &o->req, NULL, newid);

		if (r == QADMIN_GONE && o->nids > 0)
			log_warnx("%s: no such message", id);
		else if (r == QADMIN_BUSY)
			log_warnx("%s: locked by a queue run; try again", id);
		if (r == QADMIN_DONE && newid[0] != '\0')
			(*dsns)++;
		/* A scan counts only what it selected. */
		if (o->nids > 0 || r != QADMIN_GONE)
			qadmin_count_add(c, r);
	}
	strlist_free(all);
	queue_close(q);
	return 0;
}

/*
 * Through the daemon.
 */

/* One request; 0 (counted), or an exit code with the reason logged. */
static int
ask_one(const struct admin_opts *o, const struct conf *conf, const char *what,
    const char *id, struct qadmin_count *c)
{
	char req[CONTROL_LINE_MAX], reply[CONTROL_LINE_MAX];
	const char *rest;
	size_t done, noop, busy, failed;

	snprintf(req, sizeof(req), "%s %s",
	    o->req.bounce ? "bounce" : qadmin_action_to_text(o->req.action),
	    what);
	if (control_request(conf->runtime_dir, req, reply, sizeof(reply)) ==
	    -1) {
		log_warn("mxrelayd runs on %s, but its control socket %s/%s "
		    "cannot be used", conf->spool_dir, conf->runtime_dir,
		    CONTROL_NAME);
		return EX_UNAVAILABLE;
	}
	switch (control_reply_parse(reply, &rest)) {
	case CONTROL_OK:
		if (sscanf(rest, "%zu noop=%zu busy=%zu failed=%zu", &done,
		    &noop, &busy, &failed) != 4)
			break;
		c->done += done;
		c->noop += noop;
		c->busy += busy;
		c->failed += failed;
		if (id != NULL && busy > 0)
			log_warnx("%s: being delivered now; try again", id);
		return 0;
	case CONTROL_ERR_NOMSG:
		log_warnx("%s: no such message", id != NULL ? id : what);
		c->gone++;
		return 0;
	default:
		break;
	}
	log_warnx("mxrelayd: %s", rest);
	return EX_SOFTWARE;
}

static int
admin_daemon(const struct admin_opts *o, const struct conf *conf,
    struct qadmin_count *c)
{
	char what[CONTROL_LINE_MAX];
	int rc;

	if (o->nids == 0) {
		if (o->all)
			snprintf(what, sizeof(what), "all");
		else
			snprintf(what, sizeof(what), "domain %s", o->req.domain);
		return ask_one(o, conf, what, NULL, c);
	}
	for (int i = 0; i < o->nids; i++)
		if ((rc = ask_one(o, conf, o->ids[i], o->ids[i], c)) != 0)
			return rc;
	return 0;
}

/* "3 messages held", and what was left. */
static void
admin_report(const struct admin_opts *o, const struct qadmin_count *c,
    size_t dsns, bool daemon)
{
	printf("%zu message%s %s", c->done, c->done == 1 ? "" : "s",
	    qadmin_done_text(o->req.action));
	if (o->req.bounce)
		printf(daemon ? ", each sender notified (not the null sender)" :
		    ", %zu notification%s queued for the next queue run", dsns,
		    dsns == 1 ? "" : "s");
	if (c->noop > 0)
		printf("; %zu left as %s (%s)", c->noop,
		    c->noop == 1 ? "it was" : "they were",
		    o->req.action == QADMIN_REQUEUE ? "on hold: release first" :
		    o->req.action == QADMIN_HOLD ? "already held" :
		    o->req.action == QADMIN_RELEASE ? "not held" : "not selected");
	if (c->busy > 0)
		printf("; %zu being delivered now or locked: try again",
		    c->busy);
	if (c->failed > 0)
		printf("; %zu failed (see the log)", c->failed);
	putchar('\n');
}

int
admin_run(int argc, char **argv)
{
	struct admin_opts o;
	struct qadmin_count c;
	struct conf conf;
	size_t dsns = 0;
	bool missing, daemon = false;
	int rc;

	if ((rc = admin_parse(argc, argv, &o)) != 0)
		return rc == -1 ? EX_OK : rc;
	if ((rc = command_conf(o.config, &conf)) != EX_OK)
		return rc;
	/* delete --bounce logs its notifications as delivery records. */
	record_set_format(conf.log_format);
	memset(&c, 0, sizeof(c));
	o.req.hostname = conf.hostname;
	if (geteuid() != 0 && !owns_spool(&conf)) {
		log_warnx("only root and the spool's owner may %s messages",
		    argv[0]);
		rc = EX_NOPERM;
		goto done;
	}
	if ((rc = as_spool_owner(&conf, false, &missing)) != 0)
		goto done;
	if (missing)
		c.gone += (size_t)o.nids;
	else if ((daemon = daemon_holds_spool(&conf))) {
		if ((rc = admin_daemon(&o, &conf, &c)) != 0)
			goto done;
	} else if (admin_here(&o, &conf, &c, &dsns) == -1) {
		rc = EX_IOERR;
		goto done;
	}
	admin_report(&o, &c, dsns, daemon);
	if (c.failed > 0)
		rc = EX_IOERR;
	else if (c.busy > 0)
		rc = EX_TEMPFAIL;
	else if (c.gone > 0 && o.nids > 0)
		rc = EX_NOINPUT;
	else
		rc = EX_OK;
done:
	conf_free(&conf);
	return rc;
}
