"""What a checkpoint carries besides the weights, written and read in one place.

``checkpoint["dualstream_geo"]`` holds ``format`` (2), the :class:`~dualstream_geo.data.
spec.InputSpec` as plain values and the class weights ``loss.class_balance`` computed; the
task's hyper-parameters are the model and training settings alone. Checkpoints written
before the input spec existed (format 1: the spec spread over the hyper-parameters and a
hand-written metadata dict; ``import-original``'s own variant) are converted on read by
:mod:`~dualstream_geo.training.legacy`.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ..data.spec import InputSpec
from ..errors import DualStreamError
from ..torchfiles import load_torch_file
from .legacy import is_legacy, legacy_hparams, legacy_spec
from .renamed import renamed_hparams

#: The checkpoint entry of this project.
CHECKPOINT_KEY = "dualstream_geo"
FORMAT = 2
PathLike = str | os.PathLike[str]


def store_spec(checkpoint: dict[str, Any], spec: InputSpec, **extra: Any) -> None:
    """Write ``spec`` (and plain ``extra`` values) into ``checkpoint``.

    Args:
        checkpoint: the checkpoint being saved.
        spec: the input spec to store.
        **extra: plain values stored beside it (None values are left out).
    """
    checkpoint[CHECKPOINT_KEY] = {
        "format": FORMAT,
        "input_spec": spec.to_dict(),
        **{k: v for k, v in extra.items() if v is not None},
    }


def read_spec(checkpoint: dict[str, Any], path: PathLike) -> InputSpec:
    """The :class:`InputSpec` a checkpoint (a loaded dict) was trained with.

    Args:
        checkpoint: the loaded checkpoint.
        path: its file, for messages.

    Returns:
        The checkpoint's input spec (a format-1 checkpoint's converted).

    Raises:
        DualStreamError: the checkpoint is not one of this project's (names ``path``).
    """
    entry = checkpoint.get(CHECKPOINT_KEY)
    try:
        if isinstance(entry, dict) and entry.get("format") == FORMAT:
            return InputSpec.from_dict(entry["input_spec"])
        if is_legacy(checkpoint):
            return legacy_spec(checkpoint)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, DualStreamError):
            raise DualStreamError(f"{path}: {error}") from None
        raise DualStreamError(
            f"{path}: its input spec is unreadable ({type(error).__name__}: {error})"
        ) from None
    raise DualStreamError(f"{path}: not a dualstream_geo checkpoint (no input spec)")


def task_hparams(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The task's settings from a checkpoint, in today's form (format 1 converted)."""
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    hparams.pop("_instantiator", None)
    hparams = legacy_hparams(hparams) if is_legacy(checkpoint) else hparams
    hparams, _ = renamed_hparams(hparams)
    architecture = hparams["architecture"] = dict(hparams.get("architecture") or {})
    # Checkpoints written before the setting existed have the lite stem with a LayerNorm.
    architecture.setdefault("aux_stem", "layernorm")
    # ... and a detail path that reads the image alone.
    architecture.setdefault("detail_aux", False)
    # ... and attention, normalisation and pooling over the whole window.
    architecture.setdefault("context", "window")
    # ... and a detail path of dense 3 x 3 convolutions.
    architecture.setdefault("detail_design", "dense")
    return hparams


def read_checkpoint(path: PathLike) -> dict[str, Any]:
    """A training checkpoint of this project, loaded safely (``weights_only``).

    Raises:
        DualStreamError: missing, unreadable, or not a training checkpoint.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DualStreamError(f"{path}: checkpoint not found")
    raw = load_torch_file(path, "dualstream_geo checkpoint")
    if not isinstance(raw, dict) or not {"state_dict", "hyper_parameters"} <= raw.keys():
        raise DualStreamError(f"{path}: not a dualstream_geo checkpoint (a training checkpoint)")
    return raw


def file_sha256(path: PathLike) -> str:
    """The sha256 hex digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
