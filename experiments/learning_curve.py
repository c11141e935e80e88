"""Per-class validation IoU of a Zion run against training time, beside the random forest
scored on the same validation pixels: where the model passes the forest, and where a
longer run is still going.

    python experiments/rf_baseline.py --config experiments/zion.yaml --split val > rf_val.json
    python experiments/learning_curve.py --run runs/zion --minutes 12.5 --forest rf_val.json \
        --output experiments/zion_learning_curve.png
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="the run's default_root_dir")
    parser.add_argument("--minutes", type=float, required=True, help="the fit's wall time")
    parser.add_argument("--forest", help="rf_baseline.py --split val output (JSON)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    rows = []  # the fit's log (a later `test` writes its own version folder)
    for metrics in sorted(Path(args.run).glob("logs/version_*/metrics.csv")):
        rows = rows or [
            r for r in csv.DictReader(open(metrics)) if r.get("val_AverageJaccardIndex")
        ]
    prefix = "val_ClasswiseJaccardIndex_"
    names = [k[len(prefix) :] for k in rows[0] if k.startswith(prefix)]
    epochs = len(rows)
    minutes = [args.minutes * (i + 1) / epochs for i in range(epochs)]
    forest = json.loads(Path(args.forest).read_text()) if args.forest else None
    columns = 3
    fig, axes = plt.subplots(
        (len(names) + 1 + columns - 1) // columns, columns, figsize=(12, 9), sharex=True
    )
    panels = [*names, "mean IoU"]
    for ax, name in zip(axes.flat, panels, strict=False):
        key = f"{prefix}{name}" if name != "mean IoU" else "val_AverageJaccardIndex"
        ax.plot(minutes, [float(r[key]) for r in rows], marker=".", label="DualStream-DFormer")
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
        ax.set_xlabel("training time (minutes, 2 CPU cores)")
    fig.suptitle("Zion: validation IoU per class against training time")
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)


if __name__ == "__main__":
    main()
