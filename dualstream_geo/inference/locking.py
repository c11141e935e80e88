"""An exclusive lock per output path, held for a whole prediction run.

The lock is ``<output>.lock``, created atomically (``O_CREAT | O_EXCL``) with the owner's
pid, host and start time. A second run on the same output fails at once, whatever
``--overwrite`` says, naming the running process; a lock left by a dead process on this
host is reported as stale, and ``--resume`` takes it over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import DualStreamError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _create(path: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, f)
    return True


def _owner(path: str) -> dict[str, object]:
    try:
        with open(path) as f:
            owner = json.load(f)
        return owner if isinstance(owner, dict) else {}
    except (OSError, ValueError):
        return {}


@contextmanager
def output_lock(output: str, take_over_stale: bool = False) -> Iterator[str]:
    """Hold ``<output>.lock`` for the duration of the ``with`` block."""
    lock = f"{output}.lock"
    if not _create(lock):
        owner = _owner(lock)
        pid, host = owner.get("pid"), owner.get("host")
        here = host == socket.gethostname()
        stale = here and isinstance(pid, int) and not _alive(pid)
        if not stale:
            where = f"pid {pid} on {host}" if pid else "another process"
            raise DualStreamError(
                f"output {output} is being written by {where} (lock {lock}); wait for it to "
                "finish, or remove the lock if that process is gone"
            )
        if not take_over_stale:
            raise DualStreamError(
                f"output {output} has a stale lock from pid {pid}, which is no longer running; "
                f"pass --resume to take it over (or remove {lock})"
            )
        # Take over: the stale owner is gone; replace its lock with ours, atomically.
        os.remove(lock)
        if not _create(lock):
            raise DualStreamError(f"output {output}: another run took the stale lock {lock}")
    try:
        yield lock
    finally:
        if _owner(lock).get("pid") == os.getpid():
            os.remove(lock)
