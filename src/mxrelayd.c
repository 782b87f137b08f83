/*
 * mxrelayd: the daemon.  SMTP listeners for applications (smtpd.c), the
 * queue manager (qmgr.c) and the delivery engine (delivery.c), in one
 * event-driven process.  See mxrelayd(8).  The control socket is in
 * mxrelayd_ctl.c.
 *
 * Start-up, in this order: fork unless -f (the parent waits until the
 * child is ready and exits with its status, so start-up errors reach the
 * terminal); read the configuration and what it names (TLS certificate
 * and key, users file, relayhost_auth_file); as root, make the spool and
 * the runtime folder when they are missing (nothing that exists is
 * changed); bind the listeners; drop root to `user`; open the spool, which
 * must be ours, and lock the pid file in runtime_dir (a second daemon is
 * refused); open the control socket; watch env/ and drop/ with inotify
 * (messages that mxrelay queues or drops start within a second); take in
 * what waits in drop/; load the queue index; serve.  Root never opens
 * anything in the spool or the runtime folder.
 *
 * Signals (through a signalfd, so that handlers never run inside the
 * loop): SIGTERM and SIGINT stop accepting, let SMTP sessions in DATA
 * and deliveries in flight finish for a grace period, and exit;
 * SIGHUP reloads the configuration and keeps the old one when the new one
 * is bad.  A reload builds a new "generation" (configuration, delivery
 * engine, TLS context, users): new messages use it at once, and the old
 * one is freed when its engine has nothing left in flight.
 */
#include "config.h"

#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <netdb.h>
#include <netinet/in.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "control.h"
#include "delivery.h"
#include "event.h"
#include "log.h"
#include "mxrelayd.h"
#include "pickup.h"
#include "privs.h"
#include "qmgr.h"
#include "runner.h"
#include "smtpd.h"
#include "spool.h"
#include "tls.h"
#include "util.h"

/* How long SIGTERM waits for sessions in DATA and deliveries in flight. */
#define SHUTDOWN_GRACE_MS	10000
/* Housekeeping: retired generations, the fallback look at env/. */
#define HOUSEKEEPING_MS		1000
/*
 * Threads that make received messages durable (the fsyncs of a commit):
 * fsyncs from several threads overlap on the disk (a journalling
 * filesystem folds concurrent fsyncs into one journal commit), and the
 * loop goes on.  A commit waits on the disk, not on a CPU, so there are
 * more threads than cores: one for each session that waits for its
 * commit, up to 64.  With fewer threads than such sessions, commits wait
 * for a thread and each journal commit carries fewer of them
 * (bench_smtpd.sh, 20 clients on BENCH_LOOPFS: 16 threads gave
 * 1,509-1,678 msg/s end to end, 64 threads 1,715-1,797).  No more
 * than max_clients at the start, since more would never be busy (a
 * reload keeps the threads).
 */
#define COMMIT_THREADS		64
/*
 * An outbound connection whose destination has nothing more for it waits
 * this long for the next message (Postfix: smtp_connection_cache_time_limit).
 */
#define KEEP_IDLE_MS		2000
/* A look at drop/ even when inotify said nothing (a lost event). */
#define PICKUP_MS		60000

static void	usage(int) __attribute__((noreturn));

static void
usage(int code)
{
	fprintf(code == EX_OK ? stdout : stderr,
	    "usage: mxrelayd [-fiv] [-C file]\n"
	    "\n"
	    "  -C FILE    configuration file (default " CONF_DEFAULT_PATH ")\n"
	    "  -f         foreground: do not fork, log to stderr\n"
	    "  -i         as root: make spool_dir and runtime_dir when missing,\n"
	    "             then exit (the systemd unit runs this first)\n"
	    "  -v         more log detail (debug lines with -vv)\n"
	    "  --help     this text; --version the version\n"
	    "\n"
	    "Signals: SIGTERM stops (nothing accepted is lost), SIGHUP reloads\n"
	    "the configuration.  `mxrelay -q` asks a running mxrelayd to flush.\n"
	    "See mxrelayd(8).\n");
	exit(code);
}

/*
 * Generations: the configuration and what is made from it.
 */

static void
gen_free(struct gen *g)
{
	if (g == NULL)
		return;
	runner_setup_free(g->dlv);
	tls_ctx_free(g->srv_ctx);
	smtpd_users_free(g->users);
	conf_free(&g->conf);
	free(g);
}

static struct gen *
gen_new(struct daemon *d)
{
	struct gen *g = xcalloc(1, sizeof(*g));
	const struct conf *c = &g->conf;
	char err[1024];

	if (conf_load(d->conf_path, d->conf_must_exist, &g->conf, err,
	    sizeof(err)) == -1) {
		log_warnx("%s", err);
		free(g);
		return NULL;
	}
	/* conf_load() saw to it that both or neither are set. */
	if (c->tls_cert_file != NULL) {
		int kfd = runner_secret_open(c, c->tls_key_file);

		if (kfd == -1)
			goto fail;
		g->srv_ctx = tls_server_ctx_new_fd(c->tls_cert_file,
		    c->tls_key_file, kfd, err, sizeof(err));
		close(kfd);
		if (g->srv_ctx == NULL) {
			log_warnx("TLS: %s", err);
			goto fail;
		}
	}
	if (c->auth_users != NULL) {
		int ufd = runner_secret_open(c, c->auth_users);

		if (ufd == -1)
			goto fail;
		g->users = smtpd_users_load_fd(c->auth_users, ufd, err,
		    sizeof(err));
		close(ufd);
		if (g->users == NULL) {
			log_warnx("%s", err);
			goto fail;
		}
	}
	if ((g->dlv = runner_setup_new(d->loop, c)) == NULL)
		goto fail;
	delivery_keep_idle(g->dlv->engine, KEEP_IDLE_MS);
	g->sp.hostname = c->hostname;
	g->sp.qualify_domain = c->qualify_domain;
	g->sp.max_size = c->max_message_size;
	g->sp.bare_lf = c->bare_lf;
	g->sp.max_recipients = c->max_recipients;
	g->sp.max_clients = c->max_clients;
	g->sp.cmd_timeout_ms = c->smtpd_command_timeout_ms;
	g->sp.data_timeout_ms = c->smtpd_data_timeout_ms;
	g->sp.idle_timeout_ms = c->smtpd_idle_timeout_ms;
	g->sp.tls_timeout_ms = c->smtpd_tls_timeout_ms;
	g->sp.session_deadline_ms = c->smtpd_session_deadline_ms;
	g->sp.max_per_address = c->max_clients_per_address;
	g->sp.junk_limit = c->smtpd_junk_command_limit;
	g->sp.relay_clients = c->relay_clients;
	g->sp.nrelay_clients = c->nrelay_clients;
	g->sp.tls_ctx = g->srv_ctx;
	g->sp.users = g->users;
	g->sp.auth_fail_limit = c->auth_fail_limit;
	g->sp.auth_fail_window_ms = c->auth_fail_window_ms;
	g->sp.auth_fail_delay_max_ms = c->auth_fail_delay_max_ms;
	g->sp.add_missing_headers = c->smtpd_add_missing_headers;
	g->sp.dkim = g->dlv->dkim;
	return g;
fail:
	gen_free(g);
	return NULL;
}

static bool
hostports_equal(const struct hostport *a, size_t na, const struct hostport *b,
    size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].host, b[i].host) != 0 || a[i].port != b[i].port)
			return false;
	return true;
}

static bool
str_equal(const char *a, const char *b)
{
	return (a == NULL && b == NULL) ||
	    (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
reload(struct daemon *d)
{
	struct gen *g, *old = d->cur;

	log_info("reloading %s", d->conf_path);
	if ((g = gen_new(d)) == NULL ||
	    runner_setup_sts(g->dlv, d->loop, &g->conf) == -1) {
		gen_free(g);
		log_warnx("reload failed: the configuration in use is kept");
		return;
	}
	if (!hostports_equal(g->conf.listen, g->conf.nlisten, old->conf.listen,
	    old->conf.nlisten))
		log_warnx("listen: a change takes effect at the next start");
	if (!hostports_equal(g->conf.metrics_listen, g->conf.nmetrics_listen,
	    old->conf.metrics_listen, old->conf.nmetrics_listen))
		log_warnx("metrics_listen: a change takes effect at the next "
		    "start");
	if (!str_equal(g->conf.spool_dir, old->conf.spool_dir))
		log_warnx("spool_dir: a change takes effect at the next start");
	if (!str_equal(g->conf.user, old->conf.user) ||
	    !str_equal(g->conf.group, old->conf.group))
		log_warnx("user, group: a change takes effect at the next start");
	/* Those three stay as they were started. */
	free(g->conf.spool_dir);
	g->conf.spool_dir = xstrdup(old->conf.spool_dir);

	d->cur = g;
	if (d->smtpd != NULL)
		smtpd_set_params(d->smtpd, &g->sp);
	qmgr_set_conf(d->qm, &g->dlv->qc, g->dlv->engine);
	/* The old engine finishes what it has, and keeps no idle session. */
	delivery_close_idle(old->dlv->engine);
	old->next = d->retired;
	d->retired = old;
	log_info("configuration reloaded");
}

/* Free retired generations whose engine has nothing left in flight. */
static void
retired_collect(struct daemon *d)
{
	struct gen **gp = &d->retired, *g;

	while ((g = *gp) != NULL) {
		if (delivery_idle(g->dlv->engine)) {
			*gp = g->next;
			gen_free(g);
		} else
			gp = &g->next;
	}
}

/*
 * Start-up pieces.
 */

/* Lock and write the pid file; refuse when another daemon holds it. */
static int
pidfile_lock(struct daemon *d)
{
	char buf[32];
	ssize_t n;

	struct stat st;

	d->pid_path = xasprintf("%s/%s", d->cur->conf.runtime_dir,
	    CONTROL_PID_NAME);
	if ((d->pidfd = open(d->pid_path, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_NONBLOCK | O_CLOEXEC, 0644)) == -1) {
		if (errno == ELOOP)
			log_warnx("%s: a symbolic link; refusing to use it",
			    d->pid_path);
		else
			log_warn("%s", d->pid_path);
		return EX_CANTCREAT;
	}
	if (fstat(d->pidfd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid()) {
		log_warnx("%s: not a regular file of ours; refusing to use it",
		    d->pid_path);
		close(d->pidfd);
		d->pidfd = -1;
		return EX_CANTCREAT;
	}
	if (flock(d->pidfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK) {
			log_warn("%s: lock", d->pid_path);
			return EX_OSERR;
		}
		n = pread(d->pidfd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		log_warnx("already running (pid %s) with %s",
		    buf[0] ? buf : "?", d->pid_path);
		close(d->pidfd);
		d->pidfd = -1;
		return EX_UNAVAILABLE;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(d->pidfd, 0) == -1 ||
	    pwrite(d->pidfd, buf, (size_t)n, 0) != n) {
		log_warn("%s", d->pid_path);
		return EX_IOERR;
	}
	return EX_OK;
}

/*
 * Whether a failure to bind ai (errno err) is the loopback's IPv6
 * address missing on this host: its family is not supported (a kernel
 * without IPv6) or lo has no ::1 (IPv6 disabled on lo), where the default
 * listen names [::1].  Such an address is skipped, not an error.  Any
 * other address that is missing stays an error: an address that is not
 * up yet at boot must not leave the daemon running without it.
 */
static bool
loopback6_missing(const struct addrinfo *ai, int err)
{
	const struct sockaddr_in6 *sin6;

	if (err != EAFNOSUPPORT && err != EADDRNOTAVAIL)
		return false;
	if (ai->ai_family != AF_INET6 ||
	    ai->ai_addrlen < sizeof(struct sockaddr_in6))
		return false;
	sin6 = (const struct sockaddr_in6 *)(const void *)ai->ai_addr;
	return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
}

/*
 * Bind and listen on every address of hp (numeric: only an address, not
 * a name), non-blocking, and add the sockets to *fds.  what names the key
 * in the log ("listen", "metrics_listen").  The loopback's IPv6 address,
 * when this host lacks it (loopback6_missing), is skipped with a warning.
 * 0; 1 when nothing was bound because that address is missing; -1
 * logged.
 */
int
daemon_bind(const struct hostport *hp, bool numeric, int backlog,
    const char *what, int **fds, size_t *nfds)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16], name[300];
	bool v6 = strchr(hp->host, ':') != NULL;
	int gai, bound = 0, missing = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV |
	    (numeric ? AI_NUMERICHOST : 0);
	snprintf(port, sizeof(port), "%u", hp->port);
	snprintf(name, sizeof(name), "%s%s%s:%s", v6 ? "[" : "", hp->host,
	    v6 ? "]" : "", port);
	if ((gai = getaddrinfo(hp->host, port, &hints, &res)) != 0) {
		log_warnx("%s %s: %s", what, name, gai_strerror(gai));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		int fd, err, one = 1;

		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol)) == -1) {
			err = errno;
			log_warn("%s %s: socket", what, name);
			if (loopback6_missing(ai, err)) {
				missing++;
				continue;
			}
			freeaddrinfo(res);
			return -1;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == -1 ||
		    listen(fd, backlog) == -1) {
			err = errno;
			log_warn("%s %s", what, name);
			close(fd);
			if (loopback6_missing(ai, err)) {
				missing++;
				continue;
			}
			freeaddrinfo(res);
			return -1;
		}
		*fds = xreallocarray(*fds, *nfds + 1, sizeof(**fds));
		(*fds)[(*nfds)++] = fd;
		bound++;
	}
	freeaddrinfo(res);
	if (bound == 0 && missing != 0)
		return 1;
	if (bound == 0) {
		log_warnx("%s %s: no address to bind", what, name);
		return -1;
	}
	return 0;
}

/*
 * Bind one address of `listen`.  0; 1 when it is [::1] and this host
 * lacks it (skipped: run() requires only that one address of the list
 * is bound); -1 logged.
 */
static int
listen_one(struct daemon *d, const struct hostport *hp)
{
	int r;

	if ((r = daemon_bind(hp, false, SOMAXCONN, "listen", &d->lfds,
	    &d->nlfds)) == -1)
		return -1;
	if (r == 1) {
		log_warnx("listen %s%s%s:%u: not on this host, skipped",
		    strchr(hp->host, ':') != NULL ? "[" : "", hp->host,
		    strchr(hp->host, ':') != NULL ? "]" : "", hp->port);
		return 1;
	}
	log_info("listening on %s%s%s:%u", strchr(hp->host, ':') != NULL ?
	    "[" : "", hp->host, strchr(hp->host, ':') != NULL ? "]" : "",
	    hp->port);
	return 0;
}

/*
 * Write what is left of buf (*off bytes of len are gone) to a
 * non-blocking socket.  False: it would block, call again when fd is
 * writable.  True: all of it is gone, or the peer is: close.
 */
bool
daemon_send_some(int fd, const char *buf, size_t len, size_t *off)
{
	ssize_t n;

	while (*off < len) {
		n = send(fd, buf + *off, len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return false;
		if (n <= 0)
			break;
		*off += (size_t)n;
	}
	return true;
}

/* Started as root: become user:group (the spool is theirs). */
static int
drop_privileges(struct daemon *d)
{
	const struct conf *c = &d->cur->conf;
	struct passwd *pw;
	struct group *gr;
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		return EX_OK;
	if ((pw = getpwnam(c->user)) == NULL) {
		log_warnx("user %s: no such user (mxrelayd drops root to it)",
		    c->user);
		return EX_NOUSER;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0) {
		log_warnx("user %s is root: mxrelayd keeps running as root",
		    c->user);
		return EX_OK;
	}
	if (c->group != NULL) {
		if ((gr = getgrnam(c->group)) == NULL) {
			log_warnx("group %s: no such group", c->group);
			return EX_NOUSER;
		}
		gid = gr->gr_gid;
	}
	{
		char err[512];

		if (privs_become(uid, gid, err, sizeof(err)) == -1) {
			log_warnx("dropping root to %s: %s", c->user, err);
			return EX_OSERR;
		}
	}
	log_info("running as %s (uid %lu, gid %lu)", c->user,
	    (unsigned long)uid, (unsigned long)gid);
	runner_daemon_ids_fix(uid, gid);
	return EX_OK;
}

/*
 * New messages put into the spool by mxrelay: inotify on msg/ (and env/,
 * where messages of the older layout appear), or a look at both every
 * second when inotify is not available.
 */

static void
env_dir_scan(struct daemon *d)
{
	const char *dirs[] = { d->msg_dir, d->env_dir };
	DIR *dir;
	struct dirent *de;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if ((dir = opendir(dirs[i])) == NULL)
			continue;
		while ((de = readdir(dir)) != NULL)
			if (queue_id_valid(de->d_name))
				qmgr_add(d->qm, de->d_name);
		closedir(dir);
	}
}

static void
on_picked(void *arg, const struct envelope *env)
{
	struct daemon *d = arg;

	qmgr_add(d->qm, env->id);
	qmgr_set_submitter(d->qm, env->id, env->submit_uid);
}

/* Messages local users dropped: one (name), or all of them. */
static void
drop_pickup(struct daemon *d, const char *name)
{
	if (name != NULL && !queue_id_valid(name))
		return;
	if (name == NULL)
		d->last_pickup = ev_now(d->loop);
	pickup_run_signing(d->q, d->cur->conf.max_message_size,
	    d->cur->dlv->dkim, name, on_picked, d);
}

static void
ino_read(int fd, int events, void *arg)
{
	struct daemon *d = arg;
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	(void)events;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			if (ev->mask & IN_Q_OVERFLOW) {
				env_dir_scan(d);
				drop_pickup(d, NULL);
			} else if (ev->len > 0 && ev->wd == d->wd_drop)
				drop_pickup(d, ev->name);
			else if (ev->len > 0)
				qmgr_add(d->qm, ev->name);
			p += sizeof(*ev) + ev->len;
		}
	}
}

static void
watch_open(struct daemon *d)
{
	char *drop_dir = xasprintf("%s/drop", d->cur->conf.spool_dir);

	d->msg_dir = xasprintf("%s/msg", d->cur->conf.spool_dir);
	d->env_dir = xasprintf("%s/env", d->cur->conf.spool_dir);
	/*
	 * A drop file is whole once its mode changes (IN_ATTRIB), and can be
	 * taken once its writer closed it and let go of its lock
	 * (IN_CLOSE_WRITE).
	 */
	if ((d->inofd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) == -1 ||
	    inotify_add_watch(d->inofd, d->msg_dir, IN_MOVED_TO |
	    IN_DONT_FOLLOW | IN_ONLYDIR) == -1 ||
	    inotify_add_watch(d->inofd, d->env_dir, IN_MOVED_TO |
	    IN_DONT_FOLLOW | IN_ONLYDIR) == -1 ||
	    (d->wd_drop = inotify_add_watch(d->inofd, drop_dir, IN_ATTRIB |
	    IN_CLOSE_WRITE | IN_DONT_FOLLOW | IN_ONLYDIR)) == -1 ||
	    ev_fd_add(d->loop, d->inofd, EV_READ, ino_read, d) == -1) {
		log_warn("%s: inotify (looking every second instead)",
		    d->msg_dir);
		if (d->inofd != -1)
			close(d->inofd);
		d->inofd = -1;
	}
	free(drop_dir);
}

/*
 * Signals and shutdown.
 */

static void
stop_begin(struct daemon *d)
{
	if (d->stopping)
		return;
	log_info("shutting down: no new connections or deliveries");
	d->stopping = true;
	d->stop_deadline = ev_now(d->loop) + SHUTDOWN_GRACE_MS;
	if (d->smtpd != NULL)
		smtpd_shutdown(d->smtpd);
	qmgr_stop(d->qm);
	delivery_close_idle(d->cur->dlv->engine);
	if (d->ctlfd != -1) {
		ev_fd_del(d->loop, d->ctlfd);
		ev_timer_del(d->loop, &d->ctl_pause);
		close(d->ctlfd);
		d->ctlfd = -1;
		(void)unlink(d->ctl_path);
	}
	ev_timer_add(d->loop, &d->housekeeping, 0);
}

static void
sig_read(int fd, int events, void *arg)
{
	struct daemon *d = arg;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			stop_begin(d);
			break;
		case SIGHUP:
			if (!d->stopping)
				reload(d);
			break;
		default:
			break;
		}
	}
}

static bool
all_idle(struct daemon *d)
{
	if (d->smtpd != NULL && smtpd_nsessions(d->smtpd) > 0)
		return false;
	if (!qmgr_done(d->qm) || !delivery_idle(d->cur->dlv->engine))
		return false;
	for (struct gen *g = d->retired; g != NULL; g = g->next)
		if (!delivery_idle(g->dlv->engine))
			return false;
	return true;
}

static void
on_housekeeping(void *arg)
{
	struct daemon *d = arg;

	retired_collect(d);
	if (d->stopping) {
		if (all_idle(d)) {
			log_info("stopped: every session and delivery finished");
			ev_break(d->loop);
			return;
		}
		if (ev_now(d->loop) >= d->stop_deadline) {
			log_warnx("stopped: %zu deliveries and %u SMTP sessions "
			    "abandoned after %d s (they are retried at the next "
			    "start; nothing acknowledged is lost)",
			    qmgr_in_flight(d->qm), d->smtpd != NULL ?
			    smtpd_nsessions(d->smtpd) : 0,
			    SHUTDOWN_GRACE_MS / 1000);
			ev_break(d->loop);
			return;
		}
		ev_timer_add(d->loop, &d->housekeeping, 100);
		return;
	}
	if (d->inofd == -1)
		env_dir_scan(d);
	/* Without inotify every second; with it, now and then all the same. */
	if (d->inofd == -1 || ev_now(d->loop) - d->last_pickup >= PICKUP_MS)
		drop_pickup(d, NULL);
	ev_timer_add(d->loop, &d->housekeeping, HOUSEKEEPING_MS);
}

static int
signals_open(struct daemon *d)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1 ||
	    (d->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) == -1 ||
	    ev_fd_add(d->loop, d->sigfd, EV_READ, sig_read, d) == -1) {
		log_warn("signalfd");
		return -1;
	}
	return 0;
}

static void
on_queued(void *arg, const struct envelope *env)
{
	struct daemon *d = arg;

	qmgr_add_env(d->qm, env);
}

/*
 * Fork unless -f.  The parent waits for one byte from the child (ready)
 * or for its exit (start-up failed: its status is ours).
 */
static int
daemonize(int *ready_fd)
{
	int p[2];
	pid_t pid;
	char c;
	ssize_t n;
	int status;

	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		close(p[0]);
		*ready_fd = p[1];
		(void)setsid();
		return 0;
	}
	close(p[1]);
	do
		n = read(p[0], &c, 1);
	while (n == -1 && errno == EINTR);
	if (n == 1)
		_exit(EX_OK);
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
		_exit(WEXITSTATUS(status));
	_exit(EX_SOFTWARE);
}

static void
ready(struct daemon *d, int ready_fd)
{
	int null;

	if (ready_fd == -1)
		return;
	/* From now on the log is syslog only. */
	if ((null = open("/dev/null", O_RDWR)) != -1) {
		(void)dup2(null, STDIN_FILENO);
		(void)dup2(null, STDOUT_FILENO);
		(void)dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	log_init("mxrelayd", LOG_TO_SYSLOG, d->verbose);
	(void)write(ready_fd, "", 1);
	close(ready_fd);
}

/*
 * As root: the spool and the runtime folder, when missing, are made for
 * `user` (privs.c); nothing that exists is touched.
 */
static int
prepare_dirs(struct daemon *d)
{
	const struct conf *c = &d->cur->conf;
	char err[1024];

	if (privs_spool_prepare(c->spool_dir, c->user, false, err,
	    sizeof(err)) == -1 ||
	    privs_runtime_prepare(c->runtime_dir, c->user, err,
	    sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_CANTCREAT;
	}
	return EX_OK;
}

/* Root is gone by now: the spool must be ours. */
static int
spool_open(struct daemon *d)
{
	const struct conf *c = &d->cur->conf;
	uid_t owner;

	char err[512];

	if (privs_check_not_submitter(err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_CONFIG;
	}
	if (privs_spool_owner(c->spool_dir, &owner) == 0 &&
	    owner != geteuid()) {
		log_warnx("%s: owned by uid %lu, not by this daemon (uid %lu); "
		    "it works only in a spool of its own (once, as root: "
		    "chown -R %s %s)", c->spool_dir, (unsigned long)owner,
		    (unsigned long)geteuid(), c->user, c->spool_dir);
		return EX_NOPERM;
	}
	if (queue_open(c->spool_dir, true, &d->q) == -1) {
		if (errno == ELOOP || errno == ENOTDIR)
			log_warnx("%s: a folder of the spool is a symbolic link "
			    "or not a folder; refusing to use it", c->spool_dir);
		else
			log_warn("%s", c->spool_dir);
		return EX_CANTCREAT;
	}
	if (queue_lock_spool(d->q) == -1) {
		if (errno != EWOULDBLOCK) {
			log_warn("%s: lock", c->spool_dir);
			return EX_OSERR;
		}
		log_warnx("already running on the spool %s (another mxrelayd "
		    "holds it)", c->spool_dir);
		return EX_UNAVAILABLE;
	}
	return EX_OK;
}

static int
run(struct daemon *d)
{
	struct qmgr_opts qo;
	struct timespec t0, t1;
	int rc, ready_fd = -1;

	if (!d->foreground && daemonize(&ready_fd) == -1) {
		log_warn("fork");
		return EX_OSERR;
	}
	if ((d->loop = ev_loop_new()) == NULL) {
		log_warn("event loop");
		return EX_OSERR;
	}
	if ((d->cur = gen_new(d)) == NULL)
		return EX_CONFIG;
	if ((rc = prepare_dirs(d)) != EX_OK)
		return rc;
	for (size_t i = 0; i < d->cur->conf.nlisten; i++)
		if (listen_one(d, &d->cur->conf.listen[i]) == -1)
			return EX_UNAVAILABLE;
	if (d->cur->conf.nlisten > 0 && d->nlfds == 0) {
		log_warnx("listen: none of its addresses can be bound");
		return EX_UNAVAILABLE;
	}
	if (mhttp_open(d, d->cur->conf.metrics_listen,
	    d->cur->conf.nmetrics_listen) == -1)
		return EX_UNAVAILABLE;
	if ((rc = drop_privileges(d)) != EX_OK)
		return rc;
	if ((rc = pidfile_lock(d)) != EX_OK)
		return rc;
	if ((rc = spool_open(d)) != EX_OK)
		return rc;
	/* MTA-STS keeps its cache in the spool: made as the daemon's user. */
	if (runner_setup_sts(d->cur->dlv, d->loop, &d->cur->conf) == -1)
		return EX_CONFIG;
	if (signals_open(d) == -1)
		return EX_OSERR;
	if (ctl_open(d) == -1)
		return EX_CANTCREAT;
	watch_open(d);

	memset(&qo, 0, sizeof(qo));
	qo.daemon = true;
	qo.fd_reserve = 2 * d->cur->conf.max_clients + (unsigned)d->nlfds + 16;
	d->qm = qmgr_new(d->loop, d->q, &d->cur->dlv->qc, d->cur->dlv->engine,
	    &qo, &d->stats);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	drop_pickup(d, NULL);	/* qmgr_load() below indexes what it queued */
	if (qmgr_load(d->qm) == -1) {
		log_warn("%s: scanning the queue", d->cur->conf.spool_dir);
		return EX_IOERR;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);

	if (d->nlfds > 0) {
		if ((d->smtpd = smtpd_new(d->loop, d->q, &d->cur->sp, on_queued,
		    d)) == NULL) {
			log_warnx("the SMTP listener cannot start");
			return EX_SOFTWARE;
		}
		unsigned nthreads = d->cur->conf.max_clients < COMMIT_THREADS ?
		    d->cur->conf.max_clients : COMMIT_THREADS;

		if (smtpd_commit_threads(d->smtpd, nthreads) == -1) {
			log_warn("the SMTP listener's commit threads");
			return EX_OSERR;
		}
		for (size_t i = 0; i < d->nlfds; i++) {
			int fd = d->lfds[i];

			d->lfds[i] = -1;	/* the listener owns it now */
			if (smtpd_listen(d->smtpd, fd) == -1) {
				log_warn("listener");
				return EX_OSERR;
			}
		}
	}
	ev_timer_init(&d->housekeeping, on_housekeeping, d);
	ev_timer_add(d->loop, &d->housekeeping, HOUSEKEEPING_MS);
	log_info("started (pid %ld): %zu messages in the queue, indexed in "
	    "%.2f s", (long)getpid(), qmgr_count(d->qm),
	    (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	ready(d, ready_fd);

	if (ev_run(d->loop) == -1) {
		log_warn("event loop");
		return EX_OSERR;
	}
	return EX_OK;
}

static void
cleanup(struct daemon *d)
{
	bool clean = d->stopping;

	if (d->smtpd != NULL)
		smtpd_free(d->smtpd);
	qmgr_free(d->qm);
	/* An engine with sessions left is only dropped at exit. */
	if (clean && d->cur != NULL && delivery_idle(d->cur->dlv->engine)) {
		gen_free(d->cur);
		d->cur = NULL;
	}
	while (d->retired != NULL) {
		struct gen *g = d->retired;

		d->retired = g->next;
		if (delivery_idle(g->dlv->engine))
			gen_free(g);
	}
	for (size_t i = 0; i < d->nlfds; i++)
		if (d->lfds[i] != -1)
			close(d->lfds[i]);
	free(d->lfds);
	while (d->ctls != NULL)
		ctl_close(d->ctls);
	mhttp_close(d);
	if (d->ctlfd != -1) {
		close(d->ctlfd);
		(void)unlink(d->ctl_path);
	}
	if (d->inofd != -1)
		close(d->inofd);
	if (d->sigfd != -1)
		close(d->sigfd);
	queue_close(d->q);
	if (d->pidfd != -1) {
		/* We hold its lock: nobody else can be using it. */
		(void)unlink(d->pid_path);
		close(d->pidfd);
	}
	free(d->pid_path);
	free(d->ctl_path);
	free(d->msg_dir);
	free(d->env_dir);
	if (d->cur == NULL)
		ev_loop_free(d->loop);
}

/* -i: make what is missing, as root, and exit. */
static int
prepare_only(struct daemon *dd)
{
	struct conf c;
	char err[1024];
	int rc = EX_OK;

	if (geteuid() != 0) {
		log_warnx("-i: only root makes the spool and runtime folders");
		return EX_NOPERM;
	}
	if (conf_load(dd->conf_path, dd->conf_must_exist, &c, err,
	    sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_CONFIG;
	}
	if (privs_spool_prepare(c.spool_dir, c.user, true, err,
	    sizeof(err)) == -1 ||
	    privs_runtime_prepare(c.runtime_dir, c.user, err,
	    sizeof(err)) == -1) {
		log_warnx("%s", err);
		rc = EX_CANTCREAT;
	}
	conf_free(&c);
	return rc;
}

/* Static: whatever an abandoned delivery holds at exit stays reachable. */
static struct daemon d;

int
main(int argc, char **argv)
{
	int ch, rc;

	memset(&d, 0, sizeof(d));
	d.pidfd = d.sigfd = d.ctlfd = d.inofd = d.wd_drop = -1;
	ev_timer_init(&d.ctl_pause, ctl_resume, &d);
	log_init("mxrelayd", LOG_TO_STDERR, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "--help") == 0)
		usage(EX_OK);
	if (argc > 1 && strcmp(argv[1], "--version") == 0) {
		printf("mxrelayd %s\n", PACKAGE_VERSION);
		return EX_OK;
	}
	while ((ch = getopt(argc, argv, "C:fiv")) != -1) {
		switch (ch) {
		case 'C':
			d.conf_path = optarg;
			d.conf_must_exist = true;
			break;
		case 'f':
			d.foreground = true;
			break;
		case 'i':
			d.prepare_only = true;
			break;
		case 'v':
			d.verbose++;
			break;
		default:
			usage(EX_USAGE);
		}
	}
	if (optind != argc)
		usage(EX_USAGE);
	if (d.conf_path == NULL)
		d.conf_path = conf_default_path(&d.conf_must_exist);
	/* -f: everything on stderr, info lines included. */
	if (d.foreground)
		log_init("mxrelayd", LOG_TO_STDERR, d.verbose + 1);
	else
		log_init("mxrelayd", LOG_TO_STDERR | LOG_TO_SYSLOG, d.verbose);

	if (d.prepare_only)
		return prepare_only(&d);
	rc = run(&d);
	cleanup(&d);
	return rc;
}
