"""A callback that plots loss and IoU per epoch to a PNG at the end of ``fit``."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import override

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

CURVES = {
    "loss": ("train_loss", "val_loss"),
    "mean IoU": ("train_AverageJaccardIndex", "val_AverageJaccardIndex"),
}


class TrainingCurves(Callback):
    """Record epoch-level metrics and write ``path`` (loss and IoU per epoch) after fit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.history: dict[str, dict[int, float]] = defaultdict(dict)

    def _record(self, trainer: pl.Trainer) -> None:
        if trainer.sanity_checking:
            return
        for names in CURVES.values():
            for name in names:
                value = trainer.callback_metrics.get(name)
                if value is not None:
                    self.history[name][trainer.current_epoch] = float(value)

    @override
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer)

    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._record(trainer)

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or not self.history:
            return
        # The Figure API draws without pyplot, so a notebook's backend is left alone.
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
        axes = fig.subplots(1, 2)
        for ax, (title, names) in zip(axes, CURVES.items(), strict=True):
            for name in names:
                points = sorted(self.history.get(name, {}).items())
                if points:
                    ax.plot([e for e, _ in points], [v for _, v in points], marker="o", label=name)
            ax.set_xlabel("epoch")
            ax.set_title(title)
            if ax.lines:
                ax.legend()
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fig.savefig(self.path, dpi=100)
