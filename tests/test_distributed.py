"""Several processes (DDP on CPU with gloo): rank-aware sampling, metrics and resume."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torchgeo.samplers import GriddedPatchSampler

from dualstream_geo.data import DualStreamGeoDataset, LandCoverMask, SatelliteImage
from dualstream_geo.data.ranks import RankShard
from dualstream_geo.data.sampling import EpochPatchSampler, FocusPatchSampler

from .test_training import REPO, demo_fit

CLI = str(Path(sys.executable).with_name("dualstream-geo"))
BAND_FILES = ("_b2", "_b3", "_b4", "_b5")


def zion_dataset(zion: Path) -> DualStreamGeoDataset:
    image = SatelliteImage(zion, band_files=BAND_FILES, nodata=65535)
    return DualStreamGeoDataset(image, [], LandCoverMask(zion / "nlcd.tif"))


def bounds(query: tuple[slice, slice]) -> tuple[float, float]:
    return (query[0].start, query[1].start)


@pytest.mark.parametrize("focus", [False, True])
def test_ranks_draw_their_own_share_of_an_epoch(zion: Path, focus: bool) -> None:
    ds = zion_dataset(zion)

    def sampler(rank: int, world_size: int) -> EpochPatchSampler:
        kwargs = {"size": 16, "length": 64, "seed": 3, "rank": rank, "world_size": world_size}
        if focus:
            return FocusPatchSampler(ds, classes=[3, 7], **kwargs)  # type: ignore[arg-type]
        return EpochPatchSampler(ds, **kwargs)  # type: ignore[arg-type]

    ranks = [sampler(0, 2), sampler(1, 2)]
    epochs = []
    for epoch in (0, 1):
        for s in ranks:
            s.set_epoch(epoch)
        shares = [[bounds(q) for q in s] for s in ranks]
        assert [len(share) for share in shares] == [32, 32]  # 64 in all, half each
        union = set(itertools.chain(*shares))
        if focus:
            # Centres drawn from a class of ~100 pixels can repeat, within a rank as across.
            assert len(union) >= 56
        else:
            assert len(union) == 64  # no patch drawn by both ranks
        epochs.append(union)
    assert epochs[0] != epochs[1]
    # Reproducible from (seed, epoch, rank): a fresh sampler of rank 1 repeats epoch 1.
    again = sampler(1, 2)
    again.set_epoch(1)
    assert [bounds(q) for q in again] == shares[1]


def test_evaluation_patches_are_shared_out_without_loss_or_repeat(zion: Path) -> None:
    grid = GriddedPatchSampler(zion_dataset(zion), size=32, stride=32)
    whole = [bounds(q) for q in grid]
    for world_size in (2, 3, 4):
        shares = [
            [bounds(q) for q in RankShard(grid, rank=r, world_size=world_size)]
            for r in range(world_size)
        ]
        assert sorted(itertools.chain(*shares)) == sorted(whole)
        assert max(map(len, shares)) - min(map(len, shares)) <= 1
    padded = [RankShard(grid, rank=r, world_size=4, pad=True) for r in range(4)]
    assert len({len(list(p)) for p in padded}) == 1  # training: every rank the same count


def ddp_fit(demo_root: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = demo_fit(
        demo_root,
        root,
        "--model.vision_encoder=segformer-b0",
        "--model.preset=lite",
        "--model.freeze_epochs=1",
        "--trainer.max_epochs=2",
        "--data.length=16",
        "--data.batch_size=4",
        "--trainer.accelerator=cpu",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.enable_progress_bar=false",
        *extra,
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=300, cwd=root.parent
    )


def callbacks_config(path: Path, *callbacks: tuple[str, dict[str, object]]) -> str:
    entries = [
        {"class_path": f"tests.ddp_callbacks.{name}", "init_args": args} for name, args in callbacks
    ]
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": entries}}))
    return f"--config={path}"


def validate(demo_root: Path, root: Path, checkpoint: Path, devices: int) -> dict[str, float]:
    args = [
        "validate",
        "--config",
        str(REPO / "experiments" / "demo.yaml"),
        f"--data.root={demo_root}",
        f"--trainer.default_root_dir={root}",
        f"--data.stats_path={checkpoint.parent.parent / 'stats.json'}",
        "--model.vision_encoder=segformer-b0",
        "--model.preset=lite",
        "--trainer.accelerator=cpu",
        f"--trainer.devices={devices}",
        "--trainer.strategy=ddp",
        "--trainer.enable_progress_bar=false",
        f"--ckpt_path={checkpoint}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader(open(next(root.glob("logs/version_*/metrics.csv")))))
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("val_") and v}


def test_ddp_fit_shares_patches_matches_metrics_and_resumes(
    demo_root: Path, tmp_path: Path
) -> None:
    """2 CPU processes: the ranks' patches make up the epoch, validation on 2 processes
    equals 1 process on the same checkpoint, and a run that fails mid-epoch resumes with
    ``--ckpt_path last`` to the uninterrupted run's weights."""
    whole = tmp_path / "whole"
    record = callbacks_config(
        tmp_path / "record.yaml", ("RecordBounds", {"folder": str(tmp_path / "bounds")})
    )
    done = ddp_fit(demo_root, whole, record)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "parameters that were not used" not in done.stderr
    seen = {
        (rank, epoch): [tuple(b) for b in json.loads(p.read_text())]
        for rank, epoch in itertools.product((0, 1), (0, 1))
        if (p := tmp_path / "bounds" / f"rank{rank}_epoch{epoch}.json").exists()
    }
    assert len(seen) == 4
    for epoch in (0, 1):
        union = seen[0, epoch] + seen[1, epoch]
        assert len(union) == 16 and len(set(union)) == 16  # the configured length, no repeat
    assert set(seen[0, 0]) != set(seen[0, 1])
    # Checkpoints and statistics written once, by rank 0.
    assert sorted(p.name for p in (whole / "checkpoints").iterdir()) == [
        "best.ckpt",
        "config.yaml",
        "last.ckpt",
    ]
    one = validate(demo_root, tmp_path / "val1", whole / "checkpoints" / "best.ckpt", 1)
    two = validate(demo_root, tmp_path / "val2", whole / "checkpoints" / "best.ckpt", 2)
    ious = [k for k in one if "Jaccard" in k or "Accuracy" in k]
    assert ious and all(one[k] == pytest.approx(two[k], abs=1e-6) for k in ious)

    failing = tmp_path / "failing"
    fail = callbacks_config(tmp_path / "fail.yaml", ("FailAtStep", {"step": 3}))
    assert ddp_fit(demo_root, failing, fail).returncode != 0
    assert torch.load(failing / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    done = ddp_fit(demo_root, failing, "--ckpt_path=last")
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = torch.load(failing / "checkpoints" / "last.ckpt", weights_only=False)
    reference = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == reference["global_step"] == 4
    for name, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], value), name
