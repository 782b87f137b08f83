# tests/unit/pickup.mk: the drop folder's pickup (src/pickup.c) against a
# real spool.
check_PROGRAMS += tests/unit/test_pickup
tests_unit_test_pickup_SOURCES = tests/unit/test_pickup.c src/pickup.c \
	queue/spool.c queue/envelope.c src/message.c src/util.c $(TEST_COMMON)
tests_unit_test_pickup_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_pickup_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_pickup
