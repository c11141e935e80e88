"""Rank-aware sampling for several processes (DDP): who reads which patches.

Lightning replaces a sampler that is not a ``DistributedSampler`` by its own wrapper, which
pads the evaluation patches (counting some twice) and does not forward ``set_epoch`` to a
geo sampler. The samplers here are ``DistributedSampler`` subclasses, so Lightning keeps
them, and they split the work themselves:

- :class:`RankShard`: rank r of W takes items r, r + W, r + 2W, ... of a sequence that every
  rank draws identically (gridded validation/test patches: no patch dropped or counted
  twice; pre-chipped tiles for training, padded to the same count on every rank so that DDP
  steps stay in lockstep).
- :class:`RankLocal`: a sampler that already draws this rank's own items (random patches
  seeded by rank), passed through.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any, Protocol

import torch.distributed as dist
from torch.utils.data.distributed import DistributedSampler


class _Sampler(Sized, Protocol):
    def __iter__(self) -> Iterator[Any]: ...


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process: (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _RankSampler(DistributedSampler):  # type: ignore[type-arg]
    def __init__(self, sampler: _Sampler, *, rank: int, world_size: int) -> None:
        # DistributedSampler only needs something sized; giving rank and world size keeps it
        # from querying a process group that may not exist yet.
        super().__init__(sampler, num_replicas=world_size, rank=rank, shuffle=False)  # type: ignore[arg-type]
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)


class RankShard(_RankSampler):
    """Rank ``rank``'s share of ``sampler``.

    Rank ``rank``'s share (every ``world_size``-th item, from item ``rank``) of ``sampler``,
    which must yield the same sequence on every rank. ``pad``: repeat the first items so
    that every rank gets ``ceil(len / world_size)`` (training); otherwise shares differ by
    at most one item and the union is the sequence exactly (evaluation).
    """

    def __init__(self, sampler: _Sampler, *, rank: int, world_size: int, pad: bool = False) -> None:
        super().__init__(sampler, rank=rank, world_size=world_size)
        self.pad = pad
        total = len(sampler)
        self.num_samples = (
            math.ceil(total / world_size) if pad else len(range(rank, total, world_size))
        )

    def __iter__(self) -> Iterator[Any]:
        items = list(self.sampler)
        if self.pad and items:
            missing = self.num_samples * self.num_replicas - len(items)
            items += (items * math.ceil(missing / len(items)))[:missing]
        return iter(items[self.rank :: self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples


class RankLocal(_RankSampler):
    """``sampler`` as it is: it already draws this rank's own items."""

    def __init__(self, sampler: _Sampler, *, rank: int, world_size: int) -> None:
        super().__init__(sampler, rank=rank, world_size=world_size)
        self.num_samples = len(sampler)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)
