#!/bin/sh
# End to end: where DKIM signing happens and how the signature travels
# (mxrelay.conf(5), DKIM), whatever signer src/dkim.c holds: only
# "DKIM-Signature:" first and its d= are looked at (tests/e2e/t_dkim.sh
# checks the signatures themselves with real verifiers).
# (a) A message queued by mxrelay as the spool's owner, by -bs, through
#     the listener, and (as root, privs.sh) by a user through drop/ and
#     its pickup reaches the exchanger with exactly one DKIM-Signature,
#     its first line, before our Received: where there is one (mxrelay
#     adds none to what it is handed).
# (b) A message deferred at one exchanger and retried sends the same
#     bytes as its delivery to another at the first attempt.
# (c) A key file that is writable by others, missing, not a key or RSA
#     below 1024 bits stops mxrelayd and mxrelay -q at start with an
#     error naming the file, and mxrelay queues nothing (exit 78); a
#     reload with such a key keeps the keys in use; RSA of 1024 bits is
#     used with a warning naming the file.
# (d) A From: in no key's domain: no signature.
# (e) mailq and SIZE= count the signature: the bytes sent.
. "${top_srcdir:-.}/tests/e2e/privs.sh"
. "${top_srcdir:-.}/tests/e2e/lib.sh"
. "${top_srcdir:-.}/tests/e2e/world.sh"
. "${top_srcdir:-.}/tests/e2e/daemon.sh"
command -v openssl > /dev/null || { echo "# openssl not installed"; exit 77; }
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }
CLIENT="python3 ${top_srcdir:-.}/tests/e2e/smtpclient.py"
[ "$PRIVS" = yes ] && privs_setup

world_start site.test=127.0.0.2 two.test=127.0.0.3
sink 127.0.0.2

openssl genpkey -algorithm ed25519 -out "$T/dkim.key" 2> /dev/null ||
    fail "openssl genpkey"
chmod 600 "$T/dkim.key"
KEY="dkim_key = example.com sel1 $T/dkim.key"
LPORT=$SMTP_PORT

# last_msg ADDR: the message the exchanger at ADDR stored last, without
# the sink's envelope lines, into $T/msg.
last_msg() {
	f=$(ls "$T/sink/$1"/msg.* 2> /dev/null | sort | tail -n 1)
	[ -n "$f" ] || fail "nothing stored at $1"
	sed '1,/^$/d' "$f" > "$T/msg"
}

# signed WHAT [received]: $T/msg has exactly one DKIM-Signature, its
# first line, with d=example.com; with "received", a Received: after it
# (mxrelay's own submissions have none).
signed() {
	head -n 1 "$T/msg" | grep -q '^DKIM-Signature:' ||
	    { cat "$T/msg" >&2; fail "$1: the first line is not DKIM-Signature:"; }
	n=$(grep -ci '^DKIM-Signature:' "$T/msg")
	[ "$n" = 1 ] || { cat "$T/msg" >&2; fail "$1: $n DKIM-Signature fields"; }
	# The field unfolded: its first line and those that start with blanks.
	awk 'NR == 1 { print; next } /^[ \t]/ { print; next } { exit }' "$T/msg" |
	    tr -d ' \t\r\n' > "$T/field"
	grep -Eq '(^DKIM-Signature:|;)d=example\.com(;|$)' "$T/field" ||
	    { cat "$T/field" >&2; fail "$1: no d=example.com"; }
	[ "${2:-}" = received ] || return 0
	r=$(grep -n '^Received:' "$T/msg" | head -n 1 | cut -d: -f1)
	[ -n "$r" ] && [ "$r" -gt 1 ] ||
	    { cat "$T/msg" >&2; fail "$1: no Received: after the signature"; }
}

unsigned() {
	grep -qi '^DKIM-Signature:' "$T/msg" &&
	    { cat "$T/msg" >&2; fail "$1: signed"; }
	return 0
}

msg() {
	printf 'From: Someone <%s>\nTo: %s\nSubject: dkim %s\n\nbody of %s\n' \
	    "$1" "$2" "$3" "$3"
}

# (a) 1. mxrelay as the spool's owner (root's runs work as it).
world_conf "$KEY"
msg app@mail.example.com r@site.test owner | mx -f app@mail.example.com r@site.test ||
    fail "mxrelay as the spool's owner"
[ "$(spool_ids | wc -l)" = 1 ] || fail "not one message in the spool"
env_of "$(spool_ids)" > "$T/env" || fail "no envelope"
grep -q '^dkim =DKIM-Signature:' "$T/env" || fail "no dkim line in the envelope"
size=$(mx -bp | awk 'NR == 2 { print $2 }')
run_queue
last_msg 127.0.0.2
signed "mxrelay as the spool's owner"
ok "mxrelay as the spool's owner: one DKIM-Signature, first, d=example.com"
[ "$(wc -c < "$T/msg" | tr -d ' ')" = "$size" ] ||
    fail "mailq said $size bytes, $(wc -c < "$T/msg") were sent"
grep -q "SIZE=$size" "$T/sink/127.0.0.2.log" || fail "SIZE= is not $size"
ok "mailq and SIZE= count the signature: the bytes sent"

# (a) 2. -bs.
fresh
world_conf "$KEY"
printf 'EHLO app.test\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<bs@site.test>\r\nDATA\r\n' > "$T/bs"
msg app@example.com bs@site.test bs | sed 's/$/\r/' >> "$T/bs"
printf '.\r\nQUIT\r\n' >> "$T/bs"
mx -bs < "$T/bs" > "$T/bs.out" || { cat "$T/bs.out" >&2; fail "-bs"; }
grep -q '^250 2.0.0 Ok: queued' "$T/bs.out" || { cat "$T/bs.out" >&2; fail "-bs: not queued"; }
run_queue
last_msg 127.0.0.2
signed "-bs" received
ok "-bs: one DKIM-Signature, first, before Received:"

# (a) 3. The listener; (c) a reload with a bad key keeps the keys in use.
fresh
world_conf "$KEY" "listen = 127.0.0.1:$LPORT" "relay_clients = 127.0.0.0/8"
daemon_start
msg app@example.com l@site.test listener > "$T/up"
$CLIENT send "$LPORT" --from app@example.com --to l@site.test --upload "$T/up" > "$T/cl" 2>&1 ||
    { cat "$T/cl" >&2; fail "the listener did not queue"; }
within 5 got 127.0.0.2 3 || fail "the listener's message not delivered"
last_msg 127.0.0.2
signed "the listener" received
ok "the listener: one DKIM-Signature, first, before Received:"
chmod 666 "$T/dkim.key"
kill -HUP "$DPID"
wait_for "$T/d.log" 'reload failed'
grep -q "$T/dkim.key: writable by everyone" "$T/d.log" || { cat "$T/d.log" >&2; fail "reload: the bad key not named"; }
chmod 600 "$T/dkim.key"
msg app@example.com l2@site.test reload > "$T/up"
$CLIENT send "$LPORT" --from app@example.com --to l2@site.test --upload "$T/up" > "$T/cl" 2>&1 ||
    { cat "$T/cl" >&2; fail "the listener did not queue after the reload"; }
within 5 got 127.0.0.2 4 || fail "the message after the reload not delivered"
last_msg 127.0.0.2
signed "the listener after a failed reload" received
daemon_stop
ok "a reload with a world-writable key: refused and named, the keys in use still sign"

# (d) No key for the From: domain: no signature.
fresh
world_conf "$KEY"
msg app@example.org r@site.test other | mx -f app@example.org r@site.test || fail "queueing"
[ "$(spool_ids | wc -l)" = 1 ] || fail "not one message in the spool"
env_of "$(spool_ids)" > "$T/env" || fail "no envelope"
grep -q '^sender =app@example.org$' "$T/env" || fail "not the message queued: $(cat "$T/env")"
grep -q '^dkim ' "$T/env" && fail "a dkim line for a domain without a key"
run_queue
last_msg 127.0.0.2
unsigned "From: example.org"
ok "From: in no key's domain (example.org for example.com): not signed"

# (b) Deferred at two.test (451 at the end of data), delivered to
# site.test at once: the retry sends the bytes the first attempt sent.
fresh
sink 127.0.0.3 -r dot=451
world_conf "$KEY"
msg app@example.com "r@site.test, r@two.test" retry |
    mx -f app@example.com r@site.test r@two.test || fail "queueing"
n=$(received 127.0.0.2)
run_queue
[ "$(received 127.0.0.2)" = $((n + 1)) ] || fail "not delivered to site.test"
grep -q 'code=451' "$T/sink/127.0.0.3.log" || fail "two.test did not get the data"
kill $(echo "$SINK_PIDS" | awk '{print $NF}')
sink 127.0.0.3
run_queue -qf
[ "$(received 127.0.0.3)" = 1 ] || fail "the retry did not reach two.test"
last_msg 127.0.0.2
cp "$T/msg" "$T/first"
last_msg 127.0.0.3
cmp -s "$T/first" "$T/msg" || { diff "$T/first" "$T/msg" >&2; fail "the retry sent other bytes"; }
signed "the retry"
[ "$(spool_count)" = 0 ] || fail "the message is still queued"
ok "a deferred message retried: the same bytes as the first attempt, signature first"

# (c) Bad key files stop mxrelay -q and mxrelayd at start, naming them.
bad_key() {
	what=$1 path=$2
	fresh
	world_conf "dkim_key = example.com sel1 $path"
	msg app@example.org q@site.test bad | mx -f app@example.org q@site.test > /dev/null 2>&1
	mx -q > "$T/log" 2>&1 && fail "$what: mxrelay -q exit 0"
	grep -qF "$path" "$T/log" || { cat "$T/log" >&2; fail "$what: mxrelay -q does not name $path"; }
	"$MXRELAYD" -f -C "$CONF" > "$T/dlog" 2>&1 && fail "$what: mxrelayd started"
	grep -qF "$path" "$T/dlog" || { cat "$T/dlog" >&2; fail "$what: mxrelayd does not name $path"; }
	ok "$what: mxrelay -q and mxrelayd stop at start, naming the file"
}
cp "$T/dkim.key" "$T/ww.key"
chmod 666 "$T/ww.key"
bad_key "a key writable by everyone" "$T/ww.key"
cp "$T/dkim.key" "$T/gw.key"
chmod 620 "$T/gw.key"
if [ "$(id -u)" = 0 ]; then
	# Root's group may write a secret: give it another group.
	g=$(for g in nogroup daemon users; do getent group $g > /dev/null && echo $g && break; done)
	[ -n "$g" ] && chgrp "$g" "$T/gw.key"
fi
if [ "$(stat -c %g "$T/gw.key")" != 0 ]; then
	bad_key "a key writable by its group" "$T/gw.key"
else
	ok "# SKIP a key writable by its group (no group but root's)"
fi
bad_key "a missing key" "$T/missing.key"
printf 'not a key\n' > "$T/junk.key"
chmod 600 "$T/junk.key"
bad_key "a file that is not a key" "$T/junk.key"
if openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:512 \
    -out "$T/short.key" 2> /dev/null; then
	chmod 600 "$T/short.key"
	bad_key "an RSA key of 512 bits" "$T/short.key"
else
	ok "# SKIP an RSA key of 512 bits (openssl will not make one)"
fi

# mxrelay as the spool's owner with a bad key: nothing queued, exit 78.
fresh
world_conf "dkim_key = example.com sel1 $T/ww.key"
msg app@example.com q@site.test bad | mx -f app@example.com q@site.test > "$T/log" 2>&1
rc=$?
[ "$rc" = 78 ] || { cat "$T/log" >&2; fail "mxrelay with a bad key: exit $rc, want 78"; }
grep -qF "$T/ww.key" "$T/log" || { cat "$T/log" >&2; fail "mxrelay does not name the key"; }
[ "$(spool_count)" = 0 ] || fail "a message was queued with a bad key"
ok "mxrelay as the spool's owner with a bad key: exit 78, the file named, nothing queued"

# An RSA key of 1024 bits: used, with a warning that names it.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 \
    -out "$T/weak.key" 2> /dev/null || fail "openssl genpkey RSA 1024"
chmod 600 "$T/weak.key"
fresh
world_conf "dkim_key = example.com sel1 $T/weak.key"
msg app@example.com w@site.test weak | mx -f app@example.com w@site.test 2> "$T/err" ||
    { cat "$T/err" >&2; fail "mxrelay with a 1024-bit key"; }
grep -qF "$T/weak.key: an RSA key of fewer than 2048 bits" "$T/err" ||
    { cat "$T/err" >&2; fail "no warning for a 1024-bit key"; }
run_queue
grep -qF "$T/weak.key: an RSA key of fewer than 2048 bits" "$T/log" ||
    fail "mxrelay -q: no warning for a 1024-bit key"
last_msg 127.0.0.2
signed "a 1024-bit key"
ok "an RSA key of 1024 bits: used, with a warning naming it"

# (a) 4. A user's message through drop/: signed by its pickup (root's
# mxrelay -q, working as the spool's owner mxrelay, who reads the key).
if [ "$PRIVS" = yes ]; then
	fresh
	install -o root -g mxrelay -m 0640 "$T/dkim.key" "$T/drop.key"
	world_conf "user = mxrelay" "group = mxrelay" \
	    "dkim_key = example.com sel1 $T/drop.key"
	cp "$CONF" "$SYSCONF"
	chmod 644 "$SYSCONF"
	"$MXRELAYD" -i || fail "mxrelayd -i"
	msg www@example.com u@site.test drop | as www-data "$SM" -t -i 2> "$T/err" ||
	    { cat "$T/err" >&2; fail "sendmail as www-data"; }
	grep -q 'DKIM' "$T/err" && { cat "$T/err" >&2; fail "www-data's sendmail touched the key"; }
	[ "$(find "$SPOOL/drop" -type f | wc -l)" = 1 ] || fail "no drop file"
	n=$(received 127.0.0.2)
	"$T/bin/mxrelay" -q -v > "$T/log" 2>&1 || { cat "$T/log" >&2; fail "mxrelay -q"; }
	[ "$(received 127.0.0.2)" = $((n + 1)) ] || { cat "$T/log" >&2; fail "the dropped message not delivered"; }
	last_msg 127.0.0.2
	signed "a user's message through drop/"
	ok "a user's message through drop/: signed at pickup, one DKIM-Signature, first"
else
	ok "# SKIP a user's message through drop/ (needs root: privs.sh)"
fi
