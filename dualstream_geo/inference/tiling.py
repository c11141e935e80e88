"""Sliding windows over an output grid and their blending weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLENDS = ("hann", "linear", "none")


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
