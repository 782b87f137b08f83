# Shared helpers for the end-to-end tests.  Sourced; expects top_builddir
# and top_srcdir in the environment (tests/local.mk sets them).
set -u
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
MXRELAY="$top_builddir/src/mxrelay"
SPOOLCHECK="$top_builddir/tests/e2e/spoolcheck"
T=$(mktemp -d "${TMPDIR:-/tmp}/mxrelay-e2e.XXXXXX")
# Root works in a spool as the spool's owner, who must reach it.
chmod 755 "$T"
SPOOL="$T/spool"
CONF="$T/mxrelay.conf"
MOUNTS=""
NOK=0

cleanup() {
	for m in $MOUNTS; do umount "$m" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

ok() {
	NOK=$((NOK + 1))
	echo "ok $NOK - $*"
}

# write_conf [extra lines...]: a config with a spool under $T.  Unless
# the lines name a user, it is root: whether this host has a user mxrelay
# (the default, which root's runs would make the spool's owner) must not
# change what a test sees.
write_conf() {
	user="user = root"
	for l in "$@"; do
		case $l in user[\ =]*) user="";; esac
	done
	{
		echo "# written by $0"
		echo "hostname = relay.test"
		echo "spool_dir = $SPOOL"
		echo "runtime_dir = $T/run"
		[ -n "$user" ] && echo "$user"
		for l in "$@"; do echo "$l"; done
	} > "$CONF"
}

# mx ARGS...: run mxrelay with the test config; stdin passes through.
mx() {
	"$MXRELAY" -C "$CONF" "$@"
}

# expect_rc WANT DESCRIPTION CMD...: run CMD, stderr to $T/err.
expect_rc() {
	want=$1 what=$2
	shift 2
	"$@" 2> "$T/err"
	got=$?
	[ "$got" = "$want" ] || { cat "$T/err" >&2; fail "$what: exit $got, want $want"; }
}

# expect_err SUBSTRING: the last expect_rc's stderr says this.
expect_err() {
	grep -qF -- "$1" "$T/err" || { cat "$T/err" >&2; fail "stderr lacks '$1'"; }
}

# Number of messages in $SPOOL (and every body matches its envelope).
spool_count() {
	"$SPOOLCHECK" "$SPOOL" > "$T/list" || fail "spoolcheck found a damaged message"
	wc -l < "$T/list" | tr -d ' '
}

# The id of the newest message.
last_id() {
	"$SPOOLCHECK" "$SPOOL" | tail -n 1 | cut -d' ' -f1
}

body_of() {
	"$SPOOLCHECK" "$SPOOL" "$1"
}
