"""Gridded variables of NetCDF, HDF5 and Zarr files as aux sources.

Gridded variables of NetCDF, HDF5 and Zarr files (Level 3 products, CAMS, ERA5) as aux
sources, read through GDAL.

GDAL's multidimensional drivers give a variable as a raster (one band per time step) with
a geotransform from its latitude and longitude axes, but apply neither the variable's scale
and offset nor, for a CF latitude/longitude grid, a CRS. Each file is therefore seen through
a VRT that names the CRS (the file's, its ``grid_mapping``'s, or EPSG:4326 for CF
latitude/longitude axes in degrees), applies scale, offset and fill value, and keeps the
time steps of the date range asked for, one band each, described by date. Reading is then
ordinary windowed GDAL reading, as for a GeoTIFF.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import rasterio
from rasterio.crs import CRS
from rasterio.errors import CRSError, NotGeoreferencedWarning, RasterioError

from ...errors import DualStreamError
from ..remote import gdal_path, is_remote, redact
from ..vrt import dataset_xml
from .classic import check_whole
from .files import private_folder
from .zarr_axes import axis_units

#: Seconds per CF time unit.
_UNITS = {
    "second": 1,
    "seconds": 1,
    "s": 1,
    "minute": 60,
    "minutes": 60,
    "hour": 3600,
    "hours": 3600,
    "h": 3600,
    "day": 86400,
    "days": 86400,
    "d": 86400,
}


def driver_path(path: str, variable: str) -> str:
    """The GDAL name of ``variable`` in ``path``.

    NetCDF, HDF5 or Zarr by extension; a URL as GDAL's virtual path.
    """
    lower = path.rstrip("/").lower()
    path = gdal_path(path)
    if lower.endswith(".zarr"):
        return f'ZARR:"{path}":/{variable.lstrip("/")}'
    if lower.endswith((".h5", ".he5", ".hdf5", ".hdf")):
        return f'HDF5:"{path}"://{variable.lstrip("/")}'
    # GDAL quotes names with spaces (GEMS's "Data Fields"), as it lists them.
    name = f'"{variable}"' if " " in variable else variable
    return f'netcdf:"{path}":{name}'


def open_container(path: str) -> rasterio.io.DatasetReader:
    """``rasterio.open`` of a multidimensional file or of a swath's variable.

    Which have no geotransform by nature: without rasterio's NotGeoreferencedWarning, which
    would only tell the user what the format is.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        if is_remote(path) and path.rstrip("/").lower().endswith(".zarr"):
            # A remote store has no folder GDAL could list: name the driver.
            return rasterio.open(f'ZARR:"{gdal_path(path.rstrip("/"))}"')
        return rasterio.open(gdal_path(path))


def variables(path: str) -> list[str]:
    """The variables GDAL finds in a multidimensional file (for messages).

    Raises:
        DualStreamError: an unreadable file, or a NetCDF classic file cut short (GDAL would
            read its missing values as zeros).
    """
    broken = check_whole(path)
    if broken:
        raise DualStreamError(f"{redact(path)}: {broken}")
    try:
        with open_container(path) as src:
            names = [s.rsplit(":", 1)[-1].strip('"') for s in src.subdatasets]
            if not names and src.count:
                names = [src.tags(1).get("NETCDF_VARNAME", "")]
    except RasterioError as error:
        raise DualStreamError(
            f"{redact(path)}: not a readable NetCDF/HDF5/Zarr file ({error})"
        ) from None
    return [n for n in names if n]


def open_variable(path: str, variable: str) -> rasterio.io.DatasetReader:
    """The variable as a GDAL raster.

    Raises:
        DualStreamError: a missing or corrupt file, or a variable it does not hold (the
            variables it holds are listed).
    """
    if not os.path.exists(path) and "://" not in path:
        raise DualStreamError(f"{path} does not exist")
    names = variables(path)
    short = [n.strip("/").split("/")[-1] for n in names]
    wanted = variable.strip("/")
    if wanted not in [n.strip("/") for n in names] and wanted not in short:
        raise DualStreamError(
            f"{redact(path)}: no variable {variable!r} (it has: {', '.join(names) or 'none'})"
        )
    full = next((n for n in names if n.strip("/") == wanted or n.split("/")[-1] == wanted), wanted)
    try:
        return rasterio.open(driver_path(path, full))
    except RasterioError as error:
        raise DualStreamError(
            f"{redact(path)}: variable {variable!r} is unreadable ({error})"
        ) from None


def variable_crs(src: rasterio.io.DatasetReader, path: str, variable: str = "") -> CRS:
    """The CRS of a gridded variable.

    GDAL's, its grid_mapping's, or EPSG:4326 for CF latitude/longitude axes (from GDAL's
    tags, or a Zarr store's metadata for ``variable``).

    Raises:
        DualStreamError: no geolocation (no geotransform, or axes that are not lat/lon).
    """
    if src.transform.is_identity:
        raise DualStreamError(
            f"{redact(path)}: variable has no geolocation (no regular latitude/longitude or "
            "x/y axes); a swath needs the s5p_l2 / gems_l2 formats"
        )
    if src.crs is not None:
        return src.crs
    tags = {**src.tags(), **src.tags(1)}
    proj4 = tags.get("proj4") or next((v for k, v in tags.items() if k.endswith("#proj4")), None)
    if proj4:
        try:
            return CRS.from_proj4(proj4)
        except CRSError:
            pass
    degrees = [
        v for k, v in tags.items() if k.split("#")[0] in ("lat", "latitude", "lon", "longitude")
        and k.endswith("#units")
    ]  # fmt: skip
    if degrees and all(v.startswith("degree") for v in degrees):
        return CRS.from_epsg(4326)
    if path.rstrip("/").lower().endswith(".zarr") and os.path.isdir(path) and variable:
        # The same CF rule for a Zarr store, whose axes GDAL does not describe.
        units = axis_units(path, variable)
        if units and all(u.startswith("degree") for u in units):
            return CRS.from_epsg(4326)
    raise DualStreamError(
        f"{redact(path)}: the variable's grid has no CRS and its axes are not CF latitude/"
        "longitude in degrees; give a file with a grid_mapping"
    )


def time_steps(src: rasterio.io.DatasetReader) -> list[date | None]:
    """The date of each band from the time axis.

    CF ``<unit> since <date>``, or CDO's ``day as %Y%m%d.%f``; None where the file has no
    time axis.
    """
    tags = src.tags()
    units = next((v for k, v in tags.items() if k.lower() == "time#units"), "")
    out: list[date | None] = []
    for band in range(1, src.count + 1):
        band_tags = src.tags(band)
        raw = band_tags.get("NETCDF_DIM_time")
        unit = units
        if raw is None:  # GDAL's Zarr (and multidimensional) drivers
            raw, unit = band_tags.get("DIM_time_VALUE"), band_tags.get("DIM_time_UNIT", "")
        out.append(parse_time(raw, unit) if raw is not None and unit else None)
    return out


def parse_time(value: str, units: str) -> date:
    """A time coordinate as a date.

    Raises:
        DualStreamError: units that are neither CF ``<unit> since <date>`` nor ``day as
            %Y%m%d``.
    """
    number = float(value)
    if units.startswith("day as %Y%m%d"):
        whole = str(int(number))
        return date(int(whole[:4]), int(whole[4:6]), int(whole[6:8]))
    match = re.match(r"\s*(\w+)\s+since\s+(\d{1,4})-(\d{1,2})-(\d{1,2})", units)
    if not match or match[1].lower() not in _UNITS:
        raise DualStreamError(f"time units {units!r} are not understood")
    origin = datetime(int(match[2]), int(match[3]), int(match[4]))
    return (origin + timedelta(seconds=number * _UNITS[match[1].lower()])).date()


def select_steps(steps: Sequence[date | None], time: Sequence[Any] | None, path: str) -> list[int]:
    """1-based bands of the steps within ``time`` (start, end; inclusive dates).

    Raises:
        DualStreamError: a range with no step in it (the file's steps named).
    """
    if time is None:
        return list(range(1, len(steps) + 1))
    start, end = (date.fromisoformat(str(t)[:10]) for t in time)
    if any(s is None for s in steps):
        raise DualStreamError(f"{redact(path)}: time is selected but the variable has no time axis")
    chosen = [i + 1 for i, s in enumerate(steps) if s is not None and start <= s <= end]
    if not chosen:
        known = ", ".join(str(s) for s in steps[:6]) + (" ..." if len(steps) > 6 else "")
        raise DualStreamError(
            f"{redact(path)}: no time step between {start} and {end} (steps: {known})"
        )
    return chosen


def variable_vrt(path: str, variable: str, time: Sequence[Any] | None = None) -> str:
    """A VRT of ``variable`` in ``path``.

    Georeferenced, scale / offset / fill applied (float32, NaN = no data), the time steps
    within ``time`` as bands described by date.

    Returns:
        The VRT's path (in a folder private to the process; the same inputs, the same name).
    """
    with open_variable(path, variable) as src:
        crs = variable_crs(src, path, variable)
        steps = time_steps(src)
        bands = select_steps(steps, time, path)
        name = src.name
        fill = src.nodata
        parts = []
        for number, band in enumerate(bands, start=1):
            scale, offset = src.scales[band - 1] or 1.0, src.offsets[band - 1] or 0.0
            step = steps[band - 1]
            label = step.isoformat() if step is not None else ""
            if src.count > 1 and not label:
                label = f"step{band}"
            parts.append(scaled_band_xml(number, name, band, scale, offset, fill, label))
        document = dataset_xml(src.width, src.height, crs, src.transform, parts)
    return write_field_vrt("netcdf", document, path, variable, time)


def write_field_vrt(
    kind: str, document: str, path: str, variable: str, time: Sequence[Any] | None
) -> str:
    """Write a field's VRT ``document`` in the process's private ``kind`` folder.

    Named by the file, the variable and the time range (the same inputs, the same name).

    Returns:
        The VRT's path.
    """
    digest = hashlib.sha1(f"{path}|{variable}|{time}".encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9-]+", "-", os.path.basename(path.rstrip("/")))[:60]
    vrt = os.path.join(private_folder(kind), f"{stem}_{digest}.vrt")
    with open(vrt, "w") as f:
        f.write(document)
    return vrt


def scaled_band_xml(
    band: int,
    source: str,
    source_band: int,
    scale: float,
    offset: float,
    fill: float | None,
    description: str,
) -> str:
    """A float32 VRT band reading ``source_band`` of ``source`` as value x scale + offset.

    The fill value (and NaN) as no data.
    """
    from xml.sax.saxutils import escape

    nodata = f"<NODATA>{fill!r}</NODATA>" if fill is not None else ""
    return (
        f'<VRTRasterBand dataType="Float32" band="{band}">'
        f"<Description>{escape(description)}</Description><NoDataValue>nan</NoDataValue>"
        f'<ComplexSource><SourceFilename relativeToVRT="0">{escape(source)}</SourceFilename>'
        f"<SourceBand>{source_band}</SourceBand><ScaleOffset>{offset!r}</ScaleOffset>"
        f"<ScaleRatio>{scale!r}</ScaleRatio>{nodata}</ComplexSource></VRTRasterBand>"
    )
