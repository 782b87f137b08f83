#!/bin/sh
# Benchmark of serial submissions through the sendmail interface (issue 9):
# N messages (default 2000) queued one after the other by `sendmail -t`,
# as root (straight into the spool, as the spool's owner) and as www-data
# (through the set-group-ID drop folder), printing messages per second for
# each and the ratio.  Root only: it runs in the private mount namespace of
# tests/e2e/privs.sh (users, group and configuration never reach the host).
#
#   sh tests/bench/bench_submit.sh [BUILDDIR] [N]
#
# The spool is under $TMPDIR (default /tmp); its file system is printed.
# DKIM=off|rsa|ed25519 (default off): with rsa or ed25519, root's
# submissions are signed as they are queued (dkim_key = example.org bench
# KEY, the message's From: domain, with a key made for the run by openssl
# genpkey: RSA 2048 or Ed25519, owned by the spool's owner); www-data's
# are signed later, at pickup from the drop folder, which is not timed
# here.  The run looks for the signature's a= tag in the spool's files
# (a warning when it is not there).  Compare root's rate under DKIM=off,
# rsa and ed25519.
set -eu
B=$(cd "${1:-.}" && pwd)
N=${2:-2000}
DKIM=${DKIM:-off}
case $DKIM in
off|rsa|ed25519) ;;
*) echo "bench_submit: DKIM=$DKIM: off, rsa or ed25519" >&2; exit 2;;
esac
top_builddir=$B
top_srcdir=$(cd "$(dirname "$0")/../.." && pwd)
export top_builddir top_srcdir
set +eu
. "$top_srcdir/tests/e2e/privs.sh" "$@"
privs_require
. "$top_srcdir/tests/e2e/lib.sh"
privs_setup
dkim=""
if [ "$DKIM" != off ]; then
	case $DKIM in
	rsa) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/dkim.key" 2> /dev/null;;
	ed25519) openssl genpkey -algorithm ED25519 -out "$T/dkim.key" 2> /dev/null;;
	esac || fail "openssl genpkey failed"
	chown mxrelay "$T/dkim.key" && chmod 600 "$T/dkim.key"
	dkim="dkim_key = example.org bench $T/dkim.key"
fi
write_conf "user = mxrelay" ${dkim:+"$dkim"}
cp "$CONF" "$SYSCONF" && chmod 644 "$SYSCONF"
"$B/src/mxrelayd" -i || fail "mxrelayd -i"
printf 'From: bench@example.org\nTo: r@example.net\nSubject: bench\n\n%s\n' \
    "$(head -c 3000 /dev/zero | tr '\0' x | fold -w 72)" > "$T/msg"

# run [as USER]: N serial submissions by one shell of that user (so that
# setpriv runs once, not per message), prints the rate.
chmod 644 "$T/msg"
run() {
	start=$(date +%s.%N)
	"$@" sh -c 'i=0; while [ $i -lt "$1" ]; do "$2" -t < "$3" || exit 1; i=$((i + 1)); done' \
	    sh "$N" "$SM" "$T/msg" || fail "a submission failed"
	end=$(date +%s.%N)
	echo "$start $end" | awk -v n="$N" '{ printf "%.0f", n / ($2 - $1) }'
}
echo "spool on $(findmnt -no FSTYPE,OPTIONS --target "$SPOOL" 2>/dev/null || echo unknown)"
echo "$N serial submissions of a 3 KB message each"
echo "DKIM signing: $DKIM"
root=$(run)
echo "root (into the spool as its owner):  $root msg/s"
if [ "$DKIM" != off ]; then
	grep -rqs "a=$DKIM-sha256" "$SPOOL" ||
	    echo "bench_submit: DKIM=$DKIM, but no a=$DKIM-sha256 seen in the spool's files" >&2
fi
www=$(run as www-data)
echo "www-data (drop folder, setgid):       $www msg/s"
echo "$root $www" | awk '{ printf "www-data / root: %.2f\n", $2 / $1 }'
n=$(find "$SPOOL/drop" -type f | wc -l)
# Messages: msg/ID (msg/ID.env is an updated envelope), or env/ID as an
# earlier version queued them.
m=$(find "$SPOOL/msg" "$SPOOL/env" -type f ! -name '*.env' 2> /dev/null | wc -l)
echo "drop files waiting for pickup: $n; spool messages: $m"
