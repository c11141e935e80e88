"""``dualstream-geo evaluate`` and ``dualstream-geo sample-design``.

``dualstream-geo evaluate`` (a class map against a reference raster, or a labelled sample)
and ``dualstream-geo sample-design`` (the sample to label).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import geopandas as gpd
import yaml

from ..errors import DualStreamError, OneLineParser
from ..paths import check_folder_writable, check_output, describe_write_error
from ..preview import write_preview
from .report import evaluate
from .sample_report import evaluate_sample
from .sampling import ALLOCATIONS, draw_sample


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
    """Run ``dualstream-geo evaluate`` on ``argv``; the exit status."""
    parser = OneLineParser(
        prog="dualstream-geo evaluate",
        description="Accuracy of a class GeoTIFF against a reference raster (any CRS), or "
        "area and accuracy with 95 % intervals from labelled sample points (--sample).",
    )
    parser.add_argument("--prediction", required=True, help="class GeoTIFF (from predict)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--reference", help="reference land-cover raster (wall to wall)")
    source.add_argument(
        "--sample", help="labelled points (sample-design's GeoPackage or CSV, reference filled)"
    )
    parser.add_argument("--output", required=True, help="report folder")
    parser.add_argument("--class-map", help="YAML: raw reference value -> class index")
    parser.add_argument("--ignore", type=int, default=255, help="reference value to skip")
    parser.add_argument("--overwrite", action="store_true", help="replace a report folder")
    args = parser.parse_args(argv)
    if args.sample:
        if args.class_map:
            raise DualStreamError("--class-map applies to --reference rasters, not to --sample")
        estimate = evaluate_sample(args.prediction, args.sample, args.output, args.overwrite)
        print(
            f"overall accuracy {estimate.overall:.3f} +- {1.96 * estimate.overall_se:.3f} "
            f"from {int(estimate.counts.sum())} points; report in {args.output} (figure: "
            f"{Path(args.output) / 'area.png'})"
        )
        return 0
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
        f"report in {args.output} (figures: {Path(args.output) / 'confusion.png'}, the errors "
        f"map {Path(args.output) / 'errors.tif'})"
    )
    return 0


def sample_outputs(output: str, overwrite: bool, inputs: list[str]) -> list[str]:
    """The sample's output files, checked before any work.

    The sample's GeoPackage ``output``, the CSV and the PNG (the points over the map) beside
    it, checked before any work.

    Raises:
        DualStreamError: an output that is or lies in an input, is not a plain file, exists
            (without ``overwrite``), is not a .gpkg, or cannot be written.
    """
    stem = os.path.splitext(output)[0]
    csv, png = f"{stem}.csv", f"{stem}.png"
    for path in (output, csv, png):
        real = check_output(path, inputs, "--output")
        if os.path.exists(path) and not overwrite:
            raise DualStreamError(f"--output {path} exists; pass --overwrite to replace it")
        check_folder_writable(os.path.dirname(real), "--output")
    if not output.lower().endswith(".gpkg"):
        raise DualStreamError(f"--output {output}: the sample is a GeoPackage; name it .gpkg")
    return [output, csv, png]


def write_sample(frame: gpd.GeoDataFrame, paths: list[str]) -> None:
    """The sample as a GeoPackage and a CSV.

    x and y in the map's CRS; each written whole or not at all.

    Raises:
        DualStreamError: a write that fails (one line).
    """
    table = frame.drop(columns="geometry")
    table.insert(1, "x", frame.geometry.x)
    table.insert(2, "y", frame.geometry.y)
    writers = (
        lambda tmp: frame.to_file(tmp, driver="GPKG", layer="sample"),
        lambda tmp: table.to_csv(tmp, index=False),
    )
    for path, write in zip(paths, writers, strict=True):
        # The temporary name keeps the extension: the GPKG driver warns about any other.
        stem, extension = os.path.splitext(path)
        tmp = f"{stem}.{os.getpid()}.tmp{extension}"
        try:
            write(tmp)
            os.replace(tmp, path)
        except OSError as error:
            raise DualStreamError(describe_write_error(path, error)) from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def sample_design_main(argv: list[str]) -> int:
    """Run ``dualstream-geo sample-design`` on ``argv``; the exit status."""
    parser = OneLineParser(
        prog="dualstream-geo sample-design",
        description="A stratified random sample of a class map (strata: its classes) to "
        "label by hand for area estimation (evaluate --sample).",
    )
    parser.add_argument("map", help="class raster (e.g. predict's output)")
    parser.add_argument("--total", type=int, required=True, help="sample size")
    parser.add_argument("--allocation", choices=ALLOCATIONS, default="olofsson")
    parser.add_argument(
        "--min-per-class", type=int, default=50, help="olofsson: each class at least this"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", required=True, help="the sample (.gpkg; a .csv beside it)")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    written = sample_outputs(args.output, args.overwrite, [args.map])
    frame = draw_sample(args.map, args.total, args.allocation, args.min_per_class, args.seed)
    write_sample(frame, written[:2])
    points = (frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy())
    write_preview(args.map, written[2], points=points, title=f"{Path(written[0]).name} on the map")
    counts = frame.groupby("map_name").size()
    print(
        f"{len(frame)} points ({', '.join(f'{k} {v}' for k, v in counts.items())}) written "
        f"to {' and '.join(written[:2])}, drawn on the map in {written[2]}; fill the reference "
        "column (docs/how-to/label-sample.md)"
    )
    return 0
