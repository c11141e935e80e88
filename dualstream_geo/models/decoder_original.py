"""The original DualStream-DFormer decoder.

ASPP, attention-gated skips, ConvNeXt refinement, bilinear up-sampling to full resolution,
deep-supervision heads. GroupNorm(1) throughout.
"""

from __future__ import annotations

from typing import override

import torch
import torch.nn.functional as F
from timm.layers import GroupNorm1
from torch import Tensor, nn

from .detail import ImageDetail
from .layers import BasicConv, conv_norm_act, convnext_block, in_fp32
from .locality import LOCAL_ATROUS_RATES, NeighbourhoodPool


class ASPPBranch(nn.Module):
    """``conv``: conv (1x1, or 3x3 with dilation r) -> GroupNorm(1) -> GELU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 0) -> None:
        super().__init__()
        kernel = 3 if dilation else 1
        self.conv = conv_norm_act(in_channels, out_channels, kernel, max(dilation, 1))

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class ASPPPooling(ASPPBranch):
    """Global average pool -> 1x1 conv -> GroupNorm(1) -> GELU, broadcast back.

    Global average pool -> 1x1 conv -> GroupNorm(1) (across channels on the 1x1 map) ->
    GELU, broadcast back to the input size; with ``local``, the mean over the neighbouring
    positions instead (:class:`~.locality.NeighbourhoodPool`).
    """

    def __init__(self, in_channels: int, out_channels: int, local: bool = False) -> None:
        super().__init__(in_channels, out_channels)
        self.local = NeighbourhoodPool() if local else None

    @override
    def forward(self, x: Tensor) -> Tensor:
        if self.local is not None:
            return self.conv(self.local(x))
        pooled = self.conv(F.adaptive_avg_pool2d(x, 1))
        return F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False)


class AttentionGate(nn.Module):
    """Additive attention gate: ``skip * sigmoid(psi(GELU(GN(W_g gate) + GN(W_x skip))))``.

    gate (B, G, H, W), skip (B, S, H, W) -> (B, S, H, W).
    """

    def __init__(self, gate_channels: int, skip_channels: int, inner_channels: int) -> None:
        super().__init__()
        self.W_g = nn.Sequential(
            nn.Conv2d(gate_channels, inner_channels, 1, bias=False), GroupNorm1(inner_channels)
        )
        self.W_x = nn.Sequential(
            nn.Conv2d(skip_channels, inner_channels, 1, bias=False), GroupNorm1(inner_channels)
        )
        self.psi = nn.Sequential(nn.Conv2d(inner_channels, 1, 1), nn.Sigmoid())

    @override
    def forward(self, gate: Tensor, skip: Tensor) -> Tensor:
        return skip * self.psi(F.gelu(self.W_g(gate) + self.W_x(skip)))


def refinement(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv (no bias) -> GroupNorm(1) -> GELU -> two ConvNeXt blocks."""
    return nn.Sequential(
        *conv_norm_act(in_channels, out_channels),
        convnext_block(out_channels),
        convnext_block(out_channels),
    )


def up_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """BasicConv 3x3 then a bilinear x2 up-sampling: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""
    return nn.Sequential(
        BasicConv(in_channels, out_channels),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
    )


def _resize(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class OriginalDecoder(nn.Module):
    """Fused features -> class logits at full and coarser resolutions.

    Fused features [F1 (c1, H/4), F2 (c2, H/8), F3 (c3, H/16), F4 (c4, H/32)] -> {"final":
    (B, K, H, W), "aux_f2": (B, K, H/8, W/8), "aux_f3": (B, K, H/16, W/16)}.

    ASPP (rates 6, 12, 18 and image pooling) on F4; at H/16, H/8 and H/4 the coarse signal is
    resized to the skip, the skip projected to 64 channels and gated by it, and
    [coarse, gated skip] refined (widths 256, 256, 128); two BasicConv + bilinear x2 steps
    reach full resolution (64, then 32 channels). ``use_boundary_refine``: the classifier
    reads the boundary-refinement branch (BasicConv, ConvNeXt block, BasicConv); the
    original computes that branch but classifies the un-refined map, so imported
    checkpoints set it False (the branch is then not computed and its weights stay frozen).
    ``image_channels`` > 0 (not in the original; off by default) merges full-resolution
    image features into the 32-channel map after boundary refinement and adds the image
    path's own logits as ``"aux_detail"`` (:class:`~dualstream_geo.models.detail.ImageDetail`).
    ``local`` (not in the original): ASPP's dilations stay within the neighbouring 32 px
    cells and its pooling averages them instead of the window
    (:mod:`~dualstream_geo.models.locality`). Names follow the original's state dict.

    Args:
        encoder_channels: c, the fused features' widths.
        num_outputs: K, the logit maps.
        use_boundary_refine: the classifier reads the boundary-refinement branch.
        aspp_channels: ASPP's width.
        skip_channels: the projected skips' width.
        image_channels: the detail path's input channels (0: no detail path).
        local: keep ASPP within the neighbouring 32 px cells.
        detail_design: the detail path's layers.
    """

    def __init__(
        self,
        encoder_channels: tuple[int, int, int, int] = (64, 128, 320, 512),
        num_outputs: int = 1,
        use_boundary_refine: bool = True,
        aspp_channels: int = 256,
        skip_channels: int = 64,
        image_channels: int = 0,
        local: bool = False,
        detail_design: str = "dense",
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = encoder_channels
        a, s = aspp_channels, skip_channels
        self.use_boundary_refine = use_boundary_refine
        rates = LOCAL_ATROUS_RATES if local else (6, 12, 18)
        self.conv_1x1 = ASPPBranch(c4, a)
        # Named by the original's rates, whatever the rates (the state dict's names).
        self.atrous_6 = ASPPBranch(c4, a, rates[0])
        self.atrous_12 = ASPPBranch(c4, a, rates[1])
        self.atrous_18 = ASPPBranch(c4, a, rates[2])
        self.image_pool = ASPPPooling(c4, a, local)
        self.concat_conv = conv_norm_act(5 * a, a)
        self.f3_conv = conv_norm_act(c3, s)
        self.att_f3 = AttentionGate(a, s, s)
        self.refinement_conv_f3 = refinement(a + s, 256)
        self.aux_classifier_f3 = nn.Conv2d(256, num_outputs, 1)
        self.low_level_conv = conv_norm_act(c2, s)
        self.att_f2 = AttentionGate(256, s, s)
        self.refinement_conv_f2 = refinement(256 + s, 256)
        self.aux_classifier_f2 = nn.Conv2d(256, num_outputs, 1)
        self.f1_conv = conv_norm_act(c1, s)
        self.att_f1 = AttentionGate(256, s, s)
        self.final_refinement_f1 = refinement(256 + s, 128)
        self.up_conv_1 = up_block(128, 64)
        self.up_conv_2 = up_block(64, 32)
        self.boundary_refine = nn.Sequential(
            BasicConv(32, 32), convnext_block(32), BasicConv(32, 32)
        )
        self.image_detail = (
            ImageDetail(image_channels, 32, num_outputs=num_outputs, design=detail_design)
            if image_channels
            else None
        )
        width = self.image_detail.out_channels if self.image_detail is not None else 32
        self.final_classifier_v8 = nn.Conv2d(width, num_outputs, 1)
        if not use_boundary_refine:
            self.boundary_refine.requires_grad_(False)

    def aspp(self, f4: Tensor) -> Tensor:
        """ASPP on the deepest features: (B, C4, H/32, W/32) -> (B, D, H/32, W/32)."""
        branches = [self.conv_1x1, self.atrous_6, self.atrous_12, self.atrous_18, self.image_pool]
        return self.concat_conv(torch.cat([branch(f4) for branch in branches], dim=1))

    @override
    def forward(self, features: list[Tensor], image: Tensor | None = None) -> dict[str, Tensor]:
        f1, f2, f3, f4 = features
        coarse = _resize(self.aspp(f4), f3)
        r3 = self.refinement_conv_f3(
            torch.cat([coarse, self.att_f3(coarse, self.f3_conv(f3))], dim=1)
        )
        coarse = _resize(r3, f2)
        r2 = self.refinement_conv_f2(
            torch.cat([coarse, self.att_f2(coarse, self.low_level_conv(f2))], dim=1)
        )
        coarse = _resize(r2, f1)
        r1 = self.final_refinement_f1(
            torch.cat([coarse, self.att_f1(coarse, self.f1_conv(f1))], dim=1)
        )
        full = self.up_conv_2(self.up_conv_1(r1))
        if self.use_boundary_refine:
            full = self.boundary_refine(full)
        outputs = {"aux_f2": self.aux_classifier_f2(r2), "aux_f3": self.aux_classifier_f3(r3)}
        if self.image_detail is not None:
            if image is None:
                raise ValueError("this decoder merges the image: pass image (B, C, H, W)")
            full, outputs["aux_detail"] = self.image_detail(image, full)  # type: ignore[assignment]
        return {"final": in_fp32(self.final_classifier_v8, full), **outputs}
