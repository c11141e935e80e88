"""Where the rasters of a split live.

Explicit paths, the scene-folder layout, or the original project's tile layout (``ts_sn/
tl_sn/ t_ap/ t_gems/`` and ``vs_sn/ vl_sn/ v_ap/ v_gems/``).
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import rasterio
from affine import Affine

from ..errors import DualStreamError
from .auxiliary.files import MULTIDIMENSIONAL
from .sources import has_georeferencing

#: Original layout folders per split: image, label, GEMS, air pollution.
ORIGINAL_FOLDERS = {
    "train": ("ts_sn", "tl_sn", "t_gems", "t_ap"),
    "val": ("vs_sn", "vl_sn", "v_gems", "v_ap"),
}
#: Scene-folder layout (what ``make_demo_scenes`` writes): <root>/<split>/<sub>/.
SCENE_FOLDERS = ("image", "label", "gems", "air")
#: Folders of the original preset's aux sources in the scene layout (others: their name).
SCENE_AUX_FOLDERS = {"gems": "gems", "air_pollution": "air"}
_AUX_NAME = re.compile(r"^(?:GEMS_|AIR_Pollution_(?:CO|NO2|SO2)_)?(?P<name>.+)\.tiff?$")


@dataclass
class SceneSet:
    """Paths (files or folders) of one split's sources.

    The image, the labels (``mask``) and the aux sources' own paths by name (``aux``: a
    source not named here reads the paths of its
    :class:`~dualstream_geo.data.auxiliary.spec.AuxSpec`).
    """

    image: list[str]
    mask: list[str] | None = None
    aux: dict[str, list[str]] | None = None
    #: Set by the original layout for tiles without georeferencing: path -> (crs, transform).
    georef_fallback: dict[str, Any] = field(default_factory=dict)


def scene_set(
    root: str, split: str, layout: str = "scenes", aux_names: Sequence[str] = ()
) -> SceneSet | None:
    """The split's :class:`SceneSet` under ``root``, or None when the split has no folder.

    Its ``aux`` holds the folder of each of ``aux_names`` that exists: ``<split>/<name>``,
    and for the original preset's sources ``<split>/gems`` and ``<split>/air`` (scenes),
    ``t_gems`` / ``t_ap`` and ``v_gems`` / ``v_ap`` (original).
    """
    if layout == "scenes":
        folder = os.path.join(root, split)
        if not os.path.isdir(folder):
            return None
        image, label = (os.path.join(folder, sub) for sub in SCENE_FOLDERS[:2])
        folders = {
            name: os.path.join(folder, SCENE_AUX_FOLDERS.get(name, name)) for name in aux_names
        }
        return SceneSet(
            image=[image],
            mask=[label] if os.path.isdir(label) else None,
            aux={name: [path] for name, path in folders.items() if os.path.isdir(path)},
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
        aux = {"gems": [gems], "air_pollution": [air]}
        return SceneSet(
            [image],
            [label],
            {name: paths for name, paths in aux.items() if name in aux_names},
            georef_fallback=fallback,
        )
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
    """Footprints for auxiliary tiles without georeferencing.

    Taken from the image tile of the same name (``GEMS_<name>.tif``,
    ``AIR_Pollution_CO_<name>.tif`` -> ``<name>.tif``), or from the only image when there is
    one.

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
        if not os.path.isfile(path) or path.lower().endswith(MULTIDIMENSIONAL):
            continue  # NetCDF / HDF5 files are georeferenced by their variables
        try:
            src = rasterio.open(path)
        except rasterio.errors.RasterioError as error:
            reason = " ".join(str(error).split())
            raise DualStreamError(f"{path}: not a readable raster ({reason})") from None
        with src:
            if has_georeferencing(src) or src.subdatasets:
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
