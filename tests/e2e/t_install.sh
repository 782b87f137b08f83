#!/bin/sh
# make install / make uninstall from the build tree into a DESTDIR: the
# programs, man pages, sample config, systemd unit and (when configured
# with --enable-sendmail-links) the sendmail and mailq links.  Also the
# install hook that makes mxrelay setgid to the submit group (advice in a
# DESTDIR; as root, on a copy, the chgrp and chmod themselves) and the
# unit's least privilege (user mxrelay, CAP_NET_BIND_SERVICE, and, where
# systemd-analyze is, an exposure of 2.0 or lower).
. "${top_srcdir:-.}/tests/e2e/lib.sh"

MK="$top_builddir/Makefile"
[ -f "$MK" ] || fail "no $MK"
D="$T/inst"

# A make of our own: not the jobserver of a make check that runs us.
runmake() {
	(cd "$top_builddir" && MAKEFLAGS= MFLAGS= MAKELEVEL= \
		"${MAKE:-make}" "$@" DESTDIR="$D") > "$T/make.log" 2>&1 ||
		{ cat "$T/make.log" >&2; fail "make $*"; }
}

# mkvar NAME: the value of a Makefile variable as make expands it (a
# "${prefix}/..." in it spelled out).
mkvar() {
	printf 'mxrelay-t-install-var:\n\t@echo $(%s)\n' "$1" > "$T/var.mk"
	(cd "$top_builddir" && MAKEFLAGS= MFLAGS= MAKELEVEL= \
		"${MAKE:-make}" -s -f Makefile -f "$T/var.mk" mxrelay-t-install-var) \
		> "$T/var.out" 2> "$T/var.err" ||
		{ cat "$T/var.err" >&2; fail "make cannot tell \$($1)"; }
	tail -n 1 "$T/var.out"
}
unitdir=$(mkvar systemdsystemunitdir)
links=$(mkvar enable_sendmail_links)
group=$(mkvar submitgroup)
sbindir=$(mkvar sbindir)
case $unitdir in
''|/*) ;;
*) fail "systemdsystemunitdir is not an absolute path: '$unitdir'";;
esac
case $unitdir$sbindir in *'$'*) fail "unexpanded \$ in '$unitdir' or '$sbindir'";; esac
[ -n "$group" ] || fail "no submitgroup in $MK"
grep -qx "#define SUBMIT_GROUP \"$group\"" "$top_builddir/config.h" ||
	fail "config.h lacks SUBMIT_GROUP \"$group\""
ok "configure: submit group $group, unit directory '${unitdir:-none}'"

# one NAME FIND-TESTS...: exactly one installed file NAME (its path on
# stdout).
one() {
	n=$1
	shift
	f=$(find "$D" -name "$n" "$@" -print)
	[ -n "$f" ] || { find "$D" >&2; fail "$n not installed"; }
	[ "$(echo "$f" | wc -l)" = 1 ] || fail "$n installed twice: $f"
	echo "$f"
}

runmake install
mx=$(one mxrelay -type f)
case $mx in */sbin/mxrelay) ;; *) fail "mxrelay not in sbin: $mx";; esac
[ -x "$mx" ] || fail "$mx not executable"
# Into a DESTDIR (a package), the hook leaves the mode alone and prints
# what to run on the target system.
[ "$mx" = "$D$sbindir/mxrelay" ] || fail "mxrelay in $mx, not in $D$sbindir"
[ -g "$mx" ] && fail "$mx is setgid in a DESTDIR install"
for l in "groupadd --system $group" "chgrp $group '$sbindir/mxrelay'" \
    "chmod g+s '$sbindir/mxrelay'"; do
	grep -qF -- "$l" "$T/make.log" || { cat "$T/make.log" >&2; fail "make install does not say: $l"; }
done
ok "a DESTDIR install prints the chgrp $group / chmod g+s advice"
m8=$(one mxrelay.8 -type f)
case $m8 in */man8/mxrelay.8) ;; *) fail "mxrelay.8 in $m8";; esac
m5=$(one mxrelay.conf.5 -type f)
case $m5 in */man5/mxrelay.conf.5) ;; *) fail "mxrelay.conf.5 in $m5";; esac
ex=$(one mxrelay.conf -type f)
case $ex in */examples/mxrelay.conf) ;; *) fail "sample config in $ex";; esac
cmp -s "$ex" "$top_srcdir/etc/mxrelay.conf" || fail "sample config differs"
d8=$(one mxrelayd.8 -type f)
case $d8 in */man8/mxrelayd.8) ;; *) fail "mxrelayd.8 in $d8";; esac
mxd=$(one mxrelayd -type f)
case $mxd in */sbin/mxrelayd) ;; *) fail "mxrelayd not in sbin: $mxd";; esac
"$mxd" --version | grep -q '^mxrelayd ' || fail "installed mxrelayd --version"
ok "mxrelay, mxrelayd, their man pages, mxrelay.conf.5 and examples/mxrelay.conf installed"

# The install hook itself, into a folder of ours without DESTDIR, as root:
# a group that exists is set (setgid), one that does not is advice.
hook() {
	(cd "$top_builddir" && MAKEFLAGS= MFLAGS= MAKELEVEL= \
		"${MAKE:-make}" install-submit-group DESTDIR= sbindir="$T/hook" "$@") > "$T/hook.log" 2>&1
}
if [ "$(id -u)" = 0 ]; then
	mkdir "$T/hook"
	cp "$mx" "$T/hook/mxrelay"
	chmod 0755 "$T/hook/mxrelay"
	g=$(id -gn nobody 2> /dev/null) || g=
	[ -n "$g" ] || g=$(sed -n 's/^\([^:]*\):[^:]*:65534:.*/\1/p' /etc/group | head -n 1)
	[ -n "$g" ] || g=root
	hook submitgroup="$g" || { cat "$T/hook.log" >&2; fail "make install-submit-group"; }
	[ "$(stat -c '%a %G' "$T/hook/mxrelay")" = "2755 $g" ] ||
		{ cat "$T/hook.log" >&2; fail "as root: $(stat -c '%a %G' "$T/hook/mxrelay"), want 2755 $g"; }
	chgrp root "$T/hook/mxrelay" && chmod 0755 "$T/hook/mxrelay"
	nog=mxrelay-no-such-group
	! getent group "$nog" > /dev/null 2>&1 || fail "there is a group $nog"
	hook submitgroup="$nog" || { cat "$T/hook.log" >&2; fail "make install-submit-group ($nog)"; }
	[ "$(stat -c '%a' "$T/hook/mxrelay")" = 755 ] || fail "mode changed without the group"
	grep -qF "groupadd --system $nog" "$T/hook.log" || { cat "$T/hook.log" >&2; fail "no groupadd advice"; }
	ok "as root without DESTDIR the hook makes mxrelay setgid $g (2755), and advises groupadd for a missing group"
else
	echo "# not root: the hook's chgrp/chmod as root is not tried"
fi

if [ -n "$unitdir" ]; then
	unit="$D$unitdir/mxrelayd.service"
	[ -f "$unit" ] || { find "$D" >&2; fail "no $unit (configure said $unitdir)"; }
	grep -q '@[a-z_]*@' "$unit" && fail "unsubstituted @var@ in the unit"
	grep -q '\${' "$unit" && fail "unexpanded \${var} in the unit"
	sbin=${mx%/mxrelay}
	grep -qx "ExecStart=${sbin#"$D"}/mxrelayd -f" "$unit" || fail "ExecStart: $(grep ExecStart= "$unit")"
	grep -qx 'Type=simple' "$unit" || fail "not Type=simple"
	grep -qxF "ExecReload=/bin/sh -c 'kill -HUP \"\$MAINPID\"'" "$unit" ||
		fail "ExecReload: $(grep ExecReload= "$unit")"
	grep -q '^ReadWritePaths=/.*/spool/mxrelay$' "$unit" || fail "no ReadWritePaths for the spool"
	grep -qx "ExecStartPre=+${sbin#"$D"}/mxrelayd -i" "$unit" || fail "ExecStartPre: $(grep ExecStartPre= "$unit")"
	# Least privilege: user mxrelay from the start, port 25 its only
	# capability, a runtime folder that local users' mailq can search.
	for l in User=mxrelay Group=mxrelay AmbientCapabilities=CAP_NET_BIND_SERVICE \
	    CapabilityBoundingSet=CAP_NET_BIND_SERVICE RuntimeDirectory=mxrelay \
	    RuntimeDirectoryMode=0755 ProtectSystem=strict NoNewPrivileges=yes; do
		[ "$(grep -c "^${l%%=*}=" "$unit")" = 1 ] || fail "want one ${l%%=*}= in the unit"
		grep -qx "$l" "$unit" || fail "unit lacks $l: $(grep "^${l%%=*}=" "$unit")"
	done
	# The daemon records the uid of the users whose files it takes from
	# drop/: a user namespace would make them all nobody.
	grep -q '^PrivateUsers=' "$unit" && fail "PrivateUsers= in the unit"
	for k in '[Unit]' '[Service]' '[Install]'; do
		grep -qxF "$k" "$unit" || fail "unit lacks $k"
	done
	# Every other line is a comment or Key=value.
	bad=$(grep -v -e '^#' -e '^$' -e '^\[[A-Za-z]*\]$' -e '^[A-Za-z][A-Za-z]*=' "$unit")
	[ -z "$bad" ] || fail "unit lines not Key=value: $bad"
	if command -v systemd-analyze > /dev/null 2>&1; then
		# verify wants the programs to exist: point them at a real one.
		mkdir "$T/unit"
		sed -e "s|^ExecStart=.*|ExecStart=$(command -v true)|" \
		    -e "s|^ExecStartPre=+.*|ExecStartPre=+$(command -v true)|" \
		    "$unit" > "$T/unit/mxrelayd.service"
		systemd-analyze verify --man=no "$T/unit/mxrelayd.service" > "$T/verify" 2>&1 ||
			{ cat "$T/verify" >&2; fail "systemd-analyze verify"; }
		ok "mxrelayd.service installed in $unitdir and verified by systemd-analyze"
	else
		ok "mxrelayd.service installed in $unitdir (no systemd-analyze: not verified)"
	fi
	if command -v systemd-analyze > /dev/null 2>&1 &&
	    systemd-analyze --help 2>&1 | grep -q -- '--offline'; then
		# exposure FILE: the "Overall exposure level" that systemd-analyze
		# security gives the unit (0.0 best, 10.0 worst).
		exposure() {
			systemd-analyze security --offline=true --no-pager "$1" > "$T/security" 2>&1 ||
				true # exit 0 or not by version; the line decides
			sed -n 's/^.*Overall exposure level for [^ ]*: *\([0-9][0-9]*\.[0-9]\).*$/\1/p' "$T/security"
		}
		# at_most SCORE LIMIT: true when SCORE <= LIMIT.
		at_most() {
			awk -v s="$1" -v l="$2" 'BEGIN { exit !(s + 0 <= l + 0) }'
		}
		# The check itself can fail: a unit with no hardening scores high.
		mkdir "$T/bare"
		printf '[Service]\nExecStart=%s\n' "$(command -v true)" > "$T/bare/mxrelayd.service"
		bare=$(exposure "$T/bare/mxrelayd.service")
		[ -n "$bare" ] || { cat "$T/security" >&2; fail "no exposure level for a bare unit"; }
		at_most "$bare" 2.0 && fail "a bare unit scores $bare: the check cannot fail"
		score=$(exposure "$unit")
		[ -n "$score" ] || { cat "$T/security" >&2; fail "no 'Overall exposure level' from systemd-analyze security"; }
		at_most "$score" 2.0 ||
			{ grep -F '✗' "$T/security" >&2; fail "systemd-analyze security: exposure $score, want 2.0 or lower"; }
		ok "systemd-analyze security --offline=true: exposure $score (<= 2.0; a bare unit $bare)"
	else
		echo "# no systemd-analyze with --offline: the exposure score is not checked"
	fi
else
	[ -z "$(find "$D" -name mxrelayd.service)" ] || fail "unit installed although disabled"
	ok "no systemd unit (--with-systemdsystemunitdir=no)"
fi

if [ "$links" = yes ]; then
	sm=$(one sendmail -type l)
	mq=$(one mailq -type l)
	case $sm in */sbin/sendmail) ;; *) fail "sendmail link in $sm";; esac
	case $mq in */bin/mailq) ;; *) fail "mailq link in $mq";; esac
	# The links resolve inside DESTDIR (relative), to the installed mxrelay.
	[ "$(cd "$(dirname "$sm")" && cd "$(dirname "$(readlink "$sm")")" && pwd)/mxrelay" = "$mx" ] ||
		fail "sendmail -> $(readlink "$sm") is not $mx"
	[ "$(cd "$(dirname "$mq")" && cd "$(dirname "$(readlink "$mq")")" && pwd)/mxrelay" = "$mx" ] ||
		fail "mailq -> $(readlink "$mq") is not $mx"
	write_conf
	printf 'Subject: t\n\nhi\n' | "$sm" -C "$CONF" -i root@example.org 2> "$T/err" ||
		{ cat "$T/err" >&2; fail "installed sendmail failed"; }
	[ "$(spool_count)" = 1 ] || fail "want 1 message in the spool"
	"$mq" -C "$CONF" > "$T/q" 2> "$T/err" || { cat "$T/err" >&2; fail "installed mailq failed"; }
	grep -q "root@example.org" "$T/q" || { cat "$T/q" >&2; fail "mailq does not list the message"; }
	grep -q "1 Request" "$T/q" || { cat "$T/q" >&2; fail "mailq summary"; }
	ok "sendmail and mailq links queue and list a message"
else
	[ -z "$(find "$D" -name sendmail -o -name mailq)" ] || fail "links installed although disabled"
	ok "no sendmail/mailq links without --enable-sendmail-links"
fi

runmake uninstall
left=$(find "$D" ! -type d)
[ -z "$left" ] || fail "left after make uninstall: $left"
ok "make uninstall removes everything"
