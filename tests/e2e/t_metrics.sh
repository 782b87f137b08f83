#!/bin/sh
# End to end: mxrelayd's metrics (mxrelayd(8) METRICS).  A known mix of
# outcomes (two recipients sent, one deferred by a 4xx exchanger, one
# deferred because nothing listens, one bounced by a 5xx exchanger, and
# the bounce's own DSN sent), then the counters, the delay histogram's
# count and the queue gauges, read over HTTP (metrics_listen) and with
# `mxrelay stats` over the control socket; the listener's counters; the
# HTTP server's refusals; `promtool check metrics` on the text; then the
# TLS label (verified, unverified) and a TLS connection failure.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

if ! command -v promtool > /dev/null 2>&1; then
	echo "SKIP: promtool (Debian package prometheus) is not installed"
	exit 77
fi

world_start ok.test=127.0.0.2 sender.test=127.0.0.2 soft.test=127.0.0.3 \
    hard.test=127.0.0.4 refused.test=127.0.0.5 tv.test=127.0.0.6 \
    tu.test=127.0.0.7 tw.test=127.0.0.8

# A free loopback port for the metrics listener.
MPORT=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# get PATH [METHOD]: the HTTP status, then the body, into $T/http.
get() {
	python3 - "$MPORT" "$1" "${2:-GET}" > "$T/http" <<'EOF' || fail "HTTP $3 $2 failed"
import sys, urllib.request, urllib.error
port, path, method = sys.argv[1:4]
req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path),
                             method=method)
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        print(r.status)
        print(r.headers.get("Content-Type"))
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code)
    print(e.headers.get("Content-Type"))
EOF
}

# has FILE LINE: FILE has exactly this line.
has() {
	grep -qxF -- "$2" "$1" || { cat "$1" >&2; fail "no line '$2' in $1"; }
}

# value FILE SERIES: the value of one series (nothing when absent).
value() {
	grep -F -- "$2 " "$1" | grep -v '^#' | awk -v s="$2" '$1 == s { print $2 }'
}

fresh
world_conf "user = $DUSER" "group = $DGROUP" "relay_clients =" \
    "smtpd_junk_command_limit = 2" "metrics_listen = 127.0.0.1:$MPORT"
sink 127.0.0.2
sink 127.0.0.3 -r rcpt=450
sink 127.0.0.4 -r rcpt=550
daemon_start
grep -q "metrics on http://127.0.0.1:$MPORT/metrics" "$T/d.log" ||
    fail "no metrics listener in the log"

# 1. Before anything: every family, unlabelled ones at 0.
get /metrics
has "$T/http" 200
has "$T/http" "text/plain; version=0.0.4; charset=utf-8"
has "$T/http" "mxrelay_delivery_delay_seconds_count 0"
has "$T/http" "mxrelay_queue_messages 0"
ok "GET /metrics answers 200 in the text format 0.0.4 before any mail"

# 2. The mix.
send a@ok.test; send b@ok.test; send c@soft.test; send d@hard.test
send e@refused.test
within 10 got 127.0.0.2 3 ||
    fail "sent mail and the DSN not delivered: $(received 127.0.0.2)"
wait_for "$T/d.log" 'to=<c@soft.test>.*status=deferred'
wait_for "$T/d.log" 'to=<e@refused.test>.*status=deferred'
wait_for "$T/d.log" 'to=<d@hard.test>.*status=bounced'
wait_for "$T/d.log" 'to=<sender@sender.test>.*status=sent'
# Four messages done: a, b, d (bounced) and the DSN.
within 5 sh -c "[ \$(grep -c ': removed' '$T/d.log') -ge 4 ]" ||
    fail "messages not removed"
get /metrics
sed 1,2d "$T/http" > "$T/m.txt"
has "$T/m.txt" 'mxrelay_recipients_total{domain="ok.test",result="sent",tls="none"} 2'
has "$T/m.txt" 'mxrelay_recipients_total{domain="sender.test",result="sent",tls="none"} 1'
has "$T/m.txt" 'mxrelay_recipients_total{domain="soft.test",result="deferred",tls="none"} 1'
has "$T/m.txt" 'mxrelay_recipients_total{domain="refused.test",result="deferred",tls="none"} 1'
has "$T/m.txt" 'mxrelay_recipients_total{domain="hard.test",result="bounced",tls="none"} 1'
has "$T/m.txt" 'mxrelay_delivery_delay_seconds_count 3'
has "$T/m.txt" 'mxrelay_delivery_delay_seconds_bucket{le="+Inf"} 3'
has "$T/m.txt" 'mxrelay_messages_total{result="sent"} 3'
has "$T/m.txt" 'mxrelay_messages_total{result="bounced"} 1'
ok "recipients sent, deferred and bounced by domain; delay histogram count 3; messages done"

# 3. Connections, DNS and the queue.
[ "$(value "$T/m.txt" 'mxrelay_smtp_connection_failures_total{reason="connect"}')" -ge 1 ] ||
    fail "no connect failure counted"
[ "$(value "$T/m.txt" mxrelay_smtp_connections_total)" -ge 4 ] ||
    fail "fewer than 4 connection attempts counted"
[ "$(value "$T/m.txt" 'mxrelay_dns_lookups_total{type="MX",result="ok"}')" -ge 5 ] ||
    fail "MX lookups not counted"
[ "$(value "$T/m.txt" 'mxrelay_dns_lookups_total{type="A",result="ok"}')" -ge 5 ] ||
    fail "A lookups not counted"
has "$T/m.txt" 'mxrelay_queue_messages 2'
has "$T/m.txt" 'mxrelay_queue_deferred_recipients 2'
age=$(value "$T/m.txt" mxrelay_queue_oldest_message_age_seconds)
[ "$age" -ge 0 ] && [ "$age" -lt 600 ] || fail "oldest message age $age"
ok "connection attempts and failures, DNS lookups, queue gauges (2 messages, 2 deferred)"

# 4. The listener: a connection, and one closed for junk commands.
python3 - "$SMTP_PORT" <<'EOF' || fail "SMTP client failed"
import socket, sys
s = socket.create_connection(("127.0.0.99", int(sys.argv[1])), timeout=10)
f = s.makefile("rb")
assert f.readline().startswith(b"220")
for i in range(3):
    s.sendall(b"NOOP\r\n")
    line = f.readline()
assert line.startswith(b"421"), line
s.close()
EOF
within 5 sh -c "grep -q 'too many junk' '$T/d.log'" || fail "no junk refusal"
get /metrics
sed 1,2d "$T/http" > "$T/m.txt"
has "$T/m.txt" 'mxrelay_smtpd_connections_total 1'
has "$T/m.txt" 'mxrelay_smtpd_refusals_total{reason="junk"} 1'
has "$T/m.txt" 'mxrelay_smtpd_auth_failures_total 0'
ok "listener: connections and refusals by reason"

# 5. promtool accepts the text.
promtool check metrics < "$T/m.txt" > "$T/promtool.out" 2>&1 ||
    { cat "$T/promtool.out" >&2; fail "promtool check metrics failed"; }
ok "promtool check metrics accepts the output"

# 6. mxrelay stats: the same text over the control socket.
"$MXRELAY" stats -C "$CONF" > "$T/stats.txt" 2> "$T/err" || fail "mxrelay stats failed"
has "$T/stats.txt" 'mxrelay_recipients_total{domain="ok.test",result="sent",tls="none"} 2'
has "$T/stats.txt" 'mxrelay_delivery_delay_seconds_count 3'
has "$T/stats.txt" 'mxrelay_queue_messages 2'
promtool check metrics < "$T/stats.txt" > "$T/promtool.out" 2>&1 ||
    { cat "$T/promtool.out" >&2; fail "promtool rejects mxrelay stats"; }
expect_rc 64 "mxrelay stats with an operand" "$MXRELAY" stats -C "$CONF" extra
ok "mxrelay stats prints the metrics from the control socket"

# Another user is refused: the metrics name the domains mail goes to.
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null &&
    id daemon > /dev/null 2>&1 && [ "$DUSER" != daemon ]; then
	chmod 644 "$CONF"
	expect_rc 77 "mxrelay stats as another user" setpriv --reuid=daemon \
	    --regid="$(id -g daemon)" --clear-groups "$MXRELAY" stats -C "$CONF"
	expect_err "permission denied"
	ok "mxrelay stats refused to a user who is neither root nor the daemon's"
fi

# 7. Anything but GET /metrics is refused.
get /other; has "$T/http" 404
get /metrics POST; has "$T/http" 405
python3 - "$MPORT" <<'EOF' || fail "bad requests not refused"
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"garbage\r\n\r\n")
assert s.recv(100).startswith(b"HTTP/1.0 400"), "garbage"
s.close()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
# 4096 bytes without the blank line that ends a request: too large.
head = b"GET /metrics HTTP/1.1\r\nX: "
s.sendall(head + b"a" * (4096 - len(head)))
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
assert data.startswith(b"HTTP/1.0 431"), data[:40]
EOF
ok "404 for another path, 405 for another method, 400 and 431 for bad requests"

# 8. Without the daemon, mxrelay stats says so.
daemon_stop
[ "$DRC" = 0 ] || fail "SIGTERM: exit $DRC"
expect_rc 69 "mxrelay stats without the daemon" "$MXRELAY" stats -C "$CONF"
expect_err "mxrelayd is not running"
ok "mxrelay stats without a daemon: exit 69"

# 9. TLS use: a verified exchanger, an unverified one (self-signed, under
# may), and one whose certificate is for another name under verify (the
# connection fails for TLS, the recipient is deferred).
command -v openssl > /dev/null || { echo "# openssl not installed"; exit 0; }
mkdir "$T/certs"
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" mx.tv.test mx.tu.test \
    mx.tw.test || fail "making certificates"
C="$T/certs"
sinks_stop; fresh
world_conf "listen =" "user = $DUSER" "group = $DGROUP" \
    "metrics_listen = 127.0.0.1:$MPORT" "tls_ca_file = $C/ca.pem" \
    "tls_policy = tw.test verify"
sink 127.0.0.2
sink 127.0.0.6 -c "$C/good.pem" -k "$C/good.key"
sink 127.0.0.7 -c "$C/self.pem" -k "$C/self.key"
sink 127.0.0.8 -c "$C/wrong.pem" -k "$C/wrong.key"
chmod 644 "$C"/*
daemon_start
send v@tv.test; send u@tu.test; send w@tw.test
within 10 got 127.0.0.6 1 || fail "not delivered to the verified exchanger"
within 10 got 127.0.0.7 1 || fail "not delivered to the unverified exchanger"
wait_for "$T/d.log" 'to=<w@tw.test>.*status=deferred'
get /metrics
sed 1,2d "$T/http" > "$T/m.txt"
has "$T/m.txt" 'mxrelay_recipients_total{domain="tv.test",result="sent",tls="verified"} 1'
has "$T/m.txt" 'mxrelay_recipients_total{domain="tu.test",result="sent",tls="unverified"} 1'
has "$T/m.txt" 'mxrelay_recipients_total{domain="tw.test",result="deferred",tls="none"} 1'
has "$T/m.txt" 'mxrelay_smtp_connection_failures_total{reason="tls"} 1'
has "$T/m.txt" 'mxrelay_delivery_delay_seconds_count 2'
promtool check metrics < "$T/m.txt" > "$T/promtool.out" 2>&1 ||
    { cat "$T/promtool.out" >&2; fail "promtool check metrics failed"; }
daemon_stop
ok "TLS use: verified, unverified; a certificate for another name counts as a TLS failure"

# 10. TLS reporting (RFC 8460) from the same run: under tls = dane, the
# default, with dnsd (no DNSSEC) no domain has a policy; each session
# that brought TLS up counts as no-policy-found, success.
has "$T/m.txt" 'mxrelay_tls_sessions_total{domain="tv.test",policy="no-policy-found",result="success"} 1'
has "$T/m.txt" 'mxrelay_tls_sessions_total{domain="tu.test",policy="no-policy-found",result="success"} 1'
grep -q '^# TYPE mxrelay_tls_sessions_total counter$' "$T/m.txt" ||
    fail "no TYPE line for mxrelay_tls_sessions_total"
ok "TLS sessions: counted per domain as no-policy-found without DNSSEC or MTA-STS"
