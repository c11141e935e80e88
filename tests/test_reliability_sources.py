"""The third battery of bad inputs (issue 35): the aux sources and their formats, grid,
sample-design, evaluate --sample and demo; each case one clear line or the right result."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from dualstream_geo.cli import main
from dualstream_geo.data.auxiliary.spec import AuxSpec
from dualstream_geo.errors import DualStreamError

from .conftest import write_raster
from .test_area import class_map
from .test_reliability import refused


def test_demo_refuses_an_empty_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--out ''`` would be ``.``: the working folder, never written into."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    refused(["demo", "--quick", "--out", ""], capsys, "--out is empty", [tmp_path])


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"time": ("2020-13-01", "2020-14-01")}, "time '2020-13-01' is not a date"),
        ({"time": ("yesterday", "today")}, "time 'yesterday' is not a date"),
        ({"time": ("2020-03-01", "2020-01-01")}, "after its end"),
        ({"format": "raster", "time": ("2020-01-01", "2020-02-01")}, "time does not apply"),
        ({"format": "raster", "variable": "no2"}, "variable does not apply"),
        ({"format": "raster", "qa_min": 0.5}, "qa_min does not apply"),
        ({"qa_min": 0.5}, "qa_min does not apply to format netcdf"),
        ({"count": True}, "count does not apply to format netcdf"),
        ({"composite": "median"}, "composite does not apply to format netcdf"),
        ({"format": "s5p_l2", "reduce": "max"}, "reduce does not apply to format s5p_l2"),
        ({"format": "s5p_l2", "time": ("2019-01-01", "2019-12-31")}, "time does not apply"),
    ],
)
def test_settings_that_would_be_ignored_or_crash_are_refused(
    settings: dict[str, object], named: str
) -> None:
    base: dict[str, object] = {"name": "omi", "paths": ("x.nc",), "format": "netcdf"}
    base["variable"] = "no2"
    base |= settings
    if base["format"] == "raster" and "variable" not in settings:
        base["variable"] = None
    with pytest.raises(DualStreamError, match=named) as caught:
        AuxSpec(**base)  # type: ignore[arg-type]
    assert "aux source 'omi'" in str(caught.value)


def test_valid_settings_of_each_format_pass() -> None:
    AuxSpec(name="dem", paths=("dem.tif",), reduce="mean")
    AuxSpec(
        name="omi",
        paths=("a.nc",),
        format="netcdf",
        variable="no2",
        time=("2020-01-01", "2020-03-31"),
    )
    AuxSpec(name="co", paths=("s5p/",), format="s5p_l2", variable="co", qa_min=0.5, count=True)


def test_grid_refuses_an_orbit_given_twice_and_swath_only_settings_on_grids(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .atmo_files import write_l3, write_s5p

    lat, lon = np.meshgrid(
        np.linspace(37.0, 38.0, 6), np.linspace(-113.5, -112.5, 6), indexing="ij"
    )
    orbit = write_s5p(
        tmp_path / "S5P_OFFL_L2__CO_____20190913.nc",
        lat,
        lon,
        np.full((6, 6), 0.03),
        np.full((6, 6), 0.9),
    )
    like = tmp_path / "image.tif"
    transform = Affine(30, 0, 320_000, 0, -30, 4_150_000)
    write_raster(like, np.ones((1, 64, 64), dtype="uint16"), "EPSG:32612", transform)
    grid = ["grid", "--variable", "carbonmonoxide_total_column", "--like", str(like)]
    twice = [
        *grid,
        str(orbit),
        str(tmp_path / "." / orbit.name),
        "--output",
        str(tmp_path / "a.tif"),
    ]
    refused(twice, capsys, "is given twice", [tmp_path / orbit.name])
    l3 = write_l3(
        tmp_path / "l3.nc",
        np.linspace(36.0, 39.0, 7),
        np.linspace(-114.0, -112.0, 5),
        np.ones((2, 7, 5)),
        np.array([18000.0, 18031.0]),
    )
    netcdf = ["grid", str(l3), "--variable", "no2", "--like", str(like)]
    for extra, named in (
        (["--qa-min", "0.5"], "qa_min does not apply to format netcdf"),
        (["--count"], "count does not apply to format netcdf"),
        (["--time", "2020-13-01", "2020-14-01"], "is not a date"),
    ):
        refused([*netcdf, *extra, "--output", str(tmp_path / "b.tif")], capsys, named, [l3])
    swath = [*grid, str(orbit), "--output", str(tmp_path / "c.tif")]
    refused([*swath, "--reduce", "max"], capsys, "reduce does not apply", [orbit])
    refused([*swath, "--time", "2030-01-01", "2030-12-31"], capsys, "time does not apply", [orbit])
    assert not list(tmp_path.glob("[abc].tif*"))


def test_sample_design_takes_class_maps_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transform = Affine(30, 0, 300_000, 0, -30, 4_100_000)
    # predict's probabilities, one band of them: tagged with their scale.
    probabilities = tmp_path / "probabilities.tif"
    values = np.random.default_rng(0).integers(0, 255, (1, 40, 50), dtype=np.uint8)
    write_raster(probabilities, values, "EPSG:32612", transform)
    with rasterio.open(probabilities, "r+") as dst:
        dst.update_tags(scale="1/254")
    design = ["sample-design", "--total", "20", "--output", str(tmp_path / "s.gpkg")]
    refused([*design[:1], str(probabilities), *design[1:]], capsys, "a probability raster", [])
    # The same band without its tag: too many values for a class map.
    untagged = tmp_path / "untagged.tif"
    write_raster(untagged, values, "EPSG:32612", transform)
    refused([*design[:1], str(untagged), *design[1:]], capsys, "a continuous raster", [])
    # A signed map with -1 and no nodata declared; a negative seed.
    signed = tmp_path / "signed.tif"
    write_raster(signed, np.where(values > 127, 1, -1).astype("int16"), "EPSG:32612", transform)
    refused([*design[:1], str(signed), *design[1:]], capsys, "holds negative values (-1)", [])
    classes = tmp_path / "map.tif"
    class_map(classes)
    refused(
        [
            "sample-design",
            str(classes),
            "--total",
            "20",
            "--seed",
            "-1",
            "--output",
            str(tmp_path / "s.gpkg"),
        ],
        capsys,
        "--seed must be >= 0",
        [],
    )
    assert not list(tmp_path.glob("s.*"))
    # A map without nodata (every pixel a class) samples: the block masks are scalars.
    plain = tmp_path / "plain.tif"
    write_raster(plain, (values > 127).astype("uint8"), "EPSG:32612", transform)
    assert (
        main(
            [
                "sample-design",
                str(plain),
                "--total",
                "20",
                "--min-per-class",
                "5",
                "--output",
                str(tmp_path / "p.gpkg"),
            ]
        )
        == 0
    )
    assert len(gpd.read_file(tmp_path / "p.gpkg")) == 20


def test_evaluate_sample_refuses_repeated_points_and_polygons(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class_map(tmp_path / "map.tif")
    sample = tmp_path / "sample.gpkg"
    design = ["sample-design", str(tmp_path / "map.tif"), "--total", "60", "--min-per-class", "15"]
    assert main([*design, "--output", str(sample)]) == 0
    points = gpd.read_file(sample)
    points["reference"] = points["map_name"]
    evaluate = ["evaluate", "--prediction", str(tmp_path / "map.tif"), "--sample"]
    repeated = tmp_path / "repeated.gpkg"
    gpd.GeoDataFrame(gpd.pd.concat([points, points.iloc[:10]]), crs=points.crs).to_file(
        repeated, driver="GPKG"
    )
    refused(
        [*evaluate, str(repeated), "--output", str(tmp_path / "r")],
        capsys,
        "are one point",
        [repeated],
    )
    polygons = tmp_path / "polygons.gpkg"
    squares = points.copy()
    squares["geometry"] = [
        shapely.box(p.x - 15, p.y - 15, p.x + 15, p.y + 15) for p in points.geometry
    ]
    squares.to_file(polygons, driver="GPKG")
    refused(
        [*evaluate, str(polygons), "--output", str(tmp_path / "p")],
        capsys,
        "is a Polygon, not a point",
        [polygons],
    )
    labelled = tmp_path / "labelled.gpkg"
    points.to_file(labelled, driver="GPKG")
    assert main([*evaluate, str(labelled), "--output", str(tmp_path / "ok")]) == 0
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert report["overall_accuracy"]["estimate"] == pytest.approx(1.0)


def test_the_warp_cache_never_lives_inside_an_input(demo_root: Path, tmp_path: Path) -> None:
    """data.cache_dir in an aux source's own folder: its warped copies would be read back
    as part of the source by the next run; refused before any is written."""
    import shutil

    from .conftest import demo_datamodule

    root = tmp_path / "demo"
    shutil.copytree(demo_root, root)
    before = sorted(p.name for p in (root / "train" / "gems").iterdir())
    for inside in (root / "train" / "gems", root / "train" / "gems" / "cache"):
        with pytest.raises(DualStreamError, match="lies inside the input folder"):
            demo_datamodule(root, tmp_path, cache_dir=str(inside)).setup("fit")
    assert sorted(p.name for p in (root / "train" / "gems").iterdir()) == before


def test_grid_refuses_a_netcdf_classic_file_cut_short(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GDAL reads the missing half of a truncated NetCDF3 file as zeros; its header says
    how long it must be."""
    import netCDF4

    whole = tmp_path / "whole.nc"
    with netCDF4.Dataset(whole, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", 30)
        ds.createDimension("lon", 40)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "days since 1970-01-01"
        time[:] = np.arange(8) * 31 + 18000
        for name, values, units in (
            ("lat", np.linspace(37.0, 38.0, 30), "degrees_north"),
            ("lon", np.linspace(-113.5, -112.5, 40), "degrees_east"),
        ):
            axis = ds.createVariable(name, "f8", (name,))
            axis.units = units
            axis[:] = values
        ds.createVariable("no2", "f4", ("time", "lat", "lon"))[:] = np.ones((8, 30, 40))
    half = tmp_path / "half.nc"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    like = tmp_path / "image.tif"
    transform = Affine(30, 0, 320_000, 0, -30, 4_150_000)
    write_raster(like, np.ones((1, 64, 64), dtype="uint16"), "EPSG:32612", transform)
    grid = ["grid", "--variable", "no2", "--like", str(like), "--output"]
    refused([*grid[:1], str(half), *grid[1:], str(tmp_path / "a.tif")], capsys, "cut short", [half])
    assert main([*grid[:1], str(whole), *grid[1:], str(tmp_path / "b.tif")]) == 0
    with rasterio.open(tmp_path / "b.tif") as src:
        assert src.count == 8 and np.nanmin(src.read()) == 1.0


def test_unreadable_aux_files_and_impossible_nodata_are_one_line(
    checkpoint: Path,
    scene: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A text or empty file named as a raster or a NetCDF, given to predict (the
    georeference fallback opens aux tiles first) or to an aux source; a nodata value the
    file's data type cannot hold."""
    from dualstream_geo.data.auxiliary import AuxRaster

    text, empty = tmp_path / "GEMS_scene_b.tif", tmp_path / "AIR_Pollution_CO_scene_b.nc"
    text.write_text("not a raster")
    empty.write_bytes(b"")
    predict = ["predict", "--checkpoint", str(checkpoint), "--image", str(scene["image"])]
    output = ["--output", str(tmp_path / "map.tif")]
    refused(
        [*predict, "--gems", str(text), "--air-pollution", str(scene["air"]), *output],
        capsys,
        f"{text}: not a readable raster",
        [text],
    )
    refused(
        [*predict, "--gems", str(scene["gems"]), "--air-pollution", str(empty), *output],
        capsys,
        str(empty),
        [empty],
    )
    zero = tmp_path / "zero.tif"
    zero.write_bytes(b"")
    for bad in (text, zero):
        with pytest.raises(DualStreamError, match="aux source 'dem': .* is not a readable raster"):
            AuxRaster([str(bad)], name="dem")
    dem = Path(__file__).parent / "data" / "zion" / "srtm.tif"
    with pytest.raises(DualStreamError, match=r"nodata 1e\+40 cannot be a value of .*uint16"):
        AuxRaster([str(dem)], name="dem", nodata=1e40)
    assert AuxRaster([str(dem)], name="dem", nodata=0).num_channels == 1


def test_zarr_grids_in_degrees_or_with_a_crs_take_time_ranges(tmp_path: Path) -> None:
    """A CF latitude/longitude Zarr without grid_mapping is EPSG:4326 (as NetCDF's); a
    Zarr with a CRS and a time axis takes --time (its steps are dated)."""
    from rasterio.crs import CRS

    from .atmo_files import write_zarr

    like = tmp_path / "image.tif"
    transform = Affine(30, 0, 320_000, 0, -30, 4_150_000)
    write_raster(like, np.ones((1, 64, 64), dtype="uint16"), "EPSG:32612", transform)
    steps = np.stack([np.full((11, 11), 1.0), np.full((11, 11), 3.0)])
    days = np.array([18262.0, 18293.0])  # 2020-01-01, 2020-02-01
    stores = {
        "degrees": write_zarr(
            tmp_path / "degrees.zarr",
            np.linspace(37.6, 37.3, 11),
            np.linspace(-113.2, -112.9, 11),
            steps,
            days,
        ),
        "utm": write_zarr(
            tmp_path / "utm.zarr",
            4_150_000 - 200 * np.arange(11) - 100,
            320_000 + 200 * np.arange(11) + 100,
            steps,
            days,
            CRS.from_epsg(32612).to_wkt(),
        ),
    }
    for name, store in stores.items():
        output = tmp_path / f"{name}.tif"
        args = ["grid", str(store), "--variable", "no2", "--like", str(like), "--aux-scale", "8"]
        assert main([*args, "--time", "2020-02-01", "2020-02-29", "--output", str(output)]) == 0
        with rasterio.open(output) as src:
            assert src.count == 1 and src.crs == CRS.from_epsg(32612)
            assert np.nanmax(src.read()) == 3.0 and np.nanmin(src.read()) == 3.0  # February
            assert np.isfinite(src.read()).mean() > 0.5


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        ("--data.image.nodata=x", "data.image.nodata: expected a number or null, got 'x'"),
        ("--data.loader.num_workers=x", "data.loader.num_workers: expected an integer, got 'x'"),
        ("--model.lr_multipliers=5", "model.lr_multipliers: expected a mapping"),
        ("--data.split=abc", "data.split: expected its settings (data.split.NAME VALUE)"),
        (
            "--model.architecture.preset=huge",
            "model.architecture.preset: expected one of 'original', 'lite', got 'huge'",
        ),
    ],
)
def test_setting_type_errors_are_one_short_line(
    setting: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"
    assert main(["fit", "--config", str(demo), setting]) == 2
    err = [e for e in capsys.readouterr().err.splitlines() if e.strip()]
    assert len(err) == 1 and line in err[0] and len(err[0]) < 200, err


def test_commands_print_what_helps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No rasterio warning before a swath refusal, no pyogrio warning on a sample written,
    no Lightning 'restoring' before a missing checkpoint; Lightning's advertisements and
    notices about this project's own callbacks are dropped."""
    import logging

    from dualstream_geo.console import LightningNoise

    like = tmp_path / "far.tif"
    transform = Affine(30, 0, 320_000, 0, -30, 4_150_000)
    write_raster(like, np.ones((1, 64, 64), dtype="uint16"), "EPSG:32612", transform)
    orbit = Path(__file__).parent / "data" / "atmo" / "S5P_OFFL_L2__CO_____20190913_subset.nc"
    grid = ["grid", str(orbit), "--variable", "carbonmonoxide_total_column", "--like", str(like)]
    refused([*grid, "--output", str(tmp_path / "g.tif")], capsys, "does not reach it", [orbit])
    class_map(tmp_path / "map.tif")
    design = ["sample-design", str(tmp_path / "map.tif"), "--total", "30", "--min-per-class", "5"]
    assert main([*design, "--output", str(tmp_path / "s.gpkg")]) == 0
    assert capsys.readouterr().err == ""
    demo = Path(__file__).resolve().parents[1] / "experiments" / "demo.yaml"
    missing = str(tmp_path / "missing.ckpt")
    refused(
        ["validate", "--config", str(demo), "--ckpt_path", missing], capsys, "does not exist", []
    )
    noise = LightningNoise()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("lightning", logging.INFO, "", 0, message, None, None)

    assert not noise.filter(record("💡 Tip: For seamless cloud uploads, try installing ..."))
    assert not noise.filter(record("GPU available: False, used: False"))
    assert noise.filter(record("GPU available: True (cuda), used: True"))
    assert noise.filter(record("`Trainer.fit` stopped: `max_epochs=2` reached."))


def test_sigterm_during_the_demo_says_terminated(tmp_path: Path) -> None:
    """Lightning turns a SIGTERM during training into its own shutdown and exit status 1;
    the demo reports it as every other command does."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "demo"
    child = subprocess.Popen(
        [sys.executable, "-m", "dualstream_geo", "demo", "--quick", "--out", str(out)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not (out / "logs").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (out / "logs").exists(), "training never started"
        time.sleep(1.0)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 143, err[-2000:]
    assert "dualstream-geo: terminated" in err and "Detected KeyboardInterrupt" not in err


def test_a_dem_with_a_wrong_crs_label_is_one_error(tmp_path: Path) -> None:
    """A DEM in degrees labelled as UTM metres lies nowhere near the image: that is the
    error, without the warning that its pixels (0.0008 'm') are finer than the aux grid."""
    import warnings

    from dualstream_geo.data.assemble import build_dataset
    from dualstream_geo.data.layout import SceneSet
    from dualstream_geo.data.spec import ImageSpec, InputSpec

    zion = Path(__file__).parent / "data" / "zion"
    wrong = tmp_path / "srtm.tif"
    with rasterio.open(zion / "srtm.tif") as src:
        profile, data = src.profile, src.read()
    profile.update(crs="EPSG:32612")
    with rasterio.open(wrong, "w", **profile) as dst:
        dst.write(data)
    image = ImageSpec(band_files=("_b2", "_b3", "_b4", "_b5"), nodata=65535)
    dem = AuxSpec("elevation", paths=(str(wrong),), bands=(1,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DualStreamError, match="does not overlap the image"):
            build_dataset(SceneSet(image=[str(zion)]), InputSpec(image=image, aux=(dem,)))
    assert not [w for w in caught if "finer than the aux grid" in str(w.message)]


def test_ddp_stride_warnings_show_only_where_the_layouts_differ() -> None:
    """DDP warns when a gradient's strides differ from its bucket's; where they differ only
    in a dimension of size 1 the memory is the same and the commands drop it (the DDP fit
    in tests/test_distributed.py checks that a real run shows none)."""
    import warnings

    from dualstream_geo.console import quiet_lightning

    head = (
        "Grad strides do not match bucket view strides. This may indicate grad was not created "
        "according to the gradient layout contract, or that the param's strides changed since "
        "DDP was constructed.  This is not an error, but may impair performance.\n"
    )
    same = (
        "grad.sizes() = [64, 1, 7, 7], strides() = [49, 1, 7, 1]\n"
        "bucket_view.sizes() = [64, 1, 7, 7], strides() = [49, 49, 7, 1]"
    )
    other = (
        "grad.sizes() = [64, 32, 3, 3], strides() = [288, 1, 96, 32]\n"
        "bucket_view.sizes() = [64, 32, 3, 3], strides() = [288, 9, 3, 1]"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        warnings.warn(head + same, UserWarning, stacklevel=1)
        warnings.warn(head + other, UserWarning, stacklevel=1)
    assert [str(w.message).splitlines()[1] for w in caught] == [other.splitlines()[0]]
