"""DualStream-DFormer (both presets): shapes, gradients, missing air, weight loading, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import SegformerConfig, SegformerModel

from dualstream_geo.errors import DualStreamError
from dualstream_geo.models import DualStreamDFormer, adapt_stem, build_encoder, list_encoders
from dualstream_geo.models.vision import installed_layout_is_v5, segformer_key_v4
from dualstream_geo.training.stored import task_hparams


def installed(key: str) -> str:
    """A SegFormer key (5.x name) in the installed transformers' layout."""
    return key if installed_layout_is_v5() else segformer_key_v4(key)


STEM_KEY = installed("stages.0.patch_embeddings.proj.weight")


@pytest.fixture(scope="module", params=["original", "lite"])
def model(request: pytest.FixtureRequest) -> DualStreamDFormer:
    torch.manual_seed(0)
    return DualStreamDFormer(num_classes=3, task="multiclass", preset=request.param)


def test_registry_and_encoder_geometry() -> None:
    expected = {"segformer-b0", "segformer-b1", "segformer-b2", "air-lite", "air-original"}
    assert expected <= set(list_encoders())
    vision = build_encoder("segformer-b1", in_channels=4)
    assert isinstance(vision.model, SegformerModel)
    assert vision.model.config.hidden_sizes == [
        64,
        128,
        320,
        512,
    ] and vision.model.config.depths == [2, 2, 2, 2]
    assert sum(p.numel() for p in vision.parameters()) / 1e6 == pytest.approx(13.15, abs=0.02)
    features = vision(torch.randn(1, 4, 128, 192))
    assert [tuple(f.shape[1:]) for f in features] == [
        (64, 32, 48),
        (128, 16, 24),
        (320, 8, 12),
        (512, 4, 6),
    ]
    for name in ("air-lite", "air-original"):
        air = build_encoder(name, in_channels=48)
        air_features = air(torch.randn(1, 48, 16, 24))
        assert [tuple(f.shape[1:]) for f in air_features] == [
            (64, 32, 48),
            (128, 16, 24),
            (320, 8, 12),
            (512, 4, 6),
        ]
    with pytest.raises(DualStreamError, match="unknown encoder 'nope'"):
        build_encoder("nope")


@pytest.mark.parametrize("size", [(128, 128), (128, 192)])
def test_output_shapes(model: DualStreamDFormer, size: tuple[int, int]) -> None:
    model.eval()
    h, w = size
    with torch.no_grad():
        out = model(torch.randn(2, 4, h, w), torch.randn(2, 48, h // 8, w // 8))
    assert out["final"].shape == (2, 3, h, w)
    assert out["aux_f2"].shape == (2, 3, h // 8, w // 8)
    assert out["aux_f3"].shape == (2, 3, h // 16, w // 16)


@pytest.mark.parametrize("preset", ["original", "lite"])
def test_binary_task_has_one_channel(preset: str) -> None:
    binary = DualStreamDFormer(preset=preset, vision_encoder="segformer-b0").eval()
    assert binary.task == "binary"
    with torch.no_grad():
        out = binary(torch.randn(1, 4, 64, 64), torch.randn(1, 48, 8, 8))
    assert out["final"].shape == (1, 1, 64, 64)
    assert out["aux_f2"].shape == (1, 1, 8, 8)


def test_presets_and_bad_preset() -> None:
    original = DualStreamDFormer()
    assert original.preset == "original"
    assert sum(p.numel() for p in original.parameters()) == 32_175_240
    assert len(original.state_dict()) == 462
    lite = DualStreamDFormer(preset="lite")
    assert sum(p.numel() for p in lite.parameters()) < 0.8 * 32_175_240
    # No BatchNorm anywhere: batch statistics at batch 4 are noise.
    for preset in (original, lite):
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in preset.modules())
    with pytest.raises(DualStreamError, match="preset must be one of"):
        DualStreamDFormer(preset="huge")


def test_lite_gate_mixes_vision_and_air_and_upsampling_has_no_period() -> None:
    lite = DualStreamDFormer(preset="lite", vision_encoder="segformer-b0").eval()
    gate = lite.fusion[0].gate
    vision, air = torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        base = gate(vision, air)
        # Changing one air channel changes the gate: channels are mixed across streams.
        changed = air.clone()
        changed[:, 5] += 3.0
        assert not torch.allclose(gate(vision, changed), base)
        # A spatially constant field stays constant away from the borders after the x2
        # upsampling (a 2x2 transposed convolution would imprint a 2x2 period on it).
        field = torch.randn(1, 64, 1, 1).expand(1, 64, 8, 8)  # B0: 64 channels at H/8
        up = lite.air_encoder.up(field)[..., 2:-2, 2:-2]
    assert up.shape[-1] == 12
    torch.testing.assert_close(up, up[..., :1, :1].expand_as(up), atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter_batch_one_in_training(model: DualStreamDFormer) -> None:
    model.train()
    model.zero_grad()
    image, air = torch.randn(1, 4, 64, 64), torch.randn(1, 48, 8, 8)
    out = model(image, air)
    loss = sum(v.square().mean() for v in out.values())
    if model.preset == "lite":
        loss = loss + model(image, None)["final"].mean()  # reaches the learned "air absent"
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == []
    for part in ("vision_encoder", "air_encoder", "fusion", "decoder"):
        grads = [p.grad.abs().sum() for p in getattr(model, part).parameters()]
        assert sum(grads) > 0, part


def test_original_air_absent_is_zeros_and_no_parameter() -> None:
    model = DualStreamDFormer(vision_encoder="segformer-b0").eval()
    assert "air_absent" not in dict(model.named_parameters())
    image = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        absent = model(image, None)["final"]
        zeros = model(image, torch.zeros(1, 48, 8, 8))["final"]
    torch.testing.assert_close(absent, zeros)


def test_missing_air_and_modality_dropout() -> None:
    torch.manual_seed(0)
    model = DualStreamDFormer(preset="lite", vision_encoder="segformer-b0", modality_dropout=1.0)
    with torch.no_grad():
        model.air_absent.fill_(0.5)
        image, air = torch.randn(2, 4, 64, 64), torch.randn(2, 48, 8, 8)
        model.eval()
        absent = model(image, None)["final"]
        present = model(image, air)["final"]
        assert not torch.allclose(absent, present)
        seen: list[torch.Tensor] = []
        model.air_encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
        model.train()
        model(image, air)
        # With p=1 every sample's air is replaced by the learned "air absent" input.
        torch.testing.assert_close(seen[-1], torch.full_like(air, 0.5))
        model.modality_dropout = 0.0
        model(image, air)
        torch.testing.assert_close(seen[-1], air)


def test_shape_errors(model: DualStreamDFormer) -> None:
    with pytest.raises(ValueError, match=r"multiples of 32, got 100 x 128"):
        model(torch.randn(1, 4, 100, 128), None)
    with pytest.raises(ValueError, match=r"air must be \(1, 48, 16, 16\).*got \(1, 48, 8, 8\)"):
        model(torch.randn(1, 4, 128, 128), torch.randn(1, 48, 8, 8))
    with pytest.raises(ValueError, match=r"image must be \(B, 4, H, W\), got \(1, 3, 64, 64\)"):
        model(torch.randn(1, 3, 64, 64), None)


def small_rgb_segformer(path: Path) -> SegformerModel:
    """A 3-channel MiT-B1 saved with save_pretrained, like a local copy of nvidia/mit-b1."""
    config = SegformerConfig(
        num_channels=3,
        hidden_sizes=[64, 128, 320, 512],
        depths=[2, 2, 2, 2],
        num_attention_heads=[1, 2, 5, 8],
    )
    torch.manual_seed(3)
    rgb = SegformerModel(config)
    rgb.save_pretrained(path)
    return rgb


def test_stem_adaptation_from_save_pretrained(tmp_path: Path) -> None:
    rgb = small_rgb_segformer(tmp_path / "mit-b1")
    model = DualStreamDFormer(
        band_names=("blue", "green", "red", "nir"), vision_weights=str(tmp_path / "mit-b1")
    )
    stem = model.vision_encoder.stem.detach()
    pretrained = rgb.state_dict()[STEM_KEY]  # (64, 3, 7, 7) in red, green, blue order
    scale = 3 / 4
    torch.testing.assert_close(stem[:, 2], pretrained[:, 0] * scale)  # red band <- red filter
    torch.testing.assert_close(stem[:, 1], pretrained[:, 1] * scale)  # green
    torch.testing.assert_close(stem[:, 0], pretrained[:, 2] * scale)  # blue band <- blue filter
    torch.testing.assert_close(stem[:, 3], pretrained.mean(1) * scale)  # nir: mean filter
    # Output magnitude preserved: equal bands give the pretrained stem's output on equal RGB.
    x = torch.randn(1, 1, 32, 32)
    conv = torch.nn.functional.conv2d
    torch.testing.assert_close(
        conv(x.expand(1, 4, 32, 32), stem, padding=3),
        conv(x.expand(1, 3, 32, 32), pretrained, padding=3),
        rtol=1e-4,
        atol=1e-4,
    )
    # Every other weight is the pretrained one.
    key = installed("stages.2.blocks.1.mlp.fc1.weight")
    torch.testing.assert_close(model.vision_encoder.model.state_dict()[key], rgb.state_dict()[key])


def test_state_dict_files_with_prefixes(tmp_path: Path) -> None:
    source = DualStreamDFormer(vision_encoder="segformer-b0")
    state = {
        f"_orig_mod.module.{k}": v for k, v in source.vision_encoder.model.state_dict().items()
    }
    torch.save(state, tmp_path / "vision.pth")
    from safetensors.torch import save_file

    save_file(
        {f"model.{k}": v.contiguous() for k, v in source.air_encoder.state_dict().items()},
        str(tmp_path / "air.safetensors"),
    )
    loaded = DualStreamDFormer(
        vision_encoder="segformer-b0",
        vision_weights=tmp_path / "vision.pth",
        aux_weights=tmp_path / "air.safetensors",
    )
    for a, b in zip(
        loaded.vision_encoder.parameters(), source.vision_encoder.parameters(), strict=True
    ):
        assert torch.equal(a, b)
    for a, b in zip(loaded.air_encoder.parameters(), source.air_encoder.parameters(), strict=True):
        assert torch.equal(a, b)


def test_legacy_transformers_keys(tmp_path: Path) -> None:
    source = DualStreamDFormer(vision_encoder="segformer-b0")
    state = source.vision_encoder.model.state_dict()
    legacy = {
        "segformer.encoder.patch_embeddings.0.proj.weight": state[STEM_KEY],
        "segformer.encoder.block.1.0.attention.self.query.weight": state[
            installed("stages.1.blocks.0.attention.q_proj.weight")
        ],
    }
    torch.save(legacy, tmp_path / "legacy.pt")
    loaded = DualStreamDFormer(vision_encoder="segformer-b0", vision_weights=tmp_path / "legacy.pt")
    assert torch.equal(
        loaded.vision_encoder.model.state_dict()[
            installed("stages.1.blocks.0.attention.q_proj.weight")
        ],
        state[installed("stages.1.blocks.0.attention.q_proj.weight")],
    )


def test_bad_checkpoints(tmp_path: Path) -> None:
    torch.save({"foo.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(DualStreamError, match=r"other.pth: no weights match"):
        DualStreamDFormer(vision_weights=tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DualStreamError, match=r"junk.pth: not a readable weights file"):
        DualStreamDFormer(vision_weights=tmp_path / "junk.pth")
    # A missing local path is reported at once, not tried as a hub id (retries offline).
    with pytest.raises(DualStreamError, match=r"missing-dir: weights file not found"):
        DualStreamDFormer(vision_weights=str(tmp_path / "missing-dir"))
    wrong = {STEM_KEY: torch.zeros(64, 2, 7, 7)}
    torch.save(wrong, tmp_path / "two.pth")
    with pytest.raises(DualStreamError, match=r"pretrained stem has 2 input channels"):
        DualStreamDFormer(vision_weights=tmp_path / "two.pth")


def test_adapt_stem_without_rgb_names() -> None:
    weight = torch.randn(8, 3, 3, 3)
    adapted = adapt_stem(weight, ("swir1", "swir2"))
    torch.testing.assert_close(adapted[:, 0], weight.mean(1) * 1.5)


def test_the_lite_aux_stem_keeps_the_level_of_a_one_channel_stream() -> None:
    """A smooth one-channel stream (an elevation): with the default linear stem, values 1
    and 2.5 standard deviations above the mean reach the first stage as different
    features; after a per-pixel LayerNorm (the stem of older lite checkpoints) they are
    nearly the same, since LayerNorm(w x + b) tends to LayerNorm(w) as x grows."""
    torch.manual_seed(0)

    def stem_change(aux_stem: str) -> float:
        model = DualStreamDFormer(air_channels=1, preset="lite", aux_stem=aux_stem)
        stem = model.air_encoder.stem
        low, high = (stem(torch.full((1, 1, 8, 8), v))[0, :, 4, 4] for v in (1.0, 2.5))
        return float((high - low).norm() / low.norm())

    with torch.no_grad():
        linear, layernorm = stem_change("linear"), stem_change("layernorm")
    assert linear > 1.0 and layernorm < 0.5 * linear, (linear, layernorm)
    with pytest.raises(DualStreamError, match="aux_stem must be one of"):
        DualStreamDFormer(preset="lite", aux_stem="batchnorm")


@pytest.mark.parametrize("aux_scale", [4, 2, 1])
def test_the_lite_preset_reads_finer_aux_grids(aux_scale: int) -> None:
    """``aux_scale`` 4, 2 or 1 (a DEM under 30 m imagery): the air encoder takes the stream at
    1/r of the image, its stage-1 features come from the stream's own pixels (an air pixel
    changed moves them there and not 8 px away), every parameter gets a gradient, and the
    air-absent input takes the same grid."""
    torch.manual_seed(0)
    model = DualStreamDFormer(num_classes=3, task="multiclass", preset="lite", aux_scale=aux_scale)
    image = torch.randn(2, 4, 64, 96)
    air = torch.randn(2, 48, 64 // aux_scale, 96 // aux_scale)
    out = model(image, air)
    assert out["final"].shape == (2, 3, 64, 96)
    sum(o.float().mean() for o in out.values()).backward()  # type: ignore[misc]
    missing = [name for name, p in model.named_parameters() if p.grad is None]
    assert missing == ["air_absent"]  # the air was given
    assert model(image)["final"].shape == (2, 3, 64, 96)

    model.eval()
    with torch.no_grad():
        before = model.air_encoder(air)[0]
        changed = air.clone()
        row, col = 32 // aux_scale, 48 // aux_scale  # image pixel (32, 48): H/4 cell (8, 12)
        changed[:, :, row, col] += 5.0
        moved = (model.air_encoder(changed)[0] - before).abs().sum(dim=(0, 1))
    assert moved[8, 12] > 0 and moved[7:10, 11:14].sum() == moved.sum()  # a 3x3 stem at most
    with pytest.raises(ValueError, match=f"air must be \\(2, 48, {64 // aux_scale}"):
        model(image, torch.randn(2, 48, 8, 12))


def test_the_original_preset_and_the_air_encoder_refuse_other_aux_grids() -> None:
    with pytest.raises(DualStreamError, match="the original preset reads the aux stream at 1/8"):
        DualStreamDFormer(preset="original", aux_scale=4)
    with pytest.raises(DualStreamError, match=r"with r in \(1, 2, 4, 8\), got 3"):
        DualStreamDFormer(preset="lite", aux_scale=3)


def test_the_detail_path_reads_the_aux_stream_at_each_pixel() -> None:
    """``detail_aux``: the full-resolution path's own logits move where one air pixel
    changed (its 8 x 8 image pixels, and the bilinear neighbours), not far from it; without
    it they do not depend on the air at all. Checkpoints written before the setting keep a
    detail path of the image alone."""
    torch.manual_seed(0)
    image, air = torch.randn(1, 4, 64, 64), torch.randn(1, 5, 8, 8)
    changed = air.clone()
    changed[:, :, 2, 5] += 5.0  # image rows 16-23, columns 40-47
    for detail_aux in (True, False):
        model = DualStreamDFormer(
            num_classes=3,
            task="multiclass",
            preset="lite",
            air_channels=5,
            image_detail=True,
            detail_aux=detail_aux,
        ).eval()
        with torch.no_grad():
            moved = (model(image, changed)["aux_detail"] - model(image, air)["aux_detail"]).abs()
        moved = moved.sum(dim=(0, 1))
        if detail_aux:
            assert moved[20, 44] > 0 and moved[60, 4] == 0
        else:
            assert moved.max() == 0
    old = task_hparams({"hyper_parameters": {"image_detail": True}})["architecture"]
    assert old["detail_aux"] is False and old["detail_design"] == "dense"
