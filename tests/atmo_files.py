"""Atmospheric products written by the tests in their producers' layouts (netCDF4): a
Sentinel-5P Level 2 orbit (groups, dimensions, attributes, fill values, the uint8 qa_value
with its scale factor, footprint corners), a GEMS Level 2 file, a CF Level 3 grid with a
time axis, and GRIB 2 messages as ECMWF's ERA5 and CAMS files hold them (GDAL's GRIB
driver)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import netCDF4
import numpy as np
import rasterio
import rasterio.shutil
from affine import Affine

#: GRIB 2 fields by name: (discipline, category, number) of WMO code table 4.2.
GRIB_PARAMETERS = {"TMP": (0, 0, 0), "RH": (0, 1, 1)}
#: GRIB 2 levels by name: (type of fixed surface, value) of WMO code table 4.5.
GRIB_LEVELS = {"0-SFC": (1, 0), "2-HTGL": (103, 2)}

S5P_FILL = np.float32(9.96921e36)


def write_s5p(
    path: Path,
    latitude: np.ndarray,
    longitude: np.ndarray,
    values: np.ndarray,
    qa: np.ndarray,
    variable: str = "carbonmonoxide_total_column",
    corners: tuple[np.ndarray, np.ndarray] | None = None,
    title: str = "TROPOMI/S5P CO Column 1-Orbit L2 Swath 7x7km",
) -> Path:
    """An S5P L2 file: ``latitude``, ``longitude``, ``values`` (scanline, ground_pixel; NaN
    written as the fill value), ``qa`` in 0-1 (stored as uint8 x 100 with scale 0.01),
    ``corners`` (lat, lon) of shape (scanline, ground_pixel, 4)."""
    scanlines, pixels = latitude.shape
    with netCDF4.Dataset(path, "w") as ds:
        ds.title = title
        ds.Conventions = "CF-1.7"
        product = ds.createGroup("PRODUCT")
        product.createDimension("time", 1)
        product.createDimension("scanline", scanlines)
        product.createDimension("ground_pixel", pixels)
        product.createDimension("corner", 4)
        dims = ("time", "scanline", "ground_pixel")
        for name, data, units in (
            ("latitude", latitude, "degrees_north"),
            ("longitude", longitude, "degrees_east"),
        ):
            var = product.createVariable(name, "f4", dims)
            var.units = units
            var[:] = data[None]
        var = product.createVariable(variable, "f4", dims, fill_value=S5P_FILL)
        var.units = "mol m-2"
        var.coordinates = "longitude latitude"
        var[:] = np.ma.masked_invalid(values[None].astype(np.float32))
        flag = product.createVariable("qa_value", "u1", dims)
        flag.scale_factor = np.float32(0.01)
        flag.add_offset = np.float32(0.0)
        flag.set_auto_scale(False)
        flag[:] = np.round(qa[None] * 100).astype(np.uint8)
        if corners is not None:
            geo = product.createGroup("SUPPORT_DATA").createGroup("GEOLOCATIONS")
            for name, data in zip(("latitude_bounds", "longitude_bounds"), corners, strict=True):
                var = geo.createVariable(name, "f4", ("time", "scanline", "ground_pixel", "corner"))
                var[:] = data[None]
    return path


def write_gems(
    path: Path,
    latitude: np.ndarray,
    longitude: np.ndarray,
    values: np.ndarray,
    flags: np.ndarray,
    variable: str = "ColumnAmountNO2Trop",
) -> Path:
    """A GEMS L2 file (NetCDF4): ``Geolocation Fields/Latitude|Longitude`` and ``Data
    Fields/<variable>|FinalAlgorithmFlags`` over (image, spatial) dimensions."""
    rows, cols = latitude.shape
    with netCDF4.Dataset(path, "w") as ds:
        ds.title = "GEMS L2 NO2"
        ds.createDimension("image", rows)
        ds.createDimension("spatial", cols)
        geo = ds.createGroup("Geolocation Fields")
        for name, data in (("Latitude", latitude), ("Longitude", longitude)):
            geo.createVariable(name, "f4", ("image", "spatial"))[:] = data
        fields = ds.createGroup("Data Fields")
        var = fields.createVariable(
            variable, "f4", ("image", "spatial"), fill_value=np.float32(-1e30)
        )
        var[:] = np.ma.masked_invalid(values.astype(np.float32))
        fields.createVariable("FinalAlgorithmFlags", "u1", ("image", "spatial"))[:] = flags
    return path


def write_l3(
    path: Path,
    lat: np.ndarray,
    lon: np.ndarray,
    values: np.ndarray,
    days: np.ndarray,
    variable: str = "no2",
    scale: float = 1.0,
    offset: float = 0.0,
    fill: float = -3.4e38,
) -> Path:
    """A CF Level 3 grid: ``variable`` (time, lat, lon) stored as int16 x ``scale`` +
    ``offset`` when a scale is given (float32 otherwise), time in days since 1970-01-01,
    latitudes ascending (south first), as many products store them."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.Conventions = "CF-1.6"
        ds.createDimension("time", len(days))
        ds.createDimension("lat", len(lat))
        ds.createDimension("lon", len(lon))
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 1970-01-01"
        t[:] = days
        for name, data, units in (("lat", lat, "degrees_north"), ("lon", lon, "degrees_east")):
            v = ds.createVariable(name, "f8", (name,))
            v.units = units
            v.standard_name = "latitude" if name == "lat" else "longitude"
            v[:] = data
        packed = scale != 1.0 or offset != 0.0
        dtype, missing = ("i2", np.int16(-32768)) if packed else ("f4", np.float32(fill))
        var = ds.createVariable(variable, dtype, ("time", "lat", "lon"), fill_value=missing)
        if packed:
            var.scale_factor = scale
            var.add_offset = offset
        var.units = "1e15 molec cm-2"
        var[:] = np.ma.masked_invalid(values)
    return path


def write_zarr(
    path: Path,
    y: np.ndarray,
    x: np.ndarray,
    values: np.ndarray,
    days: np.ndarray,
    crs_wkt: str | None = None,
) -> Path:
    """A Zarr v2 store as xarray writes one, uncompressed: ``no2`` (time, y, x) float32 with
    ``_ARRAY_DIMENSIONS``; ``lat``/``lon`` axes in degrees (CF, no grid_mapping) or, with
    ``crs_wkt``, ``y``/``x`` axes in metres and GDAL's ``_CRS`` attribute."""
    import json

    def array(name: str, data: np.ndarray, dims: list[str], attrs: dict[str, object]) -> None:
        folder = path / name
        folder.mkdir(parents=True)
        meta = {
            "zarr_format": 2,
            "shape": list(data.shape),
            "chunks": list(data.shape),
            "dtype": data.dtype.str,
            "compressor": None,
            "fill_value": "NaN" if data.dtype.kind == "f" else None,
            "order": "C",
            "filters": None,
        }
        (folder / ".zarray").write_text(json.dumps(meta))
        (folder / ".zattrs").write_text(json.dumps({"_ARRAY_DIMENSIONS": dims, **attrs}))
        (folder / ".".join(["0"] * data.ndim)).write_bytes(np.ascontiguousarray(data).tobytes())

    path.mkdir(parents=True)
    (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    (path / ".zattrs").write_text(json.dumps({"Conventions": "CF-1.7"}))
    names = ("y", "x") if crs_wkt else ("lat", "lon")
    units = ("m", "m") if crs_wkt else ("degrees_north", "degrees_east")
    for name, axis, unit in zip(names, (y, x), units, strict=True):
        array(name, axis.astype("<f8"), [name], {"units": unit})
    array("time", days.astype("<f8"), ["time"], {"units": "days since 1970-01-01"})
    extra: dict[str, object] = {"units": "1e15 molec cm-2"}
    if crs_wkt:
        extra["_CRS"] = {"wkt": crs_wkt}
    array("no2", values.astype("<f4"), ["time", *names], extra)
    return path


def write_grib(
    path: Path,
    transform: Affine,
    messages: list[tuple[str, str, datetime, np.ndarray]],
) -> Path:
    """A GRIB 2 file of ``messages`` (element, level, valid time, (rows, cols) values) on
    an EPSG:4326 grid: analyses (forecast time 0) from ECMWF (centre 98), one message each,
    written by GDAL's GRIB driver."""
    rows, cols = messages[0][3].shape
    staging = path.with_suffix(".staging.tif")
    profile = {"driver": "GTiff", "width": cols, "height": rows, "count": len(messages)}
    profile |= {"dtype": "float32", "crs": "EPSG:4326", "transform": transform}
    with rasterio.open(staging, "w", **profile) as dst:
        dst.write(np.stack([m[3] for m in messages]).astype(np.float32))
    options = {"PDS_PDTN": "0"}
    for band, (element, level, valid, _) in enumerate(messages, start=1):
        discipline, category, number = GRIB_PARAMETERS[element]
        surface, value = GRIB_LEVELS[level]
        options[f"BAND_{band}_DISCIPLINE"] = str(discipline)
        options[f"BAND_{band}_IDS"] = (
            "CENTER=98 SUBCENTER=0 MASTER_TABLE=2 SIGNF_REF_TIME=0 "
            f"REF_TIME={valid:%Y-%m-%dT%H:%M:%SZ} PROD_STATUS=0 TYPE=0"
        )
        # category, number, process, background, forecast process, hours, minutes
        # cut-off, time unit (1: hour), forecast time, surface 1 (type, scale, value),
        # surface 2 (missing)
        options[f"BAND_{band}_PDS_TEMPLATE_ASSEMBLED_VALUES"] = (
            f"{category} {number} 2 0 96 0 0 1 0 {surface} 0 {value} 255 0 0"
        )
    rasterio.shutil.copy(staging, path, driver="GRIB", **options)
    staging.unlink()
    return path
