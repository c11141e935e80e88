"""Terrain derived from an elevation source on the grid it is read onto.

Slope and the two components of aspect (Horn's 3 x 3 method, as ``gdaldem``), and the
topographic position (``relief``: how far a cell lies above or below its neighbours; ridges
against valleys).

Aspect is an angle, so it is given as its cosine and sine (``northness``, ``eastness``):
north-facing 350 and 10 degrees are neighbours there, not 340 apart. Each value is computed
from the 3 x 3 cells around it, read with a one-cell margin, so a window and a whole scene
give the same values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pyproj import CRS as ProjCRS

from ..grid import Grid

#: Metres per degree of latitude (mean), for grids in geographic coordinates.
METRES_PER_DEGREE = 111_320.0


def cell_size_m(grid: Grid) -> tuple[float, float]:
    """The grid's cell width and height in metres.

    At the grid's centre latitude when the CRS is geographic.
    """
    xres, yres = grid.res
    crs = ProjCRS.from_user_input(grid.crs.to_wkt())
    if crs.is_geographic:
        _, ymin, _, ymax = grid.bounds
        latitude = np.radians((ymin + ymax) / 2)
        return xres * METRES_PER_DEGREE * float(np.cos(latitude)), yres * METRES_PER_DEGREE
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return xres * unit, yres * unit


def margin_grid(grid: Grid) -> Grid:
    """``grid`` with one more cell on every side."""
    return grid.padded(1)


def terrain(elevation: np.ndarray, dx: float, dy: float, names: Sequence[str]) -> np.ndarray:
    """Derived quantities of an elevation grid read with a one-cell margin.

    Args:
        elevation: (H + 2, W + 2) elevation in metres, NaN where unknown; row 0 is north.
        dx: cell width in metres.
        dy: cell height in metres.
        names: among ``TERRAIN``: ``slope`` (degrees), ``northness`` (cos of aspect),
            ``eastness`` (sin of aspect); aspect is the direction the slope faces, clockwise
            from north; a flat cell has northness and eastness 0; ``relief`` (metres):
            the cell's elevation minus the mean of its 8 neighbours (the topographic
            position index, Weiss 2001): positive on ridges, negative in valleys, 0 on a
            plane.

    Returns:
        float32 (len(names), H, W), NaN where a 3 x 3 neighbourhood holds NaN.
    """
    z = elevation.astype(np.float64)
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    east = ((c + 2 * f + i) - (a + 2 * d + g)) / (8 * dx)  # dz/dx, x to the east
    north = ((a + 2 * b + c) - (g + 2 * h + i)) / (8 * dy)  # dz/dy, y to the north
    gradient = np.hypot(east, north)
    with np.errstate(invalid="ignore", divide="ignore"):
        flat = gradient == 0
        safe = np.where(flat, 1.0, gradient)
        # The slope faces downhill: the direction of minus the gradient.
        values = {
            "slope": np.degrees(np.arctan(gradient)),
            "northness": np.where(flat, 0.0, -north / safe),
            "eastness": np.where(flat, 0.0, -east / safe),
            "relief": z[1:-1, 1:-1] - (a + b + c + d + f + g + h + i) / 8,
        }
    return np.stack([values[name] for name in names]).astype(np.float32)
