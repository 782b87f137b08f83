# Helpers for the tests of who may do what (mxrelay(8) SECURITY).  Sourced
# FIRST, before lib.sh: as root, with setpriv, unshare, useradd and
# groupadd at hand, the test is run again in a private mount namespace
# whose /etc and sysconfdir are overlays, so that the users mxrelay and
# mxother, the group mxsubmit and the default mxrelay.conf made here never
# reach the host.  In a chroot, where a mount namespace cannot be made
# private (its / is no mount point: mounts would reach the host), the
# test changes the chroot's own /etc and sysconfdir and undoes it at exit;
# a chroot is a root of its own (../shared/tools/fresh-debian.sh).  Then
# PRIVS=yes; otherwise PRIVS=no and the caller skips what needs it (or the
# whole test: privs_require).
PRIVS=no
PRIVS_CHROOT=no
# A chroot: no mount at / (the root is a folder of another file system),
# and none at /etc or /usr either (not the host's /etc bound in).
privs_in_chroot() {
	[ -r /proc/self/mountinfo ] &&
	    ! awk '$5 == "/" || $5 == "/etc" || $5 == "/usr" || $5 == "/usr/local" ||
		$5 == "/usr/local/etc" { f = 1 } END { exit !f }' /proc/self/mountinfo
}
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null &&
    command -v unshare > /dev/null && command -v useradd > /dev/null &&
    command -v groupadd > /dev/null; then
	if [ -n "${MXPRIV_NS:-}" ]; then
		PRIVS=yes
	elif unshare -m --propagation private true 2> /dev/null; then
		MXPRIV_NS=1 exec unshare -m --propagation private sh "$0" "$@"
	elif privs_in_chroot; then
		PRIVS=yes
		PRIVS_CHROOT=yes
		# One such test at a time: they share the chroot's /etc.  What
		# to undo is kept in a root-only folder, so that a run that was
		# killed is undone by the next one.
		PRIVS_STATE=/var/lib/mxrelay-privs-test
		mkdir -p -m 0700 "$PRIVS_STATE"
		if command -v flock > /dev/null; then
			exec 8>> "$PRIVS_STATE/lock"
			flock 8
		fi
	fi
fi

privs_require() {
	[ "$PRIVS" = yes ] || { echo "# needs root, setpriv, unshare, useradd"; exit 77; }
}

# overlay DIR: changes to DIR from here on stay in this namespace (in a
# chroot: nothing; privs_setup records what to undo).
overlay() {
	[ "$PRIVS_CHROOT" = yes ] && return 0
	n=$(echo "$1" | tr / _)
	mkdir -p "$T/ov/$n.up" "$T/ov/$n.work"
	mount -t overlay overlay -o "lowerdir=$1,upperdir=$T/ov/$n.up,workdir=$T/ov/$n.work" "$1" ||
	    { echo "# overlayfs not available"; exit 77; }
}

# Undo, in a chroot, what privs_setup added to /etc and sysconfdir (the
# list is in $PRIVS_STATE/undo; every process of those users is gone).
privs_undo() {
	[ "$PRIVS_CHROOT" = yes ] && [ -f "$PRIVS_STATE/undo" ] || return 0
	while read -r u; do
		case $u in
		user:*) userdel "${u#user:}" || echo "# userdel ${u#user:} failed" >&2;;
		group:*) groupdel "${u#group:}" || echo "# groupdel ${u#group:} failed" >&2;;
		conf:*) if [ -e "$PRIVS_STATE/sysconf.saved" ]; then
				cp -p "$PRIVS_STATE/sysconf.saved" "${u#conf:}"
			else
				rm -f "${u#conf:}"
			fi;;
		esac
	done < "$PRIVS_STATE/undo"
	rm -f "$PRIVS_STATE/undo" "$PRIVS_STATE/sysconf.saved"
}

# privs_note WHAT: remember something to undo (users before groups).
privs_note() {
	[ "$PRIVS_CHROOT" = yes ] || return 0
	case $1 in
	user:*) { echo "$1"; cat "$PRIVS_STATE/undo" 2> /dev/null; } > "$PRIVS_STATE/undo.new";;
	*) { cat "$PRIVS_STATE/undo" 2> /dev/null; echo "$1"; } > "$PRIVS_STATE/undo.new";;
	esac
	mv "$PRIVS_STATE/undo.new" "$PRIVS_STATE/undo"
}

# privs_reachable: other users can reach the folder of the default
# configuration file (make distcheck installs below its build tree, which
# may be below root's home, 0700).
privs_reachable() {
	d=$("$MXRELAY" --help | sed -n 's/.*configuration file (default \(.*\)).*/\1/p')
	d=$(dirname "${d:-/}")
	while [ ! -d "$d" ]; do d=$(dirname "$d"); done
	setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$d"
}

# privs_setup: (after lib.sh) the overlays, the users and the group, and
# the installed form of mxrelay in $T/bin: set-group-ID mxsubmit, with
# sendmail and mailq links ($SM is sendmail).  SYSCONF: the configuration
# file that sendmail reads by default.
privs_setup() {
	privs_require
	privs_reachable || { echo "# the configuration's folder is out of other users' reach"; exit 77; }
	SYSCONF=$("$MXRELAY" --help | sed -n 's/.*configuration file (default \(.*\)).*/\1/p')
	[ -n "$SYSCONF" ] || fail "no default configuration path in --help"
	SYSCONFDIR=$(dirname "$SYSCONF")
	overlay /etc
	if [ "$SYSCONFDIR" != /etc ]; then
		mkdir -p "$SYSCONFDIR" 2> /dev/null
		overlay "$SYSCONFDIR"
	fi
	if [ "$PRIVS_CHROOT" = yes ]; then
		privs_undo	# what a killed run left
		# Processes first (userdel refuses a user who runs), then /etc.
		trap 'if command -v world_cleanup > /dev/null; then world_cleanup; else cleanup; fi; privs_undo' EXIT
		trap 'exit 1' INT TERM HUP
		[ -e "$SYSCONF" ] && cp -p "$SYSCONF" "$PRIVS_STATE/sysconf.saved"
		privs_note "conf:$SYSCONF"
	fi
	if ! getent group mxsubmit > /dev/null; then
		groupadd --system mxsubmit || fail groupadd
		privs_note group:mxsubmit
	fi
	if ! getent passwd mxrelay > /dev/null; then
		useradd --system --no-create-home -d /nonexistent -s /usr/sbin/nologin mxrelay ||
		    fail "useradd mxrelay"
		privs_note user:mxrelay
	fi
	getent passwd mxother > /dev/null && fail "a user mxother exists already"
	useradd --no-create-home -d /nonexistent -s /bin/sh mxother || fail "useradd mxother"
	privs_note user:mxother
	id www-data > /dev/null || fail "no www-data user"
	mkdir -p "$T/bin"
	cp "$MXRELAY" "$T/bin/mxrelay"
	chgrp mxsubmit "$T/bin/mxrelay" && chmod 2755 "$T/bin/mxrelay"
	ln -s mxrelay "$T/bin/sendmail"
	ln -s mxrelay "$T/bin/mailq"
	SM="$T/bin/sendmail"
	# LeakSanitizer cannot stop a set-group-ID process (not dumpable).
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
	export ASAN_OPTIONS
}

# as USER CMD...: run CMD as USER (its own group, no other group).
as() {
	u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --clear-groups -- "$@"
}
