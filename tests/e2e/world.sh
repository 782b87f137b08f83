# The test world for delivery tests: a DNS server and SMTP exchangers on
# loopback, all started and stopped by PID.  Sourced after lib.sh.
WORLD="$top_builddir/tests/world"
PIDS=""
SINK_PIDS=""

world_cleanup() {
	for p in $SINK_PIDS $PIDS; do kill "$p" 2>/dev/null; done
	for p in $SINK_PIDS $PIDS; do wait "$p" 2>/dev/null; done
	cleanup
}
trap world_cleanup EXIT

# wait_for FILE PATTERN: up to 10 s for a line in FILE.
wait_for() {
	i=0
	while ! grep -q "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 200 ] && fail "timed out waiting for '$2' in $1"
		sleep 0.05
	done
}

# start_dnsd ZONEFILE: sets DNS_PORT.
start_dnsd() {
	"$WORLD/dnsd" -l 127.0.0.1:0 -z "$1" -q "$T/dnsq" -t 600 > "$T/dnsd.out" 2>&1 &
	PIDS="$PIDS $!"
	wait_for "$T/dnsd.out" '^port '
	DNS_PORT=$(sed -n 's/^port //p' "$T/dnsd.out")
}

# pick_port: a free TCP port for every exchanger (they differ by address).
pick_port() {
	"$WORLD/smtpsink" -l 127.0.0.1:0 -L "$T/probe.log" -t 5 &
	p=$!
	wait_for "$T/probe.log" 'listen addr='
	SMTP_PORT=$(sed -n 's/.*listen addr=127.0.0.1:\([0-9]*\).*/\1/p' "$T/probe.log")
	kill $p; wait $p 2>/dev/null
	rm -f "$T/probe.log"
}

# sink ADDR [smtpsink options...]: an exchanger on ADDR:$SMTP_PORT that
# stores messages in $T/sink/ADDR and logs to $T/sink/ADDR.log.
sink() {
	a=$1
	shift
	mkdir -p "$T/sink/$a"
	"$WORLD/smtpsink" -l "$a:$SMTP_PORT" -d "$T/sink/$a" -L "$T/sink/$a.log" \
	    -n "sink-$a" -t 600 "$@" &
	SINK_PIDS="$SINK_PIDS $!"
	wait_for "$T/sink/$a.log" 'listen addr='
}

sinks_stop() {
	for p in $SINK_PIDS; do kill "$p" 2>/dev/null; done
	for p in $SINK_PIDS; do wait "$p" 2>/dev/null; done
	SINK_PIDS=""
	rm -rf "$T/sink"
}

# received ADDR: number of messages the exchanger at ADDR stored.
received() {
	if [ -d "$T/sink/$1" ]; then
		find "$T/sink/$1" -type f ! -name '.*' | wc -l | tr -d ' '
	else
		echo 0
	fi
}

# world_conf [key = value ...]: config pointing at the test world; the
# arguments add keys or replace the defaults below.
world_conf() {
	set -- "dns_servers = 127.0.0.1:$DNS_PORT" "smtp_port = $SMTP_PORT" \
	    "listen = 127.0.0.99:$SMTP_PORT" "dns_timeout = 2s" "dns_tries = 1" \
	    "smtp_connect_timeout = 5s" "smtp_greeting_timeout = 5s" \
	    "smtp_helo_timeout = 5s" "smtp_mail_timeout = 5s" \
	    "smtp_rcpt_timeout = 5s" "smtp_data_timeout = 5s" \
	    "smtp_dot_timeout = 5s" "retry_min = 1m" "retry_max = 1h" -- "$@"
	defaults="" extra=""
	while [ "$1" != "--" ]; do defaults="$defaults
$1"; shift; done
	shift
	for l in "$@"; do extra="$extra
$l"; done
	keys=$(printf '%s\n' "$extra" | sed -n 's/^\([a-z_]*\) *=.*/\1/p')
	lines=$(printf '%s\n' "$defaults" | while IFS= read -r l; do
		k=${l%% *}
		[ -n "$l" ] && ! printf '%s\n' "$keys" | grep -qx "$k" && printf '%s\n' "$l"
	done)
	IFS='
'
	# shellcheck disable=SC2086
	write_conf $lines $extra
	unset IFS
}

# send RCPT [mxrelay options]: queue one small message.
send() {
	r=$1
	shift
	printf 'From: Sender <sender@sender.test>\nTo: %s\nSubject: test\n\nhello\n' "$r" |
	    mx -f sender@sender.test "$@" "$r" || fail "queueing for $r failed"
}

# run_queue [flags]: mxrelay -q -v, its log in $T/log.
run_queue() {
	mx -v "${@:--q}" > "$T/log" 2>&1
	rc=$?
	cat "$T/log" >> "$T/all.log"
	[ "$rc" = 0 ] || { cat "$T/log" >&2; fail "mxrelay ${*:--q} exited $rc"; }
}

# log_has PATTERN...: the last run's log has a line matching every pattern.
log_has() {
	lines=$(cat "$T/log")
	for pat in "$@"; do
		lines=$(printf '%s\n' "$lines" | grep -F -- "$pat")
	done
	[ -n "$lines" ] || { cat "$T/log" >&2; fail "no log line with: $*"; }
}

log_lacks() {
	! grep -qF -- "$1" "$T/log" || { cat "$T/log" >&2; fail "log has '$1'"; }
}

# fresh: a new empty spool for the next case.
fresh() {
	n_fresh=$(( ${n_fresh:-0} + 1 ))
	SPOOL="$T/spool$n_fresh"
}
