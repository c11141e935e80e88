"""Built-in demo scenes: georeferenced, multi-CRS, with a target that only air data reveals.

Every raster is sampled from the same analytic scene, defined in the scene's own projected
coordinates, so all grids agree wherever they overlap:

* land cover: large blobs of four background types (raw 11 water, 41 forest, 52 shrub,
  71 grass) and small square "plots" with a striped surface;
* pollution: a smooth field with clean and polluted districts (km scale);
* plots in polluted districts are the target (raw 90); the same plots in clean districts
  are look-alikes (raw 95, background). An image-only model cannot tell them apart.

The train scene is in EPSG:32652 with labels in EPSG:5186; the test scene is in EPSG:5186
with labels on a finer grid and a nodata collar; air rasters are in EPSG:4326 at ~500 m.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

TARGET_RAW = 90
LOOKALIKE_RAW = 95
BACKGROUND_RAW = (11, 41, 52, 71)
#: Raw label value -> class index (0 background, 1 target), covering every raw value written.
DEMO_CLASS_MAP = {**{v: 0 for v in BACKGROUND_RAW}, LOOKALIKE_RAW: 0, TARGET_RAW: 1}
DEMO_CLASS_NAMES = ("background", "target")
IMAGE_NODATA = 0

# Mean reflectance (blue, green, red, nir) x 10000 of each surface.
_SIGNATURES = {
    11: (900, 800, 600, 300),
    41: (500, 800, 500, 3500),
    52: (800, 1100, 1200, 2500),
    71: (700, 1200, 900, 3000),
    "plot": (1500, 1600, 1700, 2000),
}


@dataclass(frozen=True)
class SceneSpec:
    """One demo scene: CRS, upper-left corner, size in 10 m pixels and the label grid."""

    name: str
    crs: str
    x0: float
    y0: float
    size: int
    label_crs: str
    label_res: float
    nodata_collar: bool


DEMO_SCENES = (
    SceneSpec("scene_a", "EPSG:32652", 330_000.0, 4_160_000.0, 640, "EPSG:5186", 12.5, False),
    SceneSpec("scene_b", "EPSG:5186", 200_000.0, 510_000.0, 384, "EPSG:5186", 7.5, True),
)
RES = 10.0
AIR_RES_DEG = 0.005


BLOB_CELL = 1800.0  # metres: one background blob per lattice cell (a jittered Voronoi map)
PLOT_CELL = 500.0  # metres: at most one plot per lattice cell


class _Scene:
    """The analytic scene in its own CRS coordinates (metres from the upper-left corner).

    Blobs and plots sit on jittered lattices, so evaluating a point costs O(1) whatever the
    scene size (benchmarks generate scenes of several km).
    """

    def __init__(self, spec: SceneSpec, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.spec = spec
        extent = spec.size * RES
        # One blob per cell, padded by one cell so every point has 3 x 3 neighbours.
        blobs = int(np.ceil(extent / BLOB_CELL)) + 2
        lattice = np.arange(blobs) - 1.0
        self.blob_x = (lattice[None, :] + rng.uniform(0.1, 0.9, (blobs, blobs))) * BLOB_CELL
        self.blob_y = (lattice[:, None] + rng.uniform(0.1, 0.9, (blobs, blobs))) * BLOB_CELL
        self.blob_type = rng.choice(BACKGROUND_RAW, (blobs, blobs)).astype(np.uint8)
        self.phase = rng.uniform(0, 2 * np.pi, 2)
        cells = int(np.ceil(extent / PLOT_CELL))
        grid = np.arange(cells) * PLOT_CELL
        self.plot_x = grid[None, :] + rng.uniform(150, 350, (cells, cells))
        self.plot_y = grid[:, None] + rng.uniform(150, 350, (cells, cells))
        self.plot_half = rng.uniform(60, 110, (cells, cells))
        level = self.pollution(self.plot_x, self.plot_y)
        # Plots only where the district is clearly polluted (target) or clearly clean
        # (look-alike), as many of each, so that telling them apart is half the task.
        self.plot_kind = np.zeros((cells, cells), dtype=np.uint8)
        target = np.flatnonzero(level > 0.8)
        lookalike = np.flatnonzero(level < 0.2)
        count = min(len(target), len(lookalike), int(0.4 * cells * cells))
        self.plot_kind.flat[rng.choice(target, count, replace=False)] = TARGET_RAW
        self.plot_kind.flat[rng.choice(lookalike, count, replace=False)] = LOOKALIKE_RAW

    def pollution(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Smooth field in [0, 1] with km-scale clean and polluted districts."""
        wave = np.sin(x / 900.0 + self.phase[0]) + np.cos(y / 1100.0 + self.phase[1])
        return 1.0 / (1.0 + np.exp(-3.0 * wave))

    def raw_labels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Raw land-cover value at scene coordinates (x east, y south of the corner)."""
        rows = np.clip(np.floor(y / BLOB_CELL).astype(int) + 1, 1, self.blob_type.shape[0] - 2)
        cols = np.clip(np.floor(x / BLOB_CELL).astype(int) + 1, 1, self.blob_type.shape[1] - 2)
        best = np.full(x.shape, np.inf)
        raw = np.zeros(x.shape, dtype=np.uint8)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                r, c = rows + dr, cols + dc
                d2 = (x - self.blob_x[r, c]) ** 2 + (y - self.blob_y[r, c]) ** 2
                closer = d2 < best
                best = np.where(closer, d2, best)
                raw = np.where(closer, self.blob_type[r, c], raw)
        cells = self.plot_kind.shape[0]
        r = np.clip(np.floor(y / PLOT_CELL).astype(int), 0, cells - 1)
        c = np.clip(np.floor(x / PLOT_CELL).astype(int), 0, cells - 1)
        half = self.plot_half[r, c]
        inside = (np.abs(x - self.plot_x[r, c]) < half) & (np.abs(y - self.plot_y[r, c]) < half)
        kind = self.plot_kind[r, c]
        return np.where(inside & (kind > 0), kind, raw)


def _to_scene(
    spec: SceneSpec, crs: str, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates in ``crs`` -> scene-local metres (east of x0, south of y0)."""
    if crs != spec.crs:
        x, y = Transformer.from_crs(crs, spec.crs, always_xy=True).transform(x, y)
    return x - spec.x0, spec.y0 - y


def _centres(transform: Affine, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    xs, ys = transform @ (cols, rows)
    return np.asarray(xs), np.asarray(ys)


def _write(path: Path, data: np.ndarray, crs: str, transform: Affine, nodata: float | None) -> None:
    profile = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": CRS.from_user_input(crs),
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _write_scene(scene: _Scene, folder: Path, rng: np.random.Generator) -> None:
    """The scene's image, labels and air files under ``folder``.

    Drawn from ``rng`` in this order: the demo data stays what it was.
    """
    for sub in ("image", "label", "gems", "air"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    transform = _write_image(scene, folder, rng)
    _write_labels(scene, folder, transform)
    _write_air(scene, folder, rng)


def _write_image(scene: _Scene, folder: Path, rng: np.random.Generator) -> Affine:
    """``image/<name>.tif``; its transform."""
    spec = scene.spec
    # 10 m, 4 bands uint16, striped plots so they are easy to find but not to classify.
    transform = Affine(RES, 0, spec.x0, 0, -RES, spec.y0)
    xs, ys = _centres(transform, spec.size, spec.size)
    sx, sy = _to_scene(spec, spec.crs, xs, ys)
    raw = scene.raw_labels(sx, sy)
    image = np.zeros((4, spec.size, spec.size), dtype=np.float64)
    for value in BACKGROUND_RAW:
        image[:, raw == value] = np.array(_SIGNATURES[value])[:, None]
    plots = (raw == TARGET_RAW) | (raw == LOOKALIKE_RAW)
    stripes = 1.0 + 0.25 * np.sign(np.sin((sx + sy) / 15.0))
    image[:, plots] = np.array(_SIGNATURES["plot"])[:, None] * stripes[plots]
    image *= rng.normal(1.0, 0.08, image.shape)
    image = np.clip(image, 1, 65534).astype(np.uint16)
    if spec.nodata_collar:
        collar = (sx + (spec.size * RES - sy)) < 0.35 * spec.size * RES
        image[:, collar] = IMAGE_NODATA
    _write(folder / "image" / f"{spec.name}.tif", image, spec.crs, transform, IMAGE_NODATA)
    return transform


def _write_labels(scene: _Scene, folder: Path, transform: Affine) -> None:
    """``label/<name>.tif`` around the image of ``transform``."""
    spec = scene.spec
    # Another resolution, an origin offset by a fraction of a pixel, maybe another CRS.
    extent = spec.size * RES
    left, bottom, right, top = transform_bounds(
        spec.crs, spec.label_crs, spec.x0, spec.y0 - extent, spec.x0 + extent, spec.y0
    )
    margin = 100.0
    label_width = int(np.ceil((right - left + 2 * margin) / spec.label_res))
    label_height = int(np.ceil((top - bottom + 2 * margin) / spec.label_res))
    label_transform = Affine(
        spec.label_res,
        0,
        left - margin + 0.37 * spec.label_res,
        0,
        -spec.label_res,
        top + margin - 0.21 * spec.label_res,
    )
    lx, ly = _centres(label_transform, label_height, label_width)
    labels = scene.raw_labels(*_to_scene(spec, spec.label_crs, lx, ly))[None]
    _write(folder / "label" / f"{spec.name}.tif", labels, spec.label_crs, label_transform, 255)


def _write_air(scene: _Scene, folder: Path, rng: np.random.Generator) -> None:
    """``gems/GEMS_<name>.tif`` and ``air/AIR_Pollution_<product>_<name>.tif``."""
    spec = scene.spec
    # EPSG:4326 at ~500 m, padded beyond the scene; 12 GEMS + 3 x 12 pollutant bands.
    lon0, lat1 = Transformer.from_crs(spec.crs, "EPSG:4326", always_xy=True).transform(
        np.array([spec.x0, spec.x0 + spec.size * RES, spec.x0, spec.x0 + spec.size * RES]),
        np.array([spec.y0, spec.y0, spec.y0 - spec.size * RES, spec.y0 - spec.size * RES]),
    )
    west, east = lon0.min() - 0.02, lon0.max() + 0.02
    south, north = lat1.min() - 0.02, lat1.max() + 0.02
    width = int(np.ceil((east - west) / AIR_RES_DEG))
    height = int(np.ceil((north - south) / AIR_RES_DEG))
    air_transform = Affine(AIR_RES_DEG, 0, west, 0, -AIR_RES_DEG, north)
    lon, lat = _centres(air_transform, height, width)
    level = scene.pollution(*_to_scene(spec, "EPSG:4326", lon, lat))
    scales = {"GEMS": 5e15, "CO": 0.6, "NO2": 0.03, "SO2": 0.004}
    for product, scale in scales.items():
        gains = rng.uniform(0.6, 1.4, 12)[:, None, None]
        bands = scale * (0.3 + gains * level[None]) * rng.normal(1.0, 0.03, (12, height, width))
        data = bands.astype(np.float32)
        if product == "GEMS":
            _write(
                folder / "gems" / f"GEMS_{spec.name}.tif", data, "EPSG:4326", air_transform, None
            )
        else:
            name = f"AIR_Pollution_{product}_{spec.name}.tif"
            _write(folder / "air" / name, data, "EPSG:4326", air_transform, None)


def make_demo_scenes(
    root: str | os.PathLike[str], seed: int = 0, scenes: tuple[SceneSpec, ...] = DEMO_SCENES
) -> dict[str, Path]:
    """Write the demo scenes under ``root``: ``train/`` (scene_a) and ``test/`` (scene_b).

    Each split folder holds ``image/``, ``label/``, ``gems/`` and ``air/``. Returns the split
    folders by name. Takes a few seconds.

    Args:
        root: the folder to write under.
        seed: the random generator's seed (the same seed, the same files).
        scenes: the scenes to write (the first is the training scene).

    Returns:
        The split folders by name (``train``, ``test``).
    """
    rng = np.random.default_rng(seed)
    folders = {}
    for split, spec in zip(("train", "test"), scenes, strict=False):
        folder = Path(root) / split
        _write_scene(_Scene(spec, int(rng.integers(1 << 31))), folder, rng)
        folders[split] = folder
    return folders
