"""The normalisation statistics of a training dataset.

Read from ``stats_path`` when that file exists (checked against the input spec), else
computed from the training sources and saved there.
"""

from __future__ import annotations

import os

from ..errors import DualStreamError
from .join import DualStreamGeoDataset
from .normalize import BandStats, DatasetStats
from .spec import InputSpec, check_stats


def load_stats(path: str, spec: InputSpec) -> DatasetStats:
    """The statistics saved at ``path``, checked against ``spec``'s channels.

    Raises:
        DualStreamError: the file describes other channels (named, with the way out).
    """
    stats = DatasetStats.load(path)
    try:
        check_stats(spec, stats)
    except DualStreamError as error:
        raise DualStreamError(
            f"stats_path {path}: {error}; delete it or give another stats_path"
        ) from None
    return stats


def training_stats(
    dataset: DualStreamGeoDataset, spec: InputSpec, path: str | None
) -> DatasetStats:
    """``path``'s statistics if it exists, else those of ``dataset``.

    's image bands, indices and aux channels (saved to ``path`` when given).

    Raises:
        DualStreamError: the file describes other channels, or an aux channel is constant
            over the training data.
    """
    if path and os.path.exists(path):
        return load_stats(path, spec)
    bands = spec.image.bands
    image = BandStats.from_source(dataset.image, bands)
    air = None
    if dataset.air:
        air = BandStats.concat(BandStats.from_source(a) for a in dataset.air)
    indices = [index.lower() for index in spec.image.indices]
    index_stats = BandStats.from_indices(dataset.image, bands, indices) if indices else None
    stats = DatasetStats(image, air, index_stats)
    check_stats(spec, stats)
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        stats.save(path)
    return stats
