/*
 * sendmail_submit.c: mxrelay's submissions.  The message on stdin: its
 * recipients (arguments, -t, aliases, the qualify domain) and sender
 * checked, its line ends made CRLF at intake, its header fixed (Date,
 * Message-ID, From; Bcc removed), then committed to the queue that
 * open_submit_queue() in sendmail.c chose.  And -bs, one SMTP session on
 * stdin/stdout (src/submit_bs.c) into the same queue.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "conf.h"
#include "dkim_keys.h"
#include "hash.h"
#include "log.h"
#include "message.h"
#include "runner.h"
#include "sendmail_int.h"
#include "spool.h"
#include "submit_bs.h"
#include "util.h"

/* A header section that is not over after this many bytes is refused. */
#define HEADER_MAX	(1024 * 1024)
/* Aliases may name aliases; this bounds the total expansion. */
#define RCPT_MAX	100000

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
	struct dkim_signer *dkim;	/* sees what qn stores; NULL: none */
	int		 err;		/* errno of a spool write, or -1 */
	bool		 too_big;	/* over max_message_size (err is -1) */
};

/*
 * The DKIM keys for a message committed by this process: read only when
 * it writes the spool itself (root, now the spool's owner, or the owner).
 * A message in the drop folder is signed by its pickup, and the user who
 * dropped it must not read the keys.  EX_OK, or EX_CONFIG logged.
 */
static int
submit_keys(const struct conf *conf, const struct queue *q,
    struct dkim_keys **keys)
{
	*keys = NULL;
	if (queue_is_drop(q) || conf->ndkim_keys == 0)
		return EX_OK;
	if (runner_dkim_keys(conf, keys) == -1) {
		log_warnx("message not queued: a DKIM key cannot be used");
		return EX_CONFIG;
	}
	return EX_OK;
}

/* -bs: one SMTP session on stdin/stdout into the submit queue. */
int
submit_session(const struct conf *conf)
{
	struct submit_bs_conf bc;
	struct dkim_keys *keys;
	struct queue *q;
	int rc;

	if ((rc = open_submit_queue(conf, &q)) != 0)
		return rc;
	if ((rc = submit_keys(conf, q, &keys)) != EX_OK) {
		queue_close(q);
		return rc;
	}
	memset(&bc, 0, sizeof(bc));
	bc.hostname = conf->hostname;
	bc.qualify_domain = conf->qualify_domain;
	bc.max_size = conf->max_message_size;
	bc.max_recipients = conf->max_recipients;
	bc.bare_lf = conf->bare_lf;
	bc.add_missing_headers = conf->smtpd_add_missing_headers;
	bc.dkim = keys;
	rc = submit_bs(q, &bc, (uint32_t)caller_uid, caller_name,
	    STDIN_FILENO, STDOUT_FILENO);
	dkim_keys_unref(keys);
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

/*
 * Everything the user gave, checked before the message is taken: the
 * recipient arguments into args, the envelope sender into *sender, the
 * aliases file into *al.  EX_OK, or an exit code with the reason logged.
 */
static int
submit_check(const struct opts *o, const struct conf *conf, int argc,
    char **argv, struct strlist *args, char **sender, struct aliases **al)
{
	char err[1024];

	for (int i = 0; i < argc; i++)
		if (parse_addrs("recipient", argv[i], args) == -1)
			return EX_DATAERR;
	if (args->n == 0 && !o->extract) {
		log_warnx("no recipients given (name them, or use -t)");
		return EX_DATAERR;
	}
	if ((*sender = envelope_sender(o, conf)) == NULL)
		return EX_DATAERR;
	if (conf->aliases != NULL &&
	    aliases_load(conf->aliases, al, err, sizeof(err)) == -1) {
		log_warnx("%s", err);
		return EX_CONFIG;
	}
	/* Not on stderr: only mail to those names fails, and says why. */
	for (size_t i = 0; i < aliases_nwarnings(*al); i++)
		log_debug("%s", aliases_warning(*al, i));
	return EX_OK;
}

/*
 * A new message in q, read from stdin through in; the recipients of its
 * header (-t) into hdr_rcpts.  EX_OK, or an exit code.
 */
static int
submit_take(const struct opts *o, const struct conf *conf, struct queue *q,
    const char *sender, struct intake *in, struct strlist *hdr_rcpts)
{
	if (queue_new_begin(q, &in->qn) == -1) {
		int e = errno;

		log_warn("%s: message not queued: %s", conf->spool_dir,
		    spool_problem(e));
		return submit_exit_for_errno(e);
	}
	if (in->dkim != NULL)
		queue_new_set_tap(in->qn, dkim_signer_feed, in->dkim);
	in->ignore_dots = o->ignore_dots;
	in->at_bol = true;
	in->in_header = true;
	in->max = conf->max_message_size;
	return read_message(o, conf, in, sender, hdr_rcpts);
}

/* add_rcpt() for each address of l; -1 at the first that fails. */
static int
add_rcpts(struct envelope *env, struct rcpt_seen *seen,
    const struct strlist *l, const struct conf *conf, const struct aliases *al)
{
	for (size_t i = 0; i < l->n; i++)
		if (add_rcpt(env, seen, l->v[i], conf, al) == -1)
			return -1;
	return 0;
}

/*
 * Commit the message of in (in->qn, freed whatever happens) with env,
 * and log it.  EX_OK, or an exit code with the reason logged.
 */
static int
submit_commit(struct intake *in, struct envelope *env, const struct queue *q,
    const struct conf *conf)
{
	struct queue_new *qn = in->qn;
	char esc[512];

	if (in->dkim != NULL && dkim_signer_end(in->dkim, &env->dkim) == -1) {
		log_warnx("message not queued: DKIM signing failed: %s",
		    dkim_signer_error(in->dkim));
		return EX_SOFTWARE;	/* submit() aborts in->qn */
	}
	if (in->dkim != NULL && env->dkim == NULL)
		log_debug("not DKIM-signed: %s", dkim_signer_why(in->dkim));
	in->qn = NULL;	/* commit frees it, whatever happens */
	if (queue_new_commit(qn, env) == -1) {
		int e = errno;

		log_warn("%s: message not queued: %s", conf->spool_dir,
		    spool_problem(e));
		return submit_exit_for_errno(e);
	}
	log_info("%s: from=<%s>, size=%llu, nrcpt=%zu, uid=%lu, "
	    "user=%s (%s)", env->id,
	    util_escape(esc, sizeof(esc), env->sender),
	    (unsigned long long)env->size, env->nrcpt,
	    (unsigned long)caller_uid, caller_name,
	    queue_is_drop(q) ? "dropped for pickup" : "queued");
	return EX_OK;
}

int
submit(const struct opts *o, struct conf *conf, int argc, char **argv)
{
	struct envelope env;
	struct strlist args = { 0 }, hdr_rcpts = { 0 };
	struct rcpt_seen seen = { 0 };
	struct aliases *al = NULL;
	struct dkim_keys *keys = NULL;
	struct queue *q = NULL;
	struct intake in;
	char *sender = NULL;
	int rc;

	envelope_init(&env);
	memset(&in, 0, sizeof(in));

	if ((rc = submit_check(o, conf, argc, argv, &args, &sender, &al)) !=
	    EX_OK)
		goto done;
	if ((rc = open_submit_queue(conf, &q)) != 0)
		goto done;
	if ((rc = submit_keys(conf, q, &keys)) != EX_OK)
		goto done;
	/* The message's t= is its arrival, as the envelope's. */
	in.dkim = dkim_signer_new(keys, time(NULL));
	if ((rc = submit_take(o, conf, q, sender, &in, &hdr_rcpts)) != EX_OK)
		goto done;

	if (add_rcpts(&env, &seen, &args, conf, al) == -1 ||
	    add_rcpts(&env, &seen, &hdr_rcpts, conf, al) == -1) {
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
	rc = submit_commit(&in, &env, q, conf);
done:
	if (in.qn != NULL)
		queue_new_abort(in.qn);
	dkim_signer_free(in.dkim);
	dkim_keys_unref(keys);
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
