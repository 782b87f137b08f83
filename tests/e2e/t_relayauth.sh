#!/bin/sh
# End to end: the relayhost's credentials go only over TLS verified for the
# relayhost's configured name (relayhost_auth_tls = verify, the default),
# and that name, not the name of its MX record, is what tls = verify
# checks.  A real smtpsink plays the smarthost, or a man in the middle
# with a certificate of its own; it logs every AUTH command it gets.
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
printf 'relayuser:s3cret\n' > "$T/auth"
chmod 600 "$T/auth"

# smarthost ADDR CERTNAME [options]: the smarthost with that certificate
# and key, taking relayuser's AUTH.
smarthost() {
	a=$1 c=$2
	shift 2
	sink "$a" -c "$c.pem" -k "$c.key" -a relayuser:s3cret "$@"
}

# no_auth ADDR: not a single AUTH command reached the server at ADDR, and
# no mail either.
no_auth() {
	! grep -q '^auth' "$T/sink/$1.log" ||
	    { cat "$T/sink/$1.log" >&2; fail "$1 got an AUTH command"; }
	! grep -q '^mail ' "$T/sink/$1.log" || fail "$1 got MAIL"
	[ "$(received "$1")" = 0 ] || fail "$1 got the message"
}

# withheld RCPT WHY: the recipient is deferred with 4.7.0 and the reason,
# in the log line and in mailq's last reply.
withheld() {
	log_has "to=<$1>" "dsn=4.7.0" "status=deferred" \
	    "credentials withheld: TLS certificate not verified for" "$2"
	mx -bp > "$T/mailq" 2>&1 || fail "mailq failed"
	grep -q "4.7.0 credentials withheld: TLS certificate not verified for .*$2" \
	    "$T/mailq" || { cat "$T/mailq" >&2; fail "mailq lacks the reason"; }
}

# a: a man in the middle with a self-signed certificate, under the default
# tls = may: no AUTH, deferred with the reason.
sinks_stop; fresh
world_conf "relayhost = [smarthost.test]:$SMTP_PORT" \
    "relayhost_auth_file = $T/auth" "tls_ca_file = $T/cas.pem"
smarthost 127.0.0.6 "$C/self"
send x@dest.test; run_queue
no_auth 127.0.0.6
grep -q '^tls id=1 version=TLSv1' "$T/sink/127.0.0.6.log" || fail "no TLS"
grep -q '^quit id=1' "$T/sink/127.0.0.6.log" || fail "no QUIT"
withheld x@dest.test "smarthost.test (self-signed certificate)"
ok "self-signed smarthost under tls = may: no AUTH, deferred 4.7.0"

# b: the smarthost with a certificate from the trusted CA for its name:
# AUTH goes, the mail is delivered.
sinks_stop; fresh
world_conf "relayhost = [smarthost.test]:$SMTP_PORT" \
    "relayhost_auth_file = $T/auth" "tls_ca_file = $T/cas.pem"
smarthost 127.0.0.6 "$C/good"
send x@dest.test; run_queue
grep -q 'auth id=1 user=relayuser result=ok' "$T/sink/127.0.0.6.log" ||
    fail "no AUTH"
[ "$(received 127.0.0.6)" = 1 ] || fail "not delivered"
log_has "to=<x@dest.test>" "tls=TLSv1.3/verified" "status=sent"
log_lacks "sending credentials"
ok "smarthost verified for its name: AUTH and delivered"

# c: a certificate from the trusted CA for another name: withheld.
sinks_stop; fresh
world_conf "relayhost = [smarthost.test]:$SMTP_PORT" \
    "relayhost_auth_file = $T/auth" "tls_ca_file = $T/cas.pem"
smarthost 127.0.0.6 "$C/wrong"
send x@dest.test; run_queue
no_auth 127.0.0.6
withheld x@dest.test "smarthost.test (hostname mismatch)"
ok "trusted CA, wrong name: no AUTH, deferred 4.7.0"

# d: relayhost = relay.test without brackets: its MX mx.provider.test is
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

# d2: the same MX certificate under tls = may with credentials: withheld.
sinks_stop; fresh
world_conf "relayhost = relay.test:$SMTP_PORT" "relayhost_auth_file = $T/auth" \
    "tls_ca_file = $T/cas.pem"
smarthost 127.0.0.7 "$T/mxcerts/good"
send x@dest.test; run_queue
no_auth 127.0.0.7
withheld x@dest.test "relay.test (hostname mismatch)"
ok "unbracketed relayhost with a certificate for its MX only: no AUTH"

# e: relayhost_auth_tls = encrypt lets the credentials go over the
# self-signed session, and the log says so.
sinks_stop; fresh
world_conf "relayhost = [smarthost.test]:$SMTP_PORT" \
    "relayhost_auth_file = $T/auth" "tls_ca_file = $T/cas.pem" \
    "relayhost_auth_tls = encrypt"
smarthost 127.0.0.6 "$C/self"
send x@dest.test; run_queue
grep -q 'auth id=1 user=relayuser result=ok' "$T/sink/127.0.0.6.log" ||
    fail "no AUTH"
[ "$(received 127.0.0.6)" = 1 ] || fail "not delivered"
log_has "to=<x@dest.test>" "tls=TLSv1.3/unverified" "status=sent"
log_has "sending credentials over TLS that is not verified for smarthost.test" \
    "self-signed certificate" "relayhost_auth_tls = encrypt allows it"
ok "relayhost_auth_tls = encrypt: AUTH over unverified TLS, with a warning"

# f: ... but never in clear.
sinks_stop; fresh
world_conf "relayhost = [smarthost.test]:$SMTP_PORT" \
    "relayhost_auth_file = $T/auth" "relayhost_auth_tls = encrypt"
smarthost 127.0.0.6 "$C/self" --no-starttls
send x@dest.test; run_queue
no_auth 127.0.0.6
log_has "to=<x@dest.test>" "status=deferred" "never sent in clear"
ok "relayhost_auth_tls = encrypt: still never in clear"
echo "1..$NOK"
