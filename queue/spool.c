/*
 * spool: the on-disk queue.  Owns the layout, queue ids, the atomic commit,
 * locking, envelope updates, removal, quarantine and the start-up scan.
 * This file: the format, opening, ids, new messages and their commit,
 * locking, envelopes, removal and quarantine.  The message file's
 * trailer and the group commit are in spool_msg.c, the drop folder in
 * spool_drop.c, the scan in spool_scan.c and the holds file in
 * spool_holds.c; what they share is in spool_int.h.
 *
 * On-disk format (also in mxrelay(8), FILES)
 *
 *	SPOOL/			spool_dir, mode 0700
 *	SPOOL/tmp/ID		message being received (locked by its writer)
 *	SPOOL/tmp/ID.upd	new envelope of a message being updated
 *	SPOOL/msg/ID		a queued message: body, envelope, trailer
 *	SPOOL/msg/ID.env	its envelope, once updated (replaces the one
 *				inside msg/ID)
 *	SPOOL/data/ID, SPOOL/env/ID
 *				body and envelope of a message queued by a
 *				version before msg/ (layout version 1; still
 *				read, updated in env/ID and removed, never
 *				made any more); tmp/ID.env was its envelope
 *				being committed
 *	SPOOL/corrupt/ID.msg, SPOOL/corrupt/ID.msg.env,
 *	SPOOL/corrupt/ID.env, SPOOL/corrupt/ID.data, SPOOL/corrupt/ID.drop
 *				files moved aside because they could not be
 *				parsed; never read again, for a human to look at
 *	SPOOL/drop/ID		a message from a local user who does not own
 *				the spool (see "Drop folder" below)
 *	SPOOL/holds		destinations mxrelayd holds back (see "Holds
 *				file" below); SPOOL/tmp/holds.upd while it is
 *				replaced
 *
 * Owners and modes.  Everything belongs to the spool's owner (the user
 * mxrelayd runs as) and is mode 0700 (folders) or 0600 (files), except:
 * SPOOL itself is 0710 and drop/ 1730, both with the submit group
 * (SUBMIT_GROUP, the group mxrelay is installed setgid to), so that the
 * setgid mxrelay can reach drop/ and create files there, but can neither
 * list it nor read, rename or remove what others dropped (sticky bit).
 * Nobody but the owner works in the spool: root runs switch to the owner
 * before they open anything in it (src/privs.c), every open here refuses
 * symbolic links (O_NOFOLLOW) and checks the file type, and files are
 * created with O_EXCL.  The owner's code never changes an owner or a mode
 * it did not just create.
 *
 * ID is a queue id: QUEUE_ID_LEN (20) lowercase hex digits, 14 of
 * microseconds since the epoch and 6 of the process id of the writer.
 * Within a process ids strictly increase; between processes the pid part
 * keeps them apart, and the O_EXCL create of tmp/ID (plus a check that
 * msg/ID, msg/ID.env, data/ID and env/ID do not exist) catches the rest,
 * so an id is never reused while its message, or a leftover update of
 * it, is in the spool.  Sorting ids as strings sorts
 * by arrival.
 *
 * A message file msg/ID is, in one file (QUEUE_MSG_TRAILER_LEN = 64):
 *
 *	B bytes of body: the bytes given to queue_new_write(), the message
 *	with CRLF line ends, not dot-stuffed
 *	E bytes of envelope (text, see queue/envelope.c)
 *	"mxrelay-msg 1 BBBBBBBBBBBBBBBBBBBB EEEEEEEEEEEEEEEEEEEE" (B and E
 *	in 20 decimal digits) padded with spaces to 63 bytes, then LF
 *
 * The body comes first so that readers read it from offset 0, as they
 * read data/ID; they stop at the envelope's size, which must equal B.
 * All files are mode 0600.
 *
 * Invariants
 * - A message exists iff msg/ID exists, or (version 1) env/ID exists;
 *   data/ID then exists too and holds env's "size" bytes.  Nothing else
 *   is ever taken for a message.
 * - Commit: write tmp/ID (body, envelope, trailer), fsync it; rename it
 *   to msg/ID, fsync msg/.  Only then is the message acknowledged.  The
 *   file is whole before its name can appear in msg/, so after a crash at
 *   any point a message is whole or absent (a leftover in tmp/ at worst,
 *   removed by the scan).  The fsync of msg/ is a group commit: one runs
 *   at a time, and it covers every rename made before it began, so
 *   concurrent commits (mxrelayd's threads) share it.  A commit fails
 *   when a round that covered it failed, or any round that failed after
 *   its rename (Linux reports a writeback error once: it may have been
 *   this rename's).  On failure the file is unlinked and errno is kept.
 * - Update: write tmp/ID.upd, fsync, rename over msg/ID.env (version 1:
 *   env/ID), fsync the folder.  A reader sees the old or the new
 *   envelope, never a mix; msg/ID.env, when present, is the envelope.
 * - Remove: unlink msg/ID, fsync msg/, then unlink msg/ID.env (a
 *   leftover of a crash in between, or of a failed fsync, is removed by
 *   the scan after an hour).  Version 1: unlink env/ID, fsync env/, then
 *   unlink data/ID, fsync data/.  Batched removals share the fsync; after
 *   a failed one, nothing more is unlinked.
 * - Locking: flock(LOCK_EX) on msg/ID (version 1: data/ID), whose inode
 *   never changes (the writer locks tmp/ID at queue_new_begin() and holds
 *   the lock until the file is in place).  The scan only removes a file
 *   it can lock, so it never races a writer or a runner.
 * - The scan removes tmp/ files, version 1 bodies without an envelope and
 *   envelope updates without their message once they are an hour old
 *   (leftovers of crashed writers and of crashes inside a removal; the
 *   last two only after an fsync of env/ or msg/ made the removal of
 *   their envelope or message durable), and
 *   moves what it cannot parse (a message file without a valid trailer
 *   or of the wrong size, an envelope it cannot decode, a body missing or
 *   of the wrong size) into corrupt/.  Names that are not queue ids are
 *   left alone.
 *
 * Drop folder.  A local user who does not own the spool queues through
 * drop/, with the submit group's rights (queue_open_drop()).  A drop file
 * is, in one file:
 *
 *	"mxrelay-drop 1 BBBBBBBBBBBBBBBBBBBB EEEEEEEEEEEEEEEEEEEE" padded with
 *	spaces to 63 bytes, then LF		(DROP_HDR_LEN = 64 bytes)
 *	B bytes of body (as in data/ID)
 *	E bytes of envelope (as in env/ID, with id = the file's name)
 *
 * It is created with O_EXCL under a fresh queue id, made mode 0604 and
 * locked (flock) by its writer until it exits; the header is written
 * last, then the mode becomes 0404 (the mark that it is whole) and the
 * file is fsync'd, which on Linux's journalling filesystems also makes
 * its new name durable (the submitter may not read drop/, so it cannot
 * fsync the folder); the writer then checks that the file still has its
 * link.  Only then is the message acknowledged.  The spool's owner reads
 * these files through their "other" bits; the submit group has no read
 * right on them, and drop/ shields them from everyone else.  The pickup
 * (src/pickup.c, as the owner) takes a 0404 regular file with one
 * link, checks the header, the lengths against the file's size and the
 * envelope with the same parsers as everything else, copies it into the
 * spool under the same queue id (so that a pickup interrupted after its
 * commit finds env/ID and only removes the drop file), removes it and
 * fsyncs drop/.  The submitter is the file's owner (st_uid), never what
 * the file says.  A file that is not 0404, an hour old, and not locked
 * (or not even readable) is the leftover of a killed submitter and is
 * removed; a live writer, however slow (cron streaming a long job's
 * output), keeps its lock and its file.  Files that fail the checks are
 * moved to corrupt/ID.drop.
 *
 * Holds file.  mxrelayd keeps the destinations it holds back after they
 * failed as a whole, so that a restart keeps their backoff:
 *
 *	mxrelay-holds 1
 *	<until> <failures> <dest>	(one line per destination)
 *
 * until is the end of the hold in ms since the epoch, failures the hold
 * episodes in a row (<num> as in envelopes), dest a destination name of
 * bytes 0x21-0x7e, or "-" for the relayhost.  It is replaced whole
 * (tmp/holds.upd, fsync, rename, fsync SPOOL) by the one daemon that
 * holds the spool's lock.  It only delays attempts: a reader skips lines
 * it cannot parse, and a lost file costs one attempt per destination.
 *
 * Every call that writes to the spool goes through a table of system calls
 * (queue/spool_test.h) so that the unit tests can fail each one in turn.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "spool.h"
#include "spool_int.h"
#include "spool_test.h"
#include "util.h"

static int	 real_openat(int, const char *, int, mode_t);
static bool	 not_regular(int);
static int	 open_subdir(struct queue *, const char *, bool, bool *, int *);
static int	 fsync_parent(const char *);
static int	 make_parents(const char *);

static int
real_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return openat(dirfd, path, flags, mode);
}

/*
 * Open dirfd/name read-only: never through a symbolic link (ELOOP), never
 * blocking on a FIFO (O_NONBLOCK), and only a regular file (anything else
 * fails with EINVAL).  O_NONBLOCK stays set: it changes nothing for a
 * regular file's reads, and clearing it cost two calls per open.
 */
int
spool_open_regular(int dirfd, const char *name)
{
	struct stat st;
	int fd, saved;

	if ((fd = openat(dirfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

const struct queue_sysops queue_sysops_default = {
	.openat = real_openat,
	.write = write,
	.fsync = fsync,
	.close = close,
	.renameat = renameat,
	.unlinkat = unlinkat,
	.mkdirat = mkdirat,
};

const struct queue_sysops *spool_sys = &queue_sysops_default;

void
queue_test_set_sysops(const struct queue_sysops *ops)
{
	spool_sys = ops != NULL ? ops : &queue_sysops_default;
}

bool
queue_id_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < QUEUE_ID_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

/*
 * The directory entry of a newly made directory is only durable once its
 * parent is fsync'd.
 */
static int
fsync_parent(const char *dir)
{
	char *p, *slash;
	int fd, rc = -1, saved;

	p = xstrdup(dir);
	for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
		p[n - 1] = '\0';
	if ((slash = strrchr(p, '/')) == NULL) {
		free(p);
		p = xstrdup(".");
	} else if (slash == p)
		p[1] = '\0';
	else
		*slash = '\0';
	if ((fd = spool_sys->openat(AT_FDCWD, p,
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)) == -1)
		goto done;
	rc = spool_sys->fsync(fd);
	saved = errno;
	spool_sys->close(fd);
	errno = saved;
done:
	free(p);
	return rc;
}

static int
open_subdir(struct queue *q, const char *name, bool create, bool *made,
    int *fdp)
{
	if (create) {
		if (spool_sys->mkdirat(q->rootfd, name, 0700) == 0)
			*made = true;
		else if (errno != EEXIST)
			return -1;
	}
	/* A planted symbolic link fails here (ELOOP or ENOTDIR). */
	*fdp = spool_sys->openat(q->rootfd, name,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	return *fdp == -1 ? -1 : 0;
}

/*
 * Create the missing parent directories of dir (mode 0755, like mkdir -p),
 * each made durable in its own parent.
 */
static int
make_parents(const char *dir)
{
	char *path = xstrdup(dir);
	int rc = -1;

	for (char *p = path + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (spool_sys->mkdirat(AT_FDCWD, path, 0755) == 0) {
			if (fsync_parent(path) == -1)
				goto done;
		} else if (errno != EEXIST)
			goto done;
		*p = '/';
	}
	rc = 0;
done:
	free(path);
	return rc;
}

int
queue_open(const char *dir, bool create, struct queue **qp)
{
	struct queue *q;
	bool made_root = false, made_sub = false;
	int saved;

	*qp = NULL;
	q = xcalloc(1, sizeof(*q));
	q->rootfd = q->tmpfd = q->datafd = q->envfd = q->corruptfd = -1;
	q->dropfd = -1;
	spool_msg_init(q);
	q->dir = xstrdup(dir);
	if (create) {
		if (spool_sys->mkdirat(AT_FDCWD, dir, 0700) == 0)
			made_root = true;
		else if (errno == ENOENT) {
			/* The spool is created on first use, parents too. */
			if (make_parents(dir) == -1)
				goto fail;
			if (spool_sys->mkdirat(AT_FDCWD, dir, 0700) == -1)
				goto fail;
			made_root = true;
		} else if (errno != EEXIST)
			goto fail;
		if (made_root && fsync_parent(dir) == -1)
			goto fail;
	}
	if ((q->rootfd = spool_sys->openat(AT_FDCWD, dir,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0)) == -1)
		goto fail;
	if (open_subdir(q, "tmp", create, &made_sub, &q->tmpfd) == -1 ||
	    open_subdir(q, "data", create, &made_sub, &q->datafd) == -1 ||
	    open_subdir(q, "env", create, &made_sub, &q->envfd) == -1 ||
	    open_subdir(q, "corrupt", create, &made_sub, &q->corruptfd) == -1 ||
	    spool_open_drop_dir(q, create, &made_sub) == -1)
		goto fail;
	/*
	 * msg/ came with version 2 of the layout: a reader does without,
	 * and the first commit makes it (queue_new_commit()).
	 */
	if (open_subdir(q, "msg", create, &made_sub, &q->msgfd) == -1 &&
	    (create || errno != ENOENT))
		goto fail;
	if (made_sub && spool_sys->fsync(q->rootfd) == -1)
		goto fail;
	*qp = q;
	return 0;

fail:
	saved = errno;
	queue_close(q);
	errno = saved;
	return -1;
}

int
queue_lock_spool(struct queue *q)
{
	if (q->rootfd == -1) {
		errno = EINVAL;
		return -1;
	}
	return flock(q->rootfd, LOCK_EX | LOCK_NB);
}

bool
queue_is_drop(const struct queue *q)
{
	return q->drop_mode;
}

void
queue_close(struct queue *q)
{
	if (q == NULL)
		return;
	if (queue_flush(q) == -1)
		log_warn("%s: finishing removals", q->dir);
	strlist_free(&q->removed);
	strlist_free(&q->removed_v1);
	/* Read-only directory fds: a failed close loses nothing. */
	if (q->rootfd != -1)
		close(q->rootfd);
	if (q->tmpfd != -1)
		close(q->tmpfd);
	if (q->datafd != -1)
		close(q->datafd);
	if (q->envfd != -1)
		close(q->envfd);
	if (q->corruptfd != -1)
		close(q->corruptfd);
	if (q->dropfd != -1)
		close(q->dropfd);
	if (q->msgfd != -1)
		close(q->msgfd);
	spool_msg_fini(q);
	free(q->dir);
	free(q);
}

const char *
queue_dir(const struct queue *q)
{
	return q->dir;
}

/*
 * 14 hex digits of microseconds (good until the year 4253) and 6 of the
 * pid (Linux pids stay below 2^22).  Strictly increasing in a process
 * even when the clock stands still or steps back.
 */
void
spool_id_generate(char *id)
{
	static uint64_t last;
	struct timespec ts;
	uint64_t us;

	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	if (us <= last)
		us = last + 1;
	last = us;
	snprintf(id, QUEUE_ID_LEN + 1, "%014" PRIx64 "%06x",
	    us & UINT64_C(0xffffffffffffff), (unsigned)getpid() & 0xffffffu);
}

/*
 * Create tmp/ID for a new message under id (a fresh one when id is NULL).
 * With a given id: EEXIST when it is in use or already queued.
 */
static int
new_begin(struct queue *q, const char *id, struct queue_new **qnp)
{
	char uname[QUEUE_TMPNAME_MAX];
	struct queue_new *qn;
	struct stat st;
	int saved;

	*qnp = NULL;
	qn = xmalloc(sizeof(*qn));
	qn->q = q;
	qn->fd = -1;
	qn->err = 0;
	qn->size = 0;
	qn->eightbit = false;
	qn->tap = NULL;
	qn->tap_arg = NULL;
	qn->buflen = 0;
	if (q->drop_mode) {
		if (id != NULL) {
			errno = EINVAL;
			goto fail;
		}
		if (spool_drop_begin(qn) == -1)
			goto fail;
		*qnp = qn;
		return 0;
	}
	for (int i = 0; i < QUEUE_ID_TRIES; i++) {
		if (id != NULL) {
			if (i > 0)
				break;
			util_strlcpy(qn->id, id, sizeof(qn->id));
		} else
			spool_id_generate(qn->id);
		qn->fd = spool_sys->openat(q->tmpfd, qn->id,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (qn->fd == -1 && errno == EEXIST && id != NULL &&
		    spool_unlink_if_unlocked(q, q->tmpfd, qn->id, false) == 0) {
			/* A writer of this id that died (a killed pickup). */
			qn->fd = spool_sys->openat(q->tmpfd, qn->id, O_WRONLY |
			    O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		}
		if (qn->fd == -1) {
			if (errno == EEXIST)
				continue;
			goto fail;
		}
		/*
		 * A clock step back could meet a message still queued, or
		 * the envelope update a crashed removal left (msg/ID.env
		 * would become the new message's envelope).
		 */
		snprintf(uname, sizeof(uname), "%s.env", qn->id);
		if (fstatat(q->datafd, qn->id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    fstatat(q->envfd, qn->id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    (q->msgfd != -1 && (fstatat(q->msgfd, qn->id, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 || fstatat(q->msgfd, uname, &st,
		    AT_SYMLINK_NOFOLLOW) == 0))) {
			spool_sys->unlinkat(q->tmpfd, qn->id, 0);
			spool_sys->close(qn->fd);
			qn->fd = -1;
			continue;
		}
		/* Held until the envelope is in place; see the top comment. */
		if (flock(qn->fd, LOCK_EX | LOCK_NB) == -1) {
			saved = errno;
			spool_sys->unlinkat(q->tmpfd, qn->id, 0);
			spool_sys->close(qn->fd);
			errno = saved;
			goto fail;
		}
		*qnp = qn;
		return 0;
	}
	errno = EEXIST;
fail:
	saved = errno;
	free(qn);
	errno = saved;
	return -1;
}

int
queue_new_begin(struct queue *q, struct queue_new **qnp)
{
	return new_begin(q, NULL, qnp);
}

int
queue_new_begin_id(struct queue *q, const char *id, struct queue_new **qnp)
{
	if (!queue_id_valid(id)) {
		*qnp = NULL;
		errno = EINVAL;
		return -1;
	}
	return new_begin(q, id, qnp);
}

const char *
queue_new_id(const struct queue_new *qn)
{
	return qn->id;
}

uint64_t
queue_new_size(const struct queue_new *qn)
{
	return qn->size;
}

int
spool_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t r = spool_sys->write(fd, c, n);

		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			/* Not expected of a regular file; never spin on it. */
			errno = EIO;
			return -1;
		}
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Remove the file being written (tmp/ID, or drop/ID in drop mode). */
void
spool_new_unlink(struct queue_new *qn)
{
	struct queue *q = qn->q;

	if (!q->drop_mode) {
		spool_sys->unlinkat(q->tmpfd, qn->id, 0);
		return;
	}
	/* The group's write right on drop/ is needed to unlink there. */
	if (spool_raise_group(q) == 0) {
		spool_sys->unlinkat(q->dropfd, qn->id, 0);
		spool_lower_group(q);
	}
}

/*
 * After a failed write the body is useless: remove it at once so that a
 * full disk gets its space back, and remember why for later calls.
 */
void
spool_new_discard(struct queue_new *qn)
{
	int saved = errno;

	qn->err = saved;
	if (qn->fd != -1) {
		spool_new_unlink(qn);
		spool_sys->close(qn->fd);
		qn->fd = -1;
	}
	errno = saved;
}

int
spool_new_flush(struct queue_new *qn)
{
	if (qn->buflen == 0)
		return 0;
	if (spool_write_all(qn->fd, qn->buf, qn->buflen) == -1) {
		spool_new_discard(qn);
		return -1;
	}
	qn->buflen = 0;
	return 0;
}

void
queue_new_set_tap(struct queue_new *qn, queue_new_tap_fn *fn, void *arg)
{
	qn->tap = fn;
	qn->tap_arg = arg;
}

int
queue_new_write(struct queue_new *qn, const void *p, size_t n)
{
	const char *c = p;

	if (qn->err != 0) {
		errno = qn->err;
		return -1;
	}
	if (qn->tap != NULL && n > 0)
		qn->tap(qn->tap_arg, p, n);
	while (n > 0) {
		size_t room = sizeof(qn->buf) - qn->buflen;
		size_t take = n < room ? n : room;

		memcpy(qn->buf + qn->buflen, c, take);
		for (size_t i = 0; i < take && !qn->eightbit; i++)
			if ((unsigned char)c[i] & 0x80)
				qn->eightbit = true;
		qn->buflen += take;
		qn->size += take;
		c += take;
		n -= take;
		if (qn->buflen == sizeof(qn->buf) && spool_new_flush(qn) == -1)
			return -1;
	}
	return 0;
}

int
queue_new_commit(struct queue_new *qn, struct envelope *env)
{
	struct queue *q = qn->q;
	char trailer[QUEUE_MSG_TRAILER_LEN];
	char *ebuf = NULL;
	size_t elen;
	uint64_t fails0;
	int rc = -1, saved;
	bool moved = false;

	if (q->drop_mode)
		return spool_drop_commit(qn, env);
	if (qn->err != 0) {
		errno = qn->err;
		goto done;
	}
	if (q->msgfd == -1) {
		/*
		 * A version 1 spool opened without create (queue
		 * administration queueing a DSN): make msg/ now, durable
		 * in the spool before anything is renamed into it.
		 */
		bool made = false;

		if (open_subdir(q, "msg", true, &made, &q->msgfd) == -1)
			goto done;
		if (made && spool_sys->fsync(q->rootfd) == -1) {
			saved = errno;
			spool_sys->close(q->msgfd);
			q->msgfd = -1;
			spool_sys->unlinkat(q->rootfd, "msg", AT_REMOVEDIR);
			errno = saved;
			goto done;
		}
	}
	if (spool_new_flush(qn) == -1)
		goto done;

	util_strlcpy(env->id, qn->id, sizeof(env->id));
	env->size = qn->size;
	env->eightbit = qn->eightbit ? ENVELOPE_8BIT_YES : ENVELOPE_8BIT_NO;
	if (env->arrival == 0)
		env->arrival = time(NULL);
	if (envelope_encode(env, &ebuf, &elen) == -1)
		goto done;
	/* Body, envelope, trailer: the file is whole once it is in msg/. */
	spool_lens_put(trailer, QUEUE_MSG_MAGIC, qn->size, elen);
	if (spool_write_all(qn->fd, ebuf, elen) == -1 ||
	    spool_write_all(qn->fd, trailer, sizeof(trailer)) == -1 ||
	    spool_sys->fsync(qn->fd) == -1)
		goto done;
	fails0 = spool_msg_fails(q);
	if (spool_sys->renameat(q->tmpfd, qn->id, q->msgfd, qn->id) == -1)
		goto done;
	moved = true;
	if (spool_msg_dir_sync(q, fails0) == -1)
		goto done;
	rc = 0;

done:
	saved = errno;
	if (rc == -1) {
		if (moved) {
			/* Its name may or may not last: take it back. */
			spool_sys->unlinkat(q->msgfd, qn->id, 0);
			spool_sys->fsync(q->msgfd);
		} else if (qn->fd != -1)
			spool_sys->unlinkat(q->tmpfd, qn->id, 0);
		env->id[0] = '\0';
	}
	/*
	 * Dropping the fd drops the lock.  After a good fsync a failed
	 * close loses nothing (NFS reports write errors at fsync too).
	 */
	if (qn->fd != -1)
		spool_sys->close(qn->fd);
	free(ebuf);
	free(qn);
	if (rc == -1)
		errno = saved;
	return rc;
}

void
queue_new_abort(struct queue_new *qn)
{
	int saved = errno;

	if (qn == NULL)
		return;
	if (qn->fd != -1) {
		spool_new_unlink(qn);
		spool_sys->close(qn->fd);
	}
	free(qn);
	errno = saved;
}

/*
 * Open the file that holds the body of message id: msg/ID, or data/ID
 * for a message of the version 1 layout (*v1).  The body is its first
 * bytes, as many as the envelope's size.
 */
static int
body_open(struct queue *q, const char *id, bool *v1)
{
	int fd;

	*v1 = false;
	if (q->msgfd != -1 && ((fd = spool_open_regular(q->msgfd, id)) != -1 ||
	    errno != ENOENT))
		return fd;
	*v1 = true;
	return spool_open_regular(q->datafd, id);
}

int
queue_msg_lock(struct queue *q, const char *id, int *lockfd)
{
	struct stat st;
	bool v1;
	int fd, saved;

	*lockfd = -1;
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if ((fd = body_open(q, id, &v1)) == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1)
		goto fail;
	/*
	 * The holder before us may have removed the message while we
	 * waited for the lock on a file that is no longer linked.
	 */
	if (fstat(fd, &st) == -1)
		goto fail;
	if (st.st_nlink == 0 || (v1 &&
	    fstatat(q->envfd, id, &st, AT_SYMLINK_NOFOLLOW) == -1)) {
		errno = ENOENT;
		goto fail;
	}
	*lockfd = fd;
	return 0;

fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

void
queue_msg_unlock(int lockfd)
{
	if (lockfd != -1)
		close(lockfd);
}

/*
 * Read len bytes from offset off of fd (len UINT64_MAX: up to the end)
 * and decode them as the envelope of message id.  Returns as
 * spool_env_load().
 */
int
spool_env_read(int fd, off_t off, uint64_t len, const char *id,
    struct envelope *env, const char **why)
{
	char *buf = NULL;
	size_t got = 0, cap = 0;
	ssize_t r;
	int rc = -1, saved;

	if (len != UINT64_MAX && len > QUEUE_ENV_MAX) {
		*why = "envelope too large";
		rc = QUEUE_LOAD_CORRUPT;
		goto done;
	}
	for (;;) {
		size_t want;

		if (len != UINT64_MAX && got == len)
			break;
		if (got == cap) {
			if (cap >= QUEUE_ENV_MAX) {
				*why = "envelope too large";
				rc = QUEUE_LOAD_CORRUPT;
				goto done;
			}
			cap = cap ? cap * 2 : 4096;
			buf = xreallocarray(buf, cap, 1);
		}
		want = cap - got;
		if (len != UINT64_MAX && want > len - got)
			want = (size_t)(len - got);
		if ((r = pread(fd, buf + got, want, off + (off_t)got)) == -1) {
			if (errno == EINTR)
				continue;
			goto done;
		}
		if (r == 0) {
			if (len == UINT64_MAX)
				break;
			*why = "message file shorter than its trailer says";
			rc = QUEUE_LOAD_CORRUPT;
			goto done;
		}
		got += (size_t)r;
	}
	if (envelope_decode(buf, got, env, why) == -1) {
		rc = QUEUE_LOAD_CORRUPT;
		goto done;
	}
	if (strcmp(env->id, id) != 0) {
		envelope_free(env);
		*why = "envelope id does not match its file name";
		rc = QUEUE_LOAD_CORRUPT;
		goto done;
	}
	rc = 0;

done:
	saved = rc == QUEUE_LOAD_CORRUPT ? EBADMSG : errno;
	free(buf);
	errno = saved;
	return rc;
}

/*
 * What spool_open_regular() says of a link (ELOOP), FIFO or folder
 * (EINVAL), or socket (ENXIO).
 */
static bool
not_regular(int e)
{
	return e == ELOOP || e == EINVAL || e == ENXIO;
}

/*
 * The envelope of message id: msg/ID.env when it exists (an update),
 * else the one inside msg/ID; for a message of the version 1 layout,
 * env/ID.  With msg/ID, the body length must match the envelope's size.
 * Returns 0; -1 with errno (ENOENT, EIO...); or QUEUE_LOAD_CORRUPT with
 * errno EBADMSG and the reason in *why.
 */
int
spool_env_load(struct queue *q, const char *id, struct envelope *env,
    const char **why)
{
	char uname[QUEUE_TMPNAME_MAX];
	uint64_t blen, elen;
	int fd = -1, ufd = -1, rc = -1, saved;

	envelope_init(env);
	*why = NULL;
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (q->msgfd != -1 && (fd = spool_open_regular(q->msgfd, id)) == -1 &&
	    errno != ENOENT) {
		if (!not_regular(errno))
			return -1;
		/* A link, FIFO or folder is nothing the spool made. */
		*why = "message file is not a regular file";
		errno = EBADMSG;
		return QUEUE_LOAD_CORRUPT;
	}
	if (fd == -1) {
		/* Version 1: env/ID, with its body in data/ID. */
		if ((fd = spool_open_regular(q->envfd, id)) == -1)
			return -1;
		rc = spool_env_read(fd, 0, UINT64_MAX, id, env, why);
		goto done;
	}
	snprintf(uname, sizeof(uname), "%s.env", id);
	/* An update that cannot be opened strands the message (qmgr). */
	if ((ufd = spool_open_regular(q->msgfd, uname)) == -1 &&
	    errno != ENOENT)
		goto done;
	if ((rc = spool_msg_layout(fd, &blen, &elen, why)) != 0)
		goto done;
	rc = spool_env_read(ufd != -1 ? ufd : fd, ufd != -1 ? 0 : (off_t)blen,
	    ufd != -1 ? UINT64_MAX : elen, id, env, why);
	if (rc == 0 && env->size != blen) {
		envelope_free(env);
		*why = "body size differs from envelope";
		rc = QUEUE_LOAD_CORRUPT;
	}
done:
	saved = rc == QUEUE_LOAD_CORRUPT ? EBADMSG : errno;
	if (ufd != -1)
		close(ufd);
	close(fd);
	errno = saved;
	return rc;
}

int
queue_env_load(struct queue *q, const char *id, struct envelope *env)
{
	const char *why;

	return spool_env_load(q, id, env, &why) == 0 ? 0 : -1;
}

/*
 * Replace dirfd/name with len bytes of buf, atomically: write tmp/tname
 * (a fixed name: one writer at a time holds the right to it, so one that
 * exists is a crashed writer's leftover, or something planted, and is
 * removed, never opened), fsync it, rename it over name and fsync the
 * folder.  0, or -1 with errno; nothing is left in tmp/ on failure.
 */
int
spool_replace_file(struct queue *q, const char *tname, int dirfd,
    const char *name, const char *buf, size_t len)
{
	int fd = -1, rc = -1, saved;
	bool made = false;

	for (int i = 0; i < 2; i++) {
		fd = spool_sys->openat(q->tmpfd, tname,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST || i == 1)
			break;
		if (spool_sys->unlinkat(q->tmpfd, tname, 0) == -1 &&
		    errno != ENOENT)
			goto done;
	}
	if (fd == -1)
		goto done;
	made = true;
	if (spool_write_all(fd, buf, len) == -1 || spool_sys->fsync(fd) == -1)
		goto done;
	saved = spool_sys->close(fd);
	fd = -1;
	if (saved == -1)
		goto done;
	if (spool_sys->renameat(q->tmpfd, tname, dirfd, name) == -1)
		goto done;
	made = false;
	/* Past this point the new file is in place either way. */
	if (spool_sys->fsync(dirfd) == -1)
		goto done;
	rc = 0;
done:
	saved = errno;
	if (fd != -1)
		spool_sys->close(fd);
	if (made)
		spool_sys->unlinkat(q->tmpfd, tname, 0);
	if (rc == -1)
		errno = saved;
	return rc;
}

int
queue_env_update(struct queue *q, const struct envelope *env)
{
	char tname[QUEUE_TMPNAME_MAX], uname[QUEUE_TMPNAME_MAX];
	char *ebuf = NULL;
	size_t elen;
	struct stat st;
	int rc = -1, saved;

	if (!queue_id_valid(env->id)) {
		errno = EINVAL;
		return -1;
	}
	if (envelope_encode(env, &ebuf, &elen) == -1)
		return -1;
	/* The caller holds the message lock: tmp/ID.upd is ours. */
	snprintf(tname, sizeof(tname), "%s.upd", env->id);
	/* Never bring back a message that was removed or moved aside. */
	if (q->msgfd != -1 &&
	    fstatat(q->msgfd, env->id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		/* msg/ID.env takes the place of the envelope in msg/ID. */
		snprintf(uname, sizeof(uname), "%s.env", env->id);
		rc = spool_replace_file(q, tname, q->msgfd, uname, ebuf, elen);
		goto done;
	}
	if (fstatat(q->envfd, env->id, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    fstatat(q->datafd, env->id, &st, AT_SYMLINK_NOFOLLOW) == -1)
		goto done;
	rc = spool_replace_file(q, tname, q->envfd, env->id, ebuf, elen);
done:
	saved = errno;
	free(ebuf);
	if (rc == -1)
		errno = saved;
	return rc;
}

int
queue_body_open(struct queue *q, const char *id)
{
	bool v1;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	return body_open(q, id, &v1);
}

int
queue_msg_remove(struct queue *q, const char *id)
{
	char uname[QUEUE_TMPNAME_MAX];
	bool found = false;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (q->msgfd != -1 && spool_sys->unlinkat(q->msgfd, id, 0) == 0) {
		/* Gone for good before its update goes (else it comes back). */
		if (spool_sys->fsync(q->msgfd) == -1)
			return -1;
		snprintf(uname, sizeof(uname), "%s.env", id);
		if (spool_sys->unlinkat(q->msgfd, uname, 0) == -1 &&
		    errno != ENOENT)
			log_warn("%s: cannot remove msg/%s", id, uname);
		return 0;
	} else if (q->msgfd != -1 && errno != ENOENT)
		return -1;
	if (spool_sys->unlinkat(q->envfd, id, 0) == 0) {
		found = true;
		/* The message must be gone for good before its body is. */
		if (spool_sys->fsync(q->envfd) == -1)
			return -1;
	} else if (errno != ENOENT)
		return -1;
	if (spool_sys->unlinkat(q->datafd, id, 0) == 0) {
		found = true;
		if (spool_sys->fsync(q->datafd) == -1)
			return -1;
	} else if (errno != ENOENT)
		return -1;
	if (!found) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

/*
 * Group removal: the message file (version 1: the envelope) goes at once,
 * so the message stops existing for every runner; the directory fsync and
 * the removal of what is left (msg/ID.env; version 1: the body) wait for
 * queue_flush(), so that one fsync serves many messages (and msg/'s is
 * shared with the commits of the same process).  A crash before the flush
 * may bring a delivered message back (the only case where a second
 * delivery is allowed); it can never leave an update without its message
 * or an envelope without its body, because those go only after the
 * message file's (the envelope's) removal is durable.
 */
int
queue_msg_remove_later(struct queue *q, const char *id)
{
	uint64_t fails0;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	/* Read before the unlink: see spool_msg_dir_sync(). */
	fails0 = q->msgfd != -1 ? spool_msg_fails(q) : 0;
	if (q->msgfd != -1 && spool_sys->unlinkat(q->msgfd, id, 0) == 0) {
		if (q->removed.n == 0)
			q->removed_fails = fails0;
		strlist_add(&q->removed, id);
	} else if (q->msgfd != -1 && errno != ENOENT)
		return -1;
	else if (spool_sys->unlinkat(q->envfd, id, 0) == -1)
		return -1;
	else
		strlist_add(&q->removed_v1, id);
	/*
	 * The message is gone for every runner: a failed flush is this
	 * batch's (logged), not a failure to remove this one.
	 */
	if (q->removed.n + q->removed_v1.n >= QUEUE_REMOVE_BATCH &&
	    queue_flush(q) == -1)
		log_warn("%s: finishing removals", q->dir);
	return 0;
}

/*
 * Unlink dirfd/NAMEs (with suffix sfx).  0, or -1 with errno of the
 * first failure other than ENOENT.
 */
static int
unlink_each(int dirfd, const struct strlist *l, const char *sfx)
{
	char name[QUEUE_TMPNAME_MAX];
	int rc = 0, saved = 0;

	for (size_t i = 0; i < l->n; i++) {
		snprintf(name, sizeof(name), "%s%s", l->v[i], sfx);
		if (spool_sys->unlinkat(dirfd, name, 0) == -1 &&
		    errno != ENOENT && rc == 0) {
			rc = -1;
			saved = errno;
		}
	}
	if (rc == -1)
		errno = saved;
	return rc;
}

/*
 * Finish one list of removals: sync the folder (dirfd: msg/ through the
 * group commit, with fails0 as spool_msg_fails() gave it before the
 * list's first unlink; else an fsync), then unlink what is left
 * (dirfd2/ID with sfx) and, with sync2, fsync dirfd2.  After a failed
 * sync nothing is unlinked: the removals are not known to be durable (and
 * a later fsync that succeeds would not prove them so), so what is left
 * stays for the scan, which removes it only after a sync of its own.  The
 * list is emptied either way.  0, or -1 with errno of the first failure.
 */
static int
flush_list(struct queue *q, struct strlist *l, bool group, uint64_t fails0,
    int dirfd, int dirfd2, const char *sfx, bool sync2)
{
	int rc, saved = 0;

	if (l->n == 0)
		return 0;
	rc = group ? spool_msg_dir_sync(q, fails0) : spool_sys->fsync(dirfd);
	if (rc == 0) {
		if ((rc = unlink_each(dirfd2, l, sfx)) == -1)
			saved = errno;
		/* What did go is made durable, even after a failed unlink. */
		if (sync2 && spool_sys->fsync(dirfd2) == -1 && rc == 0) {
			rc = -1;
			saved = errno;
		}
	} else
		saved = errno;
	strlist_free(l);
	errno = saved;
	return rc;
}

int
queue_flush(struct queue *q)
{
	int rc, saved = 0;

	/*
	 * Only the folders that changed are synced: an fsync of an
	 * unchanged folder still costs a cache flush of the device.
	 * Version 2: msg/ID went, msg/ID.env (if any) goes now; version 1:
	 * env/ID went, data/ID goes now.
	 */
	rc = flush_list(q, &q->removed, true, q->removed_fails, q->msgfd,
	    q->msgfd, ".env", false);
	if (rc == -1)
		saved = errno;
	if (flush_list(q, &q->removed_v1, false, 0, q->envfd, q->datafd, "",
	    true) == -1 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc == -1)
		errno = saved;
	return rc;
}

int
queue_msg_quarantine(struct queue *q, const char *id, const char *why)
{
	char ename[QUEUE_TMPNAME_MAX], dname[QUEUE_TMPNAME_MAX];
	char mname[QUEUE_TMPNAME_MAX], cuname[QUEUE_TMPNAME_MAX + 8];
	char ewhy[512];
	bool moved_env = false, moved_data = false, moved_msg = false;
	int saved;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	util_escape(ewhy, sizeof(ewhy), why != NULL ? why : "unknown");
	/* ID.env: both env/ID's name in corrupt/ and msg/ID's update's. */
	snprintf(ename, sizeof(ename), "%s.env", id);
	snprintf(dname, sizeof(dname), "%s.data", id);
	snprintf(mname, sizeof(mname), "%s.msg", id);
	snprintf(cuname, sizeof(cuname), "%s.msg.env", id);
	/* msg/ID first, then its update: once it is gone, the message is. */
	if (q->msgfd != -1) {
		if (spool_sys->renameat(q->msgfd, id, q->corruptfd, mname) == 0)
			moved_msg = true;
		else if (errno != ENOENT)
			goto fail;
		if (spool_sys->renameat(q->msgfd, ename, q->corruptfd,
		    cuname) == -1 && errno != ENOENT)
			goto fail;
	}
	/* Version 1: the envelope first, for the same reason. */
	if (spool_sys->renameat(q->envfd, id, q->corruptfd, ename) == 0)
		moved_env = true;
	else if (errno != ENOENT)
		goto fail;
	if (spool_sys->renameat(q->datafd, id, q->corruptfd, dname) == 0)
		moved_data = true;
	else if (errno != ENOENT)
		goto fail;
	if (!moved_env && !moved_data && !moved_msg) {
		errno = ENOENT;
		return -1;
	}
	if ((moved_msg && spool_sys->fsync(q->msgfd) == -1) ||
	    (moved_env && spool_sys->fsync(q->envfd) == -1) ||
	    (moved_data && spool_sys->fsync(q->datafd) == -1) ||
	    spool_sys->fsync(q->corruptfd) == -1)
		goto fail;
	log_warnx("%s: moved to %s/corrupt: %s", id, q->dir, ewhy);
	return 0;

fail:
	saved = errno;
	log_warn("%s: cannot move to %s/corrupt (%s)", id, q->dir, ewhy);
	errno = saved;
	return -1;
}
