/*
 * record: the log's delivery records (one per recipient and outcome, and
 * one per non-delivery notification), formatted as text or as one JSON
 * object per line from the same list of fields, so that the two forms
 * cannot drift apart.  The other log lines are always text.
 *
 * Text: "ID: " then each field's text template with "%s" replaced by
 * the value ("to=<%s>", ", delay=%ss", " (%s)").  JSON: {"id":"ID"}
 * then "key":value for every field, in order: a string, or a number for
 * RECORD_NUM.  A line longer than RECORD_LINE_MAX - 1 is cut: text as
 * snprintf() cuts, JSON by shortening a string (never inside an escape
 * or a UTF-8 sequence) or leaving out the fields that no longer fit,
 * then "truncated":true, so that it stays valid JSON.
 *
 * The format is set once by the program (record_set_format()) from
 * log_format; the default is text.
 */
#ifndef MXRELAY_RECORD_H
#define MXRELAY_RECORD_H

#include <stddef.h>

#define RECORD_LINE_MAX	2048	/* what log.c writes as one line, with NUL */

enum record_format {
	RECORD_TEXT = 0,
	RECORD_JSON,
};

enum record_kind {
	RECORD_STR,	/* a string, as it is in text */
	RECORD_PEER,	/* a string a peer sent: \xNN-escaped in text */
	RECORD_NUM,	/* a number */
};

struct record_field {
	const char	*key;	/* the JSON name */
	const char	*text;	/* the text template; "%s" is the value */
	enum record_kind kind;
	const char	*str;	/* RECORD_STR, RECORD_PEER; NULL is "" */
	long long	 num;	/* RECORD_NUM */
};

/* "text" or "json" (any case): 0, else -1. */
int	 record_format_parse(const char *, enum record_format *);
void	 record_set_format(enum record_format);
enum record_format record_get_format(void);

/*
 * Formats a record for queue id id in format f into buf (len > 0 bytes,
 * always NUL-terminated).  Returns the length written.
 */
size_t	 record_to_text(enum record_format f, char *buf, size_t len,
	    const char *id, const struct record_field *, size_t nfields);
/* The record in the format set, logged with log_info(). */
void	 record_log(const char *id, const struct record_field *,
	    size_t nfields);

#endif
