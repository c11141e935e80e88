"""What a scene predictor may be asked: output kinds, precisions, and its settings' checks."""

from __future__ import annotations

import torch

from ..errors import DualStreamError
from ..models.tta import TTAS
from .tiling import BLENDS

KINDS = ("class", "probabilities", "both")
PRECISIONS = ("auto", "32", "bf16")
#: When ``predict`` compiles a depthwise detail path (:mod:`.compiling`).
COMPILE_CHOICES = ("auto", "always", "never")
#: Pixels per forward pass on a CPU when no batch size is given: 4 windows of 512 px. A
#: batch's maps grow with its pixels: 8 windows of 512 px hold about 5 GiB at their peak (3.4
#: with 4), and a fresh process faults all of it in during its first batch. On 2 AMD EPYC
#: (Zen 3) cores in a VM that first batch took 21 s with 8 windows and 3.3 s with 4, and a
#: whole `predict` of the Zion scene 35-38 s against 21-22 s, with the same map; once warm, a
#: window costs the same in either (benchmarks/README.md). Smaller tiles take more windows
#: per batch, larger ones fewer (at least one).
CPU_BATCH_PIXELS = 4 * 512 * 512
#: Windows per forward pass on a GPU when none is given.
GPU_BATCH_SIZE = 8


def default_batch_size(device: torch.device, tile: int) -> int:
    """Windows per forward pass on ``device`` when none is given.

    Args:
        device: the device the model runs on.
        tile: the window side in px.

    Returns:
        On a CPU as many windows as :data:`CPU_BATCH_PIXELS` hold (4 of 512 px, 16 of
        256 px, at least 1); 8 on a GPU.
    """
    if device.type != "cpu":
        return GPU_BATCH_SIZE
    return max(1, CPU_BATCH_PIXELS // (tile * tile))


def check_settings(
    tile: int,
    overlap: float | None,
    batch_size: int | None,
    blend: str,
    tta: str,
    workers: int,
    precision: str,
) -> None:
    """Refuse :class:`ScenePredictor` settings out of range, before the model is touched.

    Raises:
        DualStreamError: the first wrong setting, named, with what it may be.
    """
    if tile <= 0 or tile % 32:
        raise DualStreamError(f"tile must be a positive multiple of 32, got {tile}")
    if precision not in PRECISIONS:
        raise DualStreamError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if workers < 0:
        raise DualStreamError(f"workers must be >= 0, got {workers}")
    if overlap is not None and not 0.0 <= overlap <= 0.9:
        raise DualStreamError(f"overlap must lie in [0, 0.9], got {overlap}")
    if blend not in BLENDS:
        raise DualStreamError(f"blend must be one of {BLENDS}, got {blend!r}")
    if tta not in TTAS:
        raise DualStreamError(f"tta must be one of {TTAS}, got {tta!r}")
    if batch_size is not None and batch_size < 1:
        raise DualStreamError(f"batch_size must be >= 1, got {batch_size}")
