"""stream_report: the report of scripts/bench-stream.

    python3 stream_report.py DIR

Reads DIR/host.env, DIR/vm.env and every DIR/runs/NN-rR-TRANSPORT-sMIB/
run directory that scripts/bench-stream left, and writes
DIR/stream-bench.json and DIR/stream-bench.md (also printed).  Exit
status: 0 every run succeeded and every libmigrdma run went over RoCE,
1 otherwise (targets missed do NOT change it: they are reported).

Steady state: in every round each transport ran at two sizes.  Every
per-MiB figure is the difference of the two runs' counts divided by the
difference of the MiB they moved, so connection set-up, process start and
teardown, which cost the same at both sizes, cancel out.  Medians over the
rounds.  python3 stdlib only.
"""

import json
import os
import re
import statistics
import sys

ORDER = ["tcp", "rsockets", "migrdma", "rstream"]
LABEL = {"tcp": "kernel TCP (qstream)", "rsockets": "rsockets preload (qstream)",
         "migrdma": "libmigrdma (qstream)", "rstream": "rstream (rdma-core, reference)"}
MIB = 1 << 20
# qstream's stream: preamble, per page an 8-byte header and 4 KiB, EOS.
Q_PAGE, Q_REC = 4096, 4104
WAIT_CALLS = ("futex", "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait")
# Issue 9's steady-state stream targets: (key, side, metric, limit, text).
TARGETS = [
    ("src_syscalls", "send", "syscalls", 12, "source system calls/MiB <= 12"),
    ("src_vcs", "send", "vcs", 1, "source voluntary context switches/MiB <= 1"),
    ("dst_syscalls", "recv", "syscalls", 16, "destination system calls/MiB <= 16"),
    ("dst_vcs", "recv", "vcs", 4, "destination voluntary context switches/MiB <= 4 "
     "(its ppoll wake-ups included)"),
    ("roce", None, "roce_pkts", 264, "RoCE packets/MiB <= 264"),
]


def kv(path):
    d = {}
    try:
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    d[k] = v
    except OSError:
        pass
    return d


def first_json(path):
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    return json.loads(line)
    except (OSError, ValueError):
        pass
    return None


def json_lines(path):
    rows = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return rows


def counters(path):
    c = {}
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) == 3:
                    c[(p[0], p[1])] = int(p[2]) if p[2].isdigit() else None
    except OSError:
        pass
    return c


def delta(before, after, kind):
    total, per = 0, {}
    for key, v in after.items():
        if key[0] != kind:
            continue
        b = before.get(key)
        if v is None or b is None:
            return None, per
        per[key[1]] = v - b
        total += v - b
    return total, per


def perf_counts(path):
    """perf stat -x, output: {"syscalls": n, "calls": {name: n}} or None."""
    calls, total = {}, None
    try:
        with open(path) as f:
            for line in f:
                p = line.rstrip("\n").split(",")
                if len(p) < 3 or line.startswith("#"):
                    continue
                try:
                    n = int(p[0])
                except ValueError:
                    return None  # <not counted> / <not supported>
                if p[2] == "raw_syscalls:sys_enter":
                    total = n
                elif p[2].startswith("syscalls:sys_enter_"):
                    calls[p[2][len("syscalls:sys_enter_"):]] = n
    except OSError:
        return None
    if total is None:
        return None
    return {"syscalls": total, "calls": calls,
            "waits": sum(calls.get(c, 0) for c in WAIT_CALLS)}


def time_counts(path):
    """GNU time -f '%e %U %S %w %c' (its last line; a failed command adds
    a line before it)."""
    try:
        with open(path) as f:
            lines = [l.split() for l in f if l.strip()]
    except OSError:
        return None
    if not lines or len(lines[-1]) != 5:
        return None
    try:
        e, u, s, w, c = lines[-1]
        return {"wall_s": float(e), "cpu_s": float(u) + float(s), "vcs": int(w), "ivcs": int(c)}
    except ValueError:
        return None


RSTREAM_LINE = re.compile(r"^custom\s+\S+\s+\S+\s+\S+\s+\S+\s+([0-9.]+)s\s+([0-9.]+)\s+([0-9.]+)")


def rstream_out(path):
    try:
        with open(path) as f:
            for line in f:
                m = RSTREAM_LINE.match(line.strip())
                if m:
                    return {"seconds": float(m.group(1)), "gbit_s": float(m.group(2)),
                            "usec_per_xfer": float(m.group(3))}
    except OSError:
        pass
    return None


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return [l.rstrip("\n") for l in f.readlines()[-n:]]
    except OSError:
        return []


def rxe_resends(d):
    """rxe's own view of packets lost to reordering in one run: NAKs the
    senders received (rcvd_seq_err) and packets the receivers had already
    seen (duplicate_request), summed over the devices; None without the
    counter files."""
    before = counters(os.path.join(d, "rxe-counters.before"))
    after = counters(os.path.join(d, "rxe-counters.after"))
    if not before or not after:
        return None
    return {name: sum(v - (before.get(k) or 0) for k, v in after.items()
                      if k[1] == name and v is not None)
            for name in ("rcvd_seq_err", "duplicate_request")}


def load_run(d, name, m):
    res = kv(os.path.join(d, "result"))
    t = m.group(3)
    size = int(m.group(4))
    cb, ca = counters(os.path.join(d, "counters.before")), counters(os.path.join(d, "counters.after"))
    roce, roce_per = delta(cb, ca, "roce")
    tcp, tcp_per = delta(cb, ca, "tcp")
    r = {
        "run": name, "round": int(m.group(2)), "transport": t, "mib": size,
        "diagnostic": bool(m.group(5)), "port": res.get("port"),
        "send_rc": res.get("send_rc", "NA"), "recv_rc": res.get("recv_rc", "NA"),
        "elapsed_s": (round(float(res["t_end"]) - float(res["t_start"]), 3)
                      if res.get("t_start") and res.get("t_end") else None),
        "roce_pkts": roce, "roce_pkts_per_dev": roce_per, "rxe_resends": rxe_resends(d),
        "tcp_segs": tcp, "tcp_segs_per_ns": tcp_per,
        "perf": {s: perf_counts(os.path.join(d, f"perf-{s}.csv")) for s in ("send", "recv")},
        "time": {s: time_counts(os.path.join(d, f"time-{s}")) for s in ("send", "recv")},
    }
    rc_ok = r["send_rc"] == "0" and r["recv_rc"] == "0"
    if t == "rstream":
        out = rstream_out(os.path.join(d, "send.json"))
        r["send"], r["recv"] = out, rstream_out(os.path.join(d, "recv.json"))
        r["ok"] = rc_ok and out is not None
        # Echo: size MiB each way.
        r["bytes"] = 2 * size * MIB
        r["gbit_s"] = out["gbit_s"] if out else None
        r["cpu_s"] = {s: (r["time"][s] or {}).get("cpu_s") for s in ("send", "recv")}
    else:
        send = first_json(os.path.join(d, "send.json"))
        recv = first_json(os.path.join(d, "recv.json"))
        r["send"], r["recv"] = send, recv
        r["ok"] = (rc_ok and recv is not None and recv.get("verified") is True
                   and send is not None)
        r["bytes"] = (recv or {}).get("bytes") or (size * MIB // Q_PAGE * Q_REC + 24)
        r["gbit_s"] = recv.get("gbit_s") if recv else None
        # qstream's own getrusage from connect/accept on: the sender's
        # filling of its "guest RAM" is not in it.
        r["cpu_s"] = {"send": (send or {}).get("cpu_s"), "recv": (recv or {}).get("cpu_s")}
    # Which transport really carried the bytes: a 4 KiB-MTU RoCE path
    # needs about one packet per 4 KiB, TCP at least one segment per 64 KiB.
    nbytes = r["bytes"]
    carried = "unknown"
    if roce is not None and tcp is not None and nbytes:
        if roce >= nbytes / 4096 / 2 and tcp < nbytes / 65536 / 4:
            carried = "rdma"
        elif tcp >= nbytes / 65536 / 2 and roce < nbytes / 4096 / 4:
            carried = "tcp"
        else:
            carried = "mixed"
    r["carried_by"] = carried
    if t == "migrdma":
        stats = json_lines(os.path.join(d, "stats-send.jsonl"))
        cl = [s for s in stats if s.get("role") == "client"]
        r["migrdma_client_stats"] = cl[0] if cl else None
        r["migrdma_server_stats"] = (json_lines(os.path.join(d, "stats-recv.jsonl")) or [None])[0]
        if cl and cl[0].get("bytes_out"):
            r["zerocopy_share"] = cl[0].get("bytes_out_zerocopy", 0) / cl[0]["bytes_out"]
        else:
            r["zerocopy_share"] = None
    if not r["ok"]:
        r["errors"] = {f: tail(os.path.join(d, f)) for f in
                       ("send.err", "recv.err", "harness.err", "migrdma-send.log",
                        "migrdma-recv.log")
                       if os.path.exists(os.path.join(d, f)) and os.path.getsize(os.path.join(d, f))}
    return r


def side_counts(r, side):
    """One side's counts of one run: syscalls, waits, vcs, ivcs, cpu_s, calls."""
    p, tm = r["perf"].get(side), r["time"].get(side)
    out = {"syscalls": p and p["syscalls"], "waits": p and p["waits"],
           "vcs": tm and tm["vcs"], "ivcs": tm and tm["ivcs"], "cpu_s": r["cpu_s"].get(side)}
    out["calls"] = dict(p["calls"]) if p else {}
    return out


def steady(big, small):
    """Per-MiB steady state of one round: (big - small) / MiB difference."""
    dmib = (big["bytes"] - small["bytes"]) / MIB
    if dmib <= 0:
        return None
    st = {"round": big["round"], "mib_delta": round(dmib, 3)}

    def per(a, b):
        return None if a is None or b is None else (a - b) / dmib

    for side in ("send", "recv"):
        A, B = side_counts(big, side), side_counts(small, side)
        st[side] = {k: per(A[k], B[k]) for k in ("syscalls", "waits", "vcs", "ivcs")}
        cpu = per(A["cpu_s"], B["cpu_s"])
        st[side]["cpu_s_per_gib"] = None if cpu is None else cpu * 1024
        st[side]["calls"] = {c: per(A["calls"].get(c), B["calls"].get(c))
                             for c in A["calls"] if c in B["calls"]}
    st["roce_pkts"] = per(big["roce_pkts"], small["roce_pkts"])
    st["tcp_segs"] = per(big["tcp_segs"], small["tcp_segs"])
    return st


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, p=2):
    if v is None:
        return "n/a"
    if isinstance(v, float) and not v.is_integer():
        return f"{v:.{p}f}"
    return f"{int(v)}"


def main(out):
    host = kv(os.path.join(out, "host.env"))
    vm = kv(os.path.join(out, "vm.env"))
    mib = int(host.get("mib", 0) or 0)
    small_mib = int(host.get("small_mib", 0) or 0)
    rounds = int(host.get("rounds", 0) or 0)
    vm_rc = int(host.get("vm_rc", 0) or 0)
    runs = []
    rdir = os.path.join(out, "runs")
    for name in sorted(os.listdir(rdir)) if os.path.isdir(rdir) else []:
        d = os.path.join(rdir, name)
        m = re.match(r"(\d+)-r(\d+)-([a-z]+)-s(\d+)(-debug)?$", name)
        if m and os.path.isdir(d):
            runs.append(load_run(d, name, m))

    summary = {}
    for t in ORDER:
        rs = [r for r in runs if r["transport"] == t and not r["diagnostic"]]
        if not rs:
            continue
        ok = [r for r in rs if r["ok"]]
        bigs = [r for r in ok if r["mib"] == mib]
        pairs = []
        for b in bigs:
            s = [r for r in ok if r["round"] == b["round"] and r["mib"] == small_mib]
            if s:
                st = steady(b, s[0])
                if st:
                    pairs.append(st)
        sm = {
            "runs": len(rs), "runs_ok": len(ok), "rounds_steady": len(pairs),
            "gbit_s": med(r["gbit_s"] for r in bigs),
            "gbit_s_all": [r["gbit_s"] for r in bigs],
            "resends_all": [r["rxe_resends"] for r in bigs if r.get("rxe_resends")],
            "roce_pkts_total": med(r["roce_pkts"] for r in bigs),
            "tcp_segs_total": med(r["tcp_segs"] for r in bigs),
            "carried_by": sorted({r["carried_by"] for r in ok}) or ["n/a"],
            "per_mib": {
                "roce_pkts": med(p["roce_pkts"] for p in pairs),
                "tcp_segs": med(p["tcp_segs"] for p in pairs),
            },
            "per_round": pairs,
        }
        for side in ("send", "recv"):
            keys = ("syscalls", "waits", "vcs", "ivcs", "cpu_s_per_gib")
            sm["per_mib"][side] = {k: med(p[side][k] for p in pairs) for k in keys}
            names = sorted({c for p in pairs for c in p[side]["calls"]})
            sm["per_mib"][side]["calls"] = {c: med(p[side]["calls"].get(c) for p in pairs)
                                            for c in names}
        if t != "rstream":
            sm["receiver_eagain"] = med(r["recv"].get("eagain") for r in bigs)
            sm["receiver_recvmsg_calls"] = med(r["recv"].get("recvmsg_calls") for r in bigs)
        if t == "migrdma":
            sm["zerocopy_share"] = med(r.get("zerocopy_share") for r in ok)
            sm["registrations"] = med((r.get("migrdma_client_stats") or {}).get("registrations")
                                      for r in bigs)
        summary[t] = sm

    def measured(t, side, metric):
        s = summary.get(t)
        if not s:
            return None
        return s["per_mib"][metric] if side is None else s["per_mib"][side][metric]

    targets = []
    for key, side, metric, limit, text in TARGETS:
        v = measured("migrdma", side, metric)
        targets.append({"key": key, "target": text, "limit": limit, "migrdma": v,
                        "result": None if v is None else ("PASS" if v <= limit else "MISS"),
                        "peers": {t: measured(t, side, metric) for t in summary if t != "migrdma"}})

    failed = [r for r in runs if not r["ok"] and not r["diagnostic"]]
    report = {
        "benchmark": "stream", "topology": host.get("topology"), "mib": mib,
        "small_mib": small_mib, "rounds": rounds,
        "vm": vm, "git": host.get("git"), "runtime_s": int(host.get("t_total", 0) or 0),
        "vm_status": vm_rc,
        # The VM is emulated (TCG): anything else running on the host skews times.
        "host": {"cpus": host.get("ncpu"), "loadavg_start": host.get("load_start"),
                 "loadavg_end": host.get("load_end")},
        "method": "per MiB = (count at mib - count at small_mib) / MiB difference; medians "
                  "over rounds; syscalls from perf raw_syscalls:sys_enter, context switches "
                  "from GNU time (rusage), RoCE packets from hw_counters/sent_pkts",
        "summary": summary, "targets": targets,
        "failed_runs": [r["run"] for r in failed], "runs": runs,
    }
    with open(os.path.join(out, "stream-bench.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")

    present = [t for t in ORDER if t in summary]
    lines = [
        f"## Stream benchmark: {mib} MiB QEMU-style stream (steady state from {mib} - "
        f"{small_mib} MiB), topology {host.get('topology')}, {rounds} rounds",
        "",
        f"VM kernel {vm.get('kernel', '?')}, server {vm.get('server_addr', '?')}, RoCE devices "
        f"{vm.get('devices', '?').strip()}"
        + {"1": " (veth in order: flow steering)", "0": " (plain veth: --veth-reorder)"}.get(
            vm.get("flow_steering"), "")
        + f"; git {host.get('git')}; total runtime "
        f"{host.get('t_total')} s" + (f"; VM status {vm_rc}" if vm_rc else "")
        + f"; host {host.get('ncpu')} CPUs, load average {host.get('load_start')} at the start, "
        f"{host.get('load_end')} at the end",
        "",
        "| transport | runs ok | Gbit/s | src syscalls/MiB | src waits/MiB | src vol. cs/MiB | "
        "dst syscalls/MiB | dst waits/MiB | dst vol. cs/MiB | RoCE pkts/MiB | "
        "src CPU s/GiB | dst CPU s/GiB | carried by |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in present:
        s = summary[t]
        pm, snd, rcv = s["per_mib"], s["per_mib"]["send"], s["per_mib"]["recv"]
        lines.append(
            f"| {LABEL[t]} | {s['runs_ok']}/{s['runs']} | {fmt(s['gbit_s'], 3)} | "
            f"{fmt(snd['syscalls'], 1)} | {fmt(snd['waits'], 1)} | {fmt(snd['vcs'], 2)} | "
            f"{fmt(rcv['syscalls'], 1)} | {fmt(rcv['waits'], 1)} | {fmt(rcv['vcs'], 2)} | "
            f"{fmt(pm['roce_pkts'], 1)} | {fmt(snd['cpu_s_per_gib'])} | "
            f"{fmt(rcv['cpu_s_per_gib'])} | {', '.join(s['carried_by'])} |")
    lines += ["", "Per MiB = steady state, the difference of the two sizes' counts over the "
              "difference of their MiB; medians over rounds.  Waits: futex, poll, ppoll, select, "
              "pselect6, epoll_wait, epoll_pwait calls.  All threads of each process, QEMU-like "
              "program's own calls included.  rstream echoes: per MiB moved either way, each side "
              "both sends and receives."]
    if "migrdma" in summary:
        peers = [t for t in present if t != "migrdma"]
        lines += ["", "### Issue 9 stream targets (libmigrdma; peers for reference)", "",
                  "| target | limit | libmigrdma | result |"
                  + "".join(f" {t} |" for t in peers),
                  "|---|---|---|---|" + "---|" * len(peers)]
        for tg in targets:
            lines.append(f"| {tg['target']} | {tg['limit']} | {fmt(tg['migrdma'], 2)} | "
                         f"**{tg['result'] or 'no data'}** |"
                         + "".join(f" {fmt(tg['peers'].get(t), 2)} |" for t in peers))
    # Which calls: a breakdown per side, so the cost has a name.
    lines += ["", "### System calls per MiB by name (steady state, medians)", ""]
    names = sorted({c for t in present for side in ("send", "recv")
                    for c, v in summary[t]["per_mib"][side]["calls"].items()
                    if v is not None and abs(v) >= 0.05})
    if names:
        cols = [(t, side) for t in present for side in ("send", "recv")]
        lines.append("| call | " + " | ".join(f"{t} {'src' if side == 'send' else 'dst'}"
                                               for t, side in cols) + " |")
        lines.append("|---|" + "---|" * len(cols))
        for c in names:
            lines.append(f"| {c} | " + " | ".join(
                fmt(summary[t]["per_mib"][side]["calls"].get(c), 1) for t, side in cols) + " |")
    else:
        lines.append("(no counts)")
    extra = []
    for t in present:
        s = summary[t]
        bits = [f"RoCE packets {fmt(s['roce_pkts_total'])} and TCP segments "
                f"{fmt(s['tcp_segs_total'])} per {mib} MiB run",
                f"involuntary cs/MiB src {fmt(s['per_mib']['send']['ivcs'], 2)}, "
                f"dst {fmt(s['per_mib']['recv']['ivcs'], 2)}",
                f"Gbit/s per round {', '.join(fmt(g, 3) for g in s['gbit_s_all'])}"]
        if s.get("resends_all"):
            bits.append("rxe NAKs and duplicate packets per run " + ", ".join(
                f"{x['rcvd_seq_err']}/{x['duplicate_request']}" for x in s["resends_all"]))
        if t == "migrdma" and s.get("zerocopy_share") is not None:
            bits.append(f"zero-copy share {fmt(s['zerocopy_share'] * 100, 1)} %")
        extra.append(f"- {t}: " + "; ".join(bits) + ".")
    lines += ["", "Per transport:", ""] + extra
    notes = []
    not_rdma = False
    for t, s in summary.items():
        if t != "tcp" and s["carried_by"] not in (["rdma"], ["n/a"]):
            notes.append(f"{t}: the counters say the bytes did not (all) go over RoCE "
                         f"({', '.join(s['carried_by'])}).")
            not_rdma = not_rdma or t == "migrdma"
        if t == "tcp" and s["carried_by"] not in (["tcp"], ["n/a"]):
            notes.append(f"tcp: unexpected counters ({', '.join(s['carried_by'])}).")
        calls, eag = s.get("receiver_recvmsg_calls"), s.get("receiver_eagain")
        if calls and eag and eag > calls / 2:
            notes.append(f"{t}: the receiver got EAGAIN on {fmt(eag)} of {fmt(calls)} recvmsg "
                         "calls (ppoll() returned without data: busy polling).")
        if s["rounds_steady"] < s["runs"] // 2:
            notes.append(f"{t}: only {s['rounds_steady']} round(s) had both sizes succeed.")

    def rc(v):
        return {"124": "124 (timed out)", "137": "137 (killed)", "NA": "NA (not run)"}.get(v, v)
    for r in failed:
        notes.append(f"FAILED {r['run']}: send rc {rc(r['send_rc'])}, recv rc {rc(r['recv_rc'])}"
                     + "".join(f"; {k}: {' / '.join(v[-2:])}"
                               for k, v in (r.get("errors") or {}).items()))
    for r in runs:
        if r["diagnostic"]:
            notes.append(f"diagnostic {r['run']} (MIGRDMA_LOG=debug): " + (
                "ok" if r["ok"] else f"send rc {r['send_rc']}, recv rc {r['recv_rc']}")
                + f"; logs in runs/{r['run']}/")
    if notes:
        lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    md = "\n".join(lines) + "\n"
    with open(os.path.join(out, "stream-bench.md"), "w") as f:
        f.write(md)
    print(md, end="")
    # A libmigrdma run that fell back to TCP measures nothing useful: fail.
    return 1 if failed or vm_rc or not_rdma or not runs else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: stream_report.py DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
