"""Where two models' whole-scene maps differ, and which of them the reference agrees with.

Both maps are class GeoTIFFs that ``dualstream-geo predict`` wrote on the same grid (the
same image). The reference is the config's label raster through its class map, read onto
that grid with the library's own reader; the test cells are the config's held-out split.
Writes a PNG (the reference, both maps, and the difference: green where only the second
model is right, magenta where only the first is, orange where they differ and both are
wrong; the test cells outlined) and prints, as JSON, per reference class inside the test
cells: each map's IoU there, the pixels only the second model gets right, the pixels only
the first does, and the share of the class's pixels where the two maps differ. With
``--covariate NAME=RASTER`` (an elevation, say; resampled bilinearly onto the maps' grid) it
also prints, per class, the covariate's quartiles over the class's test pixels (how far
the classes separate on it) and each map's IoU over the test pixels where the covariate has
data (a model given it as its aux stream sees a fill value elsewhere).

    dualstream-geo predict --checkpoint runs/zion/checkpoints/best.ckpt \\
        --image ../shared/data/zion --output image_only.tif
    dualstream-geo predict --checkpoint runs/zion_dem/checkpoints/best.ckpt \\
        --image ../shared/data/zion --aux elevation=../shared/data/zion/srtm.tif \\
        --output dual.tif
    python experiments/diff_map.py --config experiments/zion.yaml \\
        --first "image only=image_only.tif" --second "dual stream=dual.tif" \\
        --output experiments/zion_dem_difference.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import rasterio
from matplotlib.colors import ListedColormap
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.warp import reproject
from scoring import load_experiment

from dualstream_geo.data.grid import Grid
from dualstream_geo.data.land_cover import LandCoverMask

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

#: Difference codes: 0 outside, 1 same class, 2 only the second right, 3 only the first
#: right, 4 differ and both wrong (or no reference).
DIFFERENCE_COLORS = ["white", "0.85", "tab:green", "magenta", "orange"]


def read_map(item: str) -> tuple[str, np.ndarray, Grid, int | None]:
    """``LABEL=PATH`` -> the label, the (H, W) classes, their grid and nodata value."""
    label, sep, path = item.partition("=")
    if not sep or not Path(path).is_file():
        sys.exit(f"diff_map.py: {item!r}: expected LABEL=PATH of a class GeoTIFF")
    with rasterio.open(path) as src:
        grid = Grid(src.crs, src.transform, src.height, src.width)
        nodata = None if src.nodata is None else int(src.nodata)
        return label, src.read(1).astype(np.int64), grid, nodata


def difference(
    first: np.ndarray, second: np.ndarray, truth: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """(H, W) difference codes (see ``DIFFERENCE_COLORS``)."""
    codes = np.where(first == second, 1, 4)
    codes[(first != second) & (second == truth)] = 2
    codes[(first != second) & (first == truth)] = 3
    codes[~valid] = 0
    return codes


def covariate_on(path: str, grid: Grid) -> np.ndarray:
    """The raster's first band on ``grid`` (bilinear), NaN where it has no data."""
    values = np.full((grid.height, grid.width), np.nan, dtype=np.float32)
    with rasterio.open(path) as src:
        reproject(
            rasterio.band(src, 1),
            values,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=np.nan,
            resampling=Resampling.bilinear,
        )
    return values


def iou(predicted: np.ndarray, truth: np.ndarray, scored: np.ndarray, index: int) -> float | None:
    """Intersection over union of class ``index`` over the ``scored`` pixels (None: the
    class is in neither)."""
    mine, theirs = scored & (predicted == index), scored & (truth == index)
    union = int((mine | theirs).sum())
    return round(float((mine & theirs).sum()) / union, 4) if union else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", required=True, help="the split's config")
    parser.add_argument("--first", required=True, metavar="LABEL=TIF")
    parser.add_argument("--second", required=True, metavar="LABEL=TIF")
    parser.add_argument("--output", required=True, help="the PNG")
    parser.add_argument("--covariate", metavar="NAME=RASTER", help="a raster to describe")
    args = parser.parse_args()
    first_label, first, grid, nodata = read_map(args.first)
    second_label, second, other, _ = read_map(args.second)
    if other != grid:
        sys.exit("diff_map.py: the two maps are not on the same grid (predict the same image)")
    shape = (grid.height, grid.width)
    datamodule, _ = load_experiment(args.config)
    spec = datamodule.input_spec
    scenes = datamodule.scenes["train"]
    assert scenes is not None and scenes.mask
    classes = spec.classes
    reference = LandCoverMask(
        scenes.mask,
        class_map=classes.map,
        unmapped=classes.unmapped,
        ignore_index=classes.ignore_index,
    )
    truth = reference.to_classes(
        reference.read(list(reference.index.filepath), grid, Resampling.nearest)[0]
    )
    valid = np.ones(shape, bool) if nodata is None else first != nodata
    test_roi = datamodule.datasets()["test"].label_roi
    in_test = ~geometry_mask([test_roi], shape, grid.transform)
    codes = difference(first, second, truth, valid)

    names = list(classes.names)
    palette = ListedColormap(np.array(spec.class_colors) / 255)
    labelled = valid & (truth != classes.ignore_index)
    fig, axes = plt.subplots(2, 2, figsize=(12, 11), sharex=True, sharey=True)
    shown = [
        ("reference (NLCD)", np.where(labelled, truth, -1)),
        (first_label, np.where(valid, first, -1)),
        (second_label, np.where(valid, second, -1)),
    ]
    for ax, (title, classes_shown) in zip(axes.flat, shown, strict=False):
        masked = np.ma.masked_less(classes_shown, 0)
        ax.imshow(masked, cmap=palette, vmin=-0.5, vmax=len(names) - 0.5, interpolation="none")
        ax.set_title(title)
    ax = axes.flat[3]
    ax.imshow(codes, cmap=ListedColormap(DIFFERENCE_COLORS), vmin=-0.5, vmax=4.5)
    ax.contour(in_test, levels=[0.5], colors="black", linewidths=0.6)
    ax.set_title(
        f"green: only {second_label} right; magenta: only {first_label} right;\n"
        "orange: both wrong; black: test cells"
    )
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette(i)) for i in range(len(names))]
    fig.legend(handles, names, loc="lower center", ncol=len(names))
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(args.output, dpi=110)

    scored = labelled & in_test
    per_class = {}
    for index, name in enumerate(names):
        here = scored & (truth == index)
        pixels = int(here.sum())
        per_class[name] = {
            "pixels": pixels,
            **{
                f"iou_{label}": iou(classes_map, truth, scored, index)
                for label, classes_map in ((first_label, first), (second_label, second))
            },
            f"only_{second_label}_right": int((here & (codes == 2)).sum()),
            f"only_{first_label}_right": int((here & (codes == 3)).sum()),
            "share_differing": round(float((here & (first != second)).sum()) / max(pixels, 1), 4),
        }
    covered = None
    if args.covariate:
        name, _, path = args.covariate.partition("=")
        values = covariate_on(path, grid)
        # A model given the covariate as its aux stream sees a fill value where the raster
        # has no data (a scene edge it does not reach): scored apart, as IoU where it has.
        covered = scored & np.isfinite(values)
        for index, label in enumerate(names):
            here = values[scored & (truth == index) & np.isfinite(values)]
            if here.size:
                quartiles = np.percentile(here, [25, 50, 75]).round(1).tolist()
                per_class[label][f"{name}_quartiles"] = quartiles
            for map_label, classes_map in ((first_label, first), (second_label, second)):
                per_class[label][f"iou_{map_label}_where_{name}"] = iou(
                    classes_map, truth, covered, index
                )
    print(
        json.dumps(
            {
                "test_pixels": int(scored.sum()),
                "share_differing": round(
                    float((scored & (first != second)).sum()) / max(int(scored.sum()), 1), 4
                ),
                "test_pixels_with_covariate": None if covered is None else int(covered.sum()),
                "per_reference_class": per_class,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
