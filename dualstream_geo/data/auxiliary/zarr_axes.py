"""The axes of a Zarr variable, read from the store's own metadata.

GDAL's Zarr driver gives a variable's geotransform from its coordinate arrays but none of
their attributes (a NetCDF file's ``lat#units`` tags have no Zarr counterpart through the
classic raster API), so whether the axes are CF latitude / longitude in degrees is read from
the store: Zarr v2 ``.zattrs`` (xarray's ``_ARRAY_DIMENSIONS``) or v3 ``zarr.json``
(``dimension_names``, ``attributes``).
"""

from __future__ import annotations

import json
import os
from typing import Any


def _metadata(store: str, name: str) -> tuple[list[str], dict[str, Any]]:
    """(dimension names, attributes) of the array ``name`` of a local store."""
    folder = os.path.join(store, name.strip("/"))
    v3 = os.path.join(folder, "zarr.json")
    if os.path.isfile(v3):
        with open(v3) as f:
            meta = json.load(f)
        attributes = meta.get("attributes") or {}
        names = meta.get("dimension_names") or attributes.get("_ARRAY_DIMENSIONS") or []
        return list(names), attributes
    path = os.path.join(folder, ".zattrs")
    if os.path.isfile(path):
        with open(path) as f:
            attributes = json.load(f)
        return list(attributes.get("_ARRAY_DIMENSIONS") or []), attributes
    return [], {}


def axis_units(store: str, variable: str) -> list[str]:
    """The ``units`` of the coordinate arrays of ``variable``'s last two dimensions.

    Its rows and columns, in a local Zarr store; empty where the store does not say.
    """
    try:
        dimensions, _ = _metadata(store, variable)
        units = [str(_metadata(store, name)[1].get("units", "")) for name in dimensions[-2:]]
    except (OSError, ValueError, AttributeError):
        return []
    return units if len(units) == 2 else []
