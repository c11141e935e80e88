"""Sliding windows over an output grid, blending weights and test-time augmentation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

BLENDS = ("hann", "linear", "none")
TTAS = ("none", "flip", "d4")


def window_starts(size: int, tile: int, stride: int) -> list[int]:
    """Offsets of windows of ``tile`` px every ``stride`` px; the last one snaps to the edge.

    A scene smaller than a tile gets one window at 0 (it is padded with nodata).
    """
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return sorted(set(starts))


@dataclass(frozen=True)
class Window:
    """A tile on the output grid: pixel offsets and size (always tile x tile)."""

    row: int
    col: int
    size: int


def strips(height: int, width: int, tile: int, overlap: float) -> list[list[Window]]:
    """Windows grouped by row offset, top to bottom; each strip left to right."""
    stride = max(1, tile - round(tile * overlap))
    cols = window_starts(width, tile, stride)
    return [[Window(r, c, tile) for c in cols] for r in window_starts(height, tile, stride)]


def ramp(size: int, blend: str, flat_start: bool, flat_end: bool) -> np.ndarray:
    """1-D blending weights; sides lying on the scene edge are flat (no ramp there)."""
    if blend == "none":
        return np.ones(size, dtype=np.float32)
    position = (np.arange(size) + 0.5) / size
    if blend == "hann":
        weights = np.sin(np.pi * position) ** 2
    elif blend == "linear":
        weights = 1.0 - np.abs(2.0 * position - 1.0)
    else:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    half = size // 2
    if flat_start:
        weights[:half] = 1.0
    if flat_end:
        weights[half:] = 1.0
    # Never exactly zero: a pixel covered by one window only must still get its value.
    return np.maximum(weights, 1e-3).astype(np.float32)


def window_weights(window: Window, height: int, width: int, blend: str) -> np.ndarray:
    """(size, size) weights of ``window`` on a ``height`` x ``width`` output grid."""
    rows = ramp(window.size, blend, window.row <= 0, window.row + window.size >= height)
    cols = ramp(window.size, blend, window.col <= 0, window.col + window.size >= width)
    return rows[:, None] * cols[None, :]


def _d4(k: int, flip: bool) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]:
    def forward(x: Tensor) -> Tensor:
        x = torch.flip(x, dims=(-1,)) if flip else x
        return torch.rot90(x, k, dims=(-2, -1))

    def inverse(x: Tensor) -> Tensor:
        x = torch.rot90(x, -k, dims=(-2, -1))
        return torch.flip(x, dims=(-1,)) if flip else x

    return forward, inverse


def tta_transforms(tta: str) -> list[tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]]:
    """(forward, inverse) pairs on (..., H, W) tensors: identity; + flips; or all of D4."""
    if tta == "none":
        return [_d4(0, False)]
    if tta == "flip":
        return [_d4(0, False), _d4(0, True), _d4(2, True)]  # identity, horizontal, vertical
    if tta == "d4":
        return [_d4(k, flip) for k in range(4) for flip in (False, True)]
    raise ValueError(f"tta must be one of {TTAS}, got {tta!r}")
