#!/bin/sh
# End to end: an ordinary user's message is DKIM-signed too (issue 14).
# www-data queues with the installed, set-group-ID sendmail through the
# drop folder; it cannot read the key (0600, the spool owner's), so its
# drop file carries no signature, and the message is signed at pickup by
# the spool's owner: by root's mxrelay -q, then by mxrelayd.  Both
# delivered messages verify with dkimpy and opendkim-testmsg (RSA and
# Ed25519, the signatures first, before Received:), and a changed body
# fails.  Run as root in the private namespace of tests/e2e/privs.sh.
. "${top_srcdir:-.}/tests/e2e/privs.sh"
privs_require
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
. "${top_srcdir:-.}/tests/e2e/dkim.sh"
dkim_require
privs_setup
RSA=rsa-sha256 ED=ed25519-sha256

dkim_key exr rsa rsa example.test
dkim_key exe ed25519 ed example.test
chown mxrelay "$T/keys/"*.pem
IFS='
'
# shellcheck disable=SC2046
world_start up.test=127.0.0.2 $(cat "$T/dkim.zone")
unset IFS
odkim_start
sink 127.0.0.2

world_conf "listen =" "user = mxrelay" "group = mxrelay" \
    "dkim_key = example.test rsa $T/keys/exr.pem" \
    "dkim_key = example.test ed $T/keys/exe.pem"
cp "$CONF" "$SYSCONF"
chmod 644 "$SYSCONF"
expect_rc 0 "mxrelayd -i" "$MXRELAYD" -i

# 1. Through drop/, signed at pickup by root's mxrelay -q.
as www-data cat "$T/keys/exr.pem" > /dev/null 2>&1 && fail "www-data can read the key"
printf 'From: App <app@example.test>\nTo: <r@up.test>\nSubject: from www-data\n\nhello\n' > "$T/m1"
chmod 644 "$T/m1"
as www-data "$SM" -t -i < "$T/m1" 2> "$T/err" || { cat "$T/err"; fail "sendmail -t -i as www-data"; }
[ "$(find "$SPOOL/drop" -type f | wc -l)" = 1 ] || fail "no drop file"
! grep -rq 'DKIM-Signature' "$SPOOL/drop" || fail "the drop file is signed (by www-data?)"
run_queue -q
log_has "user=www-data (queued from drop/)"
m=$(new_msg 127.0.0.2) || exit 1
dkim_pass "$m" "www-data's message, mxrelay -q" --count 2 --alg $RSA --alg $ED --domain example.test --first --fold 78
sed 's/^hello\r$/hellO\r/' "$m" > "$T/x"
dkim_fails "$T/x" "www-data's message changed after signing" --count 2
ok "www-data's message through drop/ is signed at pickup by mxrelay -q: RSA and Ed25519 verify, a changed body fails"

# 2. The same, picked up by mxrelayd.
daemon_start
printf 'From: App <app@example.test>\nTo: <r@up.test>\nSubject: from www-data, daemon\n\nhello\n' > "$T/m2"
chmod 644 "$T/m2"
as www-data "$SM" -t -i < "$T/m2" 2> "$T/err" || { cat "$T/err"; fail "sendmail -t -i as www-data"; }
within 15 got 127.0.0.2 2 || { cat "$T/d.log" >&2; fail "not delivered by mxrelayd"; }
m=$(new_msg 127.0.0.2) || exit 1
dkim_pass "$m" "www-data's message, mxrelayd" --count 2 --alg $RSA --alg $ED --domain example.test --first --fold 78
daemon_stop
ok "www-data's message through drop/ is signed at pickup by mxrelayd"
