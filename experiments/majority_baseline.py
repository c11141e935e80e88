"""Majority-class baseline for an experiment config: the most frequent training class,
predicted everywhere on the test split, scored with the same IoU as the task.

    python experiments/majority_baseline.py --config experiments/zion.yaml
    python experiments/majority_baseline.py --config experiments/zion.yaml \
        --config experiments/zion_binary.yaml
"""

from __future__ import annotations

import argparse
import json

import torch
from torchmetrics.classification import MulticlassJaccardIndex

from dualstream_geo.cli import DualStreamCLI
from dualstream_geo.data.datamodule import DualStreamDataModule
from dualstream_geo.training import DualStreamSegmentation


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", required=True)
    args = parser.parse_args()
    cli_args = [item for config in args.config for item in ("--config", config)]
    cli = DualStreamCLI(DualStreamSegmentation, DualStreamDataModule, run=False, args=cli_args)
    datamodule, task = cli.datamodule, cli.model
    classes, ignore = task.hparams["num_classes"], task.hparams["ignore_index"]
    datamodule.setup("fit")
    counts = torch.zeros(classes, dtype=torch.long)
    for batch in datamodule.train_dataloader():
        mask = batch["mask"][batch["mask"] != ignore]
        counts += torch.bincount(mask, minlength=classes)
    majority = int(counts.argmax())
    datamodule.setup("test")
    per_class = MulticlassJaccardIndex(classes, average="none", ignore_index=ignore)
    overall = MulticlassJaccardIndex(classes, average="micro", ignore_index=ignore)
    for batch in datamodule.test_dataloader():
        prediction = torch.full_like(batch["mask"], majority)
        per_class.update(prediction, batch["mask"])
        overall.update(prediction, batch["mask"])
    iou = per_class.compute()
    result = {
        "majority_class": task.class_names[majority],
        "per_class_iou": dict(zip(task.class_names, iou.tolist(), strict=True)),
        "mean_iou": float(iou.mean()),
        "overall_iou": float(overall.compute()),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
