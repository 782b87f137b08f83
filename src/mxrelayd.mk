# src/mxrelayd.mk: the daemon: listener, scheduler (qmgr) and control socket.
sbin_PROGRAMS += src/mxrelayd
src_mxrelayd_SOURCES = src/mxrelayd.c src/log.c
src_mxrelayd_LDADD = src/libmxnet.a queue/libqueue.a src/libmxcommon.a \
	$(NET_LIBS) $(CRYPT_LIBS)
