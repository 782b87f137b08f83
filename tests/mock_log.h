/*
 * mock_log: a stand-in for src/log.c in unit tests.  It records every
 * line so that tests can assert on what was logged, and turns fatal() into
 * a cmocka failure.
 */
#ifndef MXRELAY_MOCK_LOG_H
#define MXRELAY_MOCK_LOG_H

#include <stddef.h>

size_t		 mock_log_count(void);
const char	*mock_log_line(size_t);	/* 0 = oldest kept */
int		 mock_log_contains(const char *substr);	/* 1 when any line has it */
void		 mock_log_clear(void);

#endif
