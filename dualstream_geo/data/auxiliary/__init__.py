"""The aux stream's sources: any coarse raster (:class:`AuxRaster`), the original dataset's
GEMS and air-pollution files, and how a named source spec becomes one of them."""

from .build import aux_source, resolved
from .original import GEMS, GEMS_BANDS, POLLUTANT_BANDS, POLLUTANTS, AirPollution
from .raster import AuxRaster

__all__ = [
    "GEMS",
    "GEMS_BANDS",
    "POLLUTANTS",
    "POLLUTANT_BANDS",
    "AirPollution",
    "AuxRaster",
    "aux_source",
    "resolved",
]
