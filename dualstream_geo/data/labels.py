"""The labels of a dataset's region, scanned once on a decimated grid.

Whether any pixel is labelled, and how often each class occurs (for class-balanced losses).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from rasterio.enums import Resampling
from rasterio.features import geometry_mask

from .grid import Grid
from .join import DualStreamGeoDataset

#: Longest side of the grid the labels are scanned on.
LABEL_SCAN_SIDE = 2048


def scan_labels(dataset: DualStreamGeoDataset, side: int = LABEL_SCAN_SIDE) -> np.ndarray:
    """The class index of every scanned pixel inside the dataset's region.

    And inside its ``label_roi``; read by nearest neighbour on a grid of at most ``side`` px a
    side: a 1-D int64 array, ``ignore_index`` for unlabelled pixels. Empty without a mask.
    """
    mask = dataset.mask
    if mask is None:
        return np.zeros(0, dtype=np.int64)
    region = dataset.index.geometry.union_all()
    xmin, ymin, xmax, ymax = region.bounds
    res = dataset.res[0]
    step = max(1.0, math.ceil(max(xmax - xmin, ymax - ymin) / res / side))
    width = max(1, math.ceil((xmax - xmin) / (res * step)))
    height = max(1, math.ceil((ymax - ymin) / (res * step)))
    grid = Grid.from_bounds(dataset.grid_crs, xmin, ymax, res * step, res * step, height, width)
    files = dataset._files(len(dataset._indexes) - 1, shapely.box(*grid.bounds))
    classes = mask.to_classes(mask.read(files, grid, Resampling.nearest)[0])
    roi = dataset.label_roi if dataset.label_roi is not None else region
    inside = ~geometry_mask([roi], classes.shape, grid.transform)
    return classes[inside]


def class_counts(
    dataset: DualStreamGeoDataset, num_classes: int, side: int = LABEL_SCAN_SIDE
) -> np.ndarray:
    """(num_classes,) int64.

    How many scanned labelled pixels of each class the region holds (:func:`scan_labels`;
    labels outside 0..num_classes-1 are not counted).
    """
    classes = scan_labels(dataset, side)
    classes = classes[(classes >= 0) & (classes < num_classes)]
    return np.bincount(classes, minlength=num_classes).astype(np.int64)
