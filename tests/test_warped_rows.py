"""Rows warped once: overlapping windows read top to bottom share their aux sources' exact
warps, and each window reads bit for bit what its own warp gives."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from rasterio.crs import CRS

from dualstream_geo.data import AuxRaster, DualStreamGeoDataset, SatelliteImage
from dualstream_geo.data.grid import Grid
from dualstream_geo.data.warped_rows import WarpedRows
from dualstream_geo.inference.reading import scene_grid, window_grid, windows_extent
from dualstream_geo.inference.tiling import Window

from .conftest import ZION


def zion_dataset() -> DualStreamGeoDataset:
    """The Zion crop (EPSG:32612) with the SRTM crop (EPSG:4326) and its terrain as aux."""
    image = SatelliteImage(ZION, band_files=("_b2", "_b3", "_b4", "_b5"), nodata=65535)
    dem = AuxRaster(ZION / "srtm.tif", name="elevation", derive=["slope", "eastness"])
    return DualStreamGeoDataset(image, [dem], aux_scale=4, aux_fill=np.nan)


def test_windows_read_from_rows_warped_once_equal_their_own_warps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Windows of 64 px every 48 px, reaching past the crop's edges, strip by strip: the
    aux stream (elevation and terrain from a DEM in another CRS) equals each window's own
    warp bit for bit, and the rows are warped once: fewer pixels than the windows hold."""
    dataset = zion_dataset()
    grid = scene_grid(dataset.image)
    assert (grid.height, grid.width) == (192, 192)
    windows = [Window(row, col, 64) for row in range(-16, 176, 48) for col in range(-16, 176, 48)]
    alone = [dataset.read(window_grid(grid, w))["air"].numpy() for w in windows]
    # Off the aux pixels (2 image px from the windows' lattice of aux cells).
    shifted = window_grid(grid, Window(130, 2, 64))
    shifted_alone = dataset.read(shifted)["air"].numpy()

    source = dataset.air[0]
    warped: list[int] = []
    warp_files = source.warp_files

    def counted(*args: Any) -> np.ndarray:
        values = warp_files(*args)
        warped.append(values.shape[1] * values.shape[2])
        return values

    monkeypatch.setattr(source, "warp_files", counted)
    with dataset.aux_rows_warped_once(windows_extent(grid, windows)):
        shared = [dataset.read(window_grid(grid, w))["air"].numpy() for w in windows]
        strips = len(warped)
        # Off the rows' pixels, or above rows let go: each warps by itself.
        shifted_shared = dataset.read(shifted)["air"].numpy()
        above = dataset.read(window_grid(grid, windows[0]))["air"].numpy()
    assert source.warped_rows is None
    for own, held in zip(alone, shared, strict=True):
        assert own.shape == (3, 16, 16) and np.isfinite(own).any()
        assert np.array_equal(own, held, equal_nan=True)
    assert np.array_equal(above, alone[0], equal_nan=True)
    assert np.array_equal(shifted_shared, shifted_alone, equal_nan=True)
    # One warp per strip, of the rows below the last strip's (the terrain's margin included);
    # the two reads outside the rows warped alone.
    assert strips == 4 and len(warped) == 6
    assert sum(warped[:strips]) < 0.6 * len(windows) * (16 + 2) ** 2


def test_warped_rows_serve_reads_going_down_and_refuse_the_rest() -> None:
    """A warp that writes each pixel's centre: the rows serve aligned reads inside the extent,
    going down, and give None off its pixels, past it, or above rows let go."""
    crs = CRS.from_epsg(32612)
    extent = Grid.from_bounds(crs, 1000.0, 9000.0, 10.0, 10.0, 40, 30)
    calls: list[tuple[int, int]] = []

    def centres(grid: Grid) -> np.ndarray:
        cols, rows = np.meshgrid(np.arange(grid.width), np.arange(grid.height))
        t = grid.transform
        return np.stack([t.c + t.a * (cols + 0.5), t.f + t.e * (rows + 0.5)]).astype(np.float32)

    def counted(grid: Grid) -> np.ndarray:
        calls.append((grid.height, grid.width))
        return centres(grid)

    rows = WarpedRows(extent, counted)

    def part(row: int, col: int, height: int, width: int) -> Grid:
        return Grid.from_bounds(
            crs, 1000.0 + 10 * col, 9000.0 - 10 * row, 10.0, 10.0, height, width
        )

    for row, col in ((0, 0), (0, 10), (8, 4), (20, 0), (30, 20)):
        grid = part(row, col, 10, 10)
        assert np.array_equal(rows.read(grid), centres(grid))
    # Rows 0-10 for (0, 0) and (0, 10); 10-18 below them; 20-30 after a gap; then 30-40.
    assert calls == [(10, 30), (8, 30), (10, 30), (10, 30)]
    assert rows.read(part(25, 0, 10, 10)) is None  # above rows let go
    assert rows.read(part(31, 25, 5, 10)) is None  # past the right edge
    assert rows.read(part(-1, 0, 5, 5)) is None  # above the extent
    shifted = Grid.from_bounds(crs, 1005.0, 8700.0, 10.0, 10.0, 5, 5)
    assert rows.read(shifted) is None  # half a pixel off
    coarse = Grid.from_bounds(crs, 1000.0, 8700.0, 20.0, 20.0, 5, 5)
    assert rows.read(coarse) is None  # other pixels
