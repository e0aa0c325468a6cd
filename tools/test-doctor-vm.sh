#!/bin/sh
# test-doctor-vm.sh VM_RUN MIGRDMA_TOOL: ctest vm.doctor.
#
# Boots the soft-RoCE VM (topology one: dummy0 198.18.0.1 with rxe0) and runs
# "migrdma doctor" inside it:
#   1. with the harness's set-up it passes (exit 0), reports rxe0 port 1
#      ACTIVE, the library loading and the target reached through rxe0;
#   2. with "ulimit -l 64" and without CAP_IPC_LOCK it fails (exit 1) on
#      the memlock check, with the fix;
#   3. with "ulimit -l 64" as root (who has CAP_IPC_LOCK) it only warns.
#
# The same script runs inside the VM as "test-doctor-vm.sh --guest TOOL".
#
# "ulimit -l" is not POSIX, but dash, bash and busybox sh all have it.
# shellcheck disable=SC3045
set -eu

usage() {
	echo "usage: test-doctor-vm.sh VM_RUN MIGRDMA_TOOL" >&2
	exit 2
}

if [ "${1:-}" != --guest ]; then
	[ $# -eq 2 ] || usage
	self=$(cd "$(dirname "$0")" && pwd -P)/$(basename "$0")
	tool=$(cd "$(dirname "$2")" && pwd -P)/$(basename "$2")
	exec "$1" --topology one --timeout 300 -- "$self" --guest "$tool"
fi

# ---- inside the VM ---------------------------------------------------------------
[ $# -eq 2 ] || usage
tool=$2
out=$(mktemp /tmp/doctor.XXXXXX)
failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}
show() { sed 's/^/  | /' "$out"; }
# has ERE WHAT: the last doctor output has a line matching ERE.
has() {
	if grep -Eq -- "$1" "$out"; then
		pass "$2"
	else
		fail "$2: no line matching '$1'"
	fi
}

addr=${VM_ADDR:-198.18.0.1}
dev=${VM_DEV:-rxe0}

echo "== 1. the harness's set-up"
rc=0
"$tool" doctor -t "$addr:4444" >"$out" 2>&1 || rc=$?
show
if [ "$rc" -eq 0 ]; then
	pass "doctor exits 0"
else
	fail "doctor exits $rc, expected 0"
fi
has "^ok +$dev port 1: ACTIVE, Ethernet \(RoCE\), active MTU 4096, netdev dummy0$" "$dev port 1 reported ACTIVE"
has '^ok +library: .*libmigrdma\.so \(migrdma [0-9]+\.[0-9]+\.[0-9]+\) loads and defines connect, fcntl64 and close_range$' "library loads, with its version"
has '^ok +/dev/infiniband/rdma_cm opens read-write' "rdma_cm is usable"
has "^ok +target $addr:4444: local, a listener binds to $dev port 1; connections to it use $dev port 1 from $addr, GID index [0-9]+ ::ffff:$addr \(RoCE v2\), netdev dummy0$" \
	"target resolved to $dev"
has '^ok +memlock limit unlimited' "memlock unlimited"
if grep -q '^FAIL' "$out"; then
	fail "a FAIL line in a passing run"
fi

echo "== 2. ulimit -l 64, no CAP_IPC_LOCK"
rc=0
(
	ulimit -l 64
	exec setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock "$tool" doctor -t "$addr:4444"
) >"$out" 2>&1 || rc=$?
show
if [ "$rc" -eq 1 ]; then
	pass "doctor exits 1"
else
	fail "doctor exits $rc, expected 1"
fi
has '^FAIL +memlock limit 64 KiB \(hard limit 64 KiB\) is below what the configuration may pin, about [0-9]+ MiB' "memlock FAIL"
has '^ +fix: ulimit -l unlimited .*LimitMEMLOCK=infinity.*<memtune><hard_limit>' "memlock fix"

echo "== 3. ulimit -l 64 as root"
rc=0
(
	ulimit -l 64
	exec "$tool" doctor -t "$addr:4444"
) >"$out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
	pass "doctor exits 0 (CAP_IPC_LOCK lifts the limit)"
else
	fail "doctor exits $rc, expected 0"
	show
fi
has '^warn +memlock limit 64 KiB .*CAP_IPC_LOCK' "memlock warn mentions CAP_IPC_LOCK"

rm -f "$out"
if [ "$failures" -ne 0 ]; then
	echo "FAIL: vm.doctor: $failures check(s) failed"
	exit 1
fi
echo "PASS: vm.doctor: all checks passed"
