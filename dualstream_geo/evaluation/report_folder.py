"""A report folder: checked before any work, written whole or not at all."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import DualStreamError
from ..paths import check_folder_writable, check_output, describe_write_error

PathLike = str | os.PathLike[str]


def checked_report_folder(out: Path, inputs: Sequence[PathLike], overwrite: bool) -> Path:
    """The report folder's real path, once it may be (re)written.

    Args:
        out: the ``--output`` folder.
        inputs: the files the command reads, which the folder may not be, hold or lie in.
        overwrite: replace an earlier report there.

    Returns:
        The folder's real path.

    Raises:
        DualStreamError: the folder is an input's, is not empty without ``overwrite``, holds
            files but no earlier report, or cannot be written (named).
    """
    # The folder is replaced whole: it may not be, hold or lie inside an input.
    real = Path(check_output(out, list(inputs), "--output", "folder"))
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DualStreamError(f"--output {out} is not empty; pass --overwrite to replace it")
        if not (out / "report.json").is_file():
            # --overwrite replaces an earlier report, never a folder of other files.
            raise DualStreamError(
                f"--output {out} holds files but no report.json: it is not a report folder, "
                "and is not replaced; choose another folder"
            )
    check_folder_writable(real.parent, "--output")
    return real


@contextmanager
def written_whole(real: Path, out: Path) -> Iterator[Path]:
    """A folder beside ``real`` to write the report in, which replaces ``real`` on success.

    Args:
        real: the report folder's real path (:func:`checked_report_folder`).
        out: the folder as given, for messages.

    Yields:
        The folder being built; it is removed whatever happens.

    Raises:
        DualStreamError: a failed write (named).
    """
    building = real.with_name(f".{real.name}.{os.getpid()}.partial")
    shutil.rmtree(building, ignore_errors=True)
    try:
        building.mkdir()
        yield building
        if real.exists():
            shutil.rmtree(real)
        os.replace(building, real)
    except OSError as error:
        raise DualStreamError(describe_write_error(out, error)) from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
