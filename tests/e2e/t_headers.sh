#!/bin/sh
# End to end: the listener adds a missing Date: and Message-ID: to a
# relay client's message (smtpd_add_missing_headers, default yes), as
# the sendmail interface does, and leaves the ones there alone; with the
# key off, it adds neither.  Python's smtplib sends a message without
# them, as applications do.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
CLIENT="python3 ${top_srcdir:-.}/tests/e2e/utf8client.py"
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }

world_start up.test=127.0.0.2
LPORT=$SMTP_PORT		# the listener: 127.0.0.1:$LPORT

client() {
	$CLIENT "$@" > "$T/c.out" 2>&1
	CRC=$?
	cat "$T/c.out" >> "$T/all.log"
	[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "message refused"; }
}
# body_n N: the header and body of the Nth message the exchanger stored.
body_n() { sed '1,/^$/d' "$(ls -tr "$T/sink/127.0.0.2"/msg.* | sed -n "${1}p")"; }

printf 'From: app@up.test\r\nTo: a@up.test\r\nSubject: no date\r\n\r\nhello\r\n' > "$T/bare"
printf 'From: app@up.test\r\nDate: Mon, 2 Feb 2026 10:00:00 +0100\r\nMessage-ID: <own@app.test>\r\nSubject: dated\r\n\r\nhello\r\n' > "$T/dated"

fresh
world_conf "listen = 127.0.0.1:$LPORT" "user = $DUSER" "group = $DGROUP"
sink 127.0.0.2
daemon_start

# 1. Without Date and Message-ID: both added, at the end of the header.
client send "$LPORT" app@up.test a@up.test "$T/bare"
within 5 got 127.0.0.2 1 || fail "not delivered"
body_n 1 > "$T/m1"
id=$(sed -n 's/^mxrelayd: \([0-9a-f]*\): from=<app@up.test>.*/\1/p' "$T/d.log" | head -n 1)
[ "$(grep -c '^Date: ' "$T/m1")" = 1 ] || { cat "$T/m1" >&2; fail "no Date: added"; }
grep -q "^Message-ID: <$id@relay.test>" "$T/m1" || { cat "$T/m1" >&2; fail "no Message-ID: <$id@relay.test> added"; }
python3 - "$T/m1" <<'PY' || fail "the added fields do not parse"
import email, email.policy, email.utils, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
assert email.utils.parsedate_to_datetime(m["Date"]) is not None
assert m["Subject"] == "no date" and m.get_content().strip() == "hello"
PY
ok "a relay client's message without Date: and Message-ID: gets both"

# 2. Those it has are kept, none added.
client send "$LPORT" app@up.test a@up.test "$T/dated"
within 5 got 127.0.0.2 2 || fail "not delivered"
body_n 2 > "$T/m2"
[ "$(grep -c '^Date: ' "$T/m2")" = 1 ] && grep -q '^Date: Mon, 2 Feb 2026 10:00:00 +0100' "$T/m2" ||
    { cat "$T/m2" >&2; fail "Date: changed or added"; }
[ "$(grep -ci '^Message-ID: ' "$T/m2")" = 1 ] && grep -q '^Message-ID: <own@app.test>' "$T/m2" ||
    { cat "$T/m2" >&2; fail "Message-ID: changed or added"; }
ok "a message with its own Date: and Message-ID: keeps them, nothing added"

# 3. smtpd_add_missing_headers = no: neither is added.
daemon_stop
world_conf "listen = 127.0.0.1:$LPORT" "user = $DUSER" "group = $DGROUP" \
    "smtpd_add_missing_headers = no"
daemon_start
client send "$LPORT" app@up.test a@up.test "$T/bare"
within 5 got 127.0.0.2 3 || fail "not delivered"
body_n 3 > "$T/m3"
grep -q '^Subject: no date' "$T/m3" || { cat "$T/m3" >&2; fail "wrong message"; }
! grep -qi '^Date: \|^Message-ID: ' "$T/m3" || { cat "$T/m3" >&2; fail "fields added with the key off"; }
ok "smtpd_add_missing_headers = no: neither added"
daemon_stop
