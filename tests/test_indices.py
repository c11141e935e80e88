"""Spectral indices appended to the image: values, statistics, the datamodule's channels,
checkpoints that predict from the bands alone, and bad settings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml

from dualstream_geo.cli import main
from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.data.indices import SpectralIndices
from dualstream_geo.data.layout import SceneSet
from dualstream_geo.data.normalize import BandStats, DatasetStats, Normalize
from dualstream_geo.data.settings import SplitSettings
from dualstream_geo.data.spec import ClassSpec, ImageSpec
from dualstream_geo.errors import DualStreamError
from dualstream_geo.inference import ScenePredictor

from .conftest import ZION

REPO = Path(__file__).resolve().parents[1]
BANDS = ("blue", "green", "red", "nir")
BAND_FILES = ("_b2", "_b3", "_b4", "_b5")


def zion_bands() -> tuple[np.ndarray, np.ndarray]:
    """The crop's raw (4, H, W) bands as float64 and its valid-pixel mask (H, W)."""
    raw = np.stack(
        [rasterio.open(ZION / f"landsat{name}.tif").read(1) for name in BAND_FILES]
    ).astype(np.float64)
    return raw, (raw != 65535).all(0)


def test_spectral_indices_are_normalised_differences_of_the_named_bands() -> None:
    # Pixels: a vegetated one, water (green > nir), both bands 0, a negative sum.
    blue = torch.tensor([500.0, 900.0, 0.0, 10.0])
    green = torch.tensor([800.0, 1200.0, 0.0, -30.0])
    red = torch.tensor([600.0, 700.0, 0.0, 5.0])
    nir = torch.tensor([3000.0, 400.0, 0.0, 20.0])
    raw = torch.stack([blue, green, red, nir])[:, None]  # (4, 1, 4)
    values = SpectralIndices(["ndvi", "NDWI"], BANDS)(raw)
    assert values.shape == (2, 1, 4)
    ndvi, ndwi = values[0, 0], values[1, 0]
    assert ndvi[:2].tolist() == pytest.approx([2400 / 3600, -300 / 1100])
    assert ndwi[:2].tolist() == pytest.approx([-2200 / 3800, 800 / 1600])
    # Undefined or out-of-range ratios stay finite and within [-1, 1].
    assert torch.isfinite(values).all() and values.abs().max() <= 1
    assert ndvi[2] == 0 and ndwi[3] == 1  # (-30 - 20) / (-30 + 20) = 5, clamped
    # Bands are found by name, whatever their order.
    reordered = SpectralIndices(["ndvi"], ("nir", "red", "green", "blue"))(raw.flip(0))
    assert torch.equal(reordered[0], values[0])


def test_datamodule_appends_indices_standardised_with_their_statistics(tmp_path: Path) -> None:
    settings: dict[str, Any] = {
        "train": SceneSet(image=[str(ZION)], mask=[str(ZION / "nlcd.tif")]),
        "classes": ClassSpec(
            names=tuple(f"class_{v}" for v in range(1, 9)),
            map={v: v - 1 for v in range(1, 9)},
            unmapped="ignore",
        ),
        "split": SplitSettings(grid=3),
        "patch_size": 64,
        "batch_size": 4,
        "length": 4,
        "stats_path": str(tmp_path / "stats.json"),
    }
    image_spec = ImageSpec(
        bands=BANDS, band_files=BAND_FILES, nodata=65535, indices=("ndvi", "ndwi")
    )
    datamodule = DualStreamDataModule(image=image_spec, **settings)
    datamodule.setup("fit")
    stats = datamodule.stats
    assert stats is not None and stats.indices is not None
    assert stats.index_names == ["ndvi", "ndwi"]
    # The crop is smaller than a statistics read: its statistics are over every valid pixel.
    raw, valid = zion_bands()
    blue, green, red, nir = raw[:, valid]
    ndvi, ndwi = (nir - red) / (nir + red), (green - nir) / (green + nir)
    assert stats.indices.mean == pytest.approx([ndvi.mean(), ndwi.mean()], abs=1e-6)
    assert stats.indices.std == pytest.approx([ndvi.std(), ndwi.std()], abs=1e-6)
    assert DatasetStats.load(tmp_path / "stats.json") == stats

    batch = next(iter(datamodule.train_dataloader()))
    image = batch["image"]
    assert image.shape == (4, 6, 64, 64)
    mean = torch.tensor(stats.image.mean)[:, None, None]
    std = torch.tensor(stats.image.std)[:, None, None]
    bands = (image[:, :4] * std + mean).double()
    expected = (bands[:, 3] - bands[:, 2]) / (bands[:, 3] + bands[:, 2])
    appended = image[:, 4].double() * stats.indices.std[0] + stats.indices.mean[0]
    keep = batch["valid"]
    assert keep.any()
    assert torch.allclose(appended[keep], expected[keep], atol=1e-4)

    # A statistics file computed without these indices is not reused silently.
    plain = DualStreamDataModule(image=replace(image_spec, indices=()), **settings)
    with pytest.raises(DualStreamError, match=r"stats_path .*stats.json: statistics are computed "):
        plain.setup("fit")


def test_normalize_zeroes_indices_of_nodata_pixels() -> None:
    stats = DatasetStats(
        BandStats(list(BANDS), [1000.0] * 4, [100.0] * 4, [0.0] * 4, [1e4] * 4),
        None,
        BandStats(["ndwi"], [-0.2], [0.1], [-1.0], [1.0]),
    )
    image = torch.full((4, 2, 2), 1000.0)
    image[1] = 1500.0  # green above nir: NDWI 0.2, i.e. (0.2 + 0.2) / 0.1 = 4 standardised
    valid = torch.tensor([[True, False], [True, True]])
    sample = Normalize(stats)({"image": image, "valid": valid})
    out = sample["image"]
    assert isinstance(out, torch.Tensor) and out.shape == (5, 2, 2)
    assert out[4, 0, 0].item() == pytest.approx(4.0)
    assert out[:, 0, 1].abs().max() == 0


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        (["ndxi"], "indices: unknown index 'ndxi'"),
        (["mndwi"], "indices: mndwi needs bands named green and swir"),
        (["ndvi", "NDVI"], "names an index twice"),
    ],
)
def test_bad_indices_are_one_clear_error(indices: list[str], message: str) -> None:
    with pytest.raises(DualStreamError, match=message):
        DualStreamDataModule(train=None, image=ImageSpec(bands=BANDS, indices=tuple(indices)))


def test_checkpoint_with_indices_predicts_from_the_bands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """zion.yaml (NDVI and NDWI after the 4 bands) on the crop: a checkpoint reads the 4
    band files and appends the indices itself."""
    override = {
        "trainer": {"max_epochs": 1, "default_root_dir": str(tmp_path / "run")},
        "data": {
            "train": {"image": [str(ZION)], "mask": [str(ZION / "nlcd.tif")]},
            "split": {"grid": 3},
            "patch_size": 32,
            "length": 16,
            "batch_size": 8,
            "stats_path": str(tmp_path / "stats.json"),
        },
    }
    crop = tmp_path / "crop.yaml"
    crop.write_text(yaml.safe_dump(override))
    config = ["--config", str(REPO / "experiments" / "zion.yaml"), "--config", str(crop)]
    # An index the bands cannot give stops before any work.
    assert main(["fit", *config, "--data.image.indices=[ndvi,mndwi]"]) == 2
    assert "mndwi needs bands named green and swir" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()

    assert main(["fit", *config]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    predictor = ScenePredictor.from_checkpoint(checkpoint, tile=128)
    assert predictor.spec.image.bands == BANDS
    assert predictor.spec.channel_names == (*BANDS, "ndvi", "ndwi")
    assert predictor.model.in_channels == 6
    output = predictor.predict([ZION], None, tmp_path / "map.tif")
    with rasterio.open(output) as written, rasterio.open(ZION / "landsat_b2.tif") as band:
        assert (written.crs, written.transform, written.shape) == (
            band.crs,
            band.transform,
            band.shape,
        )
        classes = written.read(1)
    _, valid = zion_bands()
    assert classes[valid].max() < 8 and (classes[~valid] == 255).all()
