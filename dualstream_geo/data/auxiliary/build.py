"""From an :class:`~dualstream_geo.data.spec.AuxSpec` to the source that reads it."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

from ...errors import DualStreamError
from ..sources import GeoRaster, Georef
from ..spec import AuxSpec
from .original import GEMS, AirPollution
from .raster import AuxRaster


def aux_source(spec: AuxSpec, georef_fallback: Georef | None = None) -> GeoRaster:
    """The source of ``spec`` over its ``paths`` (files, folders, URLs or STAC Items with
    ``assets``).

    Args:
        spec: the named source.
        georef_fallback: footprints for original-layout tiles that carry none.

    Returns:
        An :class:`AuxRaster`, or :class:`GEMS` / :class:`AirPollution` for the original
        formats.

    Raises:
        DualStreamError: no paths, or files that do not hold what the spec asks for.
    """
    if not spec.paths:
        raise DualStreamError(f"aux source {spec.name!r} has no paths")
    kwargs: dict[str, Any] = {"nodata": spec.nodata}
    if spec.format == "raster":
        kwargs |= {
            "name": spec.name,
            "bands": spec.bands,
            "resampling": spec.resampling,
            "transform": spec.transform,
            "derive": spec.derive,
        }
        if spec.assets:
            return AuxRaster.from_stac(list(spec.paths), spec.assets, **kwargs)
        return AuxRaster(list(spec.paths), filename_glob=spec.filename_glob or "*.tif", **kwargs)
    original: type[GEMS] | type[AirPollution] = (
        GEMS if spec.format == "original_gems" else AirPollution
    )
    if spec.assets:
        return original.from_stac(list(spec.paths), spec.assets, **kwargs)
    if spec.filename_glob:
        kwargs["filename_glob"] = spec.filename_glob
    return original(list(spec.paths), georef_fallback=georef_fallback, **kwargs)


def resolved(spec: AuxSpec, source: GeoRaster) -> AuxSpec:
    """``spec`` with the channel names ``source`` found in its files.

    A spec that already names its channels (read from a checkpoint) must get as many from
    the files; other names (band descriptions of other dates, say) only warn.

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
