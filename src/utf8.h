/*
 * utf8: the one check of UTF-8 text (RFC 3629), level 0, pure.  The SMTP
 * listener takes non-ASCII addresses only in an SMTPUTF8 transaction
 * (RFC 6531) and only when they are well-formed UTF-8; delivery asks for
 * SMTPUTF8 only for messages that need it.
 */
#ifndef MXRELAY_UTF8_H
#define MXRELAY_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * len octets of s are well-formed UTF-8 (RFC 3629 §4): no overlong form,
 * no surrogate (U+D800..U+DFFF), nothing above U+10FFFF, no sequence cut
 * short.  ASCII (NUL included) is well-formed; the caller checks for
 * control characters.
 */
bool	 utf8_valid(const char *s, size_t len);

/* Some octet of the NUL-terminated s is not ASCII (0x80 or above). */
bool	 utf8_has_8bit(const char *s);

#endif
