# tests/world/: the test world (README there): an authoritative DNS server
# and a scripted SMTP exchanger, used by the unit, e2e and bench tests.
check_PROGRAMS += tests/world/dnsd
tests_world_dnsd_SOURCES = tests/world/dnsd.c

check_PROGRAMS += tests/world/smtpsink
tests_world_smtpsink_SOURCES = tests/world/smtpsink.c
tests_world_smtpsink_LDADD = $(MX_LIBS) src/libmxlog.a $(NET_LIBS)

EXTRA_DIST += tests/world/README tests/world/smtpsink.md
