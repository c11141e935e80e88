"""Sliding windows over an output grid and their blending weights.

A window's prediction is worst near its edges: the model sees only half of the context
there, and its global parts (attention, the decoder's image pooling) see another window.
So each window keeps a context margin whose predictions are not used (weight 0, except on
the scene's edges), and overlapping windows blend their kept centres: the steps at window
borders come down to those inside windows (``benchmarks/bench_predict.py``).
"""

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


def strips(
    height: int, width: int, tile: int, overlap: float, margin: int = 0
) -> list[list[Window]]:
    """Windows grouped by row offset, top to bottom; each strip left to right. Every pixel
    is at least ``margin`` px inside some window (or on the scene edge): the stride is at
    most ``tile - 2 margin``."""
    stride = max(1, min(tile - round(tile * overlap), tile - 2 * margin))
    cols = window_starts(width, tile, stride)
    return [[Window(r, c, tile) for c in cols] for r in window_starts(height, tile, stride)]


def default_margin(tile: int) -> int:
    """The context margin of a window: an eighth of its side (64 px of a 512 px window)."""
    return tile // 8


def ramp(size: int, blend: str, flat_start: bool, flat_end: bool, margin: int = 0) -> np.ndarray:
    """1-D blending weights of a window side.

    The ``margin`` px at each end are context only (weight 0): the model sees them but
    their predictions, made with half a receptive field missing, are not used, unless that
    side lies on the scene edge (flat: nothing else covers it). Between the margins the
    ``blend`` ramp (Hann, linear, or none) spans the kept part.
    """
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    start = 0 if flat_start else margin
    end = size if flat_end else size - margin
    weights = np.zeros(size, dtype=np.float32)
    inner = end - start
    if blend == "none":
        ramp_values = np.ones(inner)
    else:
        position = (np.arange(inner) + 0.5) / inner
        ramp_values = (
            np.sin(np.pi * position) ** 2 if blend == "hann" else 1.0 - np.abs(2.0 * position - 1.0)
        )
    weights[start:end] = ramp_values
    half_start, half_end = start + inner // 2, start + inner // 2
    if flat_start:
        weights[:half_start] = 1.0
    if flat_end:
        weights[half_end:] = 1.0
    # Never exactly zero inside the kept part: a pixel only one window keeps still gets its
    # value there.
    weights[start:end] = np.maximum(weights[start:end], 1e-3)
    return weights


def window_weights(
    window: Window, height: int, width: int, blend: str, margin: int = 0
) -> np.ndarray:
    """(size, size) weights of ``window`` on a ``height`` x ``width`` output grid, its
    ``margin`` context-only (:func:`ramp`)."""
    rows = ramp(window.size, blend, window.row <= 0, window.row + window.size >= height, margin)
    cols = ramp(window.size, blend, window.col <= 0, window.col + window.size >= width, margin)
    return rows[:, None] * cols[None, :]
