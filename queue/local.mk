# queue/: the spool queue library (its tests are under tests/unit/).
noinst_LIBRARIES += queue/libqueue.a
queue_libqueue_a_SOURCES = \
	queue/envelope.c queue/envelope.h \
	queue/spool.c queue/spool.h queue/spool_test.h queue/spool_int.h \
	queue/spool_drop.c queue/spool_scan.c queue/spool_holds.c \
	queue/spool_msg.c
