/*
 * privs: who runs where.  See privs.h and mxrelay(8) SECURITY.
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privs.h"
#include "util.h"

#ifndef SUBMIT_GROUP
#define SUBMIT_GROUP	"mxsubmit"
#endif

/* mkdir -p for the parents of path (root's folders: 0755). */
static int
make_parents(const char *path, char *err, size_t errlen)
{
	char *p = xstrdup(path);

	for (char *s = p + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(p, 0755) == -1 && errno != EEXIST) {
			util_seterr(err, errlen, "%s: %s", p, strerror(errno));
			free(p);
			return -1;
		}
		*s = '/';
	}
	free(p);
	return 0;
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
	if ((*fdp = openat(dirfd, path,
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

int
privs_spool_prepare(const char *spool_dir, const char *user, char *err,
    size_t errlen)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid = 0;
	gid_t gid = 0;
	int fd = -1, dfd = -1, r, rc = -1;
	char *what = NULL;

	if (geteuid() != 0)
		return 0;
	if (user != NULL && (pw = getpwnam(user)) != NULL) {
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if ((gr = getgrnam(SUBMIT_GROUP)) != NULL)
		gid = gr->gr_gid;
	if (make_parents(spool_dir, err, errlen) == -1)
		return -1;
	if ((r = make_dir(AT_FDCWD, spool_dir, &fd, err, errlen)) <= 0)
		return r;
	/* drop/ before the spool is given away: nobody else can be in it. */
	what = xasprintf("%s/drop", spool_dir);
	if (make_dir(fd, "drop", &dfd, err, errlen) != 1 ||
	    give(dfd, what, uid, gid, 01730, err, errlen) == -1 ||
	    give(fd, spool_dir, uid, gid, gr != NULL ? 0710 : 0700, err,
	    errlen) == -1)
		goto done;
	rc = 0;
done:
	if (dfd != -1)
		close(dfd);
	close(fd);
	free(what);
	return rc;
}

int
privs_runtime_prepare(const char *dir, const char *user, char *err,
    size_t errlen)
{
	struct passwd *pw;
	int fd, r;

	if (geteuid() != 0)
		return 0;
	if (make_parents(dir, err, errlen) == -1)
		return -1;
	if ((r = make_dir(AT_FDCWD, dir, &fd, err, errlen)) <= 0)
		return r;
	pw = user != NULL ? getpwnam(user) : NULL;
	r = give(fd, dir, pw != NULL ? pw->pw_uid : 0,
	    pw != NULL ? pw->pw_gid : 0, 0755, err, errlen);
	close(fd);
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
privs_become_spool_owner(const char *spool_dir, char *err, size_t errlen)
{
	struct passwd *pw;
	struct stat st;
	gid_t gid;

	if (geteuid() != 0)
		return 0;
	if (lstat(spool_dir, &st) == -1) {
		util_seterr(err, errlen, "%s: %s", spool_dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		util_seterr(err, errlen, "%s: not a folder (%s)", spool_dir,
		    S_ISLNK(st.st_mode) ? "a symbolic link" : "another type");
		return -1;
	}
	if (st.st_uid == 0)
		return 0;	/* root's own spool */
	gid = (pw = getpwuid(st.st_uid)) != NULL ? pw->pw_gid : st.st_gid;
	return privs_become(st.st_uid, gid, err, errlen);
}

void
privs_lose_setgid(void)
{
	gid_t g = getgid();

	if (setresgid(g, g, g) == -1)
		abort();	/* never go on with a privilege we meant to lose */
}
