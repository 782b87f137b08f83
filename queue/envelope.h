/*
 * envelope: who a queued message is from and to, and where each recipient
 * stands.  One envelope per message; one record per recipient.  The text
 * encoding is versioned and defined in envelope.c.
 *
 * This module does no I/O: queue/spool.c stores the encoded bytes.
 */
#ifndef MXRELAY_ENVELOPE_H
#define MXRELAY_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define QUEUE_ID_LEN	20	/* hex characters, see queue/spool.c */

enum rcpt_state {
	RCPT_PENDING = 0,	/* not yet delivered: due at next_try */
	RCPT_DELIVERED,		/* a remote exchanger said 2xx: never retried */
	RCPT_BOUNCED,		/* permanent failure or lifetime expired */
};

enum envelope_8bit {
	ENVELOPE_8BIT_UNKNOWN = 0,
	ENVELOPE_8BIT_NO,
	ENVELOPE_8BIT_YES,
};

/*
 * Message flags (struct envelope, flags), each stored as one word of the
 * flags line (envelope.c) in the order of the bits.
 */
#define ENVELOPE_F_HOLD		0x01u	/* "hold": on hold, never attempted */
#define ENVELOPE_F_SMTPUTF8	0x02u	/* "smtputf8": needs RFC 6531 SMTPUTF8 */
#define ENVELOPE_F_WARNED	0x04u	/* "warned": the delay DSN has gone */
#define ENVELOPE_F_ALL		0x07u

struct envelope_rcpt {
	char		*addr;		/* addr-spec, as given to RCPT TO */
	char		*orig;		/* as the user wrote it before alias/qualify; may be NULL */
	enum rcpt_state	 state;
	unsigned	 attempts;	/* delivery attempts so far */
	time_t		 next_try;	/* not before this (0: at once) */
	time_t		 last_try;	/* 0: never tried */
	char		*last_reply;	/* last remote reply or local reason; may be NULL */
	char		*status;	/* RFC 3463 code of the last result ("4.4.1"); may be NULL */
	char		*remote_mta;	/* exchanger that gave last_reply; NULL when local */
};

struct envelope {
	char			 id[QUEUE_ID_LEN + 1];	/* set by queue_msg_commit() */
	char			*sender;	/* "" is the null sender <> */
	time_t			 arrival;
	uint64_t		 size;		/* bytes of the body file */
	/*
	 * The local user who queued it (mxrelay, mxrelay -bs, the drop
	 * folder): uid and login name.  submit_user NULL: none recorded
	 * (the SMTP listener, or a spool written before version 2).
	 */
	uint32_t		 submit_uid;
	char			*submit_user;
	/*
	 * Whether the body has bytes over 0x7f (the spool notes it while
	 * the body is written).  UNKNOWN in envelopes written before
	 * version 3: the reader scans the body.
	 */
	enum envelope_8bit	 eightbit;
	/*
	 * ENVELOPE_F_*: what an administrator or the queue manager noted
	 * about the whole message.  0 in envelopes before version 4.
	 */
	unsigned		 flags;
	/*
	 * The DKIM-Signature header field(s) made at intake, CRLF lines
	 * sent in front of the body file's bytes on every attempt (not in
	 * size).  NULL (or ""): not signed; always NULL before version 5.
	 */
	char			*dkim;
	size_t			 nrcpt;
	struct envelope_rcpt	*rcpt;
	size_t			 rcpt_cap;	/* private: rcpt's allocated length */
};

/* Zero-initialised struct envelope is valid and empty. */
void	 envelope_init(struct envelope *);
void	 envelope_free(struct envelope *);	/* frees members, not the struct */
/* A deep copy of src into dst (which is overwritten, not freed). */
void	 envelope_copy(struct envelope *dst, const struct envelope *src);
/* Appends a pending recipient; copies addr and orig (orig may be NULL). */
void	 envelope_add_rcpt(struct envelope *, const char *addr, const char *orig);
/*
 * True when s is an RFC 3463 enhanced status code: class "2", "4" or "5",
 * then "." 1*3DIGIT "." 1*3DIGIT, nothing else ("5.1.1", "5.1.10").
 */
bool	 envelope_status_valid(const char *s);
/* "pending", "delivered", "bounced" */
const char *envelope_state_to_text(enum rcpt_state);

/*
 * Encode into a newly allocated buffer (*buf, *len; caller frees).
 * Returns 0, or -1 with errno EINVAL when a field cannot be represented
 * (including a status that envelope_status_valid() refuses).
 */
int	 envelope_encode(const struct envelope *, char **buf, size_t *len);
/*
 * Decode len bytes.  On error returns -1 and sets *err to a static string
 * naming what was wrong; env is left empty.  Never trusts the input.
 */
int	 envelope_decode(const char *buf, size_t len, struct envelope *env,
	    const char **err);

#endif
