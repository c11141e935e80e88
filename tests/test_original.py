"""The original preset against the original's specification: every key of its state dict
imports (transformers 4.x and 5.x names), each component follows the specification's
equations (tests/original_reference.py), its loss, schedule and input scaling, and
``import-original`` + ``predict`` reproduce its probabilities on a 512 px tile."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from dualstream_geo.cli import main
from dualstream_geo.data.auxiliary.spec import original_aux
from dualstream_geo.data.normalize import OriginalScaling
from dualstream_geo.data.spec import InputSpec
from dualstream_geo.errors import DualStreamError
from dualstream_geo.models import DualStreamDFormer
from dualstream_geo.models.settings import ArchitectureSettings
from dualstream_geo.models.vision import installed_layout_is_v5, segformer_key_v4, segformer_key_v5
from dualstream_geo.training.losses import BinaryLovaszProbabilityLoss, SegmentationLoss
from dualstream_geo.training.schedule import build_schedule
from dualstream_geo.training.stored import read_spec

from . import original_reference as ref
from .conftest import write_raster


@pytest.fixture(scope="module")
def original_state() -> dict[str, torch.Tensor]:
    return ref.random_original_state(seed=0)


@pytest.fixture(scope="module")
def original_file(
    original_state: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    path = tmp_path_factory.mktemp("original") / "DualStream_best.pth"
    torch.save(original_state, path)
    return path


@pytest.fixture(scope="module")
def imported(original_file: Path) -> DualStreamDFormer:
    return DualStreamDFormer.from_original(original_file).eval()


def test_vision_key_map_matches_the_specification() -> None:
    mapping = ref.vision_key_map()
    assert len(mapping) == 192
    for v4, v5 in mapping.items():
        bare = v4.removeprefix("visual_encoder.")
        assert segformer_key_v5(bare) == v5
        assert segformer_key_v4(v5) == bare


def test_every_original_tensor_is_imported(
    imported: DualStreamDFormer, original_state: dict[str, torch.Tensor]
) -> None:
    assert sum(p.numel() for p in imported.parameters()) == 32_175_240
    own = imported.state_dict()
    assert len(own) == len(original_state) == 462
    # The sum of every tensor is preserved by the renaming (nothing dropped or duplicated).
    total = sum(float(v.double().sum()) for v in original_state.values())
    assert sum(float(v.double().sum()) for v in own.values()) == pytest.approx(total, rel=1e-12)
    pairs = {
        "air_encoder.stem_blocks.1.dwconv.weight": "air_encoder.stem_blocks.1.conv_dw.weight",
        "film_f2.generator.1.pwconv1.bias": "fusion.1.film.generator.1.mlp.fc1.bias",
        "gate_f1.gate_generator.3.weight": "fusion.0.gate.gate_generator.3.weight",
        "ca_f4.attn.in_proj_weight": "fusion.3.attn.in_proj_weight",
        "decoder.boundary_refine.1.pwconv2.weight": "decoder.boundary_refine.1.mlp.fc2.weight",
        "visual_encoder.encoder.block.2.1.attention.self.sr.weight": "vision_encoder.model."
        + (
            "stages.2.blocks.1.attention.sequence_reduction.sequence_reduction.weight"
            if installed_layout_is_v5()
            else "encoder.block.2.1.attention.self.sr.weight"
        ),
    }
    for original, project in pairs.items():
        assert torch.equal(own[project], original_state[original]), original
    assert imported.decoder.use_boundary_refine is False


def test_transformers_4_and_5_names_and_wrappers_give_identical_models(
    original_state: dict[str, torch.Tensor], imported: DualStreamDFormer, tmp_path: Path
) -> None:
    mapping = ref.vision_key_map()
    v5 = {
        (f"visual_encoder.{mapping[k]}" if k in mapping else k): v
        for k, v in original_state.items()
    }
    torch.save({f"module._orig_mod.{k}": v for k, v in v5.items()}, tmp_path / "v5.pth")
    other = DualStreamDFormer.from_original(tmp_path / "v5.pth")
    for (name, a), (_, b) in zip(
        imported.state_dict().items(), other.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_components_follow_the_specification(
    imported: DualStreamDFormer, original_state: dict[str, torch.Tensor]
) -> None:
    torch.manual_seed(1)
    image, air = torch.rand(2, 4, 128, 96), torch.rand(2, 48, 16, 12)
    with torch.no_grad():
        vision = imported.vision_encoder(image)
        assert [tuple(v.shape[1:]) for v in vision] == [
            (64, 32, 24),
            (128, 16, 12),
            (320, 8, 6),
            (512, 4, 3),
        ]
        ours = imported.air_encoder(air)
        theirs = ref.air_encoder(air, original_state)
        for a, b in zip(ours, theirs, strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
        fused = imported.fusion(vision, ours)
        torch.testing.assert_close(
            fused[0], ref.gate_fuse(vision[0], ours[0], original_state, 1), atol=1e-4, rtol=1e-4
        )
        torch.testing.assert_close(
            fused[2],
            ref.cross_attention(vision[2], ours[2], original_state, 3),
            atol=1e-4,
            rtol=1e-4,
        )
        torch.testing.assert_close(
            fused[3],
            ref.cross_attention(vision[3], ours[3], original_state, 4),
            atol=1e-4,
            rtol=1e-4,
        )
        out = imported(image, air)
        expected = ref.fused_logits(vision, air, original_state)
        for head in ("final", "aux_f2", "aux_f3"):
            torch.testing.assert_close(out[head], expected[head], atol=1e-4, rtol=1e-4)
        # The gate evaluated twice (the original's op count) gives the same numbers.
        for stage in imported.fusion[:2]:
            stage.gate_twice = True
        torch.testing.assert_close(imported(image, air)["final"], out["final"])
        for stage in imported.fusion[:2]:
            stage.gate_twice = False
        # The fixed behaviour: the classifier reads the boundary-refinement branch.
        imported.decoder.use_boundary_refine = True
        refined = imported.decoder(fused)["final"]
        imported.decoder.use_boundary_refine = False
        torch.testing.assert_close(
            refined,
            ref.decoder(fused, original_state, boundary=True)["final"],
            atol=1e-4,
            rtol=1e-4,
        )
        assert not torch.allclose(refined, out["final"])


def test_boundary_branch_is_frozen_when_unused(imported: DualStreamDFormer) -> None:
    imported.train()
    out = imported(torch.rand(1, 4, 64, 64), torch.rand(1, 48, 8, 8))
    out["final"].mean().backward()
    boundary = list(imported.decoder.boundary_refine.parameters())
    assert all(not p.requires_grad and p.grad is None for p in boundary)
    assert imported.decoder.final_classifier_v8.weight.grad is not None
    imported.zero_grad()
    imported.eval()


def reference_focal(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    t = target.float()
    p = logits.sigmoid()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = 0.25 * t + 0.75 * (1 - t)
    return (alpha_t * (1 - p_t) ** 2 * bce).mean()


def reference_lovasz(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    losses = []
    for z, y in zip(logits, target, strict=True):
        p, g = z.flatten().sigmoid(), y.flatten().float()
        e = (g - p).abs()
        e, order = e.sort(descending=True)
        g = g[order]
        total = g.sum()
        jaccard = 1 - (total - g.cumsum(0)) / (total + (1 - g).cumsum(0))
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append((e * grad).sum())
    return torch.stack(losses).mean()


def test_original_loss_follows_the_specification() -> None:
    torch.manual_seed(2)
    logits = torch.randn(3, 1, 32, 32)
    target = (torch.rand(3, 32, 32) > 0.7).long()
    target[2] = 0  # an image without foreground: its Lovasz term is max(p)
    loss = SegmentationLoss("binary", lovasz_form="original")
    expected = 0.5 * reference_focal(logits[:, 0], target) + 0.5 * reference_lovasz(
        logits[:, 0], target
    )
    torch.testing.assert_close(loss(logits, target), expected, rtol=1e-5, atol=1e-6)
    lovasz = BinaryLovaszProbabilityLoss()
    torch.testing.assert_close(lovasz(logits[2:, 0], target[2:]), logits[2].sigmoid().max())
    # Ignored pixels: an image with none labelled scores 0 and still counts in the mean.
    ignored = target.clone()
    ignored[1] = 255
    per_image = [lovasz(logits[i : i + 1, 0], target[i : i + 1]) for i in (0, 2)]
    torch.testing.assert_close(lovasz(logits[:, 0], ignored), sum(per_image) / 3)
    with pytest.raises(ValueError, match="binary"):
        SegmentationLoss("multiclass", lovasz_form="original")


def test_original_schedule() -> None:
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    optimizer = torch.optim.AdamW(
        [{"params": [params[0]], "lr": 3e-5}, {"params": [params[1]], "lr": 3e-4}]
    )
    scheduler = build_schedule(optimizer, "original", max_epochs=42, frozen_epochs=2, min_lr=1e-6)
    rates = []
    for _ in range(42):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert rates[0] == rates[1] == [3e-5, 3e-4]  # frozen epochs at the base rates
    for epoch in range(1, 41):  # unfrozen epoch e runs at the cosine value of e - 1
        cosine = (1 + math.cos(math.pi * (epoch - 1) / 40)) / 2
        expected = [1e-6 + (base - 1e-6) * cosine for base in (3e-5, 3e-4)]
        assert rates[1 + epoch] == pytest.approx(expected, rel=1e-9)


def test_original_input_scaling() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 65535, (4, 16, 16)).astype(np.float32)
    air = rng.normal(10, 3, (48, 2, 2)).astype(np.float32)
    air[24:36] = 7.0  # a flat file: zeros
    air[36, 0, 0] = np.nan  # a NaN in a file: the whole file is zeros
    sample = {
        "image": torch.from_numpy(image.copy()),
        "air": torch.from_numpy(air.copy()),
        "valid": torch.ones(16, 16, dtype=torch.bool),
    }
    out = OriginalScaling()(sample)
    np.testing.assert_array_equal(out["image"].numpy(), ref.scale_image(image))
    expected = np.concatenate([ref.scale_air_file(air[i : i + 12]) for i in range(0, 48, 12)])
    expected[36:48] = 0
    np.testing.assert_allclose(out["air"].numpy(), expected, atol=1e-6)
    assert out["air"][:12].min() == 0 and out["air"][:12].max() == 1


def write_tile(folder: Path, seed: int = 0) -> dict[str, Path]:
    """A 512 px 4-band uint16 image and its four 64 px, 12-band air tiles on the same
    footprint (EPSG:32652, 10 m), named as in the original layout."""
    rng = np.random.default_rng(seed)
    transform = Affine(10.0, 0, 300000.0, 0, -10.0, 4100000.0)
    yy, xx = np.mgrid[0:512, 0:512]
    base = 20000 + 15000 * np.sin(xx / 40.0) * np.cos(yy / 55.0)
    image = np.stack([base + 3000 * b + rng.normal(0, 2000, base.shape) for b in range(4)])
    paths = {
        "image": write_raster(
            folder / "image" / "tile.tif",
            image.clip(0, 65535).astype(np.uint16),
            "EPSG:32652",
            transform,
        )
    }
    air_transform = transform @ Affine.scale(8)
    for name in (
        "GEMS_tile",
        "AIR_Pollution_CO_tile",
        "AIR_Pollution_NO2_tile",
        "AIR_Pollution_SO2_tile",
    ):
        scale = rng.uniform(1, 100)
        data = (scale * rng.random((12, 64, 64))).astype(np.float32)
        sub = "gems" if name.startswith("GEMS") else "air"
        paths[name] = write_raster(folder / sub / f"{name}.tif", data, "EPSG:32652", air_transform)
    return paths


def predict_tile(ckpt: Path, image: Path, gems: Path, air: Path, output: Path, *extra: str) -> int:
    """``dualstream-geo predict`` of one tile with one 512 px window."""
    return main(
        [
            "predict",
            "--checkpoint",
            str(ckpt),
            "--image",
            str(image),
            "--gems",
            str(gems),
            "--air-pollution",
            str(air),
            "--output",
            str(output),
            "--tile",
            "512",
            *extra,
        ]
    )


def test_import_original_and_predict_reproduce_the_original(
    original_file: Path, original_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    ckpt = tmp_path / "MODEL.ckpt"
    assert main(["import-original", str(original_file), "--output", str(ckpt)]) == 0
    tile = write_tile(tmp_path / "tile")
    output = tmp_path / "classes.tif"
    air_folder = tmp_path / "tile" / "air"
    # --precision 32: fp32 on a GPU or a CPU with native bf16 too (their default is bf16).
    extra = ("--kind", "both", "--precision", "32")
    code = predict_tile(ckpt, tile["image"], tile["GEMS_tile"], air_folder, output, *extra)
    assert code == 0
    with rasterio.open(tmp_path / "classes_probabilities.tif") as src:
        assert src.count == 2 and src.transform == rasterio.open(tile["image"]).transform
        predicted = src.read().astype(np.float64) / 254
    with rasterio.open(output) as src:
        classes = src.read(1)
    # The original's own pipeline: its scaling of each file, its model, sigmoid.
    with rasterio.open(tile["image"]) as src:
        image = torch.from_numpy(ref.scale_image(src.read()))[None]
    files = [
        "GEMS_tile",
        "AIR_Pollution_CO_tile",
        "AIR_Pollution_NO2_tile",
        "AIR_Pollution_SO2_tile",
    ]
    air = torch.from_numpy(
        np.concatenate([ref.scale_air_file(rasterio.open(tile[f]).read()) for f in files])
    )[None]
    model = DualStreamDFormer.from_original(original_file).eval()
    with torch.no_grad():
        vision = model.vision_encoder(image)
        probability = ref.fused_logits(vision, air, original_state)["final"][0, 0].sigmoid().numpy()
    assert 0.05 < (probability > 0.5).mean() < 0.95  # both classes occur
    assert np.abs(predicted[1] - probability).max() <= 1.5 / 254
    np.testing.assert_allclose(predicted[0] + predicted[1], 1.0, atol=1.5 / 254)
    agree = (classes == (probability > 0.5)).mean()
    assert agree >= 0.999
    # Air tiles as the original data may hold them, without georeferencing: they take the
    # image tile's footprint (one warning) and give the same prediction.
    bare = tmp_path / "bare"
    for name in files:
        with rasterio.open(tile[name]) as src:
            sub = "gems" if name.startswith("GEMS") else "air"
            write_raster(bare / sub / f"{name}.tif", src.read(), None, None)
    with pytest.warns(UserWarning, match=r"4 tile\(s\) without georeferencing"):
        code = predict_tile(
            ckpt, tile["image"], bare / "gems", bare / "air", tmp_path / "bare.tif", *extra[2:]
        )
    assert code == 0
    with rasterio.open(tmp_path / "bare.tif") as src:
        np.testing.assert_array_equal(src.read(1), classes)


def test_imported_checkpoint_initialises_training(original_file: Path, tmp_path: Path) -> None:
    from dualstream_geo.training import DualStreamSegmentation

    ckpt = tmp_path / "MODEL.ckpt"
    assert main(["import-original", str(original_file), "--output", str(ckpt)]) == 0
    for weights in (ckpt, original_file):
        task = DualStreamSegmentation(
            input_spec=InputSpec(aux=original_aux()),
            task="binary",
            weights=str(weights),
            architecture=ArchitectureSettings(use_boundary_refine=False),
        )
        expected = DualStreamDFormer.from_original(original_file).state_dict()
        for name, value in task.model.state_dict().items():
            assert torch.equal(value, expected[name]), name
    raw = torch.load(ckpt, weights_only=True)
    spec = read_spec(raw, ckpt)
    assert spec.normalization == "original" and spec.class_names == ["background", "target"]
    assert spec.aux_names == ["gems", "air_pollution"] and spec.aux_channels == 48
    assert spec.aux_channel_names[:13] == [*(f"gems_{i:02d}" for i in range(1, 13)), "co_01"]
    assert raw["hyper_parameters"]["architecture"]["preset"] == "original"


def test_bad_original_files(
    original_state: dict[str, torch.Tensor],
    original_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fails(path: Path, match: str, **parts: Path) -> None:
        with pytest.raises(DualStreamError, match=match):
            DualStreamDFormer.from_original(path, **parts)  # type: ignore[arg-type]

    (tmp_path / "random.pth").write_bytes(np.random.default_rng(0).bytes(2048))
    fails(tmp_path / "random.pth", r"random.pth: not a readable PyTorch state dict file")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    fails(tmp_path / "other.pth", r"other.pth: unexpected key 'fc.weight'")
    missing = dict(original_state)
    del missing["ca_f3.norm2.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    fails(tmp_path / "missing.pth", r"missing.pth: missing key 'ca_f3.norm2.bias'")
    extra = {**original_state, "decoder.extra_head.weight": torch.zeros(1)}
    torch.save(extra, tmp_path / "extra.pth")
    fails(tmp_path / "extra.pth", r"extra.pth: unexpected key 'decoder.extra_head.weight'")
    wrong = {**original_state, "decoder.aux_classifier_f2.weight": torch.zeros(1, 128, 1, 1)}
    torch.save(wrong, tmp_path / "shape.pth")
    fails(
        tmp_path / "shape.pth",
        r"aux_classifier_f2.weight has shape \(1, 128, 1, 1\), the model expects \(1, 256, 1, 1",
    )
    # A 3-band vision checkpoint into the 4-band model is refused, saying what to do instead.
    vision = {
        k.removeprefix("visual_encoder."): v
        for k, v in original_state.items()
        if k.startswith("visual_encoder.")
    }
    vision["encoder.patch_embeddings.0.proj.weight"] = torch.zeros(64, 3, 7, 7)
    torch.save({f"segformer.{k}": v for k, v in vision.items()}, tmp_path / "rgb.pth")
    fails(original_file, r"stem takes 3 bands, the model 4", vision_encoder=tmp_path / "rgb.pth")
    # Separate encoder files replace their parts; their keys must be exactly the part's.
    air = {
        k.removeprefix("air_encoder."): v * 0
        for k, v in original_state.items()
        if k.startswith("air_encoder.")
    }
    torch.save(air, tmp_path / "air.pth")
    model = DualStreamDFormer.from_original(original_file, air_encoder=tmp_path / "air.pth")
    assert all(float(p.detach().abs().sum()) == 0 for p in model.air_encoder.parameters())
    torch.save({**air, "head.weight": torch.zeros(1)}, tmp_path / "air_extra.pth")
    fails(
        original_file,
        r"air_extra.pth: unexpected key 'air_encoder.head.weight'",
        air_encoder=tmp_path / "air_extra.pth",
    )
    # The CLI: one line, exit 2, nothing written; no overwrite without --overwrite.
    out = tmp_path / "out.ckpt"
    assert main(["import-original", str(tmp_path / "random.pth"), "--output", str(out)]) == 2
    assert not out.exists()
    out.write_bytes(b"keep")
    assert main(["import-original", str(original_file), "--output", str(out)]) == 2
    assert out.read_bytes() == b"keep"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("dualstream-geo: error: ") for line in err)
    assert "exists; pass --overwrite" in err[1]


def test_imported_checkpoint_validates_and_fine_tunes_with_the_parity_config(
    original_file: Path, tmp_path: Path
) -> None:
    from .test_data_inputs import write_original_tree

    write_original_tree(tmp_path / "aihub", georeferenced_aux=True, size=128)
    ckpt = tmp_path / "original.ckpt"
    assert main(["import-original", str(original_file), "--output", str(ckpt)]) == 0
    common = [
        "--config",
        str(Path(__file__).resolve().parents[1] / "experiments" / "aihub.yaml"),
        f"--data.root={tmp_path / 'aihub'}",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        "--data.loader.num_workers=0",
        "--data.patch_size=128",
    ]
    assert main(["validate", *common, f"--ckpt_path={ckpt}"]) == 0
    assert main(["fit", *common, f"--model.weights={ckpt}", "--trainer.max_epochs=1"]) == 0
    best = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert read_spec(best, "last.ckpt").normalization == "original"
    # Frozen for the first epoch: the fine-tuned encoders still hold the imported weights.
    imported = torch.load(ckpt, weights_only=True)["state_dict"]
    key = "model.air_encoder.stem_conv.conv.weight"
    assert torch.equal(best["state_dict"][key], imported[key])
    key = "model.decoder.final_classifier_v8.weight"
    assert not torch.equal(best["state_dict"][key], imported[key])
