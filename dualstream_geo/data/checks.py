"""Checks that bad data is never accepted silently, shared by training and prediction.

Each reads every file decimated (at most ``STATS_SIDE`` px a side, from overviews when the
file has them), so they cost about as much as the band statistics.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import shapely
from rasterio.enums import Resampling
from rasterio.features import geometry_mask

from ..errors import DualStreamError
from .auxiliary.terrain import cell_size_m
from .grid import STATS_SIDE, Grid, decimated_read, open_raster
from .join import DualStreamGeoDataset
from .labels import scan_labels
from .normalize import BandStats
from .sources import GeoRaster

#: Share of nodata/NaN air values above which a file is worth a warning.
FILL_WARNING = 0.001

#: An aux grid this many times coarser than an aux source's own pixels loses detail that
#: is worth a warning (a 90 m DEM on the 240 m grid of 30 m imagery: 2.7).
DETAIL_WARNING = 2.0


def check_air_values(source: GeoRaster) -> None:
    """Every air file must hold valid values.

    Partly empty files are filled, with a warning per file giving the share.

    Raises:
        DualStreamError: a file with no valid value in some band (all NaN or nodata).
    """
    for entry in source.index.filepath:
        for path, indexes in source.channel_files(entry):
            raw = decimated_read(open_raster(source.resolve(path)), indexes, source.nodata)
            empty = np.isnan(source.convert(raw))
            if empty.all(axis=1).any():
                band = indexes[int(np.flatnonzero(empty.all(axis=1))[0])]
                what = " after its log transform" if not np.isnan(raw).all(axis=1).any() else ""
                raise DualStreamError(
                    f"{path}: band {band} of {source.label} holds no valid value{what} (all "
                    "NaN or nodata); fix the file or leave it out"
                )
            share = float(empty.mean())
            if share > FILL_WARNING:
                warnings.warn(
                    f"{path}: {share:.1%} of the values are NaN or nodata; they are filled "
                    "(band mean, or zeros under the original scaling)",
                    stacklevel=2,
                )


def pixel_size_m(source: GeoRaster) -> float | None:
    """The longer side, in metres, of the pixels of ``source``'s first file.

    None when the file has no georeferencing of its own.
    """
    entry = next(iter(source.index.filepath), None)
    if entry is None:
        return None
    path = source.channel_files(entry)[0][0]
    src = open_raster(source.resolve(path))
    if src.crs is None:
        return None
    return max(cell_size_m(Grid(src.crs, src.transform, src.height, src.width)))


def check_aux_detail(image: GeoRaster, air: list[GeoRaster], aux_scale: int) -> None:
    """Warn when the aux grid is much coarser than an aux source's own pixels.

    Warn when the aux grid (the image's pixels times ``aux_scale``) is much coarser than an
    aux source's own pixels: the dual stream then averages away detail that a finer aux grid
    (``data.aux_scale``, down to 1 in the lite preset) or early fusion (``data.aux_fusion:
    early``) keeps. On Zion, a 90 m DEM under 30 m Landsat averaged onto 240 m cost early
    fusion 0.012 accuracy, and the dual stream was level with early fusion only from 1/2 (60
    m; experiments/README.md); air-quality products (km pixels) are coarser than the grid.
    """
    image_cell = pixel_size_m(image)
    if image_cell is None:
        return
    aux_cell = image_cell * aux_scale
    for source in air:
        cell = pixel_size_m(source)
        if cell is not None and aux_cell >= DETAIL_WARNING * cell:
            # The coarsest power-of-two grid not coarser than the source's pixels.
            finer = 2 ** max(0, int(math.log2(cell / image_cell)))
            warnings.warn(
                f"{source.label}: its pixels ({cell:.0f} m) are {aux_cell / cell:.1f}x finer "
                f"than the aux grid ({aux_cell:.0f} m, 1/{aux_scale} of the image), which "
                f"averages that detail away; data.aux_scale {finer} (lite preset) keeps it",
                stacklevel=2,
            )


def check_image_values(source: GeoRaster) -> None:
    """The image must hold valid pixels.

    Raises:
        DualStreamError: every file of the image source is entirely nodata.
    """
    for entry in source.index.filepath:
        path, indexes = source.channel_files(entry)[0]
        values = decimated_read(open_raster(source.resolve(path)), indexes[:1], source.nodata)
        if not np.isnan(values).all():
            return
    raise DualStreamError(
        f"{type(source).__name__}: {source.index.filepath.iloc[0]}"
        f"{' and the other files' if len(source.index) > 1 else ''} hold no valid pixel "
        "(all nodata)"
    )


def _region_grid(dataset: DualStreamGeoDataset, side: int) -> tuple[Any, Grid, Any]:
    """(region, a grid over it of at most ``side`` px a side, the index entries there)."""
    region = dataset.index.geometry.union_all()
    xmin, ymin, xmax, ymax = region.bounds
    res = dataset.res[0]
    step = max(1.0, math.ceil(max(xmax - xmin, ymax - ymin) / res / side))
    width = max(1, math.ceil((xmax - xmin) / (res * step)))
    height = max(1, math.ceil((ymax - ymin) / (res * step)))
    grid = Grid.from_bounds(dataset.grid_crs, xmin, ymax, res * step, res * step, height, width)  # type: ignore[attr-defined]
    return region, grid, shapely.box(*grid.bounds)


def has_labels(dataset: DualStreamGeoDataset, side: int = STATS_SIDE) -> bool:
    """True when a dataset's mask has a labelled pixel inside its index.

    And inside ``label_roi``; scanned on a grid of at most ``side`` px a side.
    """
    if dataset.mask is None:
        return True
    return bool((scan_labels(dataset, side) != dataset.mask.ignore_index).any())


def check_air_over_region(
    dataset: DualStreamGeoDataset, what: str = "the scene", side: int = 512
) -> None:
    """Air must hold valid values where it is used.

    Over ``dataset``'s own region (a scene, or a split's cells), not only somewhere in its
    files.

    Raises:
        DualStreamError: an air source has no valid value there (in some band).
    """
    region, grid, box = _region_grid(dataset, side)
    inside = ~geometry_mask([region], (grid.height, grid.width), grid.transform)
    for i, source in enumerate(dataset.air, start=1):
        files = dataset._files(i, box)  # type: ignore[attr-defined]
        if not files:
            continue  # no overlap at all: the join reports it
        values = source.read(files, grid, Resampling.nearest)[:, inside]
        empty = np.isnan(values)
        if empty.all(axis=1).any():
            channel = int(np.flatnonzero(empty.all(axis=1))[0])
            names = getattr(source, "all_bands", ())
            name = f" ({names[channel]})" if channel < len(names) else ""
            raise DualStreamError(
                f"{files[0]}: {source.label} channel {channel + 1}{name} holds no valid value "
                f"over {what} (all NaN or nodata there); fix the file or leave it out"
            )
        share = float(empty.mean())
        if share > FILL_WARNING:
            warnings.warn(
                f"{source.label} ({files[0]}): {share:.1%} of the values over {what} "
                "are NaN or nodata; they are filled (band mean, or zeros under the original "
                "scaling)",
                stacklevel=2,
            )


def check_air_coverage(dataset: DualStreamGeoDataset) -> None:
    """Fill aux data that misses part of the scene, with a warning.

    Air that misses part of the scene is filled (band means, or zeros under the original
    scaling) with a warning giving the share covered; air that misses the scene entirely is
    an error, raised by the join.
    """
    scene = dataset._indexes[0].geometry.union_all()
    for i, source in enumerate(dataset.air, start=1):
        covered = dataset._indexes[i].geometry.union_all().intersection(scene).area / scene.area
        if covered < 0.999:
            warnings.warn(
                f"{source.label} covers {covered:.1%} of the scene; "
                "the rest is filled with the band means",
                stacklevel=3,
            )


#: Band means further than this many training standard deviations away: a warning.
SHIFT_WARNING_SD = 4.0
#: Band means more than this many times smaller or larger than the training data's (or of
#: the other sign) in most bands: another scaling or sensor, refused unless allowed.
SCALE_REFUSAL = 10.0


def check_value_shift(source: GeoRaster, trained: BandStats, allow: bool = False) -> None:
    """The scene's values must look like the training data's (decimated reads).

    Warns (one line, the bands and how far) where a band's mean lies more than
    ``SHIFT_WARNING_SD`` training standard deviations from the training mean.

    Raises:
        DualStreamError: in most bands of a quantity of one sign, the mean is
            ``SCALE_REFUSAL`` times smaller or larger than in training, or of the other sign
            (8-bit data for a 16-bit model, reflectance scaled by 1/10000, an offset of
            -20000, a population grid for a pollutant), unless ``allow``.
    """
    scene = BandStats.from_source(source, trained.bands)
    far, rescaled, scaled = [], [], 0
    for name, mean, train_mean, train_std, low, high in zip(
        trained.bands,
        scene.mean,
        trained.mean,
        trained.std,
        trained.min,
        trained.max,
        strict=True,
    ):
        distance = abs(mean - train_mean) / max(train_std, 1e-12)
        if distance > SHIFT_WARNING_SD:
            far.append(
                f"{name} {mean:.4g} (trained {train_mean:.4g} +- {train_std:.3g}: "
                f"{distance:.1f} sd)"
            )
        # A ratio of means says something of a quantity of one sign (reflectance, a
        # column density, an elevation), not of one centred on zero (aspect, relief).
        if not (low >= 0 or high <= 0 or abs(train_mean) > 2 * train_std) or not train_mean:
            continue
        scaled += 1
        ratio = mean / train_mean
        if ratio <= 0 or not 1 / SCALE_REFUSAL <= ratio <= SCALE_REFUSAL:
            rescaled.append(f"{name} {mean:.4g} vs {train_mean:.4g}")
    if len(rescaled) * 2 > scaled and not allow:
        raise DualStreamError(
            f"{source.label}: the values cannot be the training data's sensor (quantity) and "
            f"scaling (band means {'; '.join(rescaled)}); give data like the training data's, "
            "rescale it, or pass --allow-input-shift to predict anyway"
        )
    if far:
        warnings.warn(
            f"{source.label}: band means far from the training data: {'; '.join(far)}",
            stacklevel=2,
        )
