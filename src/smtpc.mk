# src/smtpc.mk: SMTP protocol helpers, SMTP client and the test SMTP server.
src_libmxnet_a_SOURCES += src/smtp_proto.c src/smtp_proto.h src/smtp_client.c

check_PROGRAMS += tests/unit/test_smtp_proto
tests_unit_test_smtp_proto_SOURCES = tests/unit/test_smtp_proto.c \
	src/smtp_proto.c src/smtp_proto.h src/util.c $(TEST_COMMON)
tests_unit_test_smtp_proto_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smtp_proto_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_smtp_proto

# The reply parser's fuzz target, replayed over its corpus by `make check`.
check_PROGRAMS += tests/fuzz/fuzz_reply
tests_fuzz_fuzz_reply_SOURCES = tests/fuzz/fuzz_reply.c tests/fuzz/replay.c \
	src/smtp_proto.c src/util.c $(TEST_COMMON)
tests_fuzz_fuzz_reply_CFLAGS = $(TEST_CFLAGS)
tests_fuzz_fuzz_reply_LDADD = $(TEST_LIBS)
TESTS += tests/fuzz/run-reply.sh
EXTRA_DIST += tests/fuzz/run-reply.sh tests/fuzz/corpus/reply

# The scripted SMTP exchanger used by these tests, the e2e tests and the
# benchmark (tests/world/smtpsink.md).
check_PROGRAMS += tests/world/smtpsink
tests_world_smtpsink_SOURCES = tests/world/smtpsink.c src/smtp_proto.c \
	src/util.c src/log.c
tests_world_smtpsink_LDADD = $(NET_LIBS)
EXTRA_DIST += tests/world/smtpsink.md

# The client through the real loop and io against smtpsink, TLS tests
# (STARTTLS may/encrypt/verify, AUTH) included.
check_PROGRAMS += tests/unit/test_smtp_client
tests_unit_test_smtp_client_SOURCES = tests/unit/test_smtp_client.c \
	src/smtp_client.c src/smtp_proto.c src/io.c src/event.c src/tls.c \
	src/util.c $(TEST_COMMON)
tests_unit_test_smtp_client_CPPFLAGS = $(AM_CPPFLAGS) -DSMTPC_TEST_TLS \
	-DSMTPSINK_PATH='"$(abs_top_builddir)/tests/world/smtpsink"'
tests_unit_test_smtp_client_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smtp_client_LDADD = $(TEST_LIBS) $(NET_LIBS)
TESTS += tests/unit/test_smtp_client
