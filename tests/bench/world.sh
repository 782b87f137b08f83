# shellcheck shell=sh
# tests/bench/world.sh: sourced by bench_queue.sh and bench_domains.sh,
# which run `mxrelay -q` against a test world on loopback: dnsd and
# smtpsink on 127.0.0.10-19, each with a lifetime so that it stops by
# itself.  Uses B, the build directory.
#
# bench_world LIFETIME COUNT NAME HOST: the world for COUNT domains, NAME
# and HOST being printf formats of domain k (0 .. COUNT-1) and of its
# exchanger, which is at 127.0.0.(10 + k % 10).  Sets T (a temporary
# directory, removed on exit with the helpers stopped), spool (on the
# filesystem of BENCH_LOOPFS: tests/bench/loopfs.sh), dport and port (of
# dnsd and of the sinks, which store in $T/sink and log to $T/sink.log),
# and writes $T/conf for mxrelay: concurrency 100, 20 per domain.
. "$(dirname "$0")/loopfs.sh"
pids=""
bench_world() {
	T=$(mktemp -d "${TMPDIR:-/tmp}/mxrelay-bench.XXXXXX")
	trap bench_end EXIT
	bench_loopfs "$T"
	spool=${M:-$T}/spool
	bench_zone "$2" "$3" "$4" > "$T/zone"
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

# bench_zone COUNT NAME HOST: an MX and an A record for each domain.
bench_zone() {
	k=0
	while [ $k -lt "$1" ]; do
		# shellcheck disable=SC2059	# the formats are the caller's
		printf "$2 MX 10 $3\n$3 A 127.0.0.%d\n" "$k" "$k" "$k" $((10 + k % 10))
		k=$((k + 1))
	done
}

# shellcheck disable=SC2317	# called from the trap
bench_end() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	bench_unloop
	rm -rf "$T"
}
