# tests/: cmocka unit tests (one program per module), fuzz corpora
# replays, end-to-end shell tests and the benchmarks.  Only src/local.mk
# and queue/local.mk list production sources; every test program links
# the same libraries (MX_LIBS) as mxrelay and mxrelayd.
TEST_COMMON = tests/mock_log.c tests/mock_log.h tests/testutil.c tests/testutil.h
TEST_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/tests
TEST_LIBS = $(CMOCKA_LIBS)
TEST_LDADD = $(MX_LIBS) $(TEST_LIBS) $(NET_LIBS) $(CRYPT_LIBS)

include $(srcdir)/tests/unit/local.mk
include $(srcdir)/tests/fuzz/local.mk
include $(srcdir)/tests/world/local.mk
include $(srcdir)/tests/e2e/local.mk
include $(srcdir)/tests/bench/local.mk

AM_TESTS_ENVIRONMENT = top_builddir='$(top_builddir)'; top_srcdir='$(top_srcdir)'; \
	export top_builddir top_srcdir;
