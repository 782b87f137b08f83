/*
 * util: allocation helpers that never return NULL, bounded string copies,
 * a growable list of strings, and parsing of durations and sizes as they
 * appear in mxrelay.conf ("5m", "35M").
 */
#ifndef MXRELAY_UTIL_H
#define MXRELAY_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

/* Allocation failure is fatal: the spool makes a restart safe. */
void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
/* printf into a fresh allocation. */
char	*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

/*
 * Format an error text into err (errlen bytes, truncated); does nothing
 * when err is NULL or errlen is 0.  For "char *err, size_t errlen" out-
 * parameters.
 */
void	 util_seterr(char *err, size_t errlen, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * The next line of a text file whose parser reports "FILE:LINE: ..."
 * errors.  Bumps *lineno.  Returns the line's length, line end included;
 * -1 at the end of the file (or a read error: check ferror()); -2 when the
 * line is longer than max bytes or holds a NUL byte, with the error in err.
 */
ssize_t	 util_getline(FILE *, char **line, size_t *cap, size_t max,
	    const char *path, unsigned long *lineno, char *err, size_t errlen);

/*
 * RFC 5322 §3.3 date-time, "Mon, 23 Nov 2026 18:44:13 +0100": local time,
 * or UTC ("+0000") with utc; English names whatever the locale.  0, or -1
 * when t cannot be converted (or its year has more than 4 digits) or buf
 * is too small.
 */
int	 util_date_rfc5322(time_t t, bool utc, char *buf, size_t len);
/* Milliseconds of CLOCK_MONOTONIC (for timers and deadlines). */
uint64_t util_now_ms(void);

/* Copy at most dstsize-1 bytes and NUL-terminate; returns strlen(src). */
size_t	 util_strlcpy(char *dst, const char *src, size_t dstsize);

/* A growable array of owned strings. Zero-initialise before use. */
struct strlist {
	char	**v;
	size_t	  n;
	size_t	  cap;
};
void	 strlist_add(struct strlist *, const char *);	/* copies */
void	 strlist_add_owned(struct strlist *, char *);	/* takes ownership */
bool	 strlist_contains_nocase(const struct strlist *, const char *);
void	 strlist_free(struct strlist *);

/*
 * "90", "90s", "5m", "1h", "5d" -> seconds.  Returns 0, or -1 with errno
 * EINVAL (syntax) or ERANGE (overflow).
 */
int	 util_parse_duration(const char *, time_t *);
/* "1000", "512K", "35M", "1G" (powers of 1024) -> bytes; 0 / -1 as above. */
int	 util_parse_size(const char *, uint64_t *);

/*
 * Make the bytes of a peer- or user-supplied string safe for one log or
 * listing line: control characters and bytes >= 0x7f become \xNN.
 * Writes at most dstsize-1 bytes plus NUL; returns dst.
 */
char	*util_escape(char *dst, size_t dstsize, const char *src);

/*
 * Open a secret (a password file, a private key) for reading, as root
 * may: a regular file, reached through a symbolic link only when root
 * owns the link, owned by
 * root, by the effective user or by owner (the daemon's user; (uid_t)-1
 * for none), and writable by nobody else: not by the world, and by its
 * group only when that is root's group or group (the daemon's; (gid_t)-1
 * for none).  Returns a descriptor (O_CLOEXEC), or -1 with a message
 * "PATH: why; refusing to use it" in err.  A file with more than one
 * hard link, or larger than UTIL_SECRET_MAX, is refused too.  *loose is
 * set when others may read it (the world, or a group other than root's
 * and the daemon's): the caller warns.
 */
#define UTIL_SECRET_MAX	(4 * 1024 * 1024)
int	 util_secret_open(const char *path, uid_t owner, gid_t group,
	    bool *loose, char *err, size_t errlen);

#endif
