#!/bin/sh
# test-stat.sh MIGRDMA_TOOL WRITER: ctest tools.stat_file.
#
# "migrdma stat" against synthetic live statistics files, written by WRITER
# (tools/test-stat-writer.c, which lays them out with shim/live.h) for a
# "sleep" this script starts, so no RDMA is needed:
#   - the command line (exit 2), and a live PID without an export (exit 1);
#   - --once --json: the counters, the zero-copy share, and the throughput
#     from the byte deltas between its two samples (the file is updated in
#     between), for an old connection and one opened in between;
#   - the table (no ANSI codes when stdout is not a tty, and successive
#     blocks), no rate from a writer that stopped refreshing, the screen
#     clearing on a tty, every-process mode, SIGTERM;
#   - the seqlock: a file mid-update is waited for, one stuck is refused;
#   - bad files (magic, version, size, nconns, pid) are refused clearly;
#   - stale files of dead processes are skipped with a note, kept, and
#     removed only with --clean.
# JSON is checked with python3.
set -eu

[ $# -eq 2 ] || {
	echo "usage: test-stat.sh MIGRDMA_TOOL WRITER" >&2
	exit 2
}
tool=$1 writer=$2

failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/migrdma-stat-test.XXXXXX")
out=$tmp/out err=$tmp/err
sleeper= dead=
cleanup() {
	[ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
	rm -f "/dev/shm/migrdma.$sleeper" "/dev/shm/migrdma.$dead"
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

show() {
	sed 's/^/  | /' "$out"
	sed 's/^/  ! /' "$err"
}

# run CMD...: run, stdout in $out, stderr in $err, status in $rc.
run() {
	rc=0
	"$@" >"$out" 2>"$err" || rc=$?
}

# expect WHAT STATUS PATTERN CMD...: CMD exits STATUS and its stdout or
# stderr has a line matching the extended regex PATTERN.
expect() {
	_what=$1 _want=$2 _pattern=$3
	shift 3
	run "$@"
	if [ "$rc" -eq "$_want" ] && cat "$out" "$err" | grep -Eq -- "$_pattern"; then
		pass "$_what (exit $rc)"
	else
		fail "$_what: exit $rc (expected $_want, and a line matching '$_pattern'):"
		show
	fi
}

# check_json WHAT PYTHON: every line of $out is a JSON object, and the
# python expression PYTHON (over r, the last one, and pid) is true.
check_json() {
	if python3 - "$out" "$sleeper" "$2" <<'EOF'; then
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
rs = [json.loads(l) for l in lines]
r = rs[-1]
pid = int(sys.argv[2])
def proc(r, pid):
    return [p for p in r["processes"] if p["pid"] == pid][0]
def conn(r, pid, i):
    return [c for c in proc(r, pid)["connections"] if c["conn_id"] == i][0]
ok = eval(sys.argv[3])
if not ok:
    print("  expression false: " + sys.argv[3])
sys.exit(0 if ok else 1)
EOF
		pass "$1"
	else
		fail "$1:"
		show
	fi
}

# A live process to own the synthetic files, and a dead PID.
sleep 300 &
sleeper=$!
sh -c 'exit 0' &
dead=$!
wait "$dead" || true
file=/dev/shm/migrdma.$sleeper
rm -f "$file" "/dev/shm/migrdma.$dead"

echo "== command line"
expect "migrdma --help lists stat" 0 '^  stat ' "$tool" --help
expect "stat --help" 0 '^usage: migrdma stat \[PID\]' "$tool" stat --help
expect "unknown option" 2 'migrdma stat: unknown option --bogus' "$tool" stat --bogus
expect "-n 0" 2 '-n 0: not a positive number' "$tool" stat -n 0
expect "-n without argument" 2 'option -n needs an argument' "$tool" stat -n
expect "-i too small" 2 '-i 0.01: not a number of seconds' "$tool" stat -i 0.01
expect "-i not a number" 2 '-i soon: not a number of seconds' "$tool" stat -i soon
expect "bad PID" 2 "'12x' is not a process id" "$tool" stat 12x
expect "two PIDs" 2 "unexpected argument '2'" "$tool" stat 1 2
expect "--once with -n 3" 2 '--once and -n 3 contradict' "$tool" stat --once -n 3

echo "== no export"
expect "live PID without a file: exit 1" 1 \
	"^migrdma stat: process $sleeper has no migrdma connections \\(or MIGRDMA_LIVE=0\\)\$" \
	"$tool" stat "$sleeper" --once -i 0.1
expect "dead PID without a file: exit 1" 1 "^migrdma stat: process $dead is not running\$" \
	"$tool" stat "$dead" --once -i 0.1

echo "== --once --json: counters and throughput"
"$writer" "$file" --new "$sleeper" nconns=2 pinned_now=67108864 pinned_peak=83886080 \
	c0.id=1 c0.is_server=0 c0.state=established \
	c0.local=198.18.0.1:41000 c0.peer=198.18.0.2:4444 \
	c0.bytes_out=1000000000 c0.bytes_in=5000 c0.bytes_out_zerocopy=990000000 \
	c0.bytes_out_send=10000000 c0.registrations=12 c0.age_ms=5000 \
	c1.id=2 c1.is_server=1 c1.state=established \
	c1.local=198.18.0.1:4444 c1.peer=198.18.0.2:50000 c1.bytes_in=777 c1.age_ms=4000
# Two samples 3 s apart; the update lands half-way, 1000 ms of the
# writer's clock later: 250 MB out and 1 MB in on connection 1, and a new
# connection 7 that sent 50 MB since it opened 500 ms ago.
rc=0
"$tool" stat "$sleeper" --once --json -i 3 >"$out" 2>"$err" &
st=$!
sleep 1.5
"$writer" "$file" updated_ms=+1000 nconns=3 \
	c0.bytes_out=+250000000 c0.bytes_in=+1000000 c0.bytes_out_zerocopy=+250000000 \
	c0.age_ms=+1000 c1.age_ms=+1000 \
	c2.id=7 c2.state=connecting c2.local=198.18.0.1:41001 c2.peer=198.18.0.2:4444 \
	c2.bytes_out=50000000 c2.bytes_out_zerocopy=0 c2.age_ms=500
wait "$st" || rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c . "$out")" -eq 1 ]; then
	pass "--once --json: exit 0, one line"
else
	fail "--once --json: exit $rc, $(grep -c . "$out") lines"
	show
fi
check_json "one process, its pinned memory" \
	'len(r["processes"]) == 1 and proc(r, pid)["pinned_now"] == 67108864 and proc(r, pid)["pinned_peak"] == 83886080'
check_json "connection 1: the counters" \
	'conn(r, pid, 1) == {**conn(r, pid, 1), "role": "client", "local": "198.18.0.1:41000", "peer": "198.18.0.2:4444", "state": "established", "bytes_out": 1250000000, "bytes_in": 1005000, "bytes_out_zerocopy": 1240000000, "bytes_out_send": 10000000, "registrations": 12, "duration_s": 6.0, "transport": "rdma"}'
check_json "connection 1: 250 MB/s out, 1 MB/s in" \
	'conn(r, pid, 1)["out_mb_s"] == 250.0 and conn(r, pid, 1)["in_mb_s"] == 1.0'
check_json "connection 1: zero-copy share 0.992" 'conn(r, pid, 1)["zerocopy_share"] == 0.992'
check_json "connection 2: server, idle, no zero-copy share" \
	'conn(r, pid, 2)["role"] == "server" and conn(r, pid, 2)["out_mb_s"] == 0.0 and conn(r, pid, 2)["in_mb_s"] == 0.0 and conn(r, pid, 2)["zerocopy_share"] is None and conn(r, pid, 2)["bytes_in"] == 777'
check_json "connection 7, new since the first sample: 50 MB/s, share 0" \
	'conn(r, pid, 7)["out_mb_s"] == 50.0 and conn(r, pid, 7)["zerocopy_share"] == 0.0 and conn(r, pid, 7)["state"] == "connecting"'
check_json "a time and the interval" \
	'r["time"].endswith("Z") and r["interval_s"] == 3'

echo "== the table"
# A writer refreshing updated_ms as the library does, counters unchanged.
(while [ ! -e "$tmp/stop" ]; do "$writer" "$file" updated_ms=now; sleep 0.05; done) &
refresher=$!
run "$tool" stat "$sleeper" -n 2 -i 0.2
: >"$tmp/stop"
wait "$refresher" || true
if [ "$rc" -eq 0 ] && [ "$(grep -c '^migrdma stat  [0-9-]* [0-9:]*  every 0.2 s: 1 process, 3 connections$' "$out")" -eq 2 ] &&
	grep -q '^ *PID CONN ROLE .*LOCAL .*PEER .*STATE .*OUT MB/s  IN MB/s .*0-COPY  REGS  PINNED NOW/PEAK$' "$out" &&
	! grep -q "$(printf '\033')" "$out"; then
	pass "-n 2, not a tty: two blocks, a header, no ANSI codes"
else
	fail "-n 2, not a tty: exit $rc"
	show
fi
row="^ *$sleeper +1 client 198\\.18\\.0\\.1:41000 +(->|→) 198\\.18\\.0\\.2:4444 +established +0\\.0 +0\\.0 +1\\.2 GiB +981\\.4 KiB +99\\.2% +12  64\\.0 MiB / 80\\.0 MiB\$"
if grep -Eq "$row" "$out"; then
	pass "connection 1's row"
else
	fail "connection 1's row: no line matching '$row'"
	show
fi
if grep -Eq "^ *$sleeper +2 server .* established +0\\.0 +0\\.0 +0 B +777 B +- +0 " "$out"; then
	pass "connection 2's row: 0 B out, zero-copy share -"
else
	fail "connection 2's row"
	show
fi
if ! grep -q 'no refresh' "$out"; then
	pass "a refreshed file has no 'no refresh' note"
else
	fail "a 'no refresh' note for a refreshed file"
	show
fi
# The same file, not refreshed for over 2 s: no rate, and a note.
sleep 2.1
run "$tool" stat "$sleeper" --once -i 0.2
if [ "$rc" -eq 0 ] && grep -Eq "^ *$sleeper +1 client .* established +- +- +1\\.2 GiB " "$out" &&
	grep -Eq "^process $sleeper: no refresh for [0-9.]+ s \\(stopped, or hung\\?\\)\$" "$out"; then
	pass "a writer that stopped refreshing: rates '-', and a note"
else
	fail "a writer that stopped refreshing: exit $rc"
	show
fi
rc=0
TERM=xterm script -qec "$tool stat $sleeper --once -i 0.1" /dev/null >"$out" 2>"$err" </dev/null || rc=$?
if [ "$rc" -eq 0 ] && grep -q "$(printf '\033\\[H\033\\[2J')" "$out"; then
	pass "on a tty: the screen is cleared"
else
	fail "on a tty: exit $rc, no clear-screen codes"
	show
fi

echo "== every process"
run "$tool" stat --once --json -i 0.2
if [ "$rc" -eq 0 ]; then
	pass "no PID: exit 0"
else
	fail "no PID: exit $rc"
	show
fi
check_json "no PID: lists the sleeper's 3 connections" 'len(proc(r, pid)["connections"]) == 3'

echo "== interrupted"
# SIGTERM: a background job of a script ignores SIGINT, and so does stat.
"$tool" stat "$sleeper" -i 0.2 >"$out" 2>"$err" &
st=$!
sleep 1
kill -TERM "$st"
rc=0
wait "$st" || rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c '^migrdma stat ' "$out")" -ge 2 ]; then
	pass "SIGTERM ends a running refresh loop with exit 0"
else
	fail "SIGTERM: exit $rc"
	show
fi
"$tool" stat "$sleeper" -i 5 >"$out" 2>"$err" &
st=$!
sleep 0.5
kill -TERM "$st"
rc=0
wait "$st" || rc=$?
if [ "$rc" -eq 143 ] && [ ! -s "$out" ]; then
	pass "SIGTERM before the first refresh: killed by it (143), nothing printed"
else
	fail "SIGTERM before the first refresh: exit $rc"
	show
fi

echo "== the seqlock"
"$writer" "$file" seq=5
rc=0
"$tool" stat "$sleeper" --once --json -i 0.2 >"$out" 2>"$err" &
st=$!
sleep 0.5
"$writer" "$file" seq=6
wait "$st" || rc=$?
if [ "$rc" -eq 0 ]; then
	pass "a file mid-update (odd seq) is waited for"
else
	fail "odd seq, then even: exit $rc"
	show
fi
check_json "  and then read right" 'conn(r, pid, 1)["bytes_out"] == 1250000000'
"$writer" "$file" seq=7
expect "a writer stuck mid-update: refused after 2 s" 1 \
	"migrdma.$sleeper: did not hold still for 2000 ms \\(its writer is stuck mid-update\\?\\)" \
	"$tool" stat "$sleeper" --once -i 0.1
"$writer" "$file" seq=8

echo "== bad files"
cp "$file" "$tmp/good"
expect "bad magic" 1 "^migrdma stat: $file: bad magic: not a migrdma statistics file\$" \
	sh -c "'$writer' '$file' magic=MIGRDMA0 && exec '$tool' stat $sleeper --once -i 0.1"
expect "  ignored with a note without PID" 0 "^migrdma stat: ignoring $file: bad magic" \
	sh -c "'$tool' stat --once --json -i 0.1 || [ \$? -eq 1 ]"
cp "$tmp/good" "$file"
expect "another version" 1 "^migrdma stat: $file: format version 2, but this migrdma reads version 1" \
	sh -c "'$writer' '$file' version=2 && exec '$tool' stat $sleeper --once -i 0.1"
cp "$tmp/good" "$file"
expect "wrong size" 1 "^migrdma stat: $file: is 4096 bytes long, but a version 1 file has [0-9]+\$" \
	sh -c "'$writer' '$file' size=4096 && exec '$tool' stat $sleeper --once -i 0.1"
cp "$tmp/good" "$file"
expect "nconns > LIVE_MAX_CONNS" 1 "^migrdma stat: $file: claims 65 connections, but holds at most 64\$" \
	sh -c "'$writer' '$file' nconns=65 && exec '$tool' stat $sleeper --once -i 0.1"
cp "$tmp/good" "$file"
expect "another process's pid inside" 1 "^migrdma stat: $file: belongs to process 1, not to process $sleeper\$" \
	sh -c "'$writer' '$file' pid=1 && exec '$tool' stat $sleeper --once -i 0.1"
rm -f "$file"
ln -s "$tmp/good" "$file"
expect "a symbolic link" 1 "^migrdma stat: $file: is a symbolic link" \
	"$tool" stat "$sleeper" --once -i 0.1
rm -f "$file"

echo "== stale files"
stale=/dev/shm/migrdma.$dead
"$writer" "$stale" --new "$dead" nconns=1 c0.id=1 c0.bytes_out=1
expect "dead PID: refused" 1 \
	"^migrdma stat: $stale: stale \\(its process is not running\\); migrdma stat --clean removes it\$" \
	"$tool" stat "$dead" --once -i 0.1
expect "no PID: ignored with a note" 0 "^migrdma stat: ignoring $stale: stale \\(its process is not running\\)" \
	sh -c "'$tool' stat --once --json -i 0.1 || [ \$? -eq 1 ]"
if grep -q "\"pid\":$dead," "$out"; then
	fail "the stale file's process is listed"
	show
fi
if [ -f "$stale" ]; then
	pass "the stale file is kept without --clean"
else
	fail "the stale file was removed without --clean"
fi
expect "--clean removes it" 1 "^migrdma stat: $stale: stale \\(its process is not running\\): removed\$" \
	"$tool" stat "$dead" --once --clean -i 0.1
if [ ! -e "$stale" ]; then
	pass "  and it is gone"
else
	fail "  but it is still there"
fi
"$writer" "$stale" size=0
expect "--clean removes an empty stale file too" 1 ": removed\$" \
	"$tool" stat "$dead" --once --clean -i 0.1
printf 'not ours\n' >"$stale"
expect "--clean leaves a foreign file alone" 1 "not a migrdma statistics file: left alone\$" \
	"$tool" stat "$dead" --once --clean -i 0.1
[ -f "$stale" ] || fail "  the foreign file was removed"
rm -f "$stale"

if [ "$failures" -ne 0 ]; then
	echo "FAIL: $failures check(s) failed"
	exit 1
fi
echo "PASS: all migrdma stat file checks passed"
