"""Fields of GRIB 1 and GRIB 2 files as aux sources.

Fields of GRIB 1 and GRIB 2 files (ERA5 and CAMS as ECMWF distributes them) as aux sources,
read through GDAL's GRIB driver.

A GRIB file is a sequence of messages, one field (a variable at a level and a time) each.
GDAL gives every message as a band with its element (``2T``, ``TMP``, ``NO2``), its level
(``GRIB_SHORT_NAME``: ``0-SFC``, ``2-HTGL``) and its valid time in the band's metadata, on a
grid it georeferences itself (global 0-360 degree grids shifted to -180-180). A source names
its field by ``variable``: the element, or ``ELEMENT:LEVEL`` where the file holds the
element at several levels. Its messages within ``time`` become the bands of a VRT, described
by their valid time, so reading is windowed GDAL reading as for NetCDF variables
(:mod:`~dualstream_geo.data.auxiliary.netcdf`). GRIB values are physical already; GDAL
reports temperatures in degrees Celsius (its ``GRIB_NORMALIZE_UNITS`` default).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import rasterio
from rasterio.errors import RasterioError

from ...errors import DualStreamError
from ..remote import gdal_path, is_remote, redact
from ..vrt import dataset_xml
from .netcdf import scaled_band_xml, select_steps, write_field_vrt

#: Extensions of GRIB files a folder is searched for.
GRIB_EXTENSIONS = (".grib", ".grb", ".grib2", ".grb2")


@dataclass(frozen=True)
class Message:
    """One GRIB message as GDAL describes its band.

    1-based ``band``, ``element`` (``2T``), ``level`` (``0-SFC``) and ``valid`` time (UTC;
    None when GDAL gives none).
    """

    band: int
    element: str
    level: str
    valid: datetime | None

    @property
    def field(self) -> str:
        """``ELEMENT:LEVEL``: how a source names the field."""
        return f"{self.element}:{self.level}"

    @property
    def label(self) -> str:
        """The band's description: the valid date, with the time of day when not 00:00."""
        if self.valid is None:
            return ""
        if (self.valid.hour, self.valid.minute) == (0, 0):
            return self.valid.date().isoformat()
        return self.valid.strftime("%Y-%m-%dT%H:%M")


def valid_time(raw: str | None) -> datetime | None:
    """GDAL's ``GRIB_VALID_TIME`` (seconds since 1970, UTC; older GDAL appends ``sec UTC``)."""
    match = re.match(r"\s*(-?\d+)", raw or "")
    return datetime.fromtimestamp(int(match[1]), UTC) if match else None


def open_grib(path: str) -> rasterio.io.DatasetReader:
    """The GRIB file as a GDAL raster.

    Raises:
        DualStreamError: a missing or unreadable file.
    """
    if not is_remote(path) and not os.path.exists(path):
        raise DualStreamError(f"{path} does not exist")
    try:
        return rasterio.open(gdal_path(path))
    except RasterioError as error:
        raise DualStreamError(f"{redact(path)}: not a readable GRIB file ({error})") from None


def messages(src: rasterio.io.DatasetReader) -> list[Message]:
    """Every message of an open GRIB file, in band order."""
    out = []
    for band in range(1, src.count + 1):
        tags = src.tags(band)
        out.append(
            Message(
                band,
                tags.get("GRIB_ELEMENT", ""),
                tags.get("GRIB_SHORT_NAME", ""),
                valid_time(tags.get("GRIB_VALID_TIME")),
            )
        )
    return out


def select_field(found: Sequence[Message], variable: str, path: str) -> list[Message]:
    """The messages of ``variable`` (``ELEMENT`` or ``ELEMENT:LEVEL``, any case).

    Raises:
        DualStreamError: no such field, or an element at several levels with none named
            (the file's fields listed).
    """
    element, _, level = variable.upper().partition(":")
    chosen = [
        m for m in found if m.element.upper() == element and (not level or m.level.upper() == level)
    ]
    fields = sorted({m.field for m in found})
    if not chosen:
        listed = ", ".join(fields[:12]) + (" ..." if len(fields) > 12 else "")
        raise DualStreamError(
            f"{redact(path)}: no GRIB field {variable!r} (it has: {listed or 'none'})"
        )
    levels = sorted({m.level for m in chosen})
    if len(levels) > 1:
        raise DualStreamError(
            f"{redact(path)}: GRIB element {element} is at {len(levels)} levels "
            f"({', '.join(levels)}): name one, e.g. variable: {element}:{levels[0]}"
        )
    return chosen


def grib_vrt(path: str, variable: str, time: Sequence[Any] | None = None) -> str:
    """A VRT of the messages of ``variable`` in the GRIB file ``path`` within ``time``.

    A VRT of the messages of ``variable`` in the GRIB file ``path`` whose valid dates lie
    within ``time`` (inclusive): one float32 band each (NaN = no data), described by its
    valid time, on the grid GDAL gives the file.

    Returns:
        The VRT's path (in a folder private to the process; the same inputs, the same name).

    Raises:
        DualStreamError: a missing or unreadable file, no such field, no message in
            ``time``, or a grid without a CRS.
    """
    with open_grib(path) as src:
        if src.crs is None or src.transform.is_identity:
            raise DualStreamError(f"{redact(path)}: the GRIB grid has no CRS or geotransform")
        chosen = select_field(messages(src), variable, path)
        steps = [m.valid.date() if m.valid is not None else None for m in chosen]
        kept = [chosen[i - 1] for i in select_steps(steps, time, path)]
        parts = [
            scaled_band_xml(number, src.name, m.band, 1.0, 0.0, src.nodata, m.label)
            for number, m in enumerate(kept, start=1)
        ]
        document = dataset_xml(src.width, src.height, src.crs, src.transform, parts)
    return write_field_vrt("grib", document, path, variable, time)
