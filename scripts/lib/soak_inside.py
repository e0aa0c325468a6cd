#!/usr/bin/env python3
"""soak_inside.py: the half of scripts/soak that runs inside the soft-RoCE
VM (scripts/vm-run --topology two|one), and the report both halves print.

    soak_inside.py --out DIR [--count N] [--size MIB] [--long-legs M] ...

Two phases, every migration through libmigrdma (LD_PRELOAD) in both QEMUs:

 1. Ping-pong (--count legs, default 50).  Host A is 198.18.0.1 (rxe_src,
    netns src), host B is 198.18.0.2 (rxe_dst, netns dst).  QEMU q0 starts
    on A from a file of random bytes and runs the dirtying guest
    (tests/migration/guest/dirty.c); it migrates to a fresh q1 listening on
    B (-S -incoming defer); q1 is "cont"-ed, so its guest keeps dirtying,
    and migrates to a fresh q2 on A, and so on.  Each leg is checked:
    status completed on both sides, source "postmigrate", destination still
    "paused", dirty-sync-count > 2 (precopy iterated on a live guest),
    guest RAM byte-identical (pmemsave of the stopped source and of the
    paused destination, cmp, dumps deleted), RoCE packets > 0 and TCP
    segments <= 20, one diverted connection each way with zero-copy share
    >= 98 % and bytes out = bytes in (MIGRDMA_STATS), and the guest's loop
    running again on the new host after "cont".

 2. Long-lived source (--long-legs legs, default 10).  ONE source QEMU on
    A is migrated again and again to fresh destinations on B.  QEMU 7.2
    refuses "migrate" in the "postmigrate" run state ("Can't migrate the vm
    that was paused due to previous migration", QEMU >= 6.0; probed once
    and recorded), so after each completed leg the source is "cont"-ed
    (postmigrate -> running: its guest resumes dirtying) and migrated
    again: every leg is a live precopy from the same process.  Each leg is
    checked as above.  Before the first leg and after every leg (once the
    leg's connection is closed -- its MIGRDMA_STATS line is written -- the
    destination has quit and the source runs again) the source's open fds
    (/proc/PID/fd), VmRSS, RssAnon, RssFile, VmLck, VmPin, threads and
    mappings are sampled.  Guest RAM is compared on every leg too (see
    longlived() for QEMU 7.2's own TCG dirty-bit bug and
    --allow-stale-long-ram).

Results go to DIR/soak.json, rewritten after every leg (a run cut short
still leaves its legs); DIR also gets every QEMU's output
(qemu-TAG.log), the library's logs (migrdma-TAG.log, MIGRDMA_LOG) and
stats (stats-TAG.jsonl, MIGRDMA_STATS).  The summary (summarize(),
print_summary()) is shared with scripts/soak, which prints it on the host.
"""

import argparse
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))  # scripts/lib
SCRIPTS = os.path.dirname(HERE)
REPO = os.path.dirname(SCRIPTS)
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from qmp import QMPCommandError, QMPError, QMPTimeout  # noqa: E402

PROG = "soak"
MIB = 1024 * 1024
PORT_BASE = 49500
ZEROCOPY_MIN = 0.98
TCP_SEGS_MAX = 20
MAX_FAIL_STREAK = 3       # consecutive broken legs (errors, not failed checks) end a phase
RSS_FLAT_KIB = 4 * 1024   # "flat": RSS spread after warm-up within 4 MiB
NORMAL_CLOSE = ("close", "eof")  # MIGRDMA_STATS close_reason of a clean end
WARMUP_LEGS = 1           # samples after this many legs are the baseline

_migrate_mod = None


def migrate_mod():
    """scripts/migrate as a module (it has no .py suffix): Qemu, Topology,
    the stats readers and the guest helpers are reused from it."""
    global _migrate_mod
    if _migrate_mod is None:
        path = os.path.join(SCRIPTS, "migrate")
        loader = importlib.machinery.SourceFileLoader("migrate_script", path)
        spec = importlib.util.spec_from_loader("migrate_script", loader)
        mod = importlib.util.module_from_spec(spec)
        loader.exec_module(mod)
        _migrate_mod = mod
    return _migrate_mod


def log(msg):
    print(f"{PROG}: {msg}", flush=True)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class LegFailed(Exception):
    pass


# --- /proc sampling ------------------------------------------------------------------
STATUS_KEYS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem", "VmLck", "VmPin",
               "VmSize", "Threads")


def fd_kind(target):
    if target.startswith("socket:"):
        return "socket"
    if target.startswith("pipe:"):
        return "pipe"
    if target.startswith("anon_inode:"):
        return target  # anon_inode:[eventfd], anon_inode:[timerfd]...
    if target.startswith("/dev/infiniband/"):
        return target
    if target.startswith("/dev/shm/migrdma."):
        return "/dev/shm/migrdma.PID"
    return "file"


def proc_sample(pid):
    """The numbers that leak when something leaks, for process pid."""
    s = {"t": round(time.time(), 1)}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in STATUS_KEYS:
                v = v.split()
                s[k if k == "Threads" else k + "_kib"] = int(v[0])
    kinds = {}
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed between listdir and readlink
        n += 1
        k = fd_kind(t)
        kinds[k] = kinds.get(k, 0) + 1
    s["fds"] = n
    s["fd_kinds"] = dict(sorted(kinds.items()))
    with open(f"/proc/{pid}/maps") as f:
        s["maps"] = sum(1 for _ in f)
    return s


def diff_pages(path_a, path_b, window_pages=None, limit=64):
    """Which 4 KiB pages differ between two dumps: their count, the first
    few (guest-physical address, first differing byte, and the first
    32-bit word on each side), and whether the difference has the
    stale-page signature.

    dirty.c rewrites only the first word of each window page, with a
    sequence number that grows by one per page written, so a page one
    whole pass behind holds a word smaller by exactly the window's page
    count.  "stale" is true if every differing page differs only in that
    word and lags by a positive multiple of window_pages: the destination
    kept an older version of those pages (their last writes were never
    re-sent), as opposed to bytes that are simply wrong."""
    first = []
    n = 0
    only_word = True
    lags = set()
    with open(path_a, "rb") as fa, open(path_b, "rb") as fb:
        addr = 0
        while True:
            ba, bb = fa.read(1 << 20), fb.read(1 << 20)
            if not ba and not bb:
                break
            if ba != bb:
                for off in range(0, max(len(ba), len(bb)), 4096):
                    pa, pb = ba[off:off + 4096], bb[off:off + 4096]
                    if pa == pb:
                        continue
                    n += 1
                    at = next(i for i in range(max(len(pa), len(pb)))
                              if pa[i:i + 1] != pb[i:i + 1])
                    if pa[4:] != pb[4:]:
                        only_word = False
                    lag = int.from_bytes(pa[:4], "little") - int.from_bytes(pb[:4], "little")
                    lags.add(lag)
                    if len(first) < limit:
                        first.append({"addr": hex(addr + off), "first_diff_at": at,
                                      "src_word": int.from_bytes(pa[:4], "little"),
                                      "dst_word": int.from_bytes(pb[:4], "little")})
            addr += 1 << 20
    stale = bool(n) and only_word and bool(window_pages) and \
        all(lag > 0 and lag % window_pages == 0 for lag in lags)
    return {"count": n, "first": first, "word_lags": sorted(lags)[:8],
            "only_first_word": only_word, "window_pages": window_pages, "stale": stale}


# --- the soak ----------------------------------------------------------------------------
class Host:
    def __init__(self, name, ns, addr, dev):
        self.name, self.ns, self.addr, self.dev = name, ns, addr, dev

    def short(self):
        return "." + self.addr.rsplit(".", 1)[1]


class Soak:
    def __init__(self, a):
        self.a = a
        self.M = migrate_mod()
        M = self.M
        self.topo = M.Topology(a.topology)
        t = self.topo
        self.hosts = [Host("A", t.src_ns, t.src_addr, t.src_dev),
                      Host("B", t.dst_ns, t.dst_addr, t.dst_dev)]
        self.out = os.path.abspath(a.out)
        os.makedirs(self.out, exist_ok=True)
        self.work = a.work
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.sockdir = os.path.join(self.work, "sock")
        os.makedirs(self.sockdir)
        self.port_hi = PORT_BASE + a.count + a.long_legs + 10
        addrs = sorted({h.addr for h in self.hosts})
        self.targets = ",".join(f"{ad}:{PORT_BASE}-{self.port_hi}" for ad in addrs)
        self.t0 = time.monotonic()
        self.deadline = self.t0 + a.budget
        self.res = {
            "config": {
                "count": a.count, "long_legs": a.long_legs, "size_mib": a.size,
                "topology": a.topology, "window_mib": a.window, "dirty_rate_mib_s": a.dirty_rate,
                "downtime_limit_ms": a.downtime_limit, "leg_timeout_s": a.leg_timeout,
                "budget_s": a.budget, "lib": a.lib, "log": a.log,
                "transport": a.transport, "source_mem": a.source_mem,
                "max_bandwidth": a.max_bandwidth or None,
                "allow_stale_long_ram": a.allow_stale_long_ram,
                "targets": self.targets,
                "hosts": {h.name: {"addr": h.addr, "dev": h.dev, "ns": h.ns} for h in self.hosts},
            },
            "pingpong": [], "longlived": {"legs": [], "samples": [], "pid": None},
            "postmigrate_probe": None, "complete": False,
        }
        self.qn = 0

    # --- bookkeeping -------------------------------------------------------------------
    def save(self):
        self.res["runtime_s"] = round(time.monotonic() - self.t0, 1)
        write_json(os.path.join(self.out, "soak.json"), self.res)

    def time_left(self):
        return self.deadline - time.monotonic()

    # --- QEMU ----------------------------------------------------------------------------
    def common_args(self):
        a = self.a
        return ["-accel", "tcg", "-machine", "pc,memory-backend=mem", "-m", f"{a.size}M",
                "-smp", "1", "-nodefaults", "-nographic", "-display", "none", "-nic", "none",
                "-kernel", self.kernel, "-append", f"window={a.window} rate={a.dirty_rate}"]

    def env(self, tag):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("MIGRDMA_") and k != "LD_PRELOAD"}
        if self.a.transport == "tcp":
            return env  # the control: plain QEMU, no library
        env.update(LD_PRELOAD=self.lib, MIGRDMA_TARGETS=self.targets,
                   MIGRDMA_STATS=os.path.join(self.out, f"stats-{tag}.jsonl"),
                   MIGRDMA_LOG=self.a.log,
                   MIGRDMA_LOG_FILE=os.path.join(self.out, f"migrdma-{tag}.log"))
        return env

    def start_qemu(self, tag, host, incoming_port=None):
        """A QEMU on host: a running source booted from the random RAM image
        (incoming_port None), or a paused destination listening on
        host.addr:incoming_port."""
        M = self.M
        for f in (f"stats-{tag}.jsonl", f"migrdma-{tag}.log", f"qemu-{tag}.log"):
            p = os.path.join(self.out, f)
            if os.path.exists(p):
                os.unlink(p)
        if incoming_port is None:
            ram = self.ram_file
            if self.a.source_mem == "shared":
                # A private copy mapped shared: no copy-on-write between
                # the file's pages and the guest's writes.
                ram = os.path.join(self.work, f"ram-{tag}.bin")
                shutil.copyfile(self.ram_file, ram)
            args = self.common_args() + [
                "-object", f"memory-backend-file,id=mem,size={self.a.size}M,"
                           f"mem-path={ram},share={'on' if self.a.source_mem == 'shared' else 'off'}"]
        else:
            args = self.common_args() + [
                "-object", f"memory-backend-ram,id=mem,size={self.a.size}M",
                "-S", "-incoming", "defer"]
        q = M.Qemu(tag, args, self.env(tag), host.ns, self.sockdir, self.out)
        q.tag, q.host = tag, host
        q.pid = M.qemu_pid(q.proc)
        if incoming_port is not None:
            # Binds and listens before it returns.
            q.qmp.execute("migrate-incoming", {"uri": f"tcp:{host.addr}:{incoming_port}"})
        else:
            self.wait_guest(q)
        return q

    def wait_guest(self, q):
        """Wait until the guest's loop runs (its counter moves); MiB/s."""
        rate = self.M.wait_guest_running(q.qmp, timeout=90)
        if not getattr(self, "window_pages", None):
            # dirty.c's status block: magic, window start, window size.
            words = q.qmp.hmp(f"xp /3wx {self.M.STATUS_ADDR:#x}").split(":", 1)[1].split()
            self.window_pages = int(words[2], 16) // 4096
            self.res["config"]["window_pages"] = self.window_pages
        return round(rate * 4096 / MIB, 1)

    def stats_lines(self, tag, role=None):
        lines = self.M.read_stats(os.path.join(self.out, f"stats-{tag}.jsonl"))
        return [x for x in lines if role is None or x.get("role") == role]

    def wait_stats(self, tag, role, n, timeout):
        """Wait until stats-TAG has n lines of role (written when a diverted
        connection closes); return them."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.stats_lines(tag, role)
            if len(lines) >= n or time.monotonic() >= deadline:
                return lines
            time.sleep(0.2)

    # --- one leg ----------------------------------------------------------------------------
    def leg(self, r, src, dst, port, checks):
        """Migrate src to dst (listening on dst.host:port) and check it,
        filling the leg record r; checks is a list of {name, ok, detail}
        to append to.  Raises LegFailed or a QMP error on a broken leg (r
        is then filled as far as it got)."""
        M = self.M
        a = self.a
        r.update({"from": src.host.addr, "to": dst.host.addr,
                  "direction": f"{src.host.short()}->{dst.host.short()}", "port": port,
                  "src": src.tag, "dst": dst.tag, "src_pid": src.pid})

        def check(name, ok, detail=""):
            checks.append({"name": name, "ok": bool(ok), "detail": detail})
            return ok

        q = src.qmp
        params = {"max_bandwidth": a.max_bandwidth or M.UNLIMITED_BW}
        if a.downtime_limit is not None:
            params["downtime_limit"] = a.downtime_limit
        q.set_parameters(**params)
        before = self.topo.snapshot()
        t0 = time.monotonic()
        q.execute("migrate", {"uri": f"tcp:{dst.host.addr}:{port}"})
        seen = []

        def note(info):
            if not seen or seen[-1] != info.status:
                seen.append(info.status)
        try:
            info = q.wait_migration({"completed", "failed", "cancelled"}, a.leg_timeout,
                                    poll=0.1, on_poll=note)
        except QMPTimeout:
            r["status"] = "timeout"
            check("status", False, f"not finished after {a.leg_timeout} s (states {seen})")
            try:
                q.execute("migrate_cancel")
                q.wait_migration({"cancelled", "failed", "completed"}, 30)
            except QMPError:
                pass
            raise LegFailed(f"migration not finished after {a.leg_timeout} s")
        r["wall_migrate_s"] = round(time.monotonic() - t0, 1)
        deadline = time.monotonic() + 10
        while info.status == "completed" and not info.total_time_ms and \
                time.monotonic() < deadline:
            time.sleep(0.1)
            info = q.query_migrate()
        r.update(status=info.status, states=seen, total_time_ms=info.total_time_ms,
                 downtime_ms=info.downtime_ms, setup_time_ms=info.setup_time_ms,
                 ram_transferred=info.ram_transferred, dirty_sync_count=info.dirty_sync_count,
                 throughput_mbit_s=(round(info.ram_transferred * 8 / info.total_time_ms / 1000, 1)
                                    if info.total_time_ms and info.ram_transferred else None),
                 error_desc=info.error_desc)
        if not check("status", info.status == "completed",
                     f"{info.status} ({'>'.join(seen)})"
                     f"{': ' + info.error_desc if info.error_desc else ''}"):
            raise LegFailed(f"migration {info.status}: {info.error_desc}")
        try:
            dinfo = dst.qmp.wait_migration({"completed", "failed"}, 60)
            r["dst_status"] = dinfo.status
        except QMPError as e:
            r["dst_status"] = f"error: {e}"
        after = self.topo.snapshot()
        d = M.Topology.delta(before, after)
        r["roce_pkts"] = d["roce"]
        r["roce_pkts_total"] = sum(v for v in d["roce"].values() if v is not None)
        r["tcp_segs"] = self.topo.tcp_total(d["tcp"])
        check("destination completed", r["dst_status"] == "completed", r["dst_status"])
        src_state, dst_state = q.run_state(), dst.qmp.run_state()
        r["src_run_state"], r["dst_run_state"] = src_state, dst_state
        check("source postmigrate", src_state == "postmigrate", src_state)
        check("destination paused", dst_state == "paused", dst_state)
        check("dirty-sync-count > 2", (info.dirty_sync_count or 0) > 2,
              str(info.dirty_sync_count))
        if a.transport == "migrdma":
            check("RoCE packets > 0", r["roce_pkts_total"] > 0 and
                  (r["roce_pkts"].get(src.host.dev) or 0) > 0, str(r["roce_pkts"]))
            check(f"TCP segments <= {TCP_SEGS_MAX}", r["tcp_segs"] <= TCP_SEGS_MAX,
                  str(r["tcp_segs"]))
        else:
            check("RoCE packets = 0", r["roce_pkts_total"] == 0, str(r["roce_pkts"]))
            check("TCP segments > 1000", r["tcp_segs"] > 1000, str(r["tcp_segs"]))
        # Guest RAM, byte for byte: both dump at once (each in its own QEMU).
        size = a.size * MIB
        dumps = [os.path.join(self.work, f"{r['phase']}{r['leg']}-{t}.mem")
                 for t in (src.tag, dst.tag)]
        t1 = time.monotonic()
        ids = [q.pmemsave(dumps[0], size, wait=False),
               dst.qmp.pmemsave(dumps[1], size, wait=False)]
        q.result(ids[0], timeout=300)
        dst.qmp.result(ids[1], timeout=300)
        c = subprocess.run(["cmp", dumps[0], dumps[1]], capture_output=True, text=True,
                           timeout=300)
        r["ram_identical"] = c.returncode == 0
        r["pmemsave_cmp_s"] = round(time.monotonic() - t1, 1)
        if not r["ram_identical"]:
            cnt = subprocess.run(f"cmp -l {dumps[0]} {dumps[1]} | wc -l", shell=True,
                                 capture_output=True, text=True, timeout=300)
            r["ram_differing_bytes"] = int(cnt.stdout.strip() or 0)
            r["cmp"] = (c.stdout + c.stderr).strip()
            r["ram_differing_pages"] = diff_pages(dumps[0], dumps[1],
                                                  getattr(self, "window_pages", None))
            r["ram_stale"] = r["ram_differing_pages"]["stale"]
            if a.keep_bad_dumps > 0:
                a.keep_bad_dumps -= 1
                for p in dumps:
                    shutil.copyfile(p, os.path.join(self.out, os.path.basename(p)))
        for p in dumps:
            try:
                os.unlink(p)
            except OSError:
                pass
        # Stale pages with QEMU 7.2's TCG bug's signature (see longlived())
        # fail too, unless --allow-stale-long-ram on the long-lived source.
        excused = (r["phase"] == "longlived" and r.get("ram_stale") and
                   a.allow_stale_long_ram)
        r["ram_stale_excused"] = bool(excused)
        check("guest RAM identical", r["ram_identical"] or excused,
              "identical" if r["ram_identical"] else
              (f"STALE pages ({r['ram_differing_pages']['count']}, a whole number of "
               f"guest passes behind: QEMU 7.2 TCG lost dirty bits"
               f"{', excused on a long-lived source' if excused else ''}) " if r.get("ram_stale")
               else "DIFFER: ") + f"{r.get('cmp')} ({r.get('ram_differing_bytes')} bytes)")
        return r

    def conn_checks(self, r, client_lines, server_lines, checks):
        """The stats of the leg's one connection (MIGRDMA_STATS lines)."""
        s = self.M.summarize_stats(client_lines + server_lines)
        zc = s["zerocopy_share"]
        r["zerocopy_share"] = round(zc, 5) if zc is not None else None
        r["bytes_out"] = s["client_bytes_out"]
        r["bytes_in_dst"] = s["server_bytes_in"]
        r["registrations"] = s["client_registrations"]
        r["registered_bytes_peak"] = s["client_registered_bytes_peak"]
        r["close_reasons"] = s["close_reasons"]
        ok_n = s["client_connections"] == 1 and s["server_connections"] == 1
        if self.a.transport != "migrdma":
            return
        checks.append({"name": "one diverted connection", "ok": ok_n,
                       "detail": f"{s['client_connections']} client, "
                                 f"{s['server_connections']} server"})
        checks.append({"name": f"zero-copy share >= {ZEROCOPY_MIN:.0%}",
                       "ok": zc is not None and zc >= ZEROCOPY_MIN, "detail": str(zc)})
        checks.append({"name": "bytes out = bytes in",
                       "ok": s["client_bytes_out"] == s["server_bytes_in"] and
                       s["server_bytes_out"] == s["client_bytes_in"],
                       "detail": f"out {s['client_bytes_out']} in {s['server_bytes_in']}; "
                                 f"back {s['server_bytes_out']}/{s['client_bytes_in']}"})

    def finish_leg(self, r, checks, t0):
        r["checks_failed"] = [f"{c['name']}: {c['detail']}" for c in checks if not c["ok"]]
        r["passed"] = bool(checks) and not r["checks_failed"] and not r.get("error")
        r["wall_s"] = round(time.monotonic() - t0, 1)
        log(leg_line(r, self.total_legs_label(r)))
        for f in r["checks_failed"]:
            log(f"    FAIL {f}")
        dp = r.get("ram_differing_pages")
        if dp:
            log(f"    {dp['count']} pages differ; first: " + ", ".join(
                f"{x['addr']} (src word {x['src_word']}, dst {x['dst_word']})"
                for x in dp["first"][:6]))
            if dp.get("stale"):
                log(f"    only dirty.c's sequence word differs, the destination "
                    f"behind by {dp['word_lags']} (window {dp['window_pages']} pages): "
                    f"stale pages (dirty writes never re-sent), not corrupted bytes")
        if r.get("error"):
            log(f"    ERROR {r['error']}")

    def total_legs_label(self, r):
        return self.a.count if r["phase"] == "pingpong" else self.a.long_legs

    def note_error(self, r, e):
        r["error"] = f"{type(e).__name__}: {e}"
        for q in self.M.Qemu.live:
            if not q.alive() and not getattr(q, "reported", False) and \
                    not getattr(q, "quitting", False):
                q.reported = True
                r.setdefault("dead_qemus", []).append(
                    f"{q.name} exited {q.proc.returncode}: {q.tail(5)}")

    def quit(self, q):
        q.quitting = True
        q.quit()

    # --- phase 1: ping-pong --------------------------------------------------------------
    def pingpong(self):
        a = self.a
        M = self.M
        A, B = self.hosts
        log(f"ping-pong: {a.count} legs between {A.addr} ({A.dev}) and {B.addr} ({B.dev}), "
            f"{a.size} MiB guest rewriting {a.window} MiB at {a.dirty_rate} MiB/s")
        cur = self.start_qemu("q0", A)
        self.qn = 0
        streak = 0
        for n in range(1, a.count + 1):
            if self.time_left() < 60:
                log(f"ping-pong: budget spent; stopping before leg {n}")
                self.res["pingpong_stopped"] = f"budget spent before leg {n}"
                break
            t0 = time.monotonic()
            checks = []
            r = {"phase": "pingpong", "leg": n}
            dst = None
            try:
                if cur is None or not cur.alive():
                    log("ping-pong: no live source left; starting a fresh one on host A")
                    self.qn += 1
                    cur = self.start_qemu(f"q{self.qn}", A)
                to = B if cur.host is A else A
                self.qn += 1
                port = PORT_BASE + n
                dst = self.start_qemu(f"q{self.qn}", to, incoming_port=port)
                self.leg(r, cur, dst, port, checks)
                # The old source is done: an orderly quit makes the library
                # close and write its client line.
                r["src_sample_before_quit"] = proc_sample(cur.pid)
                self.quit(cur)
                client = self.stats_lines(cur.tag, "client")
                server = self.wait_stats(dst.tag, "server", 1,
                                         10 if a.transport == "migrdma" else 0)
                self.conn_checks(r, client, server, checks)
                dst.qmp.execute("cont")
                r["guest_mib_s_after_cont"] = self.wait_guest(dst)
                checks.append({"name": "guest runs on the new host", "ok": True,
                               "detail": f"{r['guest_mib_s_after_cont']} MiB/s"})
                cur, dst = dst, None
            except (LegFailed, QMPError, M.HarnessError, OSError,
                    subprocess.SubprocessError) as e:
                self.note_error(r, e)
                checks.append({"name": "leg ran to the end", "ok": False, "detail": r["error"]})
                # A completed migration moved the guest: carry on from the
                # destination if it is alive and got it; otherwise the
                # source, if it still runs; otherwise start afresh.
                if dst is not None and dst.alive() and r.get("status") == "completed" and \
                        r.get("dst_status") == "completed":
                    if cur is not None:
                        self.quit(cur)
                    try:
                        if dst.qmp.run_state() != "running":
                            dst.qmp.execute("cont")
                        cur = dst
                    except QMPError:
                        dst.kill()
                        cur = None
                else:
                    if dst is not None:
                        dst.kill()
                    try:
                        if cur is not None and (not cur.alive() or
                                                cur.qmp.run_state() != "running"):
                            self.quit(cur)
                            cur = None
                    except QMPError:
                        cur.kill()
                        cur = None
            self.finish_leg(r, checks, t0)
            self.res["pingpong"].append(r)
            self.save()
            streak = streak + 1 if r.get("error") else 0
            if streak >= MAX_FAIL_STREAK:
                log(f"ping-pong: {streak} legs broke in a row; giving up")
                self.res["pingpong_stopped"] = f"{streak} consecutive failures at leg {n}"
                break
        if cur is not None:
            self.quit(cur)

    # --- phase 2: one long-lived source --------------------------------------------------
    def longlived(self):
        """Phase 2.  QEMU 7.2's TCG can lose dirty bits (the bitmap sync's
        fast path clears them without resetting the software TLB's
        not-dirty flags; fixed upstream in 9.0 by "physmem: Fix migration
        dirty bitmap coherency with TCG memory access").  QEMU grows its
        TLB at each flush while it is well used, and every migration
        flushes it, so after two or three migrations of one process the
        whole window of a guest that merely relies on pages leaving the TLB
        stays cached, and pages written between the start of dirty logging
        and the first sync are never re-sent.  Measured over plain TCP
        without the library (--transport tcp): legs 3 to 20 stale with
        such a guest; 20/20 identical once dirty.c invalidated each page's
        TLB entry before writing it.  So any difference fails; one with
        exactly the bug's signature (diff_pages: only dirty.c's sequence
        word, a whole number of passes behind) is named as such, and
        --allow-stale-long-ram excuses it here."""
        a = self.a
        M = self.M
        A, B = self.hosts
        L = self.res["longlived"]
        log(f"long-lived source: {a.long_legs} legs from one QEMU on {A.addr} to fresh "
            f"destinations on {B.addr}")
        src = self.start_qemu("long", A)
        L["pid"] = src.pid
        L["samples"].append(dict(proc_sample(src.pid), after_leg=0))
        log(f"  source pid {src.pid}: {sample_text(L['samples'][-1])}")
        streak = 0
        port0 = PORT_BASE + a.count
        for n in range(1, a.long_legs + 1):
            if self.time_left() < 60:
                log(f"long-lived: budget spent; stopping before leg {n}")
                L["stopped"] = f"budget spent before leg {n}"
                break
            if not src.alive():
                log("long-lived: the source QEMU died; stopping")
                L["stopped"] = f"source died before leg {n}: {src.tail(5)}"
                break
            t0 = time.monotonic()
            checks = []
            r = {"phase": "longlived", "leg": n}
            dst = None
            try:
                state = src.qmp.run_state()
                if state == "postmigrate":
                    src.qmp.execute("cont")
                    self.wait_guest(src)
                port = port0 + n
                dst = self.start_qemu(f"long-dst{n}", B, incoming_port=port)
                # Earlier legs' connections are closed (their lines are
                # written); this leg's client line is the next one.
                seen_lines = len(self.stats_lines(src.tag, "client"))
                self.leg(r, src, dst, port, checks)
                if n == 1 and self.res["postmigrate_probe"] is None:
                    self.probe_postmigrate(src, B, self.port_hi)
                self.quit(dst)
                client = self.wait_stats(src.tag, "client", seen_lines + 1,
                                         30 if a.transport == "migrdma" else 0)
                server = self.stats_lines(dst.tag, "server")
                self.conn_checks(r, client[seen_lines:], server, checks)
                # Run again, as before the first leg, then sample.
                src.qmp.execute("cont")
                r["guest_mib_s_after_cont"] = self.wait_guest(src)
                time.sleep(1.0)
            except (LegFailed, QMPError, M.HarnessError, OSError,
                    subprocess.SubprocessError) as e:
                self.note_error(r, e)
                checks.append({"name": "leg ran to the end", "ok": False, "detail": r["error"]})
                if dst is not None:
                    dst.kill()
                try:
                    if src.alive() and src.qmp.run_state() in ("postmigrate", "paused"):
                        src.qmp.execute("cont")
                except QMPError:
                    pass
            if src.alive():
                s = dict(proc_sample(src.pid), after_leg=n)
                L["samples"].append(s)
                r["src_sample"] = s
            self.finish_leg(r, checks, t0)
            if r.get("src_sample"):
                log(f"    source pid {src.pid}: {sample_text(r['src_sample'])}")
            L["legs"].append(r)
            self.save()
            streak = streak + 1 if r.get("error") else 0
            if streak >= MAX_FAIL_STREAK:
                log(f"long-lived: {streak} legs broke in a row; giving up")
                L["stopped"] = f"{streak} consecutive failures at leg {n}"
                break
        if src.alive():
            self.quit(src)

    def probe_postmigrate(self, src, host, port):
        """Does QEMU 7.2 take a new "migrate" in the postmigrate run state?"""
        M = self.M
        p = {"run_state": src.qmp.run_state()}
        try:
            src.qmp.execute("migrate", {"uri": f"tcp:{host.addr}:{port}"})
            p["accepted"] = True
            try:
                info = src.qmp.wait_migration({"completed", "failed", "cancelled"}, 60)
                p["outcome"] = f"{info.status} {info.error_desc or ''}".strip()
            except QMPTimeout:
                src.qmp.execute("migrate_cancel")
                p["outcome"] = "still running after 60 s; cancelled"
        except QMPCommandError as e:
            p["accepted"] = False
            p["error"] = e.desc
        self.res["postmigrate_probe"] = p
        log(f"  probe: 'migrate' in run state {p['run_state']}: "
            + (f"refused: {p['error']}" if not p["accepted"] else f"accepted ({p['outcome']})"))

    # --- library logs ------------------------------------------------------------------------
    def scan_logs(self):
        counts = {"warn": 0, "error": 0}
        lines = []
        for name in sorted(os.listdir(self.out)):
            if not (name.startswith("migrdma-") and name.endswith(".log")):
                continue
            with open(os.path.join(self.out, name), errors="replace") as f:
                for line in f:
                    m = re.match(r"migrdma\[\d+\] (\w+) ", line)
                    lvl = m.group(1) if m else None
                    if lvl in ("warn", "warning", "error", "fatal"):
                        k = "warn" if lvl.startswith("warn") else "error"
                        counts[k] += 1
                        if len(lines) < 40:
                            lines.append(f"{name}: {line.rstrip()}")
        self.res["library_log"] = dict(counts, lines=lines)

    # --- all ----------------------------------------------------------------------------------
    def run(self):
        a = self.a
        self.kernel = os.path.join(self.work, "dirty.elf")
        if a.kernel:
            shutil.copyfile(a.kernel, self.kernel)
        else:
            self.M.build_guest(self.kernel)
        self.lib = os.path.join(self.work, "libmigrdma.so")
        shutil.copyfile(a.lib, self.lib)
        self.ram_file = os.path.join(self.work, "ram.bin")
        self.M.ensure_ram_file(self.ram_file, a.size)
        log(f"in the VM: topology {a.topology}, MIGRDMA_TARGETS={self.targets}, "
            f"budget {a.budget} s, results in {self.out}")
        self.save()
        phases = [p for p in a.phases.split(",") if p]
        for p in phases:
            if p == "pingpong" and a.count > 0:
                self.pingpong()
            elif p == "longlived" and a.long_legs > 0:
                self.longlived()
            self.save()
        self.scan_logs()
        self.res["complete"] = True
        self.save()
        log(f"in the VM: done in {time.monotonic() - self.t0:.0f} s")


# --- the report (also used by scripts/soak on the host) -------------------------------
def fmt_ms(v):
    return f"{v:>6}" if v is not None else "     ?"


def leg_line(r, total="?"):
    zc = r.get("zerocopy_share")
    roce = r.get("roce_pkts_total")
    ident = r.get("ram_identical")
    return (f"{'PASS' if r.get('passed') else 'FAIL'} {r['phase']:<9} leg {r['leg']:>3}/{total} "
            f"{r.get('direction', '?'):<8} total {fmt_ms(r.get('total_time_ms'))} ms  "
            f"downtime {fmt_ms(r.get('downtime_ms'))} ms  "
            f"RAM {'identical' if ident else ('?' if ident is None else 'STALE(tcg)' if r.get('ram_stale') else 'DIFFERS')}  "
            f"RoCE {roce if roce is not None else '?'} pkts  TCP {r.get('tcp_segs', '?')} segs  "
            f"zero-copy {f'{zc:.2%}' if zc is not None else '?'}  "
            f"(syncs {r.get('dirty_sync_count', '?')}, wall {r.get('wall_s', '?')} s)")


def sample_text(s):
    return (f"fds {s['fds']}, VmRSS {s.get('VmRSS_kib')} KiB (anon {s.get('RssAnon_kib')}, "
            f"file {s.get('RssFile_kib')}), VmLck {s.get('VmLck_kib')} KiB, "
            f"VmPin {s.get('VmPin_kib')} KiB, threads {s.get('Threads')}, maps {s.get('maps')}")


def _stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"n": len(vals), "min": min(vals), "median": statistics.median(vals),
            "max": max(vals)}


def _slope(xs, ys):
    if len(xs) < 2:
        return None
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else None


def summarize(res):
    out = {}
    for phase, legs, want in (("pingpong", res.get("pingpong", []), res["config"]["count"]),
                              ("longlived", res.get("longlived", {}).get("legs", []),
                               res["config"]["long_legs"])):
        ok = [r for r in legs if r.get("passed")]
        out[phase] = {
            "legs_wanted": want, "legs_run": len(legs), "passed": len(ok),
            "failed": len(legs) - len(ok),
            "failed_legs": [r["leg"] for r in legs if not r.get("passed")],
            "ram_identical": sum(1 for r in legs if r.get("ram_identical")),
            "ram_stale": [r["leg"] for r in legs if r.get("ram_stale")],
            "ram_stale_excused": [r["leg"] for r in legs if r.get("ram_stale_excused")],
            "total_time_ms": _stats([r.get("total_time_ms") for r in legs
                                     if r.get("status") == "completed"]),
            "downtime_ms": _stats([r.get("downtime_ms") for r in legs
                                   if r.get("status") == "completed"]),
            "zerocopy_share": _stats([r.get("zerocopy_share") for r in legs]),
            "roce_pkts": _stats([r.get("roce_pkts_total") for r in legs]),
            "tcp_segs_max": max([r.get("tcp_segs") or 0 for r in legs] or [0]),
            "dirty_sync_count": _stats([r.get("dirty_sync_count") for r in legs]),
            # A connection that carried a whole migration yet did not end
            # in an ordinary close or end of stream ("timeout", "reset",
            # "error") is a library anomaly even when every check passed.
            "odd_close_reasons": {str(r["leg"]): [c for c in r.get("close_reasons") or []
                                                  if c not in NORMAL_CLOSE]
                                  for r in legs
                                  if any(c not in NORMAL_CLOSE
                                         for c in r.get("close_reasons") or [])},
        }
    # Each ping-pong QEMU was a destination, then a source: its fds and RSS
    # just before it quit (all alike if nothing accumulates per process).
    pp = out["pingpong"]
    quit_samples = [r.get("src_sample_before_quit") for r in res.get("pingpong", [])]
    pp["src_fds_at_quit"] = [q.get("fds") if q else None for q in quit_samples]
    pp["src_rss_kib_at_quit"] = [q.get("VmRSS_kib") if q else None for q in quit_samples]
    samples = res.get("longlived", {}).get("samples", [])
    ll = out["longlived"]
    if samples:
        keys = ("fds", "VmRSS_kib", "RssAnon_kib", "RssFile_kib", "VmLck_kib", "VmPin_kib",
                "Threads", "maps")
        series = {k: [s.get(k) for s in samples] for k in keys}
        ll["series"] = series
        ll["sample_after_leg"] = [s.get("after_leg") for s in samples]
        base = [s for s in samples if (s.get("after_leg") or 0) >= WARMUP_LEGS]
        if len(base) >= 2:
            fds = [s["fds"] for s in base]
            rss = [s["VmRSS_kib"] for s in base]
            xs = [s["after_leg"] for s in base]
            ll["after_warmup"] = {
                "from_leg": WARMUP_LEGS, "samples": len(base),
                "fds_min": min(fds), "fds_max": max(fds),
                "fds_flat": min(fds) == max(fds),
                "rss_min_kib": min(rss), "rss_max_kib": max(rss),
                "rss_spread_kib": max(rss) - min(rss),
                "rss_slope_kib_per_leg": round(_slope(xs, rss), 1) if _slope(xs, rss)
                is not None else None,
                "rss_flat": max(rss) - min(rss) <= RSS_FLAT_KIB,
                "vmlck_max_kib": max(s.get("VmLck_kib") or 0 for s in base),
                "vmpin_max_kib": max(s.get("VmPin_kib") or 0 for s in base),
                "vmpin_flat": len({s.get("VmPin_kib") for s in base}) == 1,
                "threads_flat": len({s.get("Threads") for s in base}) == 1,
                "maps_flat": len({s.get("maps") for s in base}) == 1,
                "fd_kinds_first": base[0].get("fd_kinds"),
                "fd_kinds_last": base[-1].get("fd_kinds"),
            }
            ll["flat"] = ll["after_warmup"]["fds_flat"] and ll["after_warmup"]["rss_flat"]
    pp = out["pingpong"]
    complete = (pp["legs_run"] == pp["legs_wanted"] and ll["legs_run"] == ll["legs_wanted"])
    out["complete"] = bool(res.get("complete")) and complete
    lib_log = res.get("library_log") or {}
    # A soak is also a hunt for the library's own complaints: any warn or
    # error line, or an odd close reason, fails it even if every leg passed.
    out["library_anomalies"] = (lib_log.get("warn", 0) + lib_log.get("error", 0) +
                                len(pp["odd_close_reasons"]) + len(ll["odd_close_reasons"]))
    out["passed"] = (out["complete"] and pp["failed"] == 0 and ll["failed"] == 0 and
                     (ll.get("flat", True) if ll["legs_wanted"] else True) and
                     out["library_anomalies"] == 0)
    out["postmigrate_probe"] = res.get("postmigrate_probe")
    out["library_log"] = {k: v for k, v in (res.get("library_log") or {}).items() if k != "lines"}
    out["runtime_s"] = res.get("runtime_s")
    return out


def print_summary(res, file=sys.stdout):
    s = summarize(res)
    p = lambda *x: print(*x, file=file)  # noqa: E731

    def rng(d, fmt="{}"):
        if not d:
            return "-"
        return (f"min {fmt.format(d['min'])} / median {fmt.format(d['median'])} / "
                f"max {fmt.format(d['max'])}")
    p("")
    p("=== soak summary ===")
    c = res["config"]
    p(f"guest {c['size_mib']} MiB (rewrites {c['window_mib']} MiB at {c['dirty_rate_mib_s']} "
      f"MiB/s), topology {c['topology']}, transport {c.get('transport', 'migrdma')}"
      + (f" (MIGRDMA_TARGETS={c['targets']})" if c.get("transport", "migrdma") == "migrdma"
         else " (control: no library)")
      + f", first source's RAM file mapped {c.get('source_mem', 'private')}")
    for phase, title in (("pingpong", "ping-pong"), ("longlived", "long-lived source")):
        x = s[phase]
        if not x["legs_wanted"]:
            continue
        p(f"{title}: {x['legs_run']}/{x['legs_wanted']} legs run, {x['passed']} passed, "
          f"{x['failed']} failed{' ' + str(x['failed_legs']) if x['failed_legs'] else ''}; "
          f"RAM identical {x['ram_identical']}/{x['legs_run']}")
        if x["ram_stale"]:
            p(f"  legs {x['ram_stale']}: stale guest pages (only dirty.c's sequence word, a "
              f"whole number of passes behind): QEMU 7.2 TCG lost dirty bits, seen as well "
              f"without the library (--transport tcp)"
              + (f"; not counted as failures on the long-lived source "
                 f"(--allow-stale-long-ram)" if x["ram_stale_excused"] else ""))
        p(f"  total time ms: {rng(x['total_time_ms'])}")
        p(f"  downtime ms:   {rng(x['downtime_ms'])}")
        p(f"  zero-copy:     {rng(x['zerocopy_share'], '{:.4f}')}")
        p(f"  RoCE pkts:     {rng(x['roce_pkts'])}; TCP segs max {x['tcp_segs_max']}")
        p(f"  dirty syncs:   {rng(x['dirty_sync_count'])}")
        if x["odd_close_reasons"]:
            p(f"  connections not ended by an ordinary close (leg: reasons): "
              f"{x['odd_close_reasons']}")
        if phase == "pingpong" and x.get("src_fds_at_quit"):
            fds = [v for v in x["src_fds_at_quit"] if v is not None]
            rss = [v for v in x["src_rss_kib_at_quit"] if v is not None]
            if fds:
                counts = ", ".join(f"{v} fds x{fds.count(v)}" for v in sorted(set(fds)))
                p(f"  each source QEMU just before it quit: {counts}; "
                  f"VmRSS {min(rss)}..{max(rss)} KiB")
    ll = s["longlived"]
    if ll.get("series"):
        pid = res["longlived"].get("pid")
        p(f"long-lived source pid {pid}, sampled before leg 1 and after each leg:")
        p(f"  after leg:   {ll['sample_after_leg']}")
        for k, label in (("fds", "open fds"), ("VmRSS_kib", "VmRSS KiB"),
                         ("RssAnon_kib", "RssAnon KiB"), ("RssFile_kib", "RssFile KiB"),
                         ("VmLck_kib", "VmLck KiB"), ("VmPin_kib", "VmPin KiB"),
                         ("Threads", "threads"), ("maps", "mappings")):
            p(f"  {label:<12} {ll['series'][k]}")
        w = ll.get("after_warmup")
        if w:
            p(f"  after warm-up (legs {w['from_leg']}..): fds {w['fds_min']}..{w['fds_max']} "
              f"({'flat' if w['fds_flat'] else 'NOT flat'}), RSS {w['rss_min_kib']}.."
              f"{w['rss_max_kib']} KiB (spread {w['rss_spread_kib']} KiB, slope "
              f"{w['rss_slope_kib_per_leg']} KiB/leg: {'flat' if w['rss_flat'] else 'NOT flat'} "
              f"within {RSS_FLAT_KIB // 1024} MiB), VmLck max {w['vmlck_max_kib']} KiB, "
              f"VmPin max {w['vmpin_max_kib']} KiB ({'flat' if w['vmpin_flat'] else 'varies'}), "
              f"threads {'flat' if w['threads_flat'] else 'vary'}, "
              f"mappings {'flat' if w['maps_flat'] else 'vary'}")
            if w["fd_kinds_first"] != w["fd_kinds_last"]:
                p(f"  fd kinds after leg {w['from_leg']}: {w['fd_kinds_first']}")
                p(f"  fd kinds at the end: {w['fd_kinds_last']}")
    pr = s.get("postmigrate_probe")
    if pr:
        p(f"QEMU 'migrate' in run state {pr.get('run_state')}: "
          + (f"refused ({pr.get('error')})" if not pr.get("accepted")
             else f"accepted ({pr.get('outcome')})"))
    lg = res.get("library_log") or {}
    if lg and c.get("transport", "migrdma") == "migrdma":
        p(f"library logs (MIGRDMA_LOG={c['log']}): {lg.get('warn', 0)} warn, "
          f"{lg.get('error', 0)} error lines")
        for line in lg.get("lines", [])[:10]:
            p(f"  {line}")
    p(f"runtime {s['runtime_s']} s in the VM; "
      f"{'complete' if s['complete'] else 'INCOMPLETE'}; "
      + (f"{s['library_anomalies']} library anomalies (log warnings/errors, odd close "
         f"reasons); " if s["library_anomalies"] else "")
      + f"{'PASS' if s['passed'] else 'FAIL'}")
    return s


# --- main ----------------------------------------------------------------------------------
def parse_args(argv):
    ap = argparse.ArgumentParser(prog="soak_inside.py")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--long-legs", type=int, default=10)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--topology", choices=["one", "two"],
                    default=os.environ.get("VM_TOPOLOGY") if os.environ.get("VM_TOPOLOGY")
                    in ("one", "two") else "two")
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--dirty-rate", type=int, default=2)
    ap.add_argument("--downtime-limit", type=int)
    ap.add_argument("--leg-timeout", type=float, default=300)
    ap.add_argument("--budget", type=float, default=6 * 3600)
    ap.add_argument("--lib", default=os.path.join(REPO, "build", "libmigrdma.so"))
    ap.add_argument("--kernel")
    ap.add_argument("--log", default="info")
    ap.add_argument("--phases", default="pingpong,longlived")
    ap.add_argument("--work", default="/tmp/soak")
    ap.add_argument("--transport", choices=["migrdma", "tcp"], default="migrdma")
    ap.add_argument("--source-mem", choices=["private", "shared"], default="private")
    ap.add_argument("--keep-bad-dumps", type=int, default=0)
    ap.add_argument("--max-bandwidth", type=int, default=0)
    ap.add_argument("--allow-stale-long-ram", action="store_true")
    a = ap.parse_args(argv)
    a.lib = os.path.abspath(a.lib)
    return a


def main(argv):
    a = parse_args(argv)
    if not os.environ.get("VM_TOPOLOGY"):
        print("soak_inside.py runs inside scripts/vm-run (use scripts/soak)", file=sys.stderr)
        return 2
    soak = None

    def on_signal(signum, _frame):
        log(f"interrupted by signal {signum}; killing QEMU")
        migrate_mod().kill_all()
        if soak is not None:
            soak.res["interrupted"] = signum
            soak.save()
        sys.exit(128 + signum)
    for sg in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sg, on_signal)
    try:
        soak = Soak(a)
        soak.run()
    except Exception as e:  # harness trouble: keep what was measured
        log(f"ERROR: {type(e).__name__}: {e}")
        if soak is not None:
            soak.res["error"] = f"{type(e).__name__}: {e}"
            soak.save()
        migrate_mod().kill_all()
        return 2
    finally:
        migrate_mod().kill_all()
    s = summarize(soak.res)
    return 0 if s["passed"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
