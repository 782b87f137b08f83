/*
 * Unit tests for src/aliases.c: the file syntax (comments, continuation
 * lines, case), nested expansion, the self-reference rule, loops, depth,
 * the FILE:LINE errors of the syntax, and the targets mxrelay does not
 * support (warnings; only the names that reach them fail).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "aliases.h"
#include "util.h"
#include "testutil.h"

#define ARRLEN(a)	(sizeof(a) / sizeof((a)[0]))

static char	 tmpdir[PATH_MAX - 64];
static char	 apath[PATH_MAX];

static int
setup_dir(void **state)
{
	(void)state;
	if (test_mkdtemp(tmpdir, sizeof(tmpdir), "test_aliases") == NULL)
		return -1;
	snprintf(apath, sizeof(apath), "%s/aliases", tmpdir);
	return 0;
}

static int
teardown_dir(void **state)
{
	(void)state;
	unlink(apath);
	return rmdir(tmpdir);
}

static void
write_file(const char *text)
{
	FILE *f = fopen(apath, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	assert_int_equal(fclose(f), 0);
}

static struct aliases *
load_ok(const char *text)
{
	struct aliases *al;
	char err[256] = "";

	write_file(text);
	if (aliases_load(apath, &al, err, sizeof(err)) != 0)
		fail_msg("aliases_load: %s", err);
	assert_non_null(al);
	return al;
}

/* Expand name; the result joined with ',' must equal want. */
static void
expand_is(const struct aliases *al, const char *name, int rc,
    const char *want)
{
	struct strlist out = { NULL, 0, 0 };
	char err[256] = "", got[1024] = "";
	size_t o = 0;

	if (aliases_expand(al, name, &out, err, sizeof(err)) != rc)
		fail_msg("aliases_expand(%s) != %d (%s)", name, rc, err);
	for (size_t i = 0; i < out.n; i++)
		o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%s",
		    i ? "," : "", out.v[i]);
	if (rc == -1)
		assert_non_null(strstr(err, want));
	else
		assert_string_equal(got, want);
	strlist_free(&out);
}

static void
test_basic(void **state)
{
	struct aliases *al;

	(void)state;
	al = load_ok(
	    "# system aliases\n"
	    "root: admin@example.com, ops@example.com\n"
	    "Postmaster: root\n"
	    "\n"
	    "  # an indented comment\n"
	    "ops:alice@example.com,\n"
	    "\tbob@example.com\n"
	    "    carol@example.com ,dave@example.com\r\n"
	    "webmaster : www\n"
	    "abuse: ROOT, abuse@example.net\n");
	expand_is(al, "root", 1, "admin@example.com,ops@example.com");
	expand_is(al, "ROOT", 1, "admin@example.com,ops@example.com");
	expand_is(al, "postmaster", 1, "admin@example.com,ops@example.com");
	expand_is(al, "ops", 1, "alice@example.com,bob@example.com,"
	    "carol@example.com,dave@example.com");
	/* A local target with no alias stays as it is. */
	expand_is(al, "webmaster", 1, "www");
	expand_is(al, "abuse", 1, "admin@example.com,ops@example.com,"
	    "abuse@example.net");
	/* Not an alias, or not a local name: 0, out untouched. */
	expand_is(al, "nobody", 0, "");
	expand_is(al, "root@example.com", 0, "");
	expand_is(NULL, "root", 0, "");
	aliases_free(al);
	aliases_free(NULL);
}

static void
test_appends(void **state)
{
	struct aliases *al;
	struct strlist out = { NULL, 0, 0 };
	char err[128];

	(void)state;
	al = load_ok("root: a@x\n");
	strlist_add(&out, "first@x");
	assert_int_equal(aliases_expand(al, "root", &out, err, sizeof(err)), 1);
	assert_int_equal(out.n, 2);
	assert_string_equal(out.v[0], "first@x");
	assert_string_equal(out.v[1], "a@x");
	strlist_free(&out);
	aliases_free(al);
}

static void
test_nesting(void **state)
{
	struct aliases *al;

	(void)state;
	/* Self reference means "that name, as it is". */
	al = load_ok(
	    "root: root, admin@example.com\n"
	    "postmaster: root\n"
	    "team: a, b, a@x\n"
	    "a: a@x, c\n"
	    "b: c, b@x\n"
	    "c: c@x\n"
	    "loop1: loop2\n"
	    "loop2: loop3\n"
	    "loop3: loop1\n"
	    "self: x@y, loopa\n"
	    "loopa: self\n");
	expand_is(al, "root", 1, "root,admin@example.com");
	expand_is(al, "postmaster", 1, "root,admin@example.com");
	/* Each alias expanded once, each address listed once. */
	expand_is(al, "team", 1, "a@x,c@x,b@x");
	expand_is(al, "loop1", -1, "loop");
	expand_is(al, "loop3", -1, "loop");
	expand_is(al, "self", -1, "loop");
	aliases_free(al);
}

static void
test_depth(void **state)
{
	struct aliases *al;
	char text[4096];
	size_t o = 0;

	(void)state;
	/* n0 -> n1 -> ... -> n16 -> x@y: 17 levels, one too many. */
	for (int i = 0; i < 16; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
		    "n%d: n%d\n", i, i + 1);
	snprintf(text + o, sizeof(text) - o, "n16: x@y\n");
	al = load_ok(text);
	expand_is(al, "n1", 1, "x@y");
	expand_is(al, "n0", -1, "deep");
	aliases_free(al);

	/* A wide, deep lattice stays fast: each alias expands once. */
	o = 0;
	for (int i = 0; i < 15; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o,
		    "w%d: w%d, w%d, w%d, w%d\n", i, i + 1, i + 1, i + 1, i + 1);
	snprintf(text + o, sizeof(text) - o, "w15: end@x\n");
	al = load_ok(text);
	expand_is(al, "w0", 1, "end@x");
	aliases_free(al);
}

/* Expansion of name fails with exactly the warning want. */
static void
expand_fails(const struct aliases *al, const char *name, const char *want)
{
	struct strlist out = { NULL, 0, 0 };
	char err[256] = "";
	size_t plen = strlen(apath);

	if (aliases_expand(al, name, &out, err, sizeof(err)) != -1)
		fail_msg("aliases_expand(%s) did not fail", name);
	assert_int_equal(out.n, 0);
	if (strncmp(err, apath, plen) != 0 || strcmp(err + plen, want) != 0)
		fail_msg("aliases_expand(%s): got \"%s\", wanted \"...%s\"",
		    name, err, want);
	strlist_free(&out);
}

/*
 * Targets mxrelay does not deliver to: the file loads, each is a warning,
 * and only names whose expansion reaches one fail.
 */
static void
test_unsupported(void **state)
{
	static const char *const warn[] = {
		":1: pipe: |/usr/bin/procmail: pipe targets (\"|command\") "
		    "are not supported",
		":2: devnull: /dev/null: file targets are not supported",
		":3: list: :include:/etc/list: :include: targets are not "
		    "supported",
		":4: list2: :INCLUDE:/etc/list: :include: targets are not "
		    "supported",
		":5: prog: \"|cmd arg, x\": quoted targets are not supported",
		":6: esc: \\x5croot: \"\\name\" targets are not supported "
		    "(list the name itself)",
		":8: mixed: |cmd: pipe targets (\"|command\") are not "
		    "supported",
		":8: mixed: /var/log/x: file targets are not supported",
	};
	struct aliases *al;
	size_t plen = strlen(apath);

	(void)state;
	al = load_ok(
	    "pipe: |/usr/bin/procmail\n"
	    "devnull: /dev/null\n"
	    "list: :include:/etc/list\n"
	    "list2: :INCLUDE:/etc/list\n"
	    "prog: \"|cmd arg, x\"\n"
	    "esc: \\root\n"
	    "mixed: a@x,\n"
	    "  b@x, |cmd /var/log/x\n"
	    "root: admin@example.com, ops\n"
	    "ops: ops@example.net\n"
	    "nested: ops, devnull\n"
	    "deeper: nested\n"
	    "later: a@x, prog, b@x\n");
	assert_int_equal(aliases_nwarnings(al), ARRLEN(warn));
	for (size_t i = 0; i < ARRLEN(warn); i++) {
		const char *w = aliases_warning(al, i);

		if (strncmp(w, apath, plen) != 0 || strcmp(w + plen, warn[i]))
			fail_msg("warning %zu: got \"%s\", wanted \"...%s\"", i,
			    w, warn[i]);
	}
	/* An entry with only unsupported targets is no "no targets" error. */
	expand_fails(al, "pipe", warn[0]);
	expand_fails(al, "DEVNULL", warn[1]);
	expand_fails(al, "list", warn[2]);
	expand_fails(al, "list2", warn[3]);
	expand_fails(al, "prog", warn[4]);
	expand_fails(al, "esc", warn[5]);
	/* Its supported targets are not used alone; the first one is named. */
	expand_fails(al, "mixed", warn[6]);
	/* Reached through nesting, wherever it is in the list. */
	expand_fails(al, "nested", warn[1]);
	expand_fails(al, "deeper", warn[1]);
	expand_fails(al, "later", warn[4]);
	/* Other names are not affected. */
	expand_is(al, "root", 1, "admin@example.com,ops@example.net");
	expand_is(al, "ops", 1, "ops@example.net");
	expand_is(al, "nobody", 0, "");
	aliases_free(al);

	/* A file without them has no warnings. */
	al = load_ok("root: a@x\n");
	assert_int_equal(aliases_nwarnings(al), 0);
	aliases_free(al);
	assert_int_equal(aliases_nwarnings(NULL), 0);
}

static void
test_errors(void **state)
{
	static const struct {
		const char	*text;
		const char	*want;	/* after the path */
	} t[] = {
		{ "root: a@x # admins\n", ":1: root: #: '#' begins a comment" },
		/* Syntax errors beside unsupported targets still refuse it. */
		{ "root: |cmd, a@x # admins\n", ":1: root: #: '#' begins" },
		{ "root: /dev/null\nbad name: a@x\n", ":2: \"bad name\": not" },
		{ "root: \"|cmd arg\n", ":1: unterminated quoted target" },
		{ "root: \"|cmd\"\nroot: a@x\n", ":2: root: defined twice" },
		{ "root: a@@x\n", ":1: root: a@@x: not a valid address" },
		{ "root: @x\n", ":1: root: @x: not a valid address" },
		{ "root: a@\n", ":1: root: a@: not a valid address" },
		{ "root: <a@x>\n", ":1: root: <a@x>: not a valid address" },
		{ "root a@x\n", ":1: missing ':'" },
		{ "  a@x\n", ":1: continuation line without an alias" },
		{ "root: a@x\n\n  b@x\n", ":3: continuation line without" },
		{ "root:\n", ":1: root: no targets" },
		{ "root:\n\nadmin: a@x\n", ":1: root: no targets" },
		{ ": a@x\n", ":1: \"\": not a valid alias name" },
		{ "root@example.com: a@x\n", ":1: \"root@example.com\": not a "
		    "valid alias name" },
		{ "bad name: a@x\n", ":1: \"bad name\": not a valid alias" },
		{ "root: a@x\nRoot: b@x\n", ":2: root: defined twice (first at "
		    "line 1)" },
		{ "x: a\x01@x\n", ":1: x: a\\x01@x: not a valid address" },
	};
	struct aliases *al;
	char err[256], missing[PATH_MAX];
	size_t plen = strlen(apath);

	(void)state;
	for (size_t i = 0; i < ARRLEN(t); i++) {
		write_file(t[i].text);
		err[0] = '\0';
		al = (struct aliases *)1;
		if (aliases_load(apath, &al, err, sizeof(err)) != -1)
			fail_msg("aliases_load(\"%s\") succeeded", t[i].text);
		assert_null(al);
		if (strncmp(err, apath, plen) != 0 ||
		    strncmp(err + plen, t[i].want, strlen(t[i].want)) != 0)
			fail_msg("aliases_load(\"%s\"): got \"%s\", wanted "
			    "\"...%s\"", t[i].text, err, t[i].want);
	}

	snprintf(missing, sizeof(missing), "%s/none", tmpdir);
	assert_int_equal(aliases_load(missing, &al, err, sizeof(err)), -1);
	assert_non_null(strstr(err, strerror(ENOENT)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_appends),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_unsupported),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
