"""AuxRaster: any coarse raster as a named source of the aux stream."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Self, override

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from torchgeo.datasets.utils import Path

from ...errors import DualStreamError
from ..grid import STATS_SIDE, Grid, decimated_read, open_raster
from ..remote import describe_error, is_remote
from ..sources import GeoRaster
from .spec import AuxSpec
from .terrain import cell_size_m, margin_grid, terrain


class AuxRaster(GeoRaster):
    """A named coarse raster of the aux stream: elevation, a pollutant map, a climate grid.

    Any GDAL raster in any CRS, local or remote (a TorchGeo ``RasterDataset``: files,
    folders with ``filename_glob``, URLs; :meth:`from_stac` for STAC Items). It is read onto
    the aux grid of each sample with its own ``resampling``.

    Channels: ``bands`` picks bands by 1-based index or by band description (default: every
    band of the first file); every file of the source must have them. The channel of a
    one-band file is called ``name``; otherwise each is ``<name>_<description>`` (or
    ``<name>_<index>`` where a band has no description), e.g. ``no2_2020-01``.

    Args:
        paths: files, folders or URLs.
        name: the source's name (:class:`~dualstream_geo.data.auxiliary.spec.AuxSpec`).
        bands: 1-based band indexes or band descriptions; None for every band.
        nodata: nodata value overriding the files' own.
        resampling: a GDAL warp method: ``average`` (continuous values), ``nearest`` or
            ``mode`` (categories), ``bilinear``, ...
        transform: ``log`` takes the natural logarithm (values <= 0 become nodata).
        derive: terrain computed from a one-band elevation source on the grid it is read
            onto, as more channels after it: ``slope``, ``northness``, ``eastness``
            (:mod:`~dualstream_geo.data.auxiliary.terrain`).
        reduce: ``mean``, ``median`` or ``max`` of the bands read (time steps, say): one
            channel, NaN ignored.
        filename_glob: the files of a folder that belong to the source.
        **kwargs: further :class:`~dualstream_geo.data.sources.GeoRaster` arguments.

    Raises:
        DualStreamError: a bad name, band, resampling or transform, naming the source and
            the file.
    """

    #: Coarse grids are small: exact warping costs little, and a window then reads exactly
    #: what the same cells of a whole scene read (no seams from the aux stream).
    warp_tolerance = 0.0

    def __init__(
        self,
        paths: Path | Iterable[Path],
        name: str,
        bands: Sequence[int | str] | None = None,
        nodata: float | None = None,
        resampling: str = "average",
        transform: str = "none",
        derive: Sequence[str] = (),
        reduce: str = "none",
        filename_glob: str = "*.tif",
        **kwargs: Any,
    ) -> None:
        self.spec = AuxSpec(
            name,
            bands=tuple(bands) if bands is not None else None,
            nodata=nodata,
            resampling=resampling,
            transform=transform,  # type: ignore[arg-type]
            derive=tuple(derive),
            reduce=reduce,  # type: ignore[arg-type]
        )
        self.name = name
        self.read_indexes: list[int] | None = None
        self.all_bands: tuple[str, ...] = ()
        self._resolved_from = ""
        super().__init__(paths, nodata=nodata, filename_glob=filename_glob, **kwargs)

    @override
    @property
    def label(self) -> str:
        return f"aux source {self.name!r}"

    @override
    def relocated(self, paths: Sequence[str]) -> Self:
        moved = type(self)(
            list(paths),
            name=self.name,
            resampling=self.spec.resampling,
            transform=self.spec.transform,
            derive=self.spec.derive,
            reduce=self.spec.reduce,
        )
        # The copy holds the bands read here, in order: its channels are these.
        moved.all_bands, moved.num_channels = self.all_bands, self.num_channels
        return moved

    @override
    @property
    def resampling(self) -> Resampling:
        return Resampling[self.spec.resampling]

    def read(self, filepaths: Iterable[str], grid: Grid, resampling: Resampling) -> np.ndarray:
        """As :meth:`GeoRaster.read`, with the derived terrain channels after the elevation.

        Read with a one-cell margin, so that a window and a whole scene agree.

        Args:
            filepaths: the index entries to read.
            grid: the grid to read onto.
            resampling: the warp's resampling.

        Returns:
            float32 (channels, grid.height, grid.width), NaN where no file has data.
        """
        if not self.spec.derive:
            return super().read(filepaths, grid, resampling)
        elevation = self.read_files(filepaths, margin_grid(grid), resampling)[0]
        derived = terrain(elevation, *cell_size_m(grid), self.spec.derive)
        return np.concatenate([elevation[None, 1:-1, 1:-1], derived])

    @override
    def sample_values(self, filepath: str) -> list[np.ndarray]:
        if not self.spec.derive:
            return super().sample_values(filepath)
        # The terrain of the decimated file on its own grid (cells as large as decimated).
        src = open_raster(self.resolve(filepath))
        values = decimated_read(src, self.read_indexes or [1], self.nodata)[0]
        scale = max(src.height, src.width) / STATS_SIDE
        height, width = src.height, src.width
        if scale > 1:
            height, width = max(1, round(src.height / scale)), max(1, round(src.width / scale))
        xmin, _, _, ymax = src.bounds
        grid = Grid.from_bounds(
            src.crs, xmin, ymax, abs(src.res[0]) * src.width / width,
            abs(src.res[1]) * src.height / height, height, width,
        )  # fmt: skip
        elevation = values.reshape(height, width)
        derived = terrain(elevation, *cell_size_m(grid), self.spec.derive)
        inner = elevation[1:-1, 1:-1][None]
        return [np.concatenate([inner, derived]).reshape(len(self.all_bands), -1)]

    @override
    def convert(self, values: np.ndarray) -> np.ndarray:
        if self.spec.reduce != "none" and len(values) > 1:
            reduce: dict[str, Callable[..., np.ndarray]] = {
                "mean": np.nanmean,
                "median": np.nanmedian,
                "max": np.nanmax,
            }
            with warnings.catch_warnings():  # all-NaN cells stay NaN, without a warning each
                warnings.simplefilter("ignore", RuntimeWarning)
                values = reduce[self.spec.reduce](values, axis=0, keepdims=True)
            values = values.astype(np.float32, copy=False)
        if self.spec.transform == "log":
            with np.errstate(invalid="ignore", divide="ignore"):
                values = np.where(values > 0, np.log(np.maximum(values, 1e-30)), np.nan)
            return values.astype(np.float32, copy=False)
        return values

    # -- bands ---------------------------------------------------------------------------
    @override
    def channel_files(self, filepath: str) -> list[tuple[str, list[int]]]:
        if self.read_indexes is None:
            raise DualStreamError(f"{self.label}: bands not resolved (no file opened yet)")
        return [(filepath, self.read_indexes)]

    def _validate(self, filepath: str) -> None:
        if self.read_indexes is None:
            # The first file indexed fixes the bands; the others are checked against it.
            path = self.resolve(filepath)
            if not is_remote(path) and not os.path.exists(path):
                raise DualStreamError(f"{self.label}: {path} does not exist")
            try:
                src = open_raster(path)
            except rasterio.errors.RasterioError as error:
                reason = " ".join(str(error).split())
                if is_remote(path):
                    raise DualStreamError(f"{self.label}: {describe_error(path, error)}") from None
                raise DualStreamError(
                    f"{self.label}: {path} is not a readable raster ({reason})"
                ) from None
            self._resolve(filepath, src)
        super()._validate(filepath)

    def _indexes_in(self, path: str, src: DatasetReader) -> list[int]:
        requested = self.spec.bands
        if requested is None:
            return list(range(1, src.count + 1))
        descriptions = [d or "" for d in src.descriptions]
        indexes = []
        for band in requested:
            if isinstance(band, int):
                if band > src.count:
                    raise DualStreamError(
                        f"{path}: {self.label} band {band} is out of range (the file has "
                        f"{src.count} band(s))"
                    )
                indexes.append(band)
            elif band in descriptions:
                indexes.append(descriptions.index(band) + 1)
            else:
                listed = ", ".join(repr(d) for d in descriptions if d) or "none"
                raise DualStreamError(
                    f"{path}: {self.label} has no band described {band!r} (descriptions: {listed})"
                )
        return indexes

    def _resolve(self, path: str, src: DatasetReader) -> None:
        indexes = self._indexes_in(path, src)
        descriptions = [d or "" for d in src.descriptions]
        labels = [_label(descriptions[i - 1]) or str(i) for i in indexes]
        if len(set(labels)) < len(labels):
            labels = [str(i) for i in indexes]
        self.read_indexes = indexes
        self.num_channels = len(indexes)
        # A one-band file is the source itself; a band picked from several keeps its label.
        single = len(indexes) == 1 and src.count == 1
        self.all_bands = (self.name,) if single else tuple(f"{self.name}_{x}" for x in labels)
        self._resolved_from = path
        if self.spec.reduce != "none":
            self.all_bands, self.num_channels = (self.name,), 1
        derive = self.spec.derive
        if derive:
            if len(indexes) != 1:
                raise DualStreamError(
                    f"{path}: {self.label} derives terrain from one elevation band; it reads "
                    f"{len(indexes)} (pick one with bands: [N])"
                )
            self.all_bands = (self.name, *(f"{self.name}_{d}" for d in derive))
            self.num_channels = len(self.all_bands)

    def _check_bands(self, path: str, src: DatasetReader, indexes: list[int]) -> None:
        mine = self._indexes_in(path, src)
        expected = len(indexes)
        if self.spec.bands is None and src.count != expected:
            raise DualStreamError(
                f"{path}: {self.label} has {src.count} band(s), {self._resolved_from} has "
                f"{expected}: the files of a source need the same bands"
            )
        if mine != indexes:
            raise DualStreamError(
                f"{path}: {self.label} finds its bands {list(self.spec.bands or [])} at "
                f"{mine}, {self._resolved_from} at {indexes}"
            )


def _label(description: str) -> str:
    """A band description as part of a channel name (spaces become '_')."""
    return re.sub(r"\s+", "_", description.strip())
