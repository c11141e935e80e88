"""Training.

Losses, schedules, two-stage fine-tuning, resumable checkpoints, the Lightning task, and
importing the original project's weights (``imported``).
"""

from .checkpointing import BestCheckpoint, EpochSeeds, last_checkpoint
from .finetuning import TwoStageFinetuning
from .loading import load_task
from .losses import BinaryLovaszProbabilityLoss, DeepSupervisionLoss, SegmentationLoss
from .schedule import build_schedule
from .settings import CheckpointSettings, LossSettings
from .stored import CHECKPOINT_KEY, read_spec, store_spec
from .task import DualStreamSegmentation

__all__ = [
    "CHECKPOINT_KEY",
    "BestCheckpoint",
    "BinaryLovaszProbabilityLoss",
    "CheckpointSettings",
    "DeepSupervisionLoss",
    "DualStreamSegmentation",
    "EpochSeeds",
    "LossSettings",
    "SegmentationLoss",
    "TwoStageFinetuning",
    "build_schedule",
    "last_checkpoint",
    "load_task",
    "read_spec",
    "store_spec",
]
