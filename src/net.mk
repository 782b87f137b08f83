# src/net.mk: event loop, io, TLS (sources, unit tests).
src_libmxnet_a_SOURCES += src/event.c src/io.c src/tls.c

check_PROGRAMS += tests/unit/test_event
tests_unit_test_event_SOURCES = tests/unit/test_event.c src/event.c \
	src/util.c $(TEST_COMMON)
tests_unit_test_event_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_event_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_event

check_PROGRAMS += tests/unit/test_io
tests_unit_test_io_SOURCES = tests/unit/test_io.c src/io.c src/event.c \
	src/util.c $(TEST_COMMON)
tests_unit_test_io_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_io_LDADD = $(TEST_LIBS) $(NET_LIBS)
TESTS += tests/unit/test_io

# Certificates are made at test time by tls-certs.sh (openssl CLI);
# the test exits 77 (skip) when the openssl command is missing.
check_PROGRAMS += tests/unit/test_tls
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c src/tls.c src/io.c \
	src/event.c src/util.c $(TEST_COMMON)
tests_unit_test_tls_CPPFLAGS = $(AM_CPPFLAGS) \
	-DTOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_tls_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_tls_LDADD = $(TEST_LIBS) $(NET_LIBS)
TESTS += tests/unit/test_tls
EXTRA_DIST += tests/unit/tls-certs.sh
