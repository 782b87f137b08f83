# src/smtpd.mk: the SMTP listener of mxrelayd (sources, unit tests).
src_libmxnet_a_SOURCES += src/smtpd.c src/smtpd.h src/workq.c src/workq.h

# The listener on a real loop, real loopback sockets and a real spool
# (queue/spool.c linked in for its failure-injection table); TLS tests use
# certificates made by tls-certs.sh, AUTH a users file made with
# `openssl passwd -6`.  Also the raw-read mode of src/io.c, and local
# sessions (mxrelay -bs, src/submit_bs.c) over pipes, files and ptys.
check_PROGRAMS += tests/unit/test_smtpd
tests_unit_test_smtpd_SOURCES = tests/unit/test_smtpd.c src/smtpd.c src/workq.c \
	src/submit_bs.c src/submit_bs.h src/smtp_proto.c src/io.c src/event.c \
	src/tls.c src/conf.c src/message.c src/util.c queue/spool.c \
	queue/envelope.c $(TEST_COMMON)
tests_unit_test_smtpd_CPPFLAGS = $(AM_CPPFLAGS) \
	-DTOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_smtpd_CFLAGS = $(TEST_CFLAGS) $(CRYPT_CFLAGS)
tests_unit_test_smtpd_LDADD = $(TEST_LIBS) $(NET_LIBS) $(CRYPT_LIBS)
TESTS += tests/unit/test_smtpd

# The commit threads' queue on its own: real threads and a real loop.
check_PROGRAMS += tests/unit/test_workq
tests_unit_test_workq_SOURCES = tests/unit/test_workq.c src/workq.c \
	src/event.c src/util.c $(TEST_COMMON)
tests_unit_test_workq_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_workq_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_workq
