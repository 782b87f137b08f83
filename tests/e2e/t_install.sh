#!/bin/sh
# make install / make uninstall from the build tree into a DESTDIR: the
# programs, man pages, sample config, systemd unit and (when configured
# with --enable-sendmail-links) the sendmail and mailq links.
. "${top_srcdir:-.}/tests/e2e/lib.sh"

MK="$top_builddir/Makefile"
[ -f "$MK" ] || fail "no $MK"
mkvar() { sed -n "s/^$1 = //p" "$MK" | head -n 1; }
unitdir=$(mkvar systemdsystemunitdir)
links=$(mkvar enable_sendmail_links)
D="$T/inst"

# A make of our own: not the jobserver of a make check that runs us.
runmake() {
	(cd "$top_builddir" && MAKEFLAGS= MFLAGS= MAKELEVEL= \
		"${MAKE:-make}" "$@" DESTDIR="$D") > "$T/make.log" 2>&1 ||
		{ cat "$T/make.log" >&2; fail "make $*"; }
}

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

if [ -n "$unitdir" ]; then
	unit="$D$unitdir/mxrelayd.service"
	[ -f "$unit" ] || { find "$D" >&2; fail "no $unit"; }
	grep -q '@[a-z_]*@' "$unit" && fail "unsubstituted @var@ in the unit"
	grep -q '\${' "$unit" && fail "unexpanded \${var} in the unit"
	sbin=${mx%/mxrelay}
	grep -qx "ExecStart=${sbin#"$D"}/mxrelayd -f" "$unit" || fail "ExecStart: $(grep ExecStart= "$unit")"
	grep -qx 'Type=simple' "$unit" || fail "not Type=simple"
	grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' "$unit" || fail "no ExecReload"
	grep -q '^ReadWritePaths=/.*/spool/mxrelay$' "$unit" || fail "no ReadWritePaths for the spool"
	for k in '[Unit]' '[Service]' '[Install]'; do
		grep -qxF "$k" "$unit" || fail "unit lacks $k"
	done
	# Every other line is a comment or Key=value.
	bad=$(grep -v -e '^#' -e '^$' -e '^\[[A-Za-z]*\]$' -e '^[A-Za-z][A-Za-z]*=' "$unit")
	[ -z "$bad" ] || fail "unit lines not Key=value: $bad"
	if command -v systemd-analyze > /dev/null 2>&1; then
		# verify wants ExecStart to exist: point it at a real program.
		mkdir "$T/unit"
		sed "s|^ExecStart=.*|ExecStart=$(command -v true)|" "$unit" > "$T/unit/mxrelayd.service"
		systemd-analyze verify --man=no "$T/unit/mxrelayd.service" > "$T/verify" 2>&1 ||
			{ cat "$T/verify" >&2; fail "systemd-analyze verify"; }
		ok "mxrelayd.service installed in $unitdir and verified by systemd-analyze"
	else
		ok "mxrelayd.service installed in $unitdir (no systemd-analyze)"
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
