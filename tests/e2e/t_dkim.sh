#!/bin/sh
# End to end: DKIM signing at intake (mxrelay.conf(5) dkim_key), held to
# two real verifiers, dkimpy and OpenDKIM's opendkim-testmsg, which read
# the public keys from the test world's DNS server (tests/e2e/dkim.sh says
# how opendkim-testmsg is pointed at it).  Keys are made with openssl
# genpkey: RSA 2048 and Ed25519.
#  1. The harness itself, on messages signed by dkimpy's dkimsign: good
#     signatures pass both verifiers, a changed body or header fails both,
#     and the checks can fail (so a pass below means something).
#  Then messages through mxrelay, delivered to the exchanger and verified
#  there, each signature the first header field, before Received::
#  2. sendmail interface (root): RSA, Ed25519, both (two signatures);
#  3. an 8-bit body (-B8BITMIME) with every field h= lists, and long
#     header lines (To: with 40 folded addresses, a 900-octet Subject:);
#  4. From: in a subdomain (d= the key's domain), the longest key domain;
#  5. the delivered message changed after signing (a body byte, a header,
#     an added From:) fails both verifiers;
#  6. no signature: no key for the From: domain, two From: addresses; a
#     message signed already with the same d= and s= gets none more (its
#     own still verifies), one with another s= gets ours;
#  7. a retried message: deferred for one recipient at the first attempt,
#     the bytes of the second are those of the first, and verify;
#  8. the listener (smtplib): RSA, Ed25519, both, BODY=8BITMIME, long
#     header lines;
#  9. dkim_expire: x= is t= plus the duration.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
. "${top_srcdir:-.}/tests/e2e/dkim.sh"
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }
dkim_require
CLIENT="python3 ${top_srcdir:-.}/tests/e2e/smtpclient.py"

dkim_key rsa rsa sel rsa.test
dkim_key ed ed25519 sel ed.test
dkim_key exr rsa rsa example.test
dkim_key exe ed25519 ed example.test
dkim_key deep ed25519 deep deep.example.test
dkim_key other rsa other rsa.test	# not the relay's: signs before it
IFS='
'
# shellcheck disable=SC2046
world_start up.test=127.0.0.2 $(cat "$T/dkim.zone")
unset IFS
odkim_start
LPORT=$SMTP_PORT		# the listener: 127.0.0.1:$LPORT
sink 127.0.0.2
RSA=rsa-sha256 ED=ed25519-sha256

# 1. The harness, without mxrelay.
printf 'From: App <app@rsa.test>\nTo: <r@up.test>\nSubject: self-test\nDate: Mon, 2 Feb 2026 10:00:00 +0100\nMessage-ID: <self@rsa.test>\n\nbody line\n' > "$T/plain"
"$DKIMPY" "$DKIMCHECK_PY" seed "$T/keys/ed.pem" > "$T/ed.seed" || fail "no seed"
dkimsign --bcanon relaxed sel rsa.test "$T/keys/rsa.pem" < "$T/plain" > "$T/s1" || fail "dkimsign rsa"
dkimsign --signalg ed25519-sha256 sel ed.test "$T/ed.seed" < "$T/s1" > "$T/s2" || fail "dkimsign ed25519"
dkim_pass "$T/s2" "dkimsign's signatures" --count 2 --alg $ED --alg $RSA --first --fold 78
[ "$(grep -c 'opendkim=pass' "$T/dkim.out")" = 2 ] || [ -z "$ODKIM" ] ||
    { cat "$T/dkim.out" >&2; fail "opendkim did not see both"; }
# dkimsign over-signs From only: --oversign (mxrelay's h= policy) fails it.
dkim_check "$T/s2" --count 2 --oversign &&
    fail "--oversign passes dkimsign's h=, which over-signs only From"
sed 's/^body line$/body linE/' "$T/s2" > "$T/s2body"
dkim_fails "$T/s2body" "dkimsign's, body changed" --count 2
sed 's/^Subject: self-test$/Subject: self-tesT/' "$T/s2" > "$T/s2head"
dkim_fails "$T/s2head" "dkimsign's, Subject: changed" --count 2
dkim_check "$T/s2body" && fail "the harness passes a changed body"
dkim_check "$T/s2" --fail && fail "the harness fails good signatures"
dkim_check "$T/plain" && fail "the harness passes an unsigned message"
dkim_check "$T/s2" --count 1 && fail "the harness miscounts"
dkim_check "$T/s2" --alg $RSA --alg $ED && fail "the harness misses the algorithm order"
dkim_check "$T/s2" --domain rsa.test && fail "the harness misses d="
sed 's/s=sel;/s=nokey;/' "$T/s2" > "$T/s2nokey"
dkim_check "$T/s2nokey" --fail && fail "the harness takes a missing key for a failed signature"
{ printf 'Received: from x by y; Mon, 2 Feb 2026 10:00:00 +0100\n'; cat "$T/s2"; } > "$T/s2recv"
dkim_check "$T/s2recv" --first && fail "the harness misses a Received: before the signatures"
ok "harness: dkimsign's RSA and Ed25519 signatures pass dkimpy${ODKIM:+ and opendkim-testmsg}; a changed body or Subject: fails; wrong counts, algorithms, d= and order are caught"

# The relay's keys, 0600 and owned by the spool's owner.
chown "$DUSER" "$T/keys/"*.pem
world_conf "listen = 127.0.0.1:$LPORT" "user = $DUSER" "group = $DGROUP" \
    "dkim_key = rsa.test sel $T/keys/rsa.pem" \
    "dkim_key = ed.test sel $T/keys/ed.pem" \
    "dkim_key = example.test rsa $T/keys/exr.pem" \
    "dkim_key = example.test ed $T/keys/exe.pem" \
    "dkim_key = deep.example.test deep $T/keys/deep.pem"

# submit FROM-ADDR FILE [mxrelay options]: the sendmail interface, as root,
# to r@up.test; then mxrelay -q; the delivered file in $MSG.
submit() {
	sf=$1 sm=$2
	shift 2
	mx -f "$sf" "$@" r@up.test < "$sm" 2> "$T/err" || { cat "$T/err" >&2; fail "mxrelay -f $sf failed"; }
	run_queue -q
	MSG=$(new_msg 127.0.0.2) || exit 1
}

# mkmsg FILE FROM SUBJECT [BODY]: a small message, LF lines.
mkmsg() {
	printf 'From: App <%s>\nTo: <r@up.test>\nSubject: %s\n\n%s\n' "$2" "$3" "${4:-hello}" > "$1"
}

# 2. sendmail interface: one key, the other, both.
mkmsg "$T/m" app@rsa.test "rsa"
submit app@rsa.test "$T/m"
dkim_pass "$MSG" "sendmail, RSA" --count 1 --alg $RSA --domain rsa.test --first --fold 78 --oversign
cp "$MSG" "$T/rsa.delivered"
mkmsg "$T/m" app@ed.test "ed25519"
submit app@ed.test "$T/m"
dkim_pass "$MSG" "sendmail, Ed25519" --count 1 --alg $ED --domain ed.test --first --fold 78 --oversign
mkmsg "$T/m" app@example.test "both"
submit app@example.test "$T/m"
dkim_pass "$MSG" "sendmail, RSA and Ed25519" --count 2 --alg $RSA --alg $ED --domain example.test --first --fold 78 --oversign
cp "$MSG" "$T/both.delivered"
ok "sendmail interface: rsa-sha256, ed25519-sha256, and both for a domain with two keys, first in the header, verified"

# 3. An 8-bit body with every field h= may list; long header lines.
printf 'From: App <app@example.test>\nTo: <r@up.test>\nCc: <c@up.test>\nSubject: 8bit\nDate: Mon, 2 Feb 2026 10:00:00 +0100\nMessage-ID: <8bit@example.test>\nReply-To: <reply@example.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\nList-Unsubscribe: <mailto:unsub@example.test>\n\nGr\303\274\303\237e, caf\303\251 \342\202\254\n\n  trailing blanks and tabs \t \n\n\n' > "$T/m8"
submit app@example.test "$T/m8" -B8BITMIME
grep -q 'caf' "$MSG" && LC_ALL=C grep -q "$(printf 'caf\303\251')" "$MSG" || fail "8-bit body changed"
dkim_pass "$MSG" "sendmail, 8-bit body" --count 2 --alg $RSA --alg $ED --first --fold 78 --oversign
cp "$MSG" "$T/8bit.delivered"
for h in from to cc subject date message-id reply-to mime-version content-type list-unsubscribe; do
	tr -d ' \t\r\n' < "$MSG" | grep -qi "h=[^;]*$h" || fail "h= lacks $h"
done
{
	printf 'From: App <app@example.test>\nTo: '
	i=1
	while [ $i -le 40 ]; do
		printf '<rcpt%02d@up.test>' $i
		[ $i -lt 40 ] && printf ',\n '
		i=$((i + 1))
	done
	printf '\nSubject: '
	head -c 900 /dev/zero | tr '\0' 's'
	printf '\n\nlong headers\n'
} > "$T/mlong"
submit app@example.test "$T/mlong"
grep -q "$(head -c 900 /dev/zero | tr '\0' 's')" "$MSG" || fail "the 900-octet Subject: changed"
dkim_pass "$MSG" "sendmail, long header lines" --count 2 --alg $RSA --alg $ED --first --fold 78 --oversign
ok "sendmail interface: an 8-bit body with Cc, Reply-To, MIME-Version, Content-Type, List-Unsubscribe signed; To: of 40 folded addresses and a 900-octet Subject:"

# 4. From: in a subdomain: the key of the parent; the longest key domain wins.
mkmsg "$T/m" app@mail.example.test "subdomain"
submit app@mail.example.test "$T/m"
dkim_pass "$MSG" "From: in a subdomain" --count 2 --alg $RSA --alg $ED --domain example.test --first
mkmsg "$T/m" app@x.deep.example.test "deeper"
submit app@x.deep.example.test "$T/m"
dkim_pass "$MSG" "From: below deep.example.test" --count 1 --alg $ED --domain deep.example.test --first
ok "From: a@mail.example.test is signed d=example.test; a@x.deep.example.test by deep.example.test's key alone"

# 5. Changed after signing: a body byte, a signed header, an added From:.
sed 's/^hello\r$/hellO\r/' "$T/rsa.delivered" > "$T/x1"
cmp -s "$T/x1" "$T/rsa.delivered" && fail "no body byte changed"
dkim_fails "$T/x1" "RSA, body changed after signing" --count 1
sed 's/^hello\r$/hellO\r/' "$T/both.delivered" > "$T/x2"
dkim_fails "$T/x2" "RSA and Ed25519, body changed after signing" --count 2
sed 's/^Subject: both\r$/Subject: Both\r/' "$T/both.delivered" > "$T/x3"
cmp -s "$T/x3" "$T/both.delivered" && fail "no header byte changed"
dkim_fails "$T/x3" "Subject: changed after signing" --count 2
sed '1,/^$/d' "$T/both.delivered" | awk 'BEGIN { s = 1 } s && /^From: / { print "From: <evil@example.test>\r" ; s = 0 } { print }' > "$T/x4"
[ "$(grep -c '^From: ' "$T/x4")" = 2 ] || fail "no From: added"
# opendkim-testmsg refuses two From: fields outright (dkim_chunk():
# Syntax error), and dkimpy fails every signature of such a message even
# where h= does not over-sign From: (so --oversign checks h= itself).
dkim_check "$T/x4" --not-pass --count 2 && [ "$(grep -c 'dkimpy=fail' "$T/dkim.out")" = 2 ] ||
    { cat "$T/dkim.out" "$T/x4" >&2; fail "a From: added after signing: not refused"; }
# Fields added above the signatures: a Reply-To: the message lacked, a
# second Subject:.  h= over-signs every name it signs, so both break
# every signature (dkimpy; opendkim-testmsg refuses a second Subject:).
sed '1,/^$/d' "$T/both.delivered" > "$T/x6b"
{ printf 'Reply-To: <attacker@evil.test>\r\n'; cat "$T/x6b"; } > "$T/x6"
dkim_check "$T/x6" --not-pass --count 2 && [ "$(grep -c 'dkimpy=fail' "$T/dkim.out")" = 2 ] ||
    { cat "$T/dkim.out" "$T/x6" >&2; fail "a Reply-To: added after signing: not refused"; }
{ printf 'Subject: PAY NOW\r\n'; cat "$T/x6b"; } > "$T/x7"
dkim_check "$T/x7" --not-pass --count 2 && [ "$(grep -c 'dkimpy=fail' "$T/dkim.out")" = 2 ] ||
    { cat "$T/dkim.out" "$T/x7" >&2; fail "a second Subject: added after signing: not refused"; }
sed 's/[a-z]\r$/X\r/' "$T/8bit.delivered" > "$T/x5"
dkim_fails "$T/x5" "8-bit body changed after signing" --count 2
ok "a body byte or the Subject: changed after signing: every signature fails with both verifiers; an added From:, Reply-To: or second Subject: fails dkimpy (and opendkim-testmsg refuses the message)"

# 6. Not signed: no key, two From: addresses; signed already.
mkmsg "$T/m" app@nokey.test "nokey"
submit app@nokey.test "$T/m"
dkim_check "$MSG" --count 0 || { cat "$T/dkim.out" >&2; fail "signed without a key"; }
printf 'From: <a@example.test>, <b@example.test>\nTo: <r@up.test>\nSubject: two\n\nhello\n' > "$T/m"
submit a@example.test "$T/m"
dkim_check "$MSG" --count 0 || { cat "$T/dkim.out" >&2; fail "signed with two From: addresses"; }
printf 'From: App <app@rsa.test>\nTo: <r@up.test>\nSubject: signed before\nDate: Mon, 2 Feb 2026 10:00:00 +0100\nMessage-ID: <pre@rsa.test>\n\nhello\n' > "$T/m"
dkimsign sel rsa.test "$T/keys/rsa.pem" < "$T/m" > "$T/mpre" || fail "dkimsign"
submit app@rsa.test "$T/mpre"
dkim_pass "$MSG" "signed before with the same d= and s=" --count 1 --alg $RSA
tr -d '\r\n' < "$MSG" | grep -q 'i=@rsa.test' || fail "the signature is not the one made before"
dkimsign other rsa.test "$T/keys/other.pem" < "$T/m" > "$T/mpre2" || fail "dkimsign"
submit app@rsa.test "$T/mpre2"
dkim_pass "$MSG" "signed before with another s=" --count 2 --alg $RSA --alg $RSA
sed '1,/^$/d' "$MSG" | tr -d '\r' | awk 'NR == 1 || /^[ \t]/ { printf "%s", $0; next } { exit }' |
    grep -q '^DKIM-Signature:.*s= *sel *;' || fail "our signature is not the first field"
ok "no signature without a key or with two From: addresses; one signed with the same d= and s= gets no second (its own verifies), with another s= it gets ours"

# 7. A retry: b@up.test is deferred at the first attempt, delivered at
# the second, from the same bytes.
sinks_stop; sink 127.0.0.2 -r rcpt=451:b@up.test
printf 'From: App <app@example.test>\nTo: <a@up.test>, <b@up.test>\nSubject: retried\n\nhello again\n' > "$T/m"
mx -f app@example.test a@up.test b@up.test < "$T/m" || fail "queueing failed"
run_queue -q
log_has "to=<b@up.test>" "status=deferred"
f1=$(new_msg 127.0.0.2) || exit 1
cp "$f1" "$T/first"
sinks_stop; sink 127.0.0.2
"$MXRELAY" requeue -C "$CONF" -a > /dev/null 2>&1 || fail "mxrelay requeue -a"
run_queue -q
f2=$(new_msg 127.0.0.2) || exit 1
grep -q '^RCPT TO:<b@up.test>' "$f2" || fail "the second attempt was not to b@up.test"
sed '1,/^$/d' "$T/first" > "$T/first.msg"
sed '1,/^$/d' "$f2" > "$T/second.msg"
cmp "$T/first.msg" "$T/second.msg" || fail "the second attempt sent other bytes"
dkim_pass "$f2" "the second attempt" --count 2 --alg $RSA --alg $ED --first --fold 78 --oversign
ok "a retried message: the second attempt sends the first one's bytes, and they verify"

# 8. The listener.
daemon_start
# listen FROM FILE [smtpclient options]: one message over the listener.
listen() {
	lf=$1 lm=$2
	shift 2
	ln=$(( $(received 127.0.0.2) + 1 ))
	$CLIENT send "$LPORT" --from "$lf" --to r@up.test --upload "$lm" "$@" > "$T/c.out" 2>&1 ||
	    { cat "$T/c.out" >&2; fail "the listener refused the message from $lf"; }
	within 10 got 127.0.0.2 $ln || { cat "$T/d.log" >&2; fail "not delivered"; }
	MSG=$(new_msg 127.0.0.2) || exit 1
}
for m in "$T/m" "$T/m8" "$T/mlong"; do sed 's/$/\r/' "$m" > "$m.crlf"; done
mkmsg "$T/l" app@rsa.test "listener rsa"; sed 's/$/\r/' "$T/l" > "$T/l.crlf"
listen app@rsa.test "$T/l.crlf"
dkim_pass "$MSG" "listener, RSA" --count 1 --alg $RSA --domain rsa.test --first --fold 78 --oversign
mkmsg "$T/l" app@ed.test "listener ed25519"; sed 's/$/\r/' "$T/l" > "$T/l.crlf"
listen app@ed.test "$T/l.crlf"
dkim_pass "$MSG" "listener, Ed25519" --count 1 --alg $ED --domain ed.test --first --fold 78 --oversign
mkmsg "$T/l" app@example.test "listener both"; sed 's/$/\r/' "$T/l" > "$T/l.crlf"
listen app@example.test "$T/l.crlf"
dkim_pass "$MSG" "listener, RSA and Ed25519" --count 2 --alg $RSA --alg $ED --domain example.test --first --fold 78 --oversign
sed 's/^hello\r$/hellO\r/' "$MSG" > "$T/x6"
dkim_fails "$T/x6" "listener, body changed after signing" --count 2
listen app@example.test "$T/m8.crlf" --mail-param BODY=8BITMIME
grep -q 'params=.*BODY=8BITMIME' "$T/sink/127.0.0.2.log" || fail "not relayed with BODY=8BITMIME"
dkim_pass "$MSG" "listener, 8-bit body" --count 2 --alg $RSA --alg $ED --first --fold 78 --oversign
listen app@example.test "$T/mlong.crlf"
dkim_pass "$MSG" "listener, long header lines" --count 2 --alg $RSA --alg $ED --first --fold 78 --oversign
daemon_stop
ok "listener: rsa-sha256, ed25519-sha256, both; BODY=8BITMIME; long header lines; a changed body fails"

# 9. dkim_expire: x= is t= plus the duration, and dkimpy takes it.
world_conf "listen = 127.0.0.1:$LPORT" "user = $DUSER" "group = $DGROUP" \
    "dkim_key = example.test rsa $T/keys/exr.pem" \
    "dkim_key = example.test ed $T/keys/exe.pem" "dkim_expire = 2d"
mkmsg "$T/m" app@example.test "expires"
submit app@example.test "$T/m"
# 2 days is less than queue_lifetime's default, 5: a warning.
grep -q 'dkim_expire is shorter than queue_lifetime' "$T/err" ||
    { cat "$T/err" >&2; fail "no warning: dkim_expire 2d, queue_lifetime 5d"; }
dkim_pass "$MSG" "dkim_expire = 2d" --count 2 --alg $RSA --alg $ED --first --fold 78 --oversign
sed '1,/^$/d' "$MSG" | tr -d '\r\n\t ' | sed 's/DKIM-Signature:/\n/g' |
    awk 'match($0, /;t=[0-9]+/) { t = substr($0, RSTART + 3, RLENGTH - 3)
	if (match($0, /;x=[0-9]+/)) print t, substr($0, RSTART + 3, RLENGTH - 3) }' > "$T/tx"
[ "$(wc -l < "$T/tx")" = 2 ] && awk '$2 - $1 != 172800 { exit 1 }' "$T/tx" ||
    { cat "$T/tx" "$MSG" >&2; fail "x= is not t= + 2 days in both signatures"; }
ok "dkim_expire = 2d: x= is t= + 172800 in both signatures, and they verify"
