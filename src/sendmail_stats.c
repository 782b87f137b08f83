/*
 * sendmail_stats.c: `mxrelay stats [-C file]`, the daemon's metrics in
 * the Prometheus text format, read over the control socket (the request
 * "stats": root and the spool's owner only).  Without a running mxrelayd
 * there is nothing to show: the counters live in the daemon.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "conf.h"
#include "control.h"
#include "log.h"
#include "sendmail_int.h"

/* Largest answer to "stats" that we take. */
#define STATS_MAX	(16 * 1024 * 1024)

static int	 stats_fetch(const struct conf *);

/*
 * The answer is "ok N\n" and then N bytes of text: anything shorter was
 * cut off, and is not printed as if it were whole.
 */
static int
stats_fetch(const struct conf *conf)
{
	const char *rest;
	char *buf, *p;
	size_t len, hlen;
	unsigned long long n;

	if (control_request_all(conf->runtime_dir, "stats", &buf, &len,
	    STATS_MAX) == -1) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			log_warnx("mxrelayd is not running: the metrics are "
			    "the daemon's");
		else
			log_warn("%s/%s", conf->runtime_dir, CONTROL_NAME);
		return EX_UNAVAILABLE;
	}
	if (control_reply_parse(buf, &rest) != CONTROL_OK) {
		buf[strcspn(buf, "\n")] = '\0';
		log_warnx("mxrelayd: %s", rest);
		free(buf);
		return EX_NOPERM;
	}
	errno = 0;
	n = strtoull(rest, &p, 10);
	if (errno != 0 || p == rest || *p != '\n')
		goto bad;
	hlen = (size_t)(p + 1 - buf);
	if (len - hlen != n)
		goto bad;
	if (fwrite(buf + hlen, 1, n, stdout) != n || fflush(stdout) == EOF) {
		log_warn("stdout");
		free(buf);
		return EX_IOERR;
	}
	free(buf);
	return EX_OK;
bad:
	log_warnx("mxrelayd: a malformed answer to stats");
	free(buf);
	return EX_PROTOCOL;
}

int
cmd_stats(int argc, char **argv)
{
	struct conf conf;
	const char *path = NULL;
	int ch, rc;

	optind = 1;
	while ((ch = getopt(argc, argv, "C:")) != -1) {
		switch (ch) {
		case 'C':
			path = optarg;
			break;
		default:
			fprintf(stderr, "usage: mxrelay stats [-C file]\n");
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: mxrelay stats [-C file]\n");
		return EX_USAGE;
	}
	if ((rc = command_conf(path, &conf)) != EX_OK)
		return rc;
	rc = stats_fetch(&conf);
	conf_free(&conf);
	return rc;
}
