"""Scene-level accuracy assessment: exact counts on known rasters, any-CRS references, the
report files, the CLI and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from dualstream_geo.cli import main
from dualstream_geo.data import DEMO_CLASS_MAP, LandCoverMask
from dualstream_geo.data.grid import Grid
from dualstream_geo.errors import DualStreamError
from dualstream_geo.evaluation import Accuracy, evaluate

from .conftest import write_raster

UTM = "EPSG:32652"


def test_accuracy_measures_from_a_confusion_matrix() -> None:
    confusion = np.array([[50, 10, 0, 0], [5, 30, 5, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    a = Accuracy.from_confusion(confusion)
    assert a.iou[0] == pytest.approx(50 / 65) and a.iou[1] == pytest.approx(30 / 50)
    assert a.iou[2] == 0  # predicted 5 times, never in the reference
    assert np.isnan(a.iou[3])  # neither in the reference nor predicted: left out of the mean
    assert a.precision[2] == 0 and a.recall[0] == pytest.approx(50 / 60)
    assert a.f1[1] == pytest.approx(2 * 30 / (40 + 40))
    assert a.overall_accuracy == pytest.approx(80 / 100)
    assert a.mean_iou == pytest.approx((50 / 65 + 30 / 50 + 0 / 5) / 3)
    expected = (60 * 55 + 40 * 40 + 0 * 5) / 100**2
    assert a.kappa == pytest.approx((0.8 - expected) / (1 - expected))


def known_pair(folder: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """A 60 x 80 prediction (10 m, nodata 255 in one corner) and a larger reference on the
    same CRS with raw codes (11, 90, 41, an unmapped 77, nodata 0), offset by whole pixels."""
    rng = np.random.default_rng(3)
    predicted = rng.integers(0, 3, (60, 80)).astype(np.uint8)
    predicted[:5, :7] = 255
    transform = Affine(10.0, 0, 500_000.0, 0, -10.0, 4_000_000.0)
    prediction = write_raster(folder / "pred.tif", predicted[None], UTM, transform, nodata=255)
    with rasterio.open(prediction, "r+") as dst:
        dst.update_tags(class_names=json.dumps(["water", "target", "forest"]))
    truth = rng.integers(0, 3, (60, 80))
    agree = rng.random((60, 80)) < 0.6
    truth[agree] = predicted[agree].clip(0, 2)  # mostly right, as a real map
    raw = np.array([11, 90, 41])[truth]
    raw[10:12, :] = 77  # unmapped: excluded
    raw[20:22, 30:40] = 0  # reference nodata: excluded
    big = np.zeros((70, 90), np.uint8)
    big[3:63, 4:84] = raw
    ref_transform = Affine(10.0, 0, 500_000.0 - 40.0, 0, -10.0, 4_000_000.0 + 30.0)
    reference = write_raster(folder / "ref.tif", big[None], UTM, ref_transform, nodata=0)
    valid = (predicted != 255) & (raw != 77) & (raw != 0)
    return prediction, reference, np.where(valid, truth, -1), predicted


def test_exact_counts_areas_and_error_map(tmp_path: Path) -> None:
    prediction, reference, truth, predicted = known_pair(tmp_path)
    out = tmp_path / "report"
    result = evaluate(prediction, reference, out, class_map={11: 0, 90: 1, 41: 2})
    valid = truth >= 0
    expected = np.zeros((3, 3), np.int64)
    np.add.at(expected, (truth[valid], predicted[valid].astype(int)), 1)
    np.testing.assert_array_equal(result.accuracy.confusion, expected)
    assert result.compared_pixels == valid.sum()
    assert result.excluded_pixels == (~valid).sum()
    # 10 m pixels: 0.01 ha each, counted over the compared pixels.
    counts = np.bincount(predicted[valid], minlength=3)
    np.testing.assert_allclose(result.area_ha["prediction"], counts * 0.01)
    report = json.loads((out / "report.json").read_text())
    assert report["class_names"] == ["water", "target", "forest"]
    assert report["confusion_matrix"] == expected.tolist()
    for key in ("iou", "precision", "recall", "f1", "overall_accuracy", "mean_iou", "kappa"):
        assert key in report
    assert report["overall_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
    assert "| water |" in (out / "report.md").read_text()
    assert (out / "confusion.png").stat().st_size > 1000
    with rasterio.open(out / "errors.tif") as errors:
        assert errors.count == 3 and errors.transform == rasterio.open(prediction).transform
        assert errors.descriptions == ("water", "target", "forest")
        codes = errors.read()
    assert (codes[:, ~valid] == 255).all()
    row, col = np.argwhere(valid & (predicted == 1) & (truth == 1))[0]
    assert codes[1, row, col] == 1  # true positive of "target"
    row, col = np.argwhere(valid & (predicted == 1) & (truth == 0))[0]
    assert codes[1, row, col] == 2 and codes[0, row, col] == 3  # FP of target, FN of water
    assert not list(tmp_path.glob(".*partial"))


def test_reference_in_another_crs_uses_the_join_reader(demo_root: Path, tmp_path: Path) -> None:
    """The demo's held-out labels (EPSG:5186, their own grid) against themselves read onto
    the image grid: a perfect prediction, whatever the reprojection."""
    label_dir = demo_root / "test" / "label"
    with rasterio.open(demo_root / "test" / "image" / "scene_b.tif") as image:
        grid = Grid(image.crs, image.transform, image.height, image.width)
    mask = LandCoverMask(label_dir, class_map=DEMO_CLASS_MAP)
    classes = mask.to_classes(mask.read(list(mask.index.filepath), grid, Resampling.nearest)[0])
    perfect = np.where(classes == 255, 255, classes).astype(np.uint8)
    prediction = write_raster(
        tmp_path / "perfect.tif", perfect[None], image.crs.to_string(), image.transform, nodata=255
    )
    label = next(label_dir.glob("*.tif"))
    result = evaluate(prediction, label, tmp_path / "out", class_map=DEMO_CLASS_MAP)
    assert result.accuracy.overall_accuracy == 1.0 and result.compared_pixels > 10_000
    assert result.accuracy.kappa == pytest.approx(1.0)


def test_evaluate_cli_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prediction, reference, _, _ = known_pair(tmp_path)
    class_map = tmp_path / "map.yaml"
    class_map.write_text("11: 0\n90: 1\n41: 2\n")
    args = ["evaluate", "--prediction", str(prediction), "--reference", str(reference)]
    assert main([*args, "--output", str(tmp_path / "r"), "--class-map", str(class_map)]) == 0
    assert "overall accuracy" in capsys.readouterr().out
    # A non-empty report folder is kept without --overwrite.
    assert main([*args, "--output", str(tmp_path / "r"), "--class-map", str(class_map)]) == 2
    assert (tmp_path / "r" / "report.json").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    assert main([*args, "--output", str(tmp_path / "b"), "--class-map", str(bad)]) == 2
    two_bands = write_raster(
        tmp_path / "probs.tif", np.zeros((2, 8, 8), np.uint8), UTM, Affine(10, 0, 5e5, 0, -10, 4e6)
    )
    assert (
        main(
            [
                "evaluate",
                "--prediction",
                str(two_bands),
                "--reference",
                str(reference),
                "--output",
                str(tmp_path / "c"),
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "evaluate",
                "--prediction",
                str(tmp_path / "none.tif"),
                "--reference",
                str(reference),
                "--output",
                str(tmp_path / "d"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("dualstream-geo: error: ") for line in err)
    assert "is not empty; pass --overwrite" in err[0] and "map" not in err[0]
    assert "expected a YAML mapping" in err[1] and "one band of class indices" in err[2]
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    with pytest.raises(DualStreamError, match="does not exist"):
        evaluate(tmp_path / "none.tif", reference, tmp_path / "e")
