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
 */
#include "config.h"

#include <ctype.h>
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
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "conf.h"
#include "control.h"
#include "hash.h"
#include "log.h"
#include "message.h"
#include "privs.h"
#include "runner.h"
#include "spool.h"
#include "submit_bs.h"
#include "util.h"

/* A header section that is not over after this many bytes is refused. */
#define HEADER_MAX	(1024 * 1024)
/* Aliases may name aliases; this bounds the total expansion. */
#define RCPT_MAX	100000

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
};

/*
 * stdin intake: LF and CRLF line ends become CRLF, a lone CR becomes CRLF
 * too (it cannot be sent over SMTP as it is), and without -i a line that is
 * a single "." ends the message.  The bytes go to a sink that changes
 * from the header buffer to the spool once the header section is complete.
 */
struct intake {
	bool		 ignore_dots;
	bool		 at_bol;	/* at the beginning of a line */
	bool		 dot_pending;	/* the line so far is "." */
	bool		 cr_pending;	/* a CR waits for its LF */
	bool		 done;		/* lone dot seen */
	uint64_t	 total;		/* bytes produced */
	uint64_t	 max;

	/* header phase */
	bool		 in_header;
	char		*hbuf;
	size_t		 hlen, hcap;
	bool		 hsep;		/* an empty line was produced */

	struct queue_new *qn;		/* body phase */
	int		 err;		/* errno of a spool write, or -1 */
	bool		 too_big;	/* over max_message_size (err is -1) */
};

static void	usage(int) __attribute__((noreturn));
static int	submit(const struct opts *, struct conf *, int, char **);
static int	list_queue(struct conf *);
static int	run_queue(const struct opts *, struct conf *, int, char **);
static int	submit_session(const struct conf *);
static const char *spool_problem(int);

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
static uid_t	 caller_uid;
static char	*caller_name;
/* The submit group when installed set-group-ID to it; (gid_t)-1 if not. */
static gid_t	 submit_gid = (gid_t)-1;

/* --help prints to stdout and succeeds; a usage error goes to stderr. */
static void
usage(int code)
{
	fprintf(code == EX_OK ? stdout : stderr,
	    "usage: %s [-itv] [-C file] [-F name] [-f sender] [recipient ...]\n"
	    "       %s -bp | mailq [-C file]\n"
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
	exit(code);
}

static const char *
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
	int ch, rc;

	while ((ch = getopt(argc, argv,
	    "+B:C:F:GIL:N:O:R:UV:X:b:ce:f:h:imno:p:q::r:tvx")) != -1) {
		switch (ch) {
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

/* newaliases: the aliases file is read as it is; there is nothing to build. */
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
		rc = list_queue(&conf);
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
static int
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
static bool
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
static int
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

/* -bs: one SMTP session on stdin/stdout into the submit queue. */
static int
submit_session(const struct conf *conf)
{
	struct submit_bs_conf bc;
	struct queue *q;
	int rc;

	if ((rc = open_submit_queue(conf, &q)) != 0)
		return rc;
	memset(&bc, 0, sizeof(bc));
	bc.hostname = conf->hostname;
	bc.qualify_domain = conf->qualify_domain;
	bc.max_size = conf->max_message_size;
	bc.max_recipients = conf->max_recipients;
	rc = submit_bs(q, &bc, (uint32_t)caller_uid, caller_name,
	    STDIN_FILENO, STDOUT_FILENO);
	queue_close(q);
	return rc;
}

/*
 * Recipients and the sender.
 */

/* addr is a bare addr-spec; make it fully qualified. */
static char *
qualify(const char *addr, const struct conf *conf)
{
	if (strchr(addr, '@') != NULL)
		return xstrdup(addr);
	return xasprintf("%s@%s", addr, conf->qualify_domain);
}

/*
 * The recipients added so far, by their address in lower case, so that
 * duplicates are dropped in constant time even at RCPT_MAX of them.
 */
struct rcpt_seen {
	struct hash	 h;
};

struct seen_node {
	struct hash_node hn;
	char		 key[];
};

/* Adds addr; false when it was there already. */
static bool
seen_add(struct rcpt_seen *seen, const char *addr)
{
	size_t len = strlen(addr);
	struct seen_node *n = xmalloc(sizeof(*n) + len + 1);

	for (size_t i = 0; i <= len; i++)
		n->key[i] = (char)tolower((unsigned char)addr[i]);
	if (hash_find(&seen->h, n->key) != NULL) {
		free(n);
		return false;
	}
	hash_insert(&seen->h, &n->hn, n->key);
	return true;
}

static void
seen_free(struct rcpt_seen *seen)
{
	struct hash_node *n, *next;

	for (n = hash_next(&seen->h, NULL); n != NULL; n = next) {
		next = hash_next(&seen->h, n);
		hash_remove(&seen->h, n);
		free(HASH_ENTRY(n, struct seen_node, hn));
	}
	hash_free(&seen->h);
}

/*
 * Add one recipient as the user wrote it: local names go through the
 * aliases file, then everything is qualified and checked.  Duplicates are
 * dropped; more than RCPT_MAX different recipients is an error (not a
 * silent cut).  0, or -1 with a message logged (the caller exits
 * EX_DATAERR).
 */
static int
add_rcpt(struct envelope *env, struct rcpt_seen *seen, const char *addr,
    const struct conf *conf, const struct aliases *al)
{
	struct strlist targets = { 0 };
	char err[512], esc[512];
	int rc = -1;

	if (strchr(addr, '@') == NULL && al != NULL) {
		int r = aliases_expand(al, addr, &targets, err, sizeof(err));

		if (r == -1) {
			log_warnx("recipient %s: %s",
			    util_escape(esc, sizeof(esc), addr), err);
			goto done;
		}
		if (r == 0)
			strlist_add(&targets, addr);
	} else
		strlist_add(&targets, addr);

	for (size_t i = 0; i < targets.n; i++) {
		char *q = qualify(targets.v[i], conf);

		if (msg_addr_check(q, false, err, sizeof(err)) == -1) {
			log_warnx("bad recipient address %s: %s",
			    util_escape(esc, sizeof(esc), q), err);
			free(q);
			goto done;
		}
		if (!seen_add(seen, q)) {
			free(q);
			continue;
		}
		if (seen->h.n > RCPT_MAX) {
			log_warnx("too many recipients: at most %d per message",
			    RCPT_MAX);
			free(q);
			goto done;
		}
		envelope_add_rcpt(env, q, strcmp(q, addr) == 0 ? NULL : addr);
		free(q);
	}
	rc = 0;
done:
	strlist_free(&targets);
	return rc;
}

/* Parse one argument or header body into addresses; -1 logged on error. */
static int
parse_addrs(const char *what, const char *text, struct strlist *out)
{
	char err[512], esc[512];

	if (msg_addrlist_parse(text, strlen(text), out, err, sizeof(err)) == -1) {
		log_warnx("bad %s address %s: %s", what,
		    util_escape(esc, sizeof(esc), text), err);
		return -1;
	}
	return 0;
}

/* The envelope sender: -f, or the invoking user at the qualify domain. */
static char *
envelope_sender(const struct opts *o, const struct conf *conf)
{
	struct strlist l = { 0 };
	struct passwd *pw;
	char err[512], esc[512], *s = NULL;
	const char *user = "nobody";

	if (o->sender != NULL) {
		if (o->sender[0] == '\0' || strcmp(o->sender, "<>") == 0)
			return xstrdup("");
		if (parse_addrs("sender", o->sender, &l) == -1)
			goto done;
		if (l.n != 1) {
			log_warnx("bad sender address %s: need exactly one address",
			    util_escape(esc, sizeof(esc), o->sender));
			goto done;
		}
		s = qualify(l.v[0], conf);
	} else {
		/* Looked up again: caller_name may be "#UID". */
		if ((pw = getpwuid(caller_uid)) != NULL)
			user = pw->pw_name;
		s = qualify(user, conf);
	}
	if (msg_addr_check(s, false, err, sizeof(err)) == -1) {
		log_warnx("bad sender address %s: %s",
		    util_escape(esc, sizeof(esc), s), err);
		free(s);
		s = NULL;
	}
done:
	strlist_free(&l);
	return s;
}

/*
 * Intake.
 */

static void
intake_emit(struct intake *in, const char *p, size_t n)
{
	if (in->err != 0 || n == 0)
		return;
	if (in->max != 0 && in->total + n > in->max) {
		in->err = -1;
		in->too_big = true;
		return;
	}
	in->total += n;
	if (in->in_header) {
		if (in->hlen + n > in->hcap) {
			while (in->hlen + n > in->hcap)
				in->hcap = in->hcap ? in->hcap * 2 : 8192;
			in->hbuf = xreallocarray(in->hbuf, in->hcap, 1);
		}
		memcpy(in->hbuf + in->hlen, p, n);
		in->hlen += n;
		return;
	}
	if (queue_new_write(in->qn, p, n) == -1)
		in->err = errno ? errno : EIO;
}

/* One complete line (without its end) has been emitted: end it. */
static void
intake_eol(struct intake *in)
{
	if (in->in_header && in->at_bol)
		in->hsep = true;	/* an empty line ends the header section */
	intake_emit(in, "\r\n", 2);
	in->at_bol = true;
}

/*
 * Feed n bytes of stdin; returns how many were taken.  In the header
 * phase it stops once the header section is complete, so that the caller
 * can hand the rest to the body phase; bytes after the separator that were
 * already taken stay in the header buffer, after body_off.
 */
static size_t
intake_feed(struct intake *in, const char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = buf[i];
		size_t run;

		if (in->done || in->err != 0 ||
		    (in->in_header && (in->hsep || in->hlen >= HEADER_MAX)))
			break;
		if (in->cr_pending) {
			in->cr_pending = false;
			if (in->dot_pending) {
				/* "." CR: a lone dot line, however it ends. */
				in->done = true;
				break;
			}
			intake_eol(in);
			if (c == '\n')
				continue;	/* CRLF */
		}
		if (in->dot_pending) {
			if (c == '\n') {
				in->done = true;
				break;
			}
			if (c != '\r') {
				in->dot_pending = false;
				intake_emit(in, ".", 1);
				in->at_bol = false;
			}
		}
		if (c == '\r') {
			in->cr_pending = true;
			continue;
		}
		if (c == '\n') {
			intake_eol(in);
			continue;
		}
		if (in->at_bol && c == '.' && !in->ignore_dots) {
			in->dot_pending = true;
			continue;
		}
		/* Emit a run of ordinary bytes at once. */
		run = i;
		while (i + 1 < n && buf[i + 1] != '\r' && buf[i + 1] != '\n')
			i++;
		intake_emit(in, buf + run, i - run + 1);
		in->at_bol = false;
	}
	return i;
}

/* End of input: finish a last line that lacks its line end. */
static void
intake_finish(struct intake *in)
{
	if (in->done)
		return;
	if (in->cr_pending) {
		in->cr_pending = false;
		if (in->dot_pending)
			return;
		intake_eol(in);
	}
	if (in->dot_pending) {
		/* A final "." without a line end also ends the message. */
		return;
	}
	if (!in->at_bol)
		intake_eol(in);
}

static const char *
size_text(uint64_t n, char *buf, size_t len)
{
	if (n >= 1024 * 1024 && n % (1024 * 1024) == 0)
		snprintf(buf, len, "%lluM", (unsigned long long)(n >> 20));
	else if (n >= 1024 && n % 1024 == 0)
		snprintf(buf, len, "%lluK", (unsigned long long)(n >> 10));
	else
		snprintf(buf, len, "%llu", (unsigned long long)n);
	return buf;
}

/*
 * Read stdin into the header buffer until the header section is complete
 * (an empty line, HEADER_MAX bytes, or the end of the message), then fix
 * the header and stream the rest into the spool.  Returns an exit code.
 */
static int
read_message(const struct opts *o, const struct conf *conf, struct intake *in,
    const char *sender, struct strlist *hdr_rcpts)
{
	struct msg_header_opts mo;
	char buf[65536], err[512], sz[32];
	char *hdr = NULL;
	size_t hdrlen = 0, body_off = 0, pend_off = 0, pend_len = 0;
	bool eof = false;
	ssize_t r;
	int rc = EX_OK;

	/* Header phase: stop reading once the section is complete. */
	while (!eof && !in->done && in->err == 0 && !in->hsep &&
	    in->hlen < HEADER_MAX) {
		if ((r = read(STDIN_FILENO, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("reading the message");
			return EX_IOERR;
		}
		if (r == 0) {
			eof = true;
			intake_finish(in);
			break;
		}
		pend_len = (size_t)r;
		pend_off = intake_feed(in, buf, pend_len);
	}
	if (in->too_big)
		goto too_big;

	memset(&mo, 0, sizeof(mo));
	mo.extract_rcpts = o->extract;
	mo.sender = sender;
	mo.full_name = o->full_name;
	mo.hostname = conf->hostname;
	mo.queue_id = queue_new_id(in->qn);
	mo.now = time(NULL);
	if (msg_headers_fix(in->hbuf, in->hlen, &mo, &hdr, &hdrlen, &body_off,
	    hdr_rcpts, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_DATAERR;
	}
	if (body_off >= in->hlen && in->hlen >= HEADER_MAX && !in->hsep) {
		log_warnx("header section larger than %d bytes", HEADER_MAX);
		rc = EX_DATAERR;
		goto done;
	}

	/* Body phase. */
	in->in_header = false;
	if (queue_new_write(in->qn, hdr, hdrlen) == -1 ||
	    queue_new_write(in->qn, "\r\n", 2) == -1 ||
	    queue_new_write(in->qn, in->hbuf + body_off, in->hlen - body_off) == -1) {
		in->err = errno;
		goto spool_err;
	}
	if (pend_off < pend_len)
		intake_feed(in, buf + pend_off, pend_len - pend_off);
	while (!eof && !in->done && in->err == 0) {
		if ((r = read(STDIN_FILENO, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("reading the message");
			rc = EX_IOERR;
			goto done;
		}
		if (r == 0) {
			eof = true;
			intake_finish(in);
		} else
			intake_feed(in, buf, (size_t)r);
	}
	if (in->too_big)
		goto too_big;
	if (in->err != 0)
		goto spool_err;
	if (conf->max_message_size != 0 &&
	    queue_new_size(in->qn) > conf->max_message_size)
		goto too_big;
	goto done;

too_big:
	log_warnx("message refused: larger than max_message_size (%s bytes)",
	    size_text(conf->max_message_size, sz, sizeof(sz)));
	rc = EX_DATAERR;
	goto done;
spool_err:
	errno = in->err;
	log_warn("message not queued: %s", spool_problem(in->err));
	rc = submit_exit_for_errno(in->err);
done:
	free(hdr);
	return rc;
}

static int
submit(const struct opts *o, struct conf *conf, int argc, char **argv)
{
	struct envelope env;
	struct strlist args = { 0 }, hdr_rcpts = { 0 };
	struct rcpt_seen seen = { 0 };
	struct aliases *al = NULL;
	struct queue *q = NULL;
	struct intake in;
	char err[1024], *sender = NULL;
	int rc;

	envelope_init(&env);
	memset(&in, 0, sizeof(in));

	/* Check everything the user gave before taking the message. */
	for (int i = 0; i < argc; i++)
		if (parse_addrs("recipient", argv[i], &args) == -1) {
			rc = EX_DATAERR;
			goto done;
		}
	if (args.n == 0 && !o->extract) {
		log_warnx("no recipients given (name them, or use -t)");
		rc = EX_DATAERR;
		goto done;
	}
	if ((sender = envelope_sender(o, conf)) == NULL) {
		rc = EX_DATAERR;
		goto done;
	}
	if (conf->aliases != NULL &&
	    aliases_load(conf->aliases, &al, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		rc = EX_CONFIG;
		goto done;
	}

	if ((rc = open_submit_queue(conf, &q)) != 0)
		goto done;
	if (queue_new_begin(q, &in.qn) == -1) {
		int e = errno;

		log_warn("%s: message not queued: %s", conf->spool_dir,
		    spool_problem(e));
		rc = submit_exit_for_errno(e);
		goto done;
	}
	in.ignore_dots = o->ignore_dots;
	in.at_bol = true;
	in.in_header = true;
	in.max = conf->max_message_size;
	if ((rc = read_message(o, conf, &in, sender, &hdr_rcpts)) != EX_OK)
		goto done;

	for (size_t i = 0; i < args.n; i++)
		if (add_rcpt(&env, &seen, args.v[i], conf, al) == -1) {
			rc = EX_DATAERR;
			goto done;
		}
	for (size_t i = 0; i < hdr_rcpts.n; i++)
		if (add_rcpt(&env, &seen, hdr_rcpts.v[i], conf, al) == -1) {
			rc = EX_DATAERR;
			goto done;
		}
	if (env.nrcpt == 0) {
		log_warnx("no recipients: %s", o->extract ?
		    "no address in To, Cc or Bcc" : "none given");
		rc = EX_DATAERR;
		goto done;
	}

	env.sender = sender;
	sender = NULL;
	env.arrival = time(NULL);
	env.submit_uid = (uint32_t)caller_uid;
	env.submit_user = xstrdup(caller_name);
	{
		struct queue_new *qn = in.qn;

		in.qn = NULL;	/* commit frees it, whatever happens */
		if (queue_new_commit(qn, &env) == -1) {
			int e = errno;

			log_warn("%s: message not queued: %s", conf->spool_dir,
			    spool_problem(e));
			rc = submit_exit_for_errno(e);
			goto done;
		}
	}
	{
		char esc[512];

		log_info("%s: from=<%s>, size=%llu, nrcpt=%zu, uid=%lu, "
		    "user=%s (%s)", env.id,
		    util_escape(esc, sizeof(esc), env.sender),
		    (unsigned long long)env.size, env.nrcpt,
		    (unsigned long)caller_uid, caller_name,
		    queue_is_drop(q) ? "dropped for pickup" : "queued");
	}
	rc = EX_OK;
done:
	if (in.qn != NULL)
		queue_new_abort(in.qn);
	free(in.hbuf);
	if (q != NULL)
		queue_close(q);
	if (al != NULL)
		aliases_free(al);
	envelope_free(&env);
	free(sender);
	strlist_free(&args);
	strlist_free(&hdr_rcpts);
	seen_free(&seen);
	return rc;
}

/*
 * mailq / -bp
 */

struct listing {
	unsigned	 count;
	uint64_t	 bytes;
};

static int
list_one(struct queue *q, const struct envelope *env, void *arg)
{
	struct listing *l = arg;
	char when[64], esc[1024];
	struct tm tm;

	(void)q;
	if (l->count == 0)
		printf("%-20s %8s %-20s  %s\n", "-Queue ID-", "--Size--",
		    "----Arrival Time----", "-Sender/Recipient-------");
	localtime_r(&env->arrival, &tm);
	strftime(when, sizeof(when), "%a %b %e %H:%M:%S", &tm);
	printf("%-20s %8llu %-20s  %s\n", env->id, (unsigned long long)env->size,
	    when, env->sender[0] ? util_escape(esc, sizeof(esc), env->sender) :
	    "<>");
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		char next[64] = "";

		if (r->state == RCPT_PENDING && r->next_try != 0) {
			localtime_r(&r->next_try, &tm);
			strftime(next, sizeof(next), ", next try %b %e %H:%M:%S", &tm);
		}
		printf("%52s%s (%s, %u attempt%s%s)\n", "",
		    util_escape(esc, sizeof(esc), r->addr),
		    envelope_state_to_text(r->state), r->attempts,
		    r->attempts == 1 ? "" : "s", next);
		if (r->last_reply != NULL)
			printf("%56s%s\n", "",
			    util_escape(esc, sizeof(esc), r->last_reply));
	}
	putchar('\n');
	l->count++;
	l->bytes += env->size;
	return 0;
}

static void
list_end(const struct listing *l)
{
	if (l->count == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %llu Kbytes in %u Request%s.\n",
		    (unsigned long long)(l->bytes + 1023) / 1024, l->count,
		    l->count == 1 ? "" : "s");
}

/*
 * A user who does not own the spool sees its own messages, through the
 * daemon (which asks the kernel who is calling).  Without the daemon
 * only root and the spool's owner can read the queue.
 */
static int
list_from_daemon(const struct conf *conf)
{
	struct listing l = { 0, 0 };
	const char *rest;
	char *buf, *p, *end;
	size_t len;
	unsigned long n;

	if (control_request_all(conf->runtime_dir, "list", &buf, &len,
	    CONTROL_LIST_MAX) == -1) {
		if (errno == ENOENT || errno == ECONNREFUSED) {
			log_warnx("mxrelayd is not running: only root and the "
			    "spool's owner can read the queue without it");
			return EX_UNAVAILABLE;
		}
		log_warn("%s/%s", conf->runtime_dir, CONTROL_NAME);
		return EX_UNAVAILABLE;
	}
	end = buf + len;
	if (control_reply_parse(buf, &rest) != CONTROL_OK) {
		buf[strcspn(buf, "\n")] = '\0';
		log_warnx("mxrelayd: %s", rest);
		free(buf);
		return EX_UNAVAILABLE;
	}
	n = strtoul(rest, &p, 10);
	if (*p++ != '\n')
		goto bad;
	for (unsigned long i = 0; i < n; i++) {
		struct envelope env;
		const char *why;
		unsigned long elen = strtoul(p, &p, 10);

		if (p >= end || *p++ != '\n' || elen > (size_t)(end - p))
			goto bad;
		if (envelope_decode(p, elen, &env, &why) == -1)
			goto bad;
		list_one(NULL, &env, &l);
		envelope_free(&env);
		p += elen;
	}
	free(buf);
	list_end(&l);
	return EX_OK;
bad:
	free(buf);
	log_warnx("mxrelayd: a listing that cannot be read");
	return EX_SOFTWARE;
}

static int
list_queue(struct conf *conf)
{
	struct listing l = { 0, 0 };
	struct queue *q;
	bool missing;
	int rc;

	if ((rc = as_spool_owner(conf, false, &missing)) != 0)
		return rc;
	if (!missing && !owns_spool(conf))
		return list_from_daemon(conf);
	if (missing || queue_open(conf->spool_dir, false, &q) == -1) {
		if (missing || errno == ENOENT) {
			printf("Mail queue is empty\n");
			return EX_OK;
		}
		log_warn("%s", conf->spool_dir);
		return errno == EACCES || errno == EPERM ? EX_NOPERM : EX_IOERR;
	}
	if (queue_scan(q, list_one, &l) == -1) {
		log_warn("%s: scanning the queue", conf->spool_dir);
		queue_close(q);
		return EX_IOERR;
	}
	queue_close(q);
	list_end(&l);
	return EX_OK;
}

/*
 * -q, -qf, -qI ID: one run of the queue with the delivery engine, in this
 * process; exit once every due message has been tried.
 */
/*
 * A running mxrelayd owns the queue: ask it to try everything (or one
 * message) now instead of racing it.  -1: no daemon, run the queue here.
 */
static int
ask_daemon(const struct conf *conf, const char *id)
{
	char req[CONTROL_LINE_MAX], reply[CONTROL_LINE_MAX];
	const char *rest;

	if (id != NULL)
		snprintf(req, sizeof(req), "flush %s", id);
	else
		snprintf(req, sizeof(req), "flush");
	if (control_request(conf->runtime_dir, req, reply, sizeof(reply)) ==
	    -1) {
		if (errno != ENOENT && errno != ECONNREFUSED &&
		    errno != ENAMETOOLONG)
			log_warn("%s/%s", conf->runtime_dir, CONTROL_NAME);
		return -1;
	}
	switch (control_reply_parse(reply, &rest)) {
	case CONTROL_OK:
		log_info("mxrelayd is running: it delivers now (%s)", reply);
		return EX_OK;
	case CONTROL_ERR_NOMSG:
		if (id == NULL)
			break;
		log_warnx("%s: no such message, or nothing to deliver", id);
		return EX_TEMPFAIL;	/* as without a daemon */
	default:
		break;
	}
	log_warnx("mxrelayd: %s", rest);
	return EX_SOFTWARE;
}

/*
 * A daemon runs on this spool (it holds the spool's lock): only then is
 * the control socket in runtime_dir asked, so that a queue run on another
 * spool never flushes the system's daemon instead.
 */
static bool
daemon_holds_spool(const struct conf *conf)
{
	struct queue *q;
	bool held;

	if (queue_open(conf->spool_dir, false, &q) == -1)
		return false;
	held = queue_lock_spool(q) == -1 && errno == EWOULDBLOCK;
	queue_close(q);
	return held;
}

static int
run_queue(const struct opts *o, struct conf *conf, int argc, char **argv)
{
	struct runner_opts ro;
	struct qmgr_stats st;
	bool missing;
	int rc;

	if (geteuid() != 0 && !owns_spool(conf)) {
		log_warnx("only root and the spool's owner may run the queue");
		return EX_NOPERM;
	}
	memset(&ro, 0, sizeof(ro));
	ro.force = o->force;
	ro.only_id = o->queue_id;
	if (argc > 0) {
		if (argc > 1 || ro.only_id != NULL) {
			log_warnx("-q takes at most one queue id");
			return EX_USAGE;
		}
		ro.only_id = argv[0];
	}
	if (ro.only_id != NULL && !queue_id_valid(ro.only_id)) {
		log_warnx("%s: not a queue id", ro.only_id);
		return EX_USAGE;
	}
	if ((rc = as_spool_owner(conf, false, &missing)) != 0)
		return rc;
	if (missing) {
		if (ro.only_id != NULL) {
			log_warnx("%s: no such message, or nothing to deliver",
			    ro.only_id);
			return EX_TEMPFAIL;
		}
		return EX_OK;	/* no spool, nothing to deliver */
	}
	if (daemon_holds_spool(conf) &&
	    (rc = ask_daemon(conf, ro.only_id)) != -1)
		return rc;
	{
		char err[512];

		if (privs_check_not_submitter(err, sizeof(err)) == -1) {
			log_warnx("%s", err);
			return EX_CONFIG;
		}
	}
	if (runner_run(conf, &ro, &st) == -1)
		return EX_TEMPFAIL;
	return EX_OK;
}
