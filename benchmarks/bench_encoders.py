"""The cost of each vision encoder in the zion_dem.yaml model, side by side in one run.

The model of ``experiments/zion_dem.yaml`` (lite preset, dense detail path reading the aux
stream, the 4 bands + NDVI + NDWI, 5 aux channels at 1/2) with each vision encoder:
parameters (all, the vision encoder's, the neck's), GFLOP of one 512 px forward
(torch.utils.flop_counter: 2 FLOP per multiply-add) and the training step of the recipe
(batch 16 of 64 px patches: forward, loss, backward, AdamW step) in seconds, the median of
``--repeats`` steps with the encoders run alternately, and its ratio to SegFormer-B0's (the
recipe's encoder). Accuracy: experiments/README.md ("Vision encoders").

    python benchmarks/bench_encoders.py [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from dualstream_geo.models import DualStreamDFormer
from dualstream_geo.precision import cpu_name

ENCODERS = ("segformer-b0", "segformer-b1", "resnet18", "resnet50")
CHANNELS = ("blue", "green", "red", "nir", "ndvi", "ndwi")


def build(encoder: str) -> DualStreamDFormer:
    torch.manual_seed(0)
    return DualStreamDFormer(
        num_classes=8,
        task="multiclass",
        preset="lite",
        in_channels=len(CHANNELS),
        band_names=CHANNELS,
        air_channels=5,
        aux_scale=2,
        vision_encoder=encoder,
        image_detail=True,
        detail_aux=True,
    )


def gflop(model: DualStreamDFormer) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.randn(1, 6, 512, 512), torch.randn(1, 5, 256, 256))
    return counter.get_total_flops() / 1e9


def step_seconds(model: DualStreamDFormer, optimizer: torch.optim.Optimizer) -> float:
    image, air = torch.randn(16, 6, 64, 64), torch.randn(16, 5, 32, 32)
    target = torch.randint(0, 8, (16, 64, 64))
    start = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(image, air)["final"], target)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {name: build(name) for name in ENCODERS}
    optimizers = {name: torch.optim.AdamW(m.parameters()) for name, m in models.items()}
    times: dict[str, list[float]] = {name: [] for name in ENCODERS}
    for name in ENCODERS:  # warm-up
        step_seconds(models[name], optimizers[name])
    for _ in range(args.repeats):
        for name in ENCODERS:
            times[name].append(step_seconds(models[name], optimizers[name]))
    base = statistics.median(times[ENCODERS[0]])
    rows = {}
    for name, model in models.items():
        step = statistics.median(times[name])
        rows[name] = {
            "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "vision_encoder_params_m": round(
                sum(p.numel() for p in model.vision_encoder.parameters()) / 1e6, 1
            ),
            "neck_params_m": round(sum(p.numel() for p in model.vision_neck.parameters()) / 1e6, 2),
            "gflop_512": round(gflop(model.eval()), 1),
            "train_step_s": round(step, 3),
            "train_step_vs_b0": round(step / base, 2),
        }
    print(json.dumps({"cpu": cpu_name(), "threads": args.threads, "encoders": rows}, indent=1))


if __name__ == "__main__":
    main()
