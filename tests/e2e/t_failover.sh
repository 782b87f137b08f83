#!/bin/sh
# End to end: relayhost as a list, tried in order, and relayhost_fallback
# = mx (mxrelay(8), Relayhosts).  Smarthosts: 127.0.0.6 (first), .7
# (second); the recipients' exchangers: 127.0.0.2 (dest.test), .3
# (other.test).  A smarthost that is "down" has nothing listening.  The
# last case runs mxrelayd.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"

cat > "$T/zone" <<'EOF2'
dest.test MX 10 mx.dest.test
mx.dest.test A 127.0.0.2
other.test MX 10 mx.other.test
mx.other.test A 127.0.0.3
sh1.test A 127.0.0.6
sh2.test A 127.0.0.7
EOF2
start_dnsd "$T/zone"
pick_port
printf 'relayuser:s3cret\n' > "$T/auth"
chmod 600 "$T/auth"
RH="[127.0.0.6]:$SMTP_PORT, [127.0.0.7]:$SMTP_PORT"

# none ADDR: the server at ADDR got no MAIL and stored nothing.
none() {
	! grep -q '^mail ' "$T/sink/$1.log" 2>/dev/null ||
	    { cat "$T/sink/$1.log" >&2; fail "$1 got MAIL"; }
	[ "$(received "$1")" = 0 ] || fail "$1 got a message"
}

# 1. The first smarthost down (connection refused): the second gets the
# mail of every domain, in the same run; the log says why.
sinks_stop; fresh
world_conf "relayhost = $RH"
sink 127.0.0.7
send x@dest.test; send y@other.test
run_queue
[ "$(received 127.0.0.7)" = 2 ] || fail "the second smarthost did not get both"
log_has "to=<x@dest.test>" "relay=127.0.0.7[127.0.0.7]:$SMTP_PORT" "status=sent"
log_has "to=<y@other.test>" "relay=127.0.0.7[127.0.0.7]:$SMTP_PORT" \
    "status=sent"
log_has "relayhost 127.0.0.6 failed" "trying relayhost 127.0.0.7"
ok "first relayhost refuses connections: the second gets the mail"

# 2. The first one greets with 421, the list given with spaces, by name
# (A record only): the second.
sinks_stop; fresh
world_conf "relayhost = sh1.test:$SMTP_PORT sh2.test:$SMTP_PORT"
sink 127.0.0.6 -r greeting=421; sink 127.0.0.7
send x@dest.test; run_queue
[ "$(received 127.0.0.7)" = 1 ] || fail "the second smarthost did not get it"
none 127.0.0.6
log_has "to=<x@dest.test>" "relay=sh2.test[127.0.0.7]:$SMTP_PORT" "status=sent"
ok "first relayhost greets 421: the second gets the mail"

# 3. A smarthost that answered: its 5xx to a recipient is final (no other
# smarthost, no MX), the other recipient is sent there.
sinks_stop; fresh
world_conf "relayhost = $RH" "relayhost_fallback = mx"
sink 127.0.0.6 -r rcpt=550:bad@dest.test; sink 127.0.0.7; sink 127.0.0.2
printf 'Subject: t\n\nhello\n' |
    mx -f sender@sender.test bad@dest.test good@dest.test || fail "queueing"
run_queue
log_has "to=<bad@dest.test>" "relay=127.0.0.6" "status=bounced"
log_has "to=<good@dest.test>" "relay=127.0.0.6" "status=sent"
none 127.0.0.7; none 127.0.0.2
ok "a 5xx from a relayhost that answered is final"

# 4. Every smarthost down, no fallback: deferred, nothing by MX.
sinks_stop; fresh
world_conf "relayhost = $RH"
sink 127.0.0.2
send x@dest.test; run_queue
log_has "to=<x@dest.test>" "dsn=4.4.1" "status=deferred"
none 127.0.0.2
mx -bp | grep -q "x@dest.test (pending, 1 attempt" || fail "mailq state"
ok "every relayhost down without relayhost_fallback: deferred"

# 5. Every smarthost down (one refuses, one greets 554), relayhost_fallback
# = mx: each domain's exchanger gets its recipients in the same run, and
# the relayhost credentials never go there, though the exchanger offers
# AUTH over TLS and relayhost_auth_tls = encrypt would send them over any.
if command -v openssl > /dev/null; then
	mkdir "$T/certs"
	sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" mx.dest.test \
	    > /dev/null 2>&1 || fail "making certificates"
	TLSOPT="-c $T/certs/self.pem -k $T/certs/self.key"
else
	TLSOPT=""
fi
sinks_stop; fresh
world_conf "relayhost = $RH" "relayhost_fallback = mx" \
    "relayhost_auth_file = $T/auth" "relayhost_auth_tls = encrypt"
sink 127.0.0.7 -r greeting=554
# shellcheck disable=SC2086
sink 127.0.0.2 $TLSOPT -a relayuser:s3cret
sink 127.0.0.3
send x@dest.test; send y@other.test
printf 'Subject: t\n\nhello\n' |
    mx -f sender@sender.test a@dest.test b@other.test || fail "queueing"
run_queue
! grep -q '^auth' "$T/sink/127.0.0.2.log" ||
    { cat "$T/sink/127.0.0.2.log" >&2; fail "AUTH sent to an MX"; }
[ "$(received 127.0.0.2)" = 2 ] || fail "dest.test's MX did not get its two"
[ "$(received 127.0.0.3)" = 2 ] || fail "other.test's MX did not get its two"
none 127.0.0.7
log_has "to=<x@dest.test>" "relay=mx.dest.test[127.0.0.2]:$SMTP_PORT" \
    "status=sent"
log_has "to=<b@other.test>" "relay=mx.other.test[127.0.0.3]:$SMTP_PORT" \
    "status=sent"
log_has "every relayhost failed" "delivering by MX"
[ -z "$TLSOPT" ] || grep -q '^tls id=' "$T/sink/127.0.0.2.log" ||
    fail "no TLS with dest.test's MX"
[ "$(spool_count)" = 0 ] || fail "messages left in the queue"
ok "every relayhost down, relayhost_fallback = mx: by MX, no AUTH there"

# 6. Fallback: a recipient that the smarthost refused for now (450 at
# RCPT) stays deferred with that reply; the MX gets nothing.
sinks_stop; fresh
world_conf "relayhost = [127.0.0.6]:$SMTP_PORT" "relayhost_fallback = mx"
sink 127.0.0.6 -r rcpt=450:grey@dest.test; sink 127.0.0.2
printf 'Subject: t\n\nhello\n' |
    mx -f sender@sender.test grey@dest.test ok@dest.test || fail "queueing"
run_queue
log_has "to=<grey@dest.test>" "status=deferred (450"
log_has "to=<ok@dest.test>" "relay=127.0.0.6" "status=sent"
none 127.0.0.2
log_lacks "delivering by MX"
ok "relayhost_fallback: a recipient's own 4xx from the relayhost stays deferred"

# 7. A relayhost whose name does not exist is down like one that does not
# answer (no bounce): the next one gets the mail.
sinks_stop; fresh
world_conf "relayhost = missing.test:$SMTP_PORT, [127.0.0.7]:$SMTP_PORT"
sink 127.0.0.7
send x@dest.test; run_queue
[ "$(received 127.0.0.7)" = 1 ] || fail "the second smarthost did not get it"
log_has "to=<x@dest.test>" "relay=127.0.0.7" "status=sent"
log_lacks "status=bounced"
ok "a relayhost name that does not exist: the next one"

# 8. The same in mxrelayd: every relayhost down, relayhost_fallback = mx;
# messages that keep coming are delivered by MX, not held back with the
# relayhost; SIGTERM exits cleanly.
sinks_stop; fresh
world_conf "relayhost = $RH" "relayhost_fallback = mx" "listen =" \
    "user = $DUSER" "group = $DGROUP" "retry_min = 1s" "retry_max = 4s"
sink 127.0.0.7 -r greeting=421; sink 127.0.0.2; sink 127.0.0.3
daemon_start
send a@dest.test
within 10 got 127.0.0.2 1 || fail "mxrelayd did not deliver by MX"
send b@other.test; send c@dest.test
within 10 got 127.0.0.3 1 || fail "mxrelayd: the second message not by MX"
within 10 got 127.0.0.2 2 || fail "mxrelayd: the third message not by MX"
within 5 queue_empty || fail "delivered messages still queued"
grep -q 'delivering by MX' "$T/d.log" || fail "no fallback line in the log"
! grep -q 'relayhost: destination unreachable' "$T/d.log" ||
    fail "the relayhost destination held back though the MX took the mail"
daemon_stop
[ "$DRC" = 0 ] || { cat "$T/d.log" >&2; fail "mxrelayd exited $DRC"; }
ok "mxrelayd: every relayhost down, relayhost_fallback = mx: by MX"

# 9. Credentials per relayhost ("HOST user:password" lines): each smarthost
# gets its own, the MX fallback none.
if [ -n "$TLSOPT" ]; then
	cat > "$T/auth2" <<EOF2
# comment
[127.0.0.6] one:pw1
127.0.0.7:$SMTP_PORT two:pw2
EOF2
	chmod 600 "$T/auth2"
	sinks_stop; fresh
	world_conf "relayhost = $RH" "relayhost_auth_file = $T/auth2" \
	    "relayhost_auth_tls = encrypt"
	# shellcheck disable=SC2086
	sink 127.0.0.6 $TLSOPT -a one:pw1
	send x@dest.test; run_queue
	grep -q 'auth id=1 user=one result=ok' "$T/sink/127.0.0.6.log" ||
	    { cat "$T/sink/127.0.0.6.log" >&2; fail "no AUTH as one"; }
	[ "$(received 127.0.0.6)" = 1 ] || fail "the first smarthost did not get it"
	sinks_stop
	# shellcheck disable=SC2086
	sink 127.0.0.7 $TLSOPT -a two:pw2
	send y@dest.test; run_queue
	grep -q 'auth id=1 user=two result=ok' "$T/sink/127.0.0.7.log" ||
	    { cat "$T/sink/127.0.0.7.log" >&2; fail "no AUTH as two"; }
	[ "$(received 127.0.0.7)" = 1 ] || fail "the second smarthost did not get it"
	ok "relayhost_auth_file: credentials per relayhost"
fi

# 10. One relayhost whose name does not exist, relayhost_fallback = mx: by
# MX, never bounced.
sinks_stop; fresh
world_conf "relayhost = missing.test:$SMTP_PORT" "relayhost_fallback = mx"
sink 127.0.0.2
send x@dest.test; run_queue
[ "$(received 127.0.0.2)" = 1 ] || fail "dest.test's MX did not get it"
log_has "to=<x@dest.test>" "relay=mx.dest.test" "status=sent"
log_lacks "status=bounced"
ok "a single relayhost without a name, relayhost_fallback = mx: by MX"
echo "1..$NOK"
