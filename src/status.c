/*
 * status: RFC 3463 enhanced status codes (see status.h).  Every read is
 * bounded by the length the caller gives.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "status.h"

static size_t	 status_digits(const char *, size_t, size_t);

/* 1 to 3 digits at s[pos] (within len); 0 when there are none or more. */
static size_t
status_digits(const char *s, size_t pos, size_t len)
{
	size_t n = 0;

	while (pos + n < len && n <= 3 && s[pos + n] >= '0' &&
	    s[pos + n] <= '9')
		n++;
	return n >= 1 && n <= 3 ? n : 0;
}

size_t
status_parse(const char *s, size_t len, char *status, size_t statussize)
{
	size_t n, pos;

	if (statussize > 0)
		status[0] = '\0';
	/* RFC 3463 section 2: class "." subject "." detail */
	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	pos = 2;
	if ((n = status_digits(s, pos, len)) == 0 || pos + n >= len ||
	    s[pos + n] != '.')
		return 0;
	pos += n + 1;
	if ((n = status_digits(s, pos, len)) == 0)
		return 0;
	pos += n;
	if (pos < len && s[pos] != '\0' && s[pos] != ' ' && s[pos] != '\t')
		return 0;
	if (pos + 1 > statussize)
		return 0;
	memcpy(status, s, pos);
	status[pos] = '\0';
	return pos;
}

bool
status_valid(const char *s)
{
	char buf[STATUS_MAX];
	size_t len;

	if (s == NULL)
		return false;
	len = strlen(s);
	return len > 0 && status_parse(s, len, buf, sizeof(buf)) == len;
}

void
status_class_default(int code, char *status, size_t statussize)
{
	int class = code / 100;

	if (class != 2 && class != 5)
		class = 4;
	snprintf(status, statussize, "%d.0.0", class);
}
