/*
 * spool_drop: the drop folder of the spool (see "Drop folder" at the top
 * of spool.c): drop/ itself, the submitter's side (drop mode: a new
 * message becomes one drop file) and the owner's side (the pickup lists,
 * opens, removes and quarantines drop files).
 */
#include "config.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
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

#define DROP_MAGIC		"mxrelay-drop 1 "
#define DROP_HDR_LEN		QUEUE_LENS_LEN
#define DROP_READY_MODE		0404	/* whole: the owner reads it as "other" */
#define DROP_WRITING_MODE	0604	/* being written, its writer holds a lock */

static gid_t	 submit_gid(void);
static int	 pread_all(int, void *, size_t, off_t);
static void	 drop_unfinished(struct queue *, const char *,
		    const struct stat *);
static int	 drop_look(struct queue *, const char *, const char **);
static int	 drop_lock(int, struct stat *, const char **);
static int	 drop_read_header(int, const struct stat *, uint64_t *,
		    uint64_t *, const char **);
static int	 drop_read_envelope(int, const char *, uint64_t, uint64_t,
		    struct envelope *, const char **);

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
int
spool_open_drop_dir(struct queue *q, bool create, bool *made)
{
	bool made_here = false;
	gid_t gid;

	if (create) {
		if (spool_sys->mkdirat(q->rootfd, "drop", 0700) == 0)
			made_here = *made = true;
		else if (errno != EEXIST)
			return -1;
	}
	q->dropfd = spool_sys->openat(q->rootfd, "drop",
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
 * Drop mode: take up the submit group for one call, then give it back.
 * The saved set-group-ID keeps it between calls; nothing else in the
 * process runs with it.
 */
int
spool_raise_group(const struct queue *q)
{
	return q->raise ? setegid(q->raise_gid) : 0;
}

void
spool_lower_group(const struct queue *q)
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
	spool_msg_init(q);
	q->dir = xstrdup(dir);
	q->drop_mode = true;
	q->raise = gid != (gid_t)-1 && gid != getgid();
	q->raise_gid = gid;
	path = xasprintf("%s/drop", dir);
	if (spool_raise_group(q) == -1) {
		saved = errno;
		free(path);
		queue_close(q);
		errno = saved;
		return -1;
	}
	/* O_PATH: the group may search drop/ but not read it. */
	q->dropfd = spool_sys->openat(AT_FDCWD, path,
	    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	spool_lower_group(q);
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

/* Drop mode: a new drop/ID, with room for its header. */
int
spool_drop_begin(struct queue_new *qn)
{
	static const char zero[DROP_HDR_LEN];
	struct queue *q = qn->q;

	for (int i = 0; i < QUEUE_ID_TRIES; i++) {
		spool_id_generate(qn->id);
		if (spool_raise_group(q) == -1)
			return -1;
		qn->fd = spool_sys->openat(q->dropfd, qn->id, O_WRONLY |
		    O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		spool_lower_group(q);
		if (qn->fd == -1) {
			if (errno == EEXIST)
				continue;
			return -1;
		}
		/* Whatever the umask: the owner must be able to test the lock. */
		if (flock(qn->fd, LOCK_EX | LOCK_NB) == -1 ||
		    fchmod(qn->fd, DROP_WRITING_MODE) == -1 ||
		    spool_write_all(qn->fd, zero, sizeof(zero)) == -1) {
			spool_new_discard(qn);
			return -1;
		}
		return 0;
	}
	errno = EEXIST;
	return -1;
}

/*
 * Drop mode: body, then envelope, then the header at offset 0, mode 0404,
 * one fsync (see "Drop folder" at the top of spool.c).
 */
int
spool_drop_commit(struct queue_new *qn, struct envelope *env)
{
	char hdr[DROP_HDR_LEN], *ebuf = NULL;
	size_t elen;
	int rc = -1, saved;

	if (qn->err != 0) {
		errno = qn->err;
		goto done;
	}
	if (spool_new_flush(qn) == -1)
		goto done;
	util_strlcpy(env->id, qn->id, sizeof(env->id));
	env->size = qn->size;
	if (env->arrival == 0)
		env->arrival = time(NULL);
	if (envelope_encode(env, &ebuf, &elen) == -1)
		goto done;
	if (spool_write_all(qn->fd, ebuf, elen) == -1)
		goto done;
	spool_lens_put(hdr, DROP_MAGIC, qn->size, (uint64_t)elen);
	if (pwrite(qn->fd, hdr, DROP_HDR_LEN, 0) != DROP_HDR_LEN) {
		if (errno == 0)
			errno = EIO;
		goto done;
	}
	if (fchmod(qn->fd, DROP_READY_MODE) == -1 ||
	    spool_sys->fsync(qn->fd) == -1)
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
	saved = spool_sys->close(qn->fd);
	qn->fd = -1;
	if (saved == -1)
		goto done;
	rc = 0;
done:
	saved = errno;
	if (rc == -1) {
		/* A write that failed (qn->err) has removed it already. */
		if (qn->err == 0)
			spool_new_unlink(qn);
		env->id[0] = '\0';
	}
	if (qn->fd != -1)
		spool_sys->close(qn->fd);
	free(ebuf);
	free(qn);
	if (rc == -1)
		errno = saved;
	return rc;
}

/*
 * Drop folder, the owner's side (see "Drop folder" at the top of
 * spool.c).
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
	return spool_list_dir(q->dropfd, queue_id_valid, names);
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
	if (spool_sys->unlinkat(q->dropfd, name, 0) == 0)
		log_info("%s: removed unfinished drop file (its writer is gone)",
		    name);
	if (fd != -1)
		close(fd);
}

/*
 * Look before opening: a file being written is not for us yet (an old
 * one is removed, see drop_unfinished()).
 */
static int
drop_look(struct queue *q, const char *name, const char **why)
{
	struct stat st;

	if (fstatat(q->dropfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		return -1;
	if (S_ISLNK(st.st_mode)) {
		*why = "symbolic link in drop/";
		return QUEUE_LOAD_CORRUPT;
	}
	if (S_ISREG(st.st_mode) && (st.st_mode & 07777) != DROP_READY_MODE) {
		drop_unfinished(q, name, &st);
		errno = EAGAIN;
		return -1;
	}
	return 0;
}

/*
 * Lock the open file and look at it again: one link, whole.  The writer
 * holds its lock until it has fsync'd, checked and closed the file;
 * another pickup holds it until the file is gone.  Ours is held until
 * queue_drop_close().
 */
static int
drop_lock(int fd, struct stat *st, const char **why)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			errno = EAGAIN;
		return -1;
	}
	if (fstat(fd, st) == -1)
		return -1;
	if (st->st_nlink == 0) {
		errno = ENOENT;	/* another pickup took it while we waited */
		return -1;
	}
	if (!S_ISREG(st->st_mode) || st->st_nlink != 1) {
		*why = "not a regular file with one link";
		return QUEUE_LOAD_CORRUPT;
	}
	if ((st->st_mode & 07777) != DROP_READY_MODE) {
		errno = EAGAIN;	/* changed since we looked */
		return -1;
	}
	return 0;
}

/* The header: the body and envelope lengths, which must add up. */
static int
drop_read_header(int fd, const struct stat *st, uint64_t *blen,
    uint64_t *elen, const char **why)
{
	char hdr[DROP_HDR_LEN];

	if (st->st_size < DROP_HDR_LEN ||
	    pread_all(fd, hdr, sizeof(hdr), 0) == -1 ||
	    !spool_lens_get(hdr, DROP_MAGIC, blen, elen)) {
		*why = "bad drop file header";
		return QUEUE_LOAD_CORRUPT;
	}
	if (*elen > QUEUE_ENV_MAX || *blen > (uint64_t)st->st_size ||
	    (uint64_t)st->st_size != DROP_HDR_LEN + *blen + *elen) {
		*why = "drop file size differs from its header";
		return QUEUE_LOAD_CORRUPT;
	}
	return 0;
}

/* The envelope after the body; it must name this file and this body. */
static int
drop_read_envelope(int fd, const char *name, uint64_t blen, uint64_t elen,
    struct envelope *env, const char **why)
{
	char *ebuf = xmalloc(elen + 1);
	int rc = 0, saved;

	if (pread_all(fd, ebuf, elen, (off_t)(DROP_HDR_LEN + blen)) == -1)
		rc = -1;
	else if (envelope_decode(ebuf, elen, env, why) == -1)
		rc = QUEUE_LOAD_CORRUPT;
	else if (strcmp(env->id, name) != 0 || env->size != blen) {
		*why = "drop envelope does not match its file";
		rc = QUEUE_LOAD_CORRUPT;
	}
	saved = errno;
	if (rc != 0)
		envelope_free(env);
	free(ebuf);
	errno = saved;
	return rc;
}

/*
 * Pickup, in this order: look, open without following a link, lock and
 * look again, read the header, read the envelope (what it returns: see
 * spool.h).
 */
int
queue_drop_open(struct queue *q, const char *name, struct queue_drop *d,
    const char **why)
{
	struct stat st;
	uint64_t blen, elen;
	int fd, rc, saved;

	memset(d, 0, sizeof(*d));
	d->fd = -1;
	envelope_init(&d->env);
	*why = NULL;
	if (q->drop_mode || q->dropfd == -1 || !queue_id_valid(name)) {
		errno = EINVAL;
		return -1;
	}
	if ((rc = drop_look(q, name, why)) != 0)
		return rc;
	if ((fd = openat(q->dropfd, name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)) == -1) {
		if (errno == ELOOP) {
			*why = "symbolic link in drop/";
			return QUEUE_LOAD_CORRUPT;
		}
		return -1;
	}
	rc = drop_lock(fd, &st, why);
	if (rc == 0)
		rc = drop_read_header(fd, &st, &blen, &elen, why);
	if (rc == 0)
		rc = drop_read_envelope(fd, name, blen, elen, &d->env, why);
	if (rc != 0) {
		saved = errno;
		close(fd);
		errno = rc == QUEUE_LOAD_CORRUPT ? EBADMSG : saved;
		return rc;
	}
	util_strlcpy(d->name, name, sizeof(d->name));
	d->fd = fd;
	d->uid = st.st_uid;
	d->body_off = DROP_HDR_LEN;
	d->body_len = blen;
	return 0;
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
	if (spool_sys->unlinkat(q->dropfd, name, 0) == -1)
		return -1;
	/* Gone for good before the message can be delivered and removed. */
	return spool_sys->fsync(q->dropfd);
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
	if (spool_sys->renameat(q->dropfd, name, q->corruptfd, dname) == -1 ||
	    spool_sys->fsync(q->dropfd) == -1 ||
	    spool_sys->fsync(q->corruptfd) == -1) {
		log_warn("%s: cannot move drop/%s to %s/corrupt (%s)", name,
		    name, q->dir, ewhy);
		return -1;
	}
	log_warnx("%s: drop file moved to %s/corrupt: %s", name, q->dir, ewhy);
	return 0;
}
