/*
 * log: stderr and/or syslog (mail facility).  Lines written to stderr are
 * prefixed with the program name, like "mxrelay: ...".
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sysexits.h>

#include "log.h"

static const char	*log_ident = "mxrelay";
static int		 log_where = LOG_TO_STDERR;
static int		 log_verbose;

void
log_init(const char *ident, int where, int verbose)
{
	log_ident = ident;
	log_where = where;
	log_verbose = verbose;
	if (where & LOG_TO_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

int
log_verbosity(void)
{
	return log_verbose;
}

static void	log_vemit(int, const char *, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

static void
log_vemit(int pri, const char *errtext, const char *fmt, va_list ap)
{
	char buf[2048];
	bool to_stderr;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* On stderr, informational lines appear only with -v. */
	to_stderr = (log_where & LOG_TO_STDERR) &&
	    (pri < LOG_INFO || log_verbose >= (pri == LOG_INFO ? 1 : 2));
	if (to_stderr) {
		if (errtext != NULL)
			fprintf(stderr, "%s: %s: %s\n", log_ident, buf, errtext);
		else
			fprintf(stderr, "%s: %s\n", log_ident, buf);
	}
	if (log_where & LOG_TO_SYSLOG) {
		if (errtext != NULL)
			syslog(pri, "%s: %s", buf, errtext);
		else
			syslog(pri, "%s", buf);
	}
}

void
log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, e, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_WARNING, NULL, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_INFO, NULL, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_verbose < 2)
		return;
	va_start(ap, fmt);
	log_vemit(LOG_DEBUG, NULL, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	const char *e = strerror(errno);
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, e, fmt, ap);
	va_end(ap);
	exit(EX_SOFTWARE);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vemit(LOG_CRIT, NULL, fmt, ap);
	va_end(ap);
	exit(EX_SOFTWARE);
}
