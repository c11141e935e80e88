"""Two-stage training: encoders frozen for the first epochs, then all trainable."""

from __future__ import annotations

from typing import Any, override

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BaseFinetuning
from torch.nn import Module
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer


class TwoStageFinetuning(BaseFinetuning):
    """Freeze ``vision_encoder`` and ``air_encoder`` for ``freeze_epochs``, then unfreeze.

    Their parameter groups exist in the optimiser from the start (with their own learning
    rates), so unfreezing only flips ``requires_grad``: no groups are added, which keeps
    optimiser state and DDP bucketing intact (unlike ``BackboneFinetuning``, which adds
    groups and matches parameters by value).

    Under DDP (more than one process) the encoders are never frozen by ``requires_grad``:
    DDP only synchronises the parameters that require gradients when it wraps the model, so
    encoders unfrozen later would train apart on every rank. Instead their gradients (already
    averaged across ranks) are dropped before each optimiser step of the frozen epochs: the
    same updates, at the cost of back-propagating through the encoders.

    Args:
        freeze_epochs: epochs with frozen encoders.
        train_bn: BatchNorm layers keep learning their statistics while frozen.
    """

    def __init__(self, freeze_epochs: int = 2, train_bn: bool = False) -> None:
        super().__init__()
        self.freeze_epochs = freeze_epochs
        self.train_bn = train_bn

    @staticmethod
    def encoders(pl_module: LightningModule) -> list[Module]:
        """The modules frozen in the first stage: the vision and air encoders."""
        model: Any = pl_module.model
        return [model.vision_encoder, model.air_encoder]

    @staticmethod
    def distributed(pl_module: LightningModule) -> bool:
        """True under DDP, where frozen encoders stay trainable.

        And their gradients are dropped instead (DDP would not track parameters unfrozen
        later).
        """
        return pl_module._trainer is not None and pl_module.trainer.world_size > 1

    @override
    def freeze_before_training(self, pl_module: LightningModule) -> None:
        if self.freeze_epochs > 0 and not self.distributed(pl_module):
            self.freeze(self.encoders(pl_module), train_bn=self.train_bn)

    @override
    def finetune_function(
        self, pl_module: LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        if self.distributed(pl_module):
            if epoch < self.freeze_epochs and not self.train_bn:
                for module in self.encoders(pl_module):
                    for layer in module.modules():
                        if isinstance(layer, _BatchNorm):
                            layer.eval()
            return
        if epoch < self.freeze_epochs:
            # Also on resume within the frozen stage: keep the encoders frozen.
            self.freeze(self.encoders(pl_module), train_bn=self.train_bn)
        else:
            self.make_trainable(self.encoders(pl_module))

    @override
    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        if self.distributed(pl_module) and trainer.current_epoch < self.freeze_epochs:
            for module in self.encoders(pl_module):
                for param in module.parameters():
                    param.grad = None
