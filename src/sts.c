/*
 * sts: MTA-STS (RFC 8461) policies on the event loop.  See sts.h.
 *
 * One entry per domain asked for: its policy (from a fetch or the disk
 * cache), when its TXT record was last checked, the requests waiting for
 * it and the job in flight.  Requests for a domain are coalesced on its
 * entry.  A job is the discovery (§3.1: the _mta-sts TXT record) and,
 * when the id is new, the fetch (§3.3): the addresses of mta-sts.DOMAIN,
 * a connect to each in turn until one answers, TLS verified against the
 * WebPKI for that name, one HTTP/1.1 GET, the response read with
 * sts_policy.c's pieces.  Redirects are refused, the body is limited to
 * STS_BODY_MAX, and the whole job is bounded by timeout_ms.  At most
 * STS_FETCH_MAX fetches are in flight; the other jobs wait for a slot,
 * and then have their timeout_ms.
 *
 * The disk cache is a folder of one file per domain, named after it:
 *
 *	mxrelay-sts 1
 *	fetched UNIX-SECONDS
 *	id ID
 *	length N
 *	<N bytes: the policy body as it was received>
 *
 * written atomically (a dot file made with O_EXCL, fsync, rename), read
 * back with O_NOFOLLOW and parsed again; its expiry is worked out from
 * fetched and the body's max_age, never stored.
 */
#include "config.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "event.h"
#include "io.h"
#include "log.h"
#include "sts.h"
#include "sts_policy.h"
#include "util.h"

#ifdef STS_TEST_TXT
/* tests/unit/test_sts.c answers the TXT queries itself. */
struct dns_req	*sts_test_txt_lookup(struct dns *, const char *, dns_txt_cb,
		    void *);
void		 sts_test_dns_cancel(struct dns_req *);
#define dns_txt_lookup	sts_test_txt_lookup
#define dns_cancel	sts_test_dns_cancel
#endif

#define STS_TIMEOUT_MS		30000
#define STS_RECHECK_MS		60000	/* TXT re-read for a policy in memory */
#define STS_HEAD_LINE_MAX	8192
#define STS_FILE_MAGIC		"mxrelay-sts 1"
#define STS_FILE_HEAD_MAX	256
#define STS_DOMAIN_MAX		253
#define STS_FETCH_MAX		16	/* fetches in flight; the others wait */

#define FAIL_FETCH	"sts-policy-fetch-error"
#define FAIL_INVALID	"sts-policy-invalid"
#define FAIL_WEBPKI	"sts-webpki-invalid"

struct sts_req {
	TAILQ_ENTRY(sts_req)	 link;
	struct sts_entry	*e;
	sts_cb			 cb;		/* NULL: cancelled while being answered */
	void			*arg;
	bool			 detached;	/* on an answering list, not e's */
};
TAILQ_HEAD(sts_reqs, sts_req);

enum fetch_state {
	F_TXT,
	F_QUEUED,		/* waiting for a fetch slot */
	F_ADDR,
	F_CONNECT,
	F_TLS,
	F_STATUS,
	F_HEAD,
	F_BODY,
};

struct sts_job {
	struct sts_entry	*e;
	TAILQ_ENTRY(sts_job)	 qlink;		/* s->fetchq while F_QUEUED */
	bool			 slot;		/* holds one of STS_FETCH_MAX */
	enum fetch_state	 state;
	struct dns_req		*dreq;
	struct ev_timer		 deadline;
	char			 id[STS_ID_MAX + 1];
	char			*host;		/* mta-sts.DOMAIN */
	struct sockaddr_storage	*addrs;
	size_t			 naddrs, next;
	struct io		*io;
	struct sts_http		 http;
	struct sts_chunked	 chunked;
	char			*body;		/* STS_BODY_MAX bytes */
	size_t			 len;
};

struct sts_entry {
	LIST_ENTRY(sts_entry)	 link;
	struct sts		*s;
	char			*domain;
	bool			 have;		/* pol holds a policy */
	bool			 disk_tried;
	struct sts_policy	 pol;
	uint64_t		 checked;	/* ev_now() of the last TXT check; 0 never */
	struct sts_reqs		 waiters;
	struct sts_job		*job;
	struct ev_timer		 answer;	/* answer the waiters from the loop */
};

struct sts {
	struct ev_loop		*loop;
	struct dns		*dns;
	SSL_CTX			*ctx;
	unsigned		 port;
	unsigned		 timeout_ms;
	int			 dirfd;		/* -1: memory only (or not yet) */
	char			*cache_dir;	/* opened at first use; NULL: none */
	LIST_HEAD(, sts_entry)	 entries;
	unsigned		 answering;	/* nested entry_answer() calls */
	unsigned		 nfetch;	/* jobs holding a fetch slot */
	TAILQ_HEAD(, sts_job)	 fetchq;	/* jobs waiting for one */
	bool			 freeing;
	bool			 dead;		/* sts_free() called while answering */
};

static bool	 domain_ok(const char *);
static int	 cache_dir_open(const char *);
static void	 cache_load(struct sts_entry *);
static int	 cache_field(const char **, const char *, const char *,
		    const char *, char *, size_t);
static int	 cache_parse(const char *, size_t, struct sts_policy *);
static void	 cache_save(struct sts_entry *, const char *, size_t);
static struct sts_entry *entry_get(struct sts *, const char *);
static void	 entry_free(struct sts_entry *);
static bool	 entry_valid(const struct sts_entry *);
static bool	 refresh_due(const struct sts_entry *);
static void	 entry_answer(struct sts_entry *, const char *, const char *);
static void	 on_answer(void *);
static void	 job_start(struct sts_entry *);
static void	 job_free(struct sts_job *);
static void	 job_fail(struct sts_job *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 job_done(struct sts_job *);
static void	 on_deadline(void *);
static void	 on_txt(void *, enum dns_status, const char *const *, size_t,
		    const char *);
static void	 on_addr(void *, enum dns_status,
		    const struct sockaddr_storage *, size_t, const char *);
static void	 job_connect(struct sts_job *);
static void	 fetch_begin(struct sts_job *);
static bool	 tls_cert_failed(struct sts_job *);
static void	 on_io(struct io *, enum io_event, void *);
static void	 read_head(struct sts_job *);
static void	 head_done(struct sts_job *);
static int	 read_body(struct sts_job *);
static void	 real_free(struct sts *);

/* A cache file name: [a-z0-9.-], no leading dot, no "..". */
static bool
domain_ok(const char *d)
{
	size_t n = strlen(d);

	if (n == 0 || n > STS_DOMAIN_MAX || d[0] == '.' ||
	    strstr(d, "..") != NULL)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((d[i] >= 'a' && d[i] <= 'z') ||
		    (d[i] >= '0' && d[i] <= '9') || d[i] == '.' || d[i] == '-'))
			return false;
	return true;
}

/* The cache folder, made if missing; -1 when it must not be used. */
static int
cache_dir_open(const char *dir)
{
	struct stat st;
	int fd;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_warn("mta-sts: cache %s", dir);
		return -1;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		log_warn("mta-sts: cache %s (a symbolic link?)", dir);
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid()) {
		log_warnx("mta-sts: cache %s: not a folder of uid %u; "
		    "policies are kept in memory only", dir,
		    (unsigned)geteuid());
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The cache folder's descriptor, opened (made) at the first use, from the
 * loop: a daemon makes its engines as root and then becomes the spool's
 * owner, who must own the folder.  One try; then memory only.
 */
static int
cache_fd(struct sts *s)
{
	if (s->dirfd == -1 && s->cache_dir != NULL) {
		s->dirfd = cache_dir_open(s->cache_dir);
		free(s->cache_dir);
		s->cache_dir = NULL;
	}
	return s->dirfd;
}

/*
 * One header line of a cache file: "KEY VALUE\n" at *pp, VALUE of 1 to
 * max of the characters in set, copied to val.  *pp moves past it.
 */
static int
cache_field(const char **pp, const char *end, const char *key,
    const char *set, char *val, size_t max)
{
	const char *p = *pp, *nl;
	size_t klen = strlen(key), vlen;

	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL || (size_t)(nl - p) <= klen + 1 ||
	    memcmp(p, key, klen) != 0 || p[klen] != ' ')
		return -1;
	p += klen + 1;
	vlen = (size_t)(nl - p);
	if (vlen > max)
		return -1;
	for (size_t i = 0; i < vlen; i++)
		if (p[i] == '\0' || strchr(set, p[i]) == NULL)
			return -1;
	memcpy(val, p, vlen);
	val[vlen] = '\0';
	*pp = nl + 1;
	return 0;
}

/* The header and body of a cache file into p (fetched and id too). */
static int
cache_parse(const char *buf, size_t len, struct sts_policy *p)
{
	static const char digits[] = "0123456789";
	static const char alnum[] = "0123456789abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	const char *q = buf, *end = buf + len;
	char fetched[24], id[STS_ID_MAX + 1], length[8];
	size_t mlen = strlen(STS_FILE_MAGIC), blen;

	if (len < mlen + 1 || memcmp(q, STS_FILE_MAGIC "\n", mlen + 1) != 0)
		return -1;
	q += mlen + 1;
	if (cache_field(&q, end, "fetched", digits, fetched, 12) == -1 ||
	    cache_field(&q, end, "id", alnum, id, STS_ID_MAX) == -1 ||
	    cache_field(&q, end, "length", digits, length, 5) == -1)
		return -1;
	blen = (size_t)strtoul(length, NULL, 10);
	if (blen > STS_BODY_MAX || blen != (size_t)(end - q))
		return -1;
	memset(p, 0, sizeof(*p));
	if (sts_policy_parse(q, blen, p, NULL, 0) == -1)
		return -1;
	p->fetched = strtoll(fetched, NULL, 10);
	memcpy(p->id, id, sizeof(id));
	return 0;
}

static void
cache_load(struct sts_entry *e)
{
	struct sts *s = e->s;
	struct sts_policy p;
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	time_t now = time(NULL);
	int fd;

	e->disk_tried = true;
	if (cache_fd(s) == -1 || !domain_ok(e->domain))
		return;
	fd = openat(s->dirfd, e->domain, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		if (errno != ENOENT)
			log_warn("mta-sts: %s: cache", e->domain);
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > STS_BODY_MAX + STS_FILE_HEAD_MAX)
		goto bad;
	/* One byte more than the file, to notice it growing. */
	buf = xmalloc((size_t)st.st_size + 1);
	for (;;) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size + 1 - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 || (size_t)(got += (size_t)(n > 0 ? n : 0)) >
		    (size_t)st.st_size)
			goto bad;
		if (n == 0)
			break;
	}
	if (cache_parse(buf, got, &p) == -1)
		goto bad;
	if (p.fetched > (int64_t)now + 3600) {
		sts_policy_clear(&p);
		goto bad;
	}
	if (p.fetched + (int64_t)p.max_age <= (int64_t)now) {
		log_debug("mta-sts: %s: cached policy expired", e->domain);
		sts_policy_clear(&p);
		unlinkat(s->dirfd, e->domain, 0);
		goto done;
	}
	e->pol = p;
	e->have = true;
	log_info("mta-sts: %s: policy id=%s from cache", e->domain, p.id);
	goto done;
bad:
	log_warnx("mta-sts: %s: cache file unusable, removed", e->domain);
	unlinkat(s->dirfd, e->domain, 0);
done:
	free(buf);
	close(fd);
}

static void
cache_save(struct sts_entry *e, const char *body, size_t len)
{
	struct sts *s = e->s;
	char tmp[STS_DOMAIN_MAX + 64], *head;
	size_t hlen, off = 0;
	int fd;

	if (cache_fd(s) == -1 || !domain_ok(e->domain))
		return;
	snprintf(tmp, sizeof(tmp), ".%s.%ld.tmp", e->domain, (long)getpid());
	unlinkat(s->dirfd, tmp, 0);
	fd = openat(s->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1) {
		log_warn("mta-sts: %s: cache", e->domain);
		return;
	}
	head = xasprintf("%s\nfetched %" PRId64 "\nid %s\nlength %zu\n",
	    STS_FILE_MAGIC, e->pol.fetched, e->pol.id, len);
	hlen = strlen(head);
	while (off < hlen + len) {
		const char *p = off < hlen ? head + off : body + (off - hlen);
		size_t n = off < hlen ? hlen - off : hlen + len - off;
		ssize_t w = write(fd, p, n);

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(s->dirfd, tmp, s->dirfd, e->domain) == -1)
		goto fail;
	free(head);
	return;
fail:
	log_warn("mta-sts: %s: cache not written", e->domain);
	if (fd != -1)
		close(fd);
	unlinkat(s->dirfd, tmp, 0);
	free(head);
}

struct sts *
sts_new(struct ev_loop *loop, struct dns *dns, const struct sts_conf *c,
    char *err, size_t errlen)
{
	struct sts *s;

	if (c->ctx == NULL) {
		util_seterr(err, errlen, "mta-sts: no TLS context");
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->dns = dns;
	s->ctx = c->ctx;
	s->port = c->port != 0 ? c->port : 443;
	s->timeout_ms = c->timeout_ms != 0 ? c->timeout_ms : STS_TIMEOUT_MS;
	s->dirfd = -1;
	if (c->cache_dir != NULL)
		s->cache_dir = xstrdup(c->cache_dir);
	LIST_INIT(&s->entries);
	TAILQ_INIT(&s->fetchq);
	return s;
}

static void
real_free(struct sts *s)
{
	struct sts_entry *e;

	s->freeing = true;
	while ((e = LIST_FIRST(&s->entries)) != NULL)
		entry_free(e);
	if (s->dirfd != -1)
		close(s->dirfd);
	free(s->cache_dir);
	free(s);
}

void
sts_free(struct sts *s)
{
	if (s == NULL)
		return;
	if (s->answering > 0) {
		s->dead = true;
		return;
	}
	real_free(s);
}

static struct sts_entry *
entry_get(struct sts *s, const char *domain)
{
	struct sts_entry *e;

	LIST_FOREACH(e, &s->entries, link)
		if (strcmp(e->domain, domain) == 0)
			return e;
	e = xcalloc(1, sizeof(*e));
	e->s = s;
	e->domain = xstrdup(domain);
	TAILQ_INIT(&e->waiters);
	ev_timer_init(&e->answer, on_answer, e);
	LIST_INSERT_HEAD(&s->entries, e, link);
	return e;
}

static void
entry_free(struct sts_entry *e)
{
	struct sts_req *r;

	if (e->job != NULL)
		job_free(e->job);
	while ((r = TAILQ_FIRST(&e->waiters)) != NULL) {
		TAILQ_REMOVE(&e->waiters, r, link);
		free(r);
	}
	ev_timer_del(e->s->loop, &e->answer);
	LIST_REMOVE(e, link);
	sts_policy_clear(&e->pol);
	free(e->domain);
	free(e);
}

/* A policy that has not expired (§5.1: it applies until then). */
static bool
entry_valid(const struct sts_entry *e)
{
	return e->have && e->pol.fetched + (int64_t)e->pol.max_age >
	    (int64_t)time(NULL);
}

/*
 * Less than a quarter of the policy's max_age left: fetched again even
 * with the same id, so that a policy in use does not lapse (§3.3, §5.1).
 * A failure leaves the cached policy in force until it expires.
 */
static bool
refresh_due(const struct sts_entry *e)
{
	return e->pol.fetched + (int64_t)e->pol.max_age - (int64_t)time(NULL) <
	    (int64_t)e->pol.max_age / 4;
}

/* Call the waiters' callbacks; each request is freed after its call. */
static void
entry_answer(struct sts_entry *e, const char *fail, const char *why)
{
	struct sts *s = e->s;
	struct sts_reqs list;
	struct sts_req *r;

	TAILQ_INIT(&list);
	TAILQ_CONCAT(&list, &e->waiters, link);
	TAILQ_FOREACH(r, &list, link)
		r->detached = true;
	s->answering++;
	while ((r = TAILQ_FIRST(&list)) != NULL) {
		TAILQ_REMOVE(&list, r, link);
		if (r->cb != NULL && !s->dead)
			r->cb(r->arg, e->have ? &e->pol : NULL, fail, why);
		free(r);
	}
	if (--s->answering == 0 && s->dead) {
		real_free(s);
		return;
	}
	/* Only domains with a policy are remembered. */
	if (!s->dead && !e->have && TAILQ_EMPTY(&e->waiters) &&
	    e->job == NULL && !ev_timer_pending(&e->answer))
		entry_free(e);
}

static void
on_answer(void *arg)
{
	struct sts_entry *e = arg;

	entry_answer(e, NULL, NULL);
}

struct sts_req *
sts_policy_get(struct sts *s, const char *domain, sts_cb cb, void *arg)
{
	struct sts_entry *e;
	struct sts_req *r = xcalloc(1, sizeof(*r));
	char *lower = xstrdup(domain);

	/* One entry and one cache file per domain, however it is spelt. */
	for (char *c = lower; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	e = entry_get(s, lower);
	free(lower);

	r->e = e;
	r->cb = cb;
	r->arg = arg;
	TAILQ_INSERT_TAIL(&e->waiters, r, link);
	if (e->job != NULL || ev_timer_pending(&e->answer))
		return r;
	if (e->have && !entry_valid(e)) {
		sts_policy_clear(&e->pol);
		e->have = false;
	}
	if (!e->have && !e->disk_tried)
		cache_load(e);
	if (e->have && e->checked != 0 &&
	    ev_now(s->loop) - e->checked < STS_RECHECK_MS)
		ev_timer_add(s->loop, &e->answer, 0);
	else
		job_start(e);
	return r;
}

void
sts_cancel(struct sts_req *r)
{
	if (r == NULL)
		return;
	if (r->detached) {
		r->cb = NULL;
		return;
	}
	TAILQ_REMOVE(&r->e->waiters, r, link);
	free(r);
}

static void
job_start(struct sts_entry *e)
{
	struct sts *s = e->s;
	struct sts_job *j = xcalloc(1, sizeof(*j));
	char *name;

	j->e = e;
	e->job = j;
	j->host = xasprintf("mta-sts.%s", e->domain);
	ev_timer_init(&j->deadline, on_deadline, j);
	ev_timer_add(s->loop, &j->deadline, s->timeout_ms);
	j->state = F_TXT;
	name = xasprintf("_mta-sts.%s", e->domain);
	j->dreq = dns_txt_lookup(s->dns, name, on_txt, j);
	free(name);
}

static void
job_free(struct sts_job *j)
{
	struct sts *s = j->e->s;
	struct sts_job *next;

	if (j->state == F_QUEUED)
		TAILQ_REMOVE(&s->fetchq, j, qlink);
	if (j->slot) {
		s->nfetch--;
		/* The slot goes to the first job waiting (from the loop). */
		if (!s->freeing && (next = TAILQ_FIRST(&s->fetchq)) != NULL) {
			TAILQ_REMOVE(&s->fetchq, next, qlink);
			fetch_begin(next);
		}
	}
	if (j->dreq != NULL)
		dns_cancel(j->dreq);
	if (j->io != NULL)
		io_free(j->io);
	ev_timer_del(j->e->s->loop, &j->deadline);
	j->e->job = NULL;
	free(j->addrs);
	free(j->body);
	free(j->host);
	free(j);
}

/* The fetch failed: the cached policy (if any) still applies. */
static void
job_fail(struct sts_job *j, const char *type, const char *fmt, ...)
{
	struct sts_entry *e = j->e;
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warnx("mta-sts: %s: policy fetch failed: %s (%s)", e->domain, why,
	    type);
	job_free(j);
	entry_answer(e, type, why);
}

static void
on_deadline(void *arg)
{
	struct sts_job *j = arg;

	if (j->state == F_TXT) {
		/* The discovery did not end: as without MTA-STS (§5.1). */
		struct sts_entry *e = j->e;

		job_free(j);
		entry_answer(e, NULL, NULL);
		return;
	}
	job_fail(j, FAIL_FETCH, "timed out");
}

static void
on_txt(void *arg, enum dns_status st, const char *const *txt, size_t n,
    const char *errtext)
{
	struct sts_job *j = arg;
	struct sts_entry *e = j->e;
	struct sts *s = e->s;
	size_t nsts = 0;
	char id[STS_ID_MAX + 1];
	bool ok = false;

	j->dreq = NULL;
	if (st == DNS_OK) {
		/* §3.1: the records that start with v=STSv1; exactly one */
		for (size_t i = 0; i < n; i++) {
			if (strncmp(txt[i], "v=STSv1", 7) != 0)
				continue;
			if (nsts++ == 0)
				ok = sts_txt_parse(txt[i], id) == 0;
		}
	}
	if (st != DNS_TEMPFAIL)
		e->checked = ev_now(s->loop);
	if (!ok || nsts != 1) {
		log_debug("mta-sts: %s: no usable TXT record (%s%s%s)",
		    e->domain, dns_status_to_text(st), errtext != NULL ? ": " :
		    "", errtext != NULL ? errtext : "");
		job_free(j);
		if (e->have && !entry_valid(e)) {
			sts_policy_clear(&e->pol);
			e->have = false;
		}
		entry_answer(e, NULL, NULL);
		return;
	}
	if (entry_valid(e) && strcmp(e->pol.id, id) == 0 && !refresh_due(e)) {
		job_free(j);
		entry_answer(e, NULL, NULL);
		return;
	}
	memcpy(j->id, id, sizeof(id));
	if (s->nfetch >= STS_FETCH_MAX) {
		/*
		 * No deadline while it waits: a few slow policy hosts must
		 * not make other domains' fetches fail (and their mail go
		 * as without a policy); each fetch still ends in timeout_ms.
		 */
		ev_timer_del(s->loop, &j->deadline);
		j->state = F_QUEUED;
		TAILQ_INSERT_TAIL(&s->fetchq, j, qlink);
		return;
	}
	fetch_begin(j);
}

/* The fetch proper, with a slot: the addresses of mta-sts.DOMAIN. */
static void
fetch_begin(struct sts_job *j)
{
	struct sts *s = j->e->s;

	j->slot = true;
	s->nfetch++;
	if (j->state == F_QUEUED)
		ev_timer_add(s->loop, &j->deadline, s->timeout_ms);
	j->state = F_ADDR;
	j->dreq = dns_addr_lookup(s->dns, j->host, on_addr, j);
}

static void
on_addr(void *arg, enum dns_status st, const struct sockaddr_storage *a,
    size_t n, const char *errtext)
{
	struct sts_job *j = arg;

	j->dreq = NULL;
	if (st != DNS_OK || n == 0) {
		job_fail(j, FAIL_FETCH, "%s: %s", j->host, errtext != NULL ?
		    errtext : dns_status_to_text(st));
		return;
	}
	j->addrs = xreallocarray(NULL, n, sizeof(*a));
	memcpy(j->addrs, a, n * sizeof(*a));
	j->naddrs = n;
	j->next = 0;
	job_connect(j);
}

/* Connect to the next address; a fetch error when none is left. */
static void
job_connect(struct sts_job *j)
{
	struct sts *s = j->e->s;

	if (j->io != NULL) {
		io_free(j->io);
		j->io = NULL;
	}
	while (j->next < j->naddrs) {
		struct sockaddr_storage ss = j->addrs[j->next++];
		socklen_t sl;

		if (ss.ss_family == AF_INET6) {
			((struct sockaddr_in6 *)&ss)->sin6_port =
			    htons((uint16_t)s->port);
			sl = sizeof(struct sockaddr_in6);
		} else {
			((struct sockaddr_in *)&ss)->sin_port =
			    htons((uint16_t)s->port);
			sl = sizeof(struct sockaddr_in);
		}
		j->io = io_new(s->loop, on_io, j);
		io_set_timeout(j->io, s->timeout_ms);
		io_set_line_max(j->io, STS_HEAD_LINE_MAX);
		j->state = F_CONNECT;
		if (io_connect(j->io, (struct sockaddr *)&ss, sl) == 0)
			return;
		io_free(j->io);
		j->io = NULL;
	}
	job_fail(j, FAIL_FETCH, "%s: cannot connect", j->host);
}

/* The handshake failed on the certificate (RFC 8460 sts-webpki-invalid). */
static bool
tls_cert_failed(struct sts_job *j)
{
	struct io_tls_peer p;

	if (io_tls_verify_error(j->io) > 0)
		return true;
	return io_tls_peer(j->io, j->host, &p) == 0 && p.have_cert &&
	    !p.chain_ok;
}

static void
on_io(struct io *io, enum io_event ev, void *arg)
{
	struct sts_job *j = arg;

	switch (ev) {
	case IO_CONNECTED:
		j->state = F_TLS;
		if (io_start_tls(io, j->e->s->ctx, true, j->host,
		    j->host) == -1)
			job_fail(j, FAIL_FETCH, "%s: TLS: %s", j->host,
			    io_error(io));
		break;
	case IO_TLS_DONE:
		j->state = F_STATUS;
		sts_http_init(&j->http);
		io_printf(io, "GET /.well-known/mta-sts.txt HTTP/1.1\r\n"
		    "Host: %s\r\nUser-Agent: mxrelay/%s\r\n"
		    "Accept: text/plain\r\nConnection: close\r\n\r\n",
		    j->host, PACKAGE_VERSION);
		break;
	case IO_DATAIN:
		if (j->state == F_BODY)
			(void)read_body(j);
		else if (j->state == F_STATUS || j->state == F_HEAD)
			read_head(j);
		break;
	case IO_LOWAT:
		break;
	case IO_TIMEOUT:
		job_fail(j, FAIL_FETCH, "%s: timed out", j->host);
		break;
	case IO_CLOSED:
		/* What came with the end first. */
		if (j->state == F_BODY && read_body(j) == -1)
			break;
		if (j->state == F_BODY && !j->http.chunked &&
		    j->http.length == -1)
			job_done(j);
		else
			job_fail(j, FAIL_FETCH, "%s: connection closed "
			    "early", j->host);
		break;
	case IO_ERROR:
		if (j->state == F_CONNECT) {
			log_debug("mta-sts: %s: %s", j->host, io_error(io));
			job_connect(j);
		} else if (j->state == F_TLS && tls_cert_failed(j))
			job_fail(j, FAIL_WEBPKI, "%s: certificate: %s",
			    j->host, io_tls_verify_text(io));
		else
			job_fail(j, FAIL_FETCH, "%s: %s", j->host,
			    io_error(io));
		break;
	}
}

static void
read_head(struct sts_job *j)
{
	const char *l;
	size_t len;
	bool too_long;
	char err[128];

	while (j->state != F_BODY &&
	    (l = io_getline(j->io, &len, &too_long)) != NULL) {
		if (too_long) {
			job_fail(j, FAIL_FETCH, "a response line too long");
			return;
		}
		if (j->state == F_STATUS) {
			int st;

			if (sts_http_status(&j->http, l, len) == -1) {
				job_fail(j, FAIL_FETCH, "not an HTTP/1 "
				    "response");
				return;
			}
			st = j->http.status;
			if (st >= 300 && st <= 399) {
				job_fail(j, FAIL_FETCH, "redirect (HTTP 3xx) "
				    "refused: status %d", st);
				return;
			}
			if (st != 200) {
				job_fail(j, FAIL_FETCH, "HTTP status %d", st);
				return;
			}
			j->state = F_HEAD;
		} else if (len == 0) {
			head_done(j);
			return;
		} else if (sts_http_header(&j->http, l, len, err,
		    sizeof(err)) == -1) {
			job_fail(j, FAIL_FETCH, "%s", err);
			return;
		}
	}
}

static void
head_done(struct sts_job *j)
{
	if (!j->http.have_type || !j->http.type_ok) {
		job_fail(j, FAIL_FETCH, "Content-Type is not text/plain");
		return;
	}
	if (!j->http.chunked && j->http.length > STS_BODY_MAX) {
		job_fail(j, FAIL_FETCH, "policy over 64 KiB "
		    "(Content-Length %" PRId64 ")", j->http.length);
		return;
	}
	j->state = F_BODY;
	j->body = xmalloc(STS_BODY_MAX);
	sts_chunked_init(&j->chunked);
	io_set_raw(j->io, true);
	if (!j->http.chunked && j->http.length == 0)
		job_done(j);
	else
		(void)read_body(j);
}

/* The body bytes buffered; -1 when the job ended (j is freed). */
static int
read_body(struct sts_job *j)
{
	const char *in;
	size_t n, used;

	in = io_peek(j->io, &n);
	if (n == 0)
		return 0;
	if (j->http.chunked) {
		switch (sts_chunked_decode(&j->chunked, in, n, &used, j->body,
		    &j->len, STS_BODY_MAX)) {
		case STS_CHUNKED_MORE:
			io_consume(j->io, used);
			return 0;
		case STS_CHUNKED_DONE:
			io_consume(j->io, used);
			job_done(j);
			return -1;
		case STS_CHUNKED_FULL:
			job_fail(j, FAIL_FETCH, "policy over 64 KiB");
			return -1;
		case STS_CHUNKED_ERROR:
			break;
		}
		job_fail(j, FAIL_FETCH, "bad chunked coding");
		return -1;
	}
	if (j->http.length != -1 &&
	    n > (size_t)j->http.length - j->len)
		n = (size_t)j->http.length - j->len;
	if (n > STS_BODY_MAX - j->len) {
		job_fail(j, FAIL_FETCH, "policy over 64 KiB");
		return -1;
	}
	memcpy(j->body + j->len, in, n);
	j->len += n;
	io_consume(j->io, n);
	if (j->http.length != -1 && j->len == (size_t)j->http.length) {
		job_done(j);
		return -1;
	}
	return 0;
}

/* A whole body: parsed, kept, saved, answered. */
static void
job_done(struct sts_job *j)
{
	struct sts_entry *e = j->e;
	struct sts_policy p;
	char err[128];

	memset(&p, 0, sizeof(p));
	if (sts_policy_parse(j->body != NULL ? j->body : "", j->len, &p, err,
	    sizeof(err)) == -1) {
		job_fail(j, FAIL_INVALID, "policy invalid: %s", err);
		return;
	}
	memcpy(p.id, j->id, sizeof(p.id));
	p.fetched = (int64_t)time(NULL);
	sts_policy_clear(&e->pol);
	e->pol = p;
	e->have = true;
	log_info("mta-sts: %s: policy id=%s mode=%s max_age=%" PRIu32
	    " fetched", e->domain, p.id, sts_mode_to_text(p.mode),
	    p.max_age);
	cache_save(e, j->body, j->len);
	job_free(j);
	entry_answer(e, NULL, NULL);
}
