/*
 * json: strings escaped so that any bytes give valid JSON, and a growing
 * buffer to build objects with (json.h says what each byte becomes).
 */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "util.h"

/*
 * The length of the valid UTF-8 sequence at the start of s[0..n) and its
 * code point, or 0 when s does not start with one (RFC 3629 4: no
 * overlong forms, no surrogates, nothing past U+10FFFF).
 */
static size_t
utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2, c = s[0] & 0x1f, min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3, c = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4, c = s[0] & 0x07, min = 0x10000;
	} else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

static size_t
unit_hex(char *out, uint32_t c)
{
	static const char hex[] = "0123456789abcdef";

	memcpy(out, "\\u00", 4);
	out[4] = hex[(c >> 4) & 0xf];
	out[5] = hex[c & 0xf];
	return 6;
}

size_t
json_escape_unit(const char *s, size_t n, char *out, size_t *used)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t c;
	size_t len;

	if ((len = utf8_seq(u, n, &c)) == 0) {
		*used = 1;
		return unit_hex(out, u[0]);	/* a byte, read as Latin-1 */
	}
	*used = len;
	switch (c) {
	case '"':
	case '\\':
		out[0] = '\\';
		out[1] = (char)c;
		return 2;
	case '\b':
		memcpy(out, "\\b", 2);
		return 2;
	case '\f':
		memcpy(out, "\\f", 2);
		return 2;
	case '\n':
		memcpy(out, "\\n", 2);
		return 2;
	case '\r':
		memcpy(out, "\\r", 2);
		return 2;
	case '\t':
		memcpy(out, "\\t", 2);
		return 2;
	default:
		break;
	}
	if (c < 0x20 || (c >= 0x7f && c <= 0x9f))
		return unit_hex(out, c);
	memcpy(out, s, len);
	return len;
}

/*
 * The buffer.
 */

static void
buf_add(struct json_buf *b, const char *p, size_t n)
{
	if (b->cap - b->len <= n) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap - b->len <= n)
			cap *= 2;
		b->s = xreallocarray(b->s, cap, 1);
		b->cap = cap;
	}
	memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void
json_buf_free(struct json_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

void
json_raw(struct json_buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
json_sep(struct json_buf *b)
{
	char last;

	if (b->len == 0)
		return;
	last = b->s[b->len - 1];
	if (last != '{' && last != '[' && last != ':')
		buf_add(b, ",", 1);
}

void
json_key(struct json_buf *b, const char *key)
{
	json_sep(b);
	json_str(b, key);
	buf_add(b, ":", 1);
}

void
json_str(struct json_buf *b, const char *s)
{
	char unit[JSON_UNIT_MAX];
	size_t n, used, ulen;

	if (s == NULL) {
		buf_add(b, "null", 4);
		return;
	}
	buf_add(b, "\"", 1);
	for (n = strlen(s); n > 0; s += used, n -= used) {
		ulen = json_escape_unit(s, n, unit, &used);
		buf_add(b, unit, ulen);
	}
	buf_add(b, "\"", 1);
}

void
json_int(struct json_buf *b, long long v)
{
	char num[32];
	int n;

	n = snprintf(num, sizeof(num), "%lld", v);
	buf_add(b, num, (size_t)n);
}

void
json_bool(struct json_buf *b, bool v)
{
	json_raw(b, v ? "true" : "false");
}
