"""The PNG previews beside maps: classes in their legend colours, probabilities as their
most likely class, a sample's points drawn, at most a few hundred pixels a side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from matplotlib.image import imread

from dualstream_geo.preview import MAX_SIDE, write_preview

COLORS = [(20, 60, 200), (30, 160, 40), (230, 200, 10)]


def colors_drawn(png: Path) -> set[tuple[int, int, int]]:
    pixels = (imread(png)[..., :3] * 255).round().astype(int).reshape(-1, 3)
    return {(int(r), int(g), int(b)) for r, g, b in np.unique(pixels, axis=0)}


def write(path: Path, data: np.ndarray, nodata: int = 255, colormap: bool = True) -> Path:
    profile = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1],
        "count": data.shape[0], "dtype": "uint8", "nodata": nodata, "crs": "EPSG:32612",
        "transform": Affine(30, 0, 300_000, 0, -30, 4_100_000),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(class_names='["water", "forest", "bare"]')
        if colormap and data.shape[0] == 1:
            dst.write_colormap(1, {i: (*c, 255) for i, c in enumerate(COLORS)})
    return path


def test_a_class_map_preview_shows_its_classes_and_only_those(tmp_path: Path) -> None:
    classes = np.zeros((1, 1500, 900), np.uint8)
    classes[:, :, 450:] = 1
    classes[:, :100, :100] = 255
    png = write_preview(write(tmp_path / "map.tif", classes), tmp_path / "map.png")
    drawn = colors_drawn(png)
    assert COLORS[0] in drawn and COLORS[1] in drawn
    assert COLORS[2] not in drawn  # "bare" is absent: not in the legend either
    assert (255, 255, 255) in drawn  # nodata
    height, width = imread(png).shape[:2]
    assert max(height, width) <= MAX_SIDE


def test_a_probability_raster_shows_its_most_likely_class_and_a_sample(tmp_path: Path) -> None:
    probabilities = np.zeros((3, 60, 80), np.uint8)
    probabilities[2, :, :40] = 200  # bare on the left
    probabilities[0, :, 40:] = 180  # water on the right
    probabilities[1] = 30
    raster = write(tmp_path / "probabilities.tif", probabilities)
    points = (np.array([300_600.0, 301_800.0]), np.array([4_099_100.0, 4_099_500.0]))
    png = write_preview(raster, tmp_path / "p.png", colors=COLORS, points=points)
    drawn = colors_drawn(png)
    assert COLORS[2] in drawn and COLORS[0] in drawn and COLORS[1] not in drawn
    assert (255, 213, 0) in drawn  # the points' yellow
    assert not list(tmp_path.glob(".*tmp*"))
