/*
 * runner_dkim: the DKIM keys of the configuration (mxrelay.conf(5),
 * DKIM), read for every program that commits messages: mxrelayd at start
 * and on a reload, mxrelay -q before its pickup, and mxrelay run by root
 * or the spool's owner.  Each key file is opened as a secret (owner and
 * mode, runner_secret_open()); a key that cannot be used stops the
 * program with a message naming the file.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "dkim.h"
#include "dkim_keys.h"
#include "log.h"
#include "runner.h"
#include "util.h"

int
runner_dkim_keys(const struct conf *c, struct dkim_keys **out)
{
	struct dkim_key **keys;
	char err[512];
	size_t n = 0;

	*out = NULL;
	if (c->ndkim_keys == 0)
		return 0;
	keys = xcalloc(c->ndkim_keys, sizeof(*keys));
	for (size_t i = 0; i < c->ndkim_keys; i++) {
		const struct conf_dkim_key *k = &c->dkim_keys[i];
		bool weak = false;
		int fd;

		if ((fd = runner_secret_open(c, k->path)) == -1)
			goto fail;
		keys[n] = dkim_key_read_fd(fd, k->path, k->domain, k->selector,
		    &weak, err, sizeof(err));
		close(fd);
		if (keys[n] == NULL) {
			log_warnx("dkim_key: %s", err);
			goto fail;
		}
		n++;
		if (weak)
			log_warnx("%s: an RSA key of fewer than 2048 bits; "
			    "receivers may ignore its signatures (make a new "
			    "one: mxrelay dkim-keygen)", k->path);
	}
	if (c->dkim_expire_ms > 0 && c->dkim_expire_ms < c->queue_lifetime_ms)
		log_warnx("dkim_expire is shorter than queue_lifetime: a message "
		    "still queued when its signature expires goes out with an "
		    "expired signature, which receivers ignore");
	*out = dkim_keys_new(keys, n, (long)(c->dkim_expire_ms / 1000));
	return 0;
fail:
	for (size_t i = 0; i < n; i++)
		dkim_key_free(keys[i]);
	free(keys);
	return -1;
}
