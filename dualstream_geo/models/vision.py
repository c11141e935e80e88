"""SegFormer (Mix Transformer) vision encoders from transformers, any number of bands."""

from __future__ import annotations

from functools import partial
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


class SegformerEncoder(Encoder):
    """A transformers ``SegformerModel`` returning its four stages.

    (B, in_channels, H, W) -> [(B, c1, H/4, W/4), (B, c2, H/8, W/8), (B, c3, H/16, W/16),
    (B, c4, H/32, W/32)]; for B1, c = (64, 128, 320, 512).
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

    @property
    def stem(self) -> Tensor:
        """The first patch-embedding convolution's weight, (c1, in_channels, 7, 7)."""
        embeddings: Any = self.model.stages[0].patch_embeddings
        return embeddings.proj.weight

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for stage in self.model.stages:
            x = stage(x)
            features.append(x)
        return features


for _variant in MIT_VARIANTS:
    register_encoder(f"segformer-{_variant}")(partial(SegformerEncoder, _variant))
