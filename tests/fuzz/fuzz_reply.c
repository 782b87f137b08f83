/*
 * fuzz_reply: feeds arbitrary bytes to the SMTP reply parser, line by line
 * as io.c would hand them over (split at LF, a CR before it dropped), then
 * runs the EHLO keyword parser, the log-line formatter and the escaper on
 * what was accepted, and the dot-stuffing encoder on the raw bytes.
 * Nothing may crash, read out of bounds or break the parser's invariants.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct smtp_reply reply;

static void
check_reply(const struct smtp_reply *r)
{
	char text[SMTP_REPLY_SIZE_MAX * 4 + 8];
	struct smtp_ehlo e;

	if (r->code < 200 || r->code > 599 || r->nlines == 0 ||
	    r->nlines > SMTP_REPLY_LINES_MAX || r->len > SMTP_REPLY_SIZE_MAX)
		abort();
	for (size_t i = 0; i < r->nlines; i++) {
		const char *l = smtp_reply_line(r, i);

		if (strchr(l, '\r') != NULL || strchr(l, '\n') != NULL)
			abort();
	}
	smtp_reply_to_text(r, text, sizeof(text));
	for (const char *p = text; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort();
	smtp_reply_to_text(r, text, 17);
	smtp_ehlo_parse(r, &e);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const char *p = (const char *)data, *end = p + len;
	char err[128], out[512];
	struct smtp_stuff st;
	size_t used;

	smtp_reply_init(&reply);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t llen = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		int rv;

		if (llen > 0 && p[llen - 1] == '\r')
			llen--;
		rv = smtp_reply_feed(&reply, p, llen, err, sizeof(err));
		if (rv == 1)
			check_reply(&reply);
		if (rv != 0)
			smtp_reply_init(&reply);
		if (nl == NULL)
			break;
		p = nl + 1;
	}

	smtp_stuff_init(&st);
	for (p = (const char *)data; p < end; p += used) {
		size_t w = smtp_stuff_encode(&st, p, (size_t)(end - p), out,
		    sizeof(out), &used);

		if (w > sizeof(out) || used == 0)
			abort();
	}
	(void)smtp_stuff_finish(&st, out, sizeof(out));
	(void)smtp_escape(out, sizeof(out), (const char *)data, len);
	if (len < 1024) {
		char b64[1400], dec[1100];
		size_t n;

		if (smtp_base64_encode(data, len, b64, sizeof(b64)) != 0 ||
		    smtp_base64_decode(b64, strlen(b64), dec, sizeof(dec),
		    &n) != 0 || n != len || memcmp(dec, data, len) != 0)
			abort();
		(void)smtp_base64_decode((const char *)data, len, dec,
		    sizeof(dec), &n);
	}
	return 0;
}
