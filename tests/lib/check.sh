# Sourced by the shell test scripts, so that they all count and report
# checks one way:
#   pass MSG...          a "PASS: MSG" line, counted
#   fail MSG...          a "FAIL: MSG" line, counted; the script goes on
#   check_summary NAME   the closing "NAME: N passed, N failed" line;
#                        false when any check failed
npass=0
nfail=0

pass() {
	npass=$((npass + 1))
	echo "PASS: $*"
}

fail() {
	nfail=$((nfail + 1))
	echo "FAIL: $*"
}

check_summary() {
	echo "$1: $npass passed, $nfail failed"
	[ "$nfail" -eq 0 ]
}
