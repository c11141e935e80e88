"""Whole-scene throughput where the time goes (``bench_predict.py --scene``, issue 40).

For one checkpoint and one real scene at the default tile, in fp32 and in bf16 (where the CPU
computes bf16 natively): km2/s end to end (``ScenePredictor.predict``: inputs opened, the aux
gridded and checked, windows read, the model, blending, writing, overviews) against the
pure batched forward over the same windows with their inputs already in memory, and the
phases measured alone: opening and checking the inputs (``ScenePredictor.dataset``), reading
and normalising the windows, the forward. Then the forward with ``channels_last`` and with
``torch.compile``, so that the report says whether they pay on this machine; for a depthwise
detail path, end to end and the forward with the path compiled (``predict --compile always``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from dualstream_geo.data.join import collate_samples
from dualstream_geo.inference import ScenePredictor
from dualstream_geo.inference.compiling import detail_path
from dualstream_geo.inference.reading import WindowDataset, scene_grid, windows_extent
from dualstream_geo.memory import keep_freed_memory
from dualstream_geo.precision import native_bf16


def seconds(work: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``work`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def scene_batches(
    p: ScenePredictor, image: list[str], aux: dict[str, list[str]]
) -> tuple[float, list[tuple[torch.Tensor, torch.Tensor | None]], float, float]:
    """The scene's area (km2), its windows' model inputs batched as ``predict`` batches them
    (windows without a valid pixel left out, as ``predict`` does), and the seconds taken to
    open the inputs and to read the windows."""
    start = time.perf_counter()
    dataset = p.dataset(image, aux)
    opened = time.perf_counter() - start
    grid = scene_grid(dataset.image)
    windows = p.layout(grid).windows
    reader = WindowDataset(dataset, grid, windows)
    start = time.perf_counter()
    with dataset.aux_rows_warped_once(windows_extent(grid, windows)):  # as predict reads
        samples = [reader[i] for i in range(len(windows))]
    batches = []
    for first in range(0, len(samples), p.batch_size):
        batch = collate_samples(samples[first : first + p.batch_size])
        keep = batch["valid"].flatten(1).any(1)
        if keep.any():
            air = batch["air"][keep] if "air" in batch else None
            batches.append((batch["image"][keep], air))
    read = time.perf_counter() - start
    area = grid.height * grid.width * abs(grid.transform.a * grid.transform.e) / 1e6
    return area, batches, opened, read


def forward(p: ScenePredictor, batches: list[tuple[torch.Tensor, torch.Tensor | None]]) -> None:
    """The model over all ``batches`` (inputs already in memory)."""
    for image, air in batches:
        p.probabilities(image, air)


def forward_seconds(
    p: ScenePredictor, batches: list[tuple[torch.Tensor, torch.Tensor | None]], repeats: int
) -> float:
    """Median time of :func:`forward`, after one untimed run (first-touch allocations)."""
    forward(p, batches)
    return seconds(lambda: forward(p, batches), repeats)


def measure(
    checkpoint: str,
    image: list[str],
    aux: dict[str, list[str]],
    out: Path,
    tile: int = 512,
    repeats: int = 3,
    compile_model: bool = True,
    mmap_threshold: int | None = None,
) -> dict[str, Any]:
    """The figures above, one row per precision the machine has natively.

    Args:
        checkpoint: a training checkpoint (e.g. of the zion_dem.yaml recipe).
        image: the scene's image files or folders.
        aux: the aux sources' files by name.
        out: a folder for the maps written.
        tile: the window side (the default 512).
        repeats: runs per timing (the median is reported).
        compile_model: also time the forward under ``torch.compile`` (minutes on a CPU).
        mmap_threshold: glibc's mmap threshold to run with (default: what the predictor
            sets; :data:`~dualstream_geo.memory.MMAP_THRESHOLD_MAX` is what ``dualstream-geo``
            set before 2026-12-07).

    Returns:
        ``{"fp32": {...}, "bf16": {...}}`` (``bf16`` only where the CPU has it natively).
    """
    precisions = ["32", "bf16"] if native_bf16("cpu") else ["32"]
    results: dict[str, Any] = {}
    for precision in precisions:
        p = ScenePredictor.from_checkpoint(checkpoint, tile=tile, precision=precision)
        if mmap_threshold is not None:
            keep_freed_memory(mmap_threshold)
        output = out / f"scene_{precision}.tif"

        def end_to_end(p: ScenePredictor = p, output: Path = output) -> None:
            p.predict(image, aux, output, overwrite=True)

        end_to_end()  # GDAL caches, first-touch allocations
        area, batches, opened, read = scene_batches(p, image, aux)
        forward(p, batches)  # first-touch allocations
        # Alternated, so that each ratio compares runs under the same load on a busy host.
        pairs = [
            (seconds(end_to_end, 1), seconds(lambda: forward(p, batches), 1))  # noqa: B023
            for _ in range(repeats)
        ]
        e2e = statistics.median(e for e, _ in pairs)
        pure = statistics.median(f for _, f in pairs)
        ratio = statistics.median(e / f for e, f in pairs)
        row: dict[str, Any] = {
            "windows": sum(len(b[0]) for b in batches),
            "area_km2": round(area, 1),
            "end_to_end_s": round(e2e, 2),
            "end_to_end_km2_per_s": round(area / e2e, 3),
            "forward_s": round(pure, 2),
            "forward_km2_per_s": round(area / pure, 3),
            "end_to_end_over_forward": round(ratio, 3),
            "pairs_s": [(round(e, 2), round(f, 2)) for e, f in pairs],
            "outside_forward_share": round(1 - pure / e2e, 3),
            "alone_s": {"inputs": round(opened, 2), "reading": round(read, 2)},
        }
        # The predictor's own memory format is in "forward_s"; the other one here.
        model, used = p.model, p.channels_last
        row["channels_last_by_default"] = used
        other = torch.contiguous_format if used else torch.channels_last
        p.channels_last = not used
        p.model = model.to(memory_format=other)  # type: ignore[call-overload]
        other_batches = [(i.contiguous(memory_format=other), a) for i, a in batches]
        name = "forward_contiguous_s" if used else "forward_channels_last_s"
        row[name] = round(forward_seconds(p, other_batches, repeats), 2)
        p.channels_last = used
        own = torch.channels_last if used else torch.contiguous_format
        p.model = model.to(memory_format=own)  # type: ignore[call-overload]
        if compile_model:
            p.model = torch.compile(model)  # type: ignore[assignment]
            start = time.perf_counter()
            for image_batch, air_batch in batches[:1]:
                p.probabilities(image_batch, air_batch)
            row["compile_s"] = round(time.perf_counter() - start, 1)
            row["forward_compiled_s"] = round(forward_seconds(p, batches, repeats), 2)
            p.model = model
        if detail_path(model) is not None:
            # What predict does on scenes of COMPILE_MIN_WINDOWS or more: the path compiled.
            p.compile = "always"
            start = time.perf_counter()
            end_to_end()
            row["first_run_with_path_compiling_s"] = round(time.perf_counter() - start, 1)
            compiled = seconds(end_to_end, repeats)
            row["end_to_end_path_compiled_s"] = round(compiled, 2)
            row["end_to_end_path_compiled_km2_per_s"] = round(area / compiled, 3)
            row["forward_path_compiled_s"] = round(forward_seconds(p, batches, repeats), 2)
        results["bf16" if precision == "bf16" else "fp32"] = row
        print(precision, row, flush=True)
    return results
