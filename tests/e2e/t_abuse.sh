#!/bin/sh
# End to end: the listener holds under abuse (issue 11, item 1).  Clients
# from different loopback addresses (tests/e2e/abuse.py binds each one's
# source address) play outsiders (127.0.0.2, .3, .4: not in relay_clients,
# not authenticated) and a relay client (127.0.0.1):
#  1. an outsider that holds every slot it may gets max_clients_per_address
#     of them, and a relay client still gets 220 on a full listener (the
#     oldest outsider is closed for it) and its mail is delivered; a new
#     outsider gets the slot of one that has held it for 10 s;
#  2. a client that trickles a byte at a time is closed at
#     smtpd_session_deadline, in commands and in DATA;
#  3. an outsider's NOOP flood is ended with 421 after
#     smtpd_junk_command_limit, while a relay client's NOOPs and RSETs
#     are not;
#  4. an outsider that says nothing is closed after smtpd_idle_timeout
#     while a silent relay client stays; a STARTTLS that never shakes
#     hands is closed after smtpd_tls_timeout.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
ABUSE="python3 ${top_srcdir:-.}/tests/e2e/abuse.py"
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }
command -v openssl > /dev/null || { echo "# openssl not installed"; exit 77; }

world_start dest.test=127.0.0.5
mkdir "$T/certs"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" relay.test || fail "certificates"
chmod 644 "$T/certs"/*

# The listener on 127.0.0.99:$SMTP_PORT (world_conf); 127.0.0.1 relays.
abuse_conf() {
	world_conf "user = $DUSER" "group = $DGROUP" \
	    "relay_clients = 127.0.0.1/32" "$@"
}
# c_has FILE TEXT
c_has() { grep -qF -- "$2" "$1" || { cat "$1" >&2; fail "$1 lacks '$2'"; }; }
# count FILE PATTERN: lines of FILE that match PATTERN (grep -E).
count() { grep -cE -- "$2" "$1" || true; }
# secs FILE: the SECONDS of FILE's "end SECONDS ..." line, as an integer.
secs() { sed -n 's/^end \([0-9]*\)\..*/\1/p' "$1"; }

# 1. Slots: max_clients = 6, max_clients_per_address = 3.
fresh; abuse_conf "max_clients = 6" "max_clients_per_address = 3"
sink 127.0.0.5
daemon_start
H2_START=$(date +%s)
$ABUSE hold "$SMTP_PORT" --src 127.0.0.2 --count 5 --stop "$T/stop" \
    > "$T/h2.out" 2>&1 &
H2=$!
within 10 grep -q '^greet 4' "$T/h2.out" || fail "outsider 127.0.0.2 did not finish connecting"
[ "$(count "$T/h2.out" '^greet [0-9] 220 ')" = 3 ] ||
    { cat "$T/h2.out" >&2; fail "want 3 connections of 127.0.0.2 accepted"; }
[ "$(count "$T/h2.out" '^greet [0-9] 421 4\.7\.0 .*from your address')" = 2 ] ||
    { cat "$T/h2.out" >&2; fail "want 2 connections of 127.0.0.2 refused for its address"; }
grep -q 'too many connections from \[127.0.0.2\]' "$T/d.log" ||
    fail "no log line for the refused outsider"
ok "an outsider gets max_clients_per_address connections, then 421 4.7.0"

$ABUSE hold "$SMTP_PORT" --src 127.0.0.3 --count 4 --stop "$T/stop" \
    > "$T/h3.out" 2>&1 &
H3=$!
within 10 grep -q '^greet 3' "$T/h3.out" || fail "outsider 127.0.0.3 did not finish connecting"
[ "$(count "$T/h3.out" '^greet [0-9] 220 ')" = 3 ] ||
    { cat "$T/h3.out" >&2; fail "want 3 connections of 127.0.0.3 accepted"; }
# Six outsiders fill the listener: a third outsider gets nothing while
# they are young (under 10 s: on a machine too slow for that, the check
# says nothing).
$ABUSE hold "$SMTP_PORT" --src 127.0.0.4 --count 1 --stop "$T/stop" \
    --max 1 > "$T/h4.out" 2>&1
if [ $(( $(date +%s) - H2_START )) -lt 8 ]; then
	c_has "$T/h4.out" "greet 0 421 4.7.0 relay.test Too many connections"
else
	echo "# slow machine: the outsiders may be past their grace already"
fi
# The relay client: 220, its message queued and delivered.
$ABUSE send "$SMTP_PORT" --src 127.0.0.1 --to rcpt@dest.test > "$T/s.out" 2>&1 ||
    { cat "$T/s.out" >&2; fail "relay client not served on a full listener"; }
c_has "$T/s.out" "DATA 250 2.0.0"
within 10 got 127.0.0.5 1 || fail "the relay client's message was not delivered"
# The oldest outsider (127.0.0.2's first) made room.
within 5 grep -q '^closed 0 421 4.7.0' "$T/h2.out" ||
    { cat "$T/h2.out" >&2; fail "the oldest outsider was not closed for the relay client"; }
grep -q 'listener full: closing \[127.0.0.2\]' "$T/d.log" ||
    fail "no log line for the outsider closed to make room"
ok "full listener: a relay client still gets 220 and its mail is delivered"
# A new outsider (who might authenticate) is let in once the oldest
# outsider has had its 10 s of grace: that one is closed for it.
while [ $(( $(date +%s) - H2_START )) -le 12 ]; do sleep 0.5; done
# (The relay client has gone: the first takes its place, the second
# finds the listener full.)
$ABUSE hold "$SMTP_PORT" --src 127.0.0.4 --count 2 --stop "$T/stop" \
    > "$T/h4.out" 2>&1 &
H4=$!
within 10 grep -q '^greet 1' "$T/h4.out" || fail "outsider 127.0.0.4 did not finish connecting"
c_has "$T/h4.out" "greet 0 220 "
c_has "$T/h4.out" "greet 1 220 "
within 5 grep -q '^closed 1 421 4.7.0' "$T/h2.out" ||
    { cat "$T/h2.out" >&2; fail "the oldest outsider was not closed for a new one"; }
grep -q 'listener full: closing \[127.0.0.2\]:[0-9]* (an outsider) for a new client' \
    "$T/d.log" || fail "no log line for the outsider closed for a new one"
# The listener is full again: one more from 127.0.0.3, at its limit of
# 3, is refused for its address and closes no one.
$ABUSE hold "$SMTP_PORT" --src 127.0.0.3 --count 1 --stop "$T/stop" \
    --max 1 > "$T/h3b.out" 2>&1
c_has "$T/h3b.out" "greet 0 421 4.7.0 relay.test Too many connections from your address"
sleep 1
[ "$(count "$T/h2.out" '^closed')" = 2 ] && [ "$(count "$T/h3.out" '^closed')" = 0 ] &&
    [ "$(count "$T/h4.out" '^closed')" = 0 ] ||
    { cat "$T/h2.out" "$T/h3.out" "$T/h4.out" >&2; fail "a client at its address's limit closed another's session"; }
: > "$T/stop"
wait $H2 $H3 $H4
ok "full listener: a new outsider gets the slot of one that held it for 10 s"
# The counts go down as connections close: 127.0.0.2 may hold 3 again.
rm -f "$T/stop"
$ABUSE hold "$SMTP_PORT" --src 127.0.0.2 --count 3 --stop "$T/stop" \
    --max 1 > "$T/h2.out" 2>&1
[ "$(count "$T/h2.out" '^greet [0-9] 220 ')" = 3 ] ||
    { cat "$T/h2.out" >&2; fail "127.0.0.2's closed connections still count"; }
ok "an address's count goes down as its connections close"
daemon_stop

# 2. A session deadline of 3 s: a trickle of commands, a trickle of DATA.
sinks_stop; fresh; abuse_conf "smtpd_session_deadline = 3s"
sink 127.0.0.5
daemon_start
$ABUSE trickle "$SMTP_PORT" --src 127.0.0.2 --interval 0.3 --max 20 > "$T/t.out" 2>&1
c_has "$T/t.out" "421 4.4.2 relay.test Error: session deadline exceeded"
[ "$(secs "$T/t.out")" -ge 2 ] || { cat "$T/t.out" >&2; fail "closed before the deadline"; }
$ABUSE trickle "$SMTP_PORT" --src 127.0.0.1 --data --interval 0.3 --max 20 > "$T/t.out" 2>&1
c_has "$T/t.out" "421 4.4.2 relay.test Error: session deadline exceeded"
grep -q 'session deadline exceeded in DATA from \[127.0.0.1\]' "$T/d.log" ||
    fail "no log line for the deadline in DATA"
sleep 1
[ "$(received 127.0.0.5)" = 0 ] || fail "a message cut by the deadline was delivered"
ok "a trickling session is closed at smtpd_session_deadline, in commands and in DATA"
daemon_stop

# 3. Junk commands: smtpd_junk_command_limit = 50.
sinks_stop; fresh; abuse_conf "smtpd_junk_command_limit = 50"
sink 127.0.0.5
daemon_start
$ABUSE junk "$SMTP_PORT" --src 127.0.0.2 --cmd NOOP --count 500 > "$T/j.out" 2>&1
c_has "$T/j.out" "last 421 4.7.0 relay.test Error: too many commands without mail"
c_has "$T/j.out" "replies 50"
grep -q 'too many junk commands from \[127.0.0.2\]' "$T/d.log" ||
    fail "no log line for the NOOP flood"
# Unknown commands are junk too (12 of these 50, under the limit of 20
# bad commands).
$ABUSE junk "$SMTP_PORT" --src 127.0.0.2 --cmd 'NOOP,VRFY x,HELP,XYZZY' \
    --count 500 > "$T/j.out" 2>&1
c_has "$T/j.out" "last 421 4.7.0 relay.test Error: too many commands without mail"
c_has "$T/j.out" "replies 50"
# A relay client that keeps its connection with NOOP and RSET is not
# cut off, and sends mail.
$ABUSE junk "$SMTP_PORT" --src 127.0.0.1 --cmd NOOP,RSET --count 120 \
    --mail-every 60 > "$T/j.out" 2>&1
c_has "$T/j.out" "replies 120"
c_has "$T/j.out" "queued 2"
c_has "$T/j.out" "last 221"
within 10 got 127.0.0.5 2 || fail "the relay client's messages were not delivered"
ok "an outsider's NOOP flood gets 421 at smtpd_junk_command_limit; a relay client's keepalives do not"
daemon_stop

# 4. Silence: smtpd_idle_timeout = 2s for an outsider before MAIL, while
# a relay client waits smtpd_command_timeout; smtpd_tls_timeout = 2s.
sinks_stop; fresh
abuse_conf "smtpd_idle_timeout = 2s" "smtpd_tls_timeout = 2s" \
    "tls_cert_file = $T/certs/good.pem" "tls_key_file = $T/certs/good.key"
daemon_start
$ABUSE idle "$SMTP_PORT" --src 127.0.0.1 --max 5 > "$T/r.out" 2>&1 &
R=$!
$ABUSE idle "$SMTP_PORT" --src 127.0.0.2 --ehlo --max 20 > "$T/i.out" 2>&1
c_has "$T/i.out" "421 4.4.2 relay.test Error: timeout exceeded"
wait $R
c_has "$T/r.out" "still-open"
# MAIL FROM:<> does not buy an outsider the longer wait.
$ABUSE idle "$SMTP_PORT" --src 127.0.0.2 --mail --max 20 > "$T/i.out" 2>&1
c_has "$T/i.out" "mail 250 2.1.0"
c_has "$T/i.out" "421 4.4.2 relay.test Error: timeout exceeded"
[ "$(secs "$T/i.out")" -lt 15 ] || { cat "$T/i.out" >&2; fail "an outsider after MAIL waited the command timeout"; }
$ABUSE idle "$SMTP_PORT" --src 127.0.0.2 --starttls --max 20 > "$T/i.out" 2>&1
c_has "$T/i.out" "starttls 220 2.0.0"
c_has "$T/i.out" " eof"
grep -q 'timeout during TLS handshake from \[127.0.0.2\]' "$T/d.log" ||
    fail "no log line for the handshake timeout"
ok "silent outsider closed at smtpd_idle_timeout, a silent relay client kept; a stalled TLS handshake closed"
daemon_stop
