# Helpers for the DKIM tests: keys, their records in the test DNS zone,
# and the two real verifiers (tests/e2e/dkimcheck.py).  Sourced after
# lib.sh and world.sh.
#
# dkimpy (python3-dkim) reads the public keys from the test DNS server
# through its dnsfunc hook (a stdlib DNS query in dkimcheck.py).
# opendkim-testmsg (opendkim-tools) has no option for a name server: its
# library asks the resolver of /etc/resolv.conf on port 53.  So it runs
# in a network namespace of its own (unshare -n, entered with nsenter -n)
# whose loopback carries the addresses of the name servers that
# /etc/resolv.conf lists (127.0.0.1 when it lists none), each answered by
# a dnsd of the test world on port 53 serving the same zone.  The host's
# network, /etc and resolver are not touched.  That needs root, unshare,
# nsenter and ip; without them only dkimpy verifies (said in a comment
# line).  OpenDKIM 2.11 verifies ed25519-sha256 (RFC 8463) as well.
DKIMCHECK_PY="${top_srcdir:-.}/tests/e2e/dkimcheck.py"
ODKIM=""

# dkim_require: DKIMPY, a python3 that imports dkim; skip (77) without
# dkimpy (and its dkimsign), opendkim-testmsg or openssl.
dkim_require() {
	DKIMPY=""
	for p in python3 /usr/bin/python3; do
		if "$p" -c 'import dkim' 2> /dev/null; then DKIMPY=$p; break; fi
	done
	[ -n "$DKIMPY" ] && command -v dkimsign > /dev/null ||
	    { echo "# dkimpy or its dkimsign missing (Debian: python3-dkim)"; exit 77; }
	command -v opendkim-testmsg > /dev/null ||
	    PATH="$PATH:/usr/sbin:/sbin" command -v opendkim-testmsg > /dev/null ||
	    { echo "# opendkim-testmsg missing (Debian: opendkim-tools)"; exit 77; }
	command -v openssl > /dev/null || { echo "# openssl missing"; exit 77; }
	PATH="$PATH:/usr/sbin:/sbin"
	export PATH
}

# dkim_key NAME rsa|ed25519 SELECTOR DOMAIN: a key in $T/keys/NAME.pem
# (openssl genpkey; RSA 2048), mode 0600, and its record line appended
# to $T/dkim.zone (give it to world_start: dkim_zone_lines).
dkim_key() {
	mkdir -p "$T/keys"
	case $2 in
	rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
	    -out "$T/keys/$1.pem" 2> "$T/err";;
	ed25519) openssl genpkey -algorithm ED25519 -out "$T/keys/$1.pem" 2> "$T/err";;
	esac || { cat "$T/err" >&2; fail "openssl genpkey $2"; }
	chmod 600 "$T/keys/$1.pem"
	"$DKIMPY" "$DKIMCHECK_PY" record "$3" "$4" "$T/keys/$1.pem" >> "$T/dkim.zone" ||
	    fail "no record for key $1"
}

# odkim_start: the namespace and name servers for opendkim-testmsg, on
# $T/zone (after world_start).  Sets ODKIM, the --opendkim prefix.
odkim_start() {
	if [ "$(id -u)" != 0 ] || ! command -v unshare > /dev/null ||
	    ! command -v nsenter > /dev/null || ! command -v ip > /dev/null; then
		echo "# opendkim-testmsg needs root, unshare, nsenter and ip: dkimpy verifies alone"
		return 0
	fi
	unshare -n sleep 900 &
	NS_PID=$!
	PIDS="$PIDS $NS_PID"
	i=0
	while [ "$(readlink /proc/$NS_PID/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do
		i=$((i + 1))
		[ $i -gt 200 ] && fail "unshare -n did not start"
		sleep 0.05
	done
	nsenter -t "$NS_PID" -n ip link set lo up || fail "ip link set lo up in the namespace"
	servers=$(sed -n 's/^[ \t]*nameserver[ \t]*\([^ \t#]*\).*/\1/p' /etc/resolv.conf 2> /dev/null | head -n 3)
	n=0
	for ns in ${servers:-127.0.0.1}; do
		n=$((n + 1))
		case $ns in
		*:*) nsenter -t "$NS_PID" -n ip -6 addr add "$ns/128" dev lo 2> /dev/null
			l="[$ns]:53";;
		*) nsenter -t "$NS_PID" -n ip addr add "$ns/32" dev lo 2> /dev/null
			l="$ns:53";;
		esac
		nsenter -t "$NS_PID" -n "$WORLD/dnsd" -l "$l" -z "$T/zone" -t 600 \
		    > "$T/nsdnsd$n.out" 2>&1 &
		PIDS="$PIDS $!"
		wait_for "$T/nsdnsd$n.out" '^port '
	done
	ODKIM="nsenter -t $NS_PID -n"
}

# dkim_check FILE [dkimcheck.py verify options]: both verifiers on FILE
# (a message as smtpsink stores it, or a bare one); their lines in
# $T/dkim.out, and on stderr when the checks fail.  Returns its status.
dkim_check() {
	f=$1
	shift
	"$DKIMPY" "$DKIMCHECK_PY" verify --dns "127.0.0.1:$DNS_PORT" \
	    ${ODKIM:+--opendkim "$ODKIM"} "$@" "$f" > "$T/dkim.out" 2>&1
	rc=$?
	cat "$T/dkim.out" >> "$T/all.log"
	return $rc
}

# dkim_pass FILE WHAT [options]: the signatures of FILE verify (fail otherwise).
dkim_pass() {
	f=$1 what=$2
	shift 2
	dkim_check "$f" "$@" || { cat "$T/dkim.out" "$f" >&2; fail "$what: does not verify"; }
}

# dkim_fails FILE WHAT [options]: every signature of FILE fails, with both.
dkim_fails() {
	f=$1 what=$2
	shift 2
	dkim_check "$f" --fail "$@" || { cat "$T/dkim.out" "$f" >&2; fail "$what: not refused by every verifier"; }
}

# new_msg ADDR: the one message the exchanger at ADDR stored since the
# last call (fails when there is not exactly one).
new_msg() {
	touch "$T/seen"
	find "$T/sink/$1" -type f ! -name '.*' | sort > "$T/now"
	nm=$(comm -13 "$T/seen" "$T/now")
	cp "$T/now" "$T/seen"
	[ -n "$nm" ] && [ "$(printf '%s\n' "$nm" | wc -l)" = 1 ] ||
	    fail "want one new message at $1, have: $nm"
	printf '%s\n' "$nm"
}
