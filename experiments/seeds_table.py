"""The markdown tables of ``experiments/README.md`` from ``seeds.py`` results: one row per
run name (mean +- sample standard deviation over its seeds, and the lowest seed), then the
per-class IoU means.

    python experiments/seeds_table.py runs/seeds/image_only runs/seeds/dem_lite ...
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any


def spread(values: list[float], digits: int = 3) -> str:
    """``mean +- std`` of ``values`` (the std of one value is 0)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.{digits}f} ± {std:.{digits}f}"


def rows(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| row | seeds | mean IoU | lowest seed | overall accuracy | fit minutes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        runs = result["runs"]
        lines.append(
            f"| {result['name']} | {len(runs)} | {spread([r['mean_iou'] for r in runs])} | "
            f"{min(r['mean_iou'] for r in runs):.3f} | "
            f"{spread([r['overall_accuracy'] for r in runs])} | "
            f"{spread([r['fit_minutes'] for r in runs], 1)} |"
        )
    classes = list(results[0]["runs"][0]["per_class_iou"])
    lines += ["", "| row | " + " | ".join(classes) + " |", "| --- |" + " --- |" * len(classes)]
    for result in results:
        cells = [spread([r["per_class_iou"][c] for r in result["runs"]]) for c in classes]
        lines.append(f"| {result['name']} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path, help="seeds.py's <out>/<name> folders")
    args = parser.parse_args()
    results = [json.loads((folder / "seeds.json").read_text()) for folder in args.folders]
    print("\n".join(rows(results)))


if __name__ == "__main__":
    main()
