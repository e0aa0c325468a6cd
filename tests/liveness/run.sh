#!/bin/sh
# run.sh: liveness of library connections, run INSIDE the soft-RoCE VM:
#
#     scripts/vm-run --topology two --timeout 420 -- tests/liveness/run.sh \
#         [--preload LIB] [--probe PATH] [--sockcheck PATH] [CHECK...]
#
# Every program runs with LD_PRELOAD=LIB and MIGRDMA_KEEPALIVE=5; the sink
# (live_probe sink) on host dst, the client (live_probe stream|idle) on host
# src.  Checks, in this order (or only the CHECKs named):
#
#   peer_killed     kill -9 of the sink mid-stream: the client's blocked
#                   write, read and poll must all return, the calls with an
#                   error (ECONNRESET, ETIMEDOUT or EPIPE), within the
#                   keepalive period;
#   peer_stopped    SIGSTOP of the sink mid-stream (its queue pair still
#                   acknowledges, nothing else answers): the same, within
#                   keepalive + margin;
#   idle_shutdown   an idle connection (the peer alive but silent) must
#                   outlive 2.5 keepalive periods, then shutdown(SHUT_RDWR)
#                   from another thread must wake the blocked read (EOF) and
#                   poll within 1 s;
#   shutdown_wakes  the sockcheck case: blocked reads and writes woken by
#                   shutdown() within SOCKCHECK_WAKE_MS (1000 ms);
#   link_down       ip link set veth_dst down mid-stream: within keepalive
#                   + margin;
#   device_removed  rdma link delete rxe_dst mid-stream: within keepalive
#                   + margin;
#   listener_back   a sink listening on host dst's address alone (not the
#                   wildcard) outlives rdma link delete and re-add of
#                   rxe_dst: a client that connects afterwards streams.
#
# Times are measured from just before the event's command starts to the
# CLOCK_REALTIME stamp the probe takes when each call returns.  The margin
# is 1.5 s (VM_PASS_LIVENESS_MARGIN) for the service thread's 100 ms tick
# and TCG scheduling.  Prints PASS/FAIL per check with the measured times,
# and exits 0 only if every check passed.
set -eu

prog=run.sh
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)

preload=$root/build/libmigrdma.so
probe=$root/build/tests/liveness/live_probe
sockcheck=$root/build/tests/sock/sockcheck
while [ $# -gt 0 ]; do
	case $1 in
	--preload) preload=$2; shift 2 ;;
	--probe) probe=$2; shift 2 ;;
	--sockcheck) sockcheck=$2; shift 2 ;;
	--) shift; break ;;
	-*) echo "$prog: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
checks=${*:-peer_killed peer_stopped idle_shutdown shutdown_wakes link_down device_removed listener_back}

if [ "${VM_TOPOLOGY:-}" != two ]; then
	echo "FAIL: run me inside scripts/vm-run --topology two (VM_TOPOLOGY='${VM_TOPOLOGY:-}')"
	exit 1
fi
for f in "$preload" "$probe" "$sockcheck"; do
	[ -e "$f" ] || { echo "FAIL: $f not found (build first)"; exit 1; }
done

keepalive=5
margin=${VM_PASS_LIVENESS_MARGIN:-1.5}
wake_ms=1000
base_port=7500
lib_env="LD_PRELOAD=$preload MIGRDMA_TARGETS=$DST_ADDR:$base_port-$((base_port + 9)) MIGRDMA_KEEPALIVE=$keepalive MIGRDMA_LOG=${VM_PASS_LIVENESS_LOG:-info}"
work=$(mktemp -d /tmp/liveness.XXXXXX)

pids=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	for p in $pids; do
		kill -CONT "$p" 2>/dev/null || true
		kill -KILL "$p" 2>/dev/null || true
	done
	ip link set "$DST_NETDEV" up 2>/dev/null || true
}
trap cleanup EXIT

. "$here/../lib/check.sh"

now() {
	date +%s.%N
}

# wait_for FILE TEXT SECONDS
wait_for() {
	_end=$(($(date +%s) + $3))
	while ! grep -qF -- "$2" "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$_end" ] || return 1
		sleep 0.05
	done
}

# exits_within PID S: true if process PID ends within S seconds.
exits_within() {
	_end=$(($(date +%s) + $2))
	while kill -0 "$1" 2>/dev/null; do
		[ "$(date +%s)" -lt "$_end" ] || return 1
		sleep 0.1
	done
}

# field FILE CALL KEY: KEY=value from the probe's line for CALL.
field() {
	sed -n "s/^probe: $2 .*$3=\([^ ]*\).*/\1/p" "$1" | head -n 1
}

# start_sink NAME PORT: the sink on host dst; sets spid.
start_sink() {
	# shellcheck disable=SC2086 # lib_env is a plain word list; $3 the address, if any
	ip netns exec "$DST_NS" env $lib_env MIGRDMA_LOG_FILE="$work/$1.sink.log" \
		"$probe" sink "$2" ${3:-} >"$work/$1.sink" 2>&1 &
	spid=$!
	pids="$pids $spid"
	wait_for "$work/$1.sink" "sink: listening" 60
}

# start_client NAME PORT MODE ARGS...: the probe on host src; sets cpid.
start_client() {
	_n=$1 _p=$2
	shift 2
	# shellcheck disable=SC2086
	ip netns exec "$SRC_NS" env $lib_env MIGRDMA_LOG_FILE="$work/$_n.client.log" \
		"$probe" "$1" "$DST_ADDR" "$_p" "$@" >"$work/$_n.client" 2>&1 &
	cpid=$!
	pids="$pids $cpid"
}

show_logs() { # NAME
	for _f in "$work/$1.client" "$work/$1.client.log" "$work/$1.sink" "$work/$1.sink.log"; do
		[ -s "$_f" ] || continue
		echo "  --- ${_f##*/}:"
		tail -n 15 "$_f" | sed 's/^/  | /'
	done
}

# judge NAME T_EVENT BOUND_S WHAT: check the probe's calls against the bound.
judge() {
	_n=$1 _t0=$2 _bound=$3 _what=$4
	_out="$work/$_n.client"
	_why=
	_times=
	for _call in write read poll; do
		if grep -q "^probe: $_call still blocked" "$_out"; then
			_why="$_why; $_call still blocked"
			continue
		fi
		_t=$(field "$_out" "$_call" t)
		[ -n "$_t" ] || continue
		_dt=$(awk -v a="$_t" -v b="$_t0" 'BEGIN { printf "%.3f", a - b }')
		_err=$(field "$_out" "$_call" errno)
		_ret=$(field "$_out" "$_call" ret)
		_rev=$(field "$_out" "$_call" revents)
		case $_call in
		poll)
			_times="$_times, poll revents $_rev after ${_dt} s"
			[ $((_rev & 0x19)) -ne 0 ] || _why="$_why; poll revents $_rev (want POLLIN/POLLERR/POLLHUP)"
			;;
		*)
			_times="$_times, $_call $_err after ${_dt} s"
			case $_err in
			ECONNRESET | ETIMEDOUT | EPIPE) ;;
			*) _why="$_why; $_call returned $_ret ($_err), want ECONNRESET/ETIMEDOUT/EPIPE" ;;
			esac
			;;
		esac
		if awk -v d="$_dt" -v b="$_bound" 'BEGIN { exit !(d > b || d < -0.5) }'; then
			_why="$_why; $_call took ${_dt} s (bound ${_bound} s)"
		fi
	done
	_times=${_times#, }
	if [ -z "$_why" ]; then
		pass "$_n" "$_what: $_times (bound $_bound s)"
	else
		fail "$_n" "${_why#; } | $_what: $_times (bound $_bound s)"
		show_logs "$_n"
	fi
}

# stream_case NAME PORT BOUND WHAT EVENT...: sink, streaming client, event.
stream_case() {
	_name=$1 _port=$2 _b=$3 _w=$4
	shift 4
	if ! start_sink "$_name" "$_port"; then
		fail "$_name" "the sink never listened"
		show_logs "$_name"
		return 0
	fi
	start_client "$_name" "$_port" stream --limit 40
	if ! wait_for "$work/$_name.client" "probe: streaming" 60; then
		fail "$_name" "the stream never got going"
		show_logs "$_name"
		return 0
	fi
	sleep 1
	t_event=$(now)
	"$@"
	_crc=0
	wait "$cpid" || _crc=$?
	[ "$_crc" -eq 0 ] || echo "  (probe exit $_crc)"
	judge "$_name" "$t_event" "$_b" "$_w"
	_s=$(grep -E '^sink: [A-Z].* after' "$work/$_name.sink" || true)
	echo "  (the peer: ${_s:-no outcome, it was killed or stopped}; its log: $(grep -E 'broken|removed|failed' "$work/$_name.sink.log" 2>/dev/null | head -n 1 | sed 's/^migrdma\[[0-9]*\] //'))"
}

# The events, run by stream_case right after it takes the event's time.
# shellcheck disable=SC2317
ev_kill() { kill -KILL "$spid"; }
# shellcheck disable=SC2317
ev_stop() { kill -STOP "$spid"; }
# shellcheck disable=SC2317
ev_link() { ip link set "$DST_NETDEV" down; }
# shellcheck disable=SC2317
ev_rdma() {
	_t=$(now)
	timeout 60 rdma link delete "$DST_DEV" || echo "  (rdma link delete failed: $?)"
	echo "  (rdma link delete $DST_DEV took $(awk -v a="$(now)" -v b="$_t" 'BEGIN { printf "%.3f", a - b }') s)"
}

# add_dst: (re-)create host dst's rxe device and wait for its port.
add_dst() {
	rdma link show "$DST_DEV/1" >/dev/null 2>&1 ||
		rdma link add "$DST_DEV" type rxe netdev "$DST_NETDEV" || true
	_end=$(($(date +%s) + 30))
	until rdma link show "$DST_DEV/1" 2>/dev/null | grep -q 'state ACTIVE'; do
		[ "$(date +%s)" -lt "$_end" ] || { echo "  ($DST_DEV did not come back)"; return 0; }
		sleep 0.5
	done
}

bound_ka=$keepalive
bound_km=$(awk -v k="$keepalive" -v m="$margin" 'BEGIN { print k + m }')
echo "== liveness: MIGRDMA_KEEPALIVE=$keepalive, sink $DST_ADDR ($DST_NS), client $SRC_ADDR ($SRC_NS)"

port=$base_port
for check in $checks; do
	port=$((port + 1))
	case $check in
	peer_killed)
		stream_case peer_killed "$port" "$bound_ka" "kill -9 of the peer" ev_kill
		;;
	peer_stopped)
		stream_case peer_stopped "$port" "$bound_km" "SIGSTOP of the peer" ev_stop
		kill -CONT "$spid" 2>/dev/null || true
		;;
	idle_shutdown)
		hold=$((keepalive * 5 / 2))
		if ! start_sink idle_shutdown "$port"; then
			fail idle_shutdown "the sink never listened"
			continue
		fi
		start_client idle_shutdown "$port" idle --shutdown-after "$hold" --limit 10
		crc=0
		wait "$cpid" || crc=$?
		out=$work/idle_shutdown.client
		t_sh=$(sed -n 's/^probe: shutdown t=//p' "$out")
		why=
		grep -q "returned before the shutdown" "$out" &&
			why="$why; $(grep 'returned before the shutdown' "$out" | tr '\n' ' ')(the idle connection died within $hold s)"
		[ -n "$t_sh" ] || why="$why; no shutdown"
		times=
		for call in read poll; do
			if grep -q "^probe: $call still blocked" "$out"; then
				why="$why; $call still blocked after the shutdown"
				continue
			fi
			t=$(field "$out" "$call" t)
			if [ -z "$t" ] || [ -z "$t_sh" ]; then
				continue
			fi
			ms=$(awk -v a="$t" -v b="$t_sh" 'BEGIN { printf "%.0f", (a - b) * 1000 }')
			times="$times, $call woke after $ms ms"
			[ "$ms" -le $wake_ms ] || why="$why; $call woke after $ms ms (limit $wake_ms ms)"
		done
		ret=$(field "$out" read ret)
		[ "$ret" = 0 ] || why="$why; read returned $ret ($(field "$out" read errno)), want 0 (EOF)"
		if [ -z "$why" ] && [ $crc -eq 0 ]; then
			pass idle_shutdown "idle for $hold s with keepalive $keepalive s, then shutdown(SHUT_RDWR)${times}"
		else
			fail idle_shutdown "${why#; } (probe exit $crc)${times}"
			show_logs idle_shutdown
		fi
		;;
	shutdown_wakes)
		# shellcheck disable=SC2086
		ip netns exec "$DST_NS" env $lib_env MIGRDMA_LOG_FILE="$work/sw.server.log" \
			SOCKCHECK_SCALE=0.25 SOCKCHECK_WAKE_MS=$wake_ms \
			"$sockcheck" server "$port" shutdown_wakes >"$work/sw.server" 2>&1 &
		swpid=$!
		pids="$pids $swpid"
		crc=0
		# shellcheck disable=SC2086
		ip netns exec "$SRC_NS" env $lib_env MIGRDMA_LOG_FILE="$work/sw.client.log" \
			SOCKCHECK_SCALE=0.25 SOCKCHECK_CONNECT_TIMEOUT=60 \
			timeout 120 "$sockcheck" client "$DST_ADDR" "$port" shutdown_wakes \
			>"$work/sw.client" 2>&1 || crc=$?
		src=0
		wait "$swpid" || src=$?
		woke=$(sed -n 's/^INFO case=shutdown_wakes: server: \(.*\): woke after \(.*\)/\1: \2/p' \
			"$work/sw.server" | tr '\n' ';' | sed 's/;$//; s/;/; /g')
		if [ $crc -eq 0 ] && [ $src -eq 0 ]; then
			pass shutdown_wakes "sockcheck shutdown_wakes (limit $wake_ms ms): $woke"
		else
			fail shutdown_wakes "client exit $crc, server exit $src: $(cat "$work/sw.server" "$work/sw.client" | grep FAIL | head -n 2 | tr '\n' ' ')"
			for f in sw.server sw.client sw.server.log sw.client.log; do
				tail -n 10 "$work/$f" | sed "s/^/  | $f: /"
			done
		fi
		;;
	link_down)
		stream_case link_down "$port" "$bound_km" "ip link set $DST_NETDEV down" ev_link
		ip link set "$DST_NETDEV" up
		# Taking a link down flushes its routes, among them the policy
		# routes vm-guest.sh set up for the two hosts: put them back.
		ip route replace "$SRC_ADDR" dev "$DST_NETDEV" src "$DST_ADDR" table 102
		ip route replace "$DST_ADDR" dev "$SRC_NETDEV" src "$SRC_ADDR" table 101
		kill -KILL "$spid" 2>/dev/null || true
		# On this kernel the link going down under traffic leaves rxe's
		# connection manager deaf (even rping fails afterwards): the
		# checks that follow get a fresh device.
		timeout 60 rdma link delete "$DST_DEV" || true
		add_dst
		;;
	device_removed)
		stream_case device_removed "$port" "$bound_km" "rdma link delete $DST_DEV" ev_rdma
		kill -KILL "$spid" 2>/dev/null || true
		add_dst
		;;
	listener_back)
		if ! start_sink listener_back "$port" "$DST_ADDR"; then
			fail listener_back "the sink never listened"
			continue
		fi
		# rxe cannot take a context away from a process: the delete waits
		# until the sink's library lets go of the removed device.
		rdma link delete "$DST_DEV" &
		dpid=$!
		if ! exits_within "$dpid" 20; then
			fail listener_back "rdma link delete still waiting after 20 s: the sink holds the removed device"
			kill -KILL "$spid" 2>/dev/null || true
			wait "$dpid" || true
			add_dst
			continue
		fi
		add_dst
		# The library listens again within a second of the device's return.
		wait_for "$work/listener_back.sink.log" "again" 10 ||
			echo "  (the sink's library did not say it listens again)"
		start_client listener_back "$port" stream --limit 10
		if wait_for "$work/listener_back.client" "probe: streaming" 60 &&
			wait_for "$work/listener_back.sink" "sink: accepted" 5; then
			pass listener_back "after rdma link delete and re-add of $DST_DEV, a new connection streamed"
		else
			fail listener_back "no stream through the listener after the device came back"
			show_logs listener_back
		fi
		kill -KILL "$cpid" "$spid" 2>/dev/null || true
		;;
	*)
		fail "$check" "no such check"
		;;
	esac
done

check_summary liveness || exit 1
rm -rf "$work"
exit 0
