#!/bin/sh
# End to end: messages queued by mxrelay (sendmail interface) and listed
# by mailq.
. "${top_srcdir:-.}/tests/e2e/lib.sh"

# The spool and its missing parents are made on first use.
SPOOL="$T/var/spool/mxrelay"
write_conf
# -t: recipients from To/Cc/Bcc with display names, quoted local parts,
# groups, comments and folding; Bcc removed from the stored message.
printf 'From: Alice <alice@example.org>\nTo: Bob <bob@example.org>, "J. Doe" <"john doe"@example.org>\nTo: undisclosed-recipients:;\nCc: carol@example.org (Carol),\n  team: dan@example.net, erin@example.net;\nBcc: secret@example.com\nSubject: t\n\nhi\n.x\n' > "$T/m1"
expect_rc 0 "-t submission" mx -t < "$T/m1"
[ "$(spool_count)" = 1 ] || fail "want 1 message"
id=$(last_id)
line=$(cat "$T/list")
for r in bob@example.org '"john doe"@example.org' carol@example.org dan@example.net erin@example.net secret@example.com; do
	echo "$line" | grep -qF "$r" || fail "recipient $r missing: $line"
done
body_of "$id" > "$T/b1"
grep -qi '^Bcc:' "$T/b1" && fail "Bcc kept in the stored message"
grep -q "^Message-ID: <$id@relay.test>" "$T/b1" || fail "no Message-ID"
grep -q '^Date: ' "$T/b1" || fail "no Date"
grep -q '^From: Alice <alice@example.org>' "$T/b1" || fail "From changed"
[ "$(grep -c '^From:' "$T/b1")" = 1 ] || fail "From added although present"
# Every line ends with CRLF, and the body is there unstuffed.
[ "$(tr -cd '\n' < "$T/b1" | wc -c)" = "$(tr -cd '\r' < "$T/b1" | wc -c)" ] || fail "not CRLF"
grep -q "^\.x" "$T/b1" || fail "body line .x lost"
ok "-t: recipients from To/Cc/Bcc, Bcc removed, Date/Message-ID added"

# mailq (argv[0]) and -bp list it with sender and recipients.
ln -sf "$MXRELAY" "$T/mailq"
"$T/mailq" -C "$CONF" > "$T/q" || fail "mailq failed"
grep -q "^$id " "$T/q" || fail "mailq lacks $id"
grep -q "bob@example.org (pending, 0 attempts)" "$T/q" || fail "mailq lacks recipient state"
grep -q "1 Request" "$T/q" || fail "mailq summary"
mx -bp > "$T/q2" || fail "-bp failed"
cmp -s "$T/q" "$T/q2" || fail "-bp and mailq differ"
ok "mailq and -bp list the message"

# Recipients on the command line, unqualified ones get the qualify domain;
# a missing From is added from the envelope sender and -F.
printf 'Subject: plain\n\nbody\n' | mx -f sender@example.org -F 'Cron Daemon' root "x@example.com, Y <y@example.com>" 2> "$T/err" || fail "args submission"
id=$(last_id)
spool_count > /dev/null
grep "^$id " "$T/list" | grep -qF '<sender@example.org> root@relay.test,x@example.com,y@example.com' || fail "envelope: $(cat "$T/list")"
body_of "$id" | grep -q '^From: Cron Daemon <sender@example.org>' || fail "From not added"
ok "argument recipients qualified, From added with -F"

# A lone dot ends the message; -i and -oi keep it.
printf 'Subject: dot\n\nbefore\n.\nafter\n' | mx root || fail "dot submission"
body_of "$(last_id)" > "$T/b"
grep -q before "$T/b" && ! grep -q after "$T/b" || fail "lone dot did not end the message"
printf 'Subject: dot\n\nbefore\n.\nafter\n' | mx -oi root || fail "-oi submission"
body_of "$(last_id)" | grep -q after || fail "-oi: lone dot ended the message"
printf 'Subject: dot\n\nbefore\n.\nafter\n' | mx -i root || fail "-i submission"
body_of "$(last_id)" | grep -q after || fail "-i: lone dot ended the message"
ok "lone dot ends input unless -i/-oi"

# Null sender and an aliases file.
printf 'root: admin@example.com, ops\nops: ops@example.net\n' > "$T/aliases"
write_conf "aliases = $T/aliases"
printf 'Subject: a\n\nb\n' | mx -f '<>' root || fail "aliases submission"
spool_count > /dev/null
grep "^$(last_id) " "$T/list" | grep -qF '<> admin@example.com,ops@example.net' || fail "aliases: $(tail -n1 "$T/list")"
ok "aliases rewrite local names; -f '<>' is the null sender"

# Entries with targets mxrelay does not deliver to are loaded: mail to
# other names goes (and says nothing on stderr: cron would mail it), mail
# to them fails with the reason, newaliases warns and succeeds.  A syntax
# error still refuses the whole file.
printf 'root: admin@example.com, ops\nops: ops@example.net\ndevnull: /dev/null\nprog: "|/bin/cat"\nboth: ops, prog\n' > "$T/aliases"
n=$(spool_count)
printf 'Subject: a\n\nb\n' | expect_rc 0 "mail to root beside unsupported entries" mx root
[ -s "$T/err" ] && { cat "$T/err" >&2; fail "submission wrote to stderr"; }
[ "$(spool_count)" = $((n + 1)) ] || fail "mail to root not queued"
grep "^$(last_id) " "$T/list" | grep -qF ' admin@example.com,ops@example.net' || fail "aliases: $(tail -n1 "$T/list")"
printf 'Subject: a\n\nb\n' | expect_rc 65 "mail to devnull" mx devnull
expect_err "recipient devnull: $T/aliases:3: devnull: /dev/null: file targets are not supported"
printf 'Subject: a\n\nb\n' | expect_rc 65 "mail to both" mx both
expect_err "recipient both: $T/aliases:4: prog: \"|/bin/cat\": quoted targets are not supported"
[ "$(spool_count)" = $((n + 1)) ] || fail "mail to devnull or both queued"
ln -sf "$MXRELAY" "$T/newaliases"
expect_rc 0 newaliases "$T/newaliases" -C "$CONF"
expect_err "$T/aliases:3: devnull: /dev/null: file targets are not supported"
expect_err "$T/aliases:4: prog: \"|/bin/cat\": quoted targets are not supported"
expect_rc 0 "-bi" mx -bi
expect_err "$T/aliases:3: devnull: /dev/null"
printf 'bad name: x@example.com\n' >> "$T/aliases"
expect_rc 78 "newaliases with a syntax error" mx -bi
expect_err "$T/aliases:6: \"bad name\": not a valid alias name"
printf 'Subject: a\n\nb\n' | expect_rc 78 "mail with a syntax error in aliases" mx root
printf 'root: admin@example.com, ops\nops: ops@example.net\n' > "$T/aliases"
ok "aliases: unsupported targets fail only the mail that reaches them; newaliases warns"

# sendmail compatibility flags are accepted.
printf 'Subject: c\n\nd\n' | mx -odi -oem -B8BITMIME -N never -v root 2> "$T/err" || fail "compat flags"
grep -q "queued" "$T/err" || fail "-v does not say queued"
ok "-odi -oem -B -N accepted, -v reports the queue id"

# --help and --version; -q with a bad queue id is a usage error.
"$MXRELAY" --help | grep -q -- '-bp' || fail "--help"
"$MXRELAY" --version | grep -q '^mxrelay ' || fail "--version"
expect_rc 64 "-q with a bad id" mx -qInot-an-id
expect_err "not a queue id"
ok "--help, --version, -qI checks the id"
n=$(spool_count)
[ "$n" = 8 ] || fail "want 8 messages, have $n"
echo "1..$NOK"
