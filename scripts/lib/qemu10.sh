#!/bin/bash
# qemu10.sh: provide QEMU 10.0 from Debian's bookworm-backports next to the
# system's QEMU 7.2, without installing it.  Prints the unpacked root on
# stdout; everything else goes to stderr.
#
#   usage: qemu10.sh [--check]
#
#   --check   do not download: print the root if it is complete, else fail
#
# The packages (qemu-system-x86, qemu-system-common, qemu-system-data) are
# fetched with "apt-get download" through an apt configuration of its own:
# its own sources list naming bookworm-backports, no sources.list.d, and
# its own lists and archive cache, so the system's apt state is neither
# read for sources nor changed.  They are unpacked with "dpkg -x" into
#
#   ${MIGRDMA_QEMU10_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migrdma-qemu10}/root
#
# and run as  ROOT/usr/bin/qemu-system-x86_64 -L ROOT/usr/share/qemu
# -L /usr/share/qemu  with QEMU_MODULE_DIR=ROOT/usr/lib/x86_64-linux-gnu/qemu
# (scripts/migrate --qemu 10 does that).  The second -L finds the firmware
# that comes from other packages (seabios, ipxe-qemu) in the system's copy.
#
# Its shared libraries all come from bookworm: ROOT/lib-depends lists the
# packages it needs (scripts/setup installs the missing ones), and ldd is
# asked whether any library is missing.
#
# Idempotent: a complete root (ROOT/.complete) is reused without network.
# A build takes a lock and happens in a temporary directory renamed into
# place when complete, as scripts/lib/vm-image.sh does.
set -eu

die() {
	echo "qemu10: $*" >&2
	exit 1
}

check=0
case ${1:-} in
--check) check=1 ;;
'') ;;
-h | --help) sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
*) die "unknown option '$1' (see --help)" ;;
esac

cache=${MIGRDMA_QEMU10_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is unset}/.cache}/migrdma-qemu10}
final=$cache/root
SUITE=bookworm-backports
PACKAGES="qemu-system-x86 qemu-system-common qemu-system-data"

if [ -f "$final/.complete" ]; then
	echo "$final"
	exit 0
fi
[ "$check" = 0 ] || die "QEMU 10.0 is not unpacked in $final (run scripts/setup)"

for tool in apt-get dpkg dpkg-deb flock ldd; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found"
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || die "$keyring not found (package debian-archive-keyring)"

mkdir -p "$cache"
exec 9>>"$cache/.lock"
flock -w 900 9 || die "timed out waiting for the lock $cache/.lock"
if [ -f "$final/.complete" ]; then
	echo "$final"
	exit 0
fi

echo "qemu10: fetching QEMU 10.0 from $SUITE into $final (one-time)" >&2
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

mirror=${MIGRDMA_DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$tmp/apt/lists/partial" "$tmp/apt/cache/archives/partial" "$tmp/deb"
echo "deb [signed-by=$keyring] $mirror $SUITE main" >"$tmp/apt/sources.list"
apt_opts=(-o "Dir::Etc::sourcelist=$tmp/apt/sources.list"
	-o "Dir::Etc::sourceparts=-"
	-o "Dir::State::Lists=$tmp/apt/lists"
	-o "Dir::Cache=$tmp/apt/cache"
	-o "APT::Get::List-Cleanup=0")
# As root, apt drops to its _apt user, which cannot write here.
[ "$(id -u)" -ne 0 ] || apt_opts+=(-o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update -qq >&2 ||
	die "apt-get update of $SUITE failed (needs access to $mirror)"
pkgs=()
for p in $PACKAGES; do
	pkgs+=("$p/$SUITE")
done
(cd "$tmp/deb" && apt-get "${apt_opts[@]}" download -qq "${pkgs[@]}" >&2) ||
	die "apt-get download ${pkgs[*]} failed"
for deb in "$tmp"/deb/*.deb; do
	dpkg -x "$deb" "$tmp/root"
done
main=$(ls "$tmp"/deb/qemu-system-x86_*.deb)
version=$(dpkg-deb -f "$main" Version)
case $version in
1:10.*) ;;
*) die "$SUITE offers qemu-system-x86 $version, not 10.x" ;;
esac
# Library packages only: the qemu-system-* ones are unpacked here, and the
# firmware packages (seabios, ipxe-qemu) are the system's, found by -L.
dpkg-deb -f "$main" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' |
	grep -v -e '^$' -e '^qemu-' -e '^seabios$' -e '^ipxe-qemu$' >"$tmp/root/lib-depends"
echo "$version" >"$tmp/root/version"
rm -rf "$tmp/deb" "$tmp/apt"
missing=$(ldd "$tmp/root/usr/bin/qemu-system-x86_64" | awk '/not found/ { print $1 }')
if [ -n "$missing" ]; then
	echo "qemu10: note: libraries not installed yet: $missing (scripts/setup installs" \
		"the packages in lib-depends)" >&2
fi
touch "$tmp/root/.complete"
chmod 0755 "$tmp/root"
if ! mv -T "$tmp/root" "$final" 2>/dev/null; then
	[ -f "$final/.complete" ] || die "cannot move the unpacked root into $final"
fi
echo "qemu10: ready: $final (qemu-system-x86 $version)" >&2
echo "$final"
