"""Shared fixtures: small rasters written by the tests, demo scenes, crops of real data."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from dualstream_geo.models.settings import ARCHITECTURE_FIELDS, ArchitectureSettings

if TYPE_CHECKING:
    from lightning.pytorch import Callback, Trainer

    from dualstream_geo.data.datamodule import DualStreamDataModule
    from dualstream_geo.training import DualStreamSegmentation

os.environ.setdefault("TQDM_DISABLE", "1")
# Gridded aux sources are cached: in a folder of the test session, not the user's cache,
# removed when the session ends (the subprocesses the tests start have ended by then).
_SESSION_CACHE = (
    None if "DUALSTREAM_CACHE" in os.environ else tempfile.mkdtemp(prefix="dualstream_geo_cache_")
)
if _SESSION_CACHE is not None:
    os.environ["DUALSTREAM_CACHE"] = _SESSION_CACHE


def pytest_unconfigure(config: pytest.Config) -> None:
    if _SESSION_CACHE is not None:
        shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


#: Crops of real CC0 rasters committed with the tests (tests/data/README.md).
DATA = Path(__file__).resolve().parent / "data"
ZION = DATA / "zion"
NODATA_SCENE = DATA / "nodata" / "RGB.byte.tif"


#: The architecture most tests train: the cheapest.
LITE_B0 = ArchitectureSettings(preset="lite", vision_encoder="segformer-b0")


def write_raster(
    path: Path,
    data: np.ndarray,
    crs: str | None,
    transform: Affine | None,
    nodata: float | None = None,
) -> Path:
    """Write (bands, rows, cols) ``data`` as a GeoTIFF; crs/transform None = not georeferenced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "nodata": nodata,
    }
    if crs is not None:
        profile["crs"] = CRS.from_user_input(crs)
    if transform is not None:
        profile["transform"] = transform
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def pixel_centres(transform: Affine, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs, ys = transform @ (cols, rows)
    return np.asarray(xs), np.asarray(ys)


def demo_datamodule(demo_root: Path, tmp_path: Path, **settings: Any) -> DualStreamDataModule:
    """The demo scenes (image + the original preset's aux stream) as two classes, 8 patches
    of 64 px per epoch; ``settings`` override."""
    from dualstream_geo.data import DEMO_CLASS_MAP, ClassSpec
    from dualstream_geo.data.datamodule import DualStreamDataModule

    defaults = {
        "root": str(demo_root),
        "classes": ClassSpec(names=("background", "target"), map=DEMO_CLASS_MAP),
        "aux": "original",
        "patch_size": 64,
        "batch_size": 4,
        "length": 8,
        "stats_path": str(tmp_path / "stats.json"),
    }
    return DualStreamDataModule(**{**defaults, **settings})


def tiny(
    demo_root: Path, tmp_path: Path, **model: Any
) -> tuple[DualStreamSegmentation, DualStreamDataModule]:
    """A 2-class task (``model`` overrides its settings; the architecture's among them go into
    ``architecture``) and 8 demo patches per epoch."""
    from dualstream_geo.training import DualStreamSegmentation

    datamodule = demo_datamodule(demo_root, tmp_path, augment=False)
    built = {"vision_encoder": "segformer-b0"}
    built |= {k: model.pop(k) for k in list(model) if k in ARCHITECTURE_FIELDS}
    settings = {
        "input_spec": datamodule.input_spec,
        "architecture": ArchitectureSettings(**built),
        "lr": 1e-3,
    }
    return DualStreamSegmentation(**{**settings, **model}), datamodule


def trainer(tmp_path: Path, epochs: int, callbacks: list[Callback] | None = None) -> Trainer:
    """A quiet CPU trainer writing to ``tmp_path``: no logger, no bar, 2 validation batches."""
    from lightning.pytorch import Trainer

    return Trainer(
        max_epochs=epochs,
        default_root_dir=str(tmp_path),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks or [],
        limit_val_batches=2,
    )


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from dualstream_geo.data import make_demo_scenes

    root = tmp_path_factory.mktemp("demo")
    make_demo_scenes(root, seed=0)
    return root


@pytest.fixture(scope="session")
def zion() -> Path:
    """192 x 192 px of Landsat 8 (one file per band, EPSG:32612) + NLCD (EPSG:26912)."""
    return ZION


#: The demo land-cover types as five classes: spectrally distinct, so a short run learns them.
LAND_COVER = {11: 0, 41: 1, 52: 2, 71: 3, 90: 4, 95: 4}


@pytest.fixture(scope="session")
def checkpoint(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained 5-class land-cover model (7 epochs: about 50 s on 2 CPU cores)."""
    from lightning.pytorch import seed_everything

    from dualstream_geo.data import ClassSpec
    from dualstream_geo.training import DualStreamSegmentation

    root = tmp_path_factory.mktemp("predict_model")
    seed_everything(0, verbose=False)
    classes = ClassSpec(names=("water", "forest", "shrub", "grass", "plot"), map=LAND_COVER)
    datamodule = demo_datamodule(demo_root, root, classes=classes, batch_size=8, length=96)
    task = DualStreamSegmentation(
        input_spec=datamodule.input_spec,
        # Inference is what is tested here; the lite preset trains fastest.
        architecture=ArchitectureSettings(preset="lite", vision_encoder="segformer-b0"),
        lr=2e-3,
        freeze_epochs=0,
    )
    trainer(root, epochs=7).fit(task, datamodule)
    return root / "checkpoints" / "last.ckpt"


@pytest.fixture()
def scene(demo_root: Path, tmp_path: Path) -> dict[str, Path]:
    """The held-out demo scene (EPSG:5186, 384 px with a nodata collar) copied per test."""
    folder = tmp_path / "scene"
    shutil.copytree(demo_root / "test", folder)
    return {
        "image": folder / "image",
        "gems": folder / "gems",
        "air": folder / "air",
        "file": folder / "image" / "scene_b.tif",
    }
