#!/bin/sh
# What an operator meets on a host without RDMA (kernel TCP only; every
# refusal here happens before any RDMA is tried):
#   - a bad MIGRDMA_LOG with a valid MIGRDMA_TARGETS refuses the matched
#     connection (EPERM), makes no TCP connection, and writes exactly one
#     error line, into MIGRDMA_LOG_FILE; a matched listener is refused too;
#   - only an explicit MIGRDMA_FALLBACK=tcp lets them use plain TCP;
#   - an unknown MIGRDMA_* name is warned about with the nearest known name;
#   - a TCP fallback connection logs one default-level close line and one
#     MIGRDMA_STATS record with transport tcp and its exact byte counts;
#   - "no RDMA" is logged once per address, naming it and the connection id.
# Usage: fail_closed.sh LIBMIGRDMA
set -eu
lib=$1
. "$(dirname "$0")/common.sh"
lines() { if [ -f "$1" ]; then grep -c . "$1" || true; else echo 0; fi; }

# A plain TCP server: counts connections, reads until end of stream, then
# answers with 4321 bytes and closes.
"$py" - "$tmp" <<'PY' &
import socket, sys, os
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(os.path.join(sys.argv[1], "port.tmp"), "w").write(str(s.getsockname()[1]))
os.rename(os.path.join(sys.argv[1], "port.tmp"), os.path.join(sys.argv[1], "port"))
n = 0
while True:
    c, _ = s.accept(); n += 1
    open(os.path.join(sys.argv[1], "accepted"), "w").write(str(n))
    got = 0
    while True:
        b = c.recv(65536)
        if not b:
            break
        got += len(b)
    open(os.path.join(sys.argv[1], "received"), "w").write(str(got))
    c.sendall(b"y" * 4321)
    c.close()
PY
srv=$!
port=$(wait_port "$tmp/port" server) || exit 1

# client PORT NBYTES [COUNT [PORT2]]: connect COUNT times (sending NBYTES,
# then reading to the end each time), then once to PORT2 if given.
client='
import socket, sys, errno
def one(port, n):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        s.close()
        return "errno %d" % e.errno
    s.sendall(b"x" * n)
    s.shutdown(socket.SHUT_WR)
    got = 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += len(b)
    s.close()
    return "got %d" % got
port, n = int(sys.argv[1]), int(sys.argv[2])
count = int(sys.argv[3]) if len(sys.argv) > 3 else 1
out = [one(port, n) for _ in range(count)]
if len(sys.argv) > 4:
    out.append(one(int(sys.argv[4]), n))
print(" ".join(out))
'
# run VAR=VALUE... -- CLIENT-ARGS...
run() {
	vars=""
	while [ "$1" != -- ]; do vars="$vars $1"; shift; done
	shift
	# shellcheck disable=SC2086 # the test's own VAR=VALUE words, no spaces
	env LD_PRELOAD="$lib" $vars "$py" -c "$client" "$@" 2>"$tmp/err"
}
reset() { rm -f "$tmp/log" "$tmp/stats" "$tmp/accepted" "$tmp/received"; }

# 1. The issue's "done when": bad MIGRDMA_LOG, valid MIGRDMA_TARGETS.
reset
out=$(run MIGRDMA_TARGETS="127.0.0.1:$port" MIGRDMA_LOG=verbose MIGRDMA_LOG_FILE="$tmp/log" \
	-- "$port" 1000)
[ "$out" = "errno 1" ] || fail "bad MIGRDMA_LOG: want the matched connect refused with EPERM, got '$out'"
[ ! -s "$tmp/err" ] || { cat "$tmp/err"; fail "bad MIGRDMA_LOG: nothing may go to stderr when MIGRDMA_LOG_FILE is set"; }
[ "$(lines "$tmp/log")" = 1 ] || { cat "$tmp/log" 2>/dev/null; fail "bad MIGRDMA_LOG: want exactly one line in MIGRDMA_LOG_FILE"; }
grep -q '^migrdma\[[0-9]*\] error MIGRDMA_LOG="verbose": must be error, warn, notice, info or debug; connections matching MIGRDMA_TARGETS are refused' "$tmp/log" ||
	{ cat "$tmp/log"; fail "bad MIGRDMA_LOG: the line must be an error naming the variable and the refusal"; }
sleep 0.3
[ ! -e "$tmp/accepted" ] || fail "bad MIGRDMA_LOG: a TCP connection was made"
echo "ok: bad MIGRDMA_LOG refuses the matched connect (EPERM), one error line in MIGRDMA_LOG_FILE, no TCP"

# An unmatched connection of the same process is left alone.
reset
out=$(run MIGRDMA_TARGETS="127.0.0.1:1" MIGRDMA_LOG=verbose -- "$port" 1000)
[ "$out" = "got 4321" ] || fail "bad MIGRDMA_LOG: an unmatched connect must work, got '$out'"
echo "ok: unmatched connections are untouched while matched ones are refused"

# 2. A matched listener is refused too.
reset
out=$(env LD_PRELOAD="$lib" MIGRDMA_TARGETS='*:45999' MIGRDMA_KEEPALIVE=0 "$py" -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 45999))
try:
    s.listen(1); print("listening")
except OSError as e:
    print("errno", e.errno)
' 2>"$tmp/err")
[ "$out" = "errno 1" ] || fail "bad MIGRDMA_KEEPALIVE: want the matched listen refused with EPERM, got '$out'"
[ "$(lines "$tmp/err")" = 1 ] && grep -q 'MIGRDMA_KEEPALIVE="0"' "$tmp/err" ||
	{ cat "$tmp/err"; fail "bad MIGRDMA_KEEPALIVE: want one error line naming it"; }
echo "ok: a bad variable refuses a matched listener (EPERM)"

# 3. An explicit, valid MIGRDMA_FALLBACK=tcp lets them through.
reset
out=$(run MIGRDMA_TARGETS="127.0.0.1:$port" MIGRDMA_LOG=verbose MIGRDMA_FALLBACK=tcp -- "$port" 1000)
[ "$out" = "got 4321" ] || fail "bad MIGRDMA_LOG with MIGRDMA_FALLBACK=tcp: want plain TCP, got '$out'"
[ "$(lines "$tmp/err")" = 1 ] && grep -q 'MIGRDMA_LOG="verbose".*use plain TCP, as MIGRDMA_FALLBACK=tcp allows' "$tmp/err" ||
	{ cat "$tmp/err"; fail "bad MIGRDMA_LOG with fallback: want one error line saying plain TCP"; }
echo "ok: with MIGRDMA_FALLBACK=tcp a bad variable lets matched connections use TCP, one error line"

# 4. Unknown names: a warning with the nearest known name, into the log file.
reset
out=$(run MIGRDMA_TARGET="127.0.0.1:$port" MIGRDMA_LOG_FILE="$tmp/log" -- "$port" 10)
[ "$out" = "got 4321" ] || fail "unknown name: the program should run untouched, got '$out'"
[ ! -s "$tmp/err" ] || { cat "$tmp/err"; fail "unknown name: nothing may go to stderr"; }
[ "$(lines "$tmp/log")" = 1 ] && grep -q 'warn unknown variable MIGRDMA_TARGET is ignored; did you mean MIGRDMA_TARGETS?' "$tmp/log" ||
	{ cat "$tmp/log" 2>/dev/null; fail "unknown name: want one warning suggesting MIGRDMA_TARGETS"; }
echo "ok: an unknown MIGRDMA_* name is warned about, suggesting the nearest known one"

# 5. Proof afterwards for a TCP fallback: the close line at the default
#    level and a MIGRDMA_STATS record, both with the exact bytes.
reset
out=$(run MIGRDMA_TARGETS="127.0.0.1:$port" MIGRDMA_FALLBACK=tcp MIGRDMA_STATS="$tmp/stats" \
	-- "$port" 100000)
[ "$out" = "got 4321" ] || fail "fallback: got '$out'"
[ "$(cat "$tmp/received")" = 100000 ] || fail "fallback: the server received $(cat "$tmp/received") bytes"
grep -c 'notice \[c1\] closed: transport=tcp role=client local=127.0.0.1:[0-9]* peer=127.0.0.1:'"$port"' duration_s=[0-9.]* bytes_out=100000 bytes_in=4321 zerocopy_share=0.0000 out_mb_s=[0-9.]* in_mb_s=[0-9.]* close_reason=close$' "$tmp/err" | grep -qx 1 ||
	{ cat "$tmp/err"; fail "fallback: want one default-level close line with transport=tcp and the exact bytes"; }
[ "$(lines "$tmp/stats")" = 1 ] || { cat "$tmp/stats"; fail "fallback: want one MIGRDMA_STATS record"; }
"$py" - "$tmp/stats" "$port" <<'PY' || fail "fallback: MIGRDMA_STATS record wrong: $(cat "$tmp/stats")"
import json, sys
r = json.loads(open(sys.argv[1]).read())
want = {"conn_id": 1, "role": "client", "transport": "tcp", "peer": "127.0.0.1:" + sys.argv[2],
        "bytes_out": 100000, "bytes_in": 4321, "bytes_out_zerocopy": 0, "zerocopy_share": 0.0,
        "close_reason": "close"}
bad = {k: (r.get(k), v) for k, v in want.items() if r.get(k) != v}
sys.exit(1 if bad or not r["duration_s"] > 0 or r["out_mb_s"] is None else 0)
PY
echo "ok: a TCP fallback logs one close line at the default level and a stats record, transport tcp, exact bytes"

# MIGRDMA_LOG=warn silences the close line (it is a notice).
reset
run MIGRDMA_TARGETS="127.0.0.1:$port" MIGRDMA_FALLBACK=tcp MIGRDMA_LOG=warn -- "$port" 10 >/dev/null
! grep -q 'closed:' "$tmp/err" || { cat "$tmp/err"; fail "MIGRDMA_LOG=warn must not show the close line"; }
echo "ok: MIGRDMA_LOG=warn hides the close line"

# 6. No RDMA: one line per address, naming the address and the connection.
reset
out=$(run MIGRDMA_TARGETS="127.0.0.1:$port,127.0.0.1:1" -- "$port" 10 3 1)
[ "$out" = "errno 19 errno 19 errno 19 errno 19" ] || fail "no RDMA: want four ENODEV failures, got '$out'"
[ "$(lines "$tmp/err")" = 2 ] || { cat "$tmp/err"; fail "no RDMA: want one line per address (2), not one per connect"; }
grep -q "error \[c1\] connect to 127.0.0.1:$port: no RDMA available (No such device)" "$tmp/err" &&
	grep -q "error \[c4\] connect to 127.0.0.1:1: no RDMA available" "$tmp/err" ||
	{ cat "$tmp/err"; fail "no RDMA: the lines must name the address and the connection id"; }
echo "ok: no RDMA is logged once per address, with the address and the connection id"
echo PASS
