/*
 * submit_bs: `mxrelay -bs` (see submit_bs.h): a private event loop, an
 * smtpd without listeners, TLS or users, one local session
 * (smtpd_session_fds()) with inline commits, then the exit status.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sysexits.h>

#include "event.h"
#include "log.h"
#include "smtpd.h"
#include "submit_bs.h"

/*
 * Killed by a signal while the session runs (^C at a terminal), the
 * descriptors get their flags back first: a tty left non-blocking makes
 * some shells exit.  Only signals whose disposition is the default.
 */
static const int bs_signals[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM };
static int bs_fd[2], bs_fl[2];
static volatile sig_atomic_t bs_nfd;

static void
bs_on_signal(int sig)
{
	int e = errno;

	for (sig_atomic_t i = 0; i < bs_nfd; i++)
		(void)fcntl(bs_fd[i], F_SETFL, bs_fl[i]);
	errno = e;
	/* SA_RESETHAND: delivered again when this returns, and fatal. */
	(void)raise(sig);
}

struct bs {
	struct ev_loop		*loop;
	bool			 done;
	struct smtpd_local_end	 end;
};

static void
bs_done(void *arg, const struct smtpd_local_end *end)
{
	struct bs *bs = arg;

	bs->done = true;
	bs->end = *end;
	ev_break(bs->loop);
}

int
submit_exit_for_errno(int e)
{
	switch (e) {
	case ENOSPC:
	case EDQUOT:
	case ENOMEM:
	case EAGAIN:
	case EINTR:
	case EMFILE:
	case ENFILE:
		return EX_TEMPFAIL;
	case EACCES:
	case EPERM:
	case EROFS:
	case ENOENT:
	case ENOTDIR:
	case EEXIST:
		return EX_CANTCREAT;
	default:
		return EX_IOERR;
	}
}

static int
bs_exit(const struct smtpd_local_end *end)
{
	if (end->spool_err != 0)
		return submit_exit_for_errno(end->spool_err);
	if (end->quit)
		return EX_OK;
	if (end->io_error)
		return EX_IOERR;
	if (end->timeout)
		return EX_TEMPFAIL;
	if (end->error_limit)
		return EX_PROTOCOL;
	if (end->in_txn)
		return EX_DATAERR;
	return EX_OK;
}

int
submit_bs(struct queue *q, const struct submit_bs_conf *conf, uint32_t uid,
    const char *user, int infd, int outfd)
{
	struct smtpd_params p;
	struct smtpd_local lo;
	struct smtpd *sd = NULL;
	struct sigaction ign, old, sa, oldsig[sizeof(bs_signals) /
	    sizeof(bs_signals[0])];
	bool guarded[sizeof(bs_signals) / sizeof(bs_signals[0])] = { 0 };
	struct bs bs;
	int rc, fl, nfd = 0;

	/* A client that goes away must not kill us in mid-commit. */
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigemptyset(&ign.sa_mask);
	(void)sigaction(SIGPIPE, &ign, &old);

	memset(&bs, 0, sizeof(bs));
	if ((bs.loop = ev_loop_new()) == NULL) {
		log_warn("-bs: event loop");
		rc = EX_OSERR;
		goto done;
	}
	/* As mxrelayd's listener (gen_new()), without TLS, AUTH or ACL. */
	memset(&p, 0, sizeof(p));
	p.hostname = conf->hostname;
	p.qualify_domain = conf->qualify_domain;
	p.max_size = conf->max_size;
	p.max_recipients = conf->max_recipients;
	p.bare_lf = conf->bare_lf;
	p.add_missing_headers = conf->add_missing_headers;
	p.dkim = conf->dkim;
	p.max_clients = 1;
	p.cmd_timeout_ms = SMTPD_CMD_TIMEOUT_MS;
	p.data_timeout_ms = SMTPD_DATA_TIMEOUT_MS;
	sd = smtpd_new(bs.loop, q, &p, NULL, NULL);

	bs_nfd = 0;
	if ((fl = fcntl(infd, F_GETFL)) != -1) {
		bs_fd[nfd] = infd;
		bs_fl[nfd++] = fl;
	}
	if (outfd != infd && (fl = fcntl(outfd, F_GETFL)) != -1) {
		bs_fd[nfd] = outfd;
		bs_fl[nfd++] = fl;
	}
	bs_nfd = nfd;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bs_on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(bs_signals) / sizeof(bs_signals[0]);
	    i++)
		if (sigaction(bs_signals[i], NULL, &oldsig[i]) == 0 &&
		    oldsig[i].sa_handler == SIG_DFL &&
		    !(oldsig[i].sa_flags & SA_SIGINFO) &&
		    sigaction(bs_signals[i], &sa, NULL) == 0)
			guarded[i] = true;

	memset(&lo, 0, sizeof(lo));
	lo.uid = uid;
	lo.user = user;
	lo.done = bs_done;
	lo.arg = &bs;
	if (smtpd_session_fds(sd, infd, outfd, &lo) == -1) {
		log_warn("-bs: cannot start the SMTP session");
		rc = EX_OSERR;
		goto done;
	}
	if (ev_run(bs.loop) == -1) {
		log_warn("-bs: event loop");
		rc = EX_OSERR;
		goto done;
	}
	if (!bs.done) {
		log_warnx("-bs: the session stopped without an end");
		rc = EX_SOFTWARE;
		goto done;
	}
	rc = bs_exit(&bs.end);
done:
	smtpd_free(sd);		/* the descriptors' flags are back */
	for (size_t i = 0; i < sizeof(bs_signals) / sizeof(bs_signals[0]);
	    i++)
		if (guarded[i])
			(void)sigaction(bs_signals[i], &oldsig[i], NULL);
	bs_nfd = 0;
	ev_loop_free(bs.loop);
	(void)sigaction(SIGPIPE, &old, NULL);
	return rc;
}
