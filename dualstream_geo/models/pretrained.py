"""TorchGeo's pretrained weights for the vision stream: found by name or file, offline first.

``--model.vision_weights`` takes a TorchGeo weights name (``ResNet50_Weights.
LANDSAT_OLI_SR_MOCO``, resolved with :func:`torchgeo.models.get_weight`: its file, band list
and normalisation) or a local file. A name is read from the torch hub cache when its file is
there (``$TORCH_HOME/hub/checkpoints``, where TorchGeo downloads it) and downloaded
otherwise; a local file with TorchGeo's file name (``resnet50_landsat_oli_sr_moco-ff580dad.
pth``) is recognised as those weights, so an offline machine needs only the file. A file of
another name is loaded by its keys, without band names.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import Tensor
from torchvision.models._api import WeightsEnum
from torchvision.transforms import v2

from ..errors import DualStreamError
from .sensor_bands import match_bands, sensor_of
from .weights import read_state_dict, strip_prefixes

log = logging.getLogger(__name__)

#: ``<Architecture>_Weights.<MEMBER>``: TorchGeo's weights names.
WEIGHTS_NAME = re.compile(r"^[A-Za-z0-9_]+_Weights\.[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class PretrainedWeights:
    """Weights for a vision encoder and what they were trained on.

    ``architecture`` is TorchGeo's model name (``resnet50``, ``vit_small_patch16_224``,
    ``swin_v2_b``; empty for a file TorchGeo does not publish), ``bands`` the band
    identifiers the stem takes in order (empty when unknown), ``mean`` and ``std`` the
    normalisation the weights expect (``(x - mean) / std`` of the raw values, one per band).
    """

    name: str
    architecture: str
    bands: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    state: dict[str, Tensor]

    @property
    def sensor(self) -> str:
        """The sensor of :data:`~.sensor_bands.SENSORS` the band identifiers belong to."""
        return sensor_of(self.name, self.bands)


def _normalisation(weights: WeightsEnum, bands: int) -> tuple[tuple[float, ...], ...]:
    """The mean and std of the ``Normalize`` in a TorchGeo weights' transforms, per band."""
    transforms = weights.transforms
    for module in transforms.modules() if isinstance(transforms, torch.nn.Module) else ():
        if isinstance(module, v2.Normalize):
            mean, std = list(module.mean), list(module.std)
            if len(mean) == 1:
                mean, std = mean * bands, std * bands
            return tuple(float(m) for m in mean), tuple(float(s) for s in std)
    return (0.0,) * bands, (1.0,) * bands


@cache
def torchgeo_weights() -> dict[str, WeightsEnum]:
    """Every weights TorchGeo publishes, by name (``ResNet50_Weights.LANDSAT_OLI_SR_MOCO``)."""
    from torchgeo.models import get_model_weights, list_models

    found: dict[str, WeightsEnum] = {}
    for model in list_models():
        try:
            enum: Any = get_model_weights(model)  # an Enum class: iterating gives its members
            members: list[WeightsEnum] = list(enum)
        except KeyError:  # a model TorchGeo lists without published weights
            continue
        for member in members:
            found.setdefault(str(member), member)
    return found


def file_name(weights: WeightsEnum) -> str:
    """The file name TorchGeo downloads ``weights`` to (the last part of its URL)."""
    return os.path.basename(urlparse(weights.url).path)


def cached_path(weights: WeightsEnum) -> Path:
    """Where torch's hub cache keeps (or will keep) the file of ``weights``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name(weights)


def _described(name: str, weights: WeightsEnum, state: dict[str, Tensor]) -> PretrainedWeights:
    meta = weights.meta
    bands = tuple(str(b) for b in meta.get("bands", ()))
    mean, std = _normalisation(weights, len(bands) or int(meta.get("in_chans", 0)))
    return PretrainedWeights(name, str(meta.get("model", "")), bands, mean, std, state)


def _download(name: str, weights: WeightsEnum) -> dict[str, Tensor]:
    try:
        state = weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except OSError as error:  # no connection, no route, refused: one line, with the way out
        raise DualStreamError(
            f"{name}: cannot download {weights.url} ({error}); on a machine without internet "
            f"copy that file to {cached_path(weights)} or pass its path as "
            "--model.vision_weights"
        ) from None
    return strip_prefixes(dict(state))


def resolve_weights(source: str | os.PathLike[str]) -> PretrainedWeights:
    """The weights ``source`` names: a TorchGeo weights name or a state-dict file.

    Args:
        source: ``ResNet50_Weights.LANDSAT_OLI_SR_MOCO`` (any name
            :func:`torchgeo.models.get_weight` knows) or a ``.pth`` / ``.safetensors`` file.

    Returns:
        The state dict with the weights' architecture, bands and normalisation (known for
        a name, and for a file that has the name TorchGeo publishes it under).

    Raises:
        DualStreamError: a missing file, an unknown name, or a download that failed.
    """
    source = str(source)
    if os.path.isfile(source):
        state = strip_prefixes(read_state_dict(source))
        by_file = {file_name(w): (n, w) for n, w in torchgeo_weights().items()}
        if os.path.basename(source) in by_file:
            name, weights = by_file[os.path.basename(source)]
            return _described(name, weights, state)
        return PretrainedWeights(source, "", (), (), (), state)
    if WEIGHTS_NAME.match(source):
        weights = torchgeo_weights().get(source)
        if weights is None:
            raise DualStreamError(
                f"{source}: not one of TorchGeo's weights (torchgeo.models.list_models() and "
                "get_model_weights(model) list them)"
            )
        return _described(source, weights, _download(source, weights))
    raise DualStreamError(
        f"{source}: weights file not found (give a file, or a TorchGeo weights name such as "
        "ResNet50_Weights.LANDSAT_OLI_SR_MOCO)"
    )


def stem_for_channels(
    stem: Tensor, weights: PretrainedWeights, channels: Sequence[str]
) -> tuple[Tensor, list[int | None]]:
    """A pretrained stem (out, weights bands, k, k) rearranged for the model's channels.

    Each channel that is one of the weights' bands (by identifier or common name:
    :mod:`~.sensor_bands`) takes that band's filter; the others (indices, early-fused aux
    channels, bands the sensor lacks) start from zero filters, so that the first features
    are the pretrained ones of the bands that match.

    Args:
        stem: the pretrained stem weight.
        weights: the weights it comes from (their band list).
        channels: the model's image channels, in order.

    Returns:
        The stem (out, len(channels), k, k) and, per channel, the weights band it took.

    Raises:
        DualStreamError: no channel is one of the weights' bands, or the weights name no
            bands and their stem's width is not the model's.
    """
    if not weights.bands:
        if stem.shape[1] != len(channels):
            raise DualStreamError(
                f"{weights.name}: its stem takes {stem.shape[1]} bands, unnamed, and the image "
                f"has {len(channels)} channels; give the TorchGeo weights name (or its file "
                "under TorchGeo's file name) so that the bands can be matched by name"
            )
        return stem, list(range(len(channels)))
    matched = match_bands(channels, weights.bands, weights.sensor)
    if all(i is None for i in matched):
        raise DualStreamError(
            f"{weights.name}: none of the image channels ({', '.join(channels)}) is one of "
            f"its bands ({', '.join(weights.bands)}); name the image bands by what they "
            "measure (blue, green, red, nir, swir16, ...) or by the sensor's band identifiers"
        )
    zeros = torch.zeros_like(stem[:, 0])
    adapted = torch.stack([stem[:, i] if i is not None else zeros for i in matched], dim=1)
    unused = [b for j, b in enumerate(weights.bands) if j not in matched]
    log.warning(
        "%s: the stem's filters of %s go to channels %s; %s start from zero filters%s",
        weights.name,
        ", ".join(weights.bands[i] for i in matched if i is not None),
        ", ".join(c for c, i in zip(channels, matched, strict=True) if i is not None),
        ", ".join(c for c, i in zip(channels, matched, strict=True) if i is None) or "no channel",
        f"; bands the image lacks ({', '.join(unused)}) are dropped" if unused else "",
    )
    return adapted, matched


def scaling_warning(
    weights_name: str,
    channels: Sequence[str],
    expected_mean: Sequence[float],
    expected_std: Sequence[float],
    data_mean: Sequence[float],
    data_max: Sequence[float],
) -> str | None:
    """A warning when the data's values are not in the units the weights were trained on.

    The weights expect ``(x - expected_mean) / expected_std`` of their raw values; with a
    mean of 0 that is ``x / std`` of values from 0 to about ``std`` (SSL4EO-L's 8-bit
    values / 255, Satlas's), otherwise values within a few ``std`` of the mean.

    Args:
        weights_name: named in the warning.
        channels: the matched channels, in order.
        expected_mean: per channel, the weights' normalisation mean.
        expected_std: per channel, the weights' normalisation std.
        data_mean: per channel, the training data's mean (raw values).
        data_max: per channel, the training data's maximum.

    Returns:
        One line naming the first channel that is off, or None when every channel fits.
    """
    for channel, mean, std, value, top in zip(
        channels, expected_mean, expected_std, data_mean, data_max, strict=True
    ):
        low, high = (0.0, std) if mean == 0 else (mean - 3 * std, mean + 3 * std)
        if not low <= value <= high or (mean == 0 and top > 2 * std):
            return (
                f"{weights_name} expects raw values of about {low:g} to {high:g} "
                f"(normalised as (x - {mean:g}) / {std:g}); channel {channel} of the data has "
                f"mean {value:.4g} and maximum {top:.4g}: other units (scaled integers where "
                "the weights expect 8-bit values or reflectance, or another product: SR "
                "against TOA). The stem then starts from inputs unlike its training's: "
                "rescale the image to the weights' units, or expect the first epochs to adapt it"
            )
    return None
