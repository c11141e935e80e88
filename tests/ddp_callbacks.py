"""Callbacks that DDP tests pass to ``dualstream-geo fit`` by class path (the ranks are
separate processes, so what they saw is written to files)."""

from __future__ import annotations

import json
import os
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback


class RecordBounds(Callback):
    """Write each rank's training patch bounds per epoch to ``folder/rank<r>_epoch<e>.json``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.bounds: list[list[float]] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.bounds.extend(batch["bounds"].tolist())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        os.makedirs(self.folder, exist_ok=True)
        name = f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        with open(os.path.join(self.folder, name), "w") as f:
            json.dump(self.bounds, f)
        self.bounds = []


class FailAtStep(Callback):
    """Stop the run with an error at global step ``step`` (a crash mid-epoch)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"killed at step {self.step}")
