"""Segmentation losses with deep supervision.

Focal, Lovasz and Dice come from segmentation_models_pytorch. The original project's Lovasz
differs from smp's binary one (the hinge on logits): it is computed on sigmoid probabilities,
for the foreground only, per image; :class:`BinaryLovaszProbabilityLoss` implements that
form. Its focal form (alpha on the target, global mean over labelled pixels) is smp's
binary ``FocalLoss``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import override

import numpy as np
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.losses import DiceLoss, FocalLoss, LovaszLoss
from torch import Tensor, nn

LOVASZ_FORMS = ("smp", "original")
#: The heads a model may return, and their default weights (aux_detail: models with the
#: full-resolution image path only).
HEAD_WEIGHTS = {"final": 1.0, "aux_f2": 0.3, "aux_f3": 0.15, "aux_detail": 0.5}


def balanced_weights(counts: np.ndarray, power: float) -> np.ndarray:
    """Class weights ``(median frequency / frequency) ** power``.

    (median-frequency balancing, Eigen & Fergus 2015, softened by ``power``: 0 = no
    weighting, 1 = full), scaled so that the mean weight over the pixels is 1 (the loss
    keeps its scale). A class with no pixel gets the largest weight of the others (it cannot
    occur in training, and must not make the weights infinite). ``counts`` (K,) -> (K,)
    float64.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.sum() <= 0:
        raise ValueError("balanced_weights needs at least one labelled pixel")
    frequency = counts / counts.sum()
    present = frequency > 0
    weights = np.zeros_like(frequency)
    weights[present] = (np.median(frequency[present]) / frequency[present]) ** power
    weights[~present] = weights[present].max()
    return weights / float((weights * frequency).sum())


def lovasz_grad(sorted_truth: Tensor) -> Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss.

    W.r.t. errors sorted in descending order (Berman et al., 2018, Alg. 1): (N,) 0/1 truth
    -> (N,) weights.
    """
    total = sorted_truth.sum()
    intersection = total - sorted_truth.cumsum(0)
    union = total + (1 - sorted_truth).cumsum(0)
    jaccard = 1.0 - intersection / union
    jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


class BinaryLovaszProbabilityLoss(nn.Module):
    """The original's Lovasz loss: logits (B, H, W), target (B, H, W) -> scalar.

    Per image, over pixels whose label is not ``ignore_index``: errors ``|t - sigmoid(z)|``
    sorted in descending order, dotted with :func:`lovasz_grad` of the labels in that order
    (foreground class only). An image without foreground scores max(p); an image without
    labelled pixels scores 0 and still counts in the batch mean.
    """

    def __init__(self, ignore_index: int | None = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    @override
    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        probabilities = logits.float().sigmoid()
        losses = []
        for probs, truth in zip(probabilities, target, strict=True):
            probs, truth = probs.reshape(-1), truth.reshape(-1)
            if self.ignore_index is not None:
                keep = truth != self.ignore_index
                probs, truth = probs[keep], truth[keep]
            if probs.numel() == 0:
                losses.append(probs.sum())
                continue
            truth = truth.to(probs.dtype)
            errors, order = (truth - probs).abs().sort(descending=True)
            losses.append(errors @ lovasz_grad(truth[order]))
        return torch.stack(losses).mean()


class CrossEntropy(nn.Module):
    """Cross-entropy averaged over the labelled pixels.

    Softmax (multiclass, torch's ``cross_entropy``) or sigmoid (binary, torch's
    ``binary_cross_entropy_with_logits``).

    logits (B, K, H, W) multiclass or (B, H, W) binary, target (B, H, W) -> scalar; 0 when no
    pixel is labelled. smp's ``SoftCrossEntropyLoss`` averages over every pixel, ignored ones
    included, so a patch half outside its split would weigh half as much.
    ``class_weights`` (K; 2 for binary: background, target) weight each class's pixels: the
    loss is the weighted mean over the labelled pixels.
    """

    class_weights: Tensor | None

    def __init__(
        self, mode: str, ignore_index: int = 255, class_weights: list[float] | None = None
    ) -> None:
        super().__init__()
        self.binary = mode == "binary"
        self.ignore_index = ignore_index
        self.set_class_weights(class_weights)

    def set_class_weights(self, class_weights: list[float] | None) -> None:
        """Weight the classes by ``class_weights`` (None: equally)."""
        self.class_weights = (
            torch.tensor(class_weights, dtype=torch.float32) if class_weights else None
        )

    @override
    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        weights = self.class_weights
        if weights is not None:
            weights = weights.to(logits.device)
        if not self.binary:
            if not (target != self.ignore_index).any():
                return logits.sum() * 0.0
            return F.cross_entropy(logits, target, weight=weights, ignore_index=self.ignore_index)
        keep = target != self.ignore_index
        if not keep.any():
            return logits.sum() * 0.0
        truth = target[keep]
        losses = F.binary_cross_entropy_with_logits(
            logits[keep], truth.to(logits.dtype), reduction="none"
        )
        if weights is None:
            return losses.mean()
        pixel_weights = weights[truth]
        return (losses * pixel_weights).sum() / pixel_weights.sum()


class SegmentationLoss(nn.Module):
    """Weighted sum of cross-entropy, Focal, Lovasz and Dice on one logit map.

    logits (B, K, H, W) (K = 1 for binary), target (B, H, W) int64 -> scalar; pixels of
    ``ignore_index`` are left out. ``lovasz_form="original"`` (binary only) uses
    :class:`BinaryLovaszProbabilityLoss`.

    Args:
        mode: ``binary`` or ``multiclass``.
        ignore_index: the label left out.
        focal_weight: the Focal loss's weight.
        lovasz_weight: the Lovasz loss's weight.
        dice_weight: the Dice loss's weight.
        focal_alpha: the Focal loss's alpha.
        focal_gamma: the Focal loss's gamma.
        lovasz_form: ``smp`` or ``original``.
        ce_weight: the cross-entropy's weight.
        class_weights: per-class weights of the cross-entropy.
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
        lovasz_form: str = "smp",
        ce_weight: float = 0.0,
        class_weights: list[float] | None = None,
    ) -> None:
        super().__init__()
        if lovasz_form not in LOVASZ_FORMS:
            raise ValueError(f"lovasz_form must be one of {LOVASZ_FORMS}, got {lovasz_form!r}")
        if lovasz_form == "original" and mode != "binary":
            raise ValueError("lovasz_form='original' is the binary (foreground) form")
        self.terms = nn.ModuleDict()
        self.weights: dict[str, float] = {}
        candidates = {
            "ce": (ce_weight, lambda: CrossEntropy(mode, ignore_index, class_weights)),
            "focal": (
                focal_weight,
                lambda: FocalLoss(
                    mode, alpha=focal_alpha, gamma=focal_gamma, ignore_index=ignore_index
                ),
            ),
            "lovasz": (
                lovasz_weight,
                lambda: (
                    BinaryLovaszProbabilityLoss(ignore_index)
                    if lovasz_form == "original"
                    else LovaszLoss(mode, ignore_index=ignore_index)
                ),
            ),
            "dice": (dice_weight, lambda: DiceLoss(mode, ignore_index=ignore_index)),
        }
        for name, (weight, build) in candidates.items():
            if weight > 0:
                self.terms[name] = build()
                self.weights[name] = weight
        if not self.terms:
            raise ValueError("at least one of ce/focal/lovasz/dice weight must be > 0")
        self.binary = mode == "binary"

    def set_class_weights(self, class_weights: list[float] | None) -> None:
        """Weights of the cross-entropy term, per class."""
        term = self.terms["ce"] if "ce" in self.terms else None
        if term is None:
            raise ValueError("class weights weight the cross-entropy: set ce_weight > 0")
        term.set_class_weights(class_weights)  # type: ignore[operator]

    @override
    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.binary:
            logits = logits[:, 0]
        return sum(self.weights[name] * term(logits, target) for name, term in self.terms.items())  # type: ignore[return-value]


class DeepSupervisionLoss(nn.Module):
    """Loss over the model's heads.

    Each head's logits are upsampled to the label size (bilinear) and weighted by
    ``head_weights`` (final 1.0, aux_f2 0.3, aux_f3 0.15, and aux_detail for models with the
    full-resolution image path); a head the model does not have is skipped.

    Args:
        loss: the loss of one logit map.
        head_weights: each head's weight, by output name.
    """

    def __init__(self, loss: SegmentationLoss, head_weights: Mapping[str, float]) -> None:
        super().__init__()
        self.loss = loss
        self.head_weights = dict(head_weights)

    @override
    def forward(self, outputs: Mapping[str, Tensor], target: Tensor) -> Tensor:
        total = target.new_zeros((), dtype=outputs["final"].dtype)
        for head, weight in self.head_weights.items():
            if weight == 0 or head not in outputs:
                continue  # e.g. "aux_detail" of a model without the image path
            logits = outputs[head]
            if logits.shape[-2:] != target.shape[-2:]:
                logits = F.interpolate(
                    logits, size=target.shape[-2:], mode="bilinear", align_corners=False
                )
            total = total + weight * self.loss(logits.float(), target)
        return total
