"""Training: losses, schedules, two-stage fine-tuning, resumable checkpoints, the Lightning
task, and importing the original project's weights (``imported``)."""

from .checkpointing import BestCheckpoint, EpochSeeds, last_checkpoint
from .finetuning import TwoStageFinetuning
from .losses import BinaryLovaszProbabilityLoss, DeepSupervisionLoss, SegmentationLoss
from .metadata import CHECKPOINT_KEY
from .schedule import build_schedule
from .task import DualStreamSegmentation

__all__ = [
    "CHECKPOINT_KEY",
    "BestCheckpoint",
    "BinaryLovaszProbabilityLoss",
    "DeepSupervisionLoss",
    "DualStreamSegmentation",
    "EpochSeeds",
    "SegmentationLoss",
    "TwoStageFinetuning",
    "build_schedule",
    "last_checkpoint",
]
