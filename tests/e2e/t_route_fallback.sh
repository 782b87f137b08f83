#!/bin/sh
# mxrelay route with relayhost_fallback = mx and a relayhost whose name
# does not exist: route says deliver (by MX), as delivery then does.
# Before, route said bounce 5.1.2 and exited 69 (found by review).
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
cat > "$T/zone" <<'EOF2'
dest.test MX 10 mx.dest.test
mx.dest.test A 127.0.0.2
EOF2
start_dnsd "$T/zone"
pick_port
fresh
world_conf "relayhost = missing.test:$SMTP_PORT" "relayhost_fallback = mx"
sink 127.0.0.2
"$MXRELAY" route -C "$CONF" dest.test > "$T/route.out" 2>&1
RRC=$?
tail -3 "$T/route.out"
send x@dest.test; run_queue
grep 'x@dest.test' "$T/log"
[ "$(received 127.0.0.2)" = 1 ] || fail "not by MX"
[ "$RRC" = 0 ] || fail "route exit $RRC, but delivery went by MX (sent)"
ok "agree"
echo "1..$NOK"
