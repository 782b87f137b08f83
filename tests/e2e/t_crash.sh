#!/bin/sh
# End to end: kill -9 of mxrelay at every system call of a submission
# leaves either no message or a whole one, and never harms a message that
# was queued before.  strace delivers SIGKILL on the Nth call of each
# system call in turn (-e inject=SYSCALL:signal=KILL:when=N).  Twice: as
# root into the spool, and (as root, see privs.sh) as www-data through the
# set-group-ID drop folder, where a message counts once the spool's owner
# has taken it in (spoolcheck -p).
. "${top_srcdir:-.}/tests/e2e/privs.sh"
. "${top_srcdir:-.}/tests/e2e/lib.sh"

command -v strace > /dev/null || { echo "# strace not installed"; exit 77; }
strace -f -qq -o /dev/null true 2> /dev/null || { echo "# strace cannot trace here"; exit 77; }
# LeakSanitizer cannot run under a tracer.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
export ASAN_OPTIONS

# On any exit (a failed check or a signal included), stop the daemon of
# the SMTP part if it still runs: $dpid, a child of this shell, is the
# daemon or strace; strace ignores fatal signals while it writes a trace
# (-o), so its children (the daemon) are stopped first.  SIGKILL after
# 10 s.  Only a live child of this shell is signalled (ours), and $dpid
# is emptied after each wait.
dpid=""
ours() {
	[ -n "$dpid" ] && [ -r "/proc/$dpid/stat" ] &&
	    sed 's/.*) //' "/proc/$dpid/stat" 2> /dev/null |
	    awk -v p=$$ '{ exit !($2 == p && $1 != "Z") }'
}
stop_daemon() {
	ours || return 0
	for c in $(cat "/proc/$dpid/task/$dpid/children" 2> /dev/null); do
		kill -TERM "$c" 2> /dev/null
	done
	kill -TERM "$dpid" 2> /dev/null
	i=0
	while ours && [ $i -lt 200 ]; do
		i=$((i + 1)); sleep 0.05
	done
	if ours; then
		for c in $(cat "/proc/$dpid/task/$dpid/children" 2> /dev/null); do
			kill -KILL "$c" 2> /dev/null
		done
		kill -KILL "$dpid" 2> /dev/null
	fi
	wait "$dpid" 2> /dev/null
	dpid=""
}
trap 'stop_daemon; cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

write_conf
printf 'Subject: keep\n\nthe first message\n' | mx keep@example.org || fail "first message"
keep=$(last_id)
body_of "$keep" > "$T/keep.body"
cp -a "$SPOOL" "$T/base"

# A message whose stored form is known: all the headers mxrelay would add
# are present, so the spool body is this text with CRLF line ends.
{
	printf 'From: a@example.org\nTo: b@example.org, c@example.org\n'
	printf 'Date: Mon, 23 Nov 2026 18:44:13 +0000\nMessage-ID: <fixed@example.org>\n'
	printf 'Subject: crash test\n\n'
	i=0; while [ $i -lt 2000 ]; do echo "line $i of a body that takes a few writes"; i=$((i + 1)); done
} > "$T/msg"
sed 's/$/\r/' "$T/msg" > "$T/expected"

SYSCALLS="openat write pwrite64 fchmod fsync fdatasync rename renameat renameat2 link linkat unlink unlinkat mkdir close flock ftruncate"
list=$(echo $SYSCALLS | tr ' ' ',')

# crash_loop WHAT: $SUBMIT (a command, stdin the message) under strace
# with $STRACE_AS; $CHECK lists the spool (spoolcheck's format).
crash_loop() {
	what=$1
	strace -f -qq $STRACE_AS -o "$T/trace" -e trace="$list" $SUBMIT < "$T/msg" \
	    || fail "$what: traced clean run failed"
	runs=0 killed=0 whole=0 none=0
	for sc in $SYSCALLS; do
		count=$(grep -cE "^([0-9]+ +)?$sc\(" "$T/trace")
		n=1
		while [ "$n" -le "$count" ]; do
			rm -rf "$SPOOL"
			cp -a "$T/base" "$SPOOL"
			strace -f -qq $STRACE_AS -o /dev/null -e trace="$sc" -e inject="$sc:signal=KILL:when=$n" \
			    $SUBMIT < "$T/msg" > /dev/null 2>&1
			rc=$?
			runs=$((runs + 1))
			$CHECK > "$T/list" 2> "$T/err" || fail "$what: $sc #$n: damaged spool: $(cat "$T/err")"
			body_of "$keep" | cmp -s - "$T/keep.body" || fail "$what: $sc #$n: queued message harmed"
			new=$(grep -v "^$keep " "$T/list")
			if [ -n "$new" ]; then
				[ "$(echo "$new" | wc -l)" = 1 ] || fail "$what: $sc #$n: more than one new message"
				id=${new%% *}
				echo "$new" | grep -q ' <a@example.org> b@example.org,c@example.org$' || fail "$what: $sc #$n: envelope: $new"
				body_of "$id" | cmp -s - "$T/expected" || fail "$what: $sc #$n: partial message visible"
				[ "$rc" = 0 ] || whole=$((whole + 1))
			else
				[ "$rc" = 0 ] && fail "$what: $sc #$n: exit 0 but no message queued"
				none=$((none + 1))
			fi
			[ "$rc" = 0 ] || killed=$((killed + 1))
			# A crashed writer never blocks the next one.
			printf 'Subject: after\n\nx\n' | $SUBMIT_AFTER after@example.org > /dev/null 2>&1 ||
			    fail "$what: $sc #$n: spool unusable after the crash"
			n=$((n + 1))
		done
	done
	echo "# $what: $runs runs, $killed killed: $none left no message, $whole left a whole one"
	[ "$killed" -ge 15 ] || fail "$what: too few kill points exercised ($killed)"
	[ "$none" -ge 1 ] || fail "$what: no run was killed before the commit"
	[ "$whole" -ge 1 ] || fail "$what: no run was killed after the commit"
	ok "$what: kill -9 at $killed points: no message or a whole one, nothing harmed"
}

STRACE_AS="" SUBMIT="$MXRELAY -C $CONF -f a@example.org -t" SUBMIT_AFTER=mx
CHECK="$SPOOLCHECK $SPOOL"
crash_loop "root into the spool"

# The SMTP intake: mxrelayd killed at the Nth call of each system call
# that comes after its start (a clean traced run tells how many there are
# before the first accept and in all).  The relayhost refuses connections,
# so a queued message is deferred at once and its envelope updated: kills
# land in the commit (a worker thread's), the reply and the update.  After
# a 250 the message must be whole; otherwise whole or absent.
daemon_crash() {
	command -v python3 > /dev/null || { echo "# python3 not installed: no SMTP intake part"; return 0; }
	. "$top_srcdir/tests/e2e/world.sh"
	. "$top_srcdir/tests/e2e/daemon.sh"
	trap 'stop_daemon; world_cleanup' EXIT	# world.sh set its own
	pick_port > /dev/null
	lport=$SMTP_PORT
	pick_port > /dev/null
	SPOOL="$T/spool3"
	write_conf "user = $DUSER" "group = $DGROUP" "listen = 127.0.0.1:$lport" \
	    "relayhost = [127.0.0.1]:$SMTP_PORT" "retry_min = 1h" "tls = none"
	dconf=$CONF
	# await PATTERN [PID]: a line of the daemon's log matches PATTERN
	# within 60 s (strace and the sanitizers on a loaded machine), or
	# PID is gone; 1 on a timeout.
	await() {
		i=0
		while ! grep -q "$1" "$T/d.log"; do
			[ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null || return 0
			i=$((i + 1))
			[ $i -le 1200 ] || return 1
			sleep 0.05
		done
	}
	# The base spool: made by the daemon, with one message queued.
	: > "$T/d.log"
	"$MXRELAYD" -f -C "$dconf" >> "$T/d.log" 2>&1 &
	dpid=$!
	await 'started (pid' || fail "daemon: not started within 60 s"
	python3 "$top_srcdir/tests/e2e/smtpclient.py" send "$lport" --from k@example.org \
	    --to keep@example.org --upload "$T/expected" > /dev/null || fail "daemon: first message"
	# Tried once (next try in an hour), so that no later run tries it
	# first and holds the relayhost back before the message under test.
	await 'to=<keep@example.org>.*status=deferred' || fail "daemon: the first message was not tried"
	kill -TERM "$dpid"; wait "$dpid"; dpid=""
	keep=$(last_id)
	[ -n "$keep" ] || fail "daemon: the first message is not queued"
	body_of "$keep" > "$T/keep.body"
	rm -rf "$T/base3"
	cp -a "$SPOOL" "$T/base3"
	# Its failed attempt held the relayhost back: let the next one try.
	rm -f "$T/base3/holds"
	dsys="openat write pwrite64 fsync fdatasync rename renameat renameat2 unlink unlinkat close flock ftruncate"
	# dpid_of: the daemon's pid, the child of strace ($dpid).
	dpid_of() { awk '{ print $1 }' "/proc/$dpid/task/$dpid/children" 2> /dev/null; }
	# send: one message over the listener; rc 0 once it was acknowledged.
	send() {
		python3 "$top_srcdir/tests/e2e/smtpclient.py" send "$lport" --from a@example.org \
		    --to b@example.org --upload "$T/expected" > "$T/client.out" 2>&1
	}
	# One clean traced run: the counts before the first accept and in all.
	rm -rf "$SPOOL"; cp -a "$T/base3" "$SPOOL"
	# Emptied first: the background job truncates it only once it runs.
	: > "$T/d.log"
	strace -f -qq -o "$T/dtrace" -e trace="$(echo $dsys | tr ' ' ','),accept,accept4" \
	    "$MXRELAYD" -f -C "$dconf" >> "$T/d.log" 2>&1 &
	dpid=$!
	await 'started (pid' || fail "daemon: traced clean run: not started within 60 s"
	send || fail "daemon: traced clean run: $(cat "$T/client.out")"
	await 'to=<b@example.org>.*status=deferred' || fail "daemon: traced clean run: no deferral within 60 s"
	# strace -o blocks fatal signals for itself: stop the daemon.
	kill -TERM "$(dpid_of)"; wait "$dpid"; dpid=""
	runs=0 killed=0 whole=0 none=0 acked=0
	for sc in $dsys; do
		before=$(awk '/accept4?\(/ { exit } { print }' "$T/dtrace" | grep -cE "^([0-9]+ +)?$sc\(")
		count=$(grep -cE "^([0-9]+ +)?$sc\(" "$T/dtrace")
		n=$((before + 1))
		while [ "$n" -le "$count" ]; do
			rm -rf "$SPOOL"; cp -a "$T/base3" "$SPOOL"
			: > "$T/d.log"
			strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc:signal=KILL:when=$n" \
			    "$MXRELAYD" -f -C "$dconf" >> "$T/d.log" 2>&1 &
			dpid=$!
			await 'started (pid' "$dpid"
			send && rc=0 || rc=$?
			# Time for the deferral (or for the kill) after the reply.
			i=0
			while ! grep -q 'to=<b@example.org>.*status=deferred' "$T/d.log" &&
			    kill -0 "$dpid" 2>/dev/null && [ $i -lt 40 ]; do
				i=$((i + 1)); sleep 0.05
			done
			# strace exits with the daemon's status (137: killed).
			mpid=$(dpid_of)
			[ -z "$mpid" ] || kill -TERM "$mpid"
			wait "$dpid"
			drc=$?
			dpid=""
			runs=$((runs + 1))
			[ "$drc" = 0 ] || killed=$((killed + 1))
			"$SPOOLCHECK" "$SPOOL" > "$T/list" 2> "$T/err" || fail "daemon: $sc #$n: damaged spool: $(cat "$T/err")"
			body_of "$keep" | cmp -s - "$T/keep.body" || fail "daemon: $sc #$n: queued message harmed"
			new=$(grep -v "^$keep " "$T/list")
			if [ -n "$new" ]; then
				[ "$(echo "$new" | wc -l)" = 1 ] || fail "daemon: $sc #$n: more than one new message"
				id=${new%% *}
				echo "$new" | grep -q ' <a@example.org> b@example.org$' || fail "daemon: $sc #$n: envelope: $new"
				body_of "$id" > "$T/got"
				head -n 1 "$T/got" | grep -q '^Received: ' || fail "daemon: $sc #$n: no Received: first"
				tail -c "$(wc -c < "$T/expected")" "$T/got" | cmp -s - "$T/expected" ||
				    fail "daemon: $sc #$n: partial message visible"
				[ "$drc" = 0 ] || whole=$((whole + 1))
			else
				[ "$rc" = 0 ] && fail "daemon: $sc #$n: acknowledged ($(tail -n 2 "$T/client.out" | tr '\n' ' ')) but not queued"
				[ "$drc" = 0 ] && fail "daemon: $sc #$n: not killed, yet nothing queued: $(cat "$T/client.out")"
				none=$((none + 1))
			fi
			[ "$rc" = 0 ] && acked=$((acked + 1))
			n=$((n + 1))
		done
	done
	echo "# daemon: $runs runs, $killed killed: $none left no message, $whole left a whole one, $acked acknowledged"
	[ "$killed" -ge 10 ] || fail "daemon: too few kill points exercised ($killed)"
	[ "$none" -ge 1 ] || fail "daemon: no run was killed before the commit"
	[ "$whole" -ge 1 ] || fail "daemon: no run was killed after the commit"
	ok "daemon (SMTP intake): kill -9 at $killed points: every acknowledged message whole, nothing harmed"
	SPOOL="$T/spool"
}
daemon_crash

# As www-data through the drop folder of a spool that mxrelay owns.
if [ "$PRIVS" = yes ] && privs_reachable; then
	privs_setup
	cp "$SPOOLCHECK" "$T/bin/spoolcheck"
	SPOOL="$T/spool2"
	write_conf "user = mxrelay"
	cp "$CONF" "$SYSCONF" && chmod 644 "$SYSCONF"
	"$top_builddir/src/mxrelayd" -i || fail "mxrelayd -i"
	printf 'Subject: keep\n\nthe first message\n' | "$SM" keep@example.org || fail "first message"
	keep=$(last_id)
	body_of "$keep" > "$T/keep.body"
	rm -rf "$T/base"
	cp -a "$SPOOL" "$T/base"
	STRACE_AS="-u www-data" SUBMIT="$SM -f a@example.org -t"
	SUBMIT_AFTER="as www-data $SM"
	CHECK="as mxrelay $T/bin/spoolcheck -p $SPOOL"
	crash_loop "www-data through drop/"
else
	echo "# the drop folder part needs root (privs.sh) and a sysconfdir other users reach"
fi
echo "1..$NOK"
