/*
 * aliases: an /etc/aliases-style file mapping local names to addresses,
 *
 *	# comment
 *	root: admin@example.com, ops@example.com
 *	postmaster: root
 *
 * Continuation lines start with white space.  Only local names (no '@')
 * are looked up; targets that are local names are expanded again (up to a
 * fixed depth, loops are an error).  Targets of the form "|command",
 * "/file" or ":include:" are not supported and are errors.
 */
#ifndef MXRELAY_ALIASES_H
#define MXRELAY_ALIASES_H

#include <stddef.h>

#include "util.h"

struct aliases;

/* Load path; on error -1 with "FILE:LINE: what" in err. */
int	 aliases_load(const char *path, struct aliases **, char *err, size_t errlen);
void	 aliases_free(struct aliases *);
/*
 * Expand one local name (case-insensitive) into out (appended).
 * Returns 1 when name is an alias, 0 when it is not (out untouched),
 * -1 on a loop or too deep nesting (err set).  Targets that remain local
 * names with no alias of their own are appended as they are: the caller
 * qualifies them.
 */
int	 aliases_expand(const struct aliases *, const char *name,
	    struct strlist *out, char *err, size_t errlen);

#endif
