# tests/fuzz/: libFuzzer targets for the parsers of untrusted input.
# `make check` builds each with replay.c and runs it over its corpus.  For
# real fuzzing: CC=clang ./configure --enable-fuzzing (the libraries get
# -fsanitize=fuzzer-no-link,address,undefined), then `make fuzz` builds
# each target as tests/fuzz/lf/fuzz_NAME, linked with libFuzzer instead of
# replay.c; run it as tests/fuzz/lf/fuzz_NAME -max_len=4096 NEW_DIR
# tests/fuzz/corpus/NAME.  A new target: its replay program and run
# script as below, and a FUZZ_LF block like those that follow.
FUZZ_CFLAGS = $(TEST_CFLAGS)

# libFuzzer programs (configure --enable-fuzzing): the same sources without
# replay.c, linked with -fsanitize=fuzzer.  A target adds its program to
# FUZZ_LF and its sources, with these CFLAGS, LDFLAGS and LDADD.
FUZZ_LF =
FUZZ_LF_LINK = $(AM_LDFLAGS) -fsanitize=fuzzer
EXTRA_PROGRAMS = $(FUZZ_LF)
CLEANFILES += $(FUZZ_LF)
.PHONY: fuzz
if FUZZING
fuzz: $(FUZZ_LF)
else
fuzz:
	@echo "make fuzz: configure with --enable-fuzzing CC=clang" >&2; exit 1
endif

FUZZ_LF += tests/fuzz/lf/fuzz_conf
tests_fuzz_lf_fuzz_conf_SOURCES = tests/fuzz/fuzz_conf.c $(TEST_COMMON)
tests_fuzz_lf_fuzz_conf_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_conf_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_conf_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_addrlist
tests_fuzz_lf_fuzz_addrlist_SOURCES = tests/fuzz/fuzz_addrlist.c $(TEST_COMMON)
tests_fuzz_lf_fuzz_addrlist_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_addrlist_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_addrlist_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_headers
tests_fuzz_lf_fuzz_headers_SOURCES = tests/fuzz/fuzz_headers.c $(TEST_COMMON)
tests_fuzz_lf_fuzz_headers_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_headers_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_headers_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_envelope
tests_fuzz_lf_fuzz_envelope_SOURCES = tests/fuzz/fuzz_envelope.c $(TEST_COMMON)
tests_fuzz_lf_fuzz_envelope_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_envelope_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_envelope_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_reply
tests_fuzz_lf_fuzz_reply_SOURCES = tests/fuzz/fuzz_reply.c $(TEST_COMMON)
tests_fuzz_lf_fuzz_reply_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_reply_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_reply_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_dnsd
tests_fuzz_lf_fuzz_dnsd_SOURCES = tests/fuzz/fuzz_dnsd.c \
	tests/fuzz/fuzz_dnsd_wire.c $(TEST_COMMON)
tests_fuzz_lf_fuzz_dnsd_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_dnsd_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_dnsd_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_dns_answer
tests_fuzz_lf_fuzz_dns_answer_SOURCES = tests/fuzz/fuzz_dns_answer.c \
	$(TEST_COMMON)
tests_fuzz_lf_fuzz_dns_answer_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_dns_answer_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_dns_answer_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_smtpd_cmd
tests_fuzz_lf_fuzz_smtpd_cmd_SOURCES = tests/fuzz/fuzz_smtpd_cmd.c \
	$(TEST_COMMON)
tests_fuzz_lf_fuzz_smtpd_cmd_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_smtpd_cmd_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_smtpd_cmd_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_smtpd_auth
tests_fuzz_lf_fuzz_smtpd_auth_SOURCES = tests/fuzz/fuzz_smtpd_auth.c \
	$(TEST_COMMON)
tests_fuzz_lf_fuzz_smtpd_auth_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_smtpd_auth_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_smtpd_auth_LDADD = $(TEST_LDADD)

FUZZ_LF += tests/fuzz/lf/fuzz_smtpd_data
tests_fuzz_lf_fuzz_smtpd_data_SOURCES = tests/fuzz/fuzz_smtpd_data.c \
	$(TEST_COMMON)
tests_fuzz_lf_fuzz_smtpd_data_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_smtpd_data_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_smtpd_data_LDADD = $(TEST_LDADD)

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

# The DKIM signer on any message, cut anywhere.
FUZZ_LF += tests/fuzz/lf/fuzz_dkim
tests_fuzz_lf_fuzz_dkim_SOURCES = tests/fuzz/fuzz_dkim.c $(TEST_COMMON)
tests_fuzz_lf_fuzz_dkim_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_dkim_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_dkim_LDADD = $(TEST_LDADD)
check_PROGRAMS += tests/fuzz/fuzz_dkim
tests_fuzz_fuzz_dkim_SOURCES = tests/fuzz/fuzz_dkim.c tests/fuzz/replay.c \
	$(TEST_COMMON)
tests_fuzz_fuzz_dkim_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_dkim_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-dkim.sh
EXTRA_DIST += tests/fuzz/run-dkim.sh

# MTA-STS: TXT record, policy body, HTTP response pieces.
FUZZ_LF += tests/fuzz/lf/fuzz_sts_policy
tests_fuzz_lf_fuzz_sts_policy_SOURCES = tests/fuzz/fuzz_sts_policy.c \
	$(TEST_COMMON)
tests_fuzz_lf_fuzz_sts_policy_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_lf_fuzz_sts_policy_LDFLAGS = $(FUZZ_LF_LINK)
tests_fuzz_lf_fuzz_sts_policy_LDADD = $(TEST_LDADD)
check_PROGRAMS += tests/fuzz/fuzz_sts_policy
tests_fuzz_fuzz_sts_policy_SOURCES = tests/fuzz/fuzz_sts_policy.c \
	tests/fuzz/replay.c $(TEST_COMMON)
tests_fuzz_fuzz_sts_policy_CFLAGS = $(FUZZ_CFLAGS)
tests_fuzz_fuzz_sts_policy_LDADD = $(TEST_LDADD)
TESTS += tests/fuzz/run-sts-policy.sh
EXTRA_DIST += tests/fuzz/run-sts-policy.sh
