/*
 * dkim_keys: the shared key set and one message's signer.  See
 * dkim_keys.h.
 */
#include "config.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dkim.h"
#include "dkim_keys.h"
#include "util.h"

struct dkim_keys {
	atomic_uint		 refs;
	struct dkim_key		**keys;
	size_t			 n;
	long			 expire;
};

struct dkim_signer {
	struct dkim_keys	*keys;
	struct dkim_sign	*sign;
	const char		*why;		/* not signed: why */
	char			 err[256];	/* a signing error */
};

struct dkim_keys *
dkim_keys_new(struct dkim_key **keys, size_t n, long expire)
{
	struct dkim_keys *k = xcalloc(1, sizeof(*k));

	atomic_init(&k->refs, 1);
	k->keys = keys;
	k->n = n;
	k->expire = expire;
	return k;
}

struct dkim_keys *
dkim_keys_ref(struct dkim_keys *k)
{
	if (k != NULL)
		atomic_fetch_add(&k->refs, 1);
	return k;
}

void
dkim_keys_unref(struct dkim_keys *k)
{
	if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1)
		return;
	for (size_t i = 0; i < k->n; i++)
		dkim_key_free(k->keys[i]);
	free(k->keys);
	free(k);
}

size_t
dkim_keys_count(const struct dkim_keys *k)
{
	return k != NULL ? k->n : 0;
}

struct dkim_signer *
dkim_signer_new(struct dkim_keys *k, time_t now)
{
	struct dkim_signer *s;

	if (k == NULL || k->n == 0)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->keys = dkim_keys_ref(k);
	s->sign = dkim_sign_new(k->keys, k->n, now, k->expire);
	return s;
}

void
dkim_signer_feed(void *arg, const void *buf, size_t len)
{
	struct dkim_signer *s = arg;

	dkim_sign_feed(s->sign, buf, len);
}

int
dkim_signer_end(struct dkim_signer *s, char **sig)
{
	char *h;

	*sig = NULL;
	s->why = NULL;
	if ((h = dkim_sign_end(s->sign, &s->why, s->err,
	    sizeof(s->err))) == NULL) {
		if (s->err[0] == '\0')
			util_strlcpy(s->err, "signing failed", sizeof(s->err));
		return -1;
	}
	if (h[0] == '\0') {
		free(h);
		if (s->why == NULL)
			s->why = "no matching key";
		return 0;
	}
	*sig = h;
	return 0;
}

const char *
dkim_signer_why(const struct dkim_signer *s)
{
	return s->why != NULL ? s->why : "signed";
}

const char *
dkim_signer_error(const struct dkim_signer *s)
{
	return s->err;
}

void
dkim_signer_free(struct dkim_signer *s)
{
	if (s == NULL)
		return;
	dkim_sign_free(s->sign);
	dkim_keys_unref(s->keys);
	free(s);
}
