/* STUB (lead: drop this commit) */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "sts_policy.h"

int sts_txt_parse(const char *rec, char id[STS_ID_MAX + 1]) { (void)rec; (void)id; return -1; }
int sts_policy_parse(const char *b, size_t l, struct sts_policy *p, char *e, size_t el)
{ (void)b; (void)l; (void)p; (void)e; (void)el; return -1; }
void sts_policy_clear(struct sts_policy *p) { (void)p; }
void sts_policy_copy(struct sts_policy *d, const struct sts_policy *s) { memcpy(d, s, sizeof(*d)); }
bool sts_mx_match(const struct sts_policy *p, const char *h) { (void)p; (void)h; return false; }
const char *sts_mode_to_text(enum sts_mode m) { return m == STS_MODE_ENFORCE ? "enforce" : m == STS_MODE_TESTING ? "testing" : "none"; }
