# tests/: cmocka unit tests (one program per module), fuzz corpora replays
# and end-to-end shell tests.
TEST_COMMON = tests/mock_log.c tests/mock_log.h
TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/tests
TEST_LIBS = $(CMOCKA_LIBS)

check_PROGRAMS += tests/unit/test_util
tests_unit_test_util_SOURCES = tests/unit/test_util.c src/util.c $(TEST_COMMON)
tests_unit_test_util_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_util_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_util

EXTRA_DIST += tests/fuzz/replay.c

include $(srcdir)/tests/unit/conf.mk
include $(srcdir)/tests/unit/message.mk
