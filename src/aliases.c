/*
 * aliases: an /etc/aliases-style file, loaded into a sorted array of
 * entries and expanded on demand.
 *
 * Syntax (a subset of sendmail's aliases(5)):
 *	# a comment: '#' as the first non-blank character of a line
 *	root: admin@example.com, ops@example.com
 *	postmaster: root
 *	ops: alice@example.com,
 *	    bob@example.com		(a continuation: starts with white space)
 * Names are local parts without '@', compared case-insensitively and
 * stored in lower case.  Targets are separated by commas or white space.
 * A blank line ends an entry.  Trailing comments are not supported: a
 * target starting with '#' is an error that says so.  A name defined
 * twice is an error, and so is any other syntax error: the file is refused.
 *
 * Targets "|cmd", "/file", ":include:...", "\name" and quoted ones (a
 * quoted target may hold blanks and commas) are not supported: mxrelay
 * only relays.  An entry with one is loaded, but only to fail: expanding a
 * name that reaches it fails with the first such target's "FILE:LINE:
 * NAME: TARGET: why", and its other targets are never used alone.  Every
 * such target is also a warning of the file (aliases_warning()).
 *
 * Expansion is depth-first.  A target naming the alias that is being
 * expanded ("root: root, admin@x") means that name as it is, as sendmail
 * does; any other way back into an alias already on the expansion path is
 * a loop and an error.  Each alias is expanded at most once per call, and
 * the result holds each address once, so expansion stays linear in the
 * size of the file.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aliases.h"
#include "util.h"

#define ALIASES_MAX_DEPTH	16
#define ALIASES_LINE_MAX	65536
#define ALIASES_ADDR_MAX	320	/* local part 64 + '@' + domain 255 */

struct alias {
	char		*name;		/* lower case */
	unsigned long	 line;
	struct strlist	 targets;
	char		*unsupported;	/* its first warning, or NULL */
};

struct aliases {
	struct alias	*v;
	size_t		 n;
	struct strlist	 warnings;	/* each unsupported target */
};

/* Expansion marks, one per entry. */
#define MARK_ON_PATH	1
#define MARK_DONE	2

static int	 check_name(const char *);
static const char *check_unsupported(const char *);
static const char *check_target(const char *);
static char	*next_target(char **, const char *, unsigned long, char *,
		    size_t);
static void	 add_unsupported(struct aliases *, struct alias *,
		    const char *, const char *, const char *, unsigned long);
static int	 add_targets(struct aliases *, struct alias *, char *,
		    const char *, unsigned long, char *, size_t);
static int	 finish_entry(struct aliases *, struct alias *, const char *,
		    char *, size_t);
static int	 alias_cmp(const void *, const void *);
static const struct alias *lookup(const struct aliases *, const char *,
		    size_t *);
static int	 expand(const struct aliases *, size_t, unsigned char *,
		    unsigned, struct strlist *, char *, size_t);

/* A local name: printable ASCII, no white space, '@', ',', ':', quotes. */
static int
check_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 64)
		return -1;
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= 0x20 || ch >= 0x7f || strchr("@,:\"\\<>()#|/;", ch))
			return -1;
	}
	return 0;
}

/* A target of a form mxrelay does not deliver to: the reason, or NULL. */
static const char *
check_unsupported(const char *t)
{
	if (t[0] == '|')
		return "pipe targets (\"|command\") are not supported";
	if (t[0] == '/')
		return "file targets are not supported";
	if (strncasecmp(t, ":include:", 9) == 0)
		return ":include: targets are not supported";
	if (t[0] == '"')
		return "quoted targets are not supported";
	if (t[0] == '\\')
		return "\"\\name\" targets are not supported (list the name "
		    "itself)";
	return NULL;
}

/* A target: local name or local@domain; returns a reason or NULL. */
static const char *
check_target(const char *t)
{
	const char *at;
	size_t len = strlen(t);

	if (t[0] == '#')
		return "'#' begins a comment only at the start of a line";
	if (len > ALIASES_ADDR_MAX)
		return "address too long";
	for (const char *p = t; *p != '\0'; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch <= 0x20 || ch >= 0x7f || strchr("\"\\<>()[];:|", ch))
			return "not a valid address";
	}
	if ((at = strchr(t, '@')) != NULL) {
		if (at == t || at[1] == '\0' || strchr(at + 1, '@') != NULL)
			return "not a valid address";
	}
	return NULL;
}

/*
 * The next target of *sp (modified, advanced): up to a comma or white
 * space, or a quoted string with what follows it up to one.  NULL at the
 * end of the line (err empty) or on an unterminated quote (err set).
 */
static char *
next_target(char **sp, const char *path, unsigned long lineno, char *err,
    size_t errlen)
{
	char *s = *sp, *t;

	err[0] = '\0';
	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	if (*s == '\0')
		return NULL;
	t = s;
	if (*s == '"') {
		if ((s = strchr(s + 1, '"')) == NULL) {
			util_seterr(err, errlen, "%s:%lu: unterminated quoted "
			    "target", path, lineno);
			return NULL;
		}
		s++;
	}
	while (*s != '\0' && *s != ' ' && *s != '\t' && *s != ',')
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*sp = s;
	return t;
}

/* Remember the unsupported target t of a: a warning, and a's failure. */
static void
add_unsupported(struct aliases *al, struct alias *a, const char *t,
    const char *why, const char *path, unsigned long lineno)
{
	char et[64], *msg;

	util_escape(et, sizeof(et), t);
	msg = xasprintf("%s:%lu: %s: %s: %s", path, lineno, a->name, et, why);
	if (a->unsupported == NULL)
		a->unsupported = xstrdup(msg);
	strlist_add_owned(&al->warnings, msg);
}

/* Split s (modified) on commas and white space; append each target. */
static int
add_targets(struct aliases *al, struct alias *a, char *s, const char *path,
    unsigned long lineno, char *err, size_t errlen)
{
	char *t;
	const char *why;

	for (;;) {
		if ((t = next_target(&s, path, lineno, err, errlen)) == NULL)
			return err[0] == '\0' ? 0 : -1;
		if ((why = check_unsupported(t)) != NULL) {
			add_unsupported(al, a, t, why, path, lineno);
			continue;
		}
		if ((why = check_target(t)) != NULL) {
			char et[64];

			util_escape(et, sizeof(et), t);
			util_seterr(err, errlen, "%s:%lu: %s: %s: %s", path, lineno,
			    a->name, et, why);
			return -1;
		}
		/* Local names compare case-insensitively: store lower case. */
		if (strchr(t, '@') == NULL)
			for (char *p = t; *p != '\0'; p++)
				*p = (char)tolower((unsigned char)*p);
		if (!strlist_contains_nocase(&a->targets, t))
			strlist_add(&a->targets, t);
	}
}

static int
finish_entry(struct aliases *al, struct alias *cur, const char *path,
    char *err, size_t errlen)
{
	if (cur->name == NULL)
		return 0;
	if (cur->targets.n == 0 && cur->unsupported == NULL) {
		util_seterr(err, errlen, "%s:%lu: %s: no targets", path, cur->line,
		    cur->name);
		return -1;
	}
	al->v = xreallocarray(al->v, al->n + 1, sizeof(*al->v));
	al->v[al->n++] = *cur;
	memset(cur, 0, sizeof(*cur));
	return 0;
}

static int
alias_cmp(const void *a, const void *b)
{
	const struct alias *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	if (r != 0)
		return r;
	return x->line < y->line ? -1 : x->line > y->line;
}

int
aliases_load(const char *path, struct aliases **out, char *err, size_t errlen)
{
	struct aliases *al;
	struct alias cur;
	FILE *f;
	char *line = NULL, *p, *colon, *rest;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	int rc = -1;

	*out = NULL;
	memset(&cur, 0, sizeof(cur));
	al = xcalloc(1, sizeof(*al));
	if ((f = fopen(path, "re")) == NULL) {
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	while ((len = util_getline(f, &line, &cap, ALIASES_LINE_MAX, path, &lineno,
	    err, errlen)) != -1) {
		if (len == -2)
			goto done;
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r'))
			line[--len] = '\0';
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '#')
			continue;
		if (*p == '\0') {
			if (finish_entry(al, &cur, path, err, errlen) == -1)
				goto done;
			continue;
		}
		if (p != line) {
			if (cur.name == NULL) {
				util_seterr(err, errlen, "%s:%lu: continuation line "
				    "without an alias before it", path, lineno);
				goto done;
			}
			if (add_targets(al, &cur, p, path, lineno, err,
			    errlen) == -1)
				goto done;
			continue;
		}
		if (finish_entry(al, &cur, path, err, errlen) == -1)
			goto done;
		if ((colon = strchr(p, ':')) == NULL) {
			util_seterr(err, errlen, "%s:%lu: missing ':' (expected "
			    "NAME: TARGET, ...)", path, lineno);
			goto done;
		}
		rest = colon + 1;
		*colon = '\0';
		while (colon > p && (colon[-1] == ' ' || colon[-1] == '\t'))
			*--colon = '\0';
		if (check_name(p) == -1) {
			char ename[64];

			util_escape(ename, sizeof(ename), p);
			util_seterr(err, errlen, "%s:%lu: \"%s\": not a valid alias "
			    "name (a local name without '@')", path, lineno,
			    ename);
			goto done;
		}
		for (char *q = p; *q != '\0'; q++)
			*q = (char)tolower((unsigned char)*q);
		cur.name = xstrdup(p);
		cur.line = lineno;
		if (add_targets(al, &cur, rest, path, lineno, err,
		    errlen) == -1)
			goto done;
	}
	if (ferror(f)) {
		util_seterr(err, errlen, "%s: %s", path, strerror(errno));
		goto done;
	}
	if (finish_entry(al, &cur, path, err, errlen) == -1)
		goto done;

	if (al->n > 1)
		qsort(al->v, al->n, sizeof(*al->v), alias_cmp);
	for (size_t i = 1; i < al->n; i++)
		if (strcmp(al->v[i - 1].name, al->v[i].name) == 0) {
			util_seterr(err, errlen, "%s:%lu: %s: defined twice (first at "
			    "line %lu)", path, al->v[i].line, al->v[i].name,
			    al->v[i - 1].line);
			goto done;
		}
	*out = al;
	al = NULL;
	rc = 0;
 done:
	free(cur.name);
	strlist_free(&cur.targets);
	free(cur.unsupported);
	aliases_free(al);
	free(line);
	if (f != NULL)
		fclose(f);
	return rc;
}

void
aliases_free(struct aliases *al)
{
	if (al == NULL)
		return;
	for (size_t i = 0; i < al->n; i++) {
		free(al->v[i].name);
		strlist_free(&al->v[i].targets);
		free(al->v[i].unsupported);
	}
	free(al->v);
	strlist_free(&al->warnings);
	free(al);
}

size_t
aliases_nwarnings(const struct aliases *al)
{
	return al == NULL ? 0 : al->warnings.n;
}

const char *
aliases_warning(const struct aliases *al, size_t i)
{
	return al->warnings.v[i];
}

static const struct alias *
lookup(const struct aliases *al, const char *name, size_t *idx)
{
	size_t lo = 0, hi = al->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcasecmp(name, al->v[mid].name);

		if (r == 0) {
			*idx = mid;
			return &al->v[mid];
		}
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static int
expand(const struct aliases *al, size_t idx, unsigned char *mark,
    unsigned depth, struct strlist *out, char *err, size_t errlen)
{
	const struct alias *a = &al->v[idx];

	if (depth > ALIASES_MAX_DEPTH) {
		util_seterr(err, errlen, "alias %s: nested more than %d deep",
		    a->name, ALIASES_MAX_DEPTH);
		return -1;
	}
	if (a->unsupported != NULL) {
		util_seterr(err, errlen, "%s", a->unsupported);
		return -1;
	}
	mark[idx] = MARK_ON_PATH;
	for (size_t i = 0; i < a->targets.n; i++) {
		const char *t = a->targets.v[i];
		size_t j;

		if (strchr(t, '@') == NULL && strcmp(t, a->name) != 0 &&
		    lookup(al, t, &j) != NULL) {
			if (mark[j] == MARK_ON_PATH) {
				util_seterr(err, errlen, "alias %s: loop through "
				    "%s", a->name, t);
				return -1;
			}
			if (mark[j] == MARK_DONE)
				continue;
			if (expand(al, j, mark, depth + 1, out, err,
			    errlen) == -1)
				return -1;
			continue;
		}
		if (!strlist_contains_nocase(out, t))
			strlist_add(out, t);
	}
	mark[idx] = MARK_DONE;
	return 0;
}

int
aliases_expand(const struct aliases *al, const char *name,
    struct strlist *out, char *err, size_t errlen)
{
	struct strlist res = { NULL, 0, 0 };
	unsigned char *mark;
	size_t idx;
	int rc;

	if (al == NULL || strchr(name, '@') != NULL ||
	    lookup(al, name, &idx) == NULL)
		return 0;
	mark = xcalloc(al->n, 1);
	if ((rc = expand(al, idx, mark, 1, &res, err, errlen)) == 0) {
		for (size_t i = 0; i < res.n; i++) {
			strlist_add_owned(out, res.v[i]);
			res.v[i] = NULL;
		}
		rc = 1;
	}
	strlist_free(&res);
	free(mark);
	return rc;
}
