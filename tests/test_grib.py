"""GRIB fields (ERA5, CAMS) as aux sources through the format table: the field and the level
by name, the valid times of a date range, values at known coordinates read directly, gridded
onto a scene's aux grid and over HTTP; the one-line refusals; and the table itself."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from dualstream_geo.cli import main
from dualstream_geo.data import AuxSpec
from dualstream_geo.data.auxiliary import FORMATS, aux_format, aux_source
from dualstream_geo.data.grid import Grid
from dualstream_geo.data.remote import GDAL_DEFAULTS
from dualstream_geo.errors import DualStreamError

from .atmo_files import write_grib, write_l3
from .conftest import write_raster
from .http_server import serve

#: A 0.25-degree grid over 126-128 E, 36-38 N (8 x 8 cells).
TRANSFORM = Affine(0.25, 0.0, 126.0, 0.0, -0.25, 38.0)


def field(offset: float) -> np.ndarray:
    """Distinct values per cell: ``offset`` + 10 x row + column."""
    rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    return (offset + 10.0 * rows + cols).astype(np.float32)


@pytest.fixture
def era5(tmp_path: Path) -> Path:
    """Two days of 2 m temperature (two analyses on the second), a surface temperature and
    a relative humidity, as an ERA5 download mixes them."""
    return write_grib(
        tmp_path / "era5.grib2",
        TRANSFORM,
        [
            ("TMP", "2-HTGL", datetime(2020, 1, 1), field(0.0)),
            ("TMP", "2-HTGL", datetime(2020, 1, 2), field(100.0)),
            ("TMP", "2-HTGL", datetime(2020, 1, 2, 12), field(200.0)),
            ("TMP", "0-SFC", datetime(2020, 1, 1), field(300.0)),
            ("RH", "2-HTGL", datetime(2020, 1, 1), field(400.0)),
        ],
    )


def grib(paths: tuple[str, ...], variable: str, **settings: object) -> AuxSpec:
    return AuxSpec(
        "t2m", paths=paths, format="grib", variable=variable, resampling="nearest", **settings
    )  # type: ignore[arg-type]


def test_a_grib_field_by_element_level_and_date(era5: Path) -> None:
    spec = grib((str(era5),), "tmp:2-htgl", time=("2020-01-02", "2020-01-02"))
    source = aux_source(spec)
    assert source.all_bands == ("t2m_2020-01-02", "t2m_2020-01-02T12:00")
    # Two 0.5-degree cells from 126.375 E, 37.625 N: centred on GRIB row 2, columns 2 and 4
    # (read by nearest neighbour).
    grid = Grid.from_bounds(CRS.from_epsg(4326), 126.375, 37.625, 0.5, 0.5, 1, 2)
    data = source.read(list(source.index.filepath), grid, source.resampling)
    np.testing.assert_allclose(data[0], [[100 + 10 * 2 + 2, 100 + 10 * 2 + 4]], atol=0.01)
    np.testing.assert_allclose(data[1] - data[0], 100.0, atol=0.01)
    surface = aux_source(grib((str(era5),), "TMP:0-SFC"))
    assert surface.all_bands == ("t2m",)
    values = surface.read(list(surface.index.filepath), grid, surface.resampling)
    np.testing.assert_allclose(values[0], data[0] + 200.0, atol=0.01)
    # Gridded once onto a scene's aux grid (cached), the same values.
    cached = aux_source(spec, grids=[grid])
    gridded = cached.read(list(cached.index.filepath), grid, cached.resampling)
    np.testing.assert_allclose(gridded, data, atol=1e-5)
    reduced = aux_source(grib((str(era5),), "TMP:2-HTGL", reduce="max"))
    top = reduced.read(list(reduced.index.filepath), grid, reduced.resampling)
    np.testing.assert_allclose(top[0], data[1], atol=0.01)


def test_a_folder_of_grib_files_and_the_grid_command(era5: Path, tmp_path: Path) -> None:
    source = aux_source(grib((str(era5.parent),), "RH"))
    assert source.all_bands == ("t2m",)
    image = write_raster(
        tmp_path / "image.tif",
        np.zeros((1, 4, 4), np.float32),
        "EPSG:4326",
        Affine(0.125, 0.0, 126.5, 0.0, -0.125, 37.5),
    )
    out = tmp_path / "rh.tif"
    code = main(["grid", str(era5), "--variable", "RH", "--like", str(image)])
    assert code == 2  # --output is required: one line, no traceback
    argv = ["grid", str(era5), "--variable", "RH", "--like", str(image), "--output", str(out)]
    assert main([*argv, "--aux-scale", "2", "--resampling", "nearest"]) == 0
    with rasterio.open(out) as src:
        assert src.tags()["format"] == "grib" and src.count == 1
        # The 0.25-degree output cell centred at 126.625 E, 37.375 N: GRIB row 2, column 2.
        assert src.read(1)[0, 0] == pytest.approx(400 + 10 * 2 + 2, abs=0.01)


def test_grib_mistakes_are_one_line(era5: Path, tmp_path: Path) -> None:
    with pytest.raises(DualStreamError, match=r"GRIB element TMP is at 2 levels \(0-SFC, 2-HTGL\)"):
        aux_source(grib((str(era5),), "TMP"))
    with pytest.raises(
        DualStreamError, match=r"no GRIB field 'NO2' \(it has: RH:2-HTGL, TMP:0-SFC"
    ):
        aux_source(grib((str(era5),), "NO2"))
    with pytest.raises(DualStreamError, match="no time step between 2021-01-01 and 2021-01-31"):
        aux_source(grib((str(era5),), "RH", time=("2021-01-01", "2021-01-31")))
    broken = tmp_path / "broken.grib2"
    broken.write_bytes(b"GRIB" + bytes(64))
    with pytest.raises(DualStreamError, match=f"{broken}: not a readable GRIB file"):
        aux_source(grib((str(broken),), "RH"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DualStreamError, match=r"no \.grib / \.grb / \.grib2 / \.grb2 file"):
        aux_source(grib((str(empty),), "RH"))
    with pytest.raises(DualStreamError, match="format grib needs a variable"):
        AuxSpec("t2m", paths=(str(era5),), format="grib")
    with pytest.raises(
        DualStreamError, match=r"qa_min does not apply to format grib: .*\(format s5p_l2, gems_l2\)"
    ):
        grib((str(era5),), "RH", qa_min=0.5)
    with pytest.raises(
        DualStreamError,
        match=r"aux source 't2m': format 'grb' is unknown \(known: raster, netcdf, grib",
    ):
        AuxSpec("t2m", paths=(str(era5),), format="grb")


def test_gridded_fields_over_http(era5: Path, tmp_path: Path) -> None:
    """GRIB, NetCDF and Zarr fields from a server with range requests read what the local
    files give."""
    lat, lon = np.arange(36.125, 38.0, 0.25), np.arange(126.125, 128.0, 0.25)
    values = np.stack([np.add.outer(lat, lon)])
    write_l3(tmp_path / "l3.nc", lat, lon, values, np.array([18262]))
    grid = Grid.from_bounds(CRS.from_epsg(4326), 126.375, 37.625, 0.5, 0.5, 1, 2)
    with serve(tmp_path) as (url, traffic):
        for name, spec in (
            ("era5.grib2", grib((), "RH")),
            ("l3.nc", AuxSpec("no2", format="netcdf", variable="no2", resampling="nearest")),
        ):
            local = aux_source(spec.with_paths([str(tmp_path / name)]))
            remote = aux_source(spec.with_paths([f"{url}/{name}"]))
            expected = local.read(list(local.index.filepath), grid, local.resampling)
            got = remote.read(list(remote.index.filepath), grid, remote.resampling)
            np.testing.assert_array_equal(got, expected)
            assert np.isfinite(got).all()
        assert traffic.requests > 0


def test_gdal_is_configured_when_data_is_opened_not_on_import(era5: Path) -> None:
    probe = (
        "import os, sys\n"
        "names = sys.argv[1:]\n"
        "import dualstream_geo.cli, dualstream_geo.data, dualstream_geo.inference\n"
        "print(sum(n in os.environ for n in names))\n"
        "from dualstream_geo.data import AuxSpec\n"
        "from dualstream_geo.data.auxiliary import aux_source\n"
        f"aux_source(AuxSpec('rh', paths=({str(era5)!r},), format='grib', variable='RH'))\n"
        "print(sum(n in os.environ for n in names))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in GDAL_DEFAULTS}
    done = subprocess.run(
        [sys.executable, "-c", probe, *GDAL_DEFAULTS],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stdout.split() == ["0", str(len(GDAL_DEFAULTS))]


def test_the_format_table() -> None:
    """Each row says what its sources take; the settings of other formats are refused."""
    assert set(FORMATS) >= {"raster", "netcdf", "grib", "s5p_l2", "gems_l2"}
    for name, row in FORMATS.items():
        assert aux_format(name) is row
        if row.needs_variable:
            with pytest.raises(DualStreamError, match=f"format {name} needs a variable"):
                AuxSpec("x", format=name)
        assert row.gridded == (row.swath or row.vrt is not None)
    assert [n for n, r in FORMATS.items() if r.vrt is not None] == ["netcdf", "grib"]
    with pytest.raises(DualStreamError, match="reduce does not apply to format original_gems"):
        AuxSpec("gems", format="original_gems", reduce="mean")
