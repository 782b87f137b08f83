/*
 * mxrelayd_admin: the control socket's queue administration requests
 * (control.h), for root and the daemon's user only (mxrelayd_ctl.c
 * checks the caller first):
 *
 *	ACTION ID		one message
 *	ACTION domain DOMAIN	every message with a pending recipient there
 *	ACTION all		every message
 *
 * ACTION is hold, release, requeue, delete, or bounce (delete with a
 * DSN).  The answer is "ok N noop=N busy=N failed=N": messages changed,
 * left as they were (already so, or a held one to requeue), left alone
 * because they are being delivered or locked (try again), and those the
 * spool failed on (logged).  One ID that is not queued: "error nomsg".
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "mxrelayd.h"
#include "qadmin.h"
#include "qmgr.h"
#include "spool.h"

bool
ctl_admin(struct daemon *d, const char *req, char *reply, size_t len)
{
	struct qadmin_req r;
	struct qadmin_count c;
	const char *arg, *id = NULL;
	char word[16];
	size_t n = strcspn(req, " ");

	if (n == 0 || n >= sizeof(word) || req[n] != ' ')
		return false;
	memcpy(word, req, n);
	word[n] = '\0';
	memset(&r, 0, sizeof(r));
	if (qadmin_action_from_text(word, &r.action, &r.bounce) == -1)
		return false;
	arg = req + n + 1;
	if (strncmp(arg, "domain ", 7) == 0) {
		r.domain = arg + 7;
		if (!qadmin_domain_valid(r.domain)) {
			control_reply_format(reply, len, CONTROL_ERR_BADREQ,
			    "not a domain");
			return true;
		}
	} else if (strcmp(arg, "all") != 0) {
		if (!queue_id_valid(arg)) {
			control_reply_format(reply, len, CONTROL_ERR_BADID,
			    "not a queue id");
			return true;
		}
		id = arg;
	}
	r.hostname = d->cur->conf.hostname;
	if (qmgr_admin(d->qm, id, &r, &c) == -1) {
		log_warn("control: %s: cannot scan the queue", word);
		control_reply_format(reply, len, CONTROL_ERR_QUEUE,
		    "cannot read the queue");
		return true;
	}
	if (id != NULL && c.gone > 0) {
		control_reply_format(reply, len, CONTROL_ERR_NOMSG,
		    "no such message");
		return true;
	}
	snprintf(reply, len, "ok %zu noop=%zu busy=%zu failed=%zu\n", c.done,
	    c.noop, c.busy, c.failed);
	return true;
}
