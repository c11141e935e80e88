"""The lite air encoder: a shallow ConvNeXt on the coarse air stream (timm blocks)."""

from __future__ import annotations

import torch
from timm.layers import LayerNorm2d
from timm.models.convnext import ConvNeXtBlock
from torch import Tensor, nn

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


@register_encoder("air-lite")
class ConvNeXtAirEncoder(Encoder):
    """Air stream (B, in_channels, H/8, W/8) -> features aligned with the vision stages.

    Stem at H/8 (128 ch), a bilinear x2 upsampling and a 3x3 convolution to H/4 (64 ch),
    downsampling stages to H/16 (320 ch) and H/32 (512 ch). Output order: [H/4, H/8, H/16,
    H/32]. The air stream is smooth and low-dimensional, so blocks are shallow with an MLP
    ratio of 2, and the H/4 features are the upsampling alone (no block at 4x the H/8 cost
    by default). Bilinear upsampling rather than a 2x2 transposed convolution: the latter
    gives every 2x2 cell the same four weights, so the FiLM modulation it drives repeats
    with a 2-pixel period.
    """

    reductions = (4, 8, 16, 32)
    input_reduction = 8

    def __init__(
        self,
        in_channels: int = 48,
        out_channels: tuple[int, int, int, int] = (64, 128, 320, 512),
        depths: tuple[int, int, int, int] = (0, 1, 1, 1),
        mlp_ratio: float = 2.0,
        drop_path_rate: float = 0.1,
        stem_norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = tuple(out_channels)
        c1, c2, c3, c4 = out_channels
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        starts = [sum(depths[:i]) for i in range(5)]
        stage_rates = [rates[starts[i] : starts[i + 1]] for i in range(4)]
        stem: list[nn.Module] = [nn.Conv2d(in_channels, c2, 3, padding=1)]
        self.stem = nn.Sequential(*stem, LayerNorm2d(c2)) if stem_norm else nn.Sequential(*stem)
        self.stage2 = _blocks(c2, stage_rates[1], mlp_ratio)
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(c2, c1, 3, padding=1),
            LayerNorm2d(c1),
        )
        self.stage1 = _blocks(c1, stage_rates[0], mlp_ratio)
        self.stage3 = nn.Sequential(_downsample(c2, c3), _blocks(c3, stage_rates[2], mlp_ratio))
        self.stage4 = nn.Sequential(_downsample(c3, c4), _blocks(c4, stage_rates[3], mlp_ratio))

    def forward(self, x: Tensor) -> list[Tensor]:
        f2 = self.stage2(self.stem(x))
        f1 = self.stage1(self.up(f2))
        f3 = self.stage3(f2)
        f4 = self.stage4(f3)
        return [f1, f2, f3, f4]
