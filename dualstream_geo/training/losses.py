"""Focal + Lovasz (+ Dice) from segmentation_models_pytorch, with deep supervision."""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss, LovaszLoss
from torch import Tensor, nn


class SegmentationLoss(nn.Module):
    """Weighted sum of smp losses on one logit map, ``ignore_index`` honoured.

    logits (B, K, H, W) (K = 1 for binary), target (B, H, W) int64 -> scalar.
    """

    def __init__(
        self,
        mode: str,
        ignore_index: int = 255,
        focal_weight: float = 0.5,
        lovasz_weight: float = 0.5,
        dice_weight: float = 0.0,
        focal_alpha: float | None = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        candidates = {
            "focal": (
                focal_weight,
                lambda: FocalLoss(
                    mode, alpha=focal_alpha, gamma=focal_gamma, ignore_index=ignore_index
                ),
            ),
            "lovasz": (lovasz_weight, lambda: LovaszLoss(mode, ignore_index=ignore_index)),
            "dice": (dice_weight, lambda: DiceLoss(mode, ignore_index=ignore_index)),
        }
        for name, (weight, build) in candidates.items():
            if weight > 0:
                self.terms[name] = build()
                self.weights[name] = weight
        if not self.terms:
            raise ValueError("at least one of focal/lovasz/dice weight must be > 0")
        self.binary = mode == "binary"

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.binary:
            logits = logits[:, 0]
        return sum(self.weights[name] * term(logits, target) for name, term in self.terms.items())  # type: ignore[return-value]


class DeepSupervisionLoss(nn.Module):
    """Loss over the model's heads: each head's logits are upsampled to the label size
    (bilinear) and weighted by ``head_weights`` (final 1.0, aux_f2 0.3, aux_f3 0.15)."""

    def __init__(self, loss: SegmentationLoss, head_weights: Mapping[str, float]) -> None:
        super().__init__()
        self.loss = loss
        self.head_weights = dict(head_weights)

    def forward(self, outputs: Mapping[str, Tensor], target: Tensor) -> Tensor:
        total = target.new_zeros((), dtype=outputs["final"].dtype)
        for head, weight in self.head_weights.items():
            if weight == 0:
                continue
            logits = outputs[head]
            if logits.shape[-2:] != target.shape[-2:]:
                logits = F.interpolate(
                    logits, size=target.shape[-2:], mode="bilinear", align_corners=False
                )
            total = total + weight * self.loss(logits.float(), target)
        return total
