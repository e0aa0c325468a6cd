#!/bin/bash
# run-suite.sh: real QEMU live migrations through libmigrdma, every case, in
# ONE boot of the soft-RoCE test VM.  Run it through scripts/vm-run:
#
#   scripts/vm-run --topology one|two --timeout 900 --share OUT -- \
#       tests/migration/run-suite.sh [--out OUT] [options]
#
# Each case is one scripts/migrate run (see scripts/migrate --help for what
# it checks); this prints PASS/FAIL per case, a table of the measured
# numbers, and exits non-zero if any case failed.
#
# Options:
#   --topology one|two  must match the VM's (default: $VM_TOPOLOGY)
#   --out DIR           results: CASE.json, CASE.log (the run's output),
#                       CASE/ (QEMU, MIGRDMA_LOG and MIGRDMA_STATS files),
#                       summary.json (default: /tmp/migration-out, inside
#                       the VM, so lost at power-off; pass a --share dir)
#   --size MIB          guest RAM of the functional cases (default 128)
#   --measure-size MIB  guest RAM of the precopy TCP/migrdma pair whose
#                       times are compared (default 256)
#   --budget S          stop starting cases after S seconds (default 840,
#                       under vm-run's 900 s) and fail the ones left
#   --only A,B          run only these cases
#   --qemu 7.2|10|7.2,10  the QEMU the cases run on (default: $MIGRDMA_QEMU,
#                       else 7.2, the system's): 10 is 10.0 from
#                       bookworm-backports, unpacked by scripts/setup
#                       (its root: $MIGRDMA_QEMU10_ROOT, else the cache);
#                       with both, every case runs on each in turn and its
#                       results are named CASE@7.2 and CASE@10
#   --group all|core|features   which cases (default all): core is the
#                       first nine below, features the rest
#   --kernel ELF        the prebuilt guest (default: built into --out)
#   --lib FILE          libmigrdma.so (default: <repo>/build/libmigrdma.so)
#
# Core cases, on both QEMUs: precopy-tcp (the harness on plain TCP, and the
# baseline), precopy, multifd (4 channels), postcopy, cancel, kill-dst,
# untouched-port, zero-copy (QEMU's zero-copy-send refused cleanly, then a
# retry without it), pin-limit (MIGRDMA_PIN_LIMIT=16M: registrations and
# the source's VmPin stay under the cap through a whole migration),
# Feature cases, on both: postcopy-preempt (64 MiB; the destination guest runs during postcopy:
# postcopy-requests > 0, both channels over RDMA), tls (16 MiB, paused
# source; x509 certificates made by the test, on both ends), storage
# (64 MiB RAM, paused source, and a 32 MiB disk mirrored over NBD through
# the library while the disk is written through its device, then RAM:
# disks and RAM identical, no TCP on either port).
# Feature cases on 10 only (64 MiB, guest dirtying 2 MiB/s): multifd-zstd
# (4 channels, zstd compression), channels-arg (migrate and
# migrate-incoming with "channels" instead of a URI), and cross-version (a
# 7.2 source to a 10.0 destination, -machine pc-i440fx-7.2 on both).
#
# MIGRDMA_LOG (e.g. debug) is passed on to the library in both QEMUs; its
# logs land in OUT/CASE/migrdma-*.log.
set -eu

prog=run-suite
die() {
	echo "$prog: $*" >&2
	exit 2
}

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
migrate=$repo/scripts/migrate

topology=${VM_TOPOLOGY:-}
out=/tmp/migration-out
size=128
measure_size=256
budget=840
only=
qemu=${MIGRDMA_QEMU:-7.2}
group=all
kernel=
lib=$repo/build/libmigrdma.so
while [ $# -gt 0 ]; do
	case $1 in
	--topology) topology=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--measure-size) measure_size=$2; shift 2 ;;
	--budget) budget=$2; shift 2 ;;
	--only) only=$2; shift 2 ;;
	--qemu) qemu=$2; shift 2 ;;
	--group) group=$2; shift 2 ;;
	--kernel) kernel=$2; shift 2 ;;
	--lib) lib=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown option '$1' (see --help)" ;;
	esac
done

# The cases need rxe devices and 198.18.0.0/15 addresses: only the VM has them.
[ -n "${VM_TOPOLOGY:-}" ] ||
	die "run inside the test VM: scripts/vm-run --topology one -- $0"
[ -n "$topology" ] || topology=$VM_TOPOLOGY
[ "$topology" = "$VM_TOPOLOGY" ] ||
	die "--topology $topology, but the VM was booted with topology $VM_TOPOLOGY"
for q in ${qemu//,/ }; do
	case $q in
	7.2 | 10) ;;
	*) die "--qemu takes 7.2, 10 or 7.2,10, not '$qemu'" ;;
	esac
done
case $group in
all | core | features) ;;
*) die "--group must be all, core or features, not '$group'" ;;
esac
[ -f "$lib" ] || die "$lib not found (build it: cmake -S . -B build && cmake --build build)"

mkdir -p "$out"
out=$(cd "$out" && pwd -P)
start=$SECONDS
deadline=$((start + budget))

# --- shared inputs: the guest and the random RAM images ---------------------------
# Local tmpfs, not the (9p) output directory: QEMU maps the image and reads
# it at memory speed.
work=$(mktemp -d /tmp/run-suite.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -z "$kernel" ]; then
	kernel=$work/dirty.elf
	"$repo/tests/migration/guest/build.sh" "$kernel" || die "cannot build the guest"
fi
[ -f "$kernel" ] || die "guest $kernel not found"
# One image, as big as the biggest guest: a smaller guest maps its start.
ram_mib=$size
[ "$measure_size" -le "$ram_mib" ] || ram_mib=$measure_size
ram=$work/ram.bin
t0=$SECONDS
head -c "$((ram_mib * 1024 * 1024))" /dev/urandom >"$ram" || die "cannot write $ram"
echo "$prog: QEMU $qemu, topology $topology, ${ram_mib} MiB random RAM image in $((SECONDS - t0)) s; results in $out"

# --- the cases ------------------------------------------------------------------------
# group|name|QEMU versions|migrate options (the versions: both, or 10 only)
all_cases=(
	"core|precopy-tcp|7.2,10|--transport tcp --size $measure_size"
	"core|precopy|7.2,10|--size $measure_size"
	"core|multifd|7.2,10|--mode multifd --channels 4 --size $size"
	"core|postcopy|7.2,10|--mode postcopy --size $size"
	"core|cancel|7.2,10|--case cancel --size $size"
	"core|kill-dst|7.2,10|--case kill-dst --size $size"
	"core|untouched-port|7.2,10|--case untouched-port --size $size"
	"core|zero-copy|7.2,10|--case zero-copy --mode multifd --channels 2 --size $size"
	"core|pin-limit|7.2,10|--pin-limit 16 --size $size"
	"features|postcopy-preempt|7.2,10|--mode postcopy --preempt --size 64"
	# TLS is slow through the library today (GnuTLS's records take the
	# copy path; 2-5 Mbit/s here): a small, paused source, so that the
	# case stays short and precopy converges whatever the speed.  The
	# storage case's source is paused too: the disk is written through
	# its device meanwhile, and RAM is compared as everywhere.
	"features|tls|7.2,10|--tls --guest idle --size 16"
	"features|storage|7.2,10|--case storage --guest idle --size 64 --disk-size 32"
	# A guest dirtying 2 MiB/s: precopy still iterates, and converges
	# even on a loaded host.
	"features|multifd-zstd|10|--mode multifd --channels 4 --compress zstd --size 64 --dirty-rate 2"
	"features|channels-arg|10|--channels-arg --size 64 --dirty-rate 2"
	"features|cross-version|10|--qemu 7.2 --dst-qemu 10 --machine pc-i440fx-7.2 --size 64 --dirty-rate 2"
)
# QEMU|name|migrate options, in run order; with more than one QEMU, each
# case's results are named NAME@QEMU.
cases=()
for q in ${qemu//,/ }; do
	for entry in "${all_cases[@]}"; do
		IFS='|' read -r g name versions opts <<<"$entry"
		case $group in all | "$g") ;; *) continue ;; esac
		case ",$versions," in *",$q,"*) ;; *) continue ;; esac
		[ "$qemu" = "$q" ] || name=$name@$q
		cases+=("$q|$name|$opts")
	done
done

selected() {
	[ -z "$only" ] && return 0
	case ",$only," in
	*",$1,"* | *",${1%@*},"*) return 0 ;;
	esac
	return 1
}

passed=()
failed=()
port=49200
for entry in "${cases[@]}"; do
	IFS='|' read -r q name opts <<<"$entry"
	port=$((port + 10)) # a fresh port per case: nothing left over can interfere
	selected "$name" || continue
	left=$((deadline - SECONDS))
	if [ "$left" -lt 60 ]; then
		echo "$prog: FAIL $name: not started, the suite's $budget s budget is spent"
		failed+=("$name")
		continue
	fi
	# A case that hangs must not eat the whole budget: at most 300 s each
	# (a 128-256 MiB guest takes well under 100 s even when slow).
	limit=300
	[ "$left" -ge "$limit" ] || limit=$left
	echo "===== $name (scripts/migrate --qemu $q $opts)"
	rm -rf "${out:?}/$name" "$out/$name.json"
	t0=$SECONDS
	rc=0
	# shellcheck disable=SC2086 # opts is a word list on purpose
	timeout -k 10 "$limit" "$migrate" --qemu "$q" --topology "$topology" --port "$port" \
		--kernel "$kernel" --ram-file "$ram" --lib "$lib" \
		--out "$out/$name" --json "$out/$name.json" $opts \
		>"$out/$name.log" 2>&1 || rc=$?
	cat "$out/$name.log"
	took=$((SECONDS - t0))
	case $rc in
	0)
		echo "$prog: PASS $name (${took} s)"
		passed+=("$name")
		;;
	124 | 137)
		echo "$prog: FAIL $name: timed out after $limit s"
		failed+=("$name")
		;;
	*)
		echo "$prog: FAIL $name (exit $rc, ${took} s)"
		failed+=("$name")
		;;
	esac
done

# --- summary ----------------------------------------------------------------------------
total=$((SECONDS - start))
names=()
for entry in "${cases[@]}"; do
	IFS='|' read -r q name opts <<<"$entry"
	names+=("$name")
done
python3 - "$out" "$total" "$topology" "$qemu" "${names[@]}" <<'EOF' || true
import json, os, sys
out, total, topology, qemu, names = (sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4],
                                     sys.argv[5:])
rows, summary = [], {"topology": topology, "qemu": qemu, "suite_seconds": total, "cases": {}}
for name in names:
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        continue
    with open(p) as f:
        r = json.load(f)
    summary["cases"][name] = r
    def fmt(v, spec="{}"):
        return "-" if v is None else spec.format(v)
    roce = r.get("roce_pkts_total")
    tcp = r.get("tcp_segs") or {}
    zc = r.get("zerocopy_share")
    nzc = r.get("nbd_zerocopy_share")
    ver = r.get("qemu", "")
    if r.get("dst_qemu", ver) != ver:
        ver += ">" + r["dst_qemu"]
    rows.append([name, "PASS" if r.get("passed") else "FAIL", ver, r.get("transport", ""),
                 fmt(r.get("total_time_ms")), fmt(r.get("downtime_ms")),
                 fmt(r.get("throughput_mbit_s")), fmt(r.get("dirty_sync_count")),
                 fmt(roce), "/".join(str(v) for v in tcp.values()) or "-",
                 fmt(zc if zc is None else zc * 100, "{:.2f}%"),
                 fmt(nzc if nzc is None else nzc * 100, "{:.2f}%"),
                 fmt(r.get("postcopy_requests")) if r.get("mode") == "postcopy" else "-",
                 fmt(r.get("ram_identical")), fmt(r.get("script_seconds"))])
head = ["case", "result", "QEMU", "transport", "total ms", "downtime ms", "Mbit/s", "syncs",
        "RoCE pkts", "TCP segs", "zero-copy", "NBD zero-copy", "pc requests", "RAM same",
        "case s"]
w = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
print("\n".join("  ".join(str(c).ljust(w[i]) for i, c in enumerate(row)).rstrip()
                for row in [head] + rows))
# The failed first attempts of cancel, kill-dst and zero-copy.
for name, r in summary["cases"].items():
    fa = r.get("first_attempt")
    if fa:
        at = fa.get("interrupted_at_bytes")
        print(f"{name}: first attempt {fa.get('status')} {fa.get('seconds')} s after "
              + (f"the interruption (at {at} bytes)" if at is not None else "it started")
              + f", source {fa.get('src_run_state')}, guest "
              f"{'running' if fa.get('guest_alive') else 'NOT running'}")
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1, sort_keys=True)
EOF
echo "$prog: ${#passed[@]} passed, ${#failed[@]} failed${failed[*]:+ (${failed[*]})}; $total s in all"
[ ${#failed[@]} -eq 0 ]
