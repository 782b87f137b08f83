/*
 * sendmail_json.c: the queue listing as JSON Lines (mailq --json, like
 * Postfix's postqueue -j, with the next attempt and the last reply): one
 * object per message on a line of its own, made from the envelope alone,
 * so that the listing read from the spool and the one that mxrelayd sends
 * give the same lines.  mxrelay(8) describes the fields.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "envelope.h"
#include "json.h"
#include "sendmail_int.h"

/* A date of the envelope: seconds since the epoch, null for "none". */
static void
json_date(struct json_buf *b, const char *key, time_t t)
{
	json_key(b, key);
	if (t == 0)
		json_raw(b, "null");
	else
		json_int(b, (long long)t);
}

static void
json_rcpt(struct json_buf *b, const struct envelope_rcpt *r)
{
	json_sep(b);
	json_raw(b, "{");
	json_key(b, "address");
	json_str(b, r->addr);
	json_key(b, "original");
	json_str(b, r->orig);
	json_key(b, "state");
	json_str(b, envelope_state_to_text(r->state));
	json_key(b, "attempts");
	json_int(b, r->attempts);
	/* Only a pending recipient has a next attempt; 0 is "at once". */
	json_key(b, "next_attempt");
	if (r->state != RCPT_PENDING)
		json_raw(b, "null");
	else
		json_int(b, (long long)r->next_try);
	json_date(b, "last_attempt", r->last_try);
	json_key(b, "last_reply");
	json_str(b, r->last_reply);
	json_key(b, "status");
	json_str(b, r->status);
	json_key(b, "remote_mta");
	json_str(b, r->remote_mta);
	json_raw(b, "}");
}

void
list_json(const struct envelope *env)
{
	struct json_buf b = { NULL, 0, 0 };

	json_raw(&b, "{");
	json_key(&b, "queue_id");
	json_str(&b, env->id);
	json_key(&b, "arrival_time");
	json_int(&b, (long long)env->arrival);
	json_key(&b, "message_size");
	/* What delivery sends: the DKIM signature too (envelope.h). */
	json_int(&b, (long long)(env->size +
	    (env->dkim != NULL ? strlen(env->dkim) : 0)));
	json_key(&b, "sender");
	json_str(&b, env->sender);
	json_key(&b, "held");
	json_bool(&b, (env->flags & ENVELOPE_F_HOLD) != 0);
	json_key(&b, "recipients");
	json_raw(&b, "[");
	for (size_t i = 0; i < env->nrcpt; i++)
		json_rcpt(&b, &env->rcpt[i]);
	json_raw(&b, "]}\n");
	fputs(b.s, stdout);
	json_buf_free(&b);
}
