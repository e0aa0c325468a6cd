#!/bin/sh
# test-man.sh MANDIR SOURCE_DIR: ctest tools.man.
#
#   1. each page formats without a single groff warning (groff -man -ww),
#      and man(1) renders it without warnings when man-db is installed;
#   2. migrdma.7 documents every MIGRDMA_* variable that the library's
#      parser reads (shim/config.c) and that README.md's table lists, so a
#      new variable cannot go undocumented in the man page.
set -eu

[ $# -eq 2 ] || {
	echo "usage: test-man.sh MANDIR SOURCE_DIR" >&2
	exit 2
}
mandir=$1 src=$2

failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

command -v groff >/dev/null 2>&1 || {
	echo "FAIL: groff is not installed (Debian package groff-base)"
	exit 1
}

log=$(mktemp "${TMPDIR:-/tmp}/migrdma-man-test.XXXXXX")
trap 'rm -f "$log"' EXIT

for page in migrdma.7 migrdma.1 migrdma-run.1; do
	f=$mandir/$page
	if [ ! -f "$f" ]; then
		fail "$page: missing"
		continue
	fi
	if groff -man -ww -z "$f" >"$log" 2>&1 && [ ! -s "$log" ]; then
		pass "$page: groff -man -ww is silent"
	else
		fail "$page: groff warnings:"
		sed 's/^/  | /' "$log"
	fi
	if command -v man >/dev/null 2>&1; then
		if MANWIDTH=80 man --warnings -l "$f" 2>"$log" >/dev/null && [ ! -s "$log" ]; then
			pass "$page: man --warnings -l is silent"
		else
			fail "$page: man warnings:"
			sed 's/^/  | /' "$log"
		fi
	fi
done

# Variables: every "MIGRDMA_X" the parser looks up, and every `MIGRDMA_X`
# in the first column of README.md's table, must be an item (".B MIGRDMA_X"
# right after ".TP") of migrdma.7.
documented=$(awk 'prev == ".TP" && $1 == ".B" && $2 ~ /^MIGRDMA_/ { print $2 } { prev = $0 }' \
	"$mandir/migrdma.7")
# (A literal ending in "_", such as "MIGRDMA_VM_", is a prefix, not a name.)
parsed=$(grep -o '"MIGRDMA_[A-Z0-9_]*[A-Z0-9]"' "$src/shim/config.c" | tr -d '"' | sort -u)
# shellcheck disable=SC2016 # the backquotes are README.md's, not the shell's
readme=$(grep -o '^| `MIGRDMA_[A-Z0-9_]*`' "$src/README.md" | tr -d '|` ' | sort -u)
[ -n "$parsed" ] || fail "no variable found in shim/config.c"
missing=0
for v in $parsed $readme; do
	if ! printf '%s\n' "$documented" | grep -qx "$v"; then
		fail "migrdma.7 does not document $v (add a .TP/.B $v item to its ENVIRONMENT section)"
		missing=$((missing + 1))
	fi
done
if [ "$missing" -eq 0 ]; then
	n=$(printf '%s\n' "$parsed" "$readme" | sort -u | grep -c .)
	pass "migrdma.7 documents the $n variables of shim/config.c and README.md"
fi

if [ "$failures" -ne 0 ]; then
	echo "FAIL: $failures check(s) failed"
	exit 1
fi
echo "PASS: all man page checks passed"
