"""Atmospheric products as aux sources: Level 2 swaths (Sentinel-5P, GEMS) gridded onto a
scene's aux grid against an independent computation from the swath pixels, gridded NetCDF
variables with time selection, the `grid` command, fit and predict from the producers'
files, and their bad inputs."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from dualstream_geo.cli import main
from dualstream_geo.data import AuxSpec, SatelliteImage
from dualstream_geo.data.auxiliary import aux_source, scene_aux_grids
from dualstream_geo.data.auxiliary.swath import grid_swaths
from dualstream_geo.data.grid import Grid
from dualstream_geo.errors import DualStreamError
from dualstream_geo.training import read_spec

from .atmo_files import write_gems, write_l3, write_s5p
from .conftest import DATA, write_raster

REPO = Path(__file__).resolve().parents[1]
ATMO = DATA / "atmo"


def swath(lon0: float, lat0: float, lines: int, pixels: int, step: float, tilt: float = 0.2):
    """Centres and corners of a slanted swath of ``step``-degree ground pixels."""
    s, p = np.meshgrid(np.arange(lines), np.arange(pixels), indexing="ij")
    lon = lon0 + p * step + s * step * tilt
    lat = lat0 + s * step - p * step * tilt * 0.5
    offsets = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])  # (pixel, line)
    lon_c = lon[..., None] + offsets[:, 0] * step + offsets[:, 1] * step * tilt
    lat_c = lat[..., None] + offsets[:, 1] * step - offsets[:, 0] * step * tilt * 0.5
    return lat, lon, lat_c, lon_c


def inside_quad(px: np.ndarray, py: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Points (M,) inside or on convex quadrilaterals (N, 4): (M, N), from the signs of the
    cross products along the edges (the definition, not a library call)."""
    inside = np.ones((len(px), len(qx)), dtype=bool)
    sign = None
    for k in range(4):
        ax, ay, bx, by = qx[:, k], qy[:, k], qx[:, (k + 1) % 4], qy[:, (k + 1) % 4]
        cross = (bx - ax)[None] * (py[:, None] - ay[None]) - (by - ay)[None] * (
            px[:, None] - ax[None]
        )
        side = np.sign(np.round(cross, 9))
        sign = side if sign is None else sign
        inside &= (side == 0) | (side == sign) | (sign == 0)
        sign = np.where(sign == 0, side, sign)
    return inside


def expected_grid(grid: Grid, orbits: list[tuple[np.ndarray, ...]], qa_min: float) -> np.ndarray:
    """Per orbit, each cell's mean over the valid ground pixels whose footprint covers its
    centre; then the mean over the orbits with a value (cells without any: NaN)."""
    to_grid = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    cx, cy = grid.transform * (cols.ravel(), rows.ravel())
    per_orbit = []
    for values, qa, lat_c, lon_c in orbits:
        valid = np.isfinite(values) & (qa >= qa_min)
        qx, qy = to_grid.transform(lon_c[valid], lat_c[valid])
        covers = inside_quad(np.asarray(cx), np.asarray(cy), np.asarray(qx), np.asarray(qy))
        count = covers.sum(1)
        total = covers.astype(float) @ values[valid]
        with np.errstate(invalid="ignore"):
            per_orbit.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    stack = np.stack(per_orbit)
    with warnings.catch_warnings():  # cells no orbit covers: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(stack, 0)
    return mean.reshape(grid.height, grid.width)


def test_swaths_grid_as_an_independent_computation(tmp_path: Path) -> None:
    """Footprints from the corners, qa_value below 0.5 and fill values left out, two orbits
    composited (mean, median, count), on a UTM grid."""
    grid = Grid.from_bounds(CRS.from_epsg(32652), 318_000, 4_170_000, 500.0, 500.0, 24, 30)
    rng = np.random.default_rng(0)
    orbits, files = [], []
    for number, (lon0, lat0) in enumerate([(126.93, 37.55), (126.95, 37.53)]):
        lat, lon, lat_c, lon_c = swath(lon0, lat0, 14, 12, 0.013)
        values = rng.uniform(0.01, 0.05, lat.shape)
        values[2, 3] = np.nan  # a fill value
        qa = rng.choice([0.3, 0.5, 0.7, 1.0], lat.shape)
        files.append(
            str(
                write_s5p(
                    tmp_path / f"orbit{number}.nc", lat, lon, values, qa, corners=(lat_c, lon_c)
                )
            )
        )
        orbits.append((values.ravel(), qa.ravel(), lat_c.reshape(-1, 4), lon_c.reshape(-1, 4)))
    gridded = grid_swaths(files, grid, "s5p_l2", "carbonmonoxide_total_column", count=True)
    expected = expected_grid(grid, orbits, 0.5)
    assert np.isfinite(expected).sum() > 100 and np.isnan(expected).any()
    np.testing.assert_allclose(gridded[0], expected, rtol=1e-5)
    one = [expected_grid(grid, [o], 0.5) for o in orbits]
    np.testing.assert_array_equal(
        gridded[1], np.where(np.isfinite(expected), np.isfinite(one).sum(0), np.nan)
    )
    # Two orbits: the median is their mean; qa 0.75 keeps fewer pixels.
    median = grid_swaths(files, grid, "s5p_l2", "carbonmonoxide_total_column", composite="median")
    np.testing.assert_allclose(median[0], expected, rtol=1e-5)
    strict = grid_swaths(files, grid, "s5p_l2", "carbonmonoxide_total_column", qa_min=0.75)
    np.testing.assert_allclose(strict[0], expected_grid(grid, orbits, 0.75), rtol=1e-5)


def test_a_swath_across_the_antimeridian(tmp_path: Path) -> None:
    lat, lon, lat_c, lon_c = swath(179.86, -17.9, 10, 12, 0.025, tilt=0.0)
    wrap = lambda x: (x + 180) % 360 - 180  # noqa: E731 - as a product stores them
    values = np.arange(lat.size, dtype=float).reshape(lat.shape) / 100
    qa = np.ones(lat.shape)
    path = write_s5p(tmp_path / "fiji.nc", lat, wrap(lon), values, qa, corners=(lat_c, wrap(lon_c)))
    # UTM 60S around 180 degrees; the scene spans both sides of the antimeridian.
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32760", always_xy=True)
    x0, y0 = to_utm.transform(179.9, -17.72)
    grid = Grid.from_bounds(CRS.from_epsg(32760), x0, y0, 1000.0, 1000.0, 20, 30)
    gridded = grid_swaths([str(path)], grid, "s5p_l2", "carbonmonoxide_total_column")[0]
    expected = expected_grid(
        grid, [(values.ravel(), qa.ravel(), lat_c.reshape(-1, 4), lon_c.reshape(-1, 4))], 0.5
    )
    filled = np.isfinite(gridded)
    cols, rows = np.meshgrid(np.arange(30) + 0.5, np.arange(20) + 0.5)
    lon, _ = Transformer.from_crs("EPSG:32760", "EPSG:4326", always_xy=True).transform(
        *(grid.transform * (cols, rows))
    )
    west, east = lon > 0, lon < 0  # 179.9 ... 180, then -180 ... -179.8
    assert filled[west].mean() > 0.9 and filled[east].mean() > 0.5  # both sides of 180
    np.testing.assert_allclose(gridded, expected, rtol=1e-5)


def test_gems_pixels_without_corners_take_the_nearest_centre(tmp_path: Path) -> None:
    lat, lon, _, _ = swath(127.0, 37.6, 8, 8, 0.01, tilt=0.0)
    values = np.arange(64, dtype=float).reshape(8, 8)
    flags = np.zeros((8, 8), np.uint8)
    flags[4, 4] = 3  # a flagged pixel is left out
    path = write_gems(tmp_path / "gems.nc", lat, lon, values, flags)
    # Centres off the pixels' midlines: no two pixel centres tie for a cell.
    grid = Grid.from_bounds(CRS.from_epsg(4326), 126.9913, 37.6837, 0.004, 0.004, 25, 25)
    gridded = grid_swaths([str(path)], grid, "gems_l2", "ColumnAmountNO2Trop")[0]
    cols, rows = np.meshgrid(np.arange(25) + 0.5, np.arange(25) + 0.5)
    cx, cy = grid.transform * (cols, rows)
    keep = flags.ravel() == 0
    distance = np.hypot(
        cx.ravel()[:, None] - lon.ravel()[keep], cy.ravel()[:, None] - lat.ravel()[keep]
    )
    nearest = values.ravel()[keep][distance.argmin(1)].reshape(25, 25)
    reach = 0.5 * np.hypot(0.01, 0.01)
    expected = np.where(distance.min(1).reshape(25, 25) <= reach, nearest, np.nan)
    np.testing.assert_array_equal(gridded, expected)


def test_gridded_netcdf_variables_with_time_steps(tmp_path: Path) -> None:
    """A CF grid stored south first as int16 with scale and offset: the steps of a date
    range, scaled, the fill value as no data, on EPSG:4326 (named by the reader)."""
    lat = np.arange(36.025, 38.0, 0.05)
    lon = np.arange(126.025, 128.0, 0.05)
    days = np.array([18262, 18293, 18322, 18353])  # 2020-01-01, 02-01, 03-01, 04-01
    values = np.stack([np.add.outer(lat * 0 + t, lon * 0) for t in (1.0, 2.0, 3.0, 4.0)])
    values = values + np.add.outer(lat, lon)[None] * 0.01
    values[1, 5, 5] = np.nan
    path = write_l3(tmp_path / "l3.nc", lat, lon, values, days, scale=0.001, offset=1.0)
    spec = AuxSpec(
        "no2",
        paths=(str(path),),
        format="netcdf",
        variable="no2",
        time=("2020-02-01", "2020-03-31"),
        resampling="nearest",
    )
    source = aux_source(spec)
    assert source.all_bands == ("no2_2020-02-01", "no2_2020-03-01")
    grid = Grid.from_bounds(CRS.from_epsg(4326), 126.5, 37.5, 0.05, 0.05, 4, 6)
    data = source.read(list(source.index.filepath), grid, source.resampling)
    # Cell centres fall on the file's cells: lat 37.475 - 0.05 r, lon 126.525 + 0.05 c.
    r, c = np.meshgrid(np.arange(4), np.arange(6), indexing="ij")
    expected = 2.0 + 0.01 * ((37.475 - 0.05 * r) + (126.525 + 0.05 * c))
    np.testing.assert_allclose(data[0], expected, atol=1.5e-3)  # int16 x 0.001 packing
    np.testing.assert_allclose(data[1] - data[0], 1.0, atol=2e-3)
    reduced = aux_source(
        AuxSpec(
            "no2",
            paths=(str(path),),
            format="netcdf",
            variable="no2",
            reduce="max",
            resampling="nearest",
        )
    )
    assert reduced.all_bands == ("no2",)
    top = reduced.read(list(reduced.index.filepath), grid, reduced.resampling)
    np.testing.assert_allclose(top[0], expected + 2.0, atol=2e-3)


def test_bad_atmospheric_inputs_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lat, lon, lat_c, lon_c = swath(127.0, 37.2, 6, 6, 0.02)
    orbit = write_s5p(
        tmp_path / "co.nc",
        lat,
        lon,
        np.ones(lat.shape) * 0.03,
        np.ones(lat.shape),
        corners=(lat_c, lon_c),
    )
    image = tmp_path / "image.tif"
    write_raster(
        image, np.ones((4, 64, 64), np.uint16), "EPSG:5186", Affine(10, 0, 200_000, 0, -10, 520_000)
    )
    far = tmp_path / "far.tif"
    write_raster(
        far,
        np.ones((4, 64, 64), np.uint16),
        "EPSG:32631",
        Affine(100, 0, 700_000, 0, -100, 863_200),
    )
    l3 = write_l3(
        tmp_path / "l3.nc",
        np.arange(36.0, 38.0, 0.1),
        np.arange(126.0, 128.0, 0.1),
        np.ones((2, 20, 20)),
        np.array([18262, 18293]),
    )
    corrupt = tmp_path / "corrupt.nc"
    corrupt.write_bytes(orbit.read_bytes()[:200] + b"\x00" * 500)
    grid = ["grid", "--like", str(image), "--output", str(tmp_path / "out.tif")]
    for args, named in (
        (
            [str(orbit), "--variable", "nitrogendioxide_tropospheric_column"],
            "no /PRODUCT/nitrogendioxide_tropospheric_column in this file (TROPOMI/S5P CO",
        ),
        ([str(l3), "--variable", "so2"], "no variable 'so2' (it has: no2"),
        (
            [str(l3), "--variable", "no2", "--time", "2021-01-01", "2021-12-31"],
            "no time step between 2021-01-01 and 2021-12-31",
        ),
        (
            [str(orbit), "--variable", "carbonmonoxide_total_column", "--like", str(far)],
            "does not reach it",
        ),
        ([str(corrupt), "--variable", "no2"], "not a readable NetCDF/HDF5/Zarr file"),
    ):
        capsys.readouterr()
        assert main([*grid, *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0], err
    assert not (tmp_path / "out.tif").exists()
    flat = tmp_path / "flat.nc"
    import netCDF4

    with netCDF4.Dataset(flat, "w") as ds:  # a variable with no latitude / longitude axes
        ds.createDimension("y", 4)
        ds.createDimension("x", 4)
        ds.createVariable("no2", "f4", ("y", "x"))[:] = np.ones((4, 4))
    with pytest.raises(DualStreamError, match="variable has no geolocation"):
        aux_source(AuxSpec("no2", paths=(str(flat),), format="netcdf", variable="no2"))


def test_real_products_from_their_producers(tmp_path: Path) -> None:
    """The committed copies of a real Sentinel-5P CO strip and OMI Level 3 NO2 grids
    (tests/data/atmo/README.md) gridded by the command."""
    image = tmp_path / "image.tif"
    write_raster(
        image,
        np.ones((4, 512, 512), np.uint16),
        "EPSG:32631",
        Affine(100, 0, 700_000, 0, -100, 863_200),
    )
    out = tmp_path / "co.tif"
    strip = ATMO / "S5P_OFFL_L2__CO_____20190913_subset.nc"
    assert (
        main(
            [
                "grid",
                str(strip),
                "--variable",
                "carbonmonoxide_total_column",
                "--like",
                str(image),
                "--output",
                str(out),
                "--count",
            ]
        )
        == 0
    )
    with rasterio.open(out) as src:
        data = src.read()
        assert src.descriptions == ("carbonmonoxide_total_column", "count")
        assert src.tags()["qa_min"] == "0.5" and src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.crs.to_epsg() == 32631 and src.shape == (64, 64)
    filled = np.isfinite(data[0])
    assert 0.1 < filled.mean() < 0.6  # a two-scanline strip across the scene
    assert 0.01 < np.nanmin(data[0]) and np.nanmax(data[0]) < 0.1  # mol m-2 of CO
    assert set(np.unique(data[1][filled])) == {1.0}
    romania = tmp_path / "romania.tif"
    write_raster(
        romania,
        np.ones((4, 256, 256), np.uint16),
        "EPSG:32635",
        Affine(1000, 0, 400_000, 0, -1000, 5_100_000),
    )
    monthly = ATMO / "OMI-Aura_L3-OMNO2d_monthly.nc"
    out = tmp_path / "no2.tif"
    args = ["grid", str(monthly), "--variable", "no2", "--like", str(romania), "--output", str(out)]
    assert main([*args, "--time", "2020-03-01", "2020-05-31", "--aux-scale", "16"]) == 0
    with rasterio.open(out) as src:
        assert src.descriptions == ("2020-03-01", "2020-04-01", "2020-05-01")
        spring = src.read()
    assert np.isfinite(spring).all() and 1e15 < spring.mean() < 1e16  # molec cm-2
    yearly = ATMO / "OMI-Aura_L3-OMNO2d_ymonmean_2015_2019.nc4"
    spec = AuxSpec(
        "no2",
        paths=(str(yearly),),
        format="netcdf",
        variable="ColumnAmountNO2CloudScreened",
        reduce="mean",
    )
    grids = scene_aux_grids(SatelliteImage(romania), 16)
    mean = aux_source(spec, grids=grids)
    assert mean.all_bands == ("no2",)


@pytest.fixture(scope="module")
def products(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Two S5P CO orbits, a GEMS NO2 file and an OMI-like L3 grid over the demo scenes."""
    root = tmp_path_factory.mktemp("products")
    rng = np.random.default_rng(1)
    orbits = []
    for number in range(2):
        lat, lon, lat_c, lon_c = swath(126.95 + 0.01 * number, 37.05, 70, 30, 0.01, tilt=0.05)
        field = 0.03 + 0.01 * np.sin(lat * 40) * np.cos(lon * 30) + rng.normal(0, 1e-3, lat.shape)
        qa = rng.choice([0.4, 0.8, 1.0], lat.shape)
        orbits.append(
            str(
                write_s5p(root / f"S5P_CO_{number}.nc", lat, lon, field, qa, corners=(lat_c, lon_c))
            )
        )
    lat, lon, _, _ = swath(126.95, 37.05, 70, 30, 0.01, tilt=0.0)
    gems = write_gems(
        root / "GK2_GEMS_L2_NO2.nc",
        lat,
        lon,
        1e15 * (1 + np.cos(lat * 50)),
        np.zeros(lat.shape, np.uint8),
    )
    grid_lat, grid_lon = np.arange(36.525, 38.0, 0.05), np.arange(126.525, 128.0, 0.05)
    months = np.stack([np.add.outer(grid_lat * (1 + m), grid_lon) for m in range(3)])
    l3 = write_l3(root / "OMNO2d.nc", grid_lat, grid_lon, months, np.array([18262, 18293, 18322]))
    return {"co": orbits, "no2": [str(gems)], "omi": [str(l3)]}


def test_fit_and_predict_from_the_producers_files_equal_the_gridded_cogs(
    products: dict[str, list[str]],
    demo_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An S5P L2 file list, a GEMS L2 file and an L3 NetCDF as aux sources of fit and
    predict; predict gives the same map, pixel for pixel, from the COGs `grid` writes of
    the same data (the cached grids are that very computation)."""
    monkeypatch.setenv("DUALSTREAM_CACHE", str(tmp_path / "cache"))
    aux = [
        {
            "name": "co",
            "paths": products["co"],
            "format": "s5p_l2",
            "variable": "carbonmonoxide_total_column",
            "count": True,
            "resampling": "bilinear",
        },
        {
            "name": "no2",
            "paths": products["no2"],
            "format": "gems_l2",
            "variable": "ColumnAmountNO2Trop",
            "transform": "log",
            "resampling": "bilinear",
        },
        {
            "name": "omi",
            "paths": products["omi"],
            "format": "netcdf",
            "variable": "no2",
            "time": ["2020-01-01", "2020-02-29"],
            "reduce": "mean",
        },
    ]
    config = {
        "trainer": {"max_epochs": 1, "default_root_dir": str(tmp_path / "run")},
        "model": {
            "architecture": {"preset": "lite", "vision_encoder": "segformer-b0"},
            "freeze_epochs": 0,
        },
        "data": {
            "aux": aux,
            "patch_size": 64,
            "length": 8,
            "batch_size": 4,
            "stats_path": str(tmp_path / "stats.json"),
        },
    }
    path = tmp_path / "atmo.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["--config", str(REPO / "experiments" / "demo.yaml"), "--config", str(path)]
    assert (
        main(["fit", *args, f"--data.root={demo_root}", "--trainer.enable_progress_bar=false"]) == 0
    )
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    spec = read_spec(torch.load(checkpoint, weights_only=True), checkpoint)
    assert spec.aux_channel_names == ["co_carbonmonoxide_total_column", "co_count", "no2", "omi"]
    assert len(list((tmp_path / "cache" / "gridded").glob("*.tif"))) == 6  # 3 sources x 2 scenes

    test = demo_root / "test"
    image = next((test / "image").glob("*.tif"))
    predict = [
        "predict",
        "--checkpoint",
        str(checkpoint),
        "--image",
        str(test / "image"),
        "--tile",
        "128",
    ]
    direct = [f"--aux=co={p}" for p in products["co"]] + [
        f"--aux=no2={products['no2'][0]}",
        f"--aux=omi={products['omi'][0]}",
    ]
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (
            main(
                [
                    *predict,
                    *direct,
                    "--output",
                    str(tmp_path / "direct.tif"),
                    "--kind",
                    "probabilities",
                ]
            )
            == 0
        )
    # A NetCDF / HDF5 file is georeferenced by its variables: no tile needs a footprint.
    assert not [w for w in caught if "without georeferencing" in str(w.message)]
    cogs = {}
    for name, options in (
        ("co", ["--variable", "carbonmonoxide_total_column", "--count"]),
        ("no2", ["--variable", "ColumnAmountNO2Trop"]),
        (
            "omi",
            [
                "--variable",
                "no2",
                "--time",
                "2020-01-01",
                "2020-02-29",
                "--reduce",
                "mean",
                "--resampling",
                "average",
            ],
        ),
    ):
        cogs[name] = tmp_path / f"{name}.tif"
        assert (
            main(
                [
                    "grid",
                    *products[name],
                    *options,
                    "--like",
                    str(image),
                    "--output",
                    str(cogs[name]),
                ]
            )
            == 0
        )
    shutil.rmtree(tmp_path / "cache")
    gridded = [f"--aux={name}={cog}" for name, cog in cogs.items()]
    assert (
        main(
            [
                *predict,
                *gridded,
                "--output",
                str(tmp_path / "gridded.tif"),
                "--kind",
                "probabilities",
            ]
        )
        == 0
    )
    with rasterio.open(tmp_path / "direct.tif") as a, rasterio.open(tmp_path / "gridded.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.crs == b.crs and a.transform == b.transform

    # Another quantity for a source: a COG gridded from another variable (by its tag), and
    # a raster of other values without a tag (by its values: a population grid, say).
    other = [*gridded[:2], f"--aux=omi={cogs['no2']}", "--output", str(tmp_path / "x.tif")]
    capsys.readouterr()
    assert main([*predict, *other]) == 2
    assert "gridded from the variable 'ColumnAmountNO2Trop'" in capsys.readouterr().err
    with rasterio.open(cogs["omi"]) as src:
        profile, values = src.profile, src.read()
    population = tmp_path / "population.tif"
    with rasterio.open(population, "w", **profile) as dst:
        dst.write(np.where(np.isnan(values), values, 2500.0).astype(values.dtype))
    untagged = [*gridded[:2], f"--aux=omi={population}", "--output", str(tmp_path / "y.tif")]
    assert main([*predict, *untagged]) == 2
    assert "aux source 'omi': the values cannot be the training data's" in capsys.readouterr().err
    assert not list(tmp_path.glob("[xy].tif*"))
