#!/bin/sh
# valgrind.sh: the library under valgrind memcheck, run INSIDE the VM:
#
#     scripts/vm-run --topology one --timeout 420 -- tests/liveness/valgrind.sh \
#         [--preload LIB] [--sockcheck PATH] [--hostile DIR] [--case CASE]
#
# 1. sockcheck case CASE (default mixed_calls: every send/recv call, MSG_PEEK,
#    MSG_WAITALL, zero-copy and inline paths, EOF) through the library, both
#    halves under memcheck, with SOCKCHECK_SCALE=0.05.
# 2. With --hostile DIR (the build directory of tests/hostile): the echo
#    victim under memcheck, attacked by a few hostile_peer scenarios that go
#    through the library's error paths (malformed messages, a message too
#    long, an RDMA WRITE outside the ring, a refused hello), plus one good
#    echo connection; then SIGTERM, so its exit runs the leak check.
#
# memcheck runs with --error-exitcode=99 --leak-check=full
# --errors-for-leak-kinds=definite and the suppressions of rdma.supp (which
# may name rdma-core internals only, never libmigrdma).  A run PASSes when
# the programs pass and every memcheck log reports 0 errors.
set -eu

prog=valgrind.sh
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)

preload=$root/build/libmigrdma.so
sockcheck=$root/build/tests/sock/sockcheck
hostile=
sc_case=mixed_calls
while [ $# -gt 0 ]; do
	case $1 in
	--preload) preload=$2; shift 2 ;;
	--sockcheck) sockcheck=$2; shift 2 ;;
	--hostile) hostile=$2; shift 2 ;;
	--case) sc_case=$2; shift 2 ;;
	*) echo "$prog: unknown argument $1" >&2; exit 2 ;;
	esac
done
command -v valgrind >/dev/null || { echo "FAIL: valgrind is not installed (Debian: valgrind)"; exit 1; }
for f in "$preload" "$sockcheck"; do
	[ -e "$f" ] || { echo "FAIL: $f not found (build first)"; exit 1; }
done

addr=${VM_ADDR:-198.18.0.1}
port=7600
work=$(mktemp -d /tmp/valgrind.XXXXXX)
lib_env="LD_PRELOAD=$preload MIGRDMA_TARGETS=$addr:$port-$((port + 9)) MIGRDMA_LOG=info"
# Valgrind slows everything down some 50 times under TCG.
export SOCKCHECK_SCALE=0.05 SOCKCHECK_TIMEOUT=240 SOCKCHECK_CONNECT_TIMEOUT=240

pids=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	for p in $pids; do
		kill -KILL "$p" 2>/dev/null || true
	done
}
trap cleanup EXIT

. "$here/../lib/check.sh"

# vg NAME CMD...: exec CMD (with the library preloaded) under memcheck, so
# run it in a subshell or in the background ($! is then valgrind's pid).
# env runs under valgrind too (--trace-children) so that the valgrind
# launcher itself is not preloaded; its log is replaced by CMD's (same pid).
vg() {
	_n=$1
	shift
	# shellcheck disable=SC2086 # lib_env is a plain word list
	exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
		--errors-for-leak-kinds=definite --num-callers=30 --trace-children=yes \
		--suppressions="$here/rdma.supp" --log-file="$work/vg.$_n.%p" \
		env $lib_env MIGRDMA_LOG_FILE="$work/$_n.log" "$@"
}

# vg_verdict NAME: the memcheck summary of NAME's logs; fails if any error.
vg_verdict() {
	_sum=
	_bad=0
	for _f in "$work"/vg."$1".*; do
		[ -e "$_f" ] || { echo "no memcheck log"; return 1; }
		_e=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$_f" | tail -n 1)
		_d=$(sed -n 's/^==[0-9]*==    definitely lost: \([0-9,]*\) bytes.*/\1/p' "$_f" | tail -n 1)
		_s=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: .*suppressed: \([0-9]*\) from.*/\1/p' "$_f" | tail -n 1)
		_sum="$_sum${_sum:+, }${_e:-?} errors (${_s:-?} suppressed), definitely lost ${_d:-0} bytes"
		[ "${_e:-1}" = 0 ] || _bad=1
	done
	echo "$_sum"
	return $_bad
}

show_vg() { # NAME
	for _f in "$work"/vg."$1".*; do
		echo "  --- ${_f##*/}:"
		grep -v '^==[0-9]*== *$' "$_f" | head -n 120 | sed 's/^/  | /'
	done
}

# --- 1. a sockcheck stream case, both halves under memcheck --------------------
echo "== valgrind: sockcheck $sc_case through the library (SOCKCHECK_SCALE=$SOCKCHECK_SCALE)"
t0=$(date +%s)
vg server "$sockcheck" server "$port" "$sc_case" >"$work/server.out" 2>&1 &
spid=$!
pids="$pids $spid"
crc=0
(vg client "$sockcheck" client "$addr" "$port" "$sc_case") >"$work/client.out" 2>&1 || crc=$?
src=0
wait "$spid" || src=$?
for half in server client; do
	case $half in server) rc=$src ;; *) rc=$crc ;; esac
	if sum=$(vg_verdict "$half") && [ "$rc" -eq 0 ]; then
		pass "$sc_case.$half" "$(grep '^PASS' "$work/$half.out" | head -n 1); memcheck: $sum"
	else
		fail "$sc_case.$half" "exit $rc; memcheck: $sum; $(grep -h FAIL "$work/$half.out" | head -n 1)"
		show_vg "$half"
		tail -n 10 "$work/$half.out" "$work/$half.log" 2>/dev/null | sed 's/^/  | /'
	fi
done
echo "  ($(($(date +%s) - t0)) s)"

# --- 2. the error paths: a victim under memcheck, attacked ---------------------
if [ -n "$hostile" ] && [ ! -x "$hostile/hostile_victim" ]; then
	echo "SKIP valgrind.victim: $hostile/hostile_victim not built (add tests/hostile to the build)"
	hostile=
fi
if [ -n "$hostile" ]; then
	echo "== valgrind: hostile_victim under memcheck, attacked"
	t0=$(date +%s)
	vport=$((port + 1))
	vg victim "$hostile/hostile_victim" "$vport" >"$work/victim.out" 2>&1 &
	vpid=$!
	pids="$pids $vpid"
	end=$(($(date +%s) + 120))
	until grep -q "victim: listening" "$work/victim.out" 2>/dev/null; do
		[ "$(date +%s)" -lt "$end" ] || break
		sleep 0.2
	done
	why=
	for s in hello_bad_magic msg_bad_version data_segs_mismatch data_ring_past_end \
		credit_msgs_overreturn data_over_credits msg_too_long data_after_fin \
		rdma_write_past_ring; do
		if ! timeout 120 "$hostile/hostile_peer" "$addr" "$vport" "$s" 60 \
			>"$work/peer.$s" 2>&1 </dev/null; then
			why="$why; $s: $(grep -h 'FAIL' "$work/peer.$s" | head -n 1)"
		fi
	done
	rc=0
	# shellcheck disable=SC2086
	env $lib_env MIGRDMA_LOG_FILE="$work/echo.log" timeout 180 \
		"$hostile/hostile_echo" "$addr" "$vport" GOOD --bytes 1048576 --pace-ms 0 \
		>"$work/echo.out" 2>&1 || rc=$?
	[ $rc -eq 0 ] || why="$why; the good echo failed: $(tail -n 1 "$work/echo.out")"
	kill -TERM "$vpid" 2>/dev/null || true
	vrc=0
	wait "$vpid" || vrc=$?
	[ $vrc -eq 0 ] || why="$why; the victim exited with $vrc"
	if sum=$(vg_verdict victim) && [ -z "$why" ]; then
		pass victim "9 hostile scenarios and a good echo; $(grep '^victim: exiting' "$work/victim.out"); memcheck: $sum"
	else
		fail victim "${why#; }; memcheck: $sum"
		show_vg victim
		tail -n 10 "$work/victim.out" | sed 's/^/  | /'
	fi
	echo "  ($(($(date +%s) - t0)) s)"
fi

check_summary valgrind || exit 1
rm -rf "$work"
exit 0
