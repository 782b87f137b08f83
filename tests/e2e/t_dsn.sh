#!/bin/sh
# End to end: the notifications to senders (mxrelay(8), "Retries and
# bounces"): one log line per non-delivery notification, the delay
# warning (delay_warning_time), and bounce-storm protection
# (bounce_interval, bounce_limit_per_sender).  Exchangers: 127.0.0.2
# refuses every recipient (550), 127.0.0.3 defers them (450), 127.0.0.4
# is the sender's domain and receives the notifications.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

world_start fail.test=127.0.0.2 slow.test=127.0.0.3 sender.test=127.0.0.4

# dsn.py DIR...: every message stored by the sinks in DIR, parsed with
# Python's email package; each must be a multipart/report of
# report-type delivery-status from the null sender.  Prints one line per
# notification: "ACTION N RCPT..." (the recipients of its
# message/delivery-status part, in order).
cat > "$T/dsn.py" <<'PY'
import email, email.policy, os, sys
for d in sys.argv[1:]:
    for f in sorted(os.listdir(d)):
        if f.startswith('.'):
            continue
        raw = open(os.path.join(d, f), 'rb').read()
        env, _, msg = raw.partition(b'\n\n')
        if not env.startswith(b'MAIL FROM:<>'):
            sys.exit('%s: not from the null sender' % f)
        m = email.message_from_bytes(msg, policy=email.policy.default)
        if m.get_content_type() != 'multipart/report' or \
           m.get_param('report-type') != 'delivery-status':
            sys.exit('%s: %s' % (f, m.get_content_type()))
        parts = m.get_payload()
        ds = [p for p in parts
              if p.get_content_type() == 'message/delivery-status']
        if len(ds) != 1:
            sys.exit('%s: %d delivery-status parts' % (f, len(ds)))
        # The per-message block, then one block per recipient.
        blocks = ds[0].get_payload()
        rcpts, actions = [], set()
        for b in blocks[1:]:
            rcpts.append(b['Final-Recipient'].split(';', 1)[1].strip())
            actions.add(b['Action'])
            st = b['Status']
            if b['Action'] == 'delayed' and not st.startswith('4.'):
                sys.exit('%s: delayed with Status %s' % (f, st))
        if len(actions) != 1:
            sys.exit('%s: actions %s' % (f, actions))
        print(actions.pop(), len(rcpts), ' '.join(rcpts))
PY
dsns() { python3 "$T/dsn.py" "$T/sink/127.0.0.4"; }

# 1. A bounce is logged once: one "sender non-delivery notification" line
# per notification (it was written by bounce.c and by the queue manager).
fresh; world_conf; sink 127.0.0.2 -r rcpt=550; sink 127.0.0.4
send a@fail.test; send b@fail.test
run_queue
log_has "to=<a@fail.test>" "status=bounced"
n=$(grep -c 'sender non-delivery notification' "$T/log")
[ "$n" = 2 ] || { cat "$T/log" >&2; fail "2 bounces logged in $n lines"; }
[ "$(dsns | grep -c '^failed 1 ')" = 2 ] || fail "not two DSNs: $(dsns)"
ok "each non-delivery notification is logged once"

# 2. Bounce storm: 200 messages from one sender to a domain that refuses
# them give at most bounce_limit_per_sender notices, which name every
# recipient.
sinks_stop; fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP" \
    "bounce_interval = 10s" "bounce_limit_per_sender = 5"
sink 127.0.0.2 -r rcpt=550; sink 127.0.0.4
i=0
while [ $i -lt 200 ]; do send "s$i@fail.test"; i=$((i + 1)); done
bounced() { grep -c 'status=bounced' "$T/d.log"; }
daemon_start
within 120 eval '[ "$(bounced)" = 200 ]' || fail "$(bounced) of 200 bounced"
notified() { grep -c 'sender non-delivery notification' "$T/d.log"; }
within 60 eval '[ "$(notified)" = 200 ]' || fail "$(notified) of 200 notified"
within 20 queue_empty || fail "notices not delivered"
n=$(received 127.0.0.4)
[ "$n" -ge 1 ] && [ "$n" -le 5 ] || fail "$n notices for 200 messages"
dsns > "$T/storm"
named=$(cut -d' ' -f3- "$T/storm" | tr ' ' '\n' | sort -u | grep -c '@fail.test')
[ "$named" = 200 ] || fail "$named of 200 recipients named: $(cat "$T/storm")"
[ "$(cut -d' ' -f1 "$T/storm" | sort -u)" = failed ] || fail "not all failed"
grep -q '^X-mxrelay-Queue-ID: ' "$T/sink/127.0.0.4"/* || fail "no queue id per recipient"
daemon_stop
ok "bounce storm: 200 failed messages, $n notices naming all 200 recipients"

# 3. The limit: past bounce_limit_per_sender an hour, the failures are
# logged and removed, and the sender is told no more.
sinks_stop; fresh; world_conf "bounce_limit_per_sender = 2"
sink 127.0.0.2 -r rcpt=550; sink 127.0.0.4
for i in 1 2 3 4 5; do send "l$i@fail.test"; done
run_queue
[ "$(received 127.0.0.4)" = 2 ] || fail "$(received 127.0.0.4) notices, limit 2"
[ "$(grep -c 'no non-delivery notification to <sender@sender.test>: 2 sent this hour (bounce_limit_per_sender)' "$T/log")" = 3 ] ||
    { cat "$T/log" >&2; fail "the 3 notices over the limit not logged"; }
[ "$(spool_count)" = 0 ] || fail "messages over the limit kept"
ok "bounce_limit_per_sender: 5 failures, 2 notices, 3 logged as over the limit"

# 4. What bounce_interval collected is queued when the daemon stops.
sinks_stop; fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP" "bounce_interval = 1h"
sink 127.0.0.2 -r rcpt=550
for i in 1 2 3; do send "h$i@fail.test"; done
daemon_start
within 30 eval '[ "$(bounced)" = 3 ]' || fail "$(bounced) of 3 bounced"
[ "$(grep -c 'collected' "$T/d.log")" = 3 ] || fail "not collected"
daemon_stop
[ "$(spool_count)" = 1 ] || fail "$(spool_count) messages after the stop, want the one notice"
sink 127.0.0.4
run_queue
# The recipients in the order their messages failed.
[ "$(dsns | tr ' ' '\n' | sort | tr '\n' ' ')" = "3 failed h1@fail.test h2@fail.test h3@fail.test " ] ||
    fail "at stop: $(dsns)"
ok "bounce_interval: what is collected is queued as one notice when the daemon stops"

# 5. Delay warning: a message deferred past delay_warning_time gets one
# "delayed" notice (RFC 3464, Status 4.x.x), and no second one at the
# next attempts or after a restart (the envelope records it).
deferrals() { grep -c 'to=<w@slow.test>.*status=deferred' "$T/d.log"; }
sinks_stop; fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP" "retry_min = 1s" \
    "retry_max = 1s" "queue_lifetime = 1h" "delay_warning_time = 2s"
sink 127.0.0.3 -r rcpt=450; sink 127.0.0.4
daemon_start
send w@slow.test
within 20 got 127.0.0.4 1 || fail "no delay warning within 20 s"
wait_for "$T/d.log" 'sender delay notification'
d=$(deferrals)
within 30 eval '[ "$(deferrals)" -ge $((d + 3)) ]' || fail "no more attempts"
[ "$(received 127.0.0.4)" = 1 ] || fail "$(received 127.0.0.4) delay warnings"
[ "$(dsns)" = "delayed 1 w@slow.test" ] || fail "delay warning: $(dsns)"
grep -q '^Will-Retry-Until: ' "$T/sink/127.0.0.4"/* || fail "no Will-Retry-Until"
grep -q '^Status: 4\.' "$T/sink/127.0.0.4"/* || fail "no Status 4.x.x"
[ "$(grep -c 'sender delay notification' "$T/d.log")" = 1 ] || fail "delay warning logged more than once"
daemon_stop
daemon_start
within 30 eval '[ "$(deferrals)" -ge 2 ]' || fail "no attempts after the restart"
[ "$(received 127.0.0.4)" = 1 ] || fail "a second delay warning after the restart"
daemon_stop
ok "delay warning: one RFC 3464 delayed notice, none again at later attempts or after a restart"
