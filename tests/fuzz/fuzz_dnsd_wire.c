/*
 * fuzz_dnsd_wire: src/dns.c's own parser of untrusted bytes, the walk of
 * a DNS response for its TTLs (wire_ttl), reached by including dns.c so
 * that its static functions stay static.  Driven by fuzz_dnsd.c.
 */
#include "../../src/dns.c"

void	fuzz_dns_wire(const uint8_t *, size_t);

void
fuzz_dns_wire(const uint8_t *data, size_t size)
{
	size_t off = 0;

	(void)wire_ttl(data, size, false);
	(void)wire_ttl(data, size, true);
	while (off < size && wire_skip_name(data, size, &off) == 0)
		;
}
