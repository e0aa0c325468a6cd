#!/bin/sh
# test-stat-vm.sh VM_RUN MIGRDMA_TOOL LIBMIGRDMA QSTREAM: ctest vm.stat.
#
# Boots the soft-RoCE VM (topology one: dummy0 198.18.0.1 with rxe0) and,
# inside it, runs a real transfer over libmigrdma: "qstream recv" and
# "qstream send" of 1 GiB, both preloaded with MIGRDMA_TARGETS naming the
# port.  While it runs, "migrdma stat --once --json" must show:
#   1. for the sender: one client connection, bytes out > 0, a zero-copy
#      share > 0.9 and a throughput > 0;
#   2. for the receiver: one server connection with bytes in > 0;
#   3. without PID: both processes;
# each retried while the connection is still being set up, all three at
# once.  Then the
# transfer must have completed and verified, and the exited sender's file
# must be gone, so that stat says it is not running.
#
# The same script runs inside the VM as
# "test-stat-vm.sh --guest MIGRDMA_TOOL LIBMIGRDMA QSTREAM", or, started by
# hand with "scripts/vm-run --topology one -- tools/test-stat-vm.sh", with
# the build tree's files.
set -eu

usage() {
	echo "usage: test-stat-vm.sh VM_RUN MIGRDMA_TOOL LIBMIGRDMA QSTREAM" >&2
	exit 2
}

abspath() {
	echo "$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")"
}

if [ $# -eq 0 ] && [ -n "${VM_TOPOLOGY:-}" ]; then
	root=$(cd "$(dirname "$0")/.." && pwd -P)
	set -- --guest "$root/build/tools/migrdma" "$root/build/libmigrdma.so" \
		"$root/build/tests/bench/qstream"
fi
if [ "${1:-}" != --guest ]; then
	[ $# -eq 4 ] || usage
	exec "$1" --topology one --timeout 300 -- "$(abspath "$0")" --guest \
		"$(abspath "$2")" "$(abspath "$3")" "$(abspath "$4")"
fi

# ---- inside the VM ---------------------------------------------------------------
[ $# -eq 4 ] || usage
tool=$2 lib=$3 qstream=$4
addr=${VM_ADDR:-198.18.0.1}
port=7100
# Large enough that the checks below see it running: 256 MiB once took
# about 20 s here, and takes under 3 s since the data path stopped
# waiting for every write (the receiver had exited before it was looked at).
mib=1024

failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

dir=$(mktemp -d /tmp/stat-vm.XXXXXX)
out=$dir/out err=$dir/err
rpid= spid= rc=
cleanup() {
	[ -z "$spid" ] || kill "$spid" 2>/dev/null || true
	[ -z "$rpid" ] || kill "$rpid" 2>/dev/null || true
}
trap cleanup EXIT

show() {
	sed 's/^/  | /' "$out"
	sed 's/^/  ! /' "$err"
}

alive() { kill -0 "$1" 2>/dev/null; }

# check_json PID PYTHON: the last line of $out is JSON and PYTHON (over r,
# it, and p, the process PID in it, None if absent) is true.
check_json() {
	python3 - "$out" "$1" "$2" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
r = json.loads(lines[-1])
ps = [p for p in r["processes"] if p["pid"] == int(sys.argv[2])]
p = ps[0] if ps else None
sys.exit(0 if eval(sys.argv[3]) else 1)
EOF
}

# poll NAME WHAT PID PYTHON STAT_ARGS...: run "migrdma stat STAT_ARGS" until
# its JSON satisfies PYTHON, while process PID runs (at most 40 tries).  The
# polls run side by side, so each uses its own files, $dir/NAME.*, and
# reports by its exit status.
poll() {
	out=$dir/$1.out err=$dir/$1.err _what=$2 _pid=$3 _cond=$4
	shift 4
	_try=0
	while [ "$_try" -lt 40 ] && alive "$_pid"; do
		_try=$((_try + 1))
		rc=0
		"$tool" stat "$@" >"$out" 2>"$err" || rc=$?
		if [ "$rc" -eq 0 ] && check_json "$_pid" "$_cond" 2>/dev/null; then
			pass "$_what (try $_try)"
			sed 's/^/  | /' "$out"
			return 0
		fi
		sleep 0.1
	done
	fail "$_what: not seen in $_try tries; the last one (exit ${rc:-none}):"
	show
	return 1
}

echo "== a $mib MiB qstream transfer over $addr:$port, preloaded"
LD_PRELOAD=$lib MIGRDMA_TARGETS=$addr:$port \
	"$qstream" recv "$port" "$addr" >"$dir/recv.json" 2>"$dir/recv.err" &
rpid=$!
i=0
while ! grep -q 'listening on' "$dir/recv.err" && [ "$i" -lt 100 ] && alive "$rpid"; do
	sleep 0.1
	i=$((i + 1))
done
LD_PRELOAD=$lib MIGRDMA_TARGETS=$addr:$port \
	"$qstream" send "$addr" "$port" "$mib" >"$dir/send.json" 2>"$dir/send.err" &
spid=$!
echo "receiver $rpid, sender $spid"

# The three checks at once: the transfer lasts only a few seconds.
poll sender "1. sender: one client connection, bytes out > 0, zero-copy share > 0.9, throughput > 0" \
	"$spid" \
	'p and len(p["connections"]) == 1 and p["connections"][0]["role"] == "client" and p["connections"][0]["bytes_out"] > 0 and p["connections"][0]["zerocopy_share"] > 0.9 and (p["connections"][0]["out_mb_s"] or 0) > 0' \
	"$spid" --once --json -i 0.5 >"$dir/sender.log" 2>&1 &
p1=$!
poll receiver "2. receiver: one server connection, bytes in > 0" "$rpid" \
	'p and len(p["connections"]) == 1 and p["connections"][0]["role"] == "server" and p["connections"][0]["bytes_in"] > 0' \
	"$rpid" --once --json -i 0.3 >"$dir/receiver.log" 2>&1 &
p2=$!
poll all "3. without PID: the sender and the receiver" "$spid" \
	"p and any(q['pid'] == $rpid and q['connections'] for q in r['processes'])" \
	--once --json -i 0.3 >"$dir/all.log" 2>&1 &
p3=$!
for name in sender receiver all; do
	case $name in
	sender) p=$p1 ;;
	receiver) p=$p2 ;;
	all) p=$p3 ;;
	esac
	wait "$p" || failures=$((failures + 1))
	cat "$dir/$name.log"
done

echo "== the transfer"
rc=0
wait "$spid" || rc=$?
src=$rc
rc=0
wait "$rpid" || rc=$?
if [ "$src" -eq 0 ] && [ "$rc" -eq 0 ] && grep -q '"verified":true' "$dir/recv.json"; then
	pass "the transfer completed and verified: $(cat "$dir/send.json")"
else
	fail "the transfer: sender exit $src, receiver exit $rc"
	sed 's/^/  | /' "$dir/send.json" "$dir/send.err" "$dir/recv.json" "$dir/recv.err"
fi
if [ ! -e "/dev/shm/migrdma.$spid" ]; then
	pass "the sender's /dev/shm/migrdma.$spid is gone after its exit"
else
	fail "/dev/shm/migrdma.$spid outlived the sender"
fi
rc=0
"$tool" stat "$spid" --once -i 0.1 >"$out" 2>"$err" || rc=$?
if [ "$rc" -eq 1 ] && grep -q "^migrdma stat: process $spid is not running\$" "$err"; then
	pass "stat of the exited sender: exit 1, not running"
else
	fail "stat of the exited sender: exit $rc"
	show
fi
spid= rpid=
rm -rf "$dir"

if [ "$failures" -ne 0 ]; then
	echo "FAIL: vm.stat: $failures check(s) failed"
	exit 1
fi
echo "PASS: vm.stat: all checks passed"
