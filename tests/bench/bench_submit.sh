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
# The baseline, in the same run: one shell writing the same message N times
# into new files of a directory next to the spool (same filesystem), with
# an fsync of each file: `dd if=MSG of=DIR/f.I conv=fsync status=none`,
# one process per message like sendmail (cheaper than cat plus sync FILE,
# two processes; dd's conv=fsync is one fsync(2) of the output file
# before exit; no fsync of the directory).  The files are removed after.
# Each sendmail rate is printed as a share of it.  Then 20 more
# submissions each as root and as www-data run under
# `strace -f -y -e trace=fsync,fdatasync` (untimed, after the counts of
# the spool): the calls per submission, split by what the descriptor was
# (a directory, or a file):
#   fsyncs per submission (root): file X, dir Y
# (skipped without strace).
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

# loop COUNT [CMD...]: COUNT serial submissions by one shell (run by CMD,
# e.g. as USER: setpriv runs once, not per message).
chmod 644 "$T/msg"
loop() {
	n=$1
	shift
	"$@" sh -c 'i=0; while [ $i -lt "$1" ]; do "$2" -t < "$3" || exit 1; i=$((i + 1)); done' \
	    sh "$n" "$SM" "$T/msg"
}
# run [as USER]: N serial submissions, prints the rate.
run() {
	start=$(date +%s.%N)
	loop "$N" "$@" || fail "a submission failed"
	end=$(date +%s.%N)
	echo "$start $end" | awk -v n="$N" '{ printf "%.0f", n / ($2 - $1) }'
}
# base: the baseline (see the header) in $T/base, next to the spool.
base() {
	mkdir "$T/base"
	start=$(date +%s.%N)
	sh -c 'i=0; while [ $i -lt "$1" ]; do dd if="$2" of="$3/f.$i" conv=fsync status=none || exit 1; i=$((i + 1)); done' \
	    sh "$N" "$T/msg" "$T/base" || fail "the baseline's dd failed"
	end=$(date +%s.%N)
	rm -rf "$T/base"
	echo "$start $end" | awk -v n="$N" '{ printf "%.0f", n / ($2 - $1) }'
}
# share RATE: RATE as a percentage of the baseline.
share() { awk -v r="$1" -v b="$baseline" 'BEGIN { printf "%.0f%%", (b > 0 ? 100 * r / b : 0) }'; }
echo "spool on $(findmnt -no FSTYPE,OPTIONS --target "$SPOOL" 2>/dev/null || echo unknown)"
echo "$N serial submissions of a 3 KB message each"
echo "DKIM signing: $DKIM"
baseline=$(base)
echo "baseline (dd conv=fsync of the message into a new file, same filesystem): $baseline files/s"
root=$(run)
echo "root (into the spool as its owner):  $root msg/s ($(share "$root") of the baseline)"
if [ "$DKIM" != off ]; then
	grep -rqs "a=$DKIM-sha256" "$SPOOL" ||
	    echo "bench_submit: DKIM=$DKIM, but no a=$DKIM-sha256 seen in the spool's files" >&2
fi
www=$(run as www-data)
echo "www-data (drop folder, setgid):       $www msg/s ($(share "$www") of the baseline)"
echo "$root $www" | awk '{ printf "www-data / root: %.2f\n", $2 / $1 }'
n=$(find "$SPOOL/drop" -type f | wc -l)
# Messages: msg/ID (msg/ID.env is an updated envelope), or env/ID as an
# earlier version queued them.
m=$(find "$SPOOL/msg" "$SPOOL/env" -type f ! -name '*.env' 2> /dev/null | wc -l)
echo "drop files waiting for pickup: $n; spool messages: $m"

# fsyncs LABEL [CMD...]: SN submissions under strace (root's strace, so
# the set-group-ID exec of www-data's still takes effect), the fsync and
# fdatasync calls per submission: on a directory's descriptor, or else on
# a file's (strace -y names the descriptor's path; directories outlive
# the run, the paths that are no directory now were files).
SN=20
fsyncs() {
	l=$1
	shift
	loop "$SN" strace -f -qq -y -e trace=fsync,fdatasync -e signal=none \
	    -o "$T/strace.$l" "$@" || fail "a submission under strace failed"
	sed -n 's/^[0-9]* *f\(data\)\{0,1\}sync([0-9]*<\(.*\)>) .*/\2/p' "$T/strace.$l" |
	    sed 's/ (deleted)$//' > "$T/strace.$l.paths"
	all=$(grep -c 'sync(' "$T/strace.$l" || true)
	d=0
	f=0
	while IFS= read -r p; do
		if [ -d "$p" ]; then d=$((d + 1)); else f=$((f + 1)); fi
	done < "$T/strace.$l.paths"
	[ $((d + f)) = "$all" ] ||
	    echo "bench_submit: $l: $all sync calls traced, $((d + f)) with a path" >&2
	awk -v f="$f" -v d="$d" -v n="$SN" -v l="$l" \
	    'BEGIN { printf "fsyncs per submission (%s): file %.2f, dir %.2f\n", l, f / n, d / n }'
}
if command -v strace > /dev/null; then
	fsyncs root
	fsyncs www-data setpriv --reuid=www-data --regid="$(id -g www-data)" --clear-groups --
else
	echo "fsyncs per submission: no strace, not counted"
fi
