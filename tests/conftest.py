"""Shared fixtures: small rasters written by the tests, demo scenes, crops of real data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

os.environ.setdefault("TQDM_DISABLE", "1")

#: Crops of real CC0 rasters committed with the tests (tests/data/README.md).
DATA = Path(__file__).resolve().parent / "data"
ZION = DATA / "zion"
NODATA_SCENE = DATA / "nodata" / "RGB.byte.tif"


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
