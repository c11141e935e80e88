"""A plain full-resolution CNN for an experiment config: what a small convolutional network
with no downsampling learns from the same patches, loss and budget as the model.

Five 3 x 3 convolutions of 64 channels (dilations 1, 1, 2, 4, 8: a 33 px receptive field),
GroupNorm(1) over the patch (``--norm patch``) or LayerNorm over each pixel's channels
(``--norm pixel``, as the model's image path) and GELU, then a 1 x 1 classifier; every
pixel is predicted at the image's own resolution. It is trained on the datamodule's
training patches (its sampler and augmentation, seeded) with the task's loss settings read
from the config: cross-entropy with the class weights ``class_balance`` computes from the
training labels, AdamW at the config's learning rate. Test pixels and scores are the
task's, as in ``rf_baseline.py``.

    python experiments/cnn_baseline.py --config experiments/zion.yaml [--epochs 24] [--norm pixel]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import torch.nn.functional as F
from scoring import Scores, load_experiment, print_result
from timm.layers import LayerNorm2d
from torch import Tensor, nn

from dualstream_geo.memory import keep_freed_memory
from dualstream_geo.training.losses import balanced_weights


def conv_block(in_channels: int, out_channels: int, dilation: int, norm: str) -> nn.Sequential:
    """(B, in, H, W) -> (B, out, H, W): 3 x 3 convolution, GroupNorm(1) over the patch or
    LayerNorm over each pixel (``norm`` ``patch`` / ``pixel``), GELU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation),
        nn.GroupNorm(1, out_channels) if norm == "patch" else LayerNorm2d(out_channels),
        nn.GELU(),
    )


class FullResolutionCNN(nn.Sequential):
    """Image (B, C, H, W) -> logits (B, K, H, W), no downsampling."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        channels: int = 64,
        dilations: tuple[int, ...] = (1, 1, 2, 4, 8),
        norm: str = "patch",
    ) -> None:
        inputs = [in_channels, *[channels] * (len(dilations) - 1)]
        blocks = [conv_block(i, channels, d, norm) for i, d in zip(inputs, dilations, strict=True)]
        super().__init__(*blocks, nn.Conv2d(channels, num_classes, 1))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--norm", choices=("patch", "pixel"), default="patch")
    args = parser.parse_args()
    keep_freed_memory()
    start = time.perf_counter()
    # The seed also draws the training patches, as seeds.py does for the model.
    datamodule, task = load_experiment(args.config, [f"--data.sampling.seed={args.seed}"])
    hparams = task.hparams
    if hparams["task"] != "multiclass":
        sys.exit("cnn_baseline.py: model.task must be multiclass")
    spec, loss = task.input_spec, task.loss_settings
    classes, ignore = spec.num_classes, spec.ignore_index
    torch.manual_seed(args.seed)
    datamodule.setup("fit")
    weights = None
    if loss.class_balance > 0:
        counts = datamodule.class_counts(classes)
        weights = torch.tensor(balanced_weights(counts, loss.class_balance), dtype=torch.float32)
    elif loss.class_weights is not None:
        weights = torch.tensor(loss.class_weights, dtype=torch.float32)
    network = FullResolutionCNN(spec.in_channels, classes, norm=args.norm)
    optimizer = torch.optim.AdamW(network.parameters(), hparams["lr"], weight_decay=1e-4)
    augment = datamodule.train_aug
    for epoch in range(args.epochs):
        datamodule.train_sampler.sampler.set_epoch(epoch)
        for batch in datamodule.train_dataloader():
            batch = augment(batch) if augment is not None else batch
            loss = F.cross_entropy(
                network(batch["image"]), batch["mask"], weight=weights, ignore_index=ignore
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {float(loss):.3f}", file=sys.stderr, flush=True)
    trained = time.perf_counter()
    datamodule.setup("test")
    network.eval()
    scores = Scores(classes, ignore)
    with torch.no_grad():
        for batch in datamodule.test_dataloader():
            prediction: Tensor = network(batch["image"]).argmax(1)
            keep = batch["mask"] != ignore
            scores.update(prediction[keep], batch["mask"][keep])
    print_result(
        f"full-resolution CNN ({args.epochs} epochs, {args.norm} norm)",
        "test",
        scores,
        task.class_names,
        start,
        trained,
        parameters=sum(p.numel() for p in network.parameters()),
        class_weights=None if weights is None else [round(w, 3) for w in weights.tolist()],
    )


if __name__ == "__main__":
    main()
