# tests/: cmocka unit tests (one program per module), fuzz corpora replays
# and end-to-end shell tests.
TEST_COMMON = tests/mock_log.c tests/mock_log.h tests/testutil.c tests/testutil.h
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
include $(srcdir)/tests/unit/pickup.mk
include $(srcdir)/tests/bench/bench.mk

# End-to-end tests: real binaries, a real spool on disk.
check_PROGRAMS += tests/e2e/spoolcheck
tests_e2e_spoolcheck_SOURCES = tests/e2e/spoolcheck.c src/log.c
tests_e2e_spoolcheck_LDADD = src/libmxnet.a queue/libqueue.a src/libmxcommon.a
E2E_TESTS = tests/e2e/t_submit.sh tests/e2e/t_errors.sh tests/e2e/t_crash.sh \
	tests/e2e/t_delivery.sh tests/e2e/t_tls.sh tests/demo.sh \
	tests/e2e/t_install.sh tests/e2e/t_daemon.sh tests/e2e/t_smtpd.sh \
	tests/e2e/t_privs.sh tests/e2e/t_stranded.sh tests/e2e/t_bs.sh
TESTS += $(E2E_TESTS)
EXTRA_DIST += tests/e2e/lib.sh tests/e2e/world.sh tests/e2e/daemon.sh tests/e2e/certs.sh \
	tests/e2e/privs.sh \
	$(E2E_TESTS) \
	tests/e2e/smtpclient.py
AM_TESTS_ENVIRONMENT = top_builddir='$(top_builddir)'; top_srcdir='$(top_srcdir)'; \
	export top_builddir top_srcdir;
