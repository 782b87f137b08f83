#!/bin/sh
# End to end: a queued message that mxrelayd or mxrelay -q cannot open,
# lock or read is never stranded in silence.  Each failure is logged with
# the queue id and the reason and the message is retried with backoff
# (retry_min doubling up to retry_max); when its envelope can be written
# the reason and the next try are recorded there, so mailq shows them;
# past queue_lifetime it is moved into corrupt/ with a log line naming
# the reason.  A message that becomes readable again is delivered.
#
# The daemon runs as $DUSER (nobody when the test runs as root), so a
# file of mode 000 is closed to it.  For mxrelay -q (root, which becomes
# the spool's owner) the envelope update is made a directory, which
# nobody can read as a file; a message file that is a directory (or a
# link) is nothing the spool made and is moved aside at once (5b).
#
# A message is one file, msg/ID (body, envelope, trailer), with msg/ID.env
# once its envelope was updated; closing msg/ID closes its envelope too.
# Only a message of the version 1 layout (env/ID + data/ID, still read)
# can have a readable envelope and a body that cannot be locked: cases 1
# to 3 are such messages (to_v1).
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

cat > "$T/zone" <<'EOF'
up.test MX 10 mx1.up.test
mx1.up.test A 127.0.0.2
EOF
start_dnsd "$T/zone"
pick_port
sink 127.0.0.2

# nlines FILE PATTERN: how many lines of FILE hold PATTERN (fixed string).
nlines() { grep -cF -- "$2" "$1" 2>/dev/null || true; }
# at_least N FILE PATTERN: FILE has N or more such lines.
at_least() { [ "$(nlines "$2" "$3")" -ge "$1" ]; }

# The daemon's spool, owned by $DUSER: start it once on a fresh spool.
fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP" \
    "retry_min = 1s" "retry_max = 2s"
daemon_start
daemon_stop
[ "$DRC" = 0 ] || fail "first start: exit $DRC"

# 1. The body cannot be opened by the daemon's user (mode 000): the
# message cannot be locked.  Logged with the reason, retried with backoff,
# and mailq shows the attempts, the next try and the reason.
send a@up.test
a=$(last_id)
to_v1 "$a"
chmod 000 "$SPOOL/data/$a"
daemon_start
wait_for "$T/d.log" "$a: cannot lock: Permission denied; next try in 1s (failure 1 in a row)"
wait_for "$T/d.log" "$a: cannot lock: Permission denied; next try in 2s (failure 2 in a row)"
wait_for "$T/d.log" "$a: cannot lock: Permission denied; next try in 2s (failure 3 in a row)"
n=$(nlines "$T/d.log" "$a: cannot lock")
[ "$n" -le 4 ] || fail "retried without backoff: $n failures"
mx -bp > "$T/q" || fail "mailq failed"
grep -q 'a@up.test (pending, [1-9][0-9]* attempts, next try ' "$T/q" ||
    { cat "$T/q" >&2; fail "mailq does not show the attempts and the next try"; }
grep -qF 'cannot lock: Permission denied' "$T/q" ||
    { cat "$T/q" >&2; fail "mailq does not show the reason"; }
ok "a message the daemon cannot lock: each failure logged, retried with backoff, reason in mailq"

# 2. Readable again: delivered at the next try, with a log line.
chmod 600 "$SPOOL/data/$a"
within 5 got 127.0.0.2 1 || fail "not delivered once readable: $(received 127.0.0.2)"
wait_for "$T/d.log" "$a: can be read again after"
within 2 queue_empty || fail "delivered message still queued"
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
ok "once readable again the message is delivered"

# 3. Still failing past queue_lifetime (from the envelope's arrival):
# moved into corrupt/ with a log line naming the reason.
world_conf "listen =" "user = $DUSER" "group = $DGROUP" \
    "retry_min = 1s" "retry_max = 2s" "queue_lifetime = 4s"
send b@up.test
b=$(last_id)
to_v1 "$b"
chmod 000 "$SPOOL/data/$b"
daemon_start
wait_for "$T/d.log" "$b: moved to $SPOOL/corrupt: cannot lock: Permission denied, for longer than queue_lifetime"
[ -f "$SPOOL/corrupt/$b.env" ] && [ -e "$SPOOL/corrupt/$b.data" ] ||
    fail "not in corrupt/: $(ls "$SPOOL/corrupt")"
[ ! -e "$SPOOL/env/$b" ] || fail "still queued after the move"
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
ok "past queue_lifetime a message that cannot be locked is moved to corrupt/ with the reason"

# 3m. A message file (msg/ID) that the daemon's user cannot open: its
# envelope cannot be read either.  Logged with the reason, retried with
# backoff (from memory: mailq cannot read it), delivered once readable
# again; failing past queue_lifetime (from the file's age), moved into
# corrupt/ with the reason.
world_conf "listen =" "user = $DUSER" "group = $DGROUP" \
    "retry_min = 1s" "retry_max = 2s"
send m@up.test
m=$(last_id)
[ -f "$SPOOL/msg/$m" ] || fail "m@up.test is not in msg/"
chmod 000 "$SPOOL/msg/$m"
daemon_start
wait_for "$T/d.log" "$m: cannot read the envelope: Permission denied; next try in 1s (failure 1 in a row)"
wait_for "$T/d.log" "$m: cannot read the envelope: Permission denied; next try in 2s (failure 2 in a row)"
wait_for "$T/d.log" "$m: cannot read the envelope: Permission denied; next try in 2s (failure 3 in a row)"
n=$(nlines "$T/d.log" "$m: cannot read the envelope")
[ "$n" -le 4 ] || fail "retried without backoff: $n failures"
[ "$(received 127.0.0.2)" = 1 ] || fail "an unreadable message was sent"
chmod 600 "$SPOOL/msg/$m"
within 5 got 127.0.0.2 2 || fail "not delivered once readable: $(received 127.0.0.2)"
wait_for "$T/d.log" "$m: can be read again after"
within 2 queue_empty || fail "delivered message still queued"
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
world_conf "listen =" "user = $DUSER" "group = $DGROUP" \
    "retry_min = 1s" "retry_max = 2s" "queue_lifetime = 4s"
send n@up.test
x=$(last_id)
chmod 000 "$SPOOL/msg/$x"
daemon_start
wait_for "$T/d.log" "$x: moved to $SPOOL/corrupt: cannot read the envelope: Permission denied, for longer than queue_lifetime"
[ -f "$SPOOL/corrupt/$x.msg" ] || fail "not in corrupt/: $(ls "$SPOOL/corrupt")"
[ ! -e "$SPOOL/msg/$x" ] || fail "still queued after the move"
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
[ "$(received 127.0.0.2)" = 2 ] || fail "a stranded message was sent"
ok "a message file the daemon cannot open: logged, retried with backoff, delivered once readable, moved to corrupt/ past queue_lifetime"

# 4. The envelope itself cannot be read, the message file can (msg/ID.env,
# the updated envelope, of mode 000; the start-up scan skips it): the
# daemon keeps the reason and the backoff in memory, and past
# queue_lifetime (from the files' age) moves it into corrupt/.
world_conf "listen =" "user = $DUSER" "group = $DGROUP" \
    "retry_min = 1s" "retry_max = 1s" "queue_lifetime = 6s"
send c@up.test
c=$(last_id)
env_of "$c" > "$T/env.$c" || fail "no envelope for $c"
env_put "$c" "$T/env.$c"
chmod 000 "$SPOOL/msg/$c.env"
daemon_start
wait_for "$T/d.log" "$c: cannot read the envelope: Permission denied; next try in 1s (failure 1 in a row)"
wait_for "$T/d.log" "$c: cannot read the envelope: Permission denied; next try in 1s (failure 2 in a row)"
wait_for "$T/d.log" "$c: moved to $SPOOL/corrupt: cannot read the envelope: Permission denied, for longer than queue_lifetime"
n=$(nlines "$T/d.log" "$c: cannot read the envelope")
[ "$n" -le 8 ] || fail "retried without backoff: $n failures in 6 s"
[ -e "$SPOOL/corrupt/$c.msg.env" ] && [ -f "$SPOOL/corrupt/$c.msg" ] ||
    fail "not in corrupt/: $(ls "$SPOOL/corrupt")"
[ ! -e "$SPOOL/msg/$c" ] && [ ! -e "$SPOOL/msg/$c.env" ] || fail "still queued after the move"
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
[ "$(received 127.0.0.2)" = 2 ] || fail "a stranded message was sent"
ok "an unreadable envelope: retried from memory, then moved to corrupt/ past queue_lifetime"

# 5. mxrelay -q: an envelope that no one can read (msg/ID.env a
# directory) is looked at, and logged, by every queue run; once older
# than queue_lifetime it is moved into corrupt/.
fresh
world_conf "listen =" "retry_min = 1s" "retry_max = 2s" "queue_lifetime = 1h"
send d@up.test
d=$(last_id)
mkdir "$SPOOL/msg/$d.env"
run_queue
log_has "$d: cannot read the envelope:" "; next try at the next queue run (failure 1 in a row)"
run_queue
log_has "$d: cannot read the envelope:" "; next try at the next queue run"
[ -d "$SPOOL/msg/$d.env" ] && [ -f "$SPOOL/msg/$d" ] || fail "-q dropped the message"
# Its message file was written at arrival: make it two hours old.
touch -m -d "@$(( $(date +%s) - 7200 ))" "$SPOOL/msg/$d" ||
    fail "cannot age the message file"
run_queue
log_has "$d: moved to $SPOOL/corrupt: cannot read the envelope:" "for longer than queue_lifetime"
[ -d "$SPOOL/corrupt/$d.msg.env" ] && [ -f "$SPOOL/corrupt/$d.msg" ] ||
    fail "not in corrupt/: $(ls "$SPOOL/corrupt")"
[ ! -e "$SPOOL/msg/$d" ] && [ ! -e "$SPOOL/msg/$d.env" ] ||
    fail "still queued after the move"
run_queue
log_lacks "$d:"
[ "$(received 127.0.0.2)" = 2 ] || fail "a stranded message was sent"
ok "mxrelay -q: an unreadable envelope is logged at every run, moved to corrupt/ past queue_lifetime"

# 5b. mxrelay -q: the message file itself a directory: nothing the spool
# made, moved aside by the first run, never sent.
send e@up.test
e=$(last_id)
mv "$SPOOL/msg/$e" "$T/msg.$e"
mkdir "$SPOOL/msg/$e"
run_queue
log_has "$e: moved to $SPOOL/corrupt: message file is not a regular file"
[ -d "$SPOOL/corrupt/$e.msg" ] || fail "not in corrupt/: $(ls "$SPOOL/corrupt")"
[ ! -e "$SPOOL/msg/$e" ] || fail "still queued after the move"
run_queue
log_lacks "$e:"
[ "$(received 127.0.0.2)" = 2 ] || fail "a stranded message was sent"
ok "mxrelay -q: a message file that is a directory is moved to corrupt/ at once"

echo "1..$NOK"
