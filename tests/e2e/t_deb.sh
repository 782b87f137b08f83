#!/bin/sh
# The Debian package, end to end (issue 13): build the .deb from the
# committed tree, install it into a bare Debian 12 root, send mail there
# with bsd-mailx (a real caller of /usr/sbin/sendmail) as root and as an
# ordinary user, prove it queued and was delivered to a test exchanger
# (dnsd and smtpsink, started inside the root), then remove and purge the
# package and check what is left; last, install it over postfix.
#
# Root only; skipped (77) without debootstrap or dpkg-buildpackage, and in
# a tree without debian/ or git (make distcheck's copy); needs the Debian
# mirror of this machine's apt sources.  Slow (minutes): it downloads a
# Debian root and builds the package.
#   MXRELAY_DEB=path.deb   use this package instead of building one
#   MXRELAY_DEB_BASE=dir   copy this bare root (debootstrap --variant=minbase
#                          bookworm) instead of making one
. "${top_srcdir:-.}/tests/e2e/lib.sh"

[ "$(id -u)" = 0 ] || { echo "skip: not root"; exit 77; }
[ -f "$top_srcdir/debian/control" ] ||
	{ echo "skip: no debian/ in $top_srcdir (a dist tarball)"; exit 77; }
if [ -z "${MXRELAY_DEB_BASE:-}" ]; then
	command -v debootstrap > /dev/null ||
		{ echo "skip: no debootstrap"; exit 77; }
fi
if [ -z "${MXRELAY_DEB:-}" ]; then
	command -v dpkg-buildpackage > /dev/null ||
		{ echo "skip: no dpkg-buildpackage"; exit 77; }
	git -C "$top_srcdir" rev-parse --verify -q HEAD > /dev/null ||
		{ echo "skip: $top_srcdir is not a git work tree"; exit 77; }
fi
for b in dnsd smtpsink; do
	[ -x "$top_builddir/tests/world/$b" ] ||
		fail "no tests/world/$b: make tests/world/$b first"
done

R="$T/root"
in_root() { chroot "$R" /bin/sh -c "$*"; }
unmount_root() {
	for m in "$R/dev" "$R/proc"; do
		mountpoint -q "$m" 2> /dev/null && umount -l "$m"
	done
	return 0
}
# lib.sh's cleanup removes $T: take the root's mounts away first.
trap 'pkill_root; unmount_root; cleanup' EXIT
# A signal must run that too (sh runs the EXIT trap only on exit): the
# root's /dev is the host's, bound, and must never be left under $T.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
pkill_root() {
	for p in ${ROOT_PIDS:-}; do kill "$p" 2> /dev/null || true; done
}
ROOT_PIDS=""

# 1. The package, from the committed tree (git archive: no build
#    products of this tree in it).
if [ -n "${MXRELAY_DEB:-}" ]; then
	DEB=$MXRELAY_DEB
else
	mkdir "$T/src" "$T/src/mxrelay"
	git -C "$top_srcdir" archive HEAD | tar -x -C "$T/src/mxrelay" ||
		fail "git archive"
	(cd "$T/src/mxrelay" &&
	 DEB_BUILD_OPTIONS="parallel=2 nocheck ${DEB_BUILD_OPTIONS:-}" \
	 dpkg-buildpackage -us -uc -b) \
		> "$T/build.log" 2>&1 ||
		{ tail -40 "$T/build.log" >&2; fail "dpkg-buildpackage"; }
	DEB=$(ls "$T"/src/mxrelay_*.deb | grep -v dbgsym | head -1)
fi
[ -f "$DEB" ] || fail "no package: $DEB"
ok "built $(basename "$DEB")"

# 2. A bare Debian 12 root with the package and bsd-mailx.
if [ -n "${MXRELAY_DEB_BASE:-}" ]; then
	cp -a "$MXRELAY_DEB_BASE" "$R" || fail "copy $MXRELAY_DEB_BASE"
else
	mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources \
		2> /dev/null | head -1)
	debootstrap --variant=minbase bookworm "$R" ${mirror:+"$mirror"} \
		> "$T/debootstrap.log" 2>&1 ||
		{ tail -20 "$T/debootstrap.log" >&2;
		  echo "skip: debootstrap failed (no Debian mirror?)"; exit 77; }
fi
cp /etc/resolv.conf "$R/etc/resolv.conf"
mount -t proc proc "$R/proc" && mount --bind /dev "$R/dev" ||
	fail "mount proc and dev in the root"
cp "$DEB" "$R/tmp/mxrelay.deb"
apt_root() {
	in_root "DEBIAN_FRONTEND=noninteractive $*" >> "$T/apt.log" 2>&1 ||
		{ tail -30 "$T/apt.log" >&2; fail "in the root: $*"; }
}
in_root "apt-get update -q" >> "$T/apt.log" 2>&1 ||
	{ tail -20 "$T/apt.log" >&2;
	  echo "skip: apt-get update failed in the root (no Debian mirror?)";
	  exit 77; }
apt_root apt-get install -y -q /tmp/mxrelay.deb bsd-mailx
# bsd-mailx depends on default-mta | mail-transport-agent: mxrelay's
# Provides must satisfy it, or apt brings exim4 as well.
mtas=$(in_root "dpkg-query -W -f '\${Package} \${Status}\n' 2>/dev/null" |
	grep -E '^(exim4|postfix|nullmailer|dma|opensmtpd)[^ ]* .* installed$' || true)
[ -z "$mtas" ] || fail "another MTA came with bsd-mailx: $mtas"
ok "apt-get install ./mxrelay.deb bsd-mailx (no other MTA)"

# 3. What the package put in place.
for l in /usr/sbin/sendmail /usr/lib/sendmail /usr/bin/mailq \
    /usr/bin/newaliases; do
	[ "$(in_root readlink -f $l)" = /usr/sbin/mxrelay ] ||
		fail "$l is not a link to mxrelay"
done
# Maintainer scripts of other packages run newaliases after they edit
# /etc/aliases, under set -e; an entry mxrelay cannot deliver (left by
# the MTA it replaced) is a warning, and mail to other names goes on
# (step 5).
in_root newaliases || fail "newaliases"
echo 'devnull: /dev/null' >> "$R/etc/aliases"
in_root newaliases > "$T/newaliases.out" 2>&1 ||
	{ cat "$T/newaliases.out" >&2; fail "newaliases with devnull: /dev/null"; }
grep -q 'devnull: /dev/null.*not supported' "$T/newaliases.out" ||
	fail "newaliases did not warn: $(cat "$T/newaliases.out")"
ok "sendmail, /usr/lib/sendmail, mailq and newaliases are mxrelay"
in_root dpkg-statoverride --list /usr/sbin/mxrelay |
	grep -qx 'root mxsubmit 2755 /usr/sbin/mxrelay' ||
	fail "no statoverride root mxsubmit 2755 for mxrelay"
[ "$(in_root stat -c %a:%G /usr/sbin/mxrelay)" = 2755:mxsubmit ] ||
	fail "mxrelay is not 2755 root:mxsubmit"
ok "mxrelay setgid mxsubmit through dpkg-statoverride"
in_root getent passwd mxrelay > /dev/null || fail "no user mxrelay"
in_root getent group mxsubmit > /dev/null || fail "no group mxsubmit"
ok "user mxrelay and group mxsubmit"
grep -qx /etc/mxrelay.conf "$R/var/lib/dpkg/info/mxrelay.conffiles" ||
	fail "/etc/mxrelay.conf is not a conffile"
grep -qx 'aliases = /etc/aliases' "$R/etc/mxrelay.conf" ||
	fail "/etc/mxrelay.conf does not read /etc/aliases"
ok "/etc/mxrelay.conf is a conffile and reads /etc/aliases"
[ "$(in_root stat -c %a:%U:%G /var/spool/mxrelay)" = 710:mxrelay:mxsubmit ] ||
	fail "spool is not 0710 mxrelay:mxsubmit"
ok "spool made by postinst"
unit=$R/lib/systemd/system/mxrelayd.service
[ -f "$unit" ] || fail "no $unit"
[ "$(readlink "$R/etc/systemd/system/multi-user.target.wants/mxrelayd.service")" = \
    /lib/systemd/system/mxrelayd.service ] ||
	fail "mxrelayd.service not enabled (no multi-user.target.wants link)"
ok "mxrelayd.service installed and enabled"
# systemd in the root, to verify the unit as installed: the programs it
# names must exist there (a bare root has no procps, so no /bin/kill).
apt_root apt-get install -y -q --no-install-recommends systemd
in_root systemd-analyze verify --man=no mxrelayd.service > "$T/verify" 2>&1 ||
	{ cat "$T/verify" >&2; fail "systemd-analyze verify mxrelayd.service"; }
ok "systemd-analyze verify mxrelayd.service in the root"

# 4. A test exchanger inside the root: deb.example has MX 10 on
#    127.0.90.1 (no other test uses 127.0.90.0/24), an smtpsink on a port
#    the kernel picks; root's mail goes there through /etc/aliases.
mkdir -p "$R/opt/mxtest"
cp "$top_builddir/tests/world/dnsd" "$top_builddir/tests/world/smtpsink" \
	"$R/opt/mxtest/"
# They may be built with the sanitizers: the libraries the root lacks go
# with them, in a folder of their own.
mkdir -p "$R/opt/mxtest/lib"
for lib in $(ldd "$R/opt/mxtest/dnsd" "$R/opt/mxtest/smtpsink" |
    sed -n 's|.*=> \(/[^ ]*\) .*|\1|p' | sort -u); do
	[ -e "$R$lib" ] || cp -L "$lib" "$R/opt/mxtest/lib/"
done
LIBS="env LD_LIBRARY_PATH=/opt/mxtest/lib"
printf '%s\n' 'deb.example MX 10 mx.deb.example' \
	'mx.deb.example A 127.0.90.1' > "$R/opt/mxtest/zone"
chroot "$R" $LIBS /opt/mxtest/dnsd -l 127.0.0.1:0 -z /opt/mxtest/zone -t 300 \
	> "$R/opt/mxtest/dns" 2>&1 &
ROOT_PIDS="$ROOT_PIDS $!"
chroot "$R" $LIBS /opt/mxtest/smtpsink -l 127.0.90.1:0 -d /opt/mxtest \
	-L /opt/mxtest/sink.log -t 300 > /dev/null 2>&1 &
ROOT_PIDS="$ROOT_PIDS $!"
n=0
until grep -q '^port ' "$R/opt/mxtest/dns" 2> /dev/null &&
      grep -q 'listen addr=' "$R/opt/mxtest/sink.log" 2> /dev/null; do
	n=$((n + 1)); [ $n -lt 600 ] || fail "dnsd or smtpsink did not start"
	sleep 0.05
done
dnsport=$(sed -n 's/^port //p' "$R/opt/mxtest/dns")
port=$(sed -n 's/.*listen addr=127\.0\.90\.1:\([0-9]*\).*/\1/p' \
	"$R/opt/mxtest/sink.log")
[ -n "$port" ] || fail "no port in the sink's log"
cat >> "$R/etc/mxrelay.conf" << EOF
# t_deb.sh: the test exchanger
hostname = relay.deb.example
dns_servers = 127.0.0.1:$dnsport
smtp_port = $port
EOF
echo 'root: ops@deb.example' >> "$R/etc/aliases"

# 5. Mail from root and from an ordinary user, with mail(1).
in_root "echo body | mail -s from-root root" || fail "mail as root"
in_root useradd -m debuser || fail "useradd"
in_root "su debuser -s /bin/sh -c 'echo body | mail -s from-user root'" ||
	fail "mail as debuser"
# A message is msg/ID (msg/ID.env: its updated envelope), or a drop file.
queued=$(in_root "find /var/spool/mxrelay/msg /var/spool/mxrelay/drop \
	-type f ! -name '*.env' 2>/dev/null" | wc -l)
[ "$queued" = 2 ] || fail "$queued files queued, not 2"
ok "mail as root and as debuser: both queued"

# 6. A queue run delivers both through the alias to the exchanger.
in_root mxrelay -q -v > "$T/run.log" 2>&1 ||
	{ cat "$T/run.log" >&2; fail "mxrelay -q"; }
cat "$T/run.log"
[ "$(grep -c '^msg ' "$R/opt/mxtest/sink.log")" = 2 ] ||
	{ cat "$R/opt/mxtest/sink.log" >&2; fail "not 2 messages delivered"; }
grep -q 'rcpt.*ops@deb.example' "$R/opt/mxtest/sink.log" ||
	fail "the alias root: ops@deb.example was not used"
in_root mailq | grep -q 'Mail queue is empty' || fail "queue not empty"
ok "both delivered to the exchanger through /etc/aliases"

# 6b. The daemon as the unit starts it (no systemd in the root): the
#     unit's ExecStartPre= as root, then its ExecStart= as its User= and
#     Group=, on a port of its own (the unit's capability for port 25 is
#     systemd's to give).  Mail from the ordinary user is taken from the
#     drop folder and delivered without a queue run.
pre=$(sed -n 's/^ExecStartPre=+//p' "$unit")
start=$(sed -n 's/^ExecStart=//p' "$unit")
uuser=$(sed -n 's/^User=//p' "$unit")
ugroup=$(sed -n 's/^Group=//p' "$unit")
[ -n "$pre" ] && [ -n "$start" ] && [ "$uuser" = mxrelay ] &&
    [ "$ugroup" = mxrelay ] || fail "unexpected unit: $pre / $start / $uuser"
echo "listen = 127.0.90.2:$port" >> "$R/etc/mxrelay.conf"
in_root "$pre" || fail "ExecStartPre: $pre"
chroot "$R" setpriv --reuid="$uuser" --regid="$ugroup" --init-groups \
	--inh-caps=-all $start > "$T/daemon.log" 2>&1 &
DAEMON_PID=$!
ROOT_PIDS="$ROOT_PIDS $DAEMON_PID"
in_root "su debuser -s /bin/sh -c 'echo body | mail -s via-daemon root'" ||
	fail "mail as debuser with mxrelayd running"
n=0
# The sink logs the message before its 250 reaches the daemon: wait for
# the daemon's own line too.
until [ "$(grep -c '^msg ' "$R/opt/mxtest/sink.log")" = 3 ] &&
      grep -q 'status=sent' "$T/daemon.log"; do
	n=$((n + 1))
	[ $n -lt 600 ] && kill -0 "$DAEMON_PID" 2> /dev/null ||
		{ cat "$T/daemon.log" >&2; fail "mxrelayd did not deliver"; }
	sleep 0.1
done
[ "$(in_root stat -c %U "/proc/$DAEMON_PID")" = mxrelay ] ||
	fail "mxrelayd does not run as mxrelay"
ok "mxrelayd started as the unit says, as mxrelay, delivered the user's mail"
reload=$(sed -n 's/^ExecReload=//p' "$unit")
chroot "$R" setpriv --reuid="$uuser" --regid="$ugroup" --init-groups \
	env MAINPID="$DAEMON_PID" /bin/sh -c "$reload" ||
	fail "ExecReload: $reload"
n=0
until grep -q 'configuration reloaded' "$T/daemon.log"; do
	n=$((n + 1))
	[ $n -lt 300 ] || { cat "$T/daemon.log" >&2; fail "no reload"; }
	sleep 0.1
done
kill "$DAEMON_PID"
wait "$DAEMON_PID" 2> /dev/null || true
ok "the unit's ExecReload reloads mxrelayd"

# 6c. Without systemd, /etc/cron.d/mxrelay's line delivers the queue.
cronline=$(grep -v -e '^#' -e '^$' -e '=' "$R/etc/cron.d/mxrelay")
cron_user=$(echo "$cronline" | awk '{ print $6 }')
cron_cmd=$(echo "$cronline" | sed -E 's/^([^[:space:]]+[[:space:]]+){6}//')
[ "$cron_user" = root ] && [ -n "$cron_cmd" ] ||
	fail "unexpected /etc/cron.d/mxrelay: $cronline"
in_root "su debuser -s /bin/sh -c 'echo body | mail -s via-cron root'" ||
	fail "mail as debuser for cron"
[ "$(grep -c '^msg ' "$R/opt/mxtest/sink.log")" = 3 ] ||
	fail "delivered before cron's run"
in_root "$cron_cmd" || fail "cron's command: $cron_cmd"
[ "$(grep -c '^msg ' "$R/opt/mxtest/sink.log")" = 4 ] ||
	fail "cron's command did not deliver"
ok "/etc/cron.d/mxrelay delivers the queue where systemd does not run"
pkill_root

# 7. Remove, then purge.
apt_root apt-get remove -y -q mxrelay
[ ! -e "$R/usr/sbin/sendmail" ] || fail "sendmail left after remove"
[ -f "$R/etc/mxrelay.conf" ] || fail "remove took /etc/mxrelay.conf"
ok "remove: programs gone, configuration kept"
apt_root apt-get purge -y -q mxrelay
[ ! -e "$R/etc/mxrelay.conf" ] || fail "purge left /etc/mxrelay.conf"
[ ! -e "$R/var/spool/mxrelay" ] || fail "purge left the empty spool"
! in_root getent passwd mxrelay > /dev/null || fail "purge left user mxrelay"
! in_root getent group mxsubmit > /dev/null || fail "purge left mxsubmit"
[ -z "$(in_root dpkg-statoverride --list /usr/sbin/mxrelay)" ] ||
	fail "purge left the statoverride"
[ -f "$R/etc/aliases" ] || fail "purge took /etc/aliases"
ok "purge: config, empty spool, user, groups, override gone; aliases kept"

# 8. Purge with mail in the queue keeps it, unless asked.
apt_root apt-get install -y -q /tmp/mxrelay.deb
in_root "echo body | sendmail nobody@nowhere.example" || fail "sendmail"
apt_root apt-get purge -y -q mxrelay
[ -n "$(find "$R/var/spool/mxrelay/msg" -mindepth 1 -print -quit 2> /dev/null)" ] ||
	fail "purge removed a spool that held mail (in msg/)"
in_root getent passwd mxrelay > /dev/null ||
	fail "purge removed the owner of a kept spool"
ok "purge keeps a spool that holds mail, and its owner"
apt_root apt-get install -y -q /tmp/mxrelay.deb
apt_root MXRELAY_PURGE_QUEUE=yes apt-get purge -y -q mxrelay
[ ! -e "$R/var/spool/mxrelay" ] || fail "MXRELAY_PURGE_QUEUE=yes kept it"
ok "purge with MXRELAY_PURGE_QUEUE=yes removes it"

# 9. Over postfix, as apt replaces one MTA with another.
apt_root apt-get install -y -q postfix
apt_root apt-get install -y -q /tmp/mxrelay.deb
in_root "dpkg-query -W -f '\${Status}' postfix" | grep -q 'deinstall' ||
	fail "postfix was not removed"
[ "$(in_root readlink -f /usr/sbin/sendmail)" = /usr/sbin/mxrelay ] ||
	fail "sendmail is not mxrelay after postfix"
ok "installed over postfix: postfix removed, sendmail is mxrelay"

# 10. A login account named mxrelay is never made the spool's owner:
#     postinst fails (adduser refuses a user that is not a system one).
apt_root apt-get purge -y -q mxrelay
in_root useradd -m -s /bin/sh mxrelay || fail "useradd mxrelay"
if in_root "DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    /tmp/mxrelay.deb" >> "$T/apt.log" 2>&1; then
	fail "installed over a login account named mxrelay"
fi
owner=$(in_root stat -c %U /var/spool/mxrelay 2> /dev/null || true)
[ "$owner" != mxrelay ] || fail "the login account mxrelay owns the spool"
ok "refuses a login account named mxrelay as the spool's owner"
