"""From an :class:`~dualstream_geo.data.auxiliary.spec.AuxSpec` to the source that reads it."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...errors import DualStreamError
from ..grid import Grid, open_raster
from ..sources import GeoRaster, Georef, SatelliteImage
from .files import multidimensional_files
from .formats import aux_format
from .gridding import gridded
from .original import GEMS, AirPollution
from .raster import AuxRaster
from .spec import AuxSpec


def scene_aux_grids(image: SatelliteImage, scale: int) -> list[Grid]:
    """The aux grid of each image file: its grid with pixels ``scale`` times larger.

    Args:
        image: the scene's image source.
        scale: aux pixels per image pixel side.

    Returns:
        One grid per image file, in index order.
    """
    grids = []
    for entry in image.index.filepath:
        path = image.channel_files(entry)[0][0]
        src = open_raster(image.resolve(path))
        grids.append(Grid(src.crs, src.transform, src.height, src.width).coarsened(scale))
    return grids


def needs_grids(specs: Sequence[AuxSpec]) -> bool:
    """Whether any of ``specs`` is gridded once per scene (:func:`aux_source`'s ``grids``)."""
    return any(aux_format(spec.format).gridded for spec in specs)


def aux_source(
    spec: AuxSpec, georef_fallback: Georef | None = None, grids: Sequence[Grid] = ()
) -> GeoRaster:
    """The source of ``spec`` over its ``paths``.

    Files, folders, URLs or STAC Items with ``assets``.

    Args:
        spec: the named source.
        georef_fallback: footprints for original-layout tiles that carry none.
        grids: the scenes' aux grids (:func:`scene_aux_grids`), onto which Level 2 swaths
            are gridded (once per scene and source, cached).

    Returns:
        What the format's row (:mod:`~dualstream_geo.data.auxiliary.formats`) says: an
        :class:`AuxRaster` (for gridded fields over VRTs, or over their grids cached per
        scene when ``grids`` are given; for swaths over those grids), or :class:`GEMS` /
        :class:`AirPollution` for the original formats.

    Raises:
        DualStreamError: no paths, or files that do not hold what the spec asks for.
    """
    if not spec.paths:
        raise DualStreamError(f"aux source {spec.name!r} has no paths")
    kwargs: dict[str, Any] = {
        "name": spec.name,
        "bands": spec.bands,
        "nodata": spec.nodata,
        "resampling": spec.resampling,
        "transform": spec.transform,
        "derive": spec.derive,
        "reduce": spec.reduce,
    }
    row = aux_format(spec.format)
    if row.original:
        return original_source(spec, georef_fallback)
    if row.gridded and (row.swath or grids):
        # Once per scene and source onto its aux grid (cached): windows then read an
        # aligned GeoTIFF, the very file `dualstream-geo grid` writes for the same data.
        if not grids:
            raise DualStreamError(
                f"aux source {spec.name!r}: a swath is gridded onto the scenes' aux grids; "
                "build it with the image (dualstream_geo.data.assemble)"
            )
        files = multidimensional_files(spec.paths, spec.name, row.extensions)
        cached = [gridded(spec, files, grid) for grid in grids]
        # The cache holds the values already reduced and on their bands.
        return AuxRaster(cached, **(kwargs | {"bands": None, "nodata": None, "reduce": "none"}))
    if row.vrt is not None:
        # Direct windowed reads of the field (through its VRT).
        files = multidimensional_files(spec.paths, spec.name, row.extensions)
        vrts = [row.vrt(f, spec.variable or "", spec.time) for f in files]
        return AuxRaster(vrts, filename_glob="*.vrt", **kwargs)
    if spec.assets:
        return AuxRaster.from_stac(list(spec.paths), spec.assets, **kwargs)
    return AuxRaster(list(spec.paths), filename_glob=spec.filename_glob or "*.tif", **kwargs)


def original_source(spec: AuxSpec, georef_fallback: Georef | None) -> GeoRaster:
    """The original dataset's GEMS or air-pollution files of ``spec``."""
    # The one place a format is named outside the table: its two original file layouts.
    original: type[GEMS] | type[AirPollution] = (
        GEMS if spec.format == "original_gems" else AirPollution
    )
    options: dict[str, Any] = {"nodata": spec.nodata}
    if spec.assets:
        return original.from_stac(list(spec.paths), spec.assets, **options)
    if spec.filename_glob:
        options["filename_glob"] = spec.filename_glob
    return original(list(spec.paths), georef_fallback=georef_fallback, **options)


def resolved(spec: AuxSpec, source: GeoRaster) -> AuxSpec:
    """``spec`` with the channel names ``source`` found in its files.

    A spec that already names its channels (read from a checkpoint) must get as many from
    the files; other names (band descriptions of other dates, say) only warn.

    Args:
        spec: the source's spec.
        source: the source built from it.

    Returns:
        The spec with the source's channel names.

    Raises:
        DualStreamError: the files give another number of channels.
    """
    channels = tuple(str(name) for name in source.all_bands)  # type: ignore[attr-defined]
    if spec.channels is not None:
        if len(channels) != len(spec.channels):
            raise DualStreamError(
                f"aux source {spec.name!r}: the files give {len(channels)} channel(s), the "
                f"model was trained on {len(spec.channels)} ({', '.join(spec.channels[:6])}"
                f"{', ...' if len(spec.channels) > 6 else ''})"
            )
        if channels != spec.channels:
            warnings.warn(
                f"aux source {spec.name!r}: the files' bands are {list(channels)[:6]}, the "
                f"model was trained on {list(spec.channels)[:6]} (same count; read in order)",
                stacklevel=2,
            )
        return spec
    return replace(spec, channels=channels)
