"""The optimiser: AdamW over one parameter group per model part, and its schedule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn
from torch.optim import AdamW

from ..models import DualStreamDFormer
from .defaults import PARTS
from .schedule import INTERVALS, build_schedule

#: The parts the two-stage schedule freezes: their groups keep frozen parameters, which
#: train once unfrozen.
FREEZABLE = ("vision_encoder", "air_encoder")


def param_groups(
    model: DualStreamDFormer, lr: float, multipliers: Mapping[str, float]
) -> list[dict[str, Any]]:
    """One AdamW group per model part (:data:`~.defaults.PARTS`), at ``lr`` x its multiplier.

    A TorchGeo encoder's neck trains with the fusion (it is new in every model); the learned
    "air absent" input with the air encoder, when it trains; parameters that never train
    (the original's unused boundary branch) are left out.

    Args:
        model: the model.
        lr: the base learning rate.
        multipliers: each part's learning-rate multiplier.

    Returns:
        The groups, named by part, in :data:`~.defaults.PARTS` order.
    """
    groups = []
    for part in PARTS:
        params = list(getattr(model, part).parameters())
        if part == "fusion":
            params += list(model.vision_neck.parameters())
        absent = model.air_absent
        if part == "air_encoder" and isinstance(absent, nn.Parameter) and absent.requires_grad:
            params.append(absent)
        params = [p for p in params if p.requires_grad or part in FREEZABLE]
        groups.append({"name": part, "params": params, "lr": lr * multipliers[part]})
    return groups


def optimizer_config(
    groups: list[dict[str, Any]],
    hparams: Mapping[str, Any],
    max_epochs: int | None,
    total_steps: int | None,
    frozen_epochs: int,
) -> dict[str, Any]:
    """AdamW over ``groups`` and the task's schedule, as Lightning's optimiser configuration.

    Args:
        groups: the parameter groups (:func:`param_groups`).
        hparams: the task's ``lr``, ``weight_decay``, ``lr_schedule``, ``min_lr`` and
            ``warmup_epochs``.
        max_epochs: the run's epochs (None or < 1: one).
        total_steps: the run's optimiser steps, for a schedule stepped per step.
        frozen_epochs: epochs with frozen encoders.

    Returns:
        ``{"optimizer": ..., "lr_scheduler": {"scheduler": ..., "interval": ...}}``.
    """
    optimizer = AdamW(groups, lr=hparams["lr"], weight_decay=hparams["weight_decay"])
    epochs = max_epochs if max_epochs and max_epochs > 0 else 1
    name = hparams["lr_schedule"]
    steps = max(1, total_steps or 1) if INTERVALS[name] == "step" else 1
    scheduler = build_schedule(
        optimizer,
        name,
        max_epochs=epochs,
        frozen_epochs=frozen_epochs,
        min_lr=hparams["min_lr"],
        total_steps=steps,
        warmup_steps=round(hparams["warmup_epochs"] * steps / epochs),
    )
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": INTERVALS[name]},
    }
