/*
 * spool_scan: listing the spool's folders, the scan of env/ (messages in
 * queue id order, corrupt envelopes moved aside) and the cleanup of what
 * crashed writers and removals left behind (see "Invariants" at the top
 * of spool.c).
 */
#include "config.h"

#include <sys/types.h>
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
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

static bool	 tmp_name_valid(const char *);
static int	 cmp_str(const void *, const void *);
static bool	 is_stale(int, const char *, time_t);
static void	 clean_tmp(struct queue *, time_t);
static void	 clean_orphans(struct queue *, const struct strlist *, time_t);
static bool	 upd_name_valid(const char *);
static int	 list_msgs(struct queue *, struct strlist *, time_t);

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

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in directory dirfd that pass keep(), sorted. */
int
spool_list_dir(int dirfd, bool (*keep)(const char *), struct strlist *out)
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
int
spool_unlink_if_unlocked(struct queue *q, int dirfd, const char *name,
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
	rc = spool_sys->unlinkat(dirfd, name, 0);
done:
	close(fd);
	return rc;
}

static void
clean_tmp(struct queue *q, time_t now)
{
	struct strlist names = { NULL, 0, 0 };

	if (spool_list_dir(q->tmpfd, tmp_name_valid, &names) == -1) {
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
			rc = spool_unlink_if_unlocked(q, q->tmpfd, name, false);
		else
			rc = spool_sys->unlinkat(q->tmpfd, name, 0);
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
	bool synced = false;

	if (spool_list_dir(q->datafd, queue_id_valid, &names) == -1) {
		log_warn("%s/data: cannot list", q->dir);
		goto done;
	}
	for (size_t i = 0; i < names.n; i++) {
		const char *name = names.v[i];

		if ((envs->n > 0 && bsearch(&name, envs->v, envs->n,
		    sizeof(envs->v[0]), cmp_str) != NULL) ||
		    !is_stale(q->datafd, name, now))
			continue;
		/*
		 * Its envelope's removal may not be durable yet (a remover
		 * syncs env/ before it unlinks the body, but it may have
		 * failed or crashed in between): make it so first, else a
		 * crash could bring the envelope back without its body.
		 */
		if (!synced) {
			if (spool_sys->fsync(q->envfd) == -1) {
				log_warn("%s/env: cannot sync", q->dir);
				break;
			}
			synced = true;
		}
		if (spool_unlink_if_unlocked(q, q->datafd, name, true) == 0)
			log_info("%s: removed body without envelope", name);
	}
done:
	strlist_free(&names);
}

/* "ID.env": an update of the envelope in msg/ID. */
static bool
upd_name_valid(const char *s)
{
	return strlen(s) == QUEUE_ID_LEN + 4 && tmp_name_valid(s) &&
	    strcmp(s + QUEUE_ID_LEN, ".env") == 0;
}

/*
 * Add the messages of msg/ to ids (those of env/), sorted and each once,
 * and remove the stale updates (msg/ID.env) whose message is gone: the
 * leftovers of a crash inside a removal.
 */
static int
list_msgs(struct queue *q, struct strlist *ids, time_t now)
{
	struct strlist msgs = { NULL, 0, 0 }, upds = { NULL, 0, 0 };
	struct stat st;
	size_t v1 = ids->n;
	bool synced = false;
	int rc = -1;

	if (spool_list_dir(q->msgfd, queue_id_valid, &msgs) == -1)
		goto done;
	for (size_t i = 0; i < msgs.n; i++)
		if (v1 == 0 || bsearch(&msgs.v[i], ids->v, v1,
		    sizeof(ids->v[0]), cmp_str) == NULL)
			strlist_add(ids, msgs.v[i]);
	if (ids->n > v1 && v1 > 0)
		qsort(ids->v, ids->n, sizeof(ids->v[0]), cmp_str);
	if (spool_list_dir(q->msgfd, upd_name_valid, &upds) == -1) {
		log_warn("%s/msg: cannot list", q->dir);
		rc = 0;
		goto done;
	}
	for (size_t i = 0; i < upds.n; i++) {
		char id[QUEUE_ID_LEN + 1];

		memcpy(id, upds.v[i], QUEUE_ID_LEN);
		id[QUEUE_ID_LEN] = '\0';
		if (fstatat(q->msgfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
		    !is_stale(q->msgfd, upds.v[i], now))
			continue;
		/*
		 * The removal of msg/ID may not be durable yet (a remover
		 * in this or another process unlinks the update only after
		 * its sync of msg/, but it may have failed or not run yet):
		 * make it so first, else a crash could bring the message
		 * back without its update (its delivered recipients again).
		 */
		if (!synced) {
			/* 0: after any failed round, nothing proves it. */
			if (spool_msg_dir_sync(q, 0) == -1) {
				log_warn("%s/msg: cannot sync", q->dir);
				break;
			}
			synced = true;
		}
		if (spool_sys->unlinkat(q->msgfd, upds.v[i], 0) == 0)
			log_info("%s: removed the envelope update of a message "
			    "that is gone", id);
	}
	rc = 0;
done:
	strlist_free(&msgs);
	strlist_free(&upds);
	return rc;
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
	if (spool_list_dir(q->envfd, queue_id_valid, &sc->ids) == -1 ||
	    (q->msgfd != -1 && list_msgs(q, &sc->ids, now) == -1)) {
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
	int lrc = spool_env_load(q, id, env, &why);

	if (lrc == QUEUE_LOAD_CORRUPT) {
		queue_msg_quarantine(q, id, why);
		return 1;
	}
	if (lrc == -1) {
		/* Removed since the listing, or unreadable for now. */
		if (errno != ENOENT)
			log_warn("%s: cannot read envelope", id);
		return 1;
	}
	/* msg/ID: spool_env_load() checked the body's length. */
	if (q->msgfd != -1 &&
	    fstatat(q->msgfd, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
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
