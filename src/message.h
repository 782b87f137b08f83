/*
 * message: RFC 5322 header handling, level 1 (pure code: no I/O, no
 * clock; the caller passes `now`).  For mail handed to the sendmail
 * interface: address-list parsing for `-t` and for command-line
 * recipients, Bcc removal, and adding Date, Message-ID and From when
 * missing.  For the SMTP listener: the Received: field it prepends and
 * the count of Received: fields (hops) in a message streaming in.
 * Address lists and envelope addresses are in msg_addr.h, included here.
 */
#ifndef MXRELAY_MESSAGE_H
#define MXRELAY_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "msg_addr.h"
#include "util.h"

struct msg_header_opts {
	bool		 extract_rcpts;	/* -t: collect To, Cc, Bcc */
	const char	*sender;	/* envelope sender, for a missing From ("" = <>) */
	const char	*full_name;	/* -F NAME for a missing From, or NULL */
	const char	*hostname;	/* right-hand side of Message-ID */
	const char	*queue_id;	/* left-hand side of Message-ID */
	time_t		 now;		/* for a missing Date (local time zone) */
};

/*
 * in holds the start of a message with CRLF line ends (at least the whole
 * header section when there is one).  The header section is the leading
 * lines that are header fields (name ':' ...) or their continuations; an
 * initial mbox "From " line is dropped.  It ends at the first other line;
 * an empty line there is the separator and belongs to neither part.
 *
 * Writes to *out (allocated, caller frees, *outlen bytes) the new header
 * section, CRLF-terminated lines, without the separator: every field but
 * Bcc (and Resent-Bcc) kept as it was, then Date, Message-ID and From
 * added when missing.
 * *body_off is the offset in `in` where the body starts (after the
 * separator when there is one).  With extract_rcpts, the addresses of every
 * To, Cc and Bcc field are appended to rcpts.
 * When `in` ends inside the header section, the end of `in` ends it
 * (*body_off == len): the caller passes the whole message, or at least
 * everything up to the separator.  The caller writes *out, then an empty
 * line (CRLF), then in + *body_off.  Lines ending in a bare LF are
 * accepted and written with CRLF.
 *
 * Added fields: "Date: Mon, 23 Nov 2026 18:44:13 +0000" (local zone;
 * day and month names do not depend on the locale), "Message-ID:
 * <queue_id@hostname>", and "From: sender", or with full_name "From: NAME
 * <sender>" (NAME as plain words when it is only atoms and single spaces,
 * else as a quoted-string; control characters in it become spaces; longer
 * than 256 octets is an error).  With the null sender "" the From address
 * is MAILER-DAEMON@hostname.  Field names match case-insensitively.
 * hostname and queue_id must be set.
 *
 * With extract_rcpts (sendmail -t): when the header has any Resent-To,
 * Resent-Cc or Resent-Bcc field, the addresses of those fields are used
 * instead of To, Cc and Bcc.  Resent-Bcc is removed like Bcc.  Addresses
 * already in rcpts (compared case-insensitively) are not added again.
 * Without extract_rcpts, rcpts is not used and may be NULL.
 * Returns 0, or -1 with a reason in err (a malformed address in a
 * recipient field, named in err as "To: reason"; -F NAME too long);
 * on error *out is NULL and rcpts holds nothing new.
 */
int	 msg_headers_fix(const char *in, size_t len,
	    const struct msg_header_opts *, char **out, size_t *outlen,
	    size_t *body_off, struct strlist *rcpts, char *err, size_t errlen);


/*
 * The Received: field of the SMTP listener (RFC 5321 §4.4), folded on
 * three lines with CRLF, the last one ending in CRLF:
 *	Received: from HELO ([ADDR])
 *		by BY (mxrelay) with PROTO id ID
 *		for <RCPT>; DATE
 * A local session (mxrelay -bs) names the user instead of a client:
 * "from user NAME (uid N)", or "from uid N" when there is no user name or
 * one that is unsafe in a header field.  Without rcpt (more than one
 * recipient) the "for" clause is left out: "... id ID;" then DATE on the
 * third line.  DATE is now in the local time zone, in UTC when that
 * cannot be converted.  The caller checked helo (smtpd_helo_ok());
 * returns a new string.
 */
struct msg_received {
	bool		 local;	/* a local session: user, uid below */
	const char	*helo;	/* else the client's HELO/EHLO argument */
	const char	*addr;	/* and its address, without brackets */
	const char	*user;	/* local: the login name, or NULL */
	uint32_t	 uid;	/* local: the user id */
	const char	*by;	/* our host name */
	const char	*proto;	/* msg_received_proto() */
	const char	*id;	/* the queue id */
	const char	*rcpt;	/* the only recipient, or NULL */
	time_t		 now;
};
char	*msg_received(const struct msg_received *);

/*
 * RFC 3848 "with" protocol name: SMTP after HELO, ESMTP after EHLO, with
 * S when TLS is active and A when the client authenticated (ESMTP only).
 * A static string.
 */
const char *msg_received_proto(bool esmtp, bool tls, bool auth);

/*
 * Counting the Received: fields (hops, RFC 5321 §6.3) of a message while
 * it streams in: feed the body (CRLF lines, as stored) in any number of
 * pieces; the count stops at the empty line that ends the header section.
 * A field counts when its line starts with "Received:" in any case.
 */
struct msg_hops {
	bool		 done;		/* past the header section */
	size_t		 pos;		/* octets of the current line so far */
	bool		 match;		/* this line may still be "Received:" */
	unsigned	 count;
};
void	 msg_hops_init(struct msg_hops *);
void	 msg_hops_scan(struct msg_hops *, const char *buf, size_t len);

#endif
