/*
 * mxrelayd: what the daemon's two files share.  mxrelayd.c: start-up,
 * generations and reload, new messages, signals and shutdown;
 * mxrelayd_ctl.c: the control socket.
 */
#ifndef MXRELAY_MXRELAYD_H
#define MXRELAY_MXRELAYD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "conf.h"
#include "event.h"
#include "qmgr.h"
#include "smtpd.h"

/* One configuration and everything made from it. */
struct gen {
	struct conf		 conf;
	struct runner_setup		*dlv;
	SSL_CTX			*srv_ctx;	/* STARTTLS; NULL = none */
	struct smtpd_users	*users;		/* AUTH; NULL = none */
	struct smtpd_params	 sp;
	struct gen		*next;		/* retired list */
};

struct ctl_conn;	/* mxrelayd_ctl.c */
struct mhttp;		/* mxrelayd_metrics.c */

struct daemon {
	const char		*conf_path;
	bool			 conf_must_exist;
	bool			 foreground;
	bool			 prepare_only;	/* -i */
	int			 verbose;

	struct ev_loop		*loop;
	struct queue		*q;
	struct gen		*cur;
	struct gen		*retired;
	struct smtpd		*smtpd;
	struct qmgr		*qm;
	struct qmgr_stats	 stats;

	int			 pidfd;
	char			*pid_path;
	int			*lfds;		/* listening sockets until smtpd */
	size_t			 nlfds;
	int			 sigfd;
	int			 ctlfd;
	char			*ctl_path;
	struct ctl_conn		*ctls;		/* open control connections */
	struct ev_timer		 ctl_pause;	/* accepting again after EMFILE */
	int			 inofd;
	int			 wd_drop;	/* inotify watch of drop/ */
	uint64_t		 last_pickup;
	char			*msg_dir;	/* SPOOL/msg */
	char			*env_dir;	/* SPOOL/env (older layout) */
	struct ev_timer		 housekeeping;

	bool			 stopping;
	uint64_t		 stop_deadline;
	int			 exit_code;
	struct mhttp		*mhttp;		/* metrics_listen; NULL: none */
};

/*
 * mxrelayd_ctl.c.  ctl_open: bind the control socket in runtime_dir and
 * accept on it (0 without one: mxrelay -q then runs the queue itself;
 * -1 on error).  ctl_close: close one connection.  ctl_resume: the timer
 * (d->ctl_pause) that accepts again after EMFILE.
 */
/*
 * mxrelayd.c, for the sockets of mxrelayd_ctl.c and mxrelayd_metrics.c:
 * daemon_bind() binds and listens on every address of a host:port
 * (skipping [::1] where this host lacks it; 1 when that left nothing);
 * daemon_send_some() writes the rest of an answer (true: done, close).
 */
int		 daemon_bind(const struct hostport *, bool numeric, int backlog,
		    const char *what, int **fds, size_t *nfds);
bool		 daemon_send_some(int fd, const char *buf, size_t len,
		    size_t *off);
int		 ctl_open(struct daemon *);
void		 ctl_close(struct ctl_conn *);
void		 ctl_resume(void *);
/*
 * mxrelayd_admin.c: a queue administration request (hold, release,
 * requeue, delete, bounce) of a privileged caller answered into reply;
 * false when req is none.
 */
bool		 ctl_admin(struct daemon *, const char *req, char *reply,
		    size_t len);

/*
 * mxrelayd_metrics.c.  daemon_metrics: the metrics text now (allocated;
 * *len its length).  mhttp_open: listen for GET /metrics on each address
 * (none: nothing), -1 logged on error.  mhttp_close: stop and free.
 */
char		*daemon_metrics(struct daemon *, size_t *len);
int		 mhttp_open(struct daemon *, const struct hostport *, size_t);
void		 mhttp_close(struct daemon *);

#endif
