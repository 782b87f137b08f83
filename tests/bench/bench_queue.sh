#!/bin/sh
# Benchmark of `mxrelay -q` (issue: delivery engine): queue N messages
# (default 10000) for 100 domains whose exchangers are local sinks
# (smtpsink on 127.0.0.10-19), run the queue with concurrency 100, and
# report messages per second and the peak RSS of mxrelay.
#
#   sh tests/bench/bench_queue.sh [BUILDDIR] [N]
#
# BENCH_LOOPFS=SIZE (as root) puts the spool on a fresh ext4 filesystem
# (tests/bench/loopfs.sh), as for bench_smtpd.sh.
#
# Use an optimised build without sanitizers for figures, e.g.
#   mkdir /tmp/rel && cd /tmp/rel && /path/to/configure CFLAGS=-O2 && make
#   make tests/world/dnsd tests/world/smtpsink
# Everything runs on loopback and stops by itself (sinks have a lifetime).
set -eu
B=$(cd "${1:-.}" && pwd)
N=${2:-10000}
. "$(dirname "$0")/world.sh"
bench_world 900 100 'd%d.bench' 'mx.d%d.bench'
echo "queueing $N messages for 100 domains..."
start=$(date +%s.%N)
i=0
while [ $i -lt "$N" ]; do
	printf 'From: bench@relay.bench\nTo: u%d@d%d.bench\nSubject: bench %d\n\n%s\n' \
	    $i $((i % 100)) $i "a small benchmark message body line" |
	    "$B/src/mxrelay" -C "$T/conf" -f bench@relay.bench "u$i@d$((i % 100)).bench"
	i=$((i + 1))
done
end=$(date +%s.%N)
echo "queued: $(echo "$N / ($end - $start)" | bc -l | xargs printf '%.0f') messages/s (one mxrelay process each)"

start=$(date +%s.%N)
/usr/bin/time -f '%M' -o "$T/rss" "$B/src/mxrelay" -C "$T/conf" -q
end=$(date +%s.%N)
got=$(find "$T/sink" -type f ! -name '.*' | wc -l)
left=$("$B/src/mxrelay" -C "$T/conf" -bp | grep -c '^[0-9a-f]\{20\} ' || true)
echo "delivered: $got of $N, left in queue: $left"
echo "mxrelay -q: $(echo "$N / ($end - $start)" | bc -l | xargs printf '%.0f') messages/s, $(echo "$end - $start" | bc -l | xargs printf '%.2f') s, peak RSS $(cat "$T/rss") KB"
