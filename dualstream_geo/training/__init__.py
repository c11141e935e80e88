"""Training: losses, two-stage fine-tuning, the Lightning task."""

from .finetuning import TwoStageFinetuning
from .losses import DeepSupervisionLoss, SegmentationLoss
from .task import CHECKPOINT_KEY, DualStreamSegmentation

__all__ = [
    "CHECKPOINT_KEY",
    "DeepSupervisionLoss",
    "DualStreamSegmentation",
    "SegmentationLoss",
    "TwoStageFinetuning",
]
