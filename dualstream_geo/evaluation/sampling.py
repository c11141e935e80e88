"""Sample design for area estimation: a stratified random sample of a class map.

The strata are the map's classes (Olofsson et al. 2014, section 5.1.1). The sample size
of each stratum follows an allocation of ``total`` points:

* ``proportional``: in proportion to the strata's areas;
* ``equal``: the same number in every stratum;
* ``olofsson``: every stratum at least ``min_per_class`` points (rare classes would get
  too few for their user's accuracy otherwise), the rest in proportion to area.

Fractions are rounded by the largest-remainder method, so the sizes always sum to
``total``; a stratum never gets more points than it has pixels. Points are drawn without
replacement among the stratum's pixels (nodata never), seeded, at pixel centres, in two
passes over the map's blocks (memory flat in map size).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import rasterio
import shapely

from ..data.grid import Grid
from ..errors import DualStreamError
from .assess import blocks, open_prediction, pixel_area_ha

ALLOCATIONS = ("proportional", "equal", "olofsson")


def largest_remainder(shares: Mapping[int, float], total: int) -> dict[int, int]:
    """Integers proportional to ``shares`` that sum to ``total``.

    Hamilton's method: floors, then one more to the largest remainders; ties to the larger
    share, then the lower key.
    """
    weight = sum(shares.values())
    exact = {k: total * v / weight for k, v in shares.items()} if weight > 0 else {}
    out = {k: math.floor(v) for k, v in exact.items()}
    left = total - sum(out.values())
    order = sorted(exact, key=lambda k: (-(exact[k] - out[k]), -shares[k], k))
    for key in order[:left]:
        out[key] += 1
    return out


def allocate(
    areas: Mapping[int, float],
    pixels: Mapping[int, int],
    total: int,
    allocation: str = "olofsson",
    min_per_class: int = 50,
) -> dict[int, int]:
    """Points per stratum.

    Args:
        areas: each stratum's (map class's) area.
        pixels: each stratum's pixel count (its most points).
        total: the sample size.
        allocation: ``proportional``, ``equal`` or ``olofsson``.
        min_per_class: the floor of ``olofsson``.

    Returns:
        Points per stratum, summing to ``total``.

    Raises:
        DualStreamError: an unknown allocation, a total that cannot be met (more than the
            pixels, fewer than the floors).
    """
    if allocation not in ALLOCATIONS:
        raise DualStreamError(f"--allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    strata = [k for k in areas if pixels.get(k, 0) > 0]
    if not strata:
        raise DualStreamError("the map holds no class pixel to sample")
    if total < 1 or total > sum(pixels[k] for k in strata):
        raise DualStreamError(
            f"--total {total}: give 1 to {sum(pixels[k] for k in strata)} points (the map's "
            "labelled pixels)"
        )
    if allocation == "equal":
        sizes = largest_remainder({k: 1.0 for k in strata}, total)
    elif allocation == "proportional":
        sizes = largest_remainder({k: areas[k] for k in strata}, total)
    else:
        if min_per_class < 0:
            raise DualStreamError(f"--min-per-class must be >= 0, got {min_per_class}")
        floors = {k: min(min_per_class, pixels[k]) for k in strata}
        if sum(floors.values()) > total:
            raise DualStreamError(
                f"--total {total} is below {len(strata)} classes x --min-per-class "
                f"{min_per_class}; raise the total or lower the floor"
            )
        # Strata whose proportional share falls below their floor get the floor; the rest
        # share what is left in proportion to area (repeated until no share is below).
        fixed: dict[int, int] = {}
        while True:
            free = [k for k in strata if k not in fixed]
            left = total - sum(fixed.values())
            shares = largest_remainder({k: areas[k] for k in free}, left)
            below = [k for k in free if shares[k] < floors[k]]
            if not below:
                sizes = {**fixed, **shares}
                break
            fixed.update({k: floors[k] for k in below})
    # No stratum can give more points than it has pixels: the excess goes to the others.
    sizes = {k: v for k, v in sizes.items()}
    excess = sum(max(0, sizes[k] - pixels[k]) for k in strata)
    while excess:
        for k in strata:
            sizes[k] = min(sizes[k], pixels[k])
        room = {k: float(areas[k]) for k in strata if sizes[k] < pixels[k]}
        extra = largest_remainder(room, excess)
        for k, v in extra.items():
            sizes[k] += v
        excess = sum(max(0, sizes[k] - pixels[k]) for k in strata)
    return sizes


@dataclass(frozen=True)
class StrataAreas:
    """Each class's pixel count and area (ha) on a class map, nodata excluded."""

    pixels: dict[int, int]
    area_ha: dict[int, float]


def strata_areas(src: rasterio.io.DatasetReader) -> StrataAreas:
    """Pixel counts and areas of the values of a class map.

    Block by block; the pixel area varies by row in geographic coordinates.
    """
    grid = Grid(src.crs, src.transform, src.height, src.width)
    pixels: dict[int, int] = {}
    area: dict[int, float] = {}
    for window in blocks(src.height, src.width):
        values = src.read(1, window=window, masked=True)
        rows = np.arange(int(window.row_off), int(window.row_off + window.height))
        row_area = pixel_area_ha(grid, rows)[:, None]
        # getmaskarray: a raster without nodata reads with a scalar mask.
        weights = np.broadcast_to(row_area, values.shape)[~np.ma.getmaskarray(values)]
        found = values.compressed().astype(np.int64)
        for value in np.unique(found):
            keep = found == value
            pixels[int(value)] = pixels.get(int(value), 0) + int(keep.sum())
            area[int(value)] = area.get(int(value), 0.0) + float(weights[keep].sum())
    return StrataAreas(pixels, area)


#: More distinct values than this in a map without class names is a continuous raster.
MOST_CLASSES = 100


def check_strata(map_path: str | os.PathLike[str], strata: StrataAreas, named: bool) -> None:
    """Refuse strata that cannot be a map's classes.

    ``named``: the map carries its class names, as predict's do.

    Raises:
        DualStreamError: negative values (a nodata value the file does not declare), or
            more than :data:`MOST_CLASSES` distinct values in a map without class names (a
            continuous raster, such as a probability band).
    """
    negative = sorted(k for k in strata.pixels if k < 0)
    if negative:
        raise DualStreamError(
            f"{map_path}: holds negative values ({', '.join(map(str, negative[:3]))}), which "
            "are no class: declare the map's nodata (gdal_edit.py -a_nodata VALUE) or give a "
            "class map of values >= 0"
        )
    if not named and len(strata.pixels) > MOST_CLASSES:
        raise DualStreamError(
            f"{map_path}: {len(strata.pixels)} distinct values: a continuous raster, not a "
            "class map (predict --kind class writes one)"
        )


def draw_sample(
    map_path: str | os.PathLike[str],
    total: int,
    allocation: str = "olofsson",
    min_per_class: int = 50,
    seed: int = 0,
) -> gpd.GeoDataFrame:
    """A stratified random sample of the class map ``map_path``.

    Args:
        map_path: a single-band class raster (e.g. ``predict``'s output).
        total: the sample size.
        allocation: see :func:`allocate`.
        min_per_class: the floor of the ``olofsson`` allocation.
        seed: the random generator's seed (the same seed, the same points).

    Returns:
        One row per point, in the map's CRS, at pixel centres: ``id``, ``map_class`` (the
        map's value), ``map_name``, ``stratum`` (= ``map_class``), ``weight`` (the
        stratum's share of the map's area), ``stratum_pixels``, ``row``, ``col``, and an
        empty ``reference`` to fill.

    Raises:
        DualStreamError: an unreadable map or an allocation that cannot be met.
    """
    from .assess import class_names_of

    if seed < 0:
        raise DualStreamError(f"--seed must be >= 0, got {seed}")
    with open_prediction(map_path) as src:
        strata = strata_areas(src)
        try:
            names = class_names_of(src)
        except DualStreamError:
            names = []
        check_strata(map_path, strata, "class_names" in src.tags())
        sizes = allocate(strata.area_ha, strata.pixels, total, allocation, min_per_class)
        rng = np.random.default_rng(seed)
        # Ranks of the chosen pixels among each stratum's pixels in row-major order.
        chosen = {
            k: np.sort(rng.choice(strata.pixels[k], size=n, replace=False))
            for k, n in sorted(sizes.items())
            if n
        }
        rows, cols, classes = _pixels_of_ranks(src, chosen)
        xs, ys = rasterio.transform.xy(src.transform, rows, cols, offset="center")
        crs = src.crs
    total_area = sum(strata.area_ha.values())
    order = np.lexsort((np.asarray(cols), np.asarray(rows), np.asarray(classes)))
    frame = gpd.GeoDataFrame(
        {
            "id": np.arange(1, len(rows) + 1),
            "map_class": np.asarray(classes)[order],
            "map_name": [
                names[c] if 0 <= c < len(names) else str(c) for c in np.asarray(classes)[order]
            ],
            "stratum": np.asarray(classes)[order],
            "weight": [strata.area_ha[c] / total_area for c in np.asarray(classes)[order]],
            "stratum_pixels": [strata.pixels[c] for c in np.asarray(classes)[order]],
            "row": np.asarray(rows)[order],
            "col": np.asarray(cols)[order],
            "reference": [""] * len(rows),
        },
        geometry=shapely.points(np.asarray(xs)[order], np.asarray(ys)[order]),
        crs=crs,
    )
    return frame


def _pixels_of_ranks(
    src: rasterio.io.DatasetReader, chosen: dict[int, np.ndarray]
) -> tuple[list[int], list[int], list[int]]:
    """Rows, columns and classes of the chosen pixels.

    ``chosen`` holds, per class, sorted ranks among that class's valid pixels in row-major
    order (read block by block).
    """
    seen = dict.fromkeys(chosen, 0)
    rows: list[int] = []
    cols: list[int] = []
    classes: list[int] = []
    for window in blocks(src.height, src.width):
        values = src.read(1, window=window, masked=True)
        valid = ~np.ma.getmaskarray(values).ravel()
        for k, ranks in chosen.items():
            where = np.flatnonzero(valid & (values.data.ravel() == k))
            first = seen[k]
            picked = ranks[(ranks >= first) & (ranks < first + len(where))] - first
            seen[k] = first + len(where)
            r, c = np.divmod(where[picked], int(window.width))
            rows += (r + int(window.row_off)).tolist()
            cols += (c + int(window.col_off)).tolist()
            classes += [k] * len(picked)
    return rows, cols, classes
