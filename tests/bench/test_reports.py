"""Checks of the benchmarks' arithmetic without a VM: the realistic guest's
RAM layout (scripts/lib/guest_ram.py) and bench-stream's steady state and
targets (scripts/lib/stream_report.py), bench-migration's TLS targets and
switchover table (scripts/lib/bench_report.py) on hand-made run
directories, and the switchover parser (scripts/lib/switchover.py) on
QEMU 7.2 and 10.0 trace lines.

    python3 tests/bench/test_reports.py   (ctest: bench.reports)
"""

import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts", "lib"))
sys.dont_write_bytecode = True
import bench_report  # noqa: E402
import guest_ram  # noqa: E402
import stream_report  # noqa: E402
import switchover  # noqa: E402

MIB = 1 << 20
PAGE = 4096


class GuestRam(unittest.TestCase):
    def test_mixed_layout(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.bin")
            guest_ram.write_image(path, 3, "mixed")
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual(len(data), 3 * MIB)
            alphabet = set(b"etaoinshrdlucmfw")
            kinds = {0: 0, 1: 0, 2: 0, 3: 0}
            for p in range(len(data) // PAGE):
                page = data[p * PAGE:(p + 1) * PAGE]
                kind = p % 4
                kinds[kind] += 1
                if kind < 2:
                    self.assertEqual(page, bytes(PAGE), f"page {p} should be zero")
                elif kind == 2:
                    self.assertLessEqual(set(page), alphabet, f"page {p} not compressible")
                else:
                    # Random: far more than 16 distinct byte values.
                    self.assertGreater(len(set(page)), 200, f"page {p} not random")
            self.assertEqual(kinds[0] + kinds[1], 2 * kinds[2])
            self.assertTrue(guest_ram.looks_mixed(path))
            # Every MiB is drawn afresh: no random page repeats.
            rnd = {data[p * PAGE:(p + 1) * PAGE] for p in range(3, len(data) // PAGE, 4)}
            self.assertEqual(len(rnd), 3 * MIB // PAGE // 4)

    def test_random_is_not_mixed(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.bin")
            guest_ram.write_image(path, 1, "random")
            self.assertEqual(os.path.getsize(path), MIB)
            self.assertFalse(guest_ram.looks_mixed(path))
            self.assertFalse(guest_ram.looks_mixed(os.path.join(d, "missing")))
            with self.assertRaises(ValueError):
                guest_ram.write_image(path, 1, "zeros")


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def _run(root, idx, rnd, mib, syscalls, vcs, cpu, roce, futex=0):
    """A qstream migrdma run as bench-stream leaves it; counts per side."""
    d = os.path.join(root, "runs", f"{idx:02d}-r{rnd}-migrdma-s{mib}")
    os.makedirs(d)
    _write(os.path.join(d, "result"), "transport=migrdma\nsend_rc=0\nrecv_rc=0\n"
           "t_start=1.0\nt_end=2.0\n")
    nbytes = mib * MIB // PAGE * 4104 + 24
    _write(os.path.join(d, "send.json"), json.dumps(
        {"role": "send", "bytes": nbytes, "cpu_s": cpu["send"]}) + "\n")
    _write(os.path.join(d, "recv.json"), json.dumps(
        {"role": "recv", "bytes": nbytes, "verified": True, "gbit_s": 0.5,
         "cpu_s": cpu["recv"], "recvmsg_calls": 10, "eagain": 1}) + "\n")
    for side in ("send", "recv"):
        _write(os.path.join(d, f"perf-{side}.csv"),
               f"# started on x\n\n{syscalls[side]},,raw_syscalls:sys_enter,1,100.00,,\n"
               f"{futex},,syscalls:sys_enter_futex,1,100.00,,\n"
               "3,,syscalls:sys_enter_ppoll,1,100.00,,\n")
        _write(os.path.join(d, f"time-{side}"), f"1.00 0.50 0.25 {vcs[side]} 7\n")
    _write(os.path.join(d, "counters.before"), "roce rxe_src 100\nroce rxe_dst 50\n"
           "tcp src 10\n")
    _write(os.path.join(d, "counters.after"), f"roce rxe_src {100 + roce}\nroce rxe_dst 50\n"
           "tcp src 12\n")
    # rxe's hw_counters as bench-stream saves them: 3 NAKs at the sender
    # and 40 duplicates at the receiver in the big run.
    _write(os.path.join(d, "rxe-counters.before"), "rxe_src rcvd_seq_err 5\n"
           "rxe_dst duplicate_request 7\nrxe_dst rcvd_seq_err 0\nsoftnet cpu0.dropped 0\n")
    big = mib > 8
    _write(os.path.join(d, "rxe-counters.after"), f"rxe_src rcvd_seq_err {5 + 3 * big}\n"
           f"rxe_dst duplicate_request {7 + 40 * big}\nrxe_dst rcvd_seq_err 0\n"
           "softnet cpu0.dropped 0\n")


class StreamReport(unittest.TestCase):
    def test_steady_state_and_targets(self):
        with tempfile.TemporaryDirectory() as out:
            _write(os.path.join(out, "host.env"),
                   "topology=two\nmib=64\nsmall_mib=8\nrounds=1\nvm_rc=0\n")
            # Set-up costs 1000 calls and 100 switches at both sizes; the
            # stream 10 calls and 0.5 switches per MiB at the sender.
            _run(out, 1, 1, 8, {"send": 1080, "recv": 1000 + 8 * 20},
                 {"send": 104, "recv": 100 + 8 * 5}, {"send": 1.0, "recv": 1.0},
                 roce=50 + 8 * 260, futex=40)
            _run(out, 2, 1, 64, {"send": 1640, "recv": 1000 + 64 * 20},
                 {"send": 132, "recv": 100 + 64 * 5}, {"send": 1.0 + 56 / 1024,
                                                       "recv": 1.0 + 56 * 2 / 1024},
                 roce=50 + 64 * 260, futex=320)
            with open(os.devnull, "w") as null:
                old, sys.stdout = sys.stdout, null
                try:
                    rc = stream_report.main(out)
                finally:
                    sys.stdout = old
            # Both runs complete and carried over RoCE: missed targets are
            # reported, not an error.
            self.assertEqual(rc, 0)
            with open(os.path.join(out, "stream-bench.json")) as f:
                rep = json.load(f)
            pm = rep["summary"]["migrdma"]["per_mib"]
            dmib = 56 * 4104 / 4096
            self.assertAlmostEqual(pm["send"]["syscalls"], 560 / dmib, places=6)
            self.assertAlmostEqual(pm["send"]["vcs"], 28 / dmib, places=6)
            self.assertAlmostEqual(pm["send"]["calls"]["futex"], 280 / dmib, places=6)
            self.assertAlmostEqual(pm["send"]["waits"], 280 / dmib, places=6)
            self.assertAlmostEqual(pm["recv"]["syscalls"], 56 * 20 / dmib, places=6)
            self.assertAlmostEqual(pm["recv"]["cpu_s_per_gib"], 112 / dmib, places=6)
            self.assertAlmostEqual(pm["roce_pkts"], 56 * 260 / dmib, places=6)
            # rxe's resends of the big run are reported as they were counted.
            self.assertEqual(rep["summary"]["migrdma"]["resends_all"],
                             [{"rcvd_seq_err": 3, "duplicate_request": 40}])
            res = {t["key"]: t["result"] for t in rep["targets"]}
            self.assertEqual(res, {"src_syscalls": "PASS", "src_vcs": "PASS",
                                   "dst_syscalls": "MISS", "dst_vcs": "MISS",
                                   "roce": "PASS"})


class MigrationReport(unittest.TestCase):
    def _tls_run(self, out, rnd, pos, transport, total_ms, roce, dst_cpu=None):
        base = os.path.join(out, "runs", f"r{rnd}-idle-{transport}")
        _write(base + ".run.json", json.dumps(
            {"round": rnd, "transport": transport, "guest": "idle", "position": pos,
             "rc": 0, "wall_s": 20}))
        _write(base + ".json", json.dumps(
            {"status": "completed", "ram_identical": True, "size_mib": 256,
             "total_time_ms": total_ms, "downtime_ms": 200, "src_cpu_s": 10.0,
             "src_cpu_s_vcpu": 0.0, "dst_cpu_s": dst_cpu, "roce_pkts_total": roce,
             "checks": []}))

    def test_tls_targets(self):
        # Regression: the absolute packet target (no peer) once put a None
        # key into the report, and writing its JSON failed.
        with tempfile.TemporaryDirectory() as out:
            os.makedirs(os.path.join(out, "runs"))
            _write(os.path.join(out, "bench-meta.json"), json.dumps({"guests": ["idle"]}))
            for rnd, (tcp_ms, mig_ms, pkts) in enumerate(
                    [(10000, 14000, 290 * 256), (10000, 16000, 310 * 256),
                     (12000, 13200, 280 * 256)], 1):
                self._tls_run(out, rnd, 1, "tcp-tls", tcp_ms, 0)
                self._tls_run(out, rnd, 2, "migrdma-tls", mig_ms, pkts, dst_cpu=rnd + 0.25)
            rep = bench_report.build(out)
            t = rep["guests"]["idle"]["targets"]
            self.assertAlmostEqual(t["tls_time_vs_tcp"]["median"], 1.4)
            self.assertTrue(t["tls_time_vs_tcp"]["met"])
            self.assertAlmostEqual(t["tls_roce_pkts"]["median"], 290.0)
            self.assertTrue(t["tls_roce_pkts"]["met"])
            # The destination's CPU is reported beside the source's.
            self.assertAlmostEqual(
                rep["guests"]["idle"]["transports"]["migrdma-tls"]["dst_cpu_s"], 2.25)
            with open(os.path.join(out, "migration-bench.md")) as f:
                md = f.read()
            self.assertIn("TLS: RoCE packets per MiB <= 300", md)
            self.assertIn("| dest. CPU s |", md)


# Trace lines as QEMU 7.2 writes them; 10.0 adds switchover_bw.
TRACE_72 = """\
# ip netns exec src qemu-system-x86_64 ...
237@1796579852.881178:migrate_transferred transferred 5782554 time_spent 103 bandwidth 56141 max_size 16842390
237@1796579853.087065:migrate_transferred transferred 15242292 time_spent 204 bandwidth 74717 max_size 22415135
237@1796579853.116400:migration_thread_low_pending 18149376
237@1796579853.121000:runstate_set current_run_state 9 (running) new_state 7 (finish-migrate)
237@1796579853.125500:vm_state_notify running 0 reason 7 (finish-migrate)
237@1796579853.127893:migration_completion_vm_stop ret 0
237@1796579853.389583:migration_thread_after_loop
237@1796579853.390000:runstate_set current_run_state 7 (finish-migrate) new_state 5 (postmigrate)
"""
# The destination's run states (scripts/migrate traces them there too).
DST_72 = """\
# ip netns exec dst qemu-system-x86_64 ...
301@1796579850.100000:runstate_set current_run_state 6 (prelaunch) new_state 1 (inmigrate)
301@1796579853.402500:runstate_set current_run_state 1 (inmigrate) new_state 4 (paused)
"""
TRACE_10 = """\
99@100.000000:migrate_transferred transferred 1000 time_spent 100 bandwidth 10 switchover_bw 0 max_size 3000
99@100.500000:migrate_transferred transferred 2000 time_spent 100 bandwidth 20 switchover_bw 0 max_size 6000
99@100.600000:migration_thread_low_pending 1500
99@100.601000:runstate_set current_run_state 9 (running) new_state 7 (finish-migrate)
99@100.603000:vm_state_notify running 0 reason 7 (finish-migrate)
99@100.604000:migration_completion_vm_stop ret 0
"""


class Switchover(unittest.TestCase):
    def test_qemu_72(self):
        so = switchover.parse(TRACE_72.splitlines())
        # The window before the decision counts, not an earlier one.
        self.assertEqual(so["threshold_bytes"], 22415135)
        self.assertEqual(so["bandwidth_bytes_per_ms"], 74717)
        self.assertEqual(so["pending_bytes"], 18149376)
        self.assertAlmostEqual(so["landing"], 0.81)
        self.assertAlmostEqual(so["lock_ms"], 4.6)
        self.assertAlmostEqual(so["pause_ms"], 4.5)
        self.assertAlmostEqual(so["stop_ms"], 11.5)

    def test_blackout(self):
        # From the source's finish-migrate (853.121000) to the destination
        # leaving inmigrate (853.402500), not from the destination's start.
        so = switchover.parse(TRACE_72.splitlines(), DST_72.splitlines())
        self.assertAlmostEqual(so["blackout_ms"], 281.5)
        self.assertIsNone(switchover.parse(TRACE_72.splitlines())["blackout_ms"])
        # A destination that never finished loading gives none either.
        self.assertIsNone(switchover.parse(TRACE_72.splitlines(),
                                           DST_72.splitlines()[:2])["blackout_ms"])
        with tempfile.TemporaryDirectory() as d:
            src, dst = os.path.join(d, "qemu-src.log"), os.path.join(d, "qemu-dst1.log")
            _write(src, TRACE_72)
            _write(dst, DST_72)
            self.assertAlmostEqual(switchover.parse_file(src, dst)["blackout_ms"], 281.5)
            self.assertIsNone(switchover.parse_file(src, dst + ".missing")["blackout_ms"])

    def test_qemu_10(self):
        so = switchover.parse(TRACE_10.splitlines())
        self.assertEqual(so["threshold_bytes"], 6000)
        self.assertEqual(so["bandwidth_bytes_per_ms"], 20)
        self.assertAlmostEqual(so["landing"], 0.25)
        self.assertAlmostEqual(so["lock_ms"], 1.0)
        self.assertAlmostEqual(so["pause_ms"], 2.0)

    def test_last_call(self):
        # The last RAM call before the decision counts: here cut at 50 ms
        # after 6784 pages (26.5 MiB), while an earlier one ended its pass.
        head = TRACE_72.splitlines()[:2]
        calls = [
            "237@1796579852.700000:savevm_section_start ram, section_id 2",
            "237@1796579852.800000:savevm_section_end ram, section_id 2 -> 1",
            "237@1796579852.850000:savevm_section_start ram, section_id 2",
            "237@1796579852.901000:ram_save_iterate_big_wait big wait: 51 milliseconds, "
            "6784 iterations",
            "237@1796579853.077700:savevm_section_end ram, section_id 2 -> 0",
        ]
        rest = TRACE_72.splitlines()[2:]
        so = switchover.parse(head[:1] + calls + head[1:] + rest)
        self.assertAlmostEqual(so["last_call_ms"], 227.7)
        self.assertAlmostEqual(so["last_call_mib"], 26.5)
        # A last call that ended its pass: how long, but no cut size.
        so = switchover.parse(head[:1] + calls[:2] + head[1:] + rest)
        self.assertAlmostEqual(so["last_call_ms"], 100.0)
        self.assertIsNone(so["last_call_mib"])
        # Without those events (older traces): neither.
        so = switchover.parse(TRACE_72.splitlines())
        self.assertIsNone(so["last_call_ms"])
        self.assertIsNone(so["last_call_mib"])

    def test_no_switchover(self):
        # A failed run or tracing off: no low_pending line, nothing to report.
        lines = TRACE_72.splitlines()
        self.assertIsNone(switchover.parse([x for x in lines if "low_pending" not in x]))
        self.assertIsNone(switchover.parse([]))
        self.assertIsNone(switchover.parse_file("/nonexistent/qemu-src.log"))

    def test_postcopy(self):
        # postcopy_start stops the guest with no decision traced; the
        # low_pending line at postcopy's end is not a switch-over.
        lines = [
            "5@10.0:migrate_transferred transferred 9 time_spent 100 bandwidth 90 max_size 27000",
            "5@10.1:runstate_set current_run_state 9 (running) new_state 7 (finish-migrate)",
            "5@10.2:vm_state_notify running 0 reason 7 (finish-migrate)",
            "5@10.3:runstate_set current_run_state 7 (finish-migrate) new_state 5 (postmigrate)",
            "5@19.0:migration_thread_low_pending 0",
        ]
        self.assertIsNone(switchover.parse(lines))

    def test_paused_source(self):
        # A guest that never ran (-S): no vCPUs to pause, the rest is there.
        lines = [x for x in TRACE_72.splitlines() if "vm_state_notify" not in x]
        so = switchover.parse(lines)
        self.assertIsNone(so["pause_ms"])
        self.assertAlmostEqual(so["lock_ms"], 4.6)
        self.assertEqual(so["pending_bytes"], 18149376)

    @staticmethod
    def _runs(out, rows, guest="dirty"):
        """rows: (round, transport, downtime_ms, switchover dict or None)."""
        os.makedirs(os.path.join(out, "runs"), exist_ok=True)
        _write(os.path.join(out, "bench-meta.json"), json.dumps({"guests": [guest]}))
        for pos, (rnd, t, down, so) in enumerate(rows, 1):
            base = os.path.join(out, "runs", f"r{rnd}-{guest}-{t}")
            _write(base + ".run.json", json.dumps(
                {"round": rnd, "transport": t, "guest": guest, "position": pos,
                 "rc": 0, "wall_s": 20}))
            res = {"status": "completed", "ram_identical": True, "size_mib": 512,
                   "total_time_ms": 9000, "downtime_ms": down, "checks": []}
            if so is not None:
                res["switchover"] = so
            _write(base + ".json", json.dumps(res))

    @staticmethod
    def _so(landing, threshold_mib=20):
        return {"pending_bytes": int(landing * threshold_mib * MIB),
                "threshold_bytes": threshold_mib * MIB, "bandwidth_bytes_per_ms": 69905,
                "landing": landing, "lock_ms": 2.0, "pause_ms": 3.0, "stop_ms": 6.0,
                "blackout_ms": 250.0}

    def test_report_table(self):
        with tempfile.TemporaryDirectory() as out:
            # Quotients 160/16, 360/18, 210/14 = 10, 20, 15: their median,
            # 15.0, is not median downtime over median pending (210 / 16).
            self._runs(out, [
                (1, "migrdma", 160, self._so(0.8)), (1, "qemu-rdma", 90, self._so(0.3)),
                (2, "migrdma", 360, self._so(0.9)), (2, "qemu-rdma", 300, self._so(0.85)),
                (3, "migrdma", 210, self._so(0.7)), (3, "qemu-rdma", 60, self._so(0.25)),
            ])
            rep = bench_report.build(out)
            per = rep["guests"]["dirty"]["transports"]
            self.assertAlmostEqual(per["migrdma"]["so_landing"], 0.8)
            self.assertAlmostEqual(per["qemu-rdma"]["so_landing"], 0.3)
            self.assertAlmostEqual(per["migrdma"]["so_pending_mib"], 16.0, places=3)
            # 69905 bytes/ms is 66.7 MiB/s: times 300 ms, 20 MiB.
            self.assertAlmostEqual(per["migrdma"]["so_bandwidth_mib_s"], 66.67, places=2)
            self.assertAlmostEqual(per["migrdma"]["so_downtime_ms_per_mib"], 15.0, places=2)
            with open(os.path.join(out, "migration-bench.md")) as f:
                md = f.read()
            self.assertIn("### Switchover", md)
            self.assertIn("| libmigrdma | 66.7 | 20.0 | 16.0 | 0.80 | 2.0 | 3.0 | 210 | 15.0 "
                          "| 250 |", md)
            # Every run carries its own blackout, pending MiB and landing.
            self.assertRegex(md, r"\| 3 \| \d+ \| dirty \| libmigrdma \| 9000 \| 210 \| 250 \|"
                                 r"[^\n]*\| 14\.0 \| 0\.70 \|")

    def test_ratio_rounded_once(self):
        # 328 / 111 = 2.95495...: rounded to 3 places first (2.955) and
        # then to 2 for the table it used to print 2.96.
        with tempfile.TemporaryDirectory() as out:
            self._runs(out, [(1, "migrdma", 328, None), (1, "qemu-rdma", 111, None)])
            bench_report.build(out)
            with open(os.path.join(out, "migration-bench.md")) as f:
                md = f.read()
            self.assertIn("r1: 2.95 |", md)

    def test_report_without_traces(self):
        # Run directories from before --switchover: no table, no crash;
        # a paused guest's few pages left give no per-MiB figure.
        with tempfile.TemporaryDirectory() as out:
            self._runs(out, [(1, "migrdma", 200, None), (1, "qemu-rdma", 150, None)])
            bench_report.build(out)
            with open(os.path.join(out, "migration-bench.md")) as f:
                self.assertNotIn("### Switchover", f.read())
        with tempfile.TemporaryDirectory() as out:
            tiny = dict(self._so(0.0005), pending_bytes=8192)
            self._runs(out, [(1, "migrdma", 30, tiny), (1, "qemu-rdma", 30, tiny)], "idle")
            rep = bench_report.build(out)
            self.assertIsNone(rep["guests"]["idle"]["transports"]["migrdma"]
                              ["so_downtime_ms_per_mib"])

if __name__ == "__main__":
    unittest.main()
