"""dualstream_geo: land-cover segmentation fusing satellite imagery with air-quality rasters."""

__version__ = "0.1.0"
