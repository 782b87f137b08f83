/*
 * smtpd_parse: the pure part of the SMTP listener: command lines, paths,
 * mailboxes and MAIL/RCPT parameters (see smtpd_parse.h).
 *
 * Input comes straight from a client.  The listener's io layer bounds a
 * command line at 512 octets, but nothing here relies on that: every
 * loop stops at the terminating NUL (or at len), and numbers are checked
 * for overflow before they grow.  No I/O, no clock, no globals.
 */
#include "config.h"

#include <sys/socket.h>

#include <netinet/in.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "message.h"
#include "smtp_proto.h"
#include "smtpd_parse.h"
#include "util.h"

#define VERB_NOARG	0x01	/* arguments are a syntax error */
#define VERB_NEEDARG	0x02	/* an argument is required */

/* Indexed by enum smtpd_verb. */
static const struct {
	const char	*name;
	unsigned	 flags;
} verbs[SMTPD_NVERBS] = {
	[SMTPD_VERB_HELO] =	{ "HELO",	VERB_NEEDARG },
	[SMTPD_VERB_EHLO] =	{ "EHLO",	VERB_NEEDARG },
	[SMTPD_VERB_MAIL] =	{ "MAIL",	VERB_NEEDARG },
	[SMTPD_VERB_RCPT] =	{ "RCPT",	VERB_NEEDARG },
	[SMTPD_VERB_DATA] =	{ "DATA",	VERB_NOARG },
	[SMTPD_VERB_RSET] =	{ "RSET",	VERB_NOARG },
	/* RFC 5321 §4.1.1.9: NOOP may have an argument. */
	[SMTPD_VERB_NOOP] =	{ "NOOP",	0 },
	[SMTPD_VERB_QUIT] =	{ "QUIT",	VERB_NOARG },
	[SMTPD_VERB_HELP] =	{ "HELP",	0 },
	[SMTPD_VERB_VRFY] =	{ "VRFY",	VERB_NEEDARG },
	[SMTPD_VERB_STARTTLS] =	{ "STARTTLS",	VERB_NOARG },
	[SMTPD_VERB_AUTH] =	{ "AUTH",	VERB_NEEDARG },
};

static enum smtpd_param_status size_parse(const char *, uint64_t, uint64_t *);
static char	*mailbox(const char *, const char *, bool, char *, size_t);

enum smtpd_cmd_status
smtpd_cmd_parse(char *line, size_t len, struct smtpd_cmd *cmd)
{
	char *arg, *end;
	size_t vlen;
	unsigned i;

	cmd->verb = SMTPD_NVERBS;
	cmd->name = NULL;
	cmd->arg = line + len;
	if (memchr(line, '\0', len) != NULL)
		return SMTPD_CMD_NUL;
	end = line + len;
	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	vlen = strcspn(line, " ");
	for (i = 0; i < SMTPD_NVERBS; i++)
		if (strlen(verbs[i].name) == vlen &&
		    strncasecmp(verbs[i].name, line, vlen) == 0)
			break;
	if (i == SMTPD_NVERBS)
		return SMTPD_CMD_UNKNOWN;
	cmd->verb = (enum smtpd_verb)i;
	cmd->name = verbs[i].name;
	arg = line + vlen;
	while (*arg == ' ')
		arg++;
	cmd->arg = arg;
	if ((verbs[i].flags & VERB_NOARG) && *arg != '\0')
		return SMTPD_CMD_EXTRA_ARG;
	if ((verbs[i].flags & VERB_NEEDARG) && *arg == '\0')
		return SMTPD_CMD_NEED_ARG;
	return SMTPD_CMD_OK;
}

bool
smtpd_helo_ok(const char *arg)
{
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
		if (*p <= 0x20 || *p >= 0x7f || *p == '(' || *p == ')' ||
		    *p == '\\')
			return false;
		if (++n > SMTPD_HELO_MAX)
			return false;
	}
	return n > 0;
}

int
smtpd_path_parse(char *arg, const char *kw, struct smtpd_path *out)
{
	size_t kwlen = strlen(kw), i;
	bool quoted = false;
	char *p, *rest;

	if (strncasecmp(arg, kw, kwlen) != 0)
		return -1;
	p = arg + kwlen;
	while (*p == ' ')	/* "MAIL FROM: <a@b>" is common (Postfix too) */
		p++;
	if (*p != '<')
		return -1;
	for (i = 1; p[i] != '\0'; i++) {
		if (quoted) {
			if (p[i] == '\\' && p[i + 1] != '\0')
				i++;
			else if (p[i] == '"')
				quoted = false;
		} else if (p[i] == '"')
			quoted = true;
		else if (p[i] == '>')
			break;
	}
	if (p[i] != '>')
		return -1;
	rest = p + i + 1;
	if (*rest != '\0' && *rest != ' ')
		return -1;
	p[i] = '\0';
	while (*rest == ' ')
		rest++;
	out->path = p + 1;
	out->params = rest;
	return 0;
}

const char *
smtpd_route_strip(const char *path)
{
	const char *p = path;
	int depth = 0;

	if (*p != '@')
		return path;
	for (; *p != '\0'; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']')
			depth--;
		else if (*p == ':' && depth == 0)
			break;
		else if (depth == 0 && *p == ',' && p[1] != '@')
			return NULL;
		else if (depth == 0 && !(isalnum((unsigned char)*p) ||
		    *p == '.' || *p == '-' || *p == '@' || *p == ','))
			return NULL;
	}
	if (*p != ':' || p == path + 1)
		return NULL;
	return p + 1;
}

char *
smtpd_mailbox(const char *path, const char *qualify_domain, char *err,
    size_t errlen)
{
	return mailbox(path, qualify_domain, false, err, errlen);
}

char *
smtpd_mailbox_utf8(const char *path, const char *qualify_domain, char *err,
    size_t errlen)
{
	return mailbox(path, qualify_domain, true, err, errlen);
}

static char *
mailbox(const char *path, const char *qualify_domain, bool utf8, char *err,
    size_t errlen)
{
	int (*check)(const char *, bool, char *, size_t) =
	    utf8 ? msg_addr_check_utf8 : msg_addr_check;
	const char *box;
	char *addr;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((box = smtpd_route_strip(path)) == NULL) {
		util_seterr(err, errlen, "malformed source route");
		return NULL;
	}
	if (!smtp_path_ok(box) || check(box, true, err, errlen) == -1) {
		if (err != NULL && errlen > 0 && err[0] == '\0')
			util_seterr(err, errlen, "bad characters or too long");
		return NULL;
	}
	/* Qualified?  (An '@' may also hide in a quoted local part.) */
	if (check(box, false, NULL, 0) == 0)
		return xstrdup(box);
	addr = xasprintf("%s@%s", box, qualify_domain);
	if (check(addr, false, err, errlen) == -1) {
		free(addr);
		return NULL;
	}
	return addr;
}

/* RFC 1870: SIZE=digits; refused rather than wrapped when too big. */
static enum smtpd_param_status
size_parse(const char *d, uint64_t max_size, uint64_t *size)
{
	uint64_t n = 0;

	if (*d == '\0')
		return SMTPD_PARAM_BAD_SIZE;
	for (; *d != '\0'; d++) {
		if (!isdigit((unsigned char)*d) || n > (UINT64_MAX - 9) / 10)
			return SMTPD_PARAM_BAD_SIZE;
		n = n * 10 + (uint64_t)(*d - '0');
	}
	*size = n;
	if (max_size > 0 && n > max_size)
		return SMTPD_PARAM_TOO_BIG;
	return SMTPD_PARAM_OK;
}

enum smtpd_param_status
smtpd_mail_params_parse(char *params, uint64_t max_size,
    struct smtpd_mail_params *out)
{
	enum smtpd_param_status st = SMTPD_PARAM_OK;
	char *tok, *next;

	memset(out, 0, sizeof(*out));
	for (tok = params; *tok != '\0' && st == SMTPD_PARAM_OK; tok = next) {
		next = tok + strcspn(tok, " ");
		if (*next != '\0') {
			*next++ = '\0';
			while (*next == ' ')
				next++;
		}
		if (strncasecmp(tok, "SIZE=", 5) == 0) {
			st = size_parse(tok + 5, max_size, &out->size);
			out->has_size = true;
		} else if (strncasecmp(tok, "BODY=", 5) == 0) {
			if (strcasecmp(tok + 5, "7BIT") == 0)
				out->body = SMTPD_BODY_7BIT;
			else if (strcasecmp(tok + 5, "8BITMIME") == 0)
				out->body = SMTPD_BODY_8BITMIME;
			else
				st = SMTPD_PARAM_BAD_BODY;
		} else if (strncasecmp(tok, "AUTH=", 5) == 0)
			out->auth = true;
		else if (strcasecmp(tok, "SMTPUTF8") == 0)
			out->smtputf8 = true;
		else
			st = SMTPD_PARAM_UNKNOWN;
		if (st != SMTPD_PARAM_OK)
			out->bad = tok;
	}
	return st;
}

enum smtpd_param_status
smtpd_rcpt_params_parse(const char *params)
{
	return *params == '\0' ? SMTPD_PARAM_OK : SMTPD_PARAM_UNKNOWN;
}

int
smtpd_client_net(int family, const void *raw, unsigned char net[16])
{
	const struct in6_addr *a6 = raw;

	memset(net, 0, 16);
	if (family == AF_INET) {
		memcpy(net, raw, 4);
		return AF_INET;
	}
	if (family != AF_INET6)
		return 0;
	if (IN6_IS_ADDR_V4MAPPED(a6)) {
		memcpy(net, (const unsigned char *)raw + 12, 4);
		return AF_INET;
	}
	memcpy(net, raw, 8);
	return AF_INET6;
}

void
smtpd_client_key(int family, const void *raw, const char *addr,
    char key[SMTPD_CLIENT_KEY_MAX])
{
	unsigned char b[16];

	switch (smtpd_client_net(family, raw, b)) {
	case AF_INET:
		snprintf(key, SMTPD_CLIENT_KEY_MAX, "%u.%u.%u.%u", b[0], b[1],
		    b[2], b[3]);
		break;
	case AF_INET6:
		snprintf(key, SMTPD_CLIENT_KEY_MAX, "%x:%x:%x:%x::/64",
		    (unsigned)(b[0] << 8 | b[1]), (unsigned)(b[2] << 8 | b[3]),
		    (unsigned)(b[4] << 8 | b[5]), (unsigned)(b[6] << 8 | b[7]));
		break;
	default:
		util_strlcpy(key, addr, SMTPD_CLIENT_KEY_MAX);
		break;
	}
}
