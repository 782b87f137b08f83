/* STUB (lead: drop this commit): MTA-STS engine, not yet written. */
#include "config.h"

#include <stdlib.h>

#include "sts.h"
#include "util.h"

struct sts {
	int dummy;
};

struct sts *
sts_new(struct ev_loop *loop, struct dns *dns, const struct sts_conf *c,
    char *err, size_t errlen)
{
	(void)loop; (void)dns; (void)c; (void)err; (void)errlen;
	return xcalloc(1, sizeof(struct sts));
}

void
sts_free(struct sts *s)
{
	free(s);
}

struct sts_req *
sts_policy_get(struct sts *s, const char *domain, sts_cb cb, void *arg)
{
	(void)s; (void)domain; (void)cb; (void)arg;
	return NULL;
}

void
sts_cancel(struct sts_req *r)
{
	(void)r;
}
