#!/bin/sh
# check_timeout.sh VM_RUN: prove that scripts/vm-run never leaves a VM behind.
#   1. "vm-run --timeout 20 -- sleep 1000" exits 124 with a clear message,
#      in about 20 s, and its QEMU is gone;
#   2. SIGTERM to vm-run while its VM runs: exit 143, QEMU gone;
#   3. SIGKILL to vm-run (no trap can run): QEMU still goes away, through the
#      parent-death signals vm-run arms.
# Runs on the host (it starts VMs itself).  Each vm-run gets a private TMPDIR,
# whose path appears on its QEMU's command line, so we find exactly our own
# QEMU processes even while other VMs run.
set -eu

vm_run=${1:?usage: check_timeout.sh path/to/scripts/vm-run}
tmp=$(mktemp -d /tmp/check_timeout.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

. "$(dirname "$0")/../lib/check.sh"

# our_qemus: print the PIDs of QEMU processes started for this test.
our_qemus() {
	for p in /proc/[0-9]*; do
		# (Processes come and go while we look.)
		cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
		case $cmd in
		qemu-system-*"$tmp/"*) echo "${p#/proc/}" ;;
		esac
	done
}

# wait_for COND SECS: poll the shell function COND every 0.5 s.
wait_for() {
	n=0
	while ! "$1"; do
		n=$((n + 1))
		[ "$n" -lt $(($2 * 2)) ] || return 1
		sleep 0.5
	done
}
# shellcheck disable=SC2317 # called through wait_for
qemu_running() { [ -n "$(our_qemus)" ]; }
# shellcheck disable=SC2317
qemu_gone() { [ -z "$(our_qemus)" ]; }

# kill_leftovers: never leave a VM behind ourselves, even when failing.
kill_leftovers() {
	for pid in $(our_qemus); do
		kill -KILL "$pid" 2>/dev/null || true
	done
}

# --- 1. the timeout itself ----------------------------------------------------------
start=$(date +%s)
rc=0
TMPDIR=$tmp "$vm_run" --timeout 20 -- sleep 1000 >"$tmp/out1" 2>"$tmp/err1" || rc=$?
elapsed=$(($(date +%s) - start))
if [ "$rc" -eq 124 ]; then
	pass "vm-run --timeout 20 -- sleep 1000 exits 124"
else
	fail "vm-run --timeout 20 -- sleep 1000 exited $rc, not 124"
	sed 's/^/  | /' "$tmp/out1" "$tmp/err1"
fi
if grep -q 'vm-run: timed out after 20 s' "$tmp/err1"; then
	pass "it says 'vm-run: timed out after 20 s'"
else
	fail "no 'vm-run: timed out after 20 s' message"
fi
# 20 s, plus vm-image.sh's check and QEMU's shutdown; generous for a loaded host.
if [ "$elapsed" -ge 20 ] && [ "$elapsed" -le 50 ]; then
	pass "it took $elapsed s"
else
	fail "it took $elapsed s (expected 20..50)"
fi
if wait_for qemu_gone 5; then
	pass "no QEMU left after the timeout"
else
	fail "QEMU left running after the timeout: $(our_qemus)"
	kill_leftovers
fi

# --- 2. and 3. vm-run killed while its VM runs -----------------------------------------
# check_kill SIGNAL EXPECTED_RC
check_kill() {
	TMPDIR=$tmp "$vm_run" --timeout 300 -- sleep 1000 >"$tmp/out.$1" 2>"$tmp/err.$1" &
	pid=$!
	if ! wait_for qemu_running 60; then
		fail "SIG$1: QEMU never started"
		sed 's/^/  | /' "$tmp/out.$1" "$tmp/err.$1"
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	sleep 2
	kill "-$1" "$pid"
	rc=0
	wait "$pid" || rc=$?
	if [ "$rc" -eq "$2" ]; then
		pass "SIG$1 to vm-run: exit status $rc"
	else
		fail "SIG$1 to vm-run: exit status $rc, expected $2"
	fi
	if wait_for qemu_gone 15; then
		pass "SIG$1 to vm-run: no QEMU left"
	else
		fail "SIG$1 to vm-run: QEMU left running: $(our_qemus)"
		kill_leftovers
	fi
}
check_kill TERM 143
check_kill KILL 137

check_summary check_timeout
