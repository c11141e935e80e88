"""Model cost of the presets, side by side in one run.

* ``original``: the original preset as imported checkpoints run it (boundary branch off, gate
  evaluated once): the original's numbers;
* ``original_code``: the same weights with the original code's extra work emulated (the
  boundary-refinement branch computed and its output discarded, each stage 1-2 gate
  evaluated twice), i.e. the original implementation's operation count;
* ``lite``: the lite preset.

Parameters, GFLOP of one 512 px forward (torch.utils.flop_counter: 2 FLOP per
multiply-add; convolutions, matmuls and attention), forward and training-step (forward,
loss, backward, AdamW step) time at 256 and 512 px, batch 2: medians of the presets run
alternately in one process. Peak memory: peak RSS of a fresh process doing one training
step (CPU) or torch.cuda.max_memory_allocated (GPU). On a GPU also bf16 autocast samples/s
at 512 px, batch 8, with channels_last and torch.compile each on and off.

    python benchmarks/bench_model.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from common import peak_rss_mib
from torch.utils.flop_counter import FlopCounterMode

from dualstream_geo.models import DualStreamDFormer

PRESETS = ("original_code", "original", "lite")


def build(kind: str) -> DualStreamDFormer:
    torch.manual_seed(0)
    if kind == "lite":
        return DualStreamDFormer(preset="lite")
    model = DualStreamDFormer(use_boundary_refine=False, gate_twice=kind == "original_code")
    if kind == "original_code":
        decoder = model.decoder

        def discarded_boundary(module: torch.nn.Module, args: object, output: torch.Tensor) -> None:
            # The original computes the boundary branch on the full-resolution map, unused.
            decoder.boundary_refine(output)

        decoder.up_conv_2.register_forward_hook(discarded_boundary)
    return model


def inputs(size: int, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.rand(batch, 4, size, size, device=device),
        torch.rand(batch, 48, size // 8, size // 8, device=device),
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(
    fns: dict[str, Callable[[], None]], repeats: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each function, run alternately in this process so that
    all see the same machine state (ratios are what matter)."""
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


def training_step(model: DualStreamDFormer, args: tuple[torch.Tensor, ...]) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    target = torch.rand(args[0].shape[0], *args[0].shape[-2:], device=args[0].device) > 0.5

    def run() -> None:
        logits = model(*args)["final"][:, 0].float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return run


def forward_flops(kind: str, size: int = 512) -> float:
    model = build(kind).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs(size, 1, torch.device("cpu")))
    return counter.get_total_flops() / 1e9


def peak_memory(kind: str, size: int) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build(kind).to(device).train()
    training_step(model, inputs(size, 2, device))()
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mib()


def measure(size: int, repeats: int) -> dict[str, Any]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = {kind: build(kind).to(device) for kind in PRESETS}
    args = inputs(size, 2, device)
    row: dict[str, Any] = {kind: {} for kind in PRESETS}

    def forward(kind: str) -> Callable[[], None]:
        def run() -> None:
            models[kind].eval()
            with torch.no_grad():
                models[kind](*args)

        return run

    steps = {}
    for kind in PRESETS:
        models[kind].train()
        steps[kind] = training_step(models[kind], args)
    for name, fns in (
        ("forward_s", {k: forward(k) for k in PRESETS}),
        ("train_step_s", steps),
    ):
        for kind, seconds in interleaved(fns, repeats, device).items():
            row[kind][name] = seconds
    for kind in PRESETS:
        child = subprocess.run(
            [sys.executable, __file__, "--peak", kind, str(size)],
            check=True,
            capture_output=True,
            text=True,
        )
        row[kind]["peak_MiB"] = float(child.stdout.strip().splitlines()[-1])
    for name in ("forward_s", "train_step_s", "peak_MiB"):
        row[f"original/original_code {name}"] = row["original"][name] / row["original_code"][name]
        row[f"lite/original {name}"] = row["lite"][name] / row["original"][name]
    return row


def gpu_throughput(kind: str, channels_last: bool, compile: bool, steps: int = 20) -> float:
    """bf16 autocast training samples/s at 512 px, batch 8."""
    device = torch.device("cuda")
    model = build(kind).to(device).train()
    image, air = inputs(512, 8, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        image, air = (t.to(memory_format=torch.channels_last) for t in (image, air))
    forward = torch.compile(model) if compile else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = forward(image, air)["final"].float().mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # compile and warm up
        step()
    return 8 / interleaved({kind: step}, steps, device)[kind]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--peak", nargs=2, metavar=("KIND", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        torch.set_num_threads(2)
    if args.peak:
        print(peak_memory(args.peak[0], int(args.peak[1])))
        return
    results: dict[str, Any] = {
        "params_M": {k: sum(p.numel() for p in build(k).parameters()) / 1e6 for k in PRESETS},
        "forward_GFLOP_512px": {k: forward_flops(k) for k in PRESETS},
    }
    for size in (256, 512):
        results[f"{size}px_batch2"] = measure(size, args.repeats)
    if torch.cuda.is_available():
        results["gpu_bf16_512px_batch8_samples_per_s"] = {
            f"{k} channels_last={cl} compile={c}": gpu_throughput(k, cl, c)
            for k in ("original", "lite")
            for cl in (False, True)
            for c in (False, True)
        }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
