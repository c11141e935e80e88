"""CPU training step with glibc's default malloc against ``keep_freed_memory()`` (what the
``dualstream-geo`` command sets), and the metrics' cost with logits against class indices.

Each malloc setting runs in a fresh process (mallopt cannot be undone), alternately, and
the median step time of each is reported with their ratio. The training step is the task's
own: forward, deep-supervision loss, metrics update, backward, AdamW step.

    python benchmarks/bench_cpu_memory.py [--preset lite] [--patch 64] [--batch 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch


def step_times(preset: str, patch: int, batch: int, steps: int, detail: bool) -> list[float]:
    from dualstream_geo.training import DualStreamSegmentation

    torch.manual_seed(0)
    from dualstream_geo.data import ClassSpec, InputSpec
    from dualstream_geo.models.settings import ArchitectureSettings
    from dualstream_geo.training import LossSettings

    task = DualStreamSegmentation(
        input_spec=InputSpec(classes=ClassSpec(names=tuple(f"c{i}" for i in range(8)))),
        architecture=ArchitectureSettings(preset=preset, image_detail=detail),  # type: ignore[arg-type]
        loss=LossSettings(ce_weight=1.0, focal_weight=0.0, lovasz_weight=0.0),
    )
    task.train()
    optimizer = torch.optim.AdamW(task.parameters(), 1e-4)
    image = torch.randn(batch, 4, patch, patch)
    mask = torch.randint(0, 8, (batch, patch, patch))
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        outputs = task(image)
        loss = task.criterion(outputs, mask)
        task.train_metrics(task._scores(outputs), mask)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    return times[1:]  # the first step's allocations are first touches either way


def metric_times(repeats: int = 5) -> dict[str, float]:
    from dualstream_geo.data import ClassSpec, InputSpec
    from dualstream_geo.training import DualStreamSegmentation

    classes = ClassSpec(names=tuple(f"c{i}" for i in range(8)))
    task = DualStreamSegmentation(input_spec=InputSpec(classes=classes))
    logits = torch.randn(16, 8, 64, 64)
    mask = torch.randint(0, 8, (16, 64, 64))
    result = {}
    for name, scores in (("logits", lambda: logits), ("indices", lambda: logits.argmax(1))):
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            task.train_metrics(scores(), mask)
            runs.append(time.perf_counter() - start)
        result[name] = statistics.median(runs)
    return result


def child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    if args.child == "keep":
        from dualstream_geo.memory import keep_freed_memory

        assert keep_freed_memory(), "keep_freed_memory needs Linux with glibc"
    times = step_times(args.preset, args.patch, args.batch, args.steps, args.detail)
    print(json.dumps({"median_s": statistics.median(times), "metrics": metric_times()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="lite", choices=("lite", "original"))
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--detail", action="store_true", help="with the image_detail path")
    parser.add_argument("--child", choices=("default", "keep"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    forwarded = [
        f"--preset={args.preset}",
        f"--patch={args.patch}",
        f"--batch={args.batch}",
        f"--steps={args.steps}",
        f"--threads={args.threads}",
        *(["--detail"] if args.detail else []),
    ]
    medians: dict[str, list[float]] = {"default": [], "keep": []}
    metrics = {}
    for _ in range(args.rounds):
        for setting in medians:
            out = subprocess.run(
                [sys.executable, __file__, f"--child={setting}", *forwarded],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            result = json.loads(out.strip().splitlines()[-1])
            medians[setting].append(result["median_s"])
            metrics = result["metrics"]
    default, keep = (statistics.median(medians[s]) for s in ("default", "keep"))
    print(
        json.dumps(
            {
                "setting": forwarded,
                "step_s": {"glibc_default": round(default, 3), "keep_freed": round(keep, 3)},
                "speedup": round(default / keep, 2),
                "metrics_update_s": {k: round(v, 4) for k, v in metrics.items()},
                "metrics_speedup": round(metrics["logits"] / metrics["indices"], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
