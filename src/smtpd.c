/* smtpd: placeholder until the listener lands (see smtpd.h). */
#include "config.h"

#include <stdlib.h>

#include "smtpd.h"

struct smtpd *
smtpd_new(struct ev_loop *loop, struct queue *q, const struct smtpd_params *p,
    smtpd_queued_cb cb, void *arg)
{
	(void)loop; (void)q; (void)p; (void)cb; (void)arg;
	return NULL;
}
void smtpd_free(struct smtpd *s) { (void)s; }
void smtpd_set_params(struct smtpd *s, const struct smtpd_params *p) { (void)s; (void)p; }
int smtpd_listen(struct smtpd *s, int fd) { (void)s; (void)fd; return -1; }
void smtpd_shutdown(struct smtpd *s) { (void)s; }
unsigned smtpd_nsessions(const struct smtpd *s) { (void)s; return 0; }
struct smtpd_users *smtpd_users_load(const char *p, char *e, size_t l) { (void)p; (void)e; (void)l; return NULL; }
void smtpd_users_free(struct smtpd_users *u) { (void)u; }
bool smtpd_users_check(const struct smtpd_users *u, const char *a, const char *b) { (void)u; (void)a; (void)b; return false; }
