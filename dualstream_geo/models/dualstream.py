"""DualStream-DFormer.

A SegFormer vision encoder fused stage by stage with a ConvNeXt air encoder, decoded with
deep supervision. Two presets share inputs, outputs and training: ``original`` (the original
project's architecture, module for module) and ``lite``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import override

import torch
from torch import Tensor, nn

from ..errors import DualStreamError
from . import air as _air  # noqa: F401  (registers air-lite)
from . import air_original as _air_original  # noqa: F401  (registers air-original)
from . import vision as _vision  # noqa: F401  (registers segformer-b*)
from .backbones import FeatureNeck, TorchGeoEncoder
from .decoder import LiteDecoder
from .decoder_original import OriginalDecoder
from .fusion import StageFusion, lite_fusion
from .fusion_original import CrossAttentionBlock, GatedFiLMFusion
from .locality import groupnorm_to_layernorm
from .pretrained import WEIGHTS_NAME, resolve_weights
from .registry import Encoder, build_encoder
from .settings import check_settings
from .vision import SegformerEncoder
from .weights import load_weights

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def original_fusion(
    vision_channels: tuple[int, ...],
    air_channels: tuple[int, ...],
    gate_twice: bool = False,
    local: bool = False,
) -> StageFusion:
    """FiLM + gate at stages 1-2, 8-head cross-attention at stages 3-4 (the original).

    Over the neighbouring 32 px cells when ``local``.
    """
    return StageFusion(
        [
            GatedFiLMFusion(vision_channels[0], air_channels[0], gate_twice),
            GatedFiLMFusion(vision_channels[1], air_channels[1], gate_twice),
            CrossAttentionBlock(vision_channels[2], air_channels[2], cell=2 if local else None),
            CrossAttentionBlock(vision_channels[3], air_channels[3], cell=1 if local else None),
        ]
    )


def class_probabilities(logits: Tensor, task: str) -> Tensor:
    """Final logits (B, K, H, W) -> probabilities (B, C, H, W), in float32.

    A softmax, or for the binary task's one logit (background, target) = (1 - sigmoid,
    sigmoid).
    """
    logits = logits.float()
    if task == "binary":
        target = logits.sigmoid()
        return torch.cat([1 - target, target], dim=1)
    return logits.softmax(dim=1)


class DualStreamDFormer(nn.Module):
    """Image (B, in_channels, H, W) + air (B, air_channels, H/r, W/r) -> logits, r = ``aux_scale``.

    ``forward`` returns ``{"final": (B, K, H, W), "aux_f2": (B, K, H/8, W/8),
    "aux_f3": (B, K, H/16, W/16)}`` with K = 1 for ``task="binary"`` (sigmoid) and
    ``num_classes`` for ``"multiclass"`` (softmax). H and W must be multiples of 32.

    ``preset="original"`` (default) builds the original DualStream-DFormer: 32,175,240
    parameters with 4 bands, 48 air channels and a binary head. Its two defects are
    switches: ``use_boundary_refine`` (True: the classifier reads the boundary-refinement
    branch; False, as imported checkpoints set it: the branch is skipped, as the original
    discards its output) and ``gate_twice`` (False: the stage 1-2 gate is evaluated once,
    which gives the original's numbers). ``preset="lite"`` is a cheaper variant of the same
    structure for CPU work and large-scale inference.

    ``aux_scale`` (r): image pixels per air pixel, 8 (the original's grid, what atmospheric
    products need) or, in the lite preset, 4, 2 or 1 for a finer coarse raster such as a DEM
    (:class:`~dualstream_geo.models.air.ConvNeXtAirEncoder`).

    ``aux_stem`` (lite preset): ``linear``, a stem that keeps the level of the standardised
    aux values, or ``layernorm``, the stem of lite models trained before 2026-12-05
    (:class:`~dualstream_geo.models.air.ConvNeXtAirEncoder`).

    ``image_detail`` merges full-resolution image features into the decoder's last map
    (:mod:`~dualstream_geo.models.detail`; not part of the original architecture): for
    classes a few pixels wide, which the encoders' 1/4-resolution features blur. With
    ``detail_aux`` that path also reads the air stream, bilinearly upsampled to the image
    grid: the per-pixel decisions the path makes then see the aux values at each pixel (on
    Zion it is what early fusion had and the dual stream lacked; experiments/README.md).
    ``detail_design``: the path's layers, ``dense`` 3 x 3 convolutions (the default, and
    models before 2026-12-06), ``separable``, ``spectral`` or ``spectral_wide`` ones
    (:mod:`~dualstream_geo.models.detail`).

    ``context`` (not in the original): ``local`` (the default for new models) makes every
    operation see a bounded neighbourhood of the pixel: neighbourhood attention on 32 px
    cells, per-pixel LayerNorm in place of GroupNorm(1), ASPP within the neighbouring cells
    (:mod:`~dualstream_geo.models.locality`; the same parameters, names and shapes), so a
    pixel's class does not depend on the window it is predicted in. ``window`` computes
    attention, normalisation and pooling over the whole input, as the original does: what
    imported checkpoints and models trained before 2026-12-06 use.

    ``air=None`` (air data missing) feeds an "air absent" input through the same path:
    learned in the lite preset; zeros in the original preset, which is what the original's
    scaling makes of a constant or unreadable air file. ``modality_dropout`` replaces the
    air of each training sample with it at that probability.

    Args:
        num_classes: classes (1 output for a binary task).
        task: ``binary`` or ``multiclass``.
        preset: ``original`` or ``lite``.
        in_channels: the image channels (bands, indices, early-fused aux).
        air_channels: the aux stream's channels.
        band_names: the image channels' names (a pretrained stem is mapped by them).
        vision_encoder: a registered encoder name (:func:`~.registry.list_encoders`).
        vision_weights: the vision encoder's weights: a file, a hub id or a TorchGeo name.
        aux_weights: the air encoder's weights file.
        drop_path_rate: the encoders' stochastic depth.
        modality_dropout: the probability that a training sample's air is replaced by the
            "air absent" input.
        use_boundary_refine: the original preset's classifier reads the boundary refinement.
        gate_twice: the original preset evaluates its stage 1-2 gate twice.
        image_detail: add the full-resolution image path.
        aux_stem: the lite air encoder's stem, ``linear`` or ``layernorm``.
        aux_scale: r, image pixels per aux pixel side.
        detail_aux: the detail path also reads the aux stream.
        context: ``local`` or ``window``.
        detail_design: ``dense``, ``separable``, ``spectral`` or ``spectral_wide``.

    Raises:
        DualStreamError: settings that do not fit together, naming them.
    """

    def __init__(
        self,
        num_classes: int = 2,
        task: str = "binary",
        preset: str = "original",
        in_channels: int = 4,
        air_channels: int = 48,
        band_names: Sequence[str] = ("blue", "green", "red", "nir"),
        vision_encoder: str = "segformer-b1",
        vision_weights: PathLike | None = None,
        aux_weights: PathLike | None = None,
        drop_path_rate: float = 0.1,
        modality_dropout: float = 0.0,
        use_boundary_refine: bool = True,
        gate_twice: bool = False,
        image_detail: bool = False,
        aux_stem: str = "linear",
        aux_scale: int = 8,
        detail_aux: bool = False,
        context: str = "local",
        detail_design: str = "dense",
    ) -> None:
        super().__init__()
        check_settings(
            num_classes=num_classes,
            task=task,
            preset=preset,
            in_channels=in_channels,
            band_names=band_names,
            modality_dropout=modality_dropout,
            aux_stem=aux_stem,
            aux_scale=aux_scale,
            context=context,
            detail_design=detail_design,
        )
        self.num_classes = num_classes
        self.task = task
        self.preset = preset
        self.in_channels = in_channels
        self.air_channels = air_channels
        self.band_names = tuple(band_names)
        self.modality_dropout = modality_dropout
        self.air_reduction = aux_scale
        self.context = context
        local = context == "local"
        outputs = 1 if task == "binary" else num_classes
        self.detail_aux = image_detail and detail_aux
        detail = (in_channels + (air_channels if self.detail_aux else 0)) if image_detail else 0

        widths = self._build_vision(vision_encoder, drop_path_rate, local)
        # Built in this order (air encoder, fusion, decoder): the random initialisation of a
        # seed stays what it was.
        if preset == "original":
            self._build_original(
                widths, outputs, (detail, detail_design), use_boundary_refine, gate_twice, local
            )
        else:
            self._build_lite(
                widths, outputs, (detail, detail_design), drop_path_rate, aux_stem, local
            )
        if local:
            groupnorm_to_layernorm(self)
        self._load_weights(vision_weights, aux_weights)

    def _load_weights(self, vision: PathLike | None, air: PathLike | None) -> None:
        """Start the encoders from weights files (a TorchGeo name for the vision encoder)."""
        if vision is not None:
            self._load_vision_weights(str(vision))
        if air is not None:
            load_weights(self.air_encoder, air)

    def _build_vision(self, name: str, drop_path_rate: float, local: bool) -> tuple[int, ...]:
        """The vision encoder (and the neck of a TorchGeo encoder); the fusion's widths."""
        self.vision_encoder: Encoder = build_encoder(
            name, in_channels=self.in_channels, drop_path_rate=drop_path_rate, local=local
        )
        widths = self.vision_encoder.out_channels
        # The SegFormer's stages feed the fusion as they are; the other encoders' through a
        # neck onto SegFormer-B1's grid and widths (the rest of the model is then the same).
        self.vision_neck: nn.Module = nn.Identity()
        if isinstance(self.vision_encoder, TorchGeoEncoder):
            encoder = self.vision_encoder
            self.vision_neck = FeatureNeck(widths, encoder.reductions, encoder.neck_widths)
            widths = encoder.neck_widths
        return widths

    def _build_original(
        self,
        widths: tuple[int, ...],
        outputs: int,
        detail: tuple[int, str],
        use_boundary_refine: bool,
        gate_twice: bool,
        local: bool,
    ) -> None:
        """The original's air encoder, fusion and decoder.

        ``detail``: the detail path's input channels (0: none) and design.
        """
        channels = self.air_channels
        self.air_encoder = build_encoder("air-original", in_channels=channels, out_channels=widths)
        self.fusion = original_fusion(widths, widths, gate_twice, local)
        self.decoder: nn.Module = OriginalDecoder(
            widths,  # type: ignore[arg-type]
            outputs,
            use_boundary_refine=use_boundary_refine,
            image_channels=detail[0],
            local=local,
            detail_design=detail[1],
        )
        # Not a parameter: the original model has none besides its modules' weights.
        self.register_buffer("air_absent", torch.zeros(1, channels, 1, 1), False)

    def _build_lite(
        self,
        widths: tuple[int, ...],
        outputs: int,
        detail: tuple[int, str],
        drop_path_rate: float,
        aux_stem: str,
        local: bool,
    ) -> None:
        """The lite air encoder, fusion and decoder; ``detail`` as in :meth:`_build_original`."""
        self.air_encoder = build_encoder(
            "air-lite",
            in_channels=self.air_channels,
            out_channels=widths,
            drop_path_rate=drop_path_rate,
            stem_norm=aux_stem == "layernorm",
            input_reduction=self.air_reduction,
        )
        self.fusion = lite_fusion(widths, widths, drop_path_rate=drop_path_rate, local=local)
        self.decoder = LiteDecoder(
            widths,  # type: ignore[arg-type]
            outputs,
            image_channels=detail[0],
            local=local,
            detail_design=detail[1],
        )
        self.air_absent = nn.Parameter(torch.zeros(1, self.air_channels, 1, 1))

    def _load_vision_weights(self, source: str) -> None:
        encoder = self.vision_encoder
        if isinstance(encoder, TorchGeoEncoder):
            encoder.load_pretrained(resolve_weights(source), self.band_names)
            return
        if not isinstance(encoder, SegformerEncoder) or (
            WEIGHTS_NAME.match(source) and not os.path.exists(source)
        ):
            raise DualStreamError(
                f"{source}: TorchGeo weights are for the encoders resnet18, resnet50, "
                "vit-small16, swin-v2-t and swin-v2-b; the vision encoder is a SegFormer"
            )
        load_weights(
            encoder.model,
            source,
            stem_key=encoder.stem_key,
            band_names=self.band_names,
            hf_model=True,
        )

    @property
    def vision_weights(self) -> str:
        """The TorchGeo weights the vision encoder started from ("" if none or unknown)."""
        encoder = self.vision_encoder
        return encoder.weights_name if isinstance(encoder, TorchGeoEncoder) else ""

    @classmethod
    def from_original(
        cls,
        path: PathLike,
        air_encoder: PathLike | None = None,
        vision_encoder: PathLike | None = None,
    ) -> DualStreamDFormer:
        """The original project's trained model from its full-model state dict.

        Read from ``path``, optionally with its separate air-encoder and vision-encoder files
        replacing those parts. Keys of transformers 4.x or 5.x, ``module.``/``_orig_mod.``
        prefixes accepted; every tensor must be consumed. Boundary refinement off, as the
        original predicts.

        Args:
            path: the original's full-model state dict.
            air_encoder: its separate air-encoder file, replacing that part.
            vision_encoder: its separate vision-encoder file, replacing that part.

        Returns:
            The model (boundary refinement off and window context, as the original
            predicts).

        Raises:
            DualStreamError: a missing file, or tensors that do not match (named).
        """
        from .original_checkpoint import load_original, original_dimensions, read_original

        state = read_original(path, air_encoder, vision_encoder)
        in_channels, air_channels, outputs = original_dimensions(state, str(path))
        model = cls(
            num_classes=2 if outputs == 1 else outputs,
            task="binary" if outputs == 1 else "multiclass",
            preset="original",
            in_channels=in_channels,
            air_channels=air_channels,
            band_names=tuple(f"band_{i}" for i in range(1, in_channels + 1))
            if in_channels != 4
            else ("blue", "green", "red", "nir"),
            use_boundary_refine=False,
            context="window",
        )
        load_original(model, state, str(path))
        return model

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
        scale = self.air_reduction
        expected = (image.shape[0], self.air_channels, height // scale, width // scale)
        if tuple(air.shape) != expected:
            raise ValueError(
                f"air must be {expected} for image {tuple(image.shape)}, got {tuple(air.shape)}"
            )

    def _air_input(self, image: Tensor, air: Tensor | None) -> Tensor:
        batch, _, height, width = image.shape
        scale = self.air_reduction
        absent = self.air_absent.to(image.dtype).expand(batch, -1, height // scale, width // scale)
        if air is None:
            return absent
        if self.training and self.modality_dropout > 0:
            drop = torch.rand(batch, 1, 1, 1, device=air.device) < self.modality_dropout
            return torch.where(drop, absent, air)
        return air

    def _detail_input(self, image: Tensor, air: Tensor) -> Tensor:
        """What the detail path reads: the image, with ``detail_aux`` the air on its grid."""
        if not self.detail_aux:
            return image
        upsampled = nn.functional.interpolate(
            air.to(image.dtype), size=image.shape[-2:], mode="bilinear", align_corners=False
        )
        return torch.cat([image, upsampled], dim=1)

    @override
    def forward(self, image: Tensor, air: Tensor | None = None) -> dict[str, Tensor]:
        self._check(image, air)
        vision = self.vision_neck(self.vision_encoder(image))
        air_input = self._air_input(image, air)
        air_features = self.air_encoder(air_input)
        return self.decoder(self.fusion(vision, air_features), self._detail_input(image, air_input))
