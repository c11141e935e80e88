"""The experiment baselines (majority class, random forest, plain CNN) on the Zion crop:
the same test pixels as the model, and scores with the task's definitions."""

from __future__ import annotations

import io
import json
import runpy
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from .conftest import ZION

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crop_config(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """zion.yaml pointed at the committed crop, with a 3 x 3 split of 32 px patches."""
    root = tmp_path_factory.mktemp("baselines")
    override = {
        "trainer": {"max_epochs": 1, "default_root_dir": str(root / "run")},
        "data": {
            "train": {"image": [str(ZION)], "mask": [str(ZION / "nlcd.tif")]},
            "split": {"grid": 3},
            "patch_size": 32,
            "length": 32,
            "batch_size": 8,
            "stats_path": str(root / "stats.json"),
        },
    }
    path = root / "crop.yaml"
    path.write_text(yaml.safe_dump(override))
    return ["--config", str(REPO / "experiments" / "zion.yaml"), "--config", str(path)]


def baseline(script: str, config: list[str], *options: str) -> dict[str, Any]:
    """What ``python experiments/<script> <config> <options>`` prints (its JSON result), run
    in this process as ``__main__``: a fresh interpreter would spend longer importing the
    stack than the script takes."""
    folder = REPO / "experiments"
    with pytest.MonkeyPatch.context() as patch, redirect_stdout(io.StringIO()) as out:
        patch.syspath_prepend(str(folder))  # the scripts import their sibling scoring.py
        patch.setattr(sys, "argv", [script, *config, *options])
        patch.chdir(REPO)
        runpy.run_path(str(folder / script), run_name="__main__")
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def check_definitions(result: dict[str, Any]) -> None:
    """Mean IoU is the macro mean; overall IoU the micro IoU, i.e. accuracy / (2 - accuracy)
    when every pixel gets one class (each error is one false positive and one false negative)."""
    iou = list(result["per_class_iou"].values())
    assert len(iou) == 8
    assert result["mean_iou"] == pytest.approx(np.mean(iou))
    accuracy = result["overall_accuracy"]
    assert 0 < result["overall_iou"] < accuracy <= 1
    assert result["overall_iou"] == pytest.approx(accuracy / (2 - accuracy), rel=1e-5)


def test_baselines_score_the_same_test_pixels(crop_config: list[str]) -> None:
    majority = baseline("majority_baseline.py", crop_config)
    forest = baseline(
        "rf_baseline.py", crop_config, "--trees", "10", "--depth", "8", "--pixels", "5000"
    )
    cnn = baseline("cnn_baseline.py", crop_config, "--epochs", "1", "--norm", "pixel")
    for result in (majority, forest, cnn):
        check_definitions(result)
    assert majority["pixels"] == forest["pixels"] == cnn["pixels"] > 1000
    assert forest["split"] == cnn["split"] == "test"
    # The majority class is predicted everywhere: its IoU is its share, i.e. the accuracy.
    share = majority["per_class_iou"][majority["majority_class"]]
    assert share == pytest.approx(majority["overall_accuracy"])
    assert sum(v > 0 for v in majority["per_class_iou"].values()) == 1
    # A per-pixel forest on the bands separates more than one class of the crop.
    assert forest["training_pixels"] == 5000
    assert sum(v > 0.1 for v in forest["per_class_iou"].values()) >= 2
    assert forest["mean_iou"] > majority["mean_iou"]
    assert cnn["parameters"] > 100_000 and len(cnn["class_weights"]) == 8
    assert cnn["model"] == "full-resolution CNN (1 epochs, pixel norm)"
