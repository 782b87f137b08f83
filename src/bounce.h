/*
 * bounce: RFC 3464 delivery status notifications.  bounce_build() makes
 * the bytes of the report (no I/O but reading the original message's
 * header section); bounce_queue() puts it in the spool as a new message
 * from the null sender to the original envelope sender.
 */
#ifndef MXRELAY_BOUNCE_H
#define MXRELAY_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "envelope.h"
#include "spool.h"

/* At most this much of the original header section is copied. */
#define BOUNCE_HEADERS_MAX	(1024 * 1024)
/* A remote reply or local reason is cut to this many octets in the DSN. */
#define BOUNCE_DIAG_MAX		4096

/*
 * Build the DSN that reports the recipients env->rcpt[i] with report[i]
 * set (report has env->nrcpt flags): a multipart/report with a text/plain
 * explanation, a message/delivery-status part (RFC 3464) and, when
 * body_fd is not -1, a text/rfc822-headers part with the header section
 * of the original message (read with pread() from offset 0, up to the
 * empty line, at most BOUNCE_HEADERS_MAX octets and never past
 * env->size; the fd offset is left alone).  hostname names this relay (From: MAILER-DAEMON@hostname,
 * Reporting-MTA, Message-ID); now is the Date.
 *
 * Every line ends in CRLF and is at most 998 octets; remote text is
 * folded and cleaned of control characters.  The Message-ID is derived
 * from env->id, now and the first reported recipient, so two bounces of
 * one message never share it (a recipient is reported only once).
 *
 * On success *out (caller frees) and *outlen hold the message, in the
 * spool's body representation; a NUL follows the last byte (not counted).  Returns -1 with errno EINVAL when there
 * is nothing to report, the sender is the null sender or NULL, or
 * hostname or the sender cannot be put in a header; other errno values
 * come from reading body_fd.
 */
int	 bounce_build(const struct envelope *env, const bool *report,
	    int body_fd, const char *hostname, time_t now, char **out,
	    size_t *outlen);

/*
 * Build the DSN as bounce_build() does and queue it: sender "" (so that
 * it can never bounce in turn), one recipient, env->sender, arrival now.
 * newid (QUEUE_ID_LEN + 1 bytes) receives the new message's queue id.
 *
 * Returns 0 without queueing anything (newid "") when env->sender is ""
 * (a message from the null sender is never bounced: mxrelay(8),
 * "Retries and bounces") or when no recipient is to be reported.  Returns -1 with errno
 * from bounce_build() or from the spool (ENOSPC: try again later);
 * nothing is left in the spool then.
 */
int	 bounce_queue(struct queue *, const struct envelope *env,
	    const bool *report, int body_fd, const char *hostname, time_t now,
	    char *newid);

/*
 * A notice other than bounce_build()'s single "failed" report.
 *  - kind BOUNCE_DELAYED: the recipients are still being retried (RFC
 *    3464 "Action: delayed", Status 4.x.x: the recipient's last one
 *    when it is temporary, else 4.0.0); until, when not 0, is the
 *    Will-Retry-Until date.
 *  - rcpt_ids, when not NULL, holds for each recipient of env the queue
 *    id of the message it came from (a notice that combines several
 *    messages: the text part names it, each recipient block has an
 *    X-mxrelay-Queue-ID field, and there is no message-wide queue id or
 *    Arrival-Date).
 *  - hdrs, when not NULL, is a header section read before (by
 *    bounce_read_headers()), used instead of body_fd's.
 */
enum bounce_kind {
	BOUNCE_FAILED,
	BOUNCE_DELAYED,
};

struct bounce_notice {
	enum bounce_kind	 kind;
	time_t			 until;
	const char *const	*rcpt_ids;
	const char		*hdrs;
	size_t			 hdrslen;
	bool			 hdrs8bit;
};

/* bounce_build() and bounce_queue() with a notice (NULL: failed). */
int	 bounce_build_notice(const struct envelope *env, const bool *report,
	    int body_fd, const struct bounce_notice *, const char *hostname,
	    time_t now, char **out, size_t *outlen);
/*
 * The delivery record of a notification queued as newid for message id
 * (record.h: text or JSON): "ID: sender non-delivery notification: NEWID
 * (N recipients)", "sender delay notification" for BOUNCE_DELAYED, and
 * "(N recipients; one notice for M messages)" when nmsgs > 0.
 */
void	 bounce_log(const char *id, enum bounce_kind, const char *newid,
	    size_t nrcpt, size_t nmsgs);

/* As bounce_queue(), but logs nothing: the caller says what it sent. */
int	 bounce_queue_notice(struct queue *, const struct envelope *env,
	    const bool *report, int body_fd, const struct bounce_notice *,
	    const char *hostname, time_t now, char *newid);
/*
 * The header section of the message in fd (its first size bytes: the
 * spool's file holds more) as part 3 carries it (see bounce_build()):
 * *out (caller frees), *outlen, *eightbit.  0, or -1 with errno from
 * reading.
 */
int	 bounce_read_headers(int fd, uint64_t size, char **out, size_t *outlen,
	    bool *eightbit);

#endif
