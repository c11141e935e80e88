"""GDAL VRT documents written by the project.

A raster seen through another grid or as a stack of other rasters' bands, read by GDAL like
any file.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from affine import Affine
from rasterio.crs import CRS


def band_xml(
    band: int, data_type: str, source: str, source_band: int, nodata: float | None = None
) -> str:
    """One VRT band reading band ``source_band`` of ``source`` pixel for pixel.

    One VRT band (``data_type``: a GDAL type name) reading band ``source_band`` of
    ``source`` (a file name or GDAL path) pixel for pixel.
    """
    nodata_xml = f"<NoDataValue>{nodata}</NoDataValue>" if nodata is not None else ""
    return (
        f'<VRTRasterBand dataType="{data_type}" band="{band}">{nodata_xml}'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(source)}</SourceFilename>'
        f"<SourceBand>{source_band}</SourceBand></SimpleSource></VRTRasterBand>"
    )


def dataset_xml(width: int, height: int, crs: CRS, transform: Affine, bands: Sequence[str]) -> str:
    """A VRT document of ``bands`` (from :func:`band_xml`) on the given grid."""
    geotransform = ", ".join(repr(v) for v in transform.to_gdal())
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{escape(CRS.from_user_input(crs).to_wkt())}</SRS>"
        f"<GeoTransform>{geotransform}</GeoTransform>{''.join(bands)}</VRTDataset>"
    )
