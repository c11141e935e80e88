"""Learning-rate schedules.

``cosine``: every group follows a cosine from its initial rate at epoch 0 to ``min_lr`` at
the last epoch, frozen epochs included. ``original`` (the original project's): the initial
rates while the encoders are frozen, then ``CosineAnnealingLR(T_max = the remaining
epochs, eta_min = min_lr)``, so unfrozen epoch e (1-based) runs at
``min_lr + (lr - min_lr) * (1 + cos(pi * (e - 1) / T_max)) / 2``. Both step once per epoch.

``warmup_cosine`` (for training from scratch): stepped every optimiser step, a linear
warm-up from ``lr / warmup_steps`` to ``lr`` over the first ``warmup_steps``, then a cosine
to ``min_lr`` at the last step. A transformer's attention and LayerNorm statistics are
unstable at full rate from random weights: the warm-up lets AdamW's moment estimates settle
before the steps are large.
"""

from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler

SCHEDULES = ("cosine", "original", "warmup_cosine")
#: How often each schedule steps (Lightning's ``interval``).
INTERVALS = {"cosine": "epoch", "original": "epoch", "warmup_cosine": "step"}


def _original_factor(
    epoch: int, base: float, min_lr: float, frozen_epochs: int, cosine_epochs: int
) -> float:
    if epoch < frozen_epochs:
        return 1.0
    position = min(epoch - frozen_epochs, cosine_epochs)
    cosine = (1 + math.cos(math.pi * position / cosine_epochs)) / 2
    return (min_lr + (base - min_lr) * cosine) / base


def _warmup_cosine_factor(
    step: int, base: float, min_lr: float, warmup_steps: int, total_steps: int
) -> float:
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    # the last warm-up step is the peak: the cosine starts one step below it
    position = min(1.0, (step + 1 - warmup_steps) / max(1, total_steps - warmup_steps))
    cosine = (1 + math.cos(math.pi * position)) / 2
    return (min_lr + (base - min_lr) * cosine) / base


def build_schedule(
    optimizer: Optimizer,
    name: str,
    max_epochs: int,
    frozen_epochs: int,
    min_lr: float,
    total_steps: int = 1,
    warmup_steps: int = 0,
) -> LRScheduler:
    """The scheduler ``name`` for a run of ``max_epochs`` epochs.

    Step it as :data:`INTERVALS` says.

    Args:
        optimizer: the optimiser whose groups' learning rates it sets.
        name: ``cosine``, ``original`` or ``warmup_cosine``.
        max_epochs: the run's epochs.
        frozen_epochs: epochs with frozen encoders at the start.
        min_lr: the learning rate the schedule decays to.
        total_steps: the run's optimiser steps (``warmup_cosine``).
        warmup_steps: how many of them warm up (``warmup_cosine``).

    Returns:
        The scheduler.
    """
    if name == "warmup_cosine":
        factors = [
            partial(
                _warmup_cosine_factor,
                base=group["lr"],
                min_lr=min_lr,
                warmup_steps=max(1, warmup_steps),
                total_steps=max(1, total_steps),
            )
            for group in optimizer.param_groups
        ]
        return LambdaLR(optimizer, factors)  # type: ignore[arg-type]
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=max(1, max_epochs - 1), eta_min=min_lr)
    if name == "original":
        cosine_epochs = max(1, max_epochs - frozen_epochs)
        factors = [
            partial(
                _original_factor,
                base=group["lr"],
                min_lr=min_lr,
                frozen_epochs=frozen_epochs,
                cosine_epochs=cosine_epochs,
            )
            for group in optimizer.param_groups
        ]
        return LambdaLR(optimizer, factors)  # type: ignore[arg-type]
    raise ValueError(f"lr_schedule must be one of {SCHEDULES}, got {name!r}")
