#!/bin/sh
# End to end: bad input gets its own clear error and exit code (sysexits),
# and nothing already queued is harmed.
. "${top_srcdir:-.}/tests/e2e/lib.sh"

write_conf
printf 'Subject: keep\n\nthe first message\n' | mx keep@example.org || fail "first message"
keep=$(last_id)
body_of "$keep" > "$T/keep.body"

# The queued message is intact and no other message appeared.
expect_n=1
intact() {
	[ "$(spool_count)" = "$expect_n" ] || fail "$1: spool has $(cat "$T/list" | wc -l) messages"
	body_of "$keep" | cmp -s - "$T/keep.body" || fail "$1: queued message changed"
}

expect_rc 65 "no recipients" mx < "$T/keep.body"
expect_err "no recipients"
intact "no recipients"
printf 'Subject: x\n\ny\n' > "$T/norcpt"
expect_rc 65 "-t without To/Cc/Bcc" mx -t < "$T/norcpt"
expect_err "no recipients"
printf 'To: undisclosed-recipients:;\nSubject: x\n\ny\n' > "$T/group"
expect_rc 65 "-t with an empty group only" mx -t < "$T/group"
intact "-t without recipients"
ok "no recipients: EX_DATAERR (65), nothing queued"

expect_rc 65 "malformed argument" mx 'bob@@example.org' < "$T/keep.body"
expect_err "bad recipient address"
expect_rc 65 "unbalanced angle" mx '<bob@example.org' < "$T/keep.body"
printf 'To: Bob <bob@example.org\nSubject: x\n\ny\n' > "$T/badto"
expect_rc 65 "malformed To" mx -t < "$T/badto"
expect_rc 65 "malformed sender" mx -f 'a@b@c' ok@example.org < "$T/keep.body"
expect_err "bad sender address"
expect_rc 65 "control character" mx "$(printf 'a\001b@example.org')" < "$T/keep.body"
intact "malformed address"
ok "malformed addresses: EX_DATAERR (65), nothing queued"

# At most 100,000 different recipients per message (mxrelay(8)): one more
# is an error, not a silent cut; duplicates (in any case) do not count.
# Local names, qualified by mxrelay, keep the argument list short.
# shellcheck disable=SC2046
expect_rc 65 "100,001 recipients" mx $(seq -f 'u%.0f' 1 100001) < "$T/keep.body"
expect_err "too many recipients: at most 100000 per message"
intact "100,001 recipients"
# shellcheck disable=SC2046
expect_rc 0 "100,000 recipients and duplicates" \
    mx $(seq -f 'u%.0f' 1 100000) U1 u100000 < "$T/keep.body"
expect_n=2
intact "100,000 recipients"
big=$(last_id)
n=$(env_of "$big" | grep -c '^rcpt ')
[ "$n" = 100000 ] || fail "100,000 recipients: the envelope has $n"
msg_rm "$big"
expect_n=1
ok "100,001 recipients: EX_DATAERR (65); 100,000 and duplicates queued"

# A 2 GB message against the default 35M limit: refused early, without
# reading it all and without filling the disk.
write_conf
start=$(date +%s)
head -c 2G /dev/zero | mx big@example.org 2> "$T/err"
rc=$?
[ "$rc" = 65 ] || { cat "$T/err"; fail "2 GB message: exit $rc"; }
expect_err "larger than max_message_size (35M bytes)"
intact "2 GB message"
[ $(( $(date +%s) - start )) -lt 60 ] || fail "2 GB message took over a minute to refuse"
write_conf "max_message_size = 2K"
head -c 3000 /dev/zero | tr '\0' 'a' | fold -w 70 > "$T/3k"
expect_rc 65 "over max_message_size" mx big@example.org < "$T/3k"
intact "3 KB message over 2K"
head -c 1000 /dev/zero | tr '\0' 'a' | fold -w 70 > "$T/1k"
expect_rc 0 "under max_message_size" mx small@example.org < "$T/1k"
expect_n=2
intact "1 KB message under 2K"
write_conf
ok "oversized messages: EX_DATAERR (65), nothing queued"

# Config errors name file:line:key; exit EX_CONFIG (78).
printf 'hostname = relay.test\nspool_dir = %s\nretry_mn = 5m\n' "$SPOOL" > "$T/typo.conf"
expect_rc 78 "config typo" "$MXRELAY" -C "$T/typo.conf" x@example.org < "$T/keep.body"
expect_err "$T/typo.conf:3: retry_mn"
printf 'spool_dir = %s\nretry_min = 5x\n' "$SPOOL" > "$T/bad.conf"
expect_rc 78 "bad value" "$MXRELAY" -C "$T/bad.conf" x@example.org < "$T/keep.body"
expect_err "$T/bad.conf:2: retry_min"
expect_rc 78 "missing -C file" "$MXRELAY" -C "$T/nonexistent.conf" x@example.org < "$T/keep.body"
MXRELAY_CONFIG="$T/typo.conf" expect_rc 78 "MXRELAY_CONFIG" "$MXRELAY" x@example.org < "$T/keep.body"
intact "config errors"
ok "config errors: EX_CONFIG (78) naming file:line:key"

expect_rc 64 "unknown flag" mx -bz x@example.org < "$T/keep.body"
expect_rc 64 "bad -q argument" mx -qzz
intact "usage errors"
ok "usage errors: EX_USAGE (64)"

# An unwritable spool: EX_CANTCREAT (73).
: > "$T/file"
printf 'hostname = relay.test\nspool_dir = %s/file/spool\n' "$T" > "$T/notdir.conf"
expect_rc 73 "spool under a file" "$MXRELAY" -C "$T/notdir.conf" x@example.org < "$T/keep.body"
expect_err "not writable"
if [ "$(id -u)" = 0 ]; then
	# root ignores permissions: use a read-only file system.
	mkdir "$T/ro" && mount -t tmpfs -o ro,size=64k tmpfs "$T/ro" 2>/dev/null && MOUNTS="$MOUNTS $T/ro"
	if [ -n "$MOUNTS" ]; then
		printf 'hostname = relay.test\nspool_dir = %s/ro/spool\n' "$T" > "$T/ro.conf"
		expect_rc 73 "read-only spool" "$MXRELAY" -C "$T/ro.conf" x@example.org < "$T/keep.body"
		expect_err "not writable"
	fi
else
	mkdir -p "$T/locked/spool" && chmod 500 "$T/locked/spool"
	printf 'hostname = relay.test\nspool_dir = %s/locked/spool\n' "$T" > "$T/ro.conf"
	expect_rc 73 "permission denied" "$MXRELAY" -C "$T/ro.conf" x@example.org < "$T/keep.body"
fi
intact "unwritable spool"
ok "unwritable spool: EX_CANTCREAT (73)"

# A full disk: a small tmpfs.  EX_TEMPFAIL (75), the queued message intact.
if [ "$(id -u)" = 0 ] && mkdir "$T/full" && mount -t tmpfs -o size=256k tmpfs "$T/full" 2>/dev/null; then
	MOUNTS="$MOUNTS $T/full"
	SPOOL="$T/full/spool"
	expect_n=1
	write_conf
	printf 'Subject: keep\n\nthe first message\n' | mx keep@example.org || fail "first message on tmpfs"
	keep=$(last_id)
	body_of "$keep" > "$T/keep.body"
	before=$(find "$T/full" | sort)
	head -c 600000 /dev/zero | tr '\0' 'z' | fold -w 76 > "$T/600k"
	expect_rc 75 "disk full" mx big@example.org < "$T/600k"
	expect_err "try again later"
	intact "disk full"
	[ "$(find "$T/full" | sort)" = "$before" ] || fail "disk full left files behind"
	# Once there is room again, mail goes through.
	expect_rc 0 "after disk full" mx ok@example.org < "$T/keep.body"
	ok "full disk: EX_TEMPFAIL (75), nothing harmed, nothing left behind"
else
	echo "# skipped the full-disk test: needs root to mount a tmpfs"
fi
echo "1..$NOK"
