"""A small PNG of a class map beside it, on map axes with its legend.

What a user looks at before opening a GIS (``predict`` writes one beside every map,
``sample-design`` one with the sample's points).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

#: The preview's longest side in map pixels: the COG's overviews serve the read.
MAX_SIDE = 800
#: Where a class map holds no class (``predict``'s nodata).
NODATA_COLOR = (255, 255, 255)


def preview_path(output: str | os.PathLike[str]) -> Path:
    """The preview of the raster ``output``: ``<stem>.png`` beside it."""
    return Path(output).with_suffix(".png")


def read_classes(src: rasterio.io.DatasetReader, max_side: int = MAX_SIDE) -> np.ma.MaskedArray:
    """The raster's classes at most ``max_side`` pixels a side.

    (nearest neighbour, from the overviews where the file has them): (rows, cols), masked
    where there is no class.

    A one-band raster is a class map; a multi-band one holds per-class probabilities
    (``predict --kind probabilities``), and each pixel takes its most likely class.
    """
    step = max(1.0, max(src.width, src.height) / max_side)
    shape = (max(1, round(src.height / step)), max(1, round(src.width / step)))
    data = src.read(out_shape=(src.count, *shape), resampling=Resampling.nearest, masked=True)
    if src.count == 1:
        return data[0]
    missing = np.ma.getmaskarray(data).all(0)
    return np.ma.masked_array(data.filled(0).argmax(0), missing)


def map_colors(src: rasterio.io.DatasetReader, count: int) -> list[tuple[int, int, int]]:
    """The raster's colour table, else matplotlib's ``tab20`` colours.

    The raster's colour table (``predict``'s class maps carry one), else matplotlib's
    ``tab20`` colours.
    """
    try:
        table = src.colormap(1)
        return [tuple(table.get(i, NODATA_COLOR)[:3]) for i in range(count)]  # type: ignore[misc]
    except ValueError:
        from matplotlib import colormaps

        cycle = colormaps["tab20"]
        return [tuple(int(255 * c) for c in cycle(i % cycle.N)[:3]) for i in range(count)]  # type: ignore[misc]


def write_preview(
    raster: str | os.PathLike[str],
    path: str | os.PathLike[str],
    class_names: Sequence[str] | None = None,
    colors: Sequence[Sequence[int]] | None = None,
    points: tuple[np.ndarray, np.ndarray] | None = None,
    title: str | None = None,
) -> Path:
    """Draw the class raster ``raster`` to the PNG ``path`` on map axes in its CRS.

    Draw the class raster ``raster`` (classes, or probabilities per class) to the PNG
    ``path`` on map axes in its CRS, with a legend of the classes it holds.

    Args:
        raster: a class map or a probability raster (one band per class).
        path: the PNG, written atomically (a temporary file renamed into place).
        class_names: names of classes 0, 1, ...; default the raster's ``class_names`` tag,
            else the values.
        colors: one RGB colour per class; default the raster's colour table, else ``tab20``.
        points: x and y in the raster's CRS, drawn as yellow dots (a sample's points).
        title: the figure's title; default the raster's file name.

    Returns:
        The PNG's path.
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    with rasterio.open(raster) as src:
        classes = read_classes(src)
        if class_names is None:
            tagged = src.tags().get("class_names")
            top = int(classes.max()) if classes.count() else 0
            class_names = json.loads(tagged) if tagged else [str(v) for v in range(top + 1)]
        names = list(class_names)
        palette = list(colors) if colors is not None else map_colors(src, len(names))
        left, bottom, right, top_edge = src.bounds
        crs = src.crs
    shown = sorted(int(v) for v in np.unique(classes.compressed()) if v < len(names))
    table = np.array([*(tuple(c[:3]) for c in palette), NODATA_COLOR]) / 255
    image = classes.filled(len(names))
    image = np.where(image > len(names), len(names), image)
    width = 7.0
    height = float(np.clip(width * image.shape[0] / image.shape[1], 2.5, 9.0))
    fig = Figure(figsize=(width + 2.2, height))
    ax = fig.add_subplot()
    ax.imshow(
        image,
        cmap=ListedColormap(table),
        vmin=0,
        vmax=len(names),
        interpolation="nearest",
        extent=(left, right, bottom, top_edge),
    )
    if points is not None:
        ax.scatter(points[0], points[1], s=14, c="#ffd500", edgecolors="black", linewidths=0.6)
    geographic = crs is not None and crs.is_geographic
    unit = "degrees" if geographic else (crs.linear_units if crs is not None else "pixels")
    crs_name = crs.to_string() if crs is not None else "no CRS"
    ax.set_xlabel(f"{'longitude' if geographic else 'easting'} ({unit}, {crs_name})")
    ax.set_ylabel(f"{'latitude' if geographic else 'northing'} ({unit}, {crs_name})")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=7)
    ax.set_title(title or Path(raster).name)
    handles = [Patch(color=table[i], label=names[i]) for i in shown]
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    target = Path(path)
    partial = target.with_name(f".{target.stem}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(partial, dpi=80)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
