/*
 * util: small helpers shared by every module.  Nothing here does I/O
 * except the fatal exit on allocation failure.
 */
#include "config.h"

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

void *
xmalloc(size_t n)
{
	void *p;

	if ((p = malloc(n == 0 ? 1 : n)) == NULL)
		fatal("malloc");
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p;

	if ((p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size)) == NULL)
		fatal("calloc");
	return p;
}

void *
xreallocarray(void *ptr, size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size) {
		errno = ENOMEM;
		fatal("reallocarray");
	}
	if ((p = realloc(ptr, nmemb * size == 0 ? 1 : nmemb * size)) == NULL)
		fatal("realloc");
	return p;
}

char *
xstrdup(const char *s)
{
	char *p;

	if ((p = strdup(s)) == NULL)
		fatal("strdup");
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p;

	if ((p = strndup(s, n)) == NULL)
		fatal("strndup");
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&p, fmt, ap);
	va_end(ap);
	if (r < 0)
		fatal("vasprintf");
	return p;
}

void
util_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

ssize_t
util_getline(FILE *f, char **line, size_t *cap, size_t max, const char *path,
    unsigned long *lineno, char *err, size_t errlen)
{
	ssize_t len;

	if ((len = getline(line, cap, f)) == -1)
		return -1;
	(*lineno)++;
	if ((size_t)len > max) {
		util_seterr(err, errlen, "%s:%lu: line too long", path, *lineno);
		return -2;
	}
	if (memchr(*line, '\0', (size_t)len) != NULL) {
		util_seterr(err, errlen, "%s:%lu: NUL byte in line", path,
		    *lineno);
		return -2;
	}
	return len;
}

int
util_date_rfc5322(time_t t, bool utc, char *buf, size_t len)
{
	static const char days[7][4] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char months[12][4] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct tm tm;
	long off;
	char sign = '+';
	int n;

	if ((utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)) == NULL ||
	    tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
	    tm.tm_mon > 11 || tm.tm_year > 9999 - 1900)
		return -1;
	off = utc ? 0 : tm.tm_gmtoff / 60;
	if (off < 0) {
		sign = '-';
		off = -off;
	}
	n = snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, sign, off / 60, off % 60);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

size_t
util_strlcpy(char *dst, const char *src, size_t dstsize)
{
	size_t len = strlen(src);

	if (dstsize > 0) {
		size_t n = len < dstsize - 1 ? len : dstsize - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

void
strlist_add_owned(struct strlist *l, char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xreallocarray(l->v, l->cap, sizeof(*l->v));
	}
	l->v[l->n++] = s;
}

void
strlist_add(struct strlist *l, const char *s)
{
	strlist_add_owned(l, xstrdup(s));
}

bool
strlist_contains_nocase(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i], s) == 0)
			return true;
	return false;
}

void
strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

/* Parse a non-negative decimal number followed by an optional one-letter suffix. */
static int
parse_scaled(const char *s, uint64_t *num, char *suffix)
{
	uint64_t v = 0;
	const char *p = s;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!isdigit((unsigned char)*p)) {
		errno = EINVAL;
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10) {
			errno = ERANGE;
			return -1;
		}
		v = v * 10 + d;
	}
	*suffix = '\0';
	if (isalpha((unsigned char)*p))
		*suffix = *p++;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != '\0') {
		errno = EINVAL;
		return -1;
	}
	*num = v;
	return 0;
}

int
util_parse_duration(const char *s, time_t *out)
{
	uint64_t v, mul;
	char suf;

	if (parse_scaled(s, &v, &suf) == -1)
		return -1;
	switch (suf) {
	case '\0': case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	default:
		errno = EINVAL;
		return -1;
	}
	/* time_t is signed: keep well inside its range. */
	if (v > (uint64_t)INT32_MAX * 16 / mul) {
		errno = ERANGE;
		return -1;
	}
	*out = (time_t)(v * mul);
	return 0;
}

int
util_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mul;
	char suf;

	if (parse_scaled(s, &v, &suf) == -1)
		return -1;
	switch (suf) {
	case '\0': case 'b': case 'B': mul = 1; break;
	case 'k': case 'K': mul = 1024; break;
	case 'm': case 'M': mul = 1024 * 1024; break;
	case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
	default:
		errno = EINVAL;
		return -1;
	}
	if (v > UINT64_MAX / mul) {
		errno = ERANGE;
		return -1;
	}
	*out = v * mul;
	return 0;
}

char *
util_escape(char *dst, size_t dstsize, const char *src)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (dstsize == 0)
		return dst;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
			if (o + 1 >= dstsize)
				break;
			dst[o++] = (char)*p;
		} else {
			if (o + 4 >= dstsize)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[*p >> 4];
			dst[o++] = hex[*p & 0xf];
		}
	}
	dst[o] = '\0';
	return dst;
}

uint64_t
util_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		fatal("clock_gettime");
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
util_secret_open(const char *path, uid_t owner, gid_t group, bool *loose,
    char *err, size_t errlen)
{
	struct stat st;
	bool group_ok, link;
	int fd;

	*loose = false;
	/*
	 * A symbolic link is followed only when root owns it (certbot's
	 * live/ links); the file it leads to is checked below.
	 */
	link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
	if (link && st.st_uid != 0) {
		util_seterr(err, errlen, "%s: a symbolic link owned by uid %lu; "
		    "refusing to use it", path, (unsigned long)st.st_uid);
		return -1;
	}
	/* O_NONBLOCK: a FIFO planted in its place must not hang us. */
	fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC |
	    (link ? 0 : O_NOFOLLOW));
	if (fd == -1) {
		util_seterr(err, errlen, "%s: %s", path, errno == ELOOP ?
		    "a symbolic link; refusing to use it" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto refuse;
	}
	group_ok = st.st_gid == 0 || (group != (gid_t)-1 && st.st_gid == group);
	if (!S_ISREG(st.st_mode))
		util_seterr(err, errlen, "%s: not a regular file; refusing to "
		    "use it", path);
	else if (st.st_uid != 0 && st.st_uid != geteuid() &&
	    (owner == (uid_t)-1 || st.st_uid != owner))
		util_seterr(err, errlen, "%s: owned by uid %lu, not by root or "
		    "the daemon's user; refusing to use it", path,
		    (unsigned long)st.st_uid);
	else if ((st.st_mode & S_IWOTH) || ((st.st_mode & S_IWGRP) &&
	    !group_ok))
		util_seterr(err, errlen, "%s: writable by %s; refusing to use "
		    "it", path, (st.st_mode & S_IWOTH) ? "everyone" :
		    "its group");
	/*
	 * Another name of the file: someone who can write the directory
	 * may have linked a root file (/etc/shadow) in under our name.
	 */
	else if (st.st_nlink != 1)
		util_seterr(err, errlen, "%s: has %lu hard links; refusing to "
		    "use it", path, (unsigned long)st.st_nlink);
	else if (st.st_size > UTIL_SECRET_MAX)
		util_seterr(err, errlen, "%s: %lld bytes, more than a secret "
		    "file may hold (%d); refusing to use it", path,
		    (long long)st.st_size, UTIL_SECRET_MAX);
	else {
		*loose = (st.st_mode & S_IROTH) ||
		    ((st.st_mode & S_IRGRP) && !group_ok);
		return fd;
	}
refuse:
	close(fd);
	return -1;
}
