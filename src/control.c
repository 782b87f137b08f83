/*
 * control: the client side of the control socket, and its address.
 * See control.h; the server side is in mxrelayd_ctl.c.
 */
#include "config.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "util.h"

/* The daemon answers at once; this only bounds a wedged one. */
#define CONTROL_TIMEOUT_MS	10000

/* The words on the wire, one per code (CONTROL_ERR_OTHER has none). */
static const struct {
	enum control_code	 code;
	const char		*word;
} control_words[] = {
	{ CONTROL_ERR_PERM,	"perm" },
	{ CONTROL_ERR_NOMSG,	"nomsg" },
	{ CONTROL_ERR_BADID,	"badid" },
	{ CONTROL_ERR_BADREQ,	"badreq" },
	{ CONTROL_ERR_QUEUE,	"queue" },
	{ CONTROL_ERR_BUSY,	"busy" },
};

enum control_code
control_reply_parse(const char *line, const char **rest)
{
	const char *w;
	size_t n;

	if (rest != NULL)
		*rest = line;
	if (strcmp(line, "ok") == 0 || strncmp(line, "ok ", 3) == 0) {
		if (rest != NULL)
			*rest = line + (line[2] == ' ' ? 3 : 2);
		return CONTROL_OK;
	}
	if (strncmp(line, "error ", 6) != 0)
		return CONTROL_ERR_OTHER;
	w = line + 6;
	n = strcspn(w, " \n");
	for (size_t i = 0; i < sizeof(control_words) /
	    sizeof(control_words[0]); i++)
		if (strlen(control_words[i].word) == n &&
		    strncmp(w, control_words[i].word, n) == 0) {
			if (rest != NULL)
				*rest = w + n + (w[n] == ' ');
			return control_words[i].code;
		}
	return CONTROL_ERR_OTHER;
}

size_t
control_reply_format(char *buf, size_t len, enum control_code code,
    const char *text)
{
	const char *word = NULL;
	int n;

	for (size_t i = 0; i < sizeof(control_words) /
	    sizeof(control_words[0]); i++)
		if (control_words[i].code == code)
			word = control_words[i].word;
	if (code == CONTROL_OK)
		n = snprintf(buf, len, "ok %s\n", text);
	else
		n = snprintf(buf, len, "error %s %s\n",
		    word != NULL ? word : "other", text);
	if (n < 0)
		n = 0;
	if (len > 0 && (size_t)n >= len)
		n = (int)len - 1;
	return len > 0 ? (size_t)n : 0;
}

int
control_addr(const char *runtime_dir, struct sockaddr_un *sun)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s", runtime_dir,
	    CONTROL_NAME);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Connect and send the request line; the fd, or -1. */
static int
control_send(const char *runtime_dir, const char *req)
{
	struct sockaddr_un sun;
	struct timeval tv = { CONTROL_TIMEOUT_MS / 1000,
	    (CONTROL_TIMEOUT_MS % 1000) * 1000 };
	size_t reqlen = strlen(req);
	int fd, saved;

	if (control_addr(runtime_dir, &sun) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		goto fail;
	if (write(fd, req, reqlen) != (ssize_t)reqlen || write(fd, "\n", 1) != 1)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
control_request_all(const char *runtime_dir, const char *req, char **out,
    size_t *outlen, size_t max)
{
	char *buf = NULL;
	size_t got = 0, cap = 0;
	int fd, saved;

	*out = NULL;
	*outlen = 0;
	if ((fd = control_send(runtime_dir, req)) == -1)
		return -1;
	for (;;) {
		ssize_t n;

		if (got + 1 >= cap) {
			if (cap >= max) {
				errno = EMSGSIZE;
				goto fail;
			}
			cap = cap ? cap * 2 : 65536;
			if (cap > max)
				cap = max;
			buf = xreallocarray(buf, cap, 1);
		}
		n = read(fd, buf + got, cap - 1 - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	if (got == 0) {
		free(buf);
		errno = ECONNRESET;
		return -1;
	}
	buf[got] = '\0';
	*out = buf;
	*outlen = got;
	return 0;
fail:
	saved = errno;
	close(fd);
	free(buf);
	errno = saved;
	return -1;
}

int
control_request(const char *runtime_dir, const char *req, char *reply,
    size_t len)
{
	size_t got = 0;
	int fd, saved;

	if (len == 0 || (fd = control_send(runtime_dir, req)) == -1)
		return -1;
	while (got + 1 < len) {
		ssize_t n = read(fd, reply + got, len - 1 - got);

		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		if (n == 0)
			break;
		got += (size_t)n;
		if (memchr(reply, '\n', got) != NULL)
			break;
	}
	reply[got] = '\0';
	reply[strcspn(reply, "\r\n")] = '\0';
	close(fd);
	if (got == 0) {
		errno = ECONNRESET;
		return -1;
	}
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}
