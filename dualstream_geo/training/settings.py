"""The task's grouped settings: ``model.loss`` and ``model.checkpoints`` in a config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..data.spec import InputSpec
from ..errors import DualStreamError
from ..models import PRESETS
from ..models.air import AIR_REDUCTIONS
from ..models.tta import TTAS
from .defaults import PARTS
from .losses import HEAD_WEIGHTS, LOVASZ_FORMS, DeepSupervisionLoss, SegmentationLoss
from .schedule import SCHEDULES


@dataclass(frozen=True)
class LossSettings:
    """The loss: a weighted sum of cross-entropy, Focal, Lovasz and Dice on every head.

    The defaults are the original's focal 0.5 + Lovasz 0.5.

    Attributes:
        ce_weight: the cross-entropy's weight.
        focal_weight: the Focal loss's weight.
        lovasz_weight: the Lovasz loss's weight.
        dice_weight: the Dice loss's weight.
        class_weights: per-class weights of the cross-entropy.
        class_balance: p > 0 computes the class weights from the training labels as
            ``(median frequency / frequency) ** p``.
        focal_alpha: the Focal loss's alpha.
        focal_gamma: the Focal loss's gamma.
        lovasz_form: ``smp``, or ``original``: the original's Lovasz on probabilities, per
            image (binary task).
        head_weights: each head's weight (default final 1.0, aux_f2 0.3, aux_f3 0.15,
            aux_detail 0.5).
    """

    ce_weight: float = 0.0
    focal_weight: float = 0.5
    lovasz_weight: float = 0.5
    dice_weight: float = 0.0
    class_weights: tuple[float, ...] | None = None
    class_balance: float = 0.0
    focal_alpha: float | None = 0.25
    focal_gamma: float = 2.0
    lovasz_form: Literal["smp", "original"] = "smp"
    head_weights: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.lovasz_form not in LOVASZ_FORMS:
            raise DualStreamError(
                f"loss.lovasz_form must be one of {LOVASZ_FORMS}, got {self.lovasz_form!r}"
            )
        if self.head_weights is not None and set(self.head_weights) - set(HEAD_WEIGHTS):
            raise DualStreamError(
                f"loss.head_weights keys must be among {tuple(HEAD_WEIGHTS)}, got "
                f"{sorted(self.head_weights)}"
            )
        if self.class_balance < 0:
            raise DualStreamError(f"loss.class_balance must be >= 0, got {self.class_balance}")
        if (self.class_weights is not None or self.class_balance > 0) and self.ce_weight <= 0:
            raise DualStreamError(
                "loss.class_weights / loss.class_balance weight the cross-entropy: set "
                "loss.ce_weight > 0"
            )
        weights = (self.ce_weight, self.focal_weight, self.lovasz_weight, self.dice_weight)
        if min(weights) < 0 or max(weights) <= 0:
            raise DualStreamError(
                "loss: the ce / focal / lovasz / dice weights must be >= 0, one of them > 0"
            )

    def as_dict(self) -> dict[str, object]:
        """Plain values (for hyper-parameters that a checkpoint loads with weights_only)."""
        return {
            "ce_weight": self.ce_weight,
            "focal_weight": self.focal_weight,
            "lovasz_weight": self.lovasz_weight,
            "dice_weight": self.dice_weight,
            "class_weights": list(self.class_weights) if self.class_weights else None,
            "class_balance": self.class_balance,
            "focal_alpha": self.focal_alpha,
            "focal_gamma": self.focal_gamma,
            "lovasz_form": self.lovasz_form,
            "head_weights": dict(self.head_weights) if self.head_weights else None,
        }

    def build(self, task: str, ignore_index: int) -> DeepSupervisionLoss:
        """The loss these settings describe for ``task``, summed over the model's heads.

        Args:
            task: ``binary`` or ``multiclass``.
            ignore_index: the label the loss leaves out.

        Returns:
            The loss over the model's output dict.
        """
        loss = SegmentationLoss(
            task,
            ignore_index=ignore_index,
            focal_weight=self.focal_weight,
            lovasz_weight=self.lovasz_weight,
            dice_weight=self.dice_weight,
            ce_weight=self.ce_weight,
            class_weights=list(self.class_weights) if self.class_weights else None,
            focal_alpha=self.focal_alpha,
            focal_gamma=self.focal_gamma,
            lovasz_form=self.lovasz_form,
        )
        return DeepSupervisionLoss(loss, {**HEAD_WEIGHTS, **(self.head_weights or {})})


@dataclass(frozen=True)
class CheckpointSettings:
    """What ``best.ckpt`` keeps, and which checkpoints a ``fit`` run writes besides it.

    ``last.ckpt`` is always written at the end of every epoch.

    Attributes:
        monitor: the metric ``best.ckpt`` keeps (``val_loss`` is minimised); for a binary
            task ``val_AverageJaccardIndex`` is the target-class IoU.
        every_n_steps: also write ``last.ckpt`` every n training steps.
        keep_epochs: keep every epoch's weights (``checkpoints/epochs/``).
    """

    monitor: str = "val_AverageJaccardIndex"
    every_n_steps: int | None = None
    keep_epochs: bool = False

    def __post_init__(self) -> None:
        if self.every_n_steps is not None and self.every_n_steps < 1:
            raise DualStreamError(
                f"checkpoints.every_n_steps must be >= 1 (or null), got {self.every_n_steps}"
            )

    def as_dict(self) -> dict[str, Any]:
        """Plain values: what the task's hyper-parameters hold."""
        return asdict(self)


def as_settings[Settings](
    kind: type[Settings], given: Settings | Mapping[str, Any] | None
) -> Settings:
    """``given`` as a ``kind`` settings object (a checkpoint holds them as plain values).

    Args:
        kind: the settings class.
        given: an instance, its values as a mapping, or None for the defaults.

    Returns:
        The settings.

    Raises:
        DualStreamError: a setting the class does not have (named).
    """
    if isinstance(given, kind):
        return given
    values = dict(given or {})  # type: ignore[arg-type]
    try:
        return kind(**values)
    except TypeError as error:
        raise DualStreamError(f"{kind.__name__}: {error}") from None


def check_task_settings(
    spec: InputSpec,
    loss: LossSettings,
    *,
    task: str,
    preset: str,
    test_tta: str,
    lr_schedule: str,
    lr_multipliers: dict[str, float] | None,
    lr: float,
    min_lr: float,
    weight_decay: float,
    warmup_epochs: float,
    drop_path_rate: float,
    freeze_epochs: int | None,
) -> None:
    """Refuse task settings that do not fit together or the data, before anything is built.

    Args:
        spec: the inputs and classes the task is for.
        loss: the loss settings.
        task: ``binary`` or ``multiclass`` (the rest as the task's arguments of the same
            names: :class:`~dualstream_geo.training.DualStreamSegmentation`).
        preset: the model preset.
        test_tta: the test-time augmentation.
        lr_schedule: the schedule's name.
        lr_multipliers: per-part learning-rate multipliers.
        lr: the base learning rate.
        min_lr: the schedule's floor.
        weight_decay: AdamW's weight decay.
        warmup_epochs: the warm-up length.
        drop_path_rate: the encoders' stochastic depth.
        freeze_epochs: epochs with frozen encoders.

    Raises:
        DualStreamError: the first setting that is wrong, named.
    """
    num_classes = spec.num_classes
    if task == "binary" and num_classes != 2:
        raise DualStreamError(
            f"task='binary' needs 2 classes (background, target), the data has {num_classes}"
        )
    if preset not in PRESETS:
        raise DualStreamError(f"preset must be one of {PRESETS}, got {preset!r}")
    if loss.lovasz_form == "original" and task != "binary":
        raise DualStreamError("loss.lovasz_form='original' needs task='binary'")
    if test_tta not in TTAS:
        raise DualStreamError(f"test_tta must be one of {TTAS}, got {test_tta!r}")
    if lr_schedule not in SCHEDULES:
        raise DualStreamError(f"lr_schedule must be one of {SCHEDULES}, got {lr_schedule!r}")
    if lr_multipliers is not None and set(lr_multipliers) - set(PARTS):
        raise DualStreamError(
            f"lr_multipliers keys must be among {PARTS}, got {sorted(lr_multipliers)}"
        )
    if loss.class_weights is not None and len(loss.class_weights) != num_classes:
        raise DualStreamError(
            f"loss.class_weights has {len(loss.class_weights)} values for {num_classes} classes"
        )
    if not lr > 0:
        raise DualStreamError(f"lr must be > 0, got {lr}")
    for name, value in (
        ("min_lr", min_lr),
        ("weight_decay", weight_decay),
        ("warmup_epochs", warmup_epochs),
    ):
        if not value >= 0:
            raise DualStreamError(f"{name} must be >= 0, got {value}")
    if not 0.0 <= drop_path_rate < 1.0:
        raise DualStreamError(f"drop_path_rate must lie in [0, 1), got {drop_path_rate}")
    if freeze_epochs is not None and freeze_epochs < 0:
        raise DualStreamError(f"freeze_epochs must be >= 0, got {freeze_epochs}")
    if spec.uses_aux and spec.aux_scale not in AIR_REDUCTIONS:
        raise DualStreamError(
            f"aux_scale {spec.aux_scale}: DualStreamDFormer reads the aux stream "
            f"at 1/r of the image with r in {AIR_REDUCTIONS} (the original preset: 8)"
        )
    if spec.uses_aux and preset == "original" and spec.aux_scale != 8:
        raise DualStreamError(
            f"aux_scale {spec.aux_scale}: the original preset reads the aux "
            "stream at 1/8 of the image (set data.aux_scale 8, or model.architecture.preset lite)"
        )
