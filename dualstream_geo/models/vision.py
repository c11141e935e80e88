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
from typing import Any, override

import torch
from torch import Tensor, nn
from transformers import SegformerConfig, SegformerModel
from transformers.models.segformer import modeling_segformer

from .locality import RADIUS, neighbourhood_attention
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
    """Rename the keys of a bare ``SegformerModel`` state dict.

    4.x or 5.x names, to the layout of the installed transformers (or to 5.x when ``v5`` is
    True, 4.x when False).
    """
    rename = (
        segformer_key_v5 if (installed_layout_is_v5() if v5 is None else v5) else segformer_key_v4
    )
    return {rename(k): v for k, v in state.items()}


def _reduced(tokens: Tensor, reduce: nn.Module, norm: nn.Module, height: int, width: int) -> Tensor:
    """SegFormer's sequence reduction: (B, H*W, C) -> (B, H/r * W/r, C)."""
    grid = tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)
    return norm(reduce(grid).flatten(2).transpose(1, 2))


#: The installed transformers' self-attention module: 4.x's ``SegformerEfficientSelfAttention``
#: (queries, reduced keys and values), or 5.x's ``SegformerAttention`` (with the output).
_ATTENTION: Any = getattr(
    modeling_segformer, "SegformerEfficientSelfAttention", modeling_segformer.SegformerAttention
)

if _ATTENTION is not modeling_segformer.SegformerAttention:  # transformers 4.x

    class LocalSegformerAttention(_ATTENTION):  # type: ignore[no-redef]
        """SegFormer's efficient self-attention as neighbourhood attention (transformers 4.x).

        The output projection follows in ``SegformerSelfOutput``. Its reduced keys
        are one per 32 px cell at every stage; a cell's queries attend to the keys of the
        ``radius`` cells around it (:func:`~.locality.neighbourhood_attention`).
        """

        radius = RADIUS

        @override
        def forward(  # type: ignore[override]
            self, hidden_states: Tensor, height: int, width: int, output_attentions: bool = False
        ) -> tuple[Tensor]:
            reduced, shape = hidden_states, (height, width)
            if self.sr_ratio > 1:
                reduced = _reduced(hidden_states, self.sr, self.layer_norm, height, width)
                shape = (height // self.sr_ratio, width // self.sr_ratio)
            attended = neighbourhood_attention(
                self.query(hidden_states),
                self.key(reduced),
                self.value(reduced),
                (height, width),
                shape,
                shape,
                self.num_attention_heads,
                self.radius,
            )
            return (attended,)

else:  # transformers 5.x

    class LocalSegformerAttention(_ATTENTION):  # type: ignore[no-redef]
        """SegFormer's efficient self-attention as neighbourhood attention (transformers 5.x).

        Its reduced keys are one per 32 px cell at every stage; a cell's queries attend to
        the keys of the ``radius`` cells around it
        (:func:`~.locality.neighbourhood_attention`).
        """

        radius = RADIUS

        @override
        def forward(  # type: ignore[override]
            self, hidden_states: Tensor, height: int, width: int, *args: Any, **kwargs: Any
        ) -> tuple[Tensor, None]:
            reduced, shape = hidden_states, (height, width)
            ratio = self.sequence_reduction_ratio
            if ratio > 1:
                reduction = self.sequence_reduction
                reduced = _reduced(
                    hidden_states,
                    reduction.sequence_reduction,
                    reduction.layer_norm,
                    height,
                    width,
                )
                shape = (height // ratio, width // ratio)
            attended = neighbourhood_attention(
                self.q_proj(hidden_states),
                self.k_proj(reduced),
                self.v_proj(reduced),
                (height, width),
                shape,
                shape,
                self.num_attention_heads,
                self.radius,
                self.scaling,
            )
            return self.o_proj(attended), None


def localise_attention(model: SegformerModel, radius: int = RADIUS) -> None:
    """Make every self-attention of ``model`` neighbourhood attention, in place.

    The same parameters under the same names (weights of either kind load into either).
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not _ATTENTION:
                continue
            # The replacement's random initialisation is overwritten at once; keep the
            # generator where it was, so that the rest of the model draws what it did.
            with torch.random.fork_rng(devices=[]):
                local: Any = _local_copy(child, model.config)
            local.load_state_dict(child.state_dict())
            local.radius = radius
            setattr(parent, name, local)


def _local_copy(attention: Any, config: SegformerConfig) -> nn.Module:
    if hasattr(attention, "sr_ratio"):  # transformers 4.x
        return LocalSegformerAttention(
            config, attention.hidden_size, attention.num_attention_heads, attention.sr_ratio
        )
    return LocalSegformerAttention(
        config,
        attention.q_proj.in_features,
        attention.num_attention_heads,
        attention.sequence_reduction_ratio,
    )


class SegformerEncoder(Encoder):
    """A transformers ``SegformerModel`` returning its four stages.

    (B, in_channels, H, W) -> [(B, c1, H/4, W/4), (B, c2, H/8, W/8), (B, c3, H/16, W/16),
    (B, c4, H/32, W/32)]; for B1, c = (64, 128, 320, 512). Configuration as the MiT
    checkpoints (heads 1, 2, 5, 8; drop-path rising linearly to ``drop_path_rate`` over the
    blocks; exact GELU; LayerNorm eps 1e-5). ``local``: the self-attention is neighbourhood
    attention on 32 px cells (:func:`localise_attention`), with the same parameters.

    Args:
        variant: ``b0`` ... ``b5``.
        in_channels: the image channels.
        drop_path_rate: the blocks' stochastic depth at the last block.
        local: neighbourhood attention on 32 px cells.
    """

    reductions = (4, 8, 16, 32)

    def __init__(
        self,
        variant: str = "b1",
        in_channels: int = 4,
        drop_path_rate: float = 0.1,
        local: bool = False,
    ):
        super().__init__()
        config = SegformerConfig(
            num_channels=in_channels,
            num_attention_heads=[1, 2, 5, 8],
            drop_path_rate=drop_path_rate,
            **MIT_VARIANTS[variant],  # type: ignore[arg-type]
        )
        self.model = SegformerModel(config)
        if local:
            localise_attention(self.model)
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

    @override
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
