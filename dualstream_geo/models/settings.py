"""The model's settings: ArchitectureSettings, and the checks of DualStreamDFormer's.

The training task takes them as ``architecture`` (``model.architecture.preset: lite`` in a
config, ``--model.architecture.vision_encoder segformer-b0`` on the command line), keeps
them as plain values in its hyper-parameters, and builds
:class:`~dualstream_geo.models.DualStreamDFormer` from them and the input spec. Configs and
checkpoints that give them flat (``model.preset``) are converted when read
(:mod:`~dualstream_geo.training.renamed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from ..errors import DualStreamError
from .detail import DETAIL_DESIGNS
from .locality import CONTEXTS

TASKS = ("binary", "multiclass")
PRESETS = ("original", "lite")
#: The lite air encoder's stem: ``layernorm`` is that of lite checkpoints written before it.
AUX_STEMS = ("linear", "layernorm")


@dataclass(frozen=True)
class ArchitectureSettings:
    """How :class:`~dualstream_geo.models.DualStreamDFormer` is built (besides its inputs).

    Attributes:
        preset: ``original`` (the original architecture) or ``lite``.
        vision_encoder: ``segformer-b0``, ``-b1``, ``-b2``; or an architecture TorchGeo
            publishes weights for: ``resnet18``, ``resnet50`` (either context),
            ``vit-small16``, ``swin-v2-t``, ``swin-v2-b`` (``context: window``), their
            features resampled onto SegFormer-B1's by a neck
            (:mod:`~dualstream_geo.models.backbones`).
        use_boundary_refine: the original preset's classifier reads the boundary branch.
        gate_twice: the original preset evaluates its stage 1-2 gate twice.
        image_detail: a full-resolution image path in the decoder (head ``aux_detail``).
        detail_aux: that path also reads the aux stream on the image grid (dual fusion).
        detail_design: that path's layers: ``dense`` 3 x 3 convolutions; ``separable``
            (depthwise and 1 x 1: a fifth of the FLOP, less accurate on Zion); or
            ``spectral`` (a 64-wide 1 x 1 stem, then residual separable layers: a fifth of
            the FLOP); or ``spectral_wide`` (the spectral path merged 64 wide: a quarter
            of the FLOP, the dense path's accuracy on zion_dem.yaml in 32 epochs;
            :mod:`~dualstream_geo.models.detail`, experiments/README.md).
        context: ``local`` (new models): every operation sees a bounded neighbourhood of a
            pixel, so its class does not depend on the prediction window; ``window``:
            attention, GroupNorm and pooling over the whole input, as the original and
            models before 2026-12-06 (:mod:`~dualstream_geo.models.locality`).
        aux_stem: the lite air encoder's stem: ``linear`` keeps the level of the aux values;
            ``layernorm`` is the stem of lite checkpoints written before it (which saturates
            a one-channel stream; :class:`~dualstream_geo.models.air.ConvNeXtAirEncoder`).
        drop_path_rate: stochastic depth of the encoders.
        modality_dropout: probability of replacing a training sample's aux stream by the
            model's "aux absent" input.
    """

    preset: Literal["original", "lite"] = "original"
    vision_encoder: str = "segformer-b1"
    use_boundary_refine: bool = True
    gate_twice: bool = False
    image_detail: bool = False
    detail_aux: bool = True
    detail_design: Literal["dense", "separable", "spectral", "spectral_wide"] = "dense"
    context: Literal["local", "window"] = "local"
    aux_stem: Literal["linear", "layernorm"] = "linear"
    drop_path_rate: float = 0.1
    modality_dropout: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain values: what the task's hyper-parameters and checkpoints hold."""
        return asdict(self)


#: The settings' names, in order.
ARCHITECTURE_FIELDS = tuple(field.name for field in fields(ArchitectureSettings))


def _one_of(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise DualStreamError(f"{name} must be one of {tuple(allowed)}, got {value!r}")


def check_settings(
    *,
    num_classes: int,
    task: str,
    preset: str,
    in_channels: int,
    band_names: Sequence[str],
    modality_dropout: float,
    aux_stem: str,
    aux_scale: int,
    context: str,
    detail_design: str,
) -> None:
    """Refuse :class:`DualStreamDFormer` settings that do not fit together, before building.

    Raises:
        DualStreamError: the first setting that is wrong, named, with what it may be.
    """
    _one_of("context", context, CONTEXTS)
    if preset == "original" and aux_scale != 8:
        raise DualStreamError(
            f"aux_scale {aux_scale}: the original preset reads the aux stream at 1/8 of "
            "the image; the lite preset also takes 4, 2 or 1"
        )
    _one_of("detail_design", detail_design, DETAIL_DESIGNS)
    _one_of("aux_stem", aux_stem, AUX_STEMS)
    _one_of("task", task, TASKS)
    _one_of("preset", preset, PRESETS)
    if task == "binary" and num_classes != 2:
        raise DualStreamError(
            f"task='binary' needs num_classes=2 (background, target), got {num_classes}"
        )
    if len(band_names) != in_channels:
        raise DualStreamError(
            f"band_names has {len(band_names)} names, in_channels is {in_channels}"
        )
    if not 0.0 <= modality_dropout <= 1.0:
        raise DualStreamError(f"modality_dropout must be in [0, 1], got {modality_dropout}")
