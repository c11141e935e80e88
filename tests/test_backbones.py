"""TorchGeo's architectures as vision encoders, and their weights by name or file, offline.

The weights files are written here with the key names and shapes of TorchGeo's (the timm
and torchvision models TorchGeo loads them into, with TorchGeo's file names), so nothing
is downloaded: a TorchGeo weights name resolves to the file in the torch hub cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import timm
import torch
import torchvision

from dualstream_geo.errors import DualStreamError
from dualstream_geo.models import DualStreamDFormer
from dualstream_geo.models.backbones import NECK_WIDTHS, TorchGeoEncoder
from dualstream_geo.models.pretrained import (
    PretrainedWeights,
    cached_path,
    file_name,
    resolve_weights,
    scaling_warning,
    torchgeo_weights,
)
from dualstream_geo.models.sensor_bands import match_bands

ZION_CHANNELS = ("blue", "green", "red", "nir", "ndvi", "ndwi")
OLI_SR = "ResNet18_Weights.LANDSAT_OLI_SR_MOCO"


def model(encoder: str, weights: str | Path | None = None, **settings: object) -> DualStreamDFormer:
    """A lite 8-class model on Zion's channels with a 5-channel aux stream at 1/2."""
    defaults: dict[str, object] = {
        "num_classes": 8,
        "task": "multiclass",
        "preset": "lite",
        "in_channels": len(ZION_CHANNELS),
        "band_names": ZION_CHANNELS,
        "air_channels": 5,
        "aux_scale": 2,
        "vision_encoder": encoder,
        "vision_weights": weights,
    }
    return DualStreamDFormer(**{**defaults, **settings})  # type: ignore[arg-type]


def write_weights(folder: Path, name: str, state: dict[str, torch.Tensor]) -> Path:
    """``state`` saved under the file name TorchGeo publishes weights ``name`` as."""
    path = folder / file_name(torchgeo_weights()[name])
    torch.save(state, path)
    return path


def resnet18_oli_state(seed: int = 1) -> dict[str, torch.Tensor]:
    """Weights with the keys and shapes of TorchGeo's SSL4EO-L ResNet-18 (7 OLI SR bands)."""
    torch.manual_seed(seed)
    return timm.create_model("resnet18", in_chans=7).state_dict()


@pytest.mark.parametrize(
    ("encoder", "context"),
    [
        ("resnet18", "local"),
        ("resnet50", "local"),
        ("vit-small16", "window"),
        ("swin-v2-t", "window"),
    ],
)
def test_encoders_feed_the_fusion_segformer_b1s_grid(encoder: str, context: str) -> None:
    net = model(encoder, context=context, image_detail=True)
    image, air = torch.randn(2, 6, 64, 96), torch.randn(2, 5, 32, 48)
    features = net.vision_neck(net.vision_encoder(image))
    assert [f.shape[1] for f in features] == list(NECK_WIDTHS)
    assert [tuple(f.shape[-2:]) for f in features] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    out = net(image, air)
    assert out["final"].shape == (2, 8, 64, 96)
    out["final"].square().mean().backward()
    assert isinstance(net.vision_encoder, TorchGeoEncoder)
    stem = net.vision_encoder.backbone.get_parameter(net.vision_encoder.stem_key)
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    vision = [*net.vision_encoder.named_parameters(), *net.vision_neck.named_parameters()]
    assert not [n for n, p in vision if p.grad is None]  # DDP needs each one in the loss


@pytest.mark.parametrize("encoder", ["vit-small16", "swin-v2-b"])
def test_window_dependent_encoders_are_refused_in_local_context(encoder: str) -> None:
    with pytest.raises(DualStreamError, match="set model.architecture.context window"):
        model(encoder, context="local")


def test_resnet_does_not_see_beyond_its_neighbourhood() -> None:
    """Convolutions only: changing the image and aux more than 288 px away from a pixel
    leaves its probabilities as they were (as a local SegFormer model's, test_locality)."""
    image = torch.randn(1, 6, 384, 384, generator=torch.Generator().manual_seed(1))
    air = torch.randn(1, 5, 192, 192, generator=torch.Generator().manual_seed(2))
    changed_image, changed_air = image.clone(), air.clone()
    changed_image[..., 320:, :] = 0.0
    changed_air[..., 160:, :] = 0.0
    torch.manual_seed(0)
    net = model("resnet18").eval()
    with torch.no_grad():
        before = net(image, air)["final"].softmax(1)
        after = net(changed_image, changed_air)["final"].softmax(1)
    assert float((before - after)[..., :32, :].abs().max()) < 5e-3
    assert float((before - after)[..., 300:, :].abs().max()) > 5e-2


def test_band_matching_by_identifier_and_common_name() -> None:
    bands = ["SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7"]
    channels = ["nir", "blue", "ndvi", "swir", "SR_B7", "swir2"]
    assert match_bands(channels, bands, "landsat_oli") == [4, 1, None, 5, 6, 6]
    satlas = ["B04", "B03", "B02", "B05", "B06", "B07", "B08", "B11", "B12"]
    assert match_bands(["blue", "nir", "rededge1", "B8A"], satlas, "sentinel2") == [2, 6, 3, None]
    assert match_bands(["blue", "green", "red", "nir"], ["B1", "B2", "B3", "B4"], "landsat_tm") == [
        0,
        1,
        2,
        3,
    ]


def test_torchgeo_file_loads_with_the_stem_matched_by_band_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = resnet18_oli_state()
    path = write_weights(tmp_path, OLI_SR, state)
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        net = model("resnet18", path)
    encoder = net.vision_encoder
    assert isinstance(encoder, TorchGeoEncoder)
    own = encoder.backbone.state_dict()
    stem = own["conv1.weight"]
    assert stem.shape == (64, 6, 7, 7)
    # blue, green, red, nir are SR_B2 ... SR_B5 of Landsat 8 OLI; the indices start at zero.
    for channel, band in enumerate([1, 2, 3, 4]):
        assert torch.equal(stem[:, channel], state["conv1.weight"][:, band])
    assert not stem[:, 4:].any()
    assert torch.equal(own["layer3.1.conv2.weight"], state["layer3.1.conv2.weight"])
    assert torch.equal(own["bn1.running_var"], state["bn1.running_var"])
    assert encoder.weights_name == OLI_SR
    # SSL4EO-L's normalisation, x / 255, for the matched bands only.
    assert encoder.weights_std.tolist() == [255.0] * 4 + [0.0, 0.0]
    assert "SR_B1, SR_B6, SR_B7" in caplog.text  # the bands the image lacks are named
    # The features are the weights' own: they differ from a randomly initialised encoder's.
    torch.manual_seed(0)
    plain = model("resnet18")
    image = torch.randn(1, 6, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(net.vision_encoder(image)[0], plain.vision_encoder(image)[0])


def test_weights_name_resolves_offline_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = torchgeo_weights()[OLI_SR]
    cached = cached_path(weights)
    assert cached.is_relative_to(tmp_path)
    cached.parent.mkdir(parents=True)
    state = resnet18_oli_state()
    torch.save(state, cached)
    resolved = resolve_weights(OLI_SR)
    assert resolved.architecture == "resnet18"
    assert resolved.bands[1] == "SR_B2" and resolved.std == (255.0,) * 7
    net = model("resnet18", OLI_SR)
    assert torch.equal(
        net.vision_encoder.backbone.state_dict()["layer1.0.conv1.weight"],
        state["layer1.0.conv1.weight"],
    )


def test_vit_and_swin_weights_load_by_file(tmp_path: Path) -> None:
    vit_state = timm.create_model("vit_small_patch16_224", in_chans=7).state_dict()
    vit_path = write_weights(tmp_path, "ViTSmall16_Weights.LANDSAT_TM_TOA_MOCO", vit_state)
    vit = model("vit-small16", vit_path, context="window")
    own = vit.vision_encoder.backbone.state_dict()
    assert torch.equal(own["pos_embed"], vit_state["pos_embed"])
    # Landsat 5 TM: blue, green, red, nir are bands 1-4.
    stem = own["patch_embed.proj.weight"]
    assert torch.equal(stem[:, :4], vit_state["patch_embed.proj.weight"][:, :4])

    swin = torchvision.models.swin_v2_t()
    swin.features[0][0] = torch.nn.Conv2d(9, 96, 4, stride=4)
    swin_state = swin.state_dict()
    swin_path = write_weights(tmp_path, "Swin_V2_T_Weights.SENTINEL2_MI_MS_SATLAS", swin_state)
    net = model("swin-v2-t", swin_path, context="window")
    stem = net.vision_encoder.backbone.state_dict()["0.0.weight"]
    # Satlas's bands: B04 B03 B02 B05 B06 B07 B08 B11 B12; blue is B02, nir B08.
    assert torch.equal(stem[:, 0], swin_state["features.0.0.weight"][:, 2])
    assert torch.equal(stem[:, 3], swin_state["features.0.0.weight"][:, 6])
    assert net.vision_encoder.weights_std[3] == 8160


def test_bad_weights_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(DualStreamError, match="not one of TorchGeo's weights"):
        model("resnet18", "ResNet18_Weights.NO_SUCH_WEIGHTS")
    path = write_weights(tmp_path, OLI_SR, resnet18_oli_state())
    with pytest.raises(
        DualStreamError, match="weights of a resnet18, the vision encoder is a resnet50"
    ):
        model("resnet50", path)
    with pytest.raises(DualStreamError, match="none of the image channels"):
        model("resnet18", path, in_channels=2, band_names=("band_1", "band_2"))
    with pytest.raises(DualStreamError, match="the vision encoder is a SegFormer"):
        model("segformer-b0", OLI_SR)
    other = tmp_path / "mine.pth"
    torch.save(resnet18_oli_state(), other)  # 7 unnamed bands, the image has 6 channels
    with pytest.raises(DualStreamError, match="its stem takes 7 bands, unnamed"):
        model("resnet18", other)
    with pytest.raises(DualStreamError, match="weights file not found"):
        model("resnet18", tmp_path / "missing.pth")


def test_input_matches_the_weights_normalisation() -> None:
    """The standardised input becomes (raw - mean) / std in the weights' normalisation."""
    state = resnet18_oli_state()
    encoder = model("resnet18").vision_encoder
    assert isinstance(encoder, TorchGeoEncoder)
    oli = PretrainedWeights(
        OLI_SR, "resnet18", tuple(f"SR_B{i}" for i in range(1, 8)), (0.0,) * 7, (255.0,) * 7, state
    )
    encoder.load_pretrained(oli, ZION_CHANNELS)
    mean, std = [80.0, 90.0, 100.0, 120.0], [10.0, 12.0, 15.0, 30.0]
    encoder.match_data(mean, std)
    raw = torch.tensor([70.0, 102.0, 130.0, 60.0])
    standardised = (raw - torch.tensor(mean)) / torch.tensor(std)
    adapted = standardised * encoder.input_scale[0, :4, 0, 0] + encoder.input_shift[0, :4, 0, 0]
    assert torch.allclose(adapted, raw / 255)
    # The indices keep their standardised values.
    assert encoder.input_scale[0, 4:].eq(1).all() and encoder.input_shift[0, 4:].eq(0).all()


def test_scaling_warning_names_data_in_other_units() -> None:
    ok = scaling_warning(OLI_SR, ["blue"], [0.0], [255.0], [90.0], [250.0])
    assert ok is None
    # Landsat Collection 2 scaled integers against SSL4EO-L's 8-bit values.
    message = scaling_warning(
        OLI_SR, ["blue", "nir"], [0.0] * 2, [255.0] * 2, [9000.0] * 2, [4e4] * 2
    )
    assert message is not None and "channel blue" in message and "9000" in message
    satlas = scaling_warning("x", ["red"], [4000.0], [16320.0], [9000.0], [3e4])
    assert satlas is None


@pytest.mark.parametrize("stream", ["dual", "image"])
def test_fit_and_predict_with_torchgeo_weights_offline(
    stream: str,
    demo_root: Path,
    scene: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``fit --model.architecture.vision_encoder resnet18 --model.vision_weights <TorchGeo
    name>`` with the weights file in the hub cache (as a download leaves it), then
    ``predict`` from its checkpoint: the map names the weights."""
    import rasterio

    from dualstream_geo.cli import main
    from dualstream_geo.training.loading import load_task

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = cached_path(torchgeo_weights()[OLI_SR])
    cached.parent.mkdir(parents=True)
    torch.save(resnet18_oli_state(), cached)
    root = tmp_path / "run"
    fit = [
        "fit",
        "--config",
        str(Path(__file__).parents[1] / "experiments" / "demo.yaml"),
        f"--data.root={demo_root}",
        f"--trainer.default_root_dir={root}",
        "--trainer.max_epochs=1",
        "--data.length=8",
        "--data.batch_size=4",
        f"--data.stats_path={root / 'stats.json'}",
        "--model.architecture.preset=lite",
        "--model.architecture.vision_encoder=resnet18",
        f"--model.vision_weights={OLI_SR}",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
    ]
    aux = ["--gems", str(scene["gems"]), "--air-pollution", str(scene["air"])]
    if stream == "image":
        fit.append("--data.aux=null")
        aux = []
    # The demo's bands are scaled integers (means near 800), not SSL4EO-L's 8-bit values.
    with pytest.warns(UserWarning, match="expects raw values of about 0 to 255"):
        assert main(fit) == 0
    checkpoint = root / "checkpoints" / "last.ckpt"
    task = load_task(checkpoint)
    encoder = task.model.vision_encoder
    assert isinstance(encoder, TorchGeoEncoder) and task.model.vision_weights == OLI_SR
    # The demo's bands are standardised by the data; the stem gets them as x / 255.
    stats = task.input_spec.stats
    assert stats is not None and task.input_spec.uses_aux == (stream == "dual")
    expected = torch.tensor(stats.image.std) / 255
    assert torch.allclose(encoder.input_scale[0, :4, 0, 0], expected)
    output = tmp_path / "map.tif"
    args = ["predict", "--checkpoint", str(checkpoint), "--image", str(scene["image"]), *aux]
    assert main([*args, "--output", str(output), "--tile", "128"]) == 0
    with rasterio.open(output) as src:
        assert src.tags()["vision_weights"] == OLI_SR
        assert src.read(1).shape == (src.height, src.width)
