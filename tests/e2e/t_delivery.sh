#!/bin/sh
# End to end: `mxrelay -q` against a DNS server and SMTP exchangers on
# loopback, one case per delivery rule of mxrelay(8) DELIVERY and per
# situation a mature relay must handle when DNS or an exchanger
# misbehaves.  Exchangers: 127.0.0.2 (mx1), .3 (mx2), .4 (the sender's
# domain, receives bounces), .5-.8 (equal preferences), .99 is "us".
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"

cat > "$T/zone" <<'EOF'
sender.test MX 10 mx.sender.test
mx.sender.test A 127.0.0.4
up.test MX 10 mx1.up.test
up.test MX 20 mx2.up.test
mx1.up.test A 127.0.0.2
mx2.up.test A 127.0.0.3
eq.test MX 10 a.eq.test
eq.test MX 10 b.eq.test
eq.test MX 10 c.eq.test
eq.test MX 10 d.eq.test
a.eq.test A 127.0.0.5
b.eq.test A 127.0.0.6
c.eq.test A 127.0.0.7
d.eq.test A 127.0.0.8
implicit.test A 127.0.0.2
nullmx.test MX 0 .
nullmx.test A 127.0.0.2
cnamed.test CNAME host.cnamed.test
host.cnamed.test A 127.0.0.2
servfail.test SERVFAIL
mxfail.test SERVFAIL MX
mxfail.test A 127.0.0.2
afail.test MX 10 mx.afail.test
mx.afail.test SERVFAIL A
a6fail.test MX 10 mx.a6fail.test
mx.a6fail.test SERVFAIL AAAA
mx.a6fail.test A 127.0.0.2
dead.test DROP
slow.test DELAY 3000 MX
slow.test MX 10 mx1.up.test
noaddr.test MX 10 host.noaddr.test
host.noaddr.test TXT nothing
nomx.test MX 10 missing.nomx.test
bad10.test MX 10 missing.bad10.test
bad10.test MX 20 mx2.up.test
cname.test MX 10 alias.cname.test
alias.cname.test CNAME mx1.up.test
loop.test MX 10 relay.test
loop.test MX 20 mx2.up.test
loopaddr.test MX 10 mx.loopaddr.test
mx.loopaddr.test A 127.0.0.99
loopfirst.test MX 5 mx1.up.test
loopfirst.test MX 10 relay.test
EOF
start_dnsd "$T/zone"
pick_port

# 1. MX 10 up, MX 20 up: all mail to MX 10.
fresh; world_conf; sink 127.0.0.2; sink 127.0.0.3
send a@up.test; send b@up.test
run_queue
[ "$(received 127.0.0.2)" = 2 ] && [ "$(received 127.0.0.3)" = 0 ] || fail "MX 10 not preferred"
log_has "to=<a@up.test>" "relay=mx1.up.test[127.0.0.2]:$SMTP_PORT" "status=sent"
[ "$(spool_count)" = 0 ] || fail "delivered message still queued"
ok "MX 10 up, MX 20 up: all mail to MX 10, message removed"

# 2. Four equal preferences: spread at random (40 separate runs).
sinks_stop; sink 127.0.0.5; sink 127.0.0.6; sink 127.0.0.7; sink 127.0.0.8
i=0
while [ $i -lt 40 ]; do send "r$i@eq.test"; run_queue; i=$((i + 1)); done
for a in 5 6 7 8; do
	[ "$(received 127.0.0.$a)" -ge 1 ] || fail "equal MX 127.0.0.$a never chosen"
done
# Within one run too: sessions take turns over the equal exchangers.  On
# a loaded machine one session may drain the queue before the others
# connect, so up to 5 runs (fresh spool and sinks each) may try; one
# that uses all four passes.
try=1
while :; do
	sinks_stop; fresh; world_conf "domain_concurrency = 4"
	sink 127.0.0.5; sink 127.0.0.6; sink 127.0.0.7; sink 127.0.0.8
	i=0
	while [ $i -lt 20 ]; do send "s$i@eq.test"; i=$((i + 1)); done
	run_queue
	unused=""
	for a in 5 6 7 8; do
		[ "$(received 127.0.0.$a)" -ge 1 ] || unused="$unused 127.0.0.$a"
	done
	[ -n "$unused" ] || break
	[ $try -lt 5 ] || fail "one run: equal MX$unused not used in 5 runs"
	try=$((try + 1))
done
ok "four equal MX preferences: each chosen over 40 runs and within one run (one run: $(received 127.0.0.5)/$(received 127.0.0.6)/$(received 127.0.0.7)/$(received 127.0.0.8))"

# 3. No MX, an A record: implicit MX.
sinks_stop; fresh; world_conf; sink 127.0.0.2
send x@implicit.test; run_queue
[ "$(received 127.0.0.2)" = 1 ] || fail "implicit MX not used"
ok "no MX, A record: delivered to the domain's address"

# 3b. The domain is a CNAME to a host without MX: the MX answer holds the
# CNAME alone, which is no MX (implicit MX), not a null MX.
sinks_stop; fresh; world_conf; sink 127.0.0.2
send x@cnamed.test; run_queue
log_has "to=<x@cnamed.test>" "status=sent"
[ "$(received 127.0.0.2)" = 1 ] || fail "CNAME'd domain without MX not delivered"
ok "domain CNAME'd to a host without MX: implicit MX, delivered"

# 4. Null MX (with an A record): bounce 5.1.10 at once, DSN to the sender.
sinks_stop; fresh; world_conf; sink 127.0.0.2; sink 127.0.0.4
send x@nullmx.test; run_queue
log_has "to=<x@nullmx.test>" "dsn=5.1.10" "status=bounced"
[ "$(received 127.0.0.2)" = 0 ] || fail "null MX domain got mail"
[ "$(received 127.0.0.4)" = 1 ] || fail "no DSN delivered to the sender"
dsn=$(find "$T/sink/127.0.0.4" -type f | head -n 1)
grep -q '^MAIL FROM:<>' "$dsn" || fail "DSN not from the null sender"
grep -q '^RCPT TO:<sender@sender.test>' "$dsn" || fail "DSN not to the sender"
grep -qi '^Content-Type: multipart/report; report-type=delivery-status' "$dsn" || fail "DSN not multipart/report"
grep -qi '^Content-Type: message/delivery-status' "$dsn" || fail "no delivery-status part"
grep -q '^Reporting-MTA: dns; relay.test' "$dsn" || fail "no Reporting-MTA"
grep -q '^Final-Recipient: rfc822; x@nullmx.test' "$dsn" || fail "no Final-Recipient"
grep -q '^Action: failed' "$dsn" || fail "no Action"
grep -q '^Status: 5.1.10' "$dsn" || fail "no Status 5.1.10"
grep -qi '^Content-Type: text/rfc822-headers' "$dsn" || fail "no original headers part"
grep -q '^Subject: test' "$dsn" || fail "original headers missing"
grep -q '^From: .*MAILER-DAEMON@relay.test' "$dsn" || fail "DSN From"
[ "$(spool_count)" = 0 ] || fail "spool not empty after bounce and DSN delivery"
ok "null MX: bounce 5.1.10, RFC 3464 DSN delivered to the sender"

# 5. NXDOMAIN: bounce 5.1.2.
sinks_stop; fresh; world_conf; sink 127.0.0.4
send x@nx.test; run_queue
log_has "to=<x@nx.test>" "dsn=5.1.2" "status=bounced"
[ "$(received 127.0.0.4)" = 1 ] || fail "no DSN for NXDOMAIN"
ok "NXDOMAIN: bounce 5.1.2"

# 6-8. SERVFAIL for everything, SERVFAIL for MX only, no answer: defer 4.4.3.
for d in servfail.test mxfail.test dead.test; do
	sinks_stop; fresh; world_conf; sink 127.0.0.2; sink 127.0.0.4
	send "x@$d"
	t0=$(date +%s%N); : > "$T/dnsq"
	run_queue
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	if [ "$d" = dead.test ]; then
		# The resolver's timeout (2 s, 1 try) was waited for, once.
		[ "$ms" -ge 1900 ] || fail "dead.test: gave up after $ms ms, before dns_timeout"
		[ "$(grep -c '^dead.test MX' "$T/dnsq")" = 1 ] ||
		    fail "dead.test: MX asked $(grep -c '^dead.test MX' "$T/dnsq") times with dns_tries = 1"
	fi
	log_has "to=<x@$d>" "dsn=4.4.3" "status=deferred"
	[ "$(received 127.0.0.2)" = 0 ] || fail "$d: fell back to the A record"
	[ "$(received 127.0.0.4)" = 0 ] || fail "$d: bounced"
	[ "$(spool_count)" = 1 ] || fail "$d: message not kept"
	mx -bp | grep -q "x@$d (pending, 1 attempt, next try" || fail "$d: mailq state"
done
ok "SERVFAIL, SERVFAIL for MX only, DNS timeout (waited for, asked once): defer 4.4.3, no A fallback"

# 8b. The exchanger's A query fails (SERVFAIL) and it has no AAAA: that is
# a temporary failure, deferred, not "no address" (asked together, c-ares
# reported the status of whichever answer came last, and the mail
# bounced 5.4.4).  With AAAA failing and an A record, mail goes there.
sinks_stop; fresh; world_conf; sink 127.0.0.2; sink 127.0.0.4
send x@afail.test; send y@a6fail.test; run_queue
log_has "to=<x@afail.test>" "dsn=4.4.3" "status=deferred"
log_has "to=<y@a6fail.test>" "relay=mx.a6fail.test[127.0.0.2]" "status=sent"
[ "$(received 127.0.0.4)" = 0 ] || fail "afail.test: bounced"
ok "A query SERVFAIL, no AAAA: deferred; AAAA SERVFAIL, an A record: delivered"

# 9. The MX answer comes after 3 s: delivered, with the default timeout.
sinks_stop; fresh; world_conf "dns_timeout = 5s"; sink 127.0.0.2
send x@slow.test; run_queue
[ "$(received 127.0.0.2)" = 1 ] || fail "slow DNS answer not waited for"
ok "MX answer after 3 s: delivered"

# 10-11. MX target without address / that does not exist: bounce 5.4.4.
for d in noaddr.test nomx.test; do
	sinks_stop; fresh; world_conf; sink 127.0.0.4
	send "x@$d"; run_queue
	log_has "to=<x@$d>" "dsn=5.4.4" "status=bounced"
done
ok "MX target without address, MX target missing: bounce 5.4.4"

# 12. MX 10 unresolvable, MX 20 fine.
sinks_stop; fresh; world_conf; sink 127.0.0.3
send x@bad10.test; run_queue
[ "$(received 127.0.0.3)" = 1 ] || fail "MX 20 not used"
ok "MX 10 unresolvable: delivered via MX 20"

# 13-15. MX 10 with a 5xx greeting, a 4xx or 421 greeting, or refusing:
# next MX.  (smtpsink keeps the connection open after a 450 greeting and
# would take the message: only the client's rule keeps it from MX 10.)
for how in "-r greeting=554" "-r greeting=450" "-r greeting=421" "none"; do
	sinks_stop; fresh; world_conf
	[ "$how" = none ] || sink 127.0.0.2 $how
	sink 127.0.0.3
	send x@up.test; run_queue
	[ "$(received 127.0.0.3)" = 1 ] || fail "MX 10 $how: not delivered via MX 20"
	[ "$(received 127.0.0.2)" = 0 ] || fail "MX 10 $how: took mail"
	log_has "to=<x@up.test>" "relay=mx2.up.test[127.0.0.3]" "status=sent"
done
ok "MX 10 5xx greeting, 450 greeting, 421 greeting, connection refused: delivered via MX 20"

# 16. The only MX refuses the connection: defer 4.4.1.
sinks_stop; fresh; world_conf; sink 127.0.0.4
send x@implicit.test; run_queue
log_has "to=<x@implicit.test>" "dsn=4.4.1" "status=deferred"
[ "$(spool_count)" = 1 ] || fail "only MX refuses: message not kept"
[ "$(received 127.0.0.4)" = 0 ] || fail "only MX refuses: bounced"
ok "only MX refuses: defer 4.4.1, kept, not bounced"

# 17. 450 at RCPT, only MX: defer with the remote text.
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r rcpt=450
send x@implicit.test; run_queue
log_has "to=<x@implicit.test>" "dsn=4.3.0" "status=deferred" "(450 4.3.0 recipient refused by smtpsink rule"
mx -bp | grep -q "450" || fail "mailq does not show the last reply"
ok "450 at RCPT: deferred 4.3.0, remote reply kept"

# 18. 450 at RCPT on MX 10, MX 20 fine: same attempt, via MX 20.
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r rcpt=450; sink 127.0.0.3
send x@up.test; run_queue
[ "$(received 127.0.0.3)" = 1 ] || fail "450 on MX 10: MX 20 not tried"
grep -q 'rcpt id=1 to=<x@up.test> code=450' "$T/sink/127.0.0.2.log" || fail "450 on MX 10: MX 10 not tried first"
[ "$(grep -c '^connect' "$T/sink/127.0.0.3.log")" = 1 ] || fail "450 on MX 10: MX 20 not in the same attempt"
log_has "to=<x@up.test>" "relay=mx2.up.test[127.0.0.3]" "status=sent"
ok "450 at RCPT on MX 10: delivered via MX 20 in the same attempt"

# 19. 5xx at RCPT on MX 10 (550, and 500 too): bounced with the remote
# enhanced code, MX 20 never contacted.
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r rcpt=500; sink 127.0.0.3; sink 127.0.0.4
send x@up.test; run_queue
log_has "to=<x@up.test>" "dsn=5.1.1" "status=bounced" "(500 5.1.1"
[ "$(grep -c '^connect' "$T/sink/127.0.0.3.log")" = 0 ] || fail "500 at RCPT: MX 20 contacted"
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r rcpt=550; sink 127.0.0.3; sink 127.0.0.4
send x@up.test; run_queue
log_has "to=<x@up.test>" "dsn=5.1.1" "status=bounced" "(550"
[ "$(grep -c '^connect' "$T/sink/127.0.0.3.log")" = 0 ] || fail "5xx at RCPT: MX 20 contacted"
grep -q '^Status: 5.1.1' "$(find "$T/sink/127.0.0.4" -type f | head -n 1)" || fail "DSN Status is not the remote 5.1.1"
[ "$(received 127.0.0.4)" = 1 ] || fail "5xx at RCPT: no DSN"
grep -q '^Remote-MTA: dns; mx1.up.test' "$(find "$T/sink/127.0.0.4" -type f | head -n 1)" || fail "DSN lacks Remote-MTA"
grep -q '^Diagnostic-Code: smtp; 550' "$(find "$T/sink/127.0.0.4" -type f | head -n 1)" || fail "DSN lacks Diagnostic-Code"
ok "5xx at RCPT on MX 10: bounced with Remote-MTA and Diagnostic-Code, MX 20 not tried"

# One recipient refused, the other delivered, in one transaction.
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r rcpt=550:bad@implicit.test; sink 127.0.0.4
printf 'Subject: two\n\nx\n' | mx -f sender@sender.test good@implicit.test bad@implicit.test || fail "queue"
run_queue
log_has "to=<good@implicit.test>" "status=sent"
log_has "to=<bad@implicit.test>" "status=bounced"
[ "$(spool_count)" = 0 ] || fail "message with all recipients done still queued"
ok "per-recipient results: one sent, one bounced"

# 20. Connection dropped after DATA: defer 4.4.2.
sinks_stop; fresh; world_conf; sink 127.0.0.2 --drop=dot; sink 127.0.0.3
send x@up.test; run_queue
log_has "to=<x@up.test>" "dsn=4.4.2" "status=deferred"
[ "$(received 127.0.0.3)" = 0 ] || fail "message resent to MX 20 after DATA"
[ "$(spool_count)" = 1 ] || fail "dropped after DATA: message not kept"
ok "connection dropped after DATA: defer 4.4.2, not resent elsewhere"

# 4xx and 5xx at MAIL: next MX, bounce the group.
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r mail=451; sink 127.0.0.3
send x@up.test; run_queue
[ "$(received 127.0.0.3)" = 1 ] || fail "4xx at MAIL: MX 20 not tried"
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r mail=553; sink 127.0.0.3; sink 127.0.0.4
printf 'Subject: two\n\nx\n' | mx -f sender@sender.test a@up.test b@up.test || fail "queue"
run_queue
log_has "to=<a@up.test>" "status=bounced"
log_has "to=<b@up.test>" "status=bounced"
[ "$(received 127.0.0.3)" = 0 ] || fail "5xx at MAIL: MX 20 tried"
ok "4xx at MAIL: next MX; 5xx at MAIL: the whole group bounced"

# 4xx/5xx after DATA applies to every accepted recipient.
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r dot=452
printf 'Subject: two\n\nx\n' | mx -f sender@sender.test a@implicit.test b@implicit.test || fail "queue"
run_queue
log_has "to=<a@implicit.test>" "status=deferred" "(452"
log_has "to=<b@implicit.test>" "status=deferred" "(452"
ok "4xx after the final dot: every accepted recipient deferred"

# 22. The MX target is a CNAME: followed.
sinks_stop; fresh; world_conf; sink 127.0.0.2
send x@cname.test; run_queue
[ "$(received 127.0.0.2)" = 1 ] || fail "CNAME'd MX target not followed"
ok "MX target is a CNAME: followed and delivered"

# 23. The MX list reaches this relay: cut there; nothing before it: 5.4.6.
for d in loop.test loopaddr.test; do
	sinks_stop; fresh; world_conf; sink 127.0.0.3; sink 127.0.0.4
	send "x@$d"; run_queue
	log_has "to=<x@$d>" "dsn=5.4.6" "status=bounced"
	log_has "loops back to myself"
	[ "$(received 127.0.0.3)" = 0 ] || fail "$d: MX after ourselves used"
done
sinks_stop; fresh; world_conf; sink 127.0.0.2
send x@loopfirst.test; run_queue
[ "$(received 127.0.0.2)" = 1 ] || fail "MX before ourselves not used"
ok "MX list reaching this relay (by name, by address): cut; nothing before it: bounce 5.4.6"

# Retry then success; delivered recipients are never retried.
sinks_stop; fresh; world_conf; sink 127.0.0.2 -r rcpt=451:late@implicit.test
printf 'Subject: retry\n\nx\n' | mx -f sender@sender.test early@implicit.test late@implicit.test || fail "queue"
run_queue
log_has "to=<late@implicit.test>" "status=deferred"
run_queue -q
log_lacks "to=<late@implicit.test>"
sinks_stop; sink 127.0.0.2
run_queue -qf
log_has "to=<late@implicit.test>" "status=sent"
log_lacks "to=<early@implicit.test>"
[ "$(received 127.0.0.2)" = 1 ] || fail "retry: want one message at the second attempt"
grep -q 'RCPT TO:<late@implicit.test>' "$T/sink/127.0.0.2"/* || fail "retry: wrong recipient"
grep -q 'RCPT TO:<early@implicit.test>' "$T/sink/127.0.0.2"/* && fail "retry: delivered recipient sent again"
[ "$(spool_count)" = 0 ] || fail "retry: message not removed"
ok "retry then success: -q respects the backoff, -qf retries, delivered recipient not resent"

# Past queue_lifetime: bounce with a DSN.  The first run has a lifetime
# no loaded machine reaches (it must defer); the second, 2 s after the
# arrival, a lifetime of 1 s (it must expire).
sinks_stop; fresh; world_conf "queue_lifetime = 1h"; sink 127.0.0.2 -r rcpt=450; sink 127.0.0.4
send x@implicit.test; run_queue
log_has "to=<x@implicit.test>" "status=deferred"
sleep 2
world_conf "queue_lifetime = 1s"
run_queue -qf
log_has "to=<x@implicit.test>" "status=expired"
[ "$(received 127.0.0.4)" = 1 ] || fail "lifetime: no DSN"
grep -q '^Final-Recipient: rfc822; x@implicit.test' "$T/sink/127.0.0.4"/* || fail "lifetime DSN"
[ "$(spool_count)" = 0 ] || fail "lifetime: message not removed"
ok "past queue_lifetime: bounced with a DSN"

# A message from the null sender is never bounced.
sinks_stop; fresh; world_conf; sink 127.0.0.4
printf 'Subject: dsn\n\nx\n' | mx -f '<>' x@nx.test || fail "queue"
run_queue
log_has "to=<x@nx.test>" "status=bounced"
[ "$(received 127.0.0.4)" = 0 ] || fail "null sender bounced"
[ "$(spool_count)" = 0 ] || fail "null-sender message kept"
ok "null sender: never bounced"

# -qI ID: only that message.
sinks_stop; fresh; world_conf; sink 127.0.0.2
send one@implicit.test; id1=$(last_id); send two@implicit.test
run_queue -qI"$id1"
log_has "to=<one@implicit.test>" "status=sent"
log_lacks "two@implicit.test"
[ "$(spool_count)" = 1 ] || fail "-qI delivered more than one message"
ok "-qI ID delivers only that message"

# Several messages to one destination share a connection (RSET between).
sinks_stop; fresh; world_conf "domain_concurrency = 1"; sink 127.0.0.2
for i in 1 2 3 4 5; do send "m$i@implicit.test"; done
run_queue
[ "$(received 127.0.0.2)" = 5 ] || fail "not all five delivered"
grep -q 'close id=.* msgs=5' "$T/sink/127.0.0.2.log" || fail "five messages did not share one connection"
ok "five messages to one destination over one connection"
# Two queue runners never work on the same message at once.
sinks_stop; fresh; world_conf "smtp_greeting_timeout = 3s"; sink 127.0.0.2 --hang=greeting
send x@implicit.test
mx -v -q > "$T/first.log" 2>&1 &
first=$!
wait_for "$T/sink/127.0.0.2.log" '^connect '
run_queue -qf
log_lacks "to=<x@implicit.test>"
wait $first || fail "first runner failed"
grep -q "to=<x@implicit.test>.*status=deferred" "$T/first.log" || fail "first runner: $(cat "$T/first.log")"
[ "$(grep -c '^connect ' "$T/sink/127.0.0.2.log")" = 1 ] || fail "second runner connected too"
ok "a second queue runner skips a message the first one holds"
echo "1..$NOK"
