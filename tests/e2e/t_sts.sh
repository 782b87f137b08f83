#!/bin/sh
# End to end: MTA-STS (RFC 8461).  dnsd publishes _mta-sts.sts.test (no
# DNSSEC needed), tests/world/stsd.py serves the policy over HTTPS with a
# certificate of the test CA, given to mxrelay as mta_sts_ca_file; the
# exchanger mx.sts.test is an smtpsink on 127.0.0.6.  Each case delivers a
# real message with `mxrelay -q` (one case with mxrelayd):
#   enforce      enforce, MX in the policy, CA-signed certificate:
#                delivered with tls=TLSv1.x/sts, one GET, policy cached
#   notlisted    enforce, the MX not in the policy: deferred 4.7.0, the
#                exchanger never contacted
#   badcert      enforce, MX listed, self-signed certificate: deferred,
#                no MAIL, no clear-text retry
#   testing      testing, the MX not in the policy: delivered, logged
#                "would fail"
#   restart      mxrelayd fetches and delivers, is stopped, stsd is
#                stopped, mxrelayd starts again: the policy comes from
#                SPOOL/sts and still applies (tls=.../sts, no GET, the
#                session counted as policy sts, result success)
#   big          a policy over 64 KiB (it names another MX): refused,
#                delivered as without a policy, nothing cached
#   redirect     a 301: not followed, delivered as without a policy
#   slow         no answer within mta_sts_timeout: the same
#
# "Fails when the feature is off": MXRELAY_T_OFF=1 writes `mta_sts = no`
# into the configuration; MXRELAY_T_CASES="enforce big" runs only those
# cases.  Each case must fail when run alone that way (not part of make
# check):
#   for c in enforce notlisted badcert testing restart big redirect slow; do
#       MXRELAY_T_OFF=1 MXRELAY_T_CASES=$c make check TESTS=tests/e2e/t_sts.sh
#   done
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

command -v openssl > /dev/null || { echo "# openssl not installed"; exit 77; }
need_python
ALL="enforce notlisted badcert nostarttls testing testing_nomatch restart big redirect slow"
CASES=${MXRELAY_T_CASES:-$ALL}
OFF=${MXRELAY_T_OFF:-0}
ID=20261202T0001

C="$T/certs"
mkdir "$C"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$C" mta-sts.sts.test mx.sts.test ||
    fail "making certificates"
# The daemon drops to $DUSER, who reads the CA file.
chmod 755 "$C"
chmod 644 "$C/ca.pem"

cat > "$T/zone" <<EOF
_mta-sts.sts.test TXT v=STSv1;id=$ID;
sts.test MX 10 mx.sts.test
mx.sts.test A 127.0.0.6
mta-sts.sts.test A 127.0.0.1
EOF
start_dnsd "$T/zone"
pick_port

# policy MODE MX...: the policy stsd serves.
policy() {
	pm=$1
	shift
	{
		printf 'version: STSv1\r\nmode: %s\r\n' "$pm"
		for m in "$@"; do printf 'mx: %s\r\n' "$m"; done
		printf 'max_age: 86400\r\n'
	} > "$T/sts-policy"
}

# conf [key = value...]: the world with the policy server's port and CA,
# the fetch timeout $STS_TIMEOUT; mta_sts left at its default unless
# MXRELAY_T_OFF=1.
STS_TIMEOUT=5s
conf() {
	if [ "$OFF" = 1 ]; then
		world_conf "mta_sts_port = $STS_PORT" "mta_sts_ca_file = $C/ca.pem" \
		    "mta_sts_timeout = $STS_TIMEOUT" "mta_sts = no" "$@"
	else
		world_conf "mta_sts_port = $STS_PORT" "mta_sts_ca_file = $C/ca.pem" \
		    "mta_sts_timeout = $STS_TIMEOUT" "$@"
	fi
}

# delivered_tls RCPT AUTH [LOG]: RCPT delivered over TLS authenticated as
# AUTH, by the log line of the last run (or LOG).
delivered_tls() {
	grep -E -- "to=<$1>, .*tls=TLSv1\.[0-9]/$2, .*status=sent" "${3:-$T/log}" > /dev/null ||
	    { cat "${3:-$T/log}" >&2; fail "$1 not delivered with tls=TLSv1.x/$2"; }
}

# not_cached: no policy file in the spool.
not_cached() {
	[ ! -e "$SPOOL/sts/sts.test" ] || fail "a refused policy was cached"
}

# gets N: stsd was asked N times, for mta-sts.sts.test (Host and SNI).
gets() {
	[ "$(sts_gets)" = "$1" ] ||
	    { cat "$T/stsd.log" >&2; fail "$(sts_gets) policy fetches, want $1"; }
	[ "$1" = 0 ] && return 0
	n=$(grep -c 'host=mta-sts.sts.test sni=mta-sts.sts.test ' "$T/stsd.log")
	[ "$n" = "$1" ] || { cat "$T/stsd.log" >&2; fail "fetch without Host or SNI mta-sts.sts.test"; }
}

case_enforce() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy enforce mx.sts.test
	start_stsd ok
	conf
	sink 127.0.0.6 -c "$C/good.pem" -k "$C/good.key"
	send x@sts.test; run_queue
	delivered_tls x@sts.test sts
	log_has "mta-sts: sts.test: policy id=$ID mode=enforce max_age=86400 fetched"
	gets 1
	[ -s "$SPOOL/sts/sts.test" ] || fail "policy not cached in SPOOL/sts"
	ok "enforce, MX listed, CA-signed certificate: delivered tls=.../sts, one fetch, cached"
}

case_notlisted() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy enforce other.sts.test "*.elsewhere.test"
	start_stsd ok
	conf
	sink 127.0.0.6 -c "$C/good.pem" -k "$C/good.key"
	send x@sts.test; run_queue
	log_has "to=<x@sts.test>" "dsn=4.7.0" "status=deferred"
	[ "$(grep -c '^connect ' "$T/sink/127.0.0.6.log")" = 0 ] ||
	    fail "the exchanger not in the policy was contacted"
	ok "enforce, MX not in the policy: deferred 4.7.0, exchanger not contacted"
}

case_badcert() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy enforce mx.sts.test
	start_stsd ok
	conf
	sink 127.0.0.6 -c "$C/self.pem" -k "$C/self.key"
	send x@sts.test; run_queue
	log_has "to=<x@sts.test>" "status=deferred"
	[ "$(received 127.0.0.6)" = 0 ] || fail "delivered to an unverified exchanger"
	! grep -q '^mail ' "$T/sink/127.0.0.6.log" || fail "MAIL sent"
	nc=$(grep -c '^connect ' "$T/sink/127.0.0.6.log")
	ns=$(grep -c '^starttls ' "$T/sink/127.0.0.6.log")
	[ "$nc" = "$ns" ] || fail "$nc connections, $ns with STARTTLS: a clear-text retry"
	ok "enforce, MX listed, self-signed certificate: deferred, no MAIL, no clear-text retry"
}

# enforce, MX listed, STARTTLS not offered (an on-path attacker strips it):
# deferred 4.7.4, never sent in clear.
case_nostarttls() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy enforce mx.sts.test
	start_stsd ok
	conf
	sink 127.0.0.6
	send x@sts.test; run_queue
	log_has "to=<x@sts.test>" "dsn=4.7.4" "status=deferred"
	[ "$(received 127.0.0.6)" = 0 ] || fail "delivered in clear under enforce"
	! grep -q '^mail ' "$T/sink/127.0.0.6.log" || fail "MAIL sent in clear"
	ok "enforce, STARTTLS not offered: deferred 4.7.4, nothing in clear"
}
case_testing() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy testing other.sts.test
	start_stsd ok
	conf
	sink 127.0.0.6 -c "$C/self.pem" -k "$C/self.key"
	send x@sts.test; run_queue
	delivered_tls x@sts.test unverified
	log_has "mta-sts: sts.test: testing: mx.sts.test: would fail"
	ok "testing, MX not in the policy: delivered, logged 'would fail'"
}

# RFC 8461 §5 / RFC 8460: under testing, an exchanger that matches none of
# the policy's mx patterns is what enforce would refuse, whatever its
# certificate: it must be reported (logged "would fail"), not counted a
# success.
case_testing_nomatch() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy testing other.sts.test
	start_stsd ok
	conf
	sink 127.0.0.6 -c "$C/good.pem" -k "$C/good.key"
	send x@sts.test; run_queue
	delivered_tls x@sts.test verified
	log_has "mta-sts: sts.test: testing: mx.sts.test: would fail"
	ok "testing, MX not in the policy, good certificate: delivered, logged 'would fail'"
}
case_restart() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy enforce mx.sts.test
	start_stsd ok
	# One message per connection: a session is counted when it closes.
	conf "listen =" "user = $DUSER" "group = $DGROUP" "connection_reuse_limit = 1"
	sink 127.0.0.6 -c "$C/good.pem" -k "$C/good.key"
	daemon_start
	send a@sts.test
	within 20 got 127.0.0.6 1 || { cat "$T/d.log" >&2; fail "first message not delivered"; }
	within 5 queue_empty || fail "first message still queued"
	delivered_tls a@sts.test sts "$T/d.log"
	gets 1
	daemon_stop
	stop_stsd
	[ -s "$SPOOL/sts/sts.test" ] || fail "policy not cached in SPOOL/sts"
	cp "$T/d.log" "$T/d1.log"
	daemon_start
	send b@sts.test
	within 20 got 127.0.0.6 2 || { cat "$T/d.log" >&2; fail "second message not delivered"; }
	within 5 queue_empty || fail "second message still queued"
	delivered_tls b@sts.test sts "$T/d.log"
	grep -qF "mta-sts: sts.test: policy id=$ID from cache" "$T/d.log" ||
	    { cat "$T/d.log" >&2; fail "policy not loaded from the cache"; }
	gets 1
	within 10 sink_closed 2 || fail "the sessions to mx.sts.test did not close"
	"$MXRELAY" stats -C "$CONF" > "$T/stats.txt" 2> "$T/err" ||
	    { cat "$T/err" >&2; fail "mxrelay stats failed"; }
	grep -qF 'mxrelay_tls_sessions_total{domain="sts.test",policy="sts",result="success"} 1' \
	    "$T/stats.txt" || { grep tls "$T/stats.txt" >&2; fail "no sts/success session counted"; }
	daemon_stop
	ok "policy cache survives a daemon restart with the policy server down (still tls=.../sts)"
}

# sink_closed N: the exchanger logged N closed connections.
sink_closed() {
	[ "$(grep -c '^close ' "$T/sink/127.0.0.6.log")" -ge "$1" ]
}

# refused MODE TEXT: stsd in MODE serves an enforce policy naming another
# MX: refused with TEXT logged, delivered as without MTA-STS, not cached.
refused() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy enforce other.sts.test
	start_stsd "$1"
	conf
	sink 127.0.0.6 -c "$C/self.pem" -k "$C/self.key"
	send x@sts.test; run_queue
	delivered_tls x@sts.test unverified
	log_has "mta-sts: sts.test: policy fetch failed:" "$2"
	not_cached
	[ "$(sts_gets)" -ge 1 ] || fail "no fetch"
}

case_big() {
	refused big "over 64 KiB"
	ok "policy over 64 KiB (naming another MX): refused, delivered as without a policy, not cached"
}

case_redirect() {
	refused redirect "redirect (HTTP 3xx) refused"
	ok "policy answer 301: redirect not followed, delivered as without a policy, not cached"
}

case_slow() {
	sinks_stop; fresh; rm -f "$T/stsd.log"
	policy enforce other.sts.test
	start_stsd slow
	STS_TIMEOUT=2s
	conf
	STS_TIMEOUT=5s
	sink 127.0.0.6 -c "$C/self.pem" -k "$C/self.key"
	send x@sts.test; run_queue
	delivered_tls x@sts.test unverified
	log_has "mta-sts: sts.test: policy fetch failed:"
	not_cached
	stop_stsd
	ok "policy server silent past mta_sts_timeout: delivered as without a policy, not cached"
}

for c in $CASES; do
	case " $ALL " in
	*" $c "*) "case_$c" ;;
	*) fail "no case '$c' (cases: $ALL)" ;;
	esac
done
echo "1..$NOK"
