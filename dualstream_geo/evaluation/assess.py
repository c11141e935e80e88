"""Scene-level accuracy assessment: a class prediction against a reference raster.

The reference is read onto the prediction's grid by the same source class and grid reader as
the training join (``LandCoverMask``: any CRS and resolution, nearest neighbour, raw values
through a class map), block by block, so memory stays flat in scene area. Pixels that are
nodata in either raster, or ``ignore_index`` in the reference, are excluded.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import rasterio
import shapely
from pyproj import CRS as ProjCRS
from pyproj import Geod
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..data.grid import Grid
from ..data.land_cover import LandCoverMask
from ..data.sources import IGNORE_INDEX
from ..errors import DualStreamError
from .confusion import Accuracy

#: Side of the square blocks read at a time.
BLOCK = 1024
#: Error-map codes, one band per class.
TRUE_NEGATIVE, TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE, EXCLUDED = 0, 1, 2, 3, 255


@dataclass
class Assessment:
    """The accuracy of a prediction, with class names and areas per class.

    Attributes:
        class_names: the classes, in index order.
        accuracy: the confusion-based measures over the compared pixels.
        area_ha: hectares of each class over the compared pixels, in the prediction
            (``prediction``) and in the reference (``reference``).
        compared_pixels: pixels with a class in both rasters.
        excluded_pixels: pixels left out (nodata, ignored or outside the reference).
    """

    class_names: list[str]
    accuracy: Accuracy
    area_ha: dict[str, list[float]] = field(default_factory=dict)
    compared_pixels: int = 0
    excluded_pixels: int = 0

    def to_dict(self) -> dict[str, object]:
        """Plain data for ``report.json`` (scores, confusion matrix, areas)."""
        a = self.accuracy
        return {
            "class_names": self.class_names,
            "confusion_matrix": a.confusion.tolist(),
            "iou": a.iou,
            "precision": a.precision,
            "recall": a.recall,
            "f1": a.f1,
            "overall_accuracy": a.overall_accuracy,
            "mean_iou": a.mean_iou,
            "kappa": a.kappa,
            "area_ha": self.area_ha,
            "compared_pixels": self.compared_pixels,
            "excluded_pixels": self.excluded_pixels,
        }


def blocks(height: int, width: int, size: int = BLOCK) -> Iterator[Window]:
    """Windows of at most ``size`` px a side covering a ``height`` x ``width`` raster."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            yield Window(col, row, min(size, width - col), min(size, height - row))


def pixel_area_ha(grid: Grid, rows: np.ndarray) -> np.ndarray:
    """Area in hectares of one pixel on each of ``rows`` (geodesic for geographic CRSs)."""
    crs = ProjCRS.from_user_input(grid.crs.to_wkt())
    xres, yres = grid.res
    if crs.is_geographic:
        geod = Geod(ellps="WGS84")
        x0, ymax = grid.bounds[0], grid.bounds[3]
        tops = ymax - rows * yres
        return np.array(
            [
                abs(
                    geod.polygon_area_perimeter(
                        [x0, x0 + xres, x0 + xres, x0], [t, t, t - yres, t - yres]
                    )[0]
                )
                / 1e4
                for t in tops
            ]
        )
    unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
    return np.full(len(rows), abs(xres * yres) * unit * unit / 1e4)


def open_prediction(path: str | os.PathLike[str]) -> rasterio.io.DatasetReader:
    """Open a class raster to assess: one band of integers with a CRS.

    Raises:
        DualStreamError: missing, unreadable, or not a class raster (named).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise DualStreamError(f"--prediction {path} does not exist")
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioError as error:
        reason = " ".join(str(error).split())
        raise DualStreamError(f"--prediction {path}: not a readable raster ({reason})") from None
    if src.count != 1 or not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
        src.close()
        raise DualStreamError(
            f"--prediction {path}: expected one band of class indices, got "
            f"{src.count} band(s) of {src.dtypes[0]}"
        )
    if src.crs is None:
        src.close()
        raise DualStreamError(f"--prediction {path}: raster has no CRS")
    scale = src.tags().get("scale")
    if scale is not None:
        # predict's probabilities carry their scale (1/254): class indices carry none.
        src.close()
        raise DualStreamError(
            f"--prediction {path}: a probability raster (values x {scale}), not a class map; "
            "give predict's classes (--kind class)"
        )
    return src


def class_names_of(
    src: rasterio.io.DatasetReader, class_map: Mapping[int, int] | None = None
) -> list[str]:
    """The class names stored by ``dualstream-geo predict``, else ``class_<i>``.

    The class names stored by ``dualstream-geo predict`` (tag ``class_names``), else
    ``class_<i>`` up to the class map's largest class or the raster's largest value.

    Raises:
        DualStreamError: the raster holds no valid pixel, or cannot be read.
    """
    raw = src.tags().get("class_names")
    if raw:
        return list(json.loads(raw))
    if class_map:
        return [f"class_{i}" for i in range(max(class_map.values()) + 1)]
    top = -1
    for window in blocks(src.height, src.width):
        try:
            values = src.read(1, window=window, masked=True)
        except rasterio.errors.RasterioError as error:
            reason = " ".join(str(error.__cause__ or error).split())
            raise DualStreamError(
                f"--prediction {src.name}: corrupt or unreadable raster ({reason})"
            ) from None
        if values.count():
            top = max(top, int(values.max()))
    if top < 0:
        raise DualStreamError(f"--prediction {src.name}: holds no class value (all nodata)")
    return [f"class_{i}" for i in range(top + 1)]


class Tally:
    """The confusion counts and areas of a comparison, block by block.

    Args:
        classes: the number of classes k.
    """

    def __init__(self, classes: int) -> None:
        self.classes = classes
        self.confusion = np.zeros(classes * classes, dtype=np.int64)
        #: Area (ha) of each class in the prediction (row 0) and the reference (row 1).
        self.areas = np.zeros((2, classes))
        self.excluded = 0
        #: Reference values that are no class (value: pixels).
        self.unknown: dict[int, int] = {}

    def valid(self, truth: np.ndarray, ignore_index: int) -> np.ndarray:
        """Where ``truth`` holds a class; values that are none are counted in ``unknown``."""
        k = self.classes
        foreign = (truth != ignore_index) & ((truth < 0) | (truth >= k))
        for value, count in zip(*np.unique(truth[foreign], return_counts=True), strict=True):
            self.unknown[int(value)] = self.unknown.get(int(value), 0) + int(count)
        return (truth != ignore_index) & (truth >= 0) & (truth < k)

    def add(
        self, predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray, row_area: np.ndarray
    ) -> None:
        """Count a block: classes (H, W) of both, where to compare, each row's pixel area."""
        k = self.classes
        self.excluded += int((~valid).sum())
        self.confusion += np.bincount(truth[valid] * k + predicted[valid], minlength=k * k)
        for i, classes in enumerate((predicted, truth)):
            weights = np.broadcast_to(row_area[:, None], classes.shape)[valid]
            self.areas[i] += np.bincount(classes[valid], weights=weights, minlength=k)[:k]


def assess(
    prediction: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    class_map: Mapping[int, int] | None = None,
    ignore_index: int = IGNORE_INDEX,
    class_names: Sequence[str] | None = None,
    errors: rasterio.io.DatasetWriter | None = None,
) -> Assessment:
    """Compare the class raster ``prediction`` with ``reference`` on the prediction's grid.

    Args:
        prediction: the class raster.
        reference: the reference labels (a raster, or a folder of them).
        class_map: raw reference value -> class index (values not in it are excluded);
            without it the reference holds class indices.
        ignore_index: the reference value that is not compared.
        class_names: the classes (default: the prediction's own names).
        errors: an open dataset on the prediction grid with one uint8 band per class, filled
            with the error codes (:func:`error_codes`).

    Returns:
        The confusion-based accuracy and the area of each class in both rasters.

    Raises:
        DualStreamError: unreadable or disjoint rasters, values that are no class, or no
            pixel to compare.
    """
    prediction = str(prediction)
    if not os.path.isfile(prediction):
        raise DualStreamError(f"--prediction {prediction} does not exist")
    mask = LandCoverMask(
        str(reference), class_map=class_map, unmapped="ignore", ignore_index=ignore_index
    )
    with open_prediction(prediction) as src:
        names = list(class_names or class_names_of(src, class_map))
        k = len(names)
        check_class_map(class_map, names, ignore_index)
        grid = Grid(src.crs, src.transform, src.height, src.width)
        check_overlap(mask, grid, prediction, str(reference))
        files = list(mask.index.filepath)
        tally = Tally(k)
        for window in blocks(src.height, src.width):
            block = Grid(
                grid.crs, src.window_transform(window), int(window.height), int(window.width)
            )
            predicted = _read_classes(src, window, prediction)
            # The reference's own reader names its file (GeoRaster.read).
            truth = mask.to_classes(mask.read(files, block, Resampling.nearest)[0])
            valid = tally.valid(truth, ignore_index)
            if src.nodata is not None:
                valid &= predicted != int(src.nodata)
            outside = valid & ((predicted < 0) | (predicted >= k))
            if outside.any():
                raise DualStreamError(
                    f"--prediction {prediction}: value {int(predicted[outside][0])} is not a "
                    f"class (0-{k - 1}: {', '.join(names)})"
                )
            tally.add(predicted, truth, valid, pixel_area_ha(block, np.arange(block.height)))
            if errors is not None:
                errors.write(error_codes(predicted, truth, valid, k), window=window)
    matrix = _compared(tally, str(reference), prediction)
    return Assessment(
        class_names=names,
        accuracy=Accuracy.from_confusion(matrix),
        area_ha={"prediction": tally.areas[0].tolist(), "reference": tally.areas[1].tolist()},
        compared_pixels=int(matrix.sum()),
        excluded_pixels=tally.excluded,
    )


def _read_classes(src: rasterio.io.DatasetReader, window: Window, prediction: str) -> np.ndarray:
    """(H, W) int64 classes of the prediction's ``window``; a read error names the file."""
    try:
        return src.read(1, window=window).astype(np.int64)
    except rasterio.errors.RasterioError as error:
        reason = " ".join(str(error.__cause__ or error).split())
        raise DualStreamError(
            f"--prediction {prediction}: corrupt or unreadable raster ({reason})"
        ) from None


def _compared(tally: Tally, reference: str, prediction: str) -> np.ndarray:
    """The (K, K) confusion matrix, once something was compared.

    Reference values that are no class are reported (a warning, or an error when they are
    all there is).
    """
    k = tally.classes
    matrix = tally.confusion.reshape(k, k)
    if tally.unknown:
        listed = ", ".join(f"{v}: {n}" for v, n in sorted(tally.unknown.items())[:8])
        message = (
            f"--reference {reference}: values that are no class of the prediction (0-{k - 1}) "
            f"were excluded (value: pixels) {{{listed}}}; give --class-map to map them"
        )
        if not matrix.sum():
            raise DualStreamError(message.replace("were excluded", "are all it holds there"))
        warnings.warn(message, stacklevel=3)
    if not matrix.sum():
        raise DualStreamError(
            f"--reference {reference}: no pixel to compare with --prediction {prediction} (the "
            "reference is nodata or ignored wherever the prediction has classes)"
        )
    return matrix


def check_class_map(
    class_map: Mapping[int, int] | None, names: Sequence[str], ignore_index: int
) -> None:
    """A class map may only send raw values to the prediction's classes (or to ignore).

    Raises:
        DualStreamError: a class the prediction does not have (named with its raw value).
    """
    for raw, target in sorted((class_map or {}).items()):
        if target != ignore_index and not 0 <= target < len(names):
            raise DualStreamError(
                f"--class-map sends {raw} to class {target}, but the prediction's classes are "
                f"0-{len(names) - 1} ({', '.join(names)})"
            )


def check_overlap(mask: LandCoverMask, grid: Grid, prediction: str, reference: str) -> None:
    """The reference must cover some of the prediction.

    Raises:
        DualStreamError: the two footprints do not overlap (both bounds named).
    """
    footprint = mask.index.to_crs(grid.crs).geometry.union_all()
    if footprint.intersection(shapely.box(*grid.bounds)).area <= 0:
        theirs = ", ".join(f"{v:.6g}" for v in footprint.bounds)
        mine = ", ".join(f"{v:.6g}" for v in grid.bounds)
        raise DualStreamError(
            f"--reference {reference} does not overlap --prediction {prediction} (bounds in "
            f"the prediction's CRS: {theirs} against {mine})"
        )


def error_codes(predicted: np.ndarray, truth: np.ndarray, valid: np.ndarray, k: int) -> np.ndarray:
    """(K, H, W) uint8 error codes per class.

    (K, H, W) uint8: per class, true negative / true positive / false positive / false
    negative, EXCLUDED where not compared.
    """
    out = np.full((k, *predicted.shape), EXCLUDED, dtype=np.uint8)
    for c in range(k):
        is_pred, is_true = predicted == c, truth == c
        code = np.where(
            is_pred & is_true,
            TRUE_POSITIVE,
            np.where(is_pred, FALSE_POSITIVE, np.where(is_true, FALSE_NEGATIVE, TRUE_NEGATIVE)),
        )
        out[c][valid] = code[valid]
    return out
