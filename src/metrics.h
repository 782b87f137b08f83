/*
 * metrics: the daemon's counters, gauges and one histogram, rendered in
 * the Prometheus text exposition format 0.0.4 (# HELP, # TYPE, one line
 * per series).  One registry per process; the families are the fixed
 * table below (enum metric_id), each with its label names.  A series is
 * made the first time a set of label values is seen, at most
 * METRICS_SERIES_MAX per family (later ones are dropped, and counted in
 * mxrelay_metrics_dropped_series_total).
 *
 * No I/O, no clock: callers pass durations and values.  Allocation
 * failure is fatal (xmalloc).
 */
#ifndef MXRELAY_METRICS_H
#define MXRELAY_METRICS_H

#include <stddef.h>

#define METRICS_LABELS_MAX	3
#define METRICS_SERIES_MAX	1024
/* Distinct destination domains with a label of their own; then "other". */
#define METRICS_DOMAINS_MAX	50
#define METRICS_DOMAIN_LEN	256

enum metric_id {
	METRIC_RCPT,		/* recipients by domain, result, tls */
	METRIC_MSG,		/* messages done, by result */
	METRIC_DELAY,		/* delivery delay histogram */
	METRIC_CONN,		/* outbound connection attempts */
	METRIC_CONN_FAIL,	/* ... failed before the session was up */
	METRIC_DNS,		/* DNS lookups by type and result */
	METRIC_SMTPD_CONN,	/* listener: connections accepted */
	METRIC_SMTPD_REFUSED,	/* listener: connections refused, closed */
	METRIC_SMTPD_AUTHFAIL,	/* listener: failed AUTH */
	METRIC_QUEUE_MSGS,	/* gauge: messages queued */
	METRIC_QUEUE_OLDEST,	/* gauge: age of the oldest message */
	METRIC_QUEUE_DEFERRED,	/* gauge: deferred recipients */
	METRIC_TLSRPT,		/* TLS sessions by domain, policy, result */
	METRIC_DROPPED,		/* series not kept (METRICS_SERIES_MAX) */
	METRIC_COUNT
};

/*
 * labels: one value per label name of the family (NULL when it has
 * none), e.g. metrics_inc(METRIC_DNS, (const char *[]){ "MX", "ok" }).
 * A NULL value is written as "".
 */
void	 metrics_inc(enum metric_id, const char *const *labels);
/* A family with one label. */
void	 metrics_inc1(enum metric_id, const char *label);
void	 metrics_add(enum metric_id, const char *const *labels, double);
/* Gauges: the value now. */
void	 metrics_set(enum metric_id, const char *const *labels, double);
/* Histograms: one observation. */
void	 metrics_observe(enum metric_id, const char *const *labels, double);
/*
 * The label of a destination domain: the part after the last '@' of
 * addr (or all of it), lower case, into buf; "other" once
 * METRICS_DOMAINS_MAX other domains have been seen; "none" for empty.
 */
const char *metrics_domain(const char *addr, char *buf, size_t len);
/*
 * A recipient's attempt ended (mxrelay_recipients_total): result "sent",
 * "deferred" or "bounced"; tls "none", "unverified", "verified", "sts",
 * "dane" (NULL: "none").
 */
void	 metrics_rcpt(const char *addr, const char *result, const char *tls);
/* The whole text (allocated, NUL-ended); *len its length. */
char	*metrics_render(size_t *len);
/* Back to nothing counted (tests). */
void	 metrics_reset(void);

#endif
