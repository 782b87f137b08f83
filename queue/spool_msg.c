/*
 * spool_msg: the message file msg/ID (one file per message, since
 * version 2 of the spool layout; the format is described at the top of
 * spool.c): its trailer, the envelope inside it, and the group commit of
 * msg/, which lets one directory fsync serve every commit that renamed a
 * file into msg/ before it began.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "spool.h"
#include "spool_int.h"
#include "spool_test.h"
#include "util.h"

void
spool_msg_init(struct queue *q)
{
	q->msgfd = -1;
	pthread_mutex_init(&q->msync.mu, NULL);
	pthread_cond_init(&q->msync.cv, NULL);
	q->msync.renamed = q->msync.synced = q->msync.fails = 0;
	q->msync.err = 0;
	q->msync.busy = false;
}

void
spool_msg_fini(struct queue *q)
{
	pthread_cond_destroy(&q->msync.cv);
	pthread_mutex_destroy(&q->msync.mu);
}

/*
 * A length record (QUEUE_LENS_LEN bytes): magic, B and E in 20 decimal
 * digits each with a space between, padded with spaces to 63 bytes, then
 * LF.  The header of a drop file and the trailer of a message file.
 */
void
spool_lens_put(char *out, const char *magic, uint64_t b, uint64_t e)
{
	int n;

	n = snprintf(out, QUEUE_LENS_LEN, "%s%020" PRIu64 " %020" PRIu64,
	    magic, b, e);
	memset(out + n, ' ', QUEUE_LENS_LEN - 1 - (size_t)n);
	out[QUEUE_LENS_LEN - 1] = '\n';
}

static bool
parse_num(const char *p, uint64_t *v)
{
	*v = 0;
	for (int i = 0; i < 20; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		if (*v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return false;
		*v = *v * 10 + (uint64_t)(p[i] - '0');
	}
	return true;
}

/* The lengths of a record that spool_lens_put() wrote with magic. */
bool
spool_lens_get(const char *rec, const char *magic, uint64_t *b, uint64_t *e)
{
	size_t ml = strlen(magic);

	if (memcmp(rec, magic, ml) != 0 || !parse_num(rec + ml, b) ||
	    rec[ml + 20] != ' ' || !parse_num(rec + ml + 21, e) ||
	    rec[QUEUE_LENS_LEN - 1] != '\n')
		return false;
	for (size_t i = ml + 41; i < QUEUE_LENS_LEN - 1; i++)
		if (rec[i] != ' ')
			return false;
	return true;
}

/*
 * The lengths that the trailer of the open message file fd gives, checked
 * against the file's size.  0; -1 with errno; QUEUE_LOAD_CORRUPT with
 * the reason in *why.
 */
int
spool_msg_layout(int fd, uint64_t *blen, uint64_t *elen, const char **why)
{
	char t[QUEUE_MSG_TRAILER_LEN];
	struct stat st;
	ssize_t r;

	if (fstat(fd, &st) == -1)
		return -1;
	if (st.st_size < QUEUE_MSG_TRAILER_LEN) {
		*why = "message file too short";
		return QUEUE_LOAD_CORRUPT;
	}
	do
		r = pread(fd, t, sizeof(t), st.st_size - QUEUE_MSG_TRAILER_LEN);
	while (r == -1 && errno == EINTR);
	if (r == -1)
		return -1;
	if (r != (ssize_t)sizeof(t) ||
	    !spool_lens_get(t, QUEUE_MSG_MAGIC, blen, elen)) {
		*why = "message file has no valid trailer";
		return QUEUE_LOAD_CORRUPT;
	}
	if (*elen > QUEUE_ENV_MAX || *blen > (uint64_t)st.st_size ||
	    *elen + QUEUE_MSG_TRAILER_LEN != (uint64_t)st.st_size - *blen) {
		*why = "message file size differs from its trailer";
		return QUEUE_LOAD_CORRUPT;
	}
	return 0;
}

/*
 * The failed fsync rounds of msg/ so far: read before a change of msg/,
 * for spool_msg_dir_sync().
 */
uint64_t
spool_msg_fails(struct queue *q)
{
	uint64_t n;

	pthread_mutex_lock(&q->msync.mu);
	n = q->msync.fails;
	pthread_mutex_unlock(&q->msync.mu);
	return n;
}

/*
 * Make durable every change of msg/ made so far by this process: the
 * caller renamed (or unlinked) its file just before, after it read
 * fails0 = spool_msg_fails().  One fsync of msg/ at a time; a commit that
 * changed msg/ while one ran waits for the next, which serves all that
 * came meanwhile (group commit).  0, or -1 with the errno of a failed
 * fsync: of a round that covered the caller's change, or of any round
 * that failed since fails0 was read.  Linux reports a writeback error
 * once, to the first fsync after it, which may be a round that began
 * before the caller's change was counted, or even before the change:
 * a later round that succeeds proves nothing then.
 */
int
spool_msg_dir_sync(struct queue *q, uint64_t fails0)
{
	struct spool_msync *s = &q->msync;
	uint64_t ticket, upto;
	int rc, err = 0;

	pthread_mutex_lock(&s->mu);
	ticket = ++s->renamed;
	for (;;) {
		/*
		 * A failed round first (see above).  A round that covered
		 * the caller's ticket began after the change, so after
		 * fails0 was read: it counts here too.
		 */
		if (s->fails != fails0) {
			rc = -1;
			err = s->err;
			break;
		}
		if (s->synced >= ticket) {
			rc = 0;
			break;
		}
		if (s->busy) {
			pthread_cond_wait(&s->cv, &s->mu);
			continue;
		}
		/* Lead a round: it covers every change counted so far. */
		s->busy = true;
		upto = s->renamed;
		pthread_mutex_unlock(&s->mu);
		rc = spool_sys->fsync(q->msgfd);
		err = errno;
		pthread_mutex_lock(&s->mu);
		s->busy = false;
		if (rc == 0) {
			if (upto > s->synced)
				s->synced = upto;
		} else {
			s->fails++;
			s->err = err;
		}
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	if (rc == -1)
		errno = err;
	return rc;
}
