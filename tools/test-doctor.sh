#!/bin/sh
# test-doctor.sh cli|no-rdma MIGRDMA_TOOL: ctest tools.doctor_cli and
# tools.doctor_no_rdma.
#
#   cli      the command line and the configuration checks, which touch no
#            device and so run anywhere;
#   no-rdma  on a host without RDMA devices, "migrdma doctor" fails that
#            check and still checks the rules, the variables, the library
#            (LIBMIGRDMA, with its version) and memlock; exits 1.  Exits 77
#            (ctest: skipped) on a host that has devices: the VM test
#            vm.doctor covers that path.
set -eu

[ $# -eq 2 ] || [ $# -eq 3 ] || {
	echo "usage: test-doctor.sh cli|no-rdma MIGRDMA_TOOL [LIBMIGRDMA]" >&2
	exit 2
}
mode=$1 tool=$2 lib=${3:-}

failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

out=$(mktemp "${TMPDIR:-/tmp}/migrdma-doctor-test.XXXXXX")
trap 'rm -f "$out"' EXIT

# expect WHAT STATUS PATTERN CMD...: CMD exits STATUS and its output (stdout
# and stderr) has a line matching the extended regex PATTERN.
expect() {
	_what=$1 _want=$2 _pattern=$3
	shift 3
	_rc=0
	"$@" >"$out" 2>&1 || _rc=$?
	if [ "$_rc" -eq "$_want" ] && grep -Eq -- "$_pattern" "$out"; then
		pass "$_what (exit $_rc)"
	else
		fail "$_what: exit $_rc (expected $_want), output:"
		sed 's/^/  | /' "$out"
	fi
}

# Run with none of the caller's MIGRDMA_* variables.
clean() {
	env -u MIGRDMA_TARGETS -u MIGRDMA_LOG -u MIGRDMA_RING -u MIGRDMA_SECRET \
		-u MIGRDMA_DISABLE -u MIGRDMA_ALLOW -u MIGRDMA_FALLBACK "$@"
}

case $mode in
cli)
	expect "no command: usage, exit 2" 2 '^usage: migrdma COMMAND' clean "$tool"
	expect "unknown command: exit 2" 2 "unknown command 'frobnicate'" clean "$tool" frobnicate
	expect "--help: exit 0" 0 '^  doctor ' clean "$tool" --help
	expect "--version" 0 '^migrdma [0-9]+\.[0-9]+' clean "$tool" --version
	expect "doctor --help: exit 0" 0 '^usage: migrdma doctor' clean "$tool" doctor --help
	expect "doctor: unknown option" 2 'unknown option --bogus' clean "$tool" doctor --bogus
	expect "doctor: -t without argument" 2 'option -t needs an argument' clean "$tool" doctor -t
	expect "doctor: bad --for" 2 '--for nowhere: not an IPv4 or IPv6 address' \
		clean "$tool" doctor --for nowhere
	expect "doctor: stray argument" 2 "unexpected argument 'extra'" clean "$tool" doctor extra

	expect "good rules from -t" 0 '^ok +MIGRDMA_TARGETS \(from -t\): 2 rules: 198\.18\.0\.1:4444, \*:5000-5100$' \
		clean "$tool" doctor --config-only -t 198.18.0.1:4444 -t '*:5000-5100'
	expect "good rules from the environment" 0 '^ok +MIGRDMA_TARGETS: 1 rule: \[::1\]:4444$' \
		clean MIGRDMA_TARGETS='[::1]:4444' "$tool" doctor --config-only
	expect "bad rule: FAIL and exit 1" 1 '^FAIL +MIGRDMA_TARGETS: rule "1\.2\.3\.4:0": port must be between 1 and 65535$' \
		clean "$tool" doctor --config-only -t 1.2.3.4:0
	expect "bad rule: a fix line" 1 '^ +fix: ' clean "$tool" doctor --config-only -t 1.2.3.4:0
	expect "no rules: warn" 0 '^warn +MIGRDMA_TARGETS is empty' clean "$tool" doctor --config-only
	# Every bad variable is reported in one run, not only the first.
	clean MIGRDMA_LOG=loud MIGRDMA_RING=3M "$tool" doctor --config-only -t 10.0.0.1:1 >"$out" 2>&1 || true
	if grep -q '^FAIL  MIGRDMA_LOG="loud"' "$out" && grep -q '^FAIL  MIGRDMA_RING="3M"' "$out"; then
		pass "two bad variables: both reported"
	else
		fail "two bad variables:"
		sed 's/^/  | /' "$out"
	fi
	expect "valid variables listed, secret not shown" 0 'MIGRDMA_SECRET=\(21 characters\)' \
		clean MIGRDMA_SECRET=correct-horse-battery MIGRDMA_LOG=debug "$tool" doctor --config-only -t 10.0.0.1:1
	if grep -q correct-horse "$out"; then
		fail "the secret's value appears in the doctor's output"
	fi
	expect "misspelt variable: warn" 0 '^warn +MIGRDMA_TARGET is set, but the library reads no such variable' \
		clean MIGRDMA_TARGET=x "$tool" doctor --config-only -t 10.0.0.1:1
	expect "MIGRDMA_DISABLE=1: warn" 0 '^warn +MIGRDMA_DISABLE=1' \
		clean MIGRDMA_DISABLE=1 "$tool" doctor --config-only -t 10.0.0.1:1
	;;
no-rdma)
	if [ -d /sys/class/infiniband ] && [ -n "$(ls -A /sys/class/infiniband 2>/dev/null)" ]; then
		echo "SKIP: this host has RDMA devices in /sys/class/infiniband"
		exit 77
	fi
	# No devices is a FAIL, but the rules, the other variables, the
	# library and memlock are still checked (it used to stop at one line).
	rc=0
	env -u MIGRDMA_TARGETS MIGRDMA_LOG=verbose MIGRDMA_TARGET=x "$tool" doctor -t 198.18.0.1:4444 \
		${lib:+--lib "$lib"} >"$out" 2>&1 || rc=$?
	check_line() {
		if grep -Eq -- "$2" "$out"; then
			pass "no RDMA: $1"
		else
			fail "no RDMA: $1: no line matching '$2' in:"
			sed 's/^/  | /' "$out"
		fi
	}
	[ "$rc" -eq 1 ] && pass "no RDMA: exit 1" || fail "no RDMA: exit $rc, want 1"
	check_line "version first" '^migrdma doctor [0-9]+\.[0-9]+\.[0-9]+$'
	check_line "the device FAIL" '^FAIL  no RDMA devices found: a matched connection would fail with ENODEV'
	check_line "its fix" '^      fix: load the NIC.s RDMA driver, or for testing: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev [^ ]+$'
	check_line "the rules checked" '^ok    MIGRDMA_TARGETS \(from -t\): 1 rule: 198.18.0.1:4444$'
	check_line "a bad variable checked" '^FAIL  MIGRDMA_LOG="verbose": must be error, warn, notice, info or debug$'
	check_line "an unknown name checked" '^warn  MIGRDMA_TARGET is set, but the library reads no such variable; did you mean MIGRDMA_TARGETS\?$'
	check_line "memlock checked" '^(ok|warn|FAIL)  +memlock limit '
	if [ -n "$lib" ]; then
		check_line "the library checked, with its version" "^ok    library: .*libmigrdma.so \(migrdma [0-9.]+\) loads"
	fi
	check_line "the summary" '^migrdma doctor: 2 problems, [0-9]+ warnings?: fix the FAIL lines before migrating$'
	;;
*)
	echo "test-doctor.sh: unknown mode '$mode'" >&2
	exit 2
	;;
esac

if [ "$failures" -ne 0 ]; then
	echo "FAIL: $failures check(s) failed"
	exit 1
fi
echo "PASS: all $mode checks passed"
