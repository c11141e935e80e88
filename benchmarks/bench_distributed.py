"""Several processes against one, on the same machine, data and settings, in one run.

1. Training samples/s: ``dualstream-geo fit`` with DDP on N processes against 1 process
   (CPU: N processes x 1 thread against 1 process x N threads, gloo; GPU: N GPUs against 1).
2. Prediction windows/s: ``dualstream-geo predict --devices N`` against ``--devices 1`` on
   one synthetic scene, end to end (process start, checks, model load, COG assembly
   included), and that the two outputs are identical.

Targets where the hardware has N free devices: prediction within 1.1x of ideal scaling,
training at least 0.9 N. On a 2-core CPU the processes share the cores that one process
already uses with 2 threads, so the ideal there is 1x: what is measured is the cost of
running as N processes.

    python benchmarks/bench_distributed.py [--devices 2] [--size 1536] [--tile 256] [--gpu]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import yaml
from bench_predict import make_scene

from dualstream_geo.data import make_demo_scenes
from dualstream_geo.inference import strips

HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).with_name("dualstream-geo"))


def cpu_env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(HERE)}


def fit(root: Path, data: Path, devices: int, steps: int, gpu: bool) -> float:
    """Training samples/s over all ranks, after 2 warm-up steps."""
    root.mkdir(parents=True, exist_ok=True)
    callbacks = root / "callbacks.yaml"
    callbacks.write_text(
        yaml.safe_dump(
            {
                "trainer": {
                    "callbacks": [
                        {
                            "class_path": "throughput.Throughput",
                            "init_args": {"path": str(root / "throughput.json")},
                        }
                    ]
                }
            }
        )
    )
    batch = 4
    args = [
        "fit",
        f"--config={HERE.parent / 'experiments' / 'demo.yaml'}",
        f"--config={callbacks}",
        f"--data.root={data}",
        f"--trainer.default_root_dir={root}",
        f"--data.stats_path={root / 'stats.json'}",
        "--trainer.max_epochs=1",
        f"--data.length={batch * devices * (steps + 3)}",
        f"--data.batch_size={batch}",
        "--model.freeze_epochs=0",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.accelerator={'gpu' if gpu else 'cpu'}",
        f"--trainer.devices={devices}",
        "--trainer.strategy=ddp" if devices > 1 else "--trainer.strategy=auto",
    ]
    threads = 1 if devices > 1 else (os.cpu_count() or 1)
    done = subprocess.run([CLI, *args], env=cpu_env(threads), capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads((root / "throughput.json").read_text())
    return result["samples"] / result["seconds"]


def predict(checkpoint: Path, scene: Path, output: Path, devices: int, tile: int) -> float:
    args = [
        "predict",
        f"--checkpoint={checkpoint}",
        f"--image={scene / 'image'}",
        f"--gems={scene / 'gems'}",
        f"--air-pollution={scene / 'air'}",
        f"--output={output}",
        f"--tile={tile}",
        "--batch-size=4",
        f"--devices={devices}",
    ]
    start = time.perf_counter()
    done = subprocess.run(
        [CLI, *args], env=cpu_env(os.cpu_count() or 1), capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--size", type=int, default=1536)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_demo_scenes(root / "demo", seed=0)
        one = fit(root / "fit1", root / "demo", 1, args.steps, args.gpu)
        many = fit(root / "fitN", root / "demo", args.devices, args.steps, args.gpu)
        checkpoint = root / "fit1" / "checkpoints" / "last.ckpt"
        scene = make_scene(root / "scene", args.size)
        windows = sum(len(s) for s in strips(args.size, args.size, args.tile, 0.25))
        single = predict(checkpoint, scene, root / "one.tif", 1, args.tile)
        shared = predict(checkpoint, scene, root / "many.tif", args.devices, args.tile)
        with rasterio.open(root / "one.tif") as a, rasterio.open(root / "many.tif") as b:
            identical = bool(np.array_equal(a.read(), b.read()))
    n = args.devices
    report = {
        "devices": n,
        "train_samples_per_s": {"1": round(one, 2), str(n): round(many, 2)},
        "train_scaling": round(many / one, 2),
        "predict_windows": windows,
        "predict_seconds": {"1": round(single, 1), str(n): round(shared, 1)},
        "predict_windows_per_s": {
            "1": round(windows / single, 2),
            str(n): round(windows / shared, 2),
        },
        "predict_scaling": round(single / shared, 2),
        "predict_identical": identical,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
