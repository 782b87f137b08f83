/*
 * aliases: an /etc/aliases-style file mapping local names to addresses,
 *
 *	# comment
 *	root: admin@example.com, ops@example.com
 *	postmaster: root
 *
 * Continuation lines start with white space.  Only local names (no '@')
 * are looked up; targets that are local names are expanded again (up to a
 * fixed depth, loops are an error).  Targets of the forms "|command",
 * "/file", ":include:", "\name" and quoted ones are not supported: an
 * entry with one loads (each is a warning) but expanding a name that
 * reaches it fails, so only the mail that needs it is refused.  Syntax
 * errors refuse the whole file.
 */
#ifndef MXRELAY_ALIASES_H
#define MXRELAY_ALIASES_H

#include <stddef.h>

#include "util.h"

struct aliases;

/* Load path; on a syntax error -1 with "FILE:LINE: what" in err. */
int	 aliases_load(const char *path, struct aliases **, char *err, size_t errlen);
void	 aliases_free(struct aliases *);
/*
 * The warnings of a loaded file: one "FILE:LINE: NAME: TARGET: why" per
 * unsupported target, i < aliases_nwarnings().
 */
size_t	 aliases_nwarnings(const struct aliases *);
const char *aliases_warning(const struct aliases *, size_t i);
/*
 * Expand one local name (case-insensitive) into out (appended).
 * Returns 1 when name is an alias, 0 when it is not (out untouched),
 * -1 on a loop, too deep nesting, or an entry with an unsupported target
 * on the way (err set; for the latter, to that entry's first warning).
 * Targets that remain local names with no alias of their own are appended
 * as they are: the caller qualifies them.
 */
int	 aliases_expand(const struct aliases *, const char *name,
	    struct strlist *out, char *err, size_t errlen);

#endif
