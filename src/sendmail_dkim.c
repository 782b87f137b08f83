/*
 * sendmail_dkim.c: `mxrelay dkim-keygen [-C file] [--ed25519] [--bits N]
 * [-o PATH] DOMAIN SELECTOR`, a DKIM signing key and what to publish.
 *
 * The key (RSA, 2048 bits unless --bits says 1024 to 4096, or Ed25519) is
 * written as PKCS#8 PEM to PATH, by default
 * SYSCONFDIR/mxrelay/dkim/DOMAIN.SELECTOR.key (/etc/mxrelay/dkim/...; that
 * folder made 0750, root and the daemon's group, when missing).  The
 * file is created, never overwritten, with O_EXCL and O_NOFOLLOW: 0640
 * root:the daemon's group when run by root (0600 when there is no such
 * group), else 0600 owned by the caller.  It is then read back as the
 * daemon will read it (dkim_key_read_fd), and stdout gets the dkim_key line
 * for mxrelay.conf and the TXT record in zone-file form, its strings at
 * most 255 octets (RFC 1035 §3.3).
 */
#include "config.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "conf.h"
#include "dkim.h"
#include "log.h"
#include "runner.h"
#include "sendmail_int.h"
#include "util.h"

#define KEYGEN_USAGE	"usage: mxrelay dkim-keygen [-C file] [--ed25519] " \
	"[--bits N] [-o path] DOMAIN SELECTOR\n"
#define KEY_PARENT	SYSCONFDIR "/mxrelay"
#define KEY_DIR		KEY_PARENT "/dkim"
#define BITS_MIN	1024
#define BITS_MAX	4096
#define TXT_STRING_MAX	255

static bool	 name_ok(const char *, size_t);
static int	 key_dir_make(gid_t);
static int	 key_write(const char *, EVP_PKEY *, bool, gid_t);
static int	 key_print(const char *, const char *, const char *, bool);

/*
 * A domain name or a selector: dot-separated labels of letters, digits
 * and '-' (not first or last), 1 to 63 octets each (RFC 6376 §3.1 for
 * selectors, RFC 1035 for names); at most max octets in all.
 */
static bool
name_ok(const char *s, size_t max)
{
	size_t len = strlen(s), lab = 0, i;

	if (len == 0 || len > max)
		return false;
	for (i = 0; i <= len; i++) {
		char c = s[i];

		if (c == '.' || c == '\0') {
			if (lab == 0 || lab > 63 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c == '-' && lab > 0)))
			return false;
		lab++;
	}
	return true;
}

/* The default folder: made 0750 root:gid when missing (its parent 0755). */
static int
key_dir_make(gid_t gid)
{
	struct stat st;

	if (mkdir(KEY_PARENT, 0755) == -1 && errno != EEXIST) {
		log_warn("%s", KEY_PARENT);
		return EX_CANTCREAT;
	}

	if (lstat(KEY_DIR, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			log_warnx("%s: not a folder", KEY_DIR);
			return EX_CANTCREAT;
		}
		return EX_OK;
	}
	if (errno != ENOENT || mkdir(KEY_DIR, 0750) == -1) {
		log_warn("%s", KEY_DIR);
		return EX_CANTCREAT;
	}
	if (geteuid() == 0 && gid != (gid_t)-1 &&
	    lchown(KEY_DIR, 0, gid) == -1) {
		log_warn("%s", KEY_DIR);
		return EX_CANTCREAT;
	}
	if (chmod(KEY_DIR, 0750) == -1) {
		log_warn("%s", KEY_DIR);
		return EX_CANTCREAT;
	}
	return EX_OK;
}

/* Write the key, new file only; a failed write leaves no file. */
static int
key_write(const char *path, EVP_PKEY *pkey, bool root, gid_t gid)
{
	struct stat st;
	mode_t mode;
	BIO *bio;
	char *pem;
	long n;
	int fd, rc = EX_IOERR;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		if (errno == EEXIST && lstat(path, &st) == 0 &&
		    S_ISLNK(st.st_mode))
			log_warnx("%s: a symbolic link; not followed", path);
		else if (errno == EEXIST)
			log_warnx("%s: exists; not overwritten", path);
		else
			log_warn("%s", path);
		return EX_CANTCREAT;
	}
	/* Root: the daemon's group may read it; others: the caller's. */
	mode = 0600;
	if (root && gid != (gid_t)-1) {
		if (fchown(fd, 0, gid) == -1) {
			log_warn("%s", path);
			goto fail;
		}
		mode = 0640;
	}
	if (fchmod(fd, mode) == -1) {
		log_warn("%s", path);
		goto fail;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
	    NULL) != 1) {
		BIO_free(bio);
		log_warnx("%s: the key could not be encoded", path);
		rc = EX_SOFTWARE;
		goto fail;
	}
	n = BIO_get_mem_data(bio, &pem);
	for (long off = 0; off < n;) {
		ssize_t w = write(fd, pem + off, (size_t)(n - off));

		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("%s", path);
			BIO_free(bio);
			goto fail;
		}
		off += w;
	}
	BIO_free(bio);
	if (fsync(fd) == -1 || close(fd) == -1) {
		fd = -1;
		log_warn("%s", path);
		goto fail;
	}
	return EX_OK;
fail:
	if (fd != -1)
		close(fd);
	(void)unlink(path);
	return rc;
}

/* Read the key back as the daemon would, and print what to publish. */
static int
key_print(const char *path, const char *domain, const char *selector,
    bool ed25519)
{
	struct dkim_key *key;
	char err[512], *txt, *p;
	size_t len, k;
	bool weak;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		log_warn("%s", path);
		return EX_IOERR;
	}
	key = dkim_key_read_fd(fd, path, domain, selector, &weak, err,
	    sizeof(err));
	close(fd);
	if (key == NULL) {
		log_warnx("%s", err);
		return EX_SOFTWARE;
	}
	if ((txt = dkim_key_txt(key)) == NULL) {
		log_warnx("%s: no public key", path);
		dkim_key_free(key);
		return EX_SOFTWARE;
	}
	dkim_key_free(key);
	printf("dkim_key = %s %s %s\n", domain, selector, path);
	/* "v=DKIM1; k=...; " as one string, then p= in strings of 255. */
	p = strstr(txt, "p=");
	printf("%s._domainkey.%s. IN TXT ( \"%.*s\"", selector, domain,
	    (int)(p - txt), txt);
	for (len = strlen(p); len > 0; p += k, len -= k) {
		k = len < TXT_STRING_MAX ? len : TXT_STRING_MAX;
		printf(" \"%.*s\"", (int)k, p);
	}
	printf(" )\n");
	free(txt);
	if (fflush(stdout) == EOF) {
		log_warn("stdout");
		return EX_IOERR;
	}
	/* The next steps, apart from what a script would read. */
	fprintf(stderr, "mxrelay: %s: a new %s key; publish the TXT record, "
	    "then add the dkim_key line to mxrelay.conf\n", path,
	    ed25519 ? "Ed25519" : "RSA");
	return EX_OK;
}

int
dkim_keygen_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "ed25519", no_argument, NULL, 'e' },
		{ "bits", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct conf conf;
	const char *config = NULL, *out = NULL, *domain, *selector;
	char *path = NULL, *end, cwd[PATH_MAX];
	bool ed25519 = false, root;
	long bits = 0;
	EVP_PKEY *pkey = NULL;
	uid_t uid;
	gid_t gid;
	int ch, rc;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "C:o:", longopts, NULL)) != -1)
		switch (ch) {
		case 'C':
			config = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'e':
			ed25519 = true;
			break;
		case 'b':
			errno = 0;
			bits = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    bits < BITS_MIN || bits > BITS_MAX) {
				fprintf(stderr, "mxrelay dkim-keygen: --bits "
				    "%s: from %d to %d\n", optarg, BITS_MIN,
				    BITS_MAX);
				return EX_USAGE;
			}
			break;
		case 'h':
			printf(KEYGEN_USAGE);
			return EX_OK;
		default:
			fprintf(stderr, KEYGEN_USAGE);
			return EX_USAGE;
		}
	argc -= optind;
	argv += optind;
	if (argc != 2 || (ed25519 && bits != 0) || (out != NULL &&
	    *out == '\0')) {
		if (ed25519 && bits != 0)
			fprintf(stderr, "mxrelay dkim-keygen: --bits is for "
			    "RSA keys\n");
		fprintf(stderr, KEYGEN_USAGE);
		return EX_USAGE;
	}
	domain = argv[0];
	selector = argv[1];
	if (!name_ok(domain, 253) || strchr(domain, '.') == NULL) {
		fprintf(stderr, "mxrelay dkim-keygen: %s: not a domain name "
		    "(ASCII letters, digits, '-', an A-label)\n", domain);
		return EX_USAGE;
	}
	if (!name_ok(selector, 63)) {
		fprintf(stderr, "mxrelay dkim-keygen: %s: not a selector "
		    "(letters, digits, '-', dot-separated)\n", selector);
		return EX_USAGE;
	}
	log_init("mxrelay", LOG_TO_STDERR, 0);
	if ((rc = command_conf(config, &conf)) != EX_OK)
		return rc;
	runner_daemon_ids(&conf, &uid, &gid);
	root = geteuid() == 0;

	if (out == NULL) {
		if ((rc = key_dir_make(root ? gid : (gid_t)-1)) != EX_OK)
			goto done;
		path = xasprintf("%s/%s.%s.key", KEY_DIR, domain, selector);
	} else if (out[0] != '/') {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			log_warn("getcwd");
			rc = EX_OSERR;
			goto done;
		}
		path = xasprintf("%s/%s", cwd, out);
	} else
		path = xstrdup(out);

	if (ed25519)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA",
		    (size_t)(bits != 0 ? bits : DKIM_RSA_GOOD));
	if (pkey == NULL) {
		log_warnx("the key could not be made");
		rc = EX_SOFTWARE;
		goto done;
	}
	if (root && gid == (gid_t)-1)
		log_warnx("%s: no group %s: the key is for root only", path,
		    conf.group != NULL ? conf.group : "for the daemon");
	if ((rc = key_write(path, pkey, root, gid)) != EX_OK)
		goto done;
	rc = key_print(path, domain, selector, ed25519);
done:
	EVP_PKEY_free(pkey);
	free(path);
	conf_free(&conf);
	return rc;
}
