"""Several processes predicting one scene: the process group, the launcher and the row split.

Processes find each other through torch.distributed's ``env://`` rendezvous (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``): set by torchrun or SLURM for several
nodes, or by :func:`launch_local` for ``--devices N`` on one machine. Control messages go
over a gloo group (CPU tensors, whatever the accelerator); window counts for the one
progress bar go through the rendezvous store.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..data.grid import Grid
from ..errors import DualStreamError
from .locking import output_lock
from .outputs import check_interrupted_parts, interrupted_files, resumable_rows
from .writer import OutputSpec, assemble, create_partial, finalize, rank_part

#: ``run(parts, first row, end row, progress)``: compute and write rows [first, end) into
#: ``parts``; ``progress(rows written so far, scene height)`` after each strip.
RowRunner = Callable[[list[OutputSpec], int, int, Callable[[int, int], None]], None]

#: How long a rank waits for the others at the end of the scene.
TIMEOUT = timedelta(hours=6)
#: How long ranks wait for each other to start (``DUALSTREAM_JOIN_TIMEOUT`` seconds).
JOIN_TIMEOUT = timedelta(seconds=float(os.environ.get("DUALSTREAM_JOIN_TIMEOUT", "600")))


class PeerStopped(Exception):
    """This rank stops because another one failed; that rank reports why."""

    def __init__(self, code: int = 2) -> None:
        super().__init__(code)
        self.code = code


def rank_rows(strip_rows: Sequence[int], height: int, rank: int, world_size: int) -> range:
    """The output rows rank ``rank`` writes.

    An equal share of the strips (windows rows starting at ``strip_rows``), from the first
    row of its first strip to the first row of the next rank's.
    """
    count = len(strip_rows)
    first, after = count * rank // world_size, count * (rank + 1) // world_size
    if first == after:
        return range(0)
    return range(strip_rows[first], strip_rows[after] if after < count else height)


@dataclass
class RankGroup:
    """This process's place among ``world_size`` predicting processes."""

    rank: int
    world_size: int
    local_rank: int
    store: dist.Store

    @classmethod
    def from_environment(cls) -> RankGroup | None:
        """Join the group described by the environment; None for a single process."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size < 2:
            return None
        missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise DualStreamError(
                f"WORLD_SIZE={world_size} is set but {', '.join(missing)} not: start the ranks "
                "with torchrun (or --devices N), or unset WORLD_SIZE to predict on one process"
            )
        rank = int(os.environ["RANK"])
        address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
        if rank == 0:
            print(
                f"dualstream-geo: rank 0 of {world_size} waiting up to "
                f"{JOIN_TIMEOUT.total_seconds():.0f} s for the other ranks at {address}",
                file=sys.stderr,
            )
        try:
            store, rank, world_size = next(dist.rendezvous("env://", timeout=JOIN_TIMEOUT))
        except (RuntimeError, ValueError) as error:  # a timeout, a refused or bad address
            detail = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
            raise DualStreamError(
                f"rank {rank} of {world_size}: the other ranks did not join at {address} within "
                f"{JOIN_TIMEOUT.total_seconds():.0f} s ({detail}); unset WORLD_SIZE to predict "
                "on one process"
            ) from None
        dist.init_process_group(
            "gloo",
            store=dist.PrefixStore("dualstream_geo", store),
            rank=rank,
            world_size=world_size,
            timeout=TIMEOUT,
        )
        return cls(rank, world_size, int(os.environ.get("LOCAL_RANK", "0")), store)

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        box = [value]
        self._collective(dist.broadcast_object_list, box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every rank's ``value``, in rank order, on every rank."""
        values: list[Any] = [None] * self.world_size
        self._collective(dist.all_gather_object, values, value)
        return values

    def _collective(self, function: Any, *args: Any, **kwargs: Any) -> None:
        try:
            function(*args, **kwargs)
        except RuntimeError:  # a peer process is gone: its connections closed
            raise DualStreamError(
                "another predicting process stopped before the scene was finished; the "
                "finished rows are kept: rerun the same command with --resume"
            ) from None

    def add_progress(self, rows: int) -> None:
        """Count ``rows`` more output rows written (all ranks' bar reads the sum)."""
        self.store.add("rows_written", rows)

    def close(self) -> None:
        """Leave the process group."""
        if dist.is_initialized():
            dist.destroy_process_group()


class GroupProgress:
    """Rank 0's bar over the whole scene's rows, fed by every rank through the store."""

    def __init__(self, group: RankGroup, total: int, done: int) -> None:
        self.group, self.stopped = group, threading.Event()
        self.bar = tqdm(total=total, initial=done, unit="row", desc="predict", disable=None)
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        base = self.bar.n
        while not self.stopped.wait(0.5):
            self.bar.n = min(self.bar.total, base + self.group.store.add("rows_written", 0))
            self.bar.refresh()

    def close(self) -> None:
        """Stop following the ranks' progress and close the bar at the scene's end."""
        self.stopped.set()
        self.thread.join()
        self.bar.n = self.bar.total
        self.bar.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_devices(devices: int) -> None:
    """Check ``--devices N`` against the machine.

    ``--devices N``: at least one, no more GPUs than there are, and without a GPU no more
    processes than CPU cores.
    """
    if devices < 1:
        raise DualStreamError(f"--devices must be >= 1, got {devices}")
    if torch.cuda.is_available() and devices > torch.cuda.device_count():
        raise DualStreamError(
            f"--devices {devices}: this machine has {torch.cuda.device_count()} GPU(s)"
        )
    cores = os.cpu_count() or 1
    if not torch.cuda.is_available() and devices > cores:
        raise DualStreamError(
            f"--devices {devices}: this machine has no GPU and {cores} CPU core(s); give at "
            f"most {cores} processes"
        )


def launch_local(argv: Sequence[str], devices: int) -> list[subprocess.Popen[bytes]]:
    """Start ranks 1..devices-1 of ``dualstream-geo predict argv`` on this machine.

    And make this process rank 0 (the environment of a one-node torchrun).
    """
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "WORLD_SIZE": str(devices),
        "LOCAL_WORLD_SIZE": str(devices),
    }
    if not torch.cuda.is_available():
        # CPU processes share the cores instead of each taking all of them.
        threads = max(1, (os.cpu_count() or 1) // devices)
        env["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "dualstream_geo", "predict", *argv],
            env={**os.environ, **env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
        )
        for rank in range(1, devices)
    ]
    os.environ.update({**env, "RANK": "0", "LOCAL_RANK": "0"})
    return children


def wait_for(children: Sequence[subprocess.Popen[bytes]]) -> str | None:
    """Wait for the ranks started by :func:`launch_local`.

    Stop the others as soon as one fails. Returns what went wrong, or None.
    """
    failed = None
    pending = list(children)
    while pending:
        for child in list(pending):
            code = child.poll()
            if code is None:
                continue
            pending.remove(child)
            if code != 0 and failed is None:
                failed = f"a predicting process (pid {child.pid}) ended with status {code}"
                for other in pending:
                    other.terminate()
        if pending:
            time.sleep(0.1)
    return failed


def predict_on_ranks(
    group: RankGroup,
    grid: Grid,
    specs: list[OutputSpec],
    signature: dict[str, Any],
    strip_rows: Sequence[int],
    output: str,
    check_outputs: Callable[[], None],
    run: RowRunner,
    resume: bool,
    overwrite: bool,
) -> None:
    """This rank's part of a scene shared by ``group``.

    Each rank writes an equal share of the strips' rows (``rank_rows``) to its own partial
    file, computing every window that overlaps them in whole-scene order, and resumes its
    own share. Rank 0 holds the output lock from the checks to the final rename, shows the
    scene's progress, assembles the parts and writes the one COG; a failure on any rank is
    reported there, and no output appears.
    """
    rank, world_size = group.rank, group.world_size
    with ExitStack() as held:
        if rank == 0:
            _checked_output(held, group, output, check_outputs, specs, resume, overwrite)
        elif group.broadcast(None) is not None:
            raise PeerStopped()
        shares = [rank_rows(strip_rows, grid.height, r, world_size) for r in range(world_size)]
        share = shares[rank]
        parts = [rank_part(spec, rank, world_size) for spec in specs]
        start = share.start
        if resume and share:
            start = max(share.start, min(resumable_rows(p, signature) for p in parts))
        if share and start == share.start:
            for part in parts:
                create_partial(part, grid)
        done_before = group.gather(start - share.start)
        bar = GroupProgress(group, grid.height, sum(done_before)) if rank == 0 else None
        outcome: str | None = None
        written = [start]

        def report(rows: int, height: int) -> None:
            # The runner reports the rows done so far; the store counts the new ones.
            group.add_progress(rows - written[0])
            written[0] = rows

        try:
            if start < share.stop:
                run(parts, start, share.stop, report)
        except Exception as caught:  # reported by rank 0 with the other ranks' outcome
            outcome = f"rank {rank}: {caught}"
        finally:
            if bar is not None:
                bar.close()
        failures = [f for f in group.gather(outcome) if f is not None]
        if failures:
            if rank == 0:
                raise DualStreamError(
                    "; ".join(failures) + " (finished rows are kept: rerun with --resume)"
                )
            raise PeerStopped()
        if rank == 0:
            for spec in specs:
                _assemble_output(spec, grid, shares)
        group.gather(None)  # the other ranks return once the output exists


def _checked_output(
    held: ExitStack,
    group: RankGroup,
    output: str,
    check_outputs: Callable[[], None],
    specs: list[OutputSpec],
    resume: bool,
    overwrite: bool,
) -> None:
    """On rank 0: take the output lock and check the outputs.

    On rank 0: take the output lock (held by ``held``) and check the outputs and the parts
    of an interrupted run; the outcome is broadcast, and a failure raised here.
    """
    error = None
    try:
        held.enter_context(output_lock(output, take_over_stale=resume))
        check_outputs()
        check_interrupted_parts(specs, group.world_size, resume, overwrite)
    except DualStreamError as failure:
        error = str(failure)
    if group.broadcast(error) is not None:
        raise DualStreamError(str(error))


def _assemble_output(spec: OutputSpec, grid: Grid, shares: list[range]) -> None:
    """The one COG of ``spec`` from every rank's part; the parts are removed."""
    every = [rank_part(spec, r, len(shares)) for r in range(len(shares))]
    assemble(spec, grid, every, shares)
    finalize(spec)
    for leftover in interrupted_files(spec):  # every rank's part
        os.remove(leftover)
