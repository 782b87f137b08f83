/*
 * fuzz_dnsd: the DNS wire parsers of the DNS side, fed one message each:
 * dnsd's query handling (tests/world/dnsd.c answer(), over UDP and TCP
 * rules, against a small fixed zone) and dns.c's bounded walk of the
 * responses c-ares hands us (wire_ttl(), in fuzz_dnsd_wire.c).
 *
 * make check replays tests/fuzz/corpus/dnsd through tests/fuzz/replay.c;
 * configure --enable-fuzzing builds tests/fuzz/lf/fuzz_dnsd.
 */
#define main dnsd_main
int	dnsd_main(int, char **);
#include "../world/dnsd.c"
#undef main

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
void	fuzz_dns_wire(const uint8_t *, size_t);

static const char *fuzz_zone[] = {
	"example.test MX 10 mx1.example.test",
	"example.test 60 MX 20 mx2.example.test",
	"mx1.example.test A 127.0.0.2",
	"v6.test AAAA ::1",
	"alias.test CNAME real.test",
	"real.test A 127.0.0.4",
	"loop1.test CNAME loop2.test",
	"loop2.test CNAME loop1.test",
	"dangling.test CNAME nowhere.test",
	"nullmx.test MX 0 .",
	"fail.test SERVFAIL",
	"mxfail.test SERVFAIL MX",
	"slow.test DELAY 10 A",
	"dead.test DROP",
	"*.wild.test TXT hello",
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct zone zone;
	static bool loaded;
	uint8_t o[MSG_MAX];
	struct buf out = { o, sizeof(o), 0, false };
	unsigned delay;

	if (!loaded) {
		char line[256], err[128];

		for (size_t i = 0; i < sizeof(fuzz_zone) / sizeof(fuzz_zone[0]);
		    i++) {
			snprintf(line, sizeof(line), "%s", fuzz_zone[i]);
			if (zone_line(&zone, line, err, sizeof(err)) == -1)
				abort();
		}
		loaded = true;
	}
	for (int udp = 0; udp < 2; udp++)
		if (answer(&zone, data, size, udp, &out, &delay) == 0 &&
		    (out.len < 12 || out.len > sizeof(o) ||
		    (udp && out.len > UDP_MAX)))
			abort();
	fuzz_dns_wire(data, size);
	return 0;
}
