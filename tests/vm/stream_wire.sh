#!/bin/sh
# shellcheck source-path=SCRIPTDIR
# stream_wire.sh LIB QSTREAM [MIB]: what a bulk stream through the library
# costs the wire, run INSIDE a topology "two" VM:
#
#     scripts/vm-run --topology two -- tests/vm/stream_wire.sh \
#         build/libmigrdma.so build/tests/bench/qstream 64
#
# Sends MIB MiB (default 64) of QEMU-shaped RAM stream (qstream: 64-iovec
# sendmsg calls, a non-blocking 32 KiB reader that checks every byte) from
# host src to host dst through LIB, three times, and checks:
#   1. each transfer completes byte-exact, with no TCP segment from either host
#      and at least 256 RoCE packets per MiB (4 KiB MTU: the data itself);
#   2. rxe resent nothing: dst's duplicate_request and out_of_seq_request
#      counters grow by less than one per MiB.  Posting a whole 2 MiB
#      message's WRITEs at once made rxe's sender outrun its 128-packet
#      window; it then resumed from another CPU and its packets overtook
#      each other, 1.5 to 3.4 resent per MiB, every run.
#
# Prints one PASS/FAIL line per check and exits non-zero if any failed.
set -eu

usage() {
	echo "usage: stream_wire.sh LIB QSTREAM [MIB] (inside scripts/vm-run --topology two)" >&2
	exit 2
}
[ $# -ge 2 ] && [ $# -le 3 ] || usage
lib=$1 qstream=$2 mib=${3:-64}

here=$(cd "$(dirname "$0")" && pwd -P)
# shellcheck source=../../scripts/lib/vm-counters.sh
. "${VM_LIB:-$here/../../scripts/lib}/vm-counters.sh"
. "$here/../lib/check.sh"

if [ "${VM_TOPOLOGY:-}" != two ]; then
	echo "FAIL: VM_TOPOLOGY is '${VM_TOPOLOGY:-}': run me with scripts/vm-run --topology two"
	exit 1
fi
work=$(mktemp -d /tmp/stream_wire.XXXXXX)

counters() {
	for _c in sent_pkts duplicate_request out_of_seq_request; do
		echo "$_c $(roce_counter "$DST_DEV" "$_c") $(roce_counter "$SRC_DEV" "$_c")"
	done
	echo "tcp $(($(tcp_out_segs "$SRC_NS") + $(tcp_out_segs "$DST_NS")))"
}

# delta FILE_BEFORE FILE_AFTER NAME COLUMN: growth of one counter.
delta() {
	_b=$(awk -v n="$3" -v k="$4" '$1 == n { print $k }' "$1")
	_a=$(awk -v n="$3" -v k="$4" '$1 == n { print $k }' "$2")
	echo $((_a - _b))
}

for round in 1 2 3; do
	port=$((24000 + round))
	counters >"$work/before"
	ip netns exec "$DST_NS" env LD_PRELOAD="$lib" MIGRDMA_TARGETS="$DST_ADDR:$port" \
		timeout 120 "$qstream" recv "$port" "$DST_ADDR" >"$work/recv.out" 2>"$work/recv.err" &
	rpid=$!
	i=0
	while [ $i -lt 300 ] && ! grep -q "listening on" "$work/recv.err" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
	src_rc=0
	ip netns exec "$SRC_NS" env LD_PRELOAD="$lib" MIGRDMA_TARGETS="$DST_ADDR:$port" \
		timeout 120 "$qstream" send "$DST_ADDR" "$port" "$mib" \
		>"$work/send.out" 2>"$work/send.err" || src_rc=$?
	dst_rc=0
	wait "$rpid" || dst_rc=$?
	counters >"$work/after"

	if [ "$src_rc" -eq 0 ] && [ "$dst_rc" -eq 0 ]; then
		pass "round $round: $mib MiB arrived byte-exact"
	else
		fail "round $round: sender exit $src_rc, receiver exit $dst_rc"
		sed 's/^/  | /' "$work/send.err" "$work/recv.err" | tail -n 20
		continue
	fi
	tcp=$(delta "$work/before" "$work/after" tcp 2)
	pkts=$(delta "$work/before" "$work/after" sent_pkts 3)
	if [ "$tcp" -eq 0 ] && [ "$pkts" -ge $((mib * 256)) ]; then
		pass "round $round: $pkts RoCE packets from src, no TCP segment from either host"
	else
		fail "round $round: $pkts RoCE packets from src (want >= $((mib * 256))), $tcp TCP segments from the hosts (want 0)"
	fi
	dup=$(delta "$work/before" "$work/after" duplicate_request 2)
	oos=$(delta "$work/before" "$work/after" out_of_seq_request 2)
	if [ "$dup" -lt "$mib" ] && [ "$oos" -lt "$mib" ]; then
		pass "round $round: rxe resent $dup packets, $oos out of sequence (< $mib each)"
	else
		fail "round $round: rxe resent $dup packets, $oos arrived out of sequence (want < 1 per MiB, $mib)"
	fi
done
rm -rf "$work"
check_summary stream_wire
