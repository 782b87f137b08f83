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
 * For every message it checks that the body file exists and holds at least
 * the size that the envelope records (the scan itself checks a message
 * file's trailer, and a version 1 body's exact size); a mismatch is
 * reported and the exit status is 1.  The body printed is the envelope's
 * size of bytes from the start of that file.  Exit 2 on usage or spool
 * errors.
 */
#include "config.h"

#include <errno.h>
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

static int bad;

static int
check_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct stat st;
	int fd;

	(void)arg;
	if ((fd = queue_body_open(q, env->id)) == -1) {
		fprintf(stderr, "spoolcheck: %s: body: %s\n", env->id, strerror(errno));
		bad = 1;
		return 0;
	}
	if (fstat(fd, &st) == -1 || (unsigned long long)st.st_size < env->size) {
		fprintf(stderr, "spoolcheck: %s: body is %lld bytes, envelope says %llu\n",
		    env->id, (long long)st.st_size, (unsigned long long)env->size);
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
	char buf[65536];
	ssize_t n = 0;
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
		struct envelope env;
		uint64_t left;

		if (queue_env_load(q, argv[2], &env) == -1 ||
		    (fd = queue_body_open(q, argv[2])) == -1) {
			fprintf(stderr, "spoolcheck: %s: %s\n", argv[2], strerror(errno));
			return 2;
		}
		left = env.size;
		envelope_free(&env);
		while (left > 0 && (n = read(fd, buf, left < sizeof(buf) ?
		    (size_t)left : sizeof(buf))) > 0) {
			if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n)
				return 2;
			left -= (uint64_t)n;
		}
		if (left > 0)
			n = -1;	/* shorter than the envelope says */
		close(fd);
		queue_close(q);
		return n < 0 ? 2 : 0;
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
