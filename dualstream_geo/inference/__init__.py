"""Whole-scene inference: sliding windows, blending, streaming GeoTIFF output."""

from ..models.tta import tta_transforms
from .predictor import ScenePredictor, scene_grid
from .settings import KINDS
from .tiling import strips, window_weights

__all__ = [
    "KINDS",
    "ScenePredictor",
    "scene_grid",
    "strips",
    "tta_transforms",
    "window_weights",
]
