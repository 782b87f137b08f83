/*
 * sts_policy: MTA-STS (RFC 8461) text, parsed and matched.  Pure: no I/O,
 * no clock.  The TXT record (§3.1), the policy file (§3.2), the MX host
 * patterns (§4.1), and the pieces of an HTTP/1.1 response the fetch in
 * sts.c needs.
 */
#ifndef MXRELAY_STS_POLICY_H
#define MXRELAY_STS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STS_ID_MAX	32		/* id=: 1 to 32 of [A-Za-z0-9] */
#define STS_BODY_MAX	65536		/* §3.3: policy bodies over this are refused */
#define STS_MAX_AGE_MAX	31557600	/* §3.2: max_age is capped at one year */

enum sts_mode {
	STS_MODE_NONE,
	STS_MODE_TESTING,
	STS_MODE_ENFORCE,
};

struct sts_policy {
	enum sts_mode	 mode;
	uint32_t	 max_age;	/* seconds, capped at STS_MAX_AGE_MAX */
	char		 id[STS_ID_MAX + 1];	/* of the TXT record it was fetched for */
	char		**mx;		/* patterns, lower case, no trailing dot */
	size_t		 nmx;
	int64_t		 fetched;	/* unix seconds */
};

/* A TXT record: 0 with id filled when it is a valid STSv1 record, else -1. */
int		 sts_txt_parse(const char *rec, char id[STS_ID_MAX + 1]);
/*
 * A policy body: 0 with *p filled (allocated; sts_policy_clear()), or -1
 * with why in err (for logs).  id and fetched are left as they are.
 */
int		 sts_policy_parse(const char *body, size_t len,
		    struct sts_policy *p, char *err, size_t errlen);
void		 sts_policy_clear(struct sts_policy *);
/* A deep copy (xmalloc). */
void		 sts_policy_copy(struct sts_policy *dst, const struct sts_policy *src);
/* host (any case, a trailing dot ignored) matches one of the mx patterns. */
bool		 sts_mx_match(const struct sts_policy *, const char *host);
const char	*sts_mode_to_text(enum sts_mode);

#endif
