# src/: the programs and the modules they share.
# Module sources are added to src/libmxcommon.a by the fragment that owns
# them (see tests/unit/*.mk); this file holds the shared core and mains.
noinst_LIBRARIES += src/libmxcommon.a
src_libmxcommon_a_SOURCES = \
	src/util.c src/util.h \
	src/log.h

sbin_PROGRAMS += src/mxrelay
src_mxrelay_SOURCES = src/sendmail.c src/log.c
src_mxrelay_LDADD = queue/libqueue.a src/libmxcommon.a

# Links in the build tree so that argv[0] dispatch can be tried there.
noinst_SCRIPTS = src/mailq src/sendmail
src/mailq src/sendmail: src/mxrelay
	$(AM_V_GEN)rm -f $@ && $(LN_S) mxrelay $@
CLEANFILES += src/mailq src/sendmail
