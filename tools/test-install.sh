#!/bin/sh
# test-install.sh BUILD_DIR LIBDIR BINDIR MANDIR: ctest tools.install.
#
# Stages "cmake --install BUILD_DIR --prefix /usr" under DESTDIR and checks
# that every expected file landed there (LIBDIR, BINDIR and MANDIR are
# CMake's relative GNUInstallDirs values), that the installed migrdma-run
# names the installed library's path, and that the staged tools run.
#
# cmake --install rewrites BUILD_DIR/install_manifest.txt, which the
# uninstall instructions (tools/INSTALL.md) rely on: it is put back after.
set -eu

[ $# -eq 4 ] || {
	echo "usage: test-install.sh BUILD_DIR LIBDIR BINDIR MANDIR" >&2
	exit 2
}
build=$1 libdir=$2 bindir=$3 mandir=$4

failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

stage=$(mktemp -d "${TMPDIR:-/tmp}/migrdma-stage.XXXXXX")
manifest=$build/install_manifest.txt
saved=$stage.manifest
restore() {
	if [ -f "$saved" ]; then
		mv -f "$saved" "$manifest"
	else
		rm -f "$manifest"
	fi
	rm -rf "$stage" "$stage.before"
}
trap restore EXIT
if [ -f "$manifest" ]; then
	cp -p "$manifest" "$saved"
fi

# Which of the final paths exist already, to notice an install escaping DESTDIR.
for f in "/usr/$libdir/libmigrdma.so" "/usr/$bindir/migrdma-run" "/usr/$bindir/migrdma" \
	"/usr/$mandir/man7/migrdma.7" "/usr/$mandir/man1/migrdma-run.1" "/usr/$mandir/man1/migrdma.1"; do
	[ ! -e "$f" ] || echo "$f"
done >"$stage.before"

if ! DESTDIR=$stage cmake --install "$build" --prefix /usr >"$stage.log" 2>&1; then
	fail "cmake --install failed:"
	sed 's/^/  | /' "$stage.log"
	rm -f "$stage.log"
	exit 1
fi
rm -f "$stage.log"

echo "staged files:"
(cd "$stage" && find . -type f -o -type l | sort | sed 's/^\./  /')

expect_file() {
	_path=$stage/usr/$1
	if [ ! -f "$_path" ]; then
		fail "missing /usr/$1"
	elif [ "$2" = x ] && [ ! -x "$_path" ]; then
		fail "/usr/$1 is not executable"
	else
		pass "/usr/$1"
	fi
}
expect_file "$libdir/libmigrdma.so" -
expect_file "$bindir/migrdma-run" x
expect_file "$bindir/migrdma" x
expect_file "$mandir/man7/migrdma.7" -
expect_file "$mandir/man1/migrdma-run.1" -
expect_file "$mandir/man1/migrdma.1" -

# The manifest names the final paths (what uninstalling removes); each must
# have landed under DESTDIR, and none may have appeared outside it.
if [ ! -s "$manifest" ]; then
	fail "cmake --install wrote no install_manifest.txt"
else
	escaped=0
	# The manifest has no final newline: read the last line too.
	while IFS= read -r f || [ -n "$f" ]; do
		if [ ! -e "$stage$f" ] && [ ! -L "$stage$f" ]; then
			fail "install_manifest.txt names $f, which is not under DESTDIR"
			escaped=1
		fi
		if [ -e "$f" ] && ! grep -qxF -- "$f" "$stage.before"; then
			fail "$f appeared outside DESTDIR"
			escaped=1
		fi
	done <"$manifest"
	[ "$escaped" -ne 0 ] || pass "all $(grep -c . "$manifest") installed files are under DESTDIR"
fi

run=$stage/usr/$bindir/migrdma-run
if [ -f "$run" ]; then
	if grep -q "^installed_lib='/usr/$libdir/libmigrdma.so'\$" "$run"; then
		pass "migrdma-run looks for /usr/$libdir/libmigrdma.so"
	else
		fail "migrdma-run does not name /usr/$libdir/libmigrdma.so:"
		grep -n 'installed_lib=' "$run" | sed 's/^/  | /'
	fi
	if grep -q '@[A-Z_]*@' "$run"; then
		fail "migrdma-run has unsubstituted @VARIABLES@:"
		grep -n '@[A-Z_]*@' "$run" | sed 's/^/  | /'
	fi
	if out=$(sh "$run" --version) && printf '%s\n' "$out" | grep -Eq '^migrdma-run [0-9]+\.[0-9]+'; then
		pass "staged migrdma-run --version: $out"
	else
		fail "staged migrdma-run --version: '$out'"
	fi
fi
tool=$stage/usr/$bindir/migrdma
if [ -x "$tool" ]; then
	if out=$("$tool" --version) && printf '%s\n' "$out" | grep -Eq '^migrdma [0-9]+\.[0-9]+'; then
		pass "staged migrdma --version: $out"
	else
		fail "staged migrdma --version: '$out'"
	fi
	# The staged wrapper finds the staged checker next to itself.
	rc=0
	out=$(env -u MIGRDMA_TARGETS MIGRDMA_LIB="$stage/usr/$libdir/libmigrdma.so" \
		sh "$run" -t 10.0.0.1:99999 -- true 2>&1) || rc=$?
	if [ "$rc" -eq 2 ] && printf '%s\n' "$out" | grep -q 'port must be between'; then
		pass "staged migrdma-run checks rules with the staged migrdma"
	else
		fail "staged migrdma-run with a bad rule: exit $rc: $out"
	fi
fi

if [ "$failures" -ne 0 ]; then
	echo "FAIL: $failures check(s) failed"
	exit 1
fi
echo "PASS: all install checks passed"
