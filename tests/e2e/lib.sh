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

# The spool's files, for the tests that look at them or plant things in
# them (queue/spool.c describes the layout).  A message is msg/ID (body,
# envelope, then a 64-byte trailer "mxrelay-msg 1 B E" giving their
# lengths), with msg/ID.env once its envelope was updated; or, as an
# earlier version queued it (version 1 layout), env/ID and data/ID.

# spool_ids: the ids of the messages that the spool's files hold, sorted.
spool_ids() {
	for d in msg env; do
		[ -d "$SPOOL/$d" ] && ls "$SPOOL/$d"
	done | grep -xE '[0-9a-f]{20}' | sort
}

# env_of ID: the envelope text of message ID as it stands: msg/ID.env,
# else the one inside msg/ID (found through the trailer, which must match
# the file's size), else env/ID.  Fails (exit status 1) without one.
env_of() {
	if [ -f "$SPOOL/msg/$1.env" ]; then
		cat "$SPOOL/msg/$1.env"
	elif [ -f "$SPOOL/msg/$1" ]; then
		# shellcheck disable=SC2046
		set -- "$1" $(tail -c 64 "$SPOOL/msg/$1" | awk 'NR == 1 &&
		    length($0) == 63 && $1 == "mxrelay-msg" && $2 == "1" &&
		    NF == 4 && length($3) == 20 && $3 !~ /[^0-9]/ &&
		    length($4) == 20 && $4 !~ /[^0-9]/ {
			printf "%.0f %.0f\n", $3, $4 }')
		[ $# = 3 ] && [ "$(stat -c %s "$SPOOL/msg/$1")" = $(($2 + $3 + 64)) ] ||
		    { echo "env_of: msg/$1: no valid trailer" >&2; return 1; }
		tail -c +$(($2 + 1)) "$SPOOL/msg/$1" | head -c "$3"
	elif [ -f "$SPOOL/env/$1" ]; then
		cat "$SPOOL/env/$1"
	else
		echo "env_of: no message $1" >&2
		return 1
	fi
}

# env_put ID FILE: FILE becomes the envelope of message ID, put in place
# as the spool does it: written to tmp/ID.upd with the owner and mode
# (0600) of the spool's files, then renamed over msg/ID.env, or over env/ID
# for a message of the version 1 layout.
env_put() {
	if [ -f "$SPOOL/msg/$1" ]; then
		set -- "$1" "$2" "msg/$1.env"
	elif [ -f "$SPOOL/env/$1" ]; then
		set -- "$1" "$2" "env/$1"
	else
		fail "env_put: no message $1"
	fi
	cp "$2" "$SPOOL/tmp/$1.upd" &&
	    chown "$(stat -c %u:%g "$SPOOL/tmp")" "$SPOOL/tmp/$1.upd" &&
	    chmod 600 "$SPOOL/tmp/$1.upd" &&
	    mv -f "$SPOOL/tmp/$1.upd" "$SPOOL/$3" ||
	    fail "env_put: cannot replace $3"
}

# msg_rm ID: remove message ID's files, whatever its layout.
msg_rm() {
	rm -f "$SPOOL/msg/$1" "$SPOOL/msg/$1.env" "$SPOOL/env/$1" \
	    "$SPOOL/data/$1" || fail "msg_rm: cannot remove $1"
}

# to_v1 ID: make message ID one of the version 1 layout, as an earlier
# version queued it: data/ID (the body) and env/ID (its envelope), with
# the owner and mode (0600) of the spool's files, then msg/ID removed.
to_v1() {
	env_of "$1" > "$T/to_v1.env" && body_of "$1" > "$T/to_v1.data" ||
	    fail "to_v1: cannot read message $1"
	for f in data env; do
		cp "$T/to_v1.$f" "$SPOOL/tmp/$1.$f" &&
		    chown "$(stat -c %u:%g "$SPOOL/tmp")" "$SPOOL/tmp/$1.$f" &&
		    chmod 600 "$SPOOL/tmp/$1.$f" ||
		    fail "to_v1: cannot write tmp/$1.$f"
	done
	mv "$SPOOL/tmp/$1.data" "$SPOOL/data/$1" &&
	    mv "$SPOOL/tmp/$1.env" "$SPOOL/env/$1" &&
	    rm -f "$SPOOL/msg/$1" "$SPOOL/msg/$1.env" || fail "to_v1: cannot move $1"
	[ ! -e "$SPOOL/msg/$1" ] && [ -f "$SPOOL/env/$1" ] && [ -f "$SPOOL/data/$1" ] ||
	    fail "to_v1: $1 is not a version 1 message"
}
