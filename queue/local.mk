# queue/: the spool queue library.
noinst_LIBRARIES += queue/libqueue.a
queue_libqueue_a_SOURCES = \
	queue/envelope.h queue/spool.h
