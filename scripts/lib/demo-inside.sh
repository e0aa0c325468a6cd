#!/bin/sh
# Inside the VM: the demo's two migrations, through libmigrdma and then
# over plain TCP, each leaving its results as JSON for demo_report.py.
set -u
root=$1 out=$2 size=$3 mode=$4 qemu=${5:-7.2}
# The guest RAM image lives in the VM's memory, not on the shared disk.
ram=/tmp/demo-guest-ram.bin
for transport in migrdma tcp; do
	echo "demo: migrating over $transport..."
	"$root/scripts/migrate" --qemu "$qemu" --transport "$transport" --mode "$mode" --size "$size" \
		--ram-file "$ram" --out "$out/$transport" --json "$out/$transport.json" \
		--lib "$root/build/libmigrdma.so" 2>&1 | grep -E '^ *(ok|FAIL|migrate: (PASS|FAIL))' || true
done
rm -f "$ram"
