#!/bin/sh
# The library never calls its own interposers: no dynamic relocation of
# libmigrdma.so may name a symbol the library itself exports.  Such a slot
# (a PLT entry bound at run time) sends an internal munmap, close or write
# back through the hook meant for the program.
# It also checks that the exports are exactly the INTERPOSE lines of
# common/interposed.def, the list the linker map is generated from.
# Usage: self_bound.sh LIBMIGRDMA INTERPOSED_DEF
set -eu
lib=$1
def=$2
command -v readelf >/dev/null || { echo "SKIP: readelf missing"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Defined, exported symbols (Ndx is a section number, not UND).
readelf -W --dyn-syms "$lib" | awk '$7 ~ /^[0-9]+$/ && $5 != "LOCAL" && NF >= 8 { sub(/@.*/, "", $8); print $8 }' |
	sort -u >"$tmp/exports"
# Every symbol a dynamic relocation refers to.
readelf -W -r "$lib" | awk '$1 ~ /^[0-9a-f]+$/ && NF >= 5 { sub(/@.*/, "", $5); print $5 }' |
	sort -u >"$tmp/relocs"
[ -s "$tmp/exports" ] || { echo "FAIL: no exported symbols read from $lib"; exit 1; }
grep -qx munmap "$tmp/exports" || { echo "FAIL: munmap not among the exports: wrong parse"; exit 1; }
grep -qx pthread_mutex_lock "$tmp/relocs" || { echo "FAIL: no relocation read from $lib"; exit 1; }
sed -n 's/^INTERPOSE([^,]*, *\([A-Za-z0-9_]*\),.*/\1/p' "$def" | sort -u >"$tmp/listed"
if ! cmp -s "$tmp/listed" "$tmp/exports"; then
	echo "FAIL: the exports of $lib differ from $def (< listed only, > exported only):"
	diff "$tmp/listed" "$tmp/exports" | grep '^[<>]' | sed 's/^/  /'
	exit 1
fi
comm -12 "$tmp/exports" "$tmp/relocs" >"$tmp/self"
if [ -s "$tmp/self" ]; then
	echo "FAIL: $lib calls its own exports through the PLT:"
	sed 's/^/  /' "$tmp/self"
	exit 1
fi
echo "PASS: $(wc -l <"$tmp/exports") exports, $(wc -l <"$tmp/relocs") relocated symbols, none shared"
