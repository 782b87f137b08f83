/*
 * fuzz_smtpd_cmd: one SMTP command line, as a client sends it to the
 * listener, through the pure parsers of src/smtpd_parse.c: the command
 * line, then by verb the HELO/EHLO argument, or the path of MAIL FROM /
 * RCPT TO (source route, mailbox) and its parameters.  Nothing may
 * crash, leak or read out of bounds, and the results must point inside
 * the buffers given.
 *
 * The first input octet chooses the options: bit 0 the qualify domain,
 * bits 1-2 the maximum message size, bit 3 a short error buffer (to
 * exercise truncation); the rest is the line without its CRLF.
 *
 * make check replays tests/fuzz/corpus/smtpd_cmd through replay.c.
 * libFuzzer build: CC=clang ./configure --enable-fuzzing; make fuzz
 * (tests/fuzz/local.mk) gives tests/fuzz/lf/fuzz_smtpd_cmd.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtpd_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const uint64_t max_sizes[] = { 0, 1, 10240000, UINT64_MAX };

static char	*copy_str(const char *);
static int	 inside(const char *, const char *, size_t);
static void	 fuzz_helo(const char *);
static void	 fuzz_path(const char *, const char *, unsigned);
static void	 fuzz_mail_params(char *, unsigned);

/* A copy of exactly strlen(s) + 1 octets, so that ASan sees overreads. */
static char *
copy_str(const char *s)
{
	size_t n = strlen(s) + 1;
	char *c;

	if ((c = malloc(n)) == NULL)
		abort();
	memcpy(c, s, n);
	return c;
}

/* Whether p points into buf[0..len], the terminating NUL included. */
static int
inside(const char *p, const char *buf, size_t len)
{
	return p >= buf && p <= buf + len;
}

static void
fuzz_helo(const char *arg)
{
	char *a = copy_str(arg);

	if (smtpd_helo_ok(a) &&
	    (a[0] == '\0' || strlen(a) > SMTPD_HELO_MAX ||
	    strpbrk(a, " ()\\") != NULL))
		abort();
	free(a);
}

static void
fuzz_mail_params(char *params, unsigned opt)
{
	struct smtpd_mail_params mp;
	enum smtpd_param_status st;
	size_t len = strlen(params);
	uint64_t max = max_sizes[(opt >> 1) & 3];

	st = smtpd_mail_params_parse(params, max, &mp);
	if (st == SMTPD_PARAM_OK) {
		if (mp.bad != NULL)
			abort();
	} else if (mp.bad == NULL || !inside(mp.bad, params, len) ||
	    mp.bad[0] == '\0')
		abort();
	if (st == SMTPD_PARAM_TOO_BIG &&
	    (!mp.has_size || max == 0 || mp.size <= max))
		abort();
}

static void
fuzz_path(const char *arg, const char *kw, unsigned opt)
{
	struct smtpd_path pp;
	const char *box;
	char *a = copy_str(arg), *mbox, *path, err[128], shorterr[8];
	size_t len = strlen(a), errlen;
	char *errbuf;

	if (opt & 8) {
		errbuf = shorterr;
		errlen = sizeof(shorterr);
	} else {
		errbuf = err;
		errlen = sizeof(err);
	}
	if (smtpd_path_parse(a, kw, &pp) == -1) {
		free(a);
		return;
	}
	if (!inside(pp.path, a, len) || !inside(pp.params, a, len) ||
	    pp.params[0] == ' ')
		abort();

	/* The route and the mailbox get their own exact copies. */
	path = copy_str(pp.path);
	if ((box = smtpd_route_strip(path)) != NULL &&
	    !inside(box, path, strlen(path)))
		abort();
	if (path[0] != '\0') {
		mbox = smtpd_mailbox(path, (opt & 1) ? "example.org" :
		    "mx.example", errbuf, errlen);
		if (mbox == NULL) {
			if (errbuf[0] == '\0' || strlen(errbuf) >= errlen)
				abort();
		} else if (strchr(mbox, '@') == NULL)
			abort();
		free(mbox);
	}
	free(path);

	if (strcmp(kw, "FROM:") == 0)
		fuzz_mail_params(pp.params, opt);
	else if (smtpd_rcpt_params_parse(pp.params) ==
	    SMTPD_PARAM_OK && pp.params[0] != '\0')
		abort();
	free(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtpd_cmd cmd;
	enum smtpd_cmd_status st;
	unsigned opt;
	char *line;
	size_t len;

	if (size < 1)
		return 0;
	opt = data[0];
	len = size - 1;
	if ((line = malloc(len + 1)) == NULL)
		abort();
	memcpy(line, data + 1, len);
	line[len] = '\0';

	st = smtpd_cmd_parse(line, len, &cmd);
	if (!inside(cmd.arg, line, len))
		abort();
	if (st == SMTPD_CMD_NUL || st == SMTPD_CMD_UNKNOWN) {
		if (cmd.name != NULL || cmd.verb != SMTPD_NVERBS)
			abort();
		free(line);
		return 0;
	}
	if (cmd.name == NULL || cmd.verb >= SMTPD_NVERBS ||
	    cmd.arg[0] == ' ')
		abort();
	if (st == SMTPD_CMD_OK) {
		switch (cmd.verb) {
		case SMTPD_VERB_HELO:
		case SMTPD_VERB_EHLO:
			fuzz_helo(cmd.arg);
			break;
		case SMTPD_VERB_MAIL:
			fuzz_path(cmd.arg, "FROM:", opt);
			break;
		case SMTPD_VERB_RCPT:
			fuzz_path(cmd.arg, "TO:", opt);
			break;
		default:
			break;
		}
	}
	free(line);
	return 0;
}
