"""Local context: neighbourhood attention, per-pixel norms, a bounded receptive field."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dualstream_geo.errors import DualStreamError
from dualstream_geo.models import DualStreamDFormer
from dualstream_geo.models.locality import neighbourhood_attention
from dualstream_geo.models.vision import SegformerEncoder
from dualstream_geo.training.stored import task_hparams


def brute_force(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    query_shape: tuple[int, int],
    key_shape: tuple[int, int],
    cells: tuple[int, int],
    heads: int,
) -> torch.Tensor:
    """Full attention with a mask letting a query see the keys of the 3 x 3 cells around its
    own: the definition neighbourhood_attention computes blockwise."""
    (hq, wq), (hk, wk), (h, w) = query_shape, key_shape, cells
    q_row = torch.arange(hq).repeat_interleave(wq) // (hq // h)
    q_col = torch.arange(wq).repeat(hq) // (wq // w)
    k_row = torch.arange(hk).repeat_interleave(wk) // (hk // h)
    k_col = torch.arange(wk).repeat(hk) // (wk // w)
    near = ((q_row[:, None] - k_row[None]).abs() <= 1) & ((q_col[:, None] - k_col[None]).abs() <= 1)

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], heads, -1).transpose(1, 2)

    out = F.scaled_dot_product_attention(split(query), split(key), split(value), attn_mask=near)
    return out.transpose(1, 2).reshape(query.shape)


@pytest.mark.parametrize(
    ("query_shape", "key_shape", "cells"),
    [((16, 24), (2, 3), (2, 3)), ((8, 12), (8, 12), (4, 6)), ((12, 8), (6, 4), (3, 2))],
)
def test_neighbourhood_attention_is_attention_to_the_cells_around(
    query_shape: tuple[int, int], key_shape: tuple[int, int], cells: tuple[int, int]
) -> None:
    torch.manual_seed(0)
    channels, heads = 16, 2
    query = torch.randn(2, query_shape[0] * query_shape[1], channels)
    key = torch.randn(2, key_shape[0] * key_shape[1], channels)
    value = torch.randn(2, key_shape[0] * key_shape[1], channels)
    local = neighbourhood_attention(query, key, value, query_shape, key_shape, cells, heads)
    expected = brute_force(query, key, value, query_shape, key_shape, cells, heads)
    assert torch.allclose(local, expected, atol=1e-5)
    with pytest.raises(ValueError, match="must divide"):
        neighbourhood_attention(query, key, value, query_shape, key_shape, (5, 3), heads)


def test_local_segformer_equals_global_on_a_two_by_two_cell_patch() -> None:
    """On a 64 px patch (2 x 2 cells) every cell's neighbourhood is the whole patch: the
    local encoder computes what SegFormer's global attention does, with the same weights
    under the same names; on a larger input they differ."""
    torch.manual_seed(0)
    plain = SegformerEncoder("b0", 4, 0.0).eval()
    torch.manual_seed(0)
    local = SegformerEncoder("b0", 4, 0.0, local=True).eval()
    assert plain.state_dict().keys() == local.state_dict().keys()
    for name, tensor in plain.state_dict().items():
        assert torch.equal(tensor, local.state_dict()[name]), name
    with torch.no_grad():
        small = torch.randn(2, 4, 64, 64)
        for a, b in zip(plain(small), local(small), strict=True):
            assert torch.allclose(a, b, atol=1e-5)
        large = torch.randn(1, 4, 192, 192)
        assert not torch.allclose(plain(large)[0], local(large)[0], atol=1e-3)


@pytest.mark.parametrize("preset", ["original", "lite"])
def test_a_local_model_does_not_see_beyond_its_neighbourhood(preset: str) -> None:
    """Changing the image and air more than 288 px away from a pixel leaves its
    probabilities as they were in a local model; in a window model every pixel moves."""
    image = torch.randn(1, 4, 384, 384, generator=torch.Generator().manual_seed(1))
    air = torch.randn(1, 48, 48, 48, generator=torch.Generator().manual_seed(2))
    changed_image, changed_air = image.clone(), air.clone()
    changed_image[..., 320:, :] = 0.0
    changed_air[..., 40:, :] = 0.0
    moved = {}
    for context in ("local", "window"):
        torch.manual_seed(0)
        model = DualStreamDFormer(
            num_classes=3,
            task="multiclass",
            preset=preset,
            vision_encoder="segformer-b0",
            context=context,
        ).eval()
        with torch.no_grad():
            before = model(image, air)["final"].softmax(1)[..., :32, :]
            after = model(changed_image, changed_air)["final"].softmax(1)[..., :32, :]
        moved[context] = float((before - after).abs().max())
    assert moved["local"] < 5e-3 < moved["window"]


def test_local_and_window_models_share_their_parameters() -> None:
    """The context changes no parameter: a state dict of either loads into the other (the
    original preset keeps the original's names and its 32,175,240 parameters)."""
    for preset in ("original", "lite"):
        torch.manual_seed(0)
        local = DualStreamDFormer(preset=preset)
        window = DualStreamDFormer(preset=preset, context="window")
        assert local.context == "local" and window.context == "window"
        shapes = {k: v.shape for k, v in window.state_dict().items()}
        assert {k: v.shape for k, v in local.state_dict().items()} == shapes
        window.load_state_dict(local.state_dict())
    original = DualStreamDFormer()
    assert sum(p.numel() for p in original.parameters()) == 32_175_240
    with pytest.raises(DualStreamError, match="context must be one of"):
        DualStreamDFormer(context="global")


def test_checkpoints_before_the_setting_have_window_context() -> None:
    assert task_hparams({"hyper_parameters": {"preset": "lite"}})["architecture"]["context"] == (
        "window"
    )
    stored = {"hyper_parameters": {"architecture": {"preset": "lite", "context": "local"}}}
    assert task_hparams(stored)["architecture"]["context"] == "local"
