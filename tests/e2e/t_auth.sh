#!/bin/sh
# End to end: AUTH under attack (mxrelayd(8), AUTH FAILURES).  A client
# at 127.0.0.1 sends wrong passwords, one per connection: the replies
# come later and later, and past auth_fail_limit AUTH from that address
# gets 454, even with the right password, while a client at 127.0.0.4
# still authenticates.  Meanwhile a relay client at 127.0.0.3 measures
# NOOP round trips (printed; only a generous bound is asserted) and sends
# a message that reaches the exchanger.  The log lines match the
# fail2ban filter of mxrelayd(8).
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
AUTHCLIENT="python3 ${top_srcdir:-.}/tests/e2e/authclient.py"
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }
command -v openssl > /dev/null || { echo "# openssl not installed"; exit 77; }

world_start up.test=127.0.0.2
LPORT=$SMTP_PORT		# the listener: 127.0.0.1:$LPORT
mkdir "$T/certs"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" relay.test || fail "certificates"
chmod 644 "$T/certs"/*
printf 'app:%s\n' "$(openssl passwd -6 's3cret pass')" > "$T/users"
chmod 644 "$T/users"

fresh
world_conf "listen = 127.0.0.1:$LPORT" "user = $DUSER" "group = $DGROUP" \
    "tls_cert_file = $T/certs/good.pem" "tls_key_file = $T/certs/good.key" \
    "auth_users = $T/users" "relay_clients = 127.0.0.3/32" \
    "auth_fail_limit = 4" "auth_fail_delay_max = 3s"
sink 127.0.0.2
daemon_start

# The relay client's probe runs through the whole attack.
$AUTHCLIENT probe "$LPORT" --source 127.0.0.3 --seconds 10 --to a@up.test \
    > "$T/probe.out" 2>&1 &
PROBE=$!
PIDS="$PIDS $PROBE"

# 1. Six tries from 127.0.0.1, each on a new connection: four failures
# (replies after about 1, 2, 3 and 3 s), then 454 for a wrong and for
# the right password.
$AUTHCLIENT tries "$LPORT" --source 127.0.0.1 --cafile "$T/certs/ca.pem" \
    --cred app:wrong1 --cred app:wrong2 --cred nobody:x --cred app:wrong4 \
    --cred app:wrong5 --cred "app:s3cret pass" > "$T/tries.out" 2>&1 ||
    { cat "$T/tries.out" >&2; fail "the tries did not run"; }
cat "$T/tries.out"
code() { sed -n "s/^try $1 \([0-9]*\) .*/\1/p" "$T/tries.out"; }
secs() { sed -n "s/^try $1 [0-9]* \([0-9.]*\) .*/\1/p" "$T/tries.out"; }
for n in 1 2 3 4; do
	[ "$(code $n)" = 535 ] || fail "try $n: $(code $n), want 535"
done
# Loose lower bounds only: 1 s, 2 s, 3 s, 3 s less slack.
awk -v a="$(secs 1)" -v b="$(secs 3)" -v c="$(secs 4)" \
    'BEGIN { exit !(a >= 0.8 && b >= 2 && c >= 2) }' ||
    fail "failures not slowed: $(secs 1) s, $(secs 3) s, $(secs 4) s"
ok "AUTH failures over four connections answered later and later ($(secs 1) s, $(secs 2) s, $(secs 3) s, $(secs 4) s)"
[ "$(code 5)" = 454 ] || fail "try 5: $(code 5), want 454"
[ "$(code 6)" = 454 ] || fail "try 6 (right password): $(code 6), want 454"
grep -q '^try 6 454 .*4.7.0' "$T/tries.out" || fail "454 without 4.7.0"
ok "past auth_fail_limit: 454 4.7.0 on new connections, even for the right password"

# 2. Another address is not refused.
$AUTHCLIENT tries "$LPORT" --source 127.0.0.4 --cafile "$T/certs/ca.pem" \
    --cred "app:s3cret pass" > "$T/other.out" 2>&1
grep -q '^try 1 235 ' "$T/other.out" ||
    { cat "$T/other.out" >&2; fail "127.0.0.4 could not authenticate"; }
ok "another address authenticates meanwhile"

# 3. The relay client was served throughout and its mail delivered.
wait "$PROBE"
PRC=$?
cat "$T/probe.out"
[ "$PRC" = 0 ] || fail "the relay client's message was not queued"
grep -q '^noop n=' "$T/probe.out" || fail "no NOOP figures"
max=$(sed -n 's/^noop .* max=\([0-9.]*\)$/\1/p' "$T/probe.out")
echo "# relay client NOOP round trips during the attack (ms): $(sed -n 's/^noop //p' "$T/probe.out")"
awk -v m="$max" 'BEGIN { exit !(m < 2000) }' ||
    fail "a NOOP round trip took $max ms during the attack"
within 10 got 127.0.0.2 1 || fail "the relay client's message was not delivered"
ok "a relay client on another address: NOOP max $max ms, message delivered"

# 4. The log: one line per failure and per refusal, with the address,
# matching the fail2ban failregex of mxrelayd(8) (<HOST> as an address).
re='auth (failure|refused) from \[127\.0\.0\.1\]:[0-9]+ count=[0-9]+'
[ "$(grep -cE "mxrelayd: $re" "$T/d.log")" = 6 ] ||
    { grep 'auth ' "$T/d.log" >&2; fail "want 6 lines matching the filter"; }
grep -qE 'auth failure from \[127\.0\.0\.1\]:[0-9]+ count=4 mech=PLAIN user=app$' "$T/d.log" ||
    fail "no line for the fourth failure"
grep -qE 'auth failure from \[127\.0\.0\.1\]:[0-9]+ count=3 mech=PLAIN user=nobody$' "$T/d.log" ||
    fail "no line for the unknown user"
grep -qE 'auth refused from \[127\.0\.0\.1\]:[0-9]+ count=4 limit=4$' "$T/d.log" ||
    fail "no refusal line"
grep -q 'auth .* from \[127\.0\.0\.4\]' "$T/d.log" && fail "127.0.0.4 counted"
grep -q 's3cret\|wrong' "$T/d.log" && fail "a password in the log"
ok "every failure and refusal logged with the address, in the fail2ban format"

# 5. Where fail2ban is installed: its own matcher, with the filter as
# mxrelayd(8) shows it, on the daemon's lines dated as syslog would.
if command -v fail2ban-regex > /dev/null &&
    [ -f /etc/fail2ban/filter.d/common.conf ]; then
	mkdir "$T/f2b"
	cp /etc/fail2ban/filter.d/common.conf "$T/f2b/"
	sed -n '/^\[INCLUDES\]/,/^ignoreregex/p' \
	    "${top_srcdir:-.}/man/mxrelayd.8" | sed 's/\\e/\\/g' \
	    > "$T/f2b/mxrelayd-auth.conf"
	sed -n 's/^mxrelayd: /Dec  1 23:59:01 relay mxrelayd[42]: /p' \
	    "$T/d.log" > "$T/f2b/log"
	fail2ban-regex -v "$T/f2b/log" "$T/f2b/mxrelayd-auth.conf" \
	    > "$T/f2b/out" 2>&1
	grep -q '^Lines: .* 6 matched' "$T/f2b/out" ||
	    { cat "$T/f2b/out" >&2; fail "fail2ban-regex: want 6 lines matched"; }
	[ "$(grep -c '^|  *127\.0\.0\.1  ' "$T/f2b/out")" = 6 ] ||
	    { cat "$T/f2b/out" >&2; fail "fail2ban-regex: want 127.0.0.1 six times"; }
	ok "fail2ban-regex with the filter of mxrelayd(8): the six lines, all 127.0.0.1"
else
	echo "# fail2ban-regex not installed: the filter is not run"
fi
daemon_stop
[ "$DRC" = 0 ] || fail "mxrelayd exited $DRC"
