"""The callbacks of a ``fit`` run: the two-stage schedule, seeds, checkpoints and curves."""

from __future__ import annotations

import os

from lightning.pytorch.callbacks import Callback

from .checkpoint_io import AtomicCheckpoints
from .checkpointing import BestCheckpoint, EpochSeeds, epoch_checkpoints, last_checkpoint
from .curves import TrainingCurves
from .finetuning import TwoStageFinetuning
from .settings import CheckpointSettings


def fit_callbacks(root: str, saving: CheckpointSettings, frozen_epochs: int) -> list[Callback]:
    """What a run under ``root`` writes and how it schedules its encoders.

    Args:
        root: the run's folder (``trainer.default_root_dir``).
        saving: which checkpoints to write.
        frozen_epochs: epochs with frozen encoders.

    Returns:
        The callbacks: ``TwoStageFinetuning``, ``EpochSeeds``, ``best.ckpt``, ``last.ckpt``
        (written beside their targets: ``AtomicCheckpoints``), the training curves and, when
        asked, every epoch's checkpoint.
    """
    folder = os.path.join(root, "checkpoints")
    callbacks: list[Callback] = [
        # BatchNorm layers (a ResNet's) keep learning their statistics while frozen: the
        # data is not the weights' pretraining data.
        TwoStageFinetuning(frozen_epochs, train_bn=True),
        EpochSeeds(),
        AtomicCheckpoints(),
        BestCheckpoint(
            dirpath=folder,
            filename="best",
            monitor=saving.monitor,
            mode="min" if saving.monitor.endswith("loss") else "max",
            enable_version_counter=False,
        ),
        last_checkpoint(folder, saving.every_n_steps),
        TrainingCurves(os.path.join(root, "training_curves.png")),
    ]
    if saving.keep_epochs:
        callbacks.append(epoch_checkpoints(os.path.join(folder, "epochs")))
    return callbacks
