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
from dualstream_geo.precision import native_bf16

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

    # evaluate --sample: the folder holding the sample; sample-design: the map itself.
    sample = folder / "points.gpkg"
    sample.write_bytes(b"")
    sampled = ["evaluate", "--prediction", str(prediction), "--sample", str(sample)]
    refused([*sampled, "--output", str(folder), "--overwrite"], capsys, "holds the input", [folder])
    design = ["sample-design", str(prediction), "--total", "10"]
    for extra, named in (
        (["--output", str(prediction), "--overwrite"], "is one of the inputs"),
        (["--output", os.devnull, "--overwrite"], "is not a regular file"),
    ):
        refused([*design, *extra], capsys, named, [folder])

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


def test_evaluate_refuses_what_it_cannot_score(
    scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A reference of another place, raw values without a class map, a class map sending a
    value to a class the map does not have, a zero-byte or corrupt prediction: one line,
    no report; a report's JSON is strict (no NaN)."""
    label = next((scene["image"].parent / "label").glob("*.tif"))
    with rasterio.open(label) as src:
        raw, profile = src.read(1), src.profile
    prediction = tmp_path / "pred.tif"
    classes = (raw == 90).astype(np.uint8)
    profile |= {"dtype": "uint8", "nodata": 255, "count": 1, "tiled": True, "compress": "deflate"}
    profile |= {"blockxsize": 64, "blockysize": 64}
    with rasterio.open(prediction, "w", **profile) as dst:
        dst.write(classes[None])
        dst.update_tags(class_names='["background", "target"]')  # as predict writes it
    far = tmp_path / "far.tif"
    write_raster(far, np.ones((1, 8, 8), np.uint8), "EPSG:4326", Affine(0.1, 0, 10, 0, -0.1, 10))
    zero = tmp_path / "zero.tif"
    zero.write_bytes(b"")
    corrupt = tmp_path / "corrupt.tif"
    data = bytearray(prediction.read_bytes())
    middle = len(data) // 3
    data[middle : 2 * middle] = (
        np.random.default_rng(0).integers(0, 256, middle).astype(np.uint8).tobytes()
    )
    corrupt.write_bytes(bytes(data))
    out = str(tmp_path / "report")
    for prediction_path, reference, extra, named in (
        (prediction, far, [], "does not overlap --prediction"),
        (prediction, label, [], "values that are no class of the prediction"),
        (zero, label, [], "not a readable raster"),
        (corrupt, label, [], "corrupt or unreadable raster"),
    ):
        args = ["evaluate", "--prediction", str(prediction_path), "--reference", str(reference)]
        refused([*args, *extra, "--output", out], capsys, named, [])
    mapping = tmp_path / "map.yaml"
    mapping.write_text("90: 1\n41: 5\n")
    args = ["evaluate", "--prediction", str(prediction), "--reference", str(label)]
    refused(
        [*args, "--class-map", str(mapping), "--output", out], capsys, "sends 41 to class 5", []
    )
    assert not Path(out).exists()
    mapping.write_text("90: 1\n11: 0\n41: 0\n52: 0\n71: 0\n95: 0\n")
    assert main([*args, "--class-map", str(mapping), "--output", out]) == 0
    text = (Path(out) / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_corrupt_image_and_write_failures_are_one_line(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    """Random bytes inside a compressed image (header intact) stop before any window; a
    write that fails (here the file-size limit of the process, as a full disk would) is one
    line, with the finished rows kept for --resume and no output under the final name."""
    import subprocess
    import sys

    broken = tmp_path / "broken"
    broken.mkdir()
    data = bytearray(scene["file"].read_bytes())
    middle = len(data) // 3
    data[middle : 2 * middle] = (
        np.random.default_rng(1).integers(0, 256, middle).astype(np.uint8).tobytes()
    )
    (broken / scene["file"].name).write_bytes(bytes(data))
    predictor = ScenePredictor.from_checkpoint(checkpoint, tile=128)
    with pytest.raises(DualStreamError, match=r"scene_b.tif: corrupt or unreadable raster"):
        predictor.dataset([broken], [scene["gems"], scene["air"]])

    output = tmp_path / "map.tif"
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))\n"
        "from dualstream_geo.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["predict", "--checkpoint", str(checkpoint), "--image", str(scene["image"])]
    args += ["--gems", str(scene["gems"]), "--air-pollution", str(scene["air"])]
    args += ["--output", str(output), "--tile", "128", "--kind", "probabilities"]
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("dualstream-geo")]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(errors) == 1 and "map.tif: writing" in errors[0], done.stderr[-2000:]
    assert "rerun the same command with --resume" in errors[0]
    assert not output.exists() and not list(tmp_path.glob("map.tif.cog.tmp"))
    assert not (tmp_path / "map.tif.lock").exists()


def test_stac_inputs_that_cannot_be_read_are_one_line(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import datetime
    import json
    import socket

    import pystac

    from .http_server import serve

    item = pystac.Item(
        "scene", {"type": "Point", "coordinates": [0, 0]}, None, datetime.datetime(2020, 1, 1), {}
    )
    item.add_asset("blue", pystac.Asset(str(tmp_path / "missing_blue.tif")))
    (tmp_path / "missing.json").write_text(json.dumps(item.to_dict()))
    (tmp_path / "catalog.json").write_text(json.dumps({"type": "Catalog", "id": "c"}))
    (tmp_path / "list.json").write_text("[1, 2]")
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    base = ["predict", "--checkpoint", str(checkpoint), "--assets", "blue"]
    base += ["--gems", str(scene["gems"]), "--air-pollution", str(scene["air"])]
    base += ["--output", str(tmp_path / "map.tif")]
    with serve(tmp_path / "served") as (url, _):
        for source, named in (
            (tmp_path / "missing.json", "asset " + str(tmp_path / "missing_blue.tif")),
            (tmp_path / "catalog.json", "its JSON is a Catalog"),
            (tmp_path / "list.json", "its JSON is a list"),
            (f"http://127.0.0.1:{closed}/item.json", "Connection refused"),
            (f"{url}/nothing.json", "not a readable STAC Item"),
        ):
            refused([*base, "--image", str(source)], capsys, named, [])
    assert not list(tmp_path.glob("map.tif*"))


def test_settings_that_would_fail_late_or_run_away_are_refused_first(
    demo_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cores = os.cpu_count() or 1
    fit = ["fit", "--config", str(REPO / "experiments" / "demo.yaml"), f"--data.root={demo_root}"]
    fit += [f"--trainer.default_root_dir={tmp_path / 'run'}"]
    for flag, named in (
        ("--trainer.devices=0", "--trainer.devices must be >= 1"),
        ("--trainer.devices=-2", "--trainer.devices must be >= 1"),
        (f"--trainer.devices={cores + 100}", "CPU core(s)"),
        ("--trainer.max_epochs=-5", "--trainer.max_epochs must be >= 1"),
        ("--data.patch_size=0", "patch_size must be a positive multiple of 32"),
        ("--model.lr=-1", "lr must be > 0"),
        ("--data.aux=[{name: dem, paths: [/nowhere/dem.tif]}]", "aux source 'dem': /nowhere"),
    ):
        refused([*fit, flag], capsys, named, [])
    if not torch.cuda.is_available():
        refused([*fit, "--trainer.accelerator=gpu"], capsys, "this machine has no GPU", [])
    assert not (tmp_path / "run").exists()
    # test / validate score a trained model: never the random weights of a fresh one.
    test = ["test", "--config", str(REPO / "experiments" / "demo.yaml"), f"--data.root={demo_root}"]
    test += [f"--trainer.default_root_dir={tmp_path / 'run'}"]
    refused(test, capsys, "give --ckpt_path CHECKPOINT", [])
    refused([*test, "--ckpt_path=last"], capsys, "--ckpt_path last: no", [])
    # Unknown commands and bad YAML name what is wrong.
    refused(["bogus"], capsys, "unknown command 'bogus'", [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_epochs: [1\n")
    refused(["fit", "--config", str(bad)], capsys, f"--config {bad}: not valid YAML", [])
    refused(["evaluate", "--prediction"], capsys, "expected one argument", [])


def test_predict_refuses_other_formats_runaway_processes_and_waits_with_a_limit(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    from dualstream_geo.inference.distributed import _free_port

    args = ["predict", "--checkpoint", str(checkpoint), "--image", str(scene["image"])]
    args += ["--gems", str(scene["gems"]), "--air-pollution", str(scene["air"])]
    refused([*args, "--output", str(tmp_path / "map.png")], capsys, "give a .tif file name", [])
    if not torch.cuda.is_available():
        many = str((os.cpu_count() or 1) + 50)
        refused([*args, "--output", str(tmp_path / "m.tif"), "--devices", many], capsys, "CPU", [])
        if native_bf16("cpu"):
            assert ScenePredictor.from_checkpoint(checkpoint, precision="bf16").bf16
        else:
            with pytest.warns(UserWarning, match="has no native bf16"):
                assert not ScenePredictor.from_checkpoint(checkpoint, precision="bf16").bf16
        assert not ScenePredictor.from_checkpoint(checkpoint, precision="32").bf16
    # WORLD_SIZE left in the environment: the rank says what it waits for, then gives up.
    env = os.environ | {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    env |= {"MASTER_PORT": str(_free_port()), "DUALSTREAM_JOIN_TIMEOUT": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "dualstream_geo", *args, "--output", str(tmp_path / "w.tif")],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "waiting up to 3 s for the other ranks" in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("dualstream-geo: error")]
    assert len(errors) == 1 and "did not join" in errors[0], done.stderr[-2000:]
    assert not list(tmp_path.glob("w.tif*"))


def test_sigterm_during_predict_unwinds(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    output = tmp_path / "map.tif"
    args = ["predict", "--checkpoint", str(checkpoint), "--image", str(scene["image"])]
    args += ["--gems", str(scene["gems"]), "--air-pollution", str(scene["air"])]
    args += ["--output", str(output), "--tile", "64", "--overlap", "0.5", "--batch-size", "1"]
    child = subprocess.Popen(
        [sys.executable, "-m", "dualstream_geo", *args], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while not Path(f"{output}.partial.tif").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert Path(f"{output}.partial.tif").exists(), "prediction never started"
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 143, err[-2000:]
    assert "dualstream-geo: terminated" in err
    assert not output.exists() and not Path(f"{output}.lock").exists()
