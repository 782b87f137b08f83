#!/bin/sh
# Benchmark of `mxrelay -q` over many destinations (issue 10): queue N
# messages (default 20000), each to its own domain, whose exchangers are
# local sinks (smtpsink on 127.0.0.10-19, found through ten wildcard MX
# records so that dnsd answers at once), run the queue and report the CPU
# time, wall time and peak RSS of mxrelay -q.  The delivery engine's
# destination lookup and the number of DNS queries out at once are what
# this measures; bench_queue.sh measures many messages to few domains.
#
#   sh tests/bench/bench_domains.sh [BUILDDIR] [N]
#
# BENCH_LOOPFS=SIZE (as root) puts the spool on a fresh ext4 filesystem
# (tests/bench/loopfs.sh), as for the other benchmarks.
#
# Use an optimised build without sanitizers for figures, e.g.
#   mkdir /tmp/rel && cd /tmp/rel && /path/to/configure CFLAGS=-O2 && make
#   make tests/world/dnsd tests/world/smtpsink
# Everything runs on loopback and stops by itself (the helpers have a
# lifetime).
set -eu
B=$(cd "${1:-.}" && pwd)
N=${2:-20000}
. "$(dirname "$0")/world.sh"
bench_world 1800 10 '*.g%d.bench' 'mx%d.bench'
# smtp K: an SMTP session for mxrelay -bs that submits messages K, K+4,
# K+8, ... (four sessions at once; one process per message is ten times
# slower to queue).
smtp() {
	printf 'HELO bench\r\n'
	i=$1
	while [ "$i" -lt "$N" ]; do
		rcpt="u@d$i.g$((i % 10)).bench"
		printf 'MAIL FROM:<bench@relay.bench>\r\nRCPT TO:<%s>\r\nDATA\r\n' "$rcpt"
		printf 'From: bench@relay.bench\r\nTo: %s\r\nSubject: bench %d\r\n\r\n' "$rcpt" "$i"
		printf 'a small benchmark message body line\r\n.\r\n'
		i=$((i + 4))
	done
	printf 'QUIT\r\n'
}
echo "queueing $N messages for $N domains..."
for k in 0 1 2 3; do
	smtp $k > "$T/smtp$k"
	"$B/src/mxrelay" -C "$T/conf" -bs < "$T/smtp$k" > "$T/smtp$k.out" &
	eval "q$k=\$!"
done
# shellcheck disable=SC2154
wait "$q0" && wait "$q1" && wait "$q2" && wait "$q3"
queued=$(cat "$T"/smtp?.out | grep -c '^250 2.0.0 Ok: queued' || true)
[ "$queued" = "$N" ] || { echo "only $queued of $N queued" >&2; exit 1; }

start=$(date +%s.%N)
/usr/bin/time -f '%U %S %M' -o "$T/time" "$B/src/mxrelay" -C "$T/conf" -q
end=$(date +%s.%N)
got=$(find "$T/sink" -type f ! -name '.*' | wc -l)
left=$("$B/src/mxrelay" -C "$T/conf" -bp | grep -c '^[0-9a-f]\{20\} ' || true)
read -r user sys rss < "$T/time"
echo "delivered: $got of $N, left in queue: $left"
echo "mxrelay -q: CPU $(echo "$user + $sys" | bc -l | xargs printf '%.2f') s (user $user, sys $sys), wall $(echo "$end - $start" | bc -l | xargs printf '%.2f') s, peak RSS $rss KB"
