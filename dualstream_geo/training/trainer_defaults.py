"""What every ``dualstream-geo`` trainer gets unless told otherwise.

The precision for the machine, its loggers, and the resolved config saved beside the
checkpoints.
"""

from __future__ import annotations

import os
from typing import override

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger

from ..precision import native_bf16


def default_precision() -> str:
    """bf16 mixed precision on a GPU that supports it, 32-bit otherwise.

    A CPU with native bf16 trains in fp32 too (``--trainer.precision bf16-mixed`` asks for
    bf16): there bf16 keeps the Zion recipe's accuracy (3 seeds, experiments/README.md) but
    gains only 1.04-1.27x per training step (``benchmarks/README.md``), and the demo's and
    the tests' figures would change with the default; prediction, where it gains more, uses
    it (:class:`~dualstream_geo.inference.ScenePredictor`).

    Returns:
        Lightning's precision setting.
    """
    return "bf16-mixed" if native_bf16("cuda") else "32-true"


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

    @override
    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        folder = os.path.join(trainer.default_root_dir, "checkpoints")
        os.makedirs(folder, exist_ok=True)
        self.parser.save(
            self.config, os.path.join(folder, self.config_filename), skip_none=False, overwrite=True
        )
