# src/: the programs and the modules they share.
# Module sources are added to the libraries by the fragment that owns them
# (tests/unit/*.mk, src/*.mk); this file holds the shared core and mains.
AM_CPPFLAGS += $(CARES_CFLAGS) $(OPENSSL_CFLAGS)

# Levels 0-2 without network code: util, log, conf, aliases, message.
noinst_LIBRARIES += src/libmxcommon.a
src_libmxcommon_a_SOURCES = \
	src/util.c src/util.h src/control.c src/control.h \
	src/privs.c src/privs.h \
	src/log.h src/outcome.h

# The network side: event loop, io, TLS, DNS, SMTP client, delivery.
noinst_LIBRARIES += src/libmxnet.a
src_libmxnet_a_SOURCES = src/event.h src/io.h src/tls.h src/dns.h \
	src/smtp_client.h \
	src/delivery.c src/delivery.h src/runner.c src/runner.h \
	src/qmgr.c src/qmgr.h src/pickup.c src/pickup.h
NET_LIBS = $(CARES_LIBS) $(OPENSSL_LIBS)

sbin_PROGRAMS += src/mxrelay
src_mxrelay_SOURCES = src/sendmail.c src/log.c src/submit_bs.c src/submit_bs.h
src_mxrelay_LDADD = src/libmxnet.a queue/libqueue.a src/libmxcommon.a $(NET_LIBS) \
	$(CRYPT_LIBS)

# Links in the build tree so that argv[0] dispatch can be tried there.
noinst_SCRIPTS = src/mailq src/sendmail
src/mailq src/sendmail: src/mxrelay
	$(AM_V_GEN)rm -f $@ && $(LN_S) mxrelay $@
CLEANFILES += src/mailq src/sendmail

include $(srcdir)/src/net.mk
include $(srcdir)/src/dns.mk
include $(srcdir)/src/smtpc.mk
include $(srcdir)/src/bounce.mk
include $(srcdir)/src/smtpd.mk
include $(srcdir)/src/mxrelayd.mk
