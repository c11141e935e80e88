"""Data layer.

Raster sources, named aux sources, the input spec, the dual-stream join, statistics, demo
scenes, datamodule.
"""

from .auxiliary import GEMS, AirPollution, AuxRaster, aux_source
from .auxiliary.spec import AuxSpec
from .grid import Grid
from .join import DualStreamGeoDataset, collate_samples
from .land_cover import LandCoverMask
from .normalize import BandStats, DatasetStats, Normalize
from .sources import IGNORE_INDEX, GeoRaster, SatelliteImage
from .spec import ClassSpec, ImageSpec, InputSpec
from .synthetic import DEMO_CLASS_MAP, DEMO_CLASS_NAMES, make_demo_scenes

__all__ = [
    "DEMO_CLASS_MAP",
    "DEMO_CLASS_NAMES",
    "GEMS",
    "IGNORE_INDEX",
    "AirPollution",
    "AuxRaster",
    "AuxSpec",
    "BandStats",
    "ClassSpec",
    "DatasetStats",
    "DualStreamGeoDataset",
    "GeoRaster",
    "Grid",
    "ImageSpec",
    "InputSpec",
    "LandCoverMask",
    "Normalize",
    "SatelliteImage",
    "aux_source",
    "collate_samples",
    "make_demo_scenes",
]
