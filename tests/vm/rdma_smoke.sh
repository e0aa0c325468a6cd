#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# rdma_smoke.sh one|two: soft-RoCE smoke test, run INSIDE the VM:
#
#     scripts/vm-run --topology one -- tests/vm/rdma_smoke.sh one
#     scripts/vm-run --topology two -- tests/vm/rdma_smoke.sh two
#
# Checks that the harness gives a working RDMA setup, and that the counters
# of scripts/lib/vm-counters.sh tell RDMA traffic and TCP traffic apart:
#   1. every rxe device of the topology has an ACTIVE port (ibv_devinfo);
#   2. an rping exchange (rdma_cm + RDMA READ/WRITE, data verified) completes,
#      RoCE packet counters rise on the devices involved, TCP ones do not;
#   3. an rstream transfer over rsockets (20 x 1 MiB, data verified) moves at
#      least 20 MiB / 4 KiB packets, again without TCP;
#   4. the same rstream transfer over plain TCP sockets moves TCP segments
#      and no RoCE packets.
# In topology "two" the server runs as host dst (198.18.0.2, rxe_dst) and the
# client as host src (198.18.0.1, rxe_src), joined by a veth pair; there the
# test also checks that both kinds of traffic really crossed the veth.
#
# Prints one PASS/FAIL line per check and exits non-zero if any failed.
set -eu

usage() {
	echo "usage: rdma_smoke.sh one|two (inside scripts/vm-run --topology one|two)" >&2
	exit 2
}
[ $# -eq 1 ] || usage
topo=$1

here=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=../../scripts/lib/vm-counters.sh
. "${VM_LIB:-$here/../../scripts/lib}/vm-counters.sh"

. "$here/../lib/check.sh"

if [ "${VM_TOPOLOGY:-}" != "$topo" ]; then
	echo "FAIL: VM_TOPOLOGY is '${VM_TOPOLOGY:-}', not '$topo': run me with scripts/vm-run --topology $topo"
	exit 1
fi

case $topo in
one)
	server_ns='' client_ns=''
	addr=$VM_ADDR
	server_dev=$VM_DEV client_dev=$VM_DEV
	devs=$VM_DEV
	;;
two)
	server_ns=$DST_NS client_ns=$SRC_NS
	addr=$DST_ADDR
	server_dev=$DST_DEV client_dev=$SRC_DEV
	devs="$SRC_DEV $DST_DEV"
	;;
*) usage ;;
esac

work=$(mktemp -d /tmp/rdma_smoke.XXXXXX)

# in_ns NS CMD...: run CMD in network namespace NS, or here if NS is empty.
in_ns() {
	_ns=$1
	shift
	if [ -n "$_ns" ]; then
		ip netns exec "$_ns" "$@"
	else
		"$@"
	fi
}

# (Called indirectly, through run_pair's WAITFN argument.)
# shellcheck disable=SC2317
# wait_listen PORT: wait (up to 30 s) until an rdma_cm id listens on PORT,
# so the client never races the server's start-up (slow under TCG).
wait_listen() {
	_end=$(($(date +%s) + 30))
	while [ "$(date +%s)" -lt "$_end" ]; do
		if rdma resource show cm_id 2>/dev/null | grep -q "state LISTEN .*src-addr [^ ]*:$1 "; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# shellcheck disable=SC2317
# wait_tcp_listen PORT: the same for a TCP listener.
wait_tcp_listen() {
	_end=$(($(date +%s) + 30))
	while [ "$(date +%s)" -lt "$_end" ]; do
		if in_ns "$server_ns" ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# run_pair NAME PORT WAITFN SERVER_CMD... -- CLIENT_CMD...: start the server
# (in the server's namespace), wait for it to listen, run the client (in the
# client's namespace), and wait for both.  Every tool is bounded by timeout(1).
# Succeeds only if both exit 0; their output goes to $work/NAME.{server,client}.
run_pair() {
	_name=$1 _port=$2 _waitfn=$3
	shift 3
	_scmd=
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		_scmd="$_scmd $1"
		shift
	done
	shift
	# shellcheck disable=SC2086 # the server command is a plain word list
	in_ns "$server_ns" timeout 90 $_scmd >"$work/$_name.server" 2>&1 &
	_spid=$!
	_crc=0
	if "$_waitfn" "$_port"; then
		in_ns "$client_ns" timeout 60 "$@" >"$work/$_name.client" 2>&1 || _crc=$?
	else
		echo "(server never listened on port $_port)" >"$work/$_name.client"
		_crc=1
		kill "$_spid" 2>/dev/null || true
	fi
	_src=0
	wait "$_spid" || _src=$?
	if [ "$_crc" -ne 0 ] || [ "$_src" -ne 0 ]; then
		echo "  $_name: client exit $_crc, server exit $_src"
		for _f in "$work/$_name.server" "$work/$_name.client"; do
			echo "  --- ${_f##*/}:"
			tail -n 20 "$_f" | sed 's/^/  | /'
		done
		return 1
	fi
	return 0
}

# expect_delta OLD NEW KEY OP VALUE WHAT: check a counter delta.
expect_delta() {
	_d=$(counters_delta "$1" "$2" "$3") || {
		fail "$6: cannot read counter $3"
		return 0
	}
	_ok=0
	case $4 in
	-eq) [ "$_d" -eq "$5" ] || _ok=1 ;;
	-gt) [ "$_d" -gt "$5" ] || _ok=1 ;;
	-ge) [ "$_d" -ge "$5" ] || _ok=1 ;;
	*) _ok=1 ;;
	esac
	if [ "$_ok" -eq 0 ]; then
		pass "$6 ($3 +$_d)"
	else
		fail "$6 ($3 +$_d, expected $4 $5)"
	fi
}

echo "== rdma_smoke, topology $topo: devices $devs, server $addr${server_ns:+ (netns $server_ns)}"

# --- 1. devices ----------------------------------------------------------------
for dev in $devs; do
	if ibv_devinfo -d "$dev" >"$work/devinfo.$dev" 2>&1 && grep -q 'PORT_ACTIVE' "$work/devinfo.$dev"; then
		mtu=$(awk '/active_mtu:/ { print $2; exit }' "$work/devinfo.$dev")
		pass "ibv_devinfo: $dev port 1 is PORT_ACTIVE (active_mtu $mtu)"
	else
		fail "ibv_devinfo: $dev port 1 is not PORT_ACTIVE"
		sed 's/^/  | /' "$work/devinfo.$dev"
	fi
done

# --- 2. rping ------------------------------------------------------------------
counters_snapshot rping.before
if run_pair rping 7171 wait_listen \
	rping -s -a "$addr" -p 7171 -C 10 -S 1024 -V -- \
	rping -c -a "$addr" -p 7171 -C 10 -S 1024 -V -v; then
	n=$(grep -c '^ping data: rdma-ping-' "$work/rping.client" || true)
	if [ "$n" -eq 10 ]; then
		pass "rping: 10 verified ping-pongs to $addr"
	else
		fail "rping: $n ping-pongs instead of 10"
	fi
else
	fail "rping exchange with $addr"
fi
counters_snapshot rping.after
expect_delta rping.before rping.after "roce.$client_dev.sent_pkts" -gt 0 "rping: client device sent RoCE packets"
expect_delta rping.before rping.after "roce.$server_dev.rcvd_pkts" -gt 0 "rping: server device received RoCE packets"
if [ "$topo" = two ]; then
	expect_delta rping.before rping.after "roce.$server_dev.sent_pkts" -gt 0 "rping: server device answered"
	expect_delta rping.before rping.after "roce.$client_dev.rcvd_pkts" -gt 0 "rping: client device received answers"
fi
expect_delta rping.before rping.after tcp.self.OutSegs -eq 0 "rping: no TCP segments"

# --- 3. rstream over rsockets (RDMA) ---------------------------------------------
# 20 transfers of 1 MiB each way: at least 20 MiB / 4 KiB = 5120 packets per
# direction (more at a smaller active_mtu).
counters_snapshot rsock.before
if run_pair rstream 7172 wait_listen \
	rstream -b "$addr" -p 7172 -S 1048576 -C 20 -I 1 -T v -- \
	rstream -s "$addr" -p 7172 -S 1048576 -C 20 -I 1 -T v; then
	pass "rstream (rsockets): 20 x 1 MiB verified, $(awk '/^custom/ { print $6 " at " $7 " Gb/s"; exit }' "$work/rstream.client")"
else
	fail "rstream (rsockets) transfer to $addr"
fi
counters_snapshot rsock.after
expect_delta rsock.before rsock.after "roce.$client_dev.sent_pkts" -ge 5120 "rstream (rsockets): client device sent >= 20 MiB of RoCE packets"
expect_delta rsock.before rsock.after "roce.$server_dev.rcvd_pkts" -ge 5120 "rstream (rsockets): server device received >= 20 MiB of RoCE packets"
expect_delta rsock.before rsock.after tcp.self.OutSegs -eq 0 "rstream (rsockets): no TCP segments"
if [ "$topo" = two ]; then
	# The RoCE packets really crossed the veth, not a local shortcut.
	expect_delta rsock.before rsock.after "net.$SRC_NETDEV.tx_packets" -ge 5120 "rstream (rsockets): the packets crossed $SRC_NETDEV"
fi

# --- 4. the same over TCP: the counters must flip -----------------------------
counters_snapshot tcp.before
if run_pair tcp 7173 wait_tcp_listen \
	rstream -b "$addr" -p 7173 -S 1048576 -C 20 -I 1 -T s -T v -- \
	rstream -s "$addr" -p 7173 -S 1048576 -C 20 -I 1 -T s -T v; then
	pass "rstream (TCP sockets): 20 x 1 MiB verified"
else
	fail "rstream (TCP sockets) transfer to $addr"
fi
counters_snapshot tcp.after
expect_delta tcp.before tcp.after tcp.self.OutSegs -gt 100 "rstream (TCP sockets): TCP segments sent"
for dev in $devs; do
	expect_delta tcp.before tcp.after "roce.$dev.sent_pkts" -eq 0 "rstream (TCP sockets): no RoCE packets from $dev"
done
if [ "$topo" = two ]; then
	for ns in "$SRC_NS" "$DST_NS"; do
		expect_delta tcp.before tcp.after "tcp.$ns.OutSegs" -gt 100 "rstream (TCP sockets): tcp_out_segs $ns"
	done
	expect_delta tcp.before tcp.after "net.$SRC_NETDEV.tx_packets" -gt 100 "rstream (TCP sockets): the segments crossed $SRC_NETDEV"
fi

rm -rf "$work"
check_summary "rdma_smoke.$topo"
