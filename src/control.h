/*
 * control: the daemon's control socket, <runtime_dir>/mxrelayd.sock (a
 * Unix stream socket that every local user may connect to; the daemon
 * asks the kernel who is calling, SO_PEERCRED).  One request line, one
 * reply line, then the daemon closes:
 *
 *	flush		try every queued message now ("ok N")
 *	flush ID	try that message now ("ok 1", or "error nomsg ...")
 *	status		"ok messages=N in_flight=N clients=N"
 *	list		"ok N", then N envelopes, each as a line with its
 *			length in bytes and then that many bytes of
 *			envelope text (queue/envelope.c): the caller's own
 *			messages, or all of them for root and the daemon's
 *			user
 *	stats		"ok N", then N bytes of metrics in the Prometheus
 *			text format (metrics.h); root and the daemon's user
 *	hold|release|requeue|delete|bounce ID|domain D|all
 *			queue administration (mxrelayd_admin.c):
 *			"ok N noop=N busy=N failed=N"
 *
 * A refusal is "error CODE TEXT": CODE is one word that clients act on
 * (enum control_code), TEXT is for people.  flush and status are for root
 * and the daemon's user only ("error perm permission denied").
 * mxrelay -q uses flush so that the daemon, when it runs, delivers
 * instead of a second process racing it; mailq run by another user uses
 * list.  mxrelayd(8) documents the protocol.
 */
#ifndef MXRELAY_CONTROL_H
#define MXRELAY_CONTROL_H

#include <stddef.h>
#include <sys/un.h>

#define CONTROL_NAME		"mxrelayd.sock"
#define CONTROL_PID_NAME	"mxrelayd.pid"
#define CONTROL_LINE_MAX	256

/* Largest answer to "list" that a client takes. */
#define CONTROL_LIST_MAX	(256 * 1024 * 1024)

/* What a reply line says; the words on the wire are in control.c. */
enum control_code {
	CONTROL_OK,		/* "ok ..." */
	CONTROL_ERR_PERM,	/* "error perm": not for this caller */
	CONTROL_ERR_NOMSG,	/* "error nomsg": no such message queued */
	CONTROL_ERR_BADID,	/* "error badid": not a queue id */
	CONTROL_ERR_BADREQ,	/* "error badreq": unknown request */
	CONTROL_ERR_QUEUE,	/* "error queue": the queue cannot be read */
	CONTROL_ERR_BUSY,	/* "error busy": too many connections */
	CONTROL_ERR_OTHER,	/* anything else, from another version */
};

/*
 * Read a reply line: its code, and in *rest (when not NULL) what follows
 * the code: "N ..." after "ok", the text after an error code, or the
 * whole line for CONTROL_ERR_OTHER.
 */
enum control_code control_reply_parse(const char *line, const char **rest);
/*
 * Format the reply line "error CODE TEXT\n" (or "ok TEXT\n") into buf;
 * returns its length (truncated to len - 1, as snprintf).
 */
size_t	 control_reply_format(char *buf, size_t len, enum control_code,
	    const char *text);

/* The socket address in runtime_dir; -1 (ENAMETOOLONG) when it cannot fit. */
int	 control_addr(const char *runtime_dir, struct sockaddr_un *);
/*
 * Send one request and read the reply line (without its newline) into
 * reply.  -1 with errno: ENOENT or ECONNREFUSED mean "no daemon".
 */
int	 control_request(const char *runtime_dir, const char *req, char *reply,
	    size_t len);
/*
 * Send one request and read everything the daemon sends until it closes
 * (at most max bytes, else EMSGSIZE) into *out (allocated, NUL-ended).
 */
int	 control_request_all(const char *runtime_dir, const char *req,
	    char **out, size_t *outlen, size_t max);

#endif
