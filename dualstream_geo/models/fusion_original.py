"""The original fusion blocks: FiLM + dynamic gate (stages 1-2), cross-attention (stages 3-4)."""

from __future__ import annotations

from typing import override

import torch
import torch.nn.functional as F
from timm.layers import DropPath, GroupNorm1
from torch import Tensor, nn

from .layers import BLOCK_DROP_PATH, convnext_block
from .locality import neighbourhood_attention


class FiLMGenerator(nn.Module):
    """FiLM from the air: ``vision * (1 + gamma) + beta``.

    vision (B, Cv, H, W), air (B, Ca, H, W) -> (B, Cv, H, W). ``generator``: 1x1 conv
    Ca -> mid, a ConvNeXt block, 1x1 conv mid -> 2 Cv (gamma first, then beta), with
    mid = (Ca + Cv) // 2.

    Args:
        vision_channels: Cv, the vision features' width.
        air_channels: Ca, the air features' width.
    """

    def __init__(self, vision_channels: int, air_channels: int) -> None:
        super().__init__()
        mid = (air_channels + vision_channels) // 2
        self.generator = nn.Sequential(
            nn.Conv2d(air_channels, mid, 1),
            convnext_block(mid),
            nn.Conv2d(mid, 2 * vision_channels, 1),
        )

    @override
    def forward(self, vision: Tensor, air: Tensor) -> Tensor:
        gamma, beta = self.generator(air).chunk(2, dim=1)
        return vision * (1 + gamma) + beta


class FusionGate(nn.Module):
    """Per-pixel gate from vision and air: (B, Cv, H, W), (B, Ca, H, W) -> (B, 1, H, W) in (0, 1).

    ``gate_generator``: 3x3 conv over [vision, air] -> Cv/2, GroupNorm(1), GELU, 1x1 conv -> 1,
    sigmoid.

    Args:
        vision_channels: Cv, the vision features' width.
        air_channels: Ca, the air features' width.
    """

    def __init__(self, vision_channels: int, air_channels: int) -> None:
        super().__init__()
        hidden = vision_channels // 2
        self.gate_generator = nn.Sequential(
            nn.Conv2d(vision_channels + air_channels, hidden, 3, padding=1),
            GroupNorm1(hidden),
            nn.GELU(),
            nn.Conv2d(hidden, 1, 1),
            nn.Sigmoid(),
        )

    @override
    def forward(self, vision: Tensor, air: Tensor) -> Tensor:
        return self.gate_generator(torch.cat([vision, air], dim=1))


class GatedFiLMFusion(nn.Module):
    """``vision * (1 - g) + FiLM(vision, air) * g`` with g = gate(vision, air).

    vision (B, Cv, H, W), air (B, Ca, H, W) -> (B, Cv, H, W). The original evaluates the gate
    twice on the same inputs; it is deterministic, so ``gate_twice=False`` (one evaluation)
    gives the same values and gradients at lower cost. ``gate_twice=True`` only reproduces
    the original's operation count.

    Args:
        vision_channels: Cv, the vision features' width.
        air_channels: Ca, the air features' width.
        gate_twice: evaluate the gate twice, as the original does.
    """

    def __init__(self, vision_channels: int, air_channels: int, gate_twice: bool = False) -> None:
        super().__init__()
        self.film = FiLMGenerator(vision_channels, air_channels)
        self.gate = FusionGate(vision_channels, air_channels)
        self.gate_twice = gate_twice

    @override
    def forward(self, vision: Tensor, air: Tensor) -> Tensor:
        gate = self.gate(vision, air)
        second = self.gate(vision, air) if self.gate_twice else gate
        return vision * (1 - gate) + self.film(vision, air) * second


class CrossAttentionBlock(nn.Module):
    """Vision queries attend to air keys/values; post-norm residual blocks with GroupNorm(1).

    vision (B, E, H, W), air (B, E_air, h, w) -> (B, E, H, W). ``attn`` is PyTorch's
    multi-head attention (8 heads, packed q|k|v projection when E_air == E);
    ``n1 = norm1(vision + drop_path(attn))``, output ``norm2(n1 + drop_path(ffn(n1)))`` with
    ``ffn`` = 1x1 conv E -> 4E, GELU, 1x1 conv 4E -> E. No positional encoding. ``cell``
    (vision tokens per side of a 32 px cell): each cell's queries attend to the air of the
    cells around it (:func:`~.locality.neighbourhood_attention`) with the same weights.

    Args:
        channels: E, the vision features' width.
        air_channels: E_air, the air features' width.
        num_heads: attention heads.
        drop_path: stochastic depth of both residual branches.
        cell: vision tokens per side of a 32 px cell (None: attention over the whole input).
    """

    def __init__(
        self,
        channels: int,
        air_channels: int,
        num_heads: int = 8,
        drop_path: float = BLOCK_DROP_PATH,
        cell: int | None = None,
    ) -> None:
        super().__init__()
        self.cell = cell
        self.attn = nn.MultiheadAttention(
            channels, num_heads, kdim=air_channels, vdim=air_channels, batch_first=True
        )
        self.norm1 = GroupNorm1(channels)
        self.ffn = nn.Sequential(
            nn.Conv2d(channels, 4 * channels, 1), nn.GELU(), nn.Conv2d(4 * channels, channels, 1)
        )
        self.norm2 = GroupNorm1(channels)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    @override
    def forward(self, vision: Tensor, air: Tensor) -> Tensor:
        batch, channels, height, width = vision.shape
        queries = vision.flatten(2).transpose(1, 2)
        context = air.flatten(2).transpose(1, 2)
        if self.cell is None:
            attended, _ = self.attn(queries, context, context, need_weights=False)
        else:
            cells = (height // self.cell, width // self.cell)
            attended = self._local(queries, context, (height, width), air.shape[-2:], cells)
        tokens = queries + self.drop_path(attended)
        mixed = self.norm1(tokens.transpose(1, 2).reshape(batch, channels, height, width))
        return self.norm2(mixed + self.drop_path(self.ffn(mixed)))

    def _local(
        self,
        queries: Tensor,
        context: Tensor,
        query_shape: tuple[int, int],
        key_shape: tuple[int, ...],
        cells: tuple[int, int],
    ) -> Tensor:
        """``attn``'s projections around neighbourhood attention: (B, Nq, E) -> (B, Nq, E)."""
        attn = self.attn
        bias = attn.in_proj_bias
        biases = bias.chunk(3) if bias is not None else (None, None, None)
        if attn.in_proj_weight is not None:
            weights = attn.in_proj_weight.chunk(3)
        else:
            weights = (attn.q_proj_weight, attn.k_proj_weight, attn.v_proj_weight)
        q, k, v = (
            F.linear(tokens, weight, b)
            for tokens, weight, b in zip((queries, context, context), weights, biases, strict=True)
        )
        attended = neighbourhood_attention(
            q, k, v, query_shape, (key_shape[0], key_shape[1]), cells, attn.num_heads
        )
        return attn.out_proj(attended)
