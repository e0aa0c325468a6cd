"""Where a precopy migration switched over, read from the source QEMU's trace.

QEMU stops the guest once the RAM it still has to send (the "pending"
bytes) is below a threshold: its bandwidth estimate over the last window
times downtime-limit.  How far under the threshold a migration lands
decides most of its downtime, and that landing depends on how much QEMU
sends between two looks at the pending bytes, not on the transport's
speed.  scripts/migrate --switchover enables the trace events this reads
(QEMU 7.2 and 10.0 both have them):

  migrate_transferred           every window: bandwidth (bytes/ms), max_size
  migration_thread_low_pending  the pending bytes that let QEMU stop the guest
  runstate_set ... (finish-migrate)
                                the migration thread holds the BQL; QEMU's
                                downtime clock has just started
  vm_state_notify running 0     the vCPUs are paused
  migration_completion_vm_stop  the guest is stopped, its disks flushed
  savevm_section_start/_end ram one call of RAM's iterator, between two looks
                                at the pending bytes
  ram_save_iterate_big_wait     that call stopped at its 50 ms limit, after
                                so many pages; without it the call ended
                                because the pass over the dirty pages did

The last iterator call before the decision says how much QEMU handed over
between its last two looks: a call cut at 50 ms moved what the migration
thread could find and write in that time, and a call that ended its pass
moved all that was dirty.  Native rdma: posts and returns at once, so its
last call ends the pass; a transport whose writes cost the migration
thread more moves less per call, and lands higher.

On the destination it reads one event, DESTINATION_EVENTS:

  runstate_set ... (inmigrate) ...
                                the destination has loaded everything; its
                                guest could run from here

QEMU's own downtime runs from the source's finish-migrate until the source
has handed the last bytes to its channel.  The guest waits longer: until
the destination has received and loaded them.  Both QEMUs of the harness
run in one VM on one clock, so the gap from the source's finish-migrate to
the destination leaving inmigrate is that blackout, started where QEMU's
downtime starts and measured the same way for every transport.

A trace line reads "PID@SECONDS.MICROS:EVENT ARGS".
"""

import re

EVENTS = ("migrate_transferred", "migration_thread_low_pending", "runstate_set",
          "vm_state_notify", "migration_completion_vm_stop", "savevm_section_start",
          "savevm_section_end", "ram_save_iterate_big_wait")
PAGE = 4096
DESTINATION_EVENTS = ("runstate_set",)

_LINE = re.compile(r"^\d+@(\d+\.\d+):(\w+)\s*(.*)$")
_FIELD = re.compile(r"(\w+) (-?\d+)")


def parse(lines, dst_lines=None):
    """The precopy switch-over in LINES, or None when there is none (a
    failed run, tracing off, or postcopy, whose guest stops before any
    such decision): {"pending_bytes", "threshold_bytes",
    "bandwidth_bytes_per_ms", "landing", "lock_ms", "pause_ms", "stop_ms",
    "blackout_ms"}.
    landing is pending over threshold.  From the decision, lock_ms is the
    wait for the BQL (before QEMU's downtime clock starts), pause_ms the
    time the vCPUs took to stop (inside the downtime; None when the guest
    was paused already), stop_ms everything up to the stopped guest.
    QEMU 10.0 computes the threshold from avail-switchover-bandwidth when
    that is set; threshold_bytes is always the one QEMU used.
    last_call_ms is how long RAM's last iterator call before the decision
    took, last_call_mib what it handed over when its 50 ms limit cut it
    (the pages it wrote), None when it ended its pass instead (or the
    trace lacks those events, then last_call_ms is None too).  blackout_ms
    runs from the source's finish-migrate to the moment DST_LINES, the
    destination's trace, shows it done loading; None without them."""
    window = None
    found = None
    call = last_call = None
    for line in lines:
        m = _LINE.match(line)
        if not m:
            continue
        t, event, args = float(m.group(1)), m.group(2), m.group(3)
        stopping = event == "runstate_set" and args.endswith("(finish-migrate)")
        if found is None:
            if event == "savevm_section_start" and args.startswith("ram,"):
                call = {"t": t, "pages": None}
            elif event == "ram_save_iterate_big_wait" and call:
                pages = re.search(r"(\d+) iterations", args)
                call["pages"] = int(pages.group(1)) if pages else None
            elif event == "savevm_section_end" and args.startswith("ram,") and call:
                last_call = dict(call, ms=_ms(call["t"], t))
                call = None
            if stopping:
                # Stopped with no decision traced: postcopy's start.  Its
                # later low_pending line is the end of postcopy, not a
                # switch-over.
                return None
            if event == "migrate_transferred":
                window = {k: int(v) for k, v in _FIELD.findall(args)}
            elif event == "migration_thread_low_pending":
                words = args.split()
                if words and words[0].isdigit():
                    found = {"t": t, "pending": int(words[0]), "window": window,
                             "lock": None, "pause": None, "stop": None}
        elif stopping and found["lock"] is None:
            found["lock"] = t
        elif (event == "vm_state_notify" and found["lock"] is not None
              and found["pause"] is None and args.startswith("running 0")):
            found["pause"] = t
        elif event == "migration_completion_vm_stop" and found["stop"] is None:
            found["stop"] = t
    if found is None:
        return None
    w = found["window"] or {}
    threshold = w.get("max_size")
    pending = found["pending"]
    return {
        "pending_bytes": pending,
        "threshold_bytes": threshold,
        "bandwidth_bytes_per_ms": w.get("bandwidth"),
        "landing": round(pending / threshold, 3) if threshold else None,
        "lock_ms": _ms(found["t"], found["lock"]),
        "pause_ms": _ms(found["lock"], found["pause"]),
        "stop_ms": _ms(found["t"], found["stop"]),
        "blackout_ms": _ms(found["lock"], loaded_at(dst_lines or ())),
        "last_call_ms": last_call["ms"] if last_call else None,
        "last_call_mib": (round(last_call["pages"] * PAGE / (1 << 20), 1)
                          if last_call and last_call["pages"] is not None else None),
    }


def loaded_at(lines):
    """When the destination's trace LINES show it leaving inmigrate (its
    state loaded), or None."""
    for line in lines:
        m = _LINE.match(line)
        if (m and m.group(2) == "runstate_set"
                and "(inmigrate) new_state" in m.group(3)):
            return float(m.group(1))
    return None


def _ms(start, end):
    if start is None or end is None or end < start:
        return None
    return round((end - start) * 1000, 1)


def parse_file(path, dst_path=None):
    """parse() of the source's log at PATH and the destination's at
    DST_PATH; None when the source's cannot be read."""
    src = _read_lines(path)
    if src is None:
        return None
    return parse(src, _read_lines(dst_path) if dst_path else None)


def _read_lines(path):
    try:
        with open(path, errors="replace") as f:
            return f.readlines()
    except OSError:
        return None
