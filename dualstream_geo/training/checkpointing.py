"""What makes a training run resumable exactly.

Checkpoints every epoch, the best score kept across folders, and per-epoch random seeds.

Each epoch's randomness (patch positions, augmentation, drop-path, modality dropout) comes
from (seed, epoch) alone, so a run resumed from the checkpoint written at the end of epoch e
trains epoch e + 1 exactly as an uninterrupted run does.
"""

from __future__ import annotations

import os
import random
from typing import Any, override

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint


class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt``: the best ``monitor`` so far.

    . Resuming restores the best score even when the run folder was copied or moved
    (Lightning keeps it only for the same folder, so a worse epoch could replace the best
    checkpoint).
    """

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        score = state_dict.get("best_model_score")
        if score is None:
            return
        name = os.path.basename(state_dict.get("best_model_path") or "")
        path = os.path.join(self.dirpath, name) if self.dirpath and name else ""
        self.best_model_score = score
        self.best_model_path = path
        self.best_k_models = {path: score} if path else {}
        self.kth_best_model_path, self.kth_value = path, score


def last_checkpoint(dirpath: str, every_n_steps: int | None = None) -> ModelCheckpoint:
    """``last.ckpt``, rewritten at the end of every epoch: what ``--ckpt_path last`` resumes.

    Args:
        dirpath: the run's checkpoint folder.
        every_n_steps: also rewrite it every this many training steps.

    Returns:
        The checkpoint callback.
    """
    return ModelCheckpoint(
        dirpath=dirpath,
        filename="last",
        monitor=None,
        save_top_k=1,
        every_n_train_steps=every_n_steps,
        enable_version_counter=False,
    )


def epoch_checkpoints(dirpath: str) -> ModelCheckpoint:
    """``epoch=N.ckpt`` for every epoch, weights only (no optimiser state).

    For scoring a run epoch by epoch afterwards (a learning curve), not for resuming.
    """
    return ModelCheckpoint(
        dirpath=dirpath,
        filename="{epoch:02d}",
        monitor=None,
        save_top_k=-1,
        every_n_epochs=1,
        save_weights_only=True,
        enable_version_counter=False,
    )


class EpochSeeds(Callback):
    """Reseed Python, NumPy and torch at the start of every training epoch from (seed, epoch, rank).

    The seed is the run's ``seed_everything`` value (``PL_GLOBAL_SEED``). Ranks get
    different drop-path and dropout draws; rank 0 those of a single process.
    """

    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        base = int(os.environ.get("PL_GLOBAL_SEED", 0))
        seed = (base * 1_000_003 + trainer.current_epoch + trainer.global_rank * 7_654_321) % 2**32
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
