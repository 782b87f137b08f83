#!/bin/sh
# End to end: tls = verify checks the relayhost's configured name, not the
# name of its MX record, which unauthenticated DNS gave.  A real smtpsink
# plays the smarthost's exchanger.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"

command -v openssl > /dev/null || { echo "# openssl not installed"; exit 77; }
# Two test CAs, both trusted: good.pem of the first is for the relayhost
# names, good.pem of the second only for the MX host of relay.test.
mkdir "$T/certs" "$T/mxcerts"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" smarthost.test relay.test ||
    fail "making certificates"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/mxcerts" mx.provider.test ||
    fail "making certificates"
C="$T/certs"
cat "$C/ca.pem" "$T/mxcerts/ca.pem" > "$T/cas.pem"

cat > "$T/zone" <<'EOF'
smarthost.test A 127.0.0.6
relay.test MX 10 mx.provider.test
mx.provider.test A 127.0.0.7
EOF
start_dnsd "$T/zone"
pick_port

# relayhost = relay.test without brackets: its MX mx.provider.test is
# looked up, but tls = verify checks relay.test.  A certificate for the MX
# name only is refused ...
sinks_stop; fresh
world_conf "relayhost = relay.test:$SMTP_PORT" "tls = verify" \
    "tls_ca_file = $T/cas.pem"
sink 127.0.0.7 -c "$T/mxcerts/good.pem" -k "$T/mxcerts/good.key"
send x@dest.test; run_queue
[ "$(received 127.0.0.7)" = 0 ] || fail "delivered to a certificate for the MX name"
! grep -q '^mail ' "$T/sink/127.0.0.7.log" || fail "MAIL sent"
log_has "to=<x@dest.test>" "status=deferred" "hostname mismatch"
# ... and one for relay.test on the same exchanger is accepted.
sinks_stop; fresh
world_conf "relayhost = relay.test:$SMTP_PORT" "tls = verify" \
    "tls_ca_file = $T/cas.pem"
sink 127.0.0.7 -c "$C/good.pem" -k "$C/good.key"
send x@dest.test; run_queue
[ "$(received 127.0.0.7)" = 1 ] || fail "not delivered"
log_has "to=<x@dest.test>" "relay=mx.provider.test[127.0.0.7]" \
    "tls=TLSv1.3/verified" "status=sent"
ok "unbracketed relayhost, tls = verify: the certificate must be for relay.test, not its MX"
echo "1..$NOK"
