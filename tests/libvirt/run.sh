#!/bin/bash
# run.sh: libvirt drives a live migration through libmigrdma, for real,
# inside the soft-RoCE test VM (topology two).  Run it through vm-run:
#
#   scripts/vm-run --topology two --timeout 600 --share OUT -- \
#       tests/libvirt/run.sh --out OUT --kernel dirty.elf --lib libmigrdma.so
#
# Two libvirtd daemons (Debian's 9.0, no systemd) run in their own mount
# and UTS namespaces over the VM's one network namespace (rxe needs the
# initial one), each with its own /etc/libvirt, /run/libvirt,
# /var/lib/libvirt, /var/log/libvirt and host_uuid.  The domain is defined
# as README.md's libvirt recipe says (qemu:commandline env, memtune), with
# the memory-dirtying test guest as its <kernel>, QEMU running as
# --qemu-user (ctest: libvirt-qemu) with cgroup_device_acl naming the RDMA
# devices and the library's files in a directory that user owns.  Checks
# (besides QEMU's user and its memlock limit from <memtune>):
#   1. virsh migrate --live src -> dst with the guest running and dirtying:
#      RoCE packets > 0 on both devices, 0 TCP segments during the
#      migration, the domain running on dst and gone from src, one close
#      line (transport=rdma) in each QEMU's MIGRDMA_LOG_FILE and one
#      MIGRDMA_STATS record per side;
#   2. the copy paused on dst, pmemsave (virsh qemu-monitor-command), then
#      virsh migrate --live dst -> src of the paused copy, pmemsave there:
#      identical, RoCE again, then resumed and running on src.
# Options: --out DIR (results), --kernel ELF (the guest), --lib FILE,
#          --size MIB (guest RAM, default 128), --port N (default 49152),
#          --qemu-user NAME (qemu.conf's user and group, default root; e.g.
#          libvirt-qemu runs QEMU unprivileged, as Debian's default does).
set -u

prog=libvirt-run
out=/tmp/libvirt-out kernel="" lib="" size=128 port=49152 qemu_user=root
while [ $# -gt 0 ]; do
	case $1 in
	--out) out=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--lib) lib=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	--qemu-user) qemu_user=$2; shift 2 ;;
	*) echo "$prog: unknown option $1" >&2; exit 2 ;;
	esac
done
fails=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
die() { echo "FAIL: $*"; dump_logs; exit 1; }

[ "${VM_TOPOLOGY:-}" = two ] || { echo "$prog: run me in vm-run --topology two" >&2; exit 2; }
[ -f "$kernel" ] && [ -f "$lib" ] || { echo "$prog: --kernel and --lib must name files" >&2; exit 2; }
for t in libvirtd virsh unshare; do
	command -v "$t" >/dev/null || die "$t is not installed (scripts/setup installs libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients)"
done
# shellcheck disable=SC1091
. "$VM_LIB/vm-counters.sh"
mkdir -p "$out"
work=/tmp/libvirt
mkdir -p "$work"

dump_logs() {
	for side in src dst; do
		for f in "$work/$side/log/libvirtd.log" "$work/$side/log/qemu/"*.log "$out/migrdma-$side.log"; do
			[ -f "$f" ] || continue
			echo "---- $f (last 30 lines)"
			tail -n 30 "$f"
		done
	done
}

# What the QEMU driver needs without systemd (see /work/shared/FACTS.md §5):
# its user and group must exist even when QEMU runs as root.
getent group kvm >/dev/null || groupadd -r kvm
getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
	useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu

# One daemon per side: private copies of libvirt's directories, bound over
# the standard paths inside the daemon's own mount namespace.
start_daemon() {
	local side=$1 uuid=$2 d=$work/$1
	mkdir -p "$d/etc/qemu" "$d/run" "$d/lib" "$d/log" "$d/cache"
	cp -a /etc/libvirt/. "$d/etc/"
	cat >"$d/etc/qemu.conf" <<EOF
user = "$qemu_user"
group = "$qemu_user"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "file"
cgroup_device_acl = [ $acl ]
EOF
	cat >"$d/etc/libvirtd.conf" <<EOF
host_uuid = "$uuid"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
	unshare --mount --uts --propagation private bash -c '
		d=$1
		hostname "vm-$2"
		mount --bind "$d/etc" /etc/libvirt
		mount --bind "$d/run" /run/libvirt 2>/dev/null || { mkdir -p /run/libvirt && mount --bind "$d/run" /run/libvirt; }
		mount --bind "$d/lib" /var/lib/libvirt
		mount --bind "$d/log" /var/log/libvirt
		mount --bind "$d/cache" /var/cache/libvirt 2>/dev/null || true
		exec libvirtd --pid-file /run/libvirt/libvirtd.pid
	' sh "$d" "$side" >"$d/daemon.out" 2>&1 &
	echo $! >"$d/pid"
}
uri() { echo "qemu:///system?socket=$work/$1/run/libvirt-sock"; }
vsh() { local side=$1; shift; virsh -q -c "$(uri "$side")" "$@"; }

# QEMU runs in a mount namespace whose /dev holds only the devices of
# cgroup_device_acl: libvirt's defaults plus the RDMA character devices.
acl='"/dev/null", "/dev/full", "/dev/zero", "/dev/random", "/dev/urandom", "/dev/ptmx", "/dev/kvm", "/dev/userfaultfd"'
for dev in /dev/infiniband/*; do
	[ -c "$dev" ] && acl="$acl, \"$dev\""
done
echo "cgroup_device_acl: $acl"
mkdir -p /run/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
start_daemon src 8f0e7b0a-0000-4000-8000-000000000001
start_daemon dst 8f0e7b0a-0000-4000-8000-000000000002
for side in src dst; do
	i=0
	until vsh "$side" version >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 120 ] || die "libvirtd ($side) did not answer within 60 s: $(cat "$work/$side/daemon.out")"
		kill -0 "$(cat "$work/$side/pid")" 2>/dev/null || die "libvirtd ($side) exited: $(cat "$work/$side/daemon.out")"
		sleep 0.5
	done
done
ok "two libvirtd daemons answer ($(vsh src version | grep -i 'running hypervisor' | sed 's/^ *//'))"

# The domain, as README.md's recipe defines it (the log path is one the
# QEMU process can write, see README).
dom=migrdma-test
xml() {
	local side=$1
	cat <<EOF
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$dom</name>
  <uuid>5f1d2c3b-0000-4000-8000-00000000abcd</uuid>
  <memory unit='MiB'>$size</memory>
  <memtune>
    <hard_limit unit='MiB'>$((size + 1024 + 1024))</hard_limit>
  </memtune>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$kernel</kernel>
    <cmdline>window=32 rate=8</cmdline>
  </os>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:env name='LD_PRELOAD' value='$lib'/>
    <qemu:env name='MIGRDMA_TARGETS' value='*:49152-49215'/>
    <qemu:env name='MIGRDMA_LOG_FILE' value='$logdir/migrdma.log'/>
    <qemu:env name='MIGRDMA_STATS' value='$logdir/migrdma-stats.jsonl'/>
  </qemu:commandline>
</domain>
EOF
}
# The library's files, in a directory QEMU's user may write (README).
logdir=/var/log/migrdma
rm -rf "$logdir"
install -d -o "$qemu_user" -g "$qemu_user" -m 0750 "$logdir"
install -d -o "$qemu_user" -g "$qemu_user" -m 0750 "$work/ram"
xml src >"$work/dom.xml"
cp "$work/dom.xml" "$out/domain.xml"
vsh src define "$work/dom.xml" >/dev/null || die "virsh define failed"
vsh src start "$dom" >/dev/null || die "virsh start failed"
[ "$(vsh src domstate "$dom")" = running ] || die "the domain is not running on src: $(vsh src domstate "$dom")"
ok "domain defined and started on src (TCG, guest $kernel)"
# What <memtune><hard_limit> did to QEMU's memlock limit: the README's
# recipe relies on it for an unprivileged QEMU (this one runs as root).
qpid=$(pgrep -f "guest=$dom," | head -1)
memlock=$(awk '/^Max locked memory/ { print $4 }' "/proc/$qpid/limits" 2>/dev/null)
want=$(((size + 2048) * 1024 * 1024))
echo "QEMU pid $qpid: memlock limit ${memlock:-?} bytes (hard_limit $want)"
quser=$(stat -c %U "/proc/$qpid" 2>/dev/null)
[ "$quser" = "$qemu_user" ] && ok "QEMU runs as $qemu_user" || bad "QEMU runs as '$quser', not $qemu_user"
[ "$memlock" = "$want" ] && ok "<memtune><hard_limit> set QEMU's memlock limit to $want bytes" ||
	bad "QEMU's memlock limit is ${memlock:-unknown}, not the hard_limit $want"
sleep 2

migrate() {
	local from=$1 to=$2 addr=$3
	# --parallel: without it libvirtd connects the migration socket
	# itself and hands QEMU the fd, so QEMU's library never sees a
	# connect (found here: "unable to connect to server at ...:49152").
	vsh "$from" migrate --live --parallel --parallel-connections 2 "$dom" "$(uri "$to")" \
		--migrateuri "tcp://$addr:$port" --verbose 2>&1
}

# 1. Live, guest running.
counters_snapshot before1
t0=$(date +%s.%N)
if ! mout=$(migrate src dst "$DST_ADDR"); then
	echo "$mout"
	die "virsh migrate src -> dst failed"
fi
t1=$(date +%s.%N)
counters_snapshot after1
roce_src=$(counters_delta before1 after1 "roce.$SRC_DEV.sent_pkts")
roce_dst=$(counters_delta before1 after1 "roce.$DST_DEV.sent_pkts")
tcp=$(counters_delta before1 after1 tcp.self.OutSegs)
echo "migration 1: $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, RoCE packets sent src $roce_src dst $roce_dst, TCP segments $tcp"
[ "${roce_src:-0}" -gt 0 ] && [ "${roce_dst:-0}" -gt 0 ] && ok "src -> dst went over RoCE ($roce_src + $roce_dst packets)" ||
	bad "src -> dst: RoCE packets src=$roce_src dst=$roce_dst"
[ "${tcp:-1}" -eq 0 ] && ok "src -> dst: 0 TCP segments" || bad "src -> dst: $tcp TCP segments"
state=$(vsh dst domstate "$dom" 2>&1)
[ "$state" = running ] && ok "the domain runs on dst" || bad "domain state on dst: $state"
# Defined (persistent) on src, so it stays there, shut off.
state=$(vsh src domstate "$dom" 2>&1)
[ "$state" = "shut off" ] && ok "the domain is shut off on src" || bad "domain state on src: $state"

# 2. RAM identical: pause the copy on dst, dump it, migrate the paused copy
#    back, dump it on src, compare, resume.
[ "$(vsh dst domstate "$dom")" = running ] || die "nothing to compare: the domain is not on dst"
vsh dst suspend "$dom" >/dev/null || die "virsh suspend on dst failed"
bytes=$((size * 1024 * 1024))
pmem() {
	vsh "$1" qemu-monitor-command "$dom" \
		"{\"execute\":\"pmemsave\",\"arguments\":{\"val\":0,\"size\":$bytes,\"filename\":\"$2\"}}" >/dev/null
}
pmem dst "$work/ram/dst.bin" || die "pmemsave on dst failed"
counters_snapshot before2
if ! mout=$(migrate dst src "$SRC_ADDR"); then
	echo "$mout"
	die "virsh migrate dst -> src (paused copy) failed"
fi
counters_snapshot after2
roce2=$(counters_delta before2 after2 "roce.$DST_DEV.sent_pkts")
tcp2=$(counters_delta before2 after2 tcp.self.OutSegs)
state=$(vsh src domstate "$dom" 2>&1)
[ "$state" = paused ] || bad "the paused copy arrived on src as '$state'"
pmem src "$work/ram/src.bin" || die "pmemsave on src failed"
if cmp -s "$work/ram/dst.bin" "$work/ram/src.bin" && [ "$(stat -c %s "$work/ram/src.bin")" = "$bytes" ]; then
	ok "guest RAM identical after dst -> src ($size MiB, pmemsave on both paused copies)"
else
	bad "guest RAM differs after dst -> src: $(cmp "$work/ram/dst.bin" "$work/ram/src.bin" 2>&1 | head -1)"
fi
[ "${roce2:-0}" -gt 0 ] && [ "${tcp2:-1}" -eq 0 ] && ok "dst -> src: $roce2 RoCE packets, 0 TCP segments" ||
	bad "dst -> src: RoCE $roce2, TCP $tcp2"
vsh src resume "$dom" >/dev/null || bad "virsh resume on src failed"
sleep 1
state=$(vsh src domstate "$dom" 2>&1)
[ "$state" = running ] && ok "resumed: the domain runs on src again" || bad "state on src after resume: $state"

cp "$logdir/migrdma.log" "$logdir/migrdma-stats.jsonl" "$out/" 2>/dev/null
# The proof the library leaves: one close line per connection at the
# default level, and one stats record each, all over RDMA.
closed=$(grep -c 'notice \[c[0-9]*\] closed: transport=rdma' "$out/migrdma.log" 2>/dev/null || true)
tcpl=$(grep -c 'closed: transport=tcp' "$out/migrdma.log" 2>/dev/null || true)
recs=$(grep -c '"transport":"rdma"' "$out/migrdma-stats.jsonl" 2>/dev/null || true)
errs=$(grep -cE ' (error|warn) ' "$out/migrdma.log" 2>/dev/null || true)
echo "library log: $closed close lines over RDMA, $tcpl over TCP, $errs warnings/errors; $recs stats records"
[ "${closed:-0}" -ge 4 ] && [ "${tcpl:-0}" -eq 0 ] && [ "${recs:-0}" -ge 4 ] &&
	ok "each side of both migrations logged its close line and stats record (transport rdma)" ||
	bad "close lines/stats records missing: $closed close lines, $recs records"
[ "${errs:-0}" -eq 0 ] || bad "the library logged $errs warnings or errors"
grep 'closed:' "$out/migrdma.log" | head -4

vsh src destroy "$dom" >/dev/null 2>&1
for side in src dst; do kill "$(cat "$work/$side/pid")" 2>/dev/null; done
if [ "$fails" -ne 0 ]; then
	dump_logs
	echo "FAIL: $fails check(s) failed"
	exit 1
fi
echo "PASS: libvirt live migration through libmigrdma"
