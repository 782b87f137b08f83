#!/bin/sh
# End to end: mxrelayd as a daemon, without its SMTP listener (t_smtpd.sh
# has that): start-up as root and the drop to `user`, the pid file and a
# second instance, messages dropped by mxrelay delivered within a second,
# `mxrelay -q` asking the daemon to flush, the hold of a destination that
# is down, SIGHUP with a bad and a good configuration, SIGTERM, and the
# idle outbound connection that carries the next message.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

world_start "up.test MX 10 mx1.up.test" "mx1.up.test A 127.0.0.2" \
    down.test=127.0.0.3 reuse.test=127.0.0.4 \
    stale.test=127.0.0.5,127.0.0.6 grey.test=127.0.0.7,127.0.0.8

# proc_ids PID Uid|Gid: the process's real, effective, saved and
# filesystem ids, read from /proc/PID/status, separated by spaces.
proc_ids() {
	sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status" 2>/dev/null | tr -s ' \t' '  '
}

fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP" "retry_min = 1s" \
    "retry_max = 4s"
sink 127.0.0.2

# 1. Start-up: root dropped, pid file, spool given to the user (with the
# message that root queued before the daemon ever ran).
send early@up.test
daemon_start
[ "$(cat "$T/run/mxrelayd.pid")" = "$DPID" ] || fail "pid file does not hold $DPID"
# Real, effective, saved and filesystem ids from /proc (no procps).
duid=$(id -u "$DUSER") dgid=$(getent group "$DGROUP" | cut -d: -f3)
[ "$(proc_ids "$DPID" Uid)" = "$duid $duid $duid $duid" ] ||
    fail "daemon runs as uids $(proc_ids "$DPID" Uid), not $DUSER ($duid)"
[ "$(proc_ids "$DPID" Gid)" = "$dgid $dgid $dgid $dgid" ] ||
    fail "daemon runs as gids $(proc_ids "$DPID" Gid), not $DGROUP ($dgid)"
for d in msg env; do
	[ "$(stat -c %U "$SPOOL/$d")" = "$DUSER" ] || fail "spool not given to $DUSER: $d/"
done
[ -S "$T/run/mxrelayd.sock" ] || fail "no control socket"
ok "start-up: runs as $DUSER, pid file, spool owned by $DUSER, control socket"

# 2. A second instance on the same spool is refused (69), the first unharmed.
expect_rc 69 "second daemon" "$MXRELAYD" -f -C "$CONF"
expect_err "already running (pid $DPID)"
kill -0 "$DPID" || fail "first daemon died"
ok "second instance refused with 69, naming the running pid"

# 3. Messages dropped by mxrelay (as root) start within a second.
send a@up.test; send b@up.test; send c@up.test
within 2 got 127.0.0.2 4 || fail "dropped messages not delivered within 2 s: $(received 127.0.0.2)"
grep -q 'to=<early@up.test>, relay=mx1.up.test' "$T/d.log" || fail "root's earlier message not delivered"
within 2 queue_empty || fail "delivered messages still queued"
grep -q 'to=<a@up.test>, relay=mx1.up.test\[127.0.0.2\]' "$T/d.log" || fail "no delivery log line"
ok "messages dropped by mxrelay delivered within a second, and the one queued by root before the start"

# 4. A destination that is down is held as a whole: 10 messages, few
# connection attempts, each message's envelope untouched while held.
sink 127.0.0.3 -r greeting=421
i=0
while [ $i -lt 10 ]; do send "m$i@down.test"; i=$((i + 1)); done
wait_for "$T/d.log" 'down.test: destination unreachable, held back for 1s (failure 1 in a row)'
sleep 2.5
conns=$(grep -c '^connect' "$T/sink/127.0.0.3.log")
[ "$(spool_count)" = 10 ] || fail "down messages lost: $(spool_count) queued"
grep -q 'down.test: destination unreachable, held back for 2s (failure 2 in a row)' "$T/d.log" ||
    fail "the hold did not grow"
grep -q 'down.test: hold over, one message goes first as a probe' "$T/d.log" ||
    fail "no probe after the hold"
[ "$conns" -le 4 ] || fail "down destination hammered: $conns connections in 2.5 s for 10 messages"
ok "a destination that is down is held back as a whole ($conns connections for 10 messages over 2.5 s)"

# 5. It comes back: mxrelay -q asks the daemon, which delivers at once.
sinks_stop; sink 127.0.0.3; sink 127.0.0.2
expect_rc 0 "mxrelay -q with the daemon" mx -v -q
expect_err "mxrelayd is running: it delivers now"
within 3 got 127.0.0.3 10 || fail "flush did not deliver: $(received 127.0.0.3)"
wait_for "$T/d.log" 'down.test: destination reachable again'
within 2 queue_empty || fail "queue not empty after the flush"
ok "mxrelay -q asks the running daemon to flush; the held destination delivered"

# 6. -qI ID through the daemon; unknown id refused.
expect_rc 75 "-qI of an unknown id" mx -qI0123456789abcdef0123
expect_err "no such message"
ok "mxrelay -qI with the daemon: unknown id reported"

# 7. SIGHUP: a bad configuration is refused and the old one kept.
cp "$CONF" "$T/good.conf"
echo "retry_min = banana" >> "$CONF"
kill -HUP "$DPID"
wait_for "$T/d.log" 'reload failed: the configuration in use is kept'
grep -q "mxrelay.conf:[0-9]*: retry_min" "$T/d.log" || fail "reload error does not name file:line:key"
cp "$T/good.conf" "$CONF"
send d@up.test
within 2 got 127.0.0.2 1 || fail "daemon stopped delivering after a bad reload"
sed -i 's/^hostname = relay.test$/hostname = reloaded.test/' "$CONF"
kill -HUP "$DPID"
wait_for "$T/d.log" 'configuration reloaded'
send e@up.test
within 2 got 127.0.0.2 2 || fail "no delivery after a good reload"
grep -q 'ehlo id=[0-9]* name=reloaded.test' "$T/sink/127.0.0.2.log" ||
    fail "the reloaded hostname is not used"
ok "SIGHUP: a bad config is reported with file:line:key and the old kept; a good one is used"

# 8. SIGTERM: exit 0, pid file and socket removed, queued mail kept.
sinks_stop
send f@up.test
sleep 0.3
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
[ ! -e "$T/run/mxrelayd.pid" ] && [ ! -e "$T/run/mxrelayd.sock" ] || fail "pid file or socket left"
[ "$(spool_count)" = 1 ] || fail "queued message lost at SIGTERM"
grep -q 'stopped: every session and delivery finished' "$T/d.log" || fail "no clean stop line"
ok "SIGTERM: exit 0, pid file and socket removed, the deferred message kept"

# 9. Restart: the index is rebuilt from the spool; -q without a daemon runs here.
sink 127.0.0.2
daemon_start
grep -q 'started (pid [0-9]*): 1 messages in the queue' "$T/d.log" || fail "index not rebuilt"
expect_rc 0 "flush" mx -q
within 3 got 127.0.0.2 1 || fail "restarted daemon did not deliver"
daemon_stop
send g@up.test
expect_rc 0 "mxrelay -q without a daemon" mx -q
[ "$(received 127.0.0.2)" = 2 ] || fail "mxrelay -q without a daemon did not deliver"
ok "restart rebuilds the index; without a daemon mxrelay -q runs the queue itself"

# 10. A connection whose destination has nothing more waits idle a while
# (2 s) for the next message, then says QUIT.
sinks_stop; fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP"
sink 127.0.0.4
daemon_start
send r1@reuse.test
within 2 got 127.0.0.4 1 || fail "first message not delivered"
sleep 0.5
send r2@reuse.test
within 2 got 127.0.0.4 2 || fail "second message not delivered"
[ "$(grep -c '^connect' "$T/sink/127.0.0.4.log")" = 1 ] ||
    fail "the second message did not ride the idle connection"
grep -q '^close' "$T/sink/127.0.0.4.log" && fail "idle connection closed too soon"
within 4 grep -q '^quit id=1' "$T/sink/127.0.0.4.log" ||
    fail "the idle connection was never closed"
grep -q '^close id=1 msgs=2' "$T/sink/127.0.0.4.log" || fail "no close after 2 messages"
grep -q '^rset' "$T/sink/127.0.0.4.log" && fail "RSET after a delivered message"
ok "an idle connection carries the next message (no RSET), then QUITs"

# 11. The exchanger closes the idle connection first (421 idle timeout):
# the next message takes a new connection, nothing is deferred.
sinks_stop; sink 127.0.0.4 --idle=300
send s1@reuse.test
within 2 got 127.0.0.4 1 || fail "first message not delivered"
wait_for "$T/sink/127.0.0.4.log" '^idle id=1'
sleep 0.3
send s2@reuse.test
within 2 got 127.0.0.4 2 || fail "message after the exchanger's idle timeout not delivered"
[ "$(grep -c '^connect' "$T/sink/127.0.0.4.log")" = 2 ] || fail "expected a second connection"
grep -q 'status=deferred' "$T/d.log" && fail "a message was deferred: $(grep deferred "$T/d.log")"
ok "an idle connection the exchanger closes is dropped; the next message connects anew"

# 12. The exchanger drops the idle connection just as it is reused (no
# reply to MAIL): the message goes over a new connection to the same MX,
# not to the next MX, and is not deferred.
sink 127.0.0.5 --drop-after=1; sink 127.0.0.6
send t1@stale.test
within 2 got 127.0.0.5 1 || fail "first message not delivered"
sleep 0.3
send t2@stale.test
within 3 got 127.0.0.5 2 || fail "message on a dropped reused connection not delivered to MX 10 (MX 20 has $(received 127.0.0.6))"
grep -q '^drop id=1 stage=mail after=1' "$T/sink/127.0.0.5.log" ||
    fail "the reused connection was not the one dropped"
[ "$(received 127.0.0.6)" = 0 ] || fail "the message went to MX 20"
grep -q 'status=deferred' "$T/d.log" && fail "a message was deferred: $(grep deferred "$T/d.log")"
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
ok "a reused connection dropped at MAIL: the message goes again to the same MX"

# 13. A session does not idle while a part waits that it cannot carry:
# with one connection allowed, a recipient greylisted (450) on MX 10
# reaches MX 20 at once, even while new mail for MX 10 keeps coming.
sinks_stop; fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP" \
    "domain_concurrency = 1" "concurrency = 1"
sink 127.0.0.7 -r rcpt=450:grey@grey.test; sink 127.0.0.8
daemon_start
send a0@grey.test
within 2 got 127.0.0.7 1 || fail "first message not delivered"
sleep 0.3
send grey@grey.test
for i in 1 2 3 4; do sleep 0.5; send "t$i@grey.test"; done
[ "$(received 127.0.0.8)" = 1 ] ||
    fail "the greylisted recipient waited behind an idle connection to MX 10"
within 3 got 127.0.0.7 5 || fail "MX 10 did not get its messages"
daemon_stop
ok "an idle connection does not hold the slot a part for another MX needs"

# 14. No idle connection while a route of the destination is marked
# failed: once MX 10 is back, the next messages look the routes up again
# and go to MX 10, not on and on to MX 20 over a kept connection.
sinks_stop; fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP"
sink 127.0.0.8
daemon_start
send b0@grey.test
within 3 got 127.0.0.8 1 || fail "first message not delivered via MX 20"
sink 127.0.0.7
for i in 1 2 3 4; do sleep 0.7; send "b$i@grey.test"; done
within 3 got 127.0.0.7 3 ||
    fail "MX 10 is back but got $(received 127.0.0.7) of 4 (MX 20: $(received 127.0.0.8))"
daemon_stop
ok "a destination with a failed route keeps no idle connection: MX 10 used again once back"

# 15. Bad start-ups: unknown user, busy listen address.
if [ "$(id -u)" = 0 ]; then
	world_conf "listen =" "user = no-such-user-mxrelay"
	expect_rc 67 "unknown user" "$MXRELAYD" -f -C "$CONF"
	expect_err "no-such-user-mxrelay: no such user"
fi
sink 127.0.0.2	# holds the address
world_conf "listen = 127.0.0.2:$SMTP_PORT" "user = $DUSER" "group = $DGROUP"
expect_rc 69 "listen address in use" "$MXRELAYD" -f -C "$CONF"
expect_err "listen 127.0.0.2:$SMTP_PORT"
world_conf "listen =" "retry_min = soon"
expect_rc 78 "bad config" "$MXRELAYD" -f -C "$CONF"
expect_err "retry_min"
ok "start-up errors: unknown user 67, address in use 69, bad config 78"

echo "1..$NOK"
