"""Where the rasters of a split live: explicit paths, the scene-folder layout, or the original
project's tile layout (``ts_sn/ tl_sn/ t_ap/ t_gems/`` and ``vs_sn/ vl_sn/ v_ap/ v_gems/``)."""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import rasterio
from affine import Affine

from ..errors import DualStreamError
from .checks import check_air_values, check_image_values
from .join import DualStreamGeoDataset
from .sources import GEMS, AirPollution, Georef, LandCoverMask, SatelliteImage, has_georeferencing

#: Original layout folders per split: image, label, GEMS, air pollution.
ORIGINAL_FOLDERS = {
    "train": ("ts_sn", "tl_sn", "t_gems", "t_ap"),
    "val": ("vs_sn", "vl_sn", "v_gems", "v_ap"),
}
#: Scene-folder layout (what ``make_demo_scenes`` writes): <root>/<split>/<sub>/.
SCENE_FOLDERS = ("image", "label", "gems", "air")
_AUX_NAME = re.compile(r"^(?:GEMS_|AIR_Pollution_(?:CO|NO2|SO2)_)?(?P<name>.+)\.tiff?$")


@dataclass
class SceneSet:
    """Paths (files or folders) of one split's sources; ``mask``/air may be absent."""

    image: list[str]
    mask: list[str] | None = None
    gems: list[str] | None = None
    air_pollution: list[str] | None = None
    #: Set by the original layout for tiles without georeferencing: path -> (crs, transform).
    georef_fallback: dict[str, Any] = field(default_factory=dict)

    @property
    def has_air(self) -> bool:
        return bool(self.gems or self.air_pollution)


def scene_set(root: str, split: str, layout: str = "scenes") -> SceneSet | None:
    """The split's :class:`SceneSet` under ``root``, or None when the split has no folder."""
    if layout == "scenes":
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            return None
        paths = [os.path.join(folder, sub) for sub in SCENE_FOLDERS]
        exists = [p if os.path.isdir(p) else None for p in paths]
        return SceneSet(
            image=[paths[0]],
            mask=[exists[1]] if exists[1] else None,
            gems=[exists[2]] if exists[2] else None,
            air_pollution=[exists[3]] if exists[3] else None,
        )
    if layout == "original":
        if split not in ORIGINAL_FOLDERS:
            return None
        image, label, gems, air = (os.path.join(root, f) for f in ORIGINAL_FOLDERS[split])
        if not os.path.isdir(image):
            return None
        for folder in (label, gems, air):
            if not os.path.isdir(folder):
                raise DualStreamError(f"{folder}: missing folder of the original layout")
        fallback = original_georef_fallback(image, [label, gems, air])
        return SceneSet([image], [label], [gems], [air], georef_fallback=fallback)
    raise DualStreamError(f"layout must be 'scenes' or 'original', got {layout!r}")


def raster_files(paths: Sequence[str]) -> list[str]:
    """The ``.tif`` files of ``paths`` (files as given, folders listed)."""
    files: list[str] = []
    for path in paths:
        files += sorted(glob.glob(os.path.join(path, "*.tif"))) if os.path.isdir(path) else [path]
    return files


def georef_fallback(
    image_paths: Sequence[str], aux_paths: Sequence[str]
) -> dict[str, tuple[object, Affine]]:
    """Footprints for auxiliary tiles without georeferencing, taken from the image tile of
    the same name (``GEMS_<name>.tif``, ``AIR_Pollution_CO_<name>.tif`` -> ``<name>.tif``),
    or from the only image when there is one.

    A tile of w x h pixels gets the image tile's CRS and a transform stretched so that it
    covers the same bounds. Emits one warning with the number of such tiles.
    """
    images = {
        os.path.splitext(os.path.basename(f))[0]: f
        for f in raster_files(image_paths)
        if os.path.isfile(f)
    }
    fallback: dict[str, tuple[object, Affine]] = {}
    for path in raster_files(aux_paths):
        if not os.path.isfile(path):
            continue
        with rasterio.open(path) as src:
            if has_georeferencing(src):
                continue
            width, height = src.width, src.height
        match = _AUX_NAME.match(os.path.basename(path))
        name = match["name"] if match else ""
        image_path = images.get(name) or (next(iter(images.values())) if len(images) == 1 else None)
        if image_path is None:
            raise DualStreamError(
                f"{path}: has no georeferencing and no image tile {name}.tif to take it from"
            )
        with rasterio.open(image_path) as image:
            if not has_georeferencing(image):
                raise DualStreamError(f"{image_path}: raster has no CRS or geotransform")
            scale = Affine.scale(image.width / width, image.height / height)
            fallback[path] = (image.crs, image.transform @ scale)
    if fallback:
        where = ", ".join(sorted({os.path.dirname(p) or "." for p in images.values()}))
        warnings.warn(
            f"{len(fallback)} tile(s) without georeferencing took the footprint of the "
            f"same-named image tile in {where}",
            stacklevel=2,
        )
    return fallback


def original_georef_fallback(
    image_folder: str, folders: Sequence[str]
) -> dict[str, tuple[object, Affine]]:
    """:func:`georef_fallback` for the original layout's auxiliary folders."""
    return georef_fallback([image_folder], folders)


def build_dataset(
    scenes: SceneSet,
    bands: Sequence[str] = ("blue", "green", "red", "nir"),
    band_files: Sequence[str] | None = None,
    class_map: Mapping[int, int] | None = None,
    unmapped: str = "background",
    ignore_index: int = 255,
    use_air: bool = True,
    air_scale: int = 8,
    image_nodata: float | None = None,
) -> DualStreamGeoDataset:
    """The joined dataset of one split (sources validated, overlap checked)."""
    fallback: Georef = scenes.georef_fallback  # type: ignore[assignment]
    image = SatelliteImage(scenes.image, bands=bands, band_files=band_files, nodata=image_nodata)
    mask = None
    if scenes.mask:
        mask = LandCoverMask(
            scenes.mask,
            class_map=class_map,
            unmapped=unmapped,
            ignore_index=ignore_index,
            georef_fallback=fallback,
        )
    air = []
    if use_air:
        if not (scenes.gems and scenes.air_pollution):
            raise DualStreamError(
                f"use_air is set but GEMS ({scenes.gems}) or air-pollution "
                f"({scenes.air_pollution}) paths are missing"
            )
        air = [
            GEMS(scenes.gems, georef_fallback=fallback),
            AirPollution(scenes.air_pollution, georef_fallback=fallback),
        ]
    check_image_values(image)
    for source in air:
        check_air_values(source)
    return DualStreamGeoDataset(image, air or None, mask, air_scale=air_scale)
