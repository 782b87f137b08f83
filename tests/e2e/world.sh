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

# --- DNSSEC and MTA-STS parts (DANE and MTA-STS tests) ---
# A validating resolver (unbound) on loopback serves the signed test zones
# itself (auth-zone) and asks dnsd (stub-zone) for the insecure ones; the
# trust anchors are the test zones' own keys, there is no root anchor, so
# every other name is insecure.  stsd.py serves MTA-STS policies over
# HTTPS with the test CA's certificate.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
UB_AUTH=""

# need_dnssec_tools: skip the test (77) unless unbound, unbound-checkconf,
# ldns-keygen, ldns-signzone, dig and openssl are installed.
need_dnssec_tools() {
	for t in unbound unbound-checkconf ldns-keygen ldns-signzone dig openssl; do
		command -v "$t" > /dev/null 2>&1 && continue
		echo "# $t not installed (apt-get install unbound ldnsutils bind9-dnsutils openssl): skipped"
		exit 77
	done
}

# need_python: skip the test (77) without python3.
need_python() {
	command -v "$PY" > /dev/null 2>&1 ||
	    { echo "# python3 not installed: skipped"; exit 77; }
}

# zone_keys NAME: a KSK and a ZSK for NAME in $T/keys, made once; the KSK's
# DNSKEY becomes a trust anchor in $T/anchors.txt.  Sets KSK, ZSK (base
# names for ldns-signzone).
zone_keys() {
	mkdir -p "$T/keys"
	if [ ! -f "$T/keys/$1.ksk" ]; then
		( cd "$T/keys" &&
		  ldns-keygen -a ECDSAP256SHA256 -k "$1" > "$1.ksk" &&
		  ldns-keygen -a ECDSAP256SHA256 "$1" > "$1.zsk" ) ||
		    fail "ldns-keygen for $1"
		grep -v '^;' "$T/keys/$(cat "$T/keys/$1.ksk").key" >> "$T/anchors.txt"
	fi
	KSK="$T/keys/$(cat "$T/keys/$1.ksk")"
	ZSK="$T/keys/$(cat "$T/keys/$1.zsk")"
}

# make_signed_zone NAME SRC: sign the zone file SRC (with SOA and NS) for
# NAME into SRC.signed, NSEC without opt-out so that denials are secure
# too, and serve it from unbound (start_unbound, unbound_reload).  Signing
# again after a change keeps the keys and the anchor.
make_signed_zone() {
	zone_keys "$1"
	ldns-signzone -o "$1" -f "$2.signed" "$2" "$ZSK" "$KSK" ||
	    fail "ldns-signzone $1"
	case " $UB_AUTH " in
	*" $1=$2.signed "*) ;;
	*) UB_AUTH="$UB_AUTH $1=$2.signed" ;;
	esac
}

# anchor_only NAME: a trust anchor for NAME, whose zone stays unsigned
# (served by dnsd through start_unbound's stub): DNSSEC stripped, bogus.
anchor_only() {
	zone_keys "$1"
}

# free_port: a loopback port no one listened on a moment ago.
free_port() {
	"$PY" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# unbound_conf PORT STUBZONE...: the resolver's configuration.
unbound_conf() {
	ub_port=$1
	shift
	cat <<-CONF
	server:
		interface: 127.0.0.1@$ub_port
		port: $ub_port
		do-ip6: no
		num-threads: 1
		access-control: 127.0.0.0/8 allow
		username: ""
		chroot: ""
		directory: "$T"
		pidfile: "$T/unbound.pid"
		use-syslog: no
		logfile: "$T/unbound.log"
		verbosity: 1
		val-log-level: 2
		do-not-query-localhost: no
		module-config: "validator iterator"
		trust-anchor-file: "$T/anchors.txt"
		trust-anchor-signaling: no
		root-key-sentinel: no
		local-zone: "test." nodefault
		qname-minimisation: no
		val-bogus-ttl: 0
	CONF
	for z in $UB_AUTH; do
		printf 'auth-zone:\n\tname: "%s"\n\tzonefile: "%s"\n' "${z%%=*}" "${z#*=}"
		printf '\tfor-upstream: yes\n\tfor-downstream: no\n\tfallback-enabled: no\n'
	done
	for z in "$@"; do
		printf 'stub-zone:\n\tname: "%s"\n\tstub-addr: 127.0.0.1@%s\n' "$z" "$DNS_PORT"
	done
	printf 'remote-control:\n\tcontrol-enable: no\n'
}

# start_unbound [STUBZONE...]: the validating resolver on a free port,
# with the zones of make_signed_zone and, for each STUBZONE, dnsd (start
# it first).  Sets DNS_VAL_PORT and UNBOUND_PID.  A port taken between
# the pick and the bind is tried again, up to 5 times.
start_unbound() {
	touch "$T/anchors.txt"
	n=0
	while :; do
		n=$((n + 1))
		[ $n -gt 5 ] && fail "unbound did not start (5 tries): $(tail -n 3 "$T/unbound.log")"
		DNS_VAL_PORT=$(free_port) || fail "no free port"
		unbound_conf "$DNS_VAL_PORT" "$@" > "$T/unbound.conf"
		unbound-checkconf "$T/unbound.conf" > "$T/unbound.check" 2>&1 ||
		    { cat "$T/unbound.check" >&2; fail "unbound-checkconf"; }
		: > "$T/unbound.log"
		unbound -d -c "$T/unbound.conf" > "$T/unbound.out" 2>&1 &
		UNBOUND_PID=$!
		i=0
		while [ $i -lt 200 ] && kill -0 "$UNBOUND_PID" 2>/dev/null &&
		    ! grep -q 'start of service' "$T/unbound.log"; do
			i=$((i + 1))
			sleep 0.05
		done
		if grep -q 'start of service' "$T/unbound.log"; then
			PIDS="$PIDS $UNBOUND_PID"
			return 0
		fi
		kill "$UNBOUND_PID" 2>/dev/null
		wait "$UNBOUND_PID" 2>/dev/null
		cat "$T/unbound.log" "$T/unbound.out" >> "$T/unbound.failed"
	done
}

# vdig ARGS...: dig at the validating resolver.
vdig() {
	dig @127.0.0.1 -p "$DNS_VAL_PORT" +time=2 +tries=2 "$@"
}

# unbound_reload NAME TYPE: SIGHUP (zones and anchors read again, cache
# dropped), then up to 10 s until the answer for NAME TYPE changes.
unbound_reload() {
	ur_old=$(vdig +short "$1" "$2")
	: > "$T/unbound.log"
	kill -HUP "$UNBOUND_PID" || fail "unbound is gone"
	i=0
	while [ "$(vdig +short "$1" "$2")" = "$ur_old" ]; do
		i=$((i + 1))
		[ $i -gt 100 ] && fail "unbound_reload: $1 $2 unchanged"
		sleep 0.1
	done
}

# dig_flags NAME TYPE: "STATUS flags" of the resolver's answer, e.g.
# "NOERROR qr rd ra ad".
dig_flags() {
	vdig +noall +comments "$1" "$2" |
	    sed -n 's/.*status: \([A-Z]*\).*/\1/p; s/^;; flags: \([a-z ]*\);.*/\1/p' |
	    tr '\n' ' ' | sed 's/ $//'
}

# tlsa_311 CERT: the TLSA 3 1 1 data (SHA-256 of the key) for CERT.
tlsa_311() {
	openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER |
	    openssl dgst -sha256 -r | cut -d' ' -f1
}

# tlsa_201 CACERT: the TLSA 2 0 1 data (SHA-256 of the certificate).
tlsa_201() {
	openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1
}

# start_stsd MODE: the MTA-STS policy server (tests/world/stsd.py) on a
# free port with $STS_CERT/$STS_KEY (default good.pem/key in $T/certs),
# serving the file $T/sts-policy; each GET logged to $T/stsd.log.  A
# running one is stopped first.  Sets STS_PORT and STS_PID.
start_stsd() {
	stop_stsd
	: > "$T/stsd.out"
	"$PY" "$top_srcdir/tests/world/stsd.py" -c "${STS_CERT:-$T/certs/good.pem}" \
	    -k "${STS_KEY:-$T/certs/good.key}" -p "$T/sts-policy" -m "$1" \
	    -L "$T/stsd.log" -t 600 > "$T/stsd.out" 2> "$T/stsd.err" &
	STS_PID=$!
	PIDS="$PIDS $STS_PID"
	wait_for "$T/stsd.out" '^port '
	STS_PORT=$(sed -n 's/^port //p' "$T/stsd.out")
}

stop_stsd() {
	[ -n "${STS_PID:-}" ] || return 0
	kill "$STS_PID" 2>/dev/null
	wait "$STS_PID" 2>/dev/null
	PIDS=$(echo " $PIDS " | sed "s/ $STS_PID / /")
	STS_PID=""
}

# sts_gets: number of policy requests stsd has logged.
sts_gets() {
	if [ -f "$T/stsd.log" ]; then
		grep -c '^get ' "$T/stsd.log" || true
	else
		echo 0
	fi
}
