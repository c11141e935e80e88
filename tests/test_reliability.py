"""Nothing lost, nothing silently wrong: every command's outputs are refused when they are,
hold or lie inside an input (or are not a plain file or folder); inputs far from the
training data warn or are refused; what cannot be predicted right is refused."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from dualstream_geo.cli import main
from dualstream_geo.errors import DualStreamError
from dualstream_geo.inference import ScenePredictor

from .conftest import write_raster

REPO = Path(__file__).resolve().parents[1]


def digest(path: Path) -> str:
    if path.is_dir():
        return "|".join(f"{p}:{digest(p)}" for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(
    args: list[str], capsys: pytest.CaptureFixture[str], named: str, kept: list[Path]
) -> None:
    """``args`` exit 2 with one error line containing ``named``; ``kept`` are unchanged."""
    before = {path: digest(path) for path in kept}
    capsys.readouterr()
    assert main(args) == 2, args
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("dualstream-geo: error: ")]
    assert len(errors) == 1 and named in errors[0], err
    assert {path: digest(path) for path in kept} == before


def test_every_command_refuses_outputs_that_are_or_hold_inputs(
    checkpoint: Path,
    scene: dict[str, Path],
    demo_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # predict: the checkpoint, an image file, a file inside an input folder, a device.
    copy = tmp_path / "model.ckpt"
    shutil.copy(checkpoint, copy)
    predict = ["predict", "--checkpoint", str(copy), "--image", str(scene["image"])]
    predict += ["--gems", str(scene["gems"]), "--air-pollution", str(scene["air"])]
    image = scene["file"]
    cases: list[tuple[list[str], str]] = [
        (["--output", str(copy), "--overwrite"], "is one of the inputs"),
        (["--output", str(image), "--overwrite"], "is one of the inputs"),
        (["--output", str(scene["image"] / ".." / "image" / image.name)], "is one of the inputs"),
        (["--output", str(scene["gems"] / "map.tif")], "lies inside the input folder"),
        (["--output", os.devnull, "--overwrite"], "is not a regular file"),
        (["--output", ""], "--output is empty"),
        (["--output", str(tmp_path / "missing" / "map.tif")], "does not exist"),
    ]
    link = tmp_path / "link.ckpt"
    link.symlink_to(copy)
    cases.append((["--output", str(link), "--overwrite"], "is one of the inputs"))
    for extra, named in cases:
        refused([*predict, *extra], capsys, named, [copy, image])
    assert not list(tmp_path.glob("missing*")) and not list(scene["gems"].glob("map.tif*"))

    # evaluate: the folder holding both inputs (with --overwrite), an input file, ".".
    folder = tmp_path / "eval"
    folder.mkdir()
    prediction, reference = folder / "pred.tif", folder / "label.tif"
    shutil.copy(image, prediction)
    shutil.copy(next((scene["image"].parent / "label").glob("*.tif")), reference)
    evaluate = ["evaluate", "--prediction", str(prediction), "--reference", str(reference)]
    for extra, named in (
        (["--output", str(folder), "--overwrite"], "holds the input"),
        (["--output", str(prediction), "--overwrite"], "is a file; give a folder"),
        (["--output", ".", "--overwrite"], "is the working folder"),
        (["--output", os.devnull, "--overwrite"], "is not a regular folder"),
    ):
        refused([*evaluate, *extra], capsys, named, [folder])
    others = tmp_path / "notes"
    others.mkdir()
    (others / "thesis.txt").write_text("years of work")
    refused([*evaluate, "--output", str(others), "--overwrite"], capsys, "no report.json", [others])

    # import-original: the weights themselves.
    weights = tmp_path / "original.pth"
    torch.save({"a": torch.zeros(1)}, weights)
    for extra, named in (
        (["--output", str(weights), "--overwrite"], "is one of the inputs"),
        (["--output", os.devnull, "--overwrite"], "is not a regular file"),
    ):
        refused(["import-original", str(weights), *extra], capsys, named, [weights])

    # demo --out: a file, a device.
    notes = others / "thesis.txt"
    refused(["demo", "--quick", "--out", str(notes)], capsys, "is a file", [others])
    refused(["demo", "--quick", "--out", os.devnull], capsys, "is not a regular folder", [others])

    # fit: a config file the run would overwrite (checkpoints/config.yaml), initial weights
    # that would become best.ckpt, a device as the run folder.
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    config = run / "checkpoints" / "config.yaml"
    shutil.copy(REPO / "experiments" / "demo.yaml", config)
    fit = ["fit", "--config", str(config), f"--data.root={demo_root}"]
    fit += [f"--data.stats_path={tmp_path / 'stats.json'}"]
    refused([*fit, f"--trainer.default_root_dir={run}"], capsys, "is one of the inputs", [config])
    best = run / "checkpoints" / "best.ckpt"
    shutil.copy(copy, best)
    other = ["fit", "--config", str(REPO / "experiments" / "demo.yaml"), f"--data.root={demo_root}"]
    other += [f"--trainer.default_root_dir={run}", f"--model.weights={best}"]
    refused(other, capsys, "is one of the inputs", [best])
    refused([*fit, f"--trainer.default_root_dir={os.devnull}"], capsys, "not a regular", [config])
    assert not (tmp_path / "stats.json").exists()


def test_unwritable_output_folders_are_one_line(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder that takes no new file (read-only; as the superuser, only a read-only mount
    or an immutable folder refuses, which the probe file detects as well)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        probe = locked / "probe"
        try:
            probe.write_text("")
            probe.unlink()
            pytest.skip("this user writes into read-only folders (superuser)")
        except PermissionError:
            pass
        predict = ["predict", "--checkpoint", str(checkpoint), "--image", str(scene["image"])]
        predict += ["--gems", str(scene["gems"]), "--air-pollution", str(scene["air"])]
        refused([*predict, "--output", str(locked / "map.tif")], capsys, "is not writable", [])
    finally:
        locked.chmod(0o700)


def shifted(
    scene: dict[str, Path], folder: Path, change: Callable[[np.ndarray], np.ndarray]
) -> Path:
    """The scene's image with its values changed (and the nodata collar kept)."""
    with rasterio.open(scene["file"]) as src:
        data, profile = src.read(), src.profile
    valid = data != src.nodata
    changed = change(data.astype(np.float64))
    dtype = "float32" if changed.dtype.kind == "f" else changed.dtype.name
    out = np.where(valid, changed, -9999 if dtype != "uint8" else 0).astype(dtype)
    profile |= {"dtype": dtype, "nodata": -9999 if dtype != "uint8" else 0}
    path = folder / "image.tif"
    folder.mkdir()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(out)
    return path


def test_values_far_from_the_training_data_warn_or_are_refused(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    predictor = ScenePredictor.from_checkpoint(checkpoint, tile=128)
    aux = [scene["gems"], scene["air"]]
    eight_bit = shifted(
        scene, tmp_path / "byte", lambda d: np.clip(d / 16, 1, 255).astype(np.uint8)
    )
    reflectance = shifted(scene, tmp_path / "refl", lambda d: d / 10000)
    offset = shifted(scene, tmp_path / "int16", lambda d: (d - 20000).astype(np.int16))
    for path in (eight_bit, reflectance, offset):
        with pytest.raises(DualStreamError, match="cannot be the training data's sensor"):
            predictor.dataset([path], aux)
    brighter = shifted(scene, tmp_path / "bright", lambda d: d * 3)
    with pytest.warns(UserWarning, match=r"band means far from the training data: blue"):
        predictor.dataset([brighter], aux)
    with pytest.warns(UserWarning, match="far from the training data"):
        predictor.dataset([reflectance], aux, allow_shift=True)


def test_rotated_image_is_refused(tmp_path: Path) -> None:
    rotated = Affine(9.8, 1.7, 300_000, 1.7, -9.8, 4_100_000)
    write_raster(tmp_path / "r.tif", np.ones((4, 32, 32), np.uint16), "EPSG:32612", rotated)
    from dualstream_geo.data import SatelliteImage

    with pytest.raises(DualStreamError, match=r"r.tif: the image has a rotated geotransform"):
        SatelliteImage(tmp_path)
