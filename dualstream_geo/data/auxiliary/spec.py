"""AuxSpec: one named source of the aux (coarse) stream.

As the input spec holds it (see :mod:`~dualstream_geo.data.spec`), and the original
dataset's aux stream in those terms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any, Literal

from rasterio.enums import Resampling

from ...errors import DualStreamError
from .formats import FORMATS, SETTING_PURPOSE, applies_to, aux_format

#: How aux values are changed before statistics: ``log`` for quantities spanning decades.
VALUE_TRANSFORMS = ("none", "log")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
#: Channels of the original dataset's aux files (GEMS; CO, NO2, SO2 12 bands each).
GEMS_BANDS = tuple(f"gems_{i:02d}" for i in range(1, 13))
POLLUTANTS = ("CO", "NO2", "SO2")
POLLUTANT_BANDS = tuple(f"{p.lower()}_{i:02d}" for p in POLLUTANTS for i in range(1, 13))
#: Terrain an elevation source can derive (:mod:`~dualstream_geo.data.auxiliary.terrain`).
TERRAIN = ("slope", "northness", "eastness", "relief")


@dataclass(frozen=True)
class AuxSpec:
    """One named source of the aux (coarse) stream.

    Args:
        name: what the source is (``elevation``, ``no2``); names its channels.
        paths: files, folders, URLs or STAC Items (with ``assets``); shared by every split
            unless a split names its own (``SceneSet.aux``).
        bands: 1-based band indexes or band descriptions to read; None reads every band.
        nodata: the files' nodata value when they carry none (or another one).
        resampling: how the source is read onto the aux grid: ``average`` for continuous
            values, ``nearest`` or ``mode`` for categories (any GDAL warp method).
        transform: ``log``: the natural logarithm of the values (values <= 0 become
            nodata), for quantities spanning decades such as column densities.
        format: a row of :data:`~dualstream_geo.data.auxiliary.formats.FORMATS`:
            ``raster`` (any GDAL raster); ``netcdf`` (a gridded variable of NetCDF, HDF5 or
            Zarr files: Level 3, CAMS, ERA5); ``grib`` (a field of GRIB files: ERA5, CAMS);
            ``s5p_l2`` / ``gems_l2`` (Level 2 swaths, gridded onto each scene's aux grid);
            ``original_gems`` / ``original_air``: the original dataset's ``GEMS_*`` and
            ``AIR_Pollution_{CO,NO2,SO2}_*`` files.
        variable: the variable to read (``netcdf``, ``s5p_l2``, ``gems_l2``), or the GRIB
            field (``grib``: ``2T``, or ``TMP:2-HTGL`` to name the level).
        time: (start, end) dates, inclusive: the time steps read (``netcdf``, ``grib``).
        reduce: ``mean``, ``median`` or ``max`` over the bands (time steps): one channel.
        qa_min: swaths: the lowest quality value kept (default: the producer's
            recommendation for the variable).
        composite: swaths: ``mean`` or ``median`` of several orbits in a cell.
        count: swaths: a channel more, the number of orbits with a value in each cell.
        derive: terrain from a one-band elevation source, as channels after it: ``slope``,
            ``northness``, ``eastness`` (:mod:`~dualstream_geo.data.auxiliary.terrain`).
        filename_glob: which files of a folder belong to the source.
        assets: the STAC assets holding the bands, when ``paths`` are STAC Items.
        channels: the channel names, resolved from the files (stored in checkpoints).
    """

    name: str
    paths: tuple[str, ...] = ()
    bands: tuple[int | str, ...] | None = None
    nodata: float | None = None
    resampling: str = "average"
    transform: Literal["none", "log"] = "none"
    format: str = "raster"
    variable: str | None = None
    time: tuple[str, str] | None = None
    reduce: Literal["none", "mean", "median", "max"] = "none"
    qa_min: float | None = None
    composite: Literal["mean", "median"] = "mean"
    count: bool = False
    derive: tuple[str, ...] = ()
    filename_glob: str | None = None
    assets: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise DualStreamError(
                f"aux source name {self.name!r}: use letters, digits, '_', '-' or '.', "
                "starting with a letter"
            )
        if self.resampling not in Resampling.__members__:
            raise DualStreamError(
                f"aux source {self.name!r}: resampling {self.resampling!r} is not a GDAL "
                f"method ({', '.join(Resampling.__members__)})"
            )
        if self.transform not in VALUE_TRANSFORMS:
            raise DualStreamError(
                f"aux source {self.name!r}: transform must be one of {VALUE_TRANSFORMS}, "
                f"got {self.transform!r}"
            )
        if self.format not in FORMATS:
            raise DualStreamError(
                f"aux source {self.name!r}: format {self.format!r} is unknown (known: "
                f"{', '.join(FORMATS)})"
            )
        if self.variable is None and aux_format(self.format).needs_variable:
            raise DualStreamError(
                f"aux source {self.name!r}: format {self.format} needs a variable"
            )
        if self.reduce not in ("none", "mean", "median", "max"):
            raise DualStreamError(
                f"aux source {self.name!r}: reduce must be none, mean, median or max"
            )
        if self.time is not None:
            self._check_time()
        self._check_applies()
        if self.derive:
            unknown = [name for name in self.derive if name not in TERRAIN]
            if unknown:
                raise DualStreamError(
                    f"aux source {self.name!r}: cannot derive {unknown[0]!r} (known: "
                    f"{', '.join(TERRAIN)})"
                )
            if self.transform != "none" or self.reduce != "none":
                raise DualStreamError(
                    f"aux source {self.name!r}: derive needs a plain elevation raster (no "
                    "transform)"
                )
        if self.bands is not None:
            if not self.bands:
                raise DualStreamError(f"aux source {self.name!r}: bands is empty")
            bad = [b for b in self.bands if isinstance(b, int) and b < 1]
            if bad:
                raise DualStreamError(
                    f"aux source {self.name!r}: band {bad[0]} (bands count from 1)"
                )

    def _check_time(self) -> None:
        """``time``: two ISO dates, the start not after the end."""
        if self.time is None or len(self.time) != 2:
            raise DualStreamError(f"aux source {self.name!r}: time is [start, end]")
        dates = []
        for value in self.time:
            try:
                dates.append(date.fromisoformat(str(value)[:10]))
            except ValueError:
                raise DualStreamError(
                    f"aux source {self.name!r}: time {value!r} is not a date (YYYY-MM-DD)"
                ) from None
        if dates[0] > dates[1]:
            raise DualStreamError(
                f"aux source {self.name!r}: time starts {dates[0]}, after its end {dates[1]}"
            )

    def _check_applies(self) -> None:
        """Settings of another format are refused, not ignored."""
        row = aux_format(self.format)
        given = {
            "variable": self.variable is not None,
            "time": self.time is not None,
            "qa_min": self.qa_min is not None,
            "count": self.count,
            "composite": self.composite != "mean",
            "reduce": self.reduce != "none",
            "derive": bool(self.derive),
        }
        for setting, set_ in given.items():
            if set_ and setting not in row.settings:
                raise DualStreamError(
                    f"aux source {self.name!r}: {setting} does not apply to format "
                    f"{self.format}: {SETTING_PURPOSE[setting]} (format "
                    f"{', '.join(applies_to(setting))})"
                )

    @property
    def num_channels(self) -> int:
        """Channels this source gives the aux stream (once resolved against its files)."""
        if self.channels is None:
            raise DualStreamError(f"aux source {self.name!r}: channels not resolved yet")
        return len(self.channels)

    def with_paths(self, paths: Sequence[str]) -> AuxSpec:
        """The same source read from other files (a split's own, or prediction inputs)."""
        return replace(self, paths=tuple(str(p) for p in paths))

    def settings(self) -> dict[str, Any]:
        """What defines the source's values, without where its files are."""
        out = asdict(self)
        out.pop("paths")
        out.pop("assets")
        return out


def original_aux(
    gems: Sequence[str] = (), air_pollution: Sequence[str] = ()
) -> tuple[AuxSpec, ...]:
    """The original project's aux stream as named sources.

    GEMS (12 channels) and the CO, NO2 and SO2 maps (12 each), read bilinearly as the
    original preset always was.
    """
    return (
        AuxSpec(
            "gems",
            tuple(gems),
            resampling="bilinear",
            format="original_gems",
            channels=GEMS_BANDS,
        ),
        AuxSpec(
            "air_pollution",
            tuple(air_pollution),
            resampling="bilinear",
            format="original_air",
            channels=POLLUTANT_BANDS,
        ),
    )


def aux_from_dict(raw: Mapping[str, Any]) -> AuxSpec:
    """An :class:`AuxSpec` from plain values (a checkpoint, or a parsed config)."""

    def optional_tuple(key: str) -> tuple[Any, ...] | None:
        value = raw.get(key)
        return tuple(value) if value is not None else None

    return AuxSpec(
        name=raw["name"],
        paths=tuple(raw.get("paths") or ()),
        bands=optional_tuple("bands"),
        nodata=raw.get("nodata"),
        resampling=raw.get("resampling", "average"),
        transform=raw.get("transform", "none"),
        format=raw.get("format", "raster"),
        variable=raw.get("variable"),
        time=optional_tuple("time"),  # type: ignore[arg-type]
        reduce=raw.get("reduce", "none"),
        qa_min=raw.get("qa_min"),
        composite=raw.get("composite", "mean"),
        count=bool(raw.get("count", False)),
        derive=tuple(raw.get("derive") or ()),
        filename_glob=raw.get("filename_glob"),
        assets=optional_tuple("assets"),
        channels=optional_tuple("channels"),
    )


def aux_specs(aux: Sequence[AuxSpec | Mapping[str, Any]] | str | None) -> tuple[AuxSpec, ...]:
    """The named aux sources of a datamodule's ``aux`` setting.

    Raises:
        DualStreamError: an unknown preset name.
    """
    if aux is None:
        return ()
    if isinstance(aux, str):
        if aux != "original":
            raise DualStreamError(f"aux must be a list of sources or 'original', got {aux!r}")
        return original_aux()
    return tuple(a if isinstance(a, AuxSpec) else aux_from_dict(a) for a in aux)
