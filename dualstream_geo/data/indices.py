"""Spectral indices appended to the image as extra channels (TorchGeo's index transforms).

A normalised difference such as NDWI, (green - nir) / (green + nir), is a ratio: it holds
whatever the scene's brightness, and a network trained from scratch on one scene finds it
hard to learn a ratio of bands from few examples (water on Zion: 1,209 pixels). The
indices are computed on the raw band values, before standardisation, then standardised
with their own dataset statistics like any band.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchgeo.transforms import indices as tg

from ..errors import DualStreamError

#: Index name -> (TorchGeo transform, the bands it takes, in the transform's argument order).
SPECTRAL_INDICES: dict[str, tuple[type[tg.AppendNormalizedDifferenceIndex], tuple[str, str]]] = {
    "ndvi": (tg.AppendNDVI, ("nir", "red")),
    "ndwi": (tg.AppendNDWI, ("green", "nir")),
    "gndvi": (tg.AppendGNDVI, ("nir", "green")),
    "bndvi": (tg.AppendBNDVI, ("nir", "blue")),
    "mndwi": (tg.AppendMNDWI, ("green", "swir")),
    "ndbi": (tg.AppendNDBI, ("swir", "nir")),
    "nbr": (tg.AppendNBR, ("nir", "swir")),
}


class SpectralIndices:
    """Raw image (C, H, W) or (B, C, H, W) -> its spectral indices (..., len(indices), H, W).

    Each index is a normalised difference of two named bands, in [-1, 1]; where it is
    undefined (both bands 0, or negative values pushing the sum to 0) it is clamped to
    [-1, 1] and NaN becomes 0, so no pixel carries inf or NaN into the network.
    """

    def __init__(self, indices: Sequence[str], bands: Sequence[str]) -> None:
        check_indices(indices, bands)
        position = {name.lower(): i for i, name in enumerate(bands)}
        self.names = [name.lower() for name in indices]
        self.transforms = []
        for name in self.names:
            transform, needs = SPECTRAL_INDICES[name]
            self.transforms.append(transform(*(position[band] for band in needs)))

    def __call__(self, image: Tensor) -> Tensor:
        """(C, H, W) or (B, C, H, W) bands -> the indices (len(indices), H, W), batched alike."""
        batch = image if image.ndim == 4 else image.unsqueeze(0)
        # Each TorchGeo transform appends its index as the last channel.
        values = torch.cat([transform(batch)[:, -1:] for transform in self.transforms], 1)
        values = torch.nan_to_num(values, nan=0.0).clamp(-1.0, 1.0)
        return values if image.ndim == 4 else values.squeeze(0)


def check_indices(indices: Sequence[str], bands: Sequence[str]) -> None:
    """One clear error for an unknown index or one whose bands are not among ``bands``.

    Raises:
        DualStreamError: naming the ``indices`` parameter and what is missing.
    """
    names = [band.lower() for band in bands]
    for index in indices:
        if index.lower() not in SPECTRAL_INDICES:
            raise DualStreamError(
                f"indices: unknown index {index!r}; known: {', '.join(SPECTRAL_INDICES)}"
            )
        needs = SPECTRAL_INDICES[index.lower()][1]
        missing = [band for band in needs if band not in names]
        if missing:
            raise DualStreamError(
                f"indices: {index} needs bands named {' and '.join(needs)}; "
                f"bands are {tuple(bands)}"
            )
    if len({index.lower() for index in indices}) != len(indices):
        raise DualStreamError(f"indices: {list(indices)} names an index twice")
