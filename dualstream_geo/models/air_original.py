"""The original DualStream-DFormer air encoder: ConvNeXt blocks with GroupNorm(1)."""

from __future__ import annotations

from typing import override

import torch.nn.functional as F
from timm.layers import GroupNorm1
from torch import Tensor, nn

from .layers import BasicConv, convnext_block
from .registry import Encoder, register_encoder


class Downsample(nn.Module):
    """GroupNorm(1) then a 2x2 stride-2 convolution without bias.

    (B, C_in, H, W) -> (B, C_out, H/2, W/2). Parts ``norm`` and ``conv``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = GroupNorm1(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 2, stride=2, bias=False)

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.norm(x))


def _blocks(channels: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(convnext_block(channels) for _ in range(depth)))


@register_encoder("air-original")
class OriginalAirEncoder(Encoder):
    """Air stream -> four feature maps aligned with the vision stages.

    Air stream (B, in_channels, h, w) with h = H/8 -> [A1 (c1, 2h), A2 (c2, h), A3 (c3,
    h/2), A4 (c4, h/4)], aligned with the vision stages at H/4 ... H/32.

    Stem at h (BasicConv + two ConvNeXt blocks) gives A2; a bilinear x2 upsampling, a
    BasicConv and two blocks give A1; two GroupNorm + 2x2-conv downsamplings, each followed
    by two blocks, give A3 and A4. With c = (64, 128, 320, 512) and 48 input channels it is
    the original's ``air_encoder`` (7,226,624 parameters), module for module.

    Args:
        in_channels: the aux stream's channels.
        out_channels: c, the widths of A1..A4.
        depth: ConvNeXt blocks per stage.
    """

    reductions = (4, 8, 16, 32)
    input_reduction = 8

    def __init__(
        self,
        in_channels: int = 48,
        out_channels: tuple[int, int, int, int] = (64, 128, 320, 512),
        depth: int = 2,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = tuple(out_channels)
        c1, c2, c3, c4 = out_channels
        self.stem_conv = BasicConv(in_channels, c2)
        self.stem_blocks = _blocks(c2, depth)
        self.make_f1_conv = BasicConv(c2, c1)
        self.make_f1_blocks = _blocks(c1, depth)
        self.make_f3_downsample = Downsample(c2, c3)
        self.make_f3_blocks = _blocks(c3, depth)
        self.make_f4_downsample = Downsample(c3, c4)
        self.make_f4_blocks = _blocks(c4, depth)

    @override
    def forward(self, x: Tensor) -> list[Tensor]:
        a2 = self.stem_blocks(self.stem_conv(x))
        up = F.interpolate(a2, scale_factor=2, mode="bilinear", align_corners=False)
        a1 = self.make_f1_blocks(self.make_f1_conv(up))
        a3 = self.make_f3_blocks(self.make_f3_downsample(a2))
        a4 = self.make_f4_blocks(self.make_f4_downsample(a3))
        return [a1, a2, a3, a4]
