#!/bin/sh
# End to end: log_format = json (issue 12, item 2).  The same mix of
# messages (sent, deferred, bounced, one message with all three, then
# expired with its notification) is run once with text records and once
# with JSON ones; tests/e2e/jsoncheck.py parses every JSON record with
# Python's json module and holds each field to the text record of the
# same recipient.  mxrelayd logs JSON records, and a reload switches the
# format.
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
# $T/run1.FORMAT), then a second run with queue_lifetime = 0 (log in
# $T/run2.FORMAT).
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

# 2. mxrelayd logs JSON records; a reload switches from text to JSON.
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
