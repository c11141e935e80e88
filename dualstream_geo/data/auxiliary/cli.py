"""``dualstream-geo grid``.

Atmospheric products (Level 2 swaths, gridded NetCDF / HDF5 / Zarr variables, GRIB fields)
onto the aux grid of an image, as a COG: what the model will see, to look at in a GIS and to
reuse as a plain raster aux source.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import rasterio

from ...errors import DualStreamError, OneLineParser
from ...paths import check_folder_writable, check_output
from ..grid import Grid
from ..remote import redact_text
from .files import multidimensional_files
from .formats import FORMATS
from .gridding import grid_data, write_grid
from .netcdf import variables
from .spec import AuxSpec

#: The formats ``grid`` takes: those gridded onto a scene's aux grid.
GRIDDED = tuple(name for name, row in FORMATS.items() if row.gridded)
#: What a folder given to ``grid`` is searched for: the files of any of them.
GRIDDED_EXTENSIONS = tuple(dict.fromkeys(e for n in GRIDDED for e in FORMATS[n].extensions))


def detect_format(path: str) -> str:
    """The format of a file.

    By extension for GRIB; ``s5p_l2`` for a file with a ``PRODUCT`` group, ``gems_l2`` for
    ``Data Fields`` and ``Geolocation Fields`` groups, ``netcdf`` (a gridded variable)
    otherwise.
    """
    if path.lower().endswith(FORMATS["grib"].extensions):
        return "grib"
    names = variables(path)
    if any(n.startswith("/PRODUCT/") for n in names):
        return "s5p_l2"
    if any(n.startswith("/Geolocation Fields/") for n in names):
        return "gems_l2"
    return "netcdf"


def like_grid(path: str, scale: int) -> Grid:
    """The aux grid of the image ``path``: its grid with pixels ``scale`` times larger.

    Raises:
        DualStreamError: an unreadable or not georeferenced image.
    """
    try:
        with rasterio.open(path) as src:
            if src.crs is None or src.transform.is_identity:
                raise DualStreamError(f"--like {path}: the image has no CRS or geotransform")
            grid = Grid(src.crs, src.transform, src.height, src.width)
    except rasterio.errors.RasterioError as error:
        raise DualStreamError(f"--like {path}: not a readable raster ({error})") from None
    if scale < 1:
        raise DualStreamError(f"--aux-scale must be >= 1, got {scale}")
    return grid.coarsened(scale)


def grid_main(argv: list[str]) -> int:
    """Run ``dualstream-geo grid`` on ``argv``; the exit status."""
    parser = OneLineParser(
        prog="dualstream-geo grid",
        description="Grid atmospheric products onto the aux grid of an image (a COG).",
    )
    parser.add_argument("files", nargs="+", help="Level 2 orbits, or NetCDF/HDF5/Zarr grids")
    parser.add_argument("--variable", required=True, help="the variable to grid")
    parser.add_argument("--like", required=True, help="an image file: its CRS and bounds")
    parser.add_argument("--output", required=True, help="the COG to write (.tif)")
    parser.add_argument("--format", choices=GRIDDED, help="default: found from the first file")
    parser.add_argument("--aux-scale", type=int, default=8, help="aux pixels per image pixel")
    parser.add_argument("--qa-min", type=float, help="swaths: lowest quality value kept")
    parser.add_argument("--composite", choices=("mean", "median"), default="mean")
    parser.add_argument("--count", action="store_true", help="swaths: add the orbit count")
    parser.add_argument("--time", nargs=2, metavar=("START", "END"), help="dates, inclusive")
    parser.add_argument("--reduce", choices=("none", "mean", "median", "max"), default="none")
    parser.add_argument("--resampling", default="average", help="gridded variables' method")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    output = args.output
    real = check_output(output, [*args.files, args.like], "--output")
    if not output.lower().endswith((".tif", ".tiff")):
        raise DualStreamError(f"--output {output}: grid writes a GeoTIFF; give a .tif name")
    if os.path.exists(output) and not args.overwrite:
        raise DualStreamError(f"--output {output} exists; pass --overwrite to replace it")
    check_folder_writable(os.path.dirname(real), "--output")
    grid = like_grid(args.like, args.aux_scale)
    name = args.variable.strip("/").split("/")[-1].replace(" ", "_") or "value"
    files = multidimensional_files(args.files, name, GRIDDED_EXTENSIONS)
    spec = AuxSpec(
        name=name if name[0].isalpha() else f"v_{name}",
        paths=tuple(files),
        format=args.format or detect_format(files[0]),
        variable=args.variable,
        time=tuple(args.time) if args.time else None,  # type: ignore[arg-type]
        reduce=args.reduce,
        qa_min=args.qa_min,
        composite=args.composite,
        count=args.count,
        resampling=args.resampling,
    )
    data, descriptions, tags = grid_data(spec, files, grid)
    tags |= {
        "command": redact_text(" ".join(sys.argv)),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "like": os.path.abspath(args.like),
        "aux_scale": str(args.aux_scale),
    }
    write_grid(output, data, grid, descriptions, tags, cog=True)
    filled = float((data == data).mean())  # NaN != NaN: the share of cells with a value
    print(
        f"wrote {output}: {len(data)} band(s) ({', '.join(descriptions)}), "
        f"{grid.height} x {grid.width} cells, {filled:.0%} with a value"
    )
    return 0
