#!/bin/sh
# Quick start demo: a real delivery on loopback.  A DNS server (dnsd) says
# that demo.example has MX 10 mx1 (127.0.0.2, down: nothing listens) and
# MX 20 mx2 (127.0.0.3, an smtpsink).  mxrelay queues a message, then
# `mxrelay -q -v` delivers it to the backup exchanger by MX preference and
# prints its log lines.  Everything stops by itself; run from the build tree.
set -eu
exec 2>&1
B=$(pwd)
T=$(mktemp -d /tmp/mxrelay-demo.XXXXXX)
# Root's mxrelay works in the spool as its owner (the user mxrelay, where
# it exists), who must reach it.
chmod 755 "$T"
pids=""
trap 'for p in $pids; do kill $p 2>/dev/null || true; done; rm -rf "$T"' EXIT
printf '%s\n' 'demo.example MX 10 mx1.demo.example' 'demo.example MX 20 mx2.demo.example' \
    'mx1.demo.example A 127.0.0.2' 'mx2.demo.example A 127.0.0.3' > "$T/zone"
"$B/tests/world/dnsd" -l 127.0.0.1:0 -z "$T/zone" -t 60 > "$T/dns" 2>&1 &
pids="$pids $!"
while ! grep -q '^port ' "$T/dns"; do sleep 0.05; done
port=$((20000 + $$ % 20000))
"$B/tests/world/smtpsink" -l "127.0.0.3:$port" -d "$T" -L "$T/sink.log" -t 60 > /dev/null &
pids="$pids $!"
while ! grep -q 'listen addr=' "$T/sink.log" 2>/dev/null; do sleep 0.05; done
cat > "$T/mxrelay.conf" <<EOC
hostname = relay.demo
spool_dir = $T/spool
runtime_dir = $T/run
dns_servers = 127.0.0.1:$(sed -n 's/^port //p' "$T/dns")
smtp_port = $port
EOC
echo "# queue a message for ops@demo.example"
printf 'Subject: hello\n\nfirst message\n' | "$B/src/mxrelay" -C "$T/mxrelay.conf" -v ops@demo.example
"$B/src/mxrelay" -C "$T/mxrelay.conf" -bp
echo "# mxrelay -q -v: MX 10 (127.0.0.2) is down, MX 20 (127.0.0.3) takes it"
"$B/src/mxrelay" -C "$T/mxrelay.conf" -v -q
echo "# the backup exchanger's log:"
grep -E '^(connect|mail|rcpt|msg) ' "$T/sink.log"
grep -q '^msg ' "$T/sink.log" || { echo "demo: the message was not delivered"; exit 1; }
"$B/src/mxrelay" -C "$T/mxrelay.conf" -bp
