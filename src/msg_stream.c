/*
 * msg_stream: the header section of a message streaming in (see
 * msg_stream.h).
 *
 * One pass, octet by octet, with the state of the current line:
 *	LINE	at the start of a line, nothing of it seen
 *	NAME	a line that may be a header field: its octets so far are
 *		all field-name characters, held back until the ':' (a
 *		field) or another character (the header section ended at
 *		the start of this line) says where the added fields go
 *	FIELD	the rest of a field's line, up to its LF
 *	BODY	past the header section: everything goes straight out
 * Everything not held is written in runs, as it came.  Field names are
 * those of msg_headers_fix() (message.c): printable ASCII but ':', then
 * ':' at once.
 */
#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "msg_stream.h"
#include "util.h"

enum {
	ST_LINE,
	ST_NAME,
	ST_FIELD,
	ST_BODY,
};

static void	 put(struct msg_stream *, const char *, size_t);
static void	 stream_fields(struct msg_stream *);
static void	 stream_ended(struct msg_stream *, bool);
static void	 name_done(struct msg_stream *);

void
msg_stream_init(struct msg_stream *m, bool add, const char *hostname,
    const char *queue_id, time_t now, msg_stream_write write, void *arg)
{
	memset(m, 0, sizeof(*m));
	m->add = add;
	if (add)
		snprintf(m->msgid, sizeof(m->msgid), "<%s@%s>", queue_id,
		    hostname);
	m->now = now;
	m->write = write;
	m->arg = arg;
	m->state = ST_LINE;
}

static void
put(struct msg_stream *m, const char *p, size_t n)
{
	if (n > 0)
		m->write(m->arg, p, n);
}

/* The fields that the header section lacks, when asked to add them. */
static void
stream_fields(struct msg_stream *m)
{
	char date[64], *f;

	if (!m->add)
		return;
	if (!m->has_date) {
		/* A local time that cannot be converted: say it in UTC. */
		if (util_date_rfc5322(m->now, false, date, sizeof(date)) == -1)
			(void)util_date_rfc5322(m->now, true, date,
			    sizeof(date));
		f = xasprintf("Date: %s\r\n", date);
		m->write(m->arg, f, strlen(f));
		free(f);
		m->added = true;
	}
	if (!m->has_msgid) {
		f = xasprintf("Message-ID: %s\r\n", m->msgid);
		m->write(m->arg, f, strlen(f));
		free(f);
		m->added = true;
	}
}

/*
 * The header section ended at the start of the current line (the held
 * octets are that line's): the fields, an empty line unless the line is
 * the empty one, then what was held.
 */
static void
stream_ended(struct msg_stream *m, bool blank)
{
	stream_fields(m);
	if (m->added && !blank)
		m->write(m->arg, "\r\n", 2);
	put(m, m->hold, m->nhold);
	m->nhold = 0;
	m->done = true;
	m->state = ST_BODY;
}

/* The held name ended with ':': a field; note the ones that matter. */
static void
name_done(struct msg_stream *m)
{
	if (m->nhold == 4 && strncasecmp(m->hold, "date", 4) == 0)
		m->has_date = true;
	else if (m->nhold == 10 && strncasecmp(m->hold, "message-id", 10) == 0)
		m->has_msgid = true;
	put(m, m->hold, m->nhold);
	m->nhold = 0;
	m->state = ST_FIELD;
}

void
msg_stream_feed(struct msg_stream *m, const char *buf, size_t len)
{
	size_t i, out = 0;	/* buf[out..i) is waiting to be written */

	for (i = 0; i < len && m->state != ST_BODY; i++) {
		unsigned char c = (unsigned char)buf[i];

		switch (m->state) {
		case ST_LINE:
			if (c == '\r' || c == '\n') {
				put(m, buf + out, i - out);
				out = i;
				stream_ended(m, true);
			} else if (c == ' ' || c == '\t') {
				if (!m->has_field) {
					put(m, buf + out, i - out);
					out = i;
					stream_ended(m, false);
				} else
					m->state = ST_FIELD;
			} else if (c > 32 && c < 127 && c != ':') {
				put(m, buf + out, i - out);
				m->hold[m->nhold++] = (char)c;
				out = i + 1;
				m->state = ST_NAME;
			} else {
				put(m, buf + out, i - out);
				out = i;
				stream_ended(m, false);
			}
			break;
		case ST_NAME:
			if (c == ':') {
				name_done(m);
				m->has_field = true;
				out = i;
			} else if (c > 32 && c < 127) {
				if (m->nhold == sizeof(m->hold)) {
					/* Too long to care: a field. */
					put(m, m->hold, m->nhold);
					m->nhold = 0;
					m->has_field = true;
					m->state = ST_FIELD;
					out = i;
				} else {
					m->hold[m->nhold++] = (char)c;
					out = i + 1;
				}
			} else {
				out = i;
				stream_ended(m, false);
			}
			break;
		case ST_FIELD:
			if (c >= 0x80)
				m->eightbit = true;
			else if (c == '\n')
				m->state = ST_LINE;
			break;
		}
	}
	if (m->state == ST_BODY)
		i = len;
	put(m, buf + out, i - out);
}

void
msg_stream_end(struct msg_stream *m)
{
	switch (m->state) {
	case ST_LINE:
		/* Only a header section: the fields go at its end. */
		stream_fields(m);
		m->done = true;
		m->state = ST_BODY;
		break;
	case ST_NAME:
		stream_ended(m, false);
		break;
	case ST_FIELD:
		/* A last line without its line end (not from the listener). */
		if (m->add && (!m->has_date || !m->has_msgid))
			m->write(m->arg, "\r\n", 2);
		stream_fields(m);
		m->done = true;
		m->state = ST_BODY;
		break;
	}
}
