"""The raster sources: :class:`GeoRaster` and the satellite image.

The land-cover mask is in :mod:`~dualstream_geo.data.land_cover`, the aux stream's sources
in :mod:`~dualstream_geo.data.auxiliary`.

Each is a TorchGeo :class:`~torchgeo.datasets.RasterDataset` (file discovery, spatial index,
CRS handling) that also validates its files up front and can read itself onto any
:class:`~dualstream_geo.data.grid.Grid`; :class:`~dualstream_geo.data.join.DualStreamGeoDataset`
uses that to read every stream on its own grid.
"""

from __future__ import annotations

import fnmatch
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self, override

import numpy as np
import rasterio
import torch
from affine import Affine
from rasterio.crs import CRS
from rasterio.dtypes import _gdal_typename
from rasterio.enums import Resampling
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window
from torchgeo.datasets import RasterDataset
from torchgeo.datasets.errors import DatasetNotFoundError
from torchgeo.datasets.utils import GeoSlice, Path, Sample, find_files

from ..errors import DualStreamError
from .grid import Grid, decimated_read, open_raster, read_onto
from .remote import describe_error, is_remote, source_paths, warn_if_not_cloud_optimised
from .stac import read_items, stac_files
from .vrt import band_xml, dataset_xml
from .warped_rows import WarpedRows

IGNORE_INDEX = 255

#: Per-file georeferencing for tiles that carry none: path -> (crs, transform).
Georef = Mapping[str, tuple[CRS, Affine]]


def has_georeferencing(src: DatasetReader) -> bool:
    """True when the file carries a CRS and a non-identity transform."""
    return src.crs is not None and not src.transform.is_identity


def georeferenced_vrt(path: str, crs: CRS, transform: Affine) -> str:
    """A VRT document that gives the un-georeferenced raster ``path`` a CRS and transform.

    GDAL reads through it like any georeferenced file, so indexing, warping and windowed
    reads need no special case.
    """
    with rasterio.open(path) as src:
        width, height, dtypes, nodata = src.width, src.height, src.dtypes, src.nodata
    source = os.path.abspath(path)
    bands = [
        band_xml(band, _gdal_typename(dtype), source, band, nodata)
        for band, dtype in enumerate(dtypes, start=1)
    ]
    return dataset_xml(width, height, crs, transform, bands)


def _check_readable(path: str, src: DatasetReader) -> None:
    """Read the last block of band 1: a truncated GeoTIFF opens but fails here."""
    block_h, block_w = src.block_shapes[0]
    row = ((src.height - 1) // block_h) * block_h
    col = ((src.width - 1) // block_w) * block_w
    try:
        src.read(1, window=Window(col, row, min(block_w, src.width - col), block_h))
    except rasterio.errors.RasterioError as error:
        raise DualStreamError(f"{path}: corrupt or truncated raster ({error})") from None


class GeoRaster(RasterDataset):
    """A RasterDataset that validates its files and reads onto any grid.

    Subclasses set ``num_channels`` and may map one index entry to several files
    (:meth:`channel_files`), e.g. one file per band or per pollutant.

    Args:
        paths: files or folders (local, URLs, or GDAL paths).
        crs: the CRS to index in (default: the first file's).
        res: the resolution to index at (default: the first file's).
        transforms: applied to the samples ``source[x, y]`` returns on its own.
        nodata: the files' nodata value when they carry none.
        filename_glob: which files of a folder to take.
        georef_fallback: footprints for files without georeferencing.
        cache: TorchGeo's file-handle cache (RasterDataset's ``cache``).

    Raises:
        DualStreamError: no matching file, or a file that cannot be read (named).
    """

    filename_glob = "*.tif"
    num_channels: int = 1
    #: GDAL's approximate-transformer error when warping (pixels; see ``read_onto``).
    warp_tolerance: float = 0.125
    #: Exact warps served from rows warped once across a run of windows (set by the join's
    #: :meth:`~dualstream_geo.data.join.DualStreamGeoDataset.aux_rows_warped_once`).
    warped_rows: WarpedRows | None = None
    #: How files built from STAC Items are named (see :meth:`from_stac`).
    stac_prefix: ClassVar[str] = ""
    stac_groups: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        paths: Path | Iterable[Path],
        crs: CRS | None = None,
        res: float | tuple[float, float] | None = None,
        transforms: Any = None,
        nodata: float | None = None,
        filename_glob: str | None = None,
        georef_fallback: Georef | None = None,
        cache: bool = True,
    ) -> None:
        if filename_glob is not None:
            self.filename_glob = filename_glob
        self.nodata = nodata
        self.georef_fallback = dict(georef_fallback or {})
        self._vrt = {p: georeferenced_vrt(p, c, t) for p, (c, t) in self.georef_fallback.items()}
        paths = source_paths(paths)
        listed = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
        missing = [str(p) for p in listed if not is_remote(p) and not os.path.exists(p)]
        if missing:
            # Every path given must be there: a mosaic missing one file is not the scene.
            raise DualStreamError(f"{self.label}: {missing[0]} does not exist")
        try:
            super().__init__(paths, crs=crs, res=res, transforms=transforms, cache=cache)
        except DatasetNotFoundError:
            raise DualStreamError(
                f"{self.label}: no rasters matching {self.filename_glob!r} in {paths!r}"
            ) from None

    @classmethod
    def from_stac(cls, items: Any, assets: Sequence[str], **kwargs: Any) -> Self:
        """The source whose bands are the ``assets`` of STAC Items.

        A pystac Item or ItemCollection, a path or URL of one, or a list of these; in
        channel order: one asset per band or multi-band assets
        (:mod:`~dualstream_geo.data.stac`).

        Args:
            items: the STAC Items.
            assets: the asset keys, in channel order.
            **kwargs: the source's other settings.

        Returns:
            The source reading the assets through a VRT per Item.
        """
        paths = stac_files(read_items(items), list(assets), cls.stac_prefix, cls.stac_groups)
        first = f"{cls.stac_groups[0]}_" if cls.stac_groups else ""
        kwargs.setdefault("filename_glob", f"{cls.stac_prefix}{first}*.vrt")
        return cls(paths, **kwargs)

    # -- files ---------------------------------------------------------------------------
    @property
    def files(self) -> list[str]:
        """Local paths are searched (folders with ``filename_glob``) as TorchGeo does.

        Remote paths are files as given: opening them never lists a folder.
        """
        listed = [self.paths] if isinstance(self.paths, str | os.PathLike) else self.paths
        files = {
            str(p)
            for p in listed
            if is_remote(p)
            and fnmatch.fnmatch(os.path.basename(str(p).split("?")[0]), self.filename_glob)
        }
        for path in listed:
            if not is_remote(path):
                found = find_files(path, self.filename_glob)
                if not found and not os.path.isdir(path):
                    warnings.warn(f"no raster found at {path}; it is ignored", stacklevel=2)
                files.update(found)
        return sorted(files)

    def resolve(self, path: str) -> str:
        """What GDAL should open for ``path``: the file, or its georeferencing VRT."""
        return self._vrt.get(path, path)

    def channel_files(self, filepath: str) -> list[tuple[str, list[int]]]:
        """The files and 1-based band indexes that make up the channels of one index entry."""
        return [(filepath, list(range(1, self.num_channels + 1)))]

    @property
    def label(self) -> str:
        """How messages name the source."""
        return type(self).__name__

    def cached_names(self, key: str) -> list[str]:
        """File names of the warped-once copy of one scene.

        See :mod:`~dualstream_geo.data.warp_cache`: one per file of an index entry, named so
        that :meth:`relocated` finds them as it finds the original files.
        """
        return [f"{key}.tif"]

    def relocated(self, paths: Sequence[str]) -> Self:
        """The same source over other files holding the same bands (its warped-once copy).

        Their nodata is NaN, their bands are the ones this source reads.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot be relocated")

    def sample_values(self, filepath: str) -> list[np.ndarray]:
        """Decimated values of one index entry (what statistics are computed from).

        One float32 array (channels, pixels) per file, in channel order, converted, NaN =
        nodata.
        """
        return [
            self.convert(decimated_read(open_raster(self.resolve(path)), indexes, self.nodata))
            for path, indexes in self.channel_files(filepath)
        ]

    def convert(self, values: np.ndarray) -> np.ndarray:
        """Raw values (C, ...) float32, NaN = nodata -> the values the stream carries.

        The identity here; an aux source may take logarithms (:class:`~dualstream_geo.data.
        auxiliary.AuxRaster`). Statistics and checks see converted values, like samples.
        """
        return values

    def _validate(self, filepath: str) -> None:
        for path, indexes in self.channel_files(filepath):
            if not is_remote(path) and not os.path.exists(path):
                raise DualStreamError(f"{path}: missing (needed beside {filepath})")
            try:
                src = rasterio.open(path)
            except rasterio.errors.RasterioIOError as error:
                if is_remote(path):
                    raise DualStreamError(describe_error(path, error)) from None
                raise DualStreamError(f"{path}: not a readable raster ({error})") from None
            with src:
                warn_if_not_cloud_optimised(path, src)
                self._check_bands(path, src, indexes)
                self._check_nodata(path, src)
                if not has_georeferencing(src) and path not in self.georef_fallback:
                    raise DualStreamError(f"{path}: raster has no CRS or geotransform")
                _check_readable(path, src)

    def _check_nodata(self, path: str, src: DatasetReader) -> None:
        """A nodata value given for the source must be one the file's data type holds."""
        if self.nodata is None or np.isnan(self.nodata):
            return
        dtype = np.dtype(src.dtypes[0])
        info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
        if not info.min <= self.nodata <= info.max or (
            np.issubdtype(dtype, np.integer) and not float(self.nodata).is_integer()
        ):
            raise DualStreamError(
                f"{self.label}: nodata {self.nodata:g} cannot be a value of {path} ({dtype}: "
                f"{info.min:g} to {info.max:g})"
            )

    def _check_bands(self, path: str, src: DatasetReader, indexes: list[int]) -> None:
        if src.count < max(indexes):
            raise DualStreamError(
                f"{path}: {type(self).__name__} expects {len(indexes)} band(s) "
                f"(band {max(indexes)} at least), the file has {src.count}"
            )

    def _load_warp_file(self, filepath: Path, crs: CRS | None = None) -> DatasetReader | WarpedVRT:
        # TorchGeo opens every file here while indexing: validate once, before heavy work.
        self._validate(str(filepath))
        return super()._load_warp_file(self.resolve(str(filepath)), crs)  # type: ignore[arg-type]

    # -- reading -------------------------------------------------------------------------
    def read(self, filepaths: Iterable[str], grid: Grid, resampling: Resampling) -> np.ndarray:
        """Read the index entries ``filepaths`` onto ``grid``.

        Returns float32 (num_channels, grid.height, grid.width), NaN where no file has data.
        Earlier files win where files overlap.

        Args:
            filepaths: the index entries to read.
            grid: the grid to read onto.
            resampling: the warp's resampling.

        Returns:
            float32 (num_channels, grid.height, grid.width).
        """
        return self.convert(self.read_files(filepaths, grid, resampling))

    def read_files(
        self,
        filepaths: Iterable[str],
        grid: Grid,
        resampling: Resampling,
        tolerance: float | None = None,
    ) -> np.ndarray:
        """The files' own bands (before :meth:`convert`) onto ``grid``.

        Float32 (file channels, height, width), NaN where no file has data. ``tolerance``:
        the warp's (default the source's ``warp_tolerance``; 0: exact). An exact warp in the
        source's own resampling comes from :attr:`warped_rows` where they hold ``grid``.

        Args:
            filepaths: the index entries to read.
            grid: the grid to read onto.
            resampling: the warp's resampling.
            tolerance: the warp's error threshold in pixels.

        Returns:
            float32 (file channels, grid.height, grid.width).
        """
        tolerance = self.warp_tolerance if tolerance is None else tolerance
        if self.warped_rows is not None and tolerance == 0.0 and resampling == self.resampling:
            held = self.warped_rows.read(grid)
            if held is not None:
                return held
        return self.warp_files(filepaths, grid, resampling, tolerance)

    def warp_files(
        self, filepaths: Iterable[str], grid: Grid, resampling: Resampling, tolerance: float
    ) -> np.ndarray:
        """:meth:`read_files` by a warp of its own (never from :attr:`warped_rows`).

        Args:
            filepaths: the index entries to read.
            grid: the grid to read onto.
            resampling: the warp's resampling.
            tolerance: the warp's error threshold in pixels (0: exact).

        Returns:
            float32 (file channels, grid.height, grid.width).
        """
        filepaths = list(filepaths)
        channels = self.num_channels
        if filepaths:
            channels = sum(len(indexes) for _, indexes in self.channel_files(filepaths[0]))
        # Uninitialised: the first file writes every pixel (NaN where it has no data).
        out = np.empty((channels, grid.height, grid.width), dtype=np.float32)
        if not filepaths:
            out.fill(np.nan)
        for number, filepath in enumerate(filepaths):
            first = 0
            for path, indexes in self.channel_files(filepath):
                target = out[first : first + len(indexes)]
                try:
                    src = open_raster(self.resolve(path))
                    read_onto(
                        src,
                        indexes,
                        grid,
                        target,
                        resampling,
                        self.nodata,
                        number == 0,
                        tolerance,
                    )
                except rasterio.errors.RasterioError as error:  # a network failure, corrupt data
                    raise DualStreamError(describe_error(path, error)) from None
                first += len(indexes)
        return out

    def __getitem__(self, index: GeoSlice) -> Sample:
        """Read on the dataset's own grid (CRS and res), TorchGeo style; NaN marks no data."""
        x, y, _ = self._disambiguate_slice(index)
        height = round((y.stop - y.start) / y.step)
        width = round((x.stop - x.start) / x.step)
        crs = CRS.from_user_input(self.crs)
        grid = Grid.from_bounds(crs, x.start, y.stop, x.step, y.step, height, width)
        hits = self.index.cx[x.start : x.stop, y.start : y.stop]
        if hits.empty:
            raise IndexError(f"{index} not in {type(self).__name__} with bounds {self.bounds}")
        data = torch.from_numpy(self.read(hits.filepath, grid, self.resampling))
        sample: Sample = {"bounds": torch.tensor(grid.bounds, dtype=torch.float64)}
        sample["image" if self.is_image else "mask"] = data if self.is_image else data[0]
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample


class SatelliteImage(GeoRaster):
    """Multispectral image, ``len(bands)`` channels (default blue, green, red, nir).

    Either one multi-band file per scene, or one file per band (``band_files``: the token that
    names each band in the file name, e.g. ``("_b2", "_b3", "_b4", "_b5")`` for
    ``landsat_b2.tif`` ...). uint8, uint16 or float input, returned as raw float32.

    Args:
        paths: the image files, or folders holding them.
        bands: the band names, in file order.
        band_files: the token that names each band's file (None: multi-band files).
        band_indexes: the 1-based bands of each file to read (default: the first
            ``len(bands)``).
        **kwargs: :class:`GeoRaster`'s settings.
    """

    is_image = True

    def __init__(
        self,
        paths: Path | Iterable[Path],
        bands: Sequence[str] = ("blue", "green", "red", "nir"),
        band_files: Sequence[str] | None = None,
        band_indexes: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        self.all_bands = tuple(bands)
        self.num_channels = len(bands)
        self.band_files = tuple(band_files) if band_files else None
        if self.band_files and len(self.band_files) != len(bands):
            raise DualStreamError(
                f"band_files has {len(self.band_files)} entries, bands has {len(bands)}"
            )
        self.file_band_indexes = list(band_indexes or range(1, len(bands) + 1))
        if len(self.file_band_indexes) != len(bands):
            raise DualStreamError(
                f"band_indexes has {len(self.file_band_indexes)} entries, bands {len(bands)}"
            )
        if self.band_files and "filename_glob" not in kwargs:
            kwargs["filename_glob"] = f"*{self.band_files[0]}*.tif"
        super().__init__(paths, **kwargs)

    @override
    def channel_files(self, filepath: str) -> list[tuple[str, list[int]]]:
        if not self.band_files:
            return [(filepath, self.file_band_indexes)]
        folder, name = os.path.split(filepath)
        head, token, tail = name.rpartition(self.band_files[0])
        return [(os.path.join(folder, head + band + tail), [1]) for band in self.band_files]

    def _check_bands(self, path: str, src: DatasetReader, indexes: list[int]) -> None:
        t = src.transform
        if t.b or t.d:
            # Windows, the output grid and its COG follow the image's own north-up grid.
            raise DualStreamError(
                f"{path}: the image has a rotated geotransform ({t.a:g}, {t.b:g} / {t.d:g}, "
                f"{t.e:g}); warp it north-up first, e.g. gdalwarp {path} northup.tif"
            )
        exact = self.band_files is None and band_indexes_exact(self.file_band_indexes)
        if exact and src.count != self.num_channels:
            raise DualStreamError(
                f"{path}: SatelliteImage expects {self.num_channels} bands {self.all_bands}, "
                f"the file has {src.count} (pass band_indexes to select bands)"
            )
        super()._check_bands(path, src, indexes)


def band_indexes_exact(indexes: Sequence[int]) -> bool:
    """True when ``indexes`` is 1..n, i.e. the file is expected to hold exactly n bands."""
    return list(indexes) == list(range(1, len(indexes) + 1))
