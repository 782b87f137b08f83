# tests/unit/message.mk: owned by the message module (sources, unit tests, fuzz target).
src_libmxcommon_a_SOURCES += src/message.c src/message.h

check_PROGRAMS += tests/unit/test_message
tests_unit_test_message_SOURCES = tests/unit/test_message.c \
	src/message.c src/message.h src/util.c $(TEST_COMMON)
tests_unit_test_message_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_message_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_message

# Fuzz targets, built with replay.c so that `make check` runs their corpora;
# see tests/fuzz/fuzz_addrlist.c for a real libFuzzer build.
check_PROGRAMS += tests/fuzz/fuzz_addrlist tests/fuzz/fuzz_headers
tests_fuzz_fuzz_addrlist_SOURCES = tests/fuzz/fuzz_addrlist.c \
	tests/fuzz/replay.c src/message.c src/util.c $(TEST_COMMON)
tests_fuzz_fuzz_addrlist_CFLAGS = $(TEST_CFLAGS)
tests_fuzz_fuzz_addrlist_LDADD = $(TEST_LIBS)
tests_fuzz_fuzz_headers_SOURCES = tests/fuzz/fuzz_headers.c \
	tests/fuzz/replay.c src/message.c src/util.c $(TEST_COMMON)
tests_fuzz_fuzz_headers_CFLAGS = $(TEST_CFLAGS)
tests_fuzz_fuzz_headers_LDADD = $(TEST_LIBS)
TESTS += tests/fuzz/run-message.sh

EXTRA_DIST += tests/fuzz/run-message.sh \
	tests/fuzz/corpus/addrlist tests/fuzz/corpus/headers
