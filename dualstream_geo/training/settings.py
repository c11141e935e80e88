"""The loss settings of the task, as one object (``model.loss`` in a config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import DualStreamError
from .losses import HEAD_WEIGHTS, LOVASZ_FORMS, DeepSupervisionLoss, SegmentationLoss


@dataclass(frozen=True)
class LossSettings:
    """``ce_weight`` x cross-entropy + ``focal_weight`` x Focal(``focal_alpha``,
    ``focal_gamma``) + ``lovasz_weight`` x Lovasz + ``dice_weight`` x Dice on every head,
    the heads weighted by ``aux_weights`` (default final 1.0, aux_f2 0.3, aux_f3 0.15,
    aux_detail 0.5). ``lovasz_form="original"``: the original's Lovasz on probabilities,
    per image (binary task). ``class_weights`` weight the cross-entropy per class;
    ``class_balance`` p > 0 computes them from the training labels as
    ``(median frequency / frequency) ** p``. The defaults are the original's focal 0.5 +
    Lovasz 0.5."""

    ce_weight: float = 0.0
    focal_weight: float = 0.5
    lovasz_weight: float = 0.5
    dice_weight: float = 0.0
    class_weights: tuple[float, ...] | None = None
    class_balance: float = 0.0
    focal_alpha: float | None = 0.25
    focal_gamma: float = 2.0
    lovasz_form: Literal["smp", "original"] = "smp"
    aux_weights: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.lovasz_form not in LOVASZ_FORMS:
            raise DualStreamError(
                f"loss.lovasz_form must be one of {LOVASZ_FORMS}, got {self.lovasz_form!r}"
            )
        if self.aux_weights is not None and set(self.aux_weights) - set(HEAD_WEIGHTS):
            raise DualStreamError(
                f"loss.aux_weights keys must be among {tuple(HEAD_WEIGHTS)}, got "
                f"{sorted(self.aux_weights)}"
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
            "aux_weights": dict(self.aux_weights) if self.aux_weights else None,
        }

    def build(self, task: str, ignore_index: int) -> DeepSupervisionLoss:
        """The loss these settings describe for ``task`` (``binary`` or ``multiclass``),
        pixels of ``ignore_index`` left out, summed over the model's heads."""
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
        return DeepSupervisionLoss(loss, {**HEAD_WEIGHTS, **(self.aux_weights or {})})
