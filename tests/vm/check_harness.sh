#!/bin/sh
# check_harness.sh VM_RUN: check the promises of scripts/vm-run that other
# tests build on, with one cheap VM (topology none):
#   - the caller's working directory, also when its path has spaces;
#   - arguments passed through verbatim (spaces, quotes, empty ones);
#   - MIGRDMA_* and VM_PASS_* variables passed in, other variables not;
#   - root, "ulimit -l unlimited", VM_TOPOLOGY=none and no RDMA device;
#   - the host root read-only underneath, writes land in a throwaway overlay;
#   - --share DIR writable, and what is written there reaches the host;
#   - COMMAND's exit status becomes vm-run's;
#   - bad arguments are refused with status 125 before any VM starts.
# Runs on the host.
set -eu

vm_run=${1:?usage: check_harness.sh path/to/scripts/vm-run}
# Absolute, because the VM is started from another directory.
vm_run=$(cd "$(dirname "$vm_run")" && pwd -P)/$(basename "$vm_run")
tmp=$(mktemp -d /tmp/check_harness.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

. "$(dirname "$0")/../lib/check.sh"

# --- bad arguments: refused up front -----------------------------------------------
for args in "--topology one --veth-in-order -- true" "--topology three -- true" "--timeout 0 -- true" "--share $tmp/missing -- true" "--bogus -- true" "--"; do
	rc=0
	# shellcheck disable=SC2086 # word lists on purpose
	"$vm_run" $args >"$tmp/out" 2>&1 || rc=$?
	if [ "$rc" -eq 125 ] && grep -q '^vm-run: ' "$tmp/out"; then
		pass "vm-run $args: refused (125, $(head -n1 "$tmp/out"))"
	else
		fail "vm-run $args: exit $rc, output: $(cat "$tmp/out")"
	fi
done

# --- one VM ----------------------------------------------------------------------------
mkdir "$tmp/work dir" "$tmp/share"
echo host >"$tmp/work dir/from-host"
# The command runs inside the VM; it reports what it sees on stdout and
# leaves a file in the share.  Single-quoted: expanded in the VM, not here.
# shellcheck disable=SC2016
inner='
printf "cwd=%s\n" "$(pwd)"
printf "argc=%s\n" "$#"
for a in "$@"; do printf "arg=[%s]\n" "$a"; done
printf "pass=%s/%s\n" "${MIGRDMA_CHECK_A:-unset}" "${VM_PASS_CHECK_B:-unset}"
printf "other=%s\n" "${CHECK_HARNESS_OTHER:-unset}"
printf "uid=%s memlock=%s topo=%s\n" "$(id -u)" "$(ulimit -l)" "$VM_TOPOLOGY"
printf "rdma_devices=%s\n" "$(ls /sys/class/infiniband 2>/dev/null | wc -l)"
printf "read=%s\n" "$(cat from-host)"
echo vm >from-host && printf "overlay_write=%s\n" "$(cat from-host)"
echo "written in the VM" >"$SHARE/result.txt"
exit 42
'
rc=0
(
	cd "$tmp/work dir"
	MIGRDMA_CHECK_A='a b' VM_PASS_CHECK_B="it's" CHECK_HARNESS_OTHER=leak \
		MIGRDMA_SHARE_UNUSED=1 \
		"$vm_run" --topology none --timeout 240 --share "$tmp/share" -- \
		sh -c "SHARE='$tmp/share'; $inner" inner 'two words' '' "q\"uo'te"
) >"$tmp/vm.out" 2>"$tmp/vm.err" || rc=$?

expect_line() { # LINE WHAT
	if grep -qxF "$1" "$tmp/vm.out"; then
		pass "$2"
	else
		fail "$2: no line '$1' in the VM's output"
	fi
}
if [ "$rc" -eq 42 ]; then
	pass "COMMAND's exit status 42 is vm-run's"
else
	fail "vm-run exited $rc, not 42"
fi
expect_line "cwd=$tmp/work dir" "working directory (with a space) carried over"
expect_line "argc=3" "argument count"
expect_line "arg=[two words]" "argument with a space"
expect_line "arg=[]" "empty argument"
expect_line "arg=[q\"uo'te]" "argument with quotes"
expect_line "pass=a b/it's" "MIGRDMA_* and VM_PASS_* variables passed in"
expect_line "other=unset" "other variables not passed in"
expect_line "uid=0 memlock=unlimited topo=none" "root, ulimit -l unlimited, VM_TOPOLOGY=none"
expect_line "rdma_devices=0" "topology none has no RDMA device"
expect_line "read=host" "host files visible at their own paths"
expect_line "overlay_write=vm" "writes inside the VM succeed"
if [ "$(cat "$tmp/work dir/from-host")" = host ]; then
	pass "...but do not reach the host"
else
	fail "a write inside the VM changed the host file"
fi
if [ "$(cat "$tmp/share/result.txt" 2>/dev/null)" = "written in the VM" ]; then
	pass "--share: the file written in the VM is on the host"
else
	fail "--share: $tmp/share/result.txt missing or wrong"
fi
if ! check_summary check_harness; then
	echo "--- vm-run stdout:"
	cat "$tmp/vm.out"
	echo "--- vm-run stderr:"
	cat "$tmp/vm.err"
	exit 1
fi
