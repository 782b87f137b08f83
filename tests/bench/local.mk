# tests/bench/local.mk: the benchmarks.  Never run by `make check` (not in
# TESTS); the load generator is built with the check programs so that the
# scripts find it in the build tree.
#   sh tests/bench/bench_queue.sh BUILDDIR [N]   mxrelay -q delivery rate
#   sh tests/bench/bench_smtpd.sh BUILDDIR [N]   mxrelayd end to end (issue 4)
#   sh tests/bench/bench_submit.sh BUILDDIR [N]  serial sendmail, root vs www-data (issue 9)
#   sh tests/bench/bench_domains.sh BUILDDIR [N] mxrelay -q, one domain per message (issue 10)
check_PROGRAMS += tests/bench/smtpload
tests_bench_smtpload_SOURCES = tests/bench/smtpload.c
EXTRA_DIST += tests/bench/loopfs.sh tests/bench/world.sh tests/bench/bench_queue.sh tests/bench/bench_smtpd.sh tests/bench/bench_submit.sh \
	tests/bench/bench_domains.sh
