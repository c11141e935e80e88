"""Named aux sources: any coarse raster as the second stream, read on its own grid, named in
the input spec, stored in checkpoints, and given to ``predict`` by name."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml
from affine import Affine
from pyproj import Transformer
from rasterio.warp import calculate_default_transform, reproject

from dualstream_geo.cli import main
from dualstream_geo.data import (
    AuxRaster,
    AuxSpec,
    BandStats,
    ClassSpec,
    DualStreamGeoDataset,
    InputSpec,
    SatelliteImage,
)
from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.data.grid import Grid
from dualstream_geo.data.warped_rows import WarpedRows
from dualstream_geo.errors import DualStreamError
from dualstream_geo.inference import ScenePredictor
from dualstream_geo.training import DualStreamSegmentation, read_spec

from .conftest import DATA, LITE_B0, ZION, write_raster

REPO = Path(__file__).resolve().parents[1]
MONTHS = ("2020-01", "2020-02", "2020-03", "2020-04", "2020-05")


def _write_described(path: Path, data: np.ndarray, crs: str, transform: Affine, names: Any) -> None:
    write_raster(path, data, crs, transform, nodata=-9999.0)
    with rasterio.open(path, "r+") as dst:
        for band, name in enumerate(names, start=1):
            dst.set_band_description(band, name)


@pytest.fixture(scope="module")
def aux_root(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Per demo scene: a 5-band monthly NO2 raster in EPSG:3857 (bands described by month)
    and a 1-band raster in EPSG:4326, both in shared folders for every split."""
    root = tmp_path_factory.mktemp("aux")
    for split in ("train", "test"):
        (no2,) = (demo_root / split / "air").glob("AIR_Pollution_NO2_*.tif")
        with rasterio.open(no2) as src:
            transform, width, height = calculate_default_transform(
                src.crs, "EPSG:3857", src.width, src.height, *src.bounds
            )
            monthly = np.full((5, height, width), -9999.0, np.float32)
            for band in range(5):
                reproject(
                    rasterio.band(src, band + 1),
                    monthly[band],
                    dst_transform=transform,
                    dst_crs="EPSG:3857",
                    dst_nodata=-9999.0,
                )
            _write_described(root / "no2" / f"{split}.tif", monthly, "EPSG:3857", transform, MONTHS)
            level = src.read(1).astype(np.float64)
            field = ((level - level.min()) / np.ptp(level) * 500 + 1000).astype(np.float32)[None]
            _write_described(
                root / "height" / f"{split}.tif", field, "EPSG:4326", src.transform, ["height"]
            )
    return root


def aux_config(aux_root: Path) -> list[dict[str, Any]]:
    return [
        {"name": "no2", "paths": [str(aux_root / "no2")], "resampling": "average"},
        {"name": "height", "paths": [str(aux_root / "height")], "bands": [1]},
    ]


def test_aux_raster_names_bands_and_reads_values_at_known_places(
    aux_root: Path, demo_root: Path
) -> None:
    monthly = AuxRaster(aux_root / "no2", name="no2")
    assert monthly.all_bands == tuple(f"no2_{m}" for m in MONTHS) and monthly.num_channels == 5
    picked = AuxRaster(aux_root / "no2", name="no2", bands=["2020-03", 1])
    assert picked.all_bands == ("no2_2020-03", "no2_2020-01") and picked.read_indexes == [3, 1]
    height = AuxRaster(aux_root / "height", name="height", resampling="nearest")
    assert height.all_bands == ("height",)

    image = SatelliteImage(demo_root / "test" / "image")
    dataset = DualStreamGeoDataset(image, [height], aux_scale=8)
    x, y, _ = dataset.bounds
    size = 256 * dataset.res[0]
    sample = dataset[x.start : x.start + size, y.stop - size : y.stop]
    air = sample["air"][0].numpy()
    assert air.shape == (32, 32)
    # Nearest neighbour: each aux pixel holds the value of the source pixel under its centre.
    xmin, _, _, ymax = sample["bounds"].tolist()
    step = 8 * dataset.res[0]
    cols, rows = np.meshgrid(np.arange(32) + 0.5, np.arange(32) + 0.5)
    to_lonlat = Transformer.from_crs(image.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_lonlat.transform(xmin + cols * step, ymax - rows * step)
    (path,) = (aux_root / "height").glob("test.tif")
    with rasterio.open(path) as src:
        r, c = rasterio.transform.rowcol(src.transform, lon.ravel(), lat.ravel())
        expected = src.read(1)[np.asarray(r), np.asarray(c)].reshape(32, 32)
    assert (np.isclose(air, expected, rtol=1e-6)).mean() > 0.99

    # log: the natural logarithm of the same reads; values <= 0 are nodata (filled).
    logged = AuxRaster(aux_root / "height", name="height", resampling="nearest", transform="log")
    log_sample = DualStreamGeoDataset(image, [logged], aux_fill=-1.0)[
        x.start : x.start + size, y.stop - size : y.stop
    ]
    np.testing.assert_allclose(log_sample["air"][0].numpy(), np.log(air), rtol=1e-5)


def test_bad_aux_sources_are_one_clear_line(
    aux_root: Path, demo_root: Path, tmp_path: Path
) -> None:
    with pytest.raises(DualStreamError, match=r"test.tif: aux source 'no2' band 9 is out of range"):
        AuxRaster(aux_root / "no2", name="no2", bands=[9])
    with pytest.raises(DualStreamError, match=r"aux source 'no2' has no band described '2021-01'"):
        AuxRaster(aux_root / "no2", name="no2", bands=["2021-01"])
    with pytest.raises(DualStreamError, match=r"aux source 'no2' is named twice"):
        InputSpec(aux=(AuxSpec("no2"), AuxSpec("no2")))
    with pytest.raises(DualStreamError, match=r"resampling 'smooth' is not a GDAL method"):
        AuxSpec("no2", resampling="smooth")
    # A raster that does not overlap the image: named, with both footprints.
    far = tmp_path / "far.tif"
    write_raster(far, np.ones((1, 4, 4), np.float32), "EPSG:4326", Affine(0.1, 0, 10, 0, -0.1, 10))
    image = SatelliteImage(demo_root / "test" / "image")
    with pytest.raises(DualStreamError, match=r"aux source 'far' \(.*far.tif\) does not overlap"):
        DualStreamGeoDataset(image, [AuxRaster(far, name="far")])
    # Files of one source with other bands.
    mixed = tmp_path / "mixed"
    shutil.copytree(aux_root / "no2", mixed)
    write_raster(
        mixed / "z.tif", np.ones((3, 4, 4), np.float32), "EPSG:3857", Affine(1, 0, 0, 0, -1, 0)
    )
    with pytest.raises(DualStreamError, match=r"z.tif: aux source 'no2' has 3 band\(s\)"):
        AuxRaster(mixed, name="no2")


def test_constant_or_empty_aux_channels_are_refused(demo_root: Path, tmp_path: Path) -> None:
    """A channel that is constant over the training data carries nothing and cannot be
    standardised; one that is empty over a split has nothing to read: each is one line."""

    def write(values: np.ndarray) -> None:
        # One file over each demo scene (their splits are all read).
        for split in ("train", "test"):
            with rasterio.open(next((demo_root / split / "image").glob("*.tif"))) as src:
                bounds, crs = src.bounds, src.crs.to_string()
            transform = Affine(400.0, 0, bounds.left - 2000, 0, -400.0, bounds.top + 2000)
            size = values.shape[-1]
            assert bounds.right - bounds.left + 4000 < 400 * size
            write_raster(tmp_path / "flat" / f"{split}.tif", values, crs, transform)

    values = np.random.default_rng(0).random((2, 40, 40)).astype(np.float32)
    values[1] = 7.0
    write(values)

    def datamodule(**aux: Any) -> DualStreamDataModule:
        return DualStreamDataModule(
            root=str(demo_root),
            classes=ClassSpec(map={90: 1}),
            aux=[AuxSpec("flat", paths=(str(tmp_path / "flat"),), **aux)],
            patch_size=64,
            length=4,
            stats_path=str(tmp_path / "stats.json"),
        )

    with pytest.raises(DualStreamError, match=r"aux channel 'flat_2' is constant \(7\)"):
        datamodule().setup("fit")
    assert not (tmp_path / "stats.json").exists()
    datamodule(bands=(1,)).setup("fit")  # the varying band alone is fine
    (tmp_path / "stats.json").unlink()
    values[0] = -1.0  # log of negative values: no valid value left
    write(values)
    with pytest.raises(DualStreamError, match=r"band 1 of aux source 'flat' holds no valid value"):
        datamodule(bands=(1,), transform="log").setup("fit")


@contextmanager
def own_warps(dataset: DualStreamGeoDataset, extent: Grid) -> Iterator[None]:
    """Each window warps its aux sources by itself (as before rows were warped once)."""
    yield


def test_two_aux_sources_in_other_crs_fit_and_predict_by_name(
    aux_root: Path,
    demo_root: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 5-band EPSG:3857 raster and a 1-band EPSG:4326 raster as the aux stream of scenes in
    EPSG:32652 and EPSG:5186: the channel count follows from the sources, the checkpoint names
    them, and ``predict --aux NAME=PATH`` writes the map on the image grid. Its windows share
    the aux rasters' exact warps (rows warped once), and the probabilities are those of each
    window warping its own."""
    config = {
        "trainer": {"max_epochs": 1, "default_root_dir": str(tmp_path / "run")},
        "model": {
            "architecture": {"preset": "lite", "vision_encoder": "segformer-b0"},
            "freeze_epochs": 0,
        },
        "data": {
            "aux": aux_config(aux_root),
            "aux_scale": 4,  # the lite preset's finer aux grid, through fit, validate, predict
            "patch_size": 64,
            "length": 8,
            "batch_size": 4,
            "stats_path": str(tmp_path / "stats.json"),
        },
    }
    path = tmp_path / "aux.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["--config", str(REPO / "experiments" / "demo.yaml"), "--config", str(path)]
    args += [f"--data.root={demo_root}", "--trainer.enable_progress_bar=false"]
    assert main(["fit", *args]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    stored = torch.load(checkpoint, weights_only=True)
    spec = read_spec(stored, checkpoint)
    assert spec.aux_names == ["no2", "height"] and spec.aux_channels == 6 and spec.aux_scale == 4
    assert spec.aux_channel_names == [*(f"no2_{m}" for m in MONTHS), "height"]
    assert spec.stats is not None and spec.stats.air is not None
    assert spec.stats.air.bands == spec.aux_channel_names
    stem = stored["state_dict"]["model.air_encoder.stem.0.weight"]
    # The air encoder takes the derived channel count, at H/4: its stem gives stage 1's 32.
    assert tuple(stem.shape) == (32, 6, 3, 3)
    assert main(["validate", *args, f"--ckpt_path={checkpoint}"]) == 0

    test = demo_root / "test"
    output = tmp_path / "map.tif"
    predict = ["predict", "--checkpoint", str(checkpoint), "--image", str(test / "image")]
    named = [f"--aux=no2={aux_root / 'no2'}", f"--aux=height={aux_root / 'height' / 'test.tif'}"]
    bands = []
    band_rows = WarpedRows._rows

    def counted(rows: WarpedRows, start: int, stop: int) -> np.ndarray:
        bands.append((start, stop))
        return band_rows(rows, start, stop)

    with monkeypatch.context() as patch:
        patch.setattr(WarpedRows, "_rows", counted)
        both = ["--output", str(output), "--tile", "128", "--kind", "both"]
        assert main([*predict, *named, *both]) == 0
    assert bands  # the windows read their aux from rows warped once
    with rasterio.open(output) as written, rasterio.open(test / "image" / "scene_b.tif") as src:
        assert (written.crs, written.transform, written.shape) == (
            src.crs,
            src.transform,
            src.shape,
        )
        assert written.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        classes, valid = written.read(1), src.read_masks(1) > 0
    assert classes[valid].max() <= 1 and (classes[~valid] == 255).all()
    # Each window warping its own aux gives the same probabilities, array for array.
    with monkeypatch.context() as patch:
        patch.setattr(DualStreamGeoDataset, "aux_rows_warped_once", own_warps)
        alone = tmp_path / "alone.tif"
        kind = ["--output", str(alone), "--tile", "128", "--kind", "probabilities"]
        assert main([*predict, *named, *kind]) == 0
    with rasterio.open(tmp_path / "map_probabilities.tif") as written, rasterio.open(alone) as own:
        shared = written.read()
        assert np.array_equal(shared, own.read()) and shared.max() > 0

    # Missing, unknown and mismatched sources: one line each, naming the source.
    three = tmp_path / "three.tif"
    with rasterio.open(aux_root / "no2" / "test.tif") as src:
        write_raster(three, src.read()[:3], src.crs.to_string(), src.transform)
    for extra, message in (
        (named[:1], "needs aux source(s): give --aux height=PATH (1 channel(s))"),
        ([*named, f"--aux=dem={three}"], "--aux dem: the checkpoint has no aux source 'dem'"),
        (
            [f"--aux=no2={three}", named[1]],
            "aux source 'no2': the files give 3 channel(s), the model was trained on 5",
        ),
        ([*named, "--aux=height"], "--aux 'height': expected NAME=VALUE"),
    ):
        capsys.readouterr()
        assert main([*predict, *extra, "--output", str(tmp_path / "bad.tif")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.glob("bad.tif*"))


def test_image_only_checkpoint_refuses_aux_inputs(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    trained = read_spec(torch.load(checkpoint, weights_only=True), checkpoint)
    image_only = InputSpec(classes=trained.classes, stats=trained.stats)
    predictor = ScenePredictor(DualStreamSegmentation(input_spec=image_only, architecture=LITE_B0))
    with pytest.raises(DualStreamError, match="trained on the image alone: it takes no aux"):
        predictor.dataset([scene["image"]], {"gems": [scene["gems"]]})


@pytest.mark.parametrize("name", ["main_801d619", "imported_801d619"])
def test_checkpoints_of_the_previous_format_convert_on_read(
    name: str, demo_root: Path, tmp_path: Path
) -> None:
    """Checkpoints written by main at 801d619 (before the input spec; ``tests/data/legacy``,
    weights stored as zero-stride tensors to keep them small) load, and predict the demo
    scene as main did with the same weights: the probabilities recorded then, every 8th
    pixel (``*_probabilities.npy``)."""
    legacy = DATA / "legacy"
    raw = torch.load(legacy / f"{name}.ckpt", weights_only=True)
    generator = torch.Generator().manual_seed(0)
    raw["state_dict"] = {
        key: (torch.randn(value.shape, generator=generator) * 0.05).to(value.dtype)
        if value.is_floating_point()
        else torch.zeros(value.shape, dtype=value.dtype)
        for key, value in raw["state_dict"].items()
    }
    path = tmp_path / f"{name}.ckpt"
    torch.save(raw, path)
    spec = read_spec(raw, path)
    assert spec.aux_names == ["gems", "air_pollution"]
    test = demo_root / "test"
    predictor = ScenePredictor.from_checkpoint(path, tile=128, overlap=0.25, batch_size=4)
    output = predictor.predict(
        [test / "image"], [test / "gems", test / "air"], tmp_path / "p.tif", kind="probabilities"
    )
    with rasterio.open(output) as src:
        written = src.read()[:, ::8, ::8].astype(int)
    recorded = np.load(legacy / f"{name}_probabilities.npy").astype(int)
    assert np.abs(written - recorded).max() <= 1  # 1/254: float sums of another machine


def test_zion_dem_crop_reads_as_the_aux_stream(tmp_path: Path) -> None:
    """The committed SRTM crop covers the Zion crop: elevation on the 240 m aux grid, in
    metres, with no gap."""
    image = SatelliteImage(ZION, band_files=("_b2", "_b3", "_b4", "_b5"), nodata=65535)
    dem = AuxRaster(ZION / "srtm.tif", name="elevation")
    dataset = DualStreamGeoDataset(image, [dem], aux_fill=np.nan)
    x, y, _ = dataset.bounds
    sample = dataset[x.start : x.start + 192 * 30, y.stop - 192 * 30 : y.stop]
    elevation = sample["air"][0].numpy()
    assert elevation.shape == (24, 24) and np.isfinite(elevation).all()
    assert 1000 < elevation.min() < elevation.max() < 2700


def test_terrain_of_a_plane_and_windows_that_agree_with_the_scene() -> None:
    """Slope and aspect of a tilted plane from the definition; a window of the Zion DEM's
    terrain equals the same cells of the whole crop (each cell reads its own neighbours)."""
    from dualstream_geo.data.auxiliary.terrain import terrain

    rows, cols = np.mgrid[0:7, 0:9].astype(np.float64)
    east, north = cols * 30.0, -rows * 30.0  # row 0 is north
    plane = 2.0 * east / 100 + 3.0 * north / 100  # rises 2 % to the east and 3 % north
    slope, northness, eastness = terrain(plane, 30.0, 30.0, ["slope", "northness", "eastness"])
    rise = np.hypot(0.02, 0.03)
    np.testing.assert_allclose(slope, np.degrees(np.arctan(rise)), rtol=1e-5)
    # It faces downhill: south-west, against the gradient (0.02 east, 0.03 north).
    np.testing.assert_allclose(northness, -0.03 / rise, rtol=1e-5)
    np.testing.assert_allclose(eastness, -0.02 / rise, rtol=1e-5)
    assert slope.shape == (5, 7)
    assert np.abs(terrain(plane, 30.0, 30.0, ["relief"])).max() < 1e-9  # a plane: no relief
    bump = np.zeros((5, 5))
    bump[2, 2] = 8.0
    relief = terrain(bump, 30.0, 30.0, ["relief"])[0]
    assert relief[1, 1] == 8.0 and relief[0, 0] == -1.0  # the peak, and a cell beside it

    image = SatelliteImage(ZION, band_files=("_b2", "_b3", "_b4", "_b5"), nodata=65535)
    dem = AuxRaster(ZION / "srtm.tif", name="elevation", derive=["slope", "northness"])
    assert dem.all_bands == ("elevation", "elevation_slope", "elevation_northness")
    dataset = DualStreamGeoDataset(image, [dem], aux_fill=np.nan)
    x, y, _ = dataset.bounds
    whole = dataset[x.start : x.start + 192 * 30, y.stop - 192 * 30 : y.stop]["air"].numpy()
    part = dataset[x.start + 64 * 30 : x.start + 128 * 30, y.stop - 128 * 30 : y.stop - 64 * 30]
    np.testing.assert_allclose(part["air"].numpy(), whole[:, 8:16, 8:16], rtol=1e-5)
    assert 0 < np.nanmean(whole[1]) < 45 and np.isfinite(whole).all()
    stats = BandStats.from_source(dem)
    assert stats.bands == list(dem.all_bands) and 0 < stats.mean[1] < 45


def test_early_fusion_appends_the_aux_channels_to_the_image(
    aux_root: Path, demo_root: Path, tmp_path: Path
) -> None:
    """``aux_fusion: early``: the aux sources read on the image grid, standardised with their
    statistics and appended to the image; the model takes them as image channels."""
    datamodule = DualStreamDataModule(
        root=str(demo_root),
        classes=ClassSpec(map={90: 1}),
        aux=[AuxSpec("height", paths=(str(aux_root / "height"),), resampling="bilinear")],
        aux_fusion="early",
        patch_size=64,
        batch_size=2,
        length=2,
        augment=False,
        stats_path=str(tmp_path / "stats.json"),
    )
    spec = datamodule.input_spec
    assert spec.in_channels == 5 and spec.channel_names[-1] == "height" and not spec.uses_aux
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (2, 5, 64, 64) and "air" not in batch
    stats = datamodule.stats
    assert stats is not None and stats.air is not None
    # The appended channel is the aux source at image resolution, standardised.
    sample = datamodule.datasets()["train"]
    raw = DualStreamGeoDataset(
        SatelliteImage(demo_root / "train" / "image"),
        [AuxRaster(aux_root / "height", name="height", resampling="bilinear")],
        aux_scale=1,
    ).read(
        sample.grid_for(
            tuple(
                slice(float(v[0]), float(v[1]))
                for v in (
                    (batch["bounds"][0][0], batch["bounds"][0][2]),
                    (batch["bounds"][0][1], batch["bounds"][0][3]),
                )
            )
        )
    )
    expected = (raw["air"][0] - stats.air.mean[0]) / stats.air.std[0] * raw["valid"]
    torch.testing.assert_close(batch["image"][0, 4], expected.float(), atol=1e-4, rtol=1e-4)
    task = DualStreamSegmentation(input_spec=spec, architecture=LITE_B0)
    assert task.model.in_channels == 5
    assert task(batch["image"])["final"].shape == (2, 2, 64, 64)


def test_an_aux_source_finer_than_the_aux_grid_is_a_warning() -> None:
    """The 90 m DEM under 30 m Landsat: the dual stream's 240 m grid averages its detail
    away (a warning that names the 60 m grid); at 60 m or on the image grid it is kept."""
    import warnings

    from dualstream_geo.data.assemble import build_dataset
    from dualstream_geo.data.layout import SceneSet
    from dualstream_geo.data.spec import ImageSpec

    image = ImageSpec(band_files=("_b2", "_b3", "_b4", "_b5"), nodata=65535)
    dem = AuxSpec("elevation", paths=(str(ZION / "srtm.tif"),), bands=(1,), resampling="average")
    scenes = SceneSet(image=[str(ZION)])
    with pytest.warns(
        UserWarning, match=r"elevation'.*\(9\d m\) are 2\.\dx finer than the aux "
    ) as seen:
        build_dataset(scenes, InputSpec(image=image, aux=(dem,)))
    assert any("data.aux_scale 2 (lite preset) keeps it" in str(w.message) for w in seen)
    for kept in (
        InputSpec(image=image, aux=(dem,), aux_fusion="early"),
        InputSpec(image=image, aux=(dem,), aux_scale=2),
    ):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build_dataset(scenes, kept)
        assert not [w for w in caught if "finer than the aux grid" in str(w.message)]
