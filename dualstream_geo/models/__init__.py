"""Models.

Encoder registry, SegFormer and air encoders, fusion, decoders, the two presets, pretrained
weights and the original project's checkpoints.
"""

from .air import ConvNeXtAirEncoder
from .air_original import OriginalAirEncoder
from .decoder import LiteDecoder
from .decoder_original import OriginalDecoder
from .dualstream import DualStreamDFormer
from .fusion import CrossAttentionFusion, DynamicFusionGate, FiLM, FiLMFusion, StageFusion
from .fusion_original import CrossAttentionBlock, FiLMGenerator, FusionGate, GatedFiLMFusion
from .registry import Encoder, build_encoder, list_encoders, register_encoder
from .settings import PRESETS, ArchitectureSettings
from .vision import SegformerEncoder
from .weights import adapt_stem, load_weights

__all__ = [
    "PRESETS",
    "ArchitectureSettings",
    "ConvNeXtAirEncoder",
    "CrossAttentionBlock",
    "CrossAttentionFusion",
    "DualStreamDFormer",
    "DynamicFusionGate",
    "Encoder",
    "FiLM",
    "FiLMFusion",
    "FiLMGenerator",
    "FusionGate",
    "GatedFiLMFusion",
    "LiteDecoder",
    "OriginalAirEncoder",
    "OriginalDecoder",
    "SegformerEncoder",
    "StageFusion",
    "adapt_stem",
    "build_encoder",
    "list_encoders",
    "load_weights",
    "register_encoder",
]
