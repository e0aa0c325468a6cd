#!/bin/bash
# vm-guest.sh: PID 1 inside the VM booted by scripts/vm-run, after the
# initramfs has switched to the host's root (9p, read-only, under a tmpfs
# overlay).  It finishes setting up the machine, builds the requested
# network/RDMA topology, runs the caller's command and reports its exit status
# to the host through a marker line after the command's output, then powers
# off.
#
#   usage (from the job's boot script): vm-guest.sh JOB_ENV_FILE
#
# JOB_ENV_FILE is written by vm-run (bash syntax) and defines VM_NONCE,
# VM_TOPOLOGY, VM_CWD, VM_KVER, VM_MODULES, VM_LIB, VM_SHARES[], VM_CMD[] and
# VM_PASS_ENV[].
#
# No "set -e": this is PID 1, and if it exits the kernel panics.  Every
# failure goes through fail(), which reports and powers off.
set -u

# The marker lines the host looks for; the nonce makes sure the command's own
# output can never be mistaken for one.
VM_NONCE=unknown

power_off() {
	sync
	# sysrq 'o' powers off at once, no init system needed.
	echo o >/proc/sysrq-trigger
	# Never return: PID 1 exiting would panic the kernel.  (The host root
	# may already be gone, and sleep with it: fall back to a builtin.)
	while :; do sleep 60 2>/dev/null || read -r -t 60 _ </dev/console; done
}

fail() {
	# The "vm-guest:" prefix makes the host print this line even though it
	# hides the rest of the boot chatter.
	echo "vm-guest: $*"
	echo "@@MIGRDMA-VM-SETUP-FAILED $VM_NONCE@@"
	power_off
}

run() {
	# Run a setup command, failing with its own output if it fails.
	local out
	if ! out=$("$@" 2>&1); then
		fail "'$*' failed: $out"
	fi
}

[ $# -eq 1 ] || fail "usage: vm-guest.sh JOB_ENV_FILE"
# shellcheck disable=SC1090
. "$1" || fail "cannot read the job file $1"

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# --- the rest of a minimal system ---------------------------------------------
# /proc, /sys and /dev were moved here by the initramfs.
mkdir -p /dev/pts /dev/shm
run mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
run mount -t tmpfs -o mode=1777 tmpfs /dev/shm
echo vm >/proc/sys/kernel/hostname
# The lower layer is the host's own filesystem: network namespaces the host
# happens to have registered under /run/netns are meaningless in here.
rm -rf /run/netns 2>/dev/null

# modprobe needs the VM kernel's modules at the standard place; the host's own
# /lib/modules (a different kernel) stays untouched underneath.
mkdir -p "/lib/modules/$VM_KVER"
run mount --bind "$VM_MODULES" "/lib/modules/$VM_KVER"

# Read-write shares, each its own 9p export (tag shareN), mounted over the
# read-only overlay at the host path.  cache=none: writes reach the host
# immediately, so nothing is lost by the abrupt sysrq power-off.
i=0
for dir in "${VM_SHARES[@]}"; do
	run mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none "share$i" "$dir"
	i=$((i + 1))
done

# All topologies load the same modules, so "none" differs from "one" only by
# the absence of an RDMA device.
run modprobe -a rdma_rxe rdma_ucm ib_uverbs veth dummy

run ip link set lo up

# COMMAND's output goes to the virtio-serial port "migrdma.out" when vm-run
# provides one (virtio device type 3): the emulated serial port is ten times
# slower.  Without it (an older vm-run) it shares the serial console.
cmd_out=/dev/console
if grep -qx 0x0003 /sys/bus/virtio/devices/*/device 2>/dev/null; then
	run modprobe virtio_console
	deadline=$((SECONDS + 10))
	while :; do
		for f in /sys/class/virtio-ports/*/name; do
			if [ "$(cat "$f" 2>/dev/null)" = migrdma.out ]; then
				port=${f%/name}
				port=/dev/${port##*/}
				if [ -c "$port" ]; then
					cmd_out=$port
					break 2
				fi
			fi
		done
		[ $SECONDS -lt $deadline ] || fail "the virtio-serial port migrdma.out never appeared"
		sleep 0.05
	done
fi

# --- topology ------------------------------------------------------------------
wait_port_active() {
	# wait_port_active DEV [NS]: rxe ports become ACTIVE once the netdev is
	# up; give it a few seconds, TCG is slow.
	local dev=$1 ns=${2:-} state deadline=$((SECONDS + 15))
	while :; do
		if [ -n "$ns" ]; then
			state=$(ip netns exec "$ns" rdma link show "$dev/1" 2>&1)
		else
			state=$(rdma link show "$dev/1" 2>&1)
		fi
		case $state in
		*"state ACTIVE"*) return 0 ;;
		esac
		[ $SECONDS -lt $deadline ] || fail "RDMA port $dev/1 ${ns:+(netns $ns) }is not ACTIVE: $state"
		sleep 0.1
	done
}

topo_env=()
case $VM_TOPOLOGY in
none)
	topo_env=(VM_TOPOLOGY=none)
	;;
one)
	run ip link add dummy0 mtu 9000 type dummy
	run ip addr add 198.18.0.1/24 dev dummy0
	run ip link set dummy0 up
	run rdma link add rxe0 type rxe netdev dummy0
	wait_port_active rxe0
	topo_env=(VM_TOPOLOGY=one VM_ADDR=198.18.0.1 VM_DEV=rxe0)
	;;
two)
	# Two "hosts" joined by a veth pair, each end with its own rxe device.
	#
	# Why not one network namespace per host: rdma_rxe in this kernel
	# (Debian 6.1, and 6.12 too) does its UDP/4791 receive socket and its
	# route lookups in the initial namespace only, so an rxe device whose
	# netdev lives in another namespace never sends or receives a packet
	# (rping reports RDMA_CM_EVENT_UNREACHABLE and sent_pkts stays 0).  And
	# rdma_cm only uses a device whose netdev is in the caller's namespace.
	# So both hosts share the initial namespace; "src" and "dst" are names
	# for it (ip netns exec works, see below), and policy routing makes
	# traffic between 198.18.0.1 and .2 really cross the veth instead of
	# being delivered locally through lo.
	run ip link add veth_src mtu 9000 type veth peer name veth_dst mtu 9000
	run ip addr add 198.18.0.1/24 dev veth_src
	run ip addr add 198.18.0.2/24 dev veth_dst
	for dev in veth_src veth_dst; do
		# A packet from one local address arriving for another is
		# "martian" unless accept_local is set and rp_filter is off.
		echo 1 >"/proc/sys/net/ipv4/conf/$dev/accept_local"
		echo 0 >"/proc/sys/net/ipv4/conf/$dev/rp_filter"
	done
	echo 0 >/proc/sys/net/ipv4/conf/all/rp_filter
	run ip link set veth_src up
	run ip link set veth_dst up
	# Packet order (--veth-in-order; scripts/VM.md).  A veth queues each
	# packet on the receive backlog of the CPU that sent it, and rxe sends
	# one QP's packets from whichever CPU runs its requester (the posting
	# thread, or the softirq that took an ACK), so a burst from one CPU can
	# overtake the tail of one from the other; the responder NAKs the gap
	# and the requester resends.  Receive flow steering over all CPUs sends
	# every packet of one UDP flow, i.e. one QP, to one CPU's backlog, so
	# they stay in order, as on a wire.  It costs an inter-processor
	# interrupt per batch, which under TCG adds latency, so it is not the
	# default.
	if [ "${VM_FLOW_STEERING:-0}" = 1 ]; then
		rps_mask=$(printf '%x' $(((1 << $(nproc)) - 1)))
		for dev in veth_src veth_dst; do
			echo "$rps_mask" >"/sys/class/net/$dev/queues/rx-0/rps_cpus" ||
				fail "cannot set receive flow steering on $dev"
		done
	fi
	# Rule order: what arrives on a veth end is delivered locally; what is
	# sent to the other host leaves through its own end; only then the usual
	# local table (which would otherwise short-cut everything through lo).
	run ip rule add pref 10 iif veth_src lookup local
	run ip rule add pref 11 iif veth_dst lookup local
	run ip route add 198.18.0.2 dev veth_src src 198.18.0.1 table 101
	run ip route add 198.18.0.1 dev veth_dst src 198.18.0.2 table 102
	run ip rule add pref 20 to 198.18.0.2 lookup 101
	run ip rule add pref 21 to 198.18.0.1 lookup 102
	run ip rule add pref 100 lookup local
	run ip rule del pref 0 lookup local
	run rdma link add rxe_src type rxe netdev veth_src
	run rdma link add rxe_dst type rxe netdev veth_dst
	wait_port_active rxe_src
	wait_port_active rxe_dst
	# "ip netns exec src|dst CMD" keeps working (and keeps scripts ready for
	# a kernel where real namespaces work): both names are the initial
	# namespace.
	mkdir -p /run/netns
	for ns in src dst; do
		: >"/run/netns/$ns"
		run mount --bind /proc/1/ns/net "/run/netns/$ns"
	done
	topo_env=(VM_TOPOLOGY=two SRC_NS=src DST_NS=dst SRC_ADDR=198.18.0.1 DST_ADDR=198.18.0.2
		SRC_DEV=rxe_src DST_DEV=rxe_dst SRC_NETDEV=veth_src DST_NETDEV=veth_dst VM_NETNS_SHARED=1
		VM_FLOW_STEERING="${VM_FLOW_STEERING:-0}")
	;;
*)
	fail "unknown topology '$VM_TOPOLOGY'"
	;;
esac

[ -d "$VM_CWD" ] || fail "working directory $VM_CWD does not exist in the VM"

# --- the command -------------------------------------------------------------
# A clean environment: only what vm-run passes plus the topology description.
# TERM=dumb and the pagers: never page or colour, even on the tty fallback.
cmd_env=(
	PATH="$PATH" HOME=/root USER=root LOGNAME=root SHELL=/bin/bash
	TERM=dumb PAGER=cat SYSTEMD_PAGER=cat
	VM_LIB="$VM_LIB"
	"${topo_env[@]}"
	"${VM_PASS_ENV[@]}"
)

exec 4>"$cmd_out" || fail "cannot open $cmd_out"
echo "@@MIGRDMA-VM-START $VM_NONCE@@" >&4
(
	exec 4>&-
	cd "$VM_CWD" || exit 125
	# Memory registration pins pages; rdma needs an unlimited memlock.
	ulimit -l unlimited || exit 125
	exec env -i "${cmd_env[@]}" "${VM_CMD[@]}"
) </dev/null >&4 2>&4
rc=$?
sync
# Once this write has returned, vm-run has the marker (see vm-run), except
# on the serial fallback, a tty, whose buffer must drain first.
echo "@@MIGRDMA-VM-EXIT $VM_NONCE $rc@@" >&4
[ "$cmd_out" != /dev/console ] || perl -MPOSIX -e 'POSIX::tcdrain(4)' 2>/dev/null || sleep 0.5
power_off
