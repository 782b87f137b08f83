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
