"""Sensor band identifiers (``SR_B5``, ``B8A``) and the common names images use (``nir``).

Pretrained weights list their bands by the producer's identifiers (TorchGeo's SSL4EO-L
weights: ``SR_B1`` ... ``SR_B7``; Satlas: ``B01`` ... ``B11``); this project's images name
their bands by what they measure (``blue``, ``nir``, ``swir16``). This module says which
identifier of which sensor is which common name (the STAC ``eo`` extension's names, with
the aliases the indices and users write: ``swir`` and ``swir1`` for ``swir16``), so that a
pretrained stem's filters can be matched to an image's bands by name.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Other names of a common band name (lower case).
ALIASES: dict[str, tuple[str, ...]] = {
    "swir16": ("swir", "swir1"),
    "swir22": ("swir2",),
    "lwir": ("thermal", "tir"),
    "lwir11": ("lwir", "thermal", "tir", "tir1"),
    "lwir12": ("tir2",),
    "rededge1": ("rededge",),
    "nir08": ("nir_narrow", "nirn"),
}

#: Common name of each band identifier, per sensor (identifiers upper case, without the
#: ``SR_`` prefix of surface-reflectance products and zero padding: ``B01`` is ``B1``).
SENSORS: dict[str, dict[str, str]] = {
    "landsat_tm": {
        "B1": "blue",
        "B2": "green",
        "B3": "red",
        "B4": "nir",
        "B5": "swir16",
        "B6": "lwir",
        "B7": "swir22",
    },
    "landsat_etm": {
        "B1": "blue",
        "B2": "green",
        "B3": "red",
        "B4": "nir",
        "B5": "swir16",
        "B6_VCID_1": "lwir",
        "B6_VCID_2": "lwir",
        "B7": "swir22",
        "B8": "pan",
    },
    "landsat_oli": {
        "B1": "coastal",
        "B2": "blue",
        "B3": "green",
        "B4": "red",
        "B5": "nir",
        "B6": "swir16",
        "B7": "swir22",
        "B8": "pan",
        "B9": "cirrus",
        "B10": "lwir11",
        "B11": "lwir12",
    },
    "sentinel2": {
        "B1": "coastal",
        "B2": "blue",
        "B3": "green",
        "B4": "red",
        "B5": "rededge1",
        "B6": "rededge2",
        "B7": "rededge3",
        "B8": "nir",
        "B8A": "nir08",
        "B9": "nir09",
        "B10": "cirrus",
        "B11": "swir16",
        "B12": "swir22",
    },
    "rgb": {"R": "red", "G": "green", "B": "blue"},
}


def sensor_of(weights_name: str, bands: Sequence[str]) -> str:
    """The sensor of :data:`SENSORS` a weights name and its band list point to.

    The sensor of :data:`SENSORS` a weights name (``ResNet50_Weights.LANDSAT_OLI_SR_MOCO``)
    and its band list point to: ``rgb`` for three bands named R, G, B.
    """
    name = weights_name.upper()
    if set(bands) == {"R", "G", "B"}:
        return "rgb"
    for key, sensor in (
        ("LANDSAT_TM", "landsat_tm"),
        ("LANDSAT_ETM", "landsat_etm"),
        ("LANDSAT", "landsat_oli"),  # OLI, OLI-TIRS and Satlas's Landsat 8/9 weights
        ("SENTINEL2", "sentinel2"),
    ):
        if key in name:
            return sensor
    return "sentinel2" if any(b.upper().startswith("B0") for b in bands) else "rgb"


def _identifier(band: str) -> str:
    band = band.upper().removeprefix("SR_")
    if band.startswith("B") and band[1:2] == "0" and len(band) > 2:
        band = "B" + band[2:]  # Satlas writes B01 ... B12
    return band


def common_name(band: str, sensor: str) -> str | None:
    """The common name of ``band`` on ``sensor``, or None if the sensor has no such band."""
    return SENSORS.get(sensor, {}).get(_identifier(band))


def names_of(band: str, sensor: str) -> set[str]:
    """Every name an image channel may carry to be ``band`` (lower case).

    The identifier itself (``sr_b5``, ``b5``), its common name and that name's aliases.
    """
    names = {band.lower(), _identifier(band).lower()}
    common = common_name(band, sensor)
    if common:
        names |= {common, *ALIASES.get(common, ())}
    return names


def match_bands(channels: Sequence[str], bands: Sequence[str], sensor: str) -> list[int | None]:
    """For each image channel, the index of the weights band it is (None: none is).

    Args:
        channels: the model's image channels in order (``blue``, ``nir``, ``ndvi``, ...).
        bands: the weights' bands in their order (``SR_B1`` ... ``SR_B7``).
        sensor: a key of :data:`SENSORS` (:func:`sensor_of`).

    Returns:
        One entry per channel: a position in ``bands``, or None for a channel the weights
        have no band for (an index, an aux channel, a band the sensor lacks).
    """
    lookup: dict[str, int] = {}
    for i, band in enumerate(bands):
        for name in names_of(band, sensor):
            lookup.setdefault(name, i)
    return [lookup.get(channel.lower()) for channel in channels]
