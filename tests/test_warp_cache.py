"""Warp once: labels and aux sources not on the scenes' grids read from a warped-once copy,
giving the same batches as warping them for every sample; the cache reused, rebuilt when an
input changes or a file of it is corrupt, safe when two runs build it at once."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch

from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.data.sources import GeoRaster
from dualstream_geo.data.warp_cache import warp_once
from dualstream_geo.errors import DualStreamError

from .conftest import demo_datamodule


def batches(datamodule: DualStreamDataModule, count: int = 3) -> list[dict[str, Any]]:
    datamodule.setup("fit")
    train = [b for _, b in zip(range(count), datamodule.train_dataloader(), strict=False)]
    val = [b for _, b in zip(range(count), datamodule.val_dataloader(), strict=False)]
    return train + val


def test_cached_batches_equal_warped_batches_bit_for_bit(
    demo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's labels (EPSG:5186) and air (EPSG:4326) warped once and read as aligned
    windows give, bit for bit, what an exact warp per sample gives; GDAL's default
    approximate warp differs from both in a few label pixels (bounded here)."""
    settings = {"augment": False, "length": 12}
    cached = batches(
        demo_datamodule(demo_root, tmp_path, cache_dir=str(tmp_path / "c"), **settings)
    )
    assert len(list((tmp_path / "c").glob("*.tif"))) == 2 * (1 + 1 + 3)  # 2 scenes
    monkeypatch.setattr(GeoRaster, "warp_tolerance", 0.0)
    exact = batches(demo_datamodule(demo_root, tmp_path, cache_dir=False, **settings))
    for a, b in zip(cached, exact, strict=True):
        for key in ("image", "air", "mask", "valid"):
            assert torch.equal(a[key], b[key]), key
    monkeypatch.undo()
    approximate = batches(demo_datamodule(demo_root, tmp_path, cache_dir=False, **settings))
    labels = torch.cat([b["mask"].flatten() for b in approximate])
    differ = (labels != torch.cat([b["mask"].flatten() for b in cached])).float().mean()
    air = torch.cat([b["air"].flatten() for b in approximate])
    exact_air = torch.cat([b["air"].flatten() for b in cached])
    # Where both have data (the fill standardises to 0), the approximate warp's bilinear
    # values stay within 0.05 standard deviations; it differs more only at the air
    # raster's edge, where one finds data and the other none.
    both = (air != 0) & (exact_air != 0)
    gap = (air - exact_air)[both].abs().max()
    assert differ < 0.002 and gap < 1e-4, (float(differ), float(gap))


def test_cache_is_reused_rebuilt_on_change_and_on_corruption(
    demo_root: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "cache"
    first = batches(demo_datamodule(demo_root, tmp_path, cache_dir=str(folder), augment=False))
    files = {p: p.stat().st_mtime_ns for p in folder.glob("*.tif")}
    again = batches(demo_datamodule(demo_root, tmp_path, cache_dir=str(folder), augment=False))
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.tif")} == files  # reused
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["air"], b["air"])
    # A cached file cut short is found unreadable and rebuilt: the same batches.
    victim = sorted(files)[0]
    victim.write_bytes(victim.read_bytes()[:300])
    rebuilt = batches(demo_datamodule(demo_root, tmp_path, cache_dir=str(folder), augment=False))
    assert victim.stat().st_size > 300
    for a, b in zip(first, rebuilt, strict=True):
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["air"], b["air"])
    # A changed input (a label rewritten) gets new copies beside the old ones.
    label = next((demo_root / "train" / "label").glob("*.tif"))
    stamp = label.stat()
    try:
        os.utime(label, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
        demo_datamodule(demo_root, tmp_path, cache_dir=str(folder)).setup("fit")
        assert len(list(folder.glob("*.tif"))) == len(files) + 1
    finally:
        os.utime(label, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))


def _build(root: str, tmp: str, folder: str) -> list[str]:
    datamodule = demo_datamodule(Path(root), Path(tmp), cache_dir=folder)
    splits = datamodule.datasets()
    return sorted(str(s.mask.index.filepath.iloc[0]) for s in splits.values() if s.mask)


def test_two_runs_building_the_cache_at_once(demo_root: Path, tmp_path: Path) -> None:
    folder = str(tmp_path / "shared")
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.starmap(
            _build, [(str(demo_root), str(tmp_path / f"run{i}"), folder) for i in range(2)]
        )
    assert results[0] == results[1]
    assert not [p for p in os.listdir(folder) if ".tmp" in p]  # no half-written file left
    assert len([p for p in os.listdir(folder) if p.endswith(".tif")]) == 10


def test_a_cache_folder_that_cannot_be_written_is_one_line(demo_root: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(DualStreamError, match=r"data.cache_dir .*a_file/cache: cannot be created"):
        demo_datamodule(demo_root, tmp_path, cache_dir=str(blocker / "cache")).setup("fit")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user writes into read-only folders (superuser)")
        with pytest.raises(DualStreamError, match=r"data.cache_dir .*locked: the warped copy"):
            demo_datamodule(demo_root, tmp_path, cache_dir=str(locked)).setup("fit")
    finally:
        locked.chmod(0o700)


def test_sources_already_on_the_grids_are_read_as_they_are(demo_root: Path, tmp_path: Path) -> None:
    """A dataset whose label and aux lie on the image grid keeps its sources (nothing to
    warp, nothing cached)."""
    from dualstream_geo.data import DualStreamGeoDataset, LandCoverMask, SatelliteImage

    image = SatelliteImage(demo_root / "train" / "image")
    label = tmp_path / "label.tif"
    with rasterio.open(next((demo_root / "train" / "image").glob("*.tif"))) as src:
        profile = src.profile | {"count": 1, "dtype": "uint8", "nodata": None}
        with rasterio.open(label, "w", **profile) as dst:
            dst.write(np.ones((1, src.height, src.width), np.uint8))
    dataset = DualStreamGeoDataset(image, None, LandCoverMask(label))
    same = warp_once(dataset, str(tmp_path / "cache"))
    assert same.mask is dataset.mask and not list((tmp_path / "cache").glob("*"))


def test_a_full_disk_while_building_is_one_line_and_leaves_no_part(
    demo_root: Path, tmp_path: Path
) -> None:
    """A file-size limit (the closest a test gets to a full disk without a quota) stops the
    first cached copy mid-write: one line naming the cache folder, no partial file left, and
    the next run (with room) builds a cache that reads."""
    import subprocess
    import sys

    folder = tmp_path / "cache"
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "from dualstream_geo.errors import DualStreamError\n"
        "from tests.conftest import demo_datamodule\n"
        "root, tmp, folder = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]\n"
        "datamodule = demo_datamodule(root, tmp, cache_dir=folder)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (3_000, 3_000))\n"
        "try:\n"
        "    datamodule.setup('fit')\n"
        "except DualStreamError as error:\n"
        "    print(error)\n"
        "    sys.exit(2)\n"
    )
    # The statistics are computed (and their file written) before the limit applies.
    demo_datamodule(demo_root, tmp_path, cache_dir=False).setup("fit")
    done = subprocess.run(
        [sys.executable, "-c", script, str(demo_root), str(tmp_path), str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[1],
    )
    lines = [line for line in done.stdout.splitlines() if line]
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and f"data.cache_dir {folder}: the warped copy" in lines[0], lines
    assert not [p for p in os.listdir(folder) if ".tmp" in p]
    assert batches(demo_datamodule(demo_root, tmp_path, cache_dir=str(folder), augment=False))


def test_cache_sees_content_not_only_size_and_time(demo_root: Path, tmp_path: Path) -> None:
    """An input rewritten in place with its size and modification time kept gets new
    copies; a cached file replaced by another cached file is rebuilt, not read."""
    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    label = next((root / "train" / "label").glob("*.tif"))
    with rasterio.open(label) as src:
        profile, data = src.profile, src.read()
    profile.pop("compress", None)
    with rasterio.open(label, "w", **profile) as dst:  # uncompressed: edits keep the size
        dst.write(data)
    folder = tmp_path / "cache"
    first = batches(demo_datamodule(root, tmp_path, cache_dir=str(folder), augment=False))
    copies = sorted(folder.glob("*.tif"))
    stamp, size = label.stat(), label.stat().st_size
    with rasterio.open(label, "r+") as dst:
        edited = dst.read(1)
        edited[:8, :8] = 95 if edited[0, 0] != 95 else 11
        dst.write(edited, 1)
    os.utime(label, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert label.stat().st_size == size and label.stat().st_mtime_ns == stamp.st_mtime_ns
    demo_datamodule(root, tmp_path, cache_dir=str(folder)).setup("fit")
    assert len(list(folder.glob("*.tif"))) == len(copies) + 1
    with rasterio.open(label, "r+") as dst:
        dst.write(data[0], 1)
    os.utime(label, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    # One cached copy overwritten with another's bytes: found by its key, and rebuilt.
    shutil.copy(copies[1], copies[0])
    rebuilt = batches(demo_datamodule(root, tmp_path, cache_dir=str(folder), augment=False))
    for a, b in zip(first, rebuilt, strict=True):
        assert torch.equal(a["mask"], b["mask"]) and torch.equal(a["air"], b["air"])
