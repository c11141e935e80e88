"""A callback that measures training throughput (used by bench_distributed.py through the
CLI, so it must be importable by every DDP rank: run with PYTHONPATH=benchmarks)."""

from __future__ import annotations

import json
import time
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class Throughput(Callback):
    """Samples/s over all ranks between the end of step ``warmup`` and the last step,
    written by rank 0 to ``path`` as JSON."""

    def __init__(self, path: str, warmup: int = 2) -> None:
        self.path, self.warmup = path, warmup
        self.start = 0.0
        self.samples = 0

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if trainer.global_step == self.warmup:
            self.start, self.samples = time.perf_counter(), 0
        elif trainer.global_step > self.warmup:
            self.samples += len(batch["image"]) * trainer.world_size

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == 0:
            elapsed = time.perf_counter() - self.start
            with open(self.path, "w") as f:
                json.dump({"samples": self.samples, "seconds": elapsed}, f)
