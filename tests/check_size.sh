#!/bin/sh
# One job per file, functions a reader can hold in mind: no C file of the
# library (common/ intercept/ shim/ rdma/) over 700 lines, no function
# over 80.  Kernel style puts a function's braces alone in column 0, which
# is what this counts between.
# Usage: check_size.sh SOURCE_DIR
set -eu
root=$1
max_file=700
max_func=80
status=0
files=$(ls "$root"/common/*.c "$root"/intercept/*.c "$root"/shim/*.c "$root"/rdma/*.c)
nfiles=0
nfuncs=0
for f in $files; do
	nfiles=$((nfiles + 1))
	n=$(wc -l <"$f")
	if [ "$n" -gt "$max_file" ]; then
		echo "FAIL: ${f#$root/} has $n lines (at most $max_file)"
		status=1
	fi
	out=$(awk -v max="$max_func" -v file="${f#$root/}" '
		/^\{$/ { start = NR; name = prev; next }
		/^\}$/ && start { n = NR - start - 1; funcs++
			if (n > max) printf "FAIL: %s:%d: %s has %d lines (at most %d)\n", file, start, name, n, max
			start = 0 }
		{ prev = $0 }
		END { printf "funcs %d\n", funcs }' "$f")
	nfuncs=$((nfuncs + $(echo "$out" | sed -n 's/^funcs //p')))
	if echo "$out" | grep -q '^FAIL'; then
		echo "$out" | grep '^FAIL'
		status=1
	fi
done
[ "$nfuncs" -gt 100 ] || { echo "FAIL: only $nfuncs functions found: the parse is wrong"; exit 1; }
[ "$status" = 0 ] && echo "PASS: $nfiles files, $nfuncs functions within $max_file / $max_func lines"
exit "$status"
