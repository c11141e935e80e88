"""DualStreamSegmentation: the Lightning task that trains DualStreamDFormer."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torch.optim import AdamW
from torchgeo.tasks import SemanticSegmentation
from torchmetrics import MetricCollection

from ..errors import DualStreamError
from ..models import PRESETS, DualStreamDFormer
from ..models.dualstream import class_probabilities
from ..models.tta import TTAS, tta_mean
from ..models.weights import load_model_weights
from .checkpointing import BestCheckpoint, EpochSeeds, epoch_checkpoints, last_checkpoint
from .curves import TrainingCurves
from .defaults import PARTS, freeze_epochs, lr_multipliers
from .finetuning import TwoStageFinetuning
from .losses import (
    HEAD_WEIGHTS,
    LOVASZ_FORMS,
    DeepSupervisionLoss,
    SegmentationLoss,
    balanced_weights,
)
from .metadata import CHECKPOINT_KEY, DEFAULT_COLORS, prediction_metadata
from .schedule import INTERVALS, SCHEDULES, build_schedule

#: Parts frozen for the first epochs: their parameters join the optimiser frozen.
FREEZABLE = ("vision_encoder", "air_encoder")


class DualStreamSegmentation(SemanticSegmentation):
    """Semantic segmentation of image + air batches with DualStream-DFormer.

    Model: ``preset`` ``original`` (the original architecture) or ``lite``; ``weights``
    initialises the whole model from a project checkpoint (e.g. one written by
    ``dualstream-geo import-original``) or an original full-model state dict.

    Loss: ``ce_weight`` x cross-entropy + ``focal_weight`` x Focal(alpha, gamma) +
    ``lovasz_weight`` x Lovasz + ``dice_weight`` x Dice (focal, Lovasz, Dice from
    segmentation_models_pytorch; ``lovasz_form="original"``: the
    original's Lovasz on probabilities, per image), on the final head and the two auxiliary
    heads (upsampled to the label size) weighted by ``aux_weights`` (and the full-resolution
    image path's head ``aux_detail``, 0.5, with ``image_detail``). ``class_weights`` weight
    the cross-entropy per class; ``class_balance`` p > 0 computes them from the training
    labels as ``(median frequency / frequency) ** p`` (:func:`~dualstream_geo.training.
    losses.balanced_weights`; 0.3 keeps the common classes' accuracy while rare ones are
    predicted at all).

    Optimiser: AdamW with one parameter group per part (vision encoder, air encoder, fusion,
    decoder), each at ``lr`` x its multiplier, created up front. The encoders are frozen for
    the first ``freeze_epochs`` epochs (:class:`TwoStageFinetuning`); unset, 2 when an
    encoder starts from pretrained weights and 0 from random weights
    (:mod:`~dualstream_geo.training.defaults`). Frozen parameters get no gradient, so AdamW
    neither updates nor decays them and their moments start when they are unfrozen.
    ``lr_schedule``: see :mod:`~dualstream_geo.training.schedule`.

    Checkpoints: the best ``monitor`` (``best.ckpt``; for a binary task
    ``val_AverageJaccardIndex`` is the target-class IoU) and ``last.ckpt`` at the end of every
    epoch (and every ``checkpoint_every_n_steps`` steps when given); with
    ``keep_epoch_checkpoints`` also the weights of every epoch (``checkpoints/epochs/``, for
    a learning curve); each epoch is seeded from (seed, epoch), so resuming from
    ``last.ckpt`` continues exactly (:mod:`~dualstream_geo.training.checkpointing`).
    ``test_tta`` (``flip``, ``d4``): test scores from probabilities averaged over flips and
    rotations (:mod:`~dualstream_geo.models.tta`); ``test_loss`` stays the plain pass's.
    """

    #: Every argument is a hyper-parameter (TorchGeo skips ``weights``; here it is a path).
    ignore = None
    criterion: DeepSupervisionLoss
    #: The weights ``class_balance`` computed (None without it).
    balanced_class_weights: list[float] | None = None

    def __init__(
        self,
        num_classes: int = 2,
        task: Literal["binary", "multiclass"] = "multiclass",
        labels: list[str] | None = None,
        class_colors: list[tuple[int, int, int]] | None = None,
        in_channels: int = 4,
        air_channels: int = 48,
        band_names: Sequence[str] = ("blue", "green", "red", "nir"),
        use_air: bool = True,
        preset: Literal["original", "lite"] = "original",
        vision_encoder: str = "segformer-b1",
        weights: str | None = None,
        vision_weights: str | None = None,
        air_weights: str | None = None,
        use_boundary_refine: bool = True,
        gate_twice: bool = False,
        image_detail: bool = False,
        drop_path_rate: float = 0.1,
        modality_dropout: float = 0.0,
        focal_weight: float = 0.5,
        lovasz_weight: float = 0.5,
        dice_weight: float = 0.0,
        ce_weight: float = 0.0,
        class_weights: list[float] | None = None,
        class_balance: float = 0.0,
        focal_alpha: float | None = 0.25,
        focal_gamma: float = 2.0,
        lovasz_form: Literal["smp", "original"] = "smp",
        aux_weights: dict[str, float] | None = None,
        ignore_index: int = 255,
        lr: float = 3e-4,
        lr_multipliers: dict[str, float] | None = None,
        weight_decay: float = 1e-5,
        freeze_epochs: int | None = None,
        lr_schedule: Literal["cosine", "original", "warmup_cosine"] = "cosine",
        warmup_epochs: float = 1.0,
        min_lr: float = 1e-6,
        monitor: str = "val_AverageJaccardIndex",
        checkpoint_every_n_steps: int | None = None,
        keep_epoch_checkpoints: bool = False,
        test_tta: Literal["none", "flip", "d4"] = "none",
    ) -> None:
        if task == "binary" and num_classes != 2:
            raise DualStreamError(
                f"task='binary' needs num_classes=2 (background, target), got {num_classes}"
            )
        if preset not in PRESETS:
            raise DualStreamError(f"preset must be one of {PRESETS}, got {preset!r}")
        if lovasz_form not in LOVASZ_FORMS:
            raise DualStreamError(f"lovasz_form must be one of {LOVASZ_FORMS}, got {lovasz_form!r}")
        if lovasz_form == "original" and task != "binary":
            raise DualStreamError("lovasz_form='original' needs task='binary'")
        if test_tta not in TTAS:
            raise DualStreamError(f"test_tta must be one of {TTAS}, got {test_tta!r}")
        if lr_schedule not in SCHEDULES:
            raise DualStreamError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}")
        if labels is not None and len(labels) != num_classes:
            raise DualStreamError(f"labels has {len(labels)} names for num_classes={num_classes}")
        if lr_multipliers is not None and set(lr_multipliers) - set(PARTS):
            raise DualStreamError(
                f"lr_multipliers keys must be among {PARTS}, got {sorted(lr_multipliers)}"
            )
        if aux_weights is not None and set(aux_weights) - set(HEAD_WEIGHTS):
            raise DualStreamError(
                f"aux_weights keys must be among {tuple(HEAD_WEIGHTS)}, got {sorted(aux_weights)}"
            )
        if class_weights is not None and len(class_weights) != num_classes:
            raise DualStreamError(
                f"class_weights has {len(class_weights)} values for num_classes={num_classes}"
            )
        if class_balance < 0:
            raise DualStreamError(f"class_balance must be >= 0, got {class_balance}")
        if (class_weights is not None or class_balance > 0) and ce_weight <= 0:
            raise DualStreamError(
                "class_weights / class_balance weight the cross-entropy: set ce_weight > 0"
            )
        # SemanticSegmentation.__init__ builds an smp model from its own arguments; the
        # BaseTask initialiser (hparams, configure_models/losses/metrics) is what applies here.
        super(SemanticSegmentation, self).__init__()

    # -- construction --------------------------------------------------------------------
    def configure_models(self) -> None:
        h = self.hparams
        self.model = DualStreamDFormer(
            num_classes=h["num_classes"],
            task=h["task"],
            in_channels=h["in_channels"],
            air_channels=h["air_channels"],
            band_names=h["band_names"],
            preset=h["preset"],
            vision_encoder=h["vision_encoder"],
            vision_weights=h["vision_weights"],
            air_weights=h["air_weights"],
            drop_path_rate=h["drop_path_rate"],
            modality_dropout=h["modality_dropout"],
            use_boundary_refine=h["use_boundary_refine"],
            gate_twice=h["gate_twice"],
            image_detail=h["image_detail"],
        )
        if h["weights"]:
            load_model_weights(self.model, h["weights"])
        absent = self.model.air_absent
        if h["use_air"] and not h["modality_dropout"] and isinstance(absent, nn.Parameter):
            # Every training batch carries air, so the learned "air absent" input takes no part
            # in any loss: it does not train (and DDP would stop on a parameter without grad).
            absent.requires_grad_(False)

    def setup(self, stage: str) -> None:
        self._balance_classes()
        trainer = self._trainer
        if trainer is None or trainer.world_size < 2:
            return
        if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.modules()):
            return  # GroupNorm and LayerNorm only: nothing to synchronise
        if trainer.strategy.root_device.type == "cpu":
            rank_zero_warn(
                "BatchNorm statistics stay per process: SyncBatchNorm needs GPUs", stacklevel=1
            )
            return
        self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)

    def _balance_classes(self) -> None:
        """``class_balance``: class weights from the training labels' class frequencies."""
        power = self.hparams["class_balance"]
        if not power or self.hparams["class_weights"] is not None:
            return
        datamodule = getattr(self._trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "class_counts"):
            raise DualStreamError(
                "class_balance needs the DualStreamDataModule (its training labels give the "
                "class frequencies); or give class_weights"
            )
        counts = datamodule.class_counts(self.hparams["num_classes"])
        weights = balanced_weights(counts, power).tolist()
        self.criterion.loss.set_class_weights(weights)
        self.balanced_class_weights = weights
        rank_zero_info(
            f"class weights (class_balance {power}): "
            + ", ".join(f"{n} {w:.2f}" for n, w in zip(self.class_names, weights, strict=True))
        )

    @property
    def frozen_epochs(self) -> int:
        """Epochs with frozen encoders (``freeze_epochs``, or its default)."""
        return freeze_epochs(self.hparams)

    def configure_losses(self) -> None:
        h = self.hparams
        loss = SegmentationLoss(
            h["task"],
            ignore_index=h["ignore_index"],
            focal_weight=h["focal_weight"],
            lovasz_weight=h["lovasz_weight"],
            dice_weight=h["dice_weight"],
            ce_weight=h["ce_weight"],
            class_weights=h["class_weights"],
            focal_alpha=h["focal_alpha"],
            focal_gamma=h["focal_gamma"],
            lovasz_form=h["lovasz_form"],
        )
        heads = {**HEAD_WEIGHTS, **(h["aux_weights"] or {})}
        self.criterion = DeepSupervisionLoss(loss, heads)

    def configure_metrics(self) -> None:
        # TorchGeo's metrics read num_labels (multilabel only); it is not an argument here,
        # and must not be saved as one (checkpoint hparams are parsed back by the CLI).
        self.hparams["num_labels"] = None
        super().configure_metrics()
        del self.hparams["num_labels"]

    def configure_callbacks(self) -> list[Callback]:
        root = self.trainer.default_root_dir if self._trainer is not None else "."
        folder = os.path.join(root, "checkpoints")
        callbacks: list[Callback] = [
            TwoStageFinetuning(self.frozen_epochs),
            EpochSeeds(),
            BestCheckpoint(
                dirpath=folder,
                filename="best",
                monitor=self.hparams["monitor"],
                mode="min" if self.hparams["monitor"].endswith("loss") else "max",
                enable_version_counter=False,
            ),
            last_checkpoint(folder, self.hparams["checkpoint_every_n_steps"]),
            TrainingCurves(os.path.join(root, "training_curves.png")),
        ]
        if self.hparams["keep_epoch_checkpoints"]:
            callbacks.append(epoch_checkpoints(os.path.join(folder, "epochs")))
        return callbacks

    def param_groups(self) -> list[dict[str, Any]]:
        """One AdamW group per model part, at ``lr`` times that part's multiplier."""
        multipliers = lr_multipliers(self.hparams)
        groups = []
        for part in PARTS:
            params = list(getattr(self.model, part).parameters())
            absent = self.model.air_absent
            if part == "air_encoder" and isinstance(absent, nn.Parameter) and absent.requires_grad:
                params.append(absent)
            # Parameters that never train (the original's unused boundary branch) stay out.
            params = [p for p in params if p.requires_grad or part in FREEZABLE]
            groups.append(
                {"name": part, "params": params, "lr": self.hparams["lr"] * multipliers[part]}
            )
        return groups

    def configure_optimizers(self) -> Any:
        optimizer = AdamW(
            self.param_groups(), lr=self.hparams["lr"], weight_decay=self.hparams["weight_decay"]
        )
        epochs = self.trainer.max_epochs if self._trainer is not None else None
        epochs = epochs if epochs and epochs > 0 else 1
        name = self.hparams["lr_schedule"]
        steps = 1
        if INTERVALS[name] == "step" and self._trainer is not None:
            steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = build_schedule(
            optimizer,
            name,
            max_epochs=epochs,
            frozen_epochs=self.frozen_epochs,
            min_lr=self.hparams["min_lr"],
            total_steps=steps,
            warmup_steps=round(self.hparams["warmup_epochs"] * steps / epochs),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": INTERVALS[name]},
        }

    # -- steps ---------------------------------------------------------------------------
    def forward(self, image: Tensor, air: Tensor | None = None) -> dict[str, Tensor]:  # type: ignore[override]
        return self.model(image, air if self.hparams["use_air"] else None)

    def _scores(self, outputs: dict[str, Tensor]) -> Tensor:
        """What the metrics take: target probabilities (B, H, W) for a binary task (thresholded
        at 0.5, i.e. logit > 0), class indices (B, H, W) otherwise: the argmax once, which
        each of the fifteen metrics would otherwise take again from the logits."""
        logits = outputs["final"].detach().float()
        return logits[:, 0].sigmoid() if self.hparams["task"] == "binary" else logits.argmax(1)

    def _augmented_scores(self, batch: dict[str, Any], tta: str) -> Tensor:
        """:meth:`_scores` from the probabilities averaged over the ``tta`` transforms."""
        probabilities = tta_mean(self.probabilities, batch["image"], batch.get("air"), tta)
        if self.hparams["task"] == "binary":
            return probabilities[:, 1]
        return probabilities.argmax(1)

    def _shared_step(self, batch: dict[str, Any], split: str, tta: str = "none") -> Tensor:
        outputs = self(batch["image"], batch.get("air"))
        target = batch["mask"]
        loss = self.criterion(outputs, target)
        scores = self._scores(outputs) if tta == "none" else self._augmented_scores(batch, tta)
        getattr(self, f"{split}_metrics")(scores, target)
        self.log(
            f"{split}_loss",
            loss,
            batch_size=target.shape[0],
            prog_bar=split == "train",
            # Evaluation patches are shared out across ranks: average over all of them.
            sync_dist=split != "train",
        )
        return loss

    def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._shared_step(batch, "test", tta=self.hparams["test_tta"])

    def on_train_epoch_end(self) -> None:
        self._log_metrics(self.train_metrics)

    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics)

    def _log_metrics(self, metrics: MetricCollection) -> None:
        # compute() already gathers every rank's counts (torchmetrics); sync_dist then only
        # averages identical values, which tells Lightning that they are global.
        self.log_dict(metrics.compute(), sync_dist=True)
        metrics.reset()

    def predict_step(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor | None]:
        return {
            "probabilities": self.probabilities(batch["image"], batch.get("air")),
            "bounds": batch.get("bounds"),
        }

    def probabilities(self, image: Tensor, air: Tensor | None) -> Tensor:
        """Class probabilities (B, num_classes, H, W); binary gives (background, target)."""
        return class_probabilities(self(image, air)["final"], self.hparams["task"])

    # -- metadata for prediction ---------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        return list(
            self.hparams["labels"] or [f"class_{i}" for i in range(self.hparams["num_classes"])]
        )

    @property
    def class_colors(self) -> list[tuple[int, int, int]]:
        colors = self.hparams["class_colors"]
        if colors:
            return [tuple(c) for c in colors]  # type: ignore[misc]
        return [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(self.hparams["num_classes"])]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        datamodule = (
            getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        )
        checkpoint[CHECKPOINT_KEY] = prediction_metadata(self, datamodule)
