#!/bin/sh
# End to end: DANE for SMTP (RFC 7672) with a validating resolver.
# unbound on loopback serves the zone sec.test, signed here with
# ldns-signzone, and validates it against the test's own trust anchor;
# plain.test (insecure) and strip.test (anchored but served unsigned: DNSSEC
# stripped) come from dnsd behind it.  Each case delivers a real message
# with `mxrelay -q` (tls is left at its default) to an smtpsink exchanger:
#   ee           TLSA 3 1 1 of the server key: delivered, tls=TLSv1.x/dane
#   ta           TLSA 2 0 1 of the test CA (chain sent): delivered, /dane
#   mismatch     the zone re-signed with another key's TLSA: deferred
#                4.7.5, STARTTLS but never MAIL, no clear-text retry
#   nostarttls   secure TLSA, STARTTLS not offered: deferred 4.7.4
#   unusable     only a TLSA 0 0 1 (unusable for SMTP), no STARTTLS:
#                TLS is still mandatory, deferred 4.7.4
#   per_domain   tls = may with tls_policy = ee.sec.test dane: /dane;
#                tls_policy = DOMAIN may: no DANE (delivered in clear)
#   insecure     plain.test through the resolver: as tls = may (delivered
#                to a self-signed certificate, tls=.../unverified)
#   direct       plain.test with dnsd itself as dns_servers: the same
#   bogus_tlsa   TLSA changed after signing (to the server's real key):
#                deferred 4.7.5, the exchanger never contacted
#   bogus_a      the exchanger's A changed after signing: deferred
#   bogus_aaaa   secure A and TLSA, but its AAAA changed after signing
#                (bogus), STARTTLS not offered: deferred 4.7.4, never
#                delivered in clear (a bogus AAAA must not turn DANE off)
#   strip        strip.test anchored but unsigned: deferred
#
# "Fails when the feature is off": MXRELAY_T_OFF=1 writes `tls = may`
# (no DANE) into the configuration (per_domain: no tls_policy dane);
# MXRELAY_T_CASES="ee ta" runs only those cases.  Each of ee ta mismatch
# nostarttls unusable per_domain bogus_tlsa bogus_aaaa must fail when run
# alone that way; world insecure direct bogus_a strip pass
# (with or without DANE, which is their point: the resolver or the old
# behaviour decides).  Not part of make check:
#   for c in ee ta mismatch nostarttls unusable per_domain bogus_tlsa \
#       bogus_aaaa; do
#       MXRELAY_T_OFF=1 MXRELAY_T_CASES=$c make check TESTS=tests/e2e/t_dane.sh
#   done
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"

need_dnssec_tools
need_python
ALL="world ee ta mismatch nostarttls unusable per_domain insecure direct bogus_tlsa bogus_a bogus_aaaa strip"
CASES=${MXRELAY_T_CASES:-$ALL}
OFF=${MXRELAY_T_OFF:-0}

C="$T/certs"
mkdir "$C" "$T/zones"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$C" mx.ee.sec.test mx.ta.sec.test \
    mx.nostarttls.sec.test mx.unusable.sec.test mx.btlsa.sec.test \
    mx.ba.sec.test mx.b6.sec.test mx.plain.test mx.strip.test ||
    fail "making certificates"
GOOD=$(tlsa_311 "$C/good.pem")
WRONG=$(tlsa_311 "$C/wrong.pem")
CAD=$(tlsa_201 "$C/ca.pem")

pick_port
P=$SMTP_PORT

# sign_sec EE_DIGEST: sec.test with mx.ee's TLSA 3 1 1 EE_DIGEST, signed,
# then two records changed after signing (bogus): mx.btlsa's TLSA gets the
# server's real key, mx.ba's A the address of a listening exchanger.
SERIAL=0
sign_sec() {
	SERIAL=$((SERIAL + 1))
	cat > "$T/zones/sec.test" <<-EOF
	\$ORIGIN sec.test.
	\$TTL 300
	@	SOA ns.sec.test. host.sec.test. $SERIAL 3600 600 86400 300
	@	NS ns.sec.test.
	ns	A 127.0.0.1
	ee	MX 10 mx.ee
	mx.ee	A 127.0.0.2
	_$P._tcp.mx.ee	TLSA 3 1 1 $1
	ta	MX 10 mx.ta
	mx.ta	A 127.0.0.3
	_$P._tcp.mx.ta	TLSA 2 0 1 $CAD
	nostarttls	MX 10 mx.nostarttls
	mx.nostarttls	A 127.0.0.5
	_$P._tcp.mx.nostarttls	TLSA 3 1 1 $GOOD
	unusable	MX 10 mx.unusable
	mx.unusable	A 127.0.0.6
	_$P._tcp.mx.unusable	TLSA 0 0 1 $CAD
	btlsa	MX 10 mx.btlsa
	mx.btlsa	A 127.0.0.7
	_$P._tcp.mx.btlsa	TLSA 3 1 1 $WRONG
	ba	MX 10 mx.ba
	mx.ba	A 127.0.0.18
	_$P._tcp.mx.ba	TLSA 3 1 1 $GOOD
	b6	MX 10 mx.b6
	mx.b6	A 127.0.0.11
	mx.b6	AAAA ::1
	_$P._tcp.mx.b6	TLSA 3 1 1 $GOOD
	EOF
	make_signed_zone sec.test "$T/zones/sec.test"
	awk -v t="_$P._tcp.mx.btlsa.sec.test." -v good="$GOOD" '
	    $1 == t && $4 == "TLSA" { $8 = good; n++ }
	    $1 == "mx.ba.sec.test." && $4 == "A" { $5 = "127.0.0.8"; n++ }
	    $1 == "mx.b6.sec.test." && $4 == "AAAA" { $5 = "::2"; n++ }
	    { print }
	    END { if (n != 3) exit 1 }' "$T/zones/sec.test.signed" > "$T/zones/tmp" ||
	    fail "tampering with the signed zone"
	mv "$T/zones/tmp" "$T/zones/sec.test.signed"
}
sign_sec "$GOOD"
anchor_only strip.test

cat > "$T/zone" <<EOF
plain.test MX 10 mx.plain.test
mx.plain.test A 127.0.0.9
strip.test MX 10 mx.strip.test
mx.strip.test A 127.0.0.10
EOF
start_dnsd "$T/zone"
start_unbound plain.test strip.test

# conf [key = value...]: the test world through the validating resolver;
# tls left at its default unless MXRELAY_T_OFF=1.
conf() {
	if [ "$OFF" = 1 ]; then
		world_conf "dns_servers = 127.0.0.1:$DNS_VAL_PORT" "tls = may" "$@"
	else
		world_conf "dns_servers = 127.0.0.1:$DNS_VAL_PORT" "$@"
	fi
}

# delivered_tls RCPT AUTH: the last run delivered RCPT over TLS
# authenticated as AUTH, and the exchanger stored it with TLS.
delivered_tls() {
	grep -E -- "to=<$1>, .*tls=TLSv1\.[0-9]/$2, .*status=sent" "$T/log" > /dev/null ||
	    { cat "$T/log" >&2; fail "$1 not delivered with tls=TLSv1.x/$2"; }
}

# untouched ADDR: the exchanger at ADDR got no connection at all.
untouched() {
	[ "$(grep -c '^connect ' "$T/sink/$1.log")" = 0 ] ||
	    { cat "$T/sink/$1.log" >&2; fail "exchanger $1 was contacted"; }
}

# no_mail ADDR: no message and no MAIL at ADDR, and every connection
# there started TLS (no clear-text retry).
no_mail() {
	[ "$(received "$1")" = 0 ] || fail "exchanger $1 stored a message"
	! grep -q '^mail ' "$T/sink/$1.log" ||
	    { cat "$T/sink/$1.log" >&2; fail "MAIL sent to $1"; }
	nc=$(grep -c '^connect ' "$T/sink/$1.log")
	ns=$(grep -c '^starttls ' "$T/sink/$1.log")
	[ "$nc" = "$ns" ] ||
	    { cat "$T/sink/$1.log" >&2; fail "$1: $nc connections, $ns with STARTTLS"; }
}

case_world() {
	[ "$(dig_flags ee.sec.test MX)" = "NOERROR qr rd ra ad" ] ||
	    fail "sec.test MX not secure: $(dig_flags ee.sec.test MX)"
	[ "$(dig_flags "_$P._tcp.mx.ee.sec.test" TLSA)" = "NOERROR qr rd ra ad" ] ||
	    fail "TLSA not secure"
	got=$(vdig +short "_$P._tcp.mx.ee.sec.test" TLSA | tr -d ' ' | tr A-F a-f)
	[ "$got" = "311$GOOD" ] || fail "TLSA of mx.ee.sec.test is '$got'"
	[ "$(dig_flags nx.sec.test A)" = "NXDOMAIN qr rd ra ad" ] ||
	    fail "no secure denial: $(dig_flags nx.sec.test A)"
	[ "$(dig_flags "_$P._tcp.mx.btlsa.sec.test" TLSA)" = "SERVFAIL qr rd ra" ] ||
	    fail "tampered TLSA not bogus"
	[ "$(dig_flags mx.ba.sec.test A)" = "SERVFAIL qr rd ra" ] || fail "tampered A not bogus"
	[ "$(dig_flags strip.test MX)" = "SERVFAIL qr rd ra" ] || fail "stripped zone not bogus"
	[ "$(dig_flags plain.test MX)" = "NOERROR qr rd ra" ] ||
	    fail "plain.test: $(dig_flags plain.test MX)"
	ok "world: secure answers and denial with AD, tampered and stripped data SERVFAIL, plain.test insecure"
}

case_ee() {
	sinks_stop; fresh; conf
	sink 127.0.0.2 -c "$C/chain.pem" -k "$C/good.key"
	send x@ee.sec.test; run_queue
	delivered_tls x@ee.sec.test dane
	grep -q '^TLS: TLSv1' "$T/sink/127.0.0.2"/* || fail "not stored with TLS"
	ok "TLSA 3 1 1 matching the server key: delivered, tls=.../dane"
}

case_ta() {
	sinks_stop; fresh; conf
	sink 127.0.0.3 -c "$C/chain.pem" -k "$C/good.key"
	send x@ta.sec.test; run_queue
	delivered_tls x@ta.sec.test dane
	ok "TLSA 2 0 1 of the issuing CA (DANE-TA): delivered, tls=.../dane"
}

case_mismatch() {
	# The zone re-signed with the TLSA of another key (a key rollover
	# gone wrong, or an attacker's server): the same exchanger fails.
	sign_sec "$WRONG"
	unbound_reload "_$P._tcp.mx.ee.sec.test" TLSA
	sinks_stop; fresh; conf
	sink 127.0.0.2 -c "$C/chain.pem" -k "$C/good.key"
	send x@ee.sec.test; run_queue
	log_has "to=<x@ee.sec.test>" "dsn=4.7.5" "status=deferred"
	grep -q '^starttls ' "$T/sink/127.0.0.2.log" || fail "STARTTLS never tried"
	no_mail 127.0.0.2
	sign_sec "$GOOD"
	unbound_reload "_$P._tcp.mx.ee.sec.test" TLSA
	ok "TLSA mismatch: deferred 4.7.5, STARTTLS but no MAIL, no clear-text retry"
}

case_nostarttls() {
	sinks_stop; fresh; conf
	sink 127.0.0.5 --no-starttls -c "$C/chain.pem" -k "$C/good.key"
	send x@nostarttls.sec.test; run_queue
	log_has "to=<x@nostarttls.sec.test>" "dsn=4.7.4" "status=deferred"
	[ "$(received 127.0.0.5)" = 0 ] || fail "sent without STARTTLS"
	! grep -q '^mail ' "$T/sink/127.0.0.5.log" || fail "MAIL sent in clear"
	ok "secure TLSA, STARTTLS stripped: deferred 4.7.4, no MAIL"
}

case_unusable() {
	sinks_stop; fresh; conf
	sink 127.0.0.6 --no-starttls -c "$C/chain.pem" -k "$C/good.key"
	send x@unusable.sec.test; run_queue
	log_has "to=<x@unusable.sec.test>" "dsn=4.7.4" "status=deferred"
	[ "$(received 127.0.0.6)" = 0 ] || fail "sent without STARTTLS"
	ok "secure TLSA set with no usable record: TLS still mandatory (deferred 4.7.4 without STARTTLS)"
}

case_per_domain() {
	# tls = may, but tls_policy asks DANE for the domain.
	sinks_stop; fresh
	vconf="dns_servers = 127.0.0.1:$DNS_VAL_PORT"
	if [ "$OFF" = 1 ]; then
		world_conf "$vconf" "tls = may"
	else
		world_conf "$vconf" "tls = may" "tls_policy = ee.sec.test dane"
	fi
	sink 127.0.0.2 -c "$C/chain.pem" -k "$C/good.key"
	send x@ee.sec.test; run_queue
	delivered_tls x@ee.sec.test dane
	# An explicit tls_policy other than dane turns DANE off for its domain.
	sinks_stop; fresh; conf "tls_policy = nostarttls.sec.test may"
	sink 127.0.0.5 --no-starttls -c "$C/chain.pem" -k "$C/good.key"
	send x@nostarttls.sec.test; run_queue
	log_has "to=<x@nostarttls.sec.test>" "tls=none" "status=sent"
	ok "tls_policy = DOMAIN dane under tls = may uses DANE; tls_policy = DOMAIN may turns it off"
}

case_insecure() {
	sinks_stop; fresh; conf
	sink 127.0.0.9 -c "$C/self.pem" -k "$C/self.key"
	send x@plain.test; run_queue
	delivered_tls x@plain.test unverified
	ok "insecure domain through the validating resolver: as tls = may (self-signed, delivered unverified)"
}

case_direct() {
	sinks_stop; fresh
	if [ "$OFF" = 1 ]; then
		world_conf "tls = may"
	else
		world_conf
	fi
	sink 127.0.0.9 -c "$C/self.pem" -k "$C/self.key"
	send x@plain.test; run_queue
	delivered_tls x@plain.test unverified
	ok "non-validating DNS server (dnsd as dns_servers): as tls = may"
}

case_bogus_tlsa() {
	sinks_stop; fresh; conf
	sink 127.0.0.7 -c "$C/chain.pem" -k "$C/good.key"
	send x@btlsa.sec.test; run_queue
	log_has "to=<x@btlsa.sec.test>" "dsn=4.7.5" "status=deferred"
	untouched 127.0.0.7
	ok "bogus TLSA (changed after signing to the server's key): deferred 4.7.5, exchanger not contacted"
}

case_bogus_a() {
	sinks_stop; fresh; conf
	sink 127.0.0.8 -c "$C/chain.pem" -k "$C/good.key"
	send x@ba.sec.test; run_queue
	log_has "to=<x@ba.sec.test>" "status=deferred"
	untouched 127.0.0.8
	ok "bogus A of a secure MX host: deferred, the forged address not contacted"
}

case_bogus_aaaa() {
	[ "$(dig_flags mx.b6.sec.test A)" = "NOERROR qr rd ra ad" ] ||
	    fail "mx.b6 A not secure: $(dig_flags mx.b6.sec.test A)"
	[ "$(dig_flags mx.b6.sec.test AAAA)" = "SERVFAIL qr rd ra" ] ||
	    fail "tampered AAAA not bogus: $(dig_flags mx.b6.sec.test AAAA)"
	sinks_stop; fresh; conf
	sink 127.0.0.11 --no-starttls -c "$C/chain.pem" -k "$C/good.key"
	send x@b6.sec.test; run_queue
	[ "$(received 127.0.0.11)" = 0 ] ||
	    { cat "$T/log" >&2; fail "delivered in clear to a DANE host whose AAAA is bogus"; }
	log_has "to=<x@b6.sec.test>" "dsn=4.7.4" "status=deferred"
	ok "secure A and TLSA, bogus AAAA, STARTTLS stripped: deferred 4.7.4, not sent in clear"
}

case_strip() {
	sinks_stop; fresh; conf
	sink 127.0.0.10 -c "$C/chain.pem" -k "$C/good.key"
	send x@strip.test; run_queue
	log_has "to=<x@strip.test>" "status=deferred"
	untouched 127.0.0.10
	ok "DNSSEC stripped (anchored zone served unsigned): deferred, exchanger not contacted"
}

for c in $CASES; do
	case " $ALL " in
	*" $c "*) "case_$c" ;;
	*) fail "no case '$c' (cases: $ALL)" ;;
	esac
done
echo "1..$NOK"
