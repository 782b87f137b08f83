/*
 * control: the daemon's control socket, <spool_dir>/mxrelayd.sock (a Unix
 * stream socket, as private as the spool itself).  One request line, one
 * reply line, then the daemon closes:
 *
 *	flush		try every queued message now ("ok N")
 *	flush ID	try that message now ("ok 1", or "error no such message")
 *	status		"ok messages=N in_flight=N clients=N"
 *
 * mxrelay -q uses it so that the daemon, when it runs, delivers instead
 * of a second process racing it.
 */
#ifndef MXRELAY_CONTROL_H
#define MXRELAY_CONTROL_H

#include <stddef.h>
#include <sys/un.h>

#define CONTROL_NAME		"mxrelayd.sock"
#define CONTROL_PID_NAME	"mxrelayd.pid"
#define CONTROL_LINE_MAX	256

/* The socket address for a spool; -1 (ENAMETOOLONG) when it cannot fit. */
int	 control_addr(const char *spool_dir, struct sockaddr_un *);
/*
 * Send one request and read the reply line (without its newline) into
 * reply.  -1 with errno: ENOENT or ECONNREFUSED mean "no daemon".
 */
int	 control_request(const char *spool_dir, const char *req, char *reply,
	    size_t len);

#endif
