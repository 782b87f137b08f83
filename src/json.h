/*
 * json: JSON text (RFC 8259) for the log's delivery records and the JSON
 * queue listing.  Pure: no I/O.
 *
 * Strings take any bytes and always give valid JSON.  Valid UTF-8 passes
 * as it is, except the control characters (U+0000-U+001F, U+007F and
 * U+0080-U+009F), which become \uXXXX (\b \f \n \r \t as such); '"' and
 * '\' are escaped.  A byte that is not part of valid UTF-8 (a stray
 * continuation byte, a sequence cut short, an overlong form, a surrogate,
 * past U+10FFFF) becomes \u00XX: the byte's value read as Latin-1, so
 * that nothing is lost and the reader needs no error handling.
 */
#ifndef MXRELAY_JSON_H
#define MXRELAY_JSON_H

#include <stdbool.h>
#include <stddef.h>

#define JSON_UNIT_MAX	6	/* the longest form of one character: \u00XX */

/*
 * The JSON form of the first character of s[0..n), n > 0, into out (not
 * terminated).  Returns its length (1 to JSON_UNIT_MAX); *used is set to
 * the number of bytes of s it stands for (1 to 4).
 */
size_t	 json_escape_unit(const char *s, size_t n, char *out, size_t *used);

/*
 * A growing buffer for JSON text; zero-initialised is empty.  s is always
 * NUL-terminated once anything was written.  json_buf_free() releases it.
 */
struct json_buf {
	char	*s;
	size_t	 len, cap;
};

void	 json_buf_free(struct json_buf *);
/* Raw text, as it is. */
void	 json_raw(struct json_buf *, const char *);
/*
 * A value separator: ',' unless the buffer is empty or its last byte
 * opens an object or array ('{', '[') or ends a key (':').
 */
void	 json_sep(struct json_buf *);
/* json_sep(), then "key": */
void	 json_key(struct json_buf *, const char *key);
/* A quoted string (see above); NULL writes null. */
void	 json_str(struct json_buf *, const char *);
void	 json_int(struct json_buf *, long long);
void	 json_bool(struct json_buf *, bool);

#endif
