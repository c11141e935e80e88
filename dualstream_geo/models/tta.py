"""Test-time augmentation.

The dihedral transforms of a (..., H, W) tensor and the mean of a prediction over them, each
mapped back onto the input's pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

TTAS = ("none", "flip", "d4")

Transform = Callable[[Tensor], Tensor]


def _d4(k: int, flip: bool) -> tuple[Transform, Transform]:
    def forward(x: Tensor) -> Tensor:
        x = torch.flip(x, dims=(-1,)) if flip else x
        return torch.rot90(x, k, dims=(-2, -1))

    def inverse(x: Tensor) -> Tensor:
        x = torch.rot90(x, -k, dims=(-2, -1))
        return torch.flip(x, dims=(-1,)) if flip else x

    return forward, inverse


def tta_transforms(tta: str) -> list[tuple[Transform, Transform]]:
    """(forward, inverse) pairs on (..., H, W) tensors: identity; + flips; or all of D4."""
    if tta == "none":
        return [_d4(0, False)]
    if tta == "flip":
        return [_d4(0, False), _d4(0, True), _d4(2, True)]  # identity, horizontal, vertical
    if tta == "d4":
        return [_d4(k, flip) for k in range(4) for flip in (False, True)]
    raise ValueError(f"tta must be one of {TTAS}, got {tta!r}")


def tta_mean(
    predict: Callable[[Tensor, Tensor | None], Tensor],
    image: Tensor,
    air: Tensor | None,
    tta: str,
) -> Tensor:
    """Mean of ``predict(image, air)`` (B, C, H, W) over the transforms of ``tta``.

    Image and air (B, 48, h, w) cover the same footprint, so they are turned together.
    """
    transforms = tta_transforms(tta)
    total: Tensor | None = None
    for forward, inverse in transforms:
        output = inverse(predict(forward(image), forward(air) if air is not None else None))
        total = output if total is None else total + output
    assert total is not None
    return total / len(transforms)
