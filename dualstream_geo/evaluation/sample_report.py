"""``evaluate --sample``.

Area and accuracy of a class map from labelled sample points, as a report folder
(report.json, report.md, area.png).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from ..errors import DualStreamError
from .area import Z95, AreaEstimate, stratified_estimate
from .assess import class_names_of, open_prediction
from .report_folder import checked_report_folder, written_whole
from .sampling import strata_areas

PathLike = str | os.PathLike[str]


def read_points(path: PathLike, crs: object) -> gpd.GeoDataFrame:
    """Sample points from a vector file or a CSV.

    Sample points from a vector file (GeoPackage, GeoJSON, Shapefile) or a CSV with
    ``x``/``y`` columns in the map's CRS (or ``lon``/``lat`` in degrees), in ``crs``.

    Raises:
        DualStreamError: an unreadable file, no geometry, no ``reference`` column.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DualStreamError(f"--sample {path} does not exist")
    try:
        if path.lower().endswith(".csv"):
            table = pd.read_csv(path, dtype={"reference": str}, keep_default_na=False)
            if {"x", "y"} <= set(table.columns):
                points = gpd.GeoDataFrame(
                    table, geometry=gpd.points_from_xy(table.x, table.y), crs=crs
                )
            elif {"lon", "lat"} <= set(table.columns):
                geometry = gpd.points_from_xy(table.lon, table.lat)
                points = gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326")
            else:
                raise DualStreamError(f"--sample {path}: a CSV needs x and y (or lon and lat)")
        else:
            points = gpd.read_file(path)
    except DualStreamError:
        raise
    except Exception as error:  # pyogrio, pandas: one line whichever
        raise DualStreamError(f"--sample {path}: not a readable point file ({error})") from None
    if "reference" not in points.columns:
        raise DualStreamError(f"--sample {path}: no 'reference' column (label the points)")
    if points.crs is None:
        raise DualStreamError(f"--sample {path}: the points have no CRS")
    check_points(points, path)
    # Another CRS is reprojected, not refused (points outside the map are, below).
    return points.to_crs(crs)


def check_points(points: gpd.GeoDataFrame, path: str) -> None:
    """Refuse what is not one labelled point per sample unit.

    Raises:
        DualStreamError: a geometry that is not a point (a polygon's area is another
            response design), or a point given twice (same ``id``, or same place): it would
            be counted twice and narrow the intervals.
    """
    kinds = points.geometry.geom_type.to_numpy()
    other = np.flatnonzero(kinds != "Point")
    if len(other):
        first = int(other[0])
        raise DualStreamError(
            f"--sample {path}: feature {first + 1} is a {kinds[first] or 'missing geometry'}, "
            "not a point (the estimator takes one point per sample unit)"
        )
    keys = [points.geometry.x.round(6).astype(str) + " " + points.geometry.y.round(6).astype(str)]
    if "id" in points.columns:
        keys.append(points["id"].astype(str))
    for key, what in zip(keys, ("place", "id"), strict=False):
        repeated = np.flatnonzero(key.duplicated(keep=False).to_numpy())
        if len(repeated):
            first, second = (int(i) + 1 for i in repeated[:2])
            raise DualStreamError(
                f"--sample {path}: rows {first} and {second} are one point (the same {what}): "
                "each sample unit is labelled once; remove the repeated rows"
            )


def reference_classes(values: pd.Series, names: Sequence[str], path: str) -> np.ndarray:
    """The reference column as class indices: names of the map's classes or their values.

    Raises:
        DualStreamError: a value that is no class of the map (named with the point).
    """
    lookup = {name.lower(): i for i, name in enumerate(names)}
    out = np.empty(len(values), dtype=np.int64)
    for i, raw in enumerate(values):
        text = str(raw).strip()
        key = text.lower()
        if key in lookup:
            out[i] = lookup[key]
            continue
        try:
            number = float(text)
        except ValueError:
            number = -1.0
        if number.is_integer() and 0 <= number < len(names):
            out[i] = int(number)
            continue
        raise DualStreamError(
            f"--sample {path}: reference {text!r} (point {i + 1}) is not a class of the map "
            f"({', '.join(f'{k} {n}' for k, n in enumerate(names))})"
        )
    return out


def sample_estimate(prediction: PathLike, sample: PathLike) -> tuple[AreaEstimate, str]:
    """The estimates of a labelled sample of the class map ``prediction``.

    Returns:
        The estimates and the design: ``stratified`` (a ``stratum`` column equal to the map
        class at every point) or ``post-stratified`` (no strata: a simple random or
        systematic sample, post-stratified by the map classes).

    Raises:
        DualStreamError: points outside the map or on nodata, strata other than the map
            classes, an empty reference column, unknown reference classes, a stratum with
            fewer than 2 labelled points.
    """
    path = str(sample)
    with open_prediction(prediction) as src:
        points = read_points(path, src.crs)
        names = class_names_of(src)
        strata = strata_areas(src)
        xs, ys = points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
        rows, cols = rasterio_index(src, xs, ys)
        inside = (rows >= 0) & (rows < src.height) & (cols >= 0) & (cols < src.width)
        if not inside.all():
            first = int(np.flatnonzero(~inside)[0])
            raise DualStreamError(
                f"--sample {path}: {int((~inside).sum())} point(s) lie outside the map "
                f"(first: point {first + 1} at {xs[first]:.6g}, {ys[first]:.6g})"
            )
        values = np.array([int(v[0]) for v in src.sample(zip(xs, ys, strict=True), masked=False)])
        nodata = src.nodata
    if nodata is not None:
        off = values == int(nodata)
        if off.any():
            first = int(np.flatnonzero(off)[0])
            raise DualStreamError(
                f"--sample {path}: {int(off.sum())} point(s) lie on the map's nodata (first: "
                f"point {first + 1}); such points belong to no stratum"
            )
    design = "post-stratified"
    if "stratum" in points.columns:
        given = pd.to_numeric(points["stratum"], errors="coerce").to_numpy()
        other = given != values
        if other.any():
            first = int(np.flatnonzero(other)[0])
            raise DualStreamError(
                f"--sample {path}: its strata are not the map's classes (point {first + 1}: "
                f"stratum {points['stratum'].iloc[first]}, map class {values[first]}); "
                "strata other than the map classes need another estimator (Stehman 2014)"
            )
        design = "stratified"
    labels = points["reference"].astype(str).str.strip()
    labelled = (labels != "") & (labels.str.lower() != "nan") & (labels.str.lower() != "none")
    if not labelled.any():
        raise DualStreamError(
            f"--sample {path}: the reference column is empty; label the points first "
            "(docs/how-to/label-sample.md)"
        )
    if not labelled.all():
        warnings.warn(
            f"--sample {path}: {int((~labelled).sum())} of {len(labels)} points have no "
            "reference label and are left out",
            stacklevel=2,
        )
    k = max(len(names), max(strata.pixels, default=-1) + 1)
    names = [*names, *(f"class_{i}" for i in range(len(names), k))]
    reference = reference_classes(labels[labelled], names, path)
    counts = np.zeros((k, k))
    np.add.at(counts, (values[labelled.to_numpy()], reference), 1)
    areas = [strata.area_ha.get(i, 0.0) for i in range(k)]
    return stratified_estimate(counts, areas, names), design


def rasterio_index(src: object, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of points (floor of the fractional pixel position)."""
    inverse = ~src.transform  # type: ignore[attr-defined]
    cols, rows = inverse * (xs, ys)
    return np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)


def markdown(estimate: AreaEstimate, prediction: str, sample: str, design: str) -> str:
    """The report in the paper's layout.

    Sample counts, area proportions, accuracies and areas with 95 % intervals.
    """
    names = estimate.names
    header = "| map \\ reference | " + " | ".join(names) + " | total |"
    rule = "|" + " --- |" * (len(names) + 2)
    counts = "\n".join(
        f"| **{name}** | " + " | ".join(str(int(v)) for v in estimate.counts[i])
        + f" | {int(estimate.counts[i].sum())} |"
        for i, name in enumerate(names)
    )  # fmt: skip
    proportions = "\n".join(
        f"| **{name}** | " + " | ".join(f"{v:.4f}" for v in estimate.proportions[i])
        + f" | {estimate.proportions[i].sum():.4f} |"
        for i, name in enumerate(names)
    )  # fmt: skip

    def pm(value: float, se: float, digits: int = 2) -> str:
        return "-" if np.isnan(value) else f"{value:.{digits}f} ± {Z95 * se:.{digits}f}"

    accuracy = "\n".join(
        f"| {name} | {pm(estimate.users[i], estimate.users_se[i])} | "
        f"{pm(estimate.producers[i], estimate.producers_se[i])} |"
        for i, name in enumerate(names)
    )
    areas = "\n".join(
        f"| {name} | {estimate.map_area_ha[i]:,.0f} | {estimate.area_ha[i]:,.0f} ± "
        f"{estimate.area_ci95_ha[i]:,.0f} |"
        for i, name in enumerate(names)
    )
    return f"""# Area and accuracy from a labelled sample

Map: `{prediction}`. Sample: `{sample}` ({int(estimate.counts.sum())} labelled points,
{design}; the map classes are the strata). Estimator: Olofsson et al. (2014), Remote
Sensing of Environment 148: 42-57; intervals are 95 % (estimate ± 1.96 standard errors).

## Sample counts (rows: map class, columns: reference class)

{header}
{rule}
{counts}

## Estimated area proportions

{header}
{rule}
{proportions}

## Accuracy

Overall accuracy: {pm(estimate.overall, estimate.overall_se)}

| class | user's accuracy | producer's accuracy |
| --- | --- | --- |
{accuracy}

## Area (ha)

The map's pixel counts are biased by its errors; the estimate is not.

| class | map area | estimated area ± 95 % |
| --- | --- | --- |
{areas}

![map area against estimated area](area.png)
"""


def area_png(estimate: AreaEstimate, path: Path) -> None:
    """Map area beside the estimated area with its 95 % interval, per class."""
    from matplotlib.figure import Figure

    names = list(estimate.names)
    x = np.arange(len(names))
    fig = Figure(figsize=(max(5, 1.1 * len(names)), 4))
    ax = fig.subplots()
    ax.bar(x - 0.2, estimate.map_area_ha, 0.4, label="map (pixel count)", color="#9aa5b1")
    ax.bar(
        x + 0.2,
        estimate.area_ha,
        0.4,
        yerr=estimate.area_ci95_ha,
        capsize=4,
        label="estimate ± 95 %",
        color="#2f6db5",
    )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("area (ha)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def evaluate_sample(
    prediction: PathLike, sample: PathLike, output: PathLike, overwrite: bool = False
) -> AreaEstimate:
    """Write the report of a labelled sample of ``prediction`` to the folder ``output``.

    Whole or not at all.

    Raises:
        DualStreamError: bad input (see :func:`sample_estimate`) or an output that is, holds
            or lies inside an input.
    """
    out = Path(output)
    real = checked_report_folder(out, [prediction, sample], overwrite)
    estimate, design = sample_estimate(prediction, sample)
    with written_whole(real, out) as building:
        report = {"prediction": str(prediction), "sample": str(sample), "design": design}
        text = json.dumps({**report, **estimate.to_dict()}, indent=2, allow_nan=False)
        (building / "report.json").write_text(text)
        (building / "report.md").write_text(
            markdown(estimate, str(prediction), str(sample), design)
        )
        area_png(estimate, building / "area.png")
    return estimate
