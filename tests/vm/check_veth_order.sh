#!/bin/bash
# check_veth_order.sh EXPECT [QSTREAM LIBMIGRDMA]: inside a topology-two VM,
# check vm-run's packet-order setting (scripts/VM.md, "Packet order").
#   EXPECT 0  plain veth (vm-run's default): VM_FLOW_STEERING=0 and no
#             receive flow steering on either end;
#   EXPECT 1  vm-run --veth-in-order: VM_FLOW_STEERING=1, both ends steer
#             over every CPU, and a 64 MiB QEMU-shaped stream through the
#             library arrives byte-exact over RoCE with no packet out of
#             order: no NAK at the sender (rcvd_seq_err) and no
#             out_of_seq_request at the receiver.  On the plain veth the
#             same stream usually draws several of each.
set -u

here=$(dirname "$0")
. "$here/../lib/check.sh"
# shellcheck source=../../scripts/lib/vm-counters.sh
. "${VM_LIB:-$here/../../scripts/lib}/vm-counters.sh"

expect=${1:?usage: check_veth_order.sh 0|1 [QSTREAM LIBMIGRDMA]}
qstream=${2:-}
lib=${3:-}

[ "${VM_TOPOLOGY:-}" = two ] || { echo "check_veth_order: needs topology two" >&2; exit 2; }

if [ "${VM_FLOW_STEERING:-}" = "$expect" ]; then
	pass "VM_FLOW_STEERING=$expect"
else
	fail "VM_FLOW_STEERING is '${VM_FLOW_STEERING:-}', expected $expect"
fi

all_cpus=$(printf '%x' $(((1 << $(nproc)) - 1)))
for dev in "$SRC_NETDEV" "$DST_NETDEV"; do
	mask=$(cat "/sys/class/net/$dev/queues/rx-0/rps_cpus")
	# The file pads with zeros and may group digits with commas.
	mask=$(echo "$mask" | tr -d ',' | sed 's/^0*//')
	want=$all_cpus
	[ "$expect" = 1 ] || want=
	if [ "$mask" = "$want" ]; then
		pass "$dev: rps_cpus '${mask:-0}'"
	else
		fail "$dev: rps_cpus '${mask:-0}', expected '${want:-0}'"
	fi
done

if [ "$expect" = 1 ]; then
	tmp=$(mktemp -d /tmp/veth_order.XXXXXX)
	port=24791
	naks0=$(roce_counter "$SRC_DEV" rcvd_seq_err)
	oos0=$(roce_counter "$DST_DEV" out_of_seq_request)
	pkts0=$(roce_sent_pkts "$SRC_DEV")
	env LD_PRELOAD="$lib" MIGRDMA_TARGETS="$DST_ADDR:$port" \
		timeout 120 "$qstream" recv "$port" "$DST_ADDR" >"$tmp/recv.json" 2>"$tmp/recv.err" &
	rpid=$!
	waited=0
	while ! grep -q "listening on" "$tmp/recv.err" 2>/dev/null && [ $waited -lt 300 ]; do
		sleep 0.1
		waited=$((waited + 1))
	done
	env LD_PRELOAD="$lib" MIGRDMA_TARGETS="$DST_ADDR:$port" \
		timeout 120 "$qstream" send "$DST_ADDR" "$port" 64 >"$tmp/send.json" 2>"$tmp/send.err"
	src=$?
	wait "$rpid"
	rrc=$?
	naks=$(($(roce_counter "$SRC_DEV" rcvd_seq_err) - naks0))
	oos=$(($(roce_counter "$DST_DEV" out_of_seq_request) - oos0))
	pkts=$(($(roce_sent_pkts "$SRC_DEV") - pkts0))
	if [ "$src" = 0 ] && [ "$rrc" = 0 ] && grep -q '"verified": *true' "$tmp/recv.json"; then
		pass "64 MiB stream arrived byte-exact"
	else
		fail "stream: send $src, recv $rrc: $(cat "$tmp/send.err" "$tmp/recv.err" "$tmp/recv.json")"
	fi
	# 64 MiB in 4 KiB packets: at least 16384 of them.
	if [ "$pkts" -ge 16384 ]; then
		pass "$pkts RoCE packets sent"
	else
		fail "only $pkts RoCE packets sent: the stream did not cross RoCE"
	fi
	if [ "$naks" = 0 ] && [ "$oos" = 0 ]; then
		pass "no packet out of order (NAKs 0, out_of_seq_request 0)"
	else
		fail "packets out of order: $naks NAKs at the sender, $oos out_of_seq_request at the receiver"
	fi
	rm -rf "$tmp"
fi

check_summary check_veth_order
