"""Folders for the files aux sources make.

VRTs private to the process, and the cache of gridded swaths shared by runs.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import tempfile
from collections.abc import Sequence

from ...errors import DualStreamError
from ..remote import is_remote

_folders: dict[str, str] = {}
#: Extensions of multidimensional files a folder is searched for.
MULTIDIMENSIONAL = (".nc", ".nc4", ".h5", ".he5", ".hdf5", ".zarr")


def private_folder(kind: str) -> str:
    """A temporary folder of this process for ``kind`` files, removed at exit."""
    if kind not in _folders:
        _folders[kind] = tempfile.mkdtemp(prefix=f"dualstream_geo_{kind}_")
        atexit.register(shutil.rmtree, _folders[kind], True)
    return _folders[kind]


def cache_folder(kind: str) -> str:
    """The shared cache folder of ``kind`` files.

    ``$DUALSTREAM_CACHE`` (default ``$XDG_CACHE_HOME/dualstream_geo`` or
    ``~/.cache/dualstream_geo``).

    Raises:
        DualStreamError: the folder cannot be created.
    """
    base = os.environ.get("DUALSTREAM_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dualstream_geo"
    )
    folder = os.path.join(base, kind)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise DualStreamError(
            f"cache folder {folder} cannot be created ({error.strerror}); set DUALSTREAM_CACHE"
        ) from None
    return folder


def multidimensional_files(
    paths: Sequence[str], source: str, extensions: Sequence[str] = MULTIDIMENSIONAL
) -> list[str]:
    """The files of ``paths``.

    Files (and URLs) as given, folders searched for files ending in ``extensions`` (NetCDF,
    HDF5 and Zarr by default; the format's own).

    Raises:
        DualStreamError: a missing path, or nothing found.
    """
    found: list[str] = []
    for path in paths:
        path = str(path)
        if is_remote(path) or path.rstrip("/").lower().endswith(".zarr") or os.path.isfile(path):
            found.append(path)
        elif os.path.isdir(path):
            found += sorted(
                p
                for p in glob.glob(os.path.join(path, "*"))
                if p.lower().endswith(tuple(extensions))
            )
        else:
            raise DualStreamError(f"aux source {source!r}: {path} does not exist")
    if not found:
        raise DualStreamError(
            f"aux source {source!r}: no {' / '.join(extensions)} file in "
            f"{', '.join(map(str, paths))}"
        )
    return found
