/*
 * msg_stream: the header section of a message that streams in through
 * the SMTP listener, level 1 (pure code: no I/O, no clock; the caller
 * passes now).  It sees every octet of the message on its way to the
 * spool, notes which fields of interest the header section has and
 * whether it holds non-ASCII octets (RFC 6532 UTF-8 header fields, which
 * need SMTPUTF8 on delivery), and can add a missing Date: and
 * Message-ID: at the end of the header section, as msg_headers_fix()
 * does for the sendmail interface, without holding the message in
 * memory: only the start of one line (at most MSG_STREAM_HOLD octets)
 * waits while it is not yet known whether that line is a header field.
 */
#ifndef MXRELAY_MSG_STREAM_H
#define MXRELAY_MSG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MSG_STREAM_MSGID_MAX	320
#define MSG_STREAM_HOLD	1024	/* a field name longer than this is
				   taken as a field without looking */

/* Where the octets go: the caller's writer, which handles its errors. */
typedef void (*msg_stream_write)(void *arg, const char *, size_t);

struct msg_stream {
	/* Set by msg_stream_init(). */
	bool		 add;		/* add a missing Date, Message-ID */
	char		 msgid[MSG_STREAM_MSGID_MAX];	/* <queue_id@host> */
	time_t		 now;		/* Date: (local time zone) */
	msg_stream_write write;
	void		*arg;

	/* What was found; final once done (or after msg_stream_end()). */
	bool		 done;		/* past the header section */
	bool		 has_date;
	bool		 has_msgid;
	bool		 eightbit;	/* a non-ASCII octet in a header field */
	bool		 added;		/* Date or Message-ID was added */
	bool		 has_field;	/* a header field was seen */

	/* The line being read. */
	int		 state;
	size_t		 nhold;
	char		 hold[MSG_STREAM_HOLD];
};

/*
 * Start on a new message; hostname and queue_id (copied) make the
 * Message-ID, used only when add.
 */
void	 msg_stream_init(struct msg_stream *, bool add, const char *hostname,
	    const char *queue_id, time_t now, msg_stream_write, void *arg);

/*
 * The next octets of the message (CRLF lines, as stored), in pieces of
 * any size: they go to the writer, with the added fields in front of
 * the line that ends the header section.  That is the empty line that
 * separates the body (RFC 5322 §2.1), or the first line that is neither
 * a header field ("name:", the name printable ASCII) nor, after one, a
 * continuation line: an empty line is then added after the fields, so
 * that line starts the body.
 */
void	 msg_stream_feed(struct msg_stream *, const char *buf, size_t len);

/*
 * The end of the message: the held octets go out, and when the message
 * ended inside its header section (no body), the added fields follow
 * it.
 */
void	 msg_stream_end(struct msg_stream *);

#endif
