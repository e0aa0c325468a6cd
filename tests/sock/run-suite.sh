#!/bin/sh
# run-suite.sh: every sockcheck case through run-pair.sh inside a "two"
# topology VM, e.g.
#
#   scripts/vm-run --topology two -- tests/sock/run-suite.sh --preload build/libmigrdma.so
#
#   run-suite.sh [--preload LIB] [--port-base N] [--cases "A B ..."]
#                [--timeout SECS] [--sockcheck PATH]
#
# With --preload, each case runs with the library loaded and a target rule
# for its own port ("$DST_ADDR:PORT") and must go over RDMA (--expect rdma);
# then a few cases run again with the library loaded but a rule for another
# port, and must stay on plain TCP (--expect tcp), and a few with
# MIGRDMA_SECRET set on both ends, over RDMA.  Without --preload every
# case runs on plain TCP (kernel parity, --expect tcp).
#
# Each case gets its own port (base + index, default base 20000) so that no
# TIME_WAIT or late segment of one case meets the next.  Payload sizes follow
# SOCKCHECK_SCALE (or VM_PASS_SOCKCHECK_SCALE from the host through vm-run).
#
# Ends with "sock: N passed, N failed, N skipped"; exits 1 if any failed.
set -u

here=$(cd "$(dirname "$0")" && pwd -P)
pair="$here/run-pair.sh"

usage() {
	sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
}

preload=
base=20000
cases=
passthru=
while [ $# -gt 0 ]; do
	case $1 in
	--preload) [ $# -ge 2 ] || usage; preload=$2; shift 2 ;;
	--port-base) [ $# -ge 2 ] || usage; base=$2; shift 2 ;;
	--cases) [ $# -ge 2 ] || usage; cases=$2; shift 2 ;;
	--timeout | --sockcheck)
		# run-pair.sh options; paths with spaces are not supported.
		[ $# -ge 2 ] || usage
		passthru="$passthru $1 $2"
		shift 2
		;;
	-h | --help) usage ;;
	*) echo "run-suite.sh: unknown argument '$1'" >&2; usage ;;
	esac
done
: "${DST_ADDR:?not set: run inside scripts/vm-run --topology two}"

if [ -z "$cases" ]; then
	# shellcheck disable=SC2086 # passthru is split on purpose
	cases=$("$pair" --list $passthru) || exit 2
fi
# One line, single spaces: easy to search for a name.
# shellcheck disable=SC2086
cases=$(printf '%s ' $cases)

passed=0
failed=0
skipped=0
failed_names=

run() {
	# shellcheck disable=SC2086 # passthru is split on purpose
	"$pair" "$@" $passthru
	case $? in
	0) passed=$((passed + 1)) ;;
	77) skipped=$((skipped + 1)) ;;
	*) failed=$((failed + 1)); failed_names="$failed_names $1" ;;
	esac
}

i=0
for c in $cases; do
	port=$((base + i))
	i=$((i + 1))
	if [ -n "$preload" ]; then
		run "$c" --port "$port" --preload "$preload" --targets "$DST_ADDR:$port" --expect rdma
	else
		run "$c" --port "$port" --expect tcp
	fi
done

if [ -n "$preload" ]; then
	# Library loaded, rule for a neighbouring port: this one stays TCP.
	for c in mixed_calls eof shutdown_wakes; do
		case " $cases" in *" $c "*) ;; *) continue ;; esac
		port=$((base + i))
		i=$((i + 1))
		run "$c" --port "$port" --preload "$preload" \
			--targets "$DST_ADDR:$((port + 1000))" --expect tcp
	done
fi

if [ -n "$preload" ]; then
	# Both ends holding MIGRDMA_SECRET: every connection proves it first,
	# and the proof may land before the server's own ESTABLISHED event.
	export MIGRDMA_SECRET=sockcheck-shared-secret
	for c in qemu_sendmsg many_conns churn; do
		case " $cases" in *" $c "*) ;; *) continue ;; esac
		port=$((base + i))
		i=$((i + 1))
		run "$c" --port "$port" --preload "$preload" --targets "$DST_ADDR:$port" --expect rdma
	done
	unset MIGRDMA_SECRET
fi

[ -z "$failed_names" ] || echo "failed:$failed_names"
echo "sock: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
