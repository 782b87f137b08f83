/*
 * spool: the on-disk queue.  Owns the layout, queue ids, the atomic commit,
 * locking, envelope updates, removal, quarantine and the start-up scan.
 *
 * On-disk format (also in mxrelay(8), FILES)
 *
 *	SPOOL/			spool_dir, mode 0700
 *	SPOOL/tmp/ID		body being received (locked by its writer)
 *	SPOOL/tmp/ID.env	envelope of a message being committed
 *	SPOOL/tmp/ID.upd	new envelope of a message being updated
 *	SPOOL/data/ID		message body
 *	SPOOL/env/ID		message envelope (text, see queue/envelope.c)
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
 * data/ID and env/ID do not exist) catches the rest, so an id is never
 * reused while its message is queued.  Sorting ids as strings sorts by
 * arrival.
 *
 * The body is exactly the bytes given to queue_new_write(): the message
 * with CRLF line ends, not dot-stuffed.  All files are mode 0600.
 *
 * Invariants
 * - A message exists iff env/ID exists; data/ID then exists too and holds
 *   env's "size" bytes.  Nothing outside env/ is ever taken for a message.
 * - Commit: write tmp/ID, fsync; write tmp/ID.env, fsync; rename tmp/ID to
 *   data/ID, fsync data/; rename tmp/ID.env to env/ID, fsync env/.  Only
 *   then is the message acknowledged.  The body is durably in data/ before
 *   the envelope can appear, so after a crash at any point a message is
 *   either whole or absent (an orphan body at worst, removed by the scan).
 *   On failure everything made so far is unlinked and errno is kept.
 * - Update: write tmp/ID.upd, fsync, rename over env/ID, fsync env/.  A
 *   reader sees the old or the new envelope, never a mix.
 * - Remove: unlink env/ID, fsync env/, then unlink data/ID, fsync data/.
 * - Locking: flock(LOCK_EX) on data/ID, whose inode never changes (the
 *   writer locks tmp/ID at queue_new_begin() and holds the lock until the
 *   envelope is in place).  The scan only removes a body it can lock, so
 *   it never races a writer or a runner.
 * - The scan removes tmp/ files and bodies without an envelope once they
 *   are an hour old (leftovers of crashed writers and of crashes inside a
 *   removal), and moves envelopes it cannot parse, or whose body is
 *   missing or of the wrong size, into corrupt/.  Names that are not queue
 *   ids are left alone.
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

#include <dirent.h>
#include <grp.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
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
#include "spool_test.h"
#include "util.h"

#define QUEUE_BUFSIZE		(64 * 1024)
#define QUEUE_STALE_SECS	3600		/* leftovers older than this go */
#define QUEUE_ENV_MAX		(64 * 1024 * 1024)	/* larger = corrupt */
#define QUEUE_ID_TRIES		100
#define QUEUE_TMPNAME_MAX	(QUEUE_ID_LEN + 8)
#define DROP_MAGIC		"mxrelay-drop 1 "
#define DROP_HDR_LEN		64
#define DROP_READY_MODE		0404	/* whole: the owner reads it as "other" */
#define DROP_WRITING_MODE	0604	/* being written, its writer holds a lock */

struct queue {
	char	*dir;
	int	 rootfd;
	int	 tmpfd;
	int	 datafd;
	int	 envfd;
	int	 corruptfd;
	int	 dropfd;	/* drop/; -1 when missing (older spools) */
	struct strlist removed;	/* env/ID unlinked, data/ID still there */
	/*
	 * Drop mode (queue_open_drop): only dropfd is open (O_PATH), and new
	 * messages become drop files.  With raise, the effective group is
	 * raise_gid only around the one call that needs it.
	 */
	bool	 drop_mode;
	bool	 raise;
	gid_t	 raise_gid;
};

/* Removals batched by queue_msg_remove_later() before one flush. */
#define QUEUE_REMOVE_BATCH	256

struct queue_new {
	struct queue	*q;
	char		 id[QUEUE_ID_LEN + 1];
	int		 fd;		/* tmp/ID, locked; -1 once gone */
	int		 err;		/* sticky errno of a failed write */
	uint64_t	 size;
	bool		 eightbit;	/* a byte over 0x7f was written */
	size_t		 buflen;
	char		 buf[QUEUE_BUFSIZE];
};

/* An envelope that was read but is unusable: the reason is in *why. */
#define LOAD_CORRUPT	(-2)

static int	 real_openat(int, const char *, int, mode_t);
static int	 open_subdir(struct queue *, const char *, bool, bool *, int *);
static int	 fsync_parent(const char *);
static int	 make_parents(const char *);
static void	 id_generate(char *);
static int	 write_all(int, const void *, size_t);
static int	 new_flush(struct queue_new *);
static void	 new_discard(struct queue_new *);
static int	 env_load(struct queue *, const char *, struct envelope *,
		    const char **);
static int	 list_dir(int, bool (*)(const char *), struct strlist *);
static bool	 tmp_name_valid(const char *);
static int	 cmp_str(const void *, const void *);
static bool	 is_stale(int, const char *, time_t);
static void	 clean_tmp(struct queue *, time_t);
static void	 clean_orphans(struct queue *, const struct strlist *, time_t);
static int	 unlink_if_unlocked(struct queue *, int, const char *,
		    bool);

static int
real_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return openat(dirfd, path, flags, mode);
}

/*
 * Open dirfd/name read-only: never through a symbolic link (ELOOP), never
 * blocking on a FIFO (O_NONBLOCK, cleared again), and only a regular file
 * (anything else fails with EINVAL).
 */
static int
open_regular(int dirfd, const char *name)
{
	struct stat st;
	int fd, fl, saved;

	if ((fd = openat(dirfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == -1)
		goto fail;
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

static const struct queue_sysops *sys = &queue_sysops_default;

void
queue_test_set_sysops(const struct queue_sysops *ops)
{
	sys = ops != NULL ? ops : &queue_sysops_default;
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

/* "ID", "ID.env" or "ID.upd": the names queue code makes in tmp/. */
static bool
tmp_name_valid(const char *s)
{
	char id[QUEUE_ID_LEN + 1];

	if (strnlen(s, QUEUE_ID_LEN) < QUEUE_ID_LEN)
		return false;
	memcpy(id, s, QUEUE_ID_LEN);
	id[QUEUE_ID_LEN] = '\0';
	if (!queue_id_valid(id))
		return false;
	s += QUEUE_ID_LEN;
	return *s == '\0' || strcmp(s, ".env") == 0 || strcmp(s, ".upd") == 0;
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
	if ((fd = sys->openat(AT_FDCWD, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	    0)) == -1)
		goto done;
	rc = sys->fsync(fd);
	saved = errno;
	sys->close(fd);
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
		if (sys->mkdirat(q->rootfd, name, 0700) == 0)
			*made = true;
		else if (errno != EEXIST)
			return -1;
	}
	/* A planted symbolic link fails here (ELOOP or ENOTDIR). */
	*fdp = sys->openat(q->rootfd, name,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	return *fdp == -1 ? -1 : 0;
}

/* The submit group's id, or (gid_t)-1 when there is no such group. */
static gid_t
submit_gid(void)
{
	struct group *gr = getgrnam(SUBMIT_GROUP);

	return gr != NULL ? gr->gr_gid : (gid_t)-1;
}

/*
 * drop/: made here with mode 1730 and the submit group (the group only
 * when we may give it: as root; the owner may not be in that group).  An existing
 * drop/ is taken as it is.  Without create, a missing drop/ is no error.
 */
static int
open_drop(struct queue *q, bool create, bool *made)
{
	bool made_here = false;
	gid_t gid;

	if (create) {
		if (sys->mkdirat(q->rootfd, "drop", 0700) == 0)
			made_here = *made = true;
		else if (errno != EEXIST)
			return -1;
	}
	q->dropfd = sys->openat(q->rootfd, "drop",
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (q->dropfd == -1)
		return errno == ENOENT && !create ? 0 : -1;
	if (made_here) {
		if ((gid = submit_gid()) != (gid_t)-1 &&
		    fchown(q->dropfd, (uid_t)-1, gid) == -1 && errno != EPERM)
			return -1;
		if (fchmod(q->dropfd, 01730) == -1)
			return -1;
	}
	return 0;
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
		if (sys->mkdirat(AT_FDCWD, path, 0755) == 0) {
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
	q->dir = xstrdup(dir);
	if (create) {
		if (sys->mkdirat(AT_FDCWD, dir, 0700) == 0)
			made_root = true;
		else if (errno == ENOENT) {
			/* SPEC: the spool is created on first use, parents too. */
			if (make_parents(dir) == -1)
				goto fail;
			if (sys->mkdirat(AT_FDCWD, dir, 0700) == -1)
				goto fail;
			made_root = true;
		} else if (errno != EEXIST)
			goto fail;
		if (made_root && fsync_parent(dir) == -1)
			goto fail;
	}
	if ((q->rootfd = sys->openat(AT_FDCWD, dir,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0)) == -1)
		goto fail;
	if (open_subdir(q, "tmp", create, &made_sub, &q->tmpfd) == -1 ||
	    open_subdir(q, "data", create, &made_sub, &q->datafd) == -1 ||
	    open_subdir(q, "env", create, &made_sub, &q->envfd) == -1 ||
	    open_subdir(q, "corrupt", create, &made_sub, &q->corruptfd) == -1 ||
	    open_drop(q, create, &made_sub) == -1)
		goto fail;
	if (made_sub && sys->fsync(q->rootfd) == -1)
		goto fail;
	*qp = q;
	return 0;

fail:
	saved = errno;
	queue_close(q);
	errno = saved;
	return -1;
}

/*
 * Drop mode: take up the submit group for one call, then give it back.
 * The saved set-group-ID keeps it between calls; nothing else in the
 * process runs with it.
 */
static int
raise_group(const struct queue *q)
{
	return q->raise ? setegid(q->raise_gid) : 0;
}

static void
lower_group(const struct queue *q)
{
	int saved = errno;

	if (q->raise && setegid(getgid()) == -1)
		abort();	/* never go on with the group raised */
	errno = saved;
}

int
queue_open_drop(const char *dir, gid_t gid, struct queue **qp)
{
	struct queue *q;
	char *path;
	int saved;

	*qp = NULL;
	q = xcalloc(1, sizeof(*q));
	q->rootfd = q->tmpfd = q->datafd = q->envfd = q->corruptfd = -1;
	q->dir = xstrdup(dir);
	q->drop_mode = true;
	q->raise = gid != (gid_t)-1 && gid != getgid();
	q->raise_gid = gid;
	path = xasprintf("%s/drop", dir);
	if (raise_group(q) == -1) {
		saved = errno;
		free(path);
		queue_close(q);
		errno = saved;
		return -1;
	}
	/* O_PATH: the group may search drop/ but not read it. */
	q->dropfd = sys->openat(AT_FDCWD, path,
	    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	lower_group(q);
	saved = errno;
	free(path);
	if (q->dropfd == -1) {
		queue_close(q);
		errno = saved;
		return -1;
	}
	*qp = q;
	return 0;
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
static void
id_generate(char *id)
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

/* Drop mode: a new drop/ID, with room for its header. */
static int
drop_begin(struct queue_new *qn)
{
	static const char zero[DROP_HDR_LEN];
	struct queue *q = qn->q;

	for (int i = 0; i < QUEUE_ID_TRIES; i++) {
		id_generate(qn->id);
		if (raise_group(q) == -1)
			return -1;
		qn->fd = sys->openat(q->dropfd, qn->id, O_WRONLY | O_CREAT |
		    O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		lower_group(q);
		if (qn->fd == -1) {
			if (errno == EEXIST)
				continue;
			return -1;
		}
		/* Whatever the umask: the owner must be able to test the lock. */
		if (flock(qn->fd, LOCK_EX | LOCK_NB) == -1 ||
		    fchmod(qn->fd, DROP_WRITING_MODE) == -1 ||
		    write_all(qn->fd, zero, sizeof(zero)) == -1) {
			new_discard(qn);
			return -1;
		}
		return 0;
	}
	errno = EEXIST;
	return -1;
}

/*
 * Create tmp/ID for a new message under id (a fresh one when id is NULL).
 * With a given id: EEXIST when it is in use or already queued.
 */
static int
new_begin(struct queue *q, const char *id, struct queue_new **qnp)
{
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
	qn->buflen = 0;
	if (q->drop_mode) {
		if (id != NULL) {
			errno = EINVAL;
			goto fail;
		}
		if (drop_begin(qn) == -1)
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
			id_generate(qn->id);
		qn->fd = sys->openat(q->tmpfd, qn->id,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (qn->fd == -1 && errno == EEXIST && id != NULL &&
		    unlink_if_unlocked(q, q->tmpfd, qn->id, false) == 0) {
			/* A writer of this id that died (a killed pickup). */
			qn->fd = sys->openat(q->tmpfd, qn->id, O_WRONLY |
			    O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		}
		if (qn->fd == -1) {
			if (errno == EEXIST)
				continue;
			goto fail;
		}
		/* A clock step back could meet a message still queued. */
		if (fstatat(q->datafd, qn->id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    fstatat(q->envfd, qn->id, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			sys->unlinkat(q->tmpfd, qn->id, 0);
			sys->close(qn->fd);
			qn->fd = -1;
			continue;
		}
		/* Held until the envelope is in place; see the top comment. */
		if (flock(qn->fd, LOCK_EX | LOCK_NB) == -1) {
			saved = errno;
			sys->unlinkat(q->tmpfd, qn->id, 0);
			sys->close(qn->fd);
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

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t r = sys->write(fd, c, n);

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
static void
new_unlink(struct queue_new *qn)
{
	struct queue *q = qn->q;

	if (!q->drop_mode) {
		sys->unlinkat(q->tmpfd, qn->id, 0);
		return;
	}
	/* The group's write right on drop/ is needed to unlink there. */
	if (raise_group(q) == 0) {
		sys->unlinkat(q->dropfd, qn->id, 0);
		lower_group(q);
	}
}

/*
 * After a failed write the body is useless: remove it at once so that a
 * full disk gets its space back, and remember why for later calls.
 */
static void
new_discard(struct queue_new *qn)
{
	int saved = errno;

	qn->err = saved;
	if (qn->fd != -1) {
		new_unlink(qn);
		sys->close(qn->fd);
		qn->fd = -1;
	}
	errno = saved;
}

static int
new_flush(struct queue_new *qn)
{
	if (qn->buflen == 0)
		return 0;
	if (write_all(qn->fd, qn->buf, qn->buflen) == -1) {
		new_discard(qn);
		return -1;
	}
	qn->buflen = 0;
	return 0;
}

int
queue_new_write(struct queue_new *qn, const void *p, size_t n)
{
	const char *c = p;

	if (qn->err != 0) {
		errno = qn->err;
		return -1;
	}
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
		if (qn->buflen == sizeof(qn->buf) && new_flush(qn) == -1)
			return -1;
	}
	return 0;
}

/*
 * Drop mode: body, then envelope, then the header at offset 0, mode 0404,
 * one fsync (see "Drop folder" at the top).
 */
static int
drop_commit(struct queue_new *qn, struct envelope *env)
{
	char hdr[DROP_HDR_LEN + 1], *ebuf = NULL;
	size_t elen;
	int rc = -1, saved;

	if (qn->err != 0) {
		errno = qn->err;
		goto done;
	}
	if (new_flush(qn) == -1)
		goto done;
	util_strlcpy(env->id, qn->id, sizeof(env->id));
	env->size = qn->size;
	if (env->arrival == 0)
		env->arrival = time(NULL);
	if (envelope_encode(env, &ebuf, &elen) == -1)
		goto done;
	if (write_all(qn->fd, ebuf, elen) == -1)
		goto done;
	snprintf(hdr, sizeof(hdr), "%s%020" PRIu64 " %020" PRIu64 "%*s\n",
	    DROP_MAGIC, qn->size, (uint64_t)elen,
	    (int)(DROP_HDR_LEN - 1 - strlen(DROP_MAGIC) - 41), "");
	if (pwrite(qn->fd, hdr, DROP_HDR_LEN, 0) != DROP_HDR_LEN) {
		if (errno == 0)
			errno = EIO;
		goto done;
	}
	if (fchmod(qn->fd, DROP_READY_MODE) == -1 || sys->fsync(qn->fd) == -1)
		goto done;
	/* Removed under us (it cannot be, while we hold the lock): no ack. */
	{
		struct stat st;

		if (fstat(qn->fd, &st) == -1)
			goto done;
		if (st.st_nlink == 0) {
			errno = ENOENT;
			goto done;
		}
	}
	saved = sys->close(qn->fd);
	qn->fd = -1;
	if (saved == -1)
		goto done;
	rc = 0;
done:
	saved = errno;
	if (rc == -1) {
		/* A write that failed (qn->err) has removed it already. */
		if (qn->err == 0)
			new_unlink(qn);
		env->id[0] = '\0';
	}
	if (qn->fd != -1)
		sys->close(qn->fd);
	free(ebuf);
	free(qn);
	if (rc == -1)
		errno = saved;
	return rc;
}

int
queue_new_commit(struct queue_new *qn, struct envelope *env)
{
	struct queue *q = qn->q;
	char etmp[QUEUE_TMPNAME_MAX];
	char *ebuf = NULL;
	size_t elen;
	int efd = -1, rc = -1, saved;
	bool env_tmp = false, data_in = false, env_in = false;

	if (q->drop_mode)
		return drop_commit(qn, env);
	snprintf(etmp, sizeof(etmp), "%s.env", qn->id);
	if (qn->err != 0) {
		errno = qn->err;
		goto done;
	}
	if (new_flush(qn) == -1)
		goto done;
	if (sys->fsync(qn->fd) == -1)
		goto done;

	util_strlcpy(env->id, qn->id, sizeof(env->id));
	env->size = qn->size;
	env->eightbit = qn->eightbit ? ENVELOPE_8BIT_YES : ENVELOPE_8BIT_NO;
	if (env->arrival == 0)
		env->arrival = time(NULL);
	if (envelope_encode(env, &ebuf, &elen) == -1)
		goto done;
	if ((efd = sys->openat(q->tmpfd, etmp,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		goto done;
	env_tmp = true;
	if (write_all(efd, ebuf, elen) == -1 || sys->fsync(efd) == -1)
		goto done;
	/* NFS reports write errors at close. */
	saved = sys->close(efd);
	efd = -1;
	if (saved == -1)
		goto done;

	if (sys->renameat(q->tmpfd, qn->id, q->datafd, qn->id) == -1)
		goto done;
	data_in = true;
	if (sys->fsync(q->datafd) == -1)
		goto done;
	if (sys->renameat(q->tmpfd, etmp, q->envfd, qn->id) == -1)
		goto done;
	env_tmp = false;
	env_in = true;
	if (sys->fsync(q->envfd) == -1)
		goto done;
	rc = 0;

done:
	saved = errno;
	if (efd != -1)
		sys->close(efd);
	if (rc == -1) {
		/*
		 * Undo in the reverse order: the envelope first, so that
		 * the message stops existing before its body goes.
		 */
		if (env_in) {
			sys->unlinkat(q->envfd, qn->id, 0);
			sys->fsync(q->envfd);
		}
		if (env_tmp)
			sys->unlinkat(q->tmpfd, etmp, 0);
		if (data_in)
			sys->unlinkat(q->datafd, qn->id, 0);
		else if (qn->fd != -1)
			sys->unlinkat(q->tmpfd, qn->id, 0);
		env->id[0] = '\0';
	}
	/* Read-only use from here on; dropping the fd drops the lock. */
	if (qn->fd != -1)
		sys->close(qn->fd);
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
		new_unlink(qn);
		sys->close(qn->fd);
	}
	free(qn);
	errno = saved;
}

int
queue_msg_lock(struct queue *q, const char *id, int *lockfd)
{
	struct stat st;
	int fd, saved;

	*lockfd = -1;
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if ((fd = open_regular(q->datafd, id)) == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1)
		goto fail;
	/*
	 * The holder before us may have removed the message while we
	 * waited for the lock on a body that is no longer linked.
	 */
	if (fstat(fd, &st) == -1)
		goto fail;
	if (st.st_nlink == 0 ||
	    fstatat(q->envfd, id, &st, AT_SYMLINK_NOFOLLOW) == -1) {
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
 * Read and decode env/ID.  Returns 0; -1 with errno (ENOENT, EIO...);
 * or LOAD_CORRUPT with errno EBADMSG and the reason in *why.
 */
static int
env_load(struct queue *q, const char *id, struct envelope *env,
    const char **why)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t r;
	int fd, rc = -1, saved;

	envelope_init(env);
	*why = NULL;
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if ((fd = open_regular(q->envfd, id)) == -1)
		return -1;
	for (;;) {
		if (len == cap) {
			if (cap >= QUEUE_ENV_MAX) {
				*why = "envelope too large";
				rc = LOAD_CORRUPT;
				goto done;
			}
			cap = cap ? cap * 2 : 4096;
			buf = xreallocarray(buf, cap, 1);
		}
		if ((r = read(fd, buf + len, cap - len)) == -1) {
			if (errno == EINTR)
				continue;
			goto done;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (envelope_decode(buf, len, env, why) == -1) {
		rc = LOAD_CORRUPT;
		goto done;
	}
	if (strcmp(env->id, id) != 0) {
		envelope_free(env);
		*why = "envelope id does not match its file name";
		rc = LOAD_CORRUPT;
		goto done;
	}
	rc = 0;

done:
	saved = rc == LOAD_CORRUPT ? EBADMSG : errno;
	close(fd);
	free(buf);
	errno = saved;
	return rc;
}

int
queue_env_load(struct queue *q, const char *id, struct envelope *env)
{
	const char *why;

	return env_load(q, id, env, &why) == 0 ? 0 : -1;
}

/*
 * Replace dirfd/name with len bytes of buf, atomically: write tmp/tname
 * (a fixed name: one writer at a time holds the right to it, so one that
 * exists is a crashed writer's leftover, or something planted, and is
 * removed, never opened), fsync it, rename it over name and fsync the
 * folder.  0, or -1 with errno; nothing is left in tmp/ on failure.
 */
static int
replace_file(struct queue *q, const char *tname, int dirfd, const char *name,
    const char *buf, size_t len)
{
	int fd = -1, rc = -1, saved;
	bool made = false;

	for (int i = 0; i < 2; i++) {
		fd = sys->openat(q->tmpfd, tname,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1 || errno != EEXIST || i == 1)
			break;
		if (sys->unlinkat(q->tmpfd, tname, 0) == -1 && errno != ENOENT)
			goto done;
	}
	if (fd == -1)
		goto done;
	made = true;
	if (write_all(fd, buf, len) == -1 || sys->fsync(fd) == -1)
		goto done;
	saved = sys->close(fd);
	fd = -1;
	if (saved == -1)
		goto done;
	if (sys->renameat(q->tmpfd, tname, dirfd, name) == -1)
		goto done;
	made = false;
	/* Past this point the new file is in place either way. */
	if (sys->fsync(dirfd) == -1)
		goto done;
	rc = 0;
done:
	saved = errno;
	if (fd != -1)
		sys->close(fd);
	if (made)
		sys->unlinkat(q->tmpfd, tname, 0);
	if (rc == -1)
		errno = saved;
	return rc;
}

int
queue_env_update(struct queue *q, const struct envelope *env)
{
	char tname[QUEUE_TMPNAME_MAX];
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
	/* Never bring back a message that was removed or moved aside. */
	if (fstatat(q->envfd, env->id, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    fstatat(q->datafd, env->id, &st, AT_SYMLINK_NOFOLLOW) == -1)
		goto done;
	/* The caller holds the message lock: tmp/ID.upd is ours. */
	snprintf(tname, sizeof(tname), "%s.upd", env->id);
	rc = replace_file(q, tname, q->envfd, env->id, ebuf, elen);
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
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	return open_regular(q->datafd, id);
}

int
queue_msg_remove(struct queue *q, const char *id)
{
	bool found = false;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (sys->unlinkat(q->envfd, id, 0) == 0) {
		found = true;
		/* The message must be gone for good before its body is. */
		if (sys->fsync(q->envfd) == -1)
			return -1;
	} else if (errno != ENOENT)
		return -1;
	if (sys->unlinkat(q->datafd, id, 0) == 0) {
		found = true;
		if (sys->fsync(q->datafd) == -1)
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
 * Group removal: the envelope goes at once (the message stops existing
 * for every runner), the directory fsync and the body removal wait for
 * queue_flush(), so that one fsync pair serves many messages.  A crash
 * before the flush may bring a delivered message back (SPEC allows a
 * second delivery only then); it can never leave a body's envelope
 * without its body, because bodies go only after env/ is durable.
 */
int
queue_msg_remove_later(struct queue *q, const char *id)
{
	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	if (sys->unlinkat(q->envfd, id, 0) == -1)
		return -1;
	strlist_add(&q->removed, id);
	if (q->removed.n >= QUEUE_REMOVE_BATCH)
		return queue_flush(q);
	return 0;
}

int
queue_flush(struct queue *q)
{
	int rc = 0, saved = 0;

	if (q->removed.n == 0)
		return 0;
	if (sys->fsync(q->envfd) == -1)
		return -1;
	for (size_t i = 0; i < q->removed.n; i++)
		if (sys->unlinkat(q->datafd, q->removed.v[i], 0) == -1 &&
		    errno != ENOENT && rc == 0) {
			rc = -1;
			saved = errno;
		}
	strlist_free(&q->removed);
	if (sys->fsync(q->datafd) == -1 && rc == 0) {
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
	char ewhy[512];
	bool moved_env = false, moved_data = false;
	int saved;

	if (!queue_id_valid(id)) {
		errno = EINVAL;
		return -1;
	}
	util_escape(ewhy, sizeof(ewhy), why != NULL ? why : "unknown");
	snprintf(ename, sizeof(ename), "%s.env", id);
	snprintf(dname, sizeof(dname), "%s.data", id);
	/* Envelope first: once it is gone, the message is. */
	if (sys->renameat(q->envfd, id, q->corruptfd, ename) == 0)
		moved_env = true;
	else if (errno != ENOENT)
		goto fail;
	if (sys->renameat(q->datafd, id, q->corruptfd, dname) == 0)
		moved_data = true;
	else if (errno != ENOENT)
		goto fail;
	if (!moved_env && !moved_data) {
		errno = ENOENT;
		return -1;
	}
	if ((moved_env && sys->fsync(q->envfd) == -1) ||
	    (moved_data && sys->fsync(q->datafd) == -1) ||
	    sys->fsync(q->corruptfd) == -1)
		goto fail;
	log_warnx("%s: moved to %s/corrupt: %s", id, q->dir, ewhy);
	return 0;

fail:
	saved = errno;
	log_warn("%s: cannot move to %s/corrupt (%s)", id, q->dir, ewhy);
	errno = saved;
	return -1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory dirfd that pass keep(), sorted. */
static int
list_dir(int dirfd, bool (*keep)(const char *), struct strlist *out)
{
	DIR *d;
	struct dirent *de;
	int fd, saved;

	/* A fresh open file description: readdir moves its offset. */
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (keep(de->d_name))
			strlist_add(out, de->d_name);
	}
	saved = errno;
	closedir(d);
	if (saved != 0) {
		errno = saved;
		return -1;
	}
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(out->v[0]), cmp_str);
	return 0;
}

static bool
is_stale(int dirfd, const char *name, time_t now)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return false;
	return S_ISREG(st.st_mode) && now - st.st_mtime > QUEUE_STALE_SECS;
}

/*
 * Remove dirfd/name unless a writer or runner holds its lock.  With
 * need_orphan, only when env/name is still absent once we hold the lock.
 */
static int
unlink_if_unlocked(struct queue *q, int dirfd, const char *name,
    bool need_orphan)
{
	struct stat st;
	int fd, rc = -1;

	if ((fd = openat(dirfd, name,
	    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)) == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1)
		goto done;
	if (need_orphan && fstatat(q->envfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		goto done;
	}
	rc = sys->unlinkat(dirfd, name, 0);
done:
	close(fd);
	return rc;
}

static void
clean_tmp(struct queue *q, time_t now)
{
	struct strlist names = { NULL, 0, 0 };

	if (list_dir(q->tmpfd, tmp_name_valid, &names) == -1) {
		log_warn("%s/tmp: cannot list", q->dir);
		goto done;
	}
	for (size_t i = 0; i < names.n; i++) {
		const char *name = names.v[i];
		int rc;

		if (!is_stale(q->tmpfd, name, now))
			continue;
		/* Bodies are locked by their writer; the others are not. */
		if (strlen(name) == QUEUE_ID_LEN)
			rc = unlink_if_unlocked(q, q->tmpfd, name, false);
		else
			rc = sys->unlinkat(q->tmpfd, name, 0);
		if (rc == 0)
			log_info("%.*s: removed stale temporary file tmp/%s",
			    QUEUE_ID_LEN, name, name);
	}
done:
	strlist_free(&names);
}

static void
clean_orphans(struct queue *q, const struct strlist *envs, time_t now)
{
	struct strlist names = { NULL, 0, 0 };

	if (list_dir(q->datafd, queue_id_valid, &names) == -1) {
		log_warn("%s/data: cannot list", q->dir);
		goto done;
	}
	for (size_t i = 0; i < names.n; i++) {
		const char *name = names.v[i];

		if ((envs->n > 0 && bsearch(&name, envs->v, envs->n,
		    sizeof(envs->v[0]), cmp_str) != NULL) ||
		    !is_stale(q->datafd, name, now))
			continue;
		if (unlink_if_unlocked(q, q->datafd, name, true) == 0)
			log_info("%s: removed body without envelope", name);
	}
done:
	strlist_free(&names);
}

struct queue_scan {
	struct queue	*q;
	struct strlist	 ids;
	size_t		 next;
};

int
queue_scan_begin(struct queue *q, struct queue_scan **sp)
{
	struct queue_scan *sc = xcalloc(1, sizeof(*sc));
	time_t now = time(NULL);
	int saved;

	sc->q = q;
	if (list_dir(q->envfd, queue_id_valid, &sc->ids) == -1) {
		saved = errno;
		queue_scan_end(sc);
		*sp = NULL;
		errno = saved;
		return -1;
	}
	clean_tmp(q, now);
	clean_orphans(q, &sc->ids, now);
	*sp = sc;
	return 0;
}

/* One listed message: to cb when it is sound (0), else skipped (1). */
static int
scan_one(struct queue *q, const char *id, struct envelope *env)
{
	struct stat st;
	const char *why;
	int lrc = env_load(q, id, env, &why);

	if (lrc == LOAD_CORRUPT) {
		queue_msg_quarantine(q, id, why);
		return 1;
	}
	if (lrc == -1) {
		/* Removed since the listing, or unreadable for now. */
		if (errno != ENOENT)
			log_warn("%s: cannot read envelope", id);
		return 1;
	}
	why = NULL;
	if (fstatat(q->datafd, id, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		/* A remover unlinks env/ first, so look again. */
		if (errno != ENOENT ||
		    fstatat(q->envfd, id, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			envelope_free(env);
			return 1;
		}
		why = "body file missing";
	} else if (!S_ISREG(st.st_mode))
		why = "body is not a regular file";
	else if ((uint64_t)st.st_size != env->size)
		why = "body size differs from envelope";
	if (why != NULL) {
		envelope_free(env);
		queue_msg_quarantine(q, id, why);
		return 1;
	}
	return 0;
}

int
queue_scan_step(struct queue_scan *sc, size_t max, queue_scan_cb cb,
    void *arg)
{
	struct envelope env;
	int saved;

	envelope_init(&env);
	for (size_t n = 0; n < max && sc->next < sc->ids.n; n++) {
		if (scan_one(sc->q, sc->ids.v[sc->next++], &env) != 0)
			continue;
		if (cb(sc->q, &env, arg) == -1) {
			saved = errno;
			envelope_free(&env);
			errno = saved;
			return -1;
		}
		envelope_free(&env);
	}
	return sc->next < sc->ids.n ? 1 : 0;
}

void
queue_scan_end(struct queue_scan *sc)
{
	if (sc == NULL)
		return;
	strlist_free(&sc->ids);
	free(sc);
}

int
queue_scan(struct queue *q, queue_scan_cb cb, void *arg)
{
	struct queue_scan *sc;
	int rc, saved;

	if (queue_scan_begin(q, &sc) == -1)
		return -1;
	rc = queue_scan_step(sc, SIZE_MAX, cb, arg);
	saved = errno;
	queue_scan_end(sc);
	errno = saved;
	return rc == -1 ? -1 : 0;
}

/*
 * Drop folder, the owner's side (see "Drop folder" at the top).
 */

int
queue_drop_list(struct queue *q, struct strlist *names)
{
	if (q->drop_mode) {
		errno = EPERM;
		return -1;
	}
	if (q->dropfd == -1)
		return 0;	/* an older spool without drop/ */
	return list_dir(q->dropfd, queue_id_valid, names);
}

static int
parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

static int
pread_all(int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;

	while (n > 0) {
		ssize_t r = pread(fd, p, n, off);

		if (r == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/*
 * A drop file that is not whole: removed once it is an hour old and no
 * writer holds its lock (or it cannot even be opened: a submitter killed
 * between its create and its chmod).  Silent otherwise.
 */
static void
drop_unfinished(struct queue *q, const char *name, const struct stat *st)
{
	struct stat now;
	int fd;

	if (time(NULL) - st->st_mtime <= QUEUE_STALE_SECS)
		return;
	fd = openat(q->dropfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1 && errno != EACCES)
		return;		/* no verdict (EMFILE...): next time */
	if (fd != -1) {
		if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
			close(fd);	/* a live writer, however slow */
			return;
		}
		/* It may have become whole since we looked. */
		if (fstat(fd, &now) == -1 || !S_ISREG(now.st_mode) ||
		    (now.st_mode & 07777) == DROP_READY_MODE ||
		    time(NULL) - now.st_mtime <= QUEUE_STALE_SECS) {
			close(fd);
			return;
		}
	}
	if (sys->unlinkat(q->dropfd, name, 0) == 0)
		log_info("%s: removed unfinished drop file (its writer is gone)",
		    name);
	if (fd != -1)
		close(fd);
}

int
queue_drop_open(struct queue *q, const char *name, struct queue_drop *d,
    const char **why)
{
	char hdr[DROP_HDR_LEN], *ebuf = NULL;
	struct stat st;
	uint64_t blen, elen;
	size_t ml = strlen(DROP_MAGIC);
	int fd, saved;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	envelope_init(&d->env);
	*why = NULL;
	if (q->drop_mode || q->dropfd == -1 || !queue_id_valid(name)) {
		errno = EINVAL;
		return -1;
	}
	/* Look before opening: a file being written is not for us yet. */
	if (fstatat(q->dropfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	if (S_ISLNK(st.st_mode)) {
		*why = "symbolic link in drop/";
		return LOAD_CORRUPT;
	}
	if (S_ISREG(st.st_mode) && (st.st_mode & 07777) != DROP_READY_MODE) {
		drop_unfinished(q, name, &st);
		errno = EAGAIN;
		return -1;
	}
	if ((fd = openat(q->dropfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (errno == ELOOP) {
			*why = "symbolic link in drop/";
			return LOAD_CORRUPT;
		}
		return -1;
	}
	/*
	 * The writer holds its lock until it has fsync'd, checked and closed
	 * the file; another pickup holds it until the file is gone.  Ours is
	 * held until queue_drop_close().
	 */
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK)
			goto fail;
		close(fd);
		errno = EAGAIN;
		return -1;
	}
	if (fstat(fd, &st) == -1)
		goto fail;
	if (st.st_nlink == 0) {
		close(fd);	/* another pickup took it while we waited */
		errno = ENOENT;
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		*why = "not a regular file with one link";
		goto corrupt;
	}
	if ((st.st_mode & 07777) != DROP_READY_MODE) {
		close(fd);	/* changed since we looked */
		errno = EAGAIN;
		return -1;
	}
	if (st.st_size < DROP_HDR_LEN ||
	    pread_all(fd, hdr, sizeof(hdr), 0) == -1 ||
	    memcmp(hdr, DROP_MAGIC, ml) != 0 || hdr[DROP_HDR_LEN - 1] != '\n' ||
	    parse_u64(hdr + ml, 20, &blen) == -1 || hdr[ml + 20] != ' ' ||
	    parse_u64(hdr + ml + 21, 20, &elen) == -1) {
		*why = "bad drop file header";
		goto corrupt;
	}
	for (size_t i = ml + 41; i < DROP_HDR_LEN - 1; i++)
		if (hdr[i] != ' ') {
			*why = "bad drop file header";
			goto corrupt;
		}
	if (elen > QUEUE_ENV_MAX || blen > (uint64_t)st.st_size ||
	    (uint64_t)st.st_size != DROP_HDR_LEN + blen + elen) {
		*why = "drop file size differs from its header";
		goto corrupt;
	}
	ebuf = xmalloc(elen + 1);
	if (pread_all(fd, ebuf, elen, (off_t)(DROP_HDR_LEN + blen)) == -1)
		goto fail;
	if (envelope_decode(ebuf, elen, &d->env, why) == -1)
		goto corrupt;
	if (strcmp(d->env.id, name) != 0 || d->env.size != blen) {
		*why = "drop envelope does not match its file";
		goto corrupt;
	}
	free(ebuf);
	util_strlcpy(d->name, name, sizeof(d->name));
	d->fd = fd;
	d->uid = st.st_uid;
	d->body_off = DROP_HDR_LEN;
	d->body_len = blen;
	return 0;

corrupt:
	envelope_free(&d->env);
	free(ebuf);
	close(fd);
	errno = EBADMSG;
	return LOAD_CORRUPT;
fail:
	saved = errno;
	envelope_free(&d->env);
	free(ebuf);
	close(fd);
	errno = saved;
	return -1;
}

void
queue_drop_close(struct queue_drop *d)
{
	if (d->fd != -1)
		close(d->fd);
	d->fd = -1;
	envelope_free(&d->env);
}

int
queue_drop_remove(struct queue *q, const char *name)
{
	if (q->drop_mode || q->dropfd == -1 || !queue_id_valid(name)) {
		errno = EINVAL;
		return -1;
	}
	if (sys->unlinkat(q->dropfd, name, 0) == -1)
		return -1;
	/* Gone for good before the message can be delivered and removed. */
	return sys->fsync(q->dropfd);
}

int
queue_drop_quarantine(struct queue *q, const char *name, const char *why)
{
	char dname[QUEUE_TMPNAME_MAX], ewhy[512];

	if (q->drop_mode || q->dropfd == -1 || !queue_id_valid(name)) {
		errno = EINVAL;
		return -1;
	}
	util_escape(ewhy, sizeof(ewhy), why != NULL ? why : "unknown");
	snprintf(dname, sizeof(dname), "%s.drop", name);
	if (sys->renameat(q->dropfd, name, q->corruptfd, dname) == -1 ||
	    sys->fsync(q->dropfd) == -1 || sys->fsync(q->corruptfd) == -1) {
		log_warn("%s: cannot move drop/%s to %s/corrupt (%s)", name,
		    name, q->dir, ewhy);
		return -1;
	}
	log_warnx("%s: drop file moved to %s/corrupt: %s", name, q->dir, ewhy);
	return 0;
}

/*
 * Holds file (see the top of this file).
 */

#define HOLDS_MAGIC	"mxrelay-holds 1\n"
#define HOLDS_MAX	(16 * 1024 * 1024)

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
	rc = replace_file(q, "holds.upd", q->rootfd, "holds", buf, len);
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
	if ((fd = open_regular(q->rootfd, "holds")) == -1)
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
