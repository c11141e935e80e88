"""glibc keeps freed blocks in the process: training steps and prediction batches reuse them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dualstream_geo.memory import MMAP_THRESHOLD_MAX, keep_freed_memory

LINUX = sys.platform.startswith("linux")
BLOCK = 128 * 2**20

#: Run in a fresh process: in one whose heap already holds freed blocks (this test
#: session's), glibc serves a large block from them whatever the threshold. Prints how many
#: more bytes glibc holds in mmap-ed blocks while a BLOCK-byte tensor lives (about BLOCK when
#: it is mmap-ed and so given back when freed, 0 when it comes from the heap and stays), as
#: glibc's defaults, MMAP_THRESHOLD_MAX and what a CPU ScenePredictor sets leave it.
CHILD = f"""
import ctypes, ctypes.util, json, torch
from dualstream_geo.data.spec import InputSpec
from dualstream_geo.inference import ScenePredictor
from dualstream_geo.memory import MMAP_THRESHOLD_MAX, keep_freed_memory
from dualstream_geo.models import DualStreamDFormer

class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (malloc.h, glibc >= 2.33)
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
libc.mallinfo2.restype = MallInfo2

def mmapped() -> int:
    before = libc.mallinfo2().hblkhd
    block = torch.ones({BLOCK} // 4)
    during = libc.mallinfo2().hblkhd
    del block
    return during - before

figures = {{"defaults": mmapped()}}
keep_freed_memory(MMAP_THRESHOLD_MAX)
figures["32 MiB"] = mmapped()
model = DualStreamDFormer(num_classes=2, task="binary", preset="lite", air_channels=48)
ScenePredictor(model, spec=InputSpec(), device="cpu")
figures["predictor"] = mmapped()
print(json.dumps(figures))
"""


def test_keep_freed_memory_applies_a_threshold_on_linux_only() -> None:
    threshold = keep_freed_memory()
    if not LINUX:
        assert threshold == 0
        return
    assert threshold >= MMAP_THRESHOLD_MAX
    assert keep_freed_memory(MMAP_THRESHOLD_MAX) == MMAP_THRESHOLD_MAX
    assert keep_freed_memory() == threshold


@pytest.mark.skipif(not LINUX, reason="glibc's malloc")
def test_a_cpu_predictor_keeps_its_batches_maps_in_the_process() -> None:
    """A batch of 8 windows of 512 px at 64 channels is 512 MiB per map: with glibc's
    defaults, and with the 32 MiB that ``dualstream-geo`` set before, such maps were mmap-ed
    and faulted in again for every batch; a CPU predictor keeps them where glibc allows."""
    child = subprocess.run(
        [sys.executable, "-c", CHILD], check=False, capture_output=True, text=True
    )
    if "mallinfo2" in child.stderr:
        pytest.skip("glibc before 2.33 has no mallinfo2")
    assert child.returncode == 0, child.stderr
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    assert figures["defaults"] >= BLOCK
    assert figures["32 MiB"] >= BLOCK
    kept = keep_freed_memory() > BLOCK  # where glibc takes a threshold that large
    assert (figures["predictor"] == 0) == kept
