"""bench_report: the report of scripts/bench-migration.

Reads the per-run results a benchmark left in DIR/runs/ (each
scripts/migrate --json file plus the driver's own .run.json next to it)
and DIR/bench-meta.json, and writes:

  DIR/migration-bench.json  medians, per-round ratios, targets, every run
  DIR/migration-bench.md    the same as Markdown tables
  DIR/migration-bench.png   gnuplot chart of the medians and every round of
                            the first guest (needs the gnuplot-nox package);
                            migration-bench-GUEST.png for each other guest

Run it again by hand with "scripts/bench-migration --report-only --out DIR".
python3 stdlib only; gnuplot is called as a program.
"""

import glob
import json
import os
import shutil
import statistics
import subprocess

# The ways, in the order the issue lists them; also the column order.
# The -multifd ones migrate over 2 multifd channels (QEMU's rdma: cannot).
TRANSPORTS = ["null", "tcp", "qemu-rdma", "rsockets", "migrdma", "tcp-multifd",
              "migrdma-multifd", "tcp-tls", "migrdma-tls"]
# TLS (tls-creds-x509 both sides) runs only with the idle guest: the issue's
# "TLS migration, paused guest" (QEMU's rdma: has no TLS).
TLS_TRANSPORTS = ["tcp-tls", "migrdma-tls"]
DEFAULT_TRANSPORTS = ["null", "tcp", "qemu-rdma", "rsockets", "migrdma", "migrdma-multifd"]
MULTIFD_CHANNELS = 2
LABELS = {
    "null": "null sink (exec:cat > /dev/null)",
    "tcp": "TCP",
    "qemu-rdma": "QEMU native rdma:",
    "rsockets": "librspreload (rsockets)",
    "migrdma": "libmigrdma",
    "tcp-multifd": f"TCP, multifd x{MULTIFD_CHANNELS}",
    "migrdma-multifd": f"libmigrdma, multifd x{MULTIFD_CHANNELS}",
    "tcp-tls": "TCP, TLS",
    "migrdma-tls": "libmigrdma, TLS",
}
SHORT = {"null": "null sink", "tcp": "TCP", "qemu-rdma": "QEMU rdma:",
         "rsockets": "rsockets", "migrdma": "libmigrdma", "tcp-multifd": "TCP mfd",
         "migrdma-multifd": "libmigrdma mfd", "tcp-tls": "TCP TLS",
         "migrdma-tls": "libmigrdma TLS"}
# The guests: dirty (dirty.c over a random RAM image), idle (the same,
# paused), realistic (half zero, a quarter compressible, a quarter random
# pages, dirty.c keeping the mix: scripts/lib/guest_ram.py).
GUESTS = ["dirty", "realistic", "idle"]

# The targets of the issue, as medians over rounds of per-round ratios
# libmigrdma / peer, for the guests named.
TARGETS = [
    # key, guests, numerator, denominator, metric, limit, text
    ("time_vs_null", ("dirty",), "migrdma", "null", "total_time_ms", 1.10,
     "total time <= 1.10 x null sink (earlier target)"),
    ("time_vs_qemu_rdma", ("dirty",), "migrdma", "qemu-rdma", "total_time_ms", 0.90,
     "total time <= 0.90 x native rdma:"),
    ("downtime_vs_qemu_rdma", ("dirty",), "migrdma", "qemu-rdma", "downtime_ms", 1.00,
     "downtime <= native rdma:'s"),
    ("cpu_vs_qemu_rdma", ("dirty",), "migrdma", "qemu-rdma", "src_cpu_beyond_vcpu_s", 1.00,
     "source CPU beyond the vCPU thread <= native rdma:'s"),
    ("realistic_time_vs_qemu_rdma", ("realistic",), "migrdma", "qemu-rdma", "total_time_ms",
     0.75, "total time <= 0.75 x native rdma:"),
    ("src_syscalls_vs_qemu_rdma", GUESTS, "migrdma", "qemu-rdma", "src_syscalls_per_mib", 1.00,
     "source system calls/MiB <= native rdma:'s"),
    ("src_waits_vs_qemu_rdma", GUESTS, "migrdma", "qemu-rdma", "src_waits_per_mib", 1.00,
     "source waits/MiB <= native rdma:'s"),
    ("dst_syscalls_vs_qemu_rdma", GUESTS, "migrdma", "qemu-rdma", "dst_syscalls_per_mib", 1.00,
     "destination system calls/MiB <= native rdma:'s"),
    ("dst_waits_vs_qemu_rdma", GUESTS, "migrdma", "qemu-rdma", "dst_waits_per_mib", 1.00,
     "destination waits/MiB <= native rdma:'s"),
    ("tls_time_vs_tcp", ("idle",), "migrdma-tls", "tcp-tls", "total_time_ms", 1.50,
     "TLS: total time <= 1.5 x the same TLS migration over TCP"),
    # No peer (None): the limit is on the value itself.
    ("tls_roce_pkts", ("idle",), "migrdma-tls", None, "roce_pkts_per_mib", 300,
     "TLS: RoCE packets per MiB <= 300"),
]

# Per-run numbers whose medians are reported: JSON key -> metric name.
METRICS = {
    "total_time_ms": "total_time_ms",
    "downtime_ms": "downtime_ms",
    "src_cpu_s": "src_cpu_s",
    "src_cpu_s_vcpu": "src_cpu_s_vcpu",
    "dst_cpu_s": "dst_cpu_s",
    "roce_pkts": "roce_pkts_total",
    "tcp_segs": "tcp_segs_total",
    "throughput_mbit_s": "throughput_mbit_s",
    "dirty_sync_count": "dirty_sync_count",
}
# Computed per run (see load_runs): CPU beyond the vCPU thread, and the
# --perf counts per MiB of guest RAM, each QEMU process.
DERIVED = ["src_cpu_beyond_vcpu_s", "src_syscalls_per_mib", "src_waits_per_mib",
           "src_vcs_per_mib", "dst_syscalls_per_mib", "dst_waits_per_mib", "dst_vcs_per_mib",
           "roce_pkts_per_mib"]
# Where the source QEMU switched over (scripts/migrate --switchover,
# scripts/lib/switchover.py): metric name -> (its key, scale).  The
# bandwidth estimate is bytes/ms, reported as MiB/s like the threshold,
# which is that times downtime-limit.
SWITCHOVER = {
    "so_bandwidth_mib_s": ("bandwidth_bytes_per_ms", 1000 / (1 << 20)),
    "so_threshold_mib": ("threshold_bytes", 1 / (1 << 20)),
    "so_pending_mib": ("pending_bytes", 1 / (1 << 20)),
    "so_landing": ("landing", 1),
    "so_lock_ms": ("lock_ms", 1),
    "so_pause_ms": ("pause_ms", 1),
    "so_blackout_ms": ("blackout_ms", 1),
    "so_last_call_ms": ("last_call_ms", 1),
    "so_last_call_mib": ("last_call_mib", 1),
}
DERIVED += list(SWITCHOVER) + ["so_downtime_ms", "so_downtime_ms_per_mib"]


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_runs(out):
    """Every run the driver started: {"round", "transport", ...} merged
    with scripts/migrate's JSON (absent when migrate never wrote one)."""
    runs = []
    for meta_path in sorted(glob.glob(os.path.join(out, "runs", "r*-*.run.json"))):
        drv = _load(meta_path)
        if not drv:
            continue
        res = _load(meta_path[:-len(".run.json")] + ".json") or {}
        run = {"round": drv["round"], "transport": drv["transport"],
               "guest": drv.get("guest") or "dirty",
               "position": drv.get("position"), "rc": drv.get("rc"),
               "wall_s": drv.get("wall_s"), "driver_note": drv.get("note")}
        for name, key in METRICS.items():
            run[name] = res.get(key)
        size = res.get("size_mib")
        run["size_mib"] = size
        cpu, vcpu = res.get("src_cpu_s"), res.get("src_cpu_s_vcpu")
        run["src_cpu_beyond_vcpu_s"] = (round(cpu - vcpu, 2)
                                        if cpu is not None and vcpu is not None else None)
        perf = res.get("perf") or {}
        run["perf"] = perf
        for side in ("src", "dst"):
            for what in ("syscalls", "waits", "vcs"):
                v = (perf.get(side) or {}).get(what)
                run[f"{side}_{what}_per_mib"] = v / size if v is not None and size else None
        so = res.get("switchover") or {}
        for name, (key, scale) in SWITCHOVER.items():
            run[name] = so[key] * scale if so.get(key) is not None else None
        # What the transport controls once QEMU has decided: how long the
        # downtime lasts per MiB that was left.  How much was left is
        # QEMU's landing.  Below 1 MiB left (a paused guest) the quotient
        # is the fixed costs over a few pages, not a rate.
        down, left = res.get("downtime_ms"), run["so_pending_mib"]
        traced = left is not None
        run["so_downtime_ms"] = down if traced else None
        run["so_downtime_ms_per_mib"] = (down / left if down is not None and traced
                                         and left >= 1 else None)
        roce = res.get("roce_pkts_total")
        run["roce_pkts_per_mib"] = roce / size if roce is not None and size else None
        run["status"] = res.get("status")
        run["ram_identical"] = res.get("ram_identical")
        run["carried_over"] = res.get("carried_over")
        run["zerocopy_share"] = res.get("zerocopy_share")
        run["passed"] = res.get("passed")
        run["failed_checks"] = [c["name"] for c in res.get("checks", []) if not c.get("ok")]
        run["error"] = res.get("error") or res.get("migration_timeout") or res.get("error_desc")
        # Usable for the numbers: the migration completed and, where there
        # is a destination, delivered identical RAM.  A failed side check
        # (e.g. "pages sent again" when a small guest converges at once)
        # does not void the timing, but is listed.
        run["valid"] = run["status"] == "completed" and run["ram_identical"] is not False
        runs.append(run)
    runs.sort(key=lambda r: (r["round"], r["position"] if r["position"] is not None else 99))
    return runs


def summarize(runs):
    per = {}
    for t in TRANSPORTS:
        mine = [r for r in runs if r["transport"] == t]
        if not mine:
            continue
        ok = [r for r in mine if r["valid"]]
        s = {"runs": len(mine), "valid_runs": len(ok)}
        for name in list(METRICS) + DERIVED:
            s[name] = _median(r[name] for r in ok)
        # The breakdown by call name, each side, per MiB.
        for side in ("src", "dst"):
            names = sorted({c for r in ok for c in ((r["perf"].get(side) or {}).get("calls") or {})})
            s[f"{side}_calls_per_mib"] = {
                c: _median(((r["perf"].get(side) or {}).get("calls") or {}).get(c, 0)
                           / r["size_mib"] for r in ok if r.get("size_mib")
                           and (r["perf"].get(side) or {}).get("calls"))
                for c in names}
        # The last iterator calls cut at 50 ms, of those traced (the rest ended their pass).
        calls = [r for r in ok if r["so_last_call_ms"] is not None]
        s["so_last_call_cut"] = (f"{sum(1 for r in calls if r['so_last_call_mib'] is not None)}"
                                 f"/{len(calls)}" if calls else None)
        dest = [r["ram_identical"] for r in mine if r["ram_identical"] is not None]
        s["ram_identical"] = f"{sum(1 for x in dest if x)}/{len(dest)}" if dest else "n/a"
        s["carried_over"] = sorted({r["carried_over"] for r in ok if r["carried_over"]})
        s["failures"] = [{"round": r["round"], "status": r["status"], "rc": r["rc"],
                          "error": r["error"] or r["driver_note"],
                          "failed_checks": r["failed_checks"]}
                         for r in mine if not r["valid"] or r["failed_checks"]]
        per[t] = s
    return per


def ratios(runs, guest):
    """Per-round ratios of the targets that apply to guest (only rounds
    where both runs are valid), their medians, and whether each target is
    met."""
    by = {(r["round"], r["transport"]): r for r in runs}
    rounds = sorted({r["round"] for r in runs})
    out = {}
    for key, guests, num, den, metric, limit, text in TARGETS:
        if guest not in guests:
            continue
        # An absolute target has no peer: its value is divided by 1.
        den_key = den or "absolute"
        per_round = []
        for n in rounds:
            a = by.get((n, num))
            b = by.get((n, den)) if den else {"valid": True, metric: 1}
            if not (a and b and a["valid"] and b["valid"]):
                continue
            if a[metric] is None or not b[metric]:
                continue
            per_round.append({"round": n, num: a[metric], den_key: b[metric],
                              "ratio": a[metric] / b[metric]})
        med = _median(x["ratio"] for x in per_round)
        out[key] = {"target": text, "limit": limit, "metric": metric,
                    "per_round": per_round, "median": med,
                    "values": {num: _median(x[num] for x in per_round),
                               den_key: _median(x[den_key] for x in per_round) if den else None},
                    "num": num, "den": den_key,
                    "met": (med <= limit) if med is not None else None}
    return out


# --- Markdown ---------------------------------------------------------------------------
def _fmt(v, nd=0):
    if v is None:
        return "–"
    if isinstance(v, float) and nd:
        return f"{v:.{nd}f}"
    if isinstance(v, float):
        return f"{v:.0f}"
    return str(v)


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(met):
    return {True: "**PASS**", False: "**MISS**", None: "no data"}[met]


def _guest_part(rep, g):
    """The Markdown of one guest: medians, per-MiB counts, targets."""
    m = rep["meta"]
    G = rep["guests"][g]
    per, rat = G["transports"], G["targets"]
    desc = {"dirty": "dirty.c rewrites a RAM window while it migrates, precopy iterates; "
                     "RAM image random",
            "idle": "source paused: the transport alone; RAM image random",
            "realistic": "RAM image half zero pages, a quarter compressible, a quarter random; "
                         "dirty.c rewrites its window keeping that mix"}.get(g, g)
    parts = [f"## {g} guest ({m.get('size_mib')} MiB: {desc})"]
    rows = []
    for t in TRANSPORTS:
        s = per.get(t)
        if not s:
            continue
        rows.append([LABELS[t], f"{s['valid_runs']}/{s['runs']}",
                     _fmt(s["total_time_ms"]), _fmt(s["downtime_ms"]),
                     _fmt(s["src_cpu_s"], 2), _fmt(s["src_cpu_s_vcpu"], 2),
                     _fmt(s["src_cpu_beyond_vcpu_s"], 2), _fmt(s["dst_cpu_s"], 2),
                     _fmt(s["throughput_mbit_s"], 1), _fmt(s["roce_pkts"]),
                     _fmt(s["tcp_segs"]), s["ram_identical"],
                     ",".join(s["carried_over"]) or "–"])
    parts.append("### Medians\n\n" + _table(
        ["transport", "valid runs", "total time ms", "downtime ms", "source CPU s",
         "of it vCPU s", "beyond vCPU s", "dest. CPU s", "Mbit/s", "RoCE pkts", "TCP segs", "RAM identical",
         "carried over"], rows))
    rows = []
    for t in TRANSPORTS:
        s = per.get(t)
        if not s:
            continue
        rows.append([LABELS[t], _fmt(s["src_syscalls_per_mib"], 1),
                     _fmt(s["src_waits_per_mib"], 1), _fmt(s["src_vcs_per_mib"], 1),
                     _fmt(s["dst_syscalls_per_mib"], 1), _fmt(s["dst_waits_per_mib"], 1),
                     _fmt(s["dst_vcs_per_mib"], 1), _fmt(s["roce_pkts_per_mib"], 1)])
    parts.append("### Per MiB of guest RAM (medians; each QEMU process, all threads but the vCPU thread)\n\n" + _table(
        ["transport", "src syscalls", "src waits", "src vol. cs", "dst syscalls", "dst waits",
         "dst vol. cs", "RoCE pkts"], rows))
    names = sorted({c for s in per.values() for side in ("src", "dst")
                    for c, v in (s.get(f"{side}_calls_per_mib") or {}).items()
                    if v is not None and v >= 0.05})
    if names:
        cols = [(t, side) for t in TRANSPORTS if t in per for side in ("src", "dst")]
        rows = [[c] + [_fmt(per[t][f"{side}_calls_per_mib"].get(c), 1) for t, side in cols]
                for c in names]
        parts.append("### System calls per MiB by name (medians)\n\n" + _table(
            ["call"] + [f"{SHORT[t]} {side}" for t, side in cols], rows))
    rows = []
    for t in TRANSPORTS:
        s = per.get(t)
        if not s or s.get("so_landing") is None:
            continue
        rows.append([LABELS[t], _fmt(s["so_bandwidth_mib_s"], 1), _fmt(s["so_threshold_mib"], 1),
                     _fmt(s["so_pending_mib"], 1), _fmt(s["so_landing"], 2),
                     _fmt(s["so_lock_ms"], 1), _fmt(s["so_pause_ms"], 1),
                     _fmt(s["so_downtime_ms"]), _fmt(s["so_downtime_ms_per_mib"], 1),
                     _fmt(s["so_blackout_ms"]), _fmt(s["so_last_call_ms"]),
                     s["so_last_call_cut"] or "–", _fmt(s["so_last_call_mib"], 1)])
    if rows:
        parts.append(
            "### Switchover (medians; the QEMUs' traces)\n\n"
            "QEMU stops the guest once the RAM it has still to send (pending) is under its "
            "bandwidth estimate times downtime-limit (threshold). Landing is pending over "
            "threshold: how far under it the migration happened to be when QEMU looked. "
            "BQL ms is the wait for the big lock before the downtime clock starts; pause ms "
            "the vCPUs' stop, inside the downtime. Downtime per pending MiB (median of the "
            "runs' quotients, runs with at least 1 MiB pending) is the part the transport "
            "controls once QEMU has decided. Blackout is what the guest sees: from the "
            "source's finish-migrate, where QEMU's downtime clock starts, to the "
            "destination's state loaded (both QEMUs share the VM's clock); QEMU's downtime "
            "ends earlier, when the source has handed over its last bytes. Medians over the "
            "runs with a source trace, the downtime column over the same runs; the blackout "
            "over those that also have the destination's. Last call: RAM's last iterator "
            "call before QEMU decided, how long it took, in how many runs QEMU's 50 ms "
            "limit cut it (the others ended their pass over the dirty pages, handing over "
            "all of them), and what the cut ones had handed over: the step by which the "
            "pending bytes fall.\n\n"
            + _table(["transport", "bandwidth estimate MiB/s", "threshold MiB", "pending MiB",
                      "landing", "BQL ms", "pause ms", "downtime ms",
                      "downtime ms per pending MiB", "blackout ms", "last call ms",
                      "last call cut at 50 ms", "cut call MiB"], rows))
    trows = []
    for key, r in rat.items():
        per_round = ", ".join(f"r{x['round']}: {x['ratio']:.2f}" for x in r["per_round"]) or "–"
        nd = 1 if "per_mib" in r["metric"] else (2 if r["metric"].endswith("_s") else 0)
        trows.append([r["target"], _fmt(r["values"].get(r["num"]), nd),
                      _fmt(r["values"].get(r["den"]), nd), per_round,
                      _fmt(r["median"], 3), f"<= {r['limit']:.2f}", _verdict(r["met"])])
        if r["den"] == "absolute":
            trows[-1][2], trows[-1][4] = "(absolute)", _fmt(r["median"], 1)
    if trows:
        parts.append("### Issue 9 targets, libmigrdma (medians of per-round ratios)\n\n" + _table(
            ["target", "libmigrdma", "peer", "per-round ratio", "median ratio", "limit",
             "result"], trows))
    return parts


def markdown(rep):
    m = rep["meta"]
    host = m.get("host", {})
    la = host.get("loadavg_samples") or []
    parts = [f"# Migration benchmark: {m.get('size_mib')} MiB, guests "
             f"{', '.join(rep['guests'])}, topology {m.get('topology')}, {m.get('rounds')} rounds"]
    info = [
        f"- When: {m.get('started')} – {m.get('finished')} "
        f"(VM run {_fmt(m.get('vm_seconds'))} s, vm-run exit {m.get('vm_rc')})",
        f"- Host: {host.get('nproc')} CPUs; load average (1/5/15 min) at start "
        f"{host.get('loadavg_start')}, at end {host.get('loadavg_end')}; "
        f"1-min samples during the run min/median/max "
        + (f"{min(la):.2f}/{statistics.median(la):.2f}/{max(la):.2f} ({len(la)} samples)"
           if la else "–")
        + f"; other QEMU processes on the host at start: {host.get('other_qemus_start')}",
        f"- Library: {m.get('lib_copy')} (sha256 {str(m.get('lib_sha256'))[:16]}…, "
        f"tree {m.get('git_rev')})",
        "- One fresh source+destination pair per run; the order of the transports rotates "
        "every round, guests alternate within each round"
        + (f"; before round 1 each transport ran once at {m['warmup_mib']} MiB, not counted "
           "(the VM reads QEMU and the libraries over 9p on first use)"
           if m.get("warmup_mib") else "; no warm-up"),
        "- Medians over the valid runs of each transport (completed, RAM identical "
        "where there is a destination).",
    ]
    parts.append("\n".join(info))
    for g in rep["guests"]:
        parts += _guest_part(rep, g)

    # Every run, round by round, in the order it ran.
    rrows = []
    for r in rep["runs"]:
        if not r["valid"]:
            note = "FAILED: " + "; ".join(filter(None, [
                r["error"] or r["driver_note"] or f"status {r['status']}",
                ", ".join(r["failed_checks"])]))
        elif r["failed_checks"]:
            # The numbers count; a side check (e.g. pages re-sent, which a
            # guest that converges in one pass does not do) did not pass.
            note = "check failed: " + ", ".join(r["failed_checks"])
        else:
            note = ""
        rrows.append([r["round"], r["position"], r["guest"], SHORT[r["transport"]],
                      _fmt(r["total_time_ms"]), _fmt(r["downtime_ms"]),
                      _fmt(r["so_blackout_ms"]), _fmt(r["src_cpu_s"], 2),
                      _fmt(r["src_cpu_beyond_vcpu_s"], 2), _fmt(r["dst_cpu_s"], 2),
                      _fmt(r["dirty_sync_count"]), _fmt(r["so_pending_mib"], 1),
                      _fmt(r["so_landing"], 2),
                      _fmt(r["src_syscalls_per_mib"], 1), _fmt(r["dst_syscalls_per_mib"], 1),
                      _fmt(r["roce_pkts"]), _fmt(r["tcp_segs"]),
                      {True: "yes", False: "**NO**", None: "–"}[r["ram_identical"]],
                      _fmt(r["wall_s"]), note])
    parts.append("## Every run\n\n" + _table(
        ["round", "#", "guest", "transport", "total ms", "downtime ms", "blackout ms",
         "source CPU s", "beyond vCPU s", "dest. CPU s", "syncs", "pending MiB", "landing",
         "src syscalls/MiB", "dst syscalls/MiB", "RoCE pkts", "TCP segs", "RAM identical",
         "run s", "note"], rrows))

    notes = ["- Source CPU s: utime+stime of all the source QEMU's threads between "
             "`migrate` and completion (/proc/PID/stat); with a running guest it includes "
             "the vCPU thread, which spins for as long as the migration lasts, so "
             "\"beyond vCPU\" (all threads minus the vCPU thread) is the transport's share.",
             "- Dest. CPU s: utime+stime of all the destination QEMU's threads from `migrate` "
             "until it has loaded the state (its guest does not run before that).",
             "- Per MiB: counts over the migration window (from just before `migrate` to each "
             "side's completion) divided by the guest's RAM size in MiB, so re-sent pages count "
             "against the transport that needed them.  System calls: perf "
             "`raw_syscalls:sys_enter`; waits: futex, poll, ppoll, select, pselect6, "
             "epoll_wait and epoll_pwait calls; vol. cs: voluntary context switches "
             "(`sched_switch` of a sleeping task).  Each QEMU process, all its threads "
             "but the vCPU thread (under TCG a running guest that polls its timer makes a "
             "clock_gettime call per read, whatever the transport; left out as the CPU's "
             "\"beyond vCPU\" leaves it out), QEMU's own main loop, timers and the "
             "harness's query-migrate polls (every 0.25 s) included.",
             "- RoCE pkts: rxe `sent_pkts` summed over the devices (both directions); TCP "
             "segs: `TcpOutSegs` (one system-wide counter in the VM, see scripts/VM.md).",
             f"- multifd rows: {MULTIFD_CHANNELS} channels; QEMU's rdma: cannot do multifd.",
             "- Under TCG the source QEMU is meant to be the bottleneck, so the null sink "
             "is the floor every transport is compared with (FACTS.md §3)."]
    for g, G in rep["guests"].items():
        per = G["transports"]
        null_t = (per.get("null") or {}).get("total_time_ms")
        faster = [LABELS[t] for t in TRANSPORTS if t != "null" and per.get(t)
                  and per[t]["total_time_ms"] is not None and null_t is not None
                  and per[t]["total_time_ms"] < null_t]
        if faster:
            # Say so rather than let the ratio to the null sink flatter anyone.
            notes.append(f"- {g} guest: {', '.join(faster)} finished faster than the null sink "
                         f"(median {null_t:.0f} ms): the pipe into `cat` was not free here, so "
                         "the null sink is not a floor in this run.")
        rs = per.get("rsockets")
        if rs and "tcp" in rs["carried_over"]:
            notes.append(f"- {g} guest, librspreload: the counters show the stream went over "
                         "**TCP**, not RDMA (0 RoCE packets): rsockets does not divert QEMU "
                         "7.2's socket, so its row is a second TCP measurement.")
    if m.get("topology_note"):
        notes.append("- " + m["topology_note"])
    for g, err in rep.get("chart_errors", {}).items():
        if err:
            notes.append(f"- No chart for the {g} guest: {err}")
    parts.append("## Notes\n\n" + "\n".join(notes))
    return "\n\n".join(parts) + "\n"


# --- the chart ----------------------------------------------------------------------------
def chart(out, rep, guest, stem):
    """Three panels (total time, downtime, source CPU beyond the vCPU
    thread) for one guest: a bar per transport at its median and a point
    per round, in STEM.png.  Returns an error text or None."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot not found (apt-get install gnuplot-nox)"
    per = rep["guests"][guest]["transports"]
    runs = [r for r in rep["runs"] if r["guest"] == guest]
    present = [t for t in TRANSPORTS if t in per]
    if not present:
        return "no runs to plot"
    dat = os.path.join(out, stem + ".dat")
    def values(x):
        return [x["total_time_ms"] and x["total_time_ms"] / 1000, x["downtime_ms"],
                x["src_cpu_beyond_vcpu_s"]]

    # Block 0: medians, one line per transport, then for each metric the
    # height of its label: above the bar and above every round's point, so
    # that no point hides the number.  Block 1: every valid run.
    with open(dat, "w") as f:
        f.write("# idx label total_s downtime_ms cpu_s, then the label heights\n")
        for i, t in enumerate(present):
            meds = values(per[t])
            rounds = [values(r) for r in runs if r["valid"] and r["transport"] == t]
            tops = [max([v for v in [meds[k]] + [x[k] for x in rounds] if v is not None],
                        default=None) for k in range(3)]
            f.write(f'{i} "{SHORT[t]}" ' + " ".join("NaN" if v is None else f"{v}"
                                                     for v in meds + tops) + "\n")
        f.write("\n\n# idx round total_s downtime_ms cpu_s\n")
        for r in runs:
            if not r["valid"] or r["transport"] not in present:
                continue
            i = present.index(r["transport"])
            vals = values(r)
            f.write(f"{i} {r['round']} " + " ".join("NaN" if v is None else f"{v}"
                                                   for v in vals) + "\n")
    m = rep["meta"]
    title = (f"{m.get('size_mib')} MiB {guest} guest, topology {m.get('topology')}, "
             f"{m.get('rounds')} rounds (bars: median, points: rounds)")
    png = os.path.join(out, stem + ".png")
    # pngcairo draws nicer text; plain png (libgd) is the fallback.
    term = "pngcairo size 1500,520 font 'Sans,10'"
    probe = subprocess.run([gnuplot, "-e", "set terminal pngcairo"], capture_output=True,
                           text=True, timeout=30)
    if probe.returncode != 0 or "unknown" in probe.stderr.lower():
        term = "png size 1500,520"
    # Rounds side by side around the bar's centre.
    mid = (1 + (m.get("rounds") or 1)) / 2
    panels = [(3, "total time (s)"), (4, "downtime (ms)"),
              (5, "source QEMU CPU beyond the vCPU thread (s)")]
    script = [f"set terminal {term}", f"set output '{png}'",
              f"set multiplot layout 1,3 title \"{title}\"",
              "set style fill solid 0.6 border -1", "set boxwidth 0.6",
              # Headroom above the highest label.
              "set grid ytics", "set yrange [0:*]", "set offsets 0, 0, graph 0.08, 0", f"set xrange [-0.6:{len(present) - 0.4}]",
              "set xtics rotate by -20", "unset key"]
    for col, ylabel in panels:
        script += [f"set title '{ylabel}'",
                   f"plot '{dat}' index 0 using 1:{col}:xtic(2) with boxes lc rgb '#4a7ab5', "
                   f"'' index 0 using 1:{col + 3}:(sprintf('%.{0 if col == 4 else 2}f', ${col})) "
                   f"with labels offset 0,0.7 font ',9', "
                   f"'' index 1 using ($1 + 0.12 * ($2 - {mid})):{col} with points pt 7 ps 0.8 "
                   f"lc rgb '#c03030'"]
    script.append("unset multiplot")
    gp = os.path.join(out, stem + ".gp")
    with open(gp, "w") as f:
        f.write("# written by scripts/lib/bench_report.py; rerun: gnuplot " + gp + "\n")
        f.write("\n".join(script) + "\n")
    r = subprocess.run([gnuplot, gp], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not os.path.exists(png):
        return f"gnuplot failed: {r.stderr.strip()[-300:]}"
    return None


def build(out):
    """Write the report files; return the report (a dict)."""
    meta = _load(os.path.join(out, "bench-meta.json")) or {}
    runs = load_runs(out)
    order = [g for g in GUESTS if any(r["guest"] == g for r in runs)]
    # The guests in the order they were asked for, when the meta says.
    asked = meta.get("guests") or []
    order = [g for g in asked if g in order] + [g for g in order if g not in asked]
    guests = {}
    for g in order:
        mine = [r for r in runs if r["guest"] == g]
        guests[g] = {"transports": summarize(mine), "targets": ratios(mine, g)}
    rep = {"meta": meta, "guests": guests, "runs": runs,
           "targets": {f"{g}:{k}": v for g, G in guests.items() for k, v in G["targets"].items()}}
    # The charts before the Markdown, so that a missing chart is noted in it.
    rep["chart_errors"], rep["charts"] = {}, []
    for i, g in enumerate(order):
        stem = "migration-bench" if i == 0 else f"migration-bench-{g}"
        png = os.path.join(out, stem + ".png")
        if os.path.exists(png):
            os.unlink(png)
        err = chart(out, rep, g, stem)
        rep["chart_errors"][g] = err
        if not err:
            rep["charts"].append(png)
    with open(os.path.join(out, "migration-bench.json"), "w") as f:
        json.dump(rep, f, indent=1, sort_keys=True)
        f.write("\n")
    md = markdown(rep)
    with open(os.path.join(out, "migration-bench.md"), "w") as f:
        f.write(md)
    rep["markdown"] = md
    return rep
