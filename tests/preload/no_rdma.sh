#!/bin/sh
# The library on a host without RDMA, as a user would meet it first:
#   - a matched connect fails with ENODEV and one log line saying why,
#     and no TCP connection is made;
#   - MIGRDMA_FALLBACK=tcp connects over plain TCP with a warning;
#   - a bad variable refuses matched connections with one error line
#     (fail closed), a bad MIGRDMA_TARGETS leaves the library inert;
#   - MIGRDMA_DISABLE=1 is silent.
# Usage: no_rdma.sh LIBMIGRDMA
set -eu
lib=$1
. "$(dirname "$0")/common.sh"

# A plain TCP listener that records whether anyone connected.
"$py" - "$tmp" <<'PY' &
import socket, sys, os
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(os.path.join(sys.argv[1], "port"), "w").write(str(s.getsockname()[1]))
n = 0
while True:
    c, _ = s.accept(); n += 1
    open(os.path.join(sys.argv[1], "accepted"), "w").write(str(n))
    c.close()
PY
srv=$!
port=$(wait_port "$tmp/port" listener) || exit 1

client='
import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    print("connected")
except OSError as e:
    print("errno", e.errno)
'
run() { env LD_PRELOAD="$lib" "$@" "$py" -c "$client" "$port" 2>"$tmp/err"; }

out=$(run MIGRDMA_TARGETS="127.0.0.1:$port")
[ "$out" = "errno 19" ] || fail "matched connect without RDMA: got '$out', want errno 19 (ENODEV)"
[ "$(grep -c 'no RDMA available' "$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "want exactly one 'no RDMA available' line"; }
[ ! -e "$tmp/accepted" ] || fail "a TCP connection was made although MIGRDMA_FALLBACK=none"
echo "ok: matched connect fails with ENODEV, one log line, no TCP"

out=$(run MIGRDMA_TARGETS="127.0.0.1:$port" MIGRDMA_FALLBACK=tcp)
[ "$out" = connected ] || fail "fallback tcp: got '$out'"
grep -q 'plain TCP' "$tmp/err" || fail "fallback tcp: no warning"
echo "ok: MIGRDMA_FALLBACK=tcp connects over TCP with a warning"
# That connection reached the listener; start counting afresh.
i=0
while [ ! -e "$tmp/accepted" ]; do i=$((i + 1)); [ $i -lt 100 ] || fail "the fallback connection never arrived"; sleep 0.1; done
rm -f "$tmp/accepted"

out=$(run MIGRDMA_TARGETS="127.0.0.1:$port" MIGRDMA_CHUNK=3M)
[ "$out" = "errno 1" ] || fail "bad variable: a matched connect must be refused (EPERM), got '$out'"
[ "$(grep -c 'MIGRDMA_CHUNK="3M"' "$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "bad variable: want one error line naming it"; }
[ "$(grep -c . "$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "bad variable: want exactly one line"; }
grep -q 'are refused' "$tmp/err" || fail "bad variable: the line should say matched connections are refused"
[ ! -e "$tmp/accepted" ] || fail "bad variable: a TCP connection was made although MIGRDMA_FALLBACK is not tcp"
echo "ok: a bad variable refuses the matched connection (fail closed) with one error line"

out=$(run MIGRDMA_TARGETS="127.0.0.1:$port,nonsense")
[ "$out" = connected ] || fail "bad MIGRDMA_TARGETS: nothing can match, the program should run untouched, got '$out'"
grep -q 'inert' "$tmp/err" || { cat "$tmp/err"; fail "bad MIGRDMA_TARGETS: the line should say the library stays inert"; }
echo "ok: a bad MIGRDMA_TARGETS leaves the library inert with one error line"

out=$(run MIGRDMA_TARGETS="127.0.0.1:$port" MIGRDMA_DISABLE=1)
[ "$out" = connected ] || fail "MIGRDMA_DISABLE=1: got '$out'"
[ ! -s "$tmp/err" ] || { cat "$tmp/err"; fail "MIGRDMA_DISABLE=1 must be silent"; }
echo "ok: MIGRDMA_DISABLE=1 is inert and silent"
echo PASS
