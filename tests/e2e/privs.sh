# Helpers for the tests of who may do what (SPEC "Privileges").  Sourced
# FIRST, before lib.sh: as root, with setpriv, unshare, useradd and
# groupadd at hand, the test is run again in a private mount namespace
# whose /etc and sysconfdir are overlays, so that the users mxrelay and
# mxother, the group mxsubmit and the default mxrelay.conf made here never
# reach the host.  Then PRIVS=yes; otherwise PRIVS=no and the caller skips
# what needs it (or the whole test: privs_require).
PRIVS=no
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null &&
    command -v unshare > /dev/null && command -v useradd > /dev/null &&
    command -v groupadd > /dev/null; then
	if [ -z "${MXPRIV_NS:-}" ]; then
		if unshare -m --propagation private true 2> /dev/null; then
			MXPRIV_NS=1 exec unshare -m --propagation private sh "$0" "$@"
		fi
	else
		PRIVS=yes
	fi
fi

privs_require() {
	[ "$PRIVS" = yes ] || { echo "# needs root, setpriv, unshare, useradd"; exit 77; }
}

# overlay DIR: changes to DIR from here on stay in this namespace.
overlay() {
	n=$(echo "$1" | tr / _)
	mkdir -p "$T/ov/$n.up" "$T/ov/$n.work"
	mount -t overlay overlay -o "lowerdir=$1,upperdir=$T/ov/$n.up,workdir=$T/ov/$n.work" "$1" ||
	    { echo "# overlayfs not available"; exit 77; }
}

# privs_setup: (after lib.sh) the overlays, the users and the group, and
# the installed form of mxrelay in $T/bin: set-group-ID mxsubmit, with
# sendmail and mailq links ($SM is sendmail).  SYSCONF: the configuration
# file that sendmail reads by default.
privs_setup() {
	privs_require
	SYSCONF=$("$MXRELAY" --help | sed -n 's/.*configuration file (default \(.*\)).*/\1/p')
	[ -n "$SYSCONF" ] || fail "no default configuration path in --help"
	SYSCONFDIR=$(dirname "$SYSCONF")
	overlay /etc
	if [ "$SYSCONFDIR" != /etc ]; then
		mkdir -p "$SYSCONFDIR" 2> /dev/null
		overlay "$SYSCONFDIR"
	fi
	getent group mxsubmit > /dev/null || groupadd --system mxsubmit || fail groupadd
	getent passwd mxrelay > /dev/null ||
	    useradd --system --no-create-home -d /nonexistent -s /usr/sbin/nologin mxrelay ||
	    fail "useradd mxrelay"
	useradd --no-create-home -d /nonexistent -s /bin/sh mxother || fail "useradd mxother"
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
