"""Output grids and reading any raster onto one (CRS, transform, shape), in float64 geometry.

Every stream of a sample is defined by a :class:`Grid`; rasters are read onto it directly
(windowed read when the file already lies on the grid, a GDAL warp otherwise), so no
stream is ever materialised on another stream's grid first.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.warp import reproject
from rasterio.windows import Window

from ..errors import DualStreamError
from .remote import configure_gdal

# Offsets closer than this to a whole pixel are treated as aligned (float64 noise only).
_ALIGN_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Grid:
    """A raster grid: CRS, north-up affine transform (float64) and shape (height, width).

    Attributes:
        crs: the coordinate reference system.
        transform: the pixel-to-CRS affine transform.
        height: rows.
        width: columns.
    """

    crs: CRS
    transform: Affine
    height: int
    width: int

    @classmethod
    def from_bounds(
        cls, crs: CRS, xmin: float, ymax: float, xres: float, yres: float, height: int, width: int
    ) -> Grid:
        """Grid whose upper-left corner is (xmin, ymax) with pixel size (xres, yres).

        Args:
            crs: the coordinate reference system.
            xmin: the left edge.
            ymax: the top edge.
            xres: the pixel width.
            yres: the pixel height (positive).
            height: rows.
            width: columns.

        Returns:
            The grid.
        """
        return cls(crs, Affine(xres, 0.0, xmin, 0.0, -yres, ymax), height, width)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the grid's CRS."""
        t = self.transform
        return (t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (self.transform.a, -self.transform.e)

    def coarsened(self, factor: int) -> Grid:
        """A grid of pixels ``factor`` times larger from the same corner.

        Covering all of this one (its last row and column may reach beyond).
        """
        xres, yres = self.res
        xmin, _, _, ymax = self.bounds
        return Grid.from_bounds(
            self.crs,
            xmin,
            ymax,
            xres * factor,
            yres * factor,
            -(-self.height // factor),
            -(-self.width // factor),
        )

    def window(self, row: int, col: int, height: int, width: int) -> Grid:
        """The grid of ``height`` x ``width`` of these pixels from (``row``, ``col``).

        Offsets may be negative and the window may reach past this grid: the same CRS,
        pixel size and pixel alignment.
        """
        xres, yres = self.res
        xmin, _, _, ymax = self.bounds
        return Grid.from_bounds(
            self.crs, xmin + col * xres, ymax - row * yres, xres, yres, height, width
        )

    def padded(self, cells: int) -> Grid:
        """This grid with ``cells`` more pixels on every side."""
        return self.window(-cells, -cells, self.height + 2 * cells, self.width + 2 * cells)

    def scaled(self, factor: int) -> Grid:
        """The same bounds with pixels ``factor`` times larger (height and width divided)."""
        if self.height % factor or self.width % factor:
            raise ValueError(
                f"grid of {self.height}x{self.width} px is not divisible by the air grid "
                f"factor {factor}"
            )
        xres, yres = self.res
        xmin, _, _, ymax = self.bounds
        return Grid.from_bounds(
            self.crs,
            xmin,
            ymax,
            xres * factor,
            yres * factor,
            self.height // factor,
            self.width // factor,
        )


@functools.lru_cache(maxsize=256)
def _open_cached(path: str, pid: int, version: tuple[int, int]) -> DatasetReader:
    # Keyed by pid: a GDAL handle inherited through fork must not be shared by workers;
    # and by (mtime, size): a file rewritten in place (notebooks) is opened afresh.
    configure_gdal()
    return rasterio.open(path)


@atexit.register
def close_rasters() -> None:
    """Close cached handles (at exit, before logging is torn down, or on demand)."""
    _open_cached.cache_clear()


def open_raster(path: str) -> DatasetReader:
    """A cached read handle for ``path`` (a file or a VRT document), private to the process."""
    try:
        stat = os.stat(path)
        version = (stat.st_mtime_ns, stat.st_size)
    except (OSError, ValueError):  # a VRT document, not a file name
        version = (0, 0)
    return _open_cached(path, os.getpid(), version)


@functools.lru_cache(maxsize=64)
def _same_crs(a: str, b: str) -> bool:
    return bool(CRS.from_wkt(a) == CRS.from_wkt(b))


def same_crs(a: CRS, b: CRS) -> bool:
    """CRS equality, cached: comparing CRS objects goes through PROJ and is slow per sample."""
    return a is b or _same_crs(a.to_wkt(), b.to_wkt())


def aligned_window(src_transform: Affine, grid: Grid) -> Window | None:
    """The integer window of ``grid`` in a same-CRS source, or None if pixels do not align."""
    st, gt = src_transform, grid.transform
    if st.b or st.d or gt.b or gt.d:
        return None
    if abs(st.a - gt.a) > _ALIGN_TOLERANCE * abs(gt.a) or abs(st.e - gt.e) > _ALIGN_TOLERANCE * abs(
        gt.e
    ):
        return None
    col = (gt.c - st.c) / st.a
    row = (gt.f - st.f) / st.e
    if abs(col - round(col)) > _ALIGN_TOLERANCE or abs(row - round(row)) > _ALIGN_TOLERANCE:
        return None
    return Window(round(col), round(row), grid.width, grid.height)


def read_onto(
    src: DatasetReader,
    indexes: list[int],
    grid: Grid,
    out: np.ndarray,
    resampling: Resampling,
    nodata: float | None = None,
    first: bool = False,
    tolerance: float = 0.125,
) -> None:
    """Read ``indexes`` of ``src`` onto ``grid``, filling only pixels of ``out`` that are NaN.

    ``out`` is a float32 array (len(indexes), height, width); pixels the file does not cover,
    or that hold its nodata value, are NaN. ``first``: ``out`` holds nothing yet (it may be
    uninitialised), so the file is written whole, NaN where it has no data. ``tolerance``:
    the error (in pixels) GDAL's approximate transformer may make when warping; 0 computes
    every pixel's position exactly, so that a window reads exactly what the same cells of a
    whole scene read.
    """
    crs, transform = src.crs, src.transform
    nodata = src.nodata if nodata is None else nodata
    window = aligned_window(transform, grid) if same_crs(crs, grid.crs) else None
    if window is not None:
        # Same CRS, same pixel size, whole-pixel offset: a plain windowed read, no resampling.
        row0, col0 = max(window.row_off, 0), max(window.col_off, 0)
        row1 = min(window.row_off + window.height, src.height)
        col1 = min(window.col_off + window.width, src.width)
        covers = (row0, col0, row1, col1) == (
            window.row_off,
            window.col_off,
            window.row_off + window.height,
            window.col_off + window.width,
        )
        if first and not covers:
            out.fill(np.nan)
        if row1 <= row0 or col1 <= col0:
            return
        rows = slice(row0 - window.row_off, row1 - window.row_off)
        cols = slice(col0 - window.col_off, col1 - window.col_off)
        target = out[:, rows, cols]
        # GDAL converts to float32 while reading: no second pass over the data.
        direct = first and target.flags.c_contiguous
        values = target if direct else np.empty(target.shape, dtype=np.float32)
        src.read(indexes, window=Window(col0, row0, col1 - col0, row1 - row0), out=values)
        if nodata is not None and not np.isnan(nodata):
            values[values == np.float32(nodata)] = np.nan
        if first and not direct:
            target[...] = values
        elif not first:
            empty = np.isnan(target)
            target[empty] = values[empty]
        return

    warped = out if first else np.full(out.shape, np.nan, dtype=np.float32)
    reproject(
        source=rasterio.band(src, indexes),
        destination=warped,
        src_transform=transform,
        src_crs=crs,
        src_nodata=nodata,
        dst_transform=grid.transform,
        dst_crs=grid.crs,
        dst_nodata=np.nan,
        resampling=resampling,
        init_dest_nodata=True,
        tolerance=tolerance,
    )
    if not first:
        empty = np.isnan(out)
        out[empty] = warped[empty]


#: Longest side of a statistics read; GDAL serves it from overviews when the file has them.
STATS_SIDE = 512


def decimated_read(
    src: DatasetReader, indexes: list[int], nodata: float | None = None, side: int = STATS_SIDE
) -> np.ndarray:
    """Bands ``indexes`` read at most ``side`` px on the long edge: float32 (C, N), NaN = nodata."""
    scale = max(src.height, src.width) / side
    height, width = src.height, src.width
    if scale > 1:
        height, width = max(1, round(src.height / scale)), max(1, round(src.width / scale))
    try:
        data = src.read(
            indexes, out_shape=(len(indexes), height, width), resampling=Resampling.nearest
        )
    except rasterio.errors.RasterioError as error:
        # GDAL's own reason is the cause; rasterio's message points to it.
        reason = " ".join(str(error.__cause__ or error).split())
        raise DualStreamError(f"{src.name}: corrupt or unreadable raster ({reason})") from None
    values = data.astype(np.float32).reshape(len(indexes), -1)
    nodata = src.nodata if nodata is None else nodata
    if nodata is not None and not math.isnan(nodata):
        values[data.reshape(len(indexes), -1) == nodata] = np.nan
    return values
