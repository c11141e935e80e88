"""A trained task from its checkpoint file alone.

The model its stored settings describe, with the checkpoint's weights and input spec.
"""

from __future__ import annotations

from ..errors import DualStreamError
from .stored import PathLike, read_checkpoint, read_spec, task_hparams
from .task import DualStreamSegmentation


def load_task(path: PathLike) -> DualStreamSegmentation:
    """The trained task of a checkpoint, on the CPU, its ``input_spec`` read from the file.

    Raises:
        DualStreamError: the file is not a checkpoint of this project, or its weights do not
            fit the model its settings describe (one short line).
    """
    path = str(path)
    raw = read_checkpoint(path)
    spec = read_spec(raw, path)
    hparams = task_hparams(raw)
    # The weights come from the checkpoint itself, not from the files it started from.
    hparams.update(weights=None, vision_weights=None, aux_weights=None)
    try:
        task = DualStreamSegmentation(input_spec=spec, **hparams)
        task.load_state_dict(raw["state_dict"])
    except Exception as error:  # another model's checkpoint: one short, clear line
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise DualStreamError(
            f"{path}: not a dualstream_geo checkpoint ({type(error).__name__}: {detail})"
        ) from None
    return task
