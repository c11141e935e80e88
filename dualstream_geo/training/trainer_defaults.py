"""What every ``dualstream-geo`` trainer gets unless told otherwise: the precision for the
machine, its loggers, and the resolved config saved beside the checkpoints."""

from __future__ import annotations

import os

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger

from ..precision import native_bf16


def default_precision() -> str:
    """bf16 mixed precision where the device Lightning picks computes bf16 natively (a GPU
    that supports it; without one, a CPU with AVX512-BF16, AMX or ARM BF16), 32-bit
    otherwise (:func:`~dualstream_geo.precision.native_bf16`)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return "bf16-mixed" if native_bf16(device) else "32-true"


def default_loggers(root: str = ".") -> list[Logger]:
    """CSV logging always; TensorBoard too when it is installed."""
    loggers: list[Logger] = [CSVLogger(root, name="logs")]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return loggers
    from lightning.pytorch.loggers import TensorBoardLogger

    loggers.append(TensorBoardLogger(root, name="logs"))
    return loggers


class SaveConfigBesideCheckpoints(SaveConfigCallback):
    """Write the resolved config to ``<default_root_dir>/checkpoints/config.yaml``."""

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        folder = os.path.join(trainer.default_root_dir, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        self.parser.save(
            self.config, os.path.join(folder, self.config_filename), skip_none=False, overwrite=True
        )
