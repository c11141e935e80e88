"""Geometry of the dual-stream join, with rasters whose values encode their coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
import torch
from affine import Affine
from pyproj import Transformer
from torchgeo.samplers import GriddedPatchSampler, RandomPatchSampler

from dualstream_geo.data import (
    GEMS,
    AirPollution,
    DualStreamGeoDataset,
    LandCoverMask,
    SatelliteImage,
)

from .conftest import pixel_centres, write_raster

IMAGE_CRS, LABEL_CRS = "EPSG:32652", "EPSG:5186"
X0, Y0, RES, SIZE = 330_000.0, 4_160_000.0, 10.0, 256
CELL = 100.0  # label checkerboard cell in image-CRS metres
AIR_RES = 0.001


def checkerboard(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ((np.floor(x / CELL) + np.floor(y / CELL)) % 2).astype(np.uint8)


@pytest.fixture(scope="module")
def coded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Image bands = pixel-centre easting/northing; air bands = lon/lat; a checkerboard label
    defined in the image CRS but stored in EPSG:5186 on a 7.5 m grid."""
    root = tmp_path_factory.mktemp("coded")
    transform = Affine(RES, 0, X0, 0, -RES, Y0)
    xs, ys = pixel_centres(transform, SIZE, SIZE)
    image = np.stack([xs, ys, xs * 0 + 1, ys * 0 + 2]).astype(np.float64)
    write_raster(root / "image" / "scene.tif", image, IMAGE_CRS, transform)

    to_label = Transformer.from_crs(IMAGE_CRS, LABEL_CRS, always_xy=True)
    left, top = to_label.transform(X0 - 200, Y0 + 200)
    label_transform = Affine(7.5, 0, left, 0, -7.5, top)
    lx, ly = pixel_centres(label_transform, 420, 420)
    ix, iy = Transformer.from_crs(LABEL_CRS, IMAGE_CRS, always_xy=True).transform(lx, ly)
    write_raster(
        root / "label" / "scene.tif",
        checkerboard(ix, iy)[None],
        LABEL_CRS,
        label_transform,
        nodata=255,
    )

    to_lonlat = Transformer.from_crs(IMAGE_CRS, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_lonlat.transform(X0 - 500, Y0 + 500)
    air_transform = Affine(AIR_RES, 0, lon0, 0, -AIR_RES, lat0)
    lon, lat = pixel_centres(air_transform, 40, 45)
    bands = np.zeros((12, 40, 45))
    bands[0], bands[1] = lon, lat
    write_raster(root / "gems" / "GEMS_scene.tif", bands, "EPSG:4326", air_transform)
    for gas in ("CO", "NO2", "SO2"):
        write_raster(
            root / "air" / f"AIR_Pollution_{gas}_scene.tif", bands, "EPSG:4326", air_transform
        )
    return root


def join(root: Path, mask: bool = True) -> DualStreamGeoDataset:
    return DualStreamGeoDataset(
        SatelliteImage(root / "image"),
        [GEMS(root / "gems"), AirPollution(root / "air")],
        LandCoverMask(root / "label") if mask else None,
    )


def test_sample_contract_and_exact_image(coded: Path) -> None:
    ds = join(coded)
    assert ds.res == (RES, RES)
    x0, y1 = X0 + 320.0, Y0 - 160.0
    sample = ds[x0 : x0 + 128 * RES, y1 - 128 * RES : y1]
    assert sample["image"].shape == (4, 128, 128) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (128, 128) and sample["mask"].dtype == torch.int64
    assert sample["air"].shape == (48, 16, 16)
    assert sample["valid"].all()
    assert sample["bounds"].dtype == torch.float64
    assert sample["bounds"].tolist() == [x0, y1 - 128 * RES, x0 + 128 * RES, y1]
    # Same CRS and aligned grid: a plain read, so values are the pixel centres exactly (float32).
    expected_x = x0 + (np.arange(128) + 0.5) * RES
    np.testing.assert_allclose(sample["image"][0, 5].numpy(), expected_x, atol=0.5)
    np.testing.assert_allclose(
        sample["image"][1, :, 7].numpy(), y1 - (np.arange(128) + 0.5) * RES, atol=0.5
    )


def test_air_on_its_own_coarse_grid(coded: Path) -> None:
    ds = join(coded)
    x0, y1 = X0 + 400.0, Y0 - 240.0
    air = ds[x0 : x0 + 128 * RES, y1 - 128 * RES : y1]["air"].numpy()
    xs, ys = pixel_centres(Affine(RES * 8, 0, x0, 0, -RES * 8, y1), 16, 16)
    lon, lat = Transformer.from_crs(IMAGE_CRS, "EPSG:4326", always_xy=True).transform(xs, ys)
    for first in (0, 12, 24, 36):  # GEMS, CO, NO2, SO2 all carry lon/lat in bands 1 and 2
        assert np.abs(air[first] - lon).max() < AIR_RES / 2
        assert np.abs(air[first + 1] - lat).max() < AIR_RES / 2


def test_mask_reprojected_from_another_crs_within_one_pixel(coded: Path) -> None:
    ds = join(coded)
    x0, y1 = X0 + 200.0, Y0 - 200.0
    mask = ds[x0 : x0 + 128 * RES, y1 - 128 * RES : y1]["mask"].numpy()
    xs, ys = pixel_centres(Affine(RES, 0, x0, 0, -RES, y1), 128, 128)
    wrong = mask != checkerboard(xs, ys)
    assert wrong.mean() < 0.05
    # Every disagreement lies within one image pixel of a checkerboard edge.
    distance = np.minimum(
        np.abs(xs - np.round(xs / CELL) * CELL), np.abs(ys - np.round(ys / CELL) * CELL)
    )
    assert (distance[wrong] <= RES).all()


def test_index_is_intersection_in_image_crs(coded: Path) -> None:
    ds = join(coded)
    footprint = ds.index.geometry.union_all()
    assert footprint.area == pytest.approx((SIZE * RES) ** 2, rel=1e-6)
    assert "32652" in ds.crs.to_string()


def test_gridded_sampler_covers_scene_without_nan(demo_root: Path) -> None:
    test = demo_root / "test"
    from dualstream_geo.data import DEMO_CLASS_MAP

    ds = DualStreamGeoDataset(
        SatelliteImage(test / "image"),
        [GEMS(test / "gems"), AirPollution(test / "air")],
        LandCoverMask(test / "label", class_map=DEMO_CLASS_MAP),
    )
    boxes, invalid = [], 0
    for query in GriddedPatchSampler(ds, size=128, stride=96):
        sample = ds[query]
        for key in ("image", "air"):
            assert torch.isfinite(sample[key]).all()
        invalid += int((~sample["valid"]).sum())
        assert (sample["mask"][~sample["valid"]] == 255).all()
        boxes.append(shapely.box(*sample["bounds"].tolist()))
    scene = ds.index.geometry.union_all()
    assert shapely.union_all(boxes).covers(scene)
    assert invalid > 0  # the nodata collar


def test_random_sampler_patches_inside(demo_root: Path) -> None:
    train = demo_root / "train"
    ds = DualStreamGeoDataset(
        SatelliteImage(train / "image"), [GEMS(train / "gems"), AirPollution(train / "air")]
    )
    scene = ds.index.geometry.union_all()
    for query in RandomPatchSampler(ds, size=64, length=10, generator=0):
        sample = ds[query]
        assert "mask" not in sample
        assert scene.contains(shapely.box(*sample["bounds"].tolist()))
        assert sample["air"].shape == (48, 8, 8)


def test_band_per_file_scene_and_label_in_other_crs(zion: Path) -> None:
    import rasterio

    image = SatelliteImage(zion, band_files=("_b2", "_b3", "_b4", "_b5"), nodata=65535)
    mask = LandCoverMask(zion / "nlcd.tif")
    ds = DualStreamGeoDataset(image, None, mask)
    with rasterio.open(zion / "landsat_b2.tif") as src:
        x0, y1 = src.bounds.left + 10 * 30.0, src.bounds.top - 20 * 30.0
    sample = ds[x0 : x0 + 64 * 30.0, y1 - 64 * 30.0 : y1]
    assert sample["image"].shape == (4, 64, 64) and "air" not in sample
    for band, name in enumerate(("b2", "b3", "b4", "b5")):
        with rasterio.open(zion / f"landsat_{name}.tif") as src:
            row, col = src.index(x0 + 15.0, y1 - 15.0)
            assert sample["image"][band, 0, 0].item() == float(src.read(1)[row, col])
    # The NLCD label (EPSG:26912, 31.5 m) lands on the Landsat grid by nearest neighbour.
    xs, ys = pixel_centres(Affine(30.0, 0, x0, 0, -30.0, y1), 64, 64)
    lx, ly = Transformer.from_crs("EPSG:32612", "EPSG:26912", always_xy=True).transform(
        xs.ravel(), ys.ravel()
    )
    with rasterio.open(zion / "nlcd.tif") as src:
        expected = np.array([v[0] for v in src.sample(zip(lx, ly, strict=True))]).reshape(64, 64)
    assert (sample["mask"].numpy() == expected).mean() > 0.97
