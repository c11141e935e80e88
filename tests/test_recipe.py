"""Training from scratch: the full-resolution image path, cross-entropy with class weights,
class balance from the training labels, the warm-up schedule, the frozen-epoch default,
the CPU memory setting and test-time augmentation in the test step."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer, seed_everything
from torch import Tensor

from dualstream_geo.data import DualStreamGeoDataset, LandCoverMask, SatelliteImage
from dualstream_geo.data.auxiliary.spec import original_aux
from dualstream_geo.data.labels import class_counts
from dualstream_geo.data.spec import ClassSpec, InputSpec
from dualstream_geo.errors import DualStreamError
from dualstream_geo.models import DualStreamDFormer
from dualstream_geo.models.detail import ImageDetail
from dualstream_geo.models.tta import tta_mean
from dualstream_geo.training import DualStreamSegmentation, LossSettings, SegmentationLoss
from dualstream_geo.training.defaults import freeze_epochs
from dualstream_geo.training.losses import CrossEntropy, balanced_weights
from dualstream_geo.training.settings import CheckpointSettings

from .conftest import LITE_B0, ZION, tiny, trainer

#: Three classes, with the original preset's 48 aux channels.
THREE_CLASSES = InputSpec(classes=ClassSpec(names=("a", "b", "c")), aux=original_aux())


@pytest.mark.parametrize("preset", ["original", "lite"])
def test_image_detail_path_adds_a_full_resolution_head(preset: str) -> None:
    torch.manual_seed(0)
    plain = DualStreamDFormer(num_classes=3, task="multiclass", preset=preset)
    model = DualStreamDFormer(num_classes=3, task="multiclass", preset=preset, image_detail=True)
    image = torch.randn(2, 4, 64, 96)
    out = model(image)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "final": (2, 3, 64, 96),
        "aux_f2": (2, 3, 8, 12),
        "aux_f3": (2, 3, 4, 6),
        "aux_detail": (2, 3, 64, 96),
    }
    assert "aux_detail" not in plain(image)
    assert not any("image_detail" in k for k in plain.state_dict())
    out["final"].mean().backward()
    detail = model.decoder.image_detail
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in detail.encode.parameters())
    with pytest.raises(ValueError, match="pass image"):
        air = model.air_encoder(model._air_input(image, None))
        model.decoder(model.fusion(model.vision_encoder(image), air))


@pytest.mark.parametrize("design", ["dense", "separable", "spectral", "spectral_wide"])
def test_image_detail_head_reads_the_image_only(design: str) -> None:
    torch.manual_seed(0)
    detail = ImageDetail(4, 16, channels=8, dilations=(1, 2), num_outputs=3, design=design).eval()
    image, decoded = torch.randn(1, 4, 32, 32), torch.randn(1, 16, 32, 32)
    merged, logits = detail(image, decoded)
    merged_other, logits_other = detail(image, torch.randn(1, 16, 32, 32))
    assert merged.shape == (1, 8, 32, 32) and logits is not None and logits.shape == (1, 3, 32, 32)
    torch.testing.assert_close(logits, logits_other)  # the head sees the image path alone
    assert not torch.allclose(merged, merged_other)  # the merge sees both
    # Each pixel is normalised on its own: a change beyond the receptive field (3 px for
    # dilations 1, 2) leaves it exactly as it was (a per-patch norm would not).
    far = image.clone()
    far[..., 16:, 16:] += 5.0
    far_merged, far_logits = detail(far, decoded)
    assert far_logits is not None and not torch.equal(far_logits, logits)
    torch.testing.assert_close(far_logits[..., :12, :12], logits[..., :12, :12], rtol=0, atol=0)
    torch.testing.assert_close(far_merged[..., :12, :12], merged[..., :12, :12], rtol=0, atol=0)


def test_cheaper_detail_paths_are_a_quarter_of_the_recipe_flop() -> None:
    """The separable and spectral paths see what the dense one sees (33 x 33 px: dilations
    1, 1, 2, 4, 8, or the spectral stem and 1, 3, 4, 8) at under a quarter of the
    zion_dem.yaml model's FLOP per window, with their own width; ``spectral_wide`` merges
    into a map as wide as the dense path's."""
    from torch.utils.flop_counter import FlopCounterMode

    names = ("blue", "green", "red", "nir", "ndvi", "ndwi")
    shares, widths = {}, {}
    for design in ("dense", "separable", "spectral", "spectral_wide"):
        torch.manual_seed(0)
        model = DualStreamDFormer(
            num_classes=8,
            task="multiclass",
            preset="lite",
            in_channels=6,
            air_channels=5,
            band_names=names,
            vision_encoder="segformer-b0",
            image_detail=True,
            detail_aux=True,
            aux_scale=2,
            detail_design=design,
        ).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.randn(1, 6, 128, 128), torch.randn(1, 5, 64, 64))
        counts = counter.get_flop_counts()
        detail = sum(counts["DualStreamDFormer.decoder.image_detail"].values())
        shares[design] = detail / counter.get_total_flops()
        widths[design] = model.decoder.classifier.in_channels
        path = model.decoder.image_detail
        image = torch.zeros(1, 11, 97, 97)
        image[..., 48, 48] = 1.0
        with torch.no_grad():
            reached = path.encode(image).abs().sum(dim=(0, 1)) > 0
        rows = reached.any(dim=1).nonzero()
        assert rows.min() == 48 - 16 and rows.max() == 48 + 16  # 33 px, whichever design
    assert shares["separable"] < shares["spectral"] <= 0.25 < shares["dense"]
    assert shares["spectral"] < shares["spectral_wide"] <= 0.25
    assert widths == {"dense": 64, "separable": 32, "spectral": 32, "spectral_wide": 64}
    with pytest.raises(DualStreamError, match="detail_design"):
        DualStreamDFormer(image_detail=True, detail_design="sparse")


def test_cross_entropy_averages_over_labelled_pixels_with_class_weights() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8))
    target[:, :4] = 255
    keep = target != 255
    nll = -F.log_softmax(logits, 1).gather(1, target.clamp(max=2)[:, None])[:, 0]
    loss = CrossEntropy("multiclass")(logits, target)
    torch.testing.assert_close(loss, nll[keep].mean())
    weights = torch.tensor([1.0, 2.0, 5.0])
    weighted = CrossEntropy("multiclass", class_weights=weights.tolist())(logits, target)
    w = weights[target.clamp(max=2)][keep]
    torch.testing.assert_close(weighted, (nll[keep] * w).sum() / w.sum())
    binary_logits = torch.randn(2, 8, 8)
    binary_target = torch.randint(0, 2, (2, 8, 8))
    binary_target[:, :4] = 255
    kept = binary_target != 255
    bce = F.binary_cross_entropy_with_logits(
        binary_logits[kept], binary_target[kept].float(), reduction="none"
    )
    pixel_weights = torch.tensor([1.0, 4.0])[binary_target[kept]]
    binary = CrossEntropy("binary", class_weights=[1.0, 4.0])(binary_logits, binary_target)
    torch.testing.assert_close(binary, (bce * pixel_weights).sum() / pixel_weights.sum())
    nothing = CrossEntropy("multiclass")(logits, torch.full_like(target, 255))
    nothing.backward()
    assert nothing.item() == 0 and logits.grad is not None and logits.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="ce_weight > 0"):
        SegmentationLoss("multiclass", ce_weight=0.0).set_class_weights([1.0, 1.0, 1.0])


def test_balanced_weights() -> None:
    counts = np.array([1000, 100, 10, 0])
    np.testing.assert_allclose(balanced_weights(counts, 0.0), [1.0, 1.0, 1.0, 1.0])
    full = balanced_weights(counts, 1.0)
    frequency = counts / counts.sum()
    assert (full[:3] * frequency[:3]).sum() == pytest.approx(1.0)  # the loss keeps its scale
    assert full[1] / full[0] == pytest.approx(10.0) and full[2] / full[1] == pytest.approx(10.0)
    assert full[3] == full[2]  # an absent class: the largest weight, not infinity
    soft = balanced_weights(counts, 0.5)
    assert soft[1] / soft[0] == pytest.approx(math.sqrt(10))
    with pytest.raises(ValueError, match="labelled pixel"):
        balanced_weights(np.zeros(3), 0.5)


def test_class_counts_of_a_split_count_its_cells_only() -> None:
    image = SatelliteImage(ZION, band_files=("_b2", "_b3", "_b4", "_b5"), nodata=65535)
    ds = DualStreamGeoDataset(image, [], LandCoverMask(ZION / "nlcd.tif"))
    whole = class_counts(ds, 9)
    sample = ds[ds.bounds]  # the whole crop at once: every pixel exactly once
    mask = sample["mask"]
    expected = np.bincount(mask[mask != 255].numpy(), minlength=9)
    np.testing.assert_array_equal(whole, expected)
    xmin, ymin, xmax, ymax = (float(v) for v in sample["bounds"])
    ds.label_roi = shapely.box(xmin, ymin, (xmin + xmax) / 2, ymax)  # the western half
    half = class_counts(ds, 9)
    assert 0.4 * whole.sum() < half.sum() < 0.6 * whole.sum()


def test_warmup_cosine_steps_and_encoders_train_from_the_first_epoch(
    demo_root: Path, tmp_path: Path
) -> None:
    class Rates(Callback):
        def __init__(self) -> None:
            self.lrs: list[float] = []
            self.vision: list[torch.Tensor] = []

        def on_train_batch_start(
            self, trainer: Trainer, module: LightningModule, batch: Any, index: int
        ) -> None:
            self.lrs.append(trainer.optimizers[0].param_groups[2]["lr"])  # fusion, 1.0 x lr

        def _snap(self, module: LightningModule) -> None:
            vision = module.model.vision_encoder.parameters()
            self.vision.append(torch.cat([p.detach().flatten() for p in vision]).clone())

        def on_train_epoch_start(self, trainer: Trainer, module: LightningModule) -> None:
            if trainer.current_epoch == 0:
                self._snap(module)

        def on_train_epoch_end(self, trainer: Trainer, module: LightningModule) -> None:
            if trainer.current_epoch == 0:
                self._snap(module)

    task, datamodule = tiny(
        demo_root,
        tmp_path,
        preset="lite",
        min_lr=1e-5,
        lr_schedule="warmup_cosine",
        warmup_epochs=1,
        loss=LossSettings(ce_weight=1.0, class_balance=0.5),
        checkpoints=CheckpointSettings(keep_epochs=True),
    )
    assert task.frozen_epochs == 0  # no pretrained weights: nothing to freeze
    rates = Rates()
    trainer(tmp_path, epochs=3, callbacks=[rates]).fit(task, datamodule)
    # 2 steps per epoch, 6 in all: warm-up 1e-3 / 2, 1e-3, then a cosine to min_lr
    lrs = rates.lrs
    assert len(lrs) == 6
    assert lrs[0] == pytest.approx(5e-4) and lrs[1] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:], strict=False))
    assert lrs[-1] == pytest.approx(1e-5)
    assert not torch.equal(rates.vision[0], rates.vision[1]), "vision encoder frozen in epoch 0"
    counts = datamodule.class_counts(2)
    expected = balanced_weights(counts, 0.5)
    np.testing.assert_allclose(task.balanced_class_weights, expected)
    weights = task.criterion.loss.terms["ce"].class_weights
    assert weights is not None
    np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-6)
    assert expected[1] > expected[0]  # the target is the rarer class of the demo
    meta = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["dualstream_geo"]
    np.testing.assert_allclose(meta["class_weights"], expected)
    epochs = sorted((tmp_path / "checkpoints" / "epochs").glob("*.ckpt"))
    assert [p.name for p in epochs] == ["epoch=00.ckpt", "epoch=01.ckpt", "epoch=02.ckpt"]
    first, final = (torch.load(p, weights_only=True) for p in (epochs[0], epochs[-1]))
    assert "optimizer_states" not in final and final["epoch"] == 2
    name = "model.decoder.classifier.weight"
    torch.testing.assert_close(final["state_dict"][name], task.state_dict()[name])
    assert not torch.equal(first["state_dict"][name], final["state_dict"][name])


def test_frozen_epochs_default_and_bad_settings() -> None:
    assert freeze_epochs({}) == 0
    assert freeze_epochs({"vision_weights": "mit-b1"}) == 2
    assert freeze_epochs({"weights": "original.ckpt"}) == 2
    assert freeze_epochs({"vision_weights": "mit-b1", "freeze_epochs": 0}) == 0
    assert freeze_epochs({"freeze_epochs": 3}) == 3
    base = {"input_spec": THREE_CLASSES, "architecture": LITE_B0}
    for settings, message in [
        ({"head_weights": {"aux_f4": 1.0}}, "head_weights keys"),
        ({"class_weights": (1.0, 2.0), "ce_weight": 1.0}, "class_weights has 2 values"),
        ({"class_balance": 0.3}, "ce_weight > 0"),
        ({"class_balance": -1.0, "ce_weight": 1.0}, "class_balance must be >= 0"),
    ]:
        with pytest.raises(DualStreamError, match=message):
            DualStreamSegmentation(**base, loss=LossSettings(**settings))  # type: ignore[arg-type]


def test_d4_test_time_augmentation_makes_the_scores_equivariant() -> None:
    torch.manual_seed(0)
    task = DualStreamSegmentation(input_spec=THREE_CLASSES, architecture=LITE_B0)
    task.eval()
    image, air = torch.randn(1, 4, 64, 64), torch.randn(1, 48, 8, 8)

    def turn(x: Tensor) -> Tensor:
        return torch.rot90(x, 1, dims=(-2, -1))

    with torch.no_grad():
        plain = task.probabilities(image, air)
        plain_turned = task.probabilities(turn(image), turn(air))
        d4 = tta_mean(task.probabilities, image, air, "d4")
        d4_turned = tta_mean(task.probabilities, turn(image), turn(air), "d4")
    # The mean over the whole group commutes with turning the input; one pass does not.
    torch.testing.assert_close(d4_turned, turn(d4), atol=1e-5, rtol=1e-4)
    assert (plain_turned - turn(plain)).abs().max() > 1e-3
    torch.testing.assert_close(d4.sum(1), torch.ones(1, 64, 64))


def test_test_step_scores_the_augmented_probabilities(demo_root: Path, tmp_path: Path) -> None:
    seed_everything(0, verbose=False)
    task, datamodule = tiny(demo_root, tmp_path, preset="lite", test_tta="flip")
    datamodule.setup("test")
    batch = next(iter(datamodule.test_dataloader()))
    task.eval()
    with torch.no_grad():
        scores = task._augmented_scores(batch, "flip")
        probabilities = tta_mean(task.probabilities, batch["image"], batch["air"], "flip")
    assert torch.equal(scores, probabilities.argmax(1))
    first = trainer(tmp_path, epochs=1).test(task, datamodule)[0]
    task.hparams["test_tta"] = "none"
    plain = trainer(tmp_path, epochs=1).test(task, datamodule)[0]
    assert first["test_loss"] == pytest.approx(plain["test_loss"])  # the plain pass's loss
    assert first["test_OverallAccuracy"] != plain["test_OverallAccuracy"]
    with pytest.raises(DualStreamError, match="test_tta must be one of"):
        DualStreamSegmentation(test_tta="d8")  # type: ignore[arg-type]
