"""Several processes (DDP on CPU with gloo): rank-aware sampling, metrics and resume."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psutil
import pytest
import rasterio
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


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on 1 thread, as each CPU rank of these tests runs (float sums depend on it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def ddp_fit(
    demo_root: Path, root: Path, *extra: str, torchrun: bool = False
) -> subprocess.CompletedProcess[str]:
    """``fit`` on 2 CPU processes: Lightning starting the second itself, or both started by
    ``torchrun`` (docs/how-to/cluster.md), which Lightning then finds in the environment."""
    args = demo_fit(
        demo_root,
        root,
        "--model.architecture.vision_encoder=segformer-b0",
        "--model.architecture.preset=lite",
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
    command = [CLI, *args]
    if torchrun:
        from dualstream_geo.inference.distributed import _free_port

        launcher = str(Path(sys.executable).with_name("torchrun"))
        rendezvous = ["--master-addr=127.0.0.1", f"--master-port={_free_port()}"]
        # Its logs in the test's folder: by default torchrun leaves a folder in /tmp.
        logs = f"--log-dir={root.parent / 'torchrun_logs'}"
        command = [launcher, "--nnodes=1", "--nproc-per-node=2", *rendezvous, logs]
        command += ["-m", "dualstream_geo", *args]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, cwd=root.parent
    )


def callbacks_config(path: Path, *callbacks: tuple[str, dict[str, object]]) -> str:
    entries = [
        {"class_path": f"tests.ddp_callbacks.{name}", "init_args": args} for name, args in callbacks
    ]
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": entries}}))
    return f"--config={path}"


def validate(demo_root: Path, root: Path, checkpoint: Path) -> dict[str, float]:
    """``validate`` of ``checkpoint`` in this process, on 1 thread as each DDP rank ran: the
    validation metrics it logged."""
    from dualstream_geo.cli import main

    args = [
        "validate",
        "--config",
        str(REPO / "experiments" / "demo.yaml"),
        f"--data.root={demo_root}",
        f"--trainer.default_root_dir={root}",
        f"--data.stats_path={checkpoint.parent.parent / 'stats.json'}",
        "--model.architecture.vision_encoder=segformer-b0",
        "--model.architecture.preset=lite",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.precision=32-true",  # as the ranks trained and validated
        "--trainer.enable_progress_bar=false",
        f"--ckpt_path={checkpoint}",
    ]
    with one_thread():
        assert main(args) == 0
    return logged_validation(root)


def logged_validation(root: Path, epoch: int | None = None) -> dict[str, float]:
    """The validation metrics a run under ``root`` logged last, or at the end of ``epoch``."""
    rows = [
        r
        for r in csv.DictReader(open(next(root.glob("logs/version_*/metrics.csv"))))
        if r.get("val_loss") and (epoch is None or r["epoch"] == str(epoch))
    ]
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
    assert "Grad strides do not match" not in done.stderr  # spurious here (console.py)
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
    # The fit validated the best checkpoint's weights on its 2 processes: 1 process scores
    # that checkpoint the same.
    best = whole / "checkpoints" / "best.ckpt"
    one = validate(demo_root, tmp_path / "val1", best)
    two = logged_validation(whole, torch.load(best, weights_only=False)["epoch"])
    ious = [k for k in one if "Jaccard" in k or "Accuracy" in k]
    assert ious and all(one[k] == pytest.approx(two[k], abs=1e-6) for k in ious)

    # The interrupted run and its resumption under torchrun: the cluster launch, whose ranks
    # start together (Lightning starts its second rank only once the first is set up).
    failing = tmp_path / "failing"
    fail = callbacks_config(tmp_path / "fail.yaml", ("FailAtStep", {"step": 3}))
    assert ddp_fit(demo_root, failing, fail, torchrun=True).returncode != 0
    assert torch.load(failing / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    done = ddp_fit(demo_root, failing, "--ckpt_path=last", torchrun=True)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = torch.load(failing / "checkpoints" / "last.ckpt", weights_only=False)
    reference = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == reference["global_step"] == 4
    for name, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], value), name


@pytest.mark.parametrize("strip_count", [1, 2, 5, 9])
def test_rank_rows_cover_the_scene_once(strip_count: int) -> None:
    from dualstream_geo.inference.distributed import rank_rows

    starts = [48 * i for i in range(strip_count)]
    height = starts[-1] + 64
    for world_size in (1, 2, 3, 4):
        rows = [
            r for rank in range(world_size) for r in rank_rows(starts, height, rank, world_size)
        ]
        assert rows == list(range(height))


def predict_args(checkpoint: Path, scene: dict[str, Path], output: Path, *extra: str) -> list[str]:
    return [
        "predict",
        f"--checkpoint={checkpoint}",
        f"--image={scene['image']}",
        f"--gems={scene['gems']}",
        f"--air-pollution={scene['air']}",
        f"--output={output}",
        "--tile=64",
        "--batch-size=4",
        "--kind=both",
        # fp32: bit-for-bit equality across ranks. In bf16 (the default on a CPU with native
        # bf16) oneDNN's kernels round differently for another batch composition, and the
        # ranks batch their own strips: a probability may move by 1/254, as it may with
        # another thread count.
        "--precision=32",
        *extra,
    ]


def read_both(output: Path) -> list[np.ndarray]:
    paths = [output, output.with_name(output.stem + "_probabilities.tif")]
    return [rasterio.open(p).read() for p in paths]


def test_prediction_on_two_processes_equals_one_and_resumes(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rank killed mid-scene leaves no output, and ``--resume`` on 2 CPU processes finishes
    it as one COG, pixel for pixel the 1-process output (the ranks' fresh start is the killed
    run's: its rows are in the result)."""
    from dualstream_geo.cli import main

    # Each of the 2 CPU ranks runs 1 thread; float sums depend on the thread count, so the
    # 1-process reference runs 1 thread too (with 2, a probability may move by 1/255).
    with one_thread():
        assert main(predict_args(checkpoint, scene, tmp_path / "one.tif")) == 0
    expected = read_both(tmp_path / "one.tif")

    killed = tmp_path / "killed.tif"
    run = subprocess.Popen(
        [CLI, *predict_args(checkpoint, scene, killed, "--devices=2")],
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = tmp_path / "killed.tif.partial.1of2.json"
    deadline = time.monotonic() + 120
    while not progress.exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.05)
    rank1 = [p for p in psutil.Process(run.pid).children(recursive=True) if _rank(p) == "1"]
    assert progress.exists() and len(rank1) == 1
    rank1[0].kill()
    _, err = run.communicate(timeout=120)
    assert run.returncode != 0 and "another predicting process stopped" in err
    assert not killed.exists() and not (tmp_path / "killed.tif.lock").exists()
    assert (tmp_path / "killed.tif.partial.0of2.tif").exists()

    # Refused before any rank starts (in this process: one process is all it takes).
    capsys.readouterr()
    assert main(predict_args(checkpoint, scene, killed, "--devices=1", "--resume")) == 2
    refused = capsys.readouterr().err
    assert "interrupted in a run on 2 process(es); resume it with --devices 2" in refused
    resumed = subprocess.run(
        [CLI, *predict_args(checkpoint, scene, killed, "--devices=2", "--resume")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.count("wrote") == 1  # rank 0 only
    for got, want in zip(read_both(killed), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    leftovers = list(tmp_path.glob("killed.tif.partial*"))
    assert not leftovers and not (tmp_path / "killed.tif.lock").exists()


def _rank(process: psutil.Process) -> str | None:
    """The RANK a process runs as (None for helpers, and for those that already ended: a
    short-lived child may be a zombie when the tree is listed)."""
    try:
        return process.environ().get("RANK")
    except psutil.Error:
        return None
