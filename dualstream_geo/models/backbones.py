"""Vision encoders of the architectures TorchGeo publishes weights for.

ResNet-18/50, ViT-S/16 (timm) and Swin-V2 T/B (torchvision), with any number of bands.

Each returns its own feature maps (``out_channels``, ``reductions``); the model puts a
:class:`FeatureNeck` after it that resamples them onto SegFormer-B1's grid and widths
((64, 128, 320, 512) at 1/4 ... 1/32 of the image), so that the air encoder, the fusion and
the decoder are the SegFormer model's: switching the vision encoder changes nothing else.
:meth:`TorchGeoEncoder.load_pretrained` loads TorchGeo's weights (:mod:`~.pretrained`),
its stem rearranged onto the image's bands by name; :meth:`TorchGeoEncoder.match_data`
sets the input so that the stem sees the raw values in the weights' normalisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any, override

import timm
import torch
import torchvision
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

from ..errors import DualStreamError
from .pretrained import PretrainedWeights, stem_for_channels
from .registry import Encoder, register_encoder
from .weights import load_into

#: SegFormer-B1's stage widths: what the neck gives the fusion.
NECK_WIDTHS = (64, 128, 320, 512)
#: The stages' reductions the fusion and decoders take.
NECK_REDUCTIONS = (4, 8, 16, 32)


class FeatureNeck(nn.Module):
    """Resample encoder features onto the fusion's grid and widths.

    ``[(B, c_i, H/r_i, W/r_i)] -> [(B, w_i, H/s_i, W/s_i)]``: x2 transposed convolutions
    (with GELU) where ``r_i > s_i`` (a ViT's single 1/16 map, as ViTDet's simple pyramid),
    max pooling where ``r_i < s_i``, then a 1 x 1 convolution to ``w_i``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        in_reductions: Sequence[int],
        out_channels: Sequence[int] = NECK_WIDTHS,
        out_reductions: Sequence[int] = NECK_REDUCTIONS,
    ) -> None:
        super().__init__()
        self.stages = nn.ModuleList()
        for width, reduction, out, target in zip(
            in_channels, in_reductions, out_channels, out_reductions, strict=True
        ):
            layers: list[nn.Module] = []
            while reduction > target:
                layers += [nn.ConvTranspose2d(width, width // 2, 2, stride=2), nn.GELU()]
                width, reduction = width // 2, reduction // 2
            if reduction < target:
                layers.append(nn.MaxPool2d(target // reduction))
            layers.append(nn.Conv2d(width, out, 1))
            self.stages.append(nn.Sequential(*layers))

    @override
    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [stage(f) for stage, f in zip(self.stages, features, strict=True)]


class TorchGeoEncoder(Encoder):
    """A backbone TorchGeo publishes weights for, fed (B, in_channels, H, W).

    ``input_scale`` and ``input_shift`` (buffers, one per channel; identity until
    :meth:`match_data`) turn the model's standardised input back into the raw values in
    the weights' normalisation for the channels the weights have a band for.
    """

    #: TorchGeo's model name of the architecture (weights for another are refused).
    architecture: str
    #: The state-dict key of the first convolution's weight.
    stem_key: str
    #: Keys of the classification head, dropped from the weights.
    head_prefixes: tuple[str, ...] = ("fc.", "head.")
    #: The widths the neck resamples the features onto.
    neck_widths = NECK_WIDTHS
    backbone: nn.Module
    input_scale: Tensor
    input_shift: Tensor
    weights_mean: Tensor
    weights_std: Tensor

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("input_scale", torch.ones(1, in_channels, 1, 1))
        self.register_buffer("input_shift", torch.zeros(1, in_channels, 1, 1))
        # The weights' normalisation of each channel (std 0: a channel without a band).
        self.register_buffer("weights_mean", torch.zeros(in_channels))
        self.register_buffer("weights_std", torch.zeros(in_channels))
        #: The weights it started from (stored in the state dict: predictions name them).
        self.weights_name = ""

    @override
    def get_extra_state(self) -> dict[str, str]:
        return {"weights": self.weights_name}

    @override
    def set_extra_state(self, state: Any) -> None:
        self.weights_name = str(state.get("weights", "")) if isinstance(state, dict) else ""

    def load_pretrained(self, weights: PretrainedWeights, channels: Sequence[str]) -> None:
        """Load ``weights`` into the backbone, the stem matched to ``channels`` by name.

        Raises:
            DualStreamError: the weights are for another architecture, or their tensors
                do not fit (the first wrong key is named).
        """
        if weights.architecture and weights.architecture != self.architecture:
            raise DualStreamError(
                f"{weights.name}: weights of a {weights.architecture}, the vision encoder is "
                f"a {self.architecture}"
            )
        state = {k: v for k, v in weights.state.items() if not k.startswith(self.head_prefixes)}
        if self.stem_key not in state:
            raise DualStreamError(
                f"{weights.name}: no {self.stem_key} (not {self.architecture} weights)"
            )
        state[self.stem_key], matched = stem_for_channels(state[self.stem_key], weights, channels)
        load_into(self.backbone, state, weights.name)
        self.weights_name = weights.name
        for channel, band in enumerate(matched):
            if band is not None and weights.std:
                self.weights_mean[channel] = weights.mean[band]
                self.weights_std[channel] = weights.std[band]

    def match_data(self, mean: Sequence[float], std: Sequence[float]) -> None:
        """Feed the weights' channels their own normalisation of the raw values.

        The model's input is ``(raw - mean) / std`` with the data's statistics; the
        weights were trained on ``(raw - weights_mean) / weights_std``. Channels without
        a band (or weights without a normalisation) keep the standardised input.

        Args:
            mean: the data's mean of the first ``len(mean)`` channels (the bands).
            std: their standard deviations.
        """
        for channel, (m, s) in enumerate(zip(mean, std, strict=True)):
            if self.weights_std[channel] > 0:
                self.input_scale[0, channel] = s / self.weights_std[channel]
                self.input_shift[0, channel] = (m - self.weights_mean[channel]) / (
                    self.weights_std[channel]
                )

    @override
    def forward(self, x: Tensor) -> list[Tensor]:
        scale = self.input_scale.to(x.dtype)
        return self.features(x * scale + self.input_shift.to(x.dtype))

    def features(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - interface
        """(B, C, H, W) image -> the encoder's feature maps, finest first."""
        raise NotImplementedError


class ResNetEncoder(TorchGeoEncoder):
    """timm's ResNet (TorchGeo's ``resnet18`` / ``resnet50``): its four stages.

    (B, C, H, W) -> [(B, c1, H/4, W/4), ..., (B, c4, H/32, W/32)], c = (64, 128, 256, 512)
    for ResNet-18, (256, 512, 1024, 2048) for ResNet-50. Convolutions and BatchNorm only: a
    pixel's features depend on its neighbourhood alone, in either ``context``.
    """

    stem_key = "conv1.weight"

    def __init__(
        self,
        architecture: str = "resnet50",
        in_channels: int = 4,
        drop_path_rate: float = 0.0,
        local: bool = True,
    ) -> None:
        super().__init__(in_channels)
        self.architecture = architecture
        self.backbone = timm.create_model(
            architecture,
            features_only=True,
            out_indices=(1, 2, 3, 4),
            in_chans=in_channels,
            drop_path_rate=drop_path_rate,
        )
        info: Any = self.backbone.feature_info
        self.out_channels = tuple(info.channels())
        self.reductions = tuple(info.reduction())

    @override
    def features(self, x: Tensor) -> list[Tensor]:
        return list(self.backbone(x))


def _window_only(name: str, local: bool) -> None:
    if local:
        raise DualStreamError(
            f"vision_encoder {name} attends over the whole window (absolute positions, or "
            "windows fixed to the window's corner), so a pixel's class would depend on the "
            "window: set model.architecture.context window"
        )


class ViTEncoder(TorchGeoEncoder):
    """timm's ViT-S/16 (TorchGeo's ``vit_small_patch16_224``).

    The tokens of blocks 3, 6, 9 and 12 as maps, [(B, 384, H/16, W/16)] x 4 (the neck makes
    the pyramid).

    Position embeddings are resampled to the input's token grid. Needs ``context``
    ``window``: attention and positions span the whole window.
    """

    stem_key = "patch_embed.proj.weight"
    head_prefixes = ("head.", "norm.", "fc_norm.")
    architecture = "vit_small_patch16_224"

    def __init__(self, in_channels: int = 4, drop_path_rate: float = 0.0, local: bool = False):
        _window_only("vit-small16", local)
        super().__init__(in_channels)
        self.backbone = timm.create_model(
            self.architecture,
            in_chans=in_channels,
            dynamic_img_size=True,
            num_classes=0,
            drop_path_rate=drop_path_rate,
        )
        # The final norm follows block 12, whose tokens are taken before it: unused.
        self.backbone.norm = nn.Identity()
        width = int(self.backbone.embed_dim)  # type: ignore[arg-type]
        self.out_channels = (width,) * 4
        self.reductions = (16,) * 4

    @override
    def features(self, x: Tensor) -> list[Tensor]:
        backbone: Any = self.backbone
        maps = backbone.forward_intermediates(
            x, indices=[2, 5, 8, 11], intermediates_only=True, output_fmt="NCHW"
        )
        return list(maps)


class SwinV2Encoder(TorchGeoEncoder):
    """torchvision's Swin-V2 (TorchGeo's ``swin_v2_t`` / ``swin_v2_b``, as Satlas).

    Its four stages, [(B, c1, H/4, W/4), ..., (B, c4, H/32, W/32)], c = (96, 192, 384, 768)
    for T, (128, 256, 512, 1024) for B. Needs ``context`` ``window``: its attention windows
    are placed from the window's corner.
    """

    #: The stages are ``backbone`` (torchvision's ``features``): keys without ``features.``.
    stem_key = "0.0.weight"
    reductions = (4, 8, 16, 32)

    def __init__(
        self,
        architecture: str = "swin_v2_b",
        in_channels: int = 4,
        drop_path_rate: float = 0.0,
        local: bool = False,
    ) -> None:
        _window_only(architecture.replace("_", "-"), local)
        super().__init__(in_channels)
        self.architecture = architecture
        model = getattr(torchvision.models, architecture)(weights=None)
        # torchvision's builders fix the stochastic depth (0.2 for T, 0.5 for B); this
        # project's rises linearly to ``drop_path_rate``, as in its other encoders.
        depths = [m for m in model.modules() if isinstance(m, StochasticDepth)]
        for i, layer in enumerate(depths):
            layer.p = drop_path_rate * i / max(len(depths) - 1, 1)
        stem = model.features[0][0]
        # TorchGeo's Satlas weights replace the RGB stem the same way.
        model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 4, stride=4)
        # Only the stages run: the final norm and head would be parameters without gradients.
        self.backbone = model.features
        self.out_channels = tuple(
            int(model.features[i][-1].norm1.normalized_shape[0]) for i in (1, 3, 5, 7)
        )

    @override
    def load_pretrained(self, weights: PretrainedWeights, channels: Sequence[str]) -> None:
        # TorchGeo's files hold the whole model: its final norm and head are not loaded.
        state = {
            k.removeprefix("features."): v
            for k, v in weights.state.items()
            if k.startswith("features.")
        }
        super().load_pretrained(replace(weights, state=state), channels)

    @override
    def features(self, x: Tensor) -> list[Tensor]:
        out = []
        stages: Any = self.backbone
        for i, layer in enumerate(stages):
            x = layer(x)
            if i % 2:
                out.append(x.permute(0, 3, 1, 2))
        return out


register_encoder("resnet18")(partial(ResNetEncoder, "resnet18"))
register_encoder("resnet50")(partial(ResNetEncoder, "resnet50"))
register_encoder("vit-small16")(ViTEncoder)
register_encoder("swin-v2-t")(partial(SwinV2Encoder, "swin_v2_t"))
register_encoder("swin-v2-b")(partial(SwinV2Encoder, "swin_v2_b"))
