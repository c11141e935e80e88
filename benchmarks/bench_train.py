"""Training throughput on the demo scenes: samples/s and the share of step time spent waiting
for data, with 0 and 2 DataLoader workers (data + model, real Lightning loop).

    python benchmarks/bench_train.py [--samples 128] [--patch 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from dualstream_geo.data import DEMO_CLASS_MAP, ClassSpec, make_demo_scenes
from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.data.settings import LoaderSettings
from dualstream_geo.training import DualStreamSegmentation
from dualstream_geo.training.trainer_defaults import default_precision


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
        preset=preset,  # type: ignore[arg-type]
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
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
