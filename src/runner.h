/*
 * runner: the delivery side's set-up (DNS, TLS contexts, the engine), and
 * one run of the queue for `mxrelay -q`: the queue manager (qmgr.h) in
 * one-shot mode, until every due message has had its attempt.
 */
#ifndef MXRELAY_RUNNER_H
#define MXRELAY_RUNNER_H

#include <stdbool.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "conf.h"
#include "event.h"
#include "qmgr.h"

struct runner_opts {
	bool		 force;		/* -qf: due or not */
	const char	*only_id;	/* -qI: this message only */
};

/* Everything a delivery engine needs, made from one configuration. */
struct runner_setup {
	struct dns		*dns;
	SSL_CTX			*tls_ctx;
	SSL_CTX			*tls_ctx_verify;
	/* MTA-STS (mta_sts = yes): the engine, its CA's contexts; NULL: off */
	struct sts		*sts;
	SSL_CTX			*sts_ctx;
	SSL_CTX			*sts_ctx_verify;
	char			*sts_cache;	/* SPOOL/sts */
	char			*auth_user;	/* relayhost_auth_file */
	char			*auth_pass;
	/* per relayhost of the list ("HOST user:password"); NULL: none */
	char			**rh_auth_user;
	char			**rh_auth_pass;
	size_t			 nrh;
	struct delivery_engine	*engine;
	struct qmgr_conf	 qc;		/* for qmgr_new(), qmgr_set_conf() */
	struct dkim_keys	*dkim;		/* dkim_key; NULL: none */
};

/*
 * NULL with the reason logged (bad relayhost_auth_file, TLS, DNS set-up).
 * Run by root, it leaves MTA-STS off until runner_setup_sts(): its cache
 * in the spool must not be made by root.
 */
struct runner_setup	*runner_setup_new(struct ev_loop *, const struct conf *);
/*
 * MTA-STS for the engine (mta_sts = yes), once root is dropped (or kept
 * for good); nothing when it is on already.  -1 with the reason logged.
 */
int		 runner_setup_sts(struct runner_setup *, struct ev_loop *,
		    const struct conf *);
/* The engine must be idle, or the loop about to go. */
void		 runner_setup_free(struct runner_setup *);
/*
 * The ids of the configured user and group ((uid_t)-1, (gid_t)-1 when
 * there is no such one; with no group, the user's own): who besides root
 * may own a secret file.  Once runner_daemon_ids_fix() was called (by
 * mxrelayd, when it runs as its user), its ids instead: a reload that
 * names another user does not change who the daemon is.
 */
void		 runner_daemon_ids(const struct conf *, uid_t *, gid_t *);
void		 runner_daemon_ids_fix(uid_t, gid_t);
/*
 * Open a secret file named in the configuration (util_secret_open() with
 * the daemon's ids); a loose mode is logged.  -1 with the reason logged.
 */
int		 runner_secret_open(const struct conf *, const char *path);

/*
 * runner_dkim.c: the dkim_key files, each opened with
 * runner_secret_open() and read (dkim.h); a weak RSA key is warned
 * about.  0 with *out the set (NULL when none is configured), or -1 with
 * the reason logged, naming the file.
 */
struct dkim_keys;
int		 runner_dkim_keys(const struct conf *, struct dkim_keys **out);

/*
 * Returns 0 when the run completed (whatever the outcomes), -1 when it
 * could not run (spool, TLS or DNS set-up failure), with a message logged.
 */
int	 runner_run(const struct conf *, const struct runner_opts *,
	    struct qmgr_stats *);

#endif
