"""Is the whole-scene map one map? Tile, seam and nodata invariance of a checkpoint on a scene.

Predicts the scene (classes and probabilities) in one window, at each ``--tiles`` with the
default overlap and margin, and with a ``--collar`` px nodata collar around the image (in
one window and at the default tile), then prints:

* tile invariance: the share of valid pixels whose class differs from the one-window map,
  and the mean largest probability difference (in 1/254);
* seams: the mean absolute step between neighbouring columns (rows) of the probabilities,
  averaged per phase of the window period, divided by the one-window map's step at the
  same columns (rows); the largest ratio over the phases is printed (1.0: no seam);
* nodata invariance: the share of valid pixels whose class changes when the collar is
  added, in one window and at the default tile.

    python experiments/invariance.py --checkpoint runs/zion_dem/checkpoints/best.ckpt \
        --image ../shared/data/zion --aux elevation=../shared/data/zion/srtm.tif \
        --out runs/invariance [--tiles 256 512] [--collar 300] [--json figures.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from dualstream_geo.data.assemble import scene_image
from dualstream_geo.data.grid import Grid
from dualstream_geo.inference import ScenePredictor

#: A window side no scene here reaches: the predictor clamps it to one window over the scene.
ONE_WINDOW = 1 << 15


def pad_image(files: list[str], out: Path, collar: int, nodata: float | None) -> list[str]:
    """Copies of the image files with ``collar`` px of nodata on every side, same grid."""
    out.mkdir(parents=True, exist_ok=True)
    padded = []
    for path in files:
        with rasterio.open(path) as src:
            fill = src.nodata if src.nodata is not None else nodata
            if fill is None:
                raise SystemExit(f"{path}: no nodata value to pad the image with")
            data = src.read()
            profile = src.profile
            t = src.transform
        grown = np.full(
            (data.shape[0], data.shape[1] + 2 * collar, data.shape[2] + 2 * collar),
            fill,
            dtype=data.dtype,
        )
        grown[:, collar:-collar, collar:-collar] = data
        profile.update(
            height=grown.shape[1],
            width=grown.shape[2],
            transform=rasterio.Affine(t.a, t.b, t.c - collar * t.a, t.d, t.e, t.f - collar * t.e),
            nodata=fill,
            driver="GTiff",
            tiled=True,
            blockxsize=256,
            blockysize=256,
            compress="deflate",
        )
        target = out / Path(path).name
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(grown)
        padded.append(str(target))
    return padded


def read_map(path: Path, crop: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Classes (H, W) and probabilities (C, H, W, float /254) of a ``--kind both`` output,
    without ``crop`` px at every side."""
    probabilities = path.with_name(path.stem + "_probabilities.tif")
    with rasterio.open(path) as src, rasterio.open(probabilities) as prob:
        window = Window(crop, crop, src.width - 2 * crop, src.height - 2 * crop)
        return src.read(1, window=window), prob.read(window=window).astype(np.float64)


def steps(probabilities: np.ndarray, valid: np.ndarray, axis: int) -> np.ndarray:
    """Mean absolute step over classes between neighbouring columns (axis 1) or rows (0)
    of (C, H, W) probabilities, per column (row) boundary, where both pixels are valid."""
    diff = np.abs(np.diff(probabilities, axis=axis + 1)).mean(0)
    both = valid[:, 1:] & valid[:, :-1] if axis == 1 else valid[1:] & valid[:-1]
    summed = np.where(both, diff, 0.0).sum(axis=1 - axis)
    return summed / np.maximum(both.sum(axis=1 - axis), 1)


def seam_ratio(
    tiled: np.ndarray, one: np.ndarray, valid: np.ndarray, starts: list[int], axis: int
) -> float:
    """Largest ratio over the window period's phases of the tiled map's mean step to the
    one-window map's at the same boundaries."""
    if len(starts) < 2:
        return 1.0
    period = starts[1] - starts[0]
    boundary = np.arange(tiled.shape[axis + 1] - 1)
    phase = (boundary - starts[0]) % period
    a, b = steps(tiled, valid, axis), steps(one, valid, axis)
    ratios = []
    for p in range(period):
        at = phase == p
        if b[at].sum() > 0:
            ratios.append(a[at].sum() / b[at].sum())
    return float(max(ratios))


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    aux: dict[str, list[str]] = {}
    for pair in args.aux:
        name, _, path = pair.partition("=")
        aux.setdefault(name, []).append(path)

    def predict(tile: int, image: list[str], name: str, batch_size: int) -> Path:
        predictor = ScenePredictor.from_checkpoint(
            args.checkpoint, tile=tile, batch_size=batch_size, **settings
        )
        target = out / f"{name}.tif"
        predictor.predict(image, aux, target, kind="both", overwrite=True)
        return target

    def starts(tile: int) -> tuple[list[int], list[int]]:
        predictor = ScenePredictor.from_checkpoint(args.checkpoint, tile=tile, **settings)
        with rasterio.open(out / "one.tif") as src:
            layout = predictor.layout(Grid(src.crs, src.transform, src.height, src.width))
        return [s[0].row for s in layout.strips], [w.col for w in layout.strips[0]]

    settings: dict[str, Any] = {"margin": args.margin}
    if args.overlap is not None:
        settings["overlap"] = args.overlap
    image = [str(p) for p in args.image]
    one_classes, one_probs = read_map(predict(ONE_WINDOW, image, "one", 1))
    with rasterio.open(out / "one.tif") as src:
        valid = src.read_masks(1) > 0
    figures: dict[str, Any] = {"valid_pixels": int(valid.sum())}
    for tile in args.tiles:
        classes, probs = read_map(predict(tile, image, f"tile{tile}", args.batch_size))
        rows, cols = starts(tile)
        figures[f"tile{tile}"] = {
            "class_changed": float((classes != one_classes)[valid].mean()),
            "mean_largest_prob_diff": float(np.abs(probs - one_probs).max(0)[valid].mean()),
            "seam_ratio_columns": seam_ratio(probs, one_probs, valid, cols, 1),
            "seam_ratio_rows": seam_ratio(probs, one_probs, valid, rows, 0),
        }
    if args.collar:
        spec = ScenePredictor.from_checkpoint(args.checkpoint).spec
        source = scene_image(spec, image)
        files = [f for p in source.index.filepath for f, _ in source.channel_files(p)]
        padded = pad_image(files, out / "collar_image", args.collar, spec.image.nodata)
        collar_one, _ = read_map(predict(ONE_WINDOW, padded, "collar_one", 1), args.collar)
        default = args.tiles[-1]
        collar_tiled, _ = read_map(
            predict(default, padded, f"collar_tile{default}", args.batch_size), args.collar
        )
        tiled, _ = read_map(out / f"tile{default}.tif")
        figures["collar"] = {
            "px": args.collar,
            "one_window_class_changed": float((collar_one != one_classes)[valid].mean()),
            f"tile{default}_class_changed": float((collar_tiled != tiled)[valid].mean()),
        }
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--image", required=True, nargs="+")
    parser.add_argument("--aux", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--out", required=True, help="folder for the maps")
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--collar", type=int, default=300)
    parser.add_argument("--overlap", type=float, default=None, help="default: predict's")
    parser.add_argument("--margin", type=int, default=None, help="default: predict's")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    figures = run(args)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
