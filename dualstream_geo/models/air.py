"""The lite air encoder: a shallow ConvNeXt on the coarse air stream (timm blocks)."""

from __future__ import annotations

from typing import override

import torch
from timm.layers import LayerNorm2d
from timm.models.convnext import ConvNeXtBlock
from torch import Tensor, nn

from ..errors import DualStreamError
from .registry import Encoder, register_encoder


def _blocks(channels: int, drop_path_rates: list[float], mlp_ratio: float) -> nn.Sequential:
    return nn.Sequential(
        *(ConvNeXtBlock(channels, mlp_ratio=mlp_ratio, drop_path=rate) for rate in drop_path_rates)
    )


def _downsample(in_channels: int, out_channels: int) -> nn.Sequential:
    """ConvNeXt-style x2 downsampling: LayerNorm2d then a 2x2 stride-2 convolution."""
    return nn.Sequential(
        LayerNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, 2, stride=2)
    )


def _stem(in_channels: int, out_channels: int, patch: int, norm: bool) -> nn.Sequential:
    """A linear stem: a 3x3 convolution, or a patchify one when the stream is finer.

    The patchify convolution is ``patch`` x ``patch`` with stride ``patch``, for a stream
    finer than the stem's output; LayerNorm2d after it if ``norm``.
    """
    conv = (
        nn.Conv2d(in_channels, out_channels, 3, padding=1)
        if patch == 1
        else nn.Conv2d(in_channels, out_channels, patch, stride=patch)
    )
    return nn.Sequential(conv, LayerNorm2d(out_channels)) if norm else nn.Sequential(conv)


#: Image pixels per aux pixel the lite air encoder reads (``input_reduction``).
AIR_REDUCTIONS = (1, 2, 4, 8)


@register_encoder("air-lite")
class ConvNeXtAirEncoder(Encoder):
    """Air stream (B, in_channels, H/r, W/r) -> features aligned with the vision stages.

    ``r = input_reduction``. With r = 8 (the default, atmospheric products): stem at H/8
    (128 ch), a bilinear x2 upsampling and a 3x3 convolution to H/4 (64 ch), downsampling
    stages to H/16 (320 ch) and H/32 (512 ch). With r = 4 (a DEM under 30 m imagery, whose
    detail a 1/8 grid averages away): stem at H/4 (64 ch), then downsampling stages to H/8,
    H/16 and H/32, as a plain ConvNeXt pyramid; r = 2 or 1 patchify to H/4 first (a linear
    r' x r' stride-r' convolution, r' = 4/r). Output order: [H/4, H/8, H/16, H/32].

    The air stream is smooth and low-dimensional, so blocks are shallow with an MLP ratio
    of 2, and with r = 8 the H/4 features are the upsampling alone (no block at 4x the H/8
    cost by default). Bilinear upsampling rather than a 2x2 transposed convolution: the
    latter gives every 2x2 cell the same four weights, so the FiLM modulation it drives
    repeats with a 2-pixel period. The stem is linear unless ``stem_norm``: a LayerNorm over
    the stem features of a one-channel stream divides its level out.

    Args:
        in_channels: the aux stream's channels.
        out_channels: the widths of the four outputs (the vision stages').
        depths: ConvNeXt blocks per output stage.
        mlp_ratio: the blocks' MLP expansion.
        drop_path_rate: the blocks' stochastic depth, rising linearly to this value.
        stem_norm: a LayerNorm after the stem.
        input_reduction: r, image pixels per aux pixel side.

    Raises:
        DualStreamError: ``input_reduction`` not in :data:`AIR_REDUCTIONS`.
    """

    reductions = (4, 8, 16, 32)

    def __init__(
        self,
        in_channels: int = 48,
        out_channels: tuple[int, int, int, int] = (64, 128, 320, 512),
        depths: tuple[int, int, int, int] = (0, 1, 1, 1),
        mlp_ratio: float = 2.0,
        drop_path_rate: float = 0.1,
        stem_norm: bool = False,
        input_reduction: int = 8,
    ) -> None:
        super().__init__()
        if input_reduction not in AIR_REDUCTIONS:
            raise DualStreamError(
                f"the lite air encoder reads the aux stream at 1/r of the image with r in "
                f"{AIR_REDUCTIONS}, got {input_reduction}"
            )
        self.in_channels = in_channels
        self.input_reduction = input_reduction
        self.out_channels = tuple(out_channels)
        c1, c2, c3, c4 = out_channels
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(5)]
        stage_rates = [rates[starts[i] : starts[i + 1]] for i in range(4)]
        # Modules are made in data-flow order: the random initialisation of a seed (and so
        # every result at r = 8) is that of the encoder before r could be chosen.
        if input_reduction == 8:
            self.stem = _stem(in_channels, c2, 1, stem_norm)
            self.stage2 = _blocks(c2, stage_rates[1], mlp_ratio)
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(c2, c1, 3, padding=1),
                LayerNorm2d(c1),
            )
            self.stage1 = _blocks(c1, stage_rates[0], mlp_ratio)
        else:
            self.stem = _stem(in_channels, c1, 4 // input_reduction, stem_norm)
            self.stage1 = _blocks(c1, stage_rates[0], mlp_ratio)
            self.down = _downsample(c1, c2)
            self.stage2 = _blocks(c2, stage_rates[1], mlp_ratio)
        self.stage3 = nn.Sequential(_downsample(c2, c3), _blocks(c3, stage_rates[2], mlp_ratio))
        self.stage4 = nn.Sequential(_downsample(c3, c4), _blocks(c4, stage_rates[3], mlp_ratio))

    @override
    def forward(self, x: Tensor) -> list[Tensor]:
        if self.input_reduction == 8:
            f2 = self.stage2(self.stem(x))
            f1 = self.stage1(self.up(f2))
        else:
            f1 = self.stage1(self.stem(x))
            f2 = self.stage2(self.down(f1))
        f3 = self.stage3(f2)
        f4 = self.stage4(f3)
        return [f1, f2, f3, f4]
