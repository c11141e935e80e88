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
from scoring import Scores, load_experiment


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", required=True)
    args = parser.parse_args()
    datamodule, task = load_experiment(args.config)
    classes, ignore = task.input_spec.num_classes, task.input_spec.ignore_index
    datamodule.setup("fit")
    counts = torch.zeros(classes, dtype=torch.long)
    for batch in datamodule.train_dataloader():
        mask = batch["mask"][batch["mask"] != ignore]
        counts += torch.bincount(mask, minlength=classes)
    majority = int(counts.argmax())
    datamodule.setup("test")
    scores = Scores(classes, ignore)
    for batch in datamodule.test_dataloader():
        scores.update(torch.full_like(batch["mask"], majority), batch["mask"])
    result = {"majority_class": task.class_names[majority], **scores.compute(task.class_names)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
