/*
 * dkim_keys: the configured DKIM keys as one shared set, and the signer
 * of one message made from it (level 1, formats, over dkim.h: no I/O, no
 * clock; the caller passes now).
 *
 * The set is reference counted, so that a reload of mxrelayd can replace
 * it while a message of the listener still waits for its commit in a
 * worker thread: each signer holds a reference until it is freed.  The
 * count is atomic; a signer is used by one thread at a time (fed on the
 * loop, ended in a worker, freed on the loop).
 */
#ifndef MXRELAY_DKIM_KEYS_H
#define MXRELAY_DKIM_KEYS_H

#include <stddef.h>
#include <time.h>

struct dkim_key;
struct dkim_keys;
struct dkim_signer;

/*
 * A set of n keys (the array and the keys are taken over; n may be 0).
 * expire: seconds for x= (0: none).  One reference.
 */
struct dkim_keys	*dkim_keys_new(struct dkim_key **keys, size_t n,
			    long expire);
struct dkim_keys	*dkim_keys_ref(struct dkim_keys *);
/* Drop a reference; the last one frees the keys.  NULL is fine. */
void			 dkim_keys_unref(struct dkim_keys *);
size_t			 dkim_keys_count(const struct dkim_keys *);

/*
 * The signer of one message: NULL when there is nothing to sign with
 * (keys NULL or empty).  now: its t=.
 */
struct dkim_signer	*dkim_signer_new(struct dkim_keys *, time_t now);
/*
 * The message's bytes as the spool stores them, in any pieces; the shape
 * of a queue_new tap (spool.h), arg being the signer.
 */
void			 dkim_signer_feed(void *arg, const void *buf,
			    size_t len);
/*
 * The end of the message: *sig gets the DKIM-Signature field(s) to store
 * (malloc'd), or NULL when the message is not signed (dkim_signer_why()
 * says why).  -1 on a signing error (dkim_signer_error() says what).
 */
int			 dkim_signer_end(struct dkim_signer *, char **sig);
const char		*dkim_signer_why(const struct dkim_signer *);
const char		*dkim_signer_error(const struct dkim_signer *);
/* Frees the signer and drops its reference.  NULL is fine. */
void			 dkim_signer_free(struct dkim_signer *);

#endif
