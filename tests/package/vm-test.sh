#!/bin/sh
# vm-test.sh SOURCE_DIR BUILD_DIR KERNEL: ctest vm.package.  Builds the
# Debian package with scripts/package (in BUILD_DIR/deb), then installs it
# and uses it inside the soft-RoCE VM (tests/package/run.sh).
set -eu
src=$1 build=$2 kernel=$3
out=$build/package-out
mkdir -p "$out"
deb=$("$src/scripts/package" "$build/deb")
echo "package: $deb ($(stat -c %s "$deb") bytes)"
# The VM's own copy: a rebuild of the build tree must not change it mid-run.
cp "$deb" "$out/"
exec "$src/scripts/vm-run" --topology two --timeout 600 --share "$out" -- \
	"$src/tests/package/run.sh" "$out/$(basename "$deb")" "$kernel" "$out"
