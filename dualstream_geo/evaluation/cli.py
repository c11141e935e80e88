"""``dualstream-geo evaluate``: a class map against a reference raster, as a report folder."""

from __future__ import annotations

import math
import os

import yaml

from ..errors import DualStreamError, OneLineParser
from .report import evaluate


def read_class_map(path: str) -> dict[int, int]:
    """A YAML mapping of raw reference values to class indices (e.g. ``{90: 1, 20: 0}``)."""
    if not os.path.isfile(path):
        raise DualStreamError(f"--class-map {path} does not exist")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
        mapping = {int(k): int(v) for k, v in raw.items()}
    except (yaml.YAMLError, AttributeError, TypeError, ValueError):
        raise DualStreamError(
            f"--class-map {path}: expected a YAML mapping of raw values to class indices, "
            "such as {90: 1, 20: 0}"
        ) from None
    return mapping


def evaluate_main(argv: list[str]) -> int:
    parser = OneLineParser(
        prog="dualstream-geo evaluate",
        description="Accuracy of a class GeoTIFF against a reference raster (any CRS).",
    )
    parser.add_argument("--prediction", required=True, help="class GeoTIFF (from predict)")
    parser.add_argument("--reference", required=True, help="reference land-cover raster")
    parser.add_argument("--output", required=True, help="report folder")
    parser.add_argument("--class-map", help="YAML: raw reference value -> class index")
    parser.add_argument("--ignore", type=int, default=255, help="reference value to skip")
    parser.add_argument("--overwrite", action="store_true", help="replace a report folder")
    args = parser.parse_args(argv)
    class_map = read_class_map(args.class_map) if args.class_map else None
    result = evaluate(
        args.prediction,
        args.reference,
        args.output,
        class_map,
        args.ignore,
        args.overwrite,
        inputs=[args.class_map] if args.class_map else [],
    )
    a = result.accuracy

    def show(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.3f}"

    print(
        f"overall accuracy {show(a.overall_accuracy)}, mean IoU {show(a.mean_iou)}, "
        f"kappa {show(a.kappa)} over {result.compared_pixels:,} pixels; "
        f"report in {args.output}"
    )
    return 0
