"""Atmospheric products: the cost of gridding a Level 2 orbit against the scene's size, and
windowed reads of a gridded NetCDF variable against the same data as a tiled GeoTIFF.

1. One synthetic Sentinel-5P orbit segment (450 ground pixels x ``--scanlines``, corners
   included, written in the product's layout) gridded onto aux grids of 240 m cells over
   scenes of growing side: seconds per orbit (read + grid), and cells per second.
2. A 2000 x 2000 float32 variable written as chunked NetCDF4 and as a tiled, compressed
   GeoTIFF: random 64 x 64 aux windows read through the project's reader (``AuxRaster``,
   exact warp, aligned windows) from each: windows per second, and the ratio (target: the
   NetCDF within 2x of the GeoTIFF).

    python benchmarks/bench_atmo.py [--scanlines 600] [--windows 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dualstream_geo.data.auxiliary import AuxRaster  # noqa: E402
from dualstream_geo.data.auxiliary.netcdf import variable_vrt  # noqa: E402
from dualstream_geo.data.auxiliary.swath import grid_orbit, read_swath  # noqa: E402
from dualstream_geo.data.grid import Grid  # noqa: E402
from tests.atmo_files import write_l3, write_s5p  # noqa: E402


def orbit(folder: Path, scanlines: int) -> Path:
    """450 pixels of 0.05 x 0.065 degrees across, ``scanlines`` along, around 37 N."""
    s, p = np.meshgrid(np.arange(scanlines), np.arange(450), indexing="ij")
    lon = 116.0 + p * 0.05 + s * 0.005
    lat = 30.0 + s * 0.065 - p * 0.002
    corners = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    lon_c = lon[..., None] + corners[:, 0] * 0.05
    lat_c = lat[..., None] + corners[:, 1] * 0.065
    values = 0.03 + 0.01 * np.sin(lat) * np.cos(lon)
    qa = np.full(lat.shape, 0.9)
    return write_s5p(folder / "orbit.nc", lat, lon, values, qa, corners=(lat_c, lon_c))


def gridding(folder: Path, scanlines: int) -> list[dict[str, float]]:
    path = str(orbit(folder, scanlines))
    rows = []
    for side_km in (50, 200, 800):
        cells = int(side_km * 1000 / 240)
        grid = Grid.from_bounds(
            CRS.from_epsg(32650), 650_000, 4_250_000, 240.0, 240.0, cells, cells
        )
        start = time.perf_counter()
        swath = read_swath(path, "s5p_l2", "carbonmonoxide_total_column", None)
        values = grid_orbit(swath, grid)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "scene_km": side_km,
                "cells": cells * cells,
                "seconds": round(seconds, 2),
                "cells_per_s": round(cells * cells / seconds),
                "filled": round(float(np.isfinite(values).mean()), 3),
            }
        )
    return rows


def windows(folder: Path, count: int) -> dict[str, float]:
    size = 2000
    lat = 30.0 + (np.arange(size) + 0.5) * 0.01
    lon = 110.0 + (np.arange(size) + 0.5) * 0.01
    rng = np.random.default_rng(0)
    data = np.add.outer(np.sin(lat * 3), np.cos(lon * 2)) + rng.normal(0, 0.01, (size, size))
    nc = write_l3(folder / "grid.nc", lat, lon, data[None].astype(np.float32), np.array([18262]))
    vrt = variable_vrt(str(nc), "no2")
    tif = folder / "grid.tif"
    with rasterio.open(vrt) as src:
        profile = src.profile | {
            "driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256,
            "compress": "deflate",
        }  # fmt: skip
        with rasterio.open(tif, "w", **profile) as dst:
            dst.write(src.read())
        transform = src.transform
    sources = {
        "netcdf": AuxRaster([vrt], name="v", resampling="nearest", filename_glob="*.vrt"),
        "geotiff": AuxRaster([str(tif)], name="v", resampling="nearest"),
    }
    offsets = rng.integers(0, size - 64, (count, 2))
    rates = {}
    for _ in range(2):  # the second round: caches as warm for both
        for name, source in sources.items():
            files = list(source.index.filepath)
            start = time.perf_counter()
            for row, col in offsets:
                grid = Grid(CRS.from_epsg(4326), transform * Affine.translation(col, row), 64, 64)
                source.read(files, grid, source.resampling)
            rates[name] = count / (time.perf_counter() - start)
    return {
        "netcdf_windows_per_s": round(rates["netcdf"], 1),
        "geotiff_windows_per_s": round(rates["geotiff"], 1),
        "geotiff_over_netcdf": round(rates["geotiff"] / rates["netcdf"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scanlines", type=int, default=600)
    parser.add_argument("--windows", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for row in gridding(folder, args.scanlines):
            print(row)
        print(windows(folder, args.windows))


if __name__ == "__main__":
    main()
