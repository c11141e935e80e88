"""Fit and test one experiment config with several seeds: the mean and spread users can rely
on, instead of one seed on one machine.

Each seed S runs the plain commands with ``--seed_everything S --data.sampling.seed S`` (the
split stays the config's: the same test cells for every seed), in its own run folder
``<out>/<name>/seed<S>``, and is scored on the test cells with its ``best.ckpt``. The
results (per-class IoU, mean IoU, overall accuracy, fit and test minutes, the CPU) are
written to ``<out>/<name>/seeds.json`` and printed as one JSON object; seeds already done
there are kept (the runs are long: the script can be stopped and run again).

    python experiments/seeds.py --name dem_lite --seeds 0 1 2 \\
        --config experiments/zion.yaml --config experiments/zion_dem.yaml
    python experiments/seeds.py --name rf_dem --baseline rf_baseline.py \\
        --config experiments/zion.yaml --config experiments/zion_dem.yaml \\
        --config experiments/zion_dem_early.yaml

``--baseline`` runs that script with ``--seed S`` instead (its training time as the fit
minutes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dualstream_geo.precision import cpu_name
from dualstream_geo.training.trainer_defaults import default_precision

PREFIX = "test_ClasswiseJaccardIndex_"


def run(command: list[str]) -> float:
    """Run a ``dualstream-geo`` command; its wall time in minutes."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dualstream_geo", *command], check=False)
    if done.returncode:
        sys.exit(f"seeds.py: {' '.join(command[:3])} ... failed ({done.returncode})")
    return (time.perf_counter() - start) / 60


def test_scores(folder: Path) -> dict[str, float]:
    """The test metrics a ``test`` run logged under ``folder/logs``."""
    rows = []
    for path in sorted(folder.glob("logs/version_*/metrics.csv")):
        rows += [r for r in csv.DictReader(open(path)) if r.get("test_AverageJaccardIndex")]
    if not rows:
        sys.exit(f"seeds.py: no test metrics under {folder}/logs")
    return {k: float(v) for k, v in rows[-1].items() if k.startswith("test_") and v}


def one_seed(configs: list[str], folder: Path, seed: int, extra: list[str]) -> dict[str, Any]:
    common = [arg for config in configs for arg in ("--config", config)]
    common += [f"--seed_everything={seed}", f"--data.sampling.seed={seed}"]
    common += [f"--trainer.default_root_dir={folder}", f"--data.stats_path={folder}/stats.json"]
    common += ["--trainer.enable_progress_bar=false"]
    fit = run(["fit", *common, *extra])
    # Scored at the precision fit ran at (fp32 on a CPU unless extra says otherwise), not
    # test's own default (bf16 on a CPU that has it): the rows compare across machines.
    trained = f"--trainer.precision={default_precision()}"
    checkpoint = f"--ckpt_path={folder}/checkpoints/best.ckpt"
    test = run(["test", *common, trained, *extra, checkpoint])
    scores = test_scores(folder)
    return {
        "seed": seed,
        "per_class_iou": {k[len(PREFIX) :]: v for k, v in scores.items() if k.startswith(PREFIX)},
        "mean_iou": scores["test_AverageJaccardIndex"],
        "overall_accuracy": scores["test_OverallAccuracy"],
        "fit_minutes": round(fit, 2),
        "test_minutes": round(test, 2),
    }


def one_baseline(script: str, configs: list[str], seed: int, extra: list[str]) -> dict[str, Any]:
    """``rf_baseline.py`` or ``cnn_baseline.py`` with ``--seed S``: its JSON scores."""
    common = [arg for config in configs for arg in ("--config", config)]
    here = Path(__file__).parent
    command = [sys.executable, str(here / script), *common, f"--seed={seed}", *extra]
    done = subprocess.run(command, check=False, stdout=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"seeds.py: {script} --seed {seed} failed ({done.returncode})")
    result = json.loads(done.stdout)
    return {
        "seed": seed,
        "per_class_iou": result["per_class_iou"],
        "mean_iou": result["mean_iou"],
        "overall_accuracy": result["overall_accuracy"],
        "fit_minutes": round(result["seconds"]["train"] / 60, 2),
        "test_minutes": round((result["seconds"]["total"] - result["seconds"]["train"]) / 60, 2),
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and (sample) standard deviation of each score over the seeds."""

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "mean": round(statistics.fmean(values), 4),
            "std": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
            "min": round(min(values), 4),
        }

    classes = rows[0]["per_class_iou"]
    return {
        "seeds": [r["seed"] for r in rows],
        "mean_iou": spread([r["mean_iou"] for r in rows]),
        "overall_accuracy": spread([r["overall_accuracy"] for r in rows]),
        "fit_minutes": spread([r["fit_minutes"] for r in rows]),
        "per_class_iou": {c: spread([r["per_class_iou"][c] for r in rows]) for c in classes},
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--name", required=True, help="the row's name (its folder under --out)")
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/seeds")
    parser.add_argument(
        "--baseline",
        choices=("rf_baseline.py", "cnn_baseline.py"),
        help="run this baseline script per seed instead of the model",
    )
    parser.add_argument(
        "extra", nargs="*", help="more arguments for fit and test, or the baseline (after --)"
    )
    args = parser.parse_args()
    base = Path(args.out) / args.name
    base.mkdir(parents=True, exist_ok=True)
    record = base / "seeds.json"
    done = json.loads(record.read_text()) if record.exists() else {"runs": []}
    finished = {r["seed"] for r in done["runs"]}
    for seed in args.seeds:
        if seed in finished:
            continue
        if args.baseline:
            result = one_baseline(args.baseline, args.config, seed, args.extra)
        else:
            result = one_seed(args.config, base / f"seed{seed}", seed, args.extra)
        done["runs"].append(result)
        done |= {"name": args.name, "configs": args.config, "extra": args.extra}
        done["cpu"] = f"{cpu_name()}, {len(os.sched_getaffinity(0))} cores"
        record.write_text(json.dumps(done, indent=2))
        print(json.dumps(result), file=sys.stderr, flush=True)
    runs = [r for r in done["runs"] if r["seed"] in args.seeds]
    done["summary"] = summary(runs)
    record.write_text(json.dumps(done, indent=2))
    print(json.dumps(done["summary"], indent=2))


if __name__ == "__main__":
    main()
