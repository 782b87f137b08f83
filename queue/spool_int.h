/*
 * spool_int: what the five files of the spool share, and nothing for
 * other modules (they use spool.h).  spool.c: the layout and the on-disk
 * format (the comment at its top), opening, queue ids, new messages and
 * their commit, locking, envelope load and update, removal, quarantine;
 * spool_drop.c: the drop folder, both the submitter's side (drop mode)
 * and the owner's (read by the pickup); spool_scan.c: listing folders,
 * the scan and its cleanup of leftovers; spool_holds.c: the holds file;
 * spool_msg.c: the message file's trailer and the group commit of msg/.
 */
#ifndef MXRELAY_SPOOL_INT_H
#define MXRELAY_SPOOL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "envelope.h"
#include "spool.h"
#include "spool_test.h"
#include "util.h"

#define QUEUE_BUFSIZE		(64 * 1024)
#define QUEUE_STALE_SECS	3600		/* leftovers older than this go */
#define QUEUE_ENV_MAX		(64 * 1024 * 1024)	/* larger = corrupt */
#define QUEUE_ID_TRIES		100
#define QUEUE_TMPNAME_MAX	(QUEUE_ID_LEN + 8)
#define QUEUE_LENS_LEN		64		/* spool_lens_put() */
#define QUEUE_MSG_TRAILER_LEN	QUEUE_LENS_LEN	/* see the top of spool.c */
#define QUEUE_MSG_MAGIC		"mxrelay-msg 1 "	/* its record's magic */

/*
 * Group commit of msg/ (spool_msg_dir_sync): changes (renames into msg/,
 * unlinks) are counted; an fsync round covers the changes counted before
 * it began.  synced: the last count covered by a round that succeeded.
 * fails: the rounds that failed so far (spool_msg_fails()), the last
 * with err.
 */
struct spool_msync {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	uint64_t	 renamed;
	uint64_t	 synced;
	uint64_t	 fails;
	int		 err;
	bool		 busy;		/* a round is under way */
};

/* Removals batched by queue_msg_remove_later() before one flush. */
#define QUEUE_REMOVE_BATCH	256

struct queue {
	char	*dir;
	int	 rootfd;
	int	 tmpfd;
	int	 datafd;
	int	 envfd;
	int	 corruptfd;
	int	 dropfd;	/* drop/; -1 when missing (older spools) */
	int	 msgfd;		/* msg/; -1 when missing (older spools) */
	struct spool_msync msync;
	/* msg/ID unlinked; msg/ID.env (if any) still there */
	struct strlist removed;
	uint64_t removed_fails;	/* spool_msg_fails() before the first */
	/* Version 1: env/ID unlinked; data/ID still there */
	struct strlist removed_v1;
	/*
	 * Drop mode (queue_open_drop): only dropfd is open (O_PATH), and new
	 * messages become drop files.  With raise, the effective group is
	 * raise_gid only around the one call that needs it.
	 */
	bool	 drop_mode;
	bool	 raise;
	gid_t	 raise_gid;
};

struct queue_new {
	struct queue	*q;
	char		 id[QUEUE_ID_LEN + 1];
	int		 fd;		/* tmp/ID, locked; -1 once gone */
	int		 err;		/* sticky errno of a failed write */
	uint64_t	 size;
	bool		 eightbit;	/* a byte over 0x7f was written */
	queue_new_tap_fn *tap;		/* sees every write; NULL: none */
	void		*tap_arg;
	size_t		 buflen;
	char		 buf[QUEUE_BUFSIZE];
};

/* An envelope that was read but is unusable: the reason is in *why. */
#define QUEUE_LOAD_CORRUPT	(-2)

/* spool.c: the system calls in use (see queue/spool_test.h). */
extern const struct queue_sysops *spool_sys;

/*
 * spool.c.  open_regular: open dirfd/name read-only, a regular file only,
 * never through a symbolic link.  id_generate: a fresh queue id.  The
 * new_ helpers write, discard and remove the file of a new message.
 * env_load: 0, -1 with errno, or QUEUE_LOAD_CORRUPT with errno EBADMSG
 * and the reason in *why.  replace_file: replace dirfd/name with buf
 * through tmp/tname, atomically.
 */
int		 spool_open_regular(int dirfd, const char *name);
void		 spool_id_generate(char *);
int		 spool_write_all(int, const void *, size_t);
int		 spool_new_flush(struct queue_new *);
void		 spool_new_discard(struct queue_new *);
void		 spool_new_unlink(struct queue_new *);
int		 spool_env_load(struct queue *, const char *id,
		    struct envelope *, const char **why);
int		 spool_env_read(int fd, off_t off, uint64_t len, const char *id,
		    struct envelope *, const char **why);
int		 spool_replace_file(struct queue *, const char *tname,
		    int dirfd, const char *name, const char *buf, size_t len);

/*
 * spool_drop.c.  open_drop_dir: the owner's drop/ for queue_open (made
 * with create).  raise_group/lower_group: the submit group around one
 * call in drop mode.  drop_begin/drop_commit: queue_new_begin and
 * queue_new_commit in drop mode.
 */
int		 spool_open_drop_dir(struct queue *, bool create, bool *made);
int		 spool_raise_group(const struct queue *);
void		 spool_lower_group(const struct queue *);
int		 spool_drop_begin(struct queue_new *);
int		 spool_drop_commit(struct queue_new *, struct envelope *);

/*
 * spool_msg.c.  msg_init/msg_fini: msgfd and the group commit state of a
 * new queue.  lens_put/lens_get: the QUEUE_LENS_LEN-byte record of a
 * body's and an envelope's lengths, the header of a drop file (magic
 * "mxrelay-drop 1 ") and the trailer of a message file (QUEUE_MSG_MAGIC);
 * get is false for anything else.  msg_layout: the lengths in an open
 * message file's trailer, checked against its size (returns as
 * spool_env_load).  msg_dir_sync: make the caller's rename into msg/
 * durable (group commit).
 */
void		 spool_msg_init(struct queue *);
void		 spool_msg_fini(struct queue *);
void		 spool_lens_put(char *out, const char *magic, uint64_t b,
		    uint64_t e);
bool		 spool_lens_get(const char *rec, const char *magic,
		    uint64_t *b, uint64_t *e);
int		 spool_msg_layout(int fd, uint64_t *blen, uint64_t *elen,
		    const char **why);
uint64_t	 spool_msg_fails(struct queue *);
int		 spool_msg_dir_sync(struct queue *, uint64_t fails0);

/*
 * spool_scan.c.  list_dir: the names in dirfd that pass keep(), sorted.
 * unlink_if_unlocked: remove dirfd/name unless someone holds its lock
 * (with need_orphan, only while env/name is absent).
 */
int		 spool_list_dir(int dirfd, bool (*keep)(const char *),
		    struct strlist *);
int		 spool_unlink_if_unlocked(struct queue *, int dirfd,
		    const char *name, bool need_orphan);

#endif
