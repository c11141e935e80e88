"""Data layer: raster sources, the dual-stream join, statistics, demo scenes, datamodule."""

from .grid import Grid
from .join import DualStreamGeoDataset, collate_samples
from .normalize import BandStats, DatasetStats, Normalize
from .remote import configure_gdal
from .sources import (
    GEMS,
    IGNORE_INDEX,
    AirPollution,
    GeoRaster,
    LandCoverMask,
    SatelliteImage,
)
from .synthetic import DEMO_CLASS_MAP, DEMO_CLASS_NAMES, make_demo_scenes

configure_gdal()

__all__ = [
    "DEMO_CLASS_MAP",
    "DEMO_CLASS_NAMES",
    "GEMS",
    "IGNORE_INDEX",
    "AirPollution",
    "BandStats",
    "DatasetStats",
    "DualStreamGeoDataset",
    "GeoRaster",
    "Grid",
    "LandCoverMask",
    "Normalize",
    "SatelliteImage",
    "collate_samples",
    "make_demo_scenes",
]
