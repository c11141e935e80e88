"""DualStreamSegmentation: the Lightning task that trains DualStreamDFormer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal, override

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor, nn
from torchgeo.tasks import SemanticSegmentation
from torchmetrics import MetricCollection

from ..data.normalize import DatasetStats
from ..data.spec import MODEL_AUX_SCALE, InputSpec
from ..errors import DualStreamError
from ..models import DualStreamDFormer
from ..models.dualstream import class_probabilities
from ..models.settings import ArchitectureSettings
from ..models.tta import tta_mean
from ..models.weights import load_model_weights
from .callbacks import fit_callbacks
from .defaults import freeze_epochs, lr_multipliers
from .losses import DeepSupervisionLoss, balanced_weights
from .optimization import optimizer_config, param_groups
from .pretrained_input import match_pretrained_input
from .schedule import INTERVALS
from .settings import CheckpointSettings, LossSettings, as_settings, check_task_settings
from .stored import store_spec


class DualStreamSegmentation(SemanticSegmentation):
    """Semantic segmentation of image + aux batches with DualStream-DFormer.

    What the model sees (image channels, aux channels, classes, ignore index) is
    ``input_spec`` (:class:`~dualstream_geo.data.spec.InputSpec`, linked from the
    datamodule by the CLI); the spec, with the band statistics of the training data, is
    stored in every checkpoint (:mod:`~dualstream_geo.training.stored`).

    Args:
        input_spec: the inputs and classes (default: 4 bands, 2 classes, image only).
        task: ``binary`` (one sigmoid channel; two classes) or ``multiclass`` (softmax).
        architecture: how the model is built (preset, encoder, detail path, context, ...:
            :class:`~dualstream_geo.models.settings.ArchitectureSettings`).
        weights: initialise the whole model from a project checkpoint (e.g. one written by
            ``dualstream-geo import-original``) or an original full-model state dict.
        vision_weights: pretrained vision-encoder weights: for a SegFormer a directory, hub
            id or state dict; for the others a TorchGeo weights name
            (``ResNet50_Weights.LANDSAT_OLI_SR_MOCO``, downloaded once, or read from the torch
            hub cache) or a state-dict file, the stem matched to the bands by name
            (:mod:`~dualstream_geo.models.pretrained`).
        aux_weights: pretrained weights of the air encoder, which reads the aux stream (a
            state dict).
        loss: the loss terms, their weights and the head weights
            (:class:`~dualstream_geo.training.settings.LossSettings`).
        lr: base learning rate; each part (vision encoder, air encoder, fusion, decoder)
            trains at ``lr`` x its ``lr_multipliers`` entry (default 0.1, 0.5, 1, 1).
        lr_multipliers: per-part learning-rate multipliers.
        weight_decay: AdamW weight decay.
        freeze_epochs: epochs with frozen encoders (default: 2 when an encoder starts from
            pretrained weights, 0 from random weights; :mod:`~dualstream_geo.training.defaults`).
        lr_schedule: ``cosine``, ``original`` or ``warmup_cosine``
            (:mod:`~dualstream_geo.training.schedule`).
        warmup_epochs: warm-up length of ``warmup_cosine``.
        min_lr: the schedule's floor.
        checkpoints: what ``best.ckpt`` keeps and which other checkpoints are written
            (:class:`~dualstream_geo.training.settings.CheckpointSettings`).
        test_tta: test scores from probabilities averaged over flips (``flip``) or all
            eight flips and rotations (``d4``); ``test_loss`` stays the plain pass's.

    Frozen parameters get no gradient, so AdamW neither updates nor decays them and their
    moments start when they are unfrozen. Each epoch is seeded from (seed, epoch), so
    resuming from ``last.ckpt`` continues exactly
    (:mod:`~dualstream_geo.training.checkpointing`).

    Raises:
        DualStreamError: settings that do not fit together, naming them.
    """

    #: The spec is stored by :mod:`~dualstream_geo.training.stored`, not as a hyper-parameter
    #: (checkpoints are read with ``weights_only``, which admits plain values only).
    ignore = ("input_spec",)
    criterion: DeepSupervisionLoss
    #: The weights ``loss.class_balance`` computed (None without it).
    balanced_class_weights: list[float] | None = None

    def __init__(
        self,
        input_spec: InputSpec | None = None,
        task: Literal["binary", "multiclass"] = "multiclass",
        architecture: ArchitectureSettings | None = None,
        weights: str | None = None,
        vision_weights: str | None = None,
        aux_weights: str | None = None,
        loss: LossSettings | None = None,
        lr: float = 3e-4,
        lr_multipliers: dict[str, float] | None = None,
        weight_decay: float = 1e-5,
        freeze_epochs: int | None = None,
        lr_schedule: Literal["cosine", "original", "warmup_cosine"] = "cosine",
        warmup_epochs: float = 1.0,
        min_lr: float = 1e-6,
        checkpoints: CheckpointSettings | None = None,
        test_tta: Literal["none", "flip", "d4"] = "none",
    ) -> None:
        self._built_for = input_spec or InputSpec()
        #: That spec with the statistics of the data the task was set up with (derived once,
        #: in setup; read on every forward pass).
        self._resolved = self._built_for
        settings = as_settings(LossSettings, loss)
        model = as_settings(ArchitectureSettings, architecture)
        saving = as_settings(CheckpointSettings, checkpoints)
        check_task_settings(
            self._built_for,
            settings,
            task=task,
            preset=model.preset,
            test_tta=test_tta,
            lr_schedule=lr_schedule,
            lr_multipliers=lr_multipliers,
            lr=lr,
            min_lr=min_lr,
            weight_decay=weight_decay,
            warmup_epochs=warmup_epochs,
            drop_path_rate=model.drop_path_rate,
            freeze_epochs=freeze_epochs,
        )
        self.loss_settings = settings
        self.architecture = model
        self.checkpoint_settings = saving
        # Saved as plain values (the frame's locals are what save_hyperparameters reads).
        loss = settings.as_dict()  # type: ignore[assignment]
        architecture = model.as_dict()  # type: ignore[assignment]
        checkpoints = saving.as_dict()  # type: ignore[assignment]
        # SemanticSegmentation.__init__ builds an smp model from its own arguments; the
        # BaseTask initialiser (hparams, configure_models/losses/metrics) is what applies here.
        super(SemanticSegmentation, self).__init__()

    # -- construction --------------------------------------------------------------------
    @override
    def configure_models(self) -> None:
        h, a = self.hparams, self.architecture
        spec = self.input_spec
        self.model = DualStreamDFormer(
            num_classes=spec.num_classes,
            task=h["task"],
            in_channels=spec.in_channels,
            air_channels=spec.model_aux_channels,
            band_names=spec.channel_names,
            preset=a.preset,
            vision_encoder=a.vision_encoder,
            vision_weights=h["vision_weights"],
            aux_weights=h["aux_weights"],
            drop_path_rate=a.drop_path_rate,
            modality_dropout=a.modality_dropout,
            use_boundary_refine=a.use_boundary_refine,
            gate_twice=a.gate_twice,
            image_detail=a.image_detail,
            aux_stem=a.aux_stem,
            aux_scale=spec.aux_scale if spec.uses_aux else MODEL_AUX_SCALE,
            # Without aux sources the air input is the learned constant: nothing to detail.
            detail_aux=a.detail_aux and spec.uses_aux,
            context=a.context,
            detail_design=a.detail_design,
        )
        if h["weights"]:
            load_model_weights(self.model, h["weights"])
        absent = self.model.air_absent
        if spec.uses_aux and not a.modality_dropout and isinstance(absent, nn.Parameter):
            # Every training batch carries air, so the learned "air absent" input takes no part
            # in any loss: it does not train (and DDP would stop on a parameter without grad).
            absent.requires_grad_(False)

    def _sync_batchnorm(self) -> None:
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
        """``loss.class_balance``: class weights from the training labels' frequencies."""
        power = self.loss_settings.class_balance
        if not power or self.loss_settings.class_weights is not None:
            return
        datamodule = getattr(self._trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "class_counts"):
            raise DualStreamError(
                "loss.class_balance needs the DualStreamDataModule (its training labels give "
                "the class frequencies); or give loss.class_weights"
            )
        counts = datamodule.class_counts(self.input_spec.num_classes)
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

    @override
    def configure_losses(self) -> None:
        self.criterion = self.loss_settings.build(
            self.hparams["task"], self.input_spec.ignore_index
        )

    @override
    def configure_metrics(self) -> None:
        # TorchGeo's metrics read the classes from the hyper-parameters; here they are the
        # spec's, and must not be saved as hyper-parameters (the CLI parses those back).
        spec = self.input_spec
        borrowed = {
            "num_classes": spec.num_classes,
            "num_labels": None,
            "ignore_index": spec.ignore_index,
            "labels": spec.class_names,
        }
        self.hparams.update(borrowed)
        try:
            super().configure_metrics()
        finally:
            for key in borrowed:
                del self.hparams[key]

    @override
    def configure_callbacks(self) -> list[Callback]:
        root = self.trainer.default_root_dir if self._trainer is not None else "."
        return fit_callbacks(root, self.checkpoint_settings, self.frozen_epochs)

    def param_groups(self) -> list[dict[str, Any]]:
        """One AdamW group per model part (:func:`~.optimization.param_groups`)."""
        return param_groups(self.model, self.hparams["lr"], lr_multipliers(self.hparams))

    @override
    def configure_optimizers(self) -> Any:
        h, trainer = self.hparams, self._trainer
        epochs = trainer.max_epochs if trainer is not None else None
        steps = None
        if INTERVALS[h["lr_schedule"]] == "step" and trainer is not None:
            # Only then: estimating the steps sets up the training data early.
            steps = int(trainer.estimated_stepping_batches)
        return optimizer_config(self.param_groups(), h, epochs, steps, self.frozen_epochs)

    # -- steps ---------------------------------------------------------------------------
    @override
    def forward(self, image: Tensor, air: Tensor | None = None) -> dict[str, Tensor]:  # type: ignore[override]
        return self.model(image, air if self.input_spec.uses_aux else None)

    def _scores(self, outputs: dict[str, Tensor]) -> Tensor:
        """What the metrics take.

        Target probabilities (B, H, W) for a binary task (thresholded at 0.5, i.e. logit >
        0), class indices (B, H, W) otherwise: the argmax once, which each of the fifteen
        metrics would otherwise take again from the logits.
        """
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

    @override
    def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Tensor:
        loss = self._shared_step(batch, "train")
        # One non-finite loss makes every weight NaN at the optimizer step, and the run would
        # go on for its whole budget scoring 0: stop at once, saying where.
        if not torch.isfinite(loss.detach()).all():
            raise DualStreamError(
                f"the training loss is {loss.item()} at step {self.global_step} (epoch "
                f"{self.current_epoch}): the run diverged; lower --model.lr, or train in fp32 "
                "(--trainer.precision 32-true)"
            )
        return loss

    @override
    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._shared_step(batch, "val")

    @override
    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._shared_step(batch, "test", tta=self.hparams["test_tta"])

    @override
    def on_train_epoch_end(self) -> None:
        self._log_metrics(self.train_metrics)

    @override
    def on_validation_epoch_end(self) -> None:
        self._log_metrics(self.val_metrics)

    @override
    def on_test_epoch_end(self) -> None:
        self._log_metrics(self.test_metrics)

    def _log_metrics(self, metrics: MetricCollection) -> None:
        # compute() already gathers every rank's counts (torchmetrics); sync_dist then only
        # averages identical values, which tells Lightning that they are global.
        self.log_dict(metrics.compute(), sync_dist=True)
        metrics.reset()

    @override
    def predict_step(
        self, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor | None]:
        return {
            "probabilities": self.probabilities(batch["image"], batch.get("air")),
            "bounds": batch.get("bounds"),
        }

    def probabilities(self, image: Tensor, air: Tensor | None) -> Tensor:
        """Class probabilities (B, num_classes, H, W); binary gives (background, target).

        Args:
            image: (B, C, H, W) normalised image.
            air: (B, A, H/r, W/r) normalised aux stream, or None for the image alone.

        Returns:
            (B, num_classes, H, W) probabilities.
        """
        return class_probabilities(self(image, air)["final"], self.hparams["task"])

    # -- what the checkpoint carries ----------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names of the input spec, in class-index order."""
        return self.input_spec.class_names

    @property
    def class_colors(self) -> list[tuple[int, int, int]]:
        """One RGB colour per class, from the input spec."""
        return self.input_spec.class_colors

    @property
    def input_spec(self) -> InputSpec:
        """What the model reads.

        The spec it was built for (the data's, linked by the CLI, or its checkpoint's) with
        the band statistics of the data it was set up with.
        """
        return self._resolved

    @override
    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        spec = getattr(datamodule, "input_spec", None)
        if isinstance(spec, InputSpec):
            differences = self.input_spec.differences(spec)
            if differences:
                raise DualStreamError(
                    "the model was built for other inputs than the data gives: "
                    + "; ".join(differences)
                )
            self._take_stats(spec.stats)
            if stage == "fit" and self.hparams["vision_weights"]:
                match_pretrained_input(self.model, self.input_spec)
        self._balance_classes()
        self._sync_batchnorm()

    def _take_stats(self, stats: DatasetStats | None) -> None:
        """Normalise as the data does.

        Its statistics, once; other statistics than those the model already has (its
        checkpoint's, or an earlier setup's) are refused.
        """
        if stats is None:
            return
        mine = self._resolved.stats
        if mine is None:
            self._resolved = replace(self._built_for, stats=stats)
        elif mine != stats:
            raise DualStreamError(
                "the data is normalised with other band statistics than the model was trained "
                "with: evaluate a checkpoint through --ckpt_path, which normalises the data "
                "with the checkpoint's statistics"
            )

    @override
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        store_spec(checkpoint, self.input_spec, class_weights=self.balanced_class_weights)
