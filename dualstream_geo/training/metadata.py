"""What a checkpoint carries for prediction besides the weights: bands, classes and their
colours, the air grid, the statistics and how the image files are read."""

from __future__ import annotations

from typing import Any

DEFAULT_COLORS = (
    (0, 0, 0),
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
)
#: The checkpoint entry that carries everything prediction needs.
CHECKPOINT_KEY = "dualstream_geo"


def prediction_metadata(task: Any, datamodule: Any | None) -> dict[str, Any]:
    """The ``CHECKPOINT_KEY`` entry of a checkpoint of ``task`` (a DualStreamSegmentation)
    trained on ``datamodule`` (a DualStreamDataModule, or None)."""
    meta: dict[str, Any] = {
        "band_names": list(task.hparams["band_names"]),
        "class_names": task.class_names,
        "class_colors": [list(c) for c in task.class_colors],
        "use_air": task.hparams["use_air"],
        "air_channels": task.hparams["air_channels"],
        "air_scale": task.model.air_reduction,
        "preset": task.hparams["preset"],
        "normalization": "dataset",
    }
    if task.balanced_class_weights:
        meta["class_weights"] = task.balanced_class_weights
    if datamodule is not None and "normalization" in getattr(datamodule, "hparams", {}):
        if datamodule.stats is not None:
            meta["stats"] = datamodule.stats.to_dict()
        meta["patch_size"] = datamodule.patch_size
        meta["air_scale"] = datamodule.hparams["air_scale"]
        # How the image files are read: one file per band, and their nodata value.
        meta["band_files"] = datamodule.hparams["band_files"]
        meta["image_nodata"] = datamodule.hparams["image_nodata"]
        meta["normalization"] = datamodule.hparams["normalization"]
    return meta
