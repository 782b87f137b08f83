/*
 * sendmail_int: what the three files of mxrelay share.  sendmail.c: main,
 * the options, every change of identity and which queue a submission
 * uses; sendmail_submit.c: a submission from stdin, or -bs;
 * sendmail_queue.c: -bp (mailq) and -q, with who may run the queue.
 */
#ifndef MXRELAY_SENDMAIL_INT_H
#define MXRELAY_SENDMAIL_INT_H

#include <sys/types.h>

#include <stdbool.h>

#include "conf.h"

struct queue;

enum mode {
	MODE_SUBMIT,
	MODE_LIST,
	MODE_RUN,
	MODE_NEWALIASES,
	MODE_BS,
};

struct opts {
	enum mode	 mode;
	bool		 extract;	/* -t */
	bool		 ignore_dots;	/* -i, -oi */
	bool		 force;		/* -qf */
	int		 verbose;	/* -v */
	const char	*sender;	/* -f, -r */
	const char	*full_name;	/* -F */
	const char	*config;	/* -C */
	const char	*queue_id;	/* -qI */
	bool		 json;		/* --json: -bp as JSON Lines */
};

/* Who called us, before any change of identity (set in main()). */
extern uid_t	 caller_uid;
extern char	*caller_name;

/*
 * sendmail.c: where the caller may work (mxrelay(8) SECURITY).
 * spool_problem: what an errno of the spool means for the user.
 * as_spool_owner: root becomes the spool's owner.  owns_spool: the caller
 * may use the spool itself.  open_submit_queue: the spool or the drop
 * folder, for a submission.
 */
const char *spool_problem(int);
int	 as_spool_owner(const struct conf *, bool create, bool *missing);
bool	 owns_spool(const struct conf *);
int	 open_submit_queue(const struct conf *, struct queue **);

/* sendmail_submit.c: the message on stdin; -bs. */
int	 submit(const struct opts *, struct conf *, int, char **);
int	 submit_session(const struct conf *);

/*
 * Commands: `mxrelay COMMAND [args]`, only when called as mxrelay (never
 * as sendmail or mailq, where a first argument is a recipient).  main()
 * has already lost the submit group.  run() gets argv[0] = the command's
 * name, parses its own options (getopt: -C FILE by convention), loads the
 * configuration with command_conf() and returns a sysexits(3) code.  One
 * row each in commands[] (sendmail.c); usage() prints each usage line.
 */
struct command {
	const char	*name;
	int		(*run)(int argc, char **argv);
	const char	*usage;		/* "route DOMAIN [--json] [-C file]" */
};
int	 command_conf(const char *path, struct conf *);

/* sendmail_stats.c: mxrelay stats. */
int	 cmd_stats(int, char **);

/* sendmail_queue.c: -bp; -q, -qf, -qI. */
int	 list_queue(struct conf *, bool json);
int	 run_queue(const struct opts *, struct conf *, int, char **);
/* A running mxrelayd holds the spool's lock (then ask it, not the spool). */
bool	 daemon_holds_spool(const struct conf *);

/* sendmail_admin.c: mxrelay hold|release|requeue|delete. */
int	 admin_run(int, char **);

/* sendmail_json.c: one message of -bp --json, a line on stdout. */
struct envelope;
void	 list_json(const struct envelope *);

/* sendmail_route.c: mxrelay route DOMAIN. */
int	 route_main(int, char **);

/* sendmail_dkim.c: mxrelay dkim-keygen DOMAIN SELECTOR. */
int	 dkim_keygen_main(int, char **);

#endif
