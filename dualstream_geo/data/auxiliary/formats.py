"""The aux formats, one row each.

Which settings a source of the format takes and how its files are read. Adding a format is
one reader module and one row of :data:`FORMATS` (CONTRIBUTING.md, "Adding an aux format");
everything else asks the row.

Three ways of reading exist. A plain raster is read onto each sample's aux grid by GDAL's
warper (:class:`~dualstream_geo.data.auxiliary.AuxRaster`). A gridded field (a NetCDF /
HDF5 / Zarr variable, a GRIB field) is first seen through a VRT (``vrt``: file, variable,
time -> the VRT's path), then read like a raster, or gridded once per scene onto its aux
grid and cached. A Level 2 swath (``swath``) is gridded once per scene by
:mod:`~dualstream_geo.data.auxiliary.swath`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import DualStreamError
from .files import MULTIDIMENSIONAL
from .grib import GRIB_EXTENSIONS, grib_vrt
from .netcdf import variable_vrt

#: A gridded field's reader: (file, variable, (start, end) dates or None) -> a VRT's path.
FieldReader = Callable[[str, str, Sequence[Any] | None], str]

#: Why a setting applies to some formats only (the formats it applies to are appended).
SETTING_PURPOSE = {
    "variable": "a variable names a field of a multidimensional, GRIB or Level 2 file",
    "time": "time selects the steps of a gridded field; for swaths give the orbit files of "
    "the dates wanted",
    "qa_min": "quality filtering applies to Level 2 swaths",
    "count": "the orbit count applies to Level 2 swaths",
    "composite": "compositing orbits applies to Level 2 swaths",
    "reduce": "reducing time steps applies to rasters and gridded fields (swaths are "
    "composited over orbits)",
    "derive": "terrain is derived from a plain elevation raster",
}


@dataclass(frozen=True)
class AuxFormat:
    """How the sources of one format are read.

    Args:
        name: the ``format`` of an :class:`~dualstream_geo.data.auxiliary.spec.AuxSpec`.
        summary: what its files are, in a few words.
        settings: the format-specific settings of the spec that apply (of
            :data:`SETTING_PURPOSE`); ``variable`` among them means one is needed.
        extensions: what a folder given as a path is searched for (none: rasters, found by
            the source's ``filename_glob``).
        vrt: a gridded field's reader; None for other formats.
        swath: Level 2 swaths, gridded onto each scene's aux grid; their channels are
            known from the spec alone.
        original: the original dataset's files (12 channels per file, min-max scaled per
            file by the original scaling).
    """

    name: str
    summary: str
    settings: frozenset[str] = frozenset({"reduce"})
    extensions: tuple[str, ...] = ()
    vrt: FieldReader | None = None
    swath: bool = False
    original: bool = False

    @property
    def needs_variable(self) -> bool:
        """A source of this format must name its variable."""
        return "variable" in self.settings

    @property
    def gridded(self) -> bool:
        """Its files can be gridded once per scene onto the scene's aux grid (cached)."""
        return self.swath or self.vrt is not None


_FIELD = frozenset({"variable", "time", "reduce"})
_SWATH = frozenset({"variable", "qa_min", "count", "composite"})

#: Every aux format by name.
FORMATS = {
    row.name: row
    for row in (
        AuxFormat(
            "raster",
            "any GDAL raster (GeoTIFF, COG, VRT, ...)",
            frozenset({"reduce", "derive"}),
        ),
        AuxFormat(
            "netcdf",
            "a gridded variable of NetCDF, HDF5 or Zarr files (Level 3, CAMS, ERA5)",
            _FIELD,
            MULTIDIMENSIONAL,
            vrt=variable_vrt,
        ),
        AuxFormat(
            "grib",
            "a field of GRIB 1 / GRIB 2 files (ERA5, CAMS as distributed)",
            _FIELD,
            GRIB_EXTENSIONS,
            vrt=grib_vrt,
        ),
        AuxFormat("s5p_l2", "Sentinel-5P Level 2 swaths", _SWATH, MULTIDIMENSIONAL, swath=True),
        AuxFormat("gems_l2", "GEMS Level 2 swaths", _SWATH, MULTIDIMENSIONAL, swath=True),
        AuxFormat(
            "original_gems", "the original dataset's GEMS_* files", frozenset(), original=True
        ),
        AuxFormat(
            "original_air",
            "the original dataset's AIR_Pollution_{CO,NO2,SO2}_* files",
            frozenset(),
            original=True,
        ),
    )
}


def aux_format(name: str) -> AuxFormat:
    """The row of format ``name``.

    Raises:
        DualStreamError: an unknown format (the known ones listed).
    """
    if name not in FORMATS:
        raise DualStreamError(f"aux format {name!r} is unknown (known: {', '.join(FORMATS)})")
    return FORMATS[name]


def applies_to(setting: str) -> list[str]:
    """The formats that take ``setting``."""
    return [name for name, row in FORMATS.items() if setting in row.settings]
