"""What every ``dualstream-geo`` trainer gets unless told otherwise.

The precision for the machine, its loggers, and the resolved config saved beside the
checkpoints.
"""

from __future__ import annotations

import os
from typing import override

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import CSVLogger, Logger

from ..precision import native_bf16

#: The stages that only run the model forward: on a CPU with native bf16 they compute in bf16,
#: as ``predict`` does.
EVALUATION_STAGES = ("validate", "test")


def default_precision(stage: str = "fit", accelerator: str = "auto") -> str:
    """The precision a ``stage`` runs at unless ``--trainer.precision`` says otherwise.

    bf16 mixed precision on a GPU that supports it. On a CPU with native bf16
    (:func:`~dualstream_geo.precision.native_bf16`: AVX512-BF16, AMX or ARM BF16),
    ``validate`` and ``test`` run in bf16 too: they only run the model forward, where bf16
    is 1.55-1.70x faster there and the maps agree with fp32 on 99.9 % of the pixels or more,
    like ``predict``'s (``benchmarks/README.md``). ``fit`` on such a CPU stays fp32
    (``--trainer.precision bf16-mixed`` asks for bf16): bf16 keeps the Zion recipe's
    accuracy (3 seeds, experiments/README.md) but gains the default spectral detail path
    nothing per training step (1.00x; the dense path 1.04-1.27x), and its depthwise
    backward first overflowed in bf16. Elsewhere 32-bit.

    Args:
        stage: ``fit``, ``validate`` or ``test``.
        accelerator: the trainer's accelerator setting (``auto``, ``cpu``, ``gpu``, ...).

    Returns:
        Lightning's precision setting.
    """
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if not on_cpu:
        return "bf16-mixed" if native_bf16("cuda") else "32-true"
    return "bf16-mixed" if stage in EVALUATION_STAGES and native_bf16("cpu") else "32-true"


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
