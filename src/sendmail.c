/*
 * sendmail.c: mxrelay, the sendmail interface.  Installed also as
 * `sendmail` and `mailq`; argv[0] decides the default mode.
 *
 *	submit	read one message from stdin, fix its header (Date,
 *		Message-ID, From; Bcc removed), resolve recipients (-t, aliases,
 *		qualify domain) and commit it to the spool.  Exit 0 only after
 *		the commit (mxrelay(8), FILES).
 *	list	-bp / mailq: print the queue.
 *	run	-q, -qf, -q ID: attempt delivery (see run_queue()).
 *	bs	-bs: one SMTP session on stdin/stdout (src/submit_bs.c).
 *
 * Privileges (mxrelay(8) SECURITY).  mxrelay is installed set-group-ID to
 * the submit group.  It lowers that group at once and raises it only to
 * create a drop file (queue_open_drop); every other mode, and -C or
 * $MXRELAY_CONFIG from a user other than root, lose it for good first.
 * Root becomes the spool's owner before it opens anything in the spool.
 * A caller who owns the spool writes to it directly; anyone else drops.
 *
 * Exit codes are from sysexits.h; nothing else in mxrelay exits.
 *
 * This file has main(), the options, every change of identity (the
 * submit group, the spool owner) and the choice of queue; submit and bs
 * are in sendmail_submit.c, list and run in sendmail_queue.c, which also
 * decides who may run the queue or see the spool directly (what they
 * share: sendmail_int.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sys/auxv.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "conf.h"
#include "log.h"
#include "privs.h"
#include "sendmail_int.h"
#include "spool.h"
#include "submit_bs.h"
#include "util.h"

static void	usage(int) __attribute__((noreturn));

#define OPT_JSON	0x100	/* --json, a long option only */

/*
 * mxrelay COMMAND (sendmail_int.h, struct command).  Each command lives
 * in a file of its own and adds one row here.
 */
static const struct command commands[] = {
	{ "stats", cmd_stats, "stats [-C file]" },
	{ "hold", admin_run, "hold [-C file] (ID ... | -d DOMAIN | -a)" },
	{ "release", admin_run, "release [-C file] (ID ... | -d DOMAIN | -a)" },
	{ "requeue", admin_run, "requeue [-C file] (ID ... | -d DOMAIN | -a)" },
	{ "delete", admin_run,
	    "delete [-C file] [--bounce] (ID ... | -d DOMAIN | -a)" },
	{ "route", route_main, "route [-v] [-C file] [--json] DOMAIN" },
	{ "dkim-keygen", dkim_keygen_main, "dkim-keygen [-C file] [--ed25519] "
	    "[--bits N] [-o path] DOMAIN SELECTOR" },
	{ NULL, NULL, NULL }
};

static const char *progname = "mxrelay";

#ifdef MXRELAY_SANITIZERS
/*
 * Sanitizer builds only.  A set-group-ID run is not dumpable: it cannot
 * read its own environment (ASAN_OPTIONS) and LeakSanitizer cannot stop
 * it to look for leaks, which it reports as a fatal error at exit.
 */
const char *__asan_default_options(void);
const char *
__asan_default_options(void)
{
	return getauxval(AT_SECURE) ? "detect_leaks=0" : "";
}
#endif

/* Who called us, before any change of identity. */
uid_t		 caller_uid;
char		*caller_name;
/* The submit group when installed set-group-ID to it; (gid_t)-1 if not. */
static gid_t	 submit_gid = (gid_t)-1;

/* --help prints to stdout and succeeds; a usage error goes to stderr. */
static void
usage(int code)
{
	fprintf(code == EX_OK ? stdout : stderr,
	    "usage: %s [-itv] [-C file] [-F name] [-f sender] [recipient ...]\n"
	    "       %s -bp | mailq [-C file] [--json]\n"
	    "       %s -q | -qf | -qI id [-C file] [-v]\n"
	    "       %s -bs [-C file]\n"
	    "\n"
	    "  -t         recipients also from To, Cc and Bcc (Bcc is removed)\n"
	    "  -i, -oi    a line with a single dot does not end the message\n"
	    "  -f ADDR    envelope sender (-f '<>' for the null sender); -r is the same\n"
	    "  -F NAME    full name for a From header that mxrelay adds\n"
	    "  -C FILE    configuration file (default " CONF_DEFAULT_PATH ")\n"
	    "  -bp        list the queue (as mailq does; others' messages only for\n"
	    "             root and the spool's owner)\n"
	    "  --json     with -bp or mailq: a JSON object per message and line\n"
	    "  -bs        one SMTP session on stdin and stdout\n"
	    "  -q         deliver every message that is due, then exit (root and\n"
	    "             the spool's owner only)\n"
	    "  -qf        deliver every message now, due or not\n"
	    "  -qI ID     deliver the message with this queue id\n"
	    "  -v         verbose: log to stderr too\n"
	    "  Accepted and ignored: -B -N -R -V -X -G -U -c -e -m -n -x -h -L -O -p,\n"
	    "  -o options other than -oi, -bm (the default), -bi (no alias database).\n"
	    "Exit status: 0 once the message is in the spool; sysexits(3) codes otherwise.\n",
	    progname, progname, progname, progname);
	if (commands[0].name != NULL)
		fprintf(code == EX_OK ? stdout : stderr,
		    "Commands (see mxrelay(8) COMMANDS):\n");
	for (const struct command *c = commands; c->name != NULL; c++)
		fprintf(code == EX_OK ? stdout : stderr, "  mxrelay %s\n",
		    c->usage);
	exit(code);
}

const char *
spool_problem(int e)
{
	switch (submit_exit_for_errno(e)) {
	case EX_TEMPFAIL:
		return "the spool cannot take it now; try again later";
	case EX_CANTCREAT:
		return "the spool is not writable";
	default:
		return "I/O error on the spool";
	}
}

/* -bX: the mode X; 0, or EX_USAGE with the reason logged. */
static int
option_b(const char *arg, struct opts *o)
{
	switch (arg[0]) {
	case 'p':
		o->mode = MODE_LIST;
		return 0;
	case 'm':
		o->mode = MODE_SUBMIT;
		return 0;
	case 'i':
		o->mode = MODE_NEWALIASES;
		return 0;
	case 's':
		o->mode = MODE_BS;
		return 0;
	case 'd':
	case 'D':
		log_warnx("-b%s: run mxrelayd for a daemon", arg);
		return EX_USAGE;
	default:
		log_warnx("-b%s: mode not supported", arg);
		return EX_USAGE;
	}
}

/* -q, -qf, -qIID, -q30m; 0, or EX_USAGE with the reason logged. */
static int
option_q(const char *arg, struct opts *o)
{
	time_t ignored;

	o->mode = MODE_RUN;
	if (arg == NULL)
		return 0;
	if (strcmp(arg, "f") == 0)
		o->force = true;
	else if (arg[0] == 'I' && arg[1] != '\0') {
		o->queue_id = arg + 1;
		o->force = true;
	} else if (util_parse_duration(arg, &ignored) == -1) {
		/* -q30m: a queue run interval; runs once. */
		log_warnx("-q%s: unknown queue option", arg);
		return EX_USAGE;
	}
	return 0;
}

/*
 * The options, up to the first recipient ('+', as in sendmail): 0 with
 * optind past them, or EX_USAGE with the reason logged.
 */
static int
parse_options(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 }
	};
	int ch, rc;

	while ((ch = getopt_long(argc, argv,
	    "+B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q::r:tvx", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case OPT_JSON:
			o->json = true;
			break;
		case 'b':
			if ((rc = option_b(optarg, o)) != 0)
				return rc;
			break;
		case 'C':
			o->config = optarg;
			break;
		case 'F':
			o->full_name = optarg;
			break;
		case 'f':
		case 'r':
			o->sender = optarg;
			break;
		case 'I':
			o->mode = MODE_NEWALIASES;
			break;
		case 'i':
			o->ignore_dots = true;
			break;
		case 'o':
			/* -oi is the only -o option with an effect. */
			if (strcmp(optarg, "i") == 0)
				o->ignore_dots = true;
			break;
		case 'q':
			if ((rc = option_q(optarg, o)) != 0)
				return rc;
			break;
		case 't':
			o->extract = true;
			break;
		case 'v':
			o->verbose++;
			break;
		case 'B': case 'G': case 'L': case 'N': case 'O': case 'R':
		case 'U': case 'V': case 'X': case 'c': case 'e': case 'h':
		case 'm': case 'n': case 'p': case 'x':
			break;	/* accepted for compatibility, no effect */
		default:
			usage(EX_USAGE);
		}
	}
	if (o->json && o->mode != MODE_LIST) {
		log_warnx("--json: only with -bp or as mailq");
		return EX_USAGE;
	}
	return 0;
}

/*
 * The config file to read, and whether it must exist.  One of the
 * caller's choosing (-C, $MXRELAY_CONFIG) costs the program's privilege
 * first (root keeps root).  secure_getenv() gives nothing to a
 * set-group-ID run; the variable is then honoured without the group.
 */
static const char *
config_path(const struct opts *o, bool *must_exist)
{
	const char *path = o->config;

	*must_exist = true;
	if (path == NULL && (path = secure_getenv("MXRELAY_CONFIG")) == NULL)
		path = getenv("MXRELAY_CONFIG");
	if (path != NULL && *path == '\0')
		path = NULL;
	if (path == NULL) {
		*must_exist = false;
		return CONF_DEFAULT_PATH;
	}
	if (caller_uid != 0) {
		privs_lose_setgid();
		submit_gid = (gid_t)-1;
	}
	return path;
}

/*
 * For a command: load the configuration named by -C (path, or NULL for
 * $MXRELAY_CONFIG or the default).  Returns EX_OK or EX_CONFIG, logged.
 */
int
command_conf(const char *path, struct conf *conf)
{
	struct opts o = { .config = path };
	char err[1024];
	bool must_exist;

	path = config_path(&o, &must_exist);
	if (conf_load(path, must_exist, conf, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_CONFIG;
	}
	return EX_OK;
}

/* The command called name, or NULL. */
static const struct command *
command_find(const char *name)
{
	for (const struct command *c = commands; c->name != NULL; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/*
 * newaliases: the aliases file is read as it is; there is nothing to build.
 * A syntax error is EX_CONFIG; unsupported targets are only warnings (mail
 * to the names that reach them fails, other mail goes).
 */
static int
check_aliases(const struct conf *conf)
{
	struct aliases *al;
	char err[1024];

	if (conf->aliases == NULL)
		return EX_OK;
	if (aliases_load(conf->aliases, &al, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_CONFIG;
	}
	for (size_t i = 0; i < aliases_nwarnings(al); i++)
		log_warnx("warning: %s (mail to this alias fails)",
		    aliases_warning(al, i));
	aliases_free(al);
	return EX_OK;
}

int
main(int argc, char **argv)
{
	struct opts o = { .mode = MODE_SUBMIT };
	struct conf conf;
	char err[1024];
	const char *base, *path;
	bool must_exist;
	const struct command *cmd;
	int rc;

	/*
	 * Set-group-ID: a caller may start us with 0, 1 or 2 closed, so
	 * that a spool file would get that number and our messages would
	 * be written into it.  They are never left closed.
	 */
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) == -1 &&
		    open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd)
			return EX_OSERR;

	base = argv[0] != NULL ? strrchr(argv[0], '/') : NULL;
	if (argv[0] == NULL)
		argv[0] = (char *)"mxrelay";
	base = base ? base + 1 : argv[0];
	if (strcmp(base, "mailq") == 0)
		o.mode = MODE_LIST;
	else if (strcmp(base, "newaliases") == 0)
		o.mode = MODE_NEWALIASES;
	if (strcmp(base, "sendmail") == 0 || strcmp(base, "mailq") == 0)
		progname = base;

	/*
	 * The submit group (set-group-ID) waits in the saved set-group-ID
	 * until queue_open_drop() needs it.
	 */
	if (getegid() != getgid()) {
		submit_gid = getegid();
		if (setegid(getgid()) == -1) {
			fprintf(stderr, "%s: setegid: %s\n", progname,
			    strerror(errno));
			return EX_OSERR;
		}
	}
	caller_uid = getuid();
	{
		struct passwd *pw = getpwuid(caller_uid);

		caller_name = pw != NULL ? xstrdup(pw->pw_name) :
		    xasprintf("#%lu", (unsigned long)caller_uid);
	}
	log_init(progname, LOG_TO_STDERR | LOG_TO_SYSLOG, 0);
	/* A peer closing a TLS connection must not kill us (OpenSSL writes). */
	signal(SIGPIPE, SIG_IGN);

	if (argc > 1 && strcmp(argv[1], "--help") == 0)
		usage(EX_OK);
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("mxrelay %s\n", PACKAGE_VERSION);
		return EX_OK;
	}
	if (strcmp(progname, "mxrelay") == 0 && o.mode == MODE_SUBMIT &&
	    argc > 1 && (cmd = command_find(argv[1])) != NULL) {
		privs_lose_setgid();
		submit_gid = (gid_t)-1;
		rc = cmd->run(argc - 1, argv + 1);
		free(caller_name);
		return rc;
	}
	if ((rc = parse_options(argc, argv, &o)) != 0)
		return rc;
	argc -= optind;
	argv += optind;
	log_init(progname, LOG_TO_STDERR | LOG_TO_SYSLOG, o.verbose);

	path = config_path(&o, &must_exist);
	/* Only a submission may use the submit group. */
	if (o.mode != MODE_SUBMIT && o.mode != MODE_BS) {
		privs_lose_setgid();
		submit_gid = (gid_t)-1;
	}
	if (conf_load(path, must_exist, &conf, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_CONFIG;
	}

	switch (o.mode) {
	case MODE_LIST:
		rc = list_queue(&conf, o.json);
		break;
	case MODE_RUN:
		rc = run_queue(&o, &conf, argc, argv);
		break;
	case MODE_BS:
		rc = submit_session(&conf);
		break;
	case MODE_NEWALIASES:
		rc = check_aliases(&conf);
		break;
	default:
		rc = submit(&o, &conf, argc, argv);
		break;
	}
	conf_free(&conf);
	free(caller_name);
	return rc;
}

/*
 * Where the caller may work (mxrelay(8) SECURITY).
 */

/* There is no spool yet. */
static bool
spool_missing(const struct conf *conf)
{
	uid_t owner;

	return privs_spool_owner(conf->spool_dir, &owner) == -1 &&
	    errno == ENOENT;
}

/*
 * Root becomes the spool's owner, making the spool first when it is
 * missing and create is set.  Others stay as they are.  0, or an exit
 * code; *missing is set when there is no spool (and create is not set).
 */
int
as_spool_owner(const struct conf *conf, bool create, bool *missing)
{
	char err[1024];

	*missing = false;
	if (geteuid() != 0)
		return 0;
	if (create && privs_spool_prepare(conf->spool_dir, conf->user, false,
	    err, sizeof(err)) == -1) {
		log_warnx("message not queued: the spool is not writable: %s",
		    err);
		return EX_CANTCREAT;
	}
	if (spool_missing(conf)) {
		*missing = true;
		return 0;
	}
	if (privs_become_spool_owner(conf->spool_dir, conf->user, err,
	    sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_OSERR;
	}
	return 0;
}

/* The caller (after as_spool_owner) is root or owns the spool. */
bool
owns_spool(const struct conf *conf)
{
	uid_t owner;

	if (geteuid() == 0)
		return true;
	return privs_spool_owner(conf->spool_dir, &owner) == 0 &&
	    owner == geteuid();
}

/*
 * The queue a submission goes to: the spool itself for root, its owner,
 * and anyone when there is no spool yet (then made by the caller, as
 * before); the drop folder for everyone else.  0, or an exit code.
 */
int
open_submit_queue(const struct conf *conf, struct queue **qp)
{
	bool missing;
	int rc, e;

	*qp = NULL;
	if ((rc = as_spool_owner(conf, true, &missing)) != 0)
		return rc;
	if (owns_spool(conf) || spool_missing(conf)) {
		privs_lose_setgid();
		if (queue_open(conf->spool_dir, true, qp) == 0)
			return 0;
		e = errno;
		log_warn("%s: message not queued: %s", conf->spool_dir,
		    spool_problem(e));
		return submit_exit_for_errno(e);
	}
	if (queue_open_drop(conf->spool_dir, submit_gid, qp) == 0)
		return 0;
	e = errno;
	if (e == EACCES || e == EPERM || e == ENOENT) {
		log_warnx("%s/drop: message not queued: uid %lu may not "
		    "write there (is mxrelay installed set-group-ID %s? see "
		    "SECURITY in mxrelay(8))", conf->spool_dir,
		    (unsigned long)caller_uid, SUBMIT_GROUP);
		return EX_CANTCREAT;
	}
	errno = e;
	log_warn("%s/drop: message not queued: %s", conf->spool_dir,
	    spool_problem(e));
	return submit_exit_for_errno(e);
}
