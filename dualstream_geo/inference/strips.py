"""The blended sums of a strip of windows, written out row by row as the windows pass.

Windows are computed strip by strip, top to bottom. :class:`StripSums` holds, for the rows
one window tall below ``top``, the weighted probabilities and the weights of every window
computed so far; once the windows start below a row, that row's sums are final and are
written (:meth:`StripSums.flush`). Memory is one window tall, whatever the scene's height.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class StripSums:
    """Weighted probability sums and weights of the rows ``top`` to ``top + tile``.

    Weighted probability sums (classes, tile, span) and weights (tile, span) of the rows
    ``top`` to ``top + tile``.

    Args:
        classes: the number of classes.
        tile: the window side (px).
        left: the scene column of the buffers' first column (the first window's, which on
            a lattice may lie left of the scene).
        span: the buffers' width (px), at least the scene's.
        width: the scene's width (px).
        top: the scene row of the buffers' first row.
        rows_done: rows already written (a resumed run): never written again.
        end: the row to stop writing at.
        write: receives (first row, scores (classes, rows, width), weights (rows, width)) of
            final rows.
    """

    def __init__(
        self,
        classes: int,
        tile: int,
        left: int,
        span: int,
        width: int,
        top: int,
        rows_done: int,
        end: int,
        write: Callable[[int, np.ndarray, np.ndarray], None],
    ) -> None:
        self.scores = np.zeros((classes, tile, span), dtype=np.float32)
        self.weights = np.zeros((tile, span), dtype=np.float32)
        self.tile, self.left, self.top = tile, left, top
        self.rows_done, self.end = rows_done, end
        self.scene = slice(-left, -left + width)
        self.write = write

    def add(self, row: int, col: int, probabilities: np.ndarray, weights: np.ndarray) -> None:
        """Add a window's probabilities with its blending ``weights``.

        Probabilities (classes, tile, tile), weights (tile, tile); the window's top ``row``
        must lie in the buffers (call :meth:`flush` first).
        """
        cols = slice(col - self.left, col - self.left + self.tile)
        rows = slice(row - self.top, row - self.top + self.tile)
        self.scores[:, rows, cols] += probabilities * weights
        self.weights[rows, cols] += weights

    def flush(self, until: int) -> None:
        """Write the rows above ``until`` that are not written yet.

        Write the rows above ``until`` (final: no window left starts above it) that are not
        written yet, and move the buffers down to start at ``until``.
        """
        tile, top = self.tile, self.top
        stop = min(until, self.end)
        if stop > top:
            first = max(top, self.rows_done) - top
            count = stop - top
            if count > first:
                self.write(
                    top + first,
                    self.scores[:, first:count, self.scene],
                    self.weights[first:count, self.scene],
                )
                self.rows_done = stop
        shift = min(until - top, tile)
        self.scores[:, : tile - shift] = self.scores[:, shift:]
        self.scores[:, tile - shift :] = 0
        self.weights[: tile - shift] = self.weights[shift:]
        self.weights[tile - shift :] = 0
        self.top = until
