"""The lite decoder.

ASPP on stage 4, attention-gated skips, ConvNeXt refinement, learnable x2 upsampling back to
full resolution, boundary refinement feeding the classifier, and deep supervision heads.
GroupNorm throughout: batches of 4 make BatchNorm statistics noisy, and the pooling branch
sees a 1x1 map.
"""

from __future__ import annotations

from typing import override

import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.deeplabv3.decoder import ASPP
from timm.layers import GroupNorm1
from timm.models.convnext import ConvNeXtBlock
from torch import Tensor, nn

from .detail import ImageDetail
from .layers import in_fp32
from .locality import LOCAL_ATROUS_RATES, NeighbourhoodPool


def conv_gn_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Conv -> GroupNorm(1) -> ReLU: (B, ``in_channels``, H, W) -> (B, ``out_channels``, H, W)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        GroupNorm1(out_channels),
        nn.ReLU(inplace=True),
    )


def batchnorm_to_groupnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d inside ``module`` by GroupNorm(1) of the same width."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, GroupNorm1(child.num_features))
        else:
            batchnorm_to_groupnorm(child)
    return module


class AttentionGate(nn.Module):
    """Additive attention gate (Attention U-Net): weight a skip by a map from skip + gate.

    skip (B, S, H, W), gate (B, G, H, W) -> (B, S, H, W).
    """

    def __init__(self, skip_channels: int, gate_channels: int, inner_channels: int) -> None:
        super().__init__()
        self.skip = nn.Conv2d(skip_channels, inner_channels, 1, bias=False)
        self.gate = nn.Conv2d(gate_channels, inner_channels, 1)
        self.psi = nn.Conv2d(inner_channels, 1, 1)

    @override
    def forward(self, skip: Tensor, gate: Tensor) -> Tensor:
        attention = self.psi(F.relu(self.skip(skip) + self.gate(gate)))
        return skip * attention.sigmoid()


class UpBlock(nn.Module):
    """x2 upsampling of the decoder state, merge with a gated skip, ConvNeXt refinement.

    x (B, C_in, H, W), skip (B, S, 2H, 2W) -> (B, C_out, 2H, 2W).
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.gate = AttentionGate(skip_channels, in_channels, max(skip_channels // 2, 16))
        self.merge = conv_gn_relu(in_channels + skip_channels, out_channels)
        self.refine = ConvNeXtBlock(out_channels)

    @override
    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.refine(self.merge(torch.cat([x, self.gate(skip, x)], dim=1)))


class LearnableUpsample(nn.Sequential):
    """x2 transposed convolution + GroupNorm(1) + ReLU: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.ConvTranspose2d(in_channels, out_channels, 2, stride=2, bias=False),
            GroupNorm1(out_channels),
            nn.ReLU(inplace=True),
        )


class BoundaryRefinement(nn.Module):
    """Residual refinement of object boundaries (Peng et al., 2017): x + conv(relu(conv(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    @override
    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class LiteDecoder(nn.Module):
    """Fused features (and the image) -> class logits at full and coarser resolutions.

    Fused features [H/4, H/8, H/16, H/32] (and the image (B, C, H, W) when
    ``image_channels`` > 0) -> {"final": (B, K, H, W), "aux_f2": (B, K, H/8, W/8), "aux_f3":
    (B, K, H/16, W/16)}.

    ``image_channels`` > 0 merges full-resolution image features into the last map after
    boundary refinement (:class:`~dualstream_geo.models.detail.ImageDetail`), and adds the
    image path's own logits as ``"aux_detail"`` (B, K, H, W). ``local``: ASPP's dilations
    stay within the neighbouring 32 px cells and its pooling branch averages them instead
    of the window (:mod:`~dualstream_geo.models.locality`). ``detail_design``: how the image
    path's layers are built (:data:`~dualstream_geo.models.detail.DETAIL_DESIGNS`).

    Args:
        encoder_channels: the fused features' widths, finest first.
        num_outputs: K, the logit maps.
        aspp_channels: ASPP's width.
        channels: the decoder's widths at H/16, H/8, H/4 and full resolution.
        image_channels: the detail path's input channels (0: no detail path).
        local: keep ASPP within the neighbouring 32 px cells.
        detail_design: the detail path's layers.
    """

    def __init__(
        self,
        encoder_channels: tuple[int, int, int, int],
        num_outputs: int,
        aspp_channels: int = 256,
        channels: tuple[int, int, int, int] = (128, 96, 64, 16),
        image_channels: int = 0,
        local: bool = False,
        detail_design: str = "dense",
    ) -> None:
        super().__init__()
        c1, c2, c3, c4 = encoder_channels
        d3, d2, d1, d0 = channels
        rates = LOCAL_ATROUS_RATES if local else (6, 12, 18)
        aspp = ASPP(c4, aspp_channels, rates, separable=False, dropout=0.1)
        pooling = aspp.convs[-1]  # smp's [AdaptiveAvgPool2d(1), conv, norm, act]
        if local and isinstance(pooling, nn.Sequential):
            pooling[0] = NeighbourhoodPool()
        self.aspp = batchnorm_to_groupnorm(aspp)
        self.up3 = UpBlock(aspp_channels, c3, d3)
        self.up2 = UpBlock(d3, c2, d2)
        self.up1 = UpBlock(d2, c1, d1)
        self.upsample = nn.Sequential(LearnableUpsample(d1, d0), LearnableUpsample(d0, d0))
        self.boundary = BoundaryRefinement(d0)
        self.image_detail = (
            ImageDetail(image_channels, d0, num_outputs=num_outputs, design=detail_design)
            if image_channels
            else None
        )
        width = self.image_detail.out_channels if self.image_detail is not None else d0
        self.classifier = nn.Conv2d(width, num_outputs, 1)
        self.aux_f3 = nn.Conv2d(d3, num_outputs, 1)
        self.aux_f2 = nn.Conv2d(d2, num_outputs, 1)

    @override
    def forward(self, features: list[Tensor], image: Tensor | None = None) -> dict[str, Tensor]:
        f1, f2, f3, f4 = features
        x3 = self.up3(self.aspp(f4), f3)
        x2 = self.up2(x3, f2)
        x1 = self.up1(x2, f1)
        x0 = self.boundary(self.upsample(x1))
        outputs = {"aux_f2": self.aux_f2(x2), "aux_f3": self.aux_f3(x3)}
        if self.image_detail is not None:
            if image is None:
                raise ValueError("this decoder merges the image: pass image (B, C, H, W)")
            x0, outputs["aux_detail"] = self.image_detail(image, x0)  # type: ignore[assignment]
        return {"final": in_fp32(self.classifier, x0), **outputs}
