# tests/unit/conf.mk: owned by the conf module (sources, unit tests, fuzz target).
src_libmxcommon_a_SOURCES += src/conf.c src/conf.h src/aliases.c src/aliases.h

check_PROGRAMS += tests/unit/test_conf
tests_unit_test_conf_SOURCES = tests/unit/test_conf.c src/conf.c src/util.c \
	$(TEST_COMMON)
tests_unit_test_conf_CPPFLAGS = $(AM_CPPFLAGS) \
	-DTOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_conf_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_conf_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_conf

check_PROGRAMS += tests/unit/test_aliases
tests_unit_test_aliases_SOURCES = tests/unit/test_aliases.c src/aliases.c \
	src/util.c $(TEST_COMMON)
tests_unit_test_aliases_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_aliases_LDADD = $(TEST_LIBS)
TESTS += tests/unit/test_aliases

# The fuzz target, replayed over its corpus by `make check`.
check_PROGRAMS += tests/fuzz/fuzz_conf
tests_fuzz_fuzz_conf_SOURCES = tests/fuzz/fuzz_conf.c tests/fuzz/replay.c \
	src/conf.c src/aliases.c src/util.c $(TEST_COMMON)
tests_fuzz_fuzz_conf_CFLAGS = $(TEST_CFLAGS)
tests_fuzz_fuzz_conf_LDADD = $(TEST_LIBS)
TESTS += tests/fuzz/run-conf.sh
EXTRA_DIST += tests/fuzz/run-conf.sh \
	tests/fuzz/corpus/conf/aliases-bad \
	tests/fuzz/corpus/conf/aliases-loop \
	tests/fuzz/corpus/conf/bad-cidr.conf \
	tests/fuzz/corpus/conf/bad-listen.conf \
	tests/fuzz/corpus/conf/comments.conf \
	tests/fuzz/corpus/conf/cross.conf \
	tests/fuzz/corpus/conf/duplicate.conf \
	tests/fuzz/corpus/conf/full.conf \
	tests/fuzz/corpus/conf/garbage.conf \
	tests/fuzz/corpus/conf/unknown-key.conf
