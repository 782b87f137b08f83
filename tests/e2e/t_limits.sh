#!/bin/sh
# End to end: limits on what one destination may cost (issue 11, item 4).
#  - mx_host_limit and mx_address_limit: a domain that publishes 500
#    exchangers, all of them failing, costs one attempt at most 5
#    connections (the default), not 500;
#  - a wildcard listener (listen = 0.0.0.0:PORT) is this host on every
#    local address of its family: an MX that points to 127.0.0.1 (or
#    0.0.0.0, or ::ffff:127.0.0.1) on that port is a mail loop, bounced at
#    once (5.4.6), not a delivery to ourselves; with [::]:PORT, 127.0.0.1
#    is another MTA;
#  - the cut keeps a place for IPv4 when a host's AAAA records come first.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

# 500 exchangers of many.test, all at the one sink (which greets 421), and
# self.test whose exchanger is 127.0.0.1.
set --
i=1
while [ $i -le 500 ]; do
	set -- "$@" "many.test MX $i mx$i.many.test" "mx$i.many.test A 127.0.0.2"
	i=$((i + 1))
done
world_start "$@" self.test=127.0.0.1 ok.test=127.0.0.3 zero.test=0.0.0.0 \
    "mapped.test MX 10 mx.mapped.test" "mx.mapped.test AAAA ::ffff:127.0.0.1" \
    "v6.test MX 10 mx.v6.test" "mx.v6.test AAAA 100::1" "mx.v6.test AAAA 100::2" \
    "mx.v6.test AAAA 100::3" "mx.v6.test AAAA 100::4" "mx.v6.test AAAA 100::5" \
    "mx.v6.test AAAA 100::6" "mx.v6.test A 127.0.0.3"

# connects ADDR: connections the sink at ADDR has seen.
connects() { grep -c '^connect' "$T/sink/$1.log" || true; }

# 1. The default caps: 5 connections, then deferred.
fresh; world_conf
sink 127.0.0.2 -r greeting=421
send x@many.test; run_queue
log_has "to=<x@many.test>" "status=deferred"
[ "$(connects 127.0.0.2)" = 5 ] || { cat "$T/log" >&2; false; } ||
    fail "$(connects 127.0.0.2) connections for one attempt of many.test, want 5 (mx_address_limit)"
ok "500 failing exchangers: one attempt stops at mx_address_limit (5 connections)"

# 2. Set lower: mx_host_limit = 2 bounds the exchangers looked up, and so
# the connections, below the address limit.
sinks_stop; fresh; world_conf "mx_host_limit = 2" "mx_address_limit = 100"
sink 127.0.0.2 -r greeting=421
send x@many.test; run_queue
log_has "to=<x@many.test>" "status=deferred"
[ "$(connects 127.0.0.2)" = 2 ] ||
    fail "$(connects 127.0.0.2) connections with mx_host_limit = 2, want 2"
ok "mx_host_limit = 2: two exchangers looked up and tried"

# 3. listen = 0.0.0.0:PORT and an MX at 127.0.0.1 on that port: a loop,
# bounced at once.  (Every exchanger of this test world shares that port,
# so with a wildcard listener all of them are this host; with the usual
# listener on 127.0.0.99 the same message goes to ok.test's sink.)
sinks_stop; fresh
world_conf "listen = 0.0.0.0:$SMTP_PORT"
send x@self.test
run_queue
log_has "to=<x@self.test>" "dsn=5.4.6" "status=bounced" "loops back to myself"
sinks_stop; fresh; world_conf
sink 127.0.0.3
send y@ok.test; run_queue
log_has "to=<y@ok.test>" "status=sent"
ok "wildcard listener, MX on 127.0.0.1: bounced at once as a mail loop (5.4.6)"

# 4. The other spellings of this host for a 0.0.0.0 listener: the
# unspecified address, and 127.0.0.1 as an IPv4-mapped IPv6 address.
for dom in zero.test mapped.test; do
	sinks_stop; fresh
	world_conf "listen = 0.0.0.0:$SMTP_PORT"
	send "x@$dom"; run_queue
	log_has "to=<x@$dom>" "dsn=5.4.6" "status=bounced"
done
ok "wildcard listener 0.0.0.0: an MX on 0.0.0.0 or ::ffff:127.0.0.1 is this host too"

# 5. A wildcard covers its own family only (mxrelayd sets IPV6_V6ONLY):
# with listen = [::]:PORT, 127.0.0.1 on that port is another MTA (a local
# smarthost, say), and mail goes there.
sinks_stop; fresh
world_conf "listen = [::]:$SMTP_PORT"
sink 127.0.0.1
send x@self.test; run_queue
log_has "to=<x@self.test>" "relay=mx.self.test[127.0.0.1]" "status=sent"
ok "wildcard listener [::]: an exchanger on 127.0.0.1 is not this host"

# 6. Both families within the cut: v6.test's one exchanger has six AAAA
# records (in the discard prefix 100::/64, unreachable) before its A
# record.  The first five would all be IPv6; the fifth place goes to the
# IPv4 address, as Postfix's smtp_balance_inet_protocols does.
sinks_stop; fresh; world_conf
sink 127.0.0.3
send x@v6.test; run_queue
log_has "to=<x@v6.test>" "relay=mx.v6.test[127.0.0.3]" "status=sent"
ok "mx_address_limit keeps a place for IPv4 behind many AAAA records"

echo "1..$NOK"
