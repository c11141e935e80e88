"""How large a prediction window may be.

Small enough for the memory that is free for the model's activations.
"""

from __future__ import annotations

import os

import torch

from ..errors import DualStreamError

#: Peak activation memory per window pixel in inference: a 4096 px window of the original
#: preset takes about 20 GiB (1,280 bytes a pixel), rounded up.
BYTES_PER_PIXEL = 1300


def free_memory(device: torch.device) -> int:
    """Bytes free for activations on ``device`` (CPU: the kernel's MemAvailable)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_window_memory(tile: int, batch_size: int, device: torch.device) -> None:
    """Refuse windows whose activations cannot fit, before any is computed."""
    need = batch_size * tile * tile * BYTES_PER_PIXEL
    free = free_memory(device)
    if need > free:
        raise DualStreamError(
            f"--tile {tile} with --batch-size {batch_size} needs about {need / 2**30:.1f} GiB "
            f"for the model's activations, but {free / 2**30:.1f} GiB are free on {device}; "
            "use a smaller --tile or --batch-size"
        )
