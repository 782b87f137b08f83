#!/bin/sh
# End to end: log_format = json and mailq --json (issue 12, item 2).  The
# same mix of messages (sent, deferred, bounced, one message with all
# three, then expired with its notification) is run once with text
# records and once with JSON ones; tests/e2e/jsoncheck.py parses every
# JSON record with Python's json module and holds each field to the text
# record of the same recipient.  mxrelay -bp --json is held to the text
# listing and to the envelopes in the spool: without the daemon, with a
# held message, and through mxrelayd's control socket for a user who does
# not own the spool.  mxrelayd logs JSON records, and a reload switches
# the format.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
command -v python3 > /dev/null || { echo "# python3 missing"; exit 77; }
CHECK="python3 $top_srcdir/tests/e2e/jsoncheck.py"

world_start ok.test=127.0.0.2 tmp.test=127.0.0.3 bad.test=127.0.0.4
sink 127.0.0.2
sink 127.0.0.3 -r rcpt=450
sink 127.0.0.4 -r rcpt=550

# mix FORMAT: a fresh spool, the mix queued and run once (log in
# $T/run1.FORMAT), the listings in $T/q.FORMAT and $T/q.FORMAT.json, then
# a second run with queue_lifetime = 0 (log in $T/run2.FORMAT).
mix() {
	fresh
	world_conf "listen =" "log_format = $1"
	send a@ok.test
	send b@tmp.test
	send c@bad.test
	printf 'Subject: three\n\nall three\n' |
	    mx -f sender@sender.test d@ok.test e@tmp.test f@bad.test g@bad.test ||
	    fail "queueing the message to three domains failed"
	run_queue -q
	cp "$T/log" "$T/run1.$1"
	mx -bp > "$T/q.$1" 2>&1 || fail "mailq failed"
	mx -bp --json > "$T/q.$1.json" 2> "$T/err" || { cat "$T/err" >&2; fail "mailq --json failed"; }
	[ -s "$T/err" ] && { cat "$T/err" >&2; fail "mailq --json wrote to stderr"; }
	$CHECK queue "$T/q.$1" "$T/q.$1.json" "$SPOOL" || fail "mailq --json ($1 run)"
	[ "$(wc -l < "$T/q.$1.json")" = 2 ] || fail "mailq --json: not one line per message"
	grep -q '"state":"delivered".*"state":"pending".*"state":"bounced"' "$T/q.$1.json" ||
	    fail "no message with a delivered, a pending and a bounced recipient"
	world_conf "listen =" "log_format = $1" "queue_lifetime = 0"
	run_queue -qf
	cp "$T/log" "$T/run2.$1"
}

# 1. Delivery records: the same fields in JSON as in text.
mix text
grep -q 'mxrelay: [0-9a-f]*: to=<e@tmp.test>, status=expired' "$T/run2.text" ||
    fail "the text run has no expired record"
mix json
grep -q '^mxrelay: {"id":"[0-9a-f]*","to":"a@ok.test","relay":"mx.ok.test\[127.0.0.2\]:' "$T/run1.json" ||
    { cat "$T/run1.json" >&2; fail "no JSON record for a@ok.test"; }
grep -q 'to=<' "$T/run1.json" "$T/run2.json" && fail "a text record with log_format = json"
$CHECK log "$T/run1.text" "$T/run1.json" || fail "first run: JSON and text records differ"
$CHECK log "$T/run2.text" "$T/run2.json" || fail "expiry run: JSON and text records differ"
grep -q '"status":"expired","reason":"queued longer than queue_lifetime"}' "$T/run2.json" ||
    fail "no expired JSON record"
grep -q '"event":"sender non-delivery notification","notification":"[0-9a-f]*","recipients":2}' "$T/run1.json" ||
    fail "no JSON notification record for the two bounced recipients"
grep -q '"event":"sender non-delivery notification","notification":"[0-9a-f]*","recipients":1}' "$T/run2.json" ||
    fail "no JSON notification record for an expired recipient"
ok "delivery, expiry and notification records: JSON objects with the text records' fields"

# 2. mailq --json of an empty queue, and of a held message (the flag
# written into its envelope as version 4 has it).
fresh
world_conf "listen ="
mx -bp --json > "$T/out" 2>&1 || fail "mailq --json without a spool"
[ -s "$T/out" ] && fail "mailq --json without a spool printed: $(cat "$T/out")"
send held@tmp.test
send free@tmp.test
id=$(mx -bp --json | python3 -c '
import json, sys
for l in sys.stdin:
    o = json.loads(l)
    if o["recipients"][0]["address"] == "held@tmp.test":
        print(o["queue_id"])')
[ -n "$id" ] || fail "held@tmp.test not listed"
env_of "$id" > "$T/env.old" || fail "no envelope for $id"
sed -e 's/^mxrelay-envelope 3$/mxrelay-envelope 4/' -e '/^submitter /a\
flags hold' "$T/env.old" > "$T/env" || fail "editing the envelope of $id"
grep -qx 'flags hold' "$T/env" || fail "no flags line written: $(cat "$T/env")"
env_put "$id" "$T/env"
mx -bp > "$T/q" || fail "mailq of a held message"
mx -bp --json > "$T/q.json" || fail "mailq --json of a held message"
$CHECK queue "$T/q" "$T/q.json" "$SPOOL" || fail "mailq --json with a held message"
grep -q "\"queue_id\":\"$id\".*\"held\":true" "$T/q.json" || fail "held not true: $(cat "$T/q.json")"
[ "$(grep -c '"held":false' "$T/q.json")" = 1 ] || fail "the other message is not held: false"
mx -bp --json --json > /dev/null || fail "--json twice"
expect_rc 64 "--json without -bp" mx --json x@ok.test
expect_err "--json: only with -bp"
ok "mailq --json: nothing for an empty queue, held true and false, --json only with -bp"

# 3. mxrelayd logs JSON records; a reload switches from text to JSON.
fresh
world_conf "listen =" "log_format = text"
daemon_start
send one@ok.test
wait_for "$T/d.log" 'to=<one@ok.test>, relay=mx.ok.test'
world_conf "listen =" "log_format = json" "retry_min = 1h"
kill -HUP "$DPID"
wait_for "$T/d.log" 'configuration reloaded'
send two@ok.test
send three@tmp.test
wait_for "$T/d.log" '"to":"three@tmp.test".*"status":"deferred"'
wait_for "$T/d.log" '"to":"two@ok.test".*"status":"sent"'
sed -n '/configuration reloaded/,$p' "$T/d.log" > "$T/d.after"
$CHECK records "$T/d.after" 2 > "$T/recs" || fail "the daemon's JSON records"
grep -qx "sent two@ok.test" "$T/recs" || fail "records: $(cat "$T/recs")"
grep -qx "deferred three@tmp.test" "$T/recs" || fail "records: $(cat "$T/recs")"
ok "mxrelayd: text records, then JSON ones after a reload"

# 4. Through the control socket: a user who does not own the spool sees
# its own messages from mxrelayd, the same lines as the spool gives root.
# The envelopes name that user as their submitter (written while the
# daemon is stopped; it reads them at start).
daemon_stop
NUID=$(id -u "$DUSER")
[ "$NUID" != 0 ] && [ "$(id -u)" = 0 ] || { echo "# skipping the control socket case: not root"; exit 0; }
send four@tmp.test
four_tried() { mx -bp | grep -q 'four@tmp.test (pending, 1 attempt,'; }
[ "$(spool_ids | wc -l)" = 2 ] || fail "not two messages in the spool: $(spool_ids)"
for i in $(spool_ids); do
	env_of "$i" > "$T/env.old" || fail "no envelope for $i"
	sed "s/^submitter 0 =root\$/submitter $NUID =$DUSER/" "$T/env.old" > "$T/env" &&
	    grep -q "^submitter $NUID =$DUSER\$" "$T/env" ||
	    fail "editing the envelope of $i: $(cat "$T/env")"
	env_put "$i" "$T/env"
done
world_conf "listen =" "log_format = json" "retry_min = 1h" "user = root"
daemon_start
chmod 644 "$CONF"
within 15 four_tried || fail "four@tmp.test not tried by the daemon"
as_user() { setpriv --reuid="$NUID" --regid="$(id -g "$DUSER")" --clear-groups -- "$@"; }
as_user "$MXRELAY" -C "$CONF" -bp > "$T/qu" 2> "$T/err" || { cat "$T/err" >&2; fail "mailq as $DUSER"; }
as_user "$MXRELAY" -C "$CONF" -bp --json > "$T/qu.json" 2> "$T/err" || { cat "$T/err" >&2; fail "mailq --json as $DUSER"; }
mx -bp --json > "$T/qr.json" || fail "root's mailq --json"
[ "$(wc -l < "$T/qu.json")" = 2 ] || fail "$DUSER sees $(wc -l < "$T/qu.json") messages, not 2"
# The same lines; the daemon's order is its index's.
sort "$T/qu.json" > "$T/qu.sorted"
sort "$T/qr.json" > "$T/qr.sorted"
cmp "$T/qu.sorted" "$T/qr.sorted" || fail "the daemon's listing differs from the spool's"
$CHECK queue "$T/qu" "$T/qu.json" "$SPOOL" || fail "mailq --json through mxrelayd"
daemon_stop
# Without the daemon that user has no listing: the lines above came from it.
expect_rc 69 "mailq --json as $DUSER without mxrelayd" as_user "$MXRELAY" -C "$CONF" -bp --json
expect_err "mxrelayd is not running"
ok "mailq --json through mxrelayd: the lines that root reads from the spool"
