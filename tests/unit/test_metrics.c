/*
 * test_metrics: src/metrics.c.  The rendered text of each kind of family
 * (counters with and without labels, gauges, the histogram's cumulative
 * buckets, _sum and _count), label escaping, the cap on distinct domains
 * and on series per family.
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

#include "metrics.h"
#include "mock_log.h"
#include "util.h"

static int
reset(void **state)
{
	(void)state;
	metrics_reset();
	return 0;
}

/* The text holds this exact line. */
static bool
has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return true;
	return false;
}

static void
check_lines(const char *const *lines)
{
	char *text = metrics_render(NULL);

	for (size_t i = 0; lines[i] != NULL; i++)
		if (!has_line(text, lines[i])) {
			print_error("missing line: %s\nin:\n%s\n", lines[i],
			    text);
			fail();
		}
	free(text);
}

static void
test_empty(void **state)
{
	static const char *const lines[] = {
		/* every family has HELP and TYPE */
		"# TYPE mxrelay_recipients_total counter",
		"# TYPE mxrelay_delivery_delay_seconds histogram",
		"# TYPE mxrelay_queue_messages gauge",
		"# TYPE mxrelay_tls_sessions_total counter",
		/* an unlabelled family is 0 before anything happened */
		"mxrelay_smtp_connections_total 0",
		"mxrelay_smtpd_auth_failures_total 0",
		"mxrelay_queue_messages 0",
		"mxrelay_delivery_delay_seconds_bucket{le=\"+Inf\"} 0",
		"mxrelay_delivery_delay_seconds_count 0",
		NULL,
	};
	char *text;
	size_t len;

	(void)state;
	check_lines(lines);
	text = metrics_render(&len);
	assert_int_equal(len, strlen(text));
	/* the format wants a newline at the end of the last line */
	assert_true(len > 0 && text[len - 1] == '\n');
	/* a labelled family without series has no sample line */
	assert_null(strstr(text, "mxrelay_recipients_total{"));
	free(text);
}

static void
test_counters(void **state)
{
	static const char *const lines[] = {
		"mxrelay_recipients_total{domain=\"example.org\","
		    "result=\"sent\",tls=\"verified\"} 2",
		"mxrelay_recipients_total{domain=\"example.org\","
		    "result=\"deferred\",tls=\"none\"} 1",
		"mxrelay_dns_lookups_total{type=\"MX\",result=\"ok\"} 3",
		"mxrelay_smtp_connections_total 1",
		"mxrelay_smtp_connection_failures_total{reason=\"tls\"} 0.5",
		"mxrelay_tls_sessions_total{domain=\"example.org\","
		    "policy=\"tlsa\",result=\"success\"} 2",
		"mxrelay_tls_sessions_total{domain=\"example.org\","
		    "policy=\"sts\",result=\"sts-policy-fetch-error\"} 1",
		NULL,
	};

	(void)state;
	metrics_inc(METRIC_RCPT, (const char *[]){ "example.org", "sent",
	    "verified" });
	metrics_inc(METRIC_RCPT, (const char *[]){ "example.org", "deferred",
	    "none" });
	metrics_inc(METRIC_RCPT, (const char *[]){ "example.org", "sent",
	    "verified" });
	for (int i = 0; i < 3; i++)
		metrics_inc(METRIC_DNS, (const char *[]){ "MX", "ok" });
	metrics_inc(METRIC_CONN, NULL);
	metrics_add(METRIC_CONN_FAIL, (const char *[]){ "tls" }, 0.5);
	for (int i = 0; i < 2; i++)
		metrics_inc(METRIC_TLSRPT, (const char *[]){ "example.org",
		    "tlsa", "success" });
	metrics_inc(METRIC_TLSRPT, (const char *[]){ "example.org", "sts",
	    "sts-policy-fetch-error" });
	/* a counter never goes down */
	metrics_add(METRIC_CONN, NULL, -1);
	/* the wrong kind of update for a family is ignored */
	metrics_set(METRIC_CONN, NULL, 7);
	metrics_observe(METRIC_CONN, NULL, 7);
	check_lines(lines);
}

static void
test_gauges(void **state)
{
	static const char *const lines[] = {
		"mxrelay_queue_messages 3",
		"mxrelay_queue_oldest_message_age_seconds 86400",
		"mxrelay_queue_deferred_recipients 0",
		NULL,
	};

	(void)state;
	metrics_set(METRIC_QUEUE_MSGS, NULL, 10);
	metrics_set(METRIC_QUEUE_MSGS, NULL, 3);	/* a gauge is set */
	metrics_set(METRIC_QUEUE_OLDEST, NULL, 86400);
	metrics_set(METRIC_QUEUE_DEFERRED, NULL, 0);
	metrics_inc(METRIC_QUEUE_MSGS, NULL);		/* not a counter */
	check_lines(lines);
}

static void
test_histogram(void **state)
{
	/* 0.5 and 1 in le=1 (le is "less or equal"), 10 in 15, 1e6 only in +Inf */
	static const char *const lines[] = {
		"mxrelay_delivery_delay_seconds_bucket{le=\"1\"} 2",
		"mxrelay_delivery_delay_seconds_bucket{le=\"5\"} 2",
		"mxrelay_delivery_delay_seconds_bucket{le=\"15\"} 3",
		"mxrelay_delivery_delay_seconds_bucket{le=\"60\"} 3",
		"mxrelay_delivery_delay_seconds_bucket{le=\"300\"} 3",
		"mxrelay_delivery_delay_seconds_bucket{le=\"900\"} 3",
		"mxrelay_delivery_delay_seconds_bucket{le=\"3600\"} 3",
		"mxrelay_delivery_delay_seconds_bucket{le=\"14400\"} 3",
		"mxrelay_delivery_delay_seconds_bucket{le=\"86400\"} 3",
		"mxrelay_delivery_delay_seconds_bucket{le=\"+Inf\"} 4",
		"mxrelay_delivery_delay_seconds_sum 1000011.5",
		"mxrelay_delivery_delay_seconds_count 4",
		NULL,
	};

	(void)state;
	metrics_observe(METRIC_DELAY, NULL, 0.5);
	metrics_observe(METRIC_DELAY, NULL, 1);
	metrics_observe(METRIC_DELAY, NULL, 10);
	metrics_observe(METRIC_DELAY, NULL, 1e6);
	check_lines(lines);
}

static void
test_escape(void **state)
{
	static const char *const lines[] = {
		"mxrelay_smtpd_refusals_total{reason=\"a\\\"b\\\\c\\nd\"} 1",
		"mxrelay_smtpd_refusals_total{reason=\"\"} 1",
		NULL,
	};

	(void)state;
	metrics_inc(METRIC_SMTPD_REFUSED, (const char *[]){ "a\"b\\c\nd" });
	metrics_inc(METRIC_SMTPD_REFUSED, (const char *[]){ NULL });
	check_lines(lines);
}

static void
test_domains(void **state)
{
	char buf[METRICS_DOMAIN_LEN], name[64];
	const char *l;

	(void)state;
	assert_string_equal(metrics_domain("u@Example.ORG", buf, sizeof(buf)),
	    "example.org");
	assert_string_equal(metrics_domain("example.net", buf, sizeof(buf)),
	    "example.net");
	assert_string_equal(metrics_domain("a@b@x.example", buf, sizeof(buf)),
	    "x.example");
	assert_string_equal(metrics_domain("u@", buf, sizeof(buf)), "none");
	/* 3 seen so far; up to METRICS_DOMAINS_MAX in all */
	for (int i = 3; i < METRICS_DOMAINS_MAX; i++) {
		snprintf(name, sizeof(name), "u@d%d.example", i);
		l = metrics_domain(name, buf, sizeof(buf));
		assert_string_equal(l, name + 2);
	}
	assert_string_equal(metrics_domain("u@late.example", buf, sizeof(buf)),
	    "other");
	/* one seen before the cap keeps its label */
	assert_string_equal(metrics_domain("v@EXAMPLE.org", buf, sizeof(buf)),
	    "example.org");
	assert_string_equal(metrics_domain("u@d49.example", buf, sizeof(buf)),
	    "d49.example");
}

static void
test_series_cap(void **state)
{
	char reason[32], *text;

	(void)state;
	for (int i = 0; i < METRICS_SERIES_MAX + 5; i++) {
		snprintf(reason, sizeof(reason), "r%d", i);
		metrics_inc(METRIC_SMTPD_REFUSED, (const char *[]){ reason });
	}
	/* old series still count */
	metrics_inc(METRIC_SMTPD_REFUSED, (const char *[]){ "r0" });
	text = metrics_render(NULL);
	assert_true(has_line(text, "mxrelay_smtpd_refusals_total{reason=\"r0\"} 2"));
	assert_true(has_line(text, "mxrelay_smtpd_refusals_total{reason=\"r1023\"} 1"));
	assert_null(strstr(text, "reason=\"r1024\""));
	assert_true(has_line(text, "mxrelay_metrics_dropped_series_total 5"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_empty, reset),
		cmocka_unit_test_setup(test_counters, reset),
		cmocka_unit_test_setup(test_gauges, reset),
		cmocka_unit_test_setup(test_histogram, reset),
		cmocka_unit_test_setup(test_escape, reset),
		cmocka_unit_test_setup(test_domains, reset),
		cmocka_unit_test_setup(test_series_cap, reset),
	};

	return cmocka_run_group_tests(tests, NULL, reset);
}
