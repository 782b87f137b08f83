#!/bin/sh
# End to end: SMTPUTF8 (RFC 6531) through mxrelayd.  Python's smtplib
# sends with SMTPUTF8 to a UTF-8 local part; the exchanger that offers
# SMTPUTF8 gets MAIL FROM ... SMTPUTF8 and the address byte for byte;
# one that does not makes the message bounce with 5.6.7 (RFC 6531 §3.2)
# and is never sent it, while an SMTPUTF8 transaction of ASCII only goes
# there without SMTPUTF8.  The listener refuses a non-ASCII address
# without SMTPUTF8 (553 5.6.7), malformed UTF-8 and a non-ASCII domain.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
CLIENT="python3 ${top_srcdir:-.}/tests/e2e/utf8client.py"
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }

world_start utf8.test=127.0.0.2 plain.test=127.0.0.3 sender.test=127.0.0.4
LPORT=$SMTP_PORT		# the listener: 127.0.0.1:$LPORT

# client ARGS...: utf8client.py, its output in $T/c.out, status in $CRC.
client() {
	$CLIENT "$@" > "$T/c.out" 2>&1
	CRC=$?
	cat "$T/c.out" >> "$T/all.log"
}
c_has() { grep -qF -- "$1" "$T/c.out" || { cat "$T/c.out" >&2; fail "client output lacks '$1'"; }; }
# stored ADDR: the newest message the exchanger at ADDR stored.
stored() { ls -t "$T/sink/$1"/msg.* | head -n 1; }

fresh
world_conf "listen = 127.0.0.1:$LPORT" "user = $DUSER" "group = $DGROUP" \
    "retry_min = 1s"
sink 127.0.0.2 --smtputf8
sink 127.0.0.3
sink 127.0.0.4
daemon_start

# 1. A UTF-8 sender and recipient, and a UTF-8 Subject (RFC 6532).
printf 'From: <s\303\251nder@sender.test>\r\nTo: <j\303\266s\303\251@utf8.test>\r\nSubject: gr\303\274\303\237e\r\n\r\nhello\r\n' > "$T/m1"
client send "$LPORT" "sénder@sender.test" "jösé@utf8.test" "$T/m1" --smtputf8
[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "SMTPUTF8 message refused"; }
c_has "SMTPUTF8"
within 5 got 127.0.0.2 1 || fail "not delivered to the SMTPUTF8 exchanger"
grep -q "^mail id=[0-9]* from=<s\\\\xc3\\\\xa9nder@sender.test> params=.*SMTPUTF8" \
    "$T/sink/127.0.0.2.log" || { cat "$T/sink/127.0.0.2.log" >&2; fail "no MAIL FROM with SMTPUTF8"; }
f=$(stored 127.0.0.2)
grep -q "^RCPT TO:<jösé@utf8.test>\$" "$f" || { cat "$f" >&2; fail "the UTF-8 recipient was not sent as it is"; }
grep -q "^Subject: grüße" "$f" || fail "the UTF-8 Subject changed"
grep -q "^	by relay.test (mxrelay) with UTF8SMTP id " "$f" || { cat "$f" >&2; fail "Received: does not say UTF8SMTP"; }
grep -q 'to=<j\\xc3\\xb6s\\xc3\\xa9@utf8.test>.*status=sent' "$T/d.log" ||
    grep -q 'to=<jösé@utf8.test>.*status=sent' "$T/d.log" ||
    { cat "$T/d.log" >&2; fail "no delivery record"; }
ok "smtplib with SMTPUTF8 to a UTF-8 local part: relayed with MAIL ... SMTPUTF8, the address byte for byte"

# 2. The same to an exchanger without SMTPUTF8: bounced 5.6.7, never sent.
printf 'From: <sender@sender.test>\r\nSubject: x\r\n\r\nhello\r\n' > "$T/m2"
client send "$LPORT" "sender@sender.test" "jösé@plain.test" "$T/m2" --smtputf8
[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "SMTPUTF8 message to plain.test refused"; }
within 5 got 127.0.0.4 1 || { cat "$T/d.log" >&2; fail "no bounce to the sender"; }
f=$(stored 127.0.0.4)
grep -q '^Status: 5\.6\.7' "$f" || { cat "$f" >&2; fail "bounce without Status: 5.6.7"; }
grep -q 'SMTPUTF8' "$f" || { cat "$f" >&2; fail "bounce does not say why"; }
[ "$(received 127.0.0.3)" = 0 ] || fail "the exchanger without SMTPUTF8 was sent the message"
! grep -q '^mail ' "$T/sink/127.0.0.3.log" || fail "MAIL sent to the exchanger without SMTPUTF8"
grep -q 'status=bounced' "$T/d.log" || fail "no bounced record"
ok "an exchanger without SMTPUTF8: the message bounces with 5.6.7 and is not sent there"

# 3. An SMTPUTF8 transaction of ASCII only goes there without SMTPUTF8.
client send "$LPORT" "sender@sender.test" "plain@plain.test" "$T/m2" --smtputf8
[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "ASCII SMTPUTF8 message refused"; }
within 5 got 127.0.0.3 1 || { cat "$T/d.log" >&2; fail "ASCII message not delivered to plain.test"; }
grep '^mail ' "$T/sink/127.0.0.3.log" | grep -q SMTPUTF8 && fail "SMTPUTF8 sent to a server that does not offer it"
ok "an SMTPUTF8 transaction with nothing but ASCII is delivered without SMTPUTF8"

# 4. The listener's refusals.
client raw "$LPORT" "MAIL FROM:<jösé@sender.test>" "MAIL FROM:<a@sender.test>" \
    "RCPT TO:<jösé@utf8.test>" "RSET" \
    "MAIL FROM:<a@sender.test> SMTPUTF8" "$(printf 'RCPT TO:<j\303\303@utf8.test>')" \
    "$(printf 'RCPT TO:<\355\240\200@utf8.test>')" "$(printf 'RCPT TO:<\300\257@utf8.test>')" \
    "RCPT TO:<a@bücher.test>" "RCPT TO:<bü@utf8.test>"
c_has "553 5.6.7 Error: non-ASCII sender address without SMTPUTF8"
c_has "553 5.6.7 Error: non-ASCII recipient address without SMTPUTF8"
[ "$(grep -c '^501 5.1.3' "$T/c.out")" = 4 ] || { cat "$T/c.out" >&2; fail "malformed UTF-8 or a UTF-8 domain accepted"; }
c_has "250 2.1.5"
ok "refused: a non-ASCII address without SMTPUTF8 (553 5.6.7), malformed UTF-8, a non-ASCII domain"

daemon_stop
