"""Training defaults of the task.

Some depending on whether the encoders start from pretrained weights.

The original recipe freezes its pretrained encoders for the first epochs, so that the
randomly initialised fusion and decoder do not wreck features learned elsewhere. From random
weights that makes no sense: a frozen random encoder only teaches the decoder to read noise
(on Zion, a frozen epoch out of eight cost as much as it gave). So the encoders are frozen
by default only when one of them starts from weights. An explicit ``freeze_epochs`` wins.

The per-part learning-rate multipliers keep the original's (vision 0.1, air 0.5) in both
cases: from scratch, 1.0 for the encoders measured no better on Zion (experiments/README).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PARTS = ("vision_encoder", "air_encoder", "fusion", "decoder")
#: Epochs with frozen encoders when an encoder starts from pretrained weights (the original).
PRETRAINED_FREEZE_EPOCHS = 2
#: Per-part learning-rate multipliers (the original's).
MULTIPLIERS = {"vision_encoder": 0.1, "air_encoder": 0.5, "fusion": 1.0, "decoder": 1.0}


def starts_pretrained(hparams: Mapping[str, Any]) -> bool:
    """True when the model or one of its encoders is initialised from weights."""
    return any(hparams.get(key) for key in ("weights", "vision_weights", "aux_weights"))


def freeze_epochs(hparams: Mapping[str, Any]) -> int:
    """``freeze_epochs`` as given, else 2 with pretrained encoders and 0 without."""
    if hparams.get("freeze_epochs") is not None:
        return int(hparams["freeze_epochs"])
    return PRETRAINED_FREEZE_EPOCHS if starts_pretrained(hparams) else 0


def lr_multipliers(hparams: Mapping[str, Any]) -> dict[str, float]:
    """The learning-rate multiplier of every part.

    The defaults updated by the ``lr_multipliers`` given.
    """
    return {**MULTIPLIERS, **(hparams.get("lr_multipliers") or {})}
