"""Model cost: DualStreamDFormer vs the same vision encoder + decoder without the air stream.

Parameters, FLOPs (torch.utils.flop_counter), forward and forward+backward time, and peak
memory at 256 and 512 px, batch 2. Peak memory is the peak RSS of a fresh child process
per configuration (CPU) or torch.cuda.max_memory_allocated (GPU). Times are medians of the
two models run alternately in one process. On a GPU, also bf16
autocast + channels_last training throughput at 512 px.

    python benchmarks/bench_model.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import torch
from common import peak_rss_mib
from torch.utils.flop_counter import FlopCounterMode

from dualstream_geo.models import DualStreamDFormer, VisionOnlyBaseline

KINDS = ("vision_only", "dual")


def build(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return DualStreamDFormer(num_classes=2) if kind == "dual" else VisionOnlyBaseline(num_classes=2)


def inputs(kind: str, size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    image = torch.randn(2, 4, size, size, device=device)
    if kind == "dual":
        return image, torch.randn(2, 48, size // 8, size // 8, device=device)
    return (image,)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(fns: dict[str, Any], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function, run alternately in this process so that
    both see the same machine state (the ratio is what matters)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up: first-touch allocations
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_memory(kind: str, size: int) -> float:
    """Peak memory (MiB) of one forward + backward in a fresh process (CPU: peak RSS)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(kind).to(device).train()
    model(*inputs(kind, size, device))["final"].float().mean().backward()
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mib()


def measure(size: int, repeats: int) -> dict[str, Any]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = {kind: build(kind).to(device).train() for kind in KINDS}
    args = {kind: inputs(kind, size, device) for kind in KINDS}
    row: dict[str, Any] = {kind: {} for kind in KINDS}
    for kind, model in models.items():
        with FlopCounterMode(display=False) as counter:
            model(*args[kind])["final"].sum().backward()
        model.zero_grad()
        row[kind]["params_M"] = sum(p.numel() for p in model.parameters()) / 1e6
        row[kind]["train_GFLOPs"] = counter.get_total_flops() / 1e9

    def forward(kind: str) -> Any:
        def run() -> None:
            with torch.no_grad():
                models[kind](*args[kind])

        return run

    def step(kind: str) -> Any:
        def run() -> None:
            models[kind](*args[kind])["final"].float().mean().backward()

        return run

    for name, maker in (("forward_s", forward), ("train_step_s", step)):
        for kind, seconds in interleaved({k: maker(k) for k in KINDS}, repeats, device).items():
            row[kind][name] = seconds
    for kind in KINDS:
        child = subprocess.run(
            [sys.executable, __file__, "--peak", kind, str(size)],
            check=True,
            capture_output=True,
            text=True,
        )
        row[kind]["peak_MiB"] = float(child.stdout.strip().splitlines()[-1])
    for name in ("train_step_s", "forward_s", "train_GFLOPs", "peak_MiB"):
        row[f"{name}_ratio"] = row["dual"][name] / row["vision_only"][name]
    return row


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

    return batch / interleaved({kind: step}, steps, device)[kind]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--peak", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.peak:
        print(peak_memory(args.peak[0], int(args.peak[1])))
        return
    results: dict[str, Any] = {}
    for size in (256, 512):
        row = measure(size, args.repeats)
        results[f"{size}px_batch2"] = row
        print(
            f"{size}px: train step ratio {row['train_step_s_ratio']:.2f}, "
            f"forward ratio {row['forward_s_ratio']:.2f}, "
            f"FLOPs ratio {row['train_GFLOPs_ratio']:.2f}"
        )
    if torch.cuda.is_available():
        results["gpu_bf16_channels_last_512px_images_per_s"] = {
            k: gpu_bf16_throughput(k) for k in KINDS
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
