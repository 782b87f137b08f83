/*
 * mock_log: records log lines for unit tests; fatal() fails the test.
 */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "mock_log.h"

#define MOCK_LOG_KEEP	256

static char	*lines[MOCK_LOG_KEEP];
static size_t	 nlines;

static void	record(const char *, const char *, va_list)
		    __attribute__((format(printf, 2, 0)));

static void
record(const char *errtext, const char *fmt, va_list ap)
{
	char buf[2048];
	int n;

	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (errtext != NULL && n >= 0 && (size_t)n < sizeof(buf))
		snprintf(buf + n, sizeof(buf) - (size_t)n, ": %s", errtext);
	if (nlines == MOCK_LOG_KEEP) {
		free(lines[0]);
		memmove(lines, lines + 1, sizeof(lines[0]) * (MOCK_LOG_KEEP - 1));
		nlines--;
	}
	lines[nlines++] = strdup(buf);
}

void log_init(const char *ident, int where, int verbose) { (void)ident; (void)where; (void)verbose; }
int log_verbosity(void) { return 0; }

#define RECORD(errtext) do {			\
	va_list ap;				\
	va_start(ap, fmt);			\
	record((errtext), fmt, ap);		\
	va_end(ap);				\
} while (0)

void log_warn(const char *fmt, ...) { const char *e = strerror(errno); RECORD(e); }
void log_warnx(const char *fmt, ...) { RECORD(NULL); }
void log_info(const char *fmt, ...) { RECORD(NULL); }
void log_debug(const char *fmt, ...) { RECORD(NULL); }

void
fatal(const char *fmt, ...)
{
	RECORD(strerror(errno));
	fail_msg("fatal: %s", lines[nlines - 1]);
	abort();
}

void
fatalx(const char *fmt, ...)
{
	RECORD(NULL);
	fail_msg("fatalx: %s", lines[nlines - 1]);
	abort();
}

size_t mock_log_count(void) { return nlines; }
const char *mock_log_line(size_t i) { return i < nlines ? lines[i] : NULL; }

int
mock_log_contains(const char *s)
{
	for (size_t i = 0; i < nlines; i++)
		if (lines[i] != NULL && strstr(lines[i], s) != NULL)
			return 1;
	return 0;
}

void
mock_log_clear(void)
{
	for (size_t i = 0; i < nlines; i++)
		free(lines[i]);
	nlines = 0;
}
