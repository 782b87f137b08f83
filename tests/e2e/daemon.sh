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
