# src/bounce.mk: DSN builder and retry arithmetic (sources, unit tests).
src_libmxnet_a_SOURCES += src/bounce.c src/bounce.h src/scheduler.c src/scheduler.h

check_PROGRAMS += tests/unit/test_scheduler
tests_unit_test_scheduler_SOURCES = tests/unit/test_scheduler.c \
	src/scheduler.c src/scheduler.h queue/envelope.c src/util.c \
	$(TEST_COMMON)
tests_unit_test_scheduler_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_scheduler_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_scheduler

check_PROGRAMS += tests/unit/test_bounce
tests_unit_test_bounce_SOURCES = tests/unit/test_bounce.c \
	src/bounce.c src/bounce.h queue/spool.c queue/envelope.c src/util.c \
	$(TEST_COMMON)
tests_unit_test_bounce_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_bounce_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_bounce
