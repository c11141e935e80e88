"""``dualstream-geo predict``: whole-scene inference from a checkpoint."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ArgumentParser

from ..data.auxiliary import aux_source
from ..data.join import DualStreamGeoDataset
from ..data.layout import georef_fallback
from ..data.sources import SatelliteImage
from ..data.spec import InputSpec
from ..errors import DualStreamError
from ..models.tta import TTAS
from ..paths import check_output
from ..preview import preview_path, write_preview
from .distributed import RankGroup, check_devices, launch_local, wait_for
from .outputs import prediction_inputs
from .predictor import ScenePredictor
from .settings import COMPILE_CHOICES, KINDS
from .tiling import BLENDS


def predict_parser() -> ArgumentParser:
    """The ``predict`` command's arguments (one line per refusal, no usage dump)."""
    parser = ArgumentParser(
        prog="dualstream-geo predict",
        description="Predict whole scenes to GeoTIFF.",
        exit_on_error=False,
    )
    add_input_arguments(parser)
    add_window_arguments(parser)
    add_run_arguments(parser)
    return parser


def add_input_arguments(parser: ArgumentParser) -> None:
    """The checkpoint, the image and the aux sources (files, folders, URLs, STAC Items)."""
    parser.add_argument("--checkpoint", required=True, help="training checkpoint (.ckpt)")
    parser.add_argument("--image", required=True, nargs="+", help="image files or folders")
    parser.add_argument(
        "--aux",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="an aux source the checkpoint names, and a file, folder, URL or STAC Item of it "
        "(repeat for more sources or more files of one source)",
    )
    parser.add_argument(
        "--aux-assets",
        action="append",
        default=[],
        metavar="NAME=ASSETS",
        help="the STAC assets (comma-separated) holding the bands of aux source NAME",
    )
    parser.add_argument(
        "--gems", nargs="*", default=[], help="shorthand of --aux gems=PATH (original preset)"
    )
    parser.add_argument(
        "--air-pollution",
        nargs="*",
        default=[],
        help="shorthand of --aux air_pollution=PATH (original preset)",
    )
    parser.add_argument(
        "--assets",
        default=None,
        help="--image names STAC Items (JSON files or URLs): the assets holding the bands, in "
        "band order, e.g. blue,green,red,nir",
    )
    parser.add_argument("--gems-assets", default=None, help="shorthand of --aux-assets gems=...")
    parser.add_argument(
        "--air-assets", default=None, help="shorthand of --aux-assets air_pollution=..."
    )


def add_window_arguments(parser: ArgumentParser) -> None:
    """The output, the windows and how their predictions are computed and blended."""
    parser.add_argument("--output", required=True, help="output GeoTIFF")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="share of a window its neighbours overlap (default: none beyond the margins for "
        "models with local context, 0.34 for older models)",
    )
    parser.add_argument(
        "--margin",
        type=int,
        default=None,
        help="context px at each window edge whose predictions are not used (default: 64, at "
        "most tile/4, for models with local context; tile/8 for older models)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="windows per forward pass (default: on a CPU as many as make 1 Mpx, 4 of 512 px; "
        "8 on a GPU)",
    )
    parser.add_argument("--blend", choices=BLENDS, default="hann")
    parser.add_argument("--kind", choices=KINDS, default="class")
    parser.add_argument("--tta", choices=TTAS, default="none")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument(
        "--precision",
        choices=("auto", "32", "bf16"),
        default="auto",
        help="auto: bf16 autocast where the device computes bf16 natively (a GPU; a CPU with "
        "AVX512-BF16, AMX or ARM BF16), fp32 elsewhere; 32: fp32 everywhere",
    )
    parser.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        default="auto",
        help="compile a depthwise detail path (e.g. spectral_wide): auto on a CPU for scenes "
        "of 1,000 windows or more, where its 12-20 s of compiling pay",
    )


def add_run_arguments(parser: ArgumentParser) -> None:
    """Processes, input checks, the preview, resuming and overwriting."""
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="processes sharing the scene on this machine (one per GPU when CUDA is present); "
        "under torchrun, RANK and WORLD_SIZE come from the environment",
    )
    parser.add_argument(
        "--allow-input-shift",
        action="store_true",
        help="predict an image whose values cannot come from the training data's sensor and "
        "scaling (refused by default)",
    )
    parser.add_argument(
        "--no-preview",
        action="store_true",
        help="do not write the PNG preview with its legend beside the map (<stem>.png)",
    )
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")


def predict_main(argv: list[str]) -> int:
    """Run ``dualstream-geo predict`` on ``argv``; the exit status."""
    args = predict_parser().parse_args(argv)
    check_devices(args.devices)
    # Under torchrun (or in a rank started below) the environment names this process.
    launch = args.devices > 1 and "WORLD_SIZE" not in os.environ
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = f"cuda:{local_rank}" if torch.cuda.is_available() else None
    predictor = ScenePredictor.from_checkpoint(
        args.checkpoint,
        tile=args.tile,
        overlap=args.overlap,
        margin=args.margin,
        batch_size=args.batch_size,
        blend=args.blend,
        tta=args.tta,
        workers=args.workers,
        precision=args.precision,
        compile=args.compile,
        device=device,
    )
    image, aux, fallback = scene_inputs(args, predictor.spec)
    # Inputs are checked before other ranks start: a bad input is one line, from here.
    dataset = predictor.dataset(image, aux, fallback, allow_shift=args.allow_input_shift)
    preview = None if args.no_preview else checked_preview(args, dataset)
    children = launch_local(argv, args.devices) if launch else []
    group = None
    try:
        group = RankGroup.from_environment()
        path = predictor.predict(
            dataset,
            None,
            args.output,
            kind=args.kind,
            overwrite=args.overwrite,
            resume=args.resume,
            group=group,
        )
    finally:
        if group is not None:
            group.close()
        failed = wait_for(children)
    if failed:
        raise DualStreamError(failed)
    if group is None or group.rank == 0:
        if preview is not None:
            spec = predictor.spec
            write_preview(path, preview, spec.class_names, spec.class_colors)
        print(f"wrote {path}" + (f" (preview with legend: {preview})" if preview else ""))
    return 0


def scene_inputs(args: Any, spec: InputSpec) -> tuple[Any, dict[str, Any], Any]:
    """The image, the aux inputs by source name and the georeferencing fallback.

    The image (paths, or a STAC source), the aux inputs by source name (paths, or a STAC
    source with its assets) and the georeferencing fallback of original-layout tiles, from
    ``predict``'s arguments.

    Raises:
        DualStreamError: ``--aux-assets`` for a source without ``--aux`` Items.
    """
    paths, assets = named_pairs(args.aux, "--aux"), named_pairs(args.aux_assets, "--aux-assets")
    for name, given in (("gems", args.gems), ("air_pollution", args.air_pollution)):
        if given:
            paths.setdefault(name, []).extend(given)
    for name, given in (("gems", args.gems_assets), ("air_pollution", args.air_assets)):
        if given:
            assets.setdefault(name, []).append(given)
    for name in assets:
        if name not in paths:
            raise DualStreamError(f"--aux-assets {name}: give the Items with --aux {name}=PATH")
    aux: dict[str, Any] = {}
    for name, given in paths.items():
        if name in assets and name in spec.aux_names:
            listed = [a for part in assets[name] for a in part.split(",") if a]
            source = spec.aux_source(name).with_paths(given)
            aux[name] = aux_source(replace(source, assets=tuple(listed)))
        else:
            aux[name] = given
    # Original-layout air tiles may carry no georeferencing: the image tile's footprint.
    local = [p for name, given in paths.items() if name not in assets for p in given]
    fallback = georef_fallback(args.image, local) if local and not args.assets else None
    image = args.image
    if args.assets:
        image = SatelliteImage.from_stac(
            args.image,
            args.assets.split(","),
            bands=spec.image.bands,
            nodata=spec.image.nodata,
        )
    return image, aux, fallback


def checked_preview(args: Any, dataset: DualStreamGeoDataset) -> Path:
    """Where the preview goes, checked before any work.

    Never an input, never a lone existing preview without ``--overwrite``.

    Raises:
        DualStreamError: the map or preview would replace an input, or the preview exists.
    """
    # The map first: an empty name, or an output that is an input, is refused by its
    # own name.
    inputs = [*prediction_inputs(dataset), args.checkpoint]
    check_output(args.output, inputs, "--output")
    preview = preview_path(args.output)
    check_output(preview, inputs, "--output's preview")
    # An existing map is refused by name below; a lone preview is refused here.
    if preview.exists() and not (args.overwrite or args.resume or os.path.exists(args.output)):
        raise DualStreamError(f"preview {preview} exists; pass --overwrite to replace it")
    return preview


def named_pairs(values: list[str], flag: str) -> dict[str, list[str]]:
    """``NAME=VALUE`` arguments by name, in order (a name may repeat).

    Raises:
        DualStreamError: a value without ``NAME=``.
    """
    pairs: dict[str, list[str]] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise DualStreamError(
                f"{flag} {value!r}: expected NAME=VALUE, e.g. {flag} elevation=dem.tif"
            )
        pairs.setdefault(name.strip(), []).append(rest)
    return pairs
