#!/bin/bash
# run.sh DEB KERNEL OUT: the Debian package, installed on a clean tree and
# used from its installed paths, inside the soft-RoCE VM (topology two):
#   - "dpkg -i" of the .deb into the VM's throwaway overlay (nothing of the
#     package may be installed before);
#   - /usr/bin/migrdma doctor finds the installed library, shows its
#     version and passes for the migration's target;
#   - /usr/bin/migrdma-run preloads the installed library;
#   - one QEMU live migration (scripts/migrate, precopy) with the installed
#     library, RAM identical, RoCE packets > 0, no TCP segments.
# Run through scripts/vm-run --topology two --share OUT.
set -u
deb=$1 kernel=$2 out=$3
fails=0
ok() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

[ "${VM_TOPOLOGY:-}" = two ] || { echo "run.sh: run me in vm-run --topology two" >&2; exit 2; }
for f in /usr/bin/migrdma /usr/bin/migrdma-run /usr/share/man/man7/migrdma.7; do
	[ ! -e "$f" ] || { echo "FAIL: $f exists before the install: not a clean tree"; exit 1; }
done
# man-db's trigger rebuilds the whole manual database: minutes under TCG.
# The overlay is thrown away anyway; man -w below still finds the pages.
rm -f /var/lib/man-db/auto-update
if ! dpkg -i "$deb" >"$out/dpkg.log" 2>&1; then
	cat "$out/dpkg.log"
	echo "FAIL: dpkg -i $deb"
	exit 1
fi
lib=$(dpkg -L migrdma | grep '/libmigrdma\.so$')
version=$(dpkg-query -W -f '${Version}' migrdma)
ok "dpkg -i installed migrdma $version: $(dpkg -L migrdma | grep -c .) paths, library $lib"
for f in /usr/bin/migrdma /usr/bin/migrdma-run /usr/share/man/man1/migrdma.1 \
	/usr/share/man/man1/migrdma-run.1 /usr/share/man/man7/migrdma.7 /usr/share/doc/migrdma/copyright; do
	[ -e "$f" ] || bad "$f is not installed"
done
man -w migrdma-run >/dev/null 2>&1 || [ ! -x /usr/bin/man ] || bad "man cannot find migrdma-run(1)"

# The doctor from the installed path, without MIGRDMA_LIB: it must find the
# installed library by itself.
rc=0
env -u MIGRDMA_LIB /usr/bin/migrdma doctor -t "$DST_ADDR:49200" >"$out/doctor.txt" 2>&1 || rc=$?
cat "$out/doctor.txt"
[ "$rc" -eq 0 ] && ok "migrdma doctor passes (exit 0)" || bad "migrdma doctor: exit $rc"
grep -q "^migrdma doctor $version\$" "$out/doctor.txt" || bad "the doctor does not print its version $version"
grep -q "^ok    library: $lib (migrdma $version) loads" "$out/doctor.txt" &&
	ok "the doctor found the installed library and its version" ||
	bad "the doctor did not report $lib (migrdma $version)"

got=$(env -u MIGRDMA_LIB /usr/bin/migrdma-run -t "$DST_ADDR:49200" -- sh -c 'echo "$LD_PRELOAD"' 2>"$out/run.err")
[ "$got" = "$lib" ] && ok "migrdma-run preloads $lib" || { cat "$out/run.err"; bad "migrdma-run set LD_PRELOAD='$got'"; }

# One migration with the installed library.
rc=0
"$repo/scripts/migrate" --lib "$lib" --kernel "$kernel" --size 64 --window 16 \
	--json "$out/migrate.json" --out "$out/migrate" --log notice >"$out/migrate.log" 2>&1 || rc=$?
tail -n 25 "$out/migrate.log"
[ "$rc" -eq 0 ] && ok "one live migration through the installed library passed every scripts/migrate check" ||
	bad "scripts/migrate with $lib: exit $rc"
closes=$(cat "$out"/migrate/*.log 2>/dev/null | grep -c 'notice \[c[0-9]*\] closed: transport=rdma' || true)
[ "${closes:-0}" -ge 2 ] && ok "both QEMUs logged the close line ($closes)" || bad "close lines in the QEMU logs: $closes"

[ "$fails" -eq 0 ] || { echo "FAIL: $fails check(s) failed"; exit 1; }
echo "PASS: the package installs, its doctor passes and it migrates"
