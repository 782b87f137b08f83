#!/bin/sh
# End to end: `mxrelay -bs`, one SMTP session on stdin/stdout (the default
# transport of Symfony Mailer and Swift Mailer, and Laravel's
# `sendmail -bs -i`), driven by a Python client over pipes as those PHP
# libraries do: two messages in one session (the second pipelined), a
# remote recipient accepted for the local user, no STARTTLS or AUTH, a
# smuggling attempt refused with nothing queued under bare_lf = reject and
# one message under normalize (bare LFs stored as CRLF), an input that ends inside
# DATA (nothing queued, exit 65), and non-interactive use with a pipe, a
# file and /dev/null on stdin.
. "${top_srcdir:-.}/tests/e2e/lib.sh"
command -v python3 > /dev/null || { echo "# python3 not installed"; exit 77; }

ME=$(id -u)
write_conf "qualify_domain = relay.test" "relay_clients = 10.99.0.0/16" \
    "max_message_size = 1M"
if command -v openssl > /dev/null; then
	mkdir "$T/certs"
	sh "${top_srcdir:-.}/tests/e2e/certs.sh" "$T/certs" relay.test > /dev/null 2>&1 ||
	    fail "certificates"
	# A listener certificate must not make -bs offer STARTTLS.
	echo "tls_cert_file = $T/certs/good.pem" >> "$CONF"
	echo "tls_key_file = $T/certs/good.key" >> "$CONF"
fi

cat > "$T/bs.py" <<'EOF'
"""Drive `mxrelay -C CONF -bs` over pipes; scenario in argv[3].
Prints every reply as "< CODE TEXT"; exit 0 when the dialogue went as
expected and the program exited as expected, 1 otherwise."""
import os, select, subprocess, sys, time

mx, conf, scenario = sys.argv[1], sys.argv[2], sys.argv[3]
p = subprocess.Popen([mx, "-C", conf, "-bs"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
buf = b""
failed = False


def bad(why):
    global failed
    print("FAIL:", why)
    failed = True


def reply(timeout=20):
    """One (multi-line) reply: (code, [lines]); (0, []) at EOF."""
    global buf
    lines, end = [], time.time() + timeout
    while True:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if not line.endswith(b"\r"):
                bad("reply line without CRLF: %r" % line)
            line = line.rstrip(b"\r").decode()
            print("<", line)
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines
        left = end - time.time()
        if left <= 0:
            bad("no reply within %d s" % timeout)
            return 0, lines
        r, _, _ = select.select([p.stdout], [], [], left)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            if not chunk:
                return 0, lines
            buf += chunk


def send(data):
    p.stdin.write(data.encode())
    p.stdin.flush()


def expect(prefix):
    code, lines = reply()
    if not lines or not lines[-1 if prefix[3:4] == " " else 0].startswith(prefix):
        bad("expected %r, got %r" % (prefix, lines))
    return lines


def finish(want_exit):
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    code, lines = reply()
    if code != 0:
        bad("more after the end: %r" % lines)
    rc = p.wait(timeout=20)
    err = p.stderr.read().decode(errors="replace")
    if err:
        print("stderr:", err.strip())
    print("exit", rc)
    if rc != want_exit:
        bad("exit %d, want %d" % (rc, want_exit))
    sys.exit(1 if failed else 0)


expect("220 relay.test ESMTP")
send("EHLO app.client.test\r\n")
ehlo = expect("250-relay.test")
for l in ehlo:
    if l[4:].startswith(("STARTTLS", "AUTH")):
        bad("offered on -bs: " + l)
if not any(l[4:] == "PIPELINING" for l in ehlo):
    bad("no PIPELINING")

if scenario == "two":
    # As Symfony Mailer: one command at a time for the first message.
    send("MAIL FROM:<app@client.test>\r\n")
    expect("250 2.1.0")
    send("RCPT TO:<someone@remote.example>\r\n")
    expect("250 2.1.5")
    send("DATA\r\n")
    expect("354 ")
    send("From: <app@client.test>\r\nTo: <someone@remote.example>\r\n"
         "Subject: first\r\n\r\nhello one\r\n..dotted\r\n.\r\n")
    expect("250 2.0.0 Ok: queued as ")
    # The second message pipelined (RFC 2920).
    send("MAIL FROM:<app@client.test>\r\nRCPT TO:<root>\r\n"
         "RCPT TO:<other@remote.example>\r\nDATA\r\n")
    expect("250 2.1.0")
    expect("250 2.1.5")
    expect("250 2.1.5")
    expect("354 ")
    send("Subject: second\r\n\r\nhello two\r\n.\r\nQUIT\r\n")
    expect("250 2.0.0 Ok: queued as ")
    expect("221 2.0.0")
    finish(0)
elif scenario in ("smuggle", "smuggle-normalize"):
    send("MAIL FROM:<app@client.test>\r\nRCPT TO:<a@remote.example>\r\nDATA\r\n")
    expect("250 2.1.0")
    expect("250 2.1.5")
    expect("354 ")
    send("Subject: x\r\n\r\nhello\n.\r\nMAIL FROM:<evil@client.test>\r\n"
         "RCPT TO:<victim@remote.example>\r\nDATA\r\nsmuggled\r\n.\r\n")
    expect("554 5.6.0" if scenario == "smuggle" else "250 2.0.0 Ok: queued")
    send("NOOP\r\n")
    expect("250 2.0.0")
    send("QUIT\r\n")
    expect("221 ")
    finish(0)
elif scenario == "cut":
    send("MAIL FROM:<app@client.test>\r\nRCPT TO:<a@remote.example>\r\nDATA\r\n")
    expect("250 2.1.0")
    expect("250 2.1.5")
    expect("354 ")
    send("Subject: cut\r\n\r\nthe first line\r\n")
    time.sleep(0.2)
    finish(65)
else:
    bad("unknown scenario " + scenario)
    finish(0)
EOF

bs() {
	python3 "$T/bs.py" "$MXRELAY" "$CONF" "$1" > "$T/bs.out" 2>&1
	BRC=$?
}
bs_fail() { cat "$T/bs.out" >&2; fail "$*"; }

# 1. Two messages in one session, QUIT: exit 0, both in the spool.
bs two
[ "$BRC" = 0 ] || bs_fail "-bs session of two messages (a -bs that is not wired in sendmail.c fails here)"
[ "$(spool_count)" = 2 ] || bs_fail "want 2 messages in the spool, have $(spool_count)"
grep -q '<app@client.test> someone@remote.example$' "$T/list" ||
    fail "first envelope: $(cat "$T/list")"
grep -q '<app@client.test> root@relay.test,other@remote.example$' "$T/list" ||
    fail "second envelope: $(cat "$T/list")"
for id in $(cut -d' ' -f1 "$T/list"); do
	body_of "$id" > "$T/body"
	head -n 1 "$T/body" | grep -Eq "^Received: from (user [^ ]+ \(uid $ME\)|uid $ME).?$" ||
	    fail "$id: Received: does not name uid $ME: $(head -n 3 "$T/body")"
	grep -q "by relay.test (mxrelay) with ESMTP id $id" "$T/body" ||
	    fail "$id: Received: lacks 'by relay.test ... id $id'"
done
id=$(grep ' someone@remote.example$' "$T/list" | cut -d' ' -f1)
body_of "$id" | grep -q '^\.dotted' || fail "dot-stuffing not undone"
ok "-bs: two messages in one session (pipelined), remote recipients taken, Received: names the user"

# 2. Smuggling under bare_lf = reject: 554 5.6.0, the session stays in
# step, nothing queued.
rm -rf "$SPOOL"
NCONF=$CONF
CONF="$T/reject.conf"
{ cat "$NCONF"; echo "bare_lf = reject"; } > "$CONF"
bs smuggle
CONF=$NCONF
[ "$BRC" = 0 ] || bs_fail "-bs smuggling scenario"
grep -q '< 554 5.6.0 .*bare LF' "$T/bs.out" || bs_fail "no 554 5.6.0 for a bare LF"
[ "$(spool_count)" = 0 ] || fail "a smuggled message was queued: $(cat "$T/list")"
ok "-bs, bare_lf = reject: a bare-LF smuggling attempt gets 554 5.6.0 and nothing is queued"

# 2b. Under bare_lf = normalize (the default): one message, whose text
# holds the smuggled commands, with CRLF line ends.
bs smuggle-normalize
[ "$BRC" = 0 ] || bs_fail "-bs smuggling scenario under normalize"
[ "$(grep -c '< 250 2.0.0 Ok: queued' "$T/bs.out")" = 1 ] || bs_fail "not one 250 for the message"
[ "$(spool_count)" = 1 ] || fail "want one message, have: $(cat "$T/list")"
grep -q ' a@remote.example$' "$T/list" || fail "envelope: $(cat "$T/list")"
body_of "$(last_id)" > "$T/body"
[ "$(grep -c "$(printf '\r')\$" "$T/body")" = "$(tr -cd '\n' < "$T/body" | wc -c | tr -d ' ')" ] ||
    fail "a line without CRLF: $(od -c "$T/body" | tail -n 5)"
tr -d '\r' < "$T/body" | sed -n '/^hello$/,$p' | tr '\n' '|' > "$T/tail"
[ "$(cat "$T/tail")" = "hello||MAIL FROM:<evil@client.test>|RCPT TO:<victim@remote.example>|DATA|smuggled|" ] ||
    fail "stored text: $(cat "$T/tail")"
ok "-bs, bare_lf = normalize: the same attempt is one message, the smuggled commands its text, CRLF line ends"
rm -rf "$SPOOL"

# 3. The input ends inside DATA: nothing queued, exit 65 (EX_DATAERR).
bs cut
[ "$BRC" = 0 ] || bs_fail "-bs with an input cut inside DATA"
[ "$(spool_count)" = 0 ] || fail "a cut message was queued"
[ -z "$(ls "$SPOOL/tmp" 2> /dev/null)" ] || fail "left in tmp: $(ls "$SPOOL/tmp")"
ok "-bs: input cut inside DATA queues nothing and exits 65"

# 4. Not interactive: everything at once through a pipe, then EOF without
# QUIT; every command is answered; -v logs the user.
rm -rf "$SPOOL"
printf 'EHLO x\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<b@remote.example>\r\nDATA\r\nSubject: piped\r\n\r\nbody\r\n.\r\nNOOP\r\n' |
    "$MXRELAY" -C "$CONF" -v -bs > "$T/out" 2> "$T/err"
rc=$?
[ "$rc" = 0 ] || { cat "$T/out" "$T/err" >&2; fail "piped -bs: exit $rc"; }
grep -q '^250 2.0.0 Ok: queued as ' "$T/out" || { cat "$T/out" >&2; fail "piped -bs: no 250 for the message"; }
[ "$(tail -n 1 "$T/out")" = "$(printf '250 2.0.0 Ok\r')" ] ||
    { cat "$T/out" >&2; fail "piped -bs: the NOOP before the EOF was not answered"; }
[ "$(spool_count)" = 1 ] || fail "piped -bs: want 1 message"
grep -q "client=local, uid=$ME, user=" "$T/err" ||
    { cat "$T/err" >&2; fail "piped -bs: no log line with the uid"; }
ok "-bs: a pipelined session through a pipe, ended by EOF, all answered; the log names the uid"

# 5. Stdin and stdout regular files; stdin /dev/null.
printf 'HELO x\r\nMAIL FROM:<a@client.test>\r\nRCPT TO:<c@remote.example>\r\nDATA\r\nSubject: file\r\n\r\nbody\r\n.\r\nQUIT\r\n' > "$T/in"
"$MXRELAY" -C "$CONF" -bs < "$T/in" > "$T/out" 2> "$T/err"
rc=$?
[ "$rc" = 0 ] || { cat "$T/out" "$T/err" >&2; fail "-bs from a file: exit $rc"; }
grep -q '^221 2.0.0' "$T/out" || { cat "$T/out" >&2; fail "-bs from a file: no 221"; }
[ "$(spool_count)" = 2 ] || fail "-bs from a file: want 2 messages in all"
"$MXRELAY" -C "$CONF" -bs < /dev/null > "$T/out" 2> "$T/err"
rc=$?
[ "$rc" = 0 ] || { cat "$T/out" "$T/err" >&2; fail "-bs < /dev/null: exit $rc"; }
grep -q '^220 relay.test ESMTP' "$T/out" || fail "-bs < /dev/null: no greeting"
ok "-bs: stdin and stdout regular files, stdin /dev/null"
