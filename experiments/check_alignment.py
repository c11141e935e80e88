"""Check that a predicted GeoTIFF lines up with the input image and with a label raster.

The prediction must share the image's CRS, transform and shape exactly; the label raster
(any CRS and grid) is warped onto the prediction grid by nearest neighbour, mapped through
the class map, and compared pixel by pixel.

    python experiments/check_alignment.py --prediction runs/zion/prediction.tif \
        --image ../shared/data/zion/landsat_b2.tif --labels ../shared/data/zion/nlcd.tif \
        --class-map '{"1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6, "8": 7}'
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import rasterio
from rasterio.warp import Resampling, reproject


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prediction", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--labels", required=True)
    parser.add_argument("--class-map", required=True, help="JSON: raw label value -> class")
    parser.add_argument(
        "--background", type=int, default=None, help="class of unmapped values (default: ignore)"
    )
    args = parser.parse_args()
    class_map = {int(k): int(v) for k, v in json.loads(args.class_map).items()}
    with rasterio.open(args.prediction) as pred, rasterio.open(args.image) as image:
        same_grid = (
            pred.crs == image.crs
            and pred.transform == image.transform
            and pred.shape == image.shape
        )
        classes = pred.read(1)
        names = json.loads(pred.tags()["class_names"])
        raw = np.full(pred.shape, 255, dtype=np.uint8)
        with rasterio.open(args.labels) as labels:
            reproject(
                rasterio.band(labels, 1),
                raw,
                dst_transform=pred.transform,
                dst_crs=pred.crs,
                dst_nodata=255,
                resampling=Resampling.nearest,
            )
    lut = np.full(256, 255 if args.background is None else args.background, dtype=np.int64)
    for value, cls in class_map.items():
        lut[value] = cls
    lut[255] = 255
    truth = lut[raw]
    valid = (truth != 255) & (classes != 255)
    iou = {}
    for i, name in enumerate(names):
        union = ((classes == i) | (truth == i)) & valid
        iou[name] = float(((classes == i) & (truth == i) & valid).sum() / max(1, union.sum()))
    print(
        json.dumps(
            {
                "same grid as the image": bool(same_grid),
                "pixels compared": int(valid.sum()),
                "agreement": float((classes[valid] == truth[valid]).mean()),
                "iou_whole_scene": iou,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
