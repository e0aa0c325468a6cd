#!/usr/bin/env python3
"""Print the demo's short report from scripts/migrate's JSON results."""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main(argv):
    rd, tcp = load(argv[1]), load(argv[2])
    if not rd:
        print("demo: FAILED: the libmigrdma migration left no result (see the output above)")
        return 1
    ok = rd.get("passed") and rd.get("status") == "completed"
    secs = rd["total_time_ms"] / 1000.0
    print()
    print("=== migrdma demo: %d MiB live guest, %s, %s topology ===" %
          (rd["size_mib"], rd["mode"], rd["topology"]))
    print("  status          %s" % rd["status"])
    print("  total time      %.1f s" % secs)
    print("  throughput      %.0f Mbit/s" % rd.get("throughput_mbit_s", 0))
    print("  downtime        %d ms" % rd["downtime_ms"])
    zc = rd.get("zerocopy_share")
    print("  zero-copy share %s" % ("%.2f %%" % (100 * zc) if zc is not None else "-"))
    print("  RoCE packets    %d" % rd.get("roce_pkts_total", 0))
    print("  TCP segments    %d" % sum(rd.get("tcp_segs", {}).values()))
    if rd.get("ram_identical"):
        print("  guest memory verified identical")
    else:
        print("  guest memory NOT identical")
        ok = False
    if tcp and tcp.get("status") == "completed":
        t = tcp["total_time_ms"] / 1000.0
        print("  plain TCP, same run: %.1f s, downtime %d ms -> libmigrdma took %.2fx TCP's time "
              "(soft-RoCE under CPU emulation; see README)" %
              (t, tcp["downtime_ms"], secs / t if t else 0))
    else:
        print("  plain TCP, same run: no result")
    print("demo: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
