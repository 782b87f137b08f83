/*
 * smtp_proto: the pure part of SMTP (RFC 5321), no I/O and no clock.
 *  - reply parsing: multiline replies (§4.2), one code per reply, enhanced
 *    status codes (RFC 3463 / RFC 2034), bounded line and line count;
 *  - EHLO keywords (PIPELINING, SIZE, 8BITMIME, STARTTLS, AUTH,
 *    ENHANCEDSTATUSCODES);
 *  - a streaming dot-stuffing encoder for message bodies (§4.5.2) that
 *    keeps its "at line start" state across buffers, and the matching
 *    server-side DATA decoder (unstuffing, end of data, bare CR/LF);
 *  - escaping of peer text into one log-safe line;
 *  - base64 for AUTH (RFC 4954).
 * Every limit that applies to a reply is decided here.
 */
#ifndef MXRELAY_SMTP_PROTO_H
#define MXRELAY_SMTP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets with its CRLF. */
#define SMTP_REPLY_LINE_MAX	510	/* without CRLF */
#define SMTP_REPLY_LINES_MAX	100	/* lines per reply */
#define SMTP_REPLY_SIZE_MAX	16384	/* text of all lines together */
/* RFC 5321 §4.5.3.1.3: a path with its angle brackets. */
#define SMTP_PATH_MAX		256

/*
 * One reply, built line by line with smtp_reply_feed().  Text is what
 * follows "NNN-" / "NNN " on each line, NUL-terminated per line; any
 * byte may be in it except NUL, CR, LF (escape before logging).
 */
struct smtp_reply {
	int		 code;		/* 200..599; 0 before the first line */
	/* "5.1.1" opening the first line that has text, or "" */
	char		 status[16];
	size_t		 status_line;	/* that line; SMTP_REPLY_LINES_MAX: none */
	bool		 complete;
	size_t		 nlines;
	uint16_t	 off[SMTP_REPLY_LINES_MAX];
	size_t		 len;		/* bytes used in text[] */
	char		 text[SMTP_REPLY_SIZE_MAX];
};

void		 smtp_reply_init(struct smtp_reply *);
/*
 * Feed one line (without its CRLF; len bytes, need not be NUL-terminated).
 * Returns 1 when the reply is complete, 0 when more lines follow, -1 on a
 * malformed line, a code that differs from the first line's, a line over
 * SMTP_REPLY_LINE_MAX, or too many lines / too much text (err says which).
 * After 1 or -1, call smtp_reply_init() before the next reply.
 */
int		 smtp_reply_feed(struct smtp_reply *, const char *line,
		    size_t len, char *err, size_t errlen);
/* Text of line i (0-based), or NULL when i >= nlines. */
const char	*smtp_reply_line(const struct smtp_reply *, size_t i);
/*
 * The whole reply as one log-safe line: "550 5.1.1 text more text"
 * (lines joined by a space, a repeated enhanced code dropped), escaped
 * as smtp_escape(); returns dst.
 */
char		*smtp_reply_to_text(const struct smtp_reply *, char *dst,
		    size_t dstsize);

/*
 * RFC 3463 enhanced status code at the start of text ("5.1.1 ..."), whose
 * class must be the reply code's first digit (RFC 2034 §3).  Copies it
 * into status (statussize >= STATUS_MAX is enough) and returns its
 * length, or 0 (status "") when none.  The code itself is read by
 * status_parse() (src/status.h), the one parser of such codes.
 */
size_t		 smtp_status_parse(int code, const char *text, char *status,
		    size_t statussize);

/* EHLO keywords (RFC 5321 §4.1.1.1 and the extensions' RFCs). */
struct smtp_ehlo {
	unsigned	 ext;
#define SMTP_EXT_PIPELINING	0x01	/* RFC 2920 */
#define SMTP_EXT_SIZE		0x02	/* RFC 1870 */
#define SMTP_EXT_8BITMIME	0x04	/* RFC 6152 */
#define SMTP_EXT_STARTTLS	0x08	/* RFC 3207 */
#define SMTP_EXT_AUTH		0x10	/* RFC 4954 */
#define SMTP_EXT_ENHANCEDSTATUSCODES 0x20 /* RFC 2034 */
#define SMTP_EXT_SMTPUTF8	0x40	/* RFC 6531 */
	unsigned	 auth;
#define SMTP_AUTH_PLAIN		0x01
#define SMTP_AUTH_LOGIN		0x02
	uint64_t	 size_max;	/* SIZE n; 0 = none announced */
};
/*
 * Keywords from the lines after the first of a 250 EHLO reply; unknown
 * keywords are ignored, a SIZE argument that is not a number is taken as
 * no limit.  Old-style "AUTH=LOGIN PLAIN" counts as AUTH.
 */
void		 smtp_ehlo_parse(const struct smtp_reply *, struct smtp_ehlo *);

/*
 * Dot-stuffing encoder (RFC 5321 §4.5.2).  Input is the spool body: CRLF
 * lines, not stuffed, in any number of pieces.  A bare CR or bare LF is
 * sent as CRLF (§2.3.8: never a bare one on the wire), so nothing in the
 * body can end the data early.
 */
/*
 * RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
 * A longer body line is broken by inserting CRLF SPACE, as Postfix does
 * (smtp_line_length_limit), rather than sent as it is and refused.
 */
#define SMTP_TEXT_LINE_MAX	998

struct smtp_stuff {
	bool		 bol;		/* next byte starts a line */
	bool		 cr;		/* a CR is held back */
	size_t		 col;		/* octets sent on this line */
};
void		 smtp_stuff_init(struct smtp_stuff *);
/*
 * Encode from src into dst; *used gets the input bytes taken.  Returns
 * the bytes written.  dstsize >= 2 * len + 4 takes all of the input.
 */
size_t		 smtp_stuff_encode(struct smtp_stuff *, const char *src,
		    size_t len, char *dst, size_t dstsize, size_t *used);
/*
 * The end of data: a CRLF when the body did not end with one, then
 * ".\r\n".  dstsize must be at least SMTP_STUFF_FINISH_MAX.
 */
#define SMTP_STUFF_FINISH_MAX	8
size_t		 smtp_stuff_finish(struct smtp_stuff *, char *dst,
		    size_t dstsize);

/*
 * Dot-unstuffing decoder for the server side of DATA (RFC 5321 §4.5.2),
 * the inverse of smtp_stuff_encode().  Input is the wire after the 354
 * reply, in any number of pieces; the data starts at a line start.
 *
 * The end of data is only CRLF "." CRLF (or "." CRLF as the first line):
 * "\n.\n", "\r.\n", "\n.\r\n", "\r.\r\n" and the like never end it, so
 * a client cannot smuggle a second message or commands past the relay.
 * Output is exactly the bytes to store: CRLF lines, a leading '.' of each
 * line removed ("..x" -> ".x", ".x" -> "x"), without the final ".\r\n".
 *
 * Violations (RFC 5321 §2.3.8, §4.5.3.1.6): a bare LF, a bare CR, a NUL
 * byte, or a line over line_max octets with its CRLF (counted on the
 * wire, stuffing dot included).  Only the FIRST one is recorded (in err); from then on no
 * more output is written (the caller drops the message), but the input is
 * still consumed up to the real end of data, so the session answers one
 * error and stays in sync with the client's next command.
 *
 * With SMTP_UNSTUFF_LF (for trusted clients, as Postfix's
 * smtpd_forbid_bare_newline = normalize) a bare LF is no violation but a
 * line end, stored as CRLF.  The line after it is a line like any other:
 * its leading '.' is removed ("\n..x" -> "\r\n.x").  Still only CRLF "."
 * CRLF ends the data: a "." line that starts after a bare LF or ends in
 * one ("\n.\n", "\n.\r\n", "\r\n.\n") is an empty line of the message,
 * so what follows it stays message text.  A bare CR is still a violation.
 */
enum smtp_unstuff_status {
	SMTP_UNSTUFF_MORE = 0,	/* give more input (or more output room) */
	SMTP_UNSTUFF_END,	/* end of data, no violation */
	SMTP_UNSTUFF_BARE_LF,	/* end of data; a LF without CR was seen */
	SMTP_UNSTUFF_BARE_CR,	/* end of data; a CR without LF was seen */
	SMTP_UNSTUFF_NUL,	/* end of data; a NUL byte was seen */
	SMTP_UNSTUFF_LONG_LINE	/* end of data; a line over line_max */
};

struct smtp_unstuff {
	size_t		 line_max;	/* octets per line with CRLF, >= 3 */
	size_t		 col;		/* octets on this line, capped */
	bool		 bol;		/* next byte starts a line */
	bool		 cr;		/* a CR is held back */
	bool		 dotline;	/* the line so far is just its '.' */
	bool		 done;		/* end of data seen */
	bool		 lfline;	/* this line started after a bare LF */
	unsigned	 flags;
#define SMTP_UNSTUFF_LF	0x01	/* a bare LF ends a line (stored as CRLF) */
	enum smtp_unstuff_status err;	/* first violation, or MORE if none */
};
/*
 * line_max: SMTP_TEXT_LINE_MAX + 2 (1000) per RFC 5321; below 3 means 3.
 * flags: 0 or SMTP_UNSTUFF_LF.
 */
void		 smtp_unstuff_init(struct smtp_unstuff *, size_t line_max,
		    unsigned flags);
/*
 * Decode from in (len bytes; any bytes, NULs included) into out.  *used
 * gets the input bytes taken, *outlen the bytes written (both set on every
 * call).  Returns:
 *  - SMTP_UNSTUFF_MORE: all input taken (*used == len), or out is full
 *    (*used < len: call again with the rest); outsize >= len + 1 always
 *    takes all of it (with SMTP_UNSTUFF_LF: outsize >= 2 * len).  A
 *    violation may already be recorded in ->err.
 *  - SMTP_UNSTUFF_END or the first violation's status: the end of data
 *    was read; *used counts up to and including its final LF, and
 *    in + *used is the next (pipelined) command.
 * After the end, further calls return the same status, taking nothing.
 */
enum smtp_unstuff_status smtp_unstuff_feed(struct smtp_unstuff *,
		    const char *in, size_t len, size_t *used, char *out,
		    size_t outsize, size_t *outlen);

/*
 * Peer bytes (len of them; NULs allowed) as one log-safe line: control
 * characters, bytes >= 0x7f and '\\' become \xNN (as util_escape()).
 * When it does not fit, the output ends in "..." .  dstsize > 0; returns
 * dst.
 */
char		*smtp_escape(char *dst, size_t dstsize, const char *src,
		    size_t len);

/*
 * Is addr usable inside "<...>" in MAIL FROM / RCPT TO: no control bytes,
 * no angle brackets, at most SMTP_PATH_MAX - 2 octets?  "" is fine (the
 * null sender).
 */
bool		 smtp_path_ok(const char *addr);

/* Base64 (RFC 4648) of len bytes into dst, NUL-terminated; -1 if too small. */
int		 smtp_base64_encode(const void *src, size_t len, char *dst,
		    size_t dstsize);
/* Decode; *outlen gets the length.  -1 on bad input or too small a dst. */
int		 smtp_base64_decode(const char *src, size_t len, void *dst,
		    size_t dstsize, size_t *outlen);

#endif
