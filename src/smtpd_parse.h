/*
 * smtpd_parse: the pure part of the SMTP listener (RFC 5321), below
 * every module that does I/O: it uses only smtp_proto, message and util.
 * Command lines and the verb table, HELO/EHLO arguments, the paths of
 * MAIL FROM and RCPT TO (quoting, source routes), the mailbox checks and
 * the MAIL/RCPT parameters.
 *
 * No I/O, no clock, no globals and no session: the caller passes what a
 * rule needs (max_size, qualify_domain) and turns the small results into
 * replies (src/smtpd.c).  Every function takes a NUL-terminated string
 * (edited in place where it says so) or a buffer and its length, so that
 * a fuzz target can call it as it is.
 */
#ifndef MXRELAY_SMTPD_PARSE_H
#define MXRELAY_SMTPD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A HELO/EHLO argument longer than this is refused (501). */
#define SMTPD_HELO_MAX		255

/* The verbs the listener knows, in the order of its command table. */
enum smtpd_verb {
	SMTPD_VERB_HELO,
	SMTPD_VERB_EHLO,
	SMTPD_VERB_MAIL,
	SMTPD_VERB_RCPT,
	SMTPD_VERB_DATA,
	SMTPD_VERB_RSET,
	SMTPD_VERB_NOOP,
	SMTPD_VERB_QUIT,
	SMTPD_VERB_HELP,
	SMTPD_VERB_VRFY,
	SMTPD_VERB_STARTTLS,
	SMTPD_VERB_AUTH,
	SMTPD_NVERBS
};

enum smtpd_cmd_status {
	SMTPD_CMD_OK,
	SMTPD_CMD_NUL,		/* a NUL byte in the line */
	SMTPD_CMD_UNKNOWN,	/* no such verb */
	SMTPD_CMD_EXTRA_ARG,	/* an argument to a verb that takes none */
	SMTPD_CMD_NEED_ARG,	/* no argument to a verb that needs one */
};

struct smtpd_cmd {
	enum smtpd_verb	 verb;	/* SMTPD_NVERBS when unknown */
	const char	*name;	/* the verb as spelt in replies ("MAIL"),
				   or NULL when unknown */
	char		*arg;	/* inside the line: "" when there is none */
};

/*
 * One command line without its CRLF: line holds len octets and a NUL at
 * line[len]; it is edited in place (trailing spaces and tabs become NULs,
 * they are not part of the argument).  The verb is the text up to the
 * first space, matched case-insensitively; the argument follows after
 * any number of spaces.  NOOP and HELP take an optional argument, DATA,
 * RSET, QUIT and STARTTLS none, the others need one.
 * Returns SMTPD_CMD_OK with cmd filled in, or why the line is refused
 * (cmd->verb and cmd->name are set for EXTRA_ARG and NEED_ARG).
 */
enum smtpd_cmd_status smtpd_cmd_parse(char *line, size_t len,
		    struct smtpd_cmd *cmd);

/*
 * A HELO/EHLO argument that may be copied into a Received: field as it
 * is: 1 to SMTPD_HELO_MAX printable ASCII octets, no space, '(', ')' or
 * '\\'.
 */
bool		 smtpd_helo_ok(const char *arg);

struct smtpd_path {
	char		*path;	/* inside the angle brackets; "" for <> */
	char		*params;/* what follows, leading spaces skipped */
};

/*
 * The argument of MAIL (kw "FROM:") or RCPT (kw "TO:"): the keyword
 * (case-insensitive), any spaces, then "<path>", then nothing or a space
 * and the parameters.  A quoted local part may hold '>' and spaces, and
 * a backslash escapes the octet after it inside quotes.  arg is edited
 * in place (the closing '>' becomes a NUL).  0, or -1 on a syntax error.
 */
int		 smtpd_path_parse(char *arg, const char *kw,
		    struct smtpd_path *out);

/*
 * RFC 5321 §4.1.2 and Appendix C: skip a source route "@a,@b:" in front
 * of a mailbox.  Returns the mailbox (path itself when there is no
 * route), or NULL when the route is malformed: a missing ':', an empty
 * route, a ',' not followed by '@', or a character other than letters,
 * digits, ".-@," outside an address literal.
 */
const char	*smtpd_route_strip(const char *path);

/*
 * The mailbox of a MAIL or RCPT path (not ""): the source route dropped,
 * then checked as an RFC 5321 Mailbox (smtp_path_ok(), msg_addr_check());
 * a bare local part gets "@qualify_domain".  Returns a new string, or
 * NULL with the reason in err (err is cleared first).
 */
char		*smtpd_mailbox(const char *path, const char *qualify_domain,
		    char *err, size_t errlen);
/*
 * The same in an SMTPUTF8 transaction (RFC 6531 §3.3): the local part
 * may also be UTF-8 (msg_addr_check_utf8()); the domain stays ASCII.
 */
char		*smtpd_mailbox_utf8(const char *path, const char *qualify_domain,
		    char *err, size_t errlen);

enum smtpd_param_status {
	SMTPD_PARAM_OK,
	SMTPD_PARAM_BAD_SIZE,	/* SIZE= empty, not digits, or too big to
				   count (RFC 1870) */
	SMTPD_PARAM_TOO_BIG,	/* SIZE= over max_size */
	SMTPD_PARAM_BAD_BODY,	/* BODY= other than 7BIT, 8BITMIME */
	SMTPD_PARAM_UNKNOWN,	/* a parameter we do not offer */
};

enum smtpd_body {
	SMTPD_BODY_NONE,	/* no BODY= */
	SMTPD_BODY_7BIT,
	SMTPD_BODY_8BITMIME,	/* RFC 6152 */
};

struct smtpd_mail_params {
	bool		 has_size;
	uint64_t	 size;	/* SIZE=, the last one given */
	enum smtpd_body	 body;	/* BODY=, the last one given */
	bool		 auth;	/* AUTH= seen (RFC 4954 §5: ignored) */
	bool		 smtputf8;	/* SMTPUTF8 (RFC 6531 §3.4) */
	const char	*bad;	/* the parameter refused, in params */
};

/*
 * The parameters of MAIL FROM: words separated by spaces, taken in
 * order (SIZE=, BODY=, AUTH=, and SMTPUTF8 without a value); the
 * first one refused ends the scan (out->bad points to it,
 * NUL-terminated: params is edited in place).  Keywords match
 * case-insensitively; a parameter given twice is checked twice.  SIZE
 * over max_size (0: no limit) is SMTPD_PARAM_TOO_BIG, checked as soon as
 * the SIZE word is read.
 */
enum smtpd_param_status smtpd_mail_params_parse(char *params,
		    uint64_t max_size, struct smtpd_mail_params *out);

/*
 * The parameters of RCPT TO: none is offered (no DSN, RFC 3461), so
 * anything is SMTPD_PARAM_UNKNOWN.
 */
enum smtpd_param_status smtpd_rcpt_params_parse(const char *params);

/*
 * The key under which the listener counts a client's connections: the
 * IPv4 address; an IPv6 client by its /64 ("2001:db8:1:2::/64"), what one
 * site usually holds (RFC 6177), so that hopping addresses inside it
 * gains nothing; an IPv4-mapped IPv6 address as its IPv4 address.  raw is
 * the in_addr or in6_addr; for another family, addr (the printed address,
 * cut to fit) is the key.
 */
#define SMTPD_CLIENT_KEY_MAX	48
void		 smtpd_client_key(int family, const void *raw, const char *addr,
		    char key[SMTPD_CLIENT_KEY_MAX]);
/*
 * The same network as bytes (the connection counts print it, the AUTH
 * failure table compares it): AF_INET with the 4 octets of the IPv4 (or
 * IPv4-mapped) address, or AF_INET6 with the /64's 8 octets, the rest of
 * net zero; 0 for another family (net all zero).
 */
int		 smtpd_client_net(int family, const void *raw,
		    unsigned char net[16]);

#endif
