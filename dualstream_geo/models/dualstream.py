"""DualStream-DFormer: a SegFormer vision encoder fused stage by stage with a ConvNeXt air
encoder, decoded by an ASPP / attention-gate decoder with deep supervision."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import DualStreamError
from . import air as _air  # noqa: F401  (registers convnext-air)
from . import vision as _vision  # noqa: F401  (registers segformer-b*)
from .decoder import DualStreamDecoder
from .fusion import StageFusion
from .registry import build_encoder
from .weights import load_weights

TASKS = ("binary", "multiclass")
STEM_KEY = "stages.0.patch_embeddings.proj.weight"


class DualStreamDFormer(nn.Module):
    """Image (B, in_channels, H, W) + air (B, air_channels, H/8, W/8) -> logits.

    ``forward`` returns ``{"final": (B, K, H, W), "aux_f2": (B, K, H/8, W/8),
    "aux_f3": (B, K, H/16, W/16)}`` with K = 1 for ``task="binary"`` and ``num_classes``
    otherwise. H and W must be multiples of 32. ``air=None`` (air data missing) feeds a
    learned "air absent" input through the same path; ``modality_dropout`` replaces the air
    of each training sample with it at that probability.
    """

    def __init__(
        self,
        num_classes: int,
        task: str = "multiclass",
        in_channels: int = 4,
        air_channels: int = 48,
        band_names: Sequence[str] = ("blue", "green", "red", "nir"),
        vision_encoder: str = "segformer-b1",
        air_encoder: str = "convnext-air",
        vision_weights: str | os.PathLike[str] | None = None,
        air_weights: str | os.PathLike[str] | None = None,
        drop_path_rate: float = 0.1,
        modality_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise DualStreamError(f"task must be one of {TASKS}, got {task!r}")
        if len(band_names) != in_channels:
            raise DualStreamError(
                f"band_names has {len(band_names)} names, in_channels is {in_channels}"
            )
        if not 0.0 <= modality_dropout <= 1.0:
            raise DualStreamError(f"modality_dropout must be in [0, 1], got {modality_dropout}")
        self.num_classes = num_classes
        self.task = task
        self.in_channels = in_channels
        self.air_channels = air_channels
        self.band_names = tuple(band_names)
        self.modality_dropout = modality_dropout
        self.air_reduction = 8

        self.vision_encoder = build_encoder(
            vision_encoder, in_channels=in_channels, drop_path_rate=drop_path_rate
        )
        self.air_encoder = build_encoder(
            air_encoder, in_channels=air_channels, drop_path_rate=drop_path_rate
        )
        self.air_absent = nn.Parameter(torch.zeros(1, air_channels, 1, 1))
        self.fusion = StageFusion(
            self.vision_encoder.out_channels,
            self.air_encoder.out_channels,
            drop_path_rate=drop_path_rate,
        )
        self.decoder = DualStreamDecoder(
            self.vision_encoder.out_channels,  # type: ignore[arg-type]
            num_outputs=1 if task == "binary" else num_classes,
        )
        if vision_weights is not None:
            load_weights(
                self.vision_encoder.model,  # type: ignore[arg-type]
                vision_weights,
                stem_key=STEM_KEY,
                band_names=self.band_names,
                hf_model=True,
            )
        if air_weights is not None:
            load_weights(self.air_encoder, air_weights)

    def _check(self, image: Tensor, air: Tensor | None) -> None:
        if image.ndim != 4 or image.shape[1] != self.in_channels:
            raise ValueError(
                f"image must be (B, {self.in_channels}, H, W), got {tuple(image.shape)}"
            )
        height, width = image.shape[-2:]
        if height % 32 or width % 32:
            raise ValueError(f"image H and W must be multiples of 32, got {height} x {width}")
        if air is None:
            return
        expected = (image.shape[0], self.air_channels, height // 8, width // 8)
        if tuple(air.shape) != expected:
            raise ValueError(
                f"air must be {expected} for image {tuple(image.shape)}, got {tuple(air.shape)}"
            )

    def _air_input(self, image: Tensor, air: Tensor | None) -> Tensor:
        batch, _, height, width = image.shape
        absent = self.air_absent.to(image.dtype).expand(batch, -1, height // 8, width // 8)
        if air is None:
            return absent
        if self.training and self.modality_dropout > 0:
            drop = torch.rand(batch, 1, 1, 1, device=air.device) < self.modality_dropout
            return torch.where(drop, absent, air)
        return air

    def forward(self, image: Tensor, air: Tensor | None = None) -> dict[str, Tensor]:
        self._check(image, air)
        vision = self.vision_encoder(image)
        air_features = self.air_encoder(self._air_input(image, air))
        return self.decoder(self.fusion(vision, air_features))


class VisionOnlyBaseline(nn.Module):
    """The same vision encoder and decoder with no air stream (for benchmarks)."""

    def __init__(
        self, num_classes: int, in_channels: int = 4, vision_encoder: str = "segformer-b1"
    ) -> None:
        super().__init__()
        self.vision_encoder = build_encoder(vision_encoder, in_channels=in_channels)
        self.decoder = DualStreamDecoder(self.vision_encoder.out_channels, num_classes)  # type: ignore[arg-type]

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.decoder(self.vision_encoder(image))
