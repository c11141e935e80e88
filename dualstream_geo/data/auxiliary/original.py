"""The original dataset's aux files.

``GEMS_<name>.tif`` (12 bands) and ``AIR_Pollution_{CO,NO2,SO2}_<name>.tif`` (12 bands
each). Together they are the ``original`` preset of the aux sources
(:func:`~dualstream_geo.data.auxiliary.spec.original_aux`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Self, override

from torchgeo.datasets.utils import Path

from ...errors import DualStreamError
from ..sources import GeoRaster
from .spec import GEMS_BANDS, POLLUTANT_BANDS, POLLUTANTS


class GEMS(GeoRaster):
    """GEMS satellite products: 12 bands per file (``GEMS_<name>.tif``), aux source ``gems``."""

    filename_glob = "GEMS_*.tif"
    num_channels = 12
    all_bands = GEMS_BANDS
    stac_prefix = "GEMS_"
    name = "gems"

    @override
    def cached_names(self, key: str) -> list[str]:
        return [f"GEMS_{key}.tif"]

    @override
    def relocated(self, paths: Sequence[str]) -> Self:
        return type(self)(list(paths))


class AirPollution(GeoRaster):
    """CO, NO2 and SO2 maps, 12 bands each (``AIR_Pollution_{CO,NO2,SO2}_<name>.tif``).

    36 channels in that order, aux source ``air_pollution``. The index holds the first
    pollutant's files; the others are found by name beside them.

    Args:
        paths: the files, or folders holding them.
        filename_glob: which files are the CO maps (the NO2 and SO2 files beside them are
            found by name).
        **kwargs: :class:`~dualstream_geo.data.sources.GeoRaster`'s settings.
    """

    num_channels = 36
    all_bands = POLLUTANT_BANDS
    _pattern: ClassVar[re.Pattern[str]] = re.compile(r"_(CO|NO2|SO2)_")
    stac_prefix = "AIR_Pollution_"
    stac_groups = POLLUTANTS
    name = "air_pollution"

    def __init__(
        self,
        paths: Path | Iterable[Path],
        filename_glob: str = "AIR_Pollution_CO_*.tif",
        **kwargs: Any,
    ) -> None:
        super().__init__(paths, filename_glob=filename_glob, **kwargs)

    @override
    def cached_names(self, key: str) -> list[str]:
        return [f"AIR_Pollution_{gas}_{key}.tif" for gas in POLLUTANTS]

    @override
    def relocated(self, paths: Sequence[str]) -> Self:
        return type(self)(list(paths))

    @override
    def channel_files(self, filepath: str) -> list[tuple[str, list[int]]]:
        folder, name = os.path.split(filepath)
        match = self._pattern.search(name)
        if match is None:
            raise DualStreamError(f"{filepath}: name lacks _CO_/_NO2_/_SO2_")
        head, tail = name[: match.start()], name[match.end() :]
        return [
            (os.path.join(folder, f"{head}_{p}_{tail}"), list(range(1, 13))) for p in POLLUTANTS
        ]
