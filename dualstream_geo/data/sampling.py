"""Training samplers.

Random patches drawn per epoch from (seed, epoch, rank), optionally centred on rare classes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import shapely
import torch
from rasterio.enums import Resampling
from torchgeo.samplers import GriddedPatchSampler, PreChippedGeoSampler, RandomPatchSampler

from .grid import Grid
from .join import DualStreamGeoDataset
from .ranks import RankLocal, RankShard
from .settings import SamplingSettings

#: Longest side of the label grid scanned for rare-class pixels.
SCAN_SIDE = 4096


class EpochPatchSampler(RandomPatchSampler):
    """TorchGeo's random patches, drawn for each epoch from a seeded generator.

    TorchGeo's random patches, drawn for each epoch from a generator seeded with (``seed``,
    epoch, ``rank``): every epoch gets new patches, a resumed run draws the same patches for
    an epoch as an uninterrupted one, and ranks draw differently. Lightning calls
    :meth:`set_epoch` before each epoch. ``seed=None`` draws from the operating system.

    ``length`` is the epoch's total over ``world_size`` processes: each rank draws
    ``ceil(length / world_size)`` patches.
    """

    def __init__(
        self,
        dataset: DualStreamGeoDataset,
        *,
        size: int | tuple[int, int],
        length: int | None = None,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(dataset, size=size, length=length, generator=seed)
        self.dataset = dataset
        self._length = math.ceil(len(self) / world_size)
        self.seed = seed
        self.rank = rank
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Draw the next epoch's patches from (``seed``, ``epoch``, ``rank``)."""
        if self.seed is not None:
            self.generator = np.random.default_rng([self.seed, epoch, self.rank])

    def __iter__(self) -> Iterator[tuple[slice, slice]]:  # type: ignore[override]
        # On the scene's grids (DualStreamGeoDataset.aligned): TorchGeo snaps to pixels of
        # the region's bounds, which for a geographic split's cells are not the image's.
        for query in super().__iter__():
            yield self.dataset.aligned(query)


class FocusPatchSampler(EpochPatchSampler):
    """TorchGeo's random patches, of which ``fraction`` are centred on pixels of ``classes``.

    For classes too rare to appear in uniformly drawn patches.

    Each focused patch first draws one of the classes found in the region (uniformly, so a
    class of a hundred pixels gets as many patches as one of a million), then one of its pixels.

    Candidate centres come from one scan of the labels on the dataset's grid (decimated to
    at most ``SCAN_SIDE`` pixels a side) and are kept only where the whole patch lies inside
    the sampled region, so geographic splits still hold. Yields [xmin:xmax, ymin:ymax].
    """

    def __init__(
        self,
        dataset: DualStreamGeoDataset,
        *,
        size: int | tuple[int, int],
        length: int | None = None,
        classes: Sequence[int],
        fraction: float = 0.5,
        seed: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__(
            dataset, size=size, length=length, seed=seed, rank=rank, world_size=world_size
        )
        if dataset.mask is None:
            raise ValueError("FocusPatchSampler needs a dataset with a mask")
        self.fraction = fraction
        self.centres = [found for found in self._centres(dataset, list(classes)) if len(found)]

    def _centres(self, dataset: DualStreamGeoDataset, classes: list[int]) -> list[np.ndarray]:
        """The candidate centres (n, 2) of each class, in ``classes`` order."""
        xmin, ymin, xmax, ymax = self.bounds
        res = dataset.res[0]
        step = max(1, math.ceil(max(xmax - xmin, ymax - ymin) / res / SCAN_SIDE))
        width = math.ceil((xmax - xmin) / (res * step))
        height = math.ceil((ymax - ymin) / (res * step))
        grid = Grid.from_bounds(dataset.grid_crs, xmin, ymax, res * step, res * step, height, width)
        assert dataset.mask is not None
        box = shapely.box(*grid.bounds)
        raw = dataset.mask.read(
            dataset._files(len(dataset._indexes) - 1, box), grid, Resampling.nearest
        )
        labels = dataset.mask.to_classes(raw[0])
        centres = []
        for value in classes:
            rows, cols = np.nonzero(labels == value)
            xs = xmin + (cols + 0.5) * res * step
            ys = ymax - (rows + 0.5) * res * step
            inside = shapely.contains_xy(self.series.iloc[0], xs, ys)  # the eroded region
            centres.append(np.stack([xs[inside], ys[inside]], axis=1))
        return centres

    def __iter__(self) -> Iterator[tuple[slice, slice]]:  # type: ignore[override]
        focused = round(len(self) * self.fraction) if len(self.centres) else 0
        uniform = list(super().__iter__())[: len(self) - focused]
        chosen = self.generator.integers(0, len(self.centres), focused) if focused else []
        picks = [self.centres[c][self.generator.integers(0, len(self.centres[c]))] for c in chosen]
        height, width = self.size
        patches = uniform + [
            self.dataset.aligned(
                (slice(x - width / 2, x + width / 2), slice(y - height / 2, y + height / 2))
            )
            for x, y in picks
        ]
        for i in self.generator.permutation(len(patches)):
            yield patches[i]


class AlignedGriddedSampler(GriddedPatchSampler):
    """TorchGeo's gridded patches (validation, test) moved onto the scene's grids.

    :meth:`~dualstream_geo.data.join.DualStreamGeoDataset.aligned`.
    """

    def __init__(
        self,
        dataset: DualStreamGeoDataset,
        size: int | tuple[int, int],
        stride: int | tuple[int, int],
    ) -> None:
        super().__init__(dataset, size=size, stride=stride)
        self.dataset = dataset

    def __iter__(self) -> Iterator[tuple[slice, slice]]:  # type: ignore[override]
        for query in super().__iter__():
            yield self.dataset.aligned(query)


def training_sampler(
    dataset: DualStreamGeoDataset,
    sampling: SamplingSettings,
    size: int | tuple[int, int],
    length: int,
    rank: int,
    world_size: int,
) -> RankShard | RankLocal:
    """This rank's training sampler, as ``sampling`` describes it.

    Args:
        dataset: the training split.
        sampling: how patches are drawn (random, centred on rare classes, or whole tiles).
        size: the patch side in pixels (or its height and width).
        length: patches per epoch, over all ranks.
        rank: this process's rank.
        world_size: the number of processes.

    Returns:
        ``kind="tiles"``: the same shuffle of the tiles on every rank, shared out (each tile
        once an epoch); otherwise this rank's share of the epoch's random patches.
    """
    seed = sampling.seed
    if sampling.kind == "tiles":
        # The same shuffle on every rank (one seed), shared out: each tile once.
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        tiles = PreChippedGeoSampler(dataset, shuffle=True, generator=generator)
        return RankShard(tiles, rank=rank, world_size=world_size, pad=True)
    sampler: RandomPatchSampler
    if sampling.focus_classes:
        sampler = FocusPatchSampler(
            dataset,
            size=size,
            length=length,
            classes=list(sampling.focus_classes),
            fraction=sampling.focus_fraction,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )
    else:
        sampler = EpochPatchSampler(
            dataset, size=size, length=length, seed=seed, rank=rank, world_size=world_size
        )
    return RankLocal(sampler, rank=rank, world_size=world_size)
