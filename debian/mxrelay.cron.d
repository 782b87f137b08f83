# /etc/cron.d/mxrelay: deliver the queue every 5 minutes where systemd does
# not run mxrelayd (containers, other init systems).  Where mxrelayd runs,
# "mxrelay -q" asks it to run the queue; under systemd this line does
# nothing.  See mxrelay(8), -q.
SHELL=/bin/sh
PATH=/usr/sbin:/usr/bin:/sbin:/bin

*/5 * * * *	root	[ -d /run/systemd/system ] || [ ! -x /usr/sbin/mxrelay ] || /usr/sbin/mxrelay -q
