"""DualStreamGeoDataset: a CRS-aware join that reads each stream on its own grid."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
import torch
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from torch import Tensor
from torchgeo.datasets import GeoDataset
from torchgeo.datasets.utils import GeoSlice

from ..errors import DualStreamError
from .grid import Grid
from .land_cover import LandCoverMask
from .sources import GeoRaster, SatelliteImage
from .warped_rows import WarpedRows

Sample = dict[str, Any]


def collate_samples(samples: Sequence[Sample]) -> Sample:
    """Stack tensors along a new batch axis; other values (``crs``) become lists."""
    batch: Sample = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        batch[key] = torch.stack(values) if isinstance(values[0], Tensor) else values
    return batch


class DualStreamGeoDataset(GeoDataset):
    """Image, optional mask and coarse air stream over the intersection of their footprints.

    The index lives in the image CRS at the image resolution; ``ds[x, y]`` returns

    * ``image`` (C, H, W) float32 and ``mask`` (H, W) int64 on the image grid,
    * ``air`` (sum of air channels, H / aux_scale, W / aux_scale) float32 over the same bounds,
    * ``valid`` (H, W) bool, false where the image has no data,
    * ``bounds`` (4,) float64 ``xmin, ymin, xmax, ymax``, and ``crs`` (rasterio CRS).

    Every source is reprojected on the fly from its own CRS (bilinear for the image, nearest
    for the mask, each air source with its own ``resampling``: bilinear for GEMS and
    AirPollution, an :class:`~dualstream_geo.data.auxiliary.AuxRaster`'s as configured).
    Air nodata/NaN is filled with ``aux_fill`` (per channel; the datamodule passes the band
    means, so filled pixels normalise to 0). Image nodata sets
    ``valid`` false and the mask to ``ignore_index`` there. With ``air=None`` no ``air`` key
    is returned (the model's air-absent path).

    Args:
        image: the image source; its grid is the dataset's.
        air: the aux sources, in stream order (None: the image alone).
        mask: the labels (None: no ``mask`` in the samples).
        aux_scale: aux pixels are ``aux_scale`` image pixels wide.
        aux_fill: what missing aux values become: one value, or one per aux channel.
        transforms: applied to every sample (normalisation).

    Raises:
        DualStreamError: a bad setting, or sources that do not overlap.
    """

    def __init__(
        self,
        image: SatelliteImage,
        air: GeoRaster | Sequence[GeoRaster] | None,
        mask: LandCoverMask | None = None,
        aux_scale: int = 8,
        aux_fill: float | Sequence[float] = 0.0,
        transforms: Callable[[Sample], Sample] | None = None,
    ) -> None:
        if aux_scale < 1:
            raise DualStreamError(f"aux_scale must be >= 1, got {aux_scale}")
        if not isinstance(image, SatelliteImage):
            raise DualStreamError(f"image must be a SatelliteImage source, got {image!r}")
        for source in [air] if isinstance(air, GeoRaster) else list(air or []):
            if not isinstance(source, GeoRaster):
                raise DualStreamError(
                    f"air sources must be raster sources (AuxRaster, GEMS, AirPollution), "
                    f"got {source!r}"
                )
        if mask is not None and not isinstance(mask, LandCoverMask):
            raise DualStreamError(f"mask must be a LandCoverMask source, got {mask!r}")
        self.image = image
        self.air = [air] if isinstance(air, GeoRaster) else list(air or [])
        self.mask = mask
        self.aux_scale = aux_scale
        self.transforms = transforms
        #: Labels outside this geometry (image CRS) are ignored: set on geographic splits.
        self.label_roi: shapely.Geometry | None = None
        self.air_channels = sum(a.num_channels for a in self.air)
        self.set_aux_fill(aux_fill)
        self.grid_crs = CRS.from_user_input(image.crs)
        self._corner: tuple[float, float] | None = None
        self._res = image.res

        sources: list[GeoRaster] = [image, *self.air, *([mask] if mask is not None else [])]
        # Each source's index in the image CRS, kept here so the sources are not mutated.
        self._indexes = [s.index.to_crs(image.crs) for s in sources]
        self._trees = [
            (shapely.STRtree(i.geometry.values), i.filepath.to_numpy()) for i in self._indexes
        ]
        footprint = self._indexes[0].geometry
        scene = footprint.union_all()
        for source, other in zip(sources[1:], self._indexes[1:], strict=True):
            covered = other.geometry.union_all()
            if covered.intersection(scene).area <= 0:
                raise DualStreamError(
                    f"{source.label} ({other.filepath.iloc[0]}) does not overlap the image: its "
                    f"bounds {_bounds(other)} against the image's {_bounds(self._indexes[0])} "
                    f"(in {image.crs.name})"
                )
            footprint = footprint.intersection(covered)
        keep = np.asarray(~footprint.is_empty & (footprint.area > 0))
        if not keep.any():
            listed = "; ".join(
                f"{s.label} ({_bounds(idx)})" for s, idx in zip(sources, self._indexes, strict=True)
            )
            raise DualStreamError(f"sources do not overlap (bounds in {image.crs.name}): {listed}")
        self.index = gpd.GeoDataFrame(
            {"filepath": self._indexes[0].filepath.to_numpy()[keep]},
            geometry=footprint.to_numpy()[keep],
            index=self._indexes[0].index[keep],
            crs=image.crs,
        )

    def set_aux_fill(self, aux_fill: float | Sequence[float]) -> None:
        """What missing air values become: one value, or one per air channel.

        Raises:
            DualStreamError: another number of values.
        """
        fill = np.asarray(aux_fill, dtype=np.float32)
        if fill.ndim > 1 or fill.size not in (1, self.air_channels):
            raise DualStreamError(
                f"aux_fill must be one value or {self.air_channels} (one per air channel), "
                f"got {fill.size}"
            )
        self.aux_fill = np.broadcast_to(fill, (self.air_channels,)).copy()

    def with_sources(
        self, air: Sequence[GeoRaster], mask: LandCoverMask | None
    ) -> DualStreamGeoDataset:
        """The same join, reading its air and mask from other sources holding the same data.

        The same join (image, index, grids, fill, transforms, label region) reading its air
        and mask from other sources holding the same data (warped-once copies).

        Args:
            air: the aux sources (the same channels, in the same order).
            mask: the labels.

        Returns:
            A new dataset; this one is unchanged.
        """
        other = DualStreamGeoDataset(
            self.image,
            list(air) or None,
            mask,
            aux_scale=self.aux_scale,
            aux_fill=self.aux_fill.tolist(),
            transforms=self.transforms,
        )
        other.index = self.index.copy()
        other.label_roi = self.label_roi
        return other

    def aligned(self, index: tuple[slice, slice]) -> tuple[slice, slice]:
        """A query moved onto the scene's grids.

        Its corner on a corner of the first image file's pixels and, with an aux stream, of
        the aux grid (the image grid with pixels ``aux_scale`` times larger). Such a patch
        is read without resampling the image, and its aux cells are the scene's own (as a
        cached, warped-once scene gives them).
        """
        x, y = index[0], index[1]
        origin = self._origin()
        step_x = self.res[0] * (self.aux_scale if self.air else 1)
        step_y = self.res[1] * (self.aux_scale if self.air else 1)
        width, height = x.stop - x.start, y.stop - y.start
        left = origin[0] + round((x.start - origin[0]) / step_x) * step_x
        top = origin[1] - round((origin[1] - y.stop) / step_y) * step_y
        return slice(left, left + width), slice(top - height, top)

    def _origin(self) -> tuple[float, float]:
        if self._corner is None:
            from .grid import open_raster

            first = self.image.channel_files(self.image.index.filepath.iloc[0])[0][0]
            transform = open_raster(self.image.resolve(first)).transform
            self._corner = (transform.c, transform.f)
        return self._corner

    def _files(self, source: int, box: shapely.Polygon) -> list[str]:
        tree, paths = self._trees[source]
        return list(paths[np.sort(tree.query(box, predicate="intersects"))])

    def grid_for(self, index: GeoSlice) -> Grid:
        """The image grid of a query, in float64 from the query's own coordinates."""
        if isinstance(index, tuple) and all(
            s.start is not None and s.stop is not None for s in index[:2]
        ):
            # Sampler queries are complete: skip the index-wide bounds of _disambiguate_slice.
            x, y = (
                slice(s.start, s.stop, s.step or r)
                for s, r in zip(index[:2], self.res, strict=True)
            )
        else:
            x, y, _ = self._disambiguate_slice(index)
        height = round((y.stop - y.start) / y.step)
        width = round((x.stop - x.start) / x.step)
        return Grid.from_bounds(self.grid_crs, x.start, y.stop, x.step, y.step, height, width)

    def __getitem__(self, index: GeoSlice) -> Sample:
        grid = self.grid_for(index)
        files = self._files(0, shapely.box(*grid.bounds))
        if not files:
            raise IndexError(f"{index} is outside the dataset bounds {self.bounds}")
        return self.read(grid, files)

    def read(self, grid: Grid, image_files: list[str] | None = None) -> Sample:
        """The sample on ``grid`` (image CRS); pixels outside every image file are invalid.

        ``image_files``: the image files under ``grid`` when the caller already looked them up.

        Args:
            grid: the sample's grid, in the image's CRS and resolution.
            image_files: the image files under ``grid`` (None: looked up in the index).

        Returns:
            The sample: ``image``, ``valid``, ``bounds``, ``crs`` and, where the dataset has
            them, ``air`` and ``mask``.
        """
        box = shapely.box(*grid.bounds)
        if image_files is None:
            image_files = self._files(0, box)
        image = self.image.read(image_files, grid, Resampling.bilinear)
        valid = ~np.isnan(image.sum(0))
        np.copyto(image, 0.0, where=~valid[None])
        sample: Sample = {
            "image": torch.from_numpy(image),
            "valid": torch.from_numpy(valid),
            "bounds": torch.tensor(grid.bounds, dtype=torch.float64),
            "crs": self.grid_crs,
        }
        if self.air:
            sample["air"] = torch.from_numpy(self._read_air(grid.scaled(self.aux_scale)))
        if self.mask is not None:
            raw = self.mask.read(self._files(len(self._indexes) - 1, box), grid, Resampling.nearest)
            classes = self.mask.to_classes(raw[0])
            classes[~valid] = self.mask.ignore_index
            if self.label_roi is not None and not self.label_roi.contains(box):
                outside = geometry_mask([self.label_roi], classes.shape, grid.transform)
                classes[outside] = self.mask.ignore_index
            sample["mask"] = torch.from_numpy(classes)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    @contextmanager
    def aux_rows_warped_once(self, extent: Grid) -> Iterator[None]:
        """Within the block, reads inside ``extent`` share their aux sources' exact warps.

        For windows read strip by strip, top to bottom (a whole scene's prediction): each
        aux source that warps exactly (``warp_tolerance`` 0) warps the rows the windows need
        once across ``extent``'s width (:mod:`.warped_rows`), which gives each window, bit
        for bit, what its own warp gives. Reads elsewhere warp as before.

        Args:
            extent: the image grid (image CRS and pixels) the windows lie in.
        """
        # One more aux cell each side: sources that derive terrain read one (margin_grid).
        aux = extent.coarsened(self.aux_scale).padded(1)
        exact = [(i, s) for i, s in enumerate(self.air) if s.warp_tolerance == 0.0]
        for i, source in exact:
            source.warped_rows = WarpedRows(aux, partial(self._warp_exactly, i))
        try:
            yield
        finally:
            for _, source in exact:
                source.warped_rows = None

    def _warp_exactly(self, index: int, grid: Grid) -> np.ndarray:
        """Aux source ``index``'s files under ``grid`` warped exactly onto it (raw values)."""
        source = self.air[index]
        files = self._files(index + 1, shapely.box(*grid.bounds))
        return source.warp_files(files, grid, source.resampling, 0.0)

    def _read_air(self, grid: Grid) -> np.ndarray:
        box = shapely.box(*grid.bounds)
        parts = [
            source.read(self._files(i + 1, box), grid, source.resampling)
            for i, source in enumerate(self.air)
        ]
        air = np.concatenate(parts)
        bad = ~np.isfinite(air)
        if bad.any():
            air[bad] = np.broadcast_to(self.aux_fill[:, None, None], air.shape)[bad]
        return air


def _bounds(index: gpd.GeoDataFrame) -> str:
    return ", ".join(f"{v:.3f}" for v in index.total_bounds)
