# Sourced by the preload tests, which need a host without RDMA.  Sets py
# (a python3 that is one process, not a wrapper script that would load the
# library twice) and tmp (removed at exit, after killing $srv if set), and
# defines fail and wait_port.
if [ -n "$(ls /sys/class/infiniband 2>/dev/null)" ]; then
	echo "SKIP: this host has RDMA devices"
	exit 77
fi
py=python3
[ -x /usr/bin/python3 ] && py=/usr/bin/python3
tmp=$(mktemp -d)
srv=""
trap '[ -z "$srv" ] || kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# Sourced by the preload tests: wait_port FILE WHAT prints the port a test
# server wrote to FILE, waiting up to 10 s for it; else it says WHAT did not
# start (on stderr: it runs in a command substitution) and returns 1.
wait_port() {
	_i=0
	while [ ! -s "$1" ]; do
		_i=$((_i + 1))
		[ $_i -lt 100 ] || { echo "FAIL: $2 did not start" >&2; return 1; }
		sleep 0.1
	done
	cat "$1"
}
