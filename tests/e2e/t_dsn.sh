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
