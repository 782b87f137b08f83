#!/bin/sh
# End to end: a listen address that does not exist on this host.  In a
# network namespace of its own (unshare -n) whose lo has IPv6 disabled,
# as on a host or container without IPv6: with the default pair
# 127.0.0.1 and [::1], mxrelayd warns about [::1], runs and takes mail on
# 127.0.0.1; with [::1] alone it stops (69), and so it does when
# 127.0.0.1 is taken by another process (only a missing address is
# skipped), and so it does for an IPv4 address no interface has (only
# [::1] is skipped).  Needs root, unshare, ip and sysctl: 77 without them.
if [ -z "${MXLISTEN6_NS:-}" ]; then
	if [ "$(id -u)" != 0 ] || ! command -v unshare > /dev/null ||
	    ! command -v ip > /dev/null || ! command -v sysctl > /dev/null ||
	    ! unshare -n true 2> /dev/null; then
		echo "# skipped: needs root, unshare -n, ip and sysctl"
		exit 77
	fi
	MXLISTEN6_NS=1 exec unshare -n sh "$0" "$@"
fi
ip link set lo up || { echo "FAIL: ip link set lo up" >&2; exit 1; }
if ! sysctl -qw net.ipv6.conf.lo.disable_ipv6=1 2> /dev/null; then
	echo "# skipped: IPv6 cannot be disabled on lo here"
	exit 77
fi
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

CLIENT="python3 ${top_srcdir:-.}/tests/e2e/smtpclient.py"
P=2525	# the namespace is ours: nothing else listens in it

# 1. 127.0.0.1 and [::1]: [::1] skipped with a warning, mail taken on
# 127.0.0.1.
fresh
write_conf "listen = 127.0.0.1:$P [::1]:$P" "dns_servers = 127.0.0.1:1"
daemon_start
grep -qF "listen [::1]:$P: not on this host, skipped" "$T/d.log" ||
    { cat "$T/d.log" >&2; fail "no warning about [::1]:$P"; }
grep -qF "listening on 127.0.0.1:$P" "$T/d.log" ||
    { cat "$T/d.log" >&2; fail "not listening on 127.0.0.1:$P"; }
$CLIENT send "$P" --to a@b.test > "$T/c.out" 2>&1 ||
    { cat "$T/c.out" "$T/d.log" >&2; fail "message not taken on 127.0.0.1:$P"; }
[ "$(spool_count)" = 1 ] || fail "the message is not in the spool"
kill -0 "$DPID" || fail "the daemon died"
daemon_stop
[ "$DRC" = 0 ] || fail "daemon exited $DRC after SIGTERM"
ok "listen 127.0.0.1 and [::1] without IPv6: [::1] skipped with a warning, mail taken on 127.0.0.1"

# 2. [::1] alone: nothing to listen on, the start fails as before.
fresh
write_conf "listen = [::1]:$P"
expect_rc 69 "listen on [::1] alone" timeout 20 "$MXRELAYD" -f -C "$CONF"
expect_err "listen [::1]:$P: Cannot assign requested address"
expect_err "listen: none of its addresses can be bound"
ok "listen [::1] alone without IPv6: exit 69"

# 3. 127.0.0.1 in use by another process: still an error, though [::1]
# is the one skipped.
fresh
write_conf "listen = 127.0.0.1:$P [::1]:$P"
"$WORLD/smtpsink" -l "127.0.0.1:$P" -L "$T/busy.log" -t 600 > /dev/null &
PIDS="$PIDS $!"
wait_for "$T/busy.log" 'listen addr='
expect_rc 69 "listen with 127.0.0.1 taken" timeout 20 "$MXRELAYD" -f -C "$CONF"
expect_err "listen 127.0.0.1:$P: Address already in use"
ok "an address in use stays an error (69) next to a missing one"

# 4. An IPv4 address no interface has (the namespace has only lo): an
# error, not skipped, so that an address not up yet at boot fails the
# start (systemd tries again) instead of leaving the daemon without it.
fresh
Q=$((P + 1))	# P is still taken by case 3's sink
write_conf "listen = 127.0.0.1:$Q 192.0.2.1:$Q"
expect_rc 69 "listen on an absent IPv4 address" timeout 20 "$MXRELAYD" -f -C "$CONF"
expect_err "listen 192.0.2.1:$Q: Cannot assign requested address"
ok "an absent IPv4 address stays an error (69)"
