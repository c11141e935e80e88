"""Building blocks shared by the model presets: GroupNorm(1), BasicConv and the ConvNeXt block.

The original DualStream-DFormer normalises with one-group GroupNorm everywhere (mean and
variance over all C x H x W values of a sample), uses the exact erf GELU, and its ConvNeXt
blocks have no layer scale and a constant drop-path. timm provides each piece; these helpers
only fix the arguments so that every preset builds the same block the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import override

import torch
from timm.layers import GroupNorm1
from timm.models.convnext import ConvNeXtBlock
from torch import Tensor, nn

#: Drop-path probability of every ConvNeXt block of the original model (no depth schedule).
BLOCK_DROP_PATH = 0.1


def convnext_block(channels: int, drop_path: float = BLOCK_DROP_PATH) -> ConvNeXtBlock:
    """ConvNeXt block (B, C, H, W) -> (B, C, H, W).

    Depthwise 7x7 -> GroupNorm(1) -> 1x1 conv C->4C -> GELU -> 1x1 conv 4C->C, residual with
    drop-path; no layer scale.

    timm names its parts ``conv_dw``, ``norm``, ``mlp.fc1``, ``mlp.fc2`` (the original:
    ``dwconv``, ``norm``, ``pwconv1``, ``pwconv2``).
    """
    return ConvNeXtBlock(
        channels,
        conv_mlp=True,
        ls_init_value=None,
        norm_layer=GroupNorm1,
        act_layer="gelu",
        drop_path=drop_path,
    )


class BasicConv(nn.Module):
    """Conv k x k (no bias) -> GroupNorm(1) -> GELU: (B, C_in, H, W) -> (B, C_out, H/s, W/s).

    Parts are named ``conv``, ``bn`` and ``relu`` as in the original (``bn`` is a GroupNorm).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, bias=False
        )
        self.bn = GroupNorm1(out_channels)
        self.relu = nn.GELU()

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    dilation: int = 1,
    norm: Callable[[int], nn.Module] = GroupNorm1,
) -> nn.Sequential:
    """Conv -> norm -> GELU, as a Sequential.

    [0] conv (no bias, "same" padding) -> [1] ``norm`` (GroupNorm(1)) -> [2] GELU, as a
    Sequential.
    """
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            padding=dilation * (kernel_size // 2),
            dilation=dilation,
            bias=False,
        ),
        norm(out_channels),
        nn.GELU(),
    )


def in_fp32(layer: Callable[[Tensor], Tensor], features: Tensor) -> Tensor:
    """``layer(features)`` computed in fp32 whatever the autocast around it.

    For the layers bf16 harms: the final classifier (in bf16 the logits keep 8 significant
    bits, so the largest of two close classes is decided by rounding; on Zion this 1 x 1
    layer alone in fp32 brings a bf16 map from 99.90 % to 99.92 % of the fp32 map's classes)
    and the detail path's depthwise convolutions (whose bf16 backward overflows).

    Args:
        layer: a module or function with fp32 weights.
        features: (B, D, H, W) features in any float dtype.

    Returns:
        ``layer``'s fp32 output.
    """
    with torch.autocast(features.device.type, enabled=False):
        return layer(features.float())
