"""Sliding windows over an output grid and their blending weights.

A window's prediction is worst near its edges: the model sees only half of the context
there. So each window keeps a context margin whose predictions are not used (weight 0),
and overlapping windows blend their kept centres.

Two layouts. A model with local context (:mod:`~dualstream_geo.models.locality`) gets
windows on a lattice of 32 px cells anchored in the scene's CRS (:func:`lattice_layout`):
every window starts on the lattice, including those reaching past the scene's edges, whose
pixels outside the scene are nodata. A pixel then sees the same neighbourhood, on the same
cell lattice, in every window that keeps it, whatever the tile, the overlap or a nodata
collar, and on every scene of that grid (another year, a larger extent): one map. Models
whose attention and normalisation span the window get :func:`scene_layout`: windows from
the scene's corner, the last one snapped to the edge, edge pixels kept (nothing else covers
them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from affine import Affine

from ..data.grid import Grid

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
    """Windows grouped by row offset, top to bottom.

    Each strip left to right. Every pixel is at least ``margin`` px inside some window (or
    on the scene edge): the stride is at most ``tile - 2 margin``.

    Args:
        height: the scene's rows.
        width: the scene's columns.
        tile: the window's side in pixels.
        overlap: the share of a window its neighbours overlap.
        margin: pixels of each window side that are context only.

    Returns:
        The windows, strip by strip.
    """
    stride = max(1, min(tile - round(tile * overlap), tile - 2 * margin))
    cols = window_starts(width, tile, stride)
    return [[Window(r, c, tile) for c in cols] for r in window_starts(height, tile, stride)]


#: The context margin of windows for a model with local context: what it sees of its
#: neighbourhood beyond a kept pixel (``experiments/invariance.py`` measures the effect).
LOCAL_MARGIN = 64


def default_overlap(local: bool) -> float:
    """The share of a window its neighbours overlap.

    None beyond the margins for a model with local context (every pixel gets the same value
    from any window keeping it: there is nothing to blend), 0.34 for window context (the
    Hann blend evens out the windows).
    """
    return 0.0 if local else 0.34


def default_margin(tile: int, local: bool = False) -> int:
    """The context margin of a window.

    :data:`LOCAL_MARGIN` for a model with local context (at most a quarter of the window),
    else an eighth of the window's side (64 px of 512).
    """
    return min(LOCAL_MARGIN, tile // 4) if local else tile // 8


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
    window: Window, height: int, width: int, blend: str, margin: int = 0, edges: bool = True
) -> np.ndarray:
    """(size, size) blending weights of ``window`` on a ``height`` x ``width`` output grid.

    Its ``margin`` is context-only (:func:`ramp`); ``edges``: kept where it lies on the scene's
    edge (windows that do not reach past the scene).

    Args:
        window: the window.
        height: the output's rows.
        width: the output's columns.
        blend: ``hann``, ``linear`` or ``none`` (:func:`ramp`).
        margin: pixels of each window side that are context only.
        edges: keep full weight where the window lies on the scene's edge.

    Returns:
        (size, size) float weights.
    """
    rows = ramp(
        window.size,
        blend,
        edges and window.row <= 0,
        edges and window.row + window.size >= height,
        margin,
    )
    cols = ramp(
        window.size,
        blend,
        edges and window.col <= 0,
        edges and window.col + window.size >= width,
        margin,
    )
    return rows[:, None] * cols[None, :]


@dataclass(frozen=True)
class Layout:
    """A scene's windows.

    ``tile`` px squares in ``strips`` (rows of windows, top to bottom, each left to right),
    ``margin`` px of each side context only. ``lattice``: windows on the CRS-anchored cell
    lattice, reaching past the scene's edges (:func:`lattice_layout`); otherwise inside the
    scene (:func:`scene_layout`).
    """

    tile: int
    margin: int
    strips: list[list[Window]]
    lattice: bool

    @property
    def windows(self) -> list[Window]:
        """Every window, strip by strip."""
        return [window for strip in self.strips for window in strip]

    def weights(self, window: Window, height: int, width: int, blend: str) -> np.ndarray:
        """(tile, tile) blending weights of ``window`` (:func:`window_weights`)."""
        return window_weights(window, height, width, blend, self.margin, not self.lattice)


def scene_layout(height: int, width: int, tile: int, overlap: float, margin: int) -> Layout:
    """Windows from the scene's corner (:func:`strips`).

    A tile larger than the scene is one window, its margin scaled with it.
    """
    side = min(tile, 32 * math.ceil(max(height, width) / 32))
    margin = margin if side == tile else margin * side // tile
    return Layout(side, margin, strips(height, width, side, overlap, margin), False)


def lattice_phase(transform: Affine, period: int) -> tuple[int, int]:
    """(row, column) offsets in [0, period) of the CRS-anchored lattice lines.

    The lines pass through whole multiples of ``period`` pixels in the grid's CRS: the same
    lattice for every grid of that pixel size and alignment, whatever its extent.
    """
    row = _nearest(transform.f / abs(transform.e)) % period
    col = -_nearest(transform.c / transform.a) % period
    return row, col


def _nearest(value: float) -> int:
    # Half-way values (grids whose corners lie at half pixels, as Landsat's do) always go
    # up, so grids a whole number of pixels apart stay that many lattice pixels apart
    # (Python's round() goes to the even neighbour, which would break that).
    return math.floor(round(value, 6) + 0.5)


def lattice_start(phase: int, margin: int, period: int) -> int:
    """The last lattice offset (``phase`` + k x ``period``) at or before ``-margin``.

    Where the first window starts, so that its kept part starts at or before the scene.
    """
    return phase - math.ceil((phase + margin) / period) * period


def lattice_starts(size: int, tile: int, margin: int, stride: int, first: int) -> list[int]:
    """Window offsets from ``first``, ``stride`` apart.

    Until a window's kept part reaches past ``size``.
    """
    starts = [first]
    while starts[-1] + tile - margin < size:
        starts.append(starts[-1] + stride)
    return starts


def lattice_layout(
    height: int,
    width: int,
    transform: Affine,
    tile: int,
    overlap: float,
    margin: int,
    period: int,
) -> Layout:
    """Windows on the lattice of ``period`` px cells anchored in the grid's CRS.

    (:func:`lattice_phase`), reaching past the scene's edges so that every pixel lies in
    some window's kept part, and a stride (a multiple of ``period``) at most ``tile`` x (1 -
    ``overlap``) and ``tile`` - 2 ``margin``. A tile larger than the scene needs is one
    window: the smallest lattice-aligned square keeping the whole scene.

    Raises:
        ValueError: ``tile`` not a multiple of ``period``, or no kept part.
    """
    if tile % period or tile - 2 * margin < period:
        raise ValueError(
            f"tile {tile} must be a multiple of {period} px keeping at least {period} px "
            f"inside its {margin} px margins"
        )
    phase_row, phase_col = lattice_phase(transform, period)
    row0 = lattice_start(phase_row, margin, period)
    col0 = lattice_start(phase_col, margin, period)
    one = period * math.ceil((max(height - row0, width - col0) + margin) / period)
    if one <= tile:
        return Layout(one, margin, [[Window(row0, col0, one)]], True)
    stride = max(period, min(tile - round(tile * overlap), tile - 2 * margin) // period * period)
    rows = lattice_starts(height, tile, margin, stride, row0)
    cols = lattice_starts(width, tile, margin, stride, col0)
    return Layout(tile, margin, [[Window(r, c, tile) for c in cols] for r in rows], True)


def grid_layout(
    grid: Grid, local: bool, tile: int, overlap: float, margin: int, period: int
) -> Layout:
    """Where the windows over ``grid`` lie for a model.

    On the CRS-anchored lattice of ``period`` px cells for a model with local context
    (:func:`lattice_layout`), from the scene's corner otherwise (:func:`scene_layout`).

    Args:
        grid: the scene's grid.
        local: the model has local context.
        tile: the window side in px.
        overlap: the share of a window its neighbours overlap.
        margin: context px at each window edge whose predictions are not used.
        period: the lattice's cell in px.

    Returns:
        The layout.
    """
    if local:
        return lattice_layout(
            grid.height, grid.width, grid.transform, tile, overlap, margin, period
        )
    return scene_layout(grid.height, grid.width, tile, overlap, margin)
