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

/*
 * The HTTP/1.1 response of the policy fetch (RFC 9112), piece by piece as
 * sts.c reads it: the status line, then each header line (without its
 * line end) until the empty one, then the body, chunked or not.
 */
#define STS_HTTP_HEADERS_MAX	100	/* header lines in one response */

struct sts_http {
	int		 status;	/* 200; 0 until the status line */
	unsigned	 nheaders;
	bool		 have_type;	/* a Content-Type field was seen */
	bool		 type_ok;	/* ... and it was text/plain */
	bool		 chunked;	/* Transfer-Encoding: chunked */
	int64_t		 length;	/* Content-Length, -1 when none */
};
void		 sts_http_init(struct sts_http *);
/* "HTTP/1.x NNN reason": 0 with h->status set, or -1. */
int		 sts_http_status(struct sts_http *, const char *line, size_t len);
/*
 * One header field line: 0, or -1 with why in err (malformed, too many,
 * a bad or second differing Content-Length, a transfer coding other than
 * chunked).  Content-Type, Content-Length and Transfer-Encoding are noted;
 * the others are ignored.
 */
int		 sts_http_header(struct sts_http *, const char *line,
		    size_t len, char *err, size_t errlen);

/* The chunked transfer coding (RFC 9112 §7.1), decoded incrementally. */
struct sts_chunked {
	int		 state;
	uint64_t	 left;		/* bytes of the current chunk to come */
	unsigned	 ndigits;
	size_t		 linelen;	/* of an extension or trailer line */
};
enum sts_chunked_result {
	STS_CHUNKED_MORE,	/* all of in taken; more to come */
	STS_CHUNKED_DONE,	/* the last chunk and trailer ended */
	STS_CHUNKED_ERROR,	/* malformed */
	STS_CHUNKED_FULL,	/* the decoded body would pass outmax */
};
void		 sts_chunked_init(struct sts_chunked *);
/*
 * Decode in[0..inlen), appending the data to out (at *outlen, never past
 * outmax).  *used gets the bytes of in taken (all of them unless DONE).
 */
enum sts_chunked_result sts_chunked_decode(struct sts_chunked *,
		    const char *in, size_t inlen, size_t *used,
		    char *out, size_t *outlen, size_t outmax);

#endif
