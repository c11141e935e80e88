"""Batch augmentation with kornia, applied identically to image, mask, valid and air.

kornia's AugmentationSequential only transforms the keys it knows, and the air stream lies
on a coarser grid than the image, so the geometric pass runs on image + mask + valid, and
its sampled parameters are replayed on the air stream. Flips and 90-degree rotations are
size-independent, so the replay is the same transformation at the air resolution.
"""

from __future__ import annotations

from typing import Any, override

import kornia.augmentation as K
import torch
from torch import Tensor, nn


class DualStreamAugmentation(nn.Module):
    """Random flips and 90-degree rotations of every stream.

    Brightness/contrast/noise on the image only. Patches are square, so a 90-degree rotation
    keeps the shape.

    Takes and returns a batch dict with ``image`` (B, C, H, W), ``mask`` (B, H, W), ``valid``
    (B, H, W) and ``air`` (B, A, H/8, W/8); other keys pass through.
    """

    def __init__(self, flips: bool = True, rotations: bool = True, intensity: bool = True) -> None:
        super().__init__()
        geometric: list[K.GeometricAugmentationBase2D] = []
        if flips:
            geometric += [K.RandomHorizontalFlip(), K.RandomVerticalFlip()]
        if rotations:
            geometric.append(K.RandomRotation90(times=(0, 3), p=0.75))
        self.geometric = (
            K.AugmentationSequential(*geometric, data_keys=["input", "mask", "mask"], keepdim=True)
            if geometric
            else None
        )
        self.intensity = (
            K.AugmentationSequential(
                K.RandomBrightness((0.9, 1.1), clip_output=False, p=0.5),
                K.RandomContrast((0.9, 1.1), clip_output=False, p=0.5),
                K.RandomGaussianNoise(std=0.02, p=0.3),
                data_keys=["input"],
                keepdim=True,
            )
            if intensity
            else None
        )

    @override
    @torch.no_grad()
    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        image: Tensor = batch["image"]
        if self.geometric is not None:
            mask = batch["mask"].unsqueeze(1).to(image.dtype)
            valid = batch["valid"].unsqueeze(1).to(image.dtype)
            image, mask, valid = self.geometric(image, mask, valid)
            # 90-degree rotations are affine warps: round away interpolation noise.
            batch["mask"] = mask.squeeze(1).round().to(torch.int64)
            batch["valid"] = valid.squeeze(1) > 0.5
            if "air" in batch:
                batch["air"] = self.geometric(
                    batch["air"], params=self.geometric._params, data_keys=["input"]
                )
        if self.intensity is not None:
            image = self.intensity(image)
        batch["image"] = image
        return batch
