#!/bin/sh
# test-run.sh MIGRDMA_RUN LIBMIGRDMA MIGRDMA_TOOL: ctest tools.run_usage.
#
# migrdma-run must refuse every bad command line with exit status 2 and a
# usage message on stderr before anything runs, refuse a configuration the
# library would reject, and otherwise exec the command with LD_PRELOAD and
# the MIGRDMA_* variables set.  Runs the script under dash, the strictest
# POSIX sh at hand, when there is one.
set -eu

[ $# -eq 3 ] || {
	echo "usage: test-run.sh MIGRDMA_RUN LIBMIGRDMA MIGRDMA_TOOL" >&2
	exit 2
}
run=$1 lib=$2 tool=$3
sh='sh'
command -v dash >/dev/null 2>&1 && sh=dash

work=$(mktemp -d "${TMPDIR:-/tmp}/migrdma-run-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"

failures=0
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# Environment of every run: the library named explicitly, nothing inherited.
clean_env() {
	env -u LD_PRELOAD -u MIGRDMA_TARGETS -u MIGRDMA_SECRET -u MIGRDMA_ALLOW \
		-u MIGRDMA_FALLBACK -u MIGRDMA_LOG -u MIGRDMA_LOG_FILE -u MIGRDMA_STATS \
		-u MIGRDMA_DISABLE MIGRDMA_LIB="$lib" "$@"
}

# refuse WHAT EXPECTED_STDERR_PATTERN ARGS...: must exit 2, print the
# pattern and a usage line on stderr, and never run the command (which
# would create ./ran).
refuse() {
	_what=$1 _pattern=$2
	shift 2
	rm -f ran out err
	_rc=0
	clean_env "$sh" "$run" "$@" >out 2>err || _rc=$?
	if [ "$_rc" -ne 2 ]; then
		fail "$_what: exit $_rc, expected 2"
		sed 's/^/  | /' err
	elif [ -e ran ]; then
		fail "$_what: the command ran"
	elif ! grep -q -- "$_pattern" err; then
		fail "$_what: stderr lacks '$_pattern'"
		sed 's/^/  | /' err
	elif ! grep -q '^usage: migrdma-run' err && ! grep -q 'refusing to start' err; then
		fail "$_what: no usage message on stderr"
		sed 's/^/  | /' err
	elif [ -s out ]; then
		fail "$_what: wrote to stdout"
	else
		pass "$_what: refused with exit 2 ($(head -n 1 err))"
	fi
}

printf 'correct-horse-battery\n' >secret
chmod 600 secret
printf 'short\n' >short-secret
printf 'line one\nline two\n' >two-lines
: >empty
mkdir adir

refuse "no arguments" "no command given"
refuse "unknown option" "unknown option '-x'" -x -t 10.0.0.1:1 -- touch ran
refuse "unknown long option" "unknown option '--target'" --target 10.0.0.1:1 -- touch ran
refuse "-t without its argument" "option -t needs an argument" -t
refuse "-t followed by --" "option -t needs an argument" -t -- touch ran
refuse "--log-file without its argument" "option --log-file needs an argument" --log-file
refuse "empty --targets=" "non-empty" --targets= -- touch ran
refuse "flag with a value" "takes no argument" --verbose=yes -t 10.0.0.1:1 -- touch ran
refuse "missing --" "put '--' before the command" -t 10.0.0.1:1 touch ran
refuse "missing -- at the end" "missing '--'" -t 10.0.0.1:1
refuse "no command after --" "no command after '--'" -t 10.0.0.1:1 --
refuse "bad --fallback" "must be none or tcp" -f maybe -t 10.0.0.1:1 -- touch ran
refuse "bad --log" "must be error, warn, notice, info or debug" --log=loud -t 10.0.0.1:1 -- touch ran
refuse "unreadable secret file" "cannot read it" --secret-file "$work/nonexistent" -t 10.0.0.1:1 -- touch ran
refuse "secret file is a directory" "cannot read it" --secret-file adir -t 10.0.0.1:1 -- touch ran
refuse "empty secret file" "is empty" --secret-file empty -t 10.0.0.1:1 -- touch ran
refuse "two-line secret file" "single line" --secret-file two-lines -t 10.0.0.1:1 -- touch ran
refuse "no targets at all" "no target rules" -- touch ran
refuse "bad rule (port)" 'rule "10.0.0.1:99999": port must be between 1 and 65535' -t 10.0.0.1:99999 -- touch ran
refuse "bad rule (IPv6 without brackets)" "MIGRDMA_TARGETS" -t ::1:4444 -- touch ran
refuse "bad --allow" "MIGRDMA_ALLOW" --allow 10.0.0.0/99 -t 10.0.0.1:1 -- touch ran
refuse "secret too short" "MIGRDMA_SECRET: must be 8 to" --secret-file short-secret -t 10.0.0.1:1 -- touch ran
if grep -q short err; then
	fail "secret too short: the secret's value appears in the message"
fi
# A bad variable from the environment is caught too, not just options.
rm -f ran
rc=0
clean_env MIGRDMA_RING=3M "$sh" "$run" -t 10.0.0.1:1 -- touch ran >out 2>err || rc=$?
if [ "$rc" -eq 2 ] && grep -q 'MIGRDMA_RING="3M"' err && [ ! -e ran ]; then
	pass "bad MIGRDMA_RING from the environment: refused with exit 2"
else
	fail "bad MIGRDMA_RING from the environment: exit $rc"
	sed 's/^/  | /' err
fi

# --- help and version ----------------------------------------------------------------
rc=0
clean_env "$sh" "$run" --help >out 2>err || rc=$?
if [ "$rc" -eq 0 ] && grep -q '^usage: migrdma-run' out && grep -q -- '--secret-file' out && [ ! -s err ]; then
	pass "--help: usage on stdout, exit 0"
else
	fail "--help: exit $rc"
fi
rc=0
clean_env "$sh" "$run" --version >out 2>err || rc=$?
if [ "$rc" -eq 0 ] && grep -Eq '^migrdma-run [0-9]+\.[0-9]+' out; then
	pass "--version: $(cat out)"
else
	fail "--version: exit $rc, '$(cat out)'"
fi

# --- a good invocation -------------------------------------------------------------------
# has VAR=VALUE: the env output of the last run holds that exact line.
has() {
	if grep -qxF -- "$1" out; then
		pass "good run: $1"
	else
		fail "good run: no line '$1' in:"
		grep -E '^(MIGRDMA_|LD_PRELOAD)' out | sed 's/^/  | /'
	fi
}
reallib=$(cd "$(dirname "$lib")" && pwd -P)/$(basename "$lib")
# An LD_PRELOAD already set must be kept, after ours.  libc itself is a
# harmless thing to preload.
libc=$(ldd "$(command -v env)" | awk '$1 ~ /^libc\.so/ { print $3; exit }')
rc=0
clean_env LD_PRELOAD="$libc" MIGRDMA_KEEPALIVE=7 "$sh" "$run" \
	-t 198.18.0.2:4444 -t'*:5000-5100' --fallback=tcp -v -L rel.log \
	-s /tmp/stats.json --secret-file secret --allow 10.0.0.0/8 --allow fd00::/8 \
	-- env >out 2>err || rc=$?
if [ "$rc" -eq 0 ]; then
	pass "good run: exit 0"
else
	fail "good run: exit $rc"
	sed 's/^/  | /' err
fi
has "LD_PRELOAD=$reallib:$libc"
has "MIGRDMA_TARGETS=198.18.0.2:4444,*:5000-5100"
has "MIGRDMA_FALLBACK=tcp"
has "MIGRDMA_LOG=info"
has "MIGRDMA_LOG_FILE=$(pwd -P)/rel.log"
has "MIGRDMA_STATS=/tmp/stats.json"
has "MIGRDMA_SECRET=correct-horse-battery"
has "MIGRDMA_ALLOW=10.0.0.0/8,fd00::/8"
has "MIGRDMA_KEEPALIVE=7"
if grep -q 'cannot be preloaded' err; then
	fail "good run: ld.so could not preload the library"
	sed 's/^/  | /' err
fi

# Arguments reach the command untouched, and its exit status comes back.
rc=0
clean_env "$sh" "$run" -t 10.0.0.1:1 -- sh -c 'printf "%s|" "$@"; exit 42' x 'a b' '' '-t' >out 2>err || rc=$?
if [ "$rc" -eq 42 ] && [ "$(cat out)" = "a b||-t|" ]; then
	pass "arguments and exit status pass through"
else
	fail "arguments and exit status: exit $rc, output '$(cat out)'"
fi

# -t overrides MIGRDMA_TARGETS; without -t the environment's rules are used.
rc=0
clean_env MIGRDMA_TARGETS=10.9.9.9:9 "$sh" "$run" -t 10.0.0.1:1 -- env >out 2>err || rc=$?
has "MIGRDMA_TARGETS=10.0.0.1:1"
rc=0
clean_env MIGRDMA_TARGETS=10.9.9.9:9 "$sh" "$run" -- env >out 2>err || rc=$?
has "MIGRDMA_TARGETS=10.9.9.9:9"

# A misspelt variable is reported, but does not stop the run.
rc=0
clean_env MIGRDMA_TARGET=10.0.0.1:1 "$sh" "$run" -t 10.0.0.1:1 -- true >out 2>err || rc=$?
if [ "$rc" -eq 0 ] && grep -q 'warn  MIGRDMA_TARGET is set' err; then
	pass "misspelt MIGRDMA_TARGET: warned, still ran"
else
	fail "misspelt MIGRDMA_TARGET: exit $rc"
	sed 's/^/  | /' err
fi

# A missing library is migrdma-run's own failure: 125, like env(1).
rc=0
env -u LD_PRELOAD MIGRDMA_LIB="$work/nonexistent.so" "$sh" "$run" -t 10.0.0.1:1 -- touch ran >out 2>err || rc=$?
if [ "$rc" -eq 125 ] && grep -q 'MIGRDMA_LIB=.*no such file' err && [ ! -e ran ]; then
	pass "missing MIGRDMA_LIB: exit 125"
else
	fail "missing MIGRDMA_LIB: exit $rc"
	sed 's/^/  | /' err
fi

# A command that cannot run: migrdma-run's own one line, the shell's status
# numbers (127 missing, 126 not executable), never a bare shell error.
for c in "/nonexistent 127 /nonexistent: no such file" \
	"migrdma-no-such-command 127 migrdma-no-such-command: command not found in PATH" \
	"$work 126 $work: not an executable file"; do
	cmd=${c%% *} rest=${c#* } want=${rest%% *} msg=${rest#* }
	rc=0
	env -u LD_PRELOAD MIGRDMA_LIB="$reallib" "$sh" "$run" -t 10.0.0.1:1 -- "$cmd" >out 2>err || rc=$?
	if [ "$rc" -eq "$want" ] && [ "$(cat err)" = "migrdma-run: $msg" ]; then
		pass "command $cmd: exit $rc, one clear line"
	else
		fail "command $cmd: exit $rc (want $want), stderr:"
		sed 's/^/  | /' err
	fi
done

# --- search order from a checkout: ../build/libmigrdma.so, ../build/tools/migrdma
mkdir -p checkout/tools checkout/build/tools
cp "$run" checkout/tools/migrdma-run
ln -s "$reallib" checkout/build/libmigrdma.so
ln -s "$(cd "$(dirname "$tool")" && pwd -P)/$(basename "$tool")" checkout/build/tools/migrdma
rc=0
env -u LD_PRELOAD -u MIGRDMA_LIB "$sh" checkout/tools/migrdma-run -t 10.0.0.1:1 -- env >out 2>err || rc=$?
has "LD_PRELOAD=$(pwd -P)/checkout/build/libmigrdma.so"
# Without the checker, the run is refused unless --no-check.
rm checkout/build/tools/migrdma
rc=0
env -u LD_PRELOAD -u MIGRDMA_LIB "$sh" checkout/tools/migrdma-run -t 10.0.0.1:1 -- touch ran >out 2>err || rc=$?
if [ "$rc" -eq 125 ] && grep -q 'cannot find the migrdma tool' err && [ ! -e ran ]; then
	pass "checker missing: exit 125"
else
	fail "checker missing: exit $rc"
	sed 's/^/  | /' err
fi
rc=0
env -u LD_PRELOAD -u MIGRDMA_LIB "$sh" checkout/tools/migrdma-run --no-check -t 10.0.0.1:1 -- env >out 2>err || rc=$?
has "LD_PRELOAD=$(pwd -P)/checkout/build/libmigrdma.so"

if [ "$failures" -ne 0 ]; then
	echo "FAIL: $failures check(s) failed"
	exit 1
fi
echo "PASS: all migrdma-run checks passed"
