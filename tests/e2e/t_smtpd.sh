#!/bin/sh
# End to end: mxrelayd's SMTP listener driven by a real client (Python's
# smtplib and ssl, tests/e2e/smtpclient.py), delivering to exchangers on
# loopback: a relay client's message delivered by MX preference, an
# outsider refused, AUTH over TLS only, SMTP smuggling payloads under
# bare_lf = reject and normalize, an LF-only file as curl --upload-file
# sends it, commands pipelined before STARTTLS, oversize messages, and
# kill -9 in the middle of a 1,000-message burst.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
CLIENT="python3 ${top_srcdir:-.}/tests/e2e/smtpclient.py"
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }
command -v openssl > /dev/null || { echo "# openssl not installed"; exit 77; }

cat > "$T/zone" <<'EOF'
up.test MX 10 mx1.up.test
up.test MX 20 mx2.up.test
mx1.up.test A 127.0.0.2
mx2.up.test A 127.0.0.3
EOF
start_dnsd "$T/zone"
pick_port
LPORT=$SMTP_PORT		# the listener: 127.0.0.1:$LPORT

mkdir "$T/certs"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" relay.test || fail "certificates"
chmod 644 "$T/certs"/*
printf 'app:%s\n' "$(openssl passwd -6 's3cret pass')" > "$T/users"
chmod 644 "$T/users"

# client ARGS...: smtpclient.py, its output in $T/c.out, exit status in $CRC.
client() {
	$CLIENT "$@" > "$T/c.out" 2>&1
	CRC=$?
	cat "$T/c.out" >> "$T/all.log"
}
c_has() { grep -qF -- "$1" "$T/c.out" || { cat "$T/c.out" >&2; fail "client output lacks '$1'"; }; }

listener_conf() {
	world_conf "listen = 127.0.0.1:$LPORT" "user = $DUSER" "group = $DGROUP" \
	    "tls_cert_file = $T/certs/good.pem" "tls_key_file = $T/certs/good.key" \
	    "auth_users = $T/users" "max_message_size = 20K" "$@"
}

# 1. A relay client's message: queued, then delivered to MX 10 with a
# Received: header.
fresh; listener_conf
sink 127.0.0.2; sink 127.0.0.3
daemon_start
client send "$LPORT" --to a@up.test --subject first
[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "relay client refused"; }
c_has "DATA 250 2.0.0"
c_has "PIPELINING"
c_has "8BITMIME"
c_has "ENHANCEDSTATUSCODES"
c_has "STARTTLS"
within 3 got 127.0.0.2 1 || fail "not delivered to MX 10"
[ "$(received 127.0.0.3)" = 0 ] || fail "MX 20 used while MX 10 is up"
f=$(find "$T/sink/127.0.0.2" -type f | head -n 1)
grep -q '^Received: from client.test' "$f" || fail "no Received: header: $(head -5 "$f")"
grep -q 'by relay.test (mxrelay)' "$f" || fail "Received: lacks 'by relay.test'"
grep -q '^Subject: first' "$f" || fail "message body not delivered"
grep -q 'from=<app@client.test>, size=[0-9]*, nrcpt=1, client=\[127.0.0.1\]' "$T/d.log" ||
    fail "no listener log line"
ok "relay client: queued over SMTP, delivered by MX preference with a Received: header"

# 2. AUTH is not offered in clear and refused there, even with good credentials.
client auth-clear "$LPORT" "app:s3cret pass"
grep -q '^250[- ]AUTH' "$T/c.out" && fail "AUTH offered before STARTTLS"
c_has "530 5.7.0"
ok "AUTH in clear: not offered, refused with 530 5.7.0"
daemon_stop

# 3. An outsider (127.0.0.1 is not in relay_clients) is refused; after
# STARTTLS and AUTH the same client may relay.
sinks_stop; fresh; listener_conf "relay_clients = 10.99.0.0/16"
sink 127.0.0.2
daemon_start
client send "$LPORT" --to b@up.test
[ "$CRC" = 1 ] || fail "outsider not refused (exit $CRC)"
c_has "RCPT 554 5.7.1"
[ "$(spool_count)" = 0 ] || fail "outsider's message queued"
client send "$LPORT" --to b@up.test --starttls --cafile "$T/certs/ca.pem" --auth "app:wrong"
[ "$CRC" = 1 ] || fail "wrong password accepted"
c_has "535"
client send "$LPORT" --to c@up.test --subject authed --starttls \
    --cafile "$T/certs/ca.pem" --auth "app:s3cret pass"
[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "authenticated client refused"; }
c_has "AUTH 235"
within 3 got 127.0.0.2 1 || fail "authenticated message not delivered"
f=$(find "$T/sink/127.0.0.2" -type f | head -n 1)
grep -q 'with ESMTPSA' "$f" || fail "Received: does not say ESMTPSA"
ok "outsider refused with 554 5.7.1 and nothing queued; AUTH over TLS: 535 for a wrong password, relays when right"

daemon_stop

# 4. SMTP smuggling: each payload yields one message or an error, never two.
# Under bare_lf = reject, each is refused whole.
sinks_stop; fresh; listener_conf "bare_lf = reject"
sink 127.0.0.2
daemon_start
n=0
for end in '\n.\r\n' '\r.\n' '\n.\n' '\r.\r\n' '\r\n.\n' '\n.\r' ; do
	n=$((n + 1))
	printf "EHLO client.test\r\nMAIL FROM:<app@client.test>\r\nRCPT TO:<s$n@up.test>\r\nDATA\r\n" > "$T/raw"
	printf "Subject: carrier $n\r\n\r\nbody$end" >> "$T/raw"
	printf "MAIL FROM:<evil@client.test>\r\nRCPT TO:<victim$n@up.test>\r\nDATA\r\n" >> "$T/raw"
	printf "Subject: smuggled $n\r\n\r\nevil\r\n.\r\nQUIT\r\n" >> "$T/raw"
	before=$(received 127.0.0.2)
	client raw "$LPORT" "$T/raw"
	sleep 0.5
	# Each payload has a bare LF or a bare CR: the whole DATA, up to the
	# real CRLF.CRLF, is refused (mxrelayd(8)), so nothing at all is queued.
	grep -q '^554 5.6.0' "$T/c.out" || { cat "$T/c.out" >&2; fail "payload $n: no 554 5.6.0"; }
	! grep -q '^250 2.0.0 Ok: queued' "$T/c.out" || { cat "$T/c.out" >&2; fail "payload $n: a message was queued"; }
	after=$(received 127.0.0.2)
	[ "$after" = "$before" ] || fail "payload $n: $((after - before)) messages delivered"
	! grep -rqs "victim$n@up.test" "$T/sink/127.0.0.2.log" || fail "payload $n: smuggled recipient reached the exchanger"
done
# A bare LF or a bare CR in the middle of a body is refused the same way,
# and the session goes on: a clean message after it is queued.
for mid in '\n' '\r'; do
	printf "EHLO client.test\r\nMAIL FROM:<app@client.test>\r\nRCPT TO:<mid@up.test>\r\nDATA\r\n" > "$T/raw"
	printf "Subject: mid\r\n\r\na${mid}b\r\nmore\r\n.\r\n" >> "$T/raw"
	printf "MAIL FROM:<app@client.test>\r\nRCPT TO:<clean@up.test>\r\nDATA\r\n" >> "$T/raw"
	printf "Subject: clean\r\n\r\nok\r\n.\r\nQUIT\r\n" >> "$T/raw"
	client raw "$LPORT" "$T/raw"
	grep -q '^554 5.6.0' "$T/c.out" || { cat "$T/c.out" >&2; fail "bare $mid mid-body: no 554 5.6.0"; }
	[ "$(grep -c '^250 2.0.0 Ok: queued' "$T/c.out")" = 1 ] || { cat "$T/c.out" >&2; fail "bare $mid mid-body: the clean message after it was not queued once"; }
done
ok "SMTP smuggling, bare_lf = reject: $n payloads and a bare LF/CR mid-body: 554 5.6.0, nothing queued, never a second message"
daemon_stop

# sink_msg RCPT: the file of the message the exchanger 127.0.0.2 stored for
# RCPT (up to 5 s); its body after the first empty line.
sink_msg() {
	within 5 sh -c "grep -l '^RCPT TO:<$1>\$' '$T/sink/127.0.0.2'/msg.* > '$T/msgf' 2>/dev/null" ||
	    return 1
	head -n 1 "$T/msgf"
}
crlf_only() { [ "$(grep -c "$(printf '\r')\$" "$1")" = "$(wc -l < "$1" | tr -d ' ')" ]; }

# 4b. Under bare_lf = normalize (the default), from a relay client: a
# payload with a bare CR is refused whole; in the others the bare LF is a
# line end, the fake end is an empty line and the smuggled commands are
# the text of the one message delivered.
sinks_stop; fresh; listener_conf
sink 127.0.0.2
daemon_start
n=0 queued=0 base=$(received 127.0.0.2)
for end in '\n.\r\n' '\r.\n' '\n.\n' '\r.\r\n' '\r\n.\n' '\n.\r' \
    '\n..\n.\n' '\n.\n.\r\n' '\r\n.\n.\n' '\n\r\n.\n' '\n.\n\r\n.\n' \
    '\n.\r\n\r\n'; do
	n=$((n + 1))
	printf "EHLO client.test\r\nMAIL FROM:<app@client.test>\r\nRCPT TO:<n$n@up.test>\r\nDATA\r\n" > "$T/raw"
	printf "Subject: carrier $n\r\n\r\nbody$end" >> "$T/raw"
	printf "MAIL FROM:<evil@client.test>\r\nRCPT TO:<victim$n@up.test>\r\nDATA\r\n" >> "$T/raw"
	printf "Subject: smuggled $n\r\n\r\nevil\r\n.\r\nQUIT\r\n" >> "$T/raw"
	client raw "$LPORT" "$T/raw"
	case $end in
	*'\r.'*|*'.\r') 	# a bare CR
		grep -q '^554 5.6.0 Error: message contains a bare CR' "$T/c.out" || { cat "$T/c.out" >&2; fail "payload $n: no 554 5.6.0 for its bare CR"; }
		! grep -q '^250 2.0.0 Ok: queued' "$T/c.out" || { cat "$T/c.out" >&2; fail "payload $n: a message was queued"; }
		;;
	*)
		queued=$((queued + 1))
		[ "$(grep -c '^250 2.0.0 Ok: queued' "$T/c.out")" = 1 ] || { cat "$T/c.out" >&2; fail "payload $n: not one message queued"; }
		! grep -q '^554' "$T/c.out" || { cat "$T/c.out" >&2; fail "payload $n: refused"; }
		f=$(sink_msg "n$n@up.test") || fail "payload $n: not delivered"
		sed '1,/^$/d' "$f" | tr -d '\r' | sed -n '/^body$/,$p' | tr '\n' '|' > "$T/tail"
		case $(cat "$T/tail") in
		"body|"*"|MAIL FROM:<evil@client.test>|RCPT TO:<victim$n@up.test>|DATA|Subject: smuggled $n||evil|") ;;
		*) fail "payload $n: stored text: $(cat "$T/tail")" ;;
		esac
		sed '1,/^$/d' "$f" > "$T/got"
		crlf_only "$T/got" || fail "payload $n: a line without CRLF reached the exchanger"
		;;
	esac
	sleep 0.3
	[ "$(received 127.0.0.2)" = $((base + queued)) ] ||
	    fail "payload $n: $(( $(received 127.0.0.2) - base )) messages delivered for $queued queued"
	! grep -qs "victim$n@up.test" "$T/sink/127.0.0.2.log" || fail "payload $n: smuggled recipient reached the exchanger"
done
ok "SMTP smuggling, bare_lf = normalize: $n payloads, $queued delivered as one message each with the smuggled lines as text, the others 554 5.6.0 (bare CR), never a second message"

# 4c. An LF-only file sent as curl --upload-file sends it: from a relay
# client, and from a user who is not one after AUTH; delivered with CRLF
# line ends (554 5.6.0 before bare_lf).
lf_check() {
	f=$(sink_msg "$1") || fail "LF-only file to $1 not delivered"
	sed '1,/^$/d' "$f" > "$T/lf.got"
	crlf_only "$T/lf.got" ||
	    fail "a line without CRLF reached the exchanger: $(od -c "$T/lf.got" | head -n 20)"
	# (with the Date: and Message-ID: that the listener adds)
	tr -d '\r' < "$T/lf.got" | sed -n '/^Subject: lf only$/,$p' |
	    sed '2{/^Date: /d;}' | sed '2{/^Message-ID: </d;}' > "$T/lf.tail"
	printf 'Subject: lf only\n\nfirst line\ndot line\n\nlast line\n\n' | cmp -s - "$T/lf.tail" ||
	    fail "$1: stored: $(cat "$T/lf.tail")"
}
printf 'From: <app@client.test>\nTo: <lf@up.test>\nSubject: lf only\n\nfirst line\n.dot line\n\nlast line\n' > "$T/lf.txt"
client send "$LPORT" --to lf1@up.test --upload "$T/lf.txt"
[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "LF-only file from a relay client refused"; }
c_has "DATA 250 2.0.0"
lf_check lf1@up.test
daemon_stop
sinks_stop; fresh; listener_conf "relay_clients = 10.99.0.0/16"
sink 127.0.0.2
daemon_start
client send "$LPORT" --to lf2@up.test --upload "$T/lf.txt" --starttls \
    --cafile "$T/certs/ca.pem" --auth "app:s3cret pass"
[ "$CRC" = 0 ] || { cat "$T/c.out" >&2; fail "LF-only file from an authenticated user refused"; }
c_has "DATA 250 2.0.0"
lf_check lf2@up.test
ok "an LF-only file (curl --upload-file) from a relay client and from an authenticated user: 250, delivered with CRLF line ends"
daemon_stop
sinks_stop; fresh; listener_conf
sink 127.0.0.2
daemon_start

# 5. Commands pipelined after STARTTLS, before the handshake, are dropped.
printf "EHLO client.test\r\nSTARTTLS\r\nMAIL FROM:<injected@client.test>\r\n" > "$T/raw"
client raw "$LPORT" "$T/raw" --tls-after-starttls --cafile "$T/certs/ca.pem"
c_has "220 2.0.0"
c_has "-- TLS"
grep -q '^503 5.5.1' "$T/c.out" || { cat "$T/c.out" >&2; fail "the injected MAIL was executed (RCPT not refused)"; }
! grep -q 'injected@client.test' "$T/c.out" || fail "injected command answered"
ok "input pipelined before the TLS handshake is discarded (RCPT after it: 503)"

# 6. Oversize: SIZE= over max_message_size and a body over it, both 552.
client send "$LPORT" --to d@up.test --size-param 30000
[ "$CRC" = 1 ] || fail "SIZE=30000 accepted"
c_has "552 5.3.4"
client send "$LPORT" --to d@up.test --body-size 40000
[ "$CRC" = 1 ] || fail "40 KB message accepted over a 20K limit"
c_has "552 5.3.4"
[ "$(spool_count)" = 0 ] || fail "oversize message queued"
ok "oversize: SIZE=30000 and a 40 KB body refused with 552 5.3.4, nothing queued"
daemon_stop
[ "$DRC" = 0 ] || fail "mxrelayd exit $DRC"

# 7. kill -9 in the middle of a 1,000-message burst, then a restart: every
# acknowledged message is delivered (at least once, none lost).
sinks_stop; fresh; listener_conf
sink 127.0.0.2
daemon_start
: > "$T/acked"
$CLIENT burst "$LPORT" --count 1000 --conns 4 --to-domain up.test \
    --acked "$T/acked" > "$T/burst.out" 2>&1 &
BPID=$!
PIDS="$PIDS $BPID"
within 60 sh -c "[ \$(wc -l < '$T/acked') -ge 300 ]" || fail "burst too slow: $(wc -l < "$T/acked") acked"
kill -9 "$DPID"
wait "$DPID" 2>/dev/null
wait "$BPID"
acked=$(wc -l < "$T/acked")
[ "$acked" -lt 1000 ] || fail "the kill came too late to test anything"
daemon_start
within 60 sh -c "[ \$(find '$T/sink/127.0.0.2' -type f | wc -l) -ge $acked ]" ||
    fail "after restart only $(received 127.0.0.2) of $acked acknowledged messages delivered"
missing=0
cat "$T/sink/127.0.0.2"/* | sed -n 's/^Subject: burst-\([0-9]*\).*/\1/p' | sort -un > "$T/delivered"
cut -d' ' -f1 "$T/acked" | sort -un > "$T/acked.n"
missing=$(comm -23 "$T/acked.n" "$T/delivered" | wc -l)
[ "$missing" = 0 ] || fail "$missing acknowledged messages lost: $(comm -23 "$T/acked.n" "$T/delivered" | head -5)"
within 10 queue_empty || fail "queue not empty after the restart"
daemon_stop
ok "kill -9 after $acked of 1000 acknowledged: all $acked delivered after restart ($(received 127.0.0.2) delivered in all)"

echo "1..$NOK"
