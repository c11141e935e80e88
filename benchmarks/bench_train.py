"""Training throughput on the demo scenes: samples/s and the share of step time spent waiting
for data, with 0 and 2 DataLoader workers (data + model, real Lightning loop).

``--recipe``: samples/s of a real recipe (the zion_dem.yaml one by default, on the Zion
data its configs name) through ``dualstream-geo fit`` itself, for each detail path
(``--designs``, all by default), in fp32 and, where the CPU has it natively, bf16 mixed
precision; the first design is the ratios' baseline.

    python benchmarks/bench_train.py [--samples 128] [--patch 64]
    python benchmarks/bench_train.py --recipe [--steps 24] [--designs dense spectral_wide]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from dualstream_geo.data import DEMO_CLASS_MAP, ClassSpec, make_demo_scenes
from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.data.settings import LoaderSettings
from dualstream_geo.models.detail import DETAIL_DESIGNS
from dualstream_geo.models.settings import ArchitectureSettings
from dualstream_geo.precision import describe_cpu, native_bf16
from dualstream_geo.training import DualStreamSegmentation
from dualstream_geo.training.trainer_defaults import default_precision

HERE = Path(__file__).resolve().parent
RECIPE = [HERE.parent / "experiments" / "zion.yaml", HERE.parent / "experiments" / "zion_dem.yaml"]


class StepTimer(Callback):
    """Wall time of each training step, split into waiting for the batch and computing."""

    def __init__(self) -> None:
        self.wait: list[float] = []
        self.step: list[float] = []
        self._end: float | None = None
        self._start = 0.0

    def on_train_epoch_start(self, trainer: Trainer, module: LightningModule) -> None:
        self._end = time.perf_counter()

    def on_train_batch_start(
        self, trainer: Trainer, module: LightningModule, batch: Any, index: int
    ) -> None:
        self._start = time.perf_counter()
        if self._end is not None:
            self.wait.append(self._start - self._end)

    def on_train_batch_end(
        self, trainer: Trainer, module: LightningModule, outputs: Any, batch: Any, index: int
    ) -> None:
        self._end = time.perf_counter()
        self.step.append(self._end - self._start)


def run(
    root: Path, workers: int, samples: int, patch: int, batch: int, preset: str = "original"
) -> dict[str, float]:
    """samples/s and the share of step time waiting for data of one epoch of ``samples``
    patches from the scenes under ``root`` (``train/``), with ``workers`` loader processes."""
    datamodule = DualStreamDataModule(
        root=str(root),
        classes=ClassSpec(map=DEMO_CLASS_MAP),
        aux="original",
        patch_size=patch,
        batch_size=batch,
        length=samples,
        loader=LoaderSettings(num_workers=workers),
        stats_path=str(root / "stats.json"),
    )
    task = DualStreamSegmentation(
        input_spec=datamodule.input_spec,
        architecture=ArchitectureSettings(preset=preset),  # type: ignore[arg-type]
        freeze_epochs=0,
    )
    timer = StepTimer()
    trainer = Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[timer],
        precision=default_precision(),
        default_root_dir=str(root),
    )  # type: ignore[arg-type]
    trainer.fit(task, datamodule)
    # The first step includes worker start-up and first-touch allocations: left out.
    wait, step = sum(timer.wait[1:]), sum(timer.step[1:])
    return {
        "samples_per_s": batch * (len(timer.step) - 1) / (wait + step),
        "data_wait_share": wait / (wait + step),
    }


def recipe_rate(root: Path, configs: list[Path], steps: int, design: str, precision: str) -> float:
    """Training samples/s of ``dualstream-geo fit`` with ``configs`` after 2 warm-up steps
    (``throughput.Throughput``), ``steps`` steps of one epoch, no validation."""
    root.mkdir(parents=True, exist_ok=True)
    callbacks = root / "callbacks.json"
    callback = {"class_path": "throughput.Throughput", "init_args": {"path": str(root / "t.json")}}
    callbacks.write_text(json.dumps({"trainer": {"callbacks": [callback]}}))
    batch = 16
    command = [
        str(Path(sys.executable).with_name("dualstream-geo")),
        "fit",
        *(f"--config={config}" for config in configs),
        f"--config={callbacks}",
        f"--trainer.default_root_dir={root}",
        f"--data.stats_path={root / 'stats.json'}",
        "--trainer.max_epochs=1",
        f"--data.length={batch * (steps + 2)}",
        f"--data.batch_size={batch}",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_progress_bar=false",
        f"--trainer.precision={precision}",
        f"--model.architecture.detail_design={design}",
    ]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=HERE.parent)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads((root / "t.json").read_text())
    return result["samples"] / result["seconds"]


def recipe(steps: int, designs: list[str]) -> dict[str, Any]:
    """samples/s of the zion_dem.yaml recipe with each of ``designs``, fp32 and bf16."""
    precisions = ["32-true", "bf16-mixed"] if native_bf16("cpu") else ["32-true"]
    results: dict[str, Any] = {"cpu": describe_cpu()}
    with tempfile.TemporaryDirectory() as tmp:
        for design in designs:
            for precision in precisions:
                rate = recipe_rate(
                    Path(tmp) / f"{design}_{precision}", RECIPE, steps, design, precision
                )
                results[f"{design}, {precision}"] = round(rate, 2)
                print(design, precision, results[f"{design}, {precision}"], flush=True)
    base = results[f"{designs[0]}, 32-true"]
    results[f"vs {designs[0]} fp32"] = {
        key: round(value / base, 2) for key, value in results.items() if key.count(",") == 1
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--recipe", action="store_true", help="the zion_dem.yaml recipe's rates")
    parser.add_argument("--steps", type=int, default=24, help="timed steps per --recipe run")
    parser.add_argument(
        "--designs", nargs="+", choices=DETAIL_DESIGNS, default=list(DETAIL_DESIGNS)
    )
    args = parser.parse_args()
    if args.recipe:
        missing = [p for p in ("../shared/data/zion",) if not (HERE.parent / p).exists()]
        if missing:
            sys.exit(f"bench_train.py: {missing[0]} (the configs' data) does not exist")
        print(json.dumps(recipe(args.steps, args.designs), indent=2))
        return
    torch.set_num_threads(2)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        make_demo_scenes(tmp)
        for workers in (0, 2):
            results[f"workers{workers}"] = run(
                Path(tmp), workers, args.samples, args.patch, args.batch
            )
            print(workers, results[f"workers{workers}"])
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
