"""DualStreamDataModule: splits, TorchGeo samplers, normalisation and augmentation."""

from __future__ import annotations

import os
from dataclasses import replace
from functools import cached_property
from typing import Any, Literal, override

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchgeo.datamodules import GeoDataModule
from torchgeo.datasets import random_grid_cell_assignment
from torchgeo.samplers import PreChippedGeoSampler

from ..errors import DualStreamError
from .assemble import build_dataset, resolve_channels
from .augment import DualStreamAugmentation
from .auxiliary.spec import AuxSpec, aux_specs
from .checks import check_air_over_region, has_labels
from .join import DualStreamGeoDataset, collate_samples
from .labels import class_counts
from .layout import SceneSet, scene_set
from .normalize import DatasetStats
from .ranks import RankShard, process_rank
from .sampling import AlignedGriddedSampler, training_sampler
from .settings import LoaderSettings, SamplingSettings, SplitSettings, check_sizes
from .spec import ClassSpec, ImageSpec, InputSpec
from .statistics import training_stats
from .warp_cache import cache_dir, warp_once


class DualStreamDataModule(GeoDataModule):
    """Train/val/test loaders of image + aux + mask patches from georeferenced scenes.

    What the user declares (``image``, ``classes``, ``aux``, ``aux_scale``, ``aux_fusion``,
    ``normalization``) is :attr:`declared_spec`, a frozen
    :class:`~dualstream_geo.data.spec.InputSpec` that nothing replaces. What the data shows
    is found once each: the aux sources' channels (from the training files' headers) and the
    band statistics (:attr:`stats`: a checkpoint's, ``stats_path``'s, or the training data's).
    :attr:`input_spec` is the declared spec with both, which LightningCLI links into the task
    and every checkpoint stores.

    Splits come from ``root`` (``layout="scenes"``: ``<root>/{train,val,test}/{image,label}``
    and a folder per aux source, ``gems`` / ``air`` for the original preset;
    ``layout="original"``: the original project's tile folders) or from explicit
    :class:`SceneSet` paths. Without a validation set, ``split.val_fraction`` of the training
    scenes' area is held out by TorchGeo grid-cell assignment; labels outside a split's cells
    are ignored, so a validation patch never scores training pixels. Training patches are
    drawn at random (``sampling``), val/test patches by ``GriddedPatchSampler``;
    ``sampling.kind="tiles"`` reads whole image files instead, one sample per file, as the
    original project does with its 512 px tiles (``patch_size`` is then only checked).

    Args:
        root: folder of the splits (``layout``), or None with explicit ``train`` (``val``,
            ``test``) scene sets.
        layout: ``scenes`` or ``original``.
        train: the training split's paths (default: from ``root``).
        val: the validation split's paths (default: from ``root``, else held out).
        test: the test split's paths (default: from ``root``, else held out).
        split: grid-cell hold-out (:class:`~dualstream_geo.data.settings.SplitSettings`).
        sampling: how training patches are drawn
            (:class:`~dualstream_geo.data.settings.SamplingSettings`).
        image: the image bands, files, nodata and indices (:class:`ImageSpec`).
        classes: class names, colours, the label map and ignore index (:class:`ClassSpec`).
        aux: the named aux sources (:class:`AuxSpec` list), ``"original"`` for the original
            project's GEMS + CO/NO2/SO2 files, or None for the image alone.
        aux_scale: aux pixels are ``aux_scale`` image pixels wide (8, 4, 2 or 1; the original
            preset takes 8).
        aux_fusion: ``dual`` (the aux stream at 1/``aux_scale``) or ``early`` (the aux
            channels read on the image grid and appended to the image: the baseline).
        normalization: ``dataset``: band statistics from the training sources (decimated
            reads), saved to ``stats_path`` when given (an existing file there is reused);
            ``original``: the original project's scaling, for its checkpoints and recipe.
        stats_path: where the statistics are kept.
        patch_size: training and evaluation patch side in image pixels (a multiple of 32).
        batch_size: samples per batch and process.
        length: training patches per epoch (None: about one pass over the training area).
        loader: loader processes and their options
            (:class:`~dualstream_geo.data.settings.LoaderSettings`).
        cache_dir: where label and aux sources that are not on the scenes' grids are kept
            warped once (:mod:`~dualstream_geo.data.warp_cache`): True the default cache
            (``$DUALSTREAM_CACHE``), a folder, or False to warp them for every sample.
        augment: random flips and 90-degree rotations of every stream
            (:class:`~dualstream_geo.data.augment.DualStreamAugmentation`).
        augment_intensity: also brightness, contrast and noise on the image: for
            differences between scenes and sensors; a single calibrated scene may not need it.

    Raises:
        DualStreamError: a bad setting, naming it.
    """

    def __init__(
        self,
        root: str | None = None,
        layout: Literal["scenes", "original"] = "scenes",
        train: SceneSet | None = None,
        val: SceneSet | None = None,
        test: SceneSet | None = None,
        split: SplitSettings | None = None,
        sampling: SamplingSettings | None = None,
        image: ImageSpec | None = None,
        classes: ClassSpec | None = None,
        aux: list[AuxSpec] | Literal["original"] | None = None,
        aux_scale: int = 8,
        aux_fusion: Literal["dual", "early"] = "dual",
        normalization: Literal["dataset", "original"] = "dataset",
        stats_path: str | None = None,
        patch_size: int = 256,
        batch_size: int = 8,
        length: int | None = None,
        loader: LoaderSettings | None = None,
        cache_dir: str | bool = True,
        augment: bool = True,
        augment_intensity: bool = True,
    ) -> None:
        check_sizes(batch_size, length, patch_size, aux_scale)
        self.split = split or SplitSettings()
        self.loader = loader or LoaderSettings()
        self.cache_dir = cache_dir
        self.sampling = sampling or SamplingSettings()
        self.stats_path = stats_path
        self._declared = InputSpec(
            image=image or ImageSpec(),
            classes=classes or ClassSpec(),
            aux=aux_specs(aux),
            aux_scale=aux_scale,
            aux_fusion=aux_fusion,
            normalization=normalization,
        )
        self._stats: DatasetStats | None = None
        super().__init__(
            DualStreamGeoDataset,
            batch_size=batch_size,
            patch_size=patch_size,
            length=length,
            num_workers=self.loader.num_workers,
        )
        names = self._declared.aux_names
        if root is not None:
            if not os.path.isdir(root):
                raise DualStreamError(f"root {root!r} is not a folder")
            train = train or scene_set(root, "train", layout, names)
            val = val or scene_set(root, "val", layout, names)
            test = test or scene_set(root, "test", layout, names)
        if train is None:
            raise DualStreamError("no training scenes: give root (with a train split) or train")
        self.scenes = {"train": train, "val": val, "test": test}
        self.collate_fn = collate_samples  # type: ignore[assignment]
        self.train_aug = DualStreamAugmentation(intensity=augment_intensity) if augment else None
        self.aug = _identity
        self._splits: dict[str, DualStreamGeoDataset] = {}

    # -- the input spec ------------------------------------------------------------------
    @property
    def declared_spec(self) -> InputSpec:
        """The inputs as the settings declare them (aux channels as given, no statistics)."""
        return self._declared

    @cached_property
    def _found_aux(self) -> tuple[AuxSpec, ...]:
        """The aux sources, each with its channels as the training files have them."""
        train = self.scenes["train"]
        assert train is not None
        return resolve_channels(train, self._declared)

    @property
    def input_spec(self) -> InputSpec:
        """What the model reads.

        :attr:`declared_spec` with the aux channels found in the training files and, once
        found, the band statistics (:attr:`stats`).
        """
        spec = self._declared
        if spec.aux:
            spec = replace(spec, aux=self._found_aux)
        return spec if self._stats is None else replace(spec, stats=self._stats)

    @property
    def stats(self) -> DatasetStats | None:
        """The band statistics (None until the training data is read, or without them)."""
        return self._stats

    def _settle_stats(self, stats: DatasetStats) -> None:
        """Take ``stats`` as the data's statistics: once, checked against the channels."""
        if self._stats is not None:
            raise RuntimeError("the band statistics are settled once")
        self._stats = self.input_spec.with_stats(stats).stats

    def adopt(self, spec: InputSpec, source: str) -> None:
        """Normalise with the statistics of ``spec``, a checkpoint's.

        Normalise with the statistics of ``spec`` (a checkpoint's, named ``source``), after
        checking that it reads the same inputs as this data.

        Args:
            spec: the checkpoint's input spec.
            source: the checkpoint's path, for messages.

        Raises:
            DualStreamError: the checkpoint's inputs differ from the data's (named), or the
                data was already normalised with other statistics.
        """
        differences = spec.differences(self.input_spec)
        if differences:
            raise DualStreamError(
                f"{source} was trained on other inputs than the data gives: "
                + "; ".join(differences)
            )
        if self._stats is not None:
            if self._stats != spec.stats:
                raise DualStreamError(
                    f"{source}: the data is already normalised with other band statistics "
                    "than the checkpoint's; adopt the checkpoint before the data is set up"
                )
            return
        if spec.stats is not None:
            self._settle_stats(spec.stats)

    # -- datasets ------------------------------------------------------------------------
    def _build(self, scenes: SceneSet, split: str) -> DualStreamGeoDataset:
        return build_dataset(scenes, self.input_spec, split)

    def _warped(self, dataset: DualStreamGeoDataset) -> DualStreamGeoDataset:
        folder = cache_dir(self.cache_dir)
        return dataset if folder is None else warp_once(dataset, folder)

    def _prepare(self, dataset: DualStreamGeoDataset) -> DualStreamGeoDataset:
        spec = self.input_spec
        dataset.transforms = spec.transform()
        dataset.set_aux_fill(spec.aux_fill())
        return dataset

    def datasets(self) -> dict[str, DualStreamGeoDataset]:
        """Build (once) the joined dataset of every split; the first call validates all inputs."""
        if self._splits:
            return self._splits
        spec = self.input_spec
        assert self.scenes["train"] is not None
        train = self._build(self.scenes["train"], "train")
        if spec.normalization == "dataset" and spec.stats is None:
            # From the sources as given (a warped copy covers only the scenes); an existing
            # stats_path file is read instead.
            self._settle_stats(training_stats(train, spec, self.stats_path))
        train = self._warped(train)
        splits = {"train": train}
        fractions = {
            "val": self.split.val_fraction if self.scenes["val"] is None else 0.0,
            "test": self.split.test_fraction if self.scenes["test"] is None else 0.0,
        }
        held_out = [name for name, f in fractions.items() if f > 0]
        if held_out:
            parts = random_grid_cell_assignment(
                train,
                [1 - sum(fractions.values()), *(fractions[n] for n in held_out)],
                grid_size=self.split.grid,
                generator=torch.Generator().manual_seed(self.split.seed),
            )
            for name, part in zip(["train", *held_out], parts, strict=True):
                assert isinstance(part, DualStreamGeoDataset)
                part.label_roi = part.index.geometry.union_all()
                splits[name] = part
        for name in ("val", "test"):
            scenes = self.scenes[name]
            if scenes is not None:
                splits[name] = self._warped(self._build(scenes, name))
        for name, dataset in splits.items():
            check_air_over_region(dataset, f"the {name} split")
            if not has_labels(dataset):
                raise DualStreamError(
                    f"the {name} split has no labelled pixel (every label is ignored or nodata "
                    "there); check classes.map / classes.unmapped, or the split fractions"
                )
        self._splits = {name: self._prepare(ds) for name, ds in splits.items()}
        return self._splits

    # -- Lightning hooks -----------------------------------------------------------------
    @override
    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup: the statistics file is
        # computed there once, and the other ranks load it instead of racing to write it.
        if self._declared.normalization == "dataset" and self.stats_path:
            self.datasets()

    def _rank(self) -> tuple[int, int]:
        """(rank, world size) of the trainer this module runs under."""
        trainer = self.trainer
        if trainer is not None:
            return trainer.global_rank, trainer.world_size
        return process_rank()

    @override
    def setup(self, stage: str) -> None:
        splits = self.datasets()
        size = self.patch_size
        rank, world_size = self._rank()
        if stage == "fit":
            self.train_dataset = splits["train"]
            length = self.length or self._default_length(splits["train"])
            self.train_sampler = training_sampler(  # type: ignore[assignment]
                splits["train"], self.sampling, size, length, rank, world_size
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

    @override
    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        super().train_dataloader()  # TorchGeo's checks of the dataset and sampler
        tiles = self.sampling.kind == "tiles"
        return DataLoader(
            self.train_dataset,  # type: ignore[arg-type]
            batch_size=self.batch_size,
            sampler=self.train_sampler,  # type: ignore[arg-type]
            collate_fn=self.collate_fn,
            # Every tile once per epoch, the last partial batch included (as the original).
            drop_last=not tiles,
            **self.loader.options(),  # type: ignore[arg-type]
            # Its own generator: creating the epoch's iterator must not draw from the global
            # one, or an epoch's randomness would depend on when the loop creates it.
            generator=torch.Generator().manual_seed(0),
        )

    @override
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

    @override
    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._evaluation_loader("val")

    @override
    def test_dataloader(self) -> DataLoader[dict[str, Any]]:
        return self._evaluation_loader("test")

    def _evaluation_loader(self, split: str) -> DataLoader[dict[str, Any]]:
        options = self.loader.options()
        # Evaluation runs once per epoch: workers kept alive would hold memory meanwhile.
        options["persistent_workers"] = False
        return DataLoader(
            getattr(self, f"{split}_dataset"),
            batch_size=self.batch_size,
            sampler=getattr(self, f"{split}_sampler"),
            collate_fn=self.collate_fn,
            **options,  # type: ignore[arg-type]
        )

    def _eval_sampler(self, dataset: DualStreamGeoDataset) -> Any:
        if self.sampling.kind == "tiles":
            return PreChippedGeoSampler(dataset, shuffle=False)
        return AlignedGriddedSampler(dataset, size=self.patch_size, stride=self.patch_size)

    def _default_length(self, dataset: DualStreamGeoDataset) -> int:
        # About one pass over the training area per epoch.
        area = float(dataset.index.geometry.union_all().area)
        size = self.patch_size if isinstance(self.patch_size, int) else self.patch_size[0]
        patch_area = (size * dataset.res[0]) * (size * dataset.res[1])
        return max(self.batch_size, int(area / patch_area))

    def class_counts(self, num_classes: int) -> np.ndarray:
        """(num_classes,) labelled pixels of each class in the training split.

        Its cells only, counted on a decimated grid
        (:func:`~dualstream_geo.data.labels.class_counts`).
        """
        return class_counts(self.datasets()["train"], num_classes)


def _identity(batch: dict[str, Any]) -> dict[str, Any]:
    return batch
