#!/bin/sh
# build.sh: build the dirtying multiboot guest (dirty.c) into OUT.
#
#   build.sh OUT            (CC and LD may be overridden from the environment)
#
# Only the compiler driver's -m32 and binutils' elf_i386 emulation are used:
# the program includes no libc header and links no libgcc, so a plain
# Debian gcc/binutils is enough (no gcc-multilib).
set -eu

[ $# -eq 1 ] || { echo "usage: build.sh OUT" >&2; exit 2; }
out=$1
here=$(cd "$(dirname "$0")" && pwd -P)
CC=${CC:-gcc}
LD=${LD:-ld}

obj=$out.o
trap 'rm -f "$obj"' EXIT
# -fno-asynchronous-unwind-tables/-fno-stack-protector: nothing to unwind
# with, no canary support without a libc; -mgeneral-regs-only: no SSE
# state is ever set up in here.
"$CC" -m32 -march=i686 -O2 -std=gnu11 -Wall -Wextra -ffreestanding -fno-pic -fno-pie \
	-fno-stack-protector -fno-asynchronous-unwind-tables -mgeneral-regs-only \
	-nostdlib -c "$here/dirty.c" -o "$obj"
"$LD" -m elf_i386 -nostdlib -static -T "$here/dirty.ld" -o "$out" "$obj"
