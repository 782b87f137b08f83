/*
 * smtpd_authfail: the listener's table of AUTH failures per client
 * address (pure: no I/O, no clock; the caller passes now in ms).
 *
 * An address's failures are forgotten once window ms have passed since
 * its last failure.  A check under way (credentials sent, the hash not
 * yet compared) counts against the limit too, so that connections in
 * parallel cannot try more passwords than the limit between them.  The
 * table holds at most max addresses; a new one then takes the place of
 * the one with the fewest failures within the window (the oldest of
 * those), so that addresses at the limit are the last to go.
 */
#ifndef MXRELAY_SMTPD_AUTHFAIL_H
#define MXRELAY_SMTPD_AUTHFAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct authfail;

/* The key: AF_INET (4 octets of addr) or AF_INET6 (16). */
struct authfail_addr {
	int		 family;
	unsigned char	 addr[16];
};

struct authfail	*authfail_new(size_t max);
void		 authfail_free(struct authfail *);
/* Failures of the address within the window, plus checks under way. */
unsigned	 authfail_count(struct authfail *, const struct authfail_addr *,
		    uint64_t window_ms, uint64_t now_ms);
/*
 * A check may start when the count is below limit (0: no limit): true,
 * and the check is counted as under way until authfail_end(); false
 * when refused.  *count is the count before it, in both cases.
 */
bool		 authfail_begin(struct authfail *, const struct authfail_addr *,
		    unsigned limit, uint64_t window_ms, uint64_t now_ms,
		    unsigned *count);
/*
 * The check ended: a failure is counted (a success forgets nothing).
 * Returns the address's failures within the window after it.
 */
unsigned	 authfail_end(struct authfail *, const struct authfail_addr *,
		    bool ok, uint64_t window_ms, uint64_t now_ms);
/* Addresses in the table (stale ones included until reused). */
size_t		 authfail_size(const struct authfail *);

#endif
