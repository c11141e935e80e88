"""The aux stream's sources.

Any coarse raster (:class:`AuxRaster`), gridded NetCDF / HDF5 / Zarr variables, Level 2
swaths gridded onto each scene, the original dataset's GEMS and air-pollution files, and how
a named source spec becomes one of them.
"""

from .build import aux_source, needs_grids, resolved, scene_aux_grids
from .formats import FORMATS, AuxFormat, aux_format
from .gridding import swath_channels
from .original import GEMS, GEMS_BANDS, POLLUTANT_BANDS, POLLUTANTS, AirPollution
from .raster import AuxRaster

__all__ = [
    "GEMS",
    "GEMS_BANDS",
    "POLLUTANTS",
    "POLLUTANT_BANDS",
    "AirPollution",
    "FORMATS",
    "AuxFormat",
    "AuxRaster",
    "aux_format",
    "needs_grids",
    "aux_source",
    "resolved",
    "scene_aux_grids",
    "swath_channels",
]
