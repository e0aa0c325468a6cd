"""guest_ram: the guest RAM images that scripts/migrate maps into the
source QEMU (memory-backend-file, share=off).

  random  every byte random: nothing to elide or compress (the default)
  mixed   the realistic guest of scripts/bench-migration: by 4 KiB page
          number p, p % 4 in (0, 1) a zero page, p % 4 == 2 a compressible
          page (bytes from a 16-symbol alphabet, so half of each byte is
          redundant), p % 4 == 3 a random page.  dirty.c's mix=1 rewrites
          the same layout: 0 into the zero pages, a sequence number into
          the others, so the mix holds while the guest dirties.

python3 stdlib only.
"""

import os

MIB = 1 << 20
PAGE = 4096
PATTERNS = ("random", "mixed")
# The compressible pages' alphabet: 16 letters.
_ALPHA = bytes.maketrans(bytes(range(256)), bytes(b"etaoinshrdlucmfw"[i & 15] for i in range(256)))


def _mixed_mib():
    """One MiB of the mixed layout (256 pages; a MiB is a multiple of
    4 pages, so the layout by page number repeats every MiB)."""
    rnd = os.urandom(MIB // 2)
    out = bytearray(MIB)
    for p in range(MIB // PAGE):
        kind = p % 4
        if kind < 2:
            continue
        at = (p // 4 * 2 + kind - 2) * PAGE
        src = rnd[at:at + PAGE]
        out[p * PAGE:(p + 1) * PAGE] = src.translate(_ALPHA) if kind == 2 else src
    return bytes(out)


def write_image(path, size_mib, pattern="random"):
    """Write size_mib MiB of pattern to path (through a temporary file)."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown RAM pattern {pattern!r} (choose from {', '.join(PATTERNS)})")
    tmp = path + ".part"
    with open(tmp, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(MIB) if pattern == "random" else _mixed_mib())
    os.replace(tmp, path)


def looks_mixed(path):
    """True if the first MiB of path has the mixed layout's zero pages where
    they belong and data elsewhere: a cheap check that a reused image is
    the one the caller asked for."""
    try:
        with open(path, "rb") as f:
            head = f.read(MIB)
    except OSError:
        return False
    if len(head) < MIB:
        return False
    zero = bytes(PAGE)
    for p in range(MIB // PAGE):
        page = head[p * PAGE:(p + 1) * PAGE]
        if (p % 4 < 2) != (page == zero):
            return False
    return True
