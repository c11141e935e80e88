"""Checks on a prediction's outputs before it starts, and what an interrupted run left."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.join import DualStreamGeoDataset
from ..errors import DualStreamError
from ..paths import check_folder_writable, check_output
from .writer import (
    CLASS_NODATA,
    PROBABILITY_SCALE,
    OutputSpec,
    class_tags,
    read_progress,
)


def output_specs(
    output: str,
    kind: str,
    names: Sequence[str],
    colors: Sequence[tuple[int, int, int]],
    settings: dict[str, str],
) -> list[OutputSpec]:
    """The rasters of a ``kind`` prediction.

    ``output`` (classes or probabilities), and for ``both`` the probabilities beside it as
    ``<stem>_probabilities.tif``.
    """
    specs = []
    if kind in ("class", "both"):
        dtype = "uint8" if len(names) <= 255 else "uint16"
        colormap = dict(enumerate(colors))
        specs.append(
            OutputSpec(
                output,
                1,
                dtype,
                CLASS_NODATA,
                "nearest",
                {**settings, **class_tags(names)},
                ("class",),
                colormap,
                tuple(names),
            )
        )
    if kind in ("probabilities", "both"):
        path = (
            output
            if kind == "probabilities"
            else str(Path(output).with_name(Path(output).stem + "_probabilities.tif"))
        )
        tags = {**settings, **class_tags(names), "scale": f"1/{PROBABILITY_SCALE}"}
        specs.append(OutputSpec(path, len(names), "uint8", 255, "average", tags, tuple(names)))
    return specs


def prediction_inputs(dataset: DualStreamGeoDataset) -> list[str]:
    """Every local file and folder a prediction reads.

    The sources' paths as given and the files they resolve to.
    """
    inputs: set[str] = set()
    for source in [dataset.image, *dataset.air]:
        given = source.paths
        inputs.update(str(p) for p in ([given] if isinstance(given, str | os.PathLike) else given))
        for entry in source.index.filepath:
            inputs.update(p for p, _ in source.channel_files(entry))
    return sorted(inputs)


def check_output_names(specs: list[OutputSpec], inputs: Sequence[str]) -> None:
    """Before anything is written (the lock included).

    Every output is a plain file name in a writable folder that neither is, holds nor lies
    inside an input.

    Raises:
        DualStreamError: naming the output and the input or folder.
    """
    for spec in specs:
        real = check_output(spec.path, inputs, "--output")
        if Path(spec.path).suffix.lower() not in (".tif", ".tiff"):
            raise DualStreamError(
                f"--output {spec.path}: predict writes a GeoTIFF; give a .tif file name"
            )
        check_folder_writable(os.path.dirname(real), "--output")


def check_output_paths(
    specs: list[OutputSpec], dataset: DualStreamGeoDataset, overwrite: bool, resume: bool
) -> None:
    """Every output is a writable file name, not an input, and not silently replaced."""
    check_output_names(specs, prediction_inputs(dataset))
    for spec in specs:
        if os.path.exists(spec.path) and not overwrite:
            raise DualStreamError(f"output {spec.path} exists; pass --overwrite to replace it")


def resumable_rows(spec: OutputSpec, signature: dict[str, Any]) -> int:
    """Rows of an interrupted run to keep; refuses when its inputs or settings differ."""
    rows, previous = read_progress(spec)
    if previous is None:
        return 0
    current = json.loads(json.dumps(signature))  # as stored: tuples become lists
    differing = sorted(
        k for k in current.keys() | previous.keys() if current.get(k) != previous.get(k)
    )
    if differing:
        raise DualStreamError(
            f"--resume: {spec.partial} was written with other {', '.join(differing)}; "
            "rerun with the same inputs and settings, or pass --overwrite to start again"
        )
    return rows


def check_interrupted_parts(
    specs: list[OutputSpec], world_size: int, resume: bool, overwrite: bool
) -> None:
    """What an interrupted run left beside the outputs.

    ``--resume`` continues it only on as many processes as made it, ``--overwrite`` removes
    it, and without either a run refuses to start over it.
    """
    for spec in specs:
        sizes = _world_sizes(spec)
        if not sizes:
            continue
        size = max(sizes)
        if resume and sizes - {world_size}:
            raise DualStreamError(
                f"--resume: {spec.path} was interrupted in a run on {size} process(es); "
                f"resume it with --devices {size} (or start again with --overwrite)"
            )
        if not resume and not overwrite:
            raise DualStreamError(
                f"partial files of {spec.path} exist from an interrupted run on {size} "
                "process(es); pass --resume or --overwrite"
            )
        if overwrite and not resume:
            for leftover in interrupted_files(spec):
                os.remove(leftover)


def interrupted_files(spec: OutputSpec) -> list[str]:
    """The partial and progress files of ``spec`` from runs on any number of processes."""
    folder = os.path.dirname(os.path.abspath(spec.path))
    prefix = f"{os.path.basename(spec.path)}.partial"
    return [
        os.path.join(folder, name)
        for name in os.listdir(folder)
        if name.startswith(prefix) and name.endswith((".tif", ".json"))
    ]


def _world_sizes(spec: OutputSpec) -> set[int]:
    """Process counts of the interrupted runs whose partial files lie beside ``spec.path``.

    1: a single process; N: the parts ``.<rank>ofN``.
    """
    prefix = f"{os.path.basename(spec.path)}.partial"
    sizes = set()
    for path in interrupted_files(spec):
        middle = os.path.basename(path)[len(prefix) :].rsplit(".", 1)[0]
        count = middle.rpartition("of")[2]
        sizes.add(int(count) if count.isdigit() else 1)
    return sizes
