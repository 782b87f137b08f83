/*
 * submit_bs: `mxrelay -bs`, one SMTP session on a pair of descriptors
 * (stdin and stdout: the default transport of Symfony Mailer, Swift
 * Mailer and Laravel), on the listener's session code (src/smtpd.c) with
 * its limits and DATA rules.  The local user is trusted (any recipient);
 * STARTTLS and AUTH are not offered.  Messages are committed through the
 * given queue (the spool, or the drop folder) with the user's uid and
 * name in the envelope.
 */
#ifndef MXRELAY_SUBMIT_BS_H
#define MXRELAY_SUBMIT_BS_H

#include <stdint.h>

#include "confval.h"

struct dkim_keys;
struct queue;

/* What -bs takes from the configuration (mxrelay.conf(5)). */
struct submit_bs_conf {
	const char	*hostname;
	const char	*qualify_domain;
	uint64_t	 max_size;		/* max_message_size; 0: none */
	unsigned	 max_recipients;
	enum bare_lf_policy bare_lf;		/* the local user is trusted */
	bool		 add_missing_headers;	/* Date:, Message-ID: */
	struct dkim_keys *dkim;		/* sign at commit; NULL: none */
};

/*
 * Run the session to its end (QUIT, the end of the input, a timeout...);
 * nothing is left allocated and the descriptors are left open with their
 * flags as they were.  Returns a sysexits(3) code:
 *	EX_OK		ended by QUIT, or by EOF between transactions
 *	EX_TEMPFAIL	a message got 452/451 because the spool could not take
 *			it now (ENOSPC, EDQUOT, ...), or a timeout
 *	EX_CANTCREAT	the spool refused to create a message (EACCES, ...)
 *	EX_IOERR	another spool failure, or reading/writing the
 *			descriptors failed
 *	EX_DATAERR	the input ended inside a transaction (nothing of it
 *			was queued)
 *	EX_PROTOCOL	the session was closed after too many bad commands
 *	EX_OSERR	the session could not start
 * A spool failure wins over the rest: the client was told with 451/452,
 * but the caller may only look at the exit status.
 */
int	submit_bs(struct queue *q, const struct submit_bs_conf *conf,
	    uint32_t uid, const char *user, int infd, int outfd);
/*
 * What a failed spool operation (its errno) means for a submitter, for
 * plain submission and -bs alike (mxrelay(8), EXIT STATUS): EX_TEMPFAIL
 * for a full or busy system, EX_CANTCREAT when the spool refuses, else
 * EX_IOERR.
 */
int	submit_exit_for_errno(int);

#endif
