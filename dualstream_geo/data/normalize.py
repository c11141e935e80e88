"""Per-band statistics from decimated reads, saved to JSON, and the normalisation they drive."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import DualStreamError
from .grid import decimated_read, open_raster
from .indices import SpectralIndices
from .sources import GeoRaster


@dataclass
class BandStats:
    """Per-band mean, std, min and max of one stream, in channel order.

    Attributes:
        bands: the channel names.
        mean: each channel's mean.
        std: each channel's standard deviation.
        min: each channel's minimum.
        max: each channel's maximum.
    """

    bands: list[str]
    mean: list[float]
    std: list[float]
    min: list[float]
    max: list[float]

    def normalize(self, data: Tensor) -> Tensor:
        """(x - mean) / std over the channel axis of (..., C, H, W)."""
        mean = torch.tensor(self.mean, dtype=data.dtype, device=data.device)[:, None, None]
        std = torch.tensor(self.std, dtype=data.dtype, device=data.device)[:, None, None]
        return (data - mean) / std

    def select(self, bands: Sequence[str]) -> BandStats | None:
        """The statistics of ``bands`` in that order, or None if one is not among them."""
        if not set(bands) <= set(self.bands):
            return None
        at = [self.bands.index(b) for b in bands]
        return BandStats(
            bands=list(bands),
            mean=[self.mean[i] for i in at],
            std=[self.std[i] for i in at],
            min=[self.min[i] for i in at],
            max=[self.max[i] for i in at],
        )

    @classmethod
    def from_source(cls, source: GeoRaster, bands: Sequence[str] | None = None) -> BandStats:
        """Statistics over every file of ``source`` from decimated reads (NaN/nodata skipped).

        Args:
            source: the raster source.
            bands: the channel names (default: the source's).

        Returns:
            The statistics of each channel.

        Raises:
            DualStreamError: a file holds +/-inf (NaN is treated as nodata, with a warning).
        """
        total = np.zeros(source.num_channels)
        total_sq = np.zeros(source.num_channels)
        count = np.zeros(source.num_channels)
        low = np.full(source.num_channels, np.inf)
        high = np.full(source.num_channels, -np.inf)
        for filepath in source.index.filepath:
            first = 0
            for values in source.sample_values(filepath):
                values = values.astype(np.float64)
                if np.isinf(values).any():
                    raise DualStreamError(f"{filepath}: contains inf values; fix or mask the file")
                part = slice(first, first + len(values))
                finite = ~np.isnan(values)
                total[part] += np.where(finite, values, 0).sum(1)
                total_sq[part] += np.where(finite, values**2, 0).sum(1)
                count[part] += finite.sum(1)
                low[part] = np.minimum(low[part], np.nanmin(values, 1, initial=np.inf))
                high[part] = np.maximum(high[part], np.nanmax(values, 1, initial=-np.inf))
                first += len(values)
        if (count == 0).any():
            raise DualStreamError(f"{source.label}: a band has no valid pixels")
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
        names = list(bands or getattr(source, "all_bands", None) or range(source.num_channels))
        return cls(
            bands=[str(b) for b in names],
            mean=mean.tolist(),
            std=np.maximum(std, 1e-6).tolist(),
            min=low.tolist(),
            max=high.tolist(),
        )

    @classmethod
    def from_indices(
        cls, source: GeoRaster, bands: Sequence[str], indices: Sequence[str]
    ) -> BandStats:
        """Statistics of the spectral ``indices`` of ``source``'s bands over every file.

        Statistics of the spectral ``indices`` of ``source``'s bands (named ``bands``) over
        every file, from the same decimated reads as :meth:`from_source`.

        Args:
            source: the image source.
            bands: its band names, in file order.
            indices: the index names (:mod:`~dualstream_geo.data.indices`).

        Returns:
            The statistics of each index.

        Raises:
            DualStreamError: the band files of one scene differ in size.
        """
        compute = SpectralIndices(indices, bands)
        values = []
        for filepath in source.index.filepath:
            reads = [
                decimated_read(open_raster(source.resolve(path)), indexes, source.nodata)
                for path, indexes in source.channel_files(filepath)
            ]
            if len({read.shape[1] for read in reads}) > 1:
                raise DualStreamError(
                    f"{filepath}: its band files differ in size; indices need aligned bands"
                )
            raw = np.concatenate(reads)
            index = compute(torch.from_numpy(raw)[:, None]).squeeze(1).numpy()
            index[:, np.isnan(raw).any(0)] = np.nan
            values.append(index)
        data = np.concatenate(values, 1).astype(np.float64)
        finite = ~np.isnan(data)
        if not finite.any(1).all():
            raise DualStreamError(f"{type(source).__name__}: an index has no valid pixels")
        mean = np.nanmean(data, 1)
        return cls(
            bands=list(compute.names),
            mean=mean.tolist(),
            std=np.maximum(np.nanstd(data, 1), 1e-6).tolist(),
            min=np.nanmin(data, 1).tolist(),
            max=np.nanmax(data, 1).tolist(),
        )

    @classmethod
    def concat(cls, parts: Iterable[BandStats]) -> BandStats:
        """Channel-wise concatenation (e.g. GEMS then AirPollution)."""
        parts = list(parts)
        return cls(
            *(
                [v for p in parts for v in getattr(p, field)]
                for field in ("bands", "mean", "std", "min", "max")
            )
        )


@dataclass
class DatasetStats:
    """Statistics of both streams and of any spectral indices appended to the image.

    Saved to and loaded from JSON.

    Attributes:
        image: the image bands' statistics.
        air: the aux channels' statistics (None for the image alone).
        indices: the spectral indices' statistics (None without indices).
    """

    image: BandStats
    air: BandStats | None
    indices: BandStats | None = None

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the statistics to ``path`` as JSON.

        Through a temporary file, so a reader never sees half of it.
        """
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(self.to_dict(), f)
        os.replace(tmp, path)

    @property
    def index_names(self) -> list[str]:
        """The spectral indices appended to the image, in channel order (none: [])."""
        return list(self.indices.bands) if self.indices is not None else []

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DatasetStats:
        """Read statistics :meth:`save` wrote.

        Args:
            path: the JSON file.

        Returns:
            The statistics.

        Raises:
            DualStreamError: the file cannot be read or is not a statistics file.
        """
        try:
            with open(path) as f:
                return cls.from_dict(json.load(f))
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise DualStreamError(
                f"{path}: not a readable statistics file ({type(error).__name__}); delete it "
                "to compute the statistics again"
            ) from None

    @classmethod
    def from_dict(cls, raw: dict[str, dict[str, Any] | None]) -> DatasetStats:
        """Statistics from the plain data :meth:`to_dict` gives.

        ``image``, ``air``, ``indices``.
        """
        image, air, indices = (raw.get(key) for key in ("image", "air", "indices"))
        if image is None:
            raise DualStreamError("statistics have no 'image' entry")
        return cls(
            BandStats(**image),
            BandStats(**air) if air else None,
            BandStats(**indices) if indices else None,
        )

    def to_dict(self) -> dict[str, object]:
        """Plain data, as stored in ``stats.json`` and in checkpoints."""
        out: dict[str, object] = {"image": asdict(self.image), "air": self.air and asdict(self.air)}
        if self.indices is not None:
            out["indices"] = asdict(self.indices)
        return out


class Normalize:
    """Sample transform: normalise ``image`` and ``air`` with dataset statistics.

    With index statistics, the spectral indices are computed from the raw bands and
    appended, standardised, after them: ``image`` (C, H, W) becomes (C + I, H, W).
    Invalid (nodata) image pixels are set to 0 after normalisation, i.e. the band mean.
    """

    def __init__(self, stats: DatasetStats) -> None:
        self.stats = stats
        self.indices = (
            SpectralIndices(stats.index_names, stats.image.bands) if stats.indices else None
        )

    def __call__(self, sample: dict[str, object]) -> dict[str, object]:
        """Standardise the sample's image (and indices) and aux stream, zeroing invalid pixels."""
        image = sample["image"]
        assert isinstance(image, Tensor)
        raw = image
        image = self.stats.image.normalize(raw)
        if self.indices is not None and self.stats.indices is not None:
            image = torch.cat([image, self.stats.indices.normalize(self.indices(raw))], -3)
        valid = sample.get("valid")
        if isinstance(valid, Tensor):
            image = image * valid.to(image.dtype)
        sample["image"] = image
        air = sample.get("air")
        if isinstance(air, Tensor) and self.stats.air is not None:
            sample["air"] = self.stats.air.normalize(air)
        return sample


class AppendAux:
    """Sample transform for early fusion.

    After ``normalize``, the aux channels (read on the image grid) are appended to the
    image, zero where the image is invalid, and the sample has no ``air`` any more:
    ``image`` (C, H, W) and ``air`` (A, H, W) -> ``image`` (C + A, H, W).
    """

    def __init__(self, normalize: Normalize) -> None:
        self.normalize = normalize

    def __call__(self, sample: dict[str, object]) -> dict[str, object]:
        """Normalise, then append the aux channels to the image (see the class)."""
        sample = self.normalize(sample)
        image, air = sample["image"], sample.pop("air")
        assert isinstance(image, Tensor) and isinstance(air, Tensor)
        valid = sample.get("valid")
        if isinstance(valid, Tensor):
            air = air * valid.to(air.dtype)
        sample["image"] = torch.cat([image, air], dim=-3)
        return sample


#: Channels per air file in the original layout (GEMS, CO, NO2, SO2: 12 bands each).
AIR_FILE_BANDS = 12


class OriginalScaling:
    """Sample transform: the original project's input scaling (``normalization: original``).

    * image: ``floor(x / 256) / 255`` per band (uint16 truncated to uint8, then to [0, 1]);
      invalid pixels 0;
    * air: the channels of each file (``groups``: channels per file in order; default 12
      each, the original's files) min-max scaled jointly over the sample, with one min and
      one max: ``(x - min) / (max - min)``, all zeros when ``max - min <= 1e-6`` or when any
      value is NaN (the original's NaN propagates into its min and max). Over a whole scene
      this is done per window, as the original does per tile.
    """

    def __init__(self, groups: Sequence[int] | None = None) -> None:
        self.groups = list(groups) if groups else None

    def __call__(self, sample: dict[str, object]) -> dict[str, object]:
        """Scale the sample as the original project does (see the class)."""
        image = sample["image"]
        assert isinstance(image, Tensor)
        image = torch.floor(image / 256) / 255
        valid = sample.get("valid")
        if isinstance(valid, Tensor):
            image = image * valid.to(image.dtype)
        sample["image"] = image
        air = sample.get("air")
        if isinstance(air, Tensor):
            sample["air"] = minmax_per_file(air, self.groups)
        return sample


def minmax_per_file(air: Tensor, groups: Sequence[int] | None = None) -> Tensor:
    """Min-max scale each group of channels of (C, H, W) with one min and one max.

    (C, H, W): each group of channels (``groups``: their sizes in order; default groups of
    12) min-max scaled with one min and one max (zeros when constant or holding NaN).
    """
    sizes = list(groups) if groups else [AIR_FILE_BANDS] * (air.shape[-3] // AIR_FILE_BANDS)
    if sum(sizes) != air.shape[-3]:
        raise DualStreamError(f"{air.shape[-3]} air channels do not split into files of {sizes}")
    parts = []
    for part in torch.split(air, sizes, dim=-3):
        values = part.reshape(1, -1).to(torch.float64)
        low = values.min(dim=1, keepdim=True).values
        high = values.max(dim=1, keepdim=True).values
        span = high - low
        usable = (span > 1e-6) & ~torch.isnan(span)
        scaled = torch.where(usable, (values - low) / torch.where(usable, span, 1.0), 0.0)
        parts.append(scaled.to(air.dtype).reshape(part.shape))
    return torch.cat(parts, dim=-3)
