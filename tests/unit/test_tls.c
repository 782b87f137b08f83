/*
 * Unit tests for src/tls.c and the TLS side of src/io.c.  Certificates are
 * made at test time by tests/unit/tls-certs.sh (openssl CLI) in a mkdtemp
 * directory: a CA, "mx.test" signed by it, "other.test" signed by it, a
 * self-signed "mx.test" and a stray key.  Client and server are two io
 * objects on one loop, over a socketpair(): verified with the right CA and
 * name; wrong name or self-signed not verified (and refused under verify);
 * SNI sent for names only; the version reported; STARTTLS with a reply
 * still queued; megabytes through TLS; context errors carry OpenSSL text.
 * DANE (io_start_tls_dane): DANE-EE records of each selector and matching
 * type match whatever the name, a wrong digest does not (error 65), DANE-TA
 * matches the CA the server sends and checks the names, PKIX-EE and
 * malformed records are unusable (plain TLS then).
 */
#include "config.h"

#include <sys/socket.h>

#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "event.h"
#include "io.h"
#include "tls.h"
#include "util.h"
#include "testutil.h"

#ifndef TOP_SRCDIR
#define TOP_SRCDIR "."
#endif

static char	certdir[256];
static char	sni_seen[256];
static int	sni_calls;

struct side {
	struct io	*io;
	bool		 done, error, closed;
	int		 nlines;
	size_t		 bytes;
	char		 first[128];
};

struct pair {
	struct ev_loop	*loop;
	struct side	 c, s;
};

static const char *
path(const char *name)
{
	static char buf[4][512];
	static int n;
	int r;

	n = (n + 1) % 4;
	r = snprintf(buf[n], sizeof(buf[n]), "%s/%s", certdir, name);
	assert_true(r > 0 && (size_t)r < sizeof(buf[n]));
	return buf[n];
}

static void
on_side(struct io *io, enum io_event ev, void *arg)
{
	struct side *s = arg;
	const char *l;
	size_t len;
	bool tl;

	(void)io;
	switch (ev) {
	case IO_TLS_DONE:
		s->done = true;
		break;
	case IO_DATAIN:
		while ((l = io_getline(io, &len, &tl)) != NULL) {
			assert_false(tl);
			if (s->nlines++ == 0)
				snprintf(s->first, sizeof(s->first), "%s", l);
			s->bytes += len + 2;
		}
		break;
	case IO_CLOSED:
		s->closed = true;
		break;
	case IO_ERROR:
	case IO_TIMEOUT:
		s->error = true;
		break;
	default:
		break;
	}
}

static int
on_servername(SSL *ssl, int *al, void *arg)
{
	const char *n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	(void)al;
	(void)arg;
	sni_calls++;
	snprintf(sni_seen, sizeof(sni_seen), "%s", n != NULL ? n : "");
	return SSL_TLSEXT_ERR_OK;
}

static void
pair_open(struct pair *p)
{
	int sv[2];

	memset(p, 0, sizeof(*p));
	p->loop = ev_loop_new();
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p->c.io = io_new(p->loop, on_side, &p->c);
	p->s.io = io_new(p->loop, on_side, &p->s);
	io_attach(p->c.io, sv[0]);
	io_attach(p->s.io, sv[1]);
	sni_seen[0] = '\0';
	sni_calls = 0;
}

static void
pair_close(struct pair *p)
{
	io_free(p->c.io);
	io_free(p->s.io);
	ev_loop_free(p->loop);
}

static void
pair_run(struct pair *p, bool (*until)(struct pair *))
{
	uint64_t end = util_now_ms() + 10000;

	while (!until(p) && util_now_ms() < end)
		assert_int_equal(ev_run_once(p->loop, 50), 0);
}

static bool
hs_over(struct pair *p)
{
	return (p->c.done || p->c.error) && (p->s.done || p->s.error ||
	    p->s.closed);
}

/* Handshake with a server using cert/key; the client context as given. */
static void
handshake(struct pair *p, SSL_CTX *cctx, const char *cert, const char *key,
    const char *sni, const char *host)
{
	char err[256];
	SSL_CTX *sctx;

	sctx = tls_server_ctx_new(path(cert), path(key), err, sizeof(err));
	assert_non_null(sctx);
	SSL_CTX_set_tlsext_servername_callback(sctx, on_servername);
	pair_open(p);
	assert_int_equal(io_start_tls(p->s.io, sctx, false, NULL, NULL), 0);
	assert_int_equal(io_start_tls(p->c.io, cctx, true, sni, host), 0);
	assert_false(io_tls_active(p->c.io));
	assert_null(io_tls_version(p->c.io));
	pair_run(p, hs_over);
	tls_ctx_free(sctx);	/* SSL objects keep their own reference */
}

static bool
got_lines(struct pair *p)
{
	return p->s.nlines >= 1 && p->c.nlines >= 20000;
}

static void
test_verified(void **state)
{
	struct pair p;
	char err[256], line[101];
	SSL_CTX *cctx;

	(void)state;
	cctx = tls_client_ctx_new(path("ca.crt"), true, err, sizeof(err));
	assert_non_null(cctx);
	handshake(&p, cctx, "server.crt", "server.key", "mx.test", "mx.test");
	assert_true(p.c.done);
	assert_true(p.s.done);
	assert_true(io_tls_active(p.c.io));
	assert_true(io_tls_verified(p.c.io));
	assert_string_equal(io_tls_verify_text(p.c.io), "ok");
	assert_int_equal(io_tls_verify_error(p.c.io), X509_V_OK);
	assert_int_equal(io_tls_dane_usable(p.c.io), -1);	/* no DANE */
	assert_int_equal(io_tls_dane_depth(p.c.io), -1);
	assert_string_equal(io_tls_version(p.c.io), "TLSv1.3");
	assert_string_equal(io_tls_version(p.s.io), "TLSv1.3");
	assert_int_equal(sni_calls, 1);
	assert_string_equal(sni_seen, "mx.test");

	/* Data both ways; 2 MB from the server exercises WANT_* and retries. */
	assert_int_equal(io_printf(p.c.io, "EHLO client.test\r\n"), 0);
	memset(line, 'q', 98);
	line[98] = '\r';
	line[99] = '\n';
	line[100] = '\0';
	for (int i = 0; i < 20000; i++)
		assert_int_equal(io_write(p.s.io, line, 100), 0);
	pair_run(&p, got_lines);
	assert_string_equal(p.s.first, "EHLO client.test");
	assert_int_equal(p.c.nlines, 20000);
	assert_int_equal(p.c.bytes, 2000000);
	assert_false(p.c.error);
	assert_false(p.s.error);
	pair_close(&p);
	tls_ctx_free(cctx);
}

static void
test_wrong_name(void **state)
{
	struct pair p;
	char err[256];
	SSL_CTX *cctx;

	(void)state;
	/* Not enforced: the handshake succeeds, the result says why not. */
	cctx = tls_client_ctx_new(path("ca.crt"), false, err, sizeof(err));
	assert_non_null(cctx);
	handshake(&p, cctx, "server.crt", "server.key", "mx.test",
	    "other.test");
	assert_true(p.c.done);
	assert_false(io_tls_verified(p.c.io));
	assert_non_null(strstr(io_tls_verify_text(p.c.io), "mismatch"));
	assert_int_equal(io_tls_verify_error(p.c.io),
	    X509_V_ERR_HOSTNAME_MISMATCH);
	pair_close(&p);

	/* A CA-signed certificate for another name. */
	handshake(&p, cctx, "wrong.crt", "wrong.key", "mx.test", "mx.test");
	assert_true(p.c.done);
	assert_false(io_tls_verified(p.c.io));
	pair_close(&p);
	/* Without a host to check, that chain verifies. */
	handshake(&p, cctx, "wrong.crt", "wrong.key", NULL, NULL);
	assert_true(p.c.done);
	assert_true(io_tls_verified(p.c.io));
	assert_string_equal(sni_seen, "");
	pair_close(&p);
	tls_ctx_free(cctx);

	/* Enforced: the client refuses. */
	cctx = tls_client_ctx_new(path("ca.crt"), true, err, sizeof(err));
	assert_non_null(cctx);
	handshake(&p, cctx, "server.crt", "server.key", "mx.test",
	    "other.test");
	assert_false(p.c.done);
	assert_true(p.c.error);
	assert_non_null(strstr(io_error(p.c.io), "certificate verify failed"));
	assert_non_null(strstr(io_error(p.c.io), "mismatch"));
	assert_false(io_tls_verified(p.c.io));
	pair_close(&p);
	tls_ctx_free(cctx);
}

static void
test_self_signed(void **state)
{
	struct pair p;
	char err[256];
	SSL_CTX *cctx;

	(void)state;
	cctx = tls_client_ctx_new(path("ca.crt"), false, err, sizeof(err));
	assert_non_null(cctx);
	handshake(&p, cctx, "self.crt", "self.key", "mx.test", "mx.test");
	assert_true(p.c.done);
	assert_false(io_tls_verified(p.c.io));
	assert_non_null(strstr(io_tls_verify_text(p.c.io), "self-signed"));
	pair_close(&p);
	tls_ctx_free(cctx);

	cctx = tls_client_ctx_new(path("ca.crt"), true, err, sizeof(err));
	assert_non_null(cctx);
	handshake(&p, cctx, "self.crt", "self.key", "mx.test", "mx.test");
	assert_true(p.c.error);
	assert_false(p.c.done);
	assert_non_null(strstr(io_error(p.c.io), "self-signed"));
	pair_close(&p);
	tls_ctx_free(cctx);
}

static void
test_sni_ip(void **state)
{
	struct pair p;
	char err[256];
	SSL_CTX *cctx;

	(void)state;
	cctx = tls_client_ctx_new(path("ca.crt"), false, err, sizeof(err));
	assert_non_null(cctx);
	handshake(&p, cctx, "server.crt", "server.key", "192.0.2.1", NULL);
	assert_true(p.c.done);
	assert_int_equal(sni_calls, 1);
	assert_string_equal(sni_seen, "");	/* no SNI for an address */
	pair_close(&p);
	handshake(&p, cctx, "server.crt", "server.key", "2001:db8::1", NULL);
	assert_true(p.c.done);
	assert_string_equal(sni_seen, "");
	pair_close(&p);
	tls_ctx_free(cctx);
}

static bool
got_greeting(struct pair *p)
{
	return p->c.nlines >= 1;
}

static bool
got_ehlo(struct pair *p)
{
	return p->s.nlines >= 1 || p->s.error || p->c.error;
}

/* STARTTLS: the "220" queued before io_start_tls goes out in clear first. */
static void
test_starttls_flush(void **state)
{
	struct pair p;
	char err[256];
	SSL_CTX *cctx, *sctx;

	(void)state;
	cctx = tls_client_ctx_new(path("ca.crt"), true, err, sizeof(err));
	sctx = tls_server_ctx_new(path("server.crt"), path("server.key"), err,
	    sizeof(err));
	assert_non_null(cctx);
	assert_non_null(sctx);
	pair_open(&p);
	assert_int_equal(io_printf(p.s.io, "220 2.0.0 Ready to start TLS\r\n"),
	    0);
	assert_int_equal(io_start_tls(p.s.io, sctx, false, NULL, NULL), 0);
	/* Queued after the start: must wait for TLS. */
	assert_int_equal(io_printf(p.s.io, "250 after\r\n"), 0);
	pair_run(&p, got_greeting);
	assert_string_equal(p.c.first, "220 2.0.0 Ready to start TLS");
	assert_int_equal(p.c.nlines, 1);
	assert_int_equal(io_pending(p.c.io), 0);
	assert_int_equal(io_start_tls(p.c.io, cctx, true, "mx.test",
	    "mx.test"), 0);
	assert_int_equal(io_printf(p.c.io, "EHLO again\r\n"), 0);
	pair_run(&p, got_ehlo);
	assert_true(p.c.done);
	assert_true(p.s.done);
	assert_true(io_tls_verified(p.c.io));
	assert_string_equal(p.s.first, "EHLO again");
	while (p.c.nlines < 2 && !p.c.error)
		assert_int_equal(ev_run_once(p.loop, 50), 0);
	assert_int_equal(p.c.nlines, 2);
	pair_close(&p);
	tls_ctx_free(cctx);
	tls_ctx_free(sctx);
}

static void
test_ctx_errors(void **state)
{
	char err[256];
	SSL_CTX *ctx;

	(void)state;
	err[0] = '\0';
	ctx = tls_server_ctx_new(path("server.crt"), path("other.key"), err,
	    sizeof(err));
	assert_null(ctx);
	assert_non_null(strstr(err, "other.key"));
	assert_non_null(strstr(err, "key values mismatch"));

	err[0] = '\0';
	ctx = tls_server_ctx_new(path("missing.crt"), path("server.key"), err,
	    sizeof(err));
	assert_null(ctx);
	assert_non_null(strstr(err, "missing.crt"));

	err[0] = '\0';
	ctx = tls_client_ctx_new(path("missing-ca.crt"), true, err,
	    sizeof(err));
	assert_null(ctx);
	assert_non_null(strstr(err, "missing-ca.crt"));

	/* The system store loads (it may be empty). */
	ctx = tls_client_ctx_new(NULL, true, err, sizeof(err));
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_PEER);
	tls_ctx_free(ctx);
	ctx = tls_client_ctx_new(NULL, false, err, sizeof(err));
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_get_verify_mode(ctx), SSL_VERIFY_NONE);
	tls_ctx_free(ctx);
}

/*
 * TLSA data (RFC 6698 §2.1) for the certificate in file name: selector 0
 * the certificate, 1 its SubjectPublicKeyInfo; mtype 0 as is, 1 SHA2-256,
 * 2 SHA2-512.  Its length.
 */
static size_t
tlsa_data(const char *name, int selector, int mtype, unsigned char *out,
    size_t outlen)
{
	unsigned char *der = NULL;
	unsigned int mdlen;
	FILE *f;
	X509 *x;
	int len;

	assert_non_null(f = fopen(path(name), "r"));
	assert_non_null(x = PEM_read_X509(f, NULL, NULL, NULL));
	fclose(f);
	len = selector == 0 ? i2d_X509(x, &der) :
	    i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
	assert_true(len > 0);
	if (mtype == 0) {
		assert_true((size_t)len <= outlen);
		memcpy(out, der, (size_t)len);
		mdlen = (unsigned int)len;
	} else {
		assert_true(outlen >= EVP_MAX_MD_SIZE);
		assert_int_equal(EVP_Digest(der, (size_t)len, out, &mdlen,
		    mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL), 1);
	}
	OPENSSL_free(der);
	X509_free(x);
	return mdlen;
}

/*
 * A DANE handshake with a server using cert/key.  The client's CA file
 * is self.crt, which signed none of them: only DANE can authenticate.
 */
static void
dane_handshake(struct pair *p, const char *cert, const char *key,
    const struct io_tls_dane *d)
{
	char err[256];
	SSL_CTX *cctx, *sctx;

	cctx = tls_client_ctx_new(path("self.crt"), false, err, sizeof(err));
	assert_non_null(cctx);
	sctx = tls_server_ctx_new(path(cert), path(key), err, sizeof(err));
	assert_non_null(sctx);
	SSL_CTX_set_tlsext_servername_callback(sctx, on_servername);
	pair_open(p);
	assert_int_equal(io_start_tls(p->s.io, sctx, false, NULL, NULL), 0);
	assert_int_equal(io_start_tls_dane(p->c.io, cctx, d), 0);
	assert_int_equal(io_tls_dane_depth(p->c.io), -1);
	pair_run(p, hs_over);
	tls_ctx_free(sctx);
	tls_ctx_free(cctx);
}

/* DANE-EE, each selector and matching type: no name check (RFC 7672 §3.1.1) */
static void
test_dane_ee(void **state)
{
	static const int sm[][2] = { { 1, 1 }, { 0, 1 }, { 1, 2 }, { 0, 0 },
	    { 1, 0 } };
	unsigned char data[4096];
	struct tlsa_rr rr;
	struct io_tls_dane d = { "mx.example", NULL, 0, &rr, 1 };
	struct io_tls_peer peer;
	struct pair p;
	char want[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sm) / sizeof(sm[0]); i++) {
		rr.usage = 3;
		rr.selector = (uint8_t)sm[i][0];
		rr.mtype = (uint8_t)sm[i][1];
		rr.data = data;
		rr.len = tlsa_data("server.crt", sm[i][0], sm[i][1], data,
		    sizeof(data));
		dane_handshake(&p, "server.crt", "server.key", &d);
		assert_true(p.c.done);
		assert_int_equal(io_tls_dane_usable(p.c.io), 1);
		assert_int_equal(io_tls_dane_depth(p.c.io), 0);
		assert_int_equal(io_tls_verify_error(p.c.io), X509_V_OK);
		assert_true(io_tls_verified(p.c.io));
		assert_string_equal(sni_seen, "mx.example");
		assert_int_equal(io_tls_peer(p.c.io, "mx.example", &peer), 0);
		snprintf(want, sizeof(want), "3 %d %d matched at depth 0",
		    sm[i][0], sm[i][1]);
		assert_string_equal(peer.dane, want);
		pair_close(&p);
	}
}

/* A DANE-EE record of another key: the handshake ends, not authenticated. */
static void
test_dane_ee_mismatch(void **state)
{
	unsigned char data[EVP_MAX_MD_SIZE];
	struct tlsa_rr rr = { 3, 1, 1, data, 0 };
	struct io_tls_dane d = { "mx.test", NULL, 0, &rr, 1 };
	struct io_tls_peer peer;
	struct pair p;

	(void)state;
	rr.len = tlsa_data("wrong.crt", 1, 1, data, sizeof(data));
	dane_handshake(&p, "server.crt", "server.key", &d);
	assert_true(p.c.done);
	assert_int_equal(io_tls_dane_usable(p.c.io), 1);
	assert_int_equal(io_tls_dane_depth(p.c.io), -1);
	assert_int_equal(io_tls_verify_error(p.c.io), X509_V_ERR_DANE_NO_MATCH);
	assert_int_equal(io_tls_verify_error(p.c.io), 65);
	assert_false(io_tls_verified(p.c.io));
	assert_int_equal(io_tls_peer(p.c.io, "mx.test", &peer), 0);
	assert_string_equal(peer.dane, "");
	assert_false(peer.chain_ok);
	pair_close(&p);
}

/* DANE-TA: the CA the server sends matches; the names are checked. */
static void
test_dane_ta(void **state)
{
	static const char *const more[] = { "other.test" };
	unsigned char data[EVP_MAX_MD_SIZE];
	struct tlsa_rr rr = { 2, 0, 1, data, 0 };
	struct io_tls_dane d = { "mx.test", NULL, 0, &rr, 1 };
	struct io_tls_peer peer;
	struct pair p;

	(void)state;
	rr.len = tlsa_data("ca.crt", 0, 1, data, sizeof(data));
	dane_handshake(&p, "chain.crt", "server.key", &d);
	assert_true(p.c.done);
	assert_int_equal(io_tls_dane_usable(p.c.io), 1);
	assert_int_equal(io_tls_dane_depth(p.c.io), 1);
	assert_true(io_tls_verified(p.c.io));
	assert_int_equal(io_tls_peer(p.c.io, "mx.test", &peer), 0);
	assert_string_equal(peer.dane, "2 0 1 matched at depth 1");
	pair_close(&p);

	/* Signed by that CA, but for another name. */
	dane_handshake(&p, "wrongchain.crt", "wrong.key", &d);
	assert_true(p.c.done);
	assert_false(io_tls_verified(p.c.io));
	assert_int_equal(io_tls_verify_error(p.c.io),
	    X509_V_ERR_HOSTNAME_MISMATCH);
	pair_close(&p);

	/* ... which is one of the other reference identifiers. */
	d.names = more;
	d.nnames = 1;
	dane_handshake(&p, "wrongchain.crt", "wrong.key", &d);
	assert_true(p.c.done);
	assert_true(io_tls_verified(p.c.io));
	assert_int_equal(io_tls_dane_depth(p.c.io), 1);
	assert_string_equal(sni_seen, "mx.test");
	pair_close(&p);

	/* The server does not send the CA: nothing to match. */
	d.names = NULL;
	d.nnames = 0;
	dane_handshake(&p, "server.crt", "server.key", &d);
	assert_true(p.c.done);
	assert_false(io_tls_verified(p.c.io));
	assert_int_equal(io_tls_dane_depth(p.c.io), -1);
	pair_close(&p);
}

/*
 * No usable record (PKIX-EE, a SHA2-256 digest one byte short, an unknown
 * selector): OpenSSL does not enable DANE, the handshake succeeds, not
 * authenticated.
 */
static void
test_dane_unusable(void **state)
{
	unsigned char data[EVP_MAX_MD_SIZE];
	struct tlsa_rr rr[3] = { { 1, 1, 1, data, 0 }, { 3, 1, 1, data, 31 },
	    { 3, 2, 1, data, 32 } };
	struct io_tls_dane d = { "mx.test", NULL, 0, rr, 3 };
	struct io_tls_peer peer;
	struct pair p;

	(void)state;
	rr[0].len = tlsa_data("server.crt", 1, 1, data, sizeof(data));
	dane_handshake(&p, "server.crt", "server.key", &d);
	assert_true(p.c.done);
	assert_int_equal(io_tls_dane_usable(p.c.io), 0);
	assert_int_equal(io_tls_dane_depth(p.c.io), -1);
	assert_false(io_tls_verified(p.c.io));
	assert_int_equal(io_tls_peer(p.c.io, "mx.test", &peer), 0);
	assert_string_equal(peer.dane, "");
	pair_close(&p);

	/* One usable record among them is enough. */
	rr[1].len = 32;
	dane_handshake(&p, "server.crt", "server.key", &d);
	assert_int_equal(io_tls_dane_usable(p.c.io), 1);
	assert_true(io_tls_verified(p.c.io));
	pair_close(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verified),
		cmocka_unit_test(test_wrong_name),
		cmocka_unit_test(test_self_signed),
		cmocka_unit_test(test_sni_ip),
		cmocka_unit_test(test_starttls_flush),
		cmocka_unit_test(test_ctx_errors),
		cmocka_unit_test(test_dane_ee),
		cmocka_unit_test(test_dane_ee_mismatch),
		cmocka_unit_test(test_dane_ta),
		cmocka_unit_test(test_dane_unusable),
	};
	char cmd[PATH_MAX + 512];
	int rc;

	signal(SIGPIPE, SIG_IGN);
	if (system("openssl version >/dev/null 2>&1") != 0) {
		fprintf(stderr, "openssl command not found: skipped\n");
		return 77;
	}
	if (test_mkdtemp(certdir, sizeof(certdir), "mxrelay-tls") == NULL) {
		perror("mkdtemp");
		return 99;
	}
	rc = snprintf(cmd, sizeof(cmd), "sh '%s/tests/unit/tls-certs.sh' '%s'",
	    TOP_SRCDIR, certdir);
	if (rc < 0 || (size_t)rc >= sizeof(cmd) || system(cmd) != 0) {
		fprintf(stderr, "tls-certs.sh failed\n");
		rc = 99;
		goto done;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
done:
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certdir);
	(void)system(cmd);
	return rc;
}
