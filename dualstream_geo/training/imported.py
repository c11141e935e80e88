"""``dualstream-geo import-original``: the original project's weights as a project checkpoint.

The written checkpoint is an ordinary one: ``predict``, ``validate`` and ``test`` take it as
it is, and ``fit --model.weights`` fine-tunes from it. It carries preset ``original`` with
the boundary branch off (as the original predicts), the binary head, classes
background/target, the original's aux sources (``gems``: GEMS; ``air_pollution``: CO, NO2,
SO2) and the original's input scaling as its normalisation (``original``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning

from ..data.auxiliary.spec import original_aux
from ..data.spec import ClassSpec, ImageSpec, InputSpec
from ..errors import DualStreamError, OneLineParser
from ..models import DualStreamDFormer
from ..models.settings import ArchitectureSettings
from ..paths import check_folder_writable, check_output, describe_write_error
from ..torchfiles import save_torch_file
from .settings import LossSettings
from .stored import store_spec
from .task import DualStreamSegmentation

ORIGINAL_CLASSES = ["background", "target"]
ORIGINAL_COLORS = [[40, 40, 40], [230, 25, 75]]
PathLike = str | os.PathLike[str]


def imported_spec(model: DualStreamDFormer) -> InputSpec:
    """What an imported model sees.

    Its bands, the original's aux stream (GEMS, CO, NO2, SO2) and scaling, classes
    background/target for the binary head.
    """
    binary = model.task == "binary"
    names = ORIGINAL_CLASSES if binary else [f"class_{i}" for i in range(model.num_classes)]
    return InputSpec(
        image=ImageSpec(bands=model.band_names),
        classes=ClassSpec(
            names=tuple(names),
            colors=tuple(tuple(c) for c in ORIGINAL_COLORS) if binary else None,  # type: ignore[misc]
        ),
        aux=original_aux(),
        normalization="original",
    )


def imported_task(model: DualStreamDFormer) -> DualStreamSegmentation:
    """The training task around an imported model, with the original's recipe settings.

    Raises:
        DualStreamError: an air encoder of another width than the original's 48 channels.
    """
    spec = imported_spec(model)
    if model.air_channels != spec.aux_channels:
        raise DualStreamError(
            f"the original weights take {model.air_channels} air channels; the original's "
            f"files give {spec.aux_channels} (GEMS 12 + CO, NO2, SO2 12 each)"
        )
    task = DualStreamSegmentation(
        input_spec=spec,
        task=model.task,  # type: ignore[arg-type]
        architecture=ArchitectureSettings(
            preset="original", use_boundary_refine=False, context="window"
        ),
        loss=LossSettings(lovasz_form="original" if model.task == "binary" else "smp"),
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
    real = Path(check_output(output, [weights, air_encoder, vision_encoder], "--output"))
    if output.exists() and not overwrite:
        raise DualStreamError(f"--output {output} exists; pass --overwrite to replace it")
    check_folder_writable(real.parent, "--output")
    model = DualStreamDFormer.from_original(weights, air_encoder, vision_encoder)
    task = imported_task(model)
    checkpoint: dict[str, Any] = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
    }
    imported_from = [os.path.basename(str(p)) for p in (weights, air_encoder, vision_encoder) if p]
    store_spec(checkpoint, task.input_spec, imported_from=imported_from)
    try:
        save_torch_file(checkpoint, real)
    except OSError as error:
        raise DualStreamError(describe_write_error(output, error)) from None
    return output


def import_main(argv: list[str]) -> int:
    """Run ``dualstream-geo import-original`` on ``argv``; the exit status."""
    parser = OneLineParser(
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
