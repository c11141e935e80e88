"""Checkpoints written beside their target: never half-written, never staged elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.plugins.io import TorchCheckpointIO

from dualstream_geo import torchfiles
from dualstream_geo.training.checkpoint_io import AtomicCheckpoints, LocalAtomicCheckpointIO


def test_an_interrupted_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "run" / "checkpoints" / "last.ckpt"
    writer = LocalAtomicCheckpointIO()
    writer.save_checkpoint({"epoch": 1, "weights": torch.arange(4.0)}, target)
    assert torch.load(target)["epoch"] == 1

    def interrupted(checkpoint: dict[str, Any], path: str) -> None:
        Path(path).write_bytes(b"half a checkpoint")  # then the disk fills, or Ctrl-C
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torchfiles.torch, "save", interrupted)
    with pytest.raises(OSError, match="No space left"):
        writer.save_checkpoint({"epoch": 2, "weights": torch.zeros(4)}, target)
    kept = torch.load(target)
    assert kept["epoch"] == 1 and torch.equal(kept["weights"], torch.arange(4.0))
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]


def test_urls_keep_lightnings_writer() -> None:
    writer = LocalAtomicCheckpointIO()
    writer.save_checkpoint({"epoch": 3}, "memory://dualstream_geo_test/last.ckpt")
    with fsspec.open("memory://dualstream_geo_test/last.ckpt", "rb") as f:
        assert torch.load(f)["epoch"] == 3
    with pytest.raises(TypeError, match="storage_options"):
        writer.save_checkpoint({"epoch": 3}, "memory://x/y.ckpt", storage_options={"a": 1})


def test_a_chosen_checkpoint_plugin_is_kept() -> None:
    class Mine(TorchCheckpointIO):
        pass

    default, chosen = Trainer(logger=False), Trainer(logger=False, plugins=[Mine()])
    for trainer in (default, chosen):
        AtomicCheckpoints().setup(trainer, None, "fit")  # type: ignore[arg-type]
    assert type(default.strategy.checkpoint_io) is LocalAtomicCheckpointIO
    assert type(chosen.strategy.checkpoint_io) is Mine
