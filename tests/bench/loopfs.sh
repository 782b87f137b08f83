# tests/bench/loopfs.sh: sourced by the benchmarks.  With BENCH_LOOPFS=SIZE
# (as root, e.g. 4G), bench_loopfs DIR makes a fresh ext4 filesystem with
# a journal in a loop-mounted image DIR/fs.img, mounts it on DIR/fs and
# sets M to it (the caller puts its spool there and calls bench_unloop
# from its cleanup).  Runs are then comparable whatever the state of
# $TMPDIR: ext4 without a journal, for one, slows file creation after
# many deletions (it skips recently freed inodes).
M=""
bench_loopfs() {
	[ -n "${BENCH_LOOPFS:-}" ] || return 0
	[ "$(id -u)" = 0 ] || { echo "BENCH_LOOPFS needs root (mount)" >&2; exit 1; }
	truncate -s "$BENCH_LOOPFS" "$1/fs.img"
	mkfs.ext4 -q -F "$1/fs.img" || { echo "mkfs.ext4 failed" >&2; exit 1; }
	mkdir "$1/fs"
	mount -o loop "$1/fs.img" "$1/fs" ||
	    { echo "cannot loop-mount $1/fs.img" >&2; exit 1; }
	M=$1/fs
	chmod 755 "$M"
}
# shellcheck disable=SC2317	# called from a trap
bench_unloop() {
	[ -z "$M" ] || umount "$M" || true
}
