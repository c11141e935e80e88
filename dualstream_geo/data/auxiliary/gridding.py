"""Gridded aux rasters.

Swaths gridded once per scene and source, kept in a cache keyed by the files and the grid;
and the GeoTIFF they are written as (also by ``dualstream-geo grid``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np
import rasterio
import rasterio.shutil
import rasterio.windows

from ...errors import DualStreamError
from ..grid import Grid
from ..remote import is_remote, redact, remote_version
from .files import cache_folder
from .formats import aux_format
from .spec import AuxSpec
from .swath import default_qa, grid_swaths

#: Files up to this size are hashed whole for the caches; larger ones by samples.
WHOLE_HASH_BYTES = 16 << 20
#: Bytes hashed from each of the samples of a larger file (its start, end and 62 places
#: evenly between).
SAMPLE_BYTES, SAMPLES = 64 << 10, 64


def content_digest(path: str) -> str:
    """A sha256 of the file's content.

    All of it up to :data:`WHOLE_HASH_BYTES`, else its header, its end and samples between
    A file rewritten in place with the same size and time is seen; a change that misses
    every sample of a large file is not.
    """
    digest = hashlib.sha256()
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size <= WHOLE_HASH_BYTES:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        else:
            for i in range(SAMPLES):
                f.seek((size - SAMPLE_BYTES) * i // (SAMPLES - 1))
                digest.update(f.read(SAMPLE_BYTES))
    return digest.hexdigest()


def files_fingerprint(files: Sequence[str]) -> list[list[object]]:
    """[path, size, mtime, content digest] of local files, [url, version] of remote ones.

    What a cached grid depends on.
    """
    out: list[list[object]] = []
    for path in files:
        if is_remote(path):
            out.append([redact(path), *remote_version(path)])
        else:
            stat = os.stat(path)
            real = os.path.realpath(path)
            digest = content_digest(real) if os.path.isfile(real) else ""
            out.append([real, stat.st_size, stat.st_mtime_ns, digest])
    return out


def swath_descriptions(spec: AuxSpec) -> list[str]:
    """Band descriptions of a gridded swath: the variable, then ``count``."""
    variable = (spec.variable or "value").split("/")[-1]
    return [variable, *(["count"] if spec.count else [])]


def swath_channels(spec: AuxSpec) -> tuple[str, ...]:
    """The channel names of a gridded swath source.

    As :class:`AuxRaster` names the bands of its cached grid: the source's name alone for
    one band.
    """
    descriptions = swath_descriptions(spec)
    if len(descriptions) == 1:
        return (spec.name,)
    return tuple(f"{spec.name}_{d}" for d in descriptions)


def readable_to_end(path: str, key: str | None = None) -> bool:
    """Whether the GeoTIFF at ``path`` reads to its end (and carries ``key``).

    True when the GeoTIFF at ``path`` opens, its last block of every band reads and, given a
    ``key``, its ``cache_key`` tag is that key (a cached file replaced by another is not
    taken for the one made).
    """
    try:
        with rasterio.open(path) as src:
            if key is not None and src.tags().get("cache_key") != key:
                return False
            height, width = src.block_shapes[0]
            last = rasterio.windows.Window(
                ((src.width - 1) // width) * width, ((src.height - 1) // height) * height, 1, 1
            )
            src.read(window=last)
    except rasterio.errors.RasterioError:
        return False
    return True


def write_grid(
    path: str,
    data: np.ndarray,
    grid: Grid,
    descriptions: Sequence[str],
    tags: Mapping[str, str],
    cog: bool = False,
) -> None:
    """Write ``data`` as a GeoTIFF (or a COG) on ``grid``, never half-written.

    ``data`` (bands, height, width) float32 as a tiled, compressed GeoTIFF (or a COG with
    overviews) on ``grid``, NaN as nodata, band descriptions and tags; written under a
    temporary name and renamed, so a reader never sees it half-written.

    Raises:
        DualStreamError: the file cannot be written.
    """
    tmp = f"{path}.{os.getpid()}.tmp.tif"
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": len(data),
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": float("nan"),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    try:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data.astype(np.float32))
            dst.update_tags(**tags)
            for band, description in enumerate(descriptions, start=1):
                dst.set_band_description(band, description)
        if not readable_to_end(tmp):
            # GDAL can close a file cut short by a full disk or a size limit without an
            # error; such a file must never take the final name.
            raise OSError("the file written is cut short: is the disk full?")
        if cog:
            final = f"{path}.{os.getpid()}.cog.tif"
            rasterio.shutil.copy(tmp, final, driver="COG", compress="DEFLATE", blocksize=256)
            os.replace(final, path)
        else:
            os.replace(tmp, path)
    except (OSError, rasterio.errors.RasterioError) as error:
        raise DualStreamError(f"{path}: writing the gridded raster failed ({error})") from None
    finally:
        for leftover in (tmp, f"{path}.{os.getpid()}.cog.tif"):
            if os.path.exists(leftover):
                os.remove(leftover)


def check_distinct(spec: AuxSpec, files: Sequence[str]) -> None:
    """Refuse a file given twice (by two paths, or a file and its folder).

    Its orbit or steps would count twice in the composite.

    Raises:
        DualStreamError: the file and its two paths.
    """
    seen: dict[str, str] = {}
    for path in files:
        key = path if "://" in path or path.startswith("/vsi") else os.path.realpath(path)
        if key in seen:
            raise DualStreamError(
                f"aux source {spec.name!r}: {redact(path)} is given twice (also as "
                f"{redact(seen[key])}): each file counts once"
            )
        seen[key] = path


def grid_data(
    spec: AuxSpec, files: Sequence[str], grid: Grid
) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """What the files of ``spec`` give on ``grid``.

    (bands, height, width) float32 values (NaN: no data; reduced over time when asked, but
    not log-transformed: that is applied when read), their band descriptions, and provenance
    tags.

    Swaths are gridded (:mod:`~dualstream_geo.data.auxiliary.swath`); a gridded field (a
    NetCDF / HDF5 / Zarr variable, a GRIB field) is read through its VRT with the source's
    resampling, exactly warped.

    Raises:
        DualStreamError: bad files, or nothing over the grid.
    """
    check_distinct(spec, files)
    tags = {
        "source_files": json.dumps([redact(f) for f in files]),
        "variable": spec.variable or "",
        "format": spec.format,
    }
    field = aux_format(spec.format).vrt
    if field is not None:
        from .raster import AuxRaster

        vrts = [field(f, spec.variable or "", spec.time) for f in files]
        source = AuxRaster(
            vrts,
            name=spec.name,
            bands=spec.bands,
            nodata=spec.nodata,
            resampling=spec.resampling,
            reduce=spec.reduce,
            filename_glob="*.vrt",
        )
        data = source.read(list(source.index.filepath), grid, source.resampling)
        if not np.isfinite(data).any():
            raise DualStreamError(
                f"aux source {spec.name!r}: {files[0]} holds no value over the scene (bounds "
                f"{', '.join(f'{v:.6g}' for v in grid.bounds)} in {grid.crs.to_string()})"
            )
        labels = [b[len(spec.name) + 1 :] if b != spec.name else "" for b in source.all_bands]
        descriptions = [label or (spec.variable or "").split("/")[-1] for label in labels]
        tags |= {"time": json.dumps(list(spec.time) if spec.time else None)}
        tags |= {"reduce": spec.reduce, "resampling": spec.resampling}
        return data.astype(np.float32), descriptions, tags
    data = grid_swaths(
        files,
        grid,
        spec.format,
        spec.variable or "",
        spec.qa_min,
        spec.composite,
        spec.count,
    )
    qa = spec.qa_min if spec.qa_min is not None else default_qa(spec.format, spec.variable or "")
    tags |= {"qa_min": "" if qa is None else str(qa), "composite": spec.composite}
    return data, swath_descriptions(spec), tags


def gridded(spec: AuxSpec, files: Sequence[str], grid: Grid) -> str:
    """The files of ``spec`` on ``grid`` (:func:`grid_data`).

    A GeoTIFF in the cache, made on first use and reused while the files, the grid and the
    settings stay the same (two runs making it at once both write a complete file; the last
    rename wins, with the same content).
    """
    settings = {
        "format": spec.format,
        "variable": spec.variable,
        "bands": list(spec.bands) if spec.bands else None,
        "time": list(spec.time) if spec.time else None,
        "reduce": spec.reduce,
        "resampling": spec.resampling,
        "nodata": spec.nodata,
        "qa_min": spec.qa_min,
        "composite": spec.composite,
        "count": spec.count,
        "grid": [grid.crs.to_wkt(), list(grid.transform)[:6], grid.height, grid.width],
        "files": files_fingerprint(files),
    }
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    path = os.path.join(cache_folder("gridded"), f"{spec.name}_{key}.tif")
    if os.path.exists(path) and readable_to_end(path, key):
        return path
    data, descriptions, tags = grid_data(spec, files, grid)
    write_grid(path, data, grid, descriptions, {**tags, "cache_key": key})
    return path
