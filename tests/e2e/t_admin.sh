#!/bin/sh
# End to end: queue administration (mxrelay hold, release, requeue,
# delete), by queue id, by domain (-d) and for all messages (-a), first
# on the spool without a daemon (each message under its lock; -q and -qf
# leave a held message alone, -qI refuses it), then through a running
# mxrelayd (held: not delivered by the daemon even when flushed;
# released: delivered at once; requeue of a deferred message: tried now;
# delete: gone, with --bounce one DSN to the sender; a message being
# delivered: delete refused, hold taking effect after the attempt).  A
# user who does not own the spool gets 77.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

world_start up.test=127.0.0.2 other.test=127.0.0.3 sender.test=127.0.0.4

# mxc CMD ARGS...: mxrelay CMD -C $CONF ARGS (a command comes first).
mxc() {
	c=$1
	shift
	"$MXRELAY" "$c" -C "$CONF" "$@" < /dev/null
}

# admin WANT_RC CMD ARGS...: mxrelay CMD, its stdout in $T/out.
admin() {
	want=$1
	shift
	mxc "$@" > "$T/out" 2> "$T/err"
	got=$?
	[ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "mxrelay $*: exit $got, want $want"; }
}

out_has() {
	grep -qF -- "$1" "$T/out" || { cat "$T/out" >&2; fail "output lacks '$1'"; }
}

# send_id RCPT: queue one message, its id in $ID.
send_id() {
	send "$1"
	ID=$(last_id)
}

# Another uid, neither root nor the spool's owner (no passwd entry needed).
as_other() {
	setpriv --reuid=12345 --regid=12345 --clear-groups "$@"
}
can_switch() {
	[ "$(id -u)" = 0 ] && command -v setpriv > /dev/null
}

#
# Without a daemon.
#
fresh
world_conf
sink 127.0.0.2; sink 127.0.0.3; sink 127.0.0.4

# 1. Hold by id: -q and -qf deliver the other message only, -qI refuses.
send_id a@up.test; held=$ID
send b@up.test
admin 0 hold "$held"
out_has "1 message held"
mx -bp > "$T/out" 2>&1
out_has "$held!"
out_has "a@up.test (held, 0 attempts)"
run_queue -q
run_queue -qf
[ "$(received 127.0.0.2)" = 1 ] || fail "held message delivered by -q/-qf: $(received 127.0.0.2)"
[ "$(spool_count)" = 1 ] || fail "held message gone"
expect_rc 75 "-qI of a held message" mx -qI"$held"
expect_err "on hold"
admin 0 hold "$held"
out_has "0 messages held; 1 left as it was (already held)"
ok "hold by id: -q and -qf leave it, -qI refuses it, mailq marks it with !"

# 2. Release: delivered by the next run.
admin 0 release "$held"
out_has "1 message released"
mx -bp > "$T/out" 2>&1
grep -qF "$held!" "$T/out" && fail "released message still marked held"
run_queue -q
[ "$(received 127.0.0.2)" = 2 ] || fail "released message not delivered"
[ "$(spool_count)" = 0 ] || fail "queue not empty after release"
ok "release: the message goes at the next queue run"

# 3. By domain and for all.
send c@up.test; send d@other.test; send e@up.test
admin 0 hold -d UP.test
out_has "2 messages held"
run_queue -q
[ "$(received 127.0.0.3)" = 1 ] && [ "$(received 127.0.0.2)" = 2 ] ||
    fail "hold -d: up $(received 127.0.0.2) other $(received 127.0.0.3)"
send f@other.test
admin 0 hold -a
out_has "1 message held"
admin 0 release -a
out_has "3 messages released"
run_queue -q
[ "$(received 127.0.0.2)" = 4 ] && [ "$(received 127.0.0.3)" = 2 ] ||
    fail "release -a: up $(received 127.0.0.2) other $(received 127.0.0.3)"
ok "hold -d DOMAIN holds that domain's messages only; hold -a, release -a"

# 4. Delete: gone without a DSN; --bounce queues one DSN to the sender.
send_id g@up.test
admin 0 delete "$ID"
out_has "1 message deleted"
[ "$(spool_count)" = 0 ] || fail "deleted message still queued (or a DSN)"
send_id h@up.test; del=$ID
admin 0 delete --bounce -d up.test
out_has "1 message deleted, 1 notification queued"
[ "$(spool_count)" = 1 ] || fail "no DSN queued"
run_queue -q
[ "$(received 127.0.0.4)" = 1 ] || fail "DSN not delivered to the sender"
dsn=$(find "$T/sink/127.0.0.4" -type f ! -name '.*')
grep -q 'Action: failed' "$dsn" && grep -q 'deleted by the administrator' "$dsn" &&
    grep -q "X-mxrelay-Queue-ID: $del" "$dsn" || fail "DSN does not report the deletion"
[ "$(received 127.0.0.2)" = 4 ] || fail "a deleted message was delivered"
ok "delete: no DSN; delete --bounce: one DSN, Action: failed, deleted by the administrator"

# 5. Requeue: a deferred message is due again at once (held: left alone).
sinks_stop; sink 127.0.0.2 -r greeting=421
send_id i@up.test
run_queue -q
log_has "to=<i@up.test>" "status=deferred"
sinks_stop; sink 127.0.0.2
run_queue -q
[ "$(received 127.0.0.2)" = 0 ] || fail "deferred message tried before its time"
admin 0 requeue "$ID"
out_has "1 message requeued"
run_queue -q
[ "$(received 127.0.0.2)" = 1 ] || fail "requeued message not delivered"
send_id x@up.test
admin 0 hold "$ID"
admin 0 requeue -a
out_has "0 messages requeued"
admin 0 requeue "$ID"
out_has "0 messages requeued; 1 left as it was (on hold: release first)"
run_queue -q
[ "$(received 127.0.0.2)" = 1 ] || fail "requeue released a held message"
admin 0 delete "$ID"
ok "requeue: a deferred message goes at the next run; a held one stays held"

# 6. Usage, unknown ids, other users.
expect_rc 0 "--help" mxc delete --help
"$MXRELAY" delete --help | grep -qF "usage: mxrelay delete [-C file] [--bounce] (ID ... | -d DOMAIN | -a)" ||
    fail "delete --help"
expect_rc 64 "no selection" mxc hold
expect_rc 64 "two selections" mxc hold -a -d up.test
expect_rc 64 "--bounce without delete" mxc hold --bounce -a
expect_rc 64 "bad id" mxc release nonsense
expect_rc 66 "unknown id" mxc delete 0123456789abcdef0123
expect_err "no such message"
if can_switch; then
	expect_rc 77 "another user" as_other "$MXRELAY" hold -C "$CONF" -a
	expect_err "only root and the spool's owner"
	ok "usage errors 64, an unknown id 66, another user 77"
else
	ok "usage errors 64, an unknown id 66 # SKIP another user: needs root and setpriv"
fi

#
# With mxrelayd.
#
fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP" "retry_min = 1h" \
    "retry_max = 2h" "smtp_data_timeout = 2s" "smtp_dot_timeout = 2s"
sinks_stop
sink 127.0.0.2 -r greeting=421; sink 127.0.0.3 -r greeting=421; sink 127.0.0.4
daemon_start

# deferred RCPT: queued, and the daemon's first attempt deferred.
deferred() {
	send_id "$1"
	wait_for "$T/d.log" "to=<$1>.*status=deferred"
}

# 7. Hold: not delivered on a flush; release: delivered at once.
deferred j@up.test
admin 0 hold "$ID"
out_has "1 message held"
wait_for "$T/d.log" "$ID: held by the administrator"
mx -bp > "$T/out" 2>&1
out_has "$ID!"
sinks_stop; sink 127.0.0.2; sink 127.0.0.3 -r greeting=421; sink 127.0.0.4
expect_rc 0 "flush" mx -q
expect_rc 75 "-qI held" mx -qI"$ID"
expect_err "on hold"
admin 0 requeue "$ID"
out_has "0 messages requeued"
sleep 1.5
[ "$(received 127.0.0.2)" = 0 ] || fail "daemon delivered a held message"
admin 0 release "$ID"
out_has "1 message released"
within 5 got 127.0.0.2 1 || fail "released message not delivered by the daemon"
within 3 queue_empty || fail "released message still queued"
ok "daemon: a held message is not delivered on a flush; release delivers it at once"

# 8. Requeue: a deferred message (next try in an hour) is tried now.
deferred k@other.test
sinks_stop; sink 127.0.0.2; sink 127.0.0.3; sink 127.0.0.4
sleep 1
[ "$(received 127.0.0.3)" = 0 ] || fail "deferred message retried before its time"
admin 0 requeue -d other.test
out_has "1 message requeued"
within 5 got 127.0.0.3 1 || fail "requeued message not delivered by the daemon"
ok "daemon: requeue -d tries a deferred message now"

# 9. Hold -d, hold -a, release by domain, then all.
sinks_stop; sink 127.0.0.2 -r greeting=421; sink 127.0.0.3 -r greeting=421; sink 127.0.0.4
deferred l@up.test; deferred m@other.test
admin 0 hold -d other.test
out_has "1 message held"
admin 0 hold -a
out_has "1 message held"
sinks_stop; sink 127.0.0.2; sink 127.0.0.3; sink 127.0.0.4
expect_rc 0 "flush" mx -q
admin 0 release -d up.test
out_has "1 message released"
within 5 got 127.0.0.2 1 || fail "release -d: not delivered"
sleep 1
[ "$(received 127.0.0.3)" = 0 ] || fail "release -d up.test released other.test"
admin 0 release -a
out_has "1 message released"
within 5 got 127.0.0.3 1 || fail "release -a: not delivered"
ok "daemon: hold -d, hold -a, release -d, release -a"

# 10. Delete: gone, no DSN; --bounce: one DSN to the sender.
sinks_stop; sink 127.0.0.2 -r greeting=421; sink 127.0.0.4
deferred n@up.test
admin 0 delete "$ID"
out_has "1 message deleted"
within 3 queue_empty || fail "deleted message still queued"
wait_for "$T/d.log" "$ID: deleted by the administrator"
# (up.test is held back now: o waits in the queue.)
send_id o@up.test
sleep 0.5
admin 0 delete --bounce -a
out_has "1 message deleted"
within 5 got 127.0.0.4 1 || fail "no DSN after delete --bounce"
within 3 queue_empty || fail "queue not empty after the DSN"
[ "$(received 127.0.0.4)" = 1 ] || fail "more than one DSN"
grep -q 'deleted by the administrator' "$(find "$T/sink/127.0.0.4" -type f ! -name '.*')" ||
    fail "DSN does not say why"
ok "daemon: delete leaves no DSN; delete --bounce sends one"

# 11. A message being delivered: delete refused (75), hold after the attempt.
sinks_stop; sink 127.0.0.3 --hang=data
send_id p@other.test
wait_for "$T/sink/127.0.0.3.log" "hang id=.* stage=data"
expect_rc 75 "delete in flight" mxc delete "$ID"
expect_err "being delivered now"
admin 0 hold "$ID"
out_has "1 message held"
wait_for "$T/d.log" "to=<p@other.test>.*status=deferred"
sleep 0.5
mx -bp > "$T/out" 2>&1
out_has "$ID!"
admin 0 delete "$ID"
out_has "1 message deleted"
ok "daemon: delete of a message in flight refused; hold takes effect after the attempt"

# 12. Another user: 77 from mxrelay, "error perm" from the daemon.
if can_switch; then
	expect_rc 77 "another user" as_other "$MXRELAY" release -C "$CONF" -a
	# python3 of another user's PATH may be out of its reach.
	py=python3
	as_other /usr/bin/python3 -c '' 2> /dev/null && py=/usr/bin/python3
	as_other "$py" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"delete all\n")
sys.stdout.write(s.recv(256).decode())' "$T/run/mxrelayd.sock" > "$T/out"
	out_has "error perm"
	ok "daemon: another user gets 77, and the socket refuses its request"
else
	ok "# SKIP another user: needs root and setpriv"
fi

# 13. Held without the daemon, then started: it stays held.
daemon_stop
[ "$DRC" = 0 ] || fail "daemon exit $DRC"
sinks_stop; sink 127.0.0.3
send_id q@other.test
admin 0 hold "$ID"
daemon_start
grep -q 'started (pid [0-9]*): 1 messages in the queue' "$T/d.log" || fail "held message not indexed"
expect_rc 0 "flush" mx -q
sleep 1.5
[ "$(received 127.0.0.3)" = 0 ] || fail "the daemon delivered a message held before its start"
admin 0 release -d other.test
out_has "1 message released"
within 5 got 127.0.0.3 1 || fail "released message not delivered after a restart"
ok "daemon: a message held without the daemon stays held when it starts; release delivers it"

daemon_stop
[ "$DRC" = 0 ] || fail "daemon exit $DRC"
