"""Checks of the benchmarks' arithmetic without a VM: the realistic guest's
RAM layout (scripts/lib/guest_ram.py) and bench-stream's steady state and
targets (scripts/lib/stream_report.py) and bench-migration's TLS targets
(scripts/lib/bench_report.py) on hand-made run directories.

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


if __name__ == "__main__":
    unittest.main()
