# src/: every production source of the programs, and nothing else (the
# tests are listed under tests/).  ARCHITECTURE.md has the module map.
AM_CPPFLAGS += $(CARES_CFLAGS) $(OPENSSL_CFLAGS)

# Below the network: utilities, logging glue, configuration, aliases,
# messages, privileges, the control socket's wire format.
noinst_LIBRARIES += src/libmxcommon.a
src_libmxcommon_a_SOURCES = \
	src/util.c src/util.h src/hash.c src/hash.h src/heap.c src/heap.h \
	src/status.c src/status.h src/control.c src/control.h \
	src/privs.c src/privs.h \
	src/conf.c src/conf.h src/confval.c src/confval.h \
	src/aliases.c src/aliases.h \
	src/message.c src/message.h src/msg_addr.c src/msg_addr.h \
	src/utf8.c src/utf8.h src/msg_stream.c src/msg_stream.h \
	src/log.h src/outcome.h \
	src/json.c src/json.h src/record.c src/record.h
src_libmxcommon_a_SOURCES += src/metrics.c src/metrics.h
src_libmxcommon_a_SOURCES += src/dkim.c src/dkim.h
src_libmxcommon_a_SOURCES += src/dkim_keys.c src/dkim_keys.h
src_libmxcommon_a_SOURCES += src/sts_policy.c src/sts_policy.h src/tlsa.h

# The network side: event loop, io, TLS, DNS, SMTP protocol and client,
# delivery, scheduling, the queue manager, bounces, the listener.
noinst_LIBRARIES += src/libmxnet.a
src_libmxnet_a_SOURCES = \
	src/event.c src/event.h src/io.c src/io.h src/tls.c src/tls.h \
	src/dns.c src/dns.h \
	src/smtp_proto.c src/smtp_proto.h src/smtp_client.c src/smtp_client.h \
	src/smtp_client_int.h src/smtp_client_start.c src/smtp_client_tx.c \
	src/delivery.c src/delivery.h src/delivery_int.h src/delivery_sess.c \
	src/scheduler.c src/scheduler.h src/bounce.c src/bounce.h \
	src/qmgr.c src/qmgr.h src/qmgr_int.h src/qmgr_msg.c src/qmgr_index.c \
	src/pickup.c src/pickup.h \
	src/runner.c src/runner.h \
	src/smtpd.c src/smtpd.h src/smtpd_session.h src/smtpd_local.c \
	src/smtpd_commit.c src/smtpd_auth.c src/smtpd_auth.h \
	src/smtpd_authfail.c src/smtpd_authfail.h \
	src/smtpd_parse.c src/smtpd_parse.h src/workq.c src/workq.h \
	src/submit_bs.c src/submit_bs.h \
	src/delivery_relay.c \
	src/qadmin.c src/qadmin.h src/qmgr_admin.c \
	src/bounce_batch.c src/bounce_batch.h src/qmgr_dsn.c
src_libmxnet_a_SOURCES += src/runner_dkim.c
src_libmxnet_a_SOURCES += src/sts.c src/sts.h
NET_LIBS = $(CARES_LIBS) $(OPENSSL_LIBS)

# Logging to syslog or stderr; kept apart so that the unit tests can link
# the libraries above with tests/mock_log.c in its place.
noinst_LIBRARIES += src/libmxlog.a
src_libmxlog_a_SOURCES = src/log.c

# The libraries in link order, for the programs and the tests.
MX_LIBS = src/libmxnet.a queue/libqueue.a src/libmxcommon.a

sbin_PROGRAMS += src/mxrelay
src_mxrelay_SOURCES = src/sendmail.c src/sendmail_int.h \
	src/sendmail_submit.c src/sendmail_queue.c src/sendmail_admin.c
src_mxrelay_SOURCES += src/sendmail_stats.c
src_mxrelay_SOURCES += src/sendmail_json.c
src_mxrelay_SOURCES += src/sendmail_route.c
src_mxrelay_SOURCES += src/sendmail_dkim.c
src_mxrelay_LDADD = $(MX_LIBS) src/libmxlog.a $(NET_LIBS) $(CRYPT_LIBS)

sbin_PROGRAMS += src/mxrelayd
src_mxrelayd_SOURCES = src/mxrelayd.c src/mxrelayd.h src/mxrelayd_ctl.c \
	src/mxrelayd_admin.c
src_mxrelayd_SOURCES += src/mxrelayd_metrics.c
src_mxrelayd_LDADD = $(MX_LIBS) src/libmxlog.a $(NET_LIBS) $(CRYPT_LIBS)

# Links in the build tree so that argv[0] dispatch can be tried there.
noinst_SCRIPTS = src/mailq src/sendmail
src/mailq src/sendmail: src/mxrelay
	$(AM_V_GEN)rm -f $@ && $(LN_S) mxrelay $@
CLEANFILES += src/mailq src/sendmail
