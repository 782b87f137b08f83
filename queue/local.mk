# queue/: the spool queue library, its unit tests and the envelope fuzz target.
noinst_LIBRARIES += queue/libqueue.a
queue_libqueue_a_SOURCES = \
	queue/envelope.c queue/envelope.h \
	queue/spool.c queue/spool.h queue/spool_test.h

check_PROGRAMS += tests/unit/test_envelope
tests_unit_test_envelope_SOURCES = tests/unit/test_envelope.c \
	queue/envelope.c src/util.c $(TEST_COMMON)
tests_unit_test_envelope_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_envelope_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_envelope

check_PROGRAMS += tests/unit/test_spool
tests_unit_test_spool_SOURCES = tests/unit/test_spool.c \
	queue/spool.c queue/envelope.c src/util.c $(TEST_COMMON)
tests_unit_test_spool_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_spool_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_spool

# The fuzz target replays its corpus under make check (tests/fuzz/replay.c).
check_PROGRAMS += tests/fuzz/fuzz_envelope
tests_fuzz_fuzz_envelope_SOURCES = tests/fuzz/fuzz_envelope.c \
	tests/fuzz/replay.c queue/envelope.c src/util.c $(TEST_COMMON)
tests_fuzz_fuzz_envelope_CFLAGS = $(TEST_CFLAGS)
tests_fuzz_fuzz_envelope_LDADD = $(TEST_LIBS)
TESTS += tests/fuzz/run-envelope.sh
EXTRA_DIST += tests/fuzz/run-envelope.sh tests/fuzz/corpus/envelope
