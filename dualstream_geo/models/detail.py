"""A full-resolution image path into the decoder (the "detail" path).

Both encoders first see the image at 1/4 resolution (SegFormer's 7x7 stride-4 stem), and the
decoders reach full resolution by upsampling the H/4 map: a pixel's own spectrum reaches
the classifier only through the stride-4 stem. At 30 m, land cover is largely decided pixel
by pixel and by its immediate surroundings (a river, a road, a riparian strip is one to three
pixels wide), so the decoder's last map is merged with features computed from the image at
full resolution, as BiSeNet's spatial path or U-Net's first skip provide.

Its layers normalise each pixel over its channels (LayerNorm2d), not a whole patch
(GroupNorm(1), as the decoders do): a per-patch norm makes a pixel's features depend on
the rest of the patch, while its own spectrum is what decides its class here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import LayerNorm2d
from torch import Tensor, nn

from .layers import conv_norm_act, in_fp32

#: How the path's layers are built: ``dense`` 3 x 3 convolutions (the default), or
#: ``separable``: a depthwise 3 x 3 then a 1 x 1 convolution, about a seventh of the FLOP at
#: the same width (issue 40; experiments/README.md has its accuracy, below the dense one's).
DETAIL_DESIGNS = ("dense", "separable")
#: The path's width by design: 32 keeps the separable path under a quarter of the FLOP of
#: the zion.yaml recipe (SegFormer-B0 lite: 18.6 % per window; 48 would be 31 %, and the dense
#: path is 83 %; benchmarks/README.md, "Detail path").
DETAIL_WIDTHS = {"dense": 64, "separable": 32}


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise convolution computed in fp32 whatever the autocast around it.

    Under CPU bf16 autocast, oneDNN's bf16 backward of dilated depthwise convolutions
    overflows within a few steps of training the zion.yaml recipe (its weight gradients turn
    to inf, then every loss to NaN); in fp32 it does not. The layer is memory-bound, so fp32
    costs it little.
    """

    def forward(self, input: Tensor) -> Tensor:
        return in_fp32(super().forward, input)


def separable_conv_norm_act(
    in_channels: int, out_channels: int, dilation: int = 1
) -> nn.Sequential:
    """[0] depthwise 3 x 3 conv (``dilation``) -> [1] 1 x 1 conv -> [2] LayerNorm2d -> [3]
    GELU: (B, ``in_channels``, H, W) -> (B, ``out_channels``, H, W)."""
    return nn.Sequential(
        DepthwiseConv2d(
            in_channels,
            in_channels,
            3,
            padding=dilation,
            dilation=dilation,
            groups=in_channels,
            bias=False,
        ),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        LayerNorm2d(out_channels),
        nn.GELU(),
    )


class ImageDetail(nn.Module):
    """Merge full-resolution image features into the decoder's full-resolution map.

    image (B, C, H, W), decoded (B, D, H, W) -> merged (B, ``channels``, H, W) and, with
    ``num_outputs``, logits (B, ``num_outputs``, H, W) of the image path alone. The image goes
    through one 3x3 conv-LayerNorm2d-GELU per entry of ``dilations`` (``channels`` wide, by
    default 64 dense and 32 separable;
    dilations 1, 1, 2, 4, 8 see 33 x 33 pixels at full resolution for the cost of five 3x3
    layers) and is concatenated with ``decoded``, then mixed by a 1x1 conv-LayerNorm2d-GELU.
    The image path's own head is a deep-supervision head: trained on the labels by itself,
    the path must learn each pixel's class from its spectrum and surroundings, rather than
    lean on the encoders' context, which on a single scene fits the training cells sooner.

    ``design``: ``dense`` 3x3 convolutions, or ``separable`` (a depthwise 3 x 3 and a 1 x 1
    convolution per layer: the same receptive field for about a seventh of the FLOP).
    """

    def __init__(
        self,
        image_channels: int,
        decoder_channels: int,
        channels: int | None = None,
        dilations: Sequence[int] = (1, 1, 2, 4, 8),
        num_outputs: int | None = None,
        design: str = "dense",
    ) -> None:
        super().__init__()
        if design not in DETAIL_DESIGNS:
            raise ValueError(f"design must be one of {DETAIL_DESIGNS}, got {design!r}")
        channels = channels or DETAIL_WIDTHS[design]
        widths = [image_channels, *[channels] * len(dilations)]
        self.encode = nn.Sequential(
            *(
                conv_norm_act(widths[i], widths[i + 1], 3, dilation, norm=LayerNorm2d)
                if design == "dense"
                else separable_conv_norm_act(widths[i], widths[i + 1], dilation)
                for i, dilation in enumerate(dilations)
            )
        )
        self.merge = conv_norm_act(decoder_channels + channels, channels, 1, norm=LayerNorm2d)
        self.head = nn.Conv2d(channels, num_outputs, 1) if num_outputs else None
        self.out_channels = channels

    def forward(self, image: Tensor, decoded: Tensor) -> tuple[Tensor, Tensor | None]:
        detail = self.encode(image.to(decoded.dtype))
        logits = self.head(detail) if self.head is not None else None
        return self.merge(torch.cat([decoded, detail], dim=1)), logits
