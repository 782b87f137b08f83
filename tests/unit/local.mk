# tests/unit/: one cmocka program per module, linked against the same
# libraries as the programs (tests/mock_log.c stands in for src/log.c).
# Network tests use the test world (tests/world/) on loopback.

# Levels 0-2.
check_PROGRAMS += tests/unit/test_util
tests_unit_test_util_SOURCES = tests/unit/test_util.c $(TEST_COMMON)
tests_unit_test_util_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_util_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_util
check_PROGRAMS += tests/unit/test_control
tests_unit_test_control_SOURCES = tests/unit/test_control.c $(TEST_COMMON)
tests_unit_test_control_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_control_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_control
check_PROGRAMS += tests/unit/test_hash
tests_unit_test_hash_SOURCES = tests/unit/test_hash.c $(TEST_COMMON)
tests_unit_test_hash_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_hash_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_hash
check_PROGRAMS += tests/unit/test_heap
tests_unit_test_heap_SOURCES = tests/unit/test_heap.c $(TEST_COMMON)
tests_unit_test_heap_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_heap_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_heap
check_PROGRAMS += tests/unit/test_conf
tests_unit_test_conf_SOURCES = tests/unit/test_conf.c $(TEST_COMMON)
tests_unit_test_conf_CPPFLAGS = $(AM_CPPFLAGS) -DTOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_conf_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_conf_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_conf
check_PROGRAMS += tests/unit/test_aliases
tests_unit_test_aliases_SOURCES = tests/unit/test_aliases.c $(TEST_COMMON)
tests_unit_test_aliases_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_aliases_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_aliases
check_PROGRAMS += tests/unit/test_message
tests_unit_test_message_SOURCES = tests/unit/test_message.c $(TEST_COMMON)
tests_unit_test_message_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_message_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_message
check_PROGRAMS += tests/unit/test_envelope
tests_unit_test_envelope_SOURCES = tests/unit/test_envelope.c $(TEST_COMMON)
tests_unit_test_envelope_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_envelope_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_envelope
check_PROGRAMS += tests/unit/test_spool
tests_unit_test_spool_SOURCES = tests/unit/test_spool.c $(TEST_COMMON)
tests_unit_test_spool_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_spool_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_spool
check_PROGRAMS += tests/unit/test_spool_msg
tests_unit_test_spool_msg_SOURCES = tests/unit/test_spool_msg.c $(TEST_COMMON)
tests_unit_test_spool_msg_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_spool_msg_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_spool_msg

# The drop folder's pickup (src/pickup.c) against a real spool.
check_PROGRAMS += tests/unit/test_pickup
tests_unit_test_pickup_SOURCES = tests/unit/test_pickup.c $(TEST_COMMON)
tests_unit_test_pickup_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_pickup_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_pickup

# Retry arithmetic and the DSN builder.
check_PROGRAMS += tests/unit/test_scheduler
tests_unit_test_scheduler_SOURCES = tests/unit/test_scheduler.c $(TEST_COMMON)
tests_unit_test_scheduler_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_scheduler_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_scheduler
check_PROGRAMS += tests/unit/test_qmgr
tests_unit_test_qmgr_SOURCES = tests/unit/test_qmgr.c $(TEST_COMMON)
tests_unit_test_qmgr_CFLAGS = $(TEST_CFLAGS)
# The delivery engine is the test's, it can hold the envelope writes, and
# it watches the body reads (see the top of test_qmgr.c).
tests_unit_test_qmgr_LDFLAGS = \
	-Wl,--wrap=delivery_submit,--wrap=delivery_gc,--wrap=queue_env_update \
	-Wl,--wrap=pread
tests_unit_test_qmgr_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_qmgr
check_PROGRAMS += tests/unit/test_sched
tests_unit_test_sched_SOURCES = tests/unit/test_sched.c $(TEST_COMMON)
tests_unit_test_sched_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_sched_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_sched
check_PROGRAMS += tests/unit/test_bounce
tests_unit_test_bounce_SOURCES = tests/unit/test_bounce.c $(TEST_COMMON)
tests_unit_test_bounce_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_bounce_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_bounce

# The resolver against tests/world/dnsd.
check_PROGRAMS += tests/unit/test_dns
tests_unit_test_dns_SOURCES = tests/unit/test_dns.c $(TEST_COMMON)
tests_unit_test_dns_CPPFLAGS = $(AM_CPPFLAGS) -DDNSD_PATH='"$(abs_top_builddir)/tests/world/dnsd"'
tests_unit_test_dns_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_dns_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_dns

# Event loop, io; TLS with certificates made at test time by tls-certs.sh
# (openssl CLI; the test exits 77 when the openssl command is missing).
check_PROGRAMS += tests/unit/test_event
tests_unit_test_event_SOURCES = tests/unit/test_event.c $(TEST_COMMON)
tests_unit_test_event_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_event_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_event
check_PROGRAMS += tests/unit/test_io
tests_unit_test_io_SOURCES = tests/unit/test_io.c $(TEST_COMMON)
tests_unit_test_io_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_io_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_io
check_PROGRAMS += tests/unit/test_tls
tests_unit_test_tls_SOURCES = tests/unit/test_tls.c $(TEST_COMMON)
tests_unit_test_tls_CPPFLAGS = $(AM_CPPFLAGS) -DTOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_tls_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_tls_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_tls

# SMTP protocol helpers; the client through the real loop and io against
# smtpsink, TLS (STARTTLS may/encrypt/verify) and AUTH included.
check_PROGRAMS += tests/unit/test_smtp_proto
tests_unit_test_smtp_proto_SOURCES = tests/unit/test_smtp_proto.c $(TEST_COMMON)
tests_unit_test_smtp_proto_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smtp_proto_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_smtp_proto
check_PROGRAMS += tests/unit/test_smtp_client
tests_unit_test_smtp_client_SOURCES = tests/unit/test_smtp_client.c $(TEST_COMMON)
tests_unit_test_smtp_client_CPPFLAGS = $(AM_CPPFLAGS) -DSMTPC_TEST_TLS \
	-DSMTPSINK_PATH='"$(abs_top_builddir)/tests/world/smtpsink"'
tests_unit_test_smtp_client_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smtp_client_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_smtp_client

# The delivery engine on a real loop against dnsd and smtpsinks.
check_PROGRAMS += tests/unit/test_delivery
tests_unit_test_delivery_SOURCES = tests/unit/test_delivery.c $(TEST_COMMON)
tests_unit_test_delivery_CPPFLAGS = $(AM_CPPFLAGS) \
	-DDNSD_PATH='"$(abs_top_builddir)/tests/world/dnsd"' \
	-DSMTPSINK_PATH='"$(abs_top_builddir)/tests/world/smtpsink"'
tests_unit_test_delivery_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_delivery_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_delivery

# The listener on a real loop, real loopback sockets and a real spool
# (queue/spool.c's failure-injection table); TLS tests use certificates
# made by tls-certs.sh, AUTH a users file made with `openssl passwd -6`.
# Also the raw-read mode of src/io.c, and local sessions (mxrelay -bs,
# src/submit_bs.c) over pipes, files and ptys.
check_PROGRAMS += tests/unit/test_smtpd
tests_unit_test_smtpd_SOURCES = tests/unit/test_smtpd.c $(TEST_COMMON)
tests_unit_test_smtpd_CPPFLAGS = $(AM_CPPFLAGS) -DTOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_smtpd_CFLAGS = $(TEST_CFLAGS) $(CRYPT_CFLAGS)
# Which thread runs crypt_r() (see test_auth_abuse).
tests_unit_test_smtpd_LDFLAGS = -Wl,--wrap=crypt_r
tests_unit_test_smtpd_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_smtpd

# The listener's pure parsers (src/smtpd_parse.c) and AUTH without a
# session (src/smtpd_auth.c: SASL decoding, the users file).
check_PROGRAMS += tests/unit/test_smtpd_parse
tests_unit_test_smtpd_parse_SOURCES = tests/unit/test_smtpd_parse.c $(TEST_COMMON)
tests_unit_test_smtpd_parse_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smtpd_parse_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_smtpd_parse
check_PROGRAMS += tests/unit/test_smtpd_auth
tests_unit_test_smtpd_auth_SOURCES = tests/unit/test_smtpd_auth.c $(TEST_COMMON)
tests_unit_test_smtpd_auth_CFLAGS = $(TEST_CFLAGS) $(CRYPT_CFLAGS)
tests_unit_test_smtpd_auth_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_smtpd_auth
check_PROGRAMS += tests/unit/test_smtpd_authfail
tests_unit_test_smtpd_authfail_SOURCES = tests/unit/test_smtpd_authfail.c \
	$(TEST_COMMON)
tests_unit_test_smtpd_authfail_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_smtpd_authfail_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_smtpd_authfail

# The commit threads' queue on its own: real threads and a real loop.
check_PROGRAMS += tests/unit/test_workq
tests_unit_test_workq_SOURCES = tests/unit/test_workq.c $(TEST_COMMON)
tests_unit_test_workq_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_workq_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_workq

# Queue administration of one message: tables, then a real spool.
check_PROGRAMS += tests/unit/test_qadmin
tests_unit_test_qadmin_SOURCES = tests/unit/test_qadmin.c $(TEST_COMMON)
tests_unit_test_qadmin_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_qadmin_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_qadmin

EXTRA_DIST += tests/unit/tls-certs.sh

check_PROGRAMS += tests/unit/test_metrics
tests_unit_test_metrics_SOURCES = tests/unit/test_metrics.c $(TEST_COMMON)
tests_unit_test_metrics_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_metrics_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_metrics

check_PROGRAMS += tests/unit/test_record
tests_unit_test_record_SOURCES = tests/unit/test_record.c $(TEST_COMMON)
tests_unit_test_record_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_record_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_record

# UTF-8 checks and the header section of a message streaming in (pure).
check_PROGRAMS += tests/unit/test_msg_stream
tests_unit_test_msg_stream_SOURCES = tests/unit/test_msg_stream.c \
	$(TEST_COMMON)
tests_unit_test_msg_stream_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_msg_stream_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_msg_stream

check_PROGRAMS += tests/unit/test_bounce_batch
tests_unit_test_bounce_batch_SOURCES = tests/unit/test_bounce_batch.c \
	$(TEST_COMMON)
tests_unit_test_bounce_batch_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_bounce_batch_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_bounce_batch

check_PROGRAMS += tests/unit/test_dkim
tests_unit_test_dkim_SOURCES = tests/unit/test_dkim.c $(TEST_COMMON)
tests_unit_test_dkim_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_dkim_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_dkim

# MTA-STS texts (RFC 8461): TXT record, policy, mx patterns, HTTP pieces.
check_PROGRAMS += tests/unit/test_sts_policy
tests_unit_test_sts_policy_SOURCES = tests/unit/test_sts_policy.c $(TEST_COMMON)
tests_unit_test_sts_policy_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_sts_policy_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_sts_policy

# The MTA-STS engine against a policy server in the test and dnsd; sts.c
# is built in with STS_TEST_TXT so that the test answers its TXT lookups.
check_PROGRAMS += tests/unit/test_sts
tests_unit_test_sts_SOURCES = tests/unit/test_sts.c src/sts.c $(TEST_COMMON)
tests_unit_test_sts_CPPFLAGS = $(AM_CPPFLAGS) -DSTS_TEST_TXT \
	-DTOP_SRCDIR='"$(abs_top_srcdir)"' \
	-DDNSD_PATH='"$(abs_top_builddir)/tests/world/dnsd"'
tests_unit_test_sts_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_sts_LDADD = $(TEST_LDADD)
TESTS += tests/unit/test_sts
