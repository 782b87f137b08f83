#!/bin/sh
# End to end: mxrelay dkim-keygen (mxrelay(8) COMMANDS).  It writes a new
# key, never over a file or through a symbolic link, with the modes and
# owners of mxrelay(8); it prints the dkim_key line and a TXT record whose
# strings are at most 255 octets, and that record's p= pairs with the key
# written: dkimpy signs a message with the key file and verifies it with
# that TXT record (and fails with a changed body).  --bits bounds and the
# usage errors exit 64.  As root with setpriv and useradd (tests/e2e/
# privs.sh), in a private mount namespace: the default folder
# (/etc/mxrelay/dkim) is made 0750 root:mxrelay, the key 0640 root:mxrelay
# and readable by the daemon's user; another user's key is 0600 and its
# own, and that user cannot write in the default folder.
. "${top_srcdir:-.}/tests/e2e/privs.sh"
# The system's python3, with dkimpy (python3-dkim).
PY=/usr/bin/python3
$PY -c 'import dkim' 2> /dev/null || { echo "# python3-dkim missing"; exit 77; }
. "${top_srcdir:-.}/tests/e2e/lib.sh"

write_conf

# check.py KEY TXTFILE: the TXT record on the second line of TXTFILE is
# well-formed zone-file text and pairs with KEY (PEM: RSA, or Ed25519).
cat > "$T/check.py" << 'EOF'
import base64, re, sys, dkim
key_path, out_path = sys.argv[1], sys.argv[2]
lines = open(out_path).read().splitlines()
assert len(lines) == 2, lines
m = re.fullmatch(r'(\S+)\._domainkey\.(\S+)\. IN TXT \( ((?:"[^"]*" )+)\)',
    lines[1])
assert m, lines[1]
sel, dom = m.group(1), m.group(2)
strings = re.findall(r'"([^"]*)"', m.group(3))
assert all(0 < len(s) <= 255 for s in strings), [len(s) for s in strings]
txt = "".join(strings)
assert re.fullmatch(r'v=DKIM1; k=(rsa|ed25519); p=[A-Za-z0-9+/=]+', txt), txt
ed = "k=ed25519" in txt
pem = open(key_path, "rb").read()
if ed:
    # dkimpy takes the 32-octet seed: the end of the PKCS#8 DER.
    der = base64.b64decode(b"".join(l for l in pem.splitlines()
        if not l.startswith(b"-----")))
    priv = base64.b64encode(der[-32:])
    alg = b"ed25519-sha256"
else:
    priv = pem
    alg = b"rsa-sha256"
msg = (b"From: a@" + dom.encode() + b"\r\nTo: b@x.test\r\nSubject: t\r\n"
    b"\r\nbody\r\n")
sig = dkim.sign(msg, sel.encode(), dom.encode(), priv,
    signature_algorithm=alg, include_headers=[b"from", b"to", b"subject"])
def dnsfunc(name, timeout=5):
    return txt.encode()
assert dkim.verify(sig + msg, dnsfunc=dnsfunc), "does not verify"
assert not dkim.verify(sig + msg + b"x", dnsfunc=dnsfunc), "changed body verifies"
print("k=ed25519" if ed else "k=rsa", len(base64.b64decode(txt.split("p=")[1])))
EOF

# keygen OUT ARGS...: mxrelay dkim-keygen, stdout to OUT; exit status in RC.
keygen() {
	out=$1
	shift
	"$MXRELAY" dkim-keygen -C "$CONF" "$@" > "$out" 2> "$T/err"
	RC=$?
}

# mode_owner PATH: "MODE USER GROUP".
mode_owner() {
	stat -c '%a %U %G' "$1"
}

# The mode and owner this user's key gets (mxrelay(8)): root, 0640 with
# the group of the configuration; others, 0600 and their own.
if [ "$(id -u)" = 0 ]; then
	write_conf "group = $(id -gn)"
	WANT="640 root $(id -gn)"
else
	WANT="600 $(id -un) $(id -gn)"
fi

# 1. An RSA key (2048 bits by default).
keygen "$T/o1" -o "$T/k1.key" example.com sel1
[ "$RC" = 0 ] || { cat "$T/err" >&2; fail "dkim-keygen: exit $RC"; }
[ "$(mode_owner "$T/k1.key")" = "$WANT" ] ||
    fail "key file: $(mode_owner "$T/k1.key"), want $WANT"
head -n 1 "$T/o1" | grep -qx "dkim_key = example.com sel1 $T/k1.key" ||
    { cat "$T/o1" >&2; fail "no dkim_key line"; }
grep -q "BEGIN PRIVATE KEY" "$T/k1.key" || fail "not PKCS#8 PEM"
r=$($PY "$T/check.py" "$T/k1.key" "$T/o1") || fail "TXT record and key: $r"
[ "$r" = "k=rsa 294" ] || fail "RSA key: $r, want 2048 bits (294-octet p=)"
ok "RSA 2048: key $WANT, dkim_key line, TXT record that verifies a dkimpy signature"

# 2. Ed25519.
keygen "$T/o2" --ed25519 -o "$T/k2.key" example.org ed
[ "$RC" = 0 ] || { cat "$T/err" >&2; fail "dkim-keygen --ed25519: exit $RC"; }
[ "$(mode_owner "$T/k2.key")" = "$WANT" ] || fail "key file: $(mode_owner "$T/k2.key")"
r=$($PY "$T/check.py" "$T/k2.key" "$T/o2") || fail "TXT record and key: $r"
[ "$r" = "k=ed25519 32" ] || fail "Ed25519 key: $r"
ok "Ed25519: TXT record k=ed25519 with the 32-octet key, verifies"

# 3. Never over an existing file.
sum=$(cksum < "$T/k1.key")
keygen "$T/o3" -o "$T/k1.key" example.com sel1
[ "$RC" = 73 ] || fail "existing file: exit $RC, want 73"
grep -q "exists; not overwritten" "$T/err" || { cat "$T/err" >&2; fail "no reason"; }
[ "$(cksum < "$T/k1.key")" = "$sum" ] || fail "the existing key changed"
[ ! -s "$T/o3" ] || fail "something printed on stdout"
ok "an existing file: exit 73, left as it was"

# 4. Never through a symbolic link, dangling or not.
ln -s "$T/target" "$T/link.key"
keygen "$T/o4" -o "$T/link.key" example.com sel1
[ "$RC" = 73 ] || fail "symbolic link: exit $RC, want 73"
grep -q "a symbolic link" "$T/err" || { cat "$T/err" >&2; fail "no reason"; }
[ ! -e "$T/target" ] || fail "the link's target was made"
: > "$T/target"
keygen "$T/o4" -o "$T/link.key" example.com sel1
[ "$RC" = 73 ] && [ ! -s "$T/target" ] || fail "link to a file: exit $RC, or written"
ok "a symbolic link at PATH: exit 73, its target untouched"

# 5. --bits: 1024 and 4096 are the bounds.
keygen "$T/o5" --bits 1024 -o "$T/k5.key" example.com small
[ "$RC" = 0 ] || { cat "$T/err" >&2; fail "--bits 1024: exit $RC"; }
r=$($PY "$T/check.py" "$T/k5.key" "$T/o5") || fail "1024: $r"
[ "$r" = "k=rsa 162" ] || fail "--bits 1024: $r"
keygen "$T/o6" --bits 4096 -o "$T/k6.key" example.com big
[ "$RC" = 0 ] || { cat "$T/err" >&2; fail "--bits 4096: exit $RC"; }
r=$($PY "$T/check.py" "$T/k6.key" "$T/o6") || fail "4096: $r"
[ "$r" = "k=rsa 550" ] || fail "--bits 4096: $r"
ok "--bits 1024 and 4096: keys of that size, TXT strings of at most 255 octets"

# 6. Usage errors: exit 64, no file.
for args in "--bits 1023 example.com s" "--bits 4097 example.com s" \
    "--bits 2048x example.com s" "--ed25519 --bits 2048 example.com s" \
    "example.com" "example.com s extra" "exa_mple.com s" "-bad.com s" \
    "example.com. s" "localhost s" "example.com se_l" "example.com -s" \
    "--nosuch example.com s" "-o example.com s"; do
	# shellcheck disable=SC2086
	keygen "$T/o7" -o "$T/k7.key" $args
	[ "$RC" = 64 ] || fail "dkim-keygen $args: exit $RC, want 64"
	[ ! -e "$T/k7.key" ] || fail "dkim-keygen $args: a key was written"
done
"$MXRELAY" dkim-keygen --help | grep -q "usage: mxrelay dkim-keygen" ||
    fail "--help"
"$MXRELAY" --help | grep -q "mxrelay dkim-keygen" || fail "not in mxrelay --help"
ok "usage errors (bits out of range, names, arguments): exit 64, nothing written"

# 7. The mode does not depend on the umask; a relative PATH is made absolute.
(cd "$T" && umask 0 && "$MXRELAY" dkim-keygen -C "$CONF" --ed25519 -o rel.key \
    example.com rel > "$T/o8" 2> "$T/err") || fail "relative -o"
[ "$(mode_owner "$T/rel.key")" = "$WANT" ] || fail "umask 0: $(mode_owner "$T/rel.key")"
head -n 1 "$T/o8" | grep -qx "dkim_key = example.com rel $T/rel.key" ||
    fail "relative path: $(head -n 1 "$T/o8")"
ok "umask 0: still $WANT; a relative -o printed as an absolute path"

if [ "$PRIVS" != yes ]; then
	ok "# SKIP the default folder and other users (needs root, setpriv, useradd)"
	exit 0
fi

# 8. Root, default path: the folder and the key for the daemon's group.
# The default folder is SYSCONFDIR/mxrelay/dkim (/etc/mxrelay/dkim when
# the configuration is /etc/mxrelay.conf).
privs_setup
KD="$SYSCONFDIR/mxrelay/dkim"
write_conf "user = mxrelay" "group = mxrelay"
chmod 644 "$CONF"
rm -rf "$KD"
[ "$PRIVS_CHROOT" = yes ] && [ ! -d "$SYSCONFDIR/mxrelay" ] &&
    trap 'rm -rf "$SYSCONFDIR/mxrelay"; cleanup; privs_undo' EXIT
keygen "$T/o9" example.net d1
[ "$RC" = 0 ] || { cat "$T/err" >&2; fail "default path: exit $RC"; }
K="$KD/example.net.d1.key"
[ "$(mode_owner "$KD")" = "750 root mxrelay" ] ||
    fail "folder: $(mode_owner "$KD")"
[ "$(mode_owner "$K")" = "640 root mxrelay" ] || fail "key: $(mode_owner "$K")"
head -n 1 "$T/o9" | grep -qx "dkim_key = example.net d1 $K" || fail "$(cat "$T/o9")"
as mxrelay cat "$K" > /dev/null || fail "the daemon's user cannot read the key"
as mxother cat "$K" > /dev/null 2>&1 && fail "another user reads the key"
r=$($PY "$T/check.py" "$K" "$T/o9") || fail "TXT record and key: $r"
ok "root: $KD 0750 root:mxrelay, key 0640 root:mxrelay, the daemon reads it"

# 9. Another user: its own 0600 key; not in the default folder.
mkdir "$T/other" && chown mxother "$T/other"
as mxother "$MXRELAY" dkim-keygen -C "$CONF" --ed25519 -o "$T/other/k.key" \
    example.net d2 > "$T/o10" 2> "$T/err" || { cat "$T/err" >&2; fail "as mxother"; }
[ "$(mode_owner "$T/other/k.key")" = "600 mxother mxother" ] ||
    fail "mxother's key: $(mode_owner "$T/other/k.key")"
as mxother "$MXRELAY" dkim-keygen -C "$CONF" example.net d3 > /dev/null 2> "$T/err"
RC=$?
[ "$RC" = 73 ] || fail "mxother, default folder: exit $RC, want 73"
[ ! -e "$KD/example.net.d3.key" ] || fail "mxother wrote in the default folder"
ok "another user: its own key 0600; the default folder refuses it (exit 73)"
