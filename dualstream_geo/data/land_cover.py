"""The land-cover mask: class labels read from raw label rasters through a class map."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self, override

import numpy as np
import torch
from rasterio.enums import Resampling
from torchgeo.datasets.utils import GeoSlice, Path, Sample

from ..errors import DualStreamError
from .grid import decimated_read, open_raster
from .sources import IGNORE_INDEX, GeoRaster


class LandCoverMask(GeoRaster):
    """Class labels from raw raster values through ``class_map``.

    Raw values not in ``class_map`` go to ``background`` (``unmapped="background"``) or to
    ``ignore_index`` (``unmapped="ignore"``); the raster's nodata and pixels outside every
    file go to ``ignore_index``. Without a class map, raw values are the class indices.

    Args:
        paths: the label rasters, or folders holding them.
        class_map: raw value -> class index (None: the raw values are the classes).
        unmapped: ``background`` or ``ignore``: what raw values missing from the map become.
        background: the class of unmapped values with ``unmapped="background"``.
        ignore_index: the label of unknown pixels.
        **kwargs: :class:`~dualstream_geo.data.sources.GeoRaster`'s settings.

    Raises:
        DualStreamError: a bad class map or setting (named).
    """

    is_image = False

    def __init__(
        self,
        paths: Path | Iterable[Path],
        class_map: Mapping[int, int] | None = None,
        unmapped: str = "background",
        background: int = 0,
        ignore_index: int = IGNORE_INDEX,
        **kwargs: Any,
    ) -> None:
        if unmapped not in ("background", "ignore"):
            raise DualStreamError(f"unmapped must be 'background' or 'ignore', got {unmapped!r}")
        self.class_map = {int(k): int(v) for k, v in (class_map or {}).items()}
        bad = [k for k in self.class_map if not 0 <= k < 65536]
        if bad:
            raise DualStreamError(
                f"class_map key {bad[0]} is not a label value (labels are integers 0-65535)"
            )
        self.unmapped = unmapped
        self.background = background
        self.ignore_index = ignore_index
        super().__init__(paths, **kwargs)
        self._lut = self._build_lut()
        if self.class_map:
            self._warn_unmapped()

    def _build_lut(self) -> np.ndarray:
        if not self.class_map:
            return np.arange(65536, dtype=np.int64)
        fill = self.background if self.unmapped == "background" else self.ignore_index
        lut = np.full(65536, fill, dtype=np.int64)
        for raw, cls in self.class_map.items():
            lut[raw] = cls
        return lut

    def _warn_unmapped(self) -> None:
        counts: Counter[int] = Counter()
        for path in self.index.filepath:
            values = decimated_read(open_raster(self.resolve(path)), [1], self.nodata)[0]
            values = values[~np.isnan(values)].astype(np.int64)
            raw, n = np.unique(values[~np.isin(values, list(self.class_map))], return_counts=True)
            counts.update(dict(zip(raw.tolist(), n.tolist(), strict=True)))
        if counts:
            target = self.background if self.unmapped == "background" else self.ignore_index
            listed = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
            warnings.warn(
                f"LandCoverMask: raw label values not in class_map (value: sampled pixel "
                f"count) {{{listed}}} are mapped to {self.unmapped} ({target})",
                stacklevel=2,
            )

    @override
    @property
    def resampling(self) -> Resampling:
        return Resampling.nearest

    @override
    def relocated(self, paths: Sequence[str]) -> Self:
        return type(self)(
            list(paths),
            class_map=self.class_map,
            unmapped=self.unmapped,
            background=self.background,
            ignore_index=self.ignore_index,
        )

    def to_classes(self, raw: np.ndarray) -> np.ndarray:
        """Map raw values (float32, NaN = no data) to int64 class indices."""
        with np.errstate(invalid="ignore"):
            values = raw.astype(np.int32)  # NaN becomes a negative value: handled below
        classes = self._lut.take(values, mode="clip")
        outside = (values < 0) | (values >= self._lut.size)
        if outside.any():
            unmapped = self.background if self.unmapped == "background" else self.ignore_index
            classes[outside] = unmapped if self.class_map else self.ignore_index
            classes[np.isnan(raw)] = self.ignore_index
        return classes

    def __getitem__(self, index: GeoSlice) -> Sample:
        sample = super().__getitem__(index)
        sample["mask"] = torch.from_numpy(self.to_classes(sample["mask"].numpy()))
        return sample
