#!/bin/sh
# End to end: mxrelay as the system sendmail for every local user
# (mxrelay(8) SECURITY).  As root, in a private mount namespace whose /etc and
# sysconfdir are overlays (users, the submit group and the default
# mxrelay.conf made here never reach the host): www-data queues with
# sendmail -t, -bs and cron's exact call through the set-group-ID drop
# folder; the messages are delivered by root's mxrelay -q and by mxrelayd;
# a second user can neither see, read, delete nor run them; -C and
# $MXRELAY_CONFIG lose the privilege; planted symbolic links never make
# root (or the daemon) touch their target.
. "${top_srcdir:-.}/tests/e2e/privs.sh"
privs_require
# The system's python3: other users cannot run root's own (pyenv, venv).
PY=/usr/bin/python3
[ -x $PY ] || { echo "# $PY missing"; exit 77; }

. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
privs_setup

world_start site.test=127.0.0.2 slow.test=127.0.0.3
sink 127.0.0.2

# The configuration, where sendmail looks for it by default.
world_conf "listen =" "user = mxrelay" "group = mxrelay" "retry_min = 1s" "retry_max = 2s"
cp "$CONF" "$SYSCONF"
chmod 644 "$SYSCONF"

# 1. mxrelayd -i makes the spool for the user mxrelay with the drop folder.
expect_rc 0 "mxrelayd -i" "$MXRELAYD" -i
[ "$(stat -c '%U %G %a' "$SPOOL")" = "mxrelay mxsubmit 710" ] || fail "spool: $(stat -c '%U %G %a' "$SPOOL")"
[ "$(stat -c '%U %G %a' "$SPOOL/drop")" = "mxrelay mxsubmit 1730" ] || fail "drop: $(stat -c '%U %G %a' "$SPOOL/drop")"
[ "$(stat -c '%U %a' "$T/run")" = "mxrelay 755" ] || fail "runtime dir: $(stat -c '%U %a' "$T/run")"
ok "mxrelayd -i: spool 0710 mxrelay:mxsubmit, drop/ 1730, runtime folder"

# 2. www-data queues three ways without a daemon.
printf 'To: one@site.test\nSubject: from php\n\nbody one\n' > "$T/m1"
as www-data "$SM" -t -i < "$T/m1" 2> "$T/err" || { cat "$T/err"; fail "sendmail -t -i as www-data"; }
printf 'Subject: cron\n\nbody two\n' | as www-data "$SM" -FCronDaemon -i -B8BITMIME -oem two@site.test 2> "$T/err" ||
    { cat "$T/err"; fail "cron's call as www-data"; }
cat > "$T/bs.py" <<'EOF'
import subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def rd():
    lines = []
    while True:
        l = p.stdout.readline().decode()
        if not l:
            sys.exit("EOF from -bs after %r" % lines)
        lines.append(l)
        if l[3:4] != "-":
            return lines
def cmd(c, want):
    p.stdin.write(c.encode() + b"\r\n"); p.stdin.flush()
    r = rd()
    if not r[-1].startswith(want):
        sys.exit("%s: %r" % (c, r))
    return r
if not rd()[-1].startswith("220"):
    sys.exit("no greeting")
ehlo = "".join(cmd("EHLO app.test", "250"))
if "STARTTLS" in ehlo or "AUTH" in ehlo or "STARTTLS" in "".join(cmd("HELP", "214")):
    sys.exit("-bs offers STARTTLS or AUTH: %r" % ehlo)
for n in ("three", "four"):
    cmd("MAIL FROM:<app@site.test>", "250")
    cmd("RCPT TO:<%s@site.test>" % n, "250")
    cmd("DATA", "354")
    cmd("Subject: %s\r\n\r\nbody %s\r\n." % (n, n), "250")
cmd("QUIT", "221")
p.stdin.close()
sys.exit(p.wait())
EOF
as www-data $PY "$T/bs.py" "$SM" -bs -i 2> "$T/err" || { cat "$T/err"; fail "sendmail -bs as www-data"; }
n=$(find "$SPOOL/drop" -type f | wc -l)
[ "$n" = 4 ] || fail "want 4 drop files, have $n"
[ "$(find "$SPOOL/drop" -type f ! -user www-data | wc -l)" = 0 ] || fail "a drop file not owned by www-data"
[ "$(find "$SPOOL/drop" -type f ! -perm 0404 | wc -l)" = 0 ] || fail "a drop file not 0404"
as www-data ls "$SPOOL/drop" > /dev/null 2>&1 && fail "www-data can list drop/"
f=$(find "$SPOOL/drop" -type f | head -n 1)
as www-data cat "$f" > /dev/null 2>&1 && fail "www-data can read its drop file"
as mxother cat "$f" > /dev/null 2>&1 && fail "mxother can read a drop file"
as mxother rm -f "$f" > /dev/null 2>&1
as www-data rm -f "$f" > /dev/null 2>&1
[ -e "$f" ] || fail "a drop file could be removed by a user"
ok "www-data queued with -t -i, cron's call and -bs (two messages): 4 drop files nobody else can reach"

# Started with stdout and stderr closed, mxrelay still queues (-bs: its
# replies go nowhere, not into a file of the spool).
printf 'EHLO x\r\nMAIL FROM:<a@site.test>\r\nRCPT TO:<closed@site.test>\r\nDATA\r\n' > "$T/m5"
printf 'Subject: closed\r\n\r\nclosed fds\r\n.\r\nQUIT\r\n' >> "$T/m5"
as www-data sh -c 'exec >&- 2>&-; exec "$1" -bs < "$2"' sh "$SM" "$T/m5" ||
    fail "-bs with stdout and stderr closed"
[ "$(find "$SPOOL/drop" -type f | wc -l)" = 5 ] || fail "want 5 drop files"
grep -l 'closed fds' "$SPOOL"/drop/* > /dev/null || fail "the message is not there"
grep -l '250 2.0.0' "$SPOOL"/drop/* && fail "a reply went into a drop file"
# glibc reopens them for a set-group-ID program; root's run is on its own.
sh -c 'exec >&- 2>&-; exec "$1" -bs < "$2"' sh "$SM" "$T/m5" ||
    fail "root's -bs with stdout and stderr closed"
ok "stdout and stderr closed: the message is queued, nothing else written into it"


# 3. Another user: no queue run, no listing, no spool file (77 for -q).
expect_rc 77 "-q as mxother" as mxother "$T/bin/mxrelay" -q
expect_rc 77 "-qf as mxother" as mxother "$T/bin/mxrelay" -qf
for d in msg data env; do
	as mxother ls "$SPOOL/$d" > /dev/null 2>&1 && fail "mxother can list $d/"
done
as mxother "$T/bin/mailq" > "$T/out" 2>&1
grep -q 'site.test' "$T/out" && fail "mxother's mailq shows others' mail: $(cat "$T/out")"
ok "another user: -q and -qf exit 77, no listing of msg/, data/, env/, mailq shows nothing of www-data's"

# 4. -C and $MXRELAY_CONFIG: the privilege goes first; no byte of a
# root-only file shows.
printf 'hostname = h\nthe_secret_value_x9 = 1\n' > "$T/secret.conf"
chmod 600 "$T/secret.conf"
as www-data "$T/bin/mxrelay" -C "$T/secret.conf" -bp > "$T/out" 2>&1 && fail "-C of a root-only file worked"
as www-data env MXRELAY_CONFIG="$T/secret.conf" "$T/bin/mxrelay" -bp >> "$T/out" 2>&1 && fail "MXRELAY_CONFIG of a root-only file worked"
printf 'Subject: x\n\nx\n' | as www-data "$SM" -C "$T/secret.conf" x@site.test >> "$T/out" 2>&1 && fail "submission with a root-only -C worked"
grep -q the_secret_value_x9 "$T/out" && fail "a root-only file leaked: $(cat "$T/out")"
grep -q 'Permission denied' "$T/out" || fail "no clear error: $(cat "$T/out")"
# With a readable -C the caller works only where it could by itself:
# the system spool is not its own, so the drop folder refuses it.
cp "$CONF" "$T/mine.conf"; chmod 644 "$T/mine.conf"
printf 'Subject: x\n\nx\n' | as www-data "$SM" -C "$T/mine.conf" x@site.test > "$T/out" 2>&1
[ $? = 73 ] || fail "-C kept the submit group: $(cat "$T/out")"
ok "-C and MXRELAY_CONFIG lose the submit group; a root-only file stays unread"

# 5. root's mxrelay -q picks the drop files up (as mxrelay) and delivers.
run_queue -q
within 15 got 127.0.0.2 5 || fail "delivered $(received 127.0.0.2) of 5"
log_has "uid=$(id -u www-data), user=www-data (queued from drop/)"
log_has 'to=<three@site.test>' 'status=sent'
[ "$(find "$SPOOL/drop" -type f | wc -l)" = 0 ] || fail "drop files left"
grep -rq 'body two' "$T/sink/127.0.0.2" || fail "cron's message body not delivered"
ok "root's mxrelay -q picks up www-data's messages (log names uid and user) and delivers them"

# 6. While root's -q delivers to a slow exchanger, it runs as mxrelay.
sink 127.0.0.3 --hang=dot
printf 'Subject: slow\n\nslow\n' | "$SM" s@slow.test || fail "root's submission"
"$MXRELAY" -C "$CONF" -q > "$T/slow.log" 2>&1 &
qpid=$!
wait_for "$T/sink/127.0.0.3.log" '^hang id=1'
quid=$(awk '/^Uid:/ { print $2 "," $3 "," $4 }' "/proc/$qpid/status")
m=$(id -u mxrelay)
[ "$quid" = "$m,$m,$m" ] || fail "mxrelay -q runs with uids $quid, not $m"
wait "$qpid"
ok "root's mxrelay -q runs as mxrelay (uid $m) while it delivers"

# 7. With the daemon running: www-data's mail is taken in and delivered;
# mailq of www-data shows its own deferred message, mxother's does not.
world_conf "listen =" "user = mxrelay" "group = mxrelay" "retry_min = 1s" "retry_max = 2s"
cp "$CONF" "$SYSCONF"
daemon_start
[ "$(awk '/^Uid:/ { print $2 }' "/proc/$DPID/status")" = "$m" ] || fail "daemon not running as mxrelay"
printf 'Subject: d\n\nwith daemon\n' | as www-data "$SM" five@site.test || fail "submission with the daemon"
within 15 got 127.0.0.2 6 || fail "dropped message not delivered by the daemon"
grep -q "uid=$(id -u www-data), user=www-data (queued from drop/)" "$T/d.log" || fail "no pickup line in the daemon's log"
printf 'Subject: d\n\nheld\n' | as www-data "$SM" held@slow.test || fail "submission to slow.test"
within 15 grep -q 'hang id=2' "$T/sink/127.0.0.3.log" || fail "slow exchanger not reached"
as www-data "$T/bin/mailq" > "$T/out" 2>&1 || fail "mailq as www-data: $(cat "$T/out")"
grep -q 'held@slow.test' "$T/out" || fail "www-data does not see its message: $(cat "$T/out")"
grep -q 's@slow.test' "$T/out" && fail "www-data sees root's message: $(cat "$T/out")"
as mxother "$T/bin/mailq" > "$T/out" 2>&1 || fail "mailq as mxother: $(cat "$T/out")"
grep -q 'slow.test' "$T/out" && fail "mxother sees others' messages: $(cat "$T/out")"
expect_rc 77 "-q as mxother with the daemon" as mxother "$T/bin/mxrelay" -q
mx -bp > "$T/out" 2>&1
grep -q 'held@slow.test' "$T/out" || fail "root does not see every message: $(cat "$T/out")"
ok "with mxrelayd: www-data's mail delivered; mailq shows each user only their own, root all"

# A user who holds control connections open takes only its own share.
cat > "$T/hold.py" <<'EOF'
import socket, sys
held = []
for i in range(5):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    held.append(s)
s = held[-1]
s.settimeout(5)
print(s.recv(100).decode().strip())
sys.stdout.flush()
sys.stdin.read()		# hold them until told
EOF
mkfifo "$T/hold.in"
as mxother $PY "$T/hold.py" "$T/run/mxrelayd.sock" < "$T/hold.in" > "$T/hold.out" 2>&1 &
hpid=$!
PIDS="$PIDS $hpid"
exec 9> "$T/hold.in"
within 15 grep -q . "$T/hold.out" || fail "no answer to the 5th connection"
grep -q 'error busy too many connections' "$T/hold.out" || fail "5th connection of one user: $(cat "$T/hold.out")"
expect_rc 0 "root's -q while a user holds connections" mx -v -q
expect_err "mxrelayd is running"
exec 9>&-
wait $hpid
ok "control socket: one user gets at most 4 connections; root still gets through"

# A second daemon on the same spool, with another runtime_dir: refused.
sed "s|^runtime_dir = .*|runtime_dir = $T/run2|" "$CONF" > "$T/second.conf"
expect_rc 69 "second daemon, other runtime_dir" timeout 30 "$MXRELAYD" -f -C "$T/second.conf"
expect_err "already running on the spool"
kill -0 "$DPID" || fail "the first daemon died"
daemon_stop
ok "a second mxrelayd on the same spool is refused (69) whatever its runtime_dir"

# The spool's owner in the submit group could not read 0404 drop files:
# refused at start.
sed "s|^group = .*|group = mxsubmit|" "$CONF" > "$T/ingroup.conf"
expect_rc 78 "daemon in the submit group" timeout 30 "$MXRELAYD" -f -C "$T/ingroup.conf"
expect_err "in the submit group"
ok "a daemon whose group is the submit group refuses to start (78)"


# 8. Planted symbolic links, as the spool's owner would plant them.
printf 'root-owned, never to be touched\n' > "$T/target"
chmod 644 "$T/target"
before=$(stat -c '%U %a %s %Y' "$T/target")
as mxrelay ln -sf "$T/target" "$T/run/mxrelayd.pid" || fail "planting the pid file link"
expect_rc 73 "daemon with a planted pid file" "$MXRELAYD" -f
expect_err "symbolic link"
[ "$(stat -c '%U %a %s %Y' "$T/target")" = "$before" ] || fail "target touched through mxrelayd.pid"
as mxrelay rm -f "$T/run/mxrelayd.pid"
ok "a planted mxrelayd.pid link: the daemon refuses to start, the target is untouched"

mkdir "$T/rootdir"
for d in msg data; do
	as mxrelay mv "$SPOOL/$d" "$SPOOL/$d.real"
	as mxrelay ln -s "$T/rootdir" "$SPOOL/$d"
	expect_rc 73 "daemon with a planted $d link" "$MXRELAYD" -f
	expect_err "symbolic link"
	mx -q > "$T/out" 2>&1 && fail "mxrelay -q worked through a $d link"
	[ -z "$(ls "$T/rootdir")" ] || fail "something was made in the $d link's target"
	as mxrelay rm "$SPOOL/$d"
	as mxrelay mv "$SPOOL/$d.real" "$SPOOL/$d"
done
ok "a planted msg or data link: daemon and mxrelay -q refuse, nothing made behind it"

# The message file msg/ID a link to a root-owned file: never sent, its
# target never touched; it is nothing the spool made, so the first queue
# run moves it aside (the link itself) with a log line.
sinks_stop; sink 127.0.0.2
printf 'Subject: victim\n\nx\n' | "$SM" victim@site.test || fail "queueing the victim"
id=$(spool_ids | tail -n 1)
[ -f "$SPOOL/msg/$id" ] || fail "the victim is not in msg/: $(ls -R "$SPOOL")"
printf 'TOPSECRET-%s\n' "$id" > "$T/secret.txt"
chmod 600 "$T/secret.txt"
before=$(stat -c '%U %a %s %Y' "$T/secret.txt")
as mxrelay rm "$SPOOL/msg/$id"
as mxrelay ln -s "$T/secret.txt" "$SPOOL/msg/$id"
mx -qf > "$T/out" 2>&1
grep -rq TOPSECRET "$T/sink" && fail "the link's target was mailed"
[ -e "$SPOOL/msg/$id" ] || [ -L "$SPOOL/msg/$id" ] &&
    fail "the message was not moved aside: $(cat "$T/out")"
[ -L "$SPOOL/corrupt/$id.msg" ] || fail "not in corrupt/: $(ls -l "$SPOOL/corrupt")"
grep -q "$id: moved to $SPOOL/corrupt: message file is not a regular file" "$T/out" ||
    fail "no log line for the move: $(cat "$T/out")"
[ "$(stat -c '%U %a %s %Y' "$T/secret.txt")" = "$before" ] || fail "the link's target was touched"
ok "a planted msg/ID link: not sent, target untouched, moved to corrupt/ with a log line"

# data/ID of a message of the version 1 layout (env/ID + data/ID, as an
# earlier version queued it) a link to a root-owned file: never sent,
# moved aside at once.
printf 'Subject: victim\n\nx\n' | "$SM" victim1@site.test || fail "queueing the victim"
id=$(spool_ids | tail -n 1)
to_v1 "$id"
spool_count > /dev/null && grep -q "^$id .*victim1@site.test" "$T/list" ||
    fail "the version 1 message is not queued: $(cat "$T/list")"
printf 'TOPSECRET-%s\n' "$id" > "$T/secret.txt"
chmod 600 "$T/secret.txt"
as mxrelay rm "$SPOOL/data/$id"
as mxrelay ln -s "$T/secret.txt" "$SPOOL/data/$id"
mx -qf > "$T/out" 2>&1
grep -rq TOPSECRET "$T/sink" && fail "the link's target was mailed"
[ -e "$SPOOL/env/$id" ] && fail "the message was not moved aside: $(cat "$T/out")"
grep -q 'not a regular file' "$T/out" || fail "no log line: $(cat "$T/out")"
ok "a planted data/ID link (version 1 layout): not sent, moved to corrupt/ with a log line"

# An upgraded host: the spool that the earlier daemon gave to mxrelay
# (0700, no drop/).  Users cannot submit until mxrelayd -i fixes it.
OLD="$T/oldspool"
mkdir "$OLD" "$OLD/data" "$OLD/env" "$OLD/tmp" "$OLD/corrupt"
chown -R mxrelay:mxrelay "$OLD"
chmod -R 0700 "$OLD"
sed "s|^spool_dir = .*|spool_dir = $OLD|" "$CONF" > "$SYSCONF"
printf 'Subject: up\n\nup\n' > "$T/m6"
as www-data "$SM" up@site.test < "$T/m6" > "$T/out" 2>&1
[ $? = 73 ] || fail "submission into an old spool: $(cat "$T/out")"
# A message root queued there before: -i refuses until it is given away.
printf 'x' > "$OLD/env/00000000000001000001"
expect_rc 73 "mxrelayd -i with root's files in the spool" "$MXRELAYD" -i
expect_err "chown -R"
chown -R mxrelay:mxrelay "$OLD"
# The same for a message file root left in msg/ (the current layout).
mkdir "$OLD/msg" && chown mxrelay:mxrelay "$OLD/msg" && chmod 700 "$OLD/msg" &&
    printf 'x' > "$OLD/msg/00000000000001000002" || fail "planting root's msg/ file"
expect_rc 73 "mxrelayd -i with root's file in msg/" "$MXRELAYD" -i
expect_err "chown -R"
chown -R mxrelay:mxrelay "$OLD"
expect_rc 0 "mxrelayd -i on an old spool" "$MXRELAYD" -i
[ "$(stat -c '%U %G %a' "$OLD")" = "mxrelay mxsubmit 710" ] || fail "old spool: $(stat -c '%U %G %a' "$OLD")"
[ "$(stat -c '%U %G %a' "$OLD/drop")" = "mxrelay mxsubmit 1730" ] || fail "old drop: $(stat -c '%U %G %a' "$OLD/drop")"
as www-data "$SM" up@site.test < "$T/m6" || fail "submission after mxrelayd -i"
ok "an upgraded spool: root's files in env/ or msg/ refused, then mxrelayd -i gives it the submit group and drop/, then users can submit"

# Root makes no spool below a folder another user owns.
mkdir "$T/userdir" && chown mxother "$T/userdir"
sed "s|^spool_dir = .*|spool_dir = $T/userdir/spool|" "$CONF" > "$SYSCONF"
"$SM" x@site.test < "$T/m6" > "$T/out" 2>&1 && fail "root made a spool below mxother's folder"
grep -q "not root's" "$T/out" || fail "no clear error: $(cat "$T/out")"
[ -e "$T/userdir/spool" ] && fail "something was made below mxother's folder"
ok "root makes no spool below a folder that another user owns"

echo "1..$NOK"
