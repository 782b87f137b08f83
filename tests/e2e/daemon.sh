# Helpers for the tests that run mxrelayd.  Sourced after lib.sh and
# world.sh.  As root the daemon drops to nobody, so $T is opened up for it.
MXRELAYD="$top_builddir/src/mxrelayd"
DPID=""
chmod 755 "$T"
if [ "$(id -u)" = 0 ] && id nobody > /dev/null 2>&1; then
	DUSER=nobody
	DGROUP=$(id -gn nobody)
else
	DUSER=$(id -un)
	DGROUP=$(id -gn)
fi

# daemon_start: mxrelayd -f with $CONF, log in $T/d.log; waits for "started".
daemon_start() {
	: > "$T/d.log"
	"$MXRELAYD" -f -C "$CONF" >> "$T/d.log" 2>&1 &
	DPID=$!
	PIDS="$PIDS $DPID"
	wait_for "$T/d.log" 'started (pid'
}

# daemon_stop: SIGTERM, then its exit status in $DRC.
daemon_stop() {
	kill -TERM "$DPID"
	wait "$DPID"
	DRC=$?
	DPID=""
}

# within SECONDS CMD...: CMD becomes true within SECONDS (polling).
within() {
	lim=$(( $1 * 20 )); shift
	i=0
	while ! "$@"; do
		i=$((i + 1))
		[ $i -gt "$lim" ] && return 1
		sleep 0.05
	done
}

# got ADDR N: the exchanger at ADDR has stored at least N messages.
got() { [ "$(received "$1")" -ge "$2" ]; }
queue_empty() { [ "$("$SPOOLCHECK" "$SPOOL" | wc -l)" = 0 ]; }

# world_start SPEC...: the test world's DNS server on a zone made from the
# SPECs ($T/zone), and SMTP_PORT (start_dnsd and pick_port in world.sh).
# DOMAIN=ADDR gives DOMAIN one exchanger, mx.DOMAIN at ADDR (MX 10);
# DOMAIN=ADDR1,ADDR2,... gives it mx1.DOMAIN at ADDR1 (MX 10), mx2.DOMAIN
# at ADDR2 (MX 20) and so on.  A SPEC with a space in it is a zone line,
# as it is.
world_start() {
	: > "$T/zone"
	for ws_spec in "$@"; do
		case $ws_spec in
		*" "*)
			printf '%s\n' "$ws_spec" >> "$T/zone";;
		?*=?*)
			ws_dom=${ws_spec%%=*} ws_addrs=${ws_spec#*=} ws_n=0
			for ws_a in $(echo "$ws_addrs" | tr , ' '); do
				ws_n=$((ws_n + 1))
				case $ws_addrs in
				*,*) ws_mx=mx$ws_n.$ws_dom;;
				*) ws_mx=mx.$ws_dom;;
				esac
				printf '%s MX %s %s\n%s A %s\n' "$ws_dom" \
				    $((ws_n * 10)) "$ws_mx" "$ws_mx" "$ws_a"
			done >> "$T/zone";;
		*)
			fail "world_start: bad SPEC '$ws_spec'";;
		esac
	done
	start_dnsd "$T/zone"
	pick_port
}
