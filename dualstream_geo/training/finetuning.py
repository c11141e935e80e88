"""Two-stage training: encoders frozen for the first epochs, then all trainable."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import BaseFinetuning
from torch.nn import Module
from torch.optim import Optimizer


class TwoStageFinetuning(BaseFinetuning):
    """Freeze ``vision_encoder`` and ``air_encoder`` for ``freeze_epochs``, then unfreeze.

    Their parameter groups exist in the optimiser from the start (with their own learning
    rates), so unfreezing only flips ``requires_grad``: no groups are added, which keeps
    optimiser state and DDP bucketing intact (unlike ``BackboneFinetuning``, which adds
    groups and matches parameters by value).
    """

    def __init__(self, freeze_epochs: int = 2, train_bn: bool = False) -> None:
        super().__init__()
        self.freeze_epochs = freeze_epochs
        self.train_bn = train_bn

    @staticmethod
    def encoders(pl_module: LightningModule) -> list[Module]:
        model: Any = pl_module.model
        return [model.vision_encoder, model.air_encoder]

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        if self.freeze_epochs > 0:
            self.freeze(self.encoders(pl_module), train_bn=self.train_bn)

    def finetune_function(
        self, pl_module: LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        if epoch < self.freeze_epochs:
            # Also on resume within the frozen stage: keep the encoders frozen.
            self.freeze(self.encoders(pl_module), train_bn=self.train_bn)
        else:
            self.make_trainable(self.encoders(pl_module))
