#!/bin/sh
# run-pair.sh: run one sockcheck case between the src and dst network
# namespaces of a "two" topology VM (scripts/vm-run --topology two), and
# check from the RoCE and TCP counters which transport carried it.
#
#   run-pair.sh CASE [--port P] [--preload LIB] [--targets RULES]
#               [--expect rdma|tcp|none] [--timeout SECS] [--sockcheck PATH]
#   run-pair.sh --list [--sockcheck PATH]     (the case names)
#
# sockcheck is $SOCKCHECK, or build/tests/sock/sockcheck in the checkout or
# the working directory.
#
# The server runs in namespace dst ("sockcheck server P CASE"), the client in
# src against $DST_ADDR.  With --preload both run with LD_PRELOAD=LIB and
# MIGRDMA_TARGETS=RULES (default "$DST_ADDR:P").
#
#   --expect rdma  RoCE sent_pkts grew on both devices and no TCP segment
#                  left either namespace (default with --preload).  Cases
#                  that deliberately connect to other ports (sockcheck info:
#                  side_tcp=1) only report their TCP count.
#   --expect tcp   TCP segments left both namespaces and RoCE stayed idle
#                  (default without --preload).
#   --expect none  only report the counters.
#
# When src and dst are names for one namespace (vm-guest.sh does this where
# rxe cannot work across namespaces; VM_NETNS_SHARED=1), TCP is counted once
# for both hosts, and the checks apply to that one count.
#
# Environment: SRC_NS DST_NS SRC_ADDR DST_ADDR SRC_DEV DST_DEV (set by
# vm-run; the namespaces default to src/dst); SOCKCHECK_* knobs are passed
# on, and so are VM_PASS_SOCKCHECK_* ones (vm-run forwards only VM_PASS_*
# and MIGRDMA_* variables into the VM) under their SOCKCHECK_* names.
#
# Prints one summary line "sock-pair: CASE RESULT ..." and exits 0 (pass),
# 1 (fail), 77 (skip) or 2 (usage).
set -u

prog=run-pair.sh
here=$(cd "$(dirname "$0")" && pwd -P)
root=$(cd "$here/../.." && pwd -P)

usage() {
	sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
}
die() {
	echo "$prog: $*" >&2
	exit 2
}

[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac
case_name=$1
shift
list_only=0
[ "$case_name" != --list ] || list_only=1
port=18515
preload=
targets=
expect=
timeout=600
sockcheck=${SOCKCHECK:-}
while [ $# -gt 0 ]; do
	case $1 in
	--port) [ $# -ge 2 ] || usage; port=$2; shift 2 ;;
	--preload) [ $# -ge 2 ] || usage; preload=$2; shift 2 ;;
	--targets) [ $# -ge 2 ] || usage; targets=$2; shift 2 ;;
	--expect) [ $# -ge 2 ] || usage; expect=$2; shift 2 ;;
	--timeout) [ $# -ge 2 ] || usage; timeout=$2; shift 2 ;;
	--sockcheck) [ $# -ge 2 ] || usage; sockcheck=$2; shift 2 ;;
	*) die "unknown argument '$1'" ;;
	esac
done

SRC_NS=${SRC_NS:-src}
DST_NS=${DST_NS:-dst}
SRC_DEV=${SRC_DEV:-}
DST_DEV=${DST_DEV:-}

case $port in '' | *[!0-9]*) die "--port must be a number" ;; esac
case $timeout in '' | *[!0-9]*) die "--timeout must be a number of seconds" ;; esac
if [ -z "$expect" ]; then
	if [ -n "$preload" ]; then expect=rdma; else expect=tcp; fi
fi
case $expect in rdma | tcp | none) ;; *) die "--expect must be rdma, tcp or none" ;; esac

# --- the binary ------------------------------------------------------------------
if [ -z "$sockcheck" ]; then
	for c in "$root/build/tests/sock/sockcheck" "$PWD/build/tests/sock/sockcheck" \
		"$PWD/tests/sock/sockcheck" "$PWD/sockcheck"; do
		if [ -x "$c" ]; then
			sockcheck=$c
			break
		fi
	done
fi
if [ -z "$sockcheck" ] || [ ! -x "$sockcheck" ]; then
	die "sockcheck not found (build it, or set SOCKCHECK=/path/to/sockcheck)"
fi
if [ $list_only = 1 ]; then
	exec "$sockcheck" list
fi
info=$("$sockcheck" info "$case_name" 2>&1) || die "$info"
: "${DST_ADDR:?not set: run inside scripts/vm-run --topology two}"
case $info in *side_tcp=1*) side_tcp=1 ;; *) side_tcp=0 ;; esac

# --- environment for both halves ---------------------------------------------------
for v in SCALE MB TIMEOUT CONNECT_TIMEOUT WAKE_MS; do
	eval "val=\${SOCKCHECK_$v:-\${VM_PASS_SOCKCHECK_$v:-}}"
	# shellcheck disable=SC2154 # set by eval
	[ -z "$val" ] || export "SOCKCHECK_$v=$val"
done
# Under emulation a preloaded library may take a while to start listening.
export SOCKCHECK_CONNECT_TIMEOUT="${SOCKCHECK_CONNECT_TIMEOUT:-60}"
# What carries it: a case may expect what only one transport does (guest_ram).
export SOCKCHECK_EXPECT="$expect"

set -- env
if [ -n "$preload" ]; then
	[ -f "$preload" ] || die "--preload $preload: no such file"
	preload=$(cd "$(dirname "$preload")" && pwd -P)/$(basename "$preload")
	[ -n "$targets" ] || targets="$DST_ADDR:$port"
	set -- env "LD_PRELOAD=$preload" "MIGRDMA_TARGETS=$targets"
fi

# --- counters ----------------------------------------------------------------------
# scripts/lib/vm-counters.sh, when present, knows best; these are fallbacks.
counters_lib="$root/scripts/lib/vm-counters.sh"
have_lib=0
if [ -r "$counters_lib" ]; then
	# shellcheck disable=SC1090
	. "$counters_lib" && have_lib=1
fi

# roce_sent NS DEV: RoCE packets sent by DEV, or NA.
roce_sent() {
	v=
	[ -n "$2" ] || { echo NA; return; }
	if [ $have_lib = 1 ] && command -v roce_sent_pkts >/dev/null 2>&1; then
		v=$(roce_sent_pkts "$2" 2>/dev/null)
	fi
	f=/sys/class/infiniband/$2/ports/1/hw_counters/sent_pkts
	case $v in '' | *[!0-9]*) v=$(cat "$f" 2>/dev/null) ;; esac
	case $v in '' | *[!0-9]*) v=$(ip netns exec "$1" cat "$f" 2>/dev/null) ;; esac
	case $v in
	'' | *[!0-9]*)
		v=$(rdma statistic show link "$2/1" 2>/dev/null |
			awk '{for (i = 1; i < NF; i++) if ($i == "sent_pkts") print $(i + 1)}')
		;;
	esac
	case $v in '' | *[!0-9]*) echo NA ;; *) echo "$v" ;; esac
}

# tcp_out NS: TCP segments sent from namespace NS, or NA.
tcp_out() {
	v=
	if [ $have_lib = 1 ] && command -v tcp_out_segs >/dev/null 2>&1; then
		v=$(tcp_out_segs "$1" 2>/dev/null)
	fi
	case $v in
	'' | *[!0-9]*)
		v=$(ip netns exec "$1" cat /proc/net/snmp 2>/dev/null | awk '
			$1 == "Tcp:" && !col { for (i = 2; i <= NF; i++) if ($i == "OutSegs") col = i; next }
			$1 == "Tcp:" && col { print $col; exit }')
		;;
	esac
	case $v in
	'' | *[!0-9]*)
		v=$(ip netns exec "$1" nstat -asz TcpOutSegs 2>/dev/null |
			awk '$1 == "TcpOutSegs" { print $2 }')
		;;
	esac
	case $v in '' | *[!0-9]*) echo NA ;; *) echo "$v" ;; esac
}

delta() {
	case "$1$2" in *NA*) echo NA ;; *) echo $(($2 - $1)) ;; esac
}

shared_ns=${VM_NETNS_SHARED:-0}
ns_src=$(ip netns exec "$SRC_NS" readlink /proc/self/ns/net 2>/dev/null)
ns_dst=$(ip netns exec "$DST_NS" readlink /proc/self/ns/net 2>/dev/null)
if [ -n "$ns_src" ] && [ "$ns_src" = "$ns_dst" ]; then
	shared_ns=1
fi

# --- run ---------------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/sock-pair.XXXXXX") || die "mktemp failed"
spid=
cpid=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
	for p in $spid $cpid; do
		kill -KILL "$p" 2>/dev/null
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

r0_src=$(roce_sent "$SRC_NS" "$SRC_DEV")
r0_dst=$(roce_sent "$DST_NS" "$DST_DEV")
t0_src=$(tcp_out "$SRC_NS")
t0_dst=$(tcp_out "$DST_NS")
start=$(date +%s)

# ip netns exec and env both exec, so $! is sockcheck itself.
ip netns exec "$DST_NS" "$@" "$sockcheck" server "$port" "$case_name" \
	>"$tmp/server.log" 2>&1 &
spid=$!
ip netns exec "$SRC_NS" "$@" "$sockcheck" client "$DST_ADDR" "$port" "$case_name" \
	>"$tmp/client.log" 2>&1 &
cpid=$!

# Bounded wait for both halves; whatever is left at the deadline is killed.
timed_out=0
while kill -0 "$spid" 2>/dev/null || kill -0 "$cpid" 2>/dev/null; do
	if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
		timed_out=1
		kill -KILL "$spid" "$cpid" 2>/dev/null
		break
	fi
	sleep 0.2
done
wait "$spid"
src=$?
wait "$cpid"
crc=$?
spid=
cpid=
elapsed=$(($(date +%s) - start))

r1_src=$(roce_sent "$SRC_NS" "$SRC_DEV")
r1_dst=$(roce_sent "$DST_NS" "$DST_DEV")
t1_src=$(tcp_out "$SRC_NS")
t1_dst=$(tcp_out "$DST_NS")
dr_src=$(delta "$r0_src" "$r1_src")
dr_dst=$(delta "$r0_dst" "$r1_dst")
dt_src=$(delta "$t0_src" "$t1_src")
dt_dst=$(delta "$t0_dst" "$t1_dst")
if [ "$shared_ns" = 1 ]; then
	# One namespace: both reads are the same counter; check it once.
	tcp_desc="tcp_out(shared ns)=+$dt_src"
	tcp_checks="$dt_src:$SRC_NS+$DST_NS"
else
	tcp_desc="tcp_out(src,dst)=+$dt_src,+$dt_dst"
	tcp_checks="$dt_src:$SRC_NS $dt_dst:$DST_NS"
fi

# --- verdict -----------------------------------------------------------------------
result=PASS
why=
note() {
	why="$why${why:+; }$*"
}
fail() {
	result=FAIL
	note "$@"
}
if [ $timed_out = 1 ]; then
	fail "timed out after ${timeout}s"
elif [ $src = 77 ] || [ $crc = 77 ]; then
	if [ $src != 1 ] && [ $crc != 1 ]; then
		result=SKIP
		note "$(grep -h '^SKIP' "$tmp/server.log" "$tmp/client.log" | head -n 1)"
	else
		fail "server exit $src, client exit $crc"
	fi
elif [ $src != 0 ] || [ $crc != 0 ]; then
	fail "server exit $src, client exit $crc"
fi

if [ $result = PASS ]; then
	gt0() { case $1 in NA) return 1 ;; esac; [ "$1" -gt 0 ]; }
	eq0() { case $1 in NA) return 1 ;; esac; [ "$1" -eq 0 ]; }
	case $expect in
	rdma)
		gt0 "$dr_src" || fail "no RoCE packets sent from $SRC_DEV ($dr_src)"
		gt0 "$dr_dst" || fail "no RoCE packets sent from $DST_DEV ($dr_dst)"
		if [ $side_tcp = 0 ]; then
			for c in $tcp_checks; do
				eq0 "${c%%:*}" || fail "TCP segments sent from ${c#*:}: ${c%%:*}"
			done
		else
			note "side connections on other ports: TCP not checked"
		fi
		;;
	tcp)
		for c in $tcp_checks; do
			gt0 "${c%%:*}" || fail "no TCP segments sent from ${c#*:} (${c%%:*})"
		done
		case "$dr_src/$dr_dst" in
		*NA*) note "RoCE counters unreadable" ;;
		0/0) ;;
		*) fail "RoCE packets sent on a plain TCP run: $dr_src/$dr_dst" ;;
		esac
		;;
	esac
fi

bytes=$(sed -n 's/^PASS case=[^ ]* bytes=\([0-9]*\).*role=server.*/\1/p' "$tmp/server.log")
echo "sock-pair: $case_name $result expect=$expect${preload:+ preload} port=$port" \
	"roce(src,dst)=+$dr_src,+$dr_dst $tcp_desc" \
	"bytes=${bytes:-?} time=${elapsed}s${why:+ ($why)}"
if [ $result = FAIL ]; then
	for half in server client; do
		echo "--- $half log ($case_name):"
		tail -n 40 "$tmp/$half.log" | sed 's/^/  /'
	done
	exit 1
fi
grep -h '^INFO' "$tmp/server.log" "$tmp/client.log" | sed 's/^/  /'
[ $result = SKIP ] && exit 77
exit 0
