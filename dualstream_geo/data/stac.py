"""STAC Items as sources: the bands of a source taken from an Item's assets (pystac).

Each file a source expects (one image file of 4 bands, one GEMS file of 12, one file of 12
per pollutant) becomes a small VRT that stacks, band by band, the assets named for it:
one asset per band, or one multi-band asset. The VRTs live in a folder private to the
process and name the assets' hrefs (local files, URLs, GDAL virtual paths), so reading goes
straight to the asset files. When the Item has the projection extension (``proj:epsg`` or
``proj:wkt2``, ``proj:transform``, ``proj:shape``) and the raster extension
(``raster:bands`` with ``data_type``), the VRT is written without opening any file.
Several Items (an ItemCollection) make a mosaic, as several files do.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import pystac
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.dtypes import _gdal_typename

from ..errors import DualStreamError
from .remote import configure_gdal, gdal_path, is_remote, redact, redact_text
from .vrt import band_xml, dataset_xml

_folder: str | None = None


def _vrt_folder() -> str:
    global _folder
    if _folder is None:
        _folder = tempfile.mkdtemp(prefix="dualstream_geo_stac_")
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def read_items(source: Any) -> list[pystac.Item]:
    """The Items of ``source``.

    A pystac Item or ItemCollection, or the path or URL of one (JSON), or a list of any of
    these.
    """
    if isinstance(source, list | tuple):
        return [item for part in source for item in read_items(part)]
    if isinstance(source, pystac.Item):
        return [source]
    if isinstance(source, pystac.ItemCollection):
        return list(source)
    href = str(source)
    try:
        data = pystac.StacIO.default().read_json(href)
    except Exception as error:  # urllib, urllib3, requests or json: one line whichever
        raise DualStreamError(
            f"{redact(href)}: not a readable STAC Item ({_reason(error)})"
        ) from None
    if not isinstance(data, dict) or data.get("type") not in ("Feature", "FeatureCollection"):
        kind = data.get("type") if isinstance(data, dict) else type(data).__name__
        raise DualStreamError(
            f"{redact(href)}: not a STAC Item or ItemCollection (its JSON is a {kind})"
        )
    try:
        if data["type"] == "FeatureCollection":
            return list(pystac.ItemCollection.from_dict(data).items)
        item = pystac.Item.from_dict(data)
    except Exception as error:  # pystac's parsing errors vary by field
        raise DualStreamError(f"{redact(href)}: not a valid STAC Item ({_reason(error)})") from None
    item.set_self_href(href if is_remote(href) else os.path.abspath(href))
    return [item]


def _reason(error: BaseException) -> str:
    """The innermost reason of a failed read, one line, without credentials."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    text = " ".join(str(error).split()) or type(error).__name__
    return redact_text(text)[:200]


def _asset_href(item: pystac.Item, name: str) -> str:
    asset = item.assets.get(name)
    if asset is None:
        raise DualStreamError(
            f"STAC Item {item.id}: no asset {name!r} (it has {', '.join(sorted(item.assets))})"
        )
    href = asset.get_absolute_href() or asset.href
    return gdal_path(href)


def _grid(item: pystac.Item, hrefs: Sequence[str]) -> tuple[CRS, Affine, int, int]:
    """CRS, transform and shape from the projection extension, else from the first file."""
    props = item.properties
    crs_text = props.get("proj:wkt2") or (
        f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else props.get("proj:code")
    )
    transform, shape = props.get("proj:transform"), props.get("proj:shape")
    if crs_text and transform and shape:
        return CRS.from_user_input(crs_text), Affine(*transform[:6]), int(shape[0]), int(shape[1])
    with _open_asset(item, hrefs[0]) as src:
        return src.crs, src.transform, src.height, src.width


def _bands(item: pystac.Item, name: str, href: str) -> list[tuple[str, float | None]]:
    """(GDAL data type, nodata) of each band of an asset.

    The raster extension, else the file.
    """
    described = item.assets[name].extra_fields.get("raster:bands")
    if described and all("data_type" in band for band in described):
        return [(_gdal_typename(b["data_type"]), b.get("nodata")) for b in described]
    with _open_asset(item, href) as src:
        return [(_gdal_typename(dtype), src.nodata) for dtype in src.dtypes]


def _open_asset(item: pystac.Item, href: str) -> rasterio.io.DatasetReader:
    """Open an asset's file, or say in one line which Item's asset cannot be read."""
    configure_gdal()
    try:
        return rasterio.open(href)
    except rasterio.errors.RasterioError as error:
        raise DualStreamError(
            f"STAC Item {item.id}: asset {redact(href)} is not a readable raster ({_reason(error)})"
        ) from None


def stack_vrt(item: pystac.Item, assets: Sequence[str], filename: str) -> str:
    """Write ``filename``, a VRT stacking every band of ``assets`` in order.

    Write ``filename`` (in the process's VRT folder), a VRT stacking every band of
    ``assets`` in order; return its path.
    """
    hrefs = [_asset_href(item, asset) for asset in assets]
    crs, transform, height, width = _grid(item, hrefs)
    bands: list[str] = []
    for asset, href in zip(assets, hrefs, strict=True):
        for source_band, (dtype, nodata) in enumerate(_bands(item, asset, href), start=1):
            bands.append(band_xml(len(bands) + 1, dtype, href, source_band, nodata))
    document = dataset_xml(width, height, crs, transform, bands)
    path = os.path.join(_vrt_folder(), filename)
    with open(path, "w") as f:
        f.write(document)
    return path


def stac_files(
    items: Sequence[pystac.Item], assets: Sequence[str], prefix: str, groups: Sequence[str] = ()
) -> list[str]:
    """The VRT files a source reads for ``items``.

    One per Item named ``<prefix><id>_...``, or with ``groups`` (the pollutants) the assets
    split into equal parts, one file each, named ``<prefix><group>_<id>_...``; the first
    group's files are returned (the others are found by name, as for files on disk).
    """
    if not assets:
        raise DualStreamError("STAC: name the assets that hold the bands (--assets a,b,...)")
    if groups and len(assets) % len(groups):
        raise DualStreamError(
            f"STAC: {len(assets)} assets cannot be split into {', '.join(groups)} equally"
        )
    files = []
    for item in items:
        # The same Item and assets always map to the same names.
        digest = hashlib.sha1(f"{item.id}|{','.join(assets)}".encode()).hexdigest()[:10]
        stem = re.sub(r"[^A-Za-z0-9-]+", "-", item.id)
        if not groups:
            files.append(stack_vrt(item, assets, f"{prefix}{stem}_{digest}.vrt"))
            continue
        size = len(assets) // len(groups)
        written = [
            stack_vrt(item, assets[i * size : (i + 1) * size], f"{prefix}{g}_{stem}_{digest}.vrt")
            for i, g in enumerate(groups)
        ]
        files.append(written[0])
    return files
