#!/usr/bin/env python3
"""qmp.py: a small QMP (QEMU Machine Protocol) client over a unix socket.

Python 3 standard library only.  Use it as a module:

    from qmp import QMP
    with QMP("/tmp/src.qmp", connect_timeout=10) as q:
        q.execute("migrate-set-capabilities",
                  {"capabilities": [{"capability": "multifd", "state": True}]})
        q.execute("migrate", {"uri": "tcp:198.18.0.1:4444"})
        info = q.wait_migration({"completed"}, timeout=120)
        print(info.status, info.total_time_ms, info.dirty_sync_count)

or from the shell, one command per call (the result is printed as JSON):

    qmp.py SOCKET COMMAND ['{"json": "arguments"}']
    qmp.py SOCKET --hmp 'info status'
    qmp.py SOCKET --wait-migration completed,failed [--timeout S]

The protocol: on connect QEMU sends a greeting {"QMP": {...}}; the client
answers {"execute": "qmp_capabilities"} to leave negotiation mode; after
that every {"execute": ..., "id": N} gets exactly one {"return": ...} or
{"error": ...} carrying the same id, while asynchronous {"event": ...}
messages may arrive in between at any time.  Each message is one line of
JSON.
"""

import json
import os
import socket
import sys
import time

__all__ = ["QMP", "QMPError", "QMPCommandError", "QMPTimeout", "MigrationInfo"]


class QMPError(Exception):
    """The connection or the protocol failed."""


class QMPTimeout(QMPError):
    """Something did not happen within its deadline."""


class QMPCommandError(QMPError):
    """QEMU answered a command with an error."""

    def __init__(self, command, error):
        self.command = command
        self.error_class = error.get("class", "?")
        self.desc = error.get("desc", "")
        super().__init__(f"{command}: {self.error_class}: {self.desc}")


class MigrationInfo:
    """The interesting parts of a query-migrate answer, flattened.

    Times are in milliseconds and sizes in bytes, as QEMU reports them;
    fields QEMU did not include (they depend on the state) are None."""

    def __init__(self, raw):
        self.raw = raw
        ram = raw.get("ram") or {}
        self.status = raw.get("status", "none")
        self.total_time_ms = raw.get("total-time")
        self.downtime_ms = raw.get("downtime")
        self.expected_downtime_ms = raw.get("expected-downtime")
        self.setup_time_ms = raw.get("setup-time")
        self.error_desc = raw.get("error-desc")
        self.ram_transferred = ram.get("transferred")
        self.ram_total = ram.get("total")
        self.ram_remaining = ram.get("remaining")
        self.ram_normal_pages = ram.get("normal")
        self.ram_duplicate_pages = ram.get("duplicate")
        self.ram_mbps = ram.get("mbps")
        self.dirty_sync_count = ram.get("dirty-sync-count")
        self.postcopy_requests = ram.get("postcopy-requests")
        self.multifd_bytes = ram.get("multifd-bytes")

    def as_dict(self):
        return {k: v for k, v in vars(self).items() if k != "raw"}

    def __repr__(self):
        return f"MigrationInfo({self.as_dict()!r})"


class QMP:
    """One QMP connection.  Not thread-safe; one command at a time."""

    def __init__(self, path, connect_timeout=10.0, timeout=30.0):
        """Connect to the socket at path, retrying until connect_timeout
        (QEMU creates the socket a little after it starts), and negotiate
        capabilities.  timeout is the default deadline for each command."""
        self.path = path
        self.timeout = timeout
        self.events = []  # every asynchronous event seen, in order
        self._buf = b""
        self._next_id = 1
        self._pending = {}  # id -> command name, sent but not yet answered
        self._sock = None
        deadline = time.monotonic() + connect_timeout
        last_err = None
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                self._sock = s
                break
            except OSError as e:  # not there yet, or not listening yet
                s.close()
                last_err = e
            if time.monotonic() >= deadline:
                raise QMPTimeout(f"cannot connect to QMP socket {path} within "
                                 f"{connect_timeout:g} s: {last_err}")
            time.sleep(0.05)
        try:
            greeting = self._read_message(deadline=time.monotonic() + timeout)
            if "QMP" not in greeting:
                raise QMPError(f"{path}: expected the QMP greeting, got {greeting!r}")
            self.greeting = greeting["QMP"]
            self.execute("qmp_capabilities")
        except BaseException:
            self.close()
            raise

    # --- plumbing ---------------------------------------------------------------
    def close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _read_message(self, deadline):
        """The next complete JSON message, waiting at most until deadline."""
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPTimeout(f"{self.path}: no answer from QEMU in time")
            self._sock.settimeout(left)
            try:
                chunk = self._sock.recv(65536)
            except socket.timeout:
                continue  # the loop re-checks the deadline
            except OSError as e:
                raise QMPError(f"{self.path}: connection lost: {e}") from e
            if not chunk:
                raise QMPError(f"{self.path}: QEMU closed the QMP connection")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError as e:
            raise QMPError(f"{self.path}: bad JSON from QEMU: {line[:200]!r}") from e

    def _send(self, msg):
        data = (json.dumps(msg) + "\n").encode()
        try:
            self._sock.sendall(data)
        except OSError as e:
            raise QMPError(f"{self.path}: cannot send: {e}") from e

    # --- commands ---------------------------------------------------------------
    def execute(self, command, arguments=None, timeout=None):
        """Run one command and return its "return" value; raise
        QMPCommandError if QEMU reports an error.  Events that arrive
        meanwhile are appended to self.events."""
        return self.result(self.send(command, arguments), timeout)

    def send(self, command, arguments=None):
        """Send a command without waiting; returns the id to pass to
        result().  Lets a caller keep several QEMUs busy at once."""
        if self._sock is None:
            raise QMPError(f"{self.path}: not connected")
        msg_id = self._next_id
        self._next_id += 1
        msg = {"execute": command, "id": msg_id}
        if arguments:
            msg["arguments"] = arguments
        self._send(msg)
        self._pending[msg_id] = command
        return msg_id

    def result(self, msg_id, timeout=None):
        """Wait for the answer to the command sent with id msg_id."""
        command = self._pending.get(msg_id, "?")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            reply = self._read_message(deadline)
            if "event" in reply:
                self.events.append(reply)
                continue
            if reply.get("id") != msg_id:
                continue  # an answer to something we gave up on earlier
            self._pending.pop(msg_id, None)
            if "error" in reply:
                raise QMPCommandError(command, reply["error"])
            if "return" not in reply:
                raise QMPError(f"{self.path}: unexpected reply to {command}: {reply!r}")
            return reply["return"]

    def hmp(self, command_line, timeout=None):
        """Run a human-monitor command and return its text output."""
        return self.execute("human-monitor-command",
                            {"command-line": command_line}, timeout=timeout)

    def run_state(self):
        """The VM's run state: "running", "paused", "postmigrate", "inmigrate"..."""
        return self.execute("query-status")["status"]

    def query_migrate(self):
        return MigrationInfo(self.execute("query-migrate"))

    def set_capabilities(self, **caps):
        """set_capabilities(multifd=True, postcopy_ram=True): underscores in
        the names stand for QEMU's dashes."""
        if caps:
            self.execute("migrate-set-capabilities", {"capabilities": [
                {"capability": k.replace("_", "-"), "state": bool(v)}
                for k, v in caps.items()]})

    def set_parameters(self, **params):
        """set_parameters(max_bandwidth=20e6, multifd_channels=4)."""
        if params:
            self.execute("migrate-set-parameters",
                         {k.replace("_", "-"): v for k, v in params.items()})

    def wait_migration(self, states, timeout, poll=0.05, fail_states=(), on_poll=None):
        """Poll query-migrate until its status is one of states and return
        that MigrationInfo.  Raise QMPError at once if the status reaches one
        of fail_states, QMPTimeout after timeout seconds.  on_poll(info), if
        given, sees every answer (e.g. to record the states passed through)."""
        states = set(states)
        fail_states = set(fail_states) - states
        deadline = time.monotonic() + timeout
        info = None
        while True:
            info = self.query_migrate()
            if on_poll:
                on_poll(info)
            if info.status in states:
                return info
            if info.status in fail_states:
                why = f" ({info.error_desc})" if info.error_desc else ""
                raise QMPError(f"migration reached '{info.status}'{why} "
                               f"while waiting for {'/'.join(sorted(states))}")
            if time.monotonic() >= deadline:
                raise QMPTimeout(f"migration still '{info.status}' after {timeout:g} s "
                                 f"(waiting for {'/'.join(sorted(states))})")
            time.sleep(poll)

    def pmemsave(self, filename, size, addr=0, timeout=120, wait=True):
        """Dump guest-physical memory [addr, addr+size) into filename (a
        path as seen by QEMU).  With wait=False, return the command id at
        once (finish with result(id)), so two QEMUs can dump in parallel."""
        msg_id = self.send("pmemsave", {"val": addr, "size": size,
                                        "filename": os.path.abspath(filename)})
        if not wait:
            return msg_id
        return self.result(msg_id, timeout)

    def quit(self, timeout=10):
        """Ask QEMU to exit.  QEMU may close the socket before or after it
        answers; both count as success."""
        try:
            self.execute("quit", timeout=timeout)
        except QMPTimeout:
            raise
        except QMPError:
            pass
        self.close()


def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="Send one QMP command and print the result as JSON.")
    ap.add_argument("socket")
    ap.add_argument("command", nargs="?")
    ap.add_argument("arguments", nargs="?", help="JSON object")
    ap.add_argument("--hmp", metavar="CMDLINE", help="run a human-monitor command instead")
    ap.add_argument("--wait-migration", metavar="STATES",
                    help="comma-separated statuses to wait for (query-migrate)")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args(argv)
    try:
        with QMP(a.socket, connect_timeout=a.timeout, timeout=a.timeout) as q:
            if a.hmp is not None:
                sys.stdout.write(q.hmp(a.hmp))
            elif a.wait_migration:
                info = q.wait_migration(a.wait_migration.split(","), a.timeout)
                print(json.dumps(info.raw))
            elif a.command:
                args = json.loads(a.arguments) if a.arguments else None
                print(json.dumps(q.execute(a.command, args)))
            else:
                ap.error("give a COMMAND, --hmp or --wait-migration")
    except QMPError as e:
        print(f"qmp.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
