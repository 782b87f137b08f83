/*
 * record: delivery records as text or JSON from one list of fields
 * (record.h).  Formatting is pure; record_log() hands the line to log.c.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "log.h"
#include "record.h"
#include "util.h"

/* What a cut JSON record ends with; room for it is kept. */
#define RECORD_CUT	",\"truncated\":true"

static enum record_format record_fmt = RECORD_TEXT;

/* A bounded line: at most cap bytes, then a NUL. */
struct line {
	char	*buf;
	size_t	 len;
	size_t	 cap;
	bool	 cut;
};

int
record_format_parse(const char *s, enum record_format *f)
{
	if (strcasecmp(s, "text") == 0)
		*f = RECORD_TEXT;
	else if (strcasecmp(s, "json") == 0)
		*f = RECORD_JSON;
	else
		return -1;
	return 0;
}

void
record_set_format(enum record_format f)
{
	record_fmt = f;
}

enum record_format
record_get_format(void)
{
	return record_fmt;
}

static void
line_put(struct line *l, const char *p, size_t n)
{
	if (n > l->cap - l->len) {
		n = l->cap - l->len;
		l->cut = true;
	}
	memcpy(l->buf + l->len, p, n);
	l->len += n;
	l->buf[l->len] = '\0';
}

/*
 * Text.
 */

static void
text_field(struct line *l, const struct record_field *f)
{
	char value[RECORD_LINE_MAX];
	const char *t, *v = f->str != NULL ? f->str : "";

	if (f->kind == RECORD_NUM) {
		snprintf(value, sizeof(value), "%lld", f->num);
		v = value;
	} else if (f->kind == RECORD_PEER)
		v = util_escape(value, sizeof(value), v);
	for (t = f->text; *t != '\0'; ) {
		const char *ph = strstr(t, "%s");

		if (ph == NULL) {
			line_put(l, t, strlen(t));
			break;
		}
		line_put(l, t, (size_t)(ph - t));
		line_put(l, v, strlen(v));
		t = ph + 2;
	}
}

/*
 * JSON.  Everything but the closing brace stays under limit, which keeps
 * room for RECORD_CUT and "}".
 */

/*
 * s as a JSON string, shortened to end below limit (the caller saw to
 * room for the two quotes).
 */
static void
json_put_str(struct line *l, const char *s, size_t limit)
{
	char unit[JSON_UNIT_MAX];
	size_t n, used, ulen;

	line_put(l, "\"", 1);
	for (n = strlen(s); n > 0; s += used, n -= used) {
		ulen = json_escape_unit(s, n, unit, &used);
		if (l->len + ulen + 1 > limit) {
			l->cut = true;
			break;
		}
		line_put(l, unit, ulen);
	}
	line_put(l, "\"", 1);
}

/* ,"key":value; false (nothing written) when even the key does not fit. */
static bool
json_field(struct line *l, const char *key, const struct record_field *f,
    const char *str, size_t limit)
{
	char num[32];
	size_t need;

	num[0] = '\0';
	if (f != NULL && f->kind == RECORD_NUM)
		snprintf(num, sizeof(num), "%lld", f->num);
	/* Keys are ours: ASCII without anything to escape. */
	need = 1 + strlen(key) + 3 + (num[0] != '\0' ? strlen(num) : 2);
	if (l->len + need > limit) {
		l->cut = true;
		return false;
	}
	if (l->len > 1)
		line_put(l, ",", 1);
	json_put_str(l, key, limit);
	line_put(l, ":", 1);
	if (num[0] != '\0')
		line_put(l, num, strlen(num));
	else
		json_put_str(l, str != NULL ? str : "", limit);
	return true;
}

size_t
record_to_text(enum record_format fmt, char *buf, size_t len, const char *id,
    const struct record_field *fields, size_t n)
{
	struct line l = { buf, 0, len - 1, false };
	size_t limit;

	buf[0] = '\0';
	if (fmt == RECORD_TEXT) {
		line_put(&l, id, strlen(id));
		line_put(&l, ": ", 2);
		for (size_t i = 0; i < n; i++)
			text_field(&l, &fields[i]);
		return l.len;
	}
	if (l.cap < sizeof(RECORD_CUT) + 16)
		return 0;	/* no room for any JSON */
	limit = l.cap - (sizeof(RECORD_CUT) - 1) - 1;
	line_put(&l, "{", 1);
	if (json_field(&l, "id", NULL, id, limit))
		for (size_t i = 0; i < n; i++)
			if (!json_field(&l, fields[i].key, &fields[i],
			    fields[i].str, limit))
				break;
	if (l.cut)	/* without its comma after "{" alone */
		line_put(&l, RECORD_CUT + (l.len == 1),
		    sizeof(RECORD_CUT) - 1 - (l.len == 1));
	line_put(&l, "}", 1);
	return l.len;
}

void
record_log(const char *id, const struct record_field *fields, size_t n)
{
	char buf[RECORD_LINE_MAX];

	record_to_text(record_fmt, buf, sizeof(buf), id, fields, n);
	log_info("%s", buf);
}
