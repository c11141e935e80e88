"""glibc keeps freed blocks in the process: training steps and prediction batches reuse them."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import pytest
import torch

from dualstream_geo.data.spec import InputSpec
from dualstream_geo.inference import ScenePredictor
from dualstream_geo.memory import MMAP_THRESHOLD_MAX, keep_freed_memory
from dualstream_geo.models import DualStreamDFormer

LINUX = sys.platform.startswith("linux")


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (malloc.h, glibc >= 2.33)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def mmapped_bytes_of(size: int) -> int:
    """How many more bytes glibc holds in ``mmap``-ed blocks while a ``size``-byte tensor
    lives: about ``size`` when it is ``mmap``-ed (and given back when freed), 0 when it comes
    from the heap (and stays there)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc before 2.33 has no mallinfo2")
    libc.mallinfo2.restype = MallInfo2
    before = libc.mallinfo2().hblkhd
    block = torch.empty(size // 4, dtype=torch.float32)
    during = libc.mallinfo2().hblkhd
    del block
    return int(during - before)


def test_keep_freed_memory_applies_a_threshold_on_linux_only() -> None:
    threshold = keep_freed_memory()
    if not LINUX:
        assert threshold == 0
        return
    assert threshold >= MMAP_THRESHOLD_MAX
    assert keep_freed_memory(MMAP_THRESHOLD_MAX) == MMAP_THRESHOLD_MAX
    assert keep_freed_memory() == threshold


@pytest.mark.skipif(not LINUX, reason="glibc's malloc")
def test_blocks_below_the_threshold_stay_in_the_process() -> None:
    keep_freed_memory(MMAP_THRESHOLD_MAX)
    assert mmapped_bytes_of(16 * 2**20) == 0  # below: from the heap
    assert mmapped_bytes_of(128 * 2**20) >= 128 * 2**20  # above: mmap-ed, given back
    threshold = keep_freed_memory()
    if threshold > 128 * 2**20:  # glibc takes the larger threshold: a batch's maps stay
        assert mmapped_bytes_of(128 * 2**20) == 0


@pytest.mark.skipif(not LINUX, reason="glibc's malloc")
def test_a_cpu_predictor_keeps_its_batches_maps_in_the_process() -> None:
    """A batch of 8 windows of 512 px at 64 channels is 512 MiB per map: with glibc's
    thresholds as before, such maps were mmap-ed and faulted in again for every batch."""
    largest = keep_freed_memory()
    keep_freed_memory(MMAP_THRESHOLD_MAX)  # as before
    assert mmapped_bytes_of(128 * 2**20) >= 128 * 2**20
    model = DualStreamDFormer(num_classes=2, task="binary", preset="lite", air_channels=48)
    ScenePredictor(model, spec=InputSpec(), device="cpu")
    kept = largest > 128 * 2**20  # where glibc takes a threshold that large
    assert (mmapped_bytes_of(128 * 2**20) == 0) == kept
