"""Settings of the datamodule that are not part of the input spec.

How the training area is split and how patches are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import DualStreamError

SAMPLERS = ("random", "tiles")


@dataclass(frozen=True)
class SplitSettings:
    """Hold-out by TorchGeo grid cells where a split has no scenes of its own.

    Hold-out by TorchGeo grid cells (``random_grid_cell_assignment``) where a split has no
    scenes of its own: ``val_fraction`` and ``test_fraction`` of the training area's
    ``grid`` x ``grid`` cells, drawn with ``seed``.
    """

    val_fraction: float = 0.2
    test_fraction: float = 0.0
    grid: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0 or not 0.0 <= self.test_fraction < 1.0:
            raise DualStreamError("split.val_fraction and split.test_fraction must lie in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise DualStreamError("split.val_fraction + split.test_fraction must stay below 1")
        if self.grid < 1:
            raise DualStreamError(f"split.grid must be >= 1, got {self.grid}")


@dataclass(frozen=True)
class SamplingSettings:
    """How training patches are drawn.

    ``kind`` ``random`` (TorchGeo random patches, new ones every epoch from ``seed``; None
    draws from the operating system) or ``tiles`` (each image file whole, once per epoch, as
    the original project does); ``focus_classes``: centre ``focus_fraction`` of the random
    patches on pixels of these (rare) classes.
    """

    kind: Literal["random", "tiles"] = "random"
    seed: int | None = 0
    focus_classes: tuple[int, ...] | None = None
    focus_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in SAMPLERS:
            raise DualStreamError(f"sampling.kind must be one of {SAMPLERS}, got {self.kind!r}")
        if not 0.0 <= self.focus_fraction <= 1.0:
            raise DualStreamError(
                f"sampling.focus_fraction must lie in [0, 1], got {self.focus_fraction}"
            )


@dataclass(frozen=True)
class LoaderSettings:
    """How batches are loaded.

    ``num_workers`` processes (0: in the training process), ``pin_memory`` (default: when a
    GPU is present), ``persistent_workers`` (default: when there are workers) and
    ``prefetch_factor`` batches loaded ahead per worker (default 2). Augmentation runs after
    the batch is on the device (on the GPU when training on one).
    """

    num_workers: int = 0
    pin_memory: bool | None = None
    persistent_workers: bool | None = None
    prefetch_factor: int | None = None

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise DualStreamError(f"loader.num_workers must be >= 0, got {self.num_workers}")
        if self.prefetch_factor is not None and self.prefetch_factor < 1:
            raise DualStreamError(
                f"loader.prefetch_factor must be >= 1, got {self.prefetch_factor}"
            )

    def options(self) -> dict[str, object]:
        """DataLoader keyword arguments."""
        import torch

        workers = self.num_workers
        options: dict[str, object] = {
            "num_workers": workers,
            "pin_memory": torch.cuda.is_available() if self.pin_memory is None else self.pin_memory,
            "persistent_workers": workers > 0
            if self.persistent_workers is None
            else (self.persistent_workers and workers > 0),
        }
        if workers > 0:
            options["prefetch_factor"] = self.prefetch_factor or 2
        return options


def check_sizes(batch_size: int, length: int | None, patch_size: int, aux_scale: int) -> None:
    """Refuse batch, epoch and patch sizes the loaders cannot use.

    Args:
        batch_size: samples per batch and process.
        length: training patches per epoch (None: about one pass over the training area).
        patch_size: patch side in image pixels.
        aux_scale: aux pixels per image pixel side.

    Raises:
        DualStreamError: the first wrong size, named.
    """
    if batch_size < 1:
        raise DualStreamError(f"batch_size must be >= 1, got {batch_size}")
    if length is not None and length < 1:
        raise DualStreamError(
            f"length must be >= 1 patches per epoch (or null: about one pass over the "
            f"training area), got {length}"
        )
    if patch_size < 32 or patch_size % 32:
        raise DualStreamError(f"patch_size must be a positive multiple of 32, got {patch_size}")
    if aux_scale < 1 or patch_size % aux_scale:
        raise DualStreamError(f"patch_size {patch_size} is not divisible by aux_scale {aux_scale}")
