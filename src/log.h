/*
 * log: one place that decides where messages go.  Programs call
 * log_init() once; before that, everything goes to stderr.
 *
 * log_warn() appends the text of errno; log_warnx() does not.  fatal() and
 * fatalx() log and exit(EX_SOFTWARE): only for start-up failures and broken
 * invariants, never on a path that network or spool input can reach.
 */
#ifndef MXRELAY_LOG_H
#define MXRELAY_LOG_H

#include <stdbool.h>

#define LOG_TO_STDERR	0x01
#define LOG_TO_SYSLOG	0x02

void	log_init(const char *ident, int where, int verbose);
int	log_verbosity(void);

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
