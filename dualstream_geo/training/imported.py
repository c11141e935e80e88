"""``dualstream-geo import-original``: the original project's weights as a project checkpoint.

The written checkpoint is an ordinary one: ``predict``, ``validate`` and ``test`` take it as
it is, and ``fit --model.weights`` fine-tunes from it. It carries preset ``original`` with
the boundary branch off (as the original predicts), the binary head, classes
background/target, the air order GEMS, CO, NO2, SO2, and the original's input scaling as
its normalisation (``original``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import lightning
import torch

from ..errors import DualStreamError
from ..models import DualStreamDFormer
from .metadata import CHECKPOINT_KEY
from .task import DualStreamSegmentation

ORIGINAL_CLASSES = ["background", "target"]
ORIGINAL_COLORS = [[40, 40, 40], [230, 25, 75]]
AIR_ORDER = ["GEMS", "CO", "NO2", "SO2"]
PathLike = str | os.PathLike[str]


def imported_task(model: DualStreamDFormer) -> DualStreamSegmentation:
    """The training task around an imported model, with the original's recipe settings."""
    task = DualStreamSegmentation(
        num_classes=model.num_classes,
        task=model.task,  # type: ignore[arg-type]
        labels=ORIGINAL_CLASSES if model.task == "binary" else None,
        class_colors=ORIGINAL_COLORS if model.task == "binary" else None,  # type: ignore[arg-type]
        in_channels=model.in_channels,
        air_channels=model.air_channels,
        band_names=model.band_names,
        preset="original",
        use_boundary_refine=False,
        lovasz_form="original" if model.task == "binary" else "smp",
        lr_schedule="original",
    )
    task.model.load_state_dict(model.state_dict())
    return task


def import_original(
    weights: PathLike,
    output: PathLike,
    air_encoder: PathLike | None = None,
    vision_encoder: PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert the original's state dict(s) to a project checkpoint at ``output``."""
    output = Path(output)
    if output.is_dir():
        raise DualStreamError(f"--output {output} is a folder; give a file name (.ckpt)")
    if output.exists() and not overwrite:
        raise DualStreamError(f"--output {output} exists; pass --overwrite to replace it")
    if not output.absolute().parent.is_dir():
        raise DualStreamError(f"--output folder {output.absolute().parent} does not exist")
    model = DualStreamDFormer.from_original(weights, air_encoder, vision_encoder)
    task = imported_task(model)
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
        CHECKPOINT_KEY: {
            "band_names": list(model.band_names),
            "class_names": task.class_names,
            "class_colors": [list(c) for c in task.class_colors],
            "use_air": True,
            "air_channels": model.air_channels,
            "air_scale": model.air_reduction,
            "air_order": AIR_ORDER,
            "preset": "original",
            "normalization": "original",
            "imported_from": [
                os.path.basename(str(p)) for p in (weights, air_encoder, vision_encoder) if p
            ],
        },
    }
    partial = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        torch.save(checkpoint, partial)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return output


def import_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dualstream-geo import-original",
        description="Convert the original DualStream-DFormer's weights to a checkpoint.",
    )
    parser.add_argument("weights", help="the original's full-model state dict (.pth)")
    parser.add_argument("--output", required=True, help="checkpoint to write (.ckpt)")
    parser.add_argument("--air-encoder", help="the original's air-encoder state dict")
    parser.add_argument("--vision-encoder", help="the original's vision-encoder state dict")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    args = parser.parse_args(argv)
    path = import_original(
        args.weights, args.output, args.air_encoder, args.vision_encoder, args.overwrite
    )
    print(f"wrote {path}")
    return 0
