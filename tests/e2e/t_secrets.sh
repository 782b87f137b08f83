#!/bin/sh
# End to end: secret files named in the configuration (relayhost_auth_file,
# tls_key_file, auth_users) are opened as secrets (mxrelay.conf(5)): a symbolic link,
# a file writable by others, or one owned by another user is refused with
# its reason, and one that others may read is used with a warning; a
# reload checks them against the user the daemon runs as.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

world_start tls.test=127.0.0.6
mkdir "$T/certs"
# 127.0.0.6: the relayhost's credentials need a certificate for its name.
sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" relay.test 127.0.0.6 \
    > /dev/null 2>&1 ||
    fail "certificates"
C="$T/certs"

# queue_run_auth MODE: one message through the relayhost with its
# password file in that mode; mxrelay -q's exit status in $QRC.
queue_run_auth() {
	rm -f "$T/auth"
	printf 'relayuser:s3cret\n' > "$T/auth"
	chmod "$1" "$T/auth"
	fresh
	world_conf "relayhost = [127.0.0.6]:$SMTP_PORT" \
	    "relayhost_auth_file = ${AUTHPATH:-$T/auth}" "tls_ca_file = $C/ca.pem"
	send x@tls.test
	mx -v -q > "$T/log" 2>&1
	QRC=$?
	cat "$T/log" >> "$T/all.log"
}

# 1. A password file writable by everyone: refused, nothing is sent.
queue_run_auth 666
[ "$QRC" != 0 ] || fail "mxrelay -q exit 0 with a world-writable password file"
grep -q "$T/auth: writable by everyone; refusing to use it" "$T/log" ||
    { cat "$T/log" >&2; fail "no refusal logged"; }
[ "$(spool_count)" = 1 ] || fail "the message left the queue"
ok "relayhost_auth_file writable by everyone: refused, the message stays queued"

# 2. Reached through a symbolic link that root does not own: refused.
ln -s "$T/auth" "$T/auth.link"
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1; then
	chown -h nobody "$T/auth.link"
fi
if [ "$(id -u)" != 0 ] || id nobody > /dev/null 2>&1; then
	AUTHPATH="$T/auth.link" queue_run_auth 600
	grep -q "auth.link: a symbolic link owned by uid" "$T/log" ||
	    { cat "$T/log" >&2; fail "symbolic link not refused"; }
	ok "relayhost_auth_file through a symbolic link not owned by root: refused"
else
	ok "# SKIP symbolic link owned by another user (no user nobody)"
fi

# 3. Readable by everyone: used, with a warning; AUTH goes over TLS.
sink 127.0.0.6 -c "$C/good.pem" -k "$C/good.key" -a relayuser:s3cret
queue_run_auth 644
[ "$QRC" = 0 ] || { cat "$T/log" >&2; fail "mxrelay -q exit $QRC"; }
grep -q "$T/auth: readable by others" "$T/log" || fail "no warning for mode 644"
[ "$(received 127.0.0.6)" = 1 ] || fail "not delivered through the relayhost"
grep -q 'auth id=.* user=relayuser result=ok' "$T/sink/127.0.0.6.log" || fail "no AUTH"
ok "relayhost_auth_file readable by everyone: used, with a warning"

# 4. Owned by another user (as root only): refused.
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1; then
	rm -f "$T/auth"
	printf 'relayuser:s3cret\n' > "$T/auth"
	chmod 600 "$T/auth"
	chown nobody "$T/auth"
	fresh
	world_conf "relayhost = [127.0.0.6]:$SMTP_PORT" \
	    "relayhost_auth_file = $T/auth" "tls_ca_file = $C/ca.pem"
	send x@tls.test
	mx -v -q > "$T/log" 2>&1 && fail "mxrelay -q exit 0 with a foreign password file"
	grep -q "$T/auth: owned by uid $(id -u nobody), not by root" "$T/log" ||
	    { cat "$T/log" >&2; fail "foreign owner not refused"; }
	ok "relayhost_auth_file owned by another user: refused"
else
	ok "# SKIP relayhost_auth_file owned by another user (needs root)"
fi

# daemon_refuses FILE WHAT: mxrelayd, with $CONF, exits at start with
# the refusal of FILE logged.
daemon_refuses() {
	"$MXRELAYD" -f -C "$CONF" > "$T/d.log" 2>&1 &
	DPID=$!
	PIDS="$PIDS $DPID"
	within 10 sh -c "! kill -0 $DPID 2>/dev/null" ||
	    { kill "$DPID"; fail "mxrelayd started with a world-writable $2"; }
	wait "$DPID"; DRC=$?; DPID=""
	[ "$DRC" != 0 ] || fail "mxrelayd exit 0"
	grep -q "$1: writable by everyone; refusing to use it" "$T/d.log" ||
	    { cat "$T/d.log" >&2; fail "no refusal logged for the $2"; }
}

# 5. mxrelayd with a TLS key writable by everyone does not start.
cp "$C/good.key" "$T/key"
chmod 666 "$T/key"
fresh
world_conf "listen = 127.0.0.1:$SMTP_PORT" "user = $DUSER" "group = $DGROUP" \
    "tls_cert_file = $C/good.pem" "tls_key_file = $T/key"
daemon_refuses "$T/key" key
ok "tls_key_file writable by everyone: mxrelayd does not start (exit $DRC)"

# 6. The same for an auth_users file writable by everyone.
chmod 600 "$T/key"
printf 'app:%s\n' "$(openssl passwd -6 's3cret')" > "$T/users"
chmod 666 "$T/users"
fresh
world_conf "listen = 127.0.0.1:$SMTP_PORT" "user = $DUSER" "group = $DGROUP" \
    "tls_cert_file = $C/good.pem" "tls_key_file = $T/key" \
    "auth_users = $T/users"
daemon_refuses "$T/users" "users file"
ok "auth_users writable by everyone: mxrelayd does not start (exit $DRC)"

# 7. A reload checks secrets against the user the daemon runs as, not a
# user the new configuration names (a change of user needs a restart):
# an auth_users file owned by that other user is refused (as root only).
if [ "$(id -u)" = 0 ] && [ "$DUSER" = nobody ] && id daemon > /dev/null 2>&1; then
	chmod 644 "$T/key"
	printf 'app:%s\n' "$(openssl passwd -6 's3cret')" > "$T/users2"
	chmod 644 "$T/users2"
	chown daemon "$T/users2"
	fresh
	world_conf "listen = 127.0.0.1:$SMTP_PORT" "user = $DUSER" \
	    "group = $DGROUP" "tls_cert_file = $C/good.pem" "tls_key_file = $T/key"
	daemon_start
	world_conf "listen = 127.0.0.1:$SMTP_PORT" "user = daemon" \
	    "group = $DGROUP" "tls_cert_file = $C/good.pem" "tls_key_file = $T/key" \
	    "auth_users = $T/users2"
	kill -HUP "$DPID"
	wait_for "$T/d.log" 'reload failed'
	grep -q "$T/users2: owned by uid $(id -u daemon), not by root" "$T/d.log" ||
	    { cat "$T/d.log" >&2; fail "reload trusted the new configuration's user"; }
	daemon_stop
	ok "reload: a secret owned by the user a new configuration names is refused"
else
	ok "# SKIP reload and a new user (needs root, users nobody and daemon)"
fi

echo "1..$NOK"
