#!/bin/sh
# End to end: a spool written by the release before msg/ (layout version
# 1, env/ID + data/ID) still works.  tests/e2e/spool-v1 holds the files
# that mxrelay at c41d8fb wrote, byte for byte: 0661a58ced080f004012, an
# 8-bit message to two recipients, tried once against a closed relayhost
# and deferred (its envelope rewritten by that release); 0661a58cf0352d004027,
# signed at submission (a version 5 envelope with a dkim line), never
# tried; 0661a58cf0bb7d004029, plain, never tried.  Only their arrival and
# next-attempt times are moved to now, so that they neither expire nor
# wait.  They are put into a spool laid out as that release made it (no
# msg/), then:
#  1. mailq lists the three;
#  2. a run with the exchanger down defers them: their envelopes are
#     updated where they are (env/ID), nothing moves to msg/;
#  3. a new message queued next to them goes to msg/;
#  4. a run with the exchanger up delivers all four, each once, the old
#     ones byte for byte as stored (the signature in front of the signed
#     one, BODY=8BITMIME for the 8-bit one), and the spool is left empty;
#  5. the same old spool under mxrelayd: its start-up scan delivers them;
#  6. queue administration on the old spool before anything opened it to
#     write (no msg/ yet): mxrelay delete --bounce deletes the message and
#     queues the DSN, into msg/.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
LC_ALL=C
export LC_ALL
V1="$top_srcdir/tests/e2e/spool-v1"
B8=0661a58ced080f004012 SIGNED=0661a58cf0352d004027 PLAIN=0661a58cf0bb7d004029

world_start old.test=127.0.0.2
SINKDIR="$T/sink/127.0.0.2"

# old_spool OWNER: $SPOOL as the release before msg/ made it, with the
# three messages of spool-v1 (owner's, mode 0600, times moved to now).
old_spool() {
	now=$(date +%s)
	rm -rf "$SPOOL"
	mkdir -m 0700 "$SPOOL" "$SPOOL/tmp" "$SPOOL/data" "$SPOOL/env" "$SPOOL/corrupt" ||
	    fail "cannot make the old spool"
	for id in $B8 $SIGNED $PLAIN; do
		cp "$V1/data/$id" "$SPOOL/data/$id" || fail "copy of data/$id"
		# arrival: now; a next attempt (field 6 of a tried recipient): due.
		awk -v now="$now" '$1 == "arrival" { $2 = now }
		    $1 == "rcpt" && $5 > 0 { $6 = now - 60 } { print }' \
		    "$V1/env/$id" > "$SPOOL/env/$id" || fail "copy of env/$id"
	done
	chown -R "$1" "$SPOOL"
	chmod 600 "$SPOOL"/data/* "$SPOOL"/env/*
	[ ! -e "$SPOOL/msg" ] || fail "the old spool has msg/"
}

# delivered_as_stored: each old message reached the exchanger once, its
# bytes those of data/ID (the signed one: its envelope's signature first).
delivered_as_stored() {
	for id in $B8 $SIGNED $PLAIN; do
		sender=$(sed -n 's/^sender =//p' "$V1/env/$id")
		f=$(grep -lx "MAIL FROM:<$sender>" "$SINKDIR"/msg.*) ||
		    fail "$id: not delivered"
		[ "$(echo "$f" | wc -l)" = 1 ] || fail "$id: delivered $(echo "$f" | wc -l) times"
		if [ "$id" = $SIGNED ]; then
			# The dkim line, unescaped (%20 space, %0D%0A CRLF), then the body.
			sed -n 's/^dkim =//p' "$V1/env/$id" | sed 's/%20/ /g; s/%0D%0A/\r\n/g' |
			    sed '$d' > "$T/want"
			cat "$V1/data/$id" >> "$T/want"
		else
			cp "$V1/data/$id" "$T/want"
		fi
		sed '1,/^$/d' "$f" | cmp -s - "$T/want" ||
		    fail "$id: the bytes received differ from the stored message"
	done
	grep -F " from=<b@other.test> " "$SINKDIR.log" | grep -q ' BODY=8BITMIME$' ||
	    fail "the 8-bit message went without BODY=8BITMIME"
	for d in msg env data tmp corrupt; do
		[ -z "$(ls -A "$SPOOL/$d" 2>/dev/null)" ] || fail "left in $d/: $(ls -A "$SPOOL/$d")"
	done
}

# 1-4: mxrelay, as root (the spool's owner).
fresh
world_conf
old_spool root
mx -bp > "$T/mailq" 2>&1 || fail "mailq on the old spool: $(cat "$T/mailq")"
for id in $B8 $SIGNED $PLAIN; do
	grep -q "^$id " "$T/mailq" || { cat "$T/mailq" >&2; fail "mailq does not list $id"; }
done
ok "the old spool's three messages are listed"

run_queue -qf	# no exchanger yet: all deferred
for id in $B8 $SIGNED $PLAIN; do
	log_has "$id: to=<" "status=deferred"
done
[ "$(awk '$1 == "rcpt" { print $5 }' "$SPOOL/env/$B8" | sort -u)" = 2 ] &&
    [ "$(awk '$1 == "rcpt" { print $5 }' "$SPOOL/env/$PLAIN")" = 1 ] ||
    fail "the envelopes in env/ were not updated: $(grep '^rcpt' "$SPOOL"/env/*)"
[ -z "$(ls -A "$SPOOL/msg")" ] || fail "an old message moved to msg/: $(ls -A "$SPOOL/msg")"
grep -q '^dkim =DKIM-Signature:' "$SPOOL/env/$SIGNED" || fail "the update lost the signature"
ok "a failed attempt updates the old envelopes in env/, nothing moves to msg/"

send new@old.test
new=$(last_id)
[ -f "$SPOOL/msg/$new" ] && [ ! -e "$SPOOL/env/$new" ] || fail "the new message $new is not in msg/"
ok "a new message next to them goes to msg/"

sink 127.0.0.2
run_queue -qf
[ "$(received 127.0.0.2)" = 4 ] || fail "$(received 127.0.0.2) of 4 messages delivered"
grep -qx 'MAIL FROM:<sender@sender.test>' "$SINKDIR"/msg.* || fail "the new message was not delivered"
delivered_as_stored
ok "mxrelay -q delivers the old messages byte for byte (signature first, BODY=8BITMIME) and the new one; the spool is empty"

# 5: the daemon, started on an old spool owned by its user.
sinks_stop
sink 127.0.0.2
fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP"
old_spool "$DUSER"
chmod 755 "$T"
daemon_start
within 10 got 127.0.0.2 3 || fail "$(received 127.0.0.2) of 3 delivered by mxrelayd"
within 5 queue_empty || fail "delivered messages still queued"
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
delivered_as_stored
ok "mxrelayd's start-up scan delivers the old spool's messages byte for byte"

# 6: mxrelay delete --bounce on the old spool, without msg/.
fresh
world_conf
old_spool root
"$MXRELAY" delete -C "$CONF" --bounce $PLAIN < /dev/null > "$T/out" 2> "$T/err"
rc=$?
[ "$rc" = 0 ] || { cat "$T/out" "$T/err" >&2; fail "delete --bounce on the old spool: exit $rc"; }
grep -qF "1 message deleted, 1 notification queued" "$T/out" ||
    { cat "$T/out" "$T/err" >&2; fail "delete --bounce: no DSN"; }
[ ! -e "$SPOOL/env/$PLAIN" ] && [ ! -e "$SPOOL/data/$PLAIN" ] || fail "$PLAIN not deleted"
[ "$(ls -A "$SPOOL/msg" 2>/dev/null | wc -l)" = 1 ] || fail "the DSN is not in msg/"
ok "delete --bounce on an old spool without msg/: deleted, one DSN queued in msg/"

echo "1..$NOK"
