"""Model cost: DualStreamDFormer vs the same vision encoder + decoder without the air stream.

Parameters, FLOPs (torch.utils.flop_counter), forward and forward+backward time, and peak
memory at 256 and 512 px, batch 2. Peak memory is the peak RSS of a fresh child process
per configuration (CPU) or torch.cuda.max_memory_allocated (GPU). On a GPU, also bf16
autocast + channels_last training throughput at 512 px.

    python benchmarks/bench_model.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from dualstream_geo.models import DualStreamDFormer, VisionOnlyBaseline


def build(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return DualStreamDFormer(num_classes=2) if kind == "dual" else VisionOnlyBaseline(num_classes=2)


def inputs(kind: str, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    image = torch.randn(2, 4, size, size, device=device)
    if kind == "dual":
        return image, torch.randn(2, 48, size // 8, size // 8, device=device)
    return (image,)


def timed(fn: Any, repeats: int, device: torch.device) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def measure(kind: str, size: int, repeats: int) -> dict[str, float]:
    """One configuration, meant to run in its own process (peak RSS is per process)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(kind).to(device).train()
    args = inputs(kind, size, device)
    with FlopCounterMode(display=False) as counter:
        model(*args)["final"].sum().backward()
    train_flops = counter.get_total_flops()
    model.zero_grad()

    def forward() -> None:
        with torch.no_grad():
            model(*args)

    def step() -> None:
        model(*args)["final"].float().mean().backward()

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    forward_s = timed(forward, repeats, device)
    step_s = timed(step, repeats, device)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "train_GFLOPs": train_flops / 1e9,
        "forward_s": forward_s,
        "train_step_s": step_s,
        "peak_MiB": peak,
        "rss_before_MiB": baseline / 1024,
    }


def gpu_bf16_throughput(kind: str, size: int = 512, batch: int = 8, steps: int = 20) -> float:
    device = torch.device("cuda")
    model = build(kind).to(device).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    args = [a.to(memory_format=torch.channels_last) for a in inputs(kind, size, device)]
    args = [a.repeat(batch // 2, 1, 1, 1) for a in args]

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(*args)["final"].float().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return batch / timed(step, steps, device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--one", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.repeats)))
        return
    results: dict[str, Any] = {}
    for size in (256, 512):
        row = {}
        for kind in ("vision_only", "dual"):
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--repeats",
                    str(args.repeats),
                    "--one",
                    kind,
                    str(size),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            row[kind] = json.loads(child.stdout.strip().splitlines()[-1])
        row["train_step_ratio"] = row["dual"]["train_step_s"] / row["vision_only"]["train_step_s"]
        row["forward_ratio"] = row["dual"]["forward_s"] / row["vision_only"]["forward_s"]
        row["flops_ratio"] = row["dual"]["train_GFLOPs"] / row["vision_only"]["train_GFLOPs"]
        results[f"{size}px_batch2"] = row
        print(
            f"{size}px: train step ratio {row['train_step_ratio']:.2f}, forward ratio {row['forward_ratio']:.2f}, "
            f"FLOPs ratio {row['flops_ratio']:.2f}"
        )
    if torch.cuda.is_available():
        results["gpu_bf16_channels_last_512px_images_per_s"] = {
            k: gpu_bf16_throughput(k) for k in ("vision_only", "dual")
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
