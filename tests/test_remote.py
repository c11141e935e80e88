"""Remote rasters: sources and whole-scene prediction over HTTP range requests from a
server the test starts on 127.0.0.1, against the same files read locally."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
from affine import Affine

from dualstream_geo.data import GEMS, AirPollution, SatelliteImage
from dualstream_geo.data.remote import gdal_path, redact
from dualstream_geo.errors import DualStreamError
from dualstream_geo.inference import ScenePredictor

from .conftest import write_raster
from .http_server import serve


def test_urls_map_to_gdal_paths_and_are_redacted() -> None:
    assert gdal_path("https://example.org/a.tif") == "/vsicurl/https://example.org/a.tif"
    assert gdal_path("s3://bucket/key/a.tif") == "/vsis3/bucket/key/a.tif"
    assert gdal_path("gs://bucket/a.tif") == "/vsigs/bucket/a.tif"
    assert gdal_path("az://container/a.tif") == "/vsiaz/container/a.tif"
    assert gdal_path("/data/a.tif") == "/data/a.tif"
    signed = "/vsicurl/https://me:secret@example.org/a.tif?X-Amz-Signature=abc"
    assert redact(signed) == "/vsicurl/https://example.org/a.tif"
    with pytest.raises(DualStreamError, match="unsupported URL scheme 'ftp'"):
        SatelliteImage(["ftp://example.org/a.tif"])


def test_prediction_from_urls_equals_local_files(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    folder = scene["image"].parent
    local = ScenePredictor.from_checkpoint(checkpoint, tile=128).predict(
        [scene["image"]], [scene["gems"], scene["air"]], tmp_path / "local.tif", kind="both"
    )
    with serve(folder) as (url, traffic):
        image = SatelliteImage([f"{url}/image/scene_b.tif?token=secret"])
        air = [
            GEMS([f"{url}/gems/GEMS_scene_b.tif"]),
            AirPollution([f"{url}/air/AIR_Pollution_CO_scene_b.tif"]),
        ]
        remote = ScenePredictor.from_checkpoint(checkpoint, tile=128).predict(
            image, air, tmp_path / "remote.tif", kind="both"
        )
        assert traffic.requests > 0
    for name in ("local", "remote"):
        assert (tmp_path / f"{name}_probabilities.tif").exists()
    with rasterio.open(local) as a, rasterio.open(remote) as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert "secret" not in str(b.tags())
    with rasterio.open(tmp_path / "local_probabilities.tif") as a:
        with rasterio.open(tmp_path / "remote_probabilities.tif") as b:
            np.testing.assert_array_equal(a.read(), b.read())


def test_remote_failures_are_one_line(scene: dict[str, Path], tmp_path: Path) -> None:
    folder = scene["image"].parent
    striped = tmp_path / "striped"
    data = np.full((4, 8, 1024), 100, dtype="uint16")
    write_raster(striped / "wide.tif", data, "EPSG:32612", Affine(30, 0, 3e5, 0, -30, 4.2e6))
    with serve(folder) as (url, _):
        for path, message in (
            (f"{url}/image/missing.tif", "missing.tif: not found (HTTP 404)"),
            (f"{url}/truncated/image/scene_b.tif", "truncated"),
            (f"{url}/image/", "a remote folder cannot be listed"),
        ):
            with pytest.raises(DualStreamError, match=re.escape(message)):
                SatelliteImage([path])
    with serve(tmp_path / "nothing") as (url, _):
        closed = url  # the server stops below: its port refuses connections
    with pytest.raises(DualStreamError, match="connection refused"):
        SatelliteImage([f"{closed}/a.tif"])
    with serve(striped) as (url, _):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            SatelliteImage([f"{url}/wide.tif"])
            SatelliteImage([f"{url}/wide.tif"])
        slow = [w for w in caught if "not a cloud-optimised GeoTIFF" in str(w.message)]
        assert len(slow) == 1  # once per file


def write_item(path: Path, href: dict[str, str], grid_of: Path, multiband: bool) -> Path:
    """A STAC Item whose assets are ``href`` (name -> URL), with the projection and raster
    extensions taken from ``grid_of``."""
    import pystac

    with rasterio.open(grid_of) as src:
        props = {
            "proj:epsg": src.crs.to_epsg(),
            "proj:transform": list(src.transform)[:6],
            "proj:shape": [src.height, src.width],
        }
        dtype, count, nodata = src.dtypes[0], src.count, src.nodata
        bounds = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    item = pystac.Item(
        "scene b",
        geometry=None,
        bbox=list(bounds),
        datetime=None,
        properties={**props, "start_datetime": "2024-01-01T00:00:00Z",
                    "end_datetime": "2024-01-01T00:00:00Z"},
    )  # fmt: skip
    bands = count if multiband else 1
    for name, url in href.items():
        raster = [{"data_type": dtype, "nodata": nodata}] * bands
        item.add_asset(name, pystac.Asset(url, extra_fields={"raster:bands": raster}))
    path.write_text(json.dumps(item.to_dict()))
    return path


def test_stac_item_assets_as_sources(
    checkpoint: Path, scene: dict[str, Path], tmp_path: Path
) -> None:
    """An Item with one asset per band (the image, split here into four one-band COGs), one
    multi-band GEMS asset and three pollutant assets, served over HTTP: the same
    prediction as the local files."""
    folder = scene["image"].parent
    with rasterio.open(scene["file"]) as src:
        profile = {**src.profile, "count": 1}
        for band, name in enumerate(("blue", "green", "red", "nir"), start=1):
            with rasterio.open(folder / "image" / f"band_{name}.tif", "w", **profile) as dst:
                dst.write(src.read(band), 1)
    local = ScenePredictor.from_checkpoint(checkpoint, tile=128).predict(
        [scene["file"]], [scene["gems"], scene["air"]], tmp_path / "local.tif"
    )
    with serve(folder) as (url, _):
        image_item = write_item(
            tmp_path / "image.json",
            {b: f"{url}/image/band_{b}.tif" for b in ("blue", "green", "red", "nir")},
            scene["file"],
            multiband=False,
        )
        gems_file = next(scene["gems"].glob("*.tif"))
        gems_item = write_item(
            tmp_path / "gems.json", {"gems": f"{url}/gems/{gems_file.name}"}, gems_file, True
        )
        pollutants = {p: f"{url}/air/AIR_Pollution_{p}_scene_b.tif" for p in ("CO", "NO2", "SO2")}
        co = scene["air"] / "AIR_Pollution_CO_scene_b.tif"
        air_item = write_item(tmp_path / "air.json", pollutants, co, True)

        image = SatelliteImage.from_stac(image_item, ["blue", "green", "red", "nir"])
        air = [
            GEMS.from_stac(gems_item, ["gems"]),
            AirPollution.from_stac(air_item, ["CO", "NO2", "SO2"]),
        ]
        remote = ScenePredictor.from_checkpoint(checkpoint, tile=128).predict(
            image, air, tmp_path / "stac.tif"
        )
        with pytest.raises(DualStreamError, match="no asset 'swir'"):
            SatelliteImage.from_stac(image_item, ["blue", "green", "red", "swir"])
    with rasterio.open(local) as a, rasterio.open(remote) as b:
        np.testing.assert_array_equal(a.read(), b.read())
