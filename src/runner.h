/*
 * runner: one run of the queue for `mxrelay -q` (and, later, the daemon's
 * scheduler): scan the spool, lock each due message, hand its recipients
 * to the delivery engine grouped by domain, then record every outcome in
 * the envelope (retry time with backoff, bounce with a DSN, remove when
 * done).  At most RUNNER_WINDOW messages are open at a time.
 */
#ifndef MXRELAY_RUNNER_H
#define MXRELAY_RUNNER_H

#include <stdbool.h>

#include "conf.h"

struct runner_opts {
	bool		 force;		/* -qf: due or not */
	const char	*only_id;	/* -qI: this message only */
};

struct runner_stats {
	unsigned	 messages;	/* messages attempted */
	unsigned	 sent;		/* recipients delivered */
	unsigned	 deferred;
	unsigned	 bounced;
};

/*
 * Returns 0 when the run completed (whatever the outcomes), -1 when it
 * could not run (spool, TLS or DNS set-up failure), with a message logged.
 */
int	 runner_run(const struct conf *, const struct runner_opts *,
	    struct runner_stats *);

#endif
