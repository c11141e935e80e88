"""Per-pixel random forest baseline for an experiment config: the classic remote-sensing
classifier, trained and scored on exactly the pixels the model sees.

Training pixels are drawn from one epoch of the datamodule's training patches (seeded),
test pixels are every labelled pixel of the test split's patches, and the scores are the
task's (per-class IoU, mean IoU, micro-averaged "overall" IoU, overall accuracy).
Features: ``bands``, the model's own input channels (the normalised bands, then the
spectral indices the config's ``data.indices`` appends: NDVI and NDWI in zion.yaml), or
``context``, those and their 3 x 3 means.

    python experiments/rf_baseline.py --config experiments/zion.yaml [--features context]
    python experiments/rf_baseline.py --config experiments/zion.yaml \
        --config experiments/zion_binary.yaml
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scoring import Scores, load_experiment, print_result
from sklearn.ensemble import RandomForestClassifier
from torch import Tensor
from torch.nn.functional import avg_pool2d


def pixel_features(image: Tensor, kind: str) -> Tensor:
    """(B, F, H, W) features of a normalised image batch (B, C, H, W): its channels (the
    bands, then any spectral indices the datamodule appends) and, for ``context``, their
    3 x 3 means."""
    if kind == "bands":
        return image
    means = avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    return torch.cat([image, means], dim=1)


def labelled(batch: dict[str, Tensor], ignore: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, F) features and (pixels,) labels of the batch's labelled valid pixels."""
    features = pixel_features(batch["image"], kind)
    keep = batch["mask"] != ignore
    if "valid" in batch:
        keep &= batch["valid"].bool()
    return features.permute(0, 2, 3, 1)[keep].numpy(), batch["mask"][keep].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--features", choices=("bands", "context"), default="context")
    parser.add_argument("--pixels", type=int, default=200_000)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=("test", "val"), default="test")
    args = parser.parse_args()
    start = time.perf_counter()
    # The seed also draws the training patches, as seeds.py does for the model.
    datamodule, task = load_experiment(args.config, [f"--data.sampling.seed={args.seed}"])
    classes, ignore = task.input_spec.num_classes, task.input_spec.ignore_index
    datamodule.setup("fit")
    parts = [labelled(b, ignore, args.features) for b in datamodule.train_dataloader()]
    features = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(labels), min(args.pixels, len(labels)), replace=False)
    forest = RandomForestClassifier(
        n_estimators=args.trees, max_depth=args.depth, n_jobs=-1, random_state=args.seed
    )
    forest.fit(features[chosen], labels[chosen])
    trained = time.perf_counter()
    datamodule.setup(args.split if args.split == "test" else "validate")
    loader = datamodule.test_dataloader() if args.split == "test" else datamodule.val_dataloader()
    scores = Scores(classes, ignore)
    for batch in loader:
        x, y = labelled(batch, ignore, args.features)
        if len(y):
            scores.update(torch.from_numpy(forest.predict(x)), torch.from_numpy(y))
    print_result(
        f"random forest ({args.trees} trees, depth {args.depth}, {args.features})",
        args.split,
        scores,
        task.class_names,
        start,
        trained,
        training_pixels=int(len(chosen)),
    )


if __name__ == "__main__":
    main()
