"""Warp once.

The label and aux sources of a training or evaluation dataset that are not on a scene's
grids (another CRS, resolution or alignment, or remote) are warped once onto them and kept
as tiled, compressed GeoTIFFs in a cache; samples then read aligned windows.

Each scene (image file) has two grids: its own (labels) and the one the aux stream is read
at (its pixels ``aux_scale`` times larger; with a one-cell margin for sources that derive
terrain). A source's copy is keyed by its class and settings, its files' fingerprints
(path, size, modification time) and the grid, so runs reuse it and a changed input gets a
new one; it is written under a temporary name and renamed, so two runs building it at once
both end with a complete file. The warp is exact (no approximate transformer), and patches
are aligned on the scene's grids (:meth:`~dualstream_geo.data.join.DualStreamGeoDataset.
aligned`), so a sample read from the cache equals, bit for bit, the same sample warped from
the sources exactly (tested); the default on-the-fly warp approximates each pixel's
position to 0.125 px (GDAL's default), which moves a nearest-neighbour label where a pixel
centre lies that close to a source pixel's edge (measured in ``tests/test_warp_cache.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import shapely

from ..errors import DualStreamError
from ..paths import check_apart
from .auxiliary.files import cache_folder
from .auxiliary.gridding import files_fingerprint, readable_to_end, write_grid
from .auxiliary.raster import AuxRaster
from .auxiliary.terrain import margin_grid
from .grid import Grid, aligned_window, open_raster, same_crs
from .join import DualStreamGeoDataset
from .remote import is_remote
from .sources import GeoRaster


def scene_grids(dataset: DualStreamGeoDataset) -> list[Grid]:
    """Each image file's own grid (the dataset's CRS)."""
    grids = []
    for entry in dataset.image.index.filepath:
        path = dataset.image.channel_files(entry)[0][0]
        src = open_raster(dataset.image.resolve(path))
        grids.append(Grid(src.crs, src.transform, src.height, src.width))
    return grids


def on_grid(source: GeoRaster, grid: Grid) -> bool:
    """True when every file of ``source`` is local and lies on ``grid``'s pixels.

    Same CRS, pixel size and whole-pixel offsets: reading it needs no warp.
    """
    for entry in source.index.filepath:
        for path, _ in source.channel_files(entry):
            if is_remote(path):
                return False
            src = open_raster(source.resolve(path))
            if not same_crs(src.crs, grid.crs) or aligned_window(src.transform, grid) is None:
                return False
    return True


def _files_over(source: GeoRaster, grid: Grid) -> list[str]:
    index = source.index.to_crs(grid.crs)
    hits = index[index.geometry.intersects(shapely.box(*grid.bounds))]
    return list(hits.filepath)


def _settings(source: GeoRaster, entries: Sequence[str]) -> dict[str, Any]:
    channel_files = [source.channel_files(e) for e in entries]
    return {
        "class": type(source).__name__,
        "nodata": source.nodata,
        "bands": [[indexes for _, indexes in files] for files in channel_files],
        "files": files_fingerprint(sorted({path for files in channel_files for path, _ in files})),
    }


def _usable(paths: Sequence[str], key: str) -> bool:
    """The cached files exist, read to their last block and carry ``key``.

    . A file that exists but does not (cut short, or replaced by another) is removed, to be
    rebuilt. A complete file whose siblings are missing stays: files are written under a
    temporary name and renamed, so another run may be writing the set now, and removing its
    first file would pull it from under that run.
    """
    usable = True
    for path in paths:
        if not os.path.exists(path):
            usable = False
        elif not readable_to_end(path, key):
            usable = False
            with contextlib.suppress(FileNotFoundError):  # another run removed it first
                os.remove(path)
    return usable


def make_cache_folder(folder: str) -> None:
    """Create the cache ``folder`` (and its parents) if it is missing.

    Raises:
        DualStreamError: it cannot be created (named).
    """
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise DualStreamError(
            f"data.cache_dir {folder}: cannot be created ({error.strerror}); give another "
            "folder, or cache_dir: false"
        ) from None


def warp_source(source: GeoRaster, grids: Sequence[Grid], folder: str) -> GeoRaster:
    """``source`` warped once onto each of ``grids`` (exactly, with its own resampling).

    The same source over the cached copies.

    Raises:
        DualStreamError: the cache folder cannot be written (named).
    """
    make_cache_folder(folder)
    paths: list[str] = []
    for grid in grids:
        entries = _files_over(source, grid)
        if not entries:
            continue
        settings = _settings(source, entries) | {
            "resampling": source.resampling.name,
            "grid": [grid.crs.to_wkt(), list(grid.transform)[:6], grid.height, grid.width],
        }
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]
        names = [os.path.join(folder, name) for name in source.cached_names(key)]
        paths.append(names[0])
        if _usable(names, key):
            continue
        data = source.read_files(entries, grid, source.resampling, tolerance=0.0)
        sizes = [len(indexes) for _, indexes in source.channel_files(entries[0])]
        first = 0
        for name, size in zip(names, sizes, strict=True):
            part = data[first : first + size]
            first += size
            try:
                tags = {"warped_from": json.dumps(entries), "cache_key": key}
                write_grid(name, part, grid, [""] * size, tags)
            except DualStreamError as error:
                raise DualStreamError(
                    f"data.cache_dir {folder}: the warped copy of {source.label} cannot be "
                    f"written ({error}); give a writable cache_dir, or cache_dir: false"
                ) from None
    if not paths:
        return source
    return source.relocated(paths)


def warp_once(dataset: DualStreamGeoDataset, folder: str) -> DualStreamGeoDataset:
    """The dataset with its off-grid label and aux sources read from warped-once copies.

    The dataset with each label and aux source that is not on its scenes' grids read from a
    warped-once copy; its index (the region it samples) unchanged.

    Raises:
        DualStreamError: the cache folder lies inside an input folder, or cannot be
            created or written.
    """
    sources = [dataset.image, *dataset.air, *([dataset.mask] if dataset.mask else [])]
    inputs = [path for source in sources for path in source_paths(source)]
    check_apart(folder, inputs, "data.cache_dir")
    make_cache_folder(folder)
    grids = scene_grids(dataset)
    aux_grids = [grid.coarsened(dataset.aux_scale) for grid in grids]
    mask = dataset.mask
    if mask is not None and not all(on_grid(mask, g) for g in grids):
        mask = warp_source(mask, grids, folder)  # type: ignore[assignment]
    air = []
    for source in dataset.air:
        derive = isinstance(source, AuxRaster) and bool(source.spec.derive)
        targets = [margin_grid(g) for g in aux_grids] if derive else aux_grids
        if all(on_grid(source, g) for g in aux_grids):
            air.append(source)
        else:
            air.append(warp_source(source, targets, folder))
    return dataset.with_sources(air, mask)  # type: ignore[arg-type]


def source_paths(source: GeoRaster) -> list[str]:
    """The files and folders a source was given."""
    paths = source.paths
    return [str(paths)] if isinstance(paths, str | os.PathLike) else [str(p) for p in paths]


def cache_dir(setting: str | bool) -> str | None:
    """The warp cache's folder from ``data.cache_dir``.

    True the default place, a path that folder (made by :func:`warp_once`, once it is known
    to lie apart from the inputs), False none (the sources are warped for every sample).
    """
    if setting is False:
        return None
    if setting is True:
        return cache_folder("warped")
    return str(setting)
