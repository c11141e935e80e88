"""PyTorch files (state dicts, checkpoints): read safely with one clear error, written whole."""

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


def save_torch_file(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save`` beside ``path`` (``.<name>.<pid>.tmp``), then renamed over it.

    The rename is atomic on one file system: an interrupted save leaves the previous file
    (if any) and no partial one.

    Args:
        obj: what to save.
        path: the file to write; its folder must exist.

    Raises:
        OSError: the file cannot be written (``path`` is left as it was).
    """
    folder, name = os.path.split(os.path.abspath(path))
    partial = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, partial)
        os.replace(partial, os.path.join(folder, name))
    finally:
        if os.path.exists(partial):
            os.remove(partial)
