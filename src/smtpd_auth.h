/*
 * smtpd_auth: AUTH for the SMTP listener (RFC 4954), part of the smtpd
 * module.  Declared here, for mxrelayd and the tests: the auth_users
 * file (loading, lookup, the password check with crypt(3)), and the
 * pure decoding of the AUTH command's argument and of the SASL PLAIN
 * (RFC 4616) and LOGIN responses.  The exchange of a session (334
 * challenges, counting failures, the replies) is in src/smtpd_auth.c
 * too, declared in smtpd_session.h.  Only smtpd_users_load() does I/O;
 * the decoders take a buffer and its length and touch nothing else.
 */
#ifndef MXRELAY_SMTPD_AUTH_H
#define MXRELAY_SMTPD_AUTH_H

#include <stdbool.h>
#include <stddef.h>

struct smtpd_users;

/*
 * The auth_users file: one "user:crypt-hash" a line; '#' comments and
 * empty lines skipped, white space around a line ignored.  User names
 * are printable ASCII without spaces, unique; hashes must be ones
 * crypt(3) takes ("$id$...").  NULL + a "FILE:LINE: ..." message in err
 * on a malformed line or when the file cannot be read.
 */
struct smtpd_users *smtpd_users_load(const char *path, char *err,
		    size_t errlen);
/*
 * The same from fd (opened by the caller with the checks of a secret
 * file; not closed here); path names it in messages.
 */
struct smtpd_users *smtpd_users_load_fd(const char *path, int fd, char *err,
		    size_t errlen);
/* Frees u (NULL is fine), clearing the hashes. */
void		 smtpd_users_free(struct smtpd_users *u);
/*
 * Whether pass is the password of user.  Constant-time as far as the
 * user's existence goes (an unknown user's password is hashed too).
 * False when u, user or pass is NULL.
 */
bool		 smtpd_users_check(const struct smtpd_users *u,
		    const char *user, const char *pass);

/* The mechanisms offered, "AUTH PLAIN LOGIN". */
enum smtpd_auth_mech {
	SMTPD_AUTH_PLAIN,		/* RFC 4616 */
	SMTPD_AUTH_LOGIN,		/* draft-murchison-sasl-login */
	SMTPD_AUTH_UNSUPPORTED,
};

struct smtpd_auth_cmd {
	enum smtpd_auth_mech mech;
	char		*ir;	/* the initial response, in arg; NULL if none */
};

/*
 * The argument of AUTH: "mechanism [initial-response]" (RFC 4954 §4),
 * edited in place.  The mechanism matches case-insensitively.  For
 * PLAIN, an initial response "=" is the empty response (it is kept as
 * "=" for LOGIN, whose decoding then fails).  0, or -1 on a syntax error
 * (more than two words, or a space after the mechanism and nothing else).
 */
int		 smtpd_auth_cmd_parse(char *arg, struct smtpd_auth_cmd *out);

/* Room for a decoded response: a command line is at most 512 octets. */
#define SMTPD_AUTH_BUF		512

/*
 * A decoded PLAIN response: authzid NUL authcid NUL passwd.  user is
 * NULL when the response does not have three parts (malformed), pass is
 * NULL as well when the password holds a NUL or the authzid names
 * another user than the authcid (no proxy authorization): a failure
 * that may still be logged with its user name.  Clear it with
 * explicit_bzero() after use.
 */
struct smtpd_auth_plain {
	char		 buf[SMTPD_AUTH_BUF];
	const char	*user;
	const char	*pass;
};

/*
 * Decode the base64 PLAIN response b64 (len octets).  0 with out filled
 * in (user and pass may be NULL, see above), or -1 when it is not
 * base64 or too long.
 */
int		 smtpd_auth_plain_decode(const char *b64, size_t len,
		    struct smtpd_auth_plain *out);

/*
 * Decode one base64 LOGIN response (the user name or the password) into
 * buf as a C string.  0, or -1 when it is not base64, does not fit in
 * size - 1 octets, or holds a NUL.
 */
int		 smtpd_auth_login_decode(const char *b64, size_t len, char *buf,
		    size_t size);

#endif
