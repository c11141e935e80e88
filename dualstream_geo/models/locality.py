"""Local context: a pixel's prediction depends on the scene around it, not on its window.

A model predicts a whole scene window by window. Every operation that reads the whole
window (attention over all of its tokens, GroupNorm statistics over it, global average
pooling) makes a pixel's class depend on where the window was cut and on how much nodata it
holds: the map shows the window grid and changes with the tile size. With
``context="local"`` a model has none of them:

* attention is *neighbourhood attention* on a lattice of 32 px cells (the encoders'
  coarsest features): the queries of a cell attend to the keys of the (2r + 1)^2 cells
  around it (:func:`neighbourhood_attention`; HaloNet's blocked local attention, Vaswani et
  al. 2021), for SegFormer's self-attention and the fusion's cross-attention alike;
* normalisation is per pixel over its channels (:class:`timm.layers.LayerNorm2d`,
  as ConvNeXt), not GroupNorm(1) over the window (:func:`groupnorm_to_layernorm`);
* pooling is a mean over the neighbouring cells (:class:`NeighbourhoodPool`), and ASPP's
  dilations stay within them (:data:`LOCAL_ATROUS_RATES`).

Such a model is translation-equivariant for shifts of whole cells and sees a bounded
neighbourhood, so windows placed on a cell lattice anchored in the scene's CRS give every
pixel the same class whatever the tile, overlap or nodata collar, up to what lies beyond the
window's context margin (:mod:`~dualstream_geo.inference.tiling`). On a 64 px training patch
(2 x 2 cells) a radius of 1 lets every cell see the whole patch: training computes what
global attention would.
"""

from __future__ import annotations

from typing import override

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import Tensor, nn

#: What a pixel's features see: its neighbourhood (``local``) or the whole window
#: (``window``: the original's global attention, GroupNorm and pooling).
CONTEXTS = ("local", "window")
#: Side in image pixels of the lattice cells that neighbourhood attention and pooling use:
#: the encoders' coarsest stride, so every stage's tokens fall into whole cells.
CELL = 32
#: Cells on each side of a query's cell that it attends to: 3 x 3 cells, 96 px around.
RADIUS = 1
#: ASPP dilations at the 1/32 features of a local model: within :data:`RADIUS` cells and
#: its 3 x 3 kernels (the window models' 6, 12, 18 reach 576 px).
LOCAL_ATROUS_RATES = (1, 2, 3)


def _split_heads(tokens: Tensor, heads: int) -> Tensor:
    batch, count, channels = tokens.shape
    return tokens.view(batch, count, heads, channels // heads).transpose(1, 2)


def neighbourhood_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    query_shape: tuple[int, int],
    key_shape: tuple[int, int],
    cells: tuple[int, int],
    heads: int,
    radius: int = RADIUS,
    scale: float | None = None,
) -> Tensor:
    """Multi-head attention of each cell's queries to the keys of the cells around it.

    Both token maps are cut into the same ``cells`` grid (rows, columns), each cell holding
    ``query_shape / cells`` queries and ``key_shape / cells`` keys; a query attends to the
    keys of the (2 ``radius`` + 1)^2 cells centred on its own, those inside the map.

    Args:
        query: (B, Hq * Wq, C) projected queries, row-major over ``query_shape``.
        key: (B, Hk * Wk, C) projected keys, row-major over ``key_shape``.
        value: (B, Hk * Wk, C) projected values.
        query_shape: (Hq, Wq).
        key_shape: (Hk, Wk).
        cells: (h, w), dividing both shapes.
        heads: attention heads (C divisible by it).
        radius: cells on each side of a query's cell.
        scale: factor of the dot products; 1/sqrt(C / heads) by default.

    Returns:
        (B, Hq * Wq, C) attended values, row-major over ``query_shape``.

    Raises:
        ValueError: a shape the cells do not divide.
    """
    (hq, wq), (hk, wk), (h, w) = query_shape, key_shape, cells
    if hq % h or wq % w or hk % h or wk % w:
        raise ValueError(
            f"cells {cells} must divide the query map {query_shape} and the key map {key_shape}"
        )
    batch, _, channels = query.shape
    dim = channels // heads
    qh, qw, kh, kw = hq // h, wq // w, hk // h, wk // w
    # (B, Hq*Wq, C) -> (B, heads, cells, queries per cell, d)
    q = query.view(batch, h, qh, w, qw, heads, dim).permute(0, 5, 1, 3, 2, 4, 6)
    q = q.reshape(batch, heads, h * w, qh * qw, dim)
    kernel = ((2 * radius + 1) * kh, (2 * radius + 1) * kw)
    padding = (radius * kh, radius * kw)

    def around(tokens: Tensor) -> Tensor:
        # (B, Hk*Wk, C) -> (B, heads, cells, keys around a cell, d)
        grid = tokens.transpose(1, 2).reshape(batch, channels, hk, wk)
        patches = F.unfold(grid, kernel, padding=padding, stride=(kh, kw))
        patches = patches.view(batch, heads, dim, kernel[0] * kernel[1], h * w)
        return patches.permute(0, 1, 4, 3, 2)

    inside = F.unfold(
        torch.ones(1, 1, hk, wk, device=query.device, dtype=query.dtype),
        kernel,
        padding=padding,
        stride=(kh, kw),
    )
    mask = (inside > 0).view(1, 1, kernel[0] * kernel[1], h * w).permute(0, 1, 3, 2)[:, :, :, None]
    attended = F.scaled_dot_product_attention(
        q, around(key), around(value), attn_mask=mask, scale=scale
    )
    attended = attended.view(batch, heads, h, w, qh, qw, dim).permute(0, 2, 4, 3, 5, 1, 6)
    return attended.reshape(batch, hq * wq, channels)


class NeighbourhoodPool(nn.Module):
    """Mean over the (2 ``radius`` + 1)^2 positions around each one, those inside the map.

    (B, C, H, W) -> (B, C, H, W). The local stand-in for global average pooling.
    """

    def __init__(self, radius: int = RADIUS) -> None:
        super().__init__()
        self.radius = radius

    @override
    def forward(self, x: Tensor) -> Tensor:
        size = 2 * self.radius + 1
        return F.avg_pool2d(x, size, 1, self.radius, count_include_pad=False)


def groupnorm_to_layernorm(module: nn.Module) -> nn.Module:
    """Replace every one-group GroupNorm inside ``module`` by a per-pixel LayerNorm2d.

    Of the same width (same parameter names and shapes), in place; returns ``module``.
    """
    for name, child in module.named_children():
        if isinstance(child, nn.GroupNorm) and child.num_groups == 1:
            setattr(module, name, LayerNorm2d(child.num_channels))
        else:
            groupnorm_to_layernorm(child)
    return module
