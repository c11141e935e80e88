"""SegFormer (Mix Transformer) vision encoders from transformers, any number of bands.

transformers 5.x reorganised ``SegformerModel`` (``stages.{s}.blocks.{j}...`` where 4.x had
``encoder.block.{s}.{j}...``). The encoder runs on either layout, and
:func:`to_installed_layout` renames state-dict keys of either layout to the one installed,
so weight files written under either version load.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache, partial
from typing import Any

from torch import Tensor
from transformers import SegformerConfig, SegformerModel

from .registry import Encoder, register_encoder

# Hidden sizes, depths and heads of the MiT variants (SegFormer paper, Table 6).
MIT_VARIANTS = {
    "b0": dict(hidden_sizes=[32, 64, 160, 256], depths=[2, 2, 2, 2]),
    "b1": dict(hidden_sizes=[64, 128, 320, 512], depths=[2, 2, 2, 2]),
    "b2": dict(hidden_sizes=[64, 128, 320, 512], depths=[3, 4, 6, 3]),
}

#: Renamings inside one transformer block, transformers 4.x -> 5.x.
_BLOCK_RENAMES = (
    ("layer_norm_1.", "layernorm_before."),
    ("attention.self.query.", "attention.q_proj."),
    ("attention.self.key.", "attention.k_proj."),
    ("attention.self.value.", "attention.v_proj."),
    ("attention.self.sr.", "attention.sequence_reduction.sequence_reduction."),
    ("attention.self.layer_norm.", "attention.sequence_reduction.layer_norm."),
    ("attention.output.dense.", "attention.o_proj."),
    ("layer_norm_2.", "layernorm_after."),
    ("mlp.dense1.", "mlp.fc1."),
    ("mlp.dense2.", "mlp.fc2."),
)
_V4 = (
    re.compile(r"^encoder\.patch_embeddings\.(\d+)\.(.*)$"),
    re.compile(r"^encoder\.block\.(\d+)\.(\d+)\.(.*)$"),
    re.compile(r"^encoder\.layer_norm\.(\d+)\.(.*)$"),
)
_V5 = (
    re.compile(r"^stages\.(\d+)\.patch_embeddings\.(.*)$"),
    re.compile(r"^stages\.(\d+)\.blocks\.(\d+)\.(.*)$"),
    re.compile(r"^stages\.(\d+)\.layer_norm\.(.*)$"),
)


def _rename(rest: str, pairs: tuple[tuple[str, str], ...], reverse: bool) -> str:
    for old, new in pairs:
        source, target = (new, old) if reverse else (old, new)
        if rest.startswith(source):
            return target + rest[len(source) :]
    return rest


def segformer_key_v5(key: str) -> str:
    """A ``SegformerModel`` key in the transformers 5.x layout (keys already 5.x pass)."""
    patch, block, norm = _V4
    if m := patch.match(key):
        return f"stages.{m[1]}.patch_embeddings.{m[2]}"
    if m := block.match(key):
        return f"stages.{m[1]}.blocks.{m[2]}.{_rename(m[3], _BLOCK_RENAMES, False)}"
    if m := norm.match(key):
        return f"stages.{m[1]}.layer_norm.{m[2]}"
    return key


def segformer_key_v4(key: str) -> str:
    """A ``SegformerModel`` key in the transformers 4.x layout (keys already 4.x pass)."""
    patch, block, norm = _V5
    if m := patch.match(key):
        return f"encoder.patch_embeddings.{m[1]}.{m[2]}"
    if m := block.match(key):
        return f"encoder.block.{m[1]}.{m[2]}.{_rename(m[3], _BLOCK_RENAMES, True)}"
    if m := norm.match(key):
        return f"encoder.layer_norm.{m[1]}.{m[2]}"
    return key


@cache
def installed_layout_is_v5() -> bool:
    """True when the installed transformers builds ``SegformerModel.stages`` (5.x layout)."""
    tiny = SegformerConfig(
        num_encoder_blocks=1, depths=[1], hidden_sizes=[8], num_attention_heads=[1]
    )
    return hasattr(SegformerModel(tiny), "stages")


def to_installed_layout(state: Mapping[str, Tensor], v5: bool | None = None) -> dict[str, Tensor]:
    """Rename the keys of a bare ``SegformerModel`` state dict (4.x or 5.x names) to the
    layout of the installed transformers (or to 5.x when ``v5`` is True, 4.x when False)."""
    rename = (
        segformer_key_v5 if (installed_layout_is_v5() if v5 is None else v5) else segformer_key_v4
    )
    return {rename(k): v for k, v in state.items()}


class SegformerEncoder(Encoder):
    """A transformers ``SegformerModel`` returning its four stages.

    (B, in_channels, H, W) -> [(B, c1, H/4, W/4), (B, c2, H/8, W/8), (B, c3, H/16, W/16),
    (B, c4, H/32, W/32)]; for B1, c = (64, 128, 320, 512). Configuration as the MiT
    checkpoints (heads 1, 2, 5, 8; drop-path rising linearly to ``drop_path_rate`` over the
    blocks; exact GELU; LayerNorm eps 1e-5).
    """

    reductions = (4, 8, 16, 32)

    def __init__(self, variant: str = "b1", in_channels: int = 4, drop_path_rate: float = 0.1):
        super().__init__()
        config = SegformerConfig(
            num_channels=in_channels,
            num_attention_heads=[1, 2, 5, 8],
            drop_path_rate=drop_path_rate,
            **MIT_VARIANTS[variant],  # type: ignore[arg-type]
        )
        self.model = SegformerModel(config)
        self.in_channels = in_channels
        self.out_channels = tuple(config.hidden_sizes)
        # A plain flag: registering ``model.stages`` here again would duplicate its keys.
        self.v5_layout = hasattr(self.model, "stages")

    @property
    def stem_key(self) -> str:
        """The state-dict key (inside ``model``) of the first patch-embedding convolution."""
        if self.v5_layout:
            return "stages.0.patch_embeddings.proj.weight"
        return "encoder.patch_embeddings.0.proj.weight"

    @property
    def stem(self) -> Tensor:
        """The first patch-embedding convolution's weight, (c1, in_channels, 7, 7)."""
        weight: Any = self.model.get_parameter(self.stem_key)
        return weight

    def forward(self, x: Tensor) -> list[Tensor]:
        if not self.v5_layout:
            return list(self.model(x, output_hidden_states=True).hidden_states)
        features = []
        stages: Any = self.model.stages
        for stage in stages:
            x = stage(x)
            features.append(x)
        return features


for _variant in MIT_VARIANTS:
    register_encoder(f"segformer-{_variant}")(partial(SegformerEncoder, _variant))
