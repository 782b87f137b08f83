#!/bin/sh
# End to end: envelopes of versions 1 and 2 (queue/envelope.c), written
# before the spool noted at intake whether a body has bytes over 0x7f,
# still go through the queue manager after an upgrade.  It reads such a
# body once when it opens the message, and sends BODY=8BITMIME exactly
# when the body has such a byte, however far in.  The messages are
# planted by hand in a spool that mxrelay (then mxrelayd) made, byte for
# byte as the versions before 3 wrote them, and delivered by mxrelay -q,
# then by mxrelayd from its start-up scan.  Each must reach the exchanger
# as it was stored, with the right BODY= parameter, and leave the spool.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
# Bodies are bytes: sed, tr and grep must not read them as UTF-8.
LC_ALL=C
export LC_ALL

world_start old.test=127.0.0.2
sink 127.0.0.2
SINKDIR="$T/sink/127.0.0.2"

# The bodies, as the spool stores them (headers complete, CRLF line ends,
# not dot-stuffed).  b8: UTF-8 text; b7: ASCII only, with a line that
# starts with a dot; big: over 200 KiB of ASCII with one byte 0xE9 in its
# last line, past three of the scan's 64 KiB reads.
{
	printf 'From: Sender <b8@sender.test>\nTo: a@old.test\n'
	printf 'Date: Tue, 1 Dec 2026 10:00:00 +0000\nMessage-ID: <b8@sender.test>\n'
	printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n'
	printf 'Content-Transfer-Encoding: 8bit\nSubject: eight bits\n\n'
	printf 'Gr\303\274\303\237e aus K\303\266ln, \303\247a va ?\n'
	printf '\346\227\245\346\234\254\350\252\236 and plain text\n'
} > "$T/b8.txt"
{
	printf 'From: Sender <b7@sender.test>\nTo: a@old.test\n'
	printf 'Date: Tue, 1 Dec 2026 10:00:00 +0000\nMessage-ID: <b7@sender.test>\n'
	printf 'Subject: seven bits\n\nplain ASCII\n.a line that starts with a dot\n'
	printf 'the end\n'
} > "$T/b7.txt"
{
	printf 'From: Sender <big@sender.test>\nTo: a@old.test\n'
	printf 'Date: Tue, 1 Dec 2026 10:00:00 +0000\nMessage-ID: <big@sender.test>\n'
	printf 'MIME-Version: 1.0\nContent-Type: text/plain; charset=iso-8859-1\n'
	printf 'Content-Transfer-Encoding: 8bit\nSubject: a long one\n\n'
	awk 'BEGIN { for (i = 0; i < 3300; i++)
		printf "line %04d of a long body of seven-bit text, padded to seventy\n", i }'
	printf 'and at the very end one byte over 0x7f: caf\351\n'
} > "$T/big.txt"
for b in b8 b7 big; do sed 's/$/\r/' "$T/$b.txt" > "$T/$b.body"; done
n=$(wc -c < "$T/big.body")
[ "$n" -gt 204800 ] && [ "$(tail -c 100 "$T/big.body" | tr -d '\000-\177' | wc -c)" = 1 ] &&
    [ "$(head -c $((n - 100)) "$T/big.body" | tr -d '\000-\177' | wc -c)" = 0 ] ||
    fail "the big body is not 200 KiB with one 8-bit byte in its last 100"
# The planted messages, one a line: the envelope's version, the sender's
# local part (@sender.test), the recipient's (@old.test), the body, and
# whether it has 8-bit bytes.
MSGS="1 v1b8 a b8 8bit
1 v1b7 b b7 7bit
2 v2b8 c b8 8bit
2 v2b7 d b7 7bit
2 v2big e big 8bit"
NMSGS=5

# plant VERSION NAME RCPT BODY [FIELD...]: a message in $SPOOL as the
# code of that version queued it: the envelope (version 2 with the
# submitter www-data, uid 33), the body, both files the owner's and mode
# 0600 like those that mxrelay made, written in tmp/ and renamed in.  The
# FIELDs are the recipient's from its state on (default: a fresh message,
# never tried).
plant() {
	p_version=$1 p_name=$2 p_rcpt=$3 p_body=$4
	shift 4
	n_plant=$(( ${n_plant:-0} + 1 ))
	# 14 hex digits of microseconds, 6 of a process id.
	id=$(printf '%014x%06x' $(( $(date +%s) * 1000000 + n_plant )) $(( $$ & 16777215 )))
	{
		echo "mxrelay-envelope $p_version"
		echo "id $id"
		echo "sender =$p_name@sender.test"
		echo "arrival $(date +%s)"
		echo "size $(wc -c < "$T/$p_body.body")"
		[ "$p_version" = 2 ] && echo "submitter 33 =www-data"
		echo "rcpts 1"
		echo "rcpt =$p_rcpt@old.test - ${*:-pending 0 0 0 - - -}"
		echo "end"
	} > "$T/env.$id"
	(
		umask 077
		cp "$T/$p_body.body" "$SPOOL/tmp/$id" &&
		    cp "$T/env.$id" "$SPOOL/tmp/$id.env"
	) || fail "cannot write in $SPOOL/tmp"
	chown "$(stat -c %u:%g "$SPOOL/env")" "$SPOOL/tmp/$id" "$SPOOL/tmp/$id.env" ||
	    fail "cannot give the planted files to the spool's owner"
	mv "$SPOOL/tmp/$id" "$SPOOL/data/$id" &&
	    mv "$SPOOL/tmp/$id.env" "$SPOOL/env/$id" ||
	    fail "cannot move the planted files in"
	for f in "data/$id" "env/$id"; do
		[ "$(stat -c '%U %G %a' "$SPOOL/$f")" = "$(stat -c '%U %G' "$SPOOL/env") 600" ] ||
		    fail "$f: $(stat -c '%U %G %a' "$SPOOL/$f"), not like env/"
	done
}

# plant_all: the messages of $MSGS, the version 2 7-bit one deferred
# once (tried 11 minutes ago, due a minute ago); spoolcheck must read
# them all, and the envelopes must still be of versions 1 and 2.
plant_all() {
	now=$(date +%s)
	while read -r v name rcpt body eight; do
		state=""
		[ "$name" = v2b7 ] && state="pending 1 $((now - 60)) $((now - 660))
		    =451%204.3.0%20try%20again%20later =4.3.0 =mx.old.test"
		# shellcheck disable=SC2086
		plant "$v" "$name" "$rcpt" "$body" $state
	done <<EOF
$MSGS
EOF
	[ "$(spool_count)" = $NMSGS ] || { cat "$T/list" >&2; fail "$(spool_count) messages planted, want $NMSGS"; }
	for f in "$SPOOL"/env/*; do
		head -n 1 "$f" | grep -qx 'mxrelay-envelope [12]' || fail "$f: $(head -n 1 "$f")"
	done
}

# check_all: every planted message reached the exchanger once, with
# BODY=8BITMIME exactly when its body has 8-bit bytes, its bytes as
# stored; nothing is left in the spool (msg/ included).
check_all() {
	while read -r v name rcpt body eight; do
		size=$(wc -c < "$T/$body.body")
		want="params=SIZE=$size"
		[ "$eight" = 8bit ] && want="$want BODY=8BITMIME"
		lines=$(grep -F " from=<$name@sender.test> " "$SINKDIR.log")
		[ "$(printf '%s\n' "$lines" | grep -c .)" = 1 ] ||
		    fail "version $v, $eight: MAIL FROM sent $(printf '%s\n' "$lines" | grep -c .) times: $lines"
		case $lines in
		"mail id="*" from=<$name@sender.test> $want") ;;
		*) fail "version $v, $eight: '$lines', want '... $want'";;
		esac
		f=$(grep -lx "MAIL FROM:<$name@sender.test>" "$SINKDIR"/msg.*) ||
		    fail "version $v, $eight: not stored by the exchanger"
		[ "$(sed -n 2p "$f")" = "RCPT TO:<$rcpt@old.test>" ] ||
		    fail "version $v, $eight: $(sed -n 2p "$f")"
		tail -n +5 "$f" | cmp -s - "$T/$body.body" ||
		    fail "version $v, $eight: the bytes received differ from the body stored"
	done <<EOF
$MSGS
EOF
	[ "$(received 127.0.0.2)" = $NMSGS ] || fail "$(received 127.0.0.2) messages received, want $NMSGS"
	for d in msg env data tmp corrupt; do
		[ -z "$(ls -A "$SPOOL/$d")" ] || fail "left in $d/: $(ls -A "$SPOOL/$d")"
	done
}

# 1. mxrelay -q.  The spool, made by mxrelay: one message queued and
# delivered (a version 3 envelope), then the old ones planted.
fresh
world_conf
send first@old.test
run_queue
[ "$(received 127.0.0.2)" = 1 ] && [ "$(spool_count)" = 0 ] ||
    fail "the first message was not delivered"
sinks_stop
sink 127.0.0.2
plant_all
run_queue
for r in a b c d e; do
	log_has "to=<$r@old.test>" "relay=mx.old.test[127.0.0.2]" "status=sent"
done
check_all
ok "mxrelay -q: version 1 and 2 envelopes delivered, BODY=8BITMIME for the 8-bit bodies only (one byte at 200 KiB too), bytes unchanged"

# 2. mxrelayd: the same, in the daemon's spool, found by its start-up scan.
fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP"
daemon_start
daemon_stop
[ "$DRC" = 0 ] || fail "first start: exit $DRC"
sinks_stop
sink 127.0.0.2
plant_all
daemon_start
within 10 got 127.0.0.2 $NMSGS || fail "$(received 127.0.0.2) of $NMSGS delivered by mxrelayd"
within 5 queue_empty || fail "delivered messages still queued"
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
check_all
ok "mxrelayd: version 1 and 2 envelopes delivered, BODY=8BITMIME for the 8-bit bodies only, bytes unchanged"

# 3. The scan's answer is kept: an old envelope that is deferred is
# written back as version 3 with its body line, and the next run sends
# the same BODY= parameter without reading the body again.
fresh
world_conf
send first@old.test
run_queue
sinks_stop
plant 1 v1b8 a b8
plant 2 v2b7 d b7
run_queue	# the exchanger is down: both deferred
for pair in "v1b8 8bit" "v2b7 7bit"; do
	# shellcheck disable=SC2086
	set -- $pair
	f=$(grep -l "^sender =$1@sender.test\$" "$SPOOL"/env/*) ||
	    fail "$1: no envelope left after the deferral"
	[ "$(head -n 1 "$f")" = "mxrelay-envelope 3" ] && grep -qx "body $2" "$f" ||
	    fail "$1: not written back as version 3 with body $2: $(head -n 1 "$f"), $(grep '^body' "$f")"
done
sink 127.0.0.2
run_queue -qf
lines=$(grep -F " from=<v1b8@sender.test> " "$SINKDIR.log")
case $lines in
*" BODY=8BITMIME") ;;
*) fail "v1b8 after the write-back: '$lines'";;
esac
lines=$(grep -F " from=<v2b7@sender.test> " "$SINKDIR.log")
case $lines in
*"params=SIZE="*" BODY="*|"") fail "v2b7 after the write-back: '$lines'";;
esac
ok "a deferred old envelope is written back as version 3 with the scan's answer, which the next run uses"

echo "1..$NOK"
