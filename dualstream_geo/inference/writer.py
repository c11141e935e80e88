"""GeoTIFF output: a tiled partial file written strip by strip, then a COG under the final name."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.windows import Window

from ..data.grid import Grid
from ..errors import DualStreamError
from .legend import write_legend

#: Rows copied at a time when the ranks' parts are assembled (memory: rows x width x bands).
ASSEMBLE_ROWS = 256
CLASS_NODATA = 255
PROBABILITY_SCALE = 254  # uint8 probabilities: value / 254; 255 is nodata


@dataclass(frozen=True)
class OutputSpec:
    """One output raster: path, bands, dtype, nodata, overview resampling and metadata."""

    path: str
    count: int
    dtype: str
    nodata: float
    resampling: str
    tags: Mapping[str, str]
    descriptions: Sequence[str] = ()
    colormap: Mapping[int, tuple[int, int, int]] | None = None
    #: Class rasters: the names of values 0, 1, ... for the GIS legend sidecars.
    class_names: Sequence[str] = ()
    #: One rank's share of a run on several processes: ``.<rank>of<world size>``.
    part: str = ""

    @property
    def partial(self) -> str:
        """The partial GeoTIFF this part is written to before the output exists."""
        return f"{self.path}.partial{self.part}.tif"

    @property
    def progress(self) -> str:
        """The JSON file recording this part's rows written, for ``--resume``."""
        return f"{self.path}.partial{self.part}.json"


@contextmanager
def writing(spec: OutputSpec, what: str) -> Iterator[None]:
    """Turn a failed write (a full disk, a folder made read-only, a lost mount) into one line.

    The rows finished so far stay in the partial file for ``--resume``.
    """
    try:
        yield
    except (OSError, rasterio.errors.RasterioError) as error:
        cause = error.__cause__ if isinstance(error, rasterio.errors.RasterioError) else None
        reason = " ".join(str(cause or getattr(error, "strerror", None) or error).split())
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            reason = "no space left on the device"
        raise DualStreamError(
            f"--output {spec.path}: {what} failed ({reason}); the finished rows are kept: "
            "fix it and rerun the same command with --resume"
        ) from None


def rank_part(spec: OutputSpec, rank: int, world_size: int) -> OutputSpec:
    """The partial file where rank ``rank`` of ``world_size`` writes its rows."""
    return replace(spec, part=f".{rank}of{world_size}")


def create_partial(spec: OutputSpec, grid: Grid) -> None:
    """An empty tiled GeoTIFF on ``grid`` under the partial name."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": spec.count,
        "dtype": spec.dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": spec.nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    with (
        writing(spec, "creating the partial file"),
        rasterio.open(spec.partial, "w", **profile) as dst,
    ):
        dst.update_tags(**spec.tags)
        for band, description in enumerate(spec.descriptions, start=1):
            dst.set_band_description(band, description)
        if spec.colormap:
            dst.write_colormap(1, dict(spec.colormap))


def assemble(
    spec: OutputSpec, grid: Grid, parts: Sequence[OutputSpec], rows: Sequence[range]
) -> None:
    """``spec``'s partial file made of rows ``rows[i]`` of each part.

    A band of rows at a time.
    """
    create_partial(spec, grid)
    with rasterio.open(spec.partial, "r+") as dst:
        for part, share in zip(parts, rows, strict=True):
            if not share:
                continue
            with rasterio.open(part.partial) as src:
                for row in range(share.start, share.stop, ASSEMBLE_ROWS):
                    window = Window(0, row, src.width, min(ASSEMBLE_ROWS, share.stop - row))
                    dst.write(src.read(window=window), window=window)


def write_rows(spec: OutputSpec, row: int, data: np.ndarray) -> None:
    """Write ``data`` (count, rows, width) at ``row``; closing the file makes it durable."""
    window = Window(0, row, data.shape[2], data.shape[1])
    with writing(spec, "writing rows"), rasterio.open(spec.partial, "r+") as dst:
        dst.write(data.astype(spec.dtype, copy=False), window=window)


def read_progress(spec: OutputSpec) -> tuple[int, dict[str, Any] | None]:
    """(rows written, settings signature) of an interrupted run; (0, None) when none."""
    if not (os.path.exists(spec.partial) and os.path.exists(spec.progress)):
        return 0, None
    try:
        with open(spec.progress) as f:
            state = json.load(f)
        return int(state["rows_done"]), dict(state["signature"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, None


def write_progress(spec: OutputSpec, signature: Mapping[str, Any], rows_done: int) -> None:
    """Record ``rows_done`` and the run's ``signature`` beside ``spec``'s partial file."""
    tmp = f"{spec.progress}.tmp"
    with writing(spec, "recording progress"):
        with open(tmp, "w") as f:
            json.dump({"rows_done": rows_done, "signature": dict(signature)}, f)
        os.replace(tmp, spec.progress)


def finalize(spec: OutputSpec) -> None:
    """Copy the partial file to a compressed COG with internal overviews, then rename it."""
    tmp = f"{spec.path}.cog.tmp"
    try:
        with writing(spec, "writing the COG"):
            rasterio.shutil.copy(
                spec.partial,
                tmp,
                driver="COG",
                compress="DEFLATE",
                blocksize=256,
                overview_resampling=spec.resampling,
                BIGTIFF="IF_SAFER",
            )
            if spec.class_names and spec.colormap:
                # Sidecars first: a run killed in between leaves no COG without its legend.
                colors = [spec.colormap[i] for i in range(len(spec.class_names))]
                write_legend(spec.path, spec.class_names, colors)
            os.replace(tmp, spec.path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    for leftover in (spec.partial, spec.progress):
        if os.path.exists(leftover):
            os.remove(leftover)


def class_tags(class_names: Sequence[str]) -> dict[str, str]:
    """The GeoTIFF tags that name the classes of a map."""
    return {"class_names": json.dumps(list(class_names))}


def write_blended(
    specs: Sequence[OutputSpec], row: int, scores: np.ndarray, weights: np.ndarray
) -> None:
    """Write finished rows from row ``row`` on to each output.

    ``scores`` (K, rows, width), the blend-weighted sums of the class probabilities, over
    ``weights`` (rows, width); classes (argmax) or uint8 probabilities (x
    ``PROBABILITY_SCALE``), nodata where no window covered a pixel.
    """
    covered = weights > 0
    probs = scores / np.where(covered, weights, 1.0)
    for spec in specs:
        if spec.count == 1:
            data = np.where(covered, probs.argmax(0), CLASS_NODATA)[None]
        else:
            data = np.where(covered[None], np.rint(probs * PROBABILITY_SCALE), 255)
        write_rows(spec, row, data)
