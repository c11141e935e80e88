"""Models: encoder registry, SegFormer and ConvNeXt-air encoders, fusion, decoder."""

from .air import ConvNeXtAirEncoder
from .decoder import DualStreamDecoder
from .dualstream import DualStreamDFormer, VisionOnlyBaseline
from .fusion import CrossAttentionFusion, DynamicFusionGate, FiLM, FiLMFusion, StageFusion
from .registry import Encoder, build_encoder, list_encoders, register_encoder
from .vision import SegformerEncoder
from .weights import adapt_stem, load_weights

__all__ = [
    "ConvNeXtAirEncoder",
    "CrossAttentionFusion",
    "DualStreamDFormer",
    "DualStreamDecoder",
    "DynamicFusionGate",
    "Encoder",
    "FiLM",
    "FiLMFusion",
    "SegformerEncoder",
    "StageFusion",
    "VisionOnlyBaseline",
    "adapt_stem",
    "build_encoder",
    "list_encoders",
    "load_weights",
    "register_encoder",
]
