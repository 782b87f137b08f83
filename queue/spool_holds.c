/*
 * spool_holds: the holds file, SPOOL/holds (see "Holds file" at the top
 * of spool.c).
 */
#include "config.h"

#include <sys/types.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"
#include "spool_int.h"
#include "util.h"

#define HOLDS_MAGIC	"mxrelay-holds 1\n"
#define HOLDS_MAX	(16 * 1024 * 1024)

static bool	 hold_name_ok(const char *);
static int	 hold_parse(char *, struct queue_hold *);

static bool
hold_name_ok(const char *s)
{
	if (*s == '\0' || strcmp(s, "-") == 0)
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

int
queue_holds_save(struct queue *q, const struct queue_hold *v, size_t n)
{
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);
	int rc, saved;

	len = (size_t)snprintf(buf, cap, "%s", HOLDS_MAGIC);
	for (size_t i = 0; i < n; i++) {
		int w;

		if (*v[i].dest != '\0' && !hold_name_ok(v[i].dest))
			continue;
		for (;;) {
			w = snprintf(buf + len, cap - len, "%" PRId64 " %u %s\n",
			    v[i].until < 0 ? 0 : v[i].until, v[i].failures,
			    *v[i].dest != '\0' ? v[i].dest : "-");
			if (w >= 0 && (size_t)w < cap - len)
				break;
			cap *= 2;
			buf = xreallocarray(buf, cap, 1);
		}
		len += (size_t)w;
	}
	/* A leftover holds.upd is a crashed writer's (one daemon per spool). */
	rc = spool_replace_file(q, "holds.upd", q->rootfd, "holds", buf, len);
	saved = errno;
	free(buf);
	errno = saved;
	return rc;
}

/* One line "until failures dest" into h; -1 when it does not parse. */
static int
hold_parse(char *line, struct queue_hold *h)
{
	char *sp1, *sp2, *end;
	unsigned long long until;
	unsigned long failures;

	if ((sp1 = strchr(line, ' ')) == NULL ||
	    (sp2 = strchr(sp1 + 1, ' ')) == NULL)
		return -1;
	*sp1 = *sp2 = '\0';
	errno = 0;
	until = strtoull(line, &end, 10);
	if (*line < '0' || *line > '9' || *end != '\0' || errno != 0 ||
	    until > INT64_MAX)
		return -1;
	failures = strtoul(sp1 + 1, &end, 10);
	if (sp1[1] < '0' || sp1[1] > '9' || *end != '\0' || errno != 0 ||
	    failures > UINT_MAX)
		return -1;
	if (strcmp(sp2 + 1, "-") != 0 && !hold_name_ok(sp2 + 1))
		return -1;
	h->dest = xstrdup(strcmp(sp2 + 1, "-") == 0 ? "" : sp2 + 1);
	h->until = (int64_t)until;
	h->failures = (unsigned)failures;
	return 0;
}

int
queue_holds_load(struct queue *q, struct queue_hold **vp, size_t *np)
{
	char *buf = NULL, *line, *nl;
	size_t len = 0, cap = 0;
	ssize_t r;
	int fd, saved;

	*vp = NULL;
	*np = 0;
	if ((fd = spool_open_regular(q->rootfd, "holds")) == -1)
		return errno == ENOENT ? 0 : -1;
	for (;;) {
		if (len + 1 >= cap) {
			if (cap >= HOLDS_MAX)
				break;	/* the rest is ignored */
			cap = cap ? cap * 2 : 4096;
			buf = xreallocarray(buf, cap, 1);
		}
		if ((r = read(fd, buf + len, cap - len - 1)) == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			close(fd);
			free(buf);
			errno = saved;
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (buf == NULL)
		return 0;
	buf[len] = '\0';
	if (strncmp(buf, HOLDS_MAGIC, strlen(HOLDS_MAGIC)) != 0 ||
	    memchr(buf, '\0', len) != NULL) {
		free(buf);
		return 0;	/* not ours: no holds */
	}
	for (line = buf + strlen(HOLDS_MAGIC);
	    (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
		struct queue_hold h;

		*nl = '\0';
		if (hold_parse(line, &h) == -1)
			continue;
		*vp = xreallocarray(*vp, *np + 1, sizeof(**vp));
		(*vp)[(*np)++] = h;
	}
	free(buf);
	return 0;
}
