"""What a scene predictor may be asked: output kinds, precisions, and its settings' checks."""

from __future__ import annotations

from ..errors import DualStreamError
from ..models.tta import TTAS
from .tiling import BLENDS

KINDS = ("class", "probabilities", "both")
PRECISIONS = ("auto", "32", "bf16")
#: When ``predict`` compiles a depthwise detail path (:mod:`.compiling`).
COMPILE_CHOICES = ("auto", "always", "never")


def check_settings(
    tile: int,
    overlap: float | None,
    batch_size: int,
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
    if batch_size < 1:
        raise DualStreamError(f"batch_size must be >= 1, got {batch_size}")
