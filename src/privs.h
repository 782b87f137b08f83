/*
 * privs: who runs where (mxrelay(8) SECURITY, ARCHITECTURE.md).
 *
 * Nothing runs as root inside a folder that an unprivileged user owns:
 * root makes the spool and the runtime folder only when they are missing
 * (and may then give them away, having just made them), and otherwise
 * becomes the spool's owner before it opens anything in the spool.
 *
 * Every function returns 0, or -1 with a message in err.
 */
#ifndef MXRELAY_PRIVS_H
#define MXRELAY_PRIVS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Root only (a no-op otherwise): when spool_dir is missing, make it (and
 * its missing parents, 0755) owned by user, or by root when there is no
 * such user, with the submit group and mode 0710, and its drop/ folder
 * with mode 1730.  The folders on the way must be root's and writable by
 * nobody else (but for sticky ones).  An existing spool is left exactly
 * as it is, unless fix (mxrelayd -i): then a spool that belongs to user
 * gets the group and modes above and a drop/ folder (an upgrade).
 */
int	 privs_spool_prepare(const char *spool_dir, const char *user, bool fix,
	    char *err, size_t errlen);
/* Root only: when dir is missing, make it, mode 0755, owned by user. */
int	 privs_runtime_prepare(const char *dir, const char *user, char *err,
	    size_t errlen);
/*
 * Root only: become the owner of spool_dir (its uid, and the primary
 * group of that user), for good.  A spool owned by root keeps root.  The
 * owner must be user (the configuration's): root never becomes whoever
 * happened to make the folder.
 */
int	 privs_become_spool_owner(const char *spool_dir, const char *user,
	    char *err, size_t errlen);
/* Become uid:gid for good (supplementary groups: gid only). */
int	 privs_become(uid_t uid, gid_t gid, char *err, size_t errlen);
/*
 * The owner of spool_dir: 0 with *uid, or -1 with errno (ENOENT when the
 * spool does not exist yet; ENOTDIR when it is not a folder).
 */
int	 privs_spool_owner(const char *spool_dir, uid_t *uid);
/* Lose the set-group-ID privilege of the program for good. */
void	 privs_lose_setgid(void);
/*
 * The spool's owner must not be in the submit group: drop files are mode
 * 0404, so the group's bits would deny it the read.  -1 with err when it
 * is (root, who reads anything, is never refused).
 */
int	 privs_check_not_submitter(char *err, size_t errlen);

#endif
