"""The lite fusion blocks: FiLM + dynamic gate (stages 1-2), cross-attention (stages 3-4)."""

from __future__ import annotations

from typing import override

import torch
import torch.nn.functional as F
from timm.layers import DropPath, GroupNorm1, Mlp
from torch import Tensor, nn

from .locality import neighbourhood_attention


class FiLM(nn.Module):
    """Feature-wise modulation: ``vision * (1 + gamma) + beta``, gamma/beta from the air.

    vision (B, C, H, W), air (B, A, H, W) -> (B, C, H, W). Starts as the identity.

    Args:
        vision_channels: C, the vision features' width.
        air_channels: A, the air features' width.
    """

    def __init__(self, vision_channels: int, air_channels: int) -> None:
        super().__init__()
        self.to_gamma_beta = nn.Conv2d(air_channels, 2 * vision_channels, 1)
        nn.init.zeros_(self.to_gamma_beta.weight)
        nn.init.zeros_(self.to_gamma_beta.bias)  # type: ignore[arg-type]

    @override
    def forward(self, vision: Tensor, air: Tensor) -> Tensor:
        gamma, beta = self.to_gamma_beta(air).chunk(2, dim=1)
        return vision * (1 + gamma) + beta


class DynamicFusionGate(nn.Module):
    """Per-pixel gate from vision and air features.

    (B, Cv, H, W), (B, Ca, H, W) -> (B, 1, H, W) in (0, 1).

    A 1x1 convolution mixes all channels of both streams at each position, then
    GroupNorm(1), GELU and a 1x1 convolution to one channel: the gate can weigh a vision
    feature against an air feature, which a grouped convolution over the concatenation
    (pairing neighbouring channels of one stream, linearly) cannot.

    Args:
        vision_channels: Cv, the vision features' width.
        air_channels: Ca, the air features' width.
    """

    def __init__(self, vision_channels: int, air_channels: int) -> None:
        super().__init__()
        hidden = max(vision_channels // 4, 16)
        self.gate = nn.Sequential(
            nn.Conv2d(vision_channels + air_channels, hidden, 1),
            GroupNorm1(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, 1, 1),
        )

    @override
    def forward(self, vision: Tensor, air: Tensor) -> Tensor:
        return torch.sigmoid(self.gate(torch.cat([vision, air], dim=1)))


class FiLMFusion(nn.Module):
    """``vision + g * (FiLM(vision, air) - vision)``.

    FiLM mixed with the unmodulated vision features by a gate computed once from both
    streams. (B, Cv, H, W), (B, Ca, H, W) -> (B, Cv, H, W).

    Args:
        vision_channels: Cv, the vision features' width.
        air_channels: Ca, the air features' width.
    """

    def __init__(self, vision_channels: int, air_channels: int) -> None:
        super().__init__()
        self.film = FiLM(vision_channels, air_channels)
        self.gate = DynamicFusionGate(vision_channels, air_channels)

    @override
    def forward(self, vision: Tensor, air: Tensor) -> Tensor:
        gate = self.gate(vision, air)
        return vision + gate * (self.film(vision, air) - vision)


class CrossAttentionFusion(nn.Module):
    """Vision queries attend to air keys/values; residual, LayerNorm, MLP, drop-path.

    vision (B, C, H, W), air (B, A, h, w) -> (B, C, H, W). Air keys/values are average-pooled
    by ``kv_reduction`` first (as SegFormer reduces its keys): the air field is smooth, and
    attention then costs 1/kv_reduction^2 of the full product. ``cell`` (vision tokens per
    side of a 32 px cell): each cell's queries attend to the air of the cells around it
    (:func:`~.locality.neighbourhood_attention`), not to the whole window's.

    Args:
        vision_channels: C, the vision features' width.
        air_channels: A, the air features' width.
        num_heads: attention heads.
        drop_path: stochastic depth of both residual branches.
        kv_reduction: the air keys' and values' average-pooling factor.
        cell: vision tokens per side of a 32 px cell (None: attention over the whole input).
    """

    def __init__(
        self,
        vision_channels: int,
        air_channels: int,
        num_heads: int = 8,
        drop_path: float = 0.0,
        kv_reduction: int = 1,
        cell: int | None = None,
    ) -> None:
        super().__init__()
        self.kv_reduction = kv_reduction
        self.cell = cell
        if vision_channels % num_heads:
            raise ValueError(
                f"vision_channels {vision_channels} not divisible by {num_heads} heads"
            )
        self.num_heads = num_heads
        self.norm_q = nn.LayerNorm(vision_channels)
        self.norm_kv = nn.LayerNorm(air_channels)
        self.q = nn.Linear(vision_channels, vision_channels)
        self.kv = nn.Linear(air_channels, 2 * vision_channels)
        self.proj = nn.Linear(vision_channels, vision_channels)
        self.norm_mlp = nn.LayerNorm(vision_channels)
        self.mlp = Mlp(vision_channels, 2 * vision_channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _heads(self, x: Tensor) -> Tensor:
        batch, tokens, channels = x.shape
        return x.view(batch, tokens, self.num_heads, channels // self.num_heads).transpose(1, 2)

    @override
    def forward(self, vision: Tensor, air: Tensor) -> Tensor:
        batch, channels, height, width = vision.shape
        if self.kv_reduction > 1:
            air = F.avg_pool2d(air, self.kv_reduction, ceil_mode=True)
        tokens = vision.flatten(2).transpose(1, 2)
        context = self.norm_kv(air.flatten(2).transpose(1, 2))
        key, value = self.kv(context).chunk(2, dim=-1)
        query = self.q(self.norm_q(tokens))
        if self.cell is not None:
            attended = neighbourhood_attention(
                query,
                key,
                value,
                (height, width),
                (air.shape[-2], air.shape[-1]),
                (height // self.cell, width // self.cell),
                self.num_heads,
            )
        else:
            attended = F.scaled_dot_product_attention(
                self._heads(query), self._heads(key), self._heads(value)
            )
            attended = attended.transpose(1, 2).reshape(batch, -1, channels)
        tokens = tokens + self.drop_path(self.proj(attended))
        tokens = tokens + self.drop_path(self.mlp(self.norm_mlp(tokens)))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class StageFusion(nn.ModuleList):
    """One fusion module per encoder stage, each called as ``fuse(vision, air)``."""

    @override
    def forward(self, vision: list[Tensor], air: list[Tensor]) -> list[Tensor]:  # type: ignore[override]
        return [fuse(v, a) for fuse, v, a in zip(self, vision, air, strict=True)]


def lite_fusion(
    vision_channels: tuple[int, ...],
    air_channels: tuple[int, ...],
    num_heads: tuple[int, ...] = (1, 2, 5, 8),
    drop_path_rate: float = 0.1,
    local: bool = False,
) -> StageFusion:
    """FiLM + gate at stages 1-2.

    Cross-attention at 3-4 (keys pooled x2 at stage 3), over the neighbouring 32 px cells
    when ``local``.
    """
    return StageFusion(
        [
            FiLMFusion(vision_channels[0], air_channels[0]),
            FiLMFusion(vision_channels[1], air_channels[1]),
            CrossAttentionFusion(
                vision_channels[2],
                air_channels[2],
                num_heads[2],
                drop_path_rate / 2,
                2,
                cell=2 if local else None,
            ),
            CrossAttentionFusion(
                vision_channels[3],
                air_channels[3],
                num_heads[3],
                drop_path_rate,
                cell=1 if local else None,
            ),
        ]
    )
