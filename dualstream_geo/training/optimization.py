"""The optimiser's parameter groups: one per model part, each at its own learning rate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..models import DualStreamDFormer
from .defaults import PARTS

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
