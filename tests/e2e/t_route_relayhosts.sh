#!/bin/sh
# mxrelay route with two relayhosts, the first refusing (421): the second's
# addresses are probed with the second's own credentials and certificate
# name, never the first's.  Before, every extra probe session used the
# first relayhost's (user=one reached sh3.test; found by review).
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
command -v openssl > /dev/null || exit 77
cat > "$T/zone" <<'EOF2'
dest.test MX 10 mx.dest.test
mx.dest.test A 127.0.0.2
sh3.test A 127.0.0.7
sh3.test A 127.0.0.8
EOF2
start_dnsd "$T/zone"
pick_port
mkdir "$T/certs"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" sh3.test > /dev/null 2>&1 || fail certs
TLSOPT="-c $T/certs/self.pem -k $T/certs/self.key"
cat > "$T/auth2" <<EOF2
[127.0.0.6] one:pw1
sh3.test two:pw2
EOF2
chmod 600 "$T/auth2"
fresh
world_conf "relayhost = [127.0.0.6]:$SMTP_PORT sh3.test:$SMTP_PORT" \
    "relayhost_auth_file = $T/auth2" "relayhost_auth_tls = encrypt"
sink 127.0.0.6 -r greeting=421
sink 127.0.0.7 $TLSOPT -a two:pw2
sink 127.0.0.8 $TLSOPT -a two:pw2
"$MXRELAY" route -C "$CONF" dest.test > "$T/route.out" 2>&1
echo "# route exit $?"
cat "$T/route.out"
cat "$T/sink/127.0.0.7.log" "$T/sink/127.0.0.8.log" | grep auth
if grep -q 'user=one' "$T/sink/127.0.0.7.log" "$T/sink/127.0.0.8.log"; then
	fail "relayhost 0's credentials (one:pw1) were sent to relayhost 1 (sh3.test)"
fi
ok "no cross-relayhost credentials"
echo "1..$NOK"
