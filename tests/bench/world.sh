# shellcheck shell=sh
# tests/bench/world.sh: sourced by bench_queue.sh and bench_domains.sh,
# which run `mxrelay -q` against a test world on loopback: dnsd serving
# the caller's zone and smtpsink listening on 127.0.0.10-19 (the caller's
# MX hosts), each with a lifetime so that it stops by itself.  Uses B, the
# build directory.
#
# bench_begin: T (a temporary directory, removed on exit with the helpers
# stopped), the filesystem of BENCH_LOOPFS (tests/bench/loopfs.sh) and
# spool, the spool's path on it.  The caller then writes its zone in
# $T/zone and calls bench_world LIFETIME: dnsd and the sinks are up
# (dport, port) and $T/conf is written for mxrelay, concurrency 100.
. "$(dirname "$0")/loopfs.sh"
pids=""
bench_begin() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/mxrelay-bench.XXXXXX")
	trap bench_end EXIT
	bench_loopfs "$T"
	spool=${M:-$T}/spool
}

# shellcheck disable=SC2317	# called from the trap
bench_end() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	bench_unloop
	rm -rf "$T"
}

# bench_world LIFETIME: dnsd on 127.0.0.1 (a free port, dport), the sinks
# on 127.0.0.10-19 (port) storing in $T/sink, logging to $T/sink.log.
bench_world() {
	"$B/tests/world/dnsd" -l 127.0.0.1:0 -z "$T/zone" -t "$1" > "$T/dnsd.out" 2>&1 &
	pids="$pids $!"
	while ! grep -q '^port ' "$T/dnsd.out"; do sleep 0.05; done
	dport=$(sed -n 's/^port //p' "$T/dnsd.out")
	port=$((20000 + $$ % 20000))
	ls=""
	for a in 10 11 12 13 14 15 16 17 18 19; do ls="$ls -l 127.0.0.$a:$port"; done
	mkdir "$T/sink"
	# shellcheck disable=SC2086
	"$B/tests/world/smtpsink" $ls -d "$T/sink" -L "$T/sink.log" -t "$1" > /dev/null &
	pids="$pids $!"
	while ! grep -q 'listen addr=127.0.0.19' "$T/sink.log" 2>/dev/null; do sleep 0.05; done
	cat > "$T/conf" <<EOC
hostname = relay.bench
spool_dir = $spool
runtime_dir = $T/run
dns_servers = 127.0.0.1:$dport
smtp_port = $port
listen =
concurrency = 100
domain_concurrency = 20
EOC
}
