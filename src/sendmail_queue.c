/*
 * sendmail_queue.c: mxrelay -bp (mailq) and -q, -qf, -qI.  -bp: root and
 * the spool's owner read the spool; anyone else sees their own messages
 * through mxrelayd's control socket.  -q: root and the spool's owner
 * only; a running mxrelayd that holds the spool is asked to deliver,
 * else the queue is run here with the delivery engine.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "control.h"
#include "log.h"
#include "privs.h"
#include "runner.h"
#include "sendmail_int.h"
#include "spool.h"
#include "util.h"

/*
 * mailq / -bp
 */

struct listing {
	unsigned	 count;
	uint64_t	 bytes;
	bool		 json;		/* JSON Lines (sendmail_json.c) */
};

static int
list_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct listing *l = arg;
	char when[64], esc[1024], id[QUEUE_ID_LEN + 2];
	bool held = (env->flags & ENVELOPE_F_HOLD) != 0;
	/* What delivery sends: the DKIM signature too (envelope.h). */
	uint64_t size = env->size + (env->dkim != NULL ? strlen(env->dkim) : 0);
	struct tm tm;

	(void)q;
	if (l->json) {
		list_json(env);
		l->count++;
		return 0;
	}
	if (l->count == 0)
		printf("%-20s %8s %-20s  %s\n", "-Queue ID-", "--Size--",
		    "----Arrival Time----", "-Sender/Recipient-------");
	localtime_r(&env->arrival, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	/* A held message: "!" after its id, as Postfix marks it. */
	snprintf(id, sizeof(id), "%s%s", env->id, held ? "!" : "");
	printf("%-20s %8llu %-20s  %s\n", id, (unsigned long long)size,
	    when, env->sender[0] ? util_escape(esc, sizeof(esc), env->sender) :
	    "<>");
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		char next[64] = "";

		if (r->state == RCPT_PENDING && r->next_try != 0 && !held) {
			localtime_r(&r->next_try, &tm);
			strftime(next, sizeof(next), ", next try %b %e %H:%M:%S", &tm);
		}
		printf("%52s%s (%s, %u attempt%s%s)\n", "",
		    util_escape(esc, sizeof(esc), r->addr),
		    held && r->state == RCPT_PENDING ? "held" :
		    envelope_state_to_text(r->state), r->attempts,
		    r->attempts == 1 ? "" : "s", next);
		if (r->last_reply != NULL)
			printf("%56s%s\n", "",
			    util_escape(esc, sizeof(esc), r->last_reply));
	}
	putchar('\n');
	l->count++;
	l->bytes += size;
	return 0;
}

static void
list_end(const struct listing *l)
{
	if (l->json)
		return;		/* an empty queue is no line at all */
	if (l->count == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %llu Kbytes in %u Request%s.\n",
		    (unsigned long long)(l->bytes + 1023) / 1024, l->count,
		    l->count == 1 ? "" : "s");
}

/*
 * A user who does not own the spool sees its own messages, through the
 * daemon (which asks the kernel who is calling).  Without the daemon
 * only root and the spool's owner can read the queue.
 */
static int
list_from_daemon(const struct conf *conf, bool json)
{
	struct listing l = { 0, 0, json };
	const char *rest;
	char *buf, *p, *end;
	size_t len;
	unsigned long n;

	if (control_request_all(conf->runtime_dir, "list", &buf, &len,
	    CONTROL_LIST_MAX) == -1) {
		if (errno == ENOENT || errno == ECONNREFUSED) {
			log_warnx("mxrelayd is not running: only root and the "
			    "spool's owner can read the queue without it");
			return EX_UNAVAILABLE;
		}
		log_warn("%s/%s", conf->runtime_dir, CONTROL_NAME);
		return EX_UNAVAILABLE;
	}
	end = buf + len;
	if (control_reply_parse(buf, &rest) != CONTROL_OK) {
		buf[strcspn(buf, "\n")] = '\0';
		log_warnx("mxrelayd: %s", rest);
		free(buf);
		return EX_UNAVAILABLE;
	}
	n = strtoul(rest, &p, 10);
	if (*p++ != '\n')
		goto bad;
	for (unsigned long i = 0; i < n; i++) {
		struct envelope env;
		const char *why;
		unsigned long elen = strtoul(p, &p, 10);

		if (p >= end || *p++ != '\n' || elen > (size_t)(end - p))
			goto bad;
		if (envelope_decode(p, elen, &env, &why) == -1)
			goto bad;
		list_one(NULL, &env, &l);
		envelope_free(&env);
		p += elen;
	}
	free(buf);
	list_end(&l);
	return EX_OK;
bad:
	free(buf);
	log_warnx("mxrelayd: a listing that cannot be read");
	return EX_SOFTWARE;
}

int
list_queue(struct conf *conf, bool json)
{
	struct listing l = { 0, 0, json };
	struct queue *q;
	bool missing;
	int rc;

	if ((rc = as_spool_owner(conf, false, &missing)) != 0)
		return rc;
	if (!missing && !owns_spool(conf))
		return list_from_daemon(conf, json);
	if (missing || queue_open(conf->spool_dir, false, &q) == -1) {
		if (missing || errno == ENOENT) {
			if (!json)
				printf("Mail queue is empty\n");
			return EX_OK;
		}
		log_warn("%s", conf->spool_dir);
		return errno == EACCES || errno == EPERM ? EX_NOPERM : EX_IOERR;
	}
	if (queue_scan(q, list_one, &l) == -1) {
		log_warn("%s: scanning the queue", conf->spool_dir);
		queue_close(q);
		return EX_IOERR;
	}
	queue_close(q);
	list_end(&l);
	return EX_OK;
}

/*
 * -q, -qf, -qI ID: one run of the queue with the delivery engine, in this
 * process; exit once every due message has been tried.
 */
/*
 * A running mxrelayd owns the queue: ask it to try everything (or one
 * message) now instead of racing it.  -1: no daemon, run the queue here.
 */
static int
ask_daemon(const struct conf *conf, const char *id)
{
	char req[CONTROL_LINE_MAX], reply[CONTROL_LINE_MAX];
	const char *rest;

	if (id != NULL)
		snprintf(req, sizeof(req), "flush %s", id);
	else
		snprintf(req, sizeof(req), "flush");
	if (control_request(conf->runtime_dir, req, reply, sizeof(reply)) ==
	    -1) {
		if (errno != ENOENT && errno != ECONNREFUSED &&
		    errno != ENAMETOOLONG)
			log_warn("%s/%s", conf->runtime_dir, CONTROL_NAME);
		return -1;
	}
	switch (control_reply_parse(reply, &rest)) {
	case CONTROL_OK:
		log_info("mxrelayd is running: it delivers now (%s)", reply);
		return EX_OK;
	case CONTROL_ERR_NOMSG:
		if (id == NULL)
			break;
		log_warnx("%s: no such message, or nothing to deliver", id);
		return EX_TEMPFAIL;	/* as without a daemon */
	default:
		break;
	}
	log_warnx("mxrelayd: %s", rest);
	return EX_SOFTWARE;
}

/*
 * A daemon runs on this spool (it holds the spool's lock): only then is
 * the control socket in runtime_dir asked, so that a queue run on another
 * spool never flushes the system's daemon instead.
 */
bool
daemon_holds_spool(const struct conf *conf)
{
	struct queue *q;
	bool held;

	if (queue_open(conf->spool_dir, false, &q) == -1)
		return false;
	held = queue_lock_spool(q) == -1 && errno == EWOULDBLOCK;
	queue_close(q);
	return held;
}

/*
 * -qI of a message on hold: nothing is delivered (mxrelay(8), QUEUE
 * ADMINISTRATION); say why instead of "no such message".
 */
static bool
queue_id_held(const struct conf *conf, const char *id)
{
	struct envelope env;
	struct queue *q;
	bool held = false;

	if (queue_open(conf->spool_dir, false, &q) == -1)
		return false;
	if (queue_env_load(q, id, &env) == 0) {
		held = (env.flags & ENVELOPE_F_HOLD) != 0;
		envelope_free(&env);
	}
	queue_close(q);
	return held;
}

int
run_queue(const struct opts *o, struct conf *conf, int argc, char **argv)
{
	struct runner_opts ro;
	struct qmgr_stats st;
	bool missing;
	int rc;

	if (geteuid() != 0 && !owns_spool(conf)) {
		log_warnx("only root and the spool's owner may run the queue");
		return EX_NOPERM;
	}
	memset(&ro, 0, sizeof(ro));
	ro.force = o->force;
	ro.only_id = o->queue_id;
	if (argc > 0) {
		if (argc > 1 || ro.only_id != NULL) {
			log_warnx("-q takes at most one queue id");
			return EX_USAGE;
		}
		ro.only_id = argv[0];
	}
	if (ro.only_id != NULL && !queue_id_valid(ro.only_id)) {
		log_warnx("%s: not a queue id", ro.only_id);
		return EX_USAGE;
	}
	if ((rc = as_spool_owner(conf, false, &missing)) != 0)
		return rc;
	if (missing) {
		if (ro.only_id != NULL) {
			log_warnx("%s: no such message, or nothing to deliver",
			    ro.only_id);
			return EX_TEMPFAIL;
		}
		return EX_OK;	/* no spool, nothing to deliver */
	}
	if (ro.only_id != NULL && queue_id_held(conf, ro.only_id)) {
		log_warnx("%s: on hold: nothing delivered (mxrelay release %s "
		    "first)", ro.only_id, ro.only_id);
		return EX_TEMPFAIL;
	}
	if (daemon_holds_spool(conf) &&
	    (rc = ask_daemon(conf, ro.only_id)) != -1)
		return rc;
	{
		char err[512];

		if (privs_check_not_submitter(err, sizeof(err)) == -1) {
			log_warnx("%s", err);
			return EX_CONFIG;
		}
	}
	if (runner_run(conf, &ro, &st) == -1)
		return EX_TEMPFAIL;
	return EX_OK;
}
