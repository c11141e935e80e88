"""Which devices compute bf16 natively.

bf16 autocast pays only where the hardware multiplies bf16 itself: CUDA GPUs of compute
capability 8 and later, x86 CPUs with AVX512-BF16 (AMD Zen 4 and later, Intel Cooper Lake)
or AMX-BF16 (Intel Sapphire Rapids and later), and ARM cores with the BF16 extension
(Armv8.6-A: Neoverse V1/V2/N2, Graviton 3 and later, Apple M2 and later). Elsewhere PyTorch
emulates bf16 in fp32 with extra conversions, which is slower than fp32 and less exact, so
those machines keep fp32.
"""

from __future__ import annotations

import functools
import platform
import warnings
from pathlib import Path

import torch

__all__ = [
    "BF16_CPU_FLAGS",
    "cpu_bf16_flags",
    "cpu_name",
    "describe_cpu",
    "inference_bf16",
    "native_bf16",
]

#: /proc/cpuinfo flags of a native bf16 dot product (x86: ``flags``; ARM: ``Features``).
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset[str]:
    """The native bf16 flags the CPU reports (empty where it has none or does not say).

    Args:
        cpuinfo: the file listing the CPU's features (Linux); other systems report none.

    Returns:
        The flags of :data:`BF16_CPU_FLAGS` found in the first processor's feature list.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return BF16_CPU_FLAGS & frozenset(value.split())
    return frozenset()


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bf16 matrix products natively.

    Args:
        device: a CUDA device or the CPU; others (MPS, ...) count as not native.

    Returns:
        True for a CUDA device that supports bf16, or a CPU with one of
        :data:`BF16_CPU_FLAGS`.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(cpu_bf16_flags())
    return False


def cpu_name() -> str:
    """The CPU's model name (Linux), else what the platform says.

    Returns:
        The ``model name`` line of ``/proc/cpuinfo``, or :func:`platform.processor`.
    """
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_cpu() -> str:
    """The CPU's model name and its native bf16 flags, for benchmark and experiment records.

    Returns:
        ``"<model name> (avx512_bf16)"``, or the model name with ``(no native bf16)``.
    """
    flags = sorted(cpu_bf16_flags())
    return f"{cpu_name()} ({', '.join(flags) if flags else 'no native bf16'})"


def inference_bf16(device: torch.device, precision: str) -> bool:
    """Whether inference at ``precision`` on ``device`` runs under bf16 autocast.

    bf16 where the device computes it natively (:func:`native_bf16`) and ``precision`` is
    ``auto`` or ``bf16``; ``32`` keeps fp32 (e.g. to reproduce another implementation's
    probabilities exactly). Elsewhere bf16 would be emulated, slower than fp32, so ``bf16``
    there computes in fp32 with a warning.

    Args:
        device: the device inference runs on.
        precision: ``auto``, ``32`` or ``bf16``.

    Returns:
        True for bf16 autocast.
    """
    native = native_bf16(device)
    if precision == "bf16" and not native:
        warnings.warn(
            f"precision bf16: {device} has no native bf16 ({describe_cpu()}); it computes in fp32",
            stacklevel=3,
        )
    return native and precision in ("auto", "bf16")
