#!/bin/sh
# End to end: `mxrelay route DOMAIN` against the test world, and for each
# case a real message to the same domain in the same test: the verdict
# (and exit code) of route must be what delivery then does.  Cases: MX
# order with equal preferences, null MX, NXDOMAIN, SERVFAIL, an exchanger
# without STARTTLS, a certificate for the wrong name under tls = verify,
# the implicit MX, no exchanger reachable, a loop back to this host, a
# relayhost, and tls = dane with an insecure domain and (with unbound) a
# signed one.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"

command -v openssl > /dev/null || { echo "# openssl not installed"; exit 77; }
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }
mkdir "$T/certs"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" mx1.tls.test > /dev/null ||
    fail "making certificates"
C="$T/certs"

cat > "$T/zone" <<'EOF'
sender.test MX 10 mx.sender.test
mx.sender.test A 127.0.0.4
eq.test 120 MX 10 a.eq.test
eq.test 120 MX 10 b.eq.test
eq.test 120 MX 10 c.eq.test
eq.test 120 MX 20 d.eq.test
a.eq.test A 127.0.0.5
b.eq.test A 127.0.0.6
c.eq.test A 127.0.0.7
d.eq.test A 127.0.0.8
nullmx.test MX 0 .
nullmx.test A 127.0.0.2
servfail.test SERVFAIL
implicit.test A 127.0.0.2
tls.test MX 10 mx1.tls.test
mx1.tls.test A 127.0.0.2
smarthost.test A 127.0.0.3
loop.test MX 10 relay.test
loop.test MX 20 mx2.loop.test
mx2.loop.test A 127.0.0.3
EOF
start_dnsd "$T/zone"
pick_port

# route DOMAIN WANT_RC: mxrelay route --json, the object in $T/route.json.
route() {
	"$MXRELAY" route -C "$CONF" --json "$1" > "$T/route.json" 2> "$T/route.err"
	rc=$?
	[ "$rc" = "$2" ] || { cat "$T/route.json" "$T/route.err" >&2; \
	    fail "route $1: exit $rc, want $2"; }
}

# jq PYTHON-EXPRESSION: evaluate it with j = the route's JSON object.
jq() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
v = eval(sys.argv[2])
print(v if not isinstance(v, bool) else str(v).lower())' "$T/route.json" "$1" ||
	    fail "route's JSON: cannot evaluate $1"
}

# jcheck PYTHON-EXPRESSION: it must be true of the route's JSON object.
jcheck() {
	[ "$(jq "$1")" = true ] || { cat "$T/route.json" >&2; fail "not true: $1"; }
}

# deliver RCPT: queue one message to it and run the queue.
deliver() {
	send "$1"
	run_queue
}

# 1. Equal preferences: three MX 10 shuffled, then MX 20; route's order is
# a permutation of the 10s first, with preference, TTL and group; the mail
# goes to the address route names first (every exchanger is up).
fresh; world_conf; sink 127.0.0.5; sink 127.0.0.6; sink 127.0.0.7; sink 127.0.0.8
route eq.test 0
jcheck 'j["mx_lookup"]["status"] == "ok" and j["implicit_mx"] is False'
jcheck 'sorted(m["host"] for m in j["mx"][:3]) == ["a.eq.test", "b.eq.test", "c.eq.test"]'
jcheck 'j["mx"][3]["host"] == "d.eq.test" and j["mx"][3]["preference"] == 20'
jcheck 'all(m["equal_preference"] for m in j["mx"][:3]) and not j["mx"][3]["equal_preference"]'
jcheck '[m["group"] for m in j["mx"]] == [0, 0, 0, 1]'
jcheck 'all(0 < m["ttl"] <= 120 for m in j["mx"])'
jcheck '[r["address"] for r in j["routes"]][3] == "127.0.0.8"'
jcheck 'j["verdict"]["action"] == "deliver" and j["verdict"]["exit"] == 0'
jcheck 'j["verdict"]["address"] == j["routes"][0]["address"] and j["routes"][0]["chosen"]'
# Every route was probed: a banner and EHLO from each, and no mail.
jcheck 'all(r["sessions"] and r["sessions"][0]["banner"].startswith("220") for r in j["routes"])'
jcheck 'all(s["ready"] for r in j["routes"] for s in r["sessions"])'
for a in 127.0.0.5 127.0.0.6 127.0.0.7 127.0.0.8; do
	grep -q '^mail ' "$T/sink/$a.log" && fail "route sent MAIL to $a"
	[ "$(received $a)" = 0 ] || fail "route delivered to $a"
done
"$MXRELAY" route -C "$CONF" eq.test > "$T/route.txt" || fail "route eq.test (text) failed"
grep -q 'equal preferences: delivery tries these in a random order' "$T/route.txt" ||
    fail "the text does not say that equal preferences are shuffled"
grep -q '^verdict: deliver to ' "$T/route.txt" || fail "no verdict line"
deliver x@eq.test
log_has "to=<x@eq.test>" "status=sent"
sent_to=""
for a in 127.0.0.5 127.0.0.6 127.0.0.7 127.0.0.8; do
	[ "$(received $a)" = 1 ] && sent_to="$sent_to$a"
done
case $sent_to in
127.0.0.5|127.0.0.6|127.0.0.7) ;;
*) fail "delivery went to '$sent_to', not to one MX 10" ;;
esac
ok "equal preferences: MX 10 in a shuffled group before MX 20, TTLs, every route probed without MAIL; delivered"

# 1b. mx_address_limit = 2: two routes, the other addresses not tried.
fresh; world_conf "mx_address_limit = 2"
route eq.test 0
jcheck 'len(j["routes"]) == 2 and all(r["preference"] == 10 for r in j["routes"])'
jcheck 'sorted(a for m in j["mx"] for a in m["not_tried"])[-1] == "127.0.0.8"'
jcheck 'sum(len(m["not_tried"]) for m in j["mx"]) == 2'
ok "mx_address_limit: the routes are cut as delivery cuts them"

# 2. Null MX: bounce 5.1.10, exit 69 (EX_UNAVAILABLE); delivery bounces.
sinks_stop; fresh; world_conf; sink 127.0.0.2; sink 127.0.0.4
route nullmx.test 69
jcheck 'j["mx_lookup"]["status"] == "nullmx" and j["routes"] == []'
jcheck 'j["verdict"]["action"] == "bounce" and j["verdict"]["status"] == "5.1.10"'
deliver x@nullmx.test
log_has "to=<x@nullmx.test>" "dsn=5.1.10" "status=bounced"
ok "null MX: route says bounce 5.1.10 (exit 69), delivery bounces 5.1.10"

# 3. NXDOMAIN: bounce 5.1.2.
sinks_stop; fresh; world_conf; sink 127.0.0.4
route nosuch.test 69
jcheck 'j["mx_lookup"]["status"] == "nxdomain"'
jcheck 'j["verdict"]["action"] == "bounce" and j["verdict"]["status"] == "5.1.2"'
deliver x@nosuch.test
log_has "to=<x@nosuch.test>" "dsn=5.1.2" "status=bounced"
ok "NXDOMAIN: route says bounce 5.1.2 (exit 69), delivery bounces 5.1.2"

# 4. SERVFAIL: defer 4.4.3, exit 75 (EX_TEMPFAIL).
sinks_stop; fresh; world_conf
route servfail.test 75
jcheck 'j["mx_lookup"]["status"] == "tempfail"'
jcheck 'j["verdict"]["action"] == "defer" and j["verdict"]["status"] == "4.4.3"'
deliver x@servfail.test
log_has "to=<x@servfail.test>" "dsn=4.4.3" "status=deferred"
ok "SERVFAIL: route says defer 4.4.3 (exit 75), delivery defers 4.4.3"

# 5. No STARTTLS: under may, deliver in clear; under encrypt, defer with
# the status delivery uses.
sinks_stop; fresh; world_conf "tls = may" "tls_ca_file = $C/ca.pem"
sink 127.0.0.2 --no-starttls; sink 127.0.0.4
route tls.test 0
jcheck 'j["routes"][0]["sessions"][0]["starttls_offered"] is False'
jcheck 'j["routes"][0]["sessions"][0]["tls"] is None'
jcheck 'j["verdict"]["action"] == "deliver" and j["verdict"]["address"] == "127.0.0.2"'
deliver x@tls.test
log_has "to=<x@tls.test>" "tls=none" "status=sent"
sinks_stop; fresh; world_conf "tls = encrypt" "tls_ca_file = $C/ca.pem"
sink 127.0.0.2 --no-starttls; sink 127.0.0.4
route tls.test 75
jcheck 'j["tls_policy"] == "encrypt"'
jcheck 'j["routes"][0]["sessions"][0]["starttls_offered"] is False'
jcheck 'j["routes"][0]["sessions"][0]["stage"] == "starttls"'
jcheck 'j["verdict"]["action"] == "defer"'
want=$(jq 'j["verdict"]["status"]')
deliver x@tls.test
log_has "to=<x@tls.test>" "dsn=$want" "status=deferred"
[ "$(received 127.0.0.2)" = 0 ] || fail "mail sent without STARTTLS under encrypt"
ok "no STARTTLS: may delivers in clear, encrypt defers ($want) as delivery does"

# 6. A certificate for the wrong name: under verify, defer; the session
# shows the certificate, its issuer and expiry, and no name match.
sinks_stop; fresh; world_conf "tls = verify" "tls_ca_file = $C/ca.pem"
sink 127.0.0.2 -c "$C/wrong.pem" -k "$C/wrong.key"; sink 127.0.0.4
route tls.test 75
jcheck 'j["routes"][0]["sessions"][0]["starttls_offered"] is True'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["subject"] == "/CN=wrong.invalid"'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["issuer"] == "/CN=mxrelay test CA"'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["name_match"] is False'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["verified"] is False'
jcheck 'len(j["routes"][0]["sessions"][0]["tls"]["not_after"]) == 20'
jcheck 'j["verdict"]["action"] == "defer"'
want=$(jq 'j["verdict"]["status"]')
deliver x@tls.test
log_has "to=<x@tls.test>" "dsn=$want" "status=deferred"
[ "$(received 127.0.0.2)" = 0 ] || fail "mail sent to a wrong-name certificate under verify"
# The right certificate: verified, name match, deliver over TLS.
sinks_stop; fresh; world_conf "tls = verify" "tls_ca_file = $C/ca.pem"
sink 127.0.0.2 -c "$C/good.pem" -k "$C/good.key"; sink 127.0.0.4
route tls.test 0
jcheck 'j["routes"][0]["sessions"][0]["tls"]["handshake"] is True'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["version"].startswith("TLSv1.")'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["cipher"] is not None'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["name_match"] is True'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["verified"] is True'
deliver x@tls.test
log_has "to=<x@tls.test>" "tls=TLSv1.3/verified" "status=sent"
ok "tls = verify: a wrong-name certificate defers ($want) as delivery does; the right one delivers"

# 7. Implicit MX: no MX, the domain's A record.
sinks_stop; fresh; world_conf; sink 127.0.0.2
route implicit.test 0
jcheck 'j["implicit_mx"] is True and j["mx"][0]["host"] == "implicit.test"'
jcheck 'j["mx"][0]["addresses"] == ["127.0.0.2"]'
deliver x@implicit.test
log_has "to=<x@implicit.test>" "status=sent"
ok "implicit MX: the domain's address, delivered"

# 8. Every exchanger down: defer 4.4.1, as delivery does.
sinks_stop; fresh; world_conf; sink 127.0.0.4
route implicit.test 75
jcheck 'j["routes"][0]["sessions"][0]["connected"] is False'
jcheck 'j["verdict"]["action"] == "defer" and j["verdict"]["status"] == "4.4.1"'
deliver x@implicit.test
log_has "to=<x@implicit.test>" "dsn=4.4.1" "status=deferred"
ok "no exchanger reachable: route says defer 4.4.1, delivery defers 4.4.1"

# 8b. The best MX is this host (hostname = relay.test): the list is cut
# there and nothing is left before it: bounce 5.4.6, as delivery does.
sinks_stop; fresh; world_conf; sink 127.0.0.3; sink 127.0.0.4
route loop.test 69
jcheck 'j["verdict"]["action"] == "bounce" and j["verdict"]["status"] == "5.4.6"'
jcheck 'j["routes"] == []'
deliver x@loop.test
log_has "to=<x@loop.test>" "dsn=5.4.6" "status=bounced"
[ "$(received 127.0.0.3)" = 0 ] || fail "mail sent to the MX after this host"
ok "mail loop: route says bounce 5.4.6 (exit 69), delivery bounces 5.4.6"

# 9. A relayhost: its route, whatever the domain.
sinks_stop; fresh; world_conf "relayhost = smarthost.test:$SMTP_PORT"
sink 127.0.0.3
route nullmx.test 0
jcheck 'j["relayhost"] is True and j["name"] == "smarthost.test"'
jcheck 'j["verdict"]["address"] == "127.0.0.3"'
deliver x@nullmx.test
log_has "to=<x@nullmx.test>" "status=sent"
[ "$(received 127.0.0.3)" = 1 ] || fail "the relayhost did not get the message"
ok "relayhost: route shows the relayhost's route, and delivery uses it"

# 10. tls = dane, the default, with a resolver that validates nothing
# (dnsd sets no AD bit): the MX answer is insecure, no TLSA lookup, each
# exchanger says "dane: insecure", the session's policy is may, and the
# mail goes over TLS (verified against the test CA) as under may.
sinks_stop; fresh; world_conf "tls_ca_file = $C/ca.pem"
sink 127.0.0.2 -c "$C/good.pem" -k "$C/good.key"; sink 127.0.0.4
route tls.test 0
jcheck 'j["tls_policy"] == "dane"'
jcheck 'j["dnssec"]["mx_secure"] is False'
jcheck 'j["mx"][0]["dane"]["state"] == "insecure" and j["mx"][0]["dane"]["tlsa"] is None'
jcheck 'j["mta_sts"] is not None and j["mta_sts"]["mode"] is None'
jcheck 'j["routes"][0]["sessions"][0]["tls_policy"] == "may"'
jcheck 'j["routes"][0]["sessions"][0]["auth"] == "policy"'
jcheck 'j["routes"][0]["sessions"][0]["tls"]["verified"] is True'
jcheck 'j["verdict"]["action"] == "deliver"'
"$MXRELAY" route -C "$CONF" tls.test > "$T/route.txt" 2>&1 || fail "route tls.test (text)"
grep -q '^tls policy: dane$' "$T/route.txt" || fail "no 'tls policy: dane'"
grep -q '^dnssec: MX answer insecure' "$T/route.txt" || fail "no insecure MX line"
grep -q '^    dane: insecure' "$T/route.txt" || fail "no 'dane: insecure' line"
grep -q '^mta-sts: tls.test: ' "$T/route.txt" || fail "no mta-sts line"
deliver x@tls.test
log_has "to=<x@tls.test>" "tls=TLSv1.3/verified" "status=sent"
# An explicit tls_policy turns DANE and MTA-STS off for its domain.
sinks_stop; fresh; world_conf "tls_policy = tls.test may" "tls_ca_file = $C/ca.pem"
sink 127.0.0.2 -c "$C/good.pem" -k "$C/good.key"; sink 127.0.0.4
route tls.test 0
jcheck 'j["tls_policy"] == "may" and j["dnssec"] is None and j["mta_sts"] is None'
jcheck 'j["mx"][0]["dane"] is None'
ok "tls = dane with an insecure domain: 'dane: insecure', as may; tls_policy may turns it off"

# 11. tls = dane with a validating resolver (unbound on loopback, a zone
# signed here; skipped where the test world or the tools cannot do
# that): an exchanger with a matching TLSA 3 1 1 is 'dane: secure', its
# session authenticated by DANE, and the mail goes with tls=.../dane; one
# whose TLSA answer is bogus (changed after signing) is not used, and
# route says defer 4.7.5 naming the lookup, as delivery then does.
if command -v make_signed_zone > /dev/null 2>&1 &&
    command -v ldns-signzone > /dev/null 2>&1 &&
    command -v unbound > /dev/null 2>&1; then
	mkdir "$T/zones"
	GOOD=$(tlsa_311 "$C/good.pem")
	WRONG=$(tlsa_311 "$C/wrong.pem")
	cat > "$T/zones/dsec.test" <<-EOF
	\$ORIGIN dsec.test.
	\$TTL 300
	@	SOA ns.dsec.test. host.dsec.test. 1 3600 600 86400 300
	@	NS ns.dsec.test.
	ns	A 127.0.0.1
	good	MX 10 mx.good
	mx.good	A 127.0.0.2
	_$SMTP_PORT._tcp.mx.good	TLSA 3 1 1 $GOOD
	bad	MX 10 mx.bad
	mx.bad	A 127.0.0.6
	_$SMTP_PORT._tcp.mx.bad	TLSA 3 1 1 $GOOD
	EOF
	make_signed_zone dsec.test "$T/zones/dsec.test"
	awk -v t="_$SMTP_PORT._tcp.mx.bad.dsec.test." -v d="$WRONG" '
	    $1 == t && $4 == "TLSA" { $8 = d; n++ }
	    { print }
	    END { if (n != 1) exit 1 }' "$T/zones/dsec.test.signed" > "$T/zones/tmp" ||
	    fail "tampering with the signed zone"
	mv "$T/zones/tmp" "$T/zones/dsec.test.signed"
	start_unbound
	sinks_stop; fresh; world_conf "dns_servers = 127.0.0.1:$DNS_VAL_PORT"
	sink 127.0.0.2 -c "$C/good.pem" -k "$C/good.key"
	sink 127.0.0.6 -c "$C/good.pem" -k "$C/good.key"
	route good.dsec.test 0
	jcheck 'j["dnssec"]["mx_secure"] is True'
	jcheck 'j["mx"][0]["dane"]["address_secure"] is True'
	jcheck 'j["mx"][0]["dane"]["tlsa"].startswith("3 1 1 ")'
	jcheck 'j["routes"][0]["sessions"][0]["auth"] == "dane"'
	jcheck 'j["routes"][0]["sessions"][0]["tls_policy"] == "verify"'
	jcheck 'j["routes"][0]["sessions"][0]["tls"]["dane"].startswith("3 1 1 matched")'
	"$MXRELAY" route -C "$CONF" good.dsec.test > "$T/route.txt" 2>&1 ||
	    fail "route good.dsec.test (text)"
	grep -q '^dnssec: MX answer secure$' "$T/route.txt" || fail "no secure MX line"
	grep -q '^    dane: secure -> TLS required, authenticated by DANE' "$T/route.txt" ||
	    fail "no 'dane: secure' line"
	deliver x@good.dsec.test
	log_has "to=<x@good.dsec.test>" "tls=TLSv1.3/dane" "status=sent"
	route bad.dsec.test 75
	jcheck 'j["mx"][0]["dane"]["state"] == "TLSA lookup failed"'
	jcheck 'j["routes"] == [] and j["verdict"]["status"] == "4.7.5"'
	jcheck '"TLSA lookup for _" in j["verdict"]["reason"]'
	deliver x@bad.dsec.test
	log_has "to=<x@bad.dsec.test>" "dsn=4.7.5" "status=deferred"
	[ "$(received 127.0.0.6)" = 0 ] || fail "mail sent to a host whose TLSA is bogus"
	ok "tls = dane, secure: TLSA match delivers tls=.../dane; a bogus TLSA defers 4.7.5 as route says"
else
	echo "# case 11 skipped: no signed-zone test world (unbound, ldns-signzone, world.sh)"
fi

# Usage and errors.
expect_rc 64 "route without a domain" "$MXRELAY" route -C "$CONF"
expect_rc 64 "route with an address" "$MXRELAY" route -C "$CONF" user@example.test
"$MXRELAY" route --help | grep -q 'usage: mxrelay route' || fail "route --help"
ok "usage errors exit 64"
echo "1..$NOK"
