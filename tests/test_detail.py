"""The detail path's depthwise convolutions: the same sums whichever way they are computed."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from dualstream_geo.models.detail import ONEDNN_DEPTHWISE_MAX_PADDING, DepthwiseConv2d


@pytest.mark.parametrize("dilation", [1, ONEDNN_DEPTHWISE_MAX_PADDING, 8])
@pytest.mark.parametrize("channels_last", [False, True])
def test_wide_padding_applied_first_gives_the_convolutions_sums(
    dilation: int, channels_last: bool
) -> None:
    """Dilation 8 pads 8 px: on a CPU the input is padded before the convolution (oneDNN's
    fast kernels take at most 4 px), with the same outputs, bit for bit, and gradients."""
    torch.manual_seed(0)
    layer = DepthwiseConv2d(8, 8, 3, padding=dilation, dilation=dilation, groups=8, bias=False)
    image = torch.randn(2, 8, 40, 36)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
        layer = layer.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    image.requires_grad_(True)
    output = layer(image)
    expected = F.conv2d(image, layer.weight, None, 1, dilation, dilation, 8)
    assert output.shape == image.shape
    assert torch.equal(output, expected)
    weights = torch.randn_like(output)
    grads = torch.autograd.grad((output * weights).sum(), [image, layer.weight])
    expected_grads = torch.autograd.grad((expected * weights).sum(), [image, layer.weight])
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)


def test_under_bf16_autocast_the_convolution_stays_fp32() -> None:
    layer = DepthwiseConv2d(4, 4, 3, padding=8, dilation=8, groups=4)
    with torch.autocast("cpu", torch.bfloat16):
        output = layer(torch.randn(1, 4, 24, 24, dtype=torch.bfloat16))
    assert output.dtype == torch.float32
