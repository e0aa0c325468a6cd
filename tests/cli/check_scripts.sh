#!/bin/sh
# check_scripts.sh SOURCE_DIR: the command-line papercuts of the scripts an
# operator meets first stay fixed.
#   - scripts/test --help prints the comment block and no line of code;
#   - scripts/test -R without a REGEX is a usage error (exit 2, one line),
#     not a shell error;
#   - scripts/setup installs what the test suites call: groff (tools.man)
#     and libvirt (vm.libvirt).
set -eu
src=$1
failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rc=0
"$src/scripts/test" --help >"$tmp/out" 2>"$tmp/err" || rc=$?
if [ "$rc" -eq 0 ] && ! grep -q 'set -eu' "$tmp/out" && grep -q -- '-R REGEX' "$tmp/out" &&
	[ "$(head -1 "$tmp/out")" = "The test command: install what is missing, build, run every ctest suite" ] &&
	[ ! -s "$tmp/err" ]; then
	pass "scripts/test --help: the comment block only"
else
	fail "scripts/test --help (exit $rc):"
	sed 's/^/  | /' "$tmp/out" "$tmp/err"
fi

for args in "-R" "-R ''"; do
	rc=0
	eval "\"\$src/scripts/test\" $args" >"$tmp/out" 2>"$tmp/err" || rc=$?
	if [ "$rc" -eq 2 ] && [ "$(cat "$tmp/err")" = "scripts/test: -R needs a REGEX (see --help)" ] &&
		[ ! -s "$tmp/out" ]; then
		pass "scripts/test $args: usage error, exit 2"
	else
		fail "scripts/test $args: exit $rc, stderr:"
		sed 's/^/  | /' "$tmp/err"
	fi
done

rc=0
"$src/scripts/test" --bogus >"$tmp/out" 2>"$tmp/err" || rc=$?
[ "$rc" -eq 2 ] && grep -q "unknown option '--bogus'" "$tmp/err" &&
	pass "scripts/test --bogus: exit 2" || fail "scripts/test --bogus: exit $rc"

# The package list, as scripts/setup would install it.
pkgs=$(sed -n '/^PACKAGES="/,/"$/p' "$src/scripts/setup" | tr -d '"' | sed 's/^PACKAGES=//')
for p in groff-base libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients; do
	if printf '%s\n' $pkgs | grep -qx "$p"; then
		pass "scripts/setup installs $p"
	else
		fail "scripts/setup does not install $p"
	fi
done
grep -q -- '--no-install-recommends' "$src/scripts/setup" ||
	fail "scripts/setup must install with --no-install-recommends"

[ "$failures" -eq 0 ] || { echo "FAIL: $failures check(s) failed"; exit 1; }
echo "PASS: all script checks passed"
