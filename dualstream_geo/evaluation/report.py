"""Writing an assessment: report.json, report.md, confusion.png and the errors.tif map."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil

from ..errors import DualStreamError
from .assess import EXCLUDED, Assessment, assess, class_names_of, open_prediction
from .report_folder import checked_report_folder, written_whole

ERROR_CATEGORIES = ("true negative", "true positive", "false positive", "false negative")


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def markdown(assessment: Assessment, prediction: str, reference: str) -> str:
    """The report as Markdown: per-class scores, overall scores and areas."""
    a, names = assessment.accuracy, assessment.class_names
    rows = "\n".join(
        f"| {name} | {_fmt(a.iou[i])} | {_fmt(a.precision[i])} | {_fmt(a.recall[i])} | "
        f"{_fmt(a.f1[i])} | {assessment.area_ha['prediction'][i]:.1f} | "
        f"{assessment.area_ha['reference'][i]:.1f} |"
        for i, name in enumerate(names)
    )
    header = " | ".join(names)
    matrix = "\n".join(
        f"| **{name}** | " + " | ".join(str(v) for v in a.confusion[i]) + " |"
        for i, name in enumerate(names)
    )
    return f"""# Accuracy assessment

Prediction: `{prediction}`; reference: `{reference}` (read onto the prediction's grid,
nearest neighbour). Compared pixels: {assessment.compared_pixels:,}; excluded (nodata in
either raster or ignored in the reference): {assessment.excluded_pixels:,}.

| overall accuracy | mean IoU | kappa |
| --- | --- | --- |
| {_fmt(a.overall_accuracy)} | {_fmt(a.mean_iou)} | {_fmt(a.kappa)} |

| class | IoU | precision | recall | F1 | area predicted (ha) | area in reference (ha) |
| --- | --- | --- | --- | --- | --- | --- |
{rows}

Confusion matrix (pixels; rows = reference class, columns = predicted class):

| reference \\ predicted | {header} |
| --- | {" | ".join("---" for _ in names)} |
{matrix}
"""


def confusion_png(assessment: Assessment, path: Path) -> None:
    """Draw the row-normalised confusion matrix to the PNG ``path``."""
    from matplotlib.figure import Figure

    matrix = assessment.accuracy.confusion.astype(np.float64)
    share = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    names = assessment.class_names
    size = 1.2 + 0.6 * len(names)
    fig = Figure(figsize=(size + 1.5, size))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("reference class")
    ax.set_title("share of each reference class")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{share[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[i, j] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _errors_pam(names: list[str]) -> str:
    categories = "".join(f"<Category>{c}</Category>" for c in ERROR_CATEGORIES)
    bands = "".join(
        f'  <PAMRasterBand band="{b}"><Description>{name}</Description>'
        f"<CategoryNames>{categories}</CategoryNames></PAMRasterBand>\n"
        for b, name in enumerate(names, start=1)
    )
    return f"<PAMDataset>\n{bands}</PAMDataset>\n"


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate(
    prediction: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    output: str | os.PathLike[str],
    class_map: Mapping[int, int] | None = None,
    ignore_index: int = 255,
    overwrite: bool = False,
    inputs: Sequence[str] = (),
) -> Assessment:
    """Assess a class map against a reference and write the report folder.

    The folder holds ``report.json``, ``report.md``, ``confusion.png`` and ``errors.tif``
    (one band per class: 0 true negative, 1 true positive, 2 false positive, 3 false
    negative, 255 not compared; category names in ``errors.tif.aux.xml``). It is written
    whole or not at all (built beside it, then renamed).

    Args:
        prediction: the class map (a ``predict`` output or any single-band class raster).
        reference: the reference labels (a raster, or a folder of them).
        output: the report folder.
        class_map: reference value -> class index (None: the values are the classes).
        ignore_index: the reference value that is not compared.
        overwrite: replace an earlier report in ``output``.
        inputs: other files the command read (a class-map file), which the output may not
            replace either.

    Returns:
        The assessment the report shows.

    Raises:
        DualStreamError: a missing input, an output that would replace an input or a folder
            of other files, or a failed write (named).
    """
    out = Path(output)
    if not os.path.isfile(prediction):
        raise DualStreamError(f"--prediction {prediction} does not exist")
    if not os.path.exists(reference):
        raise DualStreamError(f"--reference {reference} does not exist")
    real = checked_report_folder(out, [prediction, reference, *inputs], overwrite)
    with written_whole(real, out) as building:
        assessment = _write_errors(prediction, reference, class_map, ignore_index, building)
        report = {"prediction": str(prediction), "reference": str(reference)}
        (building / "report.json").write_text(
            # Strict JSON: a score that is undefined (a class never seen) is null, not NaN.
            json.dumps(strict_json({**report, **assessment.to_dict()}), indent=2, allow_nan=False)
        )
        (building / "report.md").write_text(markdown(assessment, str(prediction), str(reference)))
        confusion_png(assessment, building / "confusion.png")
    return assessment


def _write_errors(
    prediction: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    class_map: Mapping[int, int] | None,
    ignore_index: int,
    folder: Path,
) -> Assessment:
    """Assess, writing ``folder/errors.tif`` (a COG on the prediction's grid) on the way."""
    with open_prediction(prediction) as src:
        # The class count is known once the prediction's names are read: a first, cheap pass.
        names = class_names_of(src, class_map)
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "crs": src.crs,
            "transform": src.transform,
            "dtype": "uint8",
            "nodata": EXCLUDED,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }
    errors_path = folder / "errors.tif"
    staged = errors_path.with_suffix(".tmp.tif")
    with rasterio.open(staged, "w", count=len(names), **profile) as dst:
        assessment = assess(
            prediction, reference, class_map, ignore_index, class_names=names, errors=dst
        )
        for band, name in enumerate(names, start=1):
            dst.set_band_description(band, name)
    rasterio.shutil.copy(
        staged, errors_path, driver="COG", compress="DEFLATE", overview_resampling="nearest"
    )
    staged.unlink()
    (folder / "errors.tif.aux.xml").write_text(_errors_pam(names))
    return assessment
