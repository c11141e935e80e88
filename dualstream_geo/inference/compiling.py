"""Compile a model's full-resolution detail path where that pays (issue 40).

The depthwise detail paths (``separable``, ``spectral``, ``spectral_wide``) are a quarter of
the model's FLOP but most of its time on a CPU: their per-pixel norms, GELUs and residual
additions each read and write every full-resolution map once, so they are bound by memory,
not arithmetic. ``torch.compile`` fuses them into fewer passes. While every batch faulted its
maps in again and the dilation-8 layer ran oneDNN's slow kernel, that made the zion_dem.yaml
model's forward 0.70x as long (AMD EPYC Zen 4, 2 cores, bf16); with freed memory kept and
that layer padded first (``memory.keep_freed_memory``, ``detail.DepthwiseConv2d``) the path
alone is 1.1x faster compiled, 16 ms saved per 512 px window on 2 Zen 3 cores
(benchmarks/README.md). Compiling it takes 12-20 s on a fresh machine (5 s with inductor's
cache warm; the whole model: 80-110 s for little more), about what it saves over 1,000
windows, so ``predict`` compiles it on scenes of at least :data:`COMPILE_MIN_WINDOWS`
windows.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

#: Windows from which compiling the detail path pays for its compilation on a CPU.
COMPILE_MIN_WINDOWS = 1000


class CompiledForward:
    """A module's ``forward`` compiled, falling back to the eager one if compiling fails.

    Compiling happens at the first call, so a machine without a C++ compiler (inductor's CPU
    backend needs one) fails there: the path then runs uncompiled, with one warning.

    Args:
        module: the module whose ``forward`` to compile (with dynamic batch sizes).
    """

    def __init__(self, module: nn.Module) -> None:
        self.eager = module.forward
        self.compiled = torch.compile(module.forward, dynamic=True)
        self.failed = False

    def __call__(self, *args: Any) -> Any:
        """The compiled forward of ``args``, or the eager one once compiling has failed."""
        if not self.failed:
            try:
                return self.compiled(*args)
            except Exception as error:  # noqa: BLE001 - whatever inductor raises, eager works
                self.failed = True
                warnings.warn(
                    f"compiling the detail path failed ({type(error).__name__}: "
                    f"{str(error).splitlines()[0] if str(error) else ''}); it runs uncompiled",
                    stacklevel=2,
                )
        return self.eager(*args)


def detail_path(model: nn.Module) -> nn.Module | None:
    """The model's depthwise detail path, the one compiling pays for (None: no such path).

    Args:
        model: a :class:`~dualstream_geo.models.DualStreamDFormer`.

    Returns:
        Its :class:`~dualstream_geo.models.detail.ImageDetail` if that is depthwise.
    """
    detail = getattr(model.decoder, "image_detail", None)
    return detail if detail is not None and detail.depthwise else None


def compile_detail(model: nn.Module) -> bool:
    """Compile ``model``'s depthwise detail path in place; whether there was one.

    Args:
        model: a :class:`~dualstream_geo.models.DualStreamDFormer`.

    Returns:
        True when the path is (now) compiled.
    """
    detail = detail_path(model)
    if detail is None:
        return False
    if not isinstance(detail.forward, CompiledForward):
        # An instance attribute shadows the class's forward: nn.Module.__call__ calls it.
        detail.forward = CompiledForward(detail)  # type: ignore[method-assign]
    return True


def is_compiled(model: nn.Module) -> bool:
    """Whether ``model``'s detail path runs compiled (not after a failed compilation)."""
    detail = detail_path(model)
    forward = getattr(detail, "forward", None)
    return isinstance(forward, CompiledForward) and not forward.failed
