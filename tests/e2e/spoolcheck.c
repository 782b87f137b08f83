/*
 * spoolcheck: inspects a spool through queue/ for the end-to-end tests,
 * so that the shell tests do not depend on the on-disk format.
 *
 *	spoolcheck SPOOL		one line per message:
 *					"ID SIZE NRCPT <SENDER> RCPT[,RCPT...]"
 *	spoolcheck SPOOL ID		the body of message ID on stdout
 *	spoolcheck -p SPOOL		take in what waits in drop/ first
 *					(src/pickup.c, as the caller), then
 *					list as above
 *
 * The body is the first SIZE bytes (the envelope's size) of the file that
 * queue_body_open() gives: the message file msg/ID, which holds the
 * envelope and a trailer after them, or (version 1 layout) data/ID, which
 * holds just the body.  For every message it checks that this file
 * exists and is either the body of the size that the envelope records or
 * a message file whose trailer gives that size and, with the envelope's
 * length, the file's size; a mismatch is reported and the exit status is
 * 1.  Exit 2 on usage or spool errors.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "pickup.h"
#include "spool.h"

/* The trailer of a message file (queue/spool.c): 64 bytes. */
#define TRAILER_LEN	64
#define TRAILER_MAGIC	"mxrelay-msg 1 "

static int bad;

/*
 * Whether the file fd of st_size bytes holds a body of size bytes: the
 * whole file (data/ID), or a message file msg/ID whose trailer says
 * "mxrelay-msg 1 B E" with B = size and B + E + TRAILER_LEN = st_size.
 */
static bool
body_size_ok(int fd, off_t st_size, uint64_t size, char *why, size_t whylen)
{
	char t[TRAILER_LEN + 1];
	uint64_t b, e;
	int end = 0;

	if ((uint64_t)st_size == size)
		return true;
	if (st_size < TRAILER_LEN ||
	    pread(fd, t, TRAILER_LEN, st_size - TRAILER_LEN) != TRAILER_LEN) {
		snprintf(why, whylen, "body is %lld bytes, envelope says %" PRIu64,
		    (long long)st_size, size);
		return false;
	}
	t[TRAILER_LEN] = '\0';
	if (t[TRAILER_LEN - 1] != '\n' ||
	    sscanf(t, TRAILER_MAGIC "%20" SCNu64 " %20" SCNu64 "%n", &b, &e,
	    &end) != 2 || end != 55 ||
	    strspn(t + end, " ") != TRAILER_LEN - 1 - (size_t)end) {
		snprintf(why, whylen, "file of %lld bytes, not the body's %"
		    PRIu64 ", without a message trailer", (long long)st_size,
		    size);
		return false;
	}
	if (b != size || e > UINT64_MAX - TRAILER_LEN - b ||
	    b + e + TRAILER_LEN != (uint64_t)st_size) {
		snprintf(why, whylen, "message file of %lld bytes, trailer says "
		    "body %" PRIu64 " envelope %" PRIu64 ", envelope says %"
		    PRIu64, (long long)st_size, b, e, size);
		return false;
	}
	return true;
}

static int
check_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct stat st;
	char why[256];
	int fd;

	(void)arg;
	if ((fd = queue_body_open(q, env->id)) == -1) {
		fprintf(stderr, "spoolcheck: %s: body: %s\n", env->id, strerror(errno));
		bad = 1;
		return 0;
	}
	if (fstat(fd, &st) == -1) {
		fprintf(stderr, "spoolcheck: %s: body: %s\n", env->id, strerror(errno));
		bad = 1;
	} else if (!body_size_ok(fd, st.st_size, env->size, why, sizeof(why))) {
		fprintf(stderr, "spoolcheck: %s: %s\n", env->id, why);
		bad = 1;
	}
	close(fd);
	printf("%s %llu %zu <%s> ", env->id, (unsigned long long)env->size,
	    env->nrcpt, env->sender);
	for (size_t i = 0; i < env->nrcpt; i++)
		printf("%s%s", i ? "," : "", env->rcpt[i].addr);
	printf("\n");
	return 0;
}

int
main(int argc, char **argv)
{
	struct queue *q;
	struct envelope env;
	char buf[65536];
	uint64_t left;
	ssize_t n;
	int fd;
	bool pickup = false;

	if (argc == 3 && strcmp(argv[1], "-p") == 0) {
		pickup = true;
		argc--;
		argv++;
	}
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: spoolcheck [-p] SPOOL [ID]\n");
		return 2;
	}
	if (queue_open(argv[1], false, &q) == -1) {
		if (errno == ENOENT && argc == 2)
			return 0;	/* no spool: no message */
		fprintf(stderr, "spoolcheck: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (argc == 3) {
		/* The body: the file's first env.size bytes. */
		if (queue_env_load(q, argv[2], &env) == -1 ||
		    (fd = queue_body_open(q, argv[2])) == -1) {
			fprintf(stderr, "spoolcheck: %s: %s\n", argv[2], strerror(errno));
			queue_close(q);
			return 2;
		}
		left = env.size;
		envelope_free(&env);
		n = 0;
		while (left > 0 && (n = read(fd, buf, left < sizeof(buf) ?
		    (size_t)left : sizeof(buf))) > 0) {
			if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
				return 2;
			left -= (uint64_t)n;
		}
		close(fd);
		queue_close(q);
		if (n == 0 && left > 0)
			fprintf(stderr, "spoolcheck: %s: body shorter than its "
			    "size\n", argv[2]);
		return n < 0 || left > 0 ? 2 : 0;
	}
	if (pickup)
		pickup_run(q, 0, NULL, NULL, NULL);	/* no size limit */
	if (queue_scan(q, check_one, NULL) == -1) {
		fprintf(stderr, "spoolcheck: scan: %s\n", strerror(errno));
		return 2;
	}
	queue_close(q);
	return bad;
}
