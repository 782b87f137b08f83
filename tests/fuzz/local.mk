# tests/fuzz/: libFuzzer targets for the parsers of untrusted input.
# `make check` builds each with replay.c and runs it over its corpus; see
# tests/fuzz/fuzz_addrlist.c for a real libFuzzer build.  Targets that need
# the libraries (fuzz_smtpd_auth): configure a build dir with CC=clang
# CFLAGS='-g -O1 -fsanitize=fuzzer-no-link,address,undefined', make its
# libraries, then link: clang -fsanitize=fuzzer,address,undefined ... -I$B
# -Isrc -Itests TARGET.c tests/mock_log.c $B/src/libmxnet.a
# $B/queue/libqueue.a $B/src/libmxcommon.a -lcares -lssl -lcrypto -lcrypt
# -lcmocka; run it as ./fuzz_x -max_len=4096 NEW_DIR tests/fuzz/corpus/x.
FUZZ_CFLAGS = $(TEST_CFLAGS)

check_PROGRAMS += tests/fuzz/fuzz_conf
tests_fuzz_fuzz_conf_SOURCES = tests/fuzz/fuzz_conf.c tests/fuzz/replay.c \
	$(TEST_COMMON)
tests_fuzz_fuzz_conf_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_conf_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-conf.sh

check_PROGRAMS += tests/fuzz/fuzz_addrlist tests/fuzz/fuzz_headers
tests_fuzz_fuzz_addrlist_SOURCES = tests/fuzz/fuzz_addrlist.c \
	tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_addrlist_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_addrlist_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_headers_SOURCES = tests/fuzz/fuzz_headers.c \
	tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_headers_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_headers_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-message.sh

check_PROGRAMS += tests/fuzz/fuzz_envelope
tests_fuzz_fuzz_envelope_SOURCES = tests/fuzz/fuzz_envelope.c \
	tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_envelope_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_envelope_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-envelope.sh

check_PROGRAMS += tests/fuzz/fuzz_reply
tests_fuzz_fuzz_reply_SOURCES = tests/fuzz/fuzz_reply.c tests/fuzz/replay.c \
	$(TEST_COMMON)
tests_fuzz_fuzz_reply_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_reply_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-reply.sh

# The DNS wire parsers: dnsd's queries and dns.c's responses.
check_PROGRAMS += tests/fuzz/fuzz_dnsd
tests_fuzz_fuzz_dnsd_SOURCES = tests/fuzz/fuzz_dnsd.c \
	tests/fuzz/fuzz_dnsd_wire.c tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_dnsd_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_dnsd_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-dnsd.sh

# A DNS answer as delivery gets it: c-ares' parsers, then dns.c's mapping.
check_PROGRAMS += tests/fuzz/fuzz_dns_answer
tests_fuzz_fuzz_dns_answer_SOURCES = tests/fuzz/fuzz_dns_answer.c \
	tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_dns_answer_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_dns_answer_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-dns-answer.sh
EXTRA_DIST += tests/fuzz/run-dns-answer.sh

# The listener: command lines, MAIL/RCPT paths and parameters, AUTH.
check_PROGRAMS += tests/fuzz/fuzz_smtpd_cmd tests/fuzz/fuzz_smtpd_auth
tests_fuzz_fuzz_smtpd_cmd_SOURCES = tests/fuzz/fuzz_smtpd_cmd.c \
	tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_smtpd_cmd_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtpd_cmd_LDADD = $(TEST_LDADD)
tests_fuzz_fuzz_smtpd_auth_SOURCES = tests/fuzz/fuzz_smtpd_auth.c \
	tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_smtpd_auth_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtpd_auth_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-smtpd.sh

EXTRA_DIST += tests/fuzz/replay.c \
	tests/fuzz/run-conf.sh tests/fuzz/run-message.sh \
	tests/fuzz/run-envelope.sh tests/fuzz/run-reply.sh tests/fuzz/run-dnsd.sh \
	tests/fuzz/run-smtpd.sh \
	tests/fuzz/corpus

# The listener's DATA decoder, cut where the fuzzer says.
check_PROGRAMS += tests/fuzz/fuzz_smtpd_data
tests_fuzz_fuzz_smtpd_data_SOURCES = tests/fuzz/fuzz_smtpd_data.c \
	tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_smtpd_data_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_smtpd_data_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-data.sh
EXTRA_DIST += tests/fuzz/run-data.sh
