"""How the real-data crops in this folder were made (run from the repository root, with the
project's shared data at ../shared/data). Kept so that the crops can be re-derived.

    python tests/data/make_crops.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import rasterio
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

SHARED = Path("../shared/data")
HERE = Path(__file__).parent
#: 192 x 192 Landsat pixels (5.8 km) holding all eight NLCD classes.
ZION_WINDOW = Window(col_off=320, row_off=1120, width=192, height=192)
#: A corner of the Landsat 7 scene: image, rotated nodata collar and its edge.
NODATA_WINDOW = Window(col_off=0, row_off=0, width=256, height=256)


def crop(source: Path, target: Path, window: Window) -> None:
    with rasterio.open(source) as src:
        profile = src.profile | {
            "width": int(window.width),
            "height": int(window.height),
            "transform": src.window_transform(window),
            "compress": "deflate",
            "predictor": 2,
            "tiled": False,
        }
        profile.pop("blockxsize", None)
        profile.pop("blockysize", None)
        target.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(src.read(window=window))
            try:
                dst.write_colormap(1, src.colormap(1))
            except ValueError:  # no colour table
                pass


def main() -> None:
    if not SHARED.is_dir():
        # A user's clone has no shared data; the committed crops are what the tests use.
        print(f"make_crops.py: {SHARED.resolve()} does not exist", file=sys.stderr)
        sys.exit(2)
    zion = SHARED / "zion"
    for band in ("b2", "b3", "b4", "b5"):
        crop(zion / f"landsat_{band}.tif", HERE / "zion" / f"landsat_{band}.tif", ZION_WINDOW)
    with rasterio.open(zion / "landsat_b2.tif") as src:
        bounds = rasterio.windows.bounds(ZION_WINDOW, src.transform)
        crs = src.crs
    for name in ("nlcd.tif", "nlcd2011.tif"):
        with rasterio.open(zion / name) as src:
            left, bottom, right, top = transform_bounds(crs, src.crs, *bounds)
            window = from_bounds(left, bottom, right, top, src.transform)
            window = window.round_offsets().round_lengths()
            # Two label pixels of margin so the whole image crop is labelled.
            window = Window(
                window.col_off - 2, window.row_off - 2, window.width + 4, window.height + 4
            )
        crop(zion / name, HERE / "zion" / name, window)
    shutil.copy(zion / "nlcd.tif.aux.xml", HERE / "zion" / "nlcd.tif.aux.xml")
    # The SRTM elevation (EPSG:4326, 3 arc-seconds) over the crop, four DEM pixels of margin:
    # the aux stream's 240 m grid over the crop reads it whole.
    with rasterio.open(zion / "srtm.tif") as src:
        left, bottom, right, top = transform_bounds(crs, src.crs, *bounds)
        window = from_bounds(left, bottom, right, top, src.transform)
        window = window.round_offsets().round_lengths()
        window = Window(window.col_off - 4, window.row_off - 4, window.width + 8, window.height + 8)
    crop(zion / "srtm.tif", HERE / "zion" / "srtm.tif", window)
    crop(SHARED / "nodata" / "RGB.byte.tif", HERE / "nodata" / "RGB.byte.tif", NODATA_WINDOW)


if __name__ == "__main__":
    main()
