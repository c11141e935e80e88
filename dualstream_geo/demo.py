"""``dualstream-geo demo``: the main job on built-in demo scenes.

Generates the scenes, trains the dual-stream model (two-stage fine-tuning) and an image-only
model with the same budget, tests both on the held-out scene, predicts that scene to
GeoTIFF and writes ``report.md`` with the figures and PNGs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, override

import numpy as np
from lightning.pytorch import Callback

from .data import DEMO_CLASS_MAP, DEMO_CLASS_NAMES, make_demo_scenes
from .data.auxiliary.spec import original_aux
from .data.datamodule import DualStreamDataModule
from .data.spec import ClassSpec, InputSpec
from .errors import DualStreamError, OneLineParser
from .models.settings import ArchitectureSettings
from .paths import check_folder_writable, check_output

CLASS_COLORS = [(40, 40, 40), (230, 25, 75)]
#: The demo's classes: the target plots (raw 90) against everything else.
DEMO_CLASSES = ClassSpec(
    names=tuple(DEMO_CLASS_NAMES), colors=tuple(CLASS_COLORS), map=dict(DEMO_CLASS_MAP)
)


@dataclass(frozen=True)
class DemoBudget:
    """Training budget per model; ``experiments/demo.yaml`` holds the full one."""

    epochs: int
    freeze_epochs: int
    samples_per_epoch: int
    patch_size: int = 64
    batch_size: int = 8
    lr: float = 1e-3


FULL = DemoBudget(epochs=12, freeze_epochs=2, samples_per_epoch=128)
QUICK = DemoBudget(epochs=2, freeze_epochs=1, samples_per_epoch=16)


def build(
    data_root: Path, out: Path, budget: DemoBudget, use_aux: bool, preset: str = "original"
) -> tuple[Any, DualStreamDataModule]:
    """The task and datamodule of one demo model.

    With the original preset's aux stream, or the image alone.
    """
    from .training import DualStreamSegmentation

    datamodule = DualStreamDataModule(
        root=str(data_root),
        classes=DEMO_CLASSES,
        aux="original" if use_aux else None,
        patch_size=budget.patch_size,
        batch_size=budget.batch_size,
        length=budget.samples_per_epoch,
        stats_path=str(out / "stats.json"),
    )
    task = DualStreamSegmentation(
        input_spec=datamodule.input_spec,
        architecture=ArchitectureSettings(preset=preset),  # type: ignore[arg-type]
        lr=budget.lr,
        freeze_epochs=budget.freeze_epochs,
    )
    return task, datamodule


def train_and_test(
    data_root: Path, out: Path, budget: DemoBudget, use_aux: bool, preset: str = "original"
) -> dict[str, float]:
    """Fit with checkpoints under ``out/checkpoints`` and test the best one."""
    from lightning.pytorch import Trainer, seed_everything
    from lightning.pytorch.loggers import CSVLogger

    from .training.trainer_defaults import default_precision

    seed_everything(0, verbose=False)
    task, datamodule = build(data_root, out, budget, use_aux, preset)
    interrupt = InterruptRecorder()
    trainer = Trainer(
        max_epochs=budget.epochs,
        default_root_dir=str(out),
        logger=CSVLogger(str(out), name="logs"),
        precision=default_precision(),  # type: ignore[arg-type]
        num_sanity_val_steps=0,
        enable_model_summary=False,
        log_every_n_steps=5,
        callbacks=[interrupt],
    )
    try:
        trainer.fit(task, datamodule)
        results = trainer.test(task, datamodule, ckpt_path="best", verbose=False)[0]
    except SystemExit:
        # Lightning ends a Ctrl-C or SIGTERM with exit status 1; the command reports which.
        if interrupt.exception is not None:
            raise interrupt.exception from None
        raise
    return {k: float(v) for k, v in results.items()}


class InterruptRecorder(Callback):
    """Keeps the interruption (Ctrl-C, SIGTERM) a run stopped on."""

    exception: BaseException | None = None

    @override
    def on_exception(self, trainer: Any, module: Any, exception: BaseException) -> None:
        if isinstance(exception, KeyboardInterrupt):
            self.exception = exception


def preview(data_root: Path, prediction: Path, path: Path) -> None:
    """Image (RGB), one air channel, label and prediction of the held-out scene, map axes."""
    import rasterio
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure

    from .data.assemble import build_dataset
    from .data.layout import scene_set

    scenes = scene_set(str(data_root), "test", aux_names=["gems", "air_pollution"])
    assert scenes is not None
    spec = InputSpec(classes=DEMO_CLASSES, aux=original_aux())
    dataset = build_dataset(scenes, spec)
    with rasterio.open(prediction) as src:
        classes = src.read(1)
        left, bottom, right, top = src.bounds
        crs_name = src.crs.to_string()
    sample = dataset[left:right, bottom:top]
    image = sample["image"].numpy()
    rgb = np.stack([image[2], image[1], image[0]], axis=-1)
    rgb = np.clip(rgb / np.percentile(rgb[rgb > 0], 98), 0, 1)
    extent = (left, right, bottom, top)
    cmap = ListedColormap(np.array(CLASS_COLORS + [(255, 255, 255)]) / 255)
    mask = np.where(sample["mask"].numpy() == 255, 2, sample["mask"].numpy())
    predicted = np.where(classes == 255, 2, classes)
    panels: list[tuple[str, np.ndarray, dict[str, Any]]] = [
        ("image (RGB)", rgb, {}),
        ("air: NO2 band 1 (normalised grid)", sample["air"][24].numpy(), {"cmap": "magma"}),
        ("label", mask, {"cmap": cmap, "vmin": 0, "vmax": 2, "interpolation": "nearest"}),
        ("prediction", predicted, {"cmap": cmap, "vmin": 0, "vmax": 2, "interpolation": "nearest"}),
    ]
    fig = Figure(figsize=(18, 4.8))
    axes = fig.subplots(1, 4)
    for ax, (title, data, kwargs) in zip(axes, panels, strict=True):
        ax.imshow(data, extent=extent, **kwargs)
        ax.set_title(title)
        ax.set_xlabel(f"easting (m, {crs_name})")
        ax.set_ylabel(f"northing (m, {crs_name})")
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def predict_scene(data_root: Path, checkpoint: Path, output: Path) -> Path:
    """Predict the demo's held-out scene with ``checkpoint`` to ``output``; its path."""
    from .inference import ScenePredictor

    test = data_root / "test"
    predictor = ScenePredictor.from_checkpoint(str(checkpoint))
    return predictor.predict(
        image=[str(test / "image")],
        aux={"gems": [str(test / "gems")], "air_pollution": [str(test / "air")]},
        output=str(output),
        overwrite=True,
    )


def write_report(
    out: Path,
    dual: dict[str, float],
    image_only: dict[str, float],
    seconds: float,
    budget: DemoBudget,
    preset: str = "original",
) -> Path:
    """Write the demo's report (both models' test scores) under ``out``; its path."""
    names = DEMO_CLASS_NAMES
    target = f"test_ClasswiseJaccardIndex_{names[1]}"

    def iou(results: dict[str, float], name: str) -> str:
        return f"{results.get(f'test_ClasswiseJaccardIndex_{name}', float('nan')):.3f}"

    rows = [
        f"| {label} | "
        + " | ".join(iou(r, n) for n in names)
        + f" | {r['test_AverageJaccardIndex']:.3f} |"
        for label, r in (
            ("dual-stream (image + air)", dual),
            ("image only (air absent)", image_only),
        )
    ]
    text = f"""# dualstream_geo demo report

Model preset: `{preset}`. Held-out scene: `data/test` (EPSG:5186, labels on another grid,
nodata collar).
Budget per model: {budget.epochs} epochs ({budget.freeze_epochs} with frozen encoders) x
{budget.samples_per_epoch} random {budget.patch_size} px patches, batch {budget.batch_size}.
Total time: {seconds / 60:.1f} min.

## Test IoU per class

| model | {" | ".join(names)} | mean |
| --- | {" | ".join("---" for _ in names)} | --- |
{chr(10).join(rows)}

Target-class IoU margin (dual-stream minus image-only):
{dual[target] - image_only[target]:+.3f}.
The target plots and their look-alikes share one surface; only the air stream tells
polluted from clean districts, so the image-only model cannot separate them.

## Files

- best checkpoint: `checkpoints/best.ckpt` (image-only: `image_only/checkpoints/best.ckpt`)
- prediction of the held-out scene: `prediction.tif` (classes, colour table, COG layout)
- training curves: `training_curves.png` (image-only: `image_only/training_curves.png`)
- preview of image / air / label / prediction: `preview.png`
- band statistics: `stats.json`
"""
    path = out / "report.md"
    path.write_text(text)
    return path


def demo_main(argv: list[str]) -> int:
    """Run ``dualstream-geo demo`` on ``argv``; the exit status."""
    parser = OneLineParser(prog="dualstream-geo demo", description=__doc__)
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument(
        "--quick", action="store_true", help="tiny budget, under a minute (for tests)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preset", choices=("original", "lite"), default="original", help="model preset"
    )
    args = parser.parse_args(argv)
    # The text as given: Path("") is ".", which would write into the working folder.
    check_output(args.out, [], "--out", "folder", replaced=False)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DualStreamError(f"--out {out}: cannot be created ({error.strerror})") from None
    check_folder_writable(out, "--out")
    budget = QUICK if args.quick else FULL
    start = time.time()
    data_root = out / "data"
    make_demo_scenes(data_root, seed=args.seed)
    print(f"demo scenes written to {data_root}")
    dual = train_and_test(data_root, out, budget, use_aux=True, preset=args.preset)
    image_only = train_and_test(
        data_root, out / "image_only", budget, use_aux=False, preset=args.preset
    )
    prediction = predict_scene(data_root, out / "checkpoints" / "best.ckpt", out / "prediction.tif")
    preview(data_root, prediction, out / "preview.png")
    report = write_report(out, dual, image_only, time.time() - start, budget, args.preset)
    print(report.read_text())
    print(f"report: {report}")
    return 0
