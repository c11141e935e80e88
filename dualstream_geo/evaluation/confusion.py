"""Accuracy measures from a confusion matrix (rows = reference class, columns = predicted)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Accuracy:
    """Per-class and overall measures of a K x K confusion matrix of pixel counts.

    Per class (lists of K, NaN where undefined: a class absent from both rasters has no IoU):
    ``iou`` TP / (TP + FP + FN), ``precision`` TP / (TP + FP), ``recall`` TP / (TP + FN),
    ``f1``. Overall: ``overall_accuracy`` (trace / total), ``mean_iou`` (mean over the classes
    that occur in either raster) and Cohen's ``kappa``.

    Attributes:
        confusion: the (K, K) matrix, reference classes in rows.
        iou: per class, TP / (TP + FP + FN).
        precision: per class, TP / (TP + FP).
        recall: per class, TP / (TP + FN).
        f1: per class, the harmonic mean of precision and recall.
        overall_accuracy: trace / total.
        mean_iou: the mean IoU over the classes that occur in either raster.
        kappa: Cohen's kappa.
    """

    confusion: np.ndarray
    iou: list[float]
    precision: list[float]
    recall: list[float]
    f1: list[float]
    overall_accuracy: float
    mean_iou: float
    kappa: float

    @classmethod
    def from_confusion(cls, confusion: np.ndarray) -> Accuracy:
        """Scores of a confusion matrix (rows: reference, columns: prediction).

        Args:
            confusion: (K, K) pixel counts.

        Returns:
            Per-class IoU, precision, recall and F1, overall accuracy, mean IoU and kappa
            (NaN where a class has no pixel in either).
        """
        matrix = np.asarray(confusion, dtype=np.float64)
        tp = np.diag(matrix)
        reference = matrix.sum(1)
        predicted = matrix.sum(0)
        total = matrix.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = tp / (reference + predicted - tp)
            precision = tp / predicted
            recall = tp / reference
            f1 = 2 * tp / (reference + predicted)
            accuracy = tp.sum() / total if total else float("nan")
            expected = (reference * predicted).sum() / total**2 if total else float("nan")
            kappa = (accuracy - expected) / (1 - expected) if expected != 1 else float("nan")
        occurs = (reference + predicted) > 0
        return cls(
            confusion=np.asarray(confusion, dtype=np.int64),
            iou=iou.tolist(),
            precision=precision.tolist(),
            recall=recall.tolist(),
            f1=f1.tolist(),
            overall_accuracy=float(accuracy),
            mean_iou=float(iou[occurs].mean()) if occurs.any() else float("nan"),
            kappa=float(kappa),
        )
