/*
 * spool_test: a seam for unit tests only.  Every system call of queue/spool*.c
 * that changes the spool (or can fail on a full disk) goes through this
 * table, so that tests can make each one fail in turn (ENOSPC, EIO, short
 * writes) or stop the process there to simulate a crash.  Programs never
 * include this header.
 */
#ifndef MXRELAY_SPOOL_TEST_H
#define MXRELAY_SPOOL_TEST_H

#include <sys/types.h>

struct queue_sysops {
	int	(*openat)(int, const char *, int, mode_t);
	ssize_t	(*write)(int, const void *, size_t);
	int	(*fsync)(int);
	int	(*close)(int);
	int	(*renameat)(int, const char *, int, const char *);
	int	(*unlinkat)(int, const char *, int);
	int	(*mkdirat)(int, const char *, mode_t);
};

/* The real calls (used unless a test installs its own). */
extern const struct queue_sysops queue_sysops_default;
/* Install ops (not copied; must outlive its use); NULL restores the default. */
void	 queue_test_set_sysops(const struct queue_sysops *);

#endif
