"""From an input spec to datasets: the one place sources are built, checked and joined.

``fit``, ``validate`` and ``test`` assemble a split (:func:`build_dataset`: a
:class:`~dualstream_geo.data.layout.SceneSet` of files), ``predict`` and ``evaluate`` a
scene (:class:`~dualstream_geo.inference.ScenePredictor`: the files a user names, matched
to the checkpoint's spec by :mod:`~dualstream_geo.inference.inputs`); both go through
:func:`assemble`. Where the files live is :mod:`~dualstream_geo.data.layout`'s concern; how
each aux format is read, :mod:`~dualstream_geo.data.auxiliary`'s.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from ..errors import DualStreamError
from .auxiliary import aux_format, aux_source, needs_grids, resolved, scene_aux_grids
from .auxiliary.gridding import swath_channels
from .auxiliary.spec import AuxSpec
from .checks import check_air_values, check_aux_detail, check_image_values
from .join import DualStreamGeoDataset
from .land_cover import LandCoverMask
from .layout import SceneSet
from .sources import GeoRaster, Georef, SatelliteImage
from .spec import InputSpec

PathLike = str | os.PathLike[str]


def scene_image(spec: InputSpec, image: SatelliteImage | Sequence[PathLike]) -> SatelliteImage:
    """The image source of a scene (paths are read as the spec's bands and band files).

    Args:
        spec: the input spec.
        image: the image source, or its files or folders.

    Returns:
        The image source, with the spec's number of bands.

    Raises:
        DualStreamError: a source with another number of bands than the spec's.
    """
    if not isinstance(image, SatelliteImage):
        image = SatelliteImage(
            [str(p) for p in image],
            bands=spec.image.bands,
            band_files=spec.image.band_files,
            nodata=spec.image.nodata,
        )
    if len(image.all_bands) != len(spec.image.bands):
        raise DualStreamError(
            f"the checkpoint expects {len(spec.image.bands)} bands {spec.image.bands}, "
            f"the image source has {len(image.all_bands)}"
        )
    return image


def assemble(
    spec: InputSpec,
    image: SatelliteImage,
    aux: Sequence[AuxSpec | GeoRaster] = (),
    mask: LandCoverMask | None = None,
    fallback: Georef | None = None,
    transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> DualStreamGeoDataset:
    """The joined, checked dataset of an image and its aux sources as ``spec`` reads them.

    Args:
        spec: the input spec (its aux scale, fill and, once resolved, channels).
        image: the image source.
        aux: the spec's aux sources in its order: each an
            :class:`~dualstream_geo.data.auxiliary.spec.AuxSpec` with its paths (built
            here; gridded onto the image's aux grids when its format asks) or a source.
        mask: the labels, if any.
        fallback: footprints for original-layout tiles without georeferencing.
        transforms: applied to each sample (normalisation at prediction; None in training,
            where the datamodule normalises batches).

    Returns:
        The dataset: image, aux sources and mask joined on the image's grid.

    Raises:
        DualStreamError: sources that do not give the spec's channels, values a sensor
            cannot give, or a source that does not overlap the image.
    """
    specs = [a for a in aux if isinstance(a, AuxSpec)]
    grids = scene_aux_grids(image, spec.aux_scale) if needs_grids(specs) else []
    sources = []
    for given in aux:
        source = aux_source(given, fallback, grids) if isinstance(given, AuxSpec) else given
        if isinstance(given, AuxSpec):
            resolved(given, source)
        sources.append(source)
    check_image_values(image)
    for source in sources:
        check_air_values(source)
    # The join first: a source that does not overlap the image (a wrong CRS label, say) is
    # that one error, not a warning about its pixel size or values.
    return DualStreamGeoDataset(
        image,
        sources or None,
        mask,
        aux_scale=spec.read_scale,
        aux_fill=spec.aux_fill(),
        transforms=transforms,
    )


def split_aux(scenes: SceneSet, spec: InputSpec, split: str = "") -> list[AuxSpec]:
    """The spec's aux sources with this split's paths.

    Args:
        scenes: the split's files.
        spec: the input spec.
        split: the split's name, for messages.

    Returns:
        One spec per aux source, with the split's own paths where it names them.

    Raises:
        DualStreamError: a source without paths, or a split naming a source the spec lacks.
    """
    own = scenes.aux or {}
    unknown = sorted(set(own) - set(spec.aux_names))
    if unknown and spec.aux:
        raise DualStreamError(
            f"the {split or 'data'} split names aux source {unknown[0]!r}, which data.aux does "
            f"not define (it has: {', '.join(spec.aux_names)})"
        )
    sources = []
    for source in spec.aux:
        paths = own.get(source.name) or list(source.paths)
        if not paths:
            where = f"the {split} split" if split else "the data"
            raise DualStreamError(
                f"aux source {source.name!r} has no paths for {where}: give its paths in "
                "data.aux (or the split's aux)"
            )
        sources.append(source.with_paths(paths))
    return sources


def resolve_channels(scenes: SceneSet, spec: InputSpec) -> tuple[AuxSpec, ...]:
    """The spec's aux sources with the channels the split's files give.

    A swath's are known from its settings, without gridding it.

    Args:
        scenes: the (training) split's files.
        spec: the input spec.

    Returns:
        The aux sources, channels resolved.

    Raises:
        DualStreamError: files that do not give what a source asks for.
    """
    fallback: Georef = scenes.georef_fallback  # type: ignore[assignment]
    out = []
    for source_spec in split_aux(scenes, spec, "train"):
        if aux_format(source_spec.format).swath:
            out.append(replace(source_spec, channels=swath_channels(source_spec)))
        else:
            out.append(resolved(source_spec, aux_source(source_spec, fallback)))
    return tuple(out)


def build_dataset(scenes: SceneSet, spec: InputSpec, split: str = "") -> DualStreamGeoDataset:
    """The joined dataset of one split (sources validated, overlap checked) as ``spec`` defines it.

    Its aux sources must give the spec's channels when the spec names them.

    Args:
        scenes: the split's files.
        spec: the input spec.
        split: the split's name, for messages.

    Returns:
        The split's dataset, with its labels when the split has them.
    """
    fallback: Georef = scenes.georef_fallback  # type: ignore[assignment]
    image = SatelliteImage(
        scenes.image,
        bands=spec.image.bands,
        band_files=spec.image.band_files,
        nodata=spec.image.nodata,
    )
    mask = None
    if scenes.mask:
        classes = spec.classes
        mask = LandCoverMask(
            scenes.mask,
            class_map=classes.map,
            unmapped=classes.unmapped,
            ignore_index=classes.ignore_index,
            georef_fallback=fallback,
        )
    aux: list[AuxSpec | GeoRaster] = list(split_aux(scenes, spec, split))
    dataset = assemble(spec, image, aux, mask, fallback)
    if spec.uses_aux:
        check_aux_detail(image, list(dataset.air or []), spec.aux_scale)
    return dataset
