"""Level 2 swaths (Sentinel-5P TROPOMI, GEMS) gridded onto a scene's aux grid.

A swath has no grid: each ground pixel has its own latitude and longitude (and, when the
product gives them, the four corners of its footprint). Each orbit is gridded onto the aux
grid of the scene:

* with footprints (Sentinel-5P's ``latitude_bounds`` / ``longitude_bounds``), a cell takes
  the mean of the valid ground pixels whose footprint covers the cell's centre;
* without them, a cell takes the valid ground pixel whose centre is nearest to its centre,
  if it lies within half a ground pixel's diagonal (cells outside the swath stay empty).

Ground pixels below the quality threshold (``qa_value`` under the producer's recommended
value for the variable, or a GEMS pixel whose ``FinalAlgorithmFlags`` is not 0) and fill
values are left out. Several orbits or days are composited (``mean`` or ``median`` of the
orbits with a value in the cell, optionally with their count as a channel). Cells no valid
pixel covers are NaN (the aux stream's nodata). Longitudes are unwrapped around the scene,
so a swath crossing the antimeridian grids as any other.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.errors import RasterioError

from ...errors import DualStreamError
from ..grid import Grid
from ..remote import redact
from .netcdf import driver_path, open_container, variables


@dataclass(frozen=True)
class SwathLayout:
    """Where a Level 2 product keeps its variables (paths inside the file)."""

    product: str
    group: str
    latitude: str
    longitude: str
    latitude_bounds: str | None
    longitude_bounds: str | None
    quality: str
    #: ``min``: a quality value (scaled to 0-1) of at least the threshold is good;
    #: ``zero``: a flag of 0 is good.
    quality_rule: str


LAYOUTS = {
    "s5p_l2": SwathLayout(
        "Sentinel-5P L2",
        "/PRODUCT",
        "/PRODUCT/latitude",
        "/PRODUCT/longitude",
        "/PRODUCT/SUPPORT_DATA/GEOLOCATIONS/latitude_bounds",
        "/PRODUCT/SUPPORT_DATA/GEOLOCATIONS/longitude_bounds",
        "/PRODUCT/qa_value",
        "min",
    ),
    "gems_l2": SwathLayout(
        "GEMS L2",
        "/Data Fields",
        "/Geolocation Fields/Latitude",
        "/Geolocation Fields/Longitude",
        None,
        None,
        "/Data Fields/FinalAlgorithmFlags",
        "zero",
    ),
}
#: The producer's recommended qa_value thresholds of Sentinel-5P products (their Product
#: Readme Files): NO2 0.75; CO, SO2, O3, HCHO, CH4 and the rest 0.5.
S5P_QA = {"nitrogendioxide_tropospheric_column": 0.75}
S5P_QA_DEFAULT = 0.5


def default_qa(layout: str, variable: str) -> float | None:
    """The recommended quality threshold of ``variable`` (None: the layout uses flags)."""
    if LAYOUTS[layout].quality_rule != "min":
        return None
    return S5P_QA.get(variable.split("/")[-1], S5P_QA_DEFAULT)


@dataclass(frozen=True)
class Swath:
    """One orbit as its (scanline, ground pixel) arrays.

    Values (NaN where not valid: fill, below the quality threshold), centres, and corners
    (scanline, ground pixel, 4) when the product gives them, as arrays.
    """

    values: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    latitude_bounds: np.ndarray | None
    longitude_bounds: np.ndarray | None

    def rows(self, keep: slice, cols: slice) -> Swath:
        """The part of scanlines ``keep`` and ground pixels ``cols``."""

        def part(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[keep, cols]

        return Swath(
            self.values[keep, cols],
            self.latitude[keep, cols],
            self.longitude[keep, cols],
            part(self.latitude_bounds),
            part(self.longitude_bounds),
        )


def _read(path: str, variable: str) -> np.ndarray:
    """A variable as a float64 array with the fill value as NaN and scale/offset applied.

    (scanlines, pixels) or (scanlines, pixels, corners).
    """
    try:
        # In file order: GDAL otherwise flips the rows of arrays it takes for grids stored
        # south first, the scanlines of a variable but the ground pixels of its corners.
        with (
            rasterio.Env(GDAL_NETCDF_BOTTOMUP="NO"),
            open_container(driver_path(path, variable)) as src,
        ):
            data = src.read().astype(np.float64)
            if src.nodata is not None:
                data[data == src.nodata] = np.nan
            data = data * (src.scales[0] or 1.0) + (src.offsets[0] or 0.0)
            corners = src.width == 4 and src.count > 1
    except RasterioError as error:
        raise DualStreamError(f"{redact(path)}: {variable} is unreadable ({error})") from None
    # GDAL gives the last two dimensions as rows and columns, the others as bands: a
    # (time, scanline, pixel) variable is (scanline, pixel); corners (time, scanline,
    # pixel, 4) come as bands = scanlines of (pixel, 4).
    return data if corners else data.reshape(-1, data.shape[-1]) if data.ndim == 3 else data


def read_swath(path: str, layout_name: str, variable: str, qa_min: float | None) -> Swath:
    """``variable`` of one Level 2 file, its invalid ground pixels NaN.

    Raises:
        DualStreamError: a file of another product (no such variable, the ones it has
            listed), no geolocation, or an unreadable file.
    """
    layout = LAYOUTS[layout_name]
    names = variables(path)
    full = variable if variable.startswith("/") else f"{layout.group}/{variable}"
    if full not in names:
        title = ""
        try:
            with open_container(path) as src:
                title = src.tags().get("NC_GLOBAL#title", "")
        except RasterioError:
            pass
        held = ", ".join(n for n in names if n.startswith(layout.group + "/")) or "none"
        raise DualStreamError(
            f"{redact(path)}: no {full} in this file{f' ({title})' if title else ''}: not the "
            f"{layout.product} product the source expects (its {layout.group} holds: {held})"
        )
    for needed in (layout.latitude, layout.longitude):
        if needed not in names:
            raise DualStreamError(f"{redact(path)}: no geolocation ({needed} is missing)")
    values = _read(path, full)
    latitude, longitude = _read(path, layout.latitude), _read(path, layout.longitude)
    good = np.isfinite(values) & np.isfinite(latitude) & np.isfinite(longitude)
    if layout.quality in names:
        quality = _read(path, layout.quality)
        if layout.quality_rule == "min":
            # qa_value is uint8 x a float32 0.01: 50 reads as 0.49999998, and is 0.5.
            good &= quality >= (qa_min if qa_min is not None else S5P_QA_DEFAULT) - 1e-6
        else:
            good &= quality == 0
    bounds = None
    if layout.latitude_bounds in names and layout.longitude_bounds in names:
        bounds = (
            _read(path, layout.latitude_bounds),  # type: ignore[arg-type]
            _read(path, layout.longitude_bounds),  # type: ignore[arg-type]
        )
    return Swath(
        values=np.where(good, values, np.nan),
        latitude=latitude,
        longitude=longitude,
        latitude_bounds=bounds[0] if bounds else None,
        longitude_bounds=bounds[1] if bounds else None,
    )


def _centre_lon(grid: Grid) -> float:
    xmin, ymin, xmax, ymax = grid.bounds
    to_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    lon, _ = to_lonlat.transform((xmin + xmax) / 2, (ymin + ymax) / 2)
    return float(lon)


def _unwrap(lon: np.ndarray, centre: float) -> np.ndarray:
    """Longitudes within 180 degrees of ``centre`` (continuous across the antimeridian)."""
    return centre + (lon - centre + 180.0) % 360.0 - 180.0


def cell_centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """X and y of every cell centre (height, width) in the grid's CRS."""
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    xs, ys = grid.transform * (cols, rows)
    return np.asarray(xs), np.asarray(ys)


def grid_orbit(swath: Swath, grid: Grid) -> np.ndarray:
    """One orbit on ``grid`` (see the module docstring).

    Float64 (height, width), NaN where no valid ground pixel covers a cell.
    """
    out = np.full((grid.height, grid.width), np.nan)
    centre = _centre_lon(grid)
    swath = _near(swath, grid, centre)
    valid = np.isfinite(swath.values)
    if not valid.any():
        return out
    to_grid = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    xs, ys = cell_centres(grid)
    points = shapely.points(xs.ravel(), ys.ravel())
    xmin, ymin, xmax, ymax = grid.bounds
    scene = shapely.box(xmin, ymin, xmax, ymax)
    values = swath.values[valid]
    if swath.latitude_bounds is not None and swath.longitude_bounds is not None:
        lon = _unwrap(swath.longitude_bounds[valid], centre)
        x, y = to_grid.transform(lon, swath.latitude_bounds[valid])
        corners = np.stack([np.asarray(x), np.asarray(y)], axis=-1)  # (N, 4, 2)
        # The convex hull of the four corners: a footprint whatever order they come in.
        footprints = shapely.convex_hull(shapely.multipoints(corners))
        near = shapely.intersects(footprints, scene)
        footprints, values = footprints[near], values[near]
        if not len(values):
            return out
        # A centre on the edge between two footprints belongs to both (covered, not only
        # contained): no cell falls between pixels.
        pixel, cell = shapely.STRtree(points).query(footprints, predicate="intersects")
        total = np.zeros(points.size)
        count = np.zeros(points.size)
        np.add.at(total, cell, values[pixel])
        np.add.at(count, cell, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.ravel()[:] = np.where(count > 0, total / count, np.nan)
        return out
    lon = _unwrap(swath.longitude, centre)
    x, y = (np.asarray(v) for v in to_grid.transform(lon, swath.latitude))
    reach = _half_diagonal(x, y)
    tree = shapely.STRtree(shapely.points(x[valid], y[valid]))
    cell, pixel = tree.query_nearest(points, max_distance=reach, all_matches=False)
    out.ravel()[cell] = values[pixel]
    return out


def _near(swath: Swath, grid: Grid, centre: float, margin: float = 1.0) -> Swath:
    """The scanlines and ground pixels near the grid's latitude / longitude box.

    The scanlines and ground pixels with a centre within ``margin`` degrees of the grid's
    latitude / longitude box (a ground pixel is far smaller): orbits span continents, scenes
    rarely; the rest is never projected.
    """
    to_lonlat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    xmin, ymin, xmax, ymax = grid.bounds
    xs, ys = np.linspace(xmin, xmax, 9), np.linspace(ymin, ymax, 9)
    edge_x = np.concatenate([xs, xs, np.full(9, xmin), np.full(9, xmax)])
    edge_y = np.concatenate([np.full(9, ymin), np.full(9, ymax), ys, ys])
    lon, lat = (np.asarray(v) for v in to_lonlat.transform(edge_x, edge_y))
    lon = _unwrap(lon, centre)
    pixel_lon = _unwrap(swath.longitude, centre)
    keep = (
        (swath.latitude >= lat.min() - margin)
        & (swath.latitude <= lat.max() + margin)
        & (pixel_lon >= lon.min() - margin)
        & (pixel_lon <= lon.max() + margin)
    )
    rows, cols = np.flatnonzero(keep.any(1)), np.flatnonzero(keep.any(0))
    if not len(rows):
        return swath.rows(slice(0, 0), slice(None))
    return swath.rows(slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


def _half_diagonal(x: np.ndarray, y: np.ndarray) -> float:
    """Half the diagonal of a typical ground pixel.

    The median centre spacing across track (along a scanline) and along track, in the grid's
    units.
    """

    def spacing(dx: np.ndarray, dy: np.ndarray) -> float:
        d = np.hypot(dx, dy)
        d = d[np.isfinite(d) & (d > 0)]
        return float(np.median(d)) if len(d) else 0.0

    across = spacing(np.diff(x, axis=1), np.diff(y, axis=1)) if x.shape[1] > 1 else 0.0
    along = spacing(np.diff(x, axis=0), np.diff(y, axis=0)) if x.shape[0] > 1 else across
    return 0.5 * float(np.hypot(across, along or across))


def grid_swaths(
    files: Sequence[str],
    grid: Grid,
    layout: str,
    variable: str,
    qa_min: float | None = None,
    composite: str = "mean",
    count: bool = False,
) -> np.ndarray:
    """Several orbits (files) gridded and composited onto ``grid``.

    Returns:
        float32 (1 or 2, height, width): the composite, then (``count``) the number of
        orbits with a value in each cell; NaN where no orbit has one.

    Raises:
        DualStreamError: a bad file, or no valid ground pixel of any file on the grid.
    """
    qa = qa_min if qa_min is not None else default_qa(layout, variable)
    orbits = np.stack([grid_orbit(read_swath(f, layout, variable, qa), grid) for f in files])
    filled = np.isfinite(orbits)
    if not filled.any():
        raise DualStreamError(
            f"no valid ground pixel of {', '.join(redact(f) for f in files[:3])}"
            f"{' ...' if len(files) > 3 else ''} lies over the scene (bounds "
            f"{', '.join(f'{v:.6g}' for v in grid.bounds)} in {grid.crs.to_string()}): the "
            "swath does not reach it, or its pixels there are below the quality threshold"
        )
    with warnings.catch_warnings():  # cells without any orbit stay NaN, silently
        warnings.simplefilter("ignore", RuntimeWarning)
        value = np.nanmedian(orbits, 0) if composite == "median" else np.nanmean(orbits, 0)
    channels = [value]
    if count:
        channels.append(np.where(filled.any(0), filled.sum(0), np.nan))
    return np.stack(channels).astype(np.float32)
