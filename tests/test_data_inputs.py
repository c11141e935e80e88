"""Sources, statistics, the original layout, the datamodule, and bad input."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from dualstream_geo.data import (
    DEMO_CLASS_MAP,
    GEMS,
    AirPollution,
    BandStats,
    ClassSpec,
    DatasetStats,
    DualStreamGeoDataset,
    LandCoverMask,
    SatelliteImage,
)
from dualstream_geo.data.augment import DualStreamAugmentation
from dualstream_geo.data.checks import check_air_values
from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.data.settings import SamplingSettings
from dualstream_geo.errors import DualStreamError

from .conftest import NODATA_SCENE, demo_datamodule, write_raster

UTM = "EPSG:32652"


def tile_transform(x0: float, y0: float, res: float) -> Affine:
    return Affine(res, 0, x0, 0, -res, y0)


# -- statistics ---------------------------------------------------------------------------
def test_stats_from_decimated_reads_roundtrip(demo_root: Path, tmp_path: Path) -> None:
    image = SatelliteImage(demo_root / "train" / "image")
    stats = BandStats.from_source(image)
    import rasterio

    with rasterio.open(demo_root / "train" / "image" / "scene_a.tif") as src:
        full = src.read().reshape(4, -1).astype(np.float64)
    np.testing.assert_allclose(stats.mean, full.mean(1), rtol=0.02)
    np.testing.assert_allclose(stats.std, full.std(1), rtol=0.05)
    air = BandStats.concat(
        [
            BandStats.from_source(GEMS(demo_root / "train" / "gems")),
            BandStats.from_source(AirPollution(demo_root / "train" / "air")),
        ]
    )
    assert len(air.mean) == 48
    # The pollutants differ by orders of magnitude: dataset-wide statistics keep that scale.
    assert air.mean[0] > 1e10 and air.mean[36] < 0.01
    path = tmp_path / "stats.json"
    DatasetStats(stats, air).save(path)
    loaded = DatasetStats.load(path)
    assert loaded.image.mean == stats.mean and loaded.air is not None and loaded.air.std == air.std


def test_original_scaling_and_whole_tiles(tmp_path: Path) -> None:
    """``normalization: original`` + ``sampler: tiles``: each 128 px tile read whole, image
    in [0, 1] as floor(x / 256) / 255, each air file min-max scaled to [0, 1]."""
    write_original_tree(tmp_path, georeferenced_aux=True)
    dm = DualStreamDataModule(
        root=str(tmp_path),
        layout="original",
        classes=ClassSpec(map={90: 1}),
        aux="original",
        normalization="original",
        sampling=SamplingSettings(kind="tiles"),
        patch_size=128,
        batch_size=2,
        augment=False,
    )
    dm.setup("fit")
    assert dm.stats is None  # no statistics needed
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 4, 128, 128) and batch["air"].shape == (2, 48, 16, 16)
    with rasterio.open(tmp_path / "ts_sn" / "tile_train_0.tif") as src:
        raw, bounds = src.read(), src.bounds
    first = [i for i, b in enumerate(batch["bounds"]) if abs(float(b[0]) - bounds.left) < 1e-6]
    assert len(first) == 1  # whole tiles, on the tile's own footprint
    expected = np.floor(raw / 256) / 255
    np.testing.assert_allclose(batch["image"][first[0]].numpy(), expected, atol=1e-7)
    for k in range(4):
        group = batch["air"][:, 12 * k : 12 * (k + 1)]
        assert float(group.amin()) == 0.0 and float(group.amax()) == pytest.approx(1.0)
    val = list(dm.val_dataloader())
    assert sum(len(b["image"]) for b in val) == 2  # each val tile once, in order


# -- the original folder layout ----------------------------------------------------------
def write_original_tree(root: Path, georeferenced_aux: bool, size: int = 128) -> None:
    rng = np.random.default_rng(0)
    for split, (img, lbl, gems, ap) in {
        "train": ("ts_sn", "tl_sn", "t_gems", "t_ap"),
        "val": ("vs_sn", "vl_sn", "v_gems", "v_ap"),
    }.items():
        for i in range(2):
            name = f"tile_{split}_{i}"
            transform = tile_transform(
                330_000 + i * size * 15 + (split == "val") * size * 50, 4_160_000, 10.0
            )
            write_raster(
                root / img / f"{name}.tif",
                rng.integers(1, 4000, (4, size, size)).astype(np.uint16),
                UTM,
                transform,
            )
            label = np.where(rng.random((1, size, size)) < 0.2, 90, 20).astype(np.uint8)
            write_raster(root / lbl / f"{name}.tif", label, UTM, transform)
            crs, aux_transform = (
                (UTM, tile_transform(transform.c, transform.f, 80.0))
                if georeferenced_aux
                else (None, None)
            )
            aux = rng.random((12, size // 8, size // 8)).astype(np.float32)
            write_raster(root / gems / f"GEMS_{name}.tif", aux, crs, aux_transform)
            for gas in ("CO", "NO2", "SO2"):
                write_raster(
                    root / ap / f"AIR_Pollution_{gas}_{name}.tif", aux * 2, crs, aux_transform
                )


def test_original_layout_without_aux_georeferencing(tmp_path: Path) -> None:
    write_original_tree(tmp_path, georeferenced_aux=False)
    with pytest.warns(UserWarning, match=r"8 tile\(s\) without georeferencing"):
        dm = DualStreamDataModule(
            root=str(tmp_path),
            layout="original",
            classes=ClassSpec(map={90: 1}),
            aux="original",
            patch_size=64,
            batch_size=2,
            length=4,
        )
        dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 4, 64, 64) and batch["air"].shape == (2, 48, 8, 8)
    assert set(batch["mask"].unique().tolist()) <= {0, 1}
    val = next(iter(dm.val_dataloader()))
    assert val["mask"].shape == (2, 64, 64)


# -- datamodule ------------------------------------------------------------------------------
def test_datamodule_geographic_split_and_normalisation(demo_root: Path, tmp_path: Path) -> None:
    dm = demo_datamodule(demo_root, tmp_path)
    dm.setup("fit")
    assert json.loads((tmp_path / "stats.json").read_text())["air"]["bands"][0] == "gems_01"
    splits = dm.datasets()
    train_area = splits["train"].index.geometry.union_all()
    val_area = splits["val"].index.geometry.union_all()
    assert train_area.intersection(val_area).area == pytest.approx(0, abs=1e-6)
    assert val_area.area / (train_area.area + val_area.area) == pytest.approx(0.2, abs=0.1)
    batch = next(iter(dm.train_dataloader()))
    assert abs(float(batch["image"].mean())) < 1.5 and torch.isfinite(batch["air"]).all()
    # Validation labels outside the validation cells are ignored: no training pixel is scored.
    import shapely

    for batch in dm.val_dataloader():
        for bounds, mask in zip(batch["bounds"], batch["mask"], strict=True):
            if not val_area.contains(shapely.box(*bounds.tolist())):
                assert (mask == 255).any()
    dm.setup("test")
    assert dm.test_dataset is not None and "5186" in dm.test_dataset.crs.to_string()


def test_augmentation_is_identical_on_image_mask_and_air() -> None:
    torch.manual_seed(0)
    rows, cols = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    image = torch.stack([rows, cols, rows, cols]).expand(6, 4, 64, 64).clone()
    mask = ((rows // 8) * 8 + cols // 8).long().expand(6, 64, 64).clone()
    cell_rows, cell_cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    air = torch.zeros(6, 48, 8, 8)
    air[:, 0], air[:, 1] = cell_rows, cell_cols
    batch = {
        "image": image,
        "mask": mask,
        "valid": torch.ones(6, 64, 64, dtype=torch.bool),
        "air": air,
    }
    out = DualStreamAugmentation(intensity=False)(batch)
    moved = 0
    for b in range(6):
        img_rows, img_cols = out["image"][b, 0].round(), out["image"][b, 1].round()
        assert torch.equal(out["mask"][b], (img_rows // 8) * 8 + img_cols // 8)
        centre_rows = out["image"][b, 0, 3::8, 3::8].round() // 8
        assert torch.equal(out["air"][b, 0].round(), centre_rows)
        moved += int(not torch.equal(out["mask"][b], mask[b]))
    assert moved > 0


def test_intensity_augmentation_can_be_turned_off(demo_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    changed = {}
    for intensity in (True, False):
        dm = demo_datamodule(demo_root, tmp_path, augment_intensity=intensity)
        dm.setup("fit")
        assert dm.train_aug is not None
        batch = next(iter(dm.train_dataloader()))
        image = batch["image"].clone()
        out = dm.train_aug(batch)["image"]
        # Flips and rotations only move pixels (kornia's rotation warp adds rounding noise):
        # each patch keeps its values.
        same = [
            torch.allclose(a.flatten().sort().values, b.flatten().sort().values, atol=1e-4)
            for a, b in zip(image, out, strict=True)
        ]
        changed[intensity] = not all(same)
    assert changed == {True: True, False: False}


# -- bad input ------------------------------------------------------------------------------
def test_bad_api_arguments_are_clear_errors(demo_root: Path, tmp_path: Path) -> None:
    image = SatelliteImage(demo_root / "train" / "image")
    with pytest.raises(DualStreamError, match="class_map key 70000 is not a label value"):
        LandCoverMask(demo_root / "train" / "label", class_map={70000: 1})
    with pytest.raises(DualStreamError, match=r"aux_fill must be one value or 12 .*got 5"):
        DualStreamGeoDataset(image, GEMS(demo_root / "train" / "gems"), aux_fill=[0.0] * 5)
    with pytest.raises(DualStreamError, match="image must be a SatelliteImage source"):
        DualStreamGeoDataset(str(demo_root / "train" / "image"), None)  # type: ignore[arg-type]
    with pytest.raises(DualStreamError, match="air sources must be raster sources"):
        DualStreamGeoDataset(image, ["gems/"])  # type: ignore[list-item]
    for bad, message in (
        ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"length": 0}, "length must be >= 1 patches per epoch"),
        ({"normalization": "zscore"}, "normalization must be one of"),
    ):
        with pytest.raises(DualStreamError, match=message):
            DualStreamDataModule(root=str(demo_root), **bad)  # type: ignore[arg-type]
    corrupt = tmp_path / "stats.json"
    corrupt.write_text("{not json")
    datamodule = DualStreamDataModule(root=str(demo_root), stats_path=str(corrupt))
    with pytest.raises(DualStreamError, match=r"stats.json: not a readable statistics file"):
        datamodule.setup("fit")


def test_no_matching_rasters(tmp_path: Path) -> None:
    with pytest.raises(DualStreamError, match=r"GEMS: no rasters matching 'GEMS_\*.tif'"):
        GEMS(tmp_path)
    with pytest.raises(DualStreamError, match=r"SatelliteImage: .*/nowhere does not exist"):
        SatelliteImage(tmp_path / "nowhere")


def test_wrong_band_counts(tmp_path: Path) -> None:
    with pytest.raises(
        DualStreamError, match=r"RGB.byte.tif: SatelliteImage expects 4 band.*has 3"
    ):
        SatelliteImage(NODATA_SCENE)
    write_raster(
        tmp_path / "GEMS_x.tif", np.zeros((5, 8, 8), np.float32), UTM, tile_transform(0, 80, 10)
    )
    with pytest.raises(DualStreamError, match=r"GEMS_x.tif: GEMS expects 12 band\(s\).*has 5"):
        GEMS(tmp_path)


def test_raster_without_crs(tmp_path: Path) -> None:
    write_raster(tmp_path / "a.tif", np.zeros((4, 8, 8), np.uint16), None, None)
    with pytest.raises(DualStreamError, match=r"a.tif: raster has no CRS"):
        SatelliteImage(tmp_path)


def test_truncated_geotiff(tmp_path: Path, demo_root: Path) -> None:
    source = demo_root / "train" / "image" / "scene_a.tif"
    data = source.read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(DualStreamError, match=r"cut.tif: (corrupt or truncated|not a readable)"):
        SatelliteImage(tmp_path)


def test_sources_that_do_not_overlap(tmp_path: Path) -> None:
    write_raster(
        tmp_path / "img" / "a.tif",
        np.ones((4, 32, 32), np.uint16),
        UTM,
        tile_transform(330_000, 4_160_000, 10),
    )
    write_raster(
        tmp_path / "gems" / "GEMS_a.tif",
        np.ones((12, 4, 4), np.float32),
        UTM,
        tile_transform(500_000, 4_160_000, 80),
    )
    with pytest.raises(
        DualStreamError,
        match=r"GEMS \(.*GEMS_a.tif\) does not overlap the image: its bounds 500000.* "
        r"against the image's 330000",
    ):
        DualStreamGeoDataset(SatelliteImage(tmp_path / "img"), [GEMS(tmp_path / "gems")])


def test_label_values_outside_class_map_warn_once(tmp_path: Path) -> None:
    label = np.array([[[90, 20], [30, 30]]], dtype=np.uint8).repeat(8, 1).repeat(8, 2)
    write_raster(tmp_path / "l.tif", label, UTM, tile_transform(0, 160, 10))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = LandCoverMask(tmp_path, class_map={90: 1})
    messages = [str(w.message) for w in caught if "class_map" in str(w.message)]
    assert len(messages) == 1 and "20: 64" in messages[0] and "30: 128" in messages[0]
    classes = mask.to_classes(label[0].astype(np.float32))
    assert set(np.unique(classes)) == {0, 1}
    ignore = LandCoverMask(tmp_path, class_map={90: 1}, unmapped="ignore")
    assert set(np.unique(ignore.to_classes(label[0].astype(np.float32)))) == {1, 255}


def test_nan_in_air_is_filled_and_inf_is_an_error(tmp_path: Path) -> None:
    write_raster(
        tmp_path / "img" / "a.tif",
        np.ones((4, 64, 64), np.uint16),
        UTM,
        tile_transform(330_000, 4_160_000, 10),
    )
    air = np.ones((12, 8, 8), np.float32)
    air[:, 2:5, 2:5] = np.nan
    write_raster(tmp_path / "gems" / "GEMS_a.tif", air, UTM, tile_transform(330_000, 4_160_000, 80))
    gems = GEMS(tmp_path / "gems")
    # Partly empty: one warning naming the file and the share filled.
    with pytest.warns(UserWarning, match=r"GEMS_a.tif: 14.1% of the values are NaN or nodata"):
        check_air_values(gems)
    stats = BandStats.from_source(gems)
    ds = DualStreamGeoDataset(SatelliteImage(tmp_path / "img"), [gems], aux_fill=stats.mean)
    sample = ds[330_000:330_640, 4_159_360:4_160_000]
    assert torch.isfinite(sample["air"]).all() and sample["air"][0, 3, 3] == pytest.approx(1.0)
    shutil.rmtree(tmp_path / "gems")
    air[0, 0, 0] = np.inf
    write_raster(tmp_path / "gems" / "GEMS_a.tif", air, UTM, tile_transform(330_000, 4_160_000, 80))
    with pytest.raises(DualStreamError, match=r"GEMS_a.tif: contains inf"):
        BandStats.from_source(GEMS(tmp_path / "gems"))


def test_empty_air_image_or_labels_are_errors(tmp_path: Path) -> None:
    """Air with no valid value, an image that is all nodata, a split without labels: each
    stops with one error naming the file or split (prediction runs the same checks)."""
    transform = tile_transform(330_000, 4_160_000, 10)
    write_raster(
        tmp_path / "train" / "image" / "a.tif", np.ones((4, 128, 128), np.uint16), UTM, transform
    )
    write_raster(
        tmp_path / "train" / "label" / "a.tif", np.full((1, 128, 128), 20, np.uint8), UTM, transform
    )
    air = np.random.default_rng(0).random((12, 16, 16)).astype(np.float32)
    air_transform = tile_transform(330_000, 4_160_000, 80)
    write_raster(tmp_path / "train" / "gems" / "GEMS_a.tif", air, UTM, air_transform)
    for gas in ("CO", "NO2", "SO2"):
        write_raster(
            tmp_path / "train" / "air" / f"AIR_Pollution_{gas}_a.tif", air, UTM, air_transform
        )

    def datamodule(**kwargs: object) -> DualStreamDataModule:
        dm = DualStreamDataModule(
            root=str(tmp_path),
            patch_size=64,
            batch_size=2,
            length=2,
            aux="original",
            **kwargs,  # type: ignore[arg-type]
        )
        dm.setup("fit")
        return dm

    # Labels: raw 20 is not in the class map and unmapped values are ignored: nothing to learn.
    with pytest.raises(DualStreamError, match="the train split has no labelled pixel"):
        datamodule(classes=ClassSpec(map={90: 1}, unmapped="ignore"))
    empty = air.copy()
    empty[3] = np.nan
    write_raster(tmp_path / "train" / "gems" / "GEMS_a.tif", empty, UTM, air_transform)
    with pytest.raises(DualStreamError, match=r"GEMS_a.tif: band 4 of GEMS holds no valid value"):
        datamodule(classes=ClassSpec(map={20: 1}))
    write_raster(tmp_path / "train" / "gems" / "GEMS_a.tif", air, UTM, air_transform)
    write_raster(
        tmp_path / "train" / "image" / "a.tif",
        np.zeros((4, 128, 128), np.uint16),
        UTM,
        transform,
        nodata=0,
    )
    with pytest.raises(DualStreamError, match=r"a.tif hold no valid pixel"):
        datamodule(classes=ClassSpec(map={20: 1}))


def test_patch_size_must_be_multiple_of_32(demo_root: Path) -> None:
    with pytest.raises(
        DualStreamError, match="patch_size must be a positive multiple of 32, got 100"
    ):
        DualStreamDataModule(root=str(demo_root), patch_size=100)


def test_focus_sampler_centres_patches_on_a_rare_class(demo_root: Path) -> None:
    import shapely

    from dualstream_geo.data.sampling import FocusPatchSampler

    train = demo_root / "train"
    ds = DualStreamGeoDataset(
        SatelliteImage(train / "image"),
        [GEMS(train / "gems"), AirPollution(train / "air")],
        LandCoverMask(train / "label", class_map=DEMO_CLASS_MAP),
    )
    region = ds.index.geometry.union_all()
    focused = list(FocusPatchSampler(ds, size=64, length=12, classes=[1], fraction=1.0, seed=0))
    assert len(focused) == 12
    for query in focused:
        sample = ds[query]
        assert region.contains(shapely.box(*sample["bounds"].tolist()))
        # Centred on the target, to the aux grid's 8 px (patches start on the scene's grids).
        assert (sample["mask"][27:37, 27:37] == 1).any()
    half = list(FocusPatchSampler(ds, size=64, length=40, classes=[1], fraction=0.5, seed=0))
    centred = sum(bool((ds[q]["mask"][27:37, 27:37] == 1).any()) for q in half)
    assert 20 <= centred < 40


def test_focus_sampler_balances_its_classes(zion: Path) -> None:
    """A class of about a hundred pixels gets as many focused patches as one of thousands."""
    from dualstream_geo.data.sampling import FocusPatchSampler

    image = SatelliteImage(zion, band_files=("_b2", "_b3", "_b4", "_b5"), nodata=65535)
    ds = DualStreamGeoDataset(image, [], LandCoverMask(zion / "nlcd.tif"))
    shrubland, barren = 5, 3  # raw NLCD classes of the crop: ~29,000 and ~120 pixels
    sampler = FocusPatchSampler(
        ds, size=32, length=200, classes=[shrubland, barren], fraction=1.0, seed=0
    )
    assert len(sampler.centres[0]) > 50 * len(sampler.centres[1]) > 0
    centres = [ds[q]["mask"][15:17, 15:17] for q in sampler]
    on_barren = sum(bool((c == barren).any()) for c in centres)
    assert 70 <= on_barren <= 130  # half of 200, not the 0.4 % of a pooled draw


def test_air_is_checked_over_the_region_it_serves(tmp_path: Path) -> None:
    """A GEMS file valid elsewhere but empty over the scene is an error (a whole-file check
    passes it); empty over part of the scene, a warning with the share."""
    from dualstream_geo.data.checks import check_air_over_region

    write_raster(
        tmp_path / "img" / "a.tif",
        np.ones((4, 64, 64), np.uint16),
        UTM,
        tile_transform(330_640, 4_160_000, 10),  # the right half of the air file
    )
    air = np.ones((12, 8, 16), np.float32)
    air[:, :, 8:] = np.nan  # empty exactly over the scene
    write_raster(tmp_path / "gems" / "GEMS_a.tif", air, UTM, tile_transform(330_000, 4_160_000, 80))
    gems = GEMS(tmp_path / "gems")
    with pytest.warns(UserWarning, match="50.0% of the values are NaN"):
        check_air_values(gems)  # the file as a whole: half valid
    ds = DualStreamGeoDataset(SatelliteImage(tmp_path / "img"), [gems])
    with pytest.raises(
        DualStreamError, match=r"GEMS_a.tif: GEMS channel 1 \(gems_01\) holds no valid value over"
    ):
        check_air_over_region(ds)
    air[:, :4, 8:] = 1.0  # the scene's top half now valid
    shutil.rmtree(tmp_path / "gems")
    write_raster(tmp_path / "gems" / "GEMS_a.tif", air, UTM, tile_transform(330_000, 4_160_000, 80))
    ds = DualStreamGeoDataset(SatelliteImage(tmp_path / "img"), [GEMS(tmp_path / "gems")])
    with pytest.warns(UserWarning, match=r"50.0% of the values over the scene are NaN"):
        check_air_over_region(ds)
