"""DualStreamDataModule: splits, TorchGeo samplers, normalisation and augmentation."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchgeo.datamodules import GeoDataModule
from torchgeo.datasets import random_grid_cell_assignment
from torchgeo.samplers import GriddedPatchSampler, PreChippedGeoSampler

from ..errors import DualStreamError
from .augment import DualStreamAugmentation
from .checks import check_air_over_region, has_labels
from .indices import check_indices
from .join import DualStreamGeoDataset, collate_samples
from .labels import class_counts
from .layout import SceneSet, build_dataset, scene_set
from .normalize import BandStats, DatasetStats, Normalize, OriginalScaling
from .ranks import RankLocal, RankShard, process_rank
from .sampling import EpochPatchSampler, FocusPatchSampler

NORMALIZATIONS = ("dataset", "original")
SAMPLERS = ("random", "tiles")


class DualStreamDataModule(GeoDataModule):
    """Train/val/test loaders of image + air + mask patches from georeferenced scenes.

    Splits come from ``root`` (``layout="scenes"``: ``<root>/{train,val,test}/{image,label,
    gems,air}``; ``layout="original"``: the original project's tile folders) or from explicit
    :class:`SceneSet` paths. Without a validation set, ``val_fraction`` of the training
    scenes' area is held out by TorchGeo grid-cell assignment; labels outside a split's cells
    are ignored, so a validation patch never scores training pixels. Training patches are
    drawn by ``RandomPatchSampler``, val/test patches by ``GriddedPatchSampler``.

    ``sampler="tiles"`` reads whole image files instead, one sample per file (shuffled for
    training, in order for val/test; TorchGeo ``PreChippedGeoSampler``), as the original
    project does with its 512 px tiles; ``patch_size`` is then only checked against them.

    ``sampler_seed`` makes the random patches reproducible (new ones every epoch, the same
    sequence every run); None draws from the operating system. ``focus_classes``: centre
    ``focus_fraction`` of the training patches on pixels of these (rare) classes.

    ``normalization="dataset"``: band statistics are computed from the training sources once
    (decimated reads) and saved to ``stats_path`` when given (an existing file there is
    reused); image and air are standardised with them. ``"original"``: the original
    project's scaling (:class:`~dualstream_geo.data.normalize.OriginalScaling`), for its
    checkpoints and recipe.

    ``indices``: spectral indices (``ndvi``, ``ndwi``, ...: :mod:`~dualstream_geo.data.indices`)
    computed from the named ``bands`` and appended to the image after them, standardised
    with their own statistics: the model then takes ``len(bands) + len(indices)`` channels.

    ``augment``: random flips and 90-degree rotations of every stream, and with
    ``augment_intensity`` brightness, contrast and noise on the image
    (:class:`~dualstream_geo.data.augment.DualStreamAugmentation`): intensity jitter stands
    for differences between scenes and sensors; a single calibrated scene may not need it.
    """

    def __init__(
        self,
        root: str | None = None,
        layout: Literal["scenes", "original"] = "scenes",
        train: SceneSet | None = None,
        val: SceneSet | None = None,
        test: SceneSet | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        split_grid: int = 4,
        split_seed: int = 0,
        sampler: Literal["random", "tiles"] = "random",
        sampler_seed: int | None = 0,
        focus_classes: list[int] | None = None,
        focus_fraction: float = 0.5,
        bands: Sequence[str] = ("blue", "green", "red", "nir"),
        indices: Sequence[str] = (),
        band_files: Sequence[str] | None = None,
        image_nodata: float | None = None,
        class_map: dict[int, int] | None = None,
        unmapped: Literal["background", "ignore"] = "background",
        ignore_index: int = 255,
        use_air: bool = True,
        air_scale: int = 8,
        normalization: Literal["dataset", "original"] = "dataset",
        stats_path: str | None = None,
        patch_size: int = 256,
        batch_size: int = 8,
        length: int | None = None,
        num_workers: int = 0,
        augment: bool = True,
        augment_intensity: bool = True,
    ) -> None:
        if batch_size < 1:
            raise DualStreamError(f"batch_size must be >= 1, got {batch_size}")
        if length is not None and length < 1:
            raise DualStreamError(
                f"length must be >= 1 patches per epoch (or null: about one pass over the "
                f"training area), got {length}"
            )
        if num_workers < 0:
            raise DualStreamError(f"num_workers must be >= 0, got {num_workers}")
        if sampler not in SAMPLERS:
            raise DualStreamError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        if normalization not in NORMALIZATIONS:
            raise DualStreamError(
                f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}"
            )
        check_indices(indices, bands)
        if indices and normalization != "dataset":
            raise DualStreamError("indices need normalization 'dataset' (the original has none)")
        if patch_size % 32:
            raise DualStreamError(f"patch_size must be a multiple of 32, got {patch_size}")
        if patch_size % air_scale:
            raise DualStreamError(
                f"patch_size {patch_size} is not divisible by air_scale {air_scale}"
            )
        if not 0.0 <= val_fraction < 1.0 or not 0.0 <= test_fraction < 1.0:
            raise DualStreamError("val_fraction and test_fraction must lie in [0, 1)")
        super().__init__(
            DualStreamGeoDataset,
            batch_size=batch_size,
            patch_size=patch_size,
            length=length,
            num_workers=num_workers,
        )
        self.save_hyperparameters(ignore=["train", "val", "test"])
        if root is not None:
            if not os.path.isdir(root):
                raise DualStreamError(f"root {root!r} is not a folder")
            train = train or scene_set(root, "train", layout)
            val = val or scene_set(root, "val", layout)
            test = test or scene_set(root, "test", layout)
        if train is None:
            raise DualStreamError("no training scenes: give root (with a train split) or train")
        self.scenes = {"train": train, "val": val, "test": test}
        self.collate_fn = collate_samples  # type: ignore[assignment]
        self.train_aug = DualStreamAugmentation(intensity=augment_intensity) if augment else None
        self.aug = _identity
        self.stats: DatasetStats | None = None
        self._splits: dict[str, DualStreamGeoDataset] = {}

    # -- datasets ------------------------------------------------------------------------
    def _build(self, scenes: SceneSet) -> DualStreamGeoDataset:
        h = self.hparams
        return build_dataset(
            scenes,
            bands=h["bands"],
            band_files=h["band_files"],
            class_map=h["class_map"],
            unmapped=h["unmapped"],
            ignore_index=h["ignore_index"],
            use_air=h["use_air"],
            air_scale=h["air_scale"],
            image_nodata=h["image_nodata"],
        )

    def compute_stats(self, dataset: DualStreamGeoDataset) -> DatasetStats:
        """Load ``stats_path`` if it exists, else compute from ``dataset`` (and save)."""
        path = self.hparams["stats_path"]
        indices = [index.lower() for index in self.hparams["indices"]]
        if path and os.path.exists(path):
            stats = DatasetStats.load(path)
            if stats.index_names != indices:
                raise DualStreamError(
                    f"stats_path {path}: computed for indices {stats.index_names}, the data asks "
                    f"for {indices}; delete it or give another stats_path"
                )
            return stats
        bands = self.hparams["bands"]
        image = BandStats.from_source(dataset.image, bands)
        air = None
        if dataset.air:
            air = BandStats.concat(BandStats.from_source(a) for a in dataset.air)
        index_stats = BandStats.from_indices(dataset.image, bands, indices) if indices else None
        stats = DatasetStats(image, air, index_stats)
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            stats.save(path)
        return stats

    def _prepare(self, dataset: DualStreamGeoDataset) -> DualStreamGeoDataset:
        if self.hparams["normalization"] == "original":
            dataset.transforms = OriginalScaling()
            # NaN reaches the scaling, which zeroes that file as the original does.
            dataset.air_fill = np.full(dataset.air_channels, np.nan, dtype=np.float32)
            return dataset
        assert self.stats is not None
        dataset.transforms = Normalize(self.stats)
        if self.stats.air is not None:
            # Missing air then normalises to 0, the band mean.
            dataset.air_fill = np.asarray(self.stats.air.mean, dtype=np.float32)
        return dataset

    def datasets(self) -> dict[str, DualStreamGeoDataset]:
        """Build (once) the joined dataset of every split; the first call validates all inputs."""
        if self._splits:
            return self._splits
        h = self.hparams
        assert self.scenes["train"] is not None
        train = self._build(self.scenes["train"])
        if h["normalization"] == "dataset":
            self.stats = self.compute_stats(train)
        splits = {"train": train}
        fractions = {
            "val": h["val_fraction"] if self.scenes["val"] is None else 0.0,
            "test": h["test_fraction"] if self.scenes["test"] is None else 0.0,
        }
        held_out = [name for name, f in fractions.items() if f > 0]
        if held_out:
            parts = random_grid_cell_assignment(
                train,
                [1 - sum(fractions.values()), *(fractions[n] for n in held_out)],
                grid_size=h["split_grid"],
                generator=torch.Generator().manual_seed(h["split_seed"]),
            )
            for name, part in zip(["train", *held_out], parts, strict=True):
                assert isinstance(part, DualStreamGeoDataset)
                part.label_roi = part.index.geometry.union_all()
                splits[name] = part
        for name in ("val", "test"):
            if self.scenes[name] is not None:
                splits[name] = self._build(self.scenes[name])  # type: ignore[arg-type]
        for name, dataset in splits.items():
            check_air_over_region(dataset, f"the {name} split")
            if not has_labels(dataset):
                raise DualStreamError(
                    f"the {name} split has no labelled pixel (every label is ignored or nodata "
                    "there); check class_map / unmapped, or the split fractions"
                )
        self._splits = {name: self._prepare(ds) for name, ds in splits.items()}
        return self._splits

    # -- Lightning hooks -----------------------------------------------------------------
    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup: the statistics file is
        # computed there once, and the other ranks load it instead of racing to write it.
        if self.hparams["normalization"] == "dataset" and self.hparams["stats_path"]:
            self.datasets()

    def _rank(self) -> tuple[int, int]:
        """(rank, world size) of the trainer this module runs under."""
        trainer = self.trainer
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return process_rank()

    def setup(self, stage: str) -> None:
        splits = self.datasets()
        size = self.patch_size
        tiles = self.hparams["sampler"] == "tiles"
        rank, world_size = self._rank()
        if stage == "fit":
            self.train_dataset = splits["train"]
            length = self.length or self._default_length(splits["train"])
            seed = self.hparams["sampler_seed"]
            if tiles:
                # The same shuffle on every rank (one seed), shared out: each tile once.
                generator = torch.Generator().manual_seed(seed) if seed is not None else None
                self.train_sampler = RankShard(  # type: ignore[assignment]
                    PreChippedGeoSampler(splits["train"], shuffle=True, generator=generator),
                    rank=rank,
                    world_size=world_size,
                    pad=True,
                )
            else:
                per_rank = {"seed": seed, "rank": rank, "world_size": world_size}
                sampler = (
                    FocusPatchSampler(
                        splits["train"],
                        size=size,
                        length=length,
                        classes=self.hparams["focus_classes"],
                        fraction=self.hparams["focus_fraction"],
                        **per_rank,
                    )
                    if self.hparams["focus_classes"]
                    else EpochPatchSampler(splits["train"], size=size, length=length, **per_rank)
                )
                self.train_sampler = RankLocal(  # type: ignore[assignment]
                    sampler, rank=rank, world_size=world_size
                )
        if stage in ("fit", "validate"):
            if "val" not in splits:
                raise DualStreamError("no validation data: give a val split or val_fraction > 0")
            self.val_dataset = splits["val"]
            self.val_sampler = RankShard(  # type: ignore[assignment]
                self._eval_sampler(splits["val"]), rank=rank, world_size=world_size
            )
        if stage == "test":
            if "test" not in splits:
                raise DualStreamError("no test data: give a test split or test_fraction > 0")
            self.test_dataset = splits["test"]
            self.test_sampler = RankShard(  # type: ignore[assignment]
                self._eval_sampler(splits["test"]), rank=rank, world_size=world_size
            )

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        super().train_dataloader()  # TorchGeo's checks of the dataset and sampler
        tiles = self.hparams["sampler"] == "tiles"
        return DataLoader(
            self.train_dataset,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            sampler=self.train_sampler,  # type: ignore[arg-type]
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
            # Every tile once per epoch, the last partial batch included (as the original).
            drop_last=not tiles,
            persistent_workers=self.num_workers > 0,
            # Its own generator: creating the epoch's iterator must not draw from the global
            # one, or an epoch's randomness would depend on when the loop creates it.
            generator=torch.Generator().manual_seed(0),
        )

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> Any:
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return super().on_after_batch_transfer(batch, dataloader_idx)
        # Augmentation draws from a generator seeded by (seed, step), not from the global one:
        # a resumed run augments each step as the uninterrupted run did, whenever the loop
        # fetches the batch.
        base = int(os.environ.get("PL_GLOBAL_SEED", 0))
        step = trainer.global_step * 7919 + trainer.global_rank * 104_729
        device = batch["image"].device
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed((base * 1_000_003 + step + 1) % 2**63)
            return super().on_after_batch_transfer(batch, dataloader_idx)

    def _eval_sampler(self, dataset: DualStreamGeoDataset) -> Any:
        if self.hparams["sampler"] == "tiles":
            return PreChippedGeoSampler(dataset, shuffle=False)
        return GriddedPatchSampler(dataset, size=self.patch_size, stride=self.patch_size)

    def _default_length(self, dataset: DualStreamGeoDataset) -> int:
        # About one pass over the training area per epoch.
        area = float(dataset.index.geometry.union_all().area)
        size = self.patch_size if isinstance(self.patch_size, int) else self.patch_size[0]
        patch_area = (size * dataset.res[0]) * (size * dataset.res[1])
        return max(self.batch_size, int(area / patch_area))

    def class_counts(self, num_classes: int) -> np.ndarray:
        """(num_classes,) labelled pixels of each class in the training split (its cells only),
        counted on a decimated grid (:func:`~dualstream_geo.data.labels.class_counts`)."""
        return class_counts(self.datasets()["train"], num_classes)

    @property
    def band_names(self) -> tuple[str, ...]:
        return tuple(self.hparams["bands"])


def _identity(batch: dict[str, Any]) -> dict[str, Any]:
    return batch
