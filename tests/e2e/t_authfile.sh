#!/bin/sh
# relayhost_auth_file: a "HOST user:password" line for a host that is not a
# relayhost (an old provider) is skipped with a warning; the plain
# user:password line serves the relayhost.  Before, the stale line was read
# as user "[old.test] alice" and sent (found by review).
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
command -v openssl > /dev/null || exit 77
cat > "$T/zone" <<'EOF2'
dest.test MX 10 mx.dest.test
mx.dest.test A 127.0.0.2
EOF2
start_dnsd "$T/zone"
pick_port
mkdir "$T/certs"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" new.test > /dev/null 2>&1 || fail certs
TLSOPT="-c $T/certs/self.pem -k $T/certs/self.key"
printf '[old.test] alice:pw-old\nbob:pw2\n' > "$T/auth2"
chmod 600 "$T/auth2"
fresh
world_conf "relayhost = [127.0.0.7]:$SMTP_PORT" \
    "relayhost_auth_file = $T/auth2" "relayhost_auth_tls = encrypt"
sink 127.0.0.7 $TLSOPT -a bob:pw2
send x@dest.test; mx -v -q > "$T/log" 2>&1
grep auth "$T/sink/127.0.0.7.log"
grep 'user=bob result=ok' "$T/sink/127.0.0.7.log" || fail "stale '[old.test] alice:pw-old' line used as the generic credentials (sent to 127.0.0.7)"
ok x
echo "1..$NOK"
