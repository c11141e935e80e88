"""A full-resolution image path into the decoder (the "detail" path).

Both encoders first see the image at 1/4 resolution (SegFormer's 7x7 stride-4 stem), and the
decoders reach full resolution by upsampling the H/4 map: a pixel's own spectrum reaches
the classifier only through the stride-4 stem. At 30 m, land cover is largely decided pixel
by pixel and by its immediate surroundings (a river, a road, a riparian strip is one to three
pixels wide), so the decoder's last map is merged with features computed from the image at
full resolution, as BiSeNet's spatial path or U-Net's first skip provide.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .layers import conv_norm_act


class ImageDetail(nn.Module):
    """Merge full-resolution image features into the decoder's full-resolution map.

    image (B, C, H, W), decoded (B, D, H, W) -> (B, ``channels``, H, W). The image goes
    through one 3x3 conv-GroupNorm(1)-GELU per entry of ``dilations`` (``channels`` wide;
    dilations 1, 2, 4, 8 see 31 x 31 pixels at full resolution for the cost of four 3x3
    layers), is concatenated with ``decoded`` and mixed by a 3x3 conv-GroupNorm(1)-GELU.
    """

    def __init__(
        self,
        image_channels: int,
        decoder_channels: int,
        channels: int = 64,
        dilations: Sequence[int] = (1, 1, 2, 4, 8),
    ) -> None:
        super().__init__()
        widths = [image_channels, *[channels] * len(dilations)]
        self.encode = nn.Sequential(
            *(
                conv_norm_act(widths[i], widths[i + 1], 3, dilation)
                for i, dilation in enumerate(dilations)
            )
        )
        self.merge = conv_norm_act(decoder_channels + channels, channels, 1)
        self.out_channels = channels

    def forward(self, image: Tensor, decoded: Tensor) -> Tensor:
        detail = self.encode(image.to(decoded.dtype))
        return self.merge(torch.cat([decoded, detail], dim=1))
