"""Rows warped once: a source's exact warp across a run of windows, kept row band by band.

A scene's windows overlap (in Zion's, each aux pixel lies in 1.5 windows on average), and an exact
warp (no approximate transformer) costs PROJ's full transformation for every pixel: most of
what reading a window costs. Windows are read strip by strip, top to bottom, so the rows a
strip needs are warped once across the whole run's width, kept while the windows below still
need them, and each window takes its slice.

An exact warp computes each pixel from that pixel's own position alone, so a slice of a wide
warp equals, bit for bit, the same window warped by itself (the premise of
:mod:`~dualstream_geo.data.warp_cache`, tested there and in ``tests/test_warped_rows.py``).
An approximate transformer interpolates positions across each chunk it warps, so sources
that warp approximately never use this.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .grid import Grid, aligned_window, same_crs


class WarpedRows:
    """One source's values on ``extent``, warped a band of rows at a time as reads go down.

    Args:
        extent: the grid every read lies on (same CRS, pixel size and pixel alignment): the
            run's windows on the source's read grid, with whatever margin the source reads.
        warp: the source's exact warp of its files under a grid onto that grid: float32
            (channels, height, width), NaN where no file has data.

    A read inside ``extent`` at or below the last read's first row is served from the kept
    rows, warping the rows below them it lacks; any other read returns None (the caller warps
    it by itself).
    """

    def __init__(self, extent: Grid, warp: Callable[[Grid], np.ndarray]) -> None:
        self.extent, self.warp = extent, warp
        self.top = 0
        self.values: np.ndarray | None = None

    @property
    def bottom(self) -> int:
        """The row below the kept rows (``top`` while none are kept)."""
        return self.top + (0 if self.values is None else self.values.shape[1])

    def read(self, grid: Grid) -> np.ndarray | None:
        """The values on ``grid`` (float32 (channels, height, width)), or None if not held.

        Args:
            grid: the grid to read onto.

        Returns:
            A new array, or None when ``grid`` is not on ``extent``'s pixels, reaches past
            it, or starts above rows already let go.
        """
        if not same_crs(grid.crs, self.extent.crs):
            return None
        window = aligned_window(self.extent.transform, grid)
        if window is None:
            return None
        row0, col0 = window.row_off, window.col_off
        row1, col1 = row0 + grid.height, col0 + grid.width
        if min(row0, col0) < 0 or col1 > self.extent.width or row1 > self.extent.height:
            return None
        if self.values is not None and row0 < self.top:
            return None  # let go already: the reads went further down
        if self.values is None or row0 > self.bottom:
            self.values, self.top = self._rows(row0, row1), row0
        elif row1 > self.bottom:
            # The rows above this read are let go: reads only go down.
            kept = self.values[:, row0 - self.top :]
            self.values, self.top = np.concatenate([kept, self._rows(self.bottom, row1)], 1), row0
        return self.values[:, row0 - self.top : row1 - self.top, col0:col1].copy()

    def _rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` to ``stop`` of ``extent``, warped."""
        return self.warp(self.extent.window(start, 0, stop - start, self.extent.width))
