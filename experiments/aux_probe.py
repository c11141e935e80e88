"""How much a trained dual-stream model uses its aux stream, on the config's test cells.

Scores the checkpoint with the task's own test loop three times: with the aux stream as
read, with the aux stream absent (the model's learned "air absent" input in its place, as
for a sample without aux data), and with the aux stream of each batch rolled by one sample
(real values from the wrong place). It also records the lite fusion gates of stages 1-2
(FiLM mixed with the unmodulated vision features: 0 ignores the aux, 1 takes the full
modulation): their mean and the share of positions above 0.5. Prints JSON.

    python experiments/aux_probe.py --config experiments/zion.yaml \\
        --config experiments/zion_dem.yaml --checkpoint runs/zion_dem/checkpoints/best.ckpt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Trainer
from scoring import load_experiment
from torch import Tensor, nn

from dualstream_geo.models.fusion import DynamicFusionGate

VARIANTS = ("as read", "absent", "rolled")


class GateRecorder:
    """Running mean of each fusion gate's output and the share of positions above 0.5."""

    def __init__(self, model: nn.Module) -> None:
        self.sums: dict[str, list[float]] = {}
        self.handles = [
            module.register_forward_hook(self._hook(name))
            for name, module in model.named_modules()
            if isinstance(module, DynamicFusionGate)
        ]

    def _hook(self, name: str) -> Any:
        def record(module: nn.Module, args: Any, gate: Tensor) -> None:
            total = self.sums.setdefault(name, [0.0, 0.0, 0.0])
            total[0] += float(gate.float().sum())
            total[1] += float((gate > 0.5).sum())
            total[2] += gate.numel()

        return record

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {"mean": round(s / n, 4), "share_open": round(o / n, 4)}
            for name, (s, o, n) in self.sums.items()
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", action="append", required=True)
    parser.add_argument("--checkpoint", required=True)
    args = parser.parse_args()
    stats = Path(args.checkpoint).parent.parent / "stats.json"
    overrides = [f"--data.stats_path={stats}"] if stats.is_file() else []
    datamodule, task = load_experiment(args.config, overrides)
    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    results: dict[str, Any] = {}
    for variant in VARIANTS:
        model = task.model
        handles = []
        if variant == "absent":
            handles.append(model.register_forward_pre_hook(lambda m, a: (a[0], None)))
        elif variant == "rolled":
            handles.append(
                model.register_forward_pre_hook(lambda m, a: (a[0], torch.roll(a[1], 1, 0)))
            )
        gates = GateRecorder(model) if variant == "as read" else None
        scores = trainer.test(task, datamodule=datamodule, ckpt_path=args.checkpoint, verbose=False)
        for handle in handles:
            handle.remove()
        row = {
            "mean_iou": round(scores[0]["test_AverageJaccardIndex"], 4),
            "overall_accuracy": round(scores[0]["test_OverallAccuracy"], 4),
            "per_class_iou": {
                key.removeprefix("test_ClasswiseJaccardIndex_"): round(value, 4)
                for key, value in scores[0].items()
                if key.startswith("test_ClasswiseJaccardIndex_")
            },
        }
        if gates is not None:
            row["gates"] = gates.summary()
            for handle in gates.handles:
                handle.remove()
        results[variant] = row
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
