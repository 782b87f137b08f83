/*
 * msg_addr: the address half of the message module.  RFC 5322 address
 * lists (To, Cc, Bcc fields for sendmail -t, and command-line recipients)
 * become RFC 5321 envelope addresses, and msg_addr_check() is the one check
 * of an envelope address for the whole program.
 *
 * Address lists are parsed by a bounded recursive-descent parser over
 * (text, len): every byte is looked at through the cursor, so NUL bytes and
 * bytes past len are never a problem.  Recursion is limited to
 * list -> group -> list (groups do not nest); comments nest by a counter,
 * limited to MSG_COMMENT_DEPTH.  Every address the parser returns has
 * passed msg_addr_check(addr, true), so the envelope only ever sees
 * RFC 5321 Mailboxes (or bare local parts that the caller qualifies).
 *
 * Leniencies, all seen in real mail:
 * - the obsolete syntax of RFC 5322 §4.4: CFWS around dots and '@',
 *   obs-route in angle addresses, empty list elements, quoted words mixed
 *   with atoms in local parts;
 * - an '@' in an unquoted display name ("a@b.example <a@b.example>");
 * - a group whose ';' is missing at the very end of the field;
 * - line breaks may be CRLF or LF; a trailing line break is ignored;
 * - UTF-8 (RFC 6532) in display names, comments and quoted strings.
 *   Addresses themselves must be ASCII, but for msg_addr_check_utf8(),
 *   which takes UTF-8 local parts (RFC 6531, SMTPUTF8; the domain stays
 *   ASCII: an A-label, xn--..., for an internationalised one).
 *
 * Pure code: no I/O, no clock.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "msg_addr.h"
#include "utf8.h"

#define MSG_COMMENT_DEPTH	32	/* nesting limit for ( comments ) */
#define MSG_TOK_MAX		(MSG_PATH_MAX * 2)

/* Where the parser is in an address list; err is the caller's buffer. */
struct cursor {
	const unsigned char	*p;
	size_t			 len;
	size_t			 i;
	char			*err;
	size_t			 errlen;
};

/* The semantic text of one local part or domain, bounded. */
struct tok {
	char	 v[MSG_TOK_MAX];
	size_t	 n;
	bool	 overflow;
};

static int	 fail(struct cursor *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 fail_char(struct cursor *, const char *);
static bool	 is_atext(unsigned char);
static bool	 is_wsp(unsigned char);
static bool	 at_end(const struct cursor *);
static int	 peek(const struct cursor *);
static void	 tok_add(struct tok *, unsigned char);
static int	 skip_break(struct cursor *, bool);
static int	 skip_comment(struct cursor *);
static int	 skip_cfws(struct cursor *);
static int	 parse_qstring(struct cursor *, struct tok *);
static void	 parse_atom(struct cursor *, struct tok *);
static int	 parse_local(struct cursor *, struct tok *);
static int	 parse_domain(struct cursor *, struct tok *);
static int	 parse_literal(struct cursor *, struct tok *);
static int	 parse_route(struct cursor *);
static int	 parse_spec(struct cursor *, struct strlist *);
static int	 parse_angle(struct cursor *, struct strlist *);
static int	 parse_address(struct cursor *, bool, struct strlist *);
static int	 parse_list(struct cursor *, bool, struct strlist *);
static int	 add_address(struct cursor *, const struct tok *,
		    const struct tok *, struct strlist *);
static bool	 is_dot_atom(const char *, size_t);
static int	 check_local(const char *, bool, size_t *, char *, size_t);
static int	 addr_check(const char *, bool, bool, char *, size_t);
static int	 check_domain(const char *, char *, size_t);
static int	 check_literal(const char *, size_t, char *, size_t);

static int
fail(struct cursor *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err != NULL && c->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* An error about the byte under the cursor, shown safely. */
static int
fail_char(struct cursor *c, const char *where)
{
	unsigned char ch;

	if (at_end(c))
		return fail(c, "unexpected end %s", where);
	ch = c->p[c->i];
	if (msg_is_ctl(ch) || ch == '\t')
		return fail(c, "control character 0x%02x %s", ch, where);
	if (ch >= 0x80)
		return fail(c, "unexpected byte 0x%02x %s", ch, where);
	return fail(c, "unexpected '%c' %s", ch, where);
}

/* Controls other than HTAB, which is white space (RFC 5322 §3.2.2). */
bool
msg_is_ctl(unsigned char ch)
{
	return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

bool
msg_is_ascii_atext(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9'))
		return true;
	switch (ch) {
	case '!': case '#': case '$': case '%': case '&': case '\'':
	case '*': case '+': case '-': case '/': case '=': case '?':
	case '^': case '_': case '`': case '{': case '|': case '}':
	case '~':
		return true;
	}
	return false;
}

/* RFC 5322 §3.2.3 atext, plus UTF-8 octets (RFC 6532 §3.2). */
static bool
is_atext(unsigned char ch)
{
	return ch >= 0x80 || msg_is_ascii_atext(ch);
}

static bool
is_wsp(unsigned char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool
at_end(const struct cursor *c)
{
	return c->i >= c->len;
}

static int
peek(const struct cursor *c)
{
	return at_end(c) ? -1 : c->p[c->i];
}

static void
tok_add(struct tok *t, unsigned char ch)
{
	if (t == NULL)
		return;
	if (t->n + 1 >= sizeof(t->v)) {
		t->overflow = true;
		return;
	}
	t->v[t->n++] = (char)ch;
	t->v[t->n] = '\0';
}

/*
 * At CR or LF: consume one line break (CRLF or LF).  Folding (RFC 5322
 * §3.2.2) needs white space after it; end_ok also accepts the end of the
 * input or another line break there (trailing line ends of a field).
 */
static int
skip_break(struct cursor *c, bool end_ok)
{
	int next;

	if (c->p[c->i] == '\r') {
		if (c->i + 1 >= c->len || c->p[c->i + 1] != '\n')
			return fail(c, "bare CR");
		c->i++;
	}
	c->i++;
	next = peek(c);
	if (next == ' ' || next == '\t')
		return 0;
	if (end_ok && (next == -1 || next == '\r' || next == '\n'))
		return 0;
	return fail(c, "line break not followed by white space");
}

/* At '(': skip a comment, nested comments and quoted-pairs included. */
static int
skip_comment(struct cursor *c)
{
	size_t depth = 0;
	unsigned char ch;

	do {
		if (at_end(c))
			return fail(c, "unbalanced '(': comment not closed");
		ch = c->p[c->i];
		switch (ch) {
		case '(':
			if (++depth > MSG_COMMENT_DEPTH)
				return fail(c, "comments nested deeper than %d",
				    MSG_COMMENT_DEPTH);
			c->i++;
			break;
		case ')':
			depth--;
			c->i++;
			break;
		case '\\':
			c->i++;
			if (at_end(c))
				return fail(c, "unbalanced '(': comment not closed");
			if (msg_is_ctl(c->p[c->i]))
				return fail_char(c, "in comment");
			c->i++;
			break;
		case '\r':
		case '\n':
			if (skip_break(c, false) == -1)
				return -1;
			break;
		default:
			if (msg_is_ctl(ch))
				return fail_char(c, "in comment");
			c->i++;
		}
	} while (depth > 0);
	return 0;
}

/* Skip CFWS (RFC 5322 §3.2.2): white space, folding, comments. */
static int
skip_cfws(struct cursor *c)
{
	while (!at_end(c)) {
		switch (c->p[c->i]) {
		case ' ':
		case '\t':
			c->i++;
			break;
		case '\r':
		case '\n':
			if (skip_break(c, true) == -1)
				return -1;
			break;
		case '(':
			if (skip_comment(c) == -1)
				return -1;
			break;
		default:
			return 0;
		}
	}
	return 0;
}

/* At '"': a quoted-string (§3.2.4); its content, unfolded, goes to t. */
static int
parse_qstring(struct cursor *c, struct tok *t)
{
	unsigned char ch;

	c->i++;
	for (;;) {
		if (at_end(c))
			return fail(c, "unbalanced '\"': quoted string not closed");
		ch = c->p[c->i];
		if (ch == '"') {
			c->i++;
			return 0;
		}
		if (ch == '\\') {
			c->i++;
			if (at_end(c))
				return fail(c,
				    "unbalanced '\"': quoted string not closed");
			if (msg_is_ctl(c->p[c->i]))
				return fail_char(c, "in quoted string");
			tok_add(t, c->p[c->i++]);
			continue;
		}
		if (ch == '\r' || ch == '\n') {
			/* Unfolding drops the line break, keeps the WSP. */
			if (skip_break(c, false) == -1)
				return -1;
			continue;
		}
		if (msg_is_ctl(ch))
			return fail_char(c, "in quoted string");
		tok_add(t, ch);
		c->i++;
	}
}

static void
parse_atom(struct cursor *c, struct tok *t)
{
	while (!at_end(c) && is_atext(c->p[c->i]))
		tok_add(t, c->p[c->i++]);
}

/*
 * local-part = dot-atom / quoted-string / obs-local-part (word *("." word),
 * with CFWS allowed around each word).  The cursor is at its first word.
 */
static int
parse_local(struct cursor *c, struct tok *t)
{
	int ch;

	for (;;) {
		if (skip_cfws(c) == -1)
			return -1;
		ch = peek(c);
		if (ch == '"') {
			if (parse_qstring(c, t) == -1)
				return -1;
		} else if (ch != -1 && is_atext((unsigned char)ch)) {
			parse_atom(c, t);
		} else if (ch == '.') {
			return fail(c, "empty word before '.' in local part");
		} else if (ch == '@') {
			return fail(c, "empty local part before '@'");
		} else
			return fail_char(c, "where a local part was expected");
		if (skip_cfws(c) == -1)
			return -1;
		if (peek(c) != '.')
			return 0;
		tok_add(t, '.');
		c->i++;
	}
}

/* At '[': a domain literal; white space inside is dropped. */
static int
parse_literal(struct cursor *c, struct tok *t)
{
	unsigned char ch;

	tok_add(t, '[');
	c->i++;
	for (;;) {
		if (at_end(c))
			return fail(c, "unbalanced '[': domain literal not closed");
		ch = c->p[c->i];
		if (ch == ']') {
			tok_add(t, ']');
			c->i++;
			return 0;
		}
		if (is_wsp(ch)) {
			c->i++;
			continue;
		}
		if (ch == '\r' || ch == '\n') {
			if (skip_break(c, false) == -1)
				return -1;
			continue;
		}
		/* dtext, RFC 5322 §3.4.1; no obsolete quoted-pairs. */
		if (ch == '[' || ch == '\\' || msg_is_ctl(ch) || ch >= 0x80)
			return fail_char(c, "in domain literal");
		tok_add(t, ch);
		c->i++;
	}
}

/* After '@': domain = dot-atom / domain-literal / obs-domain. */
static int
parse_domain(struct cursor *c, struct tok *t)
{
	int ch;

	if (skip_cfws(c) == -1)
		return -1;
	ch = peek(c);
	if (ch == '[') {
		if (parse_literal(c, t) == -1)
			return -1;
		return skip_cfws(c);
	}
	if (ch == -1 || ch == ',' || ch == '>' || ch == ';')
		return fail(c, "'@' with empty domain");
	for (;;) {
		ch = peek(c);
		if (ch == -1 || !is_atext((unsigned char)ch)) {
			if (t != NULL && t->n > 0 && t->v[t->n - 1] == '.')
				return fail(c, "empty label after '.' in domain");
			return fail_char(c, "where a domain was expected");
		}
		parse_atom(c, t);
		if (skip_cfws(c) == -1)
			return -1;
		if (peek(c) != '.')
			return 0;
		tok_add(t, '.');
		c->i++;
		if (skip_cfws(c) == -1)
			return -1;
		ch = peek(c);
		if (ch == -1 || !is_atext((unsigned char)ch))
			return fail(c, "empty label after '.' in domain");
	}
}

/*
 * After '<' when '@' or ',' follows: obs-route (RFC 5322 §4.4),
 * "@a,@b:" before the addr-spec.  The route is checked and dropped.
 */
static int
parse_route(struct cursor *c)
{
	struct tok scratch;
	bool any = false, need_sep = false;
	int ch;

	for (;;) {
		if (skip_cfws(c) == -1)
			return -1;
		ch = peek(c);
		if (ch == ',') {
			need_sep = false;
			c->i++;
		} else if (ch == '@' && !need_sep) {
			c->i++;
			memset(&scratch, 0, sizeof(scratch));
			if (parse_domain(c, &scratch) == -1)
				return -1;
			any = need_sep = true;
		} else if (ch == ':' && any) {
			c->i++;
			return 0;
		} else if (ch == -1)
			return fail(c, "missing '>': route not closed");
		else
			return fail_char(c, "in source route");
	}
}

/*
 * The cursor is at an addr-spec or a bare local part.  Canonicalise it and
 * append it to list.
 */
static int
parse_spec(struct cursor *c, struct strlist *list)
{
	struct tok local, domain;

	memset(&local, 0, sizeof(local));
	memset(&domain, 0, sizeof(domain));
	if (parse_local(c, &local) == -1)
		return -1;
	if (peek(c) == '@') {
		c->i++;
		if (parse_domain(c, &domain) == -1)
			return -1;
		return add_address(c, &local, &domain, list);
	}
	return add_address(c, &local, NULL, list);
}

/* After '<': [obs-route] addr-spec (or a bare local part) '>'. */
static int
parse_angle(struct cursor *c, struct strlist *list)
{
	int ch;

	c->i++;
	if (skip_cfws(c) == -1)
		return -1;
	ch = peek(c);
	if (ch == '>')
		return fail(c, "empty address <>");
	if (ch == -1)
		return fail(c, "missing '>'");
	if ((ch == '@' || ch == ',') && parse_route(c) == -1)
		return -1;
	if (parse_spec(c, list) == -1)
		return -1;
	ch = peek(c);
	if (ch == '>') {
		c->i++;
		return 0;
	}
	if (ch == -1)
		return fail(c, "missing '>'");
	return fail_char(c, "in angle address (missing '>'?)");
}

/*
 * One element of an address list: mailbox, group or nothing (obsolete
 * empty elements).  Words are scanned first to learn what follows them.
 */
static int
parse_address(struct cursor *c, bool in_group, struct strlist *list)
{
	size_t start = c->i, nwords = 0, ndots = 0;
	bool at = false;
	int ch;

	for (;;) {
		if (skip_cfws(c) == -1)
			return -1;
		ch = peek(c);
		if (ch == '"') {
			if (parse_qstring(c, NULL) == -1)
				return -1;
			nwords++;
		} else if (ch != -1 && is_atext((unsigned char)ch)) {
			parse_atom(c, NULL);
			nwords++;
		} else if (ch == '.') {
			ndots++;
			c->i++;
		} else if (ch == '@') {
			at = true;
			c->i++;
		} else
			break;
	}

	switch (ch) {
	case '<':
		/* The words were a display name (phrase, obs-phrase). */
		return parse_angle(c, list);
	case ':':
		if (in_group)
			return fail(c, "nested group");
		if (nwords == 0)
			return fail(c, "group without a name before ':'");
		if (at)
			return fail(c, "'@' in a group name");
		c->i++;
		return parse_list(c, true, list);
	case -1:
	case ',':
	case ';':
		break;
	case '[':
		if (at)
			break;
		return fail(c, "unexpected '[': domain literal without '@'");
	case ')':
		return fail(c, "unbalanced ')'");
	case '>':
		return fail(c, "unexpected '>' without '<'");
	case ']':
		return fail(c, "unbalanced ']'");
	default:
		return fail_char(c, "in address");
	}
	if (nwords == 0) {
		if (at)
			return fail(c, "empty local part before '@'");
		if (ndots > 0)
			return fail(c, "unexpected '.' without an address");
		return 0;	/* an empty list element */
	}
	c->i = start;
	return parse_spec(c, list);
}

/*
 * address-list, or in_group the group-list after ':' up to ';'.  A group
 * missing its ';' at the end of the input is accepted.
 */
static int
parse_list(struct cursor *c, bool in_group, struct strlist *list)
{
	int ch;

	for (;;) {
		if (skip_cfws(c) == -1)
			return -1;
		ch = peek(c);
		if (ch == -1)
			return 0;
		if (ch == ',') {
			c->i++;
			continue;
		}
		if (ch == ';') {
			if (!in_group)
				return fail(c, "';' outside a group");
			c->i++;
			return 0;
		}
		if (parse_address(c, in_group, list) == -1)
			return -1;
		if (skip_cfws(c) == -1)
			return -1;
		ch = peek(c);
		if (ch == ',' || ch == ';' || ch == -1)
			continue;
		return fail_char(c, "after address");
	}
}

/* dot-atom-text, RFC 5322 §3.2.3, ASCII only. */
static bool
is_dot_atom(const char *s, size_t n)
{
	bool prev_dot = true;

	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (prev_dot)
				return false;
			prev_dot = true;
		} else if (msg_is_ascii_atext((unsigned char)s[i]))
			prev_dot = false;
		else
			return false;
	}
	return !prev_dot;
}

/*
 * Build "local@domain" (or "local"): the local part stays unquoted when it
 * can be (RFC 5321 §4.1.2 prefers that), else it is quoted with '"' and
 * '\' escaped.  Then check it as an envelope address.
 */
static int
add_address(struct cursor *c, const struct tok *local,
    const struct tok *domain, struct strlist *list)
{
	char addr[MSG_TOK_MAX * 2 + 8];
	size_t n = 0;

	if (local->overflow || (domain != NULL && domain->overflow) ||
	    local->n + (domain != NULL ? domain->n + 1 : 0) > MSG_PATH_MAX)
		return fail(c, "address longer than %d octets", MSG_PATH_MAX - 2);
	if (is_dot_atom(local->v, local->n)) {
		memcpy(addr, local->v, local->n);
		n = local->n;
	} else {
		addr[n++] = '"';
		for (size_t i = 0; i < local->n; i++) {
			if (local->v[i] == '"' || local->v[i] == '\\')
				addr[n++] = '\\';
			addr[n++] = local->v[i];
		}
		addr[n++] = '"';
	}
	if (domain != NULL) {
		addr[n++] = '@';
		memcpy(addr + n, domain->v, domain->n);
		n += domain->n;
	}
	addr[n] = '\0';
	if (msg_addr_check(addr, true, c->err, c->errlen) == -1)
		return -1;
	strlist_add(list, addr);
	return 0;
}

int
msg_addrlist_parse(const char *text, size_t len, struct strlist *out,
    char *err, size_t errlen)
{
	struct strlist tmp = { NULL, 0, 0 };
	struct cursor c;
	int n = -1;

	if (text == NULL)
		len = 0;
	c.p = (const unsigned char *)(text != NULL ? text : "");
	c.len = len;
	c.i = 0;
	c.err = err;
	c.errlen = errlen;
	if (parse_list(&c, false, &tmp) == -1)
		goto done;
	if (tmp.n > 0x7fffffff) {
		util_seterr(err, errlen, "too many addresses");
		goto done;
	}
	for (size_t i = 0; i < tmp.n; i++) {
		strlist_add_owned(out, tmp.v[i]);
		tmp.v[i] = NULL;
	}
	n = (int)tmp.n;
	tmp.n = 0;
done:
	strlist_free(&tmp);
	return n;
}

/*
 * RFC 5321 §4.1.2 Local-part = Dot-string / Quoted-string.  Sets *lenp to
 * the length of the local part at the start of addr.
 */
static int
check_local(const char *addr, bool utf8, size_t *lenp, char *err,
    size_t errlen)
{
	const unsigned char *s = (const unsigned char *)addr;
	size_t i = 0;
	bool prev_dot = true;

	if (s[0] == '"') {
		for (i = 1; s[i] != '"'; i++) {
			if (s[i] == '\0') {
				util_seterr(err, errlen, "unbalanced '\"' in local part");
				return -1;
			}
			if (s[i] == '\\')
				i++;
			/* qtextSMTP and quoted-pairSMTP: %d32-126 */
			if (utf8 && s[i] >= 0x80)
				continue;	/* RFC 6531 §3.3 */
			if (s[i] < 32 || s[i] > 126) {
				util_seterr(err, errlen, "%s 0x%02x in local part",
				    s[i] >= 0x80 ? "non-ASCII byte (SMTPUTF8 is "
				    "not supported)" : "control character",
				    s[i]);
				return -1;
			}
		}
		i++;
		if (i == 2) {
			util_seterr(err, errlen, "empty local part");
			return -1;
		}
	} else {
		for (i = 0; s[i] != '\0' && s[i] != '@'; i++) {
			if (s[i] == '.') {
				if (prev_dot) {
					util_seterr(err, errlen, i == 0 ?
					    "local part starts with '.'" :
					    "'..' in local part");
					return -1;
				}
				prev_dot = true;
			} else if (msg_is_ascii_atext(s[i]) ||
			    (utf8 && s[i] >= 0x80))
				prev_dot = false;	/* RFC 6531 §3.3 atext */
			else if (s[i] >= 0x80) {
				util_seterr(err, errlen, "non-ASCII byte 0x%02x in "
				    "local part (SMTPUTF8 is not supported)",
				    s[i]);
				return -1;
			} else if (msg_is_ctl(s[i]) || s[i] == '\t') {
				util_seterr(err, errlen, "control character 0x%02x "
				    "in local part", s[i]);
				return -1;
			} else {
				util_seterr(err, errlen, "'%c' in local part must "
				    "be quoted", s[i]);
				return -1;
			}
		}
		if (i == 0) {
			util_seterr(err, errlen, "empty local part");
			return -1;
		}
		if (prev_dot) {
			util_seterr(err, errlen, "local part ends with '.'");
			return -1;
		}
	}
	if (i > MSG_LOCAL_MAX) {
		util_seterr(err, errlen, "local part longer than %d octets",
		    MSG_LOCAL_MAX);
		return -1;
	}
	*lenp = i;
	return 0;
}

/* address-literal, RFC 5321 §4.1.3: IPv4 or "IPv6:" addresses. */
static int
check_literal(const char *lit, size_t n, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned char a[sizeof(struct in6_addr)];
	size_t i, digits = 0, dots = 0;
	unsigned val = 0;

	if (n >= 5 && strncasecmp(lit, "IPv6:", 5) == 0) {
		if (n - 5 >= sizeof(buf))
			goto bad;
		memcpy(buf, lit + 5, n - 5);
		buf[n - 5] = '\0';
		if (inet_pton(AF_INET6, buf, a) != 1)
			goto bad;
		return 0;
	}
	/* IPv4-address-literal = Snum 3("." Snum), Snum = 1*3DIGIT <= 255 */
	for (i = 0; i < n; i++) {
		if (lit[i] >= '0' && lit[i] <= '9') {
			val = val * 10 + (unsigned)(lit[i] - '0');
			if (++digits > 3 || val > 255)
				goto bad;
		} else if (lit[i] == '.' && digits > 0 && dots < 3) {
			dots++;
			digits = val = 0;
		} else
			goto bad;
	}
	if (dots == 3 && digits > 0)
		return 0;
bad:
	util_seterr(err, errlen, "invalid address literal [%.*s]",
	    (int)(n > 64 ? 64 : n), lit);
	return -1;
}

/* RFC 5321 §4.1.2 Domain (LDH labels) or address-literal. */
static int
check_domain(const char *d, char *err, size_t errlen)
{
	size_t n = strlen(d), label = 0;

	if (n == 0) {
		util_seterr(err, errlen, "'@' with empty domain");
		return -1;
	}
	if (n > MSG_DOMAIN_MAX) {
		util_seterr(err, errlen, "domain longer than %d octets",
		    MSG_DOMAIN_MAX);
		return -1;
	}
	if (d[0] == '[') {
		if (n < 2 || d[n - 1] != ']') {
			util_seterr(err, errlen, "unbalanced '[' in domain");
			return -1;
		}
		return check_literal(d + 1, n - 2, err, errlen);
	}
	for (size_t i = 0; i <= n; i++) {
		unsigned char ch = (unsigned char)d[i];

		if (ch == '.' || ch == '\0') {
			if (label == 0) {
				util_seterr(err, errlen, "empty label in domain");
				return -1;
			}
			if (d[i - 1] == '-') {
				util_seterr(err, errlen,
				    "domain label ends with '-'");
				return -1;
			}
			label = 0;
			continue;
		}
		if (++label > 63) {
			util_seterr(err, errlen,
			    "domain label longer than 63 octets");
			return -1;
		}
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9'))
			continue;
		if (ch == '-' && label > 1)
			continue;
		if (ch == '-') {
			util_seterr(err, errlen, "domain label starts with '-'");
			return -1;
		}
		if (msg_is_ctl(ch) || ch == '\t' || ch == ' ')
			util_seterr(err, errlen, "control character or space 0x%02x"
			    " in domain", ch);
		else if (ch >= 0x80)
			util_seterr(err, errlen, "non-ASCII byte 0x%02x in domain "
			    "(use its A-label, xn--...)", ch);
		else
			util_seterr(err, errlen, "'%c' in domain", ch);
		return -1;
	}
	return 0;
}

int
msg_addr_check(const char *addr, bool allow_unqualified, char *err,
    size_t errlen)
{
	return addr_check(addr, allow_unqualified, false, err, errlen);
}

int
msg_addr_check_utf8(const char *addr, bool allow_unqualified, char *err,
    size_t errlen)
{
	return addr_check(addr, allow_unqualified, true, err, errlen);
}

/* msg_addr_check(), with UTF-8 local parts when utf8 (RFC 6531 §3.3). */
static int
addr_check(const char *addr, bool allow_unqualified, bool utf8, char *err,
    size_t errlen)
{
	size_t n, llen;

	if (addr == NULL || (n = strlen(addr)) == 0) {
		util_seterr(err, errlen, "empty address");
		return -1;
	}
	/* The path limit counts the angle brackets (§4.5.3.1.3). */
	if (n + 2 > MSG_PATH_MAX) {
		util_seterr(err, errlen, "address longer than %d octets",
		    MSG_PATH_MAX - 2);
		return -1;
	}
	if (utf8 && !utf8_valid(addr, n)) {
		util_seterr(err, errlen, "not well-formed UTF-8");
		return -1;
	}
	if (check_local(addr, utf8, &llen, err, errlen) == -1)
		return -1;
	if (addr[llen] == '\0') {
		if (allow_unqualified)
			return 0;
		util_seterr(err, errlen, "address without '@domain'");
		return -1;
	}
	if (addr[llen] != '@') {
		util_seterr(err, errlen, "text after the quoted local part");
		return -1;
	}
	return check_domain(addr + llen + 1, err, errlen);
}
