"""The GPU figures of one training and prediction setup, for both presets, in one run.

For each preset (``original``, ``lite``) at ``--patch`` px (512 by default), bf16 autocast
on CUDA:

1. **Training samples/s of the model alone** (a batch already on the device, forward, loss,
   backward, AdamW step) and its **model FLOP utilisation**: the step's FLOP
   (``torch.utils.flop_counter``: forward and backward, 2 FLOP per multiply-add) times
   steps/s over the GPU's peak dense bf16 FLOP/s (``--peak-tflops``, or the datasheet figure
   of a known GPU: H100 SXM and H200 989 TFLOP/s, H100 PCIe 756, A100 312).
2. **The share of step time waiting for data** in the real Lightning loop (the datamodule,
   its warp cache, augmentation on the device) on a generated scene (``--size``, 1536 px)
   whose labels and aux rasters must be reprojected, with each number of loader processes
   in ``--workers``.
3. **Whole-scene prediction km2/s** end to end (``ScenePredictor``: reads, blending, COG)
   against the pure batched forward over the same windows with their inputs on the device.

On a CPU it runs as a check of the script itself (fp32; use a small ``--patch``): those
numbers say nothing about a GPU.

    python benchmarks/bench_gpu.py [--patch 512] [--batch 8] [--workers 0 4 8 16]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from bench_predict import overhead
from bench_train import run as loader_run
from torch.utils.flop_counter import FlopCounterMode

from dualstream_geo.data import make_demo_scenes
from dualstream_geo.data.synthetic import SceneSpec
from dualstream_geo.models import DualStreamDFormer

PRESETS = ("original", "lite")

#: Peak dense bf16 tensor FLOP/s (TFLOP/s, no sparsity) from the vendors' datasheets.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0}


def scene(size: int) -> SceneSpec:
    """A scene of ``size`` px whose labels (EPSG:5186) and aux rasters (EPSG:4326) are off
    the image grid."""
    return SceneSpec("bench", "EPSG:32652", 330_000.0, 4_160_000.0, size, "EPSG:5186", 12.5, False)


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    """The device's peak dense bf16 TFLOP/s: ``given``, or the datasheet figure by name."""
    if given is not None or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def model_training(
    preset: str, patch: int, batch: int, steps: int, device: torch.device
) -> tuple[float, float, float]:
    """samples/s and TFLOP per step of training ``preset`` on a batch already on ``device``."""
    torch.manual_seed(0)
    model = DualStreamDFormer(preset=preset).to(device).train()  # type: ignore[arg-type]
    image = torch.rand(batch, 4, patch, patch, device=device)
    air = torch.rand(batch, 48, patch // 8, patch // 8, device=device)
    target = (torch.rand(batch, patch, patch, device=device) > 0.5).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step() -> None:
        with autocast:
            logits = model(image, air)["final"]
        # The default head is the original's binary one (one logit per pixel).
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0].float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:
        step()
    for _ in range(2):  # warm-up: allocator, cuDNN algorithm choice
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return batch / seconds, counter.get_total_flops() / 1e12, seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patch", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20, help="timed model-only steps")
    parser.add_argument("--samples", type=int, default=256, help="patches of the loop's epoch")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 4, 8, 16])
    parser.add_argument("--tile", type=int, default=512, help="prediction window")
    parser.add_argument("--size", type=int, default=1536, help="the scene's side in px")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    peak = peak_tflops(device, args.peak_tflops)
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_cores": len(os.sched_getaffinity(0)),
        "precision": "bf16 autocast" if device.type == "cuda" else "fp32",
        "peak_tflops": peak,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_demo_scenes(root, seed=1, scenes=(scene(args.size),))
        for preset in PRESETS:
            rate, tflop, seconds = model_training(
                preset, args.patch, args.batch, args.steps, device
            )
            row: dict[str, Any] = {
                "model_only_samples_per_s": round(rate, 2),
                "train_step_tflop": round(tflop, 3),
                "mfu": round(tflop / seconds / peak, 4) if peak else None,
            }
            for workers in args.workers:
                loop = loader_run(root, workers, args.samples, args.patch, args.batch, preset)
                row[f"loop_workers{workers}"] = {k: round(v, 3) for k, v in loop.items()}
            whole = overhead(root / "train", args.tile, None, root, repeats=2, preset=preset)
            row["prediction"] = {
                "km2_per_s": round(whole["km2_per_s"], 3),
                "pure_forward_km2_per_s": round(whole["km2_per_s"] * whole["overhead_ratio"], 3),
                "end_to_end_over_forward": round(whole["overhead_ratio"], 3),
            }
            results[preset] = row
            print(preset, json.dumps(row), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
