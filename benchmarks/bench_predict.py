"""Whole-scene inference: overhead, memory flatness, seams, throughput and cost, in one run.

1. End-to-end ScenePredictor time vs the pure batched model forward over the same windows
   with their inputs already in memory (target: at most 1.15x on CPU).
2. Peak RSS of a fresh process predicting a scene of area A and one of 4A (target ratio at
   most 1.1).
3. Seam error: mean absolute probability step across window borders vs inside windows,
   with Hann blending and with none.
4. Windows/s and km2/s.
5. Cost (``--only-cost``): windows and model FLOP per km2 at the default settings, for the
   models with local context (windows on the cell lattice) against window context (the
   layout and models before 2026-12-06), for the zion_dem.yaml recipe and the original
   preset: the price of one map.
6. Whole-scene throughput (``--scene``, with ``--checkpoint``): on a real scene at the
   default tile, km2/s end to end against the pure batched forward, the phases alone
   (inputs, reading) and the forward with channels_last and torch.compile, in fp32 and in
   bf16 where the CPU has it natively (``scene_throughput.py``); with ``--baseline CKPT``
   that checkpoint first, in the same run, with glibc keeping freed blocks up to 32 MiB as
   before 2026-12-07 and then as now, and every row's end-to-end km2/s as a ratio of its
   first fp32 row (issue 40's "3x today's km2/s").

The model is DualStreamDFormer (SegFormer-B1) with random weights, or --checkpoint.

    python benchmarks/bench_predict.py [--size 1024] [--tile 512] [--checkpoint CKPT]
    python benchmarks/bench_predict.py --only-cost
    python benchmarks/bench_predict.py --scene ../shared/data/zion \
        --aux elevation=../shared/data/zion/srtm.tif \
        --checkpoint runs/zion_dem/checkpoints/best.ckpt [--baseline DENSE.ckpt]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from common import peak_rss_mib
from scene_throughput import measure as measure_scene

from dualstream_geo.data import (
    GEMS,
    AirPollution,
    BandStats,
    DatasetStats,
    SatelliteImage,
    make_demo_scenes,
)
from dualstream_geo.data.auxiliary.spec import original_aux
from dualstream_geo.data.grid import Grid
from dualstream_geo.data.spec import ClassSpec, InputSpec
from dualstream_geo.data.synthetic import SceneSpec
from dualstream_geo.inference import ScenePredictor
from dualstream_geo.inference.reading import WindowDataset, scene_grid
from dualstream_geo.inference.tiling import (
    default_margin,
    default_overlap,
    lattice_layout,
    scene_layout,
)
from dualstream_geo.memory import MMAP_THRESHOLD_MAX
from dualstream_geo.models import DualStreamDFormer
from dualstream_geo.models.locality import CELL
from dualstream_geo.models.settings import ArchitectureSettings
from dualstream_geo.training import DualStreamSegmentation


def make_scene(root: Path, size: int) -> Path:
    spec = SceneSpec("bench", "EPSG:32652", 330_000.0, 4_160_000.0, size, "EPSG:32652", 10.0, False)
    make_demo_scenes(root, seed=1, scenes=(spec,))
    return root / "train"


def predictor(
    scene: Path,
    tile: int,
    blend: str,
    checkpoint: str | None,
    overlap: float | None = None,
    margin: int | None = None,
    preset: str = "original",
    context: str = "local",
) -> ScenePredictor:
    options = {"tile": tile, "overlap": overlap, "blend": blend, "margin": margin}
    if checkpoint:
        return ScenePredictor.from_checkpoint(checkpoint, **options)  # type: ignore[arg-type]
    torch.manual_seed(0)
    air = BandStats.concat(
        [
            BandStats.from_source(GEMS(scene / "gems")),
            BandStats.from_source(AirPollution(scene / "air")),
        ]
    )
    stats = DatasetStats(BandStats.from_source(SatelliteImage(scene / "image")), air)
    spec = InputSpec(
        classes=ClassSpec(colors=((0, 0, 0), (255, 0, 0))), aux=original_aux(), stats=stats
    )
    architecture = ArchitectureSettings(preset=preset, context=context)  # type: ignore[arg-type]
    task = DualStreamSegmentation(input_spec=spec, architecture=architecture)
    return ScenePredictor(task, batch_size=4, **options)  # type: ignore[arg-type]


def predict(p: ScenePredictor, scene: Path, output: Path, kind: str = "class") -> float:
    start = time.perf_counter()
    p.predict([scene / "image"], [scene / "gems", scene / "air"], output, kind=kind, overwrite=True)
    return time.perf_counter() - start


def overhead(
    scene: Path,
    tile: int,
    checkpoint: str | None,
    out: Path,
    repeats: int = 3,
    preset: str = "original",
) -> dict[str, float]:
    """Medians of end-to-end runs and pure forwards, alternated in this process."""
    p = predictor(scene, tile, "hann", checkpoint, preset=preset)
    predict(p, scene, out / "warmup.tif")  # first-touch allocations and GDAL caches
    dataset = p.dataset([scene / "image"], [scene / "gems", scene / "air"])
    grid = scene_grid(dataset.image)
    windows = p.layout(grid).windows
    samples = [WindowDataset(dataset, grid, windows)[i] for i in range(len(windows))]
    batches = [samples[i : i + p.batch_size] for i in range(0, len(samples), p.batch_size)]
    # The pure forward starts from inputs already on the device, as the ceiling.
    tensors = [
        (
            torch.stack([s["image"] for s in b]).to(p.device),
            torch.stack([s["air"] for s in b]).to(p.device),
        )
        for b in batches
    ]
    end_to_end, forward = [], []
    for _ in range(repeats):
        end_to_end.append(predict(p, scene, out / "e2e.tif"))
        start = time.perf_counter()
        for image, air in tensors:
            p.probabilities(image, air)
        if p.device.type == "cuda":
            torch.cuda.synchronize()
        forward.append(time.perf_counter() - start)
    e2e, fwd = statistics.median(end_to_end), statistics.median(forward)
    area_km2 = grid.height * grid.width * grid.res[0] * grid.res[1] / 1e6
    return {
        "end_to_end_s": e2e,
        "model_forward_s": fwd,
        "overhead_ratio": e2e / fwd,
        "windows": len(windows),
        "windows_per_s": len(windows) / e2e,
        "km2_per_s": area_km2 / e2e,
    }


def peak_rss_child(size: int, tile: int, checkpoint: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        scene = make_scene(Path(tmp), size)
        args = [sys.executable, __file__, "--rss-child", str(scene), "--tile", str(tile)]
        if checkpoint:
            args += ["--checkpoint", checkpoint]
        child = subprocess.run(args, check=True, capture_output=True, text=True)
        return float(child.stdout.strip().splitlines()[-1])


#: Settings compared for seams, models with window context: the former default (Hann over
#: the whole window, overlap 0.25), no blending, and their default since issue 29 (context
#: margins of tile / 8, overlap 0.34); then a model with local context at its defaults
#: (cell-lattice windows, 64 px margins, no overlap beyond them).
SEAM_SETTINGS = {
    "window context: hann, overlap 0.25, no margin (before)": ("hann", 0.25, 0, "window"),
    "window context: none, overlap 0.25, no margin": ("none", 0.25, 0, "window"),
    "window context: hann, overlap 0.34, margin tile/8": ("hann", 0.34, None, "window"),
    "local context: defaults": ("hann", None, None, "local"),
}


def seams(scene: Path, tile: int, checkpoint: str | None, out: Path) -> dict[str, Any]:
    """Mean absolute step of the target probability between neighbouring columns: at the
    columns where a window's contribution starts or ends (its edges and, with a margin, the
    edges of its kept centre) against all other columns; and the windows per km2 each
    setting computes, relative to the former default."""
    results: dict[str, Any] = {}
    baseline = None
    for name, (blend, overlap, margin, context) in SEAM_SETTINGS.items():
        if checkpoint and context == "window":
            continue  # a checkpoint has its own context
        p = predictor(scene, tile, blend, checkpoint, overlap, margin, context=context)
        path = out / "seam.tif"
        predict(p, scene, path, kind="probabilities")
        with rasterio.open(path) as src:
            prob = src.read(2).astype(np.float64) / 254
            layout = p.layout(Grid(src.crs, src.transform, src.height, src.width))
        kept = layout.margin
        tiling = layout.strips
        cols = tiling[0]
        edges = {w.col for w in cols[1:]} | {w.col + tile for w in cols[:-1]}
        edges |= {w.col + kept for w in cols[1:]} | {w.col + tile - kept for w in cols[:-1]}
        borders = sorted(b for b in edges if 0 < b < prob.shape[1])
        step = np.abs(np.diff(prob, axis=1)).mean(0)  # step between column c and c + 1
        at_border = step[[b - 1 for b in borders]].mean()
        interior = np.delete(step, [b - 1 for b in borders]).mean()
        windows = len(layout.windows)
        baseline = baseline or windows
        results[name] = {
            "border_step": round(float(at_border), 5),
            "interior_step": round(float(interior), 5),
            "ratio": round(float(at_border / interior), 2),
            "windows": windows,
            "compute_vs_before": round(windows / baseline, 2),
        }
    return results


#: The models compared for cost: the zion_dem.yaml recipe (lite, SegFormer-B0, detail path,
#: 4 bands + NDVI + NDWI, elevation and 4 terrain channels at 1/2) and the original preset.
COST_MODELS = {
    "zion_dem.yaml recipe": dict(
        num_classes=8,
        task="multiclass",
        preset="lite",
        vision_encoder="segformer-b0",
        in_channels=6,
        band_names=("blue", "green", "red", "nir", "ndvi", "ndwi"),
        air_channels=5,
        aux_scale=2,
        image_detail=True,
        detail_aux=True,
    ),
    "original preset": dict(num_classes=2, task="binary", preset="original"),
}


def window_gflop(model: DualStreamDFormer, tile: int) -> float:
    """Model GFLOP of one ``tile`` px window (``torch.utils.flop_counter``)."""
    from torch.utils.flop_counter import FlopCounterMode

    image = torch.zeros(1, model.in_channels, tile, tile)
    air = torch.zeros(
        1, model.air_channels, tile // model.air_reduction, tile // model.air_reduction
    )
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model.eval()(image, air)
    return counter.get_total_flops() / 1e9


def cost(tile: int, size: int = 16384, res: float = 30.0) -> dict[str, Any]:
    """Windows and model TFLOP per 1,000 km2 over a ``size`` px square scene of ``res`` m
    pixels at the default overlap and margin, window context (scene-corner layout, as
    before) and local context (cell lattice)."""
    from affine import Affine

    area = (size * res / 1000) ** 2 / 1000
    transform = Affine(res, 0.0, 300015.0, 0.0, -res, 4200015.0)
    results: dict[str, Any] = {}
    for name, settings in COST_MODELS.items():
        row: dict[str, Any] = {}
        for context in ("window", "local"):
            torch.manual_seed(0)
            model = DualStreamDFormer(**settings, context=context)  # type: ignore[arg-type]
            if context == "local":
                margin = default_margin(tile, local=True)
                overlap = default_overlap(local=True)
                layout = lattice_layout(size, size, transform, tile, overlap, margin, CELL)
            else:
                layout = scene_layout(
                    size, size, tile, default_overlap(False), default_margin(tile)
                )
            windows = len(layout.windows)
            flop = window_gflop(model, layout.tile)
            row[context] = {
                "margin": layout.margin,
                "stride": layout.strips[1][0].row - layout.strips[0][0].row,
                "windows_per_1000_km2": round(windows / area, 2),
                "gflop_per_window": round(flop, 1),
                "tflop_per_1000_km2": round(flop * windows / area / 1000, 2),
            }
        row["local_vs_window"] = round(
            row["local"]["tflop_per_1000_km2"] / row["window"]["tflop_per_1000_km2"], 3
        )
        results[name] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024, help="scene side in pixels for area A")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--rss-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only-seams", action="store_true", help="measure the seams alone")
    parser.add_argument("--only-cost", action="store_true", help="windows and FLOP per km2")
    parser.add_argument("--scene", nargs="+", help="a real scene's image files or folders")
    parser.add_argument("--aux", action="append", default=[], help="NAME=PATH, with --scene")
    parser.add_argument("--no-compile", action="store_true", help="--scene without compile")
    parser.add_argument("--baseline", default=None, help="--scene: a checkpoint to compare with")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.scene:
        if not args.checkpoint:
            sys.exit("bench_predict.py: --scene needs --checkpoint")
        missing = [p for p in args.scene if not Path(p).exists()]
        if missing:
            sys.exit(f"bench_predict.py: {missing[0]} does not exist")
        aux: dict[str, list[str]] = {}
        for item in args.aux:
            name, _, path = item.partition("=")
            aux.setdefault(name, []).append(path)
        # With a baseline: first as before 2026-12-07 (glibc kept blocks up to 32 MiB, not
        # the batches' full-resolution maps), then both checkpoints as predict runs now.
        runs = [(args.checkpoint, None, args.checkpoint)]
        if args.baseline is not None:
            runs = [
                (f"{args.baseline} (freed memory as before)", MMAP_THRESHOLD_MAX, args.baseline),
                (args.baseline, None, args.baseline),
                *runs,
            ]
        figures: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for name, threshold, checkpoint in runs:
                figures[name] = measure_scene(
                    checkpoint,
                    args.scene,
                    aux,
                    Path(tmp),
                    args.tile,
                    compile_model=not args.no_compile,
                    mmap_threshold=threshold,
                )
        base = figures[runs[0][0]]["fp32"]["end_to_end_km2_per_s"]
        for rows in figures.values():
            for row in rows.values():
                row["end_to_end_vs_first_fp32"] = round(row["end_to_end_km2_per_s"] / base, 2)
                if "end_to_end_path_compiled_km2_per_s" in row:
                    compiled = row["end_to_end_path_compiled_km2_per_s"]
                    row["path_compiled_vs_first_fp32"] = round(compiled / base, 2)
        print("scene", json.dumps(figures, indent=2))
        return
    if args.only_cost:
        print("cost", json.dumps(cost(args.tile), indent=2))
        return
    if args.rss_child:
        scene = Path(args.rss_child)
        with tempfile.TemporaryDirectory() as tmp:
            predict(
                predictor(scene, args.tile, "hann", args.checkpoint), scene, Path(tmp) / "rss.tif"
            )
        print(peak_rss_mib())
        return
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        scene = make_scene(out / "scene", args.size)
        results["seams"] = seams(scene, args.tile, args.checkpoint, out)
        print("seams", json.dumps(results["seams"], indent=2))
        if args.only_seams:
            return
        results["overhead"] = overhead(scene, args.tile, args.checkpoint, out)
        print("overhead", results["overhead"])
    area_a = peak_rss_child(args.size, args.tile, args.checkpoint)
    area_4a = peak_rss_child(2 * args.size, args.tile, args.checkpoint)
    results["peak_rss_MiB"] = {"A": area_a, "4A": area_4a, "ratio": area_4a / area_a}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
