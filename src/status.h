/*
 * status: RFC 3463 enhanced status codes ("5.1.1"), the one parser of them
 * in the tree.  Pure: no I/O, no allocation, bounded reads.
 *
 * A code is class "." subject "." detail: the class is 2, 4 or 5, subject
 * and detail are 1 to 3 digits each (RFC 3463 section 2).  smtp_proto.c
 * reads them from the first line of a reply, queue/envelope.c checks the
 * ones it stores, and delivery (delivery_sess.c) falls back on the class
 * default when a reply had none.
 */
#ifndef MXRELAY_STATUS_H
#define MXRELAY_STATUS_H

#include <stdbool.h>
#include <stddef.h>

/* "5.999.999" and its NUL fit; sizes of status buffers use this. */
#define STATUS_MAX	12

/*
 * The code at the start of s (at most len bytes; s need not be
 * NUL-terminated within them).  It must end at len, at a NUL, or at a
 * space or tab.  Copies it into status (statussize >= STATUS_MAX is
 * always enough) and returns its length; returns 0 and leaves status ""
 * when s does not start with a code or status is too small.
 */
size_t		 status_parse(const char *s, size_t len, char *status,
		    size_t statussize);
/* Is s exactly one code, nothing before or after?  NULL is not. */
bool		 status_valid(const char *s);
/*
 * The class default for an SMTP reply code (RFC 3463 section 3.1:
 * "X.0.0"): "2.0.0", "4.0.0" or "5.0.0" for codes 2xx, 4xx and 5xx,
 * "4.0.0" for anything else (0: there was no reply).
 */
void		 status_class_default(int code, char *status,
		    size_t statussize);

#endif
