"""Checkpoints written beside their target and renamed into place.

Lightning's default ``TorchCheckpointIO`` serialises a checkpoint into memory and writes it
through an fsspec transaction, which stages a local file in the system temporary folder
(``$TMPDIR``, often another file system: a RAM disk, a cluster node's small local disk) and
then moves it. Across file systems that move is a copy into the target, so a run killed
during it leaves a truncated ``last.ckpt`` that ``--ckpt_path last`` cannot load, and a
checkpoint larger than the free space of ``$TMPDIR`` fails although the run's folder has
room (Lightning-AI/pytorch-lightning#21253). Here a local checkpoint is written next to its
target and renamed over it, which is atomic on one file system; remote paths keep
Lightning's own writer.
"""

from __future__ import annotations

import os
from typing import Any, override

import fsspec
import lightning.pytorch as pl
from fsspec.implementations.local import LocalFileSystem
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..torchfiles import save_torch_file


class LocalAtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` that writes a local checkpoint beside its target, then renames it.

    The file is written as ``.<name>.<pid>.tmp`` in the target's folder and replaces the
    target only once complete: an interrupted save leaves the previous checkpoint and no
    partial file. URLs (``s3://``, ``gs://``, ...) are saved by ``TorchCheckpointIO``.
    """

    @override
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Save ``checkpoint`` to ``path``.

        Args:
            checkpoint: the trainer's state.
            path: the file to write (a local path or a URL).
            storage_options: not supported, as in ``TorchCheckpointIO``.

        Raises:
            TypeError: ``storage_options`` given.
            OSError: the file cannot be written (the target is left as it was).
        """
        filesystem, local = fsspec.core.url_to_fs(str(path))
        if storage_options is not None or not isinstance(filesystem, LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
        save_torch_file(checkpoint, local)


class AtomicCheckpoints(Callback):
    """Give the trainer :class:`LocalAtomicCheckpointIO` where it would use Lightning's default.

    A checkpoint plugin the user chose (``--trainer.plugins``, an asynchronous writer) is
    kept.
    """

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = LocalAtomicCheckpointIO()
