"""Process-wide memory settings for work on the CPU.

glibc gives freed blocks of more than a few megabytes back to the operating system (they
are ``mmap``-ed, or trimmed off the top of the heap), so the next training step that
allocates the same activations faults every page in again: on 2 cores this tripled the
time of a training forward pass of the lite model with 64 px patches (``benchmarks/
bench_cpu_memory.py``). Keeping freed memory in the process removes that cost; the price is
that the process's resident size stays at its peak instead of shrinking between steps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: glibc ``mallopt`` parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: The largest mmap threshold glibc accepts on 64-bit systems (``HEAP_MAX_SIZE / 2``).
MMAP_THRESHOLD_MAX = 32 * 2**20
#: Free memory at the top of the heap kept before any is given back.
TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Have glibc keep freed blocks for reuse instead of returning them to the system.

    Have glibc keep freed blocks (up to ``MMAP_THRESHOLD_MAX`` each, ``TRIM_THRESHOLD`` in
    all) for reuse instead of returning them to the system. True when applied; False where
    the C library is not glibc (macOS, Windows, musl), which is left as it is.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX) and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
