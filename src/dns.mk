# src/dns.mk: c-ares resolver module and the test DNS server (sources, tests).
src_libmxnet_a_SOURCES += src/dns.c

# tests/world/dnsd: authoritative DNS server for the tests (README there).
check_PROGRAMS += tests/world/dnsd
tests_world_dnsd_SOURCES = tests/world/dnsd.c
EXTRA_DIST += tests/world/README

check_PROGRAMS += tests/unit/test_dns
tests_unit_test_dns_SOURCES = tests/unit/test_dns.c src/dns.c src/event.c \
	src/util.c $(TEST_COMMON)
tests_unit_test_dns_CPPFLAGS = $(AM_CPPFLAGS) \
	-DDNSD_PATH='"$(abs_top_builddir)/tests/world/dnsd"'
tests_unit_test_dns_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_dns_LDADD = $(TEST_LIBS) $(NET_LIBS)
TESTS += tests/unit/test_dns

# Fuzz target for the DNS wire parsers (dnsd queries, dns.c responses),
# replayed over its corpus by `make check`.
check_PROGRAMS += tests/fuzz/fuzz_dnsd
tests_fuzz_fuzz_dnsd_SOURCES = tests/fuzz/fuzz_dnsd.c \
	tests/fuzz/fuzz_dnsd_wire.c tests/fuzz/replay.c src/event.c \
	src/util.c $(TEST_COMMON)
tests_fuzz_fuzz_dnsd_CFLAGS = $(TEST_CFLAGS)
tests_fuzz_fuzz_dnsd_LDADD = $(TEST_LIBS) $(NET_LIBS)
TESTS += tests/fuzz/run-dnsd.sh
EXTRA_DIST += tests/fuzz/run-dnsd.sh tests/fuzz/corpus/dnsd
