/*
 * envelope: the sender, arrival time, body size and per-recipient state of
 * one queued message, and its versioned text encoding.  No I/O here:
 * queue/spool.c stores the bytes.
 *
 * Encoding, version 1.  ASCII, one record per line, every line ends in a
 * single LF, fields are separated by a single space, and the lines come in
 * exactly this order:
 *
 *	mxrelay-envelope 1
 *	id <queue id, or - before commit>
 *	sender <str>
 *	arrival <num>
 *	size <num>
 *	body <7bit|8bit>			(version 3 only)
 *	submitter <uid:num> <name:str>		(version 2; optional in 3)
 *	rcpts <num>
 *	rcpt <addr:str> <orig:str> <state> <attempts:num> <next_try:num> <last_try:num> <last_reply:str> <status:str> <remote_mta:str>
 *	...			(exactly "rcpts" rcpt lines)
 *	end
 *
 * <num> is a decimal number without sign or leading zeros, range-checked
 * against its C type (times are never negative).  <state> is pending,
 * delivered or bounced.  <str> is "-" for a NULL string (only orig,
 * last_reply, status and remote_mta may be NULL), or "=" followed by the
 * bytes of the string with
 * every byte outside 0x21-0x7e, and "%" itself, written as %XX (two
 * uppercase hex digits).  So "=" alone is the empty string (the null
 * sender <>), no field can hold a space or a line end, and arbitrary bytes
 * in addresses and remote replies cannot forge a record.  A status that is
 * not NULL must be an RFC 3463 enhanced status code ("4.4.1", "5.1.10"),
 * so that it can go into a DSN's Status: field as it is.
 *
 * The form is canonical: the decoder accepts only what the encoder writes
 * (no over-escaping, no lowercase hex, no "+1" or "01"), so decode followed
 * by encode gives back the same bytes.  The "end" line makes a truncated
 * file an error instead of an envelope with fewer recipients.  A change of
 * layout bumps the version; the decoder rejects versions it does not know.
 *
 * Version 2 adds the submitter line: the uid and login name of the local
 * user who queued the message.  An envelope without a submitter is
 * written as version 1, so that spools and tests of version 1 keep their
 * bytes; a version 2 envelope always has the line (canonical form).
 *
 * Version 3 adds the body line: whether the body has bytes over 0x7f,
 * noted by the spool while it writes the body, so that a delivery need
 * not read the body again to choose between 7BIT and 8BITMIME.  The
 * submitter line is then there exactly when there is a submitter.  An
 * envelope that does not know (eightbit UNKNOWN: read from version 1 or
 * 2) is written as before, so older envelopes keep their version.
 *
 * Version 4 adds the flags line, after the submitter line, with the
 * message's flags (ENVELOPE_F_*) as words in the order of their bits:
 *
 *	flags <word>[ <word>]...		(version 4 only)
 *
 * The words are hold, smtputf8 and warned; each at most once, none
 * unknown.  An envelope is version 4 exactly when it has a flag; its body
 * line is then there when the body is known (as in version 3), and so is
 * the submitter line.  Without flags it is written as before.
 *
 * Version 5 adds the dkim line, last before the recipients:
 *
 *	dkim <str>				(version 5 only)
 *
 * the DKIM-Signature header field(s) made when the message was committed
 * (src/dkim.h), to be sent in front of the body on every attempt: whole
 * CRLF-terminated lines, folded as they were made, escaped as every <str>
 * so that their CR, LF, tabs and spaces come back byte for byte.  An
 * envelope is version 5 exactly when it has a signature (never the empty
 * string); the body, submitter and flags lines are then there when they
 * would be in version 4.  Without one it is written as before.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "status.h"
#include "util.h"

#define ENVELOPE_MAGIC		"mxrelay-envelope"
#define ENVELOPE_VERSION	1
#define ENVELOPE_VERSION_SUBMITTER	2
#define ENVELOPE_VERSION_BODY	3
#define ENVELOPE_VERSION_FLAGS	4
#define ENVELOPE_VERSION_DKIM	5

/* The words of the flags line, one per bit from the lowest. */
static const char *const flag_words[] = { "hold", "smtputf8", "warned" };
#define NFLAG_WORDS	(sizeof(flag_words) / sizeof(flag_words[0]))

/* A growable output buffer; allocation failure is fatal (xmalloc). */
struct obuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

/* A cursor over the bytes being decoded. */
struct ibuf {
	const char	*p;
	const char	*end;
};

static void	 ob_reserve(struct obuf *, size_t);
static void	 ob_add(struct obuf *, const char *, size_t);
static void	 ob_str(struct obuf *, const char *);
static void	 ob_num(struct obuf *, uint64_t);
static void	 ob_field(struct obuf *, const char *);
static bool	 must_escape(unsigned char);
static bool	 id_shape(const char *, size_t);
static time_t	 time_max(void);
static int	 ib_line(struct ibuf *, const char **, size_t *);
static bool	 ib_peek(const struct ibuf *, const char *);
static int	 split_word(const char **, size_t *, const char **, size_t *);
static int	 hexval(char);
static int	 parse_num(const char *, size_t, uint64_t, uint64_t *);
static int	 parse_time(const char *, size_t, time_t *);
static int	 parse_str(const char *, size_t, bool, char **, const char **);
static int	 parse_kv(struct ibuf *, const char *, const char **, size_t *);
static int	 parse_rcpt(const char *, size_t, struct envelope_rcpt *,
		    const char **);
static int	 decode_version(struct ibuf *, uint64_t *, const char **);
static int	 decode_fields(struct ibuf *, struct envelope *, const char **);
static int	 decode_body(struct ibuf *, struct envelope *, const char **);
static int	 decode_submitter(struct ibuf *, struct envelope *,
		    const char **);
static int	 decode_dkim(struct ibuf *, struct envelope *, const char **);
static int	 decode_rcpts(struct ibuf *, struct envelope *, const char **);

void
envelope_init(struct envelope *env)
{
	memset(env, 0, sizeof(*env));
}

void
envelope_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].addr);
		free(env->rcpt[i].orig);
		free(env->rcpt[i].last_reply);
		free(env->rcpt[i].status);
		free(env->rcpt[i].remote_mta);
	}
	free(env->rcpt);
	free(env->sender);
	free(env->submit_user);
	free(env->dkim);
	envelope_init(env);
}

/*
 * A new, zeroed recipient at the end.  The array doubles when full, so
 * that a message of 100,000 recipients is not 100,000 reallocations.
 */
static struct envelope_rcpt *
rcpt_append(struct envelope *env)
{
	struct envelope_rcpt *r;

	if (env->nrcpt >= env->rcpt_cap) {
		env->rcpt_cap = env->rcpt_cap > 0 ? 2 * env->rcpt_cap : 4;
		env->rcpt = xreallocarray(env->rcpt, env->rcpt_cap,
		    sizeof(*env->rcpt));
	}
	r = &env->rcpt[env->nrcpt++];
	memset(r, 0, sizeof(*r));
	return r;
}

void
envelope_add_rcpt(struct envelope *env, const char *addr, const char *orig)
{
	struct envelope_rcpt *r = rcpt_append(env);

	r->state = RCPT_PENDING;
	r->addr = xstrdup(addr);
	r->orig = orig != NULL ? xstrdup(orig) : NULL;
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
envelope_copy(struct envelope *dst, const struct envelope *src)
{
	*dst = *src;
	dst->sender = dup_or_null(src->sender);
	dst->submit_user = dup_or_null(src->submit_user);
	dst->dkim = dup_or_null(src->dkim);
	dst->rcpt = NULL;
	dst->rcpt_cap = src->nrcpt;
	if (src->nrcpt > 0)
		dst->rcpt = xcalloc(src->nrcpt, sizeof(*dst->rcpt));
	for (size_t i = 0; i < src->nrcpt; i++) {
		const struct envelope_rcpt *a = &src->rcpt[i];
		struct envelope_rcpt *b = &dst->rcpt[i];

		*b = *a;
		b->addr = dup_or_null(a->addr);
		b->orig = dup_or_null(a->orig);
		b->last_reply = dup_or_null(a->last_reply);
		b->status = dup_or_null(a->status);
		b->remote_mta = dup_or_null(a->remote_mta);
	}
}

/* RFC 3463 section 2: class "." subject "." detail (src/status.c). */
bool
envelope_status_valid(const char *s)
{
	return status_valid(s);
}

const char *
envelope_state_to_text(enum rcpt_state st)
{
	switch (st) {
	case RCPT_PENDING:
		return "pending";
	case RCPT_DELIVERED:
		return "delivered";
	case RCPT_BOUNCED:
		return "bounced";
	}
	return "unknown";
}

static void
ob_reserve(struct obuf *ob, size_t n)
{
	size_t cap;

	if (ob->cap - ob->len >= n)
		return;
	if (n > SIZE_MAX / 2 - ob->len)
		abort();	/* cannot happen with C strings in memory */
	cap = ob->cap ? ob->cap : 256;
	while (cap - ob->len < n) {
		if (cap > SIZE_MAX / 2)
			cap = SIZE_MAX;
		else
			cap *= 2;
	}
	ob->p = xreallocarray(ob->p, cap, 1);
	ob->cap = cap;
}

static void
ob_add(struct obuf *ob, const char *s, size_t n)
{
	ob_reserve(ob, n);
	memcpy(ob->p + ob->len, s, n);
	ob->len += n;
}

static void
ob_str(struct obuf *ob, const char *s)
{
	ob_add(ob, s, strlen(s));
}

static void
ob_num(struct obuf *ob, uint64_t v)
{
	char tmp[24];
	int n;

	n = snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
	ob_add(ob, tmp, (size_t)n);
}

static bool
must_escape(unsigned char c)
{
	return c < 0x21 || c > 0x7e || c == '%';
}

/* A space-free field: "-" for NULL, else "=" and the escaped bytes. */
static void
ob_field(struct obuf *ob, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	if (s == NULL) {
		ob_add(ob, "-", 1);
		return;
	}
	ob_add(ob, "=", 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (must_escape(*p)) {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 0xf] };

			ob_add(ob, e, sizeof(e));
		} else
			ob_add(ob, (const char *)p, 1);
	}
}

/* Same shape as queue_id_valid() in spool.c, which this module cannot use. */
static bool
id_shape(const char *s, size_t n)
{
	if (n != QUEUE_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static time_t
time_max(void)
{
	/* time_t is a signed integer type of 32 or 64 bits on POSIX systems. */
	return sizeof(time_t) >= 8 ? (time_t)INT64_MAX : (time_t)INT32_MAX;
}

int
envelope_encode(const struct envelope *env, char **buf, size_t *len)
{
	struct obuf ob = { NULL, 0, 0 };
	size_t idlen;

	*buf = NULL;
	*len = 0;
	idlen = strnlen(env->id, sizeof(env->id));
	if ((idlen != 0 && !id_shape(env->id, idlen)) || env->sender == NULL ||
	    env->arrival < 0 || (env->nrcpt > 0 && env->rcpt == NULL))
		goto invalid;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		if (r->addr == NULL || r->next_try < 0 || r->last_try < 0 ||
		    (r->status != NULL && !envelope_status_valid(r->status)) ||
		    (r->state != RCPT_PENDING && r->state != RCPT_DELIVERED &&
		    r->state != RCPT_BOUNCED))
			goto invalid;
	}

	if ((env->flags & ~ENVELOPE_F_ALL) != 0)
		goto invalid;
	ob_str(&ob, ENVELOPE_MAGIC " ");
	if (env->dkim != NULL && env->dkim[0] != '\0')
		ob_num(&ob, ENVELOPE_VERSION_DKIM);
	else if (env->flags != 0)
		ob_num(&ob, ENVELOPE_VERSION_FLAGS);
	else if (env->eightbit != ENVELOPE_8BIT_UNKNOWN)
		ob_num(&ob, ENVELOPE_VERSION_BODY);
	else
		ob_num(&ob, env->submit_user != NULL ?
		    ENVELOPE_VERSION_SUBMITTER : ENVELOPE_VERSION);
	ob_str(&ob, "\nid ");
	if (idlen == 0)
		ob_str(&ob, "-");
	else
		ob_add(&ob, env->id, idlen);
	ob_str(&ob, "\nsender ");
	ob_field(&ob, env->sender);
	ob_str(&ob, "\narrival ");
	ob_num(&ob, (uint64_t)env->arrival);
	ob_str(&ob, "\nsize ");
	ob_num(&ob, env->size);
	if (env->eightbit != ENVELOPE_8BIT_UNKNOWN)
		ob_str(&ob, env->eightbit == ENVELOPE_8BIT_YES ?
		    "\nbody 8bit" : "\nbody 7bit");
	if (env->submit_user != NULL) {
		ob_str(&ob, "\nsubmitter ");
		ob_num(&ob, env->submit_uid);
		ob_str(&ob, " ");
		ob_field(&ob, env->submit_user);
	}
	if (env->flags != 0) {
		ob_str(&ob, "\nflags");
		for (size_t b = 0; b < NFLAG_WORDS; b++)
			if (env->flags & (1u << b)) {
				ob_str(&ob, " ");
				ob_str(&ob, flag_words[b]);
			}
	}
	if (env->dkim != NULL && env->dkim[0] != '\0') {
		ob_str(&ob, "\ndkim ");
		ob_field(&ob, env->dkim);
	}
	ob_str(&ob, "\nrcpts ");
	ob_num(&ob, env->nrcpt);
	ob_str(&ob, "\n");
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		ob_str(&ob, "rcpt ");
		ob_field(&ob, r->addr);
		ob_str(&ob, " ");
		ob_field(&ob, r->orig);
		ob_str(&ob, " ");
		ob_str(&ob, envelope_state_to_text(r->state));
		ob_str(&ob, " ");
		ob_num(&ob, r->attempts);
		ob_str(&ob, " ");
		ob_num(&ob, (uint64_t)r->next_try);
		ob_str(&ob, " ");
		ob_num(&ob, (uint64_t)r->last_try);
		ob_str(&ob, " ");
		ob_field(&ob, r->last_reply);
		ob_str(&ob, " ");
		ob_field(&ob, r->status);
		ob_str(&ob, " ");
		ob_field(&ob, r->remote_mta);
		ob_str(&ob, "\n");
	}
	ob_str(&ob, "end\n");
	*buf = ob.p;
	*len = ob.len;
	return 0;

invalid:
	errno = EINVAL;
	return -1;
}

/* Next LF-terminated line, without its LF.  -1 when no complete line. */
static int
ib_line(struct ibuf *ib, const char **line, size_t *n)
{
	const char *nl;

	if (ib->p >= ib->end)
		return -1;
	nl = memchr(ib->p, '\n', (size_t)(ib->end - ib->p));
	if (nl == NULL)
		return -1;
	*line = ib->p;
	*n = (size_t)(nl - ib->p);
	ib->p = nl + 1;
	return 0;
}

/* Whether the next line starts with prefix (nothing is taken). */
static bool
ib_peek(const struct ibuf *ib, const char *prefix)
{
	size_t n = strlen(prefix);

	return (size_t)(ib->end - ib->p) >= n && memcmp(ib->p, prefix, n) == 0;
}

/*
 * Take the next space-separated word off (*s, *n).  A word is never empty,
 * so two spaces in a row, or a leading or trailing space, are errors.
 */
static int
split_word(const char **s, size_t *n, const char **w, size_t *wn)
{
	const char *sp;

	if (*n == 0)
		return -1;
	sp = memchr(*s, ' ', *n);
	*w = *s;
	if (sp == NULL) {
		*wn = *n;
		*s += *n;
		*n = 0;
	} else {
		*wn = (size_t)(sp - *s);
		*s = sp + 1;
		*n -= *wn + 1;
		if (*n == 0)
			return -1;
	}
	return *wn == 0 ? -1 : 0;
}

static int
parse_num(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
parse_time(const char *s, size_t n, time_t *out)
{
	uint64_t v;

	if (parse_num(s, n, (uint64_t)time_max(), &v) == -1)
		return -1;
	*out = (time_t)v;
	return 0;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;		/* lowercase is not canonical */
}

/* A <str> field; *out is NULL for "-" (only when nullable) or allocated. */
static int
parse_str(const char *s, size_t n, bool nullable, char **out,
    const char **err)
{
	char *v, *o;

	*out = NULL;
	if (n == 1 && s[0] == '-') {
		if (!nullable) {
			*err = "required field is absent";
			return -1;
		}
		return 0;
	}
	if (n == 0 || s[0] != '=') {
		*err = "bad string field";
		return -1;
	}
	o = v = xmalloc(n);	/* the decoded form is never longer */
	for (size_t i = 1; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3 || (hi = hexval(s[i + 1])) == -1 ||
			    (lo = hexval(s[i + 2])) == -1) {
				*err = "bad escape in string field";
				goto fail;
			}
			c = (unsigned char)(hi << 4 | lo);
			if (c == '\0') {
				*err = "NUL byte in string field";
				goto fail;
			}
			if (!must_escape(c)) {
				*err = "needless escape in string field";
				goto fail;
			}
			i += 2;
		} else if (must_escape(c)) {
			*err = "unescaped byte in string field";
			goto fail;
		}
		*o++ = (char)c;
	}
	*o = '\0';
	*out = v;
	return 0;

fail:
	free(v);
	return -1;
}

/* A "key value" line with exactly this key; the value must not be empty. */
static int
parse_kv(struct ibuf *ib, const char *key, const char **val, size_t *n)
{
	const char *line;
	size_t len, klen = strlen(key);

	if (ib_line(ib, &line, &len) == -1)
		return -1;
	if (len < klen + 2 || memcmp(line, key, klen) != 0 || line[klen] != ' ')
		return -1;
	*val = line + klen + 1;
	*n = len - klen - 1;
	return 0;
}

static int
parse_rcpt(const char *s, size_t n, struct envelope_rcpt *r, const char **err)
{
	const char *w[9];
	size_t wn[9];
	uint64_t attempts;

	for (size_t i = 0; i < 9; i++) {
		if (split_word(&s, &n, &w[i], &wn[i]) == -1) {
			*err = "bad recipient line";
			return -1;
		}
	}
	if (n != 0) {
		*err = "bad recipient line";
		return -1;
	}
	if (parse_str(w[0], wn[0], false, &r->addr, err) == -1 ||
	    parse_str(w[1], wn[1], true, &r->orig, err) == -1)
		return -1;
	if (wn[2] == 7 && memcmp(w[2], "pending", 7) == 0)
		r->state = RCPT_PENDING;
	else if (wn[2] == 9 && memcmp(w[2], "delivered", 9) == 0)
		r->state = RCPT_DELIVERED;
	else if (wn[2] == 7 && memcmp(w[2], "bounced", 7) == 0)
		r->state = RCPT_BOUNCED;
	else {
		*err = "bad recipient state";
		return -1;
	}
	if (parse_num(w[3], wn[3], UINT_MAX, &attempts) == -1) {
		*err = "bad attempt count";
		return -1;
	}
	r->attempts = (unsigned)attempts;
	if (parse_time(w[4], wn[4], &r->next_try) == -1 ||
	    parse_time(w[5], wn[5], &r->last_try) == -1) {
		*err = "bad recipient time";
		return -1;
	}
	if (parse_str(w[6], wn[6], true, &r->last_reply, err) == -1 ||
	    parse_str(w[7], wn[7], true, &r->status, err) == -1)
		return -1;
	if (r->status != NULL && !envelope_status_valid(r->status)) {
		*err = "bad status code";
		return -1;
	}
	return parse_str(w[8], wn[8], true, &r->remote_mta, err);
}

/* The first line: the magic word and a version this decoder knows. */
static int
decode_version(struct ibuf *ib, uint64_t *version, const char **err)
{
	const char *line;
	size_t n, magic = strlen(ENVELOPE_MAGIC);

	if (ib_line(ib, &line, &n) == -1 || n < magic + 2 ||
	    memcmp(line, ENVELOPE_MAGIC " ", magic + 1) != 0) {
		*err = "not an envelope";
		return -1;
	}
	if (parse_num(line + magic + 1, n - magic - 1, UINT32_MAX,
	    version) == -1 || (*version != ENVELOPE_VERSION &&
	    *version != ENVELOPE_VERSION_SUBMITTER &&
	    *version != ENVELOPE_VERSION_BODY &&
	    *version != ENVELOPE_VERSION_FLAGS &&
	    *version != ENVELOPE_VERSION_DKIM)) {
		*err = "unsupported envelope version";
		return -1;
	}
	return 0;
}

/* The lines every version has: id, sender, arrival and size. */
static int
decode_fields(struct ibuf *ib, struct envelope *env, const char **err)
{
	const char *v;
	size_t n;

	if (parse_kv(ib, "id", &v, &n) == -1) {
		*err = "missing id";
		return -1;
	}
	if (n == 1 && v[0] == '-')
		env->id[0] = '\0';
	else if (id_shape(v, n)) {
		memcpy(env->id, v, n);
		env->id[n] = '\0';
	} else {
		*err = "bad id";
		return -1;
	}

	if (parse_kv(ib, "sender", &v, &n) == -1) {
		*err = "missing sender";
		return -1;
	}
	if (parse_str(v, n, false, &env->sender, err) == -1)
		return -1;

	if (parse_kv(ib, "arrival", &v, &n) == -1 ||
	    parse_time(v, n, &env->arrival) == -1) {
		*err = "missing or bad arrival";
		return -1;
	}
	if (parse_kv(ib, "size", &v, &n) == -1 ||
	    parse_num(v, n, UINT64_MAX, &env->size) == -1) {
		*err = "missing or bad size";
		return -1;
	}
	return 0;
}

/* The body line of version 3. */
static int
decode_body(struct ibuf *ib, struct envelope *env, const char **err)
{
	const char *v;
	size_t n;

	if (parse_kv(ib, "body", &v, &n) == -1 || n != 4 ||
	    (memcmp(v, "7bit", 4) != 0 && memcmp(v, "8bit", 4) != 0)) {
		*err = "missing or bad body";
		return -1;
	}
	env->eightbit = v[0] == '8' ? ENVELOPE_8BIT_YES : ENVELOPE_8BIT_NO;
	return 0;
}

/* The submitter line of version 2 (always) and 3 (when there is one). */
static int
decode_submitter(struct ibuf *ib, struct envelope *env, const char **err)
{
	const char *v, *w;
	size_t n, wn;
	uint64_t num;

	if (parse_kv(ib, "submitter", &v, &n) == -1 ||
	    split_word(&v, &n, &w, &wn) == -1 ||
	    parse_num(w, wn, UINT32_MAX, &num) == -1) {
		*err = "missing or bad submitter";
		return -1;
	}
	env->submit_uid = (uint32_t)num;
	return parse_str(v, n, false, &env->submit_user, err);
}

/*
 * The flags line of version 4: known words, in bit order, at least one,
 * each once (so that the form stays canonical).
 */
static int
decode_flags(struct ibuf *ib, struct envelope *env, const char **err)
{
	const char *v, *w;
	size_t n, wn, next = 0;

	if (parse_kv(ib, "flags", &v, &n) == -1)
		goto bad;
	while (n > 0) {
		size_t b;

		if (split_word(&v, &n, &w, &wn) == -1)
			goto bad;
		for (b = next; b < NFLAG_WORDS; b++)
			if (strlen(flag_words[b]) == wn &&
			    memcmp(flag_words[b], w, wn) == 0)
				break;
		if (b == NFLAG_WORDS)
			goto bad;
		env->flags |= 1u << b;
		next = b + 1;
	}
	if (env->flags != 0)
		return 0;
bad:
	*err = "missing or bad flags";
	return -1;
}

/* The dkim line of version 5: a signature, never empty (canonical form). */
static int
decode_dkim(struct ibuf *ib, struct envelope *env, const char **err)
{
	const char *v;
	size_t n;

	if (parse_kv(ib, "dkim", &v, &n) == -1) {
		*err = "missing or bad dkim";
		return -1;
	}
	if (parse_str(v, n, false, &env->dkim, err) == -1)
		return -1;
	if (env->dkim[0] == '\0') {
		*err = "empty dkim";
		return -1;
	}
	return 0;
}

/*
 * The recipient count, exactly that many rcpt lines, and the end line.
 * The count is only checked against the lines that follow; the array
 * grows one line at a time, so a huge count in a small file cannot make
 * us allocate much.
 */
static int
decode_rcpts(struct ibuf *ib, struct envelope *env, const char **err)
{
	const char *v, *line;
	size_t n;
	uint64_t nrcpt;

	if (parse_kv(ib, "rcpts", &v, &n) == -1 ||
	    parse_num(v, n, SIZE_MAX, &nrcpt) == -1) {
		*err = "missing or bad recipient count";
		return -1;
	}
	for (;;) {
		struct envelope_rcpt *r;

		if (ib_line(ib, &line, &n) == -1) {
			*err = "truncated envelope";
			return -1;
		}
		if (n == 3 && memcmp(line, "end", 3) == 0)
			break;
		if (n < 5 || memcmp(line, "rcpt ", 5) != 0) {
			*err = "unknown record";
			return -1;
		}
		if (env->nrcpt == nrcpt) {
			*err = "more recipients than counted";
			return -1;
		}
		r = rcpt_append(env);
		if (parse_rcpt(line + 5, n - 5, r, err) == -1)
			return -1;
	}
	if (env->nrcpt != nrcpt) {
		*err = "fewer recipients than counted";
		return -1;
	}
	return 0;
}

int
envelope_decode(const char *buf, size_t len, struct envelope *env,
    const char **err)
{
	struct ibuf ib = { buf, buf != NULL ? buf + len : NULL };
	uint64_t version;

	envelope_init(env);
	*err = NULL;
	if (buf == NULL && len != 0) {
		*err = "no input";
		goto fail;
	}
	if (decode_version(&ib, &version, err) == -1 ||
	    decode_fields(&ib, env, err) == -1)
		goto fail;
	if ((version == ENVELOPE_VERSION_BODY ||
	    (version >= ENVELOPE_VERSION_FLAGS && ib_peek(&ib, "body "))) &&
	    decode_body(&ib, env, err) == -1)
		goto fail;
	if ((version == ENVELOPE_VERSION_SUBMITTER ||
	    (version >= ENVELOPE_VERSION_BODY && ib_peek(&ib, "submitter "))) &&
	    decode_submitter(&ib, env, err) == -1)
		goto fail;
	if ((version == ENVELOPE_VERSION_FLAGS ||
	    (version == ENVELOPE_VERSION_DKIM && ib_peek(&ib, "flags "))) &&
	    decode_flags(&ib, env, err) == -1)
		goto fail;
	if (version == ENVELOPE_VERSION_DKIM &&
	    decode_dkim(&ib, env, err) == -1)
		goto fail;
	if (decode_rcpts(&ib, env, err) == -1)
		goto fail;
	if (ib.p != ib.end) {
		*err = "data after end";
		goto fail;
	}
	return 0;

fail:
	envelope_free(env);
	errno = EINVAL;
	return -1;
}
