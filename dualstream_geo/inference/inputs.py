"""A scene's inputs as the checkpoint's input spec names them.

The image source and the named aux sources, each checked against what the model was trained
on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import rasterio

from ..data.assemble import assemble, scene_image
from ..data.auxiliary import AuxRaster, aux_format, resolved
from ..data.auxiliary.spec import AuxSpec
from ..data.checks import check_air_coverage, check_air_over_region, check_value_shift
from ..data.join import DualStreamGeoDataset
from ..data.sources import GeoRaster, Georef, SatelliteImage
from ..data.spec import InputSpec
from ..errors import DualStreamError

PathLike = str | os.PathLike[str]
#: Aux inputs of a scene: sources or paths by name; or, in the spec's order, sources; or the
#: original preset's paths (GEMS and air-pollution files or folders together).
AuxInputs = Mapping[str, GeoRaster | Sequence[PathLike]] | Sequence[GeoRaster | PathLike] | None


def _describe(spec: InputSpec, names: Sequence[str]) -> str:
    return ", ".join(
        f"--aux {n}=PATH ({spec.aux_source(n).num_channels} channel(s))" for n in names
    )


def scene_aux(spec: InputSpec, aux: AuxInputs) -> list[AuxSpec | GeoRaster]:
    """The scene's aux inputs in the spec's order.

    As :func:`~dualstream_geo.data.assemble. assemble` takes them.

    Args:
        spec: the checkpoint's input spec.
        aux: sources or paths by name; sources in the spec's order; or the paths of the
            original preset's GEMS and air-pollution files together.

    Returns:
        One input per aux source of the spec: the source given, a GeoTIFF gridded by
        ``dualstream-geo grid`` for a gridded format, or the spec with the given paths.

    Raises:
        DualStreamError: a source missing, extra, unknown or with another channel count,
            named in one line.
    """
    names = spec.aux_names
    if not names:
        given = list(aux) if isinstance(aux, Mapping) else ["aux paths"] if aux else []
        if given:
            raise DualStreamError(
                f"the checkpoint was trained on the image alone: it takes no aux source "
                f"(given: {', '.join(map(str, given))})"
            )
        return []
    if not aux:
        raise DualStreamError(
            f"the checkpoint needs its aux sources: give {_describe(spec, names)}"
        )
    named = _by_name(spec, aux)
    unknown = [name for name in named if name not in names]
    if unknown:
        raise DualStreamError(
            f"--aux {unknown[0]}: the checkpoint has no aux source {unknown[0]!r} (it takes: "
            f"{', '.join(names)})"
        )
    missing = [name for name in names if name not in named]
    if missing:
        raise DualStreamError(
            f"the checkpoint needs aux source(s): give {_describe(spec, missing)}"
        )
    inputs: list[AuxSpec | GeoRaster] = []
    for source_spec in spec.aux:
        given = named[source_spec.name]
        if isinstance(given, GeoRaster):
            resolved(source_spec, given)
            inputs.append(given)
        elif aux_format(source_spec.format).gridded and all(
            str(p).lower().endswith((".tif", ".tiff")) for p in given
        ):
            # The source pre-gridded by `dualstream-geo grid`: read as the cached grid is.
            check_gridded_from(source_spec, [str(p) for p in given])
            source = AuxRaster(
                [str(p) for p in given],
                name=source_spec.name,
                resampling=source_spec.resampling,
                transform=source_spec.transform,
            )
            resolved(source_spec, source)
            inputs.append(source)
        else:
            inputs.append(source_spec.with_paths([str(p) for p in given]))
    return inputs


def _by_name(spec: InputSpec, aux: AuxInputs) -> dict[str, Any]:
    """``aux`` as a mapping of source name -> source or paths (unchecked names)."""
    names = spec.aux_names
    named: dict[str, Any]
    if isinstance(aux, Mapping):
        named = dict(aux)
    else:
        items = list(aux or ())
        if all(isinstance(a, GeoRaster) for a in items):
            if len(items) != len(names):
                raise DualStreamError(
                    f"{len(items)} aux source(s) given, the checkpoint takes {len(names)}: "
                    f"{', '.join(names)}"
                )
            named = dict(zip(names, items, strict=True))
        elif names == ["gems", "air_pollution"]:
            paths = [str(p) for p in items]
            named = {"gems": paths, "air_pollution": paths}
        else:
            raise DualStreamError(
                f"name the aux paths (the checkpoint takes {', '.join(names)}): "
                f"{_describe(spec, names)}"
            )
    return named


def check_gridded_from(spec: AuxSpec, paths: Sequence[str]) -> None:
    """A GeoTIFF given for a source of a gridded format must hold that source's variable.

    ``dualstream-geo grid`` tags the variable it gridded (files without the tag are judged
    by their values, :func:`~dualstream_geo.data.checks.check_value_shift`).

    Raises:
        DualStreamError: a file gridded from another variable (both named).
    """
    wanted = (spec.variable or "").strip("/").split("/")[-1]
    for path in paths:
        try:
            with rasterio.open(path) as src:
                variable = src.tags().get("variable", "")
        except rasterio.errors.RasterioError:
            continue  # unreadable files are named by the source's own checks
        found = variable.strip("/").split("/")[-1]
        if found and wanted and found != wanted:
            raise DualStreamError(
                f"--aux {spec.name} {path}: gridded from the variable {variable!r}; the "
                f"checkpoint's source {spec.name!r} is {spec.variable!r}"
            )


def scene_dataset(
    spec: InputSpec,
    image: SatelliteImage | Sequence[PathLike],
    aux: AuxInputs,
    fallback: Georef | None,
    allow_shift: bool,
) -> DualStreamGeoDataset:
    """The joined, checked inputs of a scene, normalised as the model ``spec`` describes.

    Args:
        spec: the checkpoint's input spec.
        image: the image source, or its files or folders.
        aux: the aux inputs (:func:`scene_aux`).
        fallback: footprints for original-layout tiles without georeferencing.
        allow_shift: predict an image whose values cannot be the training data's sensor and
            scaling (:func:`~dualstream_geo.data.checks.check_value_shift`).

    Returns:
        The scene's dataset.

    Raises:
        DualStreamError: an input that does not fit the checkpoint, named.
    """
    image = scene_image(spec, image)
    inputs = scene_aux(spec, aux)
    dataset = assemble(spec, image, inputs, fallback=fallback, transforms=spec.transform())
    sources = dataset.air
    if spec.stats is not None and spec.normalization == "dataset":
        check_value_shift(image, spec.stats.image, allow_shift)
        for source_spec, source in zip(spec.aux, sources, strict=True):
            # An aux file of another quantity (a population grid for NO2) is caught by
            # its values, whatever its format says.
            trained = spec.stats.air.select(source_spec.channels or ()) if spec.stats.air else None
            if trained is not None and source.num_channels == len(trained.bands):
                check_value_shift(source, trained, allow_shift)
    check_air_coverage(dataset)
    check_air_over_region(dataset)
    return dataset
