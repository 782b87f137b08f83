/*
 * privs: who runs where.  See privs.h and mxrelay(8) SECURITY.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privs.h"
#include "util.h"

/*
 * Open the parent folder of path as root, making the missing ones (0755,
 * each made durable in its parent).  Every folder on the way must be
 * root's and writable by nobody else (but for a sticky one such as /tmp),
 * and so must a symbolic link on the way: no other user can then change
 * where the path leads.  The last component goes to *base (in *copy, to
 * be freed).  The parent's fd, or -1 with err.
 */
static int
open_parent(const char *path, char **copy, const char **base, char *err,
    size_t errlen)
{
	char *p, *s, *next;
	struct stat st;
	int fd, nfd;

	*copy = NULL;
	if (path[0] != '/') {
		util_seterr(err, errlen, "%s: not an absolute path", path);
		return -1;
	}
	p = *copy = xstrdup(path);
	for (size_t n = strlen(p); n > 1 && p[n - 1] == '/'; n--)
		p[n - 1] = '\0';
	if ((fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		goto fail;
	for (s = p + 1; (next = strchr(s, '/')) != NULL; s = next + 1) {
		*next = '\0';
		if (*s == '\0') {
			*next = '/';
			continue;
		}
		if (fstatat(fd, s, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno != ENOENT || mkdirat(fd, s, 0755) == -1 ||
			    fsync(fd) == -1)
				goto fail_at;
		} else if (st.st_uid != 0) {
			util_seterr(err, errlen, "%s: not root's (root makes "
			    "nothing below it)", p);
			goto fail_quiet;
		}
		if ((nfd = openat(fd, s, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) ==
		    -1)
			goto fail_at;
		close(fd);
		fd = nfd;
		if (fstat(fd, &st) == -1)
			goto fail_at;
		if (st.st_uid != 0 ||
		    ((st.st_mode & 022) != 0 && (st.st_mode & S_ISVTX) == 0)) {
			util_seterr(err, errlen, "%s: not root's, or writable by "
			    "others (root makes nothing below it)", p);
			goto fail_quiet;
		}
		*next = '/';
	}
	*base = s;
	return fd;

fail_at:
	util_seterr(err, errlen, "%s: %s", p, strerror(errno));
	goto fail_quiet;
fail:
	util_seterr(err, errlen, "%s: %s", path, strerror(errno));
fail_quiet:
	if (fd != -1)
		close(fd);
	free(*copy);
	*copy = NULL;
	return -1;
}

/*
 * mkdir path (mode 0700 until it is given away) and open it without
 * following a link.  1: made now; 0: it existed (fd -1); -1: error.
 */
static int
make_dir(int dirfd, const char *path, int *fdp, char *err, size_t errlen)
{
	*fdp = -1;
	if (mkdirat(dirfd, path, 0700) == -1) {
		if (errno == EEXIST)
			return 0;
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fsync(dirfd) == -1 || (*fdp = openat(dirfd, path,
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	return 1;
}

static int
give(int fd, const char *what, uid_t uid, gid_t gid, mode_t mode, char *err,
    size_t errlen)
{
	if (fchown(fd, uid, gid) == -1 || fchmod(fd, mode) == -1 ||
	    fsync(fd) == -1) {
		util_seterr(err, errlen, "%s: %s", what, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Every folder of the spool, and every file in them, belongs to uid:
 * messages that root queued in an earlier version's spool would be
 * unreadable for the daemon.  Nothing is changed here.
 */
static int
spool_files_owned(int fd, const char *spool_dir, uid_t uid, char *err,
    size_t errlen)
{
	static const char *subs[] = { "tmp", "msg", "data", "env", "corrupt",
	    "drop" };

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		struct dirent *de;
		struct stat st;
		DIR *d;
		int sfd;

		if ((sfd = openat(fd, subs[i], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) == -1) {
			if (errno == ENOENT)
				continue;
			util_seterr(err, errlen, "%s/%s: %s", spool_dir, subs[i],
			    strerror(errno));
			return -1;
		}
		if (fstat(sfd, &st) == -1 || st.st_uid != uid ||
		    (d = fdopendir(sfd)) == NULL) {
			close(sfd);
			goto not_owned;
		}
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (strcmp(subs[i], "drop") == 0)
				continue;	/* the submitters' files */
			if (fstatat(sfd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == -1 || st.st_uid != uid) {
				closedir(d);
				goto not_owned;
			}
		}
		closedir(d);
	}
	return 0;
not_owned:
	util_seterr(err, errlen, "%s: files of another user than the daemon's "
	    "(uid %lu) in it, queued by an earlier version: give them to that "
	    "user first (chown -R), then run mxrelayd -i again", spool_dir,
	    (unsigned long)uid);
	return -1;
}

/*
 * The spool's drop/ (the spool at fd): made when missing, else opened
 * without following a link and taken only when it is user's; then given
 * to uid and the submit group (gid), mode 1730.
 */
static int
drop_prepare(int fd, const char *spool_dir, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	struct stat st;
	char *what = xasprintf("%s/drop", spool_dir);
	int dfd = -1, made, rc = -1;

	if ((made = make_dir(fd, "drop", &dfd, err, errlen)) == -1)
		goto done;
	if (dfd == -1 && (dfd = openat(fd, "drop",
	    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		util_seterr(err, errlen, "%s: %s", what, strerror(errno));
		goto done;
	}
	/* Root's only when we just made it. */
	if (fstat(dfd, &st) == -1 || (st.st_uid != uid && !made)) {
		util_seterr(err, errlen, "%s: not the spool owner's", what);
		goto done;
	}
	rc = give(dfd, what, uid, gid, 01730, err, errlen);
done:
	if (dfd != -1)
		close(dfd);
	free(what);
	return rc;
}

/*
 * An existing spool of user's (-i, after an upgrade): the submit group
 * and the modes the drop folder needs.  Only folders that already belong
 * to user are changed (opened without following links), and drop/ is
 * made when missing.
 */
static int
spool_fix(int fd, const char *spool_dir, uid_t uid, gid_t gid, bool group,
    char *err, size_t errlen)
{
	struct stat st;

	if (fstat(fd, &st) == -1) {
		util_seterr(err, errlen, "%s: %s", spool_dir, strerror(errno));
		return -1;
	}
	if (st.st_uid != uid) {
		util_seterr(err, errlen, "%s: owned by uid %lu, not by the "
		    "daemon's user (uid %lu): give it to that user first "
		    "(chown -R)", spool_dir, (unsigned long)st.st_uid,
		    (unsigned long)uid);
		return -1;
	}
	if (spool_files_owned(fd, spool_dir, uid, err, errlen) == -1 ||
	    drop_prepare(fd, spool_dir, uid, gid, err, errlen) == -1)
		return -1;
	return give(fd, spool_dir, uid, gid, group ? 0710 : 0700, err, errlen);
}

int
privs_spool_prepare(const char *spool_dir, const char *user, bool fix,
    char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid = 0;
	gid_t gid = 0;
	int pfd, fd = -1, r, rc = -1;
	char *copy;
	const char *base;

	if (geteuid() != 0)
		return 0;
	if (user != NULL && (pw = getpwnam(user)) != NULL) {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if ((gr = getgrnam(SUBMIT_GROUP)) != NULL)
		gid = gr->gr_gid;
	if ((pfd = open_parent(spool_dir, &copy, &base, err, errlen)) == -1)
		return -1;
	if ((r = make_dir(pfd, base, &fd, err, errlen)) == -1)
		goto done;
	if (r == 0) {
		rc = 0;
		if (fix) {
			if ((fd = openat(pfd, base, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC)) == -1) {
				util_seterr(err, errlen, "%s: %s", spool_dir,
				    strerror(errno));
				rc = -1;
			} else
				rc = spool_fix(fd, spool_dir, uid, gid,
				    gr != NULL, err, errlen);
		}
		goto done;
	}
	/* drop/ before the spool is given away: nobody else can be in it. */
	if (drop_prepare(fd, spool_dir, uid, gid, err, errlen) == -1 ||
	    give(fd, spool_dir, uid, gid, gr != NULL ? 0710 : 0700, err,
	    errlen) == -1)
		goto done;
	rc = 0;
done:
	if (fd != -1)
		close(fd);
	close(pfd);
	free(copy);
	return rc;
}

int
privs_runtime_prepare(const char *dir, const char *user, char *err,
    size_t errlen)
{
	struct passwd *pw;
	char *copy;
	const char *base;
	int pfd, fd, r;

	if (geteuid() != 0)
		return 0;
	if ((pfd = open_parent(dir, &copy, &base, err, errlen)) == -1)
		return -1;
	if ((r = make_dir(pfd, base, &fd, err, errlen)) <= 0) {
		close(pfd);
		free(copy);
		return r;
	}
	pw = user != NULL ? getpwnam(user) : NULL;
	r = give(fd, dir, pw != NULL ? pw->pw_uid : 0,
	    pw != NULL ? pw->pw_gid : 0, 0755, err, errlen);
	close(fd);
	close(pfd);
	free(copy);
	return r;
}

int
privs_spool_owner(const char *spool_dir, uid_t *uid)
{
	struct stat st;

	if (lstat(spool_dir, &st) == -1)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	*uid = st.st_uid;
	return 0;
}

int
privs_become(uid_t uid, gid_t gid, char *err, size_t errlen)
{
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1) {
		util_seterr(err, errlen, "cannot become uid %lu: %s",
		    (unsigned long)uid, strerror(errno));
		return -1;
	}
	if (uid != 0 && (setuid(0) != -1 || seteuid(0) != -1)) {
		util_seterr(err, errlen, "could regain root after dropping it");
		return -1;
	}
	return 0;
}

int
privs_become_spool_owner(const char *spool_dir, const char *user, char *err,
    size_t errlen)
{
	struct passwd *pw;
	uid_t owner;

	if (geteuid() != 0)
		return 0;
	if (privs_spool_owner(spool_dir, &owner) == -1) {
		util_seterr(err, errlen, "%s: %s", spool_dir, errno == ENOTDIR ?
		    "not a folder (or a symbolic link)" : strerror(errno));
		return -1;
	}
	if (owner == 0)
		return 0;	/* root's own spool */
	if (user == NULL || (pw = getpwnam(user)) == NULL ||
	    pw->pw_uid != owner) {
		util_seterr(err, errlen, "%s: owned by uid %lu, not by %s (the "
		    "configuration's user): root does not work as whoever made "
		    "it", spool_dir, (unsigned long)owner,
		    user != NULL ? user : "?");
		return -1;
	}
	return privs_become(owner, pw->pw_gid, err, errlen);
}

int
privs_check_not_submitter(char *err, size_t errlen)
{
	struct group *gr;
	gid_t groups[256];
	int n;

	if (geteuid() == 0 || (gr = getgrnam(SUBMIT_GROUP)) == NULL)
		return 0;
	n = getgroups(256, groups);
	for (int i = -1; i < n; i++)
		if ((i == -1 ? getegid() : groups[i]) == gr->gr_gid) {
			util_seterr(err, errlen, "the spool's owner (uid %lu) is "
			    "in the submit group %s: it could not read what "
			    "users drop (take it out of the group)",
			    (unsigned long)geteuid(), SUBMIT_GROUP);
			return -1;
		}
	return 0;
}

void
privs_lose_setgid(void)
{
	gid_t g = getgid();

	if (setresgid(g, g, g) == -1)
		abort();	/* never go on with a privilege we meant to lose */
}
