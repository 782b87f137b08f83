#!/bin/sh
# End to end: each outbound TLS policy against each kind of exchanger
# (no STARTTLS, a certificate from our test CA, a self-signed one, one for
# another name), and the smarthost with AUTH only over TLS.  Certificates
# are made at test time.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"

command -v openssl > /dev/null || { echo "# openssl not installed"; exit 77; }
mkdir "$T/certs"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" mx1.tls.test smarthost.test \
    127.0.0.6 ||
    fail "making certificates"
C="$T/certs"

cat > "$T/zone" <<'EOF'
tls.test MX 10 mx1.tls.test
mx1.tls.test A 127.0.0.2
smarthost.test A 127.0.0.6
EOF
start_dnsd "$T/zone"
pick_port

# kind -> smtpsink options
server() {
	case $1 in
	plain)	sink 127.0.0.2 --no-starttls ;;
	good)	sink 127.0.0.2 -c "$C/good.pem" -k "$C/good.key" ;;
	self)	sink 127.0.0.2 -c "$C/self.pem" -k "$C/self.key" ;;
	wrong)	sink 127.0.0.2 -c "$C/wrong.pem" -k "$C/wrong.key" ;;
	esac
}

# policy kind -> expected result: "clear", "tls/verified", "tls/unverified"
# or "deferred/STATUS": RFC 3463 X.7.4 "Security features not supported"
# when STARTTLS is not offered, X.7.5 "Cryptographic failure" for a
# certificate not verified (Postfix's codes for both)
expect() {
	case "$1/$2" in
	none/*)			echo clear ;;
	may/plain)		echo clear ;;
	may/good)		echo tls/verified ;;
	may/*)			echo tls/unverified ;;
	encrypt/plain)		echo deferred/4.7.4 ;;
	encrypt/good)		echo tls/verified ;;
	encrypt/*)		echo tls/unverified ;;
	verify/good)		echo tls/verified ;;
	verify/plain)		echo deferred/4.7.4 ;;
	verify/*)		echo deferred/4.7.5 ;;
	esac
}

for policy in none may encrypt verify; do
	for kind in plain good self wrong; do
		sinks_stop; fresh
		world_conf "tls = $policy" "tls_ca_file = $C/ca.pem"
		server $kind
		send x@tls.test
		run_queue
		want=$(expect $policy $kind)
		case $want in
		clear)
			log_has "to=<x@tls.test>" "tls=none" "status=sent"
			grep -q '^TLS: none' "$T/sink/127.0.0.2"/* || fail "$policy/$kind: not in clear" ;;
		tls/*)
			log_has "to=<x@tls.test>" "tls=TLSv1.3/${want#tls/}" "status=sent"
			grep -q '^TLS: TLSv1' "$T/sink/127.0.0.2"/* || fail "$policy/$kind: sent in clear" ;;
		deferred/*)
			log_has "to=<x@tls.test>" "dsn=${want#deferred/}" "status=deferred"
			[ "$(received 127.0.0.2)" = 0 ] || fail "$policy/$kind: mail sent"
			grep -q '^mail ' "$T/sink/127.0.0.2.log" && fail "$policy/$kind: MAIL sent in clear" ;;
		esac
	done
	ok "tls = $policy against no STARTTLS, CA-signed, self-signed, wrong-name certificates"
done

# A per-domain tls_policy overrides the global one.
sinks_stop; fresh
world_conf "tls = may" "tls_policy = tls.test verify" "tls_ca_file = $C/ca.pem"
server self
send x@tls.test; run_queue
log_has "to=<x@tls.test>" "dsn=4.7.5" "status=deferred"
ok "tls_policy = tls.test verify overrides tls = may"

# Smarthost: [host]:port skips the MX lookup, AUTH only over TLS verified
# for the address (an IP SAN).
printf 'relayuser:s3cret\n' > "$T/auth"
sinks_stop; fresh
world_conf "relayhost = [127.0.0.6]:$SMTP_PORT" "relayhost_auth_file = $T/auth" \
    "tls_ca_file = $C/ca.pem"
sink 127.0.0.6 -c "$C/good.pem" -k "$C/good.key" -a relayuser:s3cret
send x@tls.test; send y@elsewhere.invalid
run_queue
[ "$(received 127.0.0.6)" = 2 ] || fail "smarthost did not get both messages"
grep -q 'auth id=.* user=relayuser result=ok' "$T/sink/127.0.0.6.log" || fail "no AUTH"
log_has "to=<y@elsewhere.invalid>" "relay=127.0.0.6[127.0.0.6]:$SMTP_PORT" "status=sent"
ok "relayhost [address]:port with AUTH over TLS"

sinks_stop; fresh
world_conf "relayhost = smarthost.test:$SMTP_PORT" "relayhost_auth_file = $T/auth"
sink 127.0.0.6 --no-starttls -a relayuser:s3cret
send x@tls.test; run_queue
log_has "to=<x@tls.test>" "status=deferred"
grep -q '^auth' "$T/sink/127.0.0.6.log" && fail "AUTH sent in clear"
[ "$(received 127.0.0.6)" = 0 ] || fail "mail sent without the required AUTH"
ok "relayhost by name: AUTH never in clear (deferred instead)"
echo "1..$NOK"
