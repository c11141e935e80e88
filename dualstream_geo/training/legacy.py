"""Checkpoints written before the input spec (format 1), converted on read.

Their hyper-parameters held the classes, bands and air settings beside the model's
(``num_classes``, ``labels``, ``band_names``, ``use_air``, ...), the loss terms as separate
arguments (``focal_weight``, ...), and a metadata dict ``dualstream_geo`` written by hand
(band names, statistics, air grid; ``import-original`` wrote its own variant). The only aux
stream that existed then was the original's GEMS + CO/NO2/SO2 (48 channels).
"""

from __future__ import annotations

from typing import Any

from ..data.auxiliary.spec import original_aux
from ..data.normalize import DatasetStats
from ..data.spec import ABSENT_AUX_CHANNELS, ClassSpec, ImageSpec, InputSpec
from ..errors import DualStreamError

#: Format-1 hyper-parameters that the input spec holds now.
SPEC_KEYS = (
    "num_classes",
    "labels",
    "class_colors",
    "in_channels",
    "air_channels",
    "band_names",
    "use_air",
    "ignore_index",
)
#: Format-1 hyper-parameters that are ``loss`` settings now.
LOSS_KEYS = (
    "focal_weight",
    "lovasz_weight",
    "dice_weight",
    "ce_weight",
    "class_weights",
    "class_balance",
    "focal_alpha",
    "focal_gamma",
    "lovasz_form",
    "aux_weights",
)


def is_legacy(checkpoint: dict[str, Any]) -> bool:
    """True for a format-1 checkpoint (its hyper-parameters name the classes)."""
    entry = checkpoint.get("dualstream_geo")
    hparams = checkpoint.get("hyper_parameters") or {}
    return isinstance(entry, dict) and "format" not in entry and "num_classes" in hparams


def legacy_hparams(hparams: dict[str, Any]) -> dict[str, Any]:
    """Format-1 task hyper-parameters in today's form: spec keys dropped, loss keys grouped."""
    out = {k: v for k, v in hparams.items() if k not in SPEC_KEYS and k not in LOSS_KEYS}
    out["loss"] = {k: hparams[k] for k in LOSS_KEYS if k in hparams}
    return out


def legacy_spec(checkpoint: dict[str, Any]) -> InputSpec:
    """The :class:`InputSpec` of a format-1 checkpoint.

    Raises:
        DualStreamError: an air stream other than the original's 48 channels (none was
            possible then).
    """
    hparams = checkpoint["hyper_parameters"]
    meta = checkpoint["dualstream_geo"]
    stats = DatasetStats.from_dict(meta["stats"]) if meta.get("stats") else None
    channels = list(meta.get("band_names") or hparams["band_names"])
    indices = stats.index_names if stats is not None else []
    bands = channels[: len(channels) - len(indices)]
    use_air = bool(meta.get("use_air", hparams.get("use_air", True)))
    air_channels = int(meta.get("air_channels", hparams.get("air_channels", 48)))
    if use_air and air_channels != ABSENT_AUX_CHANNELS:
        raise DualStreamError(
            f"a format-1 checkpoint with {air_channels} air channels: only the original's "
            f"{ABSENT_AUX_CHANNELS} existed then"
        )
    names = meta.get("class_names") or hparams.get("labels")
    names = names or [f"class_{i}" for i in range(int(hparams["num_classes"]))]
    colors = meta.get("class_colors") or hparams.get("class_colors")
    return InputSpec(
        image=ImageSpec(
            bands=tuple(bands),
            band_files=tuple(meta["band_files"]) if meta.get("band_files") else None,
            nodata=meta.get("image_nodata"),
            indices=tuple(indices),
        ),
        classes=ClassSpec(
            names=tuple(names),
            colors=tuple(tuple(c) for c in colors) if colors else None,  # type: ignore[misc]
            ignore_index=int(hparams.get("ignore_index", 255)),
        ),
        aux=original_aux() if use_air else (),
        aux_scale=int(meta.get("air_scale", 8)),
        normalization=meta.get("normalization", "dataset"),
        stats=stats,
    )
