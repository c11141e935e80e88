"""Reading PyTorch files (state dicts, checkpoints) safely, with one clear error."""

from __future__ import annotations

import os
from typing import Any

import torch

from .errors import DualStreamError


def load_torch_file(path: str | os.PathLike[str], what: str = "PyTorch file") -> Any:
    """``torch.load`` on the CPU with ``weights_only=True`` (never runs pickled code).

    Raises:
        DualStreamError: the file is missing or is not a readable ``what`` (one short line,
            without torch's advice to load untrusted files unsafely).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DualStreamError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise DualStreamError(f"{path}: not a readable {what} ({type(error).__name__})") from None
