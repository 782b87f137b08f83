/*
 * metrics: one registry of fixed families, each a list of series found
 * by their label values (a short linear walk: the families are small and
 * bounded by METRICS_SERIES_MAX), and the text format 0.0.4.  See
 * metrics.h.
 */
#include "config.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

enum metric_type {
	METRIC_COUNTER,
	METRIC_GAUGE,
	METRIC_HISTOGRAM,
};

struct metric_def {
	const char		*name;
	enum metric_type	 type;
	const char		*help;
	const char		*labels[METRICS_LABELS_MAX];	/* NULL-ended */
};

/* Delivery delays: a second to a day, as mail goes. */
static const double delay_buckets[] = {
	1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400,
};
#define NBUCKETS	(sizeof(delay_buckets) / sizeof(delay_buckets[0]))

static const struct metric_def defs[METRIC_COUNT] = {
	[METRIC_RCPT] = { "mxrelay_recipients_total", METRIC_COUNTER,
	    "Delivery attempts ended per recipient, by destination domain, "
	    "result (sent, deferred, bounced) and TLS use (none, unverified, "
	    "verified, sts, dane).", { "domain", "result", "tls" } },
	[METRIC_MSG] = { "mxrelay_messages_total", METRIC_COUNTER,
	    "Messages done and removed from the queue, by result (sent: "
	    "every recipient delivered; bounced: at least one was not).",
	    { "result" } },
	[METRIC_DELAY] = { "mxrelay_delivery_delay_seconds",
	    METRIC_HISTOGRAM,
	    "Time from queueing to delivery of each recipient sent.", { 0 } },
	[METRIC_CONN] = { "mxrelay_smtp_connections_total", METRIC_COUNTER,
	    "Outbound SMTP connections attempted.", { 0 } },
	[METRIC_CONN_FAIL] = { "mxrelay_smtp_connection_failures_total",
	    METRIC_COUNTER,
	    "Outbound SMTP connections that failed before the session was "
	    "up, by reason.", { "reason" } },
	[METRIC_DNS] = { "mxrelay_dns_lookups_total", METRIC_COUNTER,
	    "DNS lookups sent, by record type and result.",
	    { "type", "result" } },
	[METRIC_SMTPD_CONN] = { "mxrelay_smtpd_connections_total",
	    METRIC_COUNTER, "Connections accepted by the SMTP listener.",
	    { 0 } },
	[METRIC_SMTPD_REFUSED] = { "mxrelay_smtpd_refusals_total",
	    METRIC_COUNTER,
	    "SMTP listener connections refused or closed by the listener, "
	    "by reason.", { "reason" } },
	[METRIC_SMTPD_AUTHFAIL] = { "mxrelay_smtpd_auth_failures_total",
	    METRIC_COUNTER, "Failed AUTH attempts on the SMTP listener.",
	    { 0 } },
	[METRIC_QUEUE_MSGS] = { "mxrelay_queue_messages", METRIC_GAUGE,
	    "Messages in the queue.", { 0 } },
	[METRIC_QUEUE_OLDEST] = { "mxrelay_queue_oldest_message_age_seconds",
	    METRIC_GAUGE, "Age of the oldest message in the queue (0 when "
	    "empty).", { 0 } },
	[METRIC_QUEUE_DEFERRED] = { "mxrelay_queue_deferred_recipients",
	    METRIC_GAUGE, "Recipients in the queue that were tried and "
	    "deferred.", { 0 } },
	[METRIC_TLSRPT] = { "mxrelay_tls_sessions_total", METRIC_COUNTER,
	    "Outbound sessions that asked for TLS, and failures of TLS "
	    "policies, by destination domain, policy (tlsa, sts, "
	    "no-policy-found) and result (success, or an RFC 8460 failure "
	    "type).", { "domain", "policy", "result" } },
	[METRIC_DROPPED] = { "mxrelay_metrics_dropped_series_total",
	    METRIC_COUNTER, "Updates not counted because their family "
	    "already had the most series kept.", { 0 } },
};

struct series {
	char		*labels[METRICS_LABELS_MAX];
	double		 value;		/* counter, gauge; histogram: sum */
	double		 count;		/* histogram */
	double		 bucket[NBUCKETS];	/* histogram, not cumulative */
	struct series	*next;
};

struct family {
	struct series	*head, **tail;
	size_t		 n;
};

struct domain_seen {
	char		 name[METRICS_DOMAIN_LEN];
};

static struct family	 fams[METRIC_COUNT];
static struct domain_seen domains[METRICS_DOMAINS_MAX];
static size_t		 ndomains;

struct buf {
	char	*p;
	size_t	 len, cap;
};

static size_t	 nlabels(enum metric_id);
static struct series *series_get(enum metric_id, const char *const *);
static void	 buf_printf(struct buf *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 buf_escape(struct buf *, const char *, bool);
static void	 buf_value(struct buf *, double);
static void	 render_labels(struct buf *, enum metric_id,
		    const struct series *, const char *le);
static void	 render_family(struct buf *, enum metric_id);

static size_t
nlabels(enum metric_id id)
{
	size_t n = 0;

	while (n < METRICS_LABELS_MAX && defs[id].labels[n] != NULL)
		n++;
	return n;
}

static struct series *
series_get(enum metric_id id, const char *const *labels)
{
	struct family *f = &fams[id];
	struct series *s;
	size_t nl = nlabels(id), i;

	if (f->tail == NULL)
		f->tail = &f->head;
	for (s = f->head; s != NULL; s = s->next) {
		for (i = 0; i < nl; i++)
			if (strcmp(s->labels[i], labels[i] != NULL ?
			    labels[i] : "") != 0)
				break;
		if (i == nl)
			return s;
	}
	if (f->n >= METRICS_SERIES_MAX) {
		if (id != METRIC_DROPPED)
			metrics_inc(METRIC_DROPPED, NULL);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	for (i = 0; i < nl; i++)
		s->labels[i] = xstrdup(labels[i] != NULL ? labels[i] : "");
	*f->tail = s;
	f->tail = &s->next;
	f->n++;
	return s;
}

void
metrics_add(enum metric_id id, const char *const *labels, double v)
{
	struct series *s;

	if (id >= METRIC_COUNT || defs[id].type != METRIC_COUNTER || v < 0)
		return;
	if ((s = series_get(id, labels)) != NULL)
		s->value += v;
}

void
metrics_inc(enum metric_id id, const char *const *labels)
{
	metrics_add(id, labels, 1);
}

void
metrics_inc1(enum metric_id id, const char *label)
{
	metrics_add(id, &label, 1);
}

void
metrics_rcpt(const char *addr, const char *result, const char *tls)
{
	char buf[METRICS_DOMAIN_LEN];

	metrics_inc(METRIC_RCPT, (const char *[]){
	    metrics_domain(addr, buf, sizeof(buf)), result,
	    tls != NULL ? tls : "none" });
}

void
metrics_set(enum metric_id id, const char *const *labels, double v)
{
	struct series *s;

	if (id >= METRIC_COUNT || defs[id].type != METRIC_GAUGE)
		return;
	if ((s = series_get(id, labels)) != NULL)
		s->value = v;
}

void
metrics_observe(enum metric_id id, const char *const *labels, double v)
{
	struct series *s;
	size_t i;

	if (id >= METRIC_COUNT || defs[id].type != METRIC_HISTOGRAM ||
	    isnan(v))
		return;
	if ((s = series_get(id, labels)) == NULL)
		return;
	s->value += v;
	s->count++;
	for (i = 0; i < NBUCKETS; i++)
		if (v <= delay_buckets[i]) {
			s->bucket[i]++;
			break;
		}
}

const char *
metrics_domain(const char *addr, char *buf, size_t len)
{
	const char *at = strrchr(addr, '@');
	size_t i;

	if (len == 0)
		return "other";
	util_strlcpy(buf, at != NULL ? at + 1 : addr, len);
	for (i = 0; buf[i] != '\0'; i++)
		buf[i] = (char)tolower((unsigned char)buf[i]);
	if (buf[0] == '\0')
		return "none";
	for (i = 0; i < ndomains; i++)
		if (strcmp(domains[i].name, buf) == 0)
			return buf;
	if (ndomains == METRICS_DOMAINS_MAX ||
	    strlen(buf) >= sizeof(domains[0].name))
		return "other";
	util_strlcpy(domains[ndomains++].name, buf, sizeof(domains[0].name));
	return buf;
}

static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)n + 1;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
}

/* Label values escape \, " and newline; HELP text \ and newline. */
static void
buf_escape(struct buf *b, const char *s, bool quote)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			buf_printf(b, "\\\\");
		else if (*s == '\n')
			buf_printf(b, "\\n");
		else if (*s == '"' && quote)
			buf_printf(b, "\\\"");
		else
			buf_printf(b, "%c", *s);
	}
}

/* Whole numbers without a fraction or exponent, as people read them. */
static void
buf_value(struct buf *b, double v)
{
	if (isinf(v))
		buf_printf(b, v > 0 ? "+Inf" : "-Inf");
	else if (isnan(v))
		buf_printf(b, "NaN");
	else if (v > -9007199254740992.0 && v < 9007199254740992.0 &&
	    v == (double)(long long)v)
		buf_printf(b, "%lld", (long long)v);
	else
		buf_printf(b, "%.17g", v);
}

static void
render_labels(struct buf *b, enum metric_id id, const struct series *s,
    const char *le)
{
	size_t nl = nlabels(id);

	if (nl == 0 && le == NULL)
		return;
	buf_printf(b, "{");
	for (size_t i = 0; i < nl; i++) {
		buf_printf(b, "%s%s=\"", i > 0 ? "," : "", defs[id].labels[i]);
		buf_escape(b, s->labels[i], true);
		buf_printf(b, "\"");
	}
	if (le != NULL)
		buf_printf(b, "%sle=\"%s\"", nl > 0 ? "," : "", le);
	buf_printf(b, "}");
}

static void
render_family(struct buf *b, enum metric_id id)
{
	const struct metric_def *d = &defs[id];
	static const char *types[] = { "counter", "gauge", "histogram" };
	const struct series *s;
	char le[32];

	/* An unlabelled family always has its one series, at 0. */
	if (nlabels(id) == 0 && fams[id].head == NULL)
		(void)series_get(id, NULL);
	buf_printf(b, "# HELP %s ", d->name);
	buf_escape(b, d->help, false);
	buf_printf(b, "\n# TYPE %s %s\n", d->name, types[d->type]);
	for (s = fams[id].head; s != NULL; s = s->next) {
		if (d->type != METRIC_HISTOGRAM) {
			buf_printf(b, "%s", d->name);
			render_labels(b, id, s, NULL);
			buf_printf(b, " ");
			buf_value(b, s->value);
			buf_printf(b, "\n");
			continue;
		}
		double cum = 0;

		for (size_t i = 0; i < NBUCKETS; i++) {
			cum += s->bucket[i];
			snprintf(le, sizeof(le), "%g", delay_buckets[i]);
			buf_printf(b, "%s_bucket", d->name);
			render_labels(b, id, s, le);
			buf_printf(b, " ");
			buf_value(b, cum);
			buf_printf(b, "\n");
		}
		buf_printf(b, "%s_bucket", d->name);
		render_labels(b, id, s, "+Inf");
		buf_printf(b, " ");
		buf_value(b, s->count);
		buf_printf(b, "\n%s_sum", d->name);
		render_labels(b, id, s, NULL);
		buf_printf(b, " ");
		buf_value(b, s->value);
		buf_printf(b, "\n%s_count", d->name);
		render_labels(b, id, s, NULL);
		buf_printf(b, " ");
		buf_value(b, s->count);
		buf_printf(b, "\n");
	}
}

char *
metrics_render(size_t *len)
{
	struct buf b = { xmalloc(4096), 0, 4096 };

	b.p[0] = '\0';
	for (enum metric_id id = 0; id < METRIC_COUNT; id++)
		render_family(&b, id);
	if (len != NULL)
		*len = b.len;
	return b.p;
}

void
metrics_reset(void)
{
	for (enum metric_id id = 0; id < METRIC_COUNT; id++) {
		struct series *s, *next;

		for (s = fams[id].head; s != NULL; s = next) {
			next = s->next;
			for (size_t i = 0; i < METRICS_LABELS_MAX; i++)
				free(s->labels[i]);
			free(s);
		}
		fams[id].head = NULL;
		fams[id].tail = &fams[id].head;
		fams[id].n = 0;
	}
	ndomains = 0;
}
