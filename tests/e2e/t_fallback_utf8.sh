#!/bin/sh
# relayhost_fallback = mx with the only relayhost down: the parts that go
# by MX keep what the message needs.  A: mxrelay route's verdict is what
# delivery does (by MX, sent).  B: a UTF-8 recipient still needs SMTPUTF8
# there: an exchanger without it gets nothing and the sender a 5.6.7
# bounce.  Both failed before the fallback's parts carried the probe and
# the SMTPUTF8 mark (found by review).
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
CLIENT="python3 ${top_srcdir:-.}/tests/e2e/utf8client.py"
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }

world_start plain.test=127.0.0.3 sender.test=127.0.0.4
LPORT=$SMTP_PORT
client() {
	$CLIENT "$@" > "$T/c.out" 2>&1
	CRC=$?
	cat "$T/c.out" >> "$T/all.log"
}

fresh
# The only relayhost is down (nothing listens on 127.0.0.9): by MX.
world_conf "listen = 127.0.0.1:$LPORT" "user = $DUSER" "group = $DGROUP" \
    "retry_min = 1s" "relayhost = [127.0.0.9]:$SMTP_PORT" \
    "relayhost_fallback = mx"
sink 127.0.0.3
sink 127.0.0.4

# A. mxrelay route must agree with delivery (which goes by MX).
"$MXRELAY" route -C "$CONF" plain.test > "$T/route.out" 2>&1
RRC=$?
echo "# route exit $RRC"

daemon_start
printf 'From: <sender@sender.test>\r\nSubject: x\r\n\r\nhello\r\n' > "$T/m2"
client send "$LPORT" "sender@sender.test" "jösé@plain.test" "$T/m2" --smtputf8
[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "refused"; }
# The bounce comes after the attempt: then nothing may have reached .3.
within 60 got 127.0.0.4 1 ||
    { tail -20 "$T/d.log" >&2; fail "B: no 5.6.7 bounce"; }
[ "$(received 127.0.0.3)" = 0 ] ||
    fail "B: the exchanger without SMTPUTF8 got the UTF-8 message"
grep -q 'dsn=5\.6\.7' "$T/d.log" || fail "B: no 5.6.7 in the log"
ok "fallback by MX keeps SMTPUTF8"
[ "$RRC" = 0 ] || fail "A: route says exit $RRC but delivery went by MX"
ok "route agrees"
daemon_stop
echo "1..$NOK"
