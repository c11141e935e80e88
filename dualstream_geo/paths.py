"""Outputs that can never destroy an input: one check shared by every command that writes.

An output (a file, or a folder a command fills or replaces) must not be one of the
command's inputs, hold one (a folder that would be replaced with the input inside), or lie
inside an input folder (which a later run would read as input); and it must be a regular
file or folder, or not exist yet. Symbolic links, ``..`` and hard links are seen through.
Remote inputs (URLs, GDAL virtual paths) cannot coincide with a local output.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable
from typing import Literal

from .data.remote import is_remote
from .errors import DualStreamError

PathLike = str | os.PathLike[str]


def _real(path: PathLike) -> str:
    return os.path.realpath(os.path.abspath(os.fspath(path)))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _inside(path: str, folder: str) -> bool:
    """True when ``path`` lies strictly inside ``folder`` (both real paths)."""
    return path != folder and os.path.commonpath([path, folder]) == folder


def check_output(
    output: PathLike,
    inputs: Iterable[PathLike | None],
    flag: str = "--output",
    kind: Literal["file", "folder"] = "file",
    replaced: bool = True,
) -> str:
    """Refuse an ``output`` that could destroy an input or is not a plain file or folder.

    Args:
        output: the file or folder the command writes.
        inputs: every file or folder it reads (None entries and remote paths are skipped).
        flag: how messages name the output.
        kind: whether the output is a file or a folder.
        replaced: a folder output is replaced whole (a report); False for a folder the
            command only adds files to (a run folder), which may hold inputs and the
            working folder.

    Returns:
        The output's real path.

    Raises:
        DualStreamError: an empty name; an output that is not a regular file or folder, is
            of the other kind, is an input, holds one or lies inside one (named).
    """
    text = os.fspath(output)
    if not text.strip():
        raise DualStreamError(f"{flag} is empty: give a {kind} name")
    real = _real(text)
    if os.path.lexists(real):
        mode = os.stat(real).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise DualStreamError(
                f"{flag} {text} is not a regular {kind} (a device, pipe or socket)"
            )
        if kind == "file" and stat.S_ISDIR(mode):
            raise DualStreamError(f"{flag} {text} is a folder; give a file name")
        if kind == "folder" and stat.S_ISREG(mode):
            raise DualStreamError(f"{flag} {text} is a file; give a folder")
    if kind == "folder" and not replaced:
        return real
    if kind == "folder":
        here = _real(os.getcwd())
        if real == here or _inside(here, real):
            raise DualStreamError(
                f"{flag} {text} is the working folder or holds it; give a folder of its own"
            )
    local = [
        (os.fspath(given), _real(given))
        for given in inputs
        if given is not None and os.fspath(given) and not is_remote(os.fspath(given))
    ]
    # The most direct relation is named: being an input, then holding one, then lying inside.
    for given, source in local:
        if source == real or _same_file(source, real):
            raise DualStreamError(
                f"{flag} {text} is one of the inputs ({given}); choose another path"
            )
    for given, source in local:
        if _inside(source, real):
            raise DualStreamError(f"{flag} {text} holds the input {given}; choose another {kind}")
    for given, source in local:
        if os.path.isdir(source) and _inside(real, source):
            raise DualStreamError(
                f"{flag} {text} lies inside the input folder {given}; write it elsewhere"
            )
    return real


def check_apart(folder: PathLike, inputs: Iterable[PathLike | None], flag: str) -> None:
    """Refuse a folder a command writes into that is an input folder or lies inside one.

    What it writes there would be read back as part of that input.

    Raises:
        DualStreamError: the folder and the input folder (named).
    """
    real = _real(folder)
    for given in inputs:
        if given is None or not os.fspath(given) or is_remote(os.fspath(given)):
            continue
        source = _real(given)
        if os.path.isdir(source) and (real == source or _inside(real, source)):
            raise DualStreamError(
                f"{flag} {os.fspath(folder)} lies inside the input folder {os.fspath(given)}: "
                "what is written there would be read as part of it; give a folder of its own"
            )


def check_folder_writable(folder: PathLike, flag: str = "--output") -> None:
    """The folder that will hold an output exists and takes a new file.

    A probe file is created and removed: permissions alone miss read-only mounts, immutable
    folders and the superuser.

    Raises:
        DualStreamError: the folder is missing, not a folder, or cannot be written (named).
    """
    path = os.fspath(folder) or "."
    if not os.path.exists(path):
        raise DualStreamError(f"{flag}: folder {path} does not exist")
    if not os.path.isdir(path):
        raise DualStreamError(f"{flag}: {path} is not a folder")
    try:
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".dualstream_geo_probe_")
    except OSError as error:
        raise DualStreamError(
            f"{flag}: folder {path} is not writable ({error.strerror or error})"
        ) from None
    probe.close()


def describe_write_error(path: PathLike, error: OSError, flag: str = "--output") -> str:
    """One line for a write that failed part-way (a full disk, a folder made read-only)."""
    reason = error.strerror or str(error)
    if error.errno == errno.ENOSPC:
        reason = "no space left on the device"
    return f"{flag} {os.fspath(path)}: writing failed ({reason}); nothing was left behind"
