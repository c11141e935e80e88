"""What prediction needs besides weights, read from a training checkpoint, and what a run
depends on (for resuming): checkpoint hash and input-file fingerprint."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..data.join import DualStreamGeoDataset
from ..data.normalize import DatasetStats, Normalize, OriginalScaling
from ..data.remote import is_remote, redact, remote_version
from ..errors import DualStreamError
from ..torchfiles import load_torch_file

PathLike = str | os.PathLike[str]


@dataclass
class PredictionMeta:
    """What prediction needs besides weights (stored in checkpoints by the training task).

    ``band_names``: the bands read from the image; any spectral indices in ``stats`` are
    computed from them and appended by :meth:`transform`.
    """

    band_names: tuple[str, ...]
    class_names: list[str]
    class_colors: list[tuple[int, int, int]]
    stats: DatasetStats | None
    use_air: bool = True
    air_scale: int = 8
    checkpoint: str = ""
    checkpoint_sha256: str = ""
    band_files: tuple[str, ...] | None = None
    image_nodata: float | None = None
    #: ``dataset`` (standardised with ``stats``) or ``original`` (the original's scaling).
    normalization: str = "dataset"

    @property
    def index_names(self) -> list[str]:
        """The spectral indices the model takes after the bands (none: [])."""
        return self.stats.index_names if self.stats is not None else []

    def transform(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The sample transform the model was trained with."""
        if self.normalization == "original":
            return OriginalScaling()  # type: ignore[return-value]
        if self.stats is None:
            raise DualStreamError("normalization 'dataset' needs band statistics")
        return Normalize(self.stats)  # type: ignore[return-value]

    def air_fill(self) -> Any:
        """What missing air becomes before the transform (see the join's ``air_fill``)."""
        if self.normalization == "original":
            return float("nan")
        return self.stats.air.mean if self.stats is not None and self.stats.air else 0.0


def load_checkpoint(checkpoint: PathLike) -> tuple[Any, PredictionMeta]:
    """The task and its :class:`PredictionMeta` from a training checkpoint."""
    from ..training.metadata import CHECKPOINT_KEY
    from ..training.task import DualStreamSegmentation

    path = str(checkpoint)
    if not os.path.isfile(path):
        raise DualStreamError(f"{path}: checkpoint not found")
    raw = load_torch_file(path, "dualstream_geo checkpoint")
    if not isinstance(raw, dict) or not {"state_dict", "hyper_parameters"} <= raw.keys():
        raise DualStreamError(f"{path}: not a dualstream_geo checkpoint (a training checkpoint)")
    try:
        task = DualStreamSegmentation.load_from_checkpoint(
            path, map_location="cpu", weights=None, vision_weights=None, air_weights=None
        )
    except Exception as error:  # another model's checkpoint: one short, clear line
        detail = str(error).strip().splitlines()[0][:160] if str(error).strip() else ""
        raise DualStreamError(
            f"{path}: not a dualstream_geo checkpoint ({type(error).__name__}: {detail})"
        ) from None
    extra = raw.get(CHECKPOINT_KEY) or {}
    normalization = extra.get("normalization", "dataset")
    if normalization == "dataset" and "stats" not in extra:
        raise DualStreamError(f"{path}: checkpoint carries no band statistics")
    stats = DatasetStats.from_dict(extra["stats"]) if "stats" in extra else None
    meta = meta_from_task(task, stats, path, normalization)
    meta.air_scale = int(extra.get("air_scale", meta.air_scale))
    meta.band_files = tuple(extra["band_files"]) if extra.get("band_files") else None
    meta.image_nodata = extra.get("image_nodata")
    meta.checkpoint_sha256 = file_sha256(path)
    return task, meta


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_fingerprint(dataset: DualStreamGeoDataset) -> list[list[Any]]:
    """[path, size, mtime_ns] of every input file (remote: [path without credentials, what
    the server says of its version]): a resumed run must read the same data."""
    files: set[str] = set()
    for source in [dataset.image, *dataset.air]:
        for entry in source.index.filepath:
            files.update(
                p if is_remote(p) else os.path.realpath(p) for p, _ in source.channel_files(entry)
            )
    fingerprint = []
    for path in sorted(files):
        if is_remote(path):
            fingerprint.append([redact(path), *remote_version(path)])
            continue
        stat = os.stat(path)
        fingerprint.append([path, stat.st_size, stat.st_mtime_ns])
    return fingerprint


def meta_from_task(
    task: Any,
    stats: DatasetStats | None = None,
    checkpoint: str = "",
    normalization: str = "dataset",
) -> PredictionMeta:
    hparams = getattr(task, "hparams", None)
    if hparams is None or (stats is None and normalization == "dataset"):
        raise DualStreamError(
            "give a checkpoint (ScenePredictor.from_checkpoint) or "
            "meta=PredictionMeta(...) with band statistics"
        )
    # A model's band names end with the indices the transform appends (check_consistency).
    channels = tuple(hparams["band_names"])
    indices = stats.index_names if stats is not None else []
    return PredictionMeta(
        band_names=channels[: len(channels) - len(indices)],
        class_names=list(task.class_names),
        class_colors=list(task.class_colors),
        stats=stats,
        use_air=bool(hparams["use_air"]),
        checkpoint=checkpoint,
        normalization=normalization,
    )
