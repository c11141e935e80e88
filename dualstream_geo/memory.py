"""Process-wide memory settings for work on the CPU.

glibc gives freed blocks of more than a few megabytes back to the operating system (they
are ``mmap``-ed, or trimmed off the top of the heap), so the next training step or
prediction batch that allocates the same activations faults every page in again: on 2
cores this tripled the time of a training forward pass of the lite model with 64 px
patches (``benchmarks/bench_cpu_memory.py``), and a batch of 512 px windows, whose
full-resolution maps are 64 MiB per window and 64 channels, spent most of its time in
page faults (benchmarks/README.md, "Freed memory kept"). Keeping freed memory in the
process removes that cost; the price is that the process's resident size stays at its
peak instead of shrinking between steps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: glibc ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: The largest value ``mallopt`` takes (a C int): blocks up to 2 GiB come from the heap and
#: stay there when freed, enough for a batch of 8 windows of 512 px at 64 channels (512 MiB
#: per map). glibc 2.36 accepts it; the man page names 32 MiB as the limit, which older
#: versions enforce, so that is tried next.
MMAP_THRESHOLD_LARGEST = 2**31 - 1
#: The mmap threshold that glibc accepts everywhere on 64-bit systems (``HEAP_MAX_SIZE /
#: 2``): enough for training on small patches, not for prediction's windows.
MMAP_THRESHOLD_MAX = 32 * 2**20
#: Free memory at the top of the heap kept before any is given back.
TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory(mmap_threshold: int | None = None) -> int:
    """Have glibc keep freed blocks for reuse instead of returning them to the system.

    Blocks up to the mmap threshold come from the heap, and up to :data:`TRIM_THRESHOLD`
    of free memory at its top is kept. Idempotent; a later call sets the threshold again.

    Args:
        mmap_threshold: the largest block kept, in bytes (default:
            :data:`MMAP_THRESHOLD_LARGEST` where glibc accepts it, else
            :data:`MMAP_THRESHOLD_MAX`).

    Returns:
        The threshold applied, or 0 where the C library is not glibc (macOS, Windows,
        musl), which is left as it is.
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return 0
    candidates = (
        [mmap_threshold] if mmap_threshold else [MMAP_THRESHOLD_LARGEST, MMAP_THRESHOLD_MAX]
    )
    for threshold in candidates:
        if mallopt(M_MMAP_THRESHOLD, ctypes.c_int(threshold)):
            mallopt(M_TRIM_THRESHOLD, ctypes.c_int(TRIM_THRESHOLD))
            return threshold
    return 0
