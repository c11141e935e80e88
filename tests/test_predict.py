"""Whole-scene inference: grid exactness, nodata, blending, resume, TTA, COG output, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from matplotlib.image import imread

from dualstream_geo.cli import main
from dualstream_geo.errors import DualStreamError
from dualstream_geo.inference import ScenePredictor, strips, tta_transforms, window_weights
from dualstream_geo.inference.tiling import Window, lattice_layout, lattice_phase

from .conftest import LITE_B0, write_raster


def predict(checkpoint: Path, scene: dict[str, Path], output: Path, **kwargs: object) -> Path:
    options = {
        k: kwargs.pop(k)
        for k in list(kwargs)
        if k in ("tile", "overlap", "blend", "tta", "batch_size")
    }
    predictor = ScenePredictor.from_checkpoint(checkpoint, **options)  # type: ignore[arg-type]
    return predictor.predict([scene["image"]], [scene["gems"], scene["air"]], output, **kwargs)  # type: ignore[arg-type]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_windows_cover_and_snap_to_edges() -> None:
    rows = strips(300, 170, tile=128, overlap=0.25)
    assert [s[0].row for s in rows] == [0, 96, 172]
    assert [w.col for w in rows[0]] == [0, 42]
    assert strips(50, 60, tile=128, overlap=0.25) == [[Window(0, 0, 128)]]
    weights = window_weights(Window(0, 42, 128), 300, 170, "hann")
    assert weights[0, -1] == 1.0 and weights[-1, 0] < 0.01  # flat on the scene's edges only


def test_context_margins_are_never_kept_except_on_scene_edges() -> None:
    """A window's outer ``margin`` px get weight 0 unless they lie on the scene's edge; the
    stride keeps every pixel at least ``margin`` px inside some window."""
    rows = strips(700, 700, tile=256, overlap=0.1, margin=32)
    starts = [s[0].row for s in rows]
    assert max(b - a for a, b in zip(starts, starts[1:], strict=False)) <= 256 - 2 * 32
    inner = window_weights(Window(200, 200, 256), 700, 700, "hann", margin=32)
    assert (inner[:32] == 0).all() and (inner[:, -32:] == 0).all() and inner[128, 128] > 0.9
    edge = window_weights(Window(0, 0, 256), 700, 700, "hann", margin=32)
    assert (edge[:32, :32] == 1).all() and (edge[-32:] == 0).all()
    # Every pixel of the scene gets a positive total weight.
    total = np.zeros((700, 700))
    for strip in rows:
        for w in strip:
            total[w.row : w.row + 256, w.col : w.col + 256] += window_weights(
                w, 700, 700, "hann", 32
            )
    assert total.min() > 0


def lattice_kept(layout_windows: list[Window], margin: int, height: int, width: int) -> np.ndarray:
    """How many windows keep each pixel of a ``height`` x ``width`` scene."""
    kept = np.zeros((height, width), dtype=int)
    for w in layout_windows:
        rows = slice(max(w.row + margin, 0), max(w.row + w.size - margin, 0))
        cols = slice(max(w.col + margin, 0), max(w.col + w.size - margin, 0))
        kept[rows, cols] += 1
    return kept


@pytest.mark.parametrize(("tile", "margin"), [(256, 32), (512, 64), (128, 48)])
def test_lattice_windows_are_anchored_in_the_crs_and_keep_every_pixel(
    tile: int, margin: int
) -> None:
    """Windows of a local-context model start on 32 px cells counted from the CRS origin,
    reach past the scene's edges and keep every pixel in some window's centre; the same
    scene with a 300 px collar (another extent of the same grid) gets windows at the same
    map positions."""
    transform = Affine(30.0, 0.0, 301905.0, 0.0, -30.0, 4154085.0)
    collared = transform * Affine.translation(-300, -300)
    assert lattice_phase(transform, 32) == (6, 16) and lattice_phase(collared, 32) == (18, 28)
    for grid, height, width in ((transform, 700, 500), (collared, 1300, 1100)):
        layout = lattice_layout(height, width, grid, tile, 0.34, margin, 32)
        assert layout.lattice and layout.tile == tile and layout.margin == margin
        for w in layout.windows:
            x, y = grid * (w.col, w.row)
            assert round(x / 30.0) % 32 == 0 and round(y / 30.0) % 32 == 0
        first = layout.windows[0]
        assert -margin - 32 < first.row <= -margin and -margin - 32 < first.col <= -margin
        assert lattice_kept(layout.windows, margin, height, width).min() >= 1
        weights = layout.weights(first, height, width, "hann")
        assert (weights[:margin] == 0).all() and (weights[:, :margin] == 0).all()  # no flat edge


def test_lattice_one_window_covers_the_scene_with_its_margin() -> None:
    transform = Affine(10.0, 0.0, 1000.0, 0.0, -10.0, 5000.0)
    layout = lattice_layout(300, 170, transform, 4096, 0.34, 64, 32)
    [[window]] = layout.strips
    assert window.size % 32 == 0 and window.size <= 300 + 2 * 64 + 2 * 32
    assert window.row <= -64 and window.row + window.size - 64 >= 300
    assert window.col <= -64 and window.col + window.size - 64 >= 170
    with pytest.raises(ValueError, match="multiple of 32"):
        lattice_layout(300, 170, transform, 100, 0.34, 16, 32)


def test_tta_transforms_invert() -> None:
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    for tta, count in (("none", 1), ("flip", 3), ("d4", 8)):
        pairs = tta_transforms(tta)
        assert len(pairs) == count
        outputs = [forward(x) for forward, _ in pairs]
        assert len({tuple(o.flatten()[:5].tolist()) for o in outputs}) == count
        for forward, inverse in pairs:
            assert torch.equal(inverse(forward(x)), x)


def test_grid_nodata_metadata_and_cog(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    # Crop to 300 x 170 px: not a multiple of the tile, and keep the nodata collar.
    with rasterio.open(scene["file"]) as src:
        data, profile = src.read(window=((84, 384), (0, 170))), src.profile
        transform = src.window_transform(((84, 384), (0, 170)))
    scene["file"].unlink()
    crop = scene["image"] / "crop.tif"
    profile.update(height=300, width=170, transform=transform)
    with rasterio.open(crop, "w", **profile) as dst:
        dst.write(data)
    output = predict(
        checkpoint, scene, tmp_path / "classes.tif", tile=128, overlap=0.25, kind="both"
    )
    with rasterio.open(output) as pred, rasterio.open(crop) as image:
        assert pred.crs == image.crs and (pred.height, pred.width) == (image.height, image.width)
        assert all(abs(a - b) < 1e-9 for a, b in zip(pred.transform, image.transform, strict=True))
        classes = pred.read(1)
        nodata = (image.read() == 0).all(0)
        assert nodata.any() and np.array_equal(classes == 255, nodata)
        assert pred.profile["tiled"] and pred.overviews(1)
        assert pred.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert json.loads(pred.tags()["class_names"]) == [
            "water",
            "forest",
            "shrub",
            "grass",
            "plot",
        ]
        assert pred.colormap(1)[0][:3] == (0, 0, 0) and pred.tags()["tile"] == "128"
        assert {"checkpoint", "overlap", "blend", "tta", "dualstream_geo_version"} <= set(
            pred.tags()
        )
    with rasterio.open(tmp_path / "classes_probabilities.tif") as probs:
        assert probs.descriptions == ("water", "forest", "shrub", "grass", "plot")
        values = probs.read().astype(int)
        total = values.sum(0)[~nodata]
        assert np.abs(total - 254).max() <= 5  # uint8 probabilities, value / 254, sum to one
        assert (
            values.argmax(0)[~nodata] == classes[~nodata]
        ).mean() > 0.99  # ties after rounding differ
        assert probs.tags(ns="IMAGE_STRUCTURE")["OVERVIEW_RESAMPLING"] == "AVERAGE"
    assert not list(tmp_path.glob("*.partial*"))
    check_legend(output, ["water", "forest", "shrub", "grass", "plot"])


def check_legend(output: Path, names: list[str]) -> None:
    """GDAL PAM categories + attribute table and a QGIS style with only the real classes."""
    import xml.etree.ElementTree as ET

    with rasterio.open(output) as pred:
        colors = [pred.colormap(1)[i][:3] for i in range(len(names))]
    band = ET.parse(f"{output}.aux.xml").getroot().find("PAMRasterBand")
    assert band is not None and band.get("band") == "1"
    assert [c.text for c in band.iter("Category")] == names
    rows = [[f.text for f in row.iter("F")] for row in band.iter("Row")]
    assert rows == [
        [str(i), name, *(str(c) for c in color), "255"]
        for i, (name, color) in enumerate(zip(names, colors, strict=True))
    ]
    entries = ET.parse(output.with_suffix(".qml")).getroot().iter("paletteEntry")
    palette = [(e.get("value"), e.get("label"), e.get("color")) for e in entries]
    assert palette == [
        (str(i), name, "#{:02x}{:02x}{:02x}".format(*color))
        for i, (name, color) in enumerate(zip(names, colors, strict=True))
    ]
    # GDAL still opens the COG with its PAM sidecar beside it.
    with rasterio.open(output) as again:
        assert again.count == 1


def pad_with_nodata(path: Path, collar: int) -> None:
    """Rewrite a GeoTIFF with ``collar`` px of nodata (0) around it, on the same grid."""
    with rasterio.open(path) as src:
        data, profile, t = src.read(), src.profile, src.transform
    grown = np.zeros((data.shape[0], data.shape[1] + 2 * collar, data.shape[2] + 2 * collar))
    grown[:, collar:-collar, collar:-collar] = data
    profile.update(
        height=grown.shape[1],
        width=grown.shape[2],
        transform=t * Affine.translation(-collar, -collar),
        nodata=0,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(grown.astype(data.dtype))


def test_one_map_whatever_the_tile_and_the_nodata_collar(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    """A model with local context gives a pixel the class of the one-window map at tiles of
    128 and 256 px (at least 99.5 % of the valid pixels: issue 39's bound) and whatever
    nodata collar the scene has (at most 0.5 % changed, in one window and tiled)."""
    whole = read(predict(checkpoint, scene, tmp_path / "whole.tif", tile=4096))[0]
    valid = whole != 255
    assert len(np.unique(whole[valid])) >= 3
    for tile in (128, 256):
        tiled = read(predict(checkpoint, scene, tmp_path / f"tile{tile}.tif", tile=tile))[0]
        assert (tiled[valid] == whole[valid]).mean() >= 0.995, tile
    pad_with_nodata(scene["file"], 96)
    for tile in (4096, 128):
        collared = read(predict(checkpoint, scene, tmp_path / f"collar{tile}.tif", tile=tile))
        inner = collared[0, 96:-96, 96:-96]
        assert (collared[0, :96] == 255).all() and inner.shape == whole.shape
        reference = whole if tile == 4096 else read(tmp_path / "tile128.tif")[0]
        assert (inner[valid] != reference[valid]).mean() <= 0.005, tile


def test_a_cpu_batch_holds_1_mpx_and_the_map_does_not_depend_on_it(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    """On a CPU a batch is as many windows as make 1 Mpx unless given (4 of 512 px: a fresh
    process faults a batch's maps in, inference/settings.py); in fp32 the map is the same at
    any batch size, and read by a loader process."""
    from dualstream_geo.inference.reading import scene_grid
    from dualstream_geo.inference.settings import default_batch_size

    assert default_batch_size(torch.device("cuda"), 128) == 8
    cpu = torch.device("cpu")
    assert [default_batch_size(cpu, tile) for tile in (128, 512, 1024, 4096)] == [64, 4, 1, 1]
    aux = [scene["gems"], scene["air"]]
    maps = {}
    for batch_size in (None, 3):
        predictor = ScenePredictor.from_checkpoint(
            checkpoint,
            tile=128,
            precision="32",
            device="cpu",
            batch_size=batch_size,
            workers=0 if batch_size is None else 1,
        )
        assert predictor.batch_size == (batch_size or 64)
        output = tmp_path / f"batch{batch_size}.tif"
        predictor.predict([scene["image"]], aux, output, kind="both")
        probabilities = output.with_name(output.stem + "_probabilities.tif")
        maps[batch_size] = np.concatenate([read(output), read(probabilities)])
    grid = scene_grid(predictor.dataset([scene["image"]], aux).image)
    assert len(predictor.layout(grid).windows) > 3  # one batch against batches of 3
    assert np.array_equal(maps[None], maps[3])  # classes and probabilities


def test_resume_after_interruption_gives_the_same_file(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    reference = read(predict(checkpoint, scene, tmp_path / "reference.tif", tile=128))
    output = tmp_path / "resumed.tif"

    def interrupt(rows: int, height: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict(checkpoint, scene, output, tile=128, progress_callback=interrupt)
    assert not output.exists()  # nothing complete-looking at the output path
    progress = json.loads(Path(f"{output}.partial.json").read_text())
    assert 0 < progress["rows_done"] < 384
    with pytest.raises(DualStreamError, match="pass --resume or --overwrite"):
        predict(checkpoint, scene, output, tile=128)
    assert not Path(f"{output}.lock").exists()  # released by the interrupted run
    # Other settings, or other inputs on the same grid: --resume refuses and says what differs.
    with pytest.raises(DualStreamError, match=r"written with other overlap"):
        predict(checkpoint, scene, output, tile=128, overlap=0.5, resume=True)
    gems = next(scene["gems"].glob("*.tif"))
    with rasterio.open(gems, "r+") as dst:
        dst.write(dst.read() * 1.5)
    with pytest.raises(DualStreamError, match=r"written with other inputs"):
        predict(checkpoint, scene, output, tile=128, resume=True)
    with rasterio.open(gems, "r+") as dst:
        dst.write(dst.read() / 1.5)
    # The restored file is a new version: the fingerprint still differs, as it should.
    progress_file = Path(f"{output}.partial.json")
    state = json.loads(progress_file.read_text())
    state["signature"]["inputs"] = json.loads(json.dumps(input_fingerprint_of(checkpoint, scene)))
    progress_file.write_text(json.dumps(state))
    rows: list[int] = []
    predict(
        checkpoint,
        scene,
        output,
        tile=128,
        resume=True,
        progress_callback=lambda r, h: rows.append(r),
    )
    assert rows[0] > progress["rows_done"]  # continued, did not start over
    assert np.array_equal(read(output), reference)
    assert not Path(f"{output}.partial.tif").exists()


def input_fingerprint_of(checkpoint: Path, scene: dict[str, Path]) -> list[list[object]]:
    from dualstream_geo.inference.fingerprint import input_fingerprint

    predictor = ScenePredictor.from_checkpoint(checkpoint, tile=128)
    return input_fingerprint(predictor.dataset([scene["image"]], [scene["gems"], scene["air"]]))


def test_output_lock_against_a_second_run(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    output = tmp_path / "locked.tif"
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = Path(f"{output}.lock")
        import socket

        lock.write_text(json.dumps({"pid": running.pid, "host": socket.gethostname()}))
        for overwrite in (False, True):
            with pytest.raises(DualStreamError, match=rf"being written by pid {running.pid}"):
                predict(checkpoint, scene, output, tile=128, overwrite=overwrite)
        assert not output.exists() and lock.exists()
    finally:
        running.kill()
        running.wait()
    # Its owner is gone: a stale lock, reported; --resume takes it over and completes.
    with pytest.raises(DualStreamError, match="stale lock .* pass --resume"):
        predict(checkpoint, scene, output, tile=128)
    predict(checkpoint, scene, output, tile=128, resume=True)
    assert output.exists() and not Path(f"{output}.lock").exists()
    with rasterio.open(output) as src:
        tags = src.tags()
    assert len(tags["checkpoint_sha256"]) == 64 and Path(tags["checkpoint"]).is_absolute()
    assert tags["created"].endswith("+00:00") and tags["command"]


def test_scene_smaller_than_a_tile_is_padded(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    output = predict(checkpoint, scene, tmp_path / "small.tif", tile=512)
    with rasterio.open(output) as pred, rasterio.open(scene["file"]) as image:
        assert pred.shape == image.shape == (384, 384) and pred.transform == image.transform
        assert ((pred.read(1) == 255) == (image.read() == 0).all(0)).all()


def test_tta_runs_and_agrees(checkpoint: Path, scene: dict[str, Path], tmp_path: Path) -> None:
    plain = read(predict(checkpoint, scene, tmp_path / "plain.tif", tile=128))[0]
    d4 = read(
        predict(checkpoint, scene, tmp_path / "d4.tif", tile=128, tta="d4", kind="probabilities")
    )
    flip = read(predict(checkpoint, scene, tmp_path / "flip.tif", tile=128, tta="flip"))[0]
    valid = plain != 255
    assert (d4.argmax(0)[valid] == plain[valid]).mean() > 0.9
    assert (flip[valid] == plain[valid]).mean() > 0.9


def test_bad_input_writes_nothing(checkpoint: Path, scene: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DualStreamError, match="is one of the inputs"):
        predict(checkpoint, scene, scene["file"])
    existing = tmp_path / "exists.tif"
    existing.write_bytes(b"keep me")
    with pytest.raises(DualStreamError, match="exists; pass --overwrite"):
        predict(checkpoint, scene, existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(DualStreamError, match="tile must be a positive multiple of 32, got 100"):
        ScenePredictor.from_checkpoint(checkpoint, tile=100)
    with pytest.raises(DualStreamError, match=r"overlap must lie in \[0, 0.9\], got 0.95"):
        ScenePredictor.from_checkpoint(checkpoint, overlap=0.95)
    rgb = tmp_path / "rgb"
    write_raster(
        rgb / "rgb.tif",
        np.ones((3, 64, 64), np.uint16),
        "EPSG:5186",
        Affine(10, 0, 200_000, 0, -10, 510_000),
    )
    with pytest.raises(DualStreamError, match=r"rgb.tif: SatelliteImage expects 4 band"):
        ScenePredictor.from_checkpoint(checkpoint).predict(
            [rgb], [scene["gems"], scene["air"]], tmp_path / "x.tif"
        )
    far = tmp_path / "far"
    write_raster(
        far / "GEMS_far.tif",
        np.ones((12, 4, 4), np.float32),
        "EPSG:4326",
        Affine(0.01, 0, 10, 0, -0.01, 10),
    )
    with pytest.raises(
        DualStreamError, match=r"GEMS \(.*GEMS_far.tif\) does not overlap the image"
    ):
        ScenePredictor.from_checkpoint(checkpoint).predict(
            [scene["image"]], [far, scene["air"]], tmp_path / "y.tif"
        )
    assert not list(tmp_path.glob("x.tif*")) and not list(tmp_path.glob("y.tif*"))
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {f"layer{i}.weight": torch.zeros(1) for i in range(2000)}}, foreign)
    with pytest.raises(DualStreamError, match="not a dualstream_geo checkpoint") as info:
        ScenePredictor.from_checkpoint(foreign)
    assert len(str(info.value)) < 300  # not thousands of missing keys
    (tmp_path / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DualStreamError, match="not a readable dualstream_geo checkpoint") as info:
        ScenePredictor.from_checkpoint(tmp_path / "random.ckpt")
    assert "weights_only" not in str(info.value)
    with pytest.raises(DualStreamError, match="precision must be one of"):
        ScenePredictor.from_checkpoint(checkpoint, precision="fp8")
    with pytest.raises(DualStreamError, match="workers must be >= 0, got -1"):
        ScenePredictor.from_checkpoint(checkpoint, workers=-1)
    folder = tmp_path / "a_folder.tif"
    folder.mkdir()
    with pytest.raises(DualStreamError, match="a_folder.tif is a folder; give a file name"):
        predict(checkpoint, scene, folder, overwrite=True)
    assert not list(folder.iterdir())


def test_partial_air_coverage_warns_and_fills(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    gems = next(scene["gems"].glob("*.tif"))
    with rasterio.open(gems) as src:
        data, profile = src.read(window=((0, src.height), (0, src.width // 2))), src.profile
        profile.update(width=src.width // 2)
    with rasterio.open(gems, "w", **profile) as dst:
        dst.write(data)
    with pytest.warns(UserWarning, match=r"GEMS covers \d+\.\d% of the scene"):
        output = predict(checkpoint, scene, tmp_path / "partial_air.tif", tile=128)
    assert output.exists()


def test_predict_cli(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "cli.tif"
    args = [
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--image",
        str(scene["image"]),
        "--gems",
        str(scene["gems"]),
        "--air-pollution",
        str(scene["air"]),
        "--output",
        str(output),
        "--tile",
        "128",
        "--batch-size",
        "4",
    ]
    assert main(args) == 0 and output.exists()
    preview = tmp_path / "cli.png"
    assert f"(preview with legend: {preview})" in capsys.readouterr().out
    # The preview shows the map's classes in their legend colours.
    with rasterio.open(output) as src:
        present = np.unique(src.read(1, masked=True).compressed())
        table = src.colormap(1)
    pixels = (imread(preview)[..., :3] * 255).round().astype(int).reshape(-1, 3)
    drawn = {tuple(int(v) for v in p) for p in np.unique(pixels, axis=0)}
    assert all(tuple(table[int(k)][:3]) in drawn for k in present)
    assert main(args) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--tile", "96"]) == 0
    bare = tmp_path / "bare.tif"
    assert main([*args[:-6], "--output", str(bare), "--tile", "128", "--no-preview"]) == 0
    assert bare.exists() and not bare.with_suffix(".png").exists()
    lone = tmp_path / "lone.tif"
    lone.with_suffix(".png").write_bytes(b"a picture of my own")
    assert main([*args[:-6], "--output", str(lone), "--tile", "128"]) == 2
    assert "lone.png exists; pass --overwrite" in capsys.readouterr().err
    assert lone.with_suffix(".png").read_bytes() == b"a picture of my own"
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(tmp_path / "none.ckpt"),
                "--image",
                "x",
                "--output",
                "y.tif",
            ]
        )
        == 2
    )
    assert "checkpoint not found" in capsys.readouterr().err


def test_window_is_bounded_by_the_scene_and_by_memory(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    """``--tile 65536`` on a 384 px scene runs one window over the scene and its margins;
    on a scene as large as the window, a window that cannot fit in memory is refused
    before any is computed."""
    from dualstream_geo.data import BandStats, ClassSpec, DatasetStats, InputSpec
    from dualstream_geo.training import DualStreamSegmentation

    output = predict(checkpoint, scene, tmp_path / "clamped.tif", tile=65536)
    with rasterio.open(output) as src:
        tile, margin = int(src.tags()["tile"]), int(src.tags()["margin"])
        assert src.shape == (384, 384) and margin == 64
        assert 384 + 2 * margin <= tile <= 384 + 2 * margin + 32 and tile % 32 == 0

    side = 8192
    image = tmp_path / "large" / "image.tif"
    image.parent.mkdir()
    profile = {
        "driver": "GTiff", "width": side, "height": side, "count": 4, "dtype": "uint16",
        "nodata": 0, "crs": "EPSG:32612", "transform": Affine(30, 0, 300_000, 0, -30, 4_200_000),
        "tiled": True, "compress": "deflate",
    }  # fmt: skip
    with rasterio.open(image, "w", **profile) as dst:  # mostly nodata: a few KB on disk
        block = rasterio.windows.Window(0, 0, 256, 256)
        dst.write(np.full((4, 256, 256), 1000, dtype="uint16"), window=block)
    band = BandStats(["blue", "green", "red", "nir"], [1000.0] * 4, [1.0] * 4, [0.0] * 4, [1.0] * 4)
    spec = InputSpec(
        classes=ClassSpec(names=("a", "b"), colors=((0, 0, 0), (9, 9, 9))),
        stats=DatasetStats(band, None),
    )
    task = DualStreamSegmentation(input_spec=spec, architecture=LITE_B0)
    large = ScenePredictor(task, tile=side, batch_size=8, device="cpu")
    with pytest.raises(DualStreamError, match=r"--tile 8192 with --batch-size 8 needs about 6\d\d"):
        large.predict([image], None, tmp_path / "large.tif")
    assert not list(tmp_path.glob("large.tif*"))
