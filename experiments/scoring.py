"""What the baselines share: an experiment's datamodule and task from its config, the
task's test scores for predictions given as labels, and the JSON result they print."""

from __future__ import annotations

import json
import time
from typing import Any

from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

from dualstream_geo.cli import DualStreamCLI
from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.training import DualStreamSegmentation


def load_experiment(
    configs: list[str], overrides: list[str] | None = None
) -> tuple[DualStreamDataModule, DualStreamSegmentation]:
    """The datamodule and task of ``dualstream-geo fit --config C1 --config C2 ...
    [overrides]`` (``overrides``: command-line settings such as ``--data.sampling.seed=1``)."""
    args = [item for config in configs for item in ("--config", config)] + (overrides or [])
    cli = DualStreamCLI(DualStreamSegmentation, DualStreamDataModule, run=False, args=args)
    return cli.datamodule, cli.model  # type: ignore[return-value]


class Scores:
    """Per-class IoU, mean IoU, micro-averaged (overall) IoU and overall accuracy, with the
    task's definitions (``ignore`` pixels excluded)."""

    def __init__(self, classes: int, ignore: int) -> None:
        self.per_class = MulticlassJaccardIndex(classes, average="none", ignore_index=ignore)
        self.overall = MulticlassJaccardIndex(classes, average="micro", ignore_index=ignore)
        self.accuracy = MulticlassAccuracy(classes, average="micro", ignore_index=ignore)
        self.ignore = ignore
        self.pixels = 0

    def update(self, prediction: Tensor, target: Tensor) -> None:
        for metric in (self.per_class, self.overall, self.accuracy):
            metric.update(prediction, target)
        self.pixels += int((target != self.ignore).sum())

    def compute(self, class_names: list[str]) -> dict[str, Any]:
        iou = self.per_class.compute()
        return {
            "per_class_iou": dict(zip(class_names, iou.tolist(), strict=True)),
            "mean_iou": float(iou.mean()),
            "overall_iou": float(self.overall.compute()),
            "overall_accuracy": float(self.accuracy.compute()),
            "pixels": self.pixels,
        }


def print_result(
    model: str,
    split: str,
    scores: Scores,
    class_names: list[str],
    start: float,
    trained: float,
    **details: Any,
) -> None:
    """Print a baseline's scores as JSON; ``start``/``trained`` are ``time.perf_counter()``
    at the start and at the end of training (the total runs to now)."""
    result = {
        "model": model,
        **details,
        "split": split,
        **scores.compute(class_names),
        "seconds": {
            "train": round(trained - start, 1),
            "total": round(time.perf_counter() - start, 1),
        },
    }
    print(json.dumps(result, indent=2))
