# vm-counters.sh: counters that show where bytes went, for tests running
# inside the VM of scripts/vm-run.  POSIX sh; source it:
#
#     . "$VM_LIB/vm-counters.sh"      # vm-run exports VM_LIB
#
# RoCE (rdma_rxe) packets:
#     roce_sent_pkts DEV          packets DEV has sent (RoCEv2, UDP 4791)
#     roce_rcvd_pkts DEV          packets DEV has received
#     roce_counter DEV NAME       any file of DEV's port-1 hw_counters
# TCP segments (the kernel's Tcp MIB, via nstat):
#     tcp_out_segs [NS]           TcpOutSegs, of network namespace NS if given
#     tcp_in_segs [NS]            TcpInSegs
#     tcp_counter NAME [NS]       any nstat counter, e.g. TcpRetransSegs
# Network interfaces:
#     netdev_stat DEV NAME        /sys/class/net/DEV/statistics/NAME, e.g.
#                                 tx_packets (of the caller's namespace)
# Before/after:
#     counters_snapshot NAME      record all of the above under NAME
#     counters_delta OLD NEW [KEY]
#                                 print "KEY DELTA" lines, or just the number
#                                 for one KEY
#
# Every function prints a bare number (or nothing) on stdout, and on failure
# prints a message on stderr and returns non-zero.
#
# Notes (measured on the Debian 6.1 kernel used by vm-run):
# - rxe's hw_counters exist only in the sysfs of the initial network
#   namespace: a process inside "ip netns exec NS" (which mounts a /sys for
#   NS) sees /sys/class/infiniband/DEV but no ports/1/hw_counters there.
#   These functions then read the files through PID 1's mount namespace.
# - nstat is run with -a (absolute values, ignore its history file) and -s
#   (do not write that history file), so calls never disturb each other.
# - In vm-run's "two" topology both hosts share one TCP/IP stack (rxe cannot
#   work across namespaces on this kernel; VM_NETNS_SHARED=1 says so), so
#   tcp_out_segs src and tcp_out_segs dst return the same, system-wide value.
#   The RoCE counters are per device and do tell the two hosts apart.

# _vmc_read FILE: print the contents of a sysfs FILE of the initial namespace.
_vmc_read() {
	if [ -r "$1" ]; then
		cat "$1"
	elif [ "$(id -u)" = 0 ] && command -v nsenter >/dev/null 2>&1 &&
		nsenter -t 1 -m -- test -r "$1" 2>/dev/null; then
		nsenter -t 1 -m -- cat "$1"
	else
		echo "vm-counters: cannot read $1" >&2
		return 1
	fi
}

# roce_counter DEV NAME: print hw_counters/NAME of port 1 of RDMA device DEV.
roce_counter() {
	if [ $# -ne 2 ]; then
		echo "usage: roce_counter DEV NAME" >&2
		return 2
	fi
	_vmc_read "/sys/class/infiniband/$1/ports/1/hw_counters/$2"
}

# roce_sent_pkts DEV: print the number of RoCE packets DEV has sent.
roce_sent_pkts() {
	roce_counter "${1:?usage: roce_sent_pkts DEV}" sent_pkts
}

# roce_rcvd_pkts DEV: print the number of RoCE packets DEV has received.
roce_rcvd_pkts() {
	roce_counter "${1:?usage: roce_rcvd_pkts DEV}" rcvd_pkts
}

# roce_devices: print the names of all RDMA devices, one per line.
roce_devices() {
	if [ -d /sys/class/infiniband ]; then
		ls /sys/class/infiniband
	fi
}

# tcp_counter NAME [NS]: print the nstat counter NAME (e.g. TcpOutSegs), in
# network namespace NS if given, otherwise in the caller's namespace.
tcp_counter() {
	if [ $# -lt 1 ] || [ $# -gt 2 ]; then
		echo "usage: tcp_counter NAME [NS]" >&2
		return 2
	fi
	if [ -n "${2:-}" ]; then
		_vmc_out=$(ip netns exec "$2" nstat -asz "$1") || return 1
	else
		_vmc_out=$(nstat -asz "$1") || return 1
	fi
	# nstat prints "#kernel" and then "NAME VALUE RATE".
	_vmc_val=$(printf '%s\n' "$_vmc_out" | awk -v n="$1" '$1 == n { print $2; exit }')
	if [ -z "$_vmc_val" ]; then
		echo "vm-counters: nstat knows no counter $1${2:+ in netns $2}" >&2
		return 1
	fi
	echo "$_vmc_val"
}

# tcp_out_segs [NS]: print TcpOutSegs (TCP segments sent), in NS if given.
tcp_out_segs() {
	tcp_counter TcpOutSegs "$@"
}

# tcp_in_segs [NS]: print TcpInSegs (TCP segments received), in NS if given.
tcp_in_segs() {
	tcp_counter TcpInSegs "$@"
}

# netdev_stat DEV NAME: print /sys/class/net/DEV/statistics/NAME (tx_packets,
# rx_bytes, ...) of network interface DEV of the caller's namespace.
netdev_stat() {
	if [ $# -ne 2 ]; then
		echo "usage: netdev_stat DEV NAME" >&2
		return 2
	fi
	if [ ! -r "/sys/class/net/$1/statistics/$2" ]; then
		echo "vm-counters: no network interface $1 (or no counter $2) here" >&2
		return 1
	fi
	cat "/sys/class/net/$1/statistics/$2"
}

# _vmc_dir: where snapshots live (override with VM_COUNTERS_DIR).
_vmc_dir() {
	echo "${VM_COUNTERS_DIR:-/tmp/vm-counters}"
}

# counters_snapshot NAME: record, under NAME, one "KEY VALUE" line for
#   roce.DEV.sent_pkts / roce.DEV.rcvd_pkts   every RDMA device
#   tcp.NS.OutSegs / tcp.NS.InSegs            the caller's namespace (NS
#                                             "self") and every named netns
#   net.DEV.tx_packets / net.DEV.rx_packets   every network interface of the
#                                             caller's namespace but lo
counters_snapshot() {
	if [ $# -ne 1 ]; then
		echo "usage: counters_snapshot NAME" >&2
		return 2
	fi
	_vmc_d=$(_vmc_dir)
	mkdir -p "$_vmc_d" || return 1
	_vmc_f="$_vmc_d/$1"
	: >"$_vmc_f.tmp" || return 1
	for _vmc_dev in $(roce_devices); do
		for _vmc_c in sent_pkts rcvd_pkts; do
			_vmc_v=$(roce_counter "$_vmc_dev" "$_vmc_c") || return 1
			echo "roce.$_vmc_dev.$_vmc_c $_vmc_v" >>"$_vmc_f.tmp"
		done
	done
	for _vmc_ns in self $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
		for _vmc_c in OutSegs InSegs; do
			if [ "$_vmc_ns" = self ]; then
				_vmc_v=$(tcp_counter "Tcp$_vmc_c") || return 1
			else
				_vmc_v=$(tcp_counter "Tcp$_vmc_c" "$_vmc_ns") || return 1
			fi
			echo "tcp.$_vmc_ns.$_vmc_c $_vmc_v" >>"$_vmc_f.tmp"
		done
	done
	for _vmc_p in /sys/class/net/*; do
		_vmc_dev=${_vmc_p##*/}
		if [ "$_vmc_dev" = lo ] || [ ! -d "$_vmc_p/statistics" ]; then
			continue
		fi
		for _vmc_c in tx_packets rx_packets; do
			_vmc_v=$(netdev_stat "$_vmc_dev" "$_vmc_c") || return 1
			echo "net.$_vmc_dev.$_vmc_c $_vmc_v" >>"$_vmc_f.tmp"
		done
	done
	mv "$_vmc_f.tmp" "$_vmc_f"
}

# counters_delta OLD NEW [KEY]: compare two snapshots.  Without KEY print
# "KEY DELTA" for every key of NEW; with KEY print just that delta (a key
# missing from OLD counts from 0; a key missing from NEW is an error).
counters_delta() {
	if [ $# -lt 2 ] || [ $# -gt 3 ]; then
		echo "usage: counters_delta OLD NEW [KEY]" >&2
		return 2
	fi
	_vmc_d=$(_vmc_dir)
	for _vmc_f in "$_vmc_d/$1" "$_vmc_d/$2"; do
		if [ ! -f "$_vmc_f" ]; then
			echo "vm-counters: no snapshot $_vmc_f (take it with counters_snapshot)" >&2
			return 1
		fi
	done
	awk -v key="${3:-}" '
		NR == FNR { old[$1] = $2; next }
		# %.0f: exact for counters up to 2^53, unlike %d or print in mawk.
		key == "" { printf "%s %.0f\n", $1, $2 - old[$1]; next }
		$1 == key { printf "%.0f\n", $2 - old[$1]; found = 1 }
		END {
			if (key != "" && !found) {
				print "vm-counters: no key " key " in the snapshot" > "/dev/stderr"
				exit 1
			}
		}' "$_vmc_d/$1" "$_vmc_d/$2"
}
