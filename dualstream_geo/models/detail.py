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
from dataclasses import dataclass
from typing import override

import torch
from timm.layers import LayerNorm2d
from torch import Tensor, nn
from torch.nn import functional as F

from .layers import conv_norm_act, in_fp32


@dataclass(frozen=True)
class DetailDesign:
    """How one design of the path is built.

    ``width``: the path's channels; 32 keeps the depthwise paths under a quarter of the FLOP
    of the zion_dem.yaml recipe (SegFormer-B0 lite: 18.6 % per window separable, 21.7 %
    spectral; 48 would be 31 %, and the dense path is 83 %; benchmarks/README.md, "Detail
    path"). ``merged_width``: the merged map the classifier reads; 64 as the dense path's is
    what the spectral path lacked (seed 2 of zion_dem.yaml: 0.324 mean IoU merged 32 wide,
    0.349 merged 64 wide; a 16-wide dense path merged 16 wide: 0.256; experiments/README.md).
    ``dilations``: one per layer, each design reaching 33 x 33 pixels without gaps (the
    spectral path spends its fifth layer on the stem). ``layers``: ``dense`` 3 x 3
    convolutions, ``separable`` ones (:func:`separable_conv_norm_act`) or ``spectral``
    (:func:`spectral_path`).
    """

    width: int
    merged_width: int
    dilations: tuple[int, ...]
    layers: str


#: The designs: ``dense`` 3 x 3 convolutions (the default); ``separable``: a depthwise 3 x 3
#: then a 1 x 1 convolution, about a seventh of the FLOP at the same width; ``spectral``: a
#: wide 1 x 1 stem (each pixel's spectrum mixed 64 ways, as the dense path's first layer
#: does), then separable layers with residual connections (issue 40; experiments/README.md
#: has their accuracy); ``spectral_wide``: the spectral path merged into a map as wide as the
#: dense path's (64): a quarter of the zion_dem.yaml model's FLOP, within the dense path's
#: 3-seed spread on zion_dem.yaml when trained 32 epochs instead of 20 (image only: overall
#: accuracy 0.004 lower).
DESIGNS = {
    "dense": DetailDesign(64, 64, (1, 1, 2, 4, 8), "dense"),
    "separable": DetailDesign(32, 32, (1, 1, 2, 4, 8), "separable"),
    "spectral": DetailDesign(32, 32, (1, 3, 4, 8), "spectral"),
    "spectral_wide": DetailDesign(32, 64, (1, 3, 4, 8), "spectral"),
}
#: The designs' names.
DETAIL_DESIGNS = tuple(DESIGNS)
#: The spectral path's stem width: the dense path's first layer is 64 wide.
SPECTRAL_STEM = 64


#: The widest zero padding that oneDNN's fast depthwise kernels take on a CPU. Beyond it
#: (the paths' dilation-8 layers pad 8 px) oneDNN falls back to a kernel 30x slower on
#: channels-last tensors and 2.5x on contiguous ones (1.36 s against 0.04 s for four 512 px
#: windows of 32 channels on 2 AMD EPYC cores; benchmarks/README.md); padding the input
#: first gives the same sums, bit for bit, at the fast kernel's speed.
ONEDNN_DEPTHWISE_MAX_PADDING = 4


class DepthwiseConv2d(nn.Conv2d):
    """A depthwise convolution computed in fp32 whatever the autocast around it.

    Under CPU bf16 autocast, oneDNN's bf16 backward of dilated depthwise convolutions
    overflows within a few steps of training the zion.yaml recipe (its weight gradients turn
    to inf, then every loss to NaN); in fp32 it does not. The layer is memory-bound, so fp32
    costs it little. On a CPU, padding wider than :data:`ONEDNN_DEPTHWISE_MAX_PADDING` is
    applied to the input before the convolution.
    """

    @override
    def forward(self, input: Tensor) -> Tensor:
        return in_fp32(self._convolved, input)

    def _convolved(self, input: Tensor) -> Tensor:
        padding = self.padding
        if (
            input.device.type != "cpu"
            or self.padding_mode != "zeros"
            or isinstance(padding, str)
            or max(padding) <= ONEDNN_DEPTHWISE_MAX_PADDING
        ):
            return super().forward(input)
        rows, cols = padding
        padded = F.pad(input, (cols, cols, rows, rows))
        return F.conv2d(padded, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def separable_conv_norm_act(
    in_channels: int, out_channels: int, dilation: int = 1
) -> nn.Sequential:
    """[0] depthwise 3 x 3 conv (``dilation``) -> [1] 1 x 1 conv -> [2] LayerNorm2d -> [3] GELU.

    (B, ``in_channels``, H, W) -> (B, ``out_channels``, H, W).
    """
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


class Residual(nn.Sequential):
    """``x + layers(x)``: (B, C, H, W) -> (B, C, H, W); lets a deep, narrow path train."""

    @override
    def forward(self, input: Tensor) -> Tensor:
        return input + super().forward(input)


def spectral_path(in_channels: int, channels: int, dilations: Sequence[int]) -> nn.Sequential:
    """The ``spectral`` design.

    [0] 1 x 1 conv-LayerNorm2d-GELU to :data:`SPECTRAL_STEM` channels, [1] a separable layer
    to ``channels``, then one residual separable layer per further dilation: (B,
    ``in_channels``, H, W) -> (B, ``channels``, H, W).
    """
    first, *rest = dilations
    return nn.Sequential(
        conv_norm_act(in_channels, SPECTRAL_STEM, 1, norm=LayerNorm2d),
        separable_conv_norm_act(SPECTRAL_STEM, channels, first),
        *(Residual(*separable_conv_norm_act(channels, channels, d)) for d in rest),
    )


class ImageDetail(nn.Module):
    """Merge full-resolution image features into the decoder's full-resolution map.

    image (B, C, H, W), decoded (B, D, H, W) -> merged (B, ``merged_channels``, H, W) and, with
    ``num_outputs``, logits (B, ``num_outputs``, H, W) of the image path alone. The image goes
    through one 3x3 conv-LayerNorm2d-GELU per entry of ``dilations`` (``channels`` wide, by
    default 64 dense, 32 otherwise;
    dilations 1, 1, 2, 4, 8 see 33 x 33 pixels at full resolution for the cost of five 3x3
    layers) and is concatenated with ``decoded``, then mixed by a 1x1 conv-LayerNorm2d-GELU.
    The image path's own head is a deep-supervision head: trained on the labels by itself,
    the path must learn each pixel's class from its spectrum and surroundings, rather than
    lean on the encoders' context, which on a single scene fits the training cells sooner.

    ``design``: ``dense`` 3x3 convolutions, ``separable`` (a depthwise 3 x 3 and a 1 x 1
    convolution per layer: the same receptive field for about a seventh of the FLOP),
    ``spectral`` (:func:`spectral_path`; dilations 1, 3, 4, 8 by default: 33 x 33 pixels
    too), or ``spectral_wide`` (the spectral path, merged ``merged_channels`` = 64 wide as
    the dense path is). ``dilations`` and ``merged_channels`` default to the design's
    (:data:`DESIGNS`).

    Args:
        image_channels: C, the image's channels (with the aux stream's for ``detail_aux``).
        decoder_channels: D, the decoded map's channels.
        channels: the path's width (default: the design's, :data:`DESIGNS`).
        dilations: one per layer (default: the design's).
        num_outputs: the path's own head's outputs (None: no head).
        design: one of :data:`DETAIL_DESIGNS`.
        merged_channels: the merged map's width (default: the design's, or ``channels``
            where those are given).

    Raises:
        ValueError: an unknown ``design``.
    """

    def __init__(
        self,
        image_channels: int,
        decoder_channels: int,
        channels: int | None = None,
        dilations: Sequence[int] | None = None,
        num_outputs: int | None = None,
        design: str = "dense",
        merged_channels: int | None = None,
    ) -> None:
        super().__init__()
        if design not in DETAIL_DESIGNS:
            raise ValueError(f"design must be one of {DETAIL_DESIGNS}, got {design!r}")
        built = DESIGNS[design]
        # Given channels, the merged map is as wide unless merged_channels says otherwise.
        merged = merged_channels or channels or built.merged_width
        channels = channels or built.width
        dilations = dilations or built.dilations
        widths = [image_channels, *[channels] * len(dilations)]
        if built.layers == "spectral":
            self.encode = spectral_path(image_channels, channels, dilations)
        else:
            self.encode = nn.Sequential(
                *(
                    conv_norm_act(widths[i], widths[i + 1], 3, dilation, norm=LayerNorm2d)
                    if built.layers == "dense"
                    else separable_conv_norm_act(widths[i], widths[i + 1], dilation)
                    for i, dilation in enumerate(dilations)
                )
            )
        self.merge = conv_norm_act(decoder_channels + channels, merged, 1, norm=LayerNorm2d)
        self.head = nn.Conv2d(channels, num_outputs, 1) if num_outputs else None
        self.out_channels = merged
        self.design = design
        #: Depthwise layers (every design but ``dense``): memory-bound on a CPU, where
        #: ``predict`` lays tensors out channels-last and may compile the path.
        self.depthwise = built.layers != "dense"
        #: The spectral paths compute in fp32 under autocast: they are a fifth of the model's
        #: FLOP, and in bf16 the spectral path alone moved 0.1 % of Zion's classes
        #: (experiments/README.md).
        self.fp32 = built.layers == "spectral"

    @override
    def forward(self, image: Tensor, decoded: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.fp32:
            with torch.autocast(decoded.device.type, enabled=False):
                return self._merged(image.float(), decoded.float())
        return self._merged(image.to(decoded.dtype), decoded)

    def _merged(self, image: Tensor, decoded: Tensor) -> tuple[Tensor, Tensor | None]:
        detail = self.encode(image)
        logits = self.head(detail) if self.head is not None else None
        return self.merge(torch.cat([decoded, detail], dim=1)), logits
