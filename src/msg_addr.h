/*
 * msg_addr: RFC 5322 address lists and RFC 5321 envelope addresses, level
 * 1 (pure code: no I/O, no clock).  Part of the message module: message.h
 * includes this header, so its callers need nothing else.
 */
#ifndef MXRELAY_MSG_ADDR_H
#define MXRELAY_MSG_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* RFC 5321 §4.5.3.1 limits. */
#define MSG_LOCAL_MAX	64
#define MSG_DOMAIN_MAX	255
#define MSG_PATH_MAX	256

/*
 * Parse an RFC 5322 address-list (To/Cc/Bcc field body, possibly folded
 * with CRLF or LF followed by white space), or a command-line recipient
 * argument, which may hold several addresses separated by commas.
 * Display names, comments, quoted local parts, angle addresses, obsolete
 * routes (<@a,@b:u@d>) and groups ("undisclosed-recipients:;", or
 * "team: a@x, b@y;") are understood.  Each mailbox found is appended to out
 * as a bare addr-spec: "local@domain", or just "local" when unqualified;
 * a quoted local part keeps its quotes when it needs them
 * ("john"@x becomes john@x, "john doe"@x stays quoted).  Every address
 * appended passes msg_addr_check(addr, true, ...).  Empty elements
 * (", ,") are skipped; a group missing its ';' at the end is accepted.
 * text need not be NUL-terminated and may hold any bytes.
 * Returns the number of addresses appended (0 is valid: an empty group),
 * or -1 with a reason in err (out then holds nothing new): unbalanced
 * quotes, brackets or parentheses, missing '>', '@' with an empty domain,
 * control characters, non-ASCII addresses (no SMTPUTF8), RFC 5321 length
 * limits, text after an address, comments nested too deeply.
 */
int	 msg_addrlist_parse(const char *text, size_t len, struct strlist *out,
	    char *err, size_t errlen);

/*
 * Check that addr is a valid addr-spec for the envelope (RFC 5321 Mailbox:
 * dot-atom or quoted local part, a domain name or address literal, length
 * limits, no control characters).  With allow_unqualified, a bare local
 * part is accepted too.  0, or -1 with a reason in err.
 */
int	 msg_addr_check(const char *addr, bool allow_unqualified, char *err,
	    size_t errlen);
/*
 * The same for an SMTPUTF8 transaction (RFC 6531 §3.3): the local part
 * may also hold non-ASCII octets, when addr is well-formed UTF-8 (RFC
 * 3629, utf8_valid()); the domain must still be ASCII (its A-label).
 */
int	 msg_addr_check_utf8(const char *addr, bool allow_unqualified,
	    char *err, size_t errlen);

/*
 * RFC 5322 character classes, shared with the header code of message.c:
 * a control other than HTAB (HTAB is white space, §3.2.2), and ASCII
 * atext (§3.2.3).
 */
bool	 msg_is_ctl(unsigned char);
bool	 msg_is_ascii_atext(unsigned char);

#endif
