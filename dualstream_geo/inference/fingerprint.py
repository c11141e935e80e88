"""What a prediction run depends on, for resuming: the input files' fingerprint."""

from __future__ import annotations

import os
from typing import Any

from ..data.join import DualStreamGeoDataset
from ..data.remote import is_remote, redact, remote_version


def input_fingerprint(dataset: DualStreamGeoDataset) -> list[list[Any]]:
    """What identifies every input file.

    [path, size, mtime_ns] of every input file (remote: [path without credentials, what the
    server says of its version]): a resumed run must read the same data.
    """
    files: set[str] = set()
    for source in [dataset.image, *dataset.air]:
        for entry in source.index.filepath:
            files.update(
                p if is_remote(p) else os.path.realpath(p) for p, _ in source.channel_files(entry)
            )
    fingerprint = []
    for path in sorted(files):
        if is_remote(path):
            fingerprint.append([redact(path), *remote_version(path)])
            continue
        stat = os.stat(path)
        fingerprint.append([path, stat.st_size, stat.st_mtime_ns])
    return fingerprint
