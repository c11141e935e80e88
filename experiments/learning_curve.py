"""Per-class test IoU of a run against its training time, beside the random forest scored on
the same test pixels: where the model passes the forest, and where a longer run is still
going.

The run must keep every epoch's weights (``--model.checkpoints.keep_epochs true``); each
``checkpoints/epochs/epoch=N.ckpt`` is scored with the task's own test loop on the config's
test cells, and placed at its wall time since the fit started (the checkpoint file's
modification time against the run's first log file). The scores are written beside the PNG
as JSON. Scoring the test cells once per epoch reports the run; it chooses nothing. Each
epoch is scored on the plain pass unless ``--tta`` says otherwise (``d4`` takes 8 passes).
``--beside LABEL=JSON`` draws the curves of runs scored before (their JSON) on the same axes,
so that two models can be compared epoch by epoch.

    dualstream-geo fit --config experiments/zion.yaml --model.checkpoints.keep_epochs true
    python experiments/rf_baseline.py --config experiments/zion.yaml > rf_test.json
    python experiments/learning_curve.py --config experiments/zion.yaml --run runs/zion \
        --label "image only" --forest rf_test.json --output image_only.png
    python experiments/learning_curve.py --config experiments/zion.yaml \
        --config experiments/zion_dem.yaml --run runs/zion_dem --label "dual stream" \
        --beside "image only=image_only.json" --output experiments/zion_learning_curve.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib
from lightning.pytorch import Trainer
from scoring import load_experiment

from dualstream_geo.models.tta import TTAS

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PREFIX = "test_ClasswiseJaccardIndex_"


def score_epochs(configs: list[str], run: Path, tta: str) -> list[dict[str, Any]]:
    """Minutes since the fit started and test scores of every epoch checkpoint of ``run``,
    with test-time augmentation ``tta`` instead of the config's ``test_tta``."""
    checkpoints = sorted((run / "checkpoints" / "epochs").glob("epoch=*.ckpt"))
    starts = sorted(run.glob("logs/version_*/hparams.yaml"))
    if not checkpoints or not starts:
        sys.exit(
            f"learning_curve.py: {run} has no checkpoints/epochs/ (fit it with "
            "--model.checkpoints.keep_epochs true)"
        )
    start = starts[0].stat().st_mtime
    # seeds.py keeps each run's statistics in its folder: normalise as that run did.
    stats = run / "stats.json"
    overrides = [f"--data.stats_path={stats}"] if stats.is_file() else []
    datamodule, task = load_experiment(configs, overrides)
    task.hparams["test_tta"] = tta
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    rows = []
    for checkpoint in checkpoints:
        scores = trainer.test(task, datamodule=datamodule, ckpt_path=str(checkpoint), verbose=False)
        minutes = (checkpoint.stat().st_mtime - start) / 60
        rows.append({"checkpoint": checkpoint.name, "minutes": round(minutes, 2), **scores[0]})
        print(
            f"{checkpoint.name}: mean IoU {scores[0]['test_AverageJaccardIndex']:.3f}",
            file=sys.stderr,
            flush=True,
        )
    return rows


def plot(
    curves: dict[str, list[dict[str, Any]]], forest: dict[str, Any] | None, output: str
) -> None:
    """One panel per class and one for the mean IoU, a line per run (``curves``: label ->
    rows of ``score_epochs``), the forest as a dashed level."""
    first = next(iter(curves.values()))
    names = [key[len(PREFIX) :] for key in first[0] if key.startswith(PREFIX)]
    columns = 3
    panels = [*names, "mean IoU"]
    fig, axes = plt.subplots(
        (len(panels) + columns - 1) // columns, columns, figsize=(12, 9), sharex=True
    )
    for ax, name in zip(axes.flat, panels, strict=False):
        key = f"{PREFIX}{name}" if name != "mean IoU" else "test_AverageJaccardIndex"
        for label, rows in curves.items():
            minutes = [row["minutes"] for row in rows]
            ax.plot(minutes, [row[key] for row in rows], marker=".", label=label)
        if forest:
            value = forest["mean_iou"] if name == "mean IoU" else forest["per_class_iou"][name]
            ax.axhline(value, color="tab:green", linestyle="--", label="random forest")
        ax.set_title(name)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(loc="upper left", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("training time (minutes since the fit started)")
    fig.suptitle("Test IoU per class against training time (one point per epoch)")
    fig.tight_layout()
    fig.savefig(output, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--run", required=True, help="the run's default_root_dir")
    parser.add_argument("--label", default="DualStream-DFormer", help="the run's name in the plot")
    parser.add_argument(
        "--beside",
        action="append",
        default=[],
        metavar="LABEL=JSON",
        help="another run's curve (the JSON this script wrote for it) on the same axes",
    )
    parser.add_argument("--forest", help="rf_baseline.py output (JSON) on the same split")
    parser.add_argument("--output", required=True, help="the PNG; its scores go beside as .json")
    parser.add_argument(
        "--tta", choices=TTAS, default="none", help="test-time augmentation (default: none)"
    )
    args = parser.parse_args()
    curves = {}
    for item in args.beside:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            sys.exit(f"learning_curve.py: --beside {item!r}: expected LABEL=JSON of a scored run")
        curves[label] = json.loads(Path(path).read_text())
    rows = score_epochs(args.config, Path(args.run), args.tta)
    curves = {args.label: rows, **curves}
    forest = json.loads(Path(args.forest).read_text()) if args.forest else None
    plot(curves, forest, args.output)
    Path(args.output).with_suffix(".json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
