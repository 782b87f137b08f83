/*
 * spool: the on-disk queue.  Layout, queue ids, atomic commit, locking,
 * atomic envelope update, removal and quarantine of corrupt files.  The
 * on-disk format is described at the top of spool.c and in mxrelay(8).
 *
 * Every function returns 0 on success, or -1 with errno set.  ENOSPC and
 * EDQUOT mean "temporarily full"; EACCES, EPERM, EROFS mean the spool
 * cannot be written at all; the caller maps these to exit codes or SMTP
 * replies.  A failed call never leaves a partial message visible.
 */
#ifndef MXRELAY_SPOOL_H
#define MXRELAY_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "envelope.h"

struct queue;
struct queue_new;

/*
 * Open the spool at dir.  With create, make dir and its subfolders (mode
 * 0700) when missing.  Without create, a missing dir fails with ENOENT.
 */
int	 queue_open(const char *dir, bool create, struct queue **);
void	 queue_close(struct queue *);
/*
 * Open the drop folder of the spool at dir for a local user who does not
 * own the spool (mxrelay installed setgid to the submit group; gid is that
 * group, or (gid_t)-1 when the program runs without it).  Only
 * queue_new_begin/write/commit/abort and queue_close may be used on it:
 * each new message becomes one drop file (see spool.c, "Drop folder"),
 * and the effective group is gid only for the calls that create or remove
 * one.  EACCES: the user may not submit (not installed setgid).
 */
int	 queue_open_drop(const char *dir, gid_t gid, struct queue **);
bool	 queue_is_drop(const struct queue *);
const char *queue_dir(const struct queue *);
/*
 * One daemon per spool: an exclusive lock on the spool folder, held while
 * the queue is open (EWOULDBLOCK: another process holds it).
 */
int	 queue_lock_spool(struct queue *);

/*
 * Start a new message: allocate a fresh queue id and create its temporary
 * body file.  Bytes are appended with queue_new_write() (buffered).
 */
int	 queue_new_begin(struct queue *, struct queue_new **);
/* The same under a given id (the pickup keeps the drop file's id); EEXIST. */
int	 queue_new_begin_id(struct queue *, const char *id, struct queue_new **);
const char *queue_new_id(const struct queue_new *);
int	 queue_new_write(struct queue_new *, const void *, size_t);
/*
 * From now on every byte given to queue_new_write() is also passed to
 * fn(arg, ...), in the same pieces: the DKIM signer (dkim_keys.h) sees
 * the message exactly as it is stored.  Set it right after begin.
 */
typedef void	 queue_new_tap_fn(void *arg, const void *, size_t);
void	 queue_new_set_tap(struct queue_new *, queue_new_tap_fn *, void *arg);
uint64_t queue_new_size(const struct queue_new *);
/*
 * Make the message durable and visible: flush and fsync the body, write
 * and fsync the envelope, rename both into place, fsync the directories.
 * Fills env->id and env->size (and env->arrival when 0).  On success and
 * on failure the queue_new is freed; on failure nothing is left visible.
 */
int	 queue_new_commit(struct queue_new *, struct envelope *env);
/* Throw the message away (removes the temporary file) and free it. */
void	 queue_new_abort(struct queue_new *);

/*
 * Lock a committed message for delivery so that two queue runners never
 * work on it at once.  Fails with EWOULDBLOCK when someone else holds it,
 * ENOENT when it is gone.  The lock dies with the process.
 */
int	 queue_msg_lock(struct queue *, const char *id, int *lockfd);
void	 queue_msg_unlock(int lockfd);

/* Read the envelope of a committed message (ENOENT, or EBADMSG if corrupt). */
int	 queue_env_load(struct queue *, const char *id, struct envelope *);
/* Replace the envelope atomically (temp, fsync, rename, fsync dir). */
int	 queue_env_update(struct queue *, const struct envelope *);
/*
 * Open the body read-only; returns an fd or -1.  Never through a symbolic
 * link (ELOOP), and only a regular file (EINVAL otherwise).
 */
int	 queue_body_open(struct queue *, const char *id);
/* Remove a finished message: envelope first, then the body. */
int	 queue_msg_remove(struct queue *, const char *id);
/*
 * The same in groups: the message file (version 1: the envelope) is
 * unlinked now; the folder's fsync and the removal of what is left
 * (msg/ID.env; version 1: the body) happen in queue_flush() (called every
 * QUEUE_REMOVE_BATCH removals, by queue_close(), and by the caller when
 * it likes).  A crash before the flush may bring the message back: for a
 * delivered message that is a second delivery, which mxrelayd(8) allows
 * only across such a crash.  A flush whose fsync fails (or after a
 * failed fsync of msg/ by anyone in this process since the batch began)
 * unlinks nothing more and drops its batch: what is left goes with the
 * scan of a process that saw no failed fsync of msg/, after a sync of its
 * own.  queue_msg_remove_later() fails only when the message could not
 * be unlinked (a failed flush is logged).  The batch size is
 * QUEUE_REMOVE_BATCH (spool_int.h).
 */
int	 queue_msg_remove_later(struct queue *, const char *id);
int	 queue_flush(struct queue *);
/* Move the message's files into corrupt/ and log why (with the queue id). */
int	 queue_msg_quarantine(struct queue *, const char *id, const char *why);

/*
 * Destination holds of mxrelayd (see spool.c, "Holds file"): SPOOL/holds,
 * replaced whole and atomically.  dest "" is the relayhost; until is in
 * ms of the wall clock.  Load: a missing file is no holds; lines that do
 * not parse are skipped.  The caller frees each dest and the array.
 */
struct queue_hold {
	char		*dest;
	int64_t		 until;
	unsigned	 failures;
};
int	 queue_holds_save(struct queue *, const struct queue_hold *, size_t n);
int	 queue_holds_load(struct queue *, struct queue_hold **, size_t *n);

/* True when s has the shape of a queue id. */
bool	 queue_id_valid(const char *s);

/*
 * Scan: call cb for every committed message, in queue id (= arrival)
 * order.  Envelopes that cannot be parsed are quarantined and skipped.
 * Leftover temporary files of crashed writers (older than an hour) and body
 * files without an envelope are removed.  cb returns 0 to go on, -1 to stop
 * (queue_scan then returns -1 with errno as cb left it).
 */
typedef int (*queue_scan_cb)(struct queue *, const struct envelope *, void *arg);
int	 queue_scan(struct queue *, queue_scan_cb, void *arg);
/*
 * The same in slices, for a caller that has other work meanwhile: begin
 * lists env/ (and cleans up as queue_scan does), each step hands over up
 * to max messages of that listing and returns 1 while some are left, 0
 * at the end, -1 when cb stopped it.  Messages removed since the listing
 * are skipped; ones added since are not seen.
 */
struct queue_scan;
int	 queue_scan_begin(struct queue *, struct queue_scan **);
int	 queue_scan_step(struct queue_scan *, size_t max, queue_scan_cb,
	    void *arg);
void	 queue_scan_end(struct queue_scan *);

/*
 * The drop folder, read by the spool's owner (src/pickup.c).  list: the
 * names of drop/ that are queue ids.  open: 0 with d filled (the fd, the
 * submitter's uid from the file's owner, where the body lies, the
 * envelope it carried) and the file's lock held until queue_drop_close()
 * (remove the file first); -1 with errno (EAGAIN: not finished yet, or its
 * writer or another pickup holds it; a file unfinished for an hour and
 * not locked is removed); -2 with errno EBADMSG and the
 * reason in *why when the file is not a well-formed drop file (the caller
 * moves it aside with queue_drop_quarantine).  remove: unlink and fsync
 * drop/.
 */
struct queue_drop {
	char		 name[QUEUE_ID_LEN + 1];
	int		 fd;
	uid_t		 uid;
	uint64_t	 body_off;
	uint64_t	 body_len;
	struct envelope	 env;
};
struct strlist;
int	 queue_drop_list(struct queue *, struct strlist *names);
int	 queue_drop_open(struct queue *, const char *name, struct queue_drop *,
	    const char **why);
void	 queue_drop_close(struct queue_drop *);
int	 queue_drop_remove(struct queue *, const char *name);
int	 queue_drop_quarantine(struct queue *, const char *name, const char *why);

#endif
