#!/bin/bash
# vm-image.sh: build (once) and locate the kernel + initramfs that
# scripts/vm-run boots.  Prints the image directory on stdout; everything
# else goes to stderr.
#
#   usage: vm-image.sh
#
# The image directory holds:
#   vmlinuz      Debian's kernel, unpacked from linux-image-<abi>-amd64
#   vmlinux      the same, uncompressed (PVH boot; absent if extraction failed)
#   initrd.cpio  busybox-static + the modules needed to mount the host root
#   modules/     that kernel's lib/modules/<kver> tree, after depmod
#   kver         the kernel release string (uname -r inside the VM)
#
# It lives in ${MIGRDMA_VM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migrdma-vm}
# under a name made of the kernel package and a hash of THIS file, so editing
# the build recipe below (including the initramfs /init) forces a rebuild,
# while editing vm-run or the in-VM scripts does not.  Builds take a lock and
# happen in a temporary directory that is renamed into place only when
# complete, so concurrent first runs and interrupted builds never leave a
# half-built image behind.
#
# Overrides: MIGRDMA_VM_KERNEL_PKG=linux-image-X skips the apt-cache lookup.
set -eu

die() {
	echo "vm-image: $*" >&2
	exit 1
}

self=$(readlink -f "$0")
cache=${MIGRDMA_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is unset}/.cache}/migrdma-vm}
recipe_hash=$(sha256sum "$self" | cut -c1-12)

# Modules the initramfs must load before it can mount the host root; their
# dependencies are added by modprobe --show-depends.  Everything else
# (rdma_rxe, veth, ...) is modprobe'd later from the full tree.
INITRD_MODULES="virtio_pci 9pnet_virtio 9p overlay"

resolve_kernel_pkg() {
	if [ -n "${MIGRDMA_VM_KERNEL_PKG:-}" ]; then
		echo "$MIGRDMA_VM_KERNEL_PKG"
		return
	fi
	# The metapackage depends on exactly one versioned image package.
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 ~ /Depends:$/ && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}

kpkg=$(resolve_kernel_pkg || true)
if [ -z "$kpkg" ]; then
	# No apt metadata (e.g. lists cleaned): reuse any image built by this
	# recipe rather than failing, if there is one.
	# shellcheck disable=SC2012 # names are ours: no odd characters
	existing=$(ls -1dt "$cache"/linux-image-*_"$recipe_hash" 2>/dev/null | head -n1 || true)
	if [ -n "$existing" ] && [ -f "$existing/.complete" ]; then
		echo "vm-image: apt-cache cannot resolve linux-image-amd64; reusing $existing" >&2
		echo "$existing"
		exit 0
	fi
	die "cannot resolve the kernel package: 'apt-cache depends linux-image-amd64' found nothing (run 'apt-get update', or set MIGRDMA_VM_KERNEL_PKG)"
fi
case $kpkg in
*/* | *' '* | .*) die "bad kernel package name '$kpkg'" ;;
esac

final="$cache/${kpkg}_$recipe_hash"
if [ -f "$final/.complete" ]; then
	echo "$final"
	exit 0
fi

for tool in apt-get dpkg depmod modprobe cpio busybox sha256sum flock; do
	command -v "$tool" >/dev/null 2>&1 ||
		die "'$tool' not found (run scripts/setup; packages: kmod busybox-static cpio apt dpkg)"
done
busybox=$(command -v busybox)
# The initramfs has no libc: a dynamically linked busybox (package 'busybox'
# instead of 'busybox-static') would fail there with a cryptic panic.
if ! LC_ALL=C ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable'; then
	die "$busybox is dynamically linked; install the Debian package busybox-static"
fi

mkdir -p "$cache"
# Serialise builders: a second concurrent first run waits here and then finds
# the finished image instead of downloading and unpacking it a second time.
exec 9>>"$cache/.lock"
flock -w 900 9 || die "timed out waiting for the build lock $cache/.lock"
if [ -f "$final/.complete" ]; then
	echo "$final"
	exit 0
fi

echo "vm-image: building $final (one-time; downloads $kpkg)" >&2
tmp=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# As root, apt would drop to its _apt user, which cannot write here (and then
# warns that the download is "performed unsandboxed"): say so up front.
sandbox=()
[ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
mkdir "$tmp/deb"
(cd "$tmp/deb" && apt-get download -qq "${sandbox[@]}" "$kpkg" >&2) ||
	die "apt-get download $kpkg failed (needs access to a Debian archive; try 'apt-get update')"
deb=$(ls "$tmp/deb"/*.deb)
dpkg -x "$deb" "$tmp/root"
rm -rf "$tmp/deb"

kver=$(ls "$tmp/root/lib/modules")
if [ -z "$kver" ] || [ "$(echo "$kver" | wc -l)" -ne 1 ]; then
	die "expected exactly one lib/modules/<kver> in $kpkg, found: $kver"
fi
[ -f "$tmp/root/boot/vmlinuz-$kver" ] || die "no boot/vmlinuz-$kver in $kpkg"
depmod -b "$tmp/root" "$kver"

# --- initramfs ---------------------------------------------------------------
stage="$tmp/initrd"
mkdir -p "$stage/bin" "$stage/mods" "$stage/proc" "$stage/sys" "$stage/dev" \
	"$stage/lower" "$stage/rw" "$stage/newroot"
cp "$busybox" "$stage/bin/busybox"
# modprobe prints one "insmod PATH [params]" line per module, dependencies
# first; a module shared by several targets appears several times.
# shellcheck disable=SC2086
modprobe -a -d "$tmp/root" -S "$kver" --show-depends $INITRD_MODULES |
	awk '$1 == "insmod" && !seen[$2]++ { print $2 }' >"$tmp/modlist"
[ -s "$tmp/modlist" ] || die "modprobe --show-depends found none of: $INITRD_MODULES"
: >"$stage/mods/order"
while IFS= read -r ko; do
	name=$(basename "$ko")
	cp "$ko" "$stage/mods/$name"
	echo "$name" >>"$stage/mods/order"
done <"$tmp/modlist"

# /init runs as PID 1 from the initramfs.  It mounts the host's / (9p,
# read-only) under a tmpfs overlay so the VM can write anywhere without
# touching the host, then hands over to the job's boot script, which lives on
# the host and is named on the kernel command line (migrdma.job=DIR).
cat >"$stage/init" <<'EOF'
#!/bin/busybox sh
bb=/bin/busybox
fail() {
	echo "vm-init: $*"
	# Make the host report "died without exit marker" quickly instead of
	# waiting for its timeout.
	$bb sync
	echo o >/proc/sysrq-trigger
	$bb sleep 60
}
$bb mount -t proc proc /proc || fail "mount /proc"
$bb mount -t sysfs sysfs /sys || fail "mount /sys"
$bb mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
for m in $($bb cat /mods/order); do
	$bb insmod "/mods/$m" || fail "insmod $m"
done
job=
for arg in $($bb cat /proc/cmdline); do
	case $arg in
	migrdma.job=*) job=${arg#migrdma.job=} ;;
	esac
done
[ -n "$job" ] || fail "no migrdma.job= on the kernel command line"
# cache=loose: each host file is read over 9p once, then cached (a big
# program's first start is ~0.8 s faster); host-side changes to a file
# during a run may go unseen, which is why --share dirs use cache=none.
# The retry covers a virtio device that is still being probed.
n=0
until $bb mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower 2>/dev/null; do
	n=$((n + 1))
	[ $n -lt 50 ] || fail "cannot mount the host root (9p tag hostroot)"
	$bb usleep 100000
done
$bb mount -t tmpfs -o mode=0755 rw /rw || fail "mount tmpfs"
$bb mkdir -p /rw/upper /rw/work
$bb mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot ||
	fail "mount overlay"
[ -f "/newroot$job/boot" ] || fail "job script $job/boot not visible in the VM"
for d in proc sys dev; do
	$bb mount --move /$d /newroot/$d || fail "move /$d"
done
exec $bb switch_root /newroot /bin/sh "$job/boot"
EOF
chmod 0755 "$stage/init"
(cd "$stage" && find . -print | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$tmp/initrd.cpio"
# The kernel gives /init its stdin/stdout/stderr by opening /dev/console in
# the initramfs, before /init can mount devtmpfs; without the node, /init
# runs with no console at all.  mknod needs root, so append the node as a
# second, hand-written newc archive (the kernel unpacks concatenated
# archives in order).
newc_entry() { # NAME MODE RDEV_MAJOR RDEV_MINOR INO
	local namesize=$((${#1} + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
		"$5" "$2" 0 0 1 0 0 0 0 "$3" "$4" "$namesize" 0
	printf '%s\0' "$1"
	head -c $(((4 - (110 + namesize) % 4) % 4)) /dev/zero
}
{
	newc_entry dev/console $((0020600)) 5 1 1000001
	newc_entry 'TRAILER!!!' 0 0 0 0
} >>"$tmp/initrd.cpio"
rm -rf "$stage"

mv "$tmp/root/boot/vmlinuz-$kver" "$tmp/vmlinuz"
# Under TCG, decompressing the xz-compressed bzImage costs about 2 s of every
# boot.  QEMU can boot the uncompressed ELF kernel directly through its PVH
# entry point instead, so store that too when it can be extracted (vm-run
# falls back to the bzImage otherwise).
extract_vmlinux() { # BZIMAGE OUT
	local off
	off=$(perl -e 'local $/; open(my $f, "<", $ARGV[0]) or exit 1; binmode $f;
		my $d = <$f>; my $i = index($d, "\xfd7zXZ\x00"); print $i if $i >= 0' "$1")
	[ -n "$off" ] || return 1
	command -v xz >/dev/null 2>&1 || return 1
	tail -c +$((off + 1)) "$1" | xz -dc --single-stream >"$2" 2>/dev/null || return 1
	# An ELF file with a XEN_ELFNOTE_PHYS32_ENTRY (type 18) "Xen" note.
	perl -e 'local $/; open(my $f, "<", $ARGV[0]) or exit 1; binmode $f; my $d = <$f>;
		exit(substr($d, 0, 4) eq "\x7fELF" && $d =~ /\x04\0\0\0.{4}\x12\0\0\0Xen\0/s ? 0 : 1)' "$2"
}
if ! extract_vmlinux "$tmp/vmlinuz" "$tmp/vmlinux"; then
	echo "vm-image: cannot extract a PVH-bootable vmlinux; booting the bzImage (slower)" >&2
	rm -f "$tmp/vmlinux"
fi
mv "$tmp/root/lib/modules/$kver" "$tmp/modules"
rm -rf "$tmp/root" "$tmp/modlist"
echo "$kver" >"$tmp/kver"
echo "$kpkg" >"$tmp/package"
touch "$tmp/.complete"
chmod 0755 "$tmp"
# rename(2) is atomic; -T makes mv fail (rather than nest) if another
# builder that ignored the lock got there first.
if ! mv -T "$tmp" "$final" 2>/dev/null; then
	[ -f "$final/.complete" ] || die "cannot move the image into $final"
fi
trap - EXIT
rm -rf "$tmp"
echo "vm-image: ready: $final" >&2
echo "$final"
