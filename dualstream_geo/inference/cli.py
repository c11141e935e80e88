"""``dualstream-geo predict``: whole-scene inference from a checkpoint."""

from __future__ import annotations

import os

import torch
from jsonargparse import ArgumentParser

from ..data.layout import georef_fallback
from ..data.sources import GEMS, AirPollution, SatelliteImage
from ..errors import DualStreamError
from ..models.tta import TTAS
from .distributed import RankGroup, check_devices, launch_local, wait_for
from .predictor import KINDS, ScenePredictor
from .tiling import BLENDS


def predict_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="dualstream-geo predict", description="Predict whole scenes to GeoTIFF."
    )
    parser.add_argument("--checkpoint", required=True, help="training checkpoint (.ckpt)")
    parser.add_argument("--image", required=True, nargs="+", help="image files or folders")
    parser.add_argument("--gems", nargs="*", default=[], help="GEMS files or folders")
    parser.add_argument(
        "--air-pollution", nargs="*", default=[], help="air-pollution files or folders"
    )
    parser.add_argument(
        "--assets",
        default=None,
        help="--image names STAC Items (JSON files or URLs): the assets holding the bands, in "
        "band order, e.g. blue,green,red,nir",
    )
    parser.add_argument("--gems-assets", default=None, help="STAC assets of --gems Items")
    parser.add_argument("--air-assets", default=None, help="STAC assets of --air-pollution Items")
    parser.add_argument("--output", required=True, help="output GeoTIFF")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--blend", choices=BLENDS, default="hann")
    parser.add_argument("--kind", choices=KINDS, default="class")
    parser.add_argument("--tta", choices=TTAS, default="none")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument(
        "--precision",
        choices=("auto", "32", "bf16"),
        default="auto",
        help="auto: bf16 autocast on CUDA, fp32 on CPU; 32: fp32 everywhere",
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=1,
        help="processes sharing the scene on this machine (one per GPU when CUDA is present); "
        "under torchrun, RANK and WORLD_SIZE come from the environment",
    )
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    return parser


def predict_main(argv: list[str]) -> int:
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
        batch_size=args.batch_size,
        blend=args.blend,
        tta=args.tta,
        workers=args.workers,
        precision=args.precision,
        device=device,
    )
    air = None
    if args.gems or args.air_pollution:
        if not (args.gems and args.air_pollution):
            raise DualStreamError("give both --gems and --air-pollution (or neither)")
        if bool(args.gems_assets) != bool(args.air_assets):
            raise DualStreamError("give both --gems-assets and --air-assets (or neither)")
        if args.gems_assets:
            air = [
                GEMS.from_stac(args.gems, args.gems_assets.split(",")),
                AirPollution.from_stac(args.air_pollution, args.air_assets.split(",")),
            ]
        else:
            # Original-layout air tiles may carry no georeferencing: the image tile's footprint.
            fallback = georef_fallback(args.image, [*args.gems, *args.air_pollution])
            air = [
                GEMS(args.gems, georef_fallback=fallback),  # type: ignore[arg-type]
                AirPollution(args.air_pollution, georef_fallback=fallback),  # type: ignore[arg-type]
            ]
    image = args.image
    if args.assets:
        meta = predictor.meta
        image = SatelliteImage.from_stac(
            args.image, args.assets.split(","), bands=meta.band_names, nodata=meta.image_nodata
        )
    # Inputs are checked before other ranks start: a bad input is one line, from here.
    dataset = predictor.dataset(image, air)
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
        print(f"wrote {path}")
    return 0
