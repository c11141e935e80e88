"""Class legends where GIS tools read them, written beside a class GeoTIFF.

* ``<file>.aux.xml`` (GDAL PAM): category names and a thematic raster attribute table
  (value, class name, red, green, blue, alpha) for band 1; ``gdalinfo`` lists the
  categories and QGIS reads the table.
* ``<stem>.qml`` (QGIS style, loaded automatically with the raster): a paletted renderer
  with only the real classes, their colours and names; nodata stays transparent.

The GeoTIFF's own colour table has 256 entries (GDAL pads byte palettes), which QGIS would
otherwise show as a legend of 256 classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

# GDAL raster attribute table: field types and usages (gdal.h GDALRATFieldType / Usage).
_INTEGER, _STRING = 0, 2
_USAGE = {"Value": 5, "Class_Name": 2, "Red": 6, "Green": 7, "Blue": 8, "Alpha": 9}


def pam_xml(class_names: Sequence[str], colors: Sequence[Sequence[int]]) -> str:
    """GDAL PAM document: band 1 category names and attribute table."""
    categories = "".join(f"<Category>{escape(name)}</Category>" for name in class_names)
    fields = "".join(
        f'<FieldDefn index="{i}"><Name>{name}</Name>'
        f"<Type>{_STRING if name == 'Class_Name' else _INTEGER}</Type>"
        f"<Usage>{usage}</Usage></FieldDefn>"
        for i, (name, usage) in enumerate(_USAGE.items())
    )
    rows = "".join(
        f'<Row index="{value}"><F>{value}</F><F>{escape(name)}</F>'
        + "".join(f"<F>{int(c)}</F>" for c in (*color[:3], 255))
        + "</Row>"
        for value, (name, color) in enumerate(zip(class_names, colors, strict=True))
    )
    return (
        '<PAMDataset>\n  <PAMRasterBand band="1">\n'
        f"    <CategoryNames>{categories}</CategoryNames>\n"
        f'    <GDALRasterAttributeTable tableType="thematic">{fields}{rows}'
        "</GDALRasterAttributeTable>\n"
        "  </PAMRasterBand>\n</PAMDataset>\n"
    )


def qml(class_names: Sequence[str], colors: Sequence[Sequence[int]]) -> str:
    """QGIS layer style: a paletted renderer of band 1 with one entry per class."""
    entries = "\n".join(
        f'        <paletteEntry value="{value}" label={quoteattr(name)} alpha="255" '
        f'color="#{int(color[0]):02x}{int(color[1]):02x}{int(color[2]):02x}"/>'
        for value, (name, color) in enumerate(zip(class_names, colors, strict=True))
    )
    return (
        "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
        '<qgis version="3.28.0" styleCategories="AllStyleCategories">\n'
        "  <pipe>\n"
        '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" '
        'nodataColor="">\n'
        "      <rasterTransparency/>\n"
        "      <colorPalette>\n"
        f"{entries}\n"
        "      </colorPalette>\n"
        "    </rasterrenderer>\n"
        "  </pipe>\n"
        "  <blendMode>0</blendMode>\n"
        "</qgis>\n"
    )


def sidecar_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(``<file>.aux.xml``, ``<stem>.qml``) of a raster path."""
    path = Path(path)
    return path.with_name(path.name + ".aux.xml"), path.with_suffix(".qml")


def write_legend(
    path: str | os.PathLike[str], class_names: Sequence[str], colors: Sequence[Sequence[int]]
) -> None:
    """Write both sidecars of the class raster ``path``, each atomically."""
    for target, text in zip(
        sidecar_paths(path), (pam_xml(class_names, colors), qml(class_names, colors)), strict=True
    ):
        partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        partial.write_text(text)
        os.replace(partial, target)
