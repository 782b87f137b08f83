#!/bin/sh
# End-to-end benchmark of mxrelayd (issue 4): N messages (default 10000)
# submitted over SMTP to the listener by 20 parallel clients
# (tests/bench/smtpload), delivered by the daemon to local sinks for 100
# domains (d0.test .. d99.test, MX on smtpsink at 127.0.0.2-5).  Reports
# the submission rate, the end-to-end rate (first connection of the load
# to the last message stored by a sink) and the peak RSS of mxrelayd
# (VmHWM, read just before SIGTERM).
# Before that, in the same run, the same load (smtpload with the same
# clients, messages, domains and body size) goes straight into a separate
# smtpsink on 127.0.0.6 (its own log and store, deleted before the relay's
# load, so never counted as the relay's deliveries): that one-hop rate is
# what the clients and a sink manage on this machine without the relay,
# and the run prints the submission and end-to-end rates as shares of it:
#   one-hop: N msgs in S s (R msg/s)
#   submission (ack) / one-hop: P%
#   end to end / one-hop: P%
# It also prints the CPU time per message (user + system, of the load
# generator, the sinks and mxrelayd, in each run) and the share that
# these allow when both runs use every core: the one-hop's CPU per
# message over the end to end run's.  When the one-hop saturates the
# cores, end to end can reach 50% only if mxrelayd's CPU per message is
# at most what the load and the sink of the one-hop use together.
#
#   sh tests/bench/bench_smtpd.sh BUILDDIR [N]
#
# BUILDDIR needs src/mxrelayd, src/mxrelay and the check programs
# tests/world/dnsd, tests/world/smtpsink and tests/bench/smtpload
# (make check builds them; or `make tests/world/dnsd tests/world/smtpsink
# tests/bench/smtpload`; $SMTPLOAD overrides the path of smtpload).  Use
# an optimised build without sanitizers for figures, e.g.
#   mkdir /tmp/rel && cd /tmp/rel && /path/to/configure CFLAGS='-O2 -g' && make
# Everything runs on loopback, is stopped by PID, and every wait is bounded
# (the helpers also stop by themselves after 900 s).  Exit 0 only when all
# N messages were acknowledged, delivered and gone from the queue.
# The spool lives in a temporary directory under $TMPDIR (default /tmp):
# the figures are those of that filesystem's fsync, and its type is
# printed.  The sinks stand for other hosts: they store what they get
# under $BENCH_SINKDIR (default /dev/shm when it is writable, else the
# spool's directory), so that their writes do not load the spool's disk.
# BENCH_LOOPFS=SIZE (as root, e.g. 4G) puts the spool on a fresh ext4
# filesystem with a journal, made for the run in a loop-mounted image
# under $TMPDIR: runs are then comparable, whatever the state of $TMPDIR
# (ext4 without a journal, for one, slows file creation after many
# deletions: it skips recently freed inodes).
# BENCH_KEEP=1 keeps the directories (logs, spool, sink) for a look.
# DKIM=off|rsa|ed25519 (default off): with rsa or ed25519, mxrelayd signs
# every message at intake (dkim_key = load.test bench KEY, smtpload's
# From: domain, with a key made for the run by openssl genpkey: RSA 2048
# or Ed25519); the run checks that a delivered message carries the
# signature.  Compare the submission rates of DKIM=off, rsa and ed25519.
set -eu
[ $# -ge 1 ] || { echo "usage: [DKIM=off|rsa|ed25519] bench_smtpd.sh BUILDDIR [N]" >&2; exit 2; }
DKIM=${DKIM:-off}
case $DKIM in
off|rsa|ed25519) ;;
*) echo "bench_smtpd: DKIM=$DKIM: off, rsa or ed25519" >&2; exit 2;;
esac
B=$(cd "$1" && pwd)
N=${2:-10000}
CLIENTS=20
DOMAINS=100
NSINKS=4			# exchangers on 127.0.0.2 .. 127.0.0.5
SINKS=$(i=0; while [ $i -lt $NSINKS ]; do printf '%d ' $((2 + i)); i=$((i + 1)); done)
SMTPLOAD=${SMTPLOAD:-$B/tests/bench/smtpload}
for p in src/mxrelayd src/mxrelay tests/world/dnsd tests/world/smtpsink; do
	[ -x "$B/$p" ] || { echo "bench_smtpd: $B/$p missing (make it first)" >&2; exit 2; }
done
[ -x "$SMTPLOAD" ] || { echo "bench_smtpd: $SMTPLOAD missing (make tests/bench/smtpload)" >&2; exit 2; }

T=$(mktemp -d "${TMPDIR:-/tmp}/mxrelay-bench.XXXXXX")
S=""		# the sinks' directory
. "$(dirname "$0")/loopfs.sh"	# M: the filesystem of BENCH_LOOPFS
pids=""
dpid=""
# shellcheck disable=SC2317	# called by the trap
cleanup() {
	for p in $dpid $pids; do kill "$p" 2>/dev/null || true; done
	for p in $dpid $pids; do wait "$p" 2>/dev/null || true; done
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		echo "kept: $T $S" >&2
	else
		[ -z "$S" ] || rm -rf "$S"
		[ -z "$M" ] || rm -rf "${M:?}/spool"
	fi
	bench_unloop
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "bench_smtpd: $*" >&2
	if [ -s "$T/d.log" ]; then
		echo "--- last lines of the mxrelayd log:" >&2
		tail -n 20 "$T/d.log" >&2
	fi
	exit 1
}

# wait_for FILE PATTERN [SECONDS]: a line matching PATTERN in FILE.
wait_for() {
	lim=$(( ${3:-10} * 20 ))
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le "$lim" ] || die "timed out waiting for '$2' in $1"
		sleep 0.05
	done
}

now() { date +%s.%N; }
# rate COUNT START END: COUNT per second, rounded.
rate() { awk -v n="$1" -v s="$2" -v e="$3" 'BEGIN { d = e - s; printf "%.0f", (d > 0 ? n / d : 0) }'; }
secs() { awk -v s="$1" -v e="$2" 'BEGIN { printf "%.2f", e - s }'; }
# cpu_parts PID: the CPU seconds of a running process, "USER SYSTEM"
# (fields 14, 15 of /proc/PID/stat, in ticks); cpu_of PID: their sum.
cpu_parts() { sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" \
    '{ printf "%.3f %.3f", $12 / hz, $13 / hz }'; }
cpu_of() { cpu_parts "$1" | awk '{ printf "%.3f", $1 + $2 }'; }
# cpu_load FILE: the CPU seconds that smtpload reported in FILE.
cpu_load() { awk '/^cpu user / { printf "%.3f", $3 + $5 }' "$1"; }
# usmsg SECONDS N: microseconds per message.
usmsg() { awk -v c="$1" -v n="$2" 'BEGIN { printf "%.0f", (n > 0 ? 1e6 * c / n : 0) }'; }

# DNS: 100 domains, MX spread over the sinks.
: > "$T/zone"
i=0
while [ $i -lt $DOMAINS ]; do
	echo "d$i.test MX 10 mx$((2 + i % NSINKS)).sink.test" >> "$T/zone"
	i=$((i + 1))
done
for a in $SINKS; do echo "mx$a.sink.test A 127.0.0.$a" >> "$T/zone"; done
"$B/tests/world/dnsd" -l 127.0.0.1:0 -z "$T/zone" -t 900 > "$T/dnsd.out" 2>&1 &
pids="$pids $!"
wait_for "$T/dnsd.out" '^port '
dport=$(sed -n 's/^port //p' "$T/dnsd.out")

# A free port (probed on 127.0.0.1): the listener there, the sinks on
# 127.0.0.2.. with the same number (smtp_port is one for all).
"$B/tests/world/smtpsink" -l 127.0.0.1:0 -L "$T/probe.log" -t 5 > /dev/null &
p=$!
wait_for "$T/probe.log" 'listen addr='
port=$(sed -n 's/.*listen addr=127.0.0.1:\([0-9]*\).*/\1/p' "$T/probe.log")
kill $p; wait $p 2>/dev/null || true

sdir=${BENCH_SINKDIR:-}
if [ -z "$sdir" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then sdir=/dev/shm; fi
S=$(mktemp -d "${sdir:-$T}/mxrelay-bench-sink.XXXXXX")
ls=""
for a in $SINKS; do ls="$ls -l 127.0.0.$a:$port"; done
# shellcheck disable=SC2086
"$B/tests/world/smtpsink" $ls -d "$S" -L "$T/sink.log" -n sink.test -t 900 > /dev/null &
spid=$!
pids="$pids $spid"
for a in $SINKS; do wait_for "$T/sink.log" "listen addr=127.0.0.$a:"; done

# The one-hop baseline: the same load straight into a sink of its own
# (127.0.0.6, a free port, its own -L log and -d store in $S/onehop),
# stopped and its store removed before the relay starts.
mkdir "$S/onehop"
"$B/tests/world/smtpsink" -l 127.0.0.6:0 -d "$S/onehop" -L "$T/onehop.log" \
    -n onehop.test -t 900 > /dev/null &
opid=$!
pids="$pids $opid"
wait_for "$T/onehop.log" 'listen addr=127.0.0.6:'
oport=$(sed -n 's/.*listen addr=127.0.0.6:\([0-9]*\).*/\1/p' "$T/onehop.log")
echo "one-hop: $N messages straight into smtpsink on 127.0.0.6:$oport ($CLIENTS clients, $DOMAINS domains)..."
orc=0
"$SMTPLOAD" -s "127.0.0.6:$oport" -c $CLIENTS -n "$N" -d $DOMAINS -t 30 -T 600 \
    > "$T/onehop.out" &
olpid=$!
pids="$pids $olpid"
wait "$olpid" || orc=$?
oacked=$(sed -n 's/^acked \([0-9]*\) of .*/\1/p' "$T/onehop.out")
osecs=$(sed -n 's/.*seconds \([0-9.]*\)$/\1/p' "$T/onehop.out")
if [ -z "$oacked" ] || [ -z "$osecs" ]; then die "one-hop smtpload failed ($orc)"; fi
[ "$orc" = 0 ] || echo "bench_smtpd: one-hop: $(cat "$T/onehop.out")" >&2
ocpu_sink=$(cpu_of "$opid")
ocpu_load=$(cpu_load "$T/onehop.out")
kill "$opid"
wait "$opid" 2>/dev/null || true
ostored=$(find "$S/onehop" -type f -name 'msg.*' | wc -l | tr -d ' ')
[ "$ostored" = "$oacked" ] ||
    echo "bench_smtpd: one-hop: $oacked acked but $ostored stored" >&2
rm -rf "${S:?}/onehop"
orate=$(rate "$oacked" 0 "$osecs")
echo "one-hop: $oacked msgs in $osecs s ($orate msg/s)"
# share RATE: RATE as a percentage of the one-hop rate.
share() { awk -v r="$1" -v o="$oacked" -v s="$osecs" \
    'BEGIN { o = (s > 0 ? o / s : 0); printf "%.0f%%", (o > 0 ? 100 * r / o : 0) }'; }

# The daemon drops root to `user`: it must reach the spool in $T.
chmod 755 "$T"
spool=$T/spool
bench_loopfs "$T"
[ -z "$M" ] || spool=$M/spool
# mxrelayd makes the spool itself, owned by its user (mxrelayd(8)).
sdir=$(dirname "$spool")
echo "spool: $spool ($(findmnt -n -o FSTYPE,SOURCE,OPTIONS -T "$sdir" 2>/dev/null || stat -f -c %T "$sdir")); sinks: $S"
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1; then
	duser=nobody
	dgroup=$(id -gn nobody)
else
	duser=$(id -un)
	dgroup=$(id -gn)
fi
cat > "$T/conf" <<EOC
hostname = relay.bench
spool_dir = $spool
runtime_dir = $T/run
listen = 127.0.0.1:$port
dns_servers = 127.0.0.1:$dport
smtp_port = $port
user = $duser
group = $dgroup
tls = none
concurrency = 100
domain_concurrency = 20
max_clients = 100
retry_min = 5s
EOC
if [ "$DKIM" != off ]; then
	case $DKIM in
	rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/dkim.key" 2> /dev/null;;
	ed25519) openssl genpkey -algorithm ED25519 -out "$T/dkim.key" 2> /dev/null;;
	esac || die "openssl genpkey failed"
	chmod 600 "$T/dkim.key"
	[ "$(id -u)" != 0 ] || chown "$duser" "$T/dkim.key"
	echo "dkim_key = load.test bench $T/dkim.key" >> "$T/conf"
fi
echo "DKIM signing: $DKIM"

"$B/src/mxrelayd" -f -C "$T/conf" > "$T/d.log" 2>&1 &
dpid=$!
i=0
while ! grep -q 'started (pid' "$T/d.log"; do
	kill -0 "$dpid" 2>/dev/null || {
		wait "$dpid" 2>/dev/null && rc=0 || rc=$?
		dpid=""
		die "mxrelayd exited ($rc) before it started"
	}
	i=$((i + 1))
	[ $i -le 200 ] || die "mxrelayd did not start within 10 s"
	sleep 0.05
done
grep -q 'listening on 127.0.0.1:' "$T/d.log" || die "mxrelayd is not listening"

# delivered: messages the sinks took (one "msg ... code=250" log line each).
delivered() { grep -c '^msg .*code=250' "$T/sink.log" || true; }

echo "submitting $N messages over SMTP ($CLIENTS clients, $DOMAINS domains)..."
start=$(now)
lrc=0
# In the background, so that a signal to this script is taken at once.
"$SMTPLOAD" -s "127.0.0.1:$port" -c $CLIENTS -n "$N" -d $DOMAINS -t 30 -T 600 \
    > "$T/load.out" &
lpid=$!
pids="$pids $lpid"
wait "$lpid" || lrc=$?
cat "$T/load.out"
acked=$(sed -n 's/^acked \([0-9]*\) of .*/\1/p' "$T/load.out")
lsecs=$(sed -n 's/.*seconds \([0-9.]*\)$/\1/p' "$T/load.out")
if [ -z "$acked" ] || [ -z "$lsecs" ]; then die "smtpload failed ($lrc)"; fi
echo "submitted: $acked acked in $lsecs s ($(rate "$acked" 0 "$lsecs") msg/s)"
srate=$(awk -v n="$acked" -v s="$lsecs" 'BEGIN { printf "%f", (s > 0 ? n / s : 0) }')

# Every acknowledged message delivered: bounded by 60 s + 50 ms a message.
lim=$(( (60 + N / 20) * 20 ))
i=0
while [ "$(delivered)" -lt "$acked" ]; do
	i=$((i + 1))
	if [ $i -gt $lim ] || ! kill -0 "$dpid" 2>/dev/null; then
		echo "bench_smtpd: gave up waiting: $(delivered) of $acked delivered" >&2
		break
	fi
	sleep 0.05
done
end=$(now)
got=$(find "$S" -type f -name 'msg.*' | wc -l | tr -d ' ')
echo "delivered: $got of $N in $(secs "$start" "$end") s end to end ($(rate "$got" "$start" "$end") msg/s)"
erate=$(awk -v n="$got" -v s="$start" -v e="$end" 'BEGIN { printf "%f", (e > s ? n / (e - s) : 0) }')
# With DKIM on, a delivered message carries the signature.
if [ "$DKIM" != off ] && [ "$got" -gt 0 ]; then
	f=$(find "$S" -type f -name 'msg.*' | head -n 1)
	tr -d '\r\n' < "$f" | grep -q "DKIM-Signature:.*a=$DKIM-sha256" ||
	    die "DKIM=$DKIM, but $f carries no $DKIM-sha256 signature"
fi

# The queue empties once the removals are flushed (bounded: 10 s).
queued() { "$B/src/mxrelay" -C "$T/conf" -bp 2>/dev/null | grep -c '^[0-9a-f]\{20\} ' || true; }
i=0
while left=$(queued) && [ "$left" -gt 0 ] && [ $i -lt 100 ]; do
	i=$((i + 1))
	sleep 0.1
done

rss=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$dpid/status")
scpu=$(cpu_of "$spid")
# CPU seconds of the daemon, read once for both figures.
dparts=$(cpu_parts "$dpid")
dcpu=$(echo "$dparts" | awk '{ printf "%.3f", $1 + $2 }')
cpu=$(echo "$dparts" | awk '{ printf "user %.2f s, system %.2f s", $1, $2 }')
echo "mxrelayd peak RSS: $rss KB"
kill -TERM "$dpid"
i=0
while kill -0 "$dpid" 2>/dev/null && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
if kill -0 "$dpid" 2>/dev/null; then
	echo "bench_smtpd: mxrelayd still running 10 s after SIGTERM: killed" >&2
	kill -KILL "$dpid"
fi
wait "$dpid" 2>/dev/null && drc=0 || drc=$?
dpid=""
echo "left in queue: $left"
conns=$(grep -c '^close ' "$T/sink.log" || true)
echo "(mxrelayd CPU: $cpu; outbound connections: $conns for $got messages)"
[ "$drc" = 0 ] || die "mxrelayd exited $drc after SIGTERM"
echo "submission (ack) / one-hop: $(share "$srate")"
echo "end to end / one-hop: $(share "$erate")"
lcpu=$(cpu_load "$T/load.out")
echo "CPU per message (user + system, us): one-hop: load $(usmsg "$ocpu_load" "$oacked"), sink $(usmsg "$ocpu_sink" "$oacked"); end to end: load $(usmsg "$lcpu" "$acked"), mxrelayd $(usmsg "$dcpu" "$got"), sinks $(usmsg "$scpu" "$got")"
echo "CPU-bound share (one-hop CPU per message / end to end's): $(awk \
    -v a="$ocpu_load" -v b="$ocpu_sink" -v n="$oacked" \
    -v c="$lcpu" -v d="$dcpu" -v e="$scpu" -v g="$got" 'BEGIN {
	o = (n > 0 ? (a + b) / n : 0); r = (g > 0 ? (c + d + e) / g : 0)
	printf "%.0f%%", (r > 0 ? 100 * o / r : 0) }')"
dups=$(awk -v g="$got" -v n="$acked" 'BEGIN { print (g > n) ? g - n : 0 }')
[ "$dups" = 0 ] || echo "bench_smtpd: $dups messages delivered more than once" >&2
[ "$lrc" = 0 ] && [ "$got" = "$N" ] && [ "$left" = 0 ] || exit 1
exit 0
