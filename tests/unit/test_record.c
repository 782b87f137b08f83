/*
 * test_record: src/json.c and src/record.c.  JSON string escaping by a
 * table (quotes, backslashes, control characters, valid and invalid
 * UTF-8), the growing buffer, a delivery record in both forms, records
 * cut at the line limit, and random bytes in every field, each record
 * checked by a small JSON validator written here (the grammar of RFC
 * 8259 restricted to what a record holds: one object of strings and
 * integers).
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "json.h"
#include "mock_log.h"
#include "record.h"

/*
 * A validator: p points into a NUL-terminated text; each returns the end
 * of what it read, or NULL.
 */

/* The UTF-8 sequence at p (RFC 3629), or NULL. */
static const char *
valid_utf8(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	uint32_t c;
	size_t len;

	if (u[0] < 0x80)
		return p + 1;
	if (u[0] >= 0xc2 && u[0] <= 0xdf)
		len = 2, c = u[0] & 0x1f;
	else if (u[0] >= 0xe0 && u[0] <= 0xef)
		len = 3, c = u[0] & 0x0f;
	else if (u[0] >= 0xf0 && u[0] <= 0xf4)
		len = 4, c = u[0] & 0x07;
	else
		return NULL;
	for (size_t i = 1; i < len; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return NULL;
		c = (c << 6) | (u[i] & 0x3f);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return NULL;
	return p + len;
}

static const char *
valid_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if (*p == '\0' || (unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (strchr("0123456789abcdefABCDEF",
					    p[i]) == NULL || p[i] == '\0')
						return NULL;
				p += 5;
			} else if (*p != '\0' && strchr("\"\\/bfnrt", *p) !=
			    NULL)
				p++;
			else
				return NULL;
		} else if ((p = valid_utf8(p)) == NULL)
			return NULL;
	}
	return p + 1;
}

static const char *
valid_value(const char *p)
{
	if (*p == '"')
		return valid_string(p);
	if (strncmp(p, "true", 4) == 0)
		return p + 4;
	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
		return NULL;
	while (*p >= '0' && *p <= '9')
		p++;
	return p;
}

/* One object of string keys and string, integer or true values. */
static bool
valid_object(const char *p)
{
	if (*p++ != '{')
		return false;
	if (*p == '}')
		return p[1] == '\0';
	for (;;) {
		if ((p = valid_string(p)) == NULL || *p++ != ':' ||
		    (p = valid_value(p)) == NULL)
			return false;
		if (*p == '}')
			return p[1] == '\0';
		if (*p++ != ',')
			return false;
	}
}

/* s escaped as a JSON string (quoted), through the buffer. */
static char *
escaped(const char *s)
{
	struct json_buf b = { NULL, 0, 0 };

	json_str(&b, s);
	return b.s;
}

static void
test_escape_table(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
		const char	*rule;
	} t[] = {
		{ "", "\"\"", "empty" },
		{ "250 2.0.0 Ok", "\"250 2.0.0 Ok\"", "printable ASCII" },
		{ "a\"b", "\"a\\\"b\"", "a quote" },
		{ "a\\b", "\"a\\\\b\"", "a backslash" },
		{ "/", "\"/\"", "a solidus need not be escaped" },
		{ "\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"", "the short escapes" },
		{ "\x01\x1f", "\"\\u0001\\u001f\"", "other C0 controls" },
		{ "\x1b[31m", "\"\\u001b[31m\"", "a terminal escape" },
		{ "\x7f", "\"\\u007f\"", "DEL" },
		{ "\xc2\x85", "\"\\u0085\"", "a C1 control in UTF-8" },
		{ "\xc2\xa0", "\"\xc2\xa0\"", "U+00A0 is not a control" },
		{ "caf\xc3\xa9", "\"caf\xc3\xa9\"", "valid UTF-8 as it is" },
		{ "\xe2\x82\xac", "\"\xe2\x82\xac\"", "three bytes" },
		{ "\xf0\x9f\x93\xa7", "\"\xf0\x9f\x93\xa7\"", "four bytes" },
		{ "\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\"", "U+10FFFF" },
		{ "caf\xe9", "\"caf\\u00e9\"", "Latin-1: a lone byte" },
		{ "\x80", "\"\\u0080\"", "a stray continuation byte" },
		{ "\xc3", "\"\\u00c3\"", "a sequence cut by the end" },
		{ "\xc3" "A", "\"\\u00c3A\"", "a sequence cut by ASCII" },
		{ "\xe2\x82", "\"\\u00e2\\u0082\"", "three bytes cut short" },
		{ "\xc0\xaf", "\"\\u00c0\\u00af\"", "an overlong '/'" },
		{ "\xe0\x80\xaf", "\"\\u00e0\\u0080\\u00af\"",
		    "overlong in 3" },
		{ "\xf0\x80\x80\xaf", "\"\\u00f0\\u0080\\u0080\\u00af\"",
		    "overlong in 4" },
		{ "\xed\xa0\x80", "\"\\u00ed\\u00a0\\u0080\"", "a surrogate" },
		{ "\xf4\x90\x80\x80", "\"\\u00f4\\u0090\\u0080\\u0080\"",
		    "past U+10FFFF" },
		{ "\xf5\xff\xfe", "\"\\u00f5\\u00ff\\u00fe\"",
		    "never in UTF-8" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *got = escaped(t[i].in);

		if (strcmp(got, t[i].out) != 0)
			fail_msg("%s: got %s, want %s", t[i].rule, got,
			    t[i].out);
		assert_non_null(valid_string(got));
		free(got);
	}
}

static void
test_buf(void **state)
{
	struct json_buf b = { NULL, 0, 0 };
	char *big = malloc(5000);

	(void)state;
	json_raw(&b, "{");
	json_key(&b, "a");
	json_int(&b, -12);
	json_key(&b, "b");
	json_raw(&b, "[");
	json_sep(&b);
	json_bool(&b, true);
	json_sep(&b);
	json_str(&b, NULL);
	json_raw(&b, "]");
	json_key(&b, "c");
	json_raw(&b, "{}");
	json_raw(&b, "}");
	assert_string_equal(b.s, "{\"a\":-12,\"b\":[true,null],\"c\":{}}");
	json_buf_free(&b);
	assert_null(b.s);

	/* Growth: 5000 bytes escaped to 6 each. */
	memset(big, 0x01, 4999);
	big[4999] = '\0';
	json_str(&b, big);
	assert_int_equal(b.len, 4999 * 6 + 2);
	assert_int_equal(strlen(b.s), b.len);
	json_buf_free(&b);
	free(big);
}

/* A delivery record's fields, as delivery_sess.c gives them. */
#define DELIVERY_FIELDS(addr, reply) { \
	{ "to", "to=<%s>", RECORD_STR, addr, 0 }, \
	{ "relay", ", relay=%s", RECORD_STR, "mx.example[192.0.2.1]:25", 0 }, \
	{ "tls", ", tls=%s", RECORD_STR, "TLSv1.3/verified", 0 }, \
	{ "delay", ", delay=%ss", RECORD_NUM, NULL, 42 }, \
	{ "dsn", ", dsn=%s", RECORD_STR, "2.0.0", 0 }, \
	{ "status", ", status=%s", RECORD_STR, "sent", 0 }, \
	{ "reply", " (%s)", RECORD_PEER, reply, 0 }, \
}

static void
test_delivery_record(void **state)
{
	const struct record_field f[] = DELIVERY_FIELDS("rcpt@example.org",
	    "250 2.0.0 \"queued\" as \\x\r\n");
	const char *id = "0123456789abcdef0123";
	char buf[RECORD_LINE_MAX];
	size_t n;

	(void)state;
	n = record_to_text(RECORD_TEXT, buf, sizeof(buf), id, f,
	    sizeof(f) / sizeof(f[0]));
	assert_string_equal(buf, "0123456789abcdef0123: to=<rcpt@example.org>, "
	    "relay=mx.example[192.0.2.1]:25, tls=TLSv1.3/verified, delay=42s, "
	    "dsn=2.0.0, status=sent (250 2.0.0 \"queued\" as "
	    "\\x5cx\\x0d\\x0a)");
	assert_int_equal(n, strlen(buf));

	n = record_to_text(RECORD_JSON, buf, sizeof(buf), id, f,
	    sizeof(f) / sizeof(f[0]));
	assert_string_equal(buf, "{\"id\":\"0123456789abcdef0123\","
	    "\"to\":\"rcpt@example.org\","
	    "\"relay\":\"mx.example[192.0.2.1]:25\","
	    "\"tls\":\"TLSv1.3/verified\",\"delay\":42,\"dsn\":\"2.0.0\","
	    "\"status\":\"sent\",\"reply\":\"250 2.0.0 \\\"queued\\\" as "
	    "\\\\x\\r\\n\"}");
	assert_int_equal(n, strlen(buf));
	assert_true(valid_object(buf));

	/* A NULL string is empty in both; a template without %s. */
	{
		const struct record_field g[] = {
			{ "event", "%s", RECORD_STR, "notice", 0 },
			{ "x", ": %s", RECORD_STR, NULL, 0 },
			{ "n", " (%s recipients)", RECORD_NUM, NULL, -3 },
			{ "lit", " done", RECORD_STR, "v", 0 },
		};

		record_to_text(RECORD_TEXT, buf, sizeof(buf), "-", g, 4);
		assert_string_equal(buf, "-: notice:  (-3 recipients) done");
		record_to_text(RECORD_JSON, buf, sizeof(buf), "-", g, 4);
		assert_string_equal(buf, "{\"id\":\"-\",\"event\":\"notice\","
		    "\"x\":\"\",\"n\":-3,\"lit\":\"v\"}");
	}
}

static void
test_format_setting(void **state)
{
	const struct record_field f[] = DELIVERY_FIELDS("a@b.example", "ok");
	enum record_format fmt;

	(void)state;
	assert_int_equal(record_get_format(), RECORD_TEXT);	/* default */
	assert_int_equal(record_format_parse("JSON", &fmt), 0);
	assert_int_equal(fmt, RECORD_JSON);
	assert_int_equal(record_format_parse("text", &fmt), 0);
	assert_int_equal(fmt, RECORD_TEXT);
	assert_int_equal(record_format_parse("yaml", &fmt), -1);
	assert_int_equal(record_format_parse("", &fmt), -1);

	mock_log_clear();
	record_log("ID1", f, sizeof(f) / sizeof(f[0]));
	record_set_format(RECORD_JSON);
	assert_int_equal(record_get_format(), RECORD_JSON);
	record_log("ID2", f, sizeof(f) / sizeof(f[0]));
	record_set_format(RECORD_TEXT);
	assert_int_equal(mock_log_count(), 2);
	assert_non_null(strstr(mock_log_line(0), "ID1: to=<a@b.example>, "));
	assert_non_null(strstr(mock_log_line(1),
	    "{\"id\":\"ID2\",\"to\":\"a@b.example\","));
}

/* Long replies: the line is cut at the limit and stays valid JSON. */
static void
test_cut(void **state)
{
	static const char fills[] = { 'a', 0x01, '"', (char)0xe9 };
	static const char *const multi[] = {
		"\xe2\x82\xac", "\xf0\x9f\x93\xa7"
	};
	char reply[4000], buf[RECORD_LINE_MAX];
	size_t n;

	(void)state;
	for (size_t k = 0; k < sizeof(fills) + 2; k++) {
		if (k < sizeof(fills)) {
			memset(reply, fills[k], sizeof(reply) - 1);
			reply[sizeof(reply) - 1] = '\0';
		} else {
			const char *m = multi[k - sizeof(fills)];
			size_t ml = strlen(m), o = 0;

			while (o + ml < sizeof(reply))
				memcpy(reply + o, m, ml), o += ml;
			reply[o] = '\0';
		}
		const struct record_field f[] = DELIVERY_FIELDS("a@b.example",
		    reply);

		n = record_to_text(RECORD_JSON, buf, sizeof(buf), "ID", f,
		    sizeof(f) / sizeof(f[0]));
		assert_int_equal(n, strlen(buf));
		assert_true(n <= sizeof(buf) - 1);
		assert_true(n > sizeof(buf) - 1 - 32);	/* cut late */
		if (!valid_object(buf))
			fail_msg("fill %zu: not JSON: %s", k, buf);
		assert_non_null(strstr(buf, ",\"truncated\":true}"));
		assert_non_null(strstr(buf, "\"status\":\"sent\""));

		n = record_to_text(RECORD_TEXT, buf, sizeof(buf), "ID", f,
		    sizeof(f) / sizeof(f[0]));
		assert_int_equal(n, sizeof(buf) - 1);
		assert_int_equal(strlen(buf), n);
	}

	/* Fields that no longer fit are left out, the object still closes. */
	{
		const struct record_field g[] = {
			{ "reply", " (%s)", RECORD_PEER, reply, 0 },
			{ "status", ", status=%s", RECORD_STR, "sent", 0 },
			{ "delay", ", delay=%ss", RECORD_NUM, NULL, 7 },
		};

		memset(reply, 'x', sizeof(reply) - 1);
		reply[sizeof(reply) - 1] = '\0';
		n = record_to_text(RECORD_JSON, buf, sizeof(buf), "ID", g, 3);
		assert_true(valid_object(buf));
		assert_null(strstr(buf, "status"));
		assert_non_null(strstr(buf, ",\"truncated\":true}"));
		/* A small buffer: JSON or nothing. */
		for (size_t len = 1; len < 64; len++) {
			char small[64];

			n = record_to_text(RECORD_JSON, small, len, "ID", g, 3);
			assert_int_equal(n, strlen(small));
			assert_true(n < len);
			assert_true(n == 0 || valid_object(small));
			record_to_text(RECORD_TEXT, small, len, "ID", g, 3);
			assert_true(strlen(small) < len);
		}
	}
}

/* Random bytes in every string field: always one valid JSON object. */
static void
test_random(void **state)
{
	static const char lead[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f";
	char to[64], relay[64], reply[1200], id[24], buf[RECORD_LINE_MAX];

	(void)state;
	srandom(12);
	for (int round = 0; round < 3000; round++) {
		char *s[] = { to, relay, reply, id };
		size_t len[] = { sizeof(to), sizeof(relay), sizeof(reply),
		    sizeof(id) };

		for (size_t k = 0; k < 4; k++) {
			size_t n = (size_t)random() % len[k];

			for (size_t i = 0; i < n; i++) {
				/* Mostly ASCII, some UTF-8 lead bytes. */
				int r = (int)(random() % 8);

				s[k][i] = r < 4 ? (char)(random() % 128) :
				    r < 6 ? (char)(0x80 + random() % 128) :
				    lead[random() % 7];
				if (s[k][i] == '\0')
					s[k][i] = ' ';
			}
			s[k][n] = '\0';
		}
		const struct record_field f[] = {
			{ "to", "to=<%s>", RECORD_STR, to, 0 },
			{ "relay", ", relay=%s", RECORD_STR, relay, 0 },
			{ "delay", ", delay=%ss", RECORD_NUM, NULL, random() },
			{ "reply", " (%s)", RECORD_PEER, reply, 0 },
		};

		record_to_text(RECORD_JSON, buf, sizeof(buf), id, f, 4);
		if (!valid_object(buf))
			fail_msg("round %d: not JSON: %s", round, buf);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape_table),
		cmocka_unit_test(test_buf),
		cmocka_unit_test(test_delivery_record),
		cmocka_unit_test(test_format_setting),
		cmocka_unit_test(test_cut),
		cmocka_unit_test(test_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
