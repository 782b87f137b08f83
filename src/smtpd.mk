# src/smtpd.mk: the SMTP listener of mxrelayd (sources, unit tests).
src_libmxnet_a_SOURCES += src/smtpd.c src/smtpd.h
