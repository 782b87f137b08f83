#!/bin/sh
# End to end: queue administration on a spool written by the release
# before msg/ (layout version 1, no msg/ yet: nothing has opened it to
# write since the upgrade).  mxrelay delete --bounce must queue the DSN
# and delete the message, as it did on that release; the DSN goes to msg/.
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
